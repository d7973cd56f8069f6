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
  const std::array<std::pair<const char*, std::string*>, 5> keys{{
      {"events_in", &base.events_in},
      {"events_out", &base.events_out},
      {"commands_in", &base.commands_in},
      {"commands_out", &base.commands_out},
      {"log_level", &base.log_level},
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
                            "log_level)");
    }
    if (!entry.second.IsScalar()) {
      return make_error(errc::config,
                        "config file '" + path + "': key '" + key + "' needs a single value");
    }
    *target = entry.second.as<std::string>();
  }
  return base;
}

}  // namespace rrh::broker
