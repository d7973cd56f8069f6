#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <array>
#include <utility>

namespace rrh::broker {

expected<config> load_config_file(const std::string& path, config base) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return make_error(errc::config, "cannot read config file '" + path + "'");
  } catch (const YAML::Exception& failure) {
    return make_error(errc::config, "config file '" + path + "': " + failure.what());
  }
  if (root.IsNull()) return base;  // an empty file changes nothing
  if (!root.IsMap()) {
    return make_error(errc::config, "config file '" + path + "': expected a mapping of keys");
  }
  const std::array<std::pair<const char*, std::string*>, 9> keys{{
      {"events_in", &base.events_in},
      {"events_out", &base.events_out},
      {"commands_in", &base.commands_in},
      {"commands_out", &base.commands_out},
      {"log_level", &base.log_level},
      {"security", &base.security},
      {"curve_secret_key_file", &base.curve_secret_key_file},
      {"curve_allowed_keys_dir", &base.curve_allowed_keys_dir},
      {"curve_processor_key_file", &base.curve_processor_key_file},
  }};
  for (const auto& entry : root) {
    std::string key;
    try {
      key = entry.first.as<std::string>();
    } catch (const YAML::Exception&) {
      return make_error(errc::config, "config file '" + path + "': a key is not a string");
    }
    std::string* target = nullptr;
    for (const auto& [name, field] : keys) {
      if (key == name) target = field;
    }
    if (target == nullptr) {
      return make_error(errc::config,
                        "config file '" + path + "': unknown key '" + key +
                            "' (known: events_in, events_out, commands_in, commands_out, "
                            "log_level, security, curve_secret_key_file, "
                            "curve_allowed_keys_dir, curve_processor_key_file)");
    }
    if (!entry.second.IsScalar()) {
      return make_error(errc::config,
                        "config file '" + path + "': key '" + key + "' needs a single value");
    }
    *target = entry.second.as<std::string>();
  }
  return base;
}

expected<security_setup> load_security(const config& settings) {
  security_setup setup;
  auto mode = parse_bus_security(settings.security, "security");
  if (!mode) return mode.error();
  setup.mode = mode.value();
  if (setup.mode == bus_security::none) return setup;
  if (auto checked = check_curve_settings({{"curve_secret_key_file", &settings.curve_secret_key_file},
                                           {"curve_allowed_keys_dir", &settings.curve_allowed_keys_dir}});
      !checked) {
    return checked.error();
  }
  auto own = read_secret_key_file(settings.curve_secret_key_file, "curve_secret_key_file");
  if (!own) return own.error();
  setup.own = std::move(own.value());
  allowed_keys allowed(settings.curve_allowed_keys_dir);
  if (auto loaded = allowed.load("curve_allowed_keys_dir"); !loaded) return loaded.error();
  if (!settings.curve_processor_key_file.empty()) {
    auto processor = read_public_key_file(settings.curve_processor_key_file, "curve_processor_key_file");
    if (!processor) return processor.error();
    setup.processor_key = std::move(processor.value());
  }
  return setup;
}

}  // namespace rrh::broker
