// processor_settings from YAML and back. The top-level keys are listed once in a table; the
// `resilience:` keys come from the engine's own table (rrh::engine::config_keys), so the
// file format, --print-config and the engine can never disagree on a key.
#include "processor_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <variant>

#include "rrh/protocol.hpp"

namespace rrh::processor {
namespace {

/// One top-level string key of the file.
struct text_key {
  std::string_view name;
  std::string processor_settings::*member;
  std::string_view meaning;
};

constexpr std::string_view resilience_section = "resilience";

/// Top-level string keys that may be empty: the CURVE key files, used with `security: curve`.
const std::array<text_key, 4>& security_keys() {
  static const std::array<text_key, 4> keys{{
      {"security", &processor_settings::security,
       "none, or curve: every socket authenticated and encrypted"},
      {"curve_secret_key_file", &processor_settings::curve_secret_key_file,
       "curve: this processor's secret key (rrh-ctl keygen)"},
      {"curve_server_key_file", &processor_settings::curve_server_key_file,
       "curve: the broker's public key"},
      {"curve_allowed_keys_dir", &processor_settings::curve_allowed_keys_dir,
       "curve: public keys (*.key) allowed on the control socket"},
  }};
  return keys;
}

const std::array<text_key, 7>& text_keys() {
  static const std::array<text_key, 7> keys{{
      {"events", &processor_settings::events_endpoint, "SUB, connects to the broker's events-out"},
      {"publish", &processor_settings::publish_endpoint, "PUB, connects to the broker's events-in"},
      {"commands", &processor_settings::commands_endpoint,
       "PUSH, connects to the broker's commands-in"},
      {"control", &processor_settings::control_endpoint, "bound for rrh-ctl's requests"},
      {"state", &processor_settings::state_path,
       "file that keeps the engine's state across restarts"},
      {"node_id", &processor_settings::node_id, "the processor's id on the bus"},
      {"log_level", &processor_settings::log_level,
       "trace, debug, info, warn, error, critical or off"},
  }};
  return keys;
}

/// Top-level durations: the processor's own sight.
struct duration_setting {
  std::string_view name;
  std::uint64_t processor_settings::*member;
  std::uint64_t min_ms;
  std::uint64_t max_ms;
  std::string_view meaning;
};

const std::array<duration_setting, 3>& duration_keys() {
  static const std::array<duration_setting, 3> keys{{
      {"stall_threshold", &processor_settings::stall_threshold_ms, 100, 3'600'000,
       "a gap in the processor's loop longer than this is a stall: nobody is judged until its backlog is applied"},
      {"echo_interval", &processor_settings::echo_interval_ms, 0, 60'000,
       "gap between two of the processor's echoes on the bus; 0 = no echo"},
      {"echo_timeout", &processor_settings::echo_timeout_ms, 10, 3'600'000,
       "no echo back for this long: the processor is deaf and judges nobody"},
  }};
  return keys;
}

const duration_setting* find_duration_key(std::string_view name) {
  for (const auto& key : duration_keys()) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

/// The top-level string key named `name`, required or security, or nullptr.
const text_key* find_text_key(std::string_view name) {
  for (const auto& key : text_keys()) {
    if (key.name == name) return &key;
  }
  for (const auto& key : security_keys()) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

constexpr std::array<std::string_view, 7> log_levels{"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};

const rrh::engine::config_key_info* find_resilience_key(std::string_view name) {
  for (const auto& info : rrh::engine::config_keys()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

/// A YAML scalar as a setting: an integer if it reads as one, else a number, else a
/// boolean (true/false), else the text.
setting_value to_setting(const YAML::Node& node) {
  std::int64_t integer = 0;
  if (YAML::convert<std::int64_t>::decode(node, integer)) return integer;
  double real = 0;
  if (YAML::convert<double>::decode(node, real)) return real;
  const std::string& text = node.Scalar();
  if (text == "true") return true;
  if (text == "false") return false;
  return text;
}

/// Keys of a mapping, in file order; a non-string or repeated key is an error.
status check_keys(const YAML::Node& map, const std::string& prefix) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) return make_error(errc::config, prefix + "a key is not a name");
    if (!seen.insert(entry.first.Scalar()).second) {
      return make_error(errc::config, prefix + entry.first.Scalar() + ": repeated key");
    }
  }
  return ok();
}

status load_resilience(const YAML::Node& section, rrh::engine::resilience_config& config) {
  const std::string prefix = std::string(resilience_section) + ".";
  if (section.IsNull()) return ok();  // an empty section changes nothing
  if (!section.IsMap()) {
    return make_error(errc::config,
                      std::string(resilience_section) + ": expected a mapping of keys");
  }
  if (auto keys = check_keys(section, prefix); !keys) return keys;
  for (const auto& entry : section) {
    const std::string key = entry.first.Scalar();
    const YAML::Node& value = entry.second;
    const auto* info = find_resilience_key(key);
    if (info == nullptr) return make_error(errc::config, prefix + key + ": unknown key");
    setting_value setting;
    if (value.IsScalar()) {
      setting = to_setting(value);
    } else if (value.IsSequence() && info->unit == "list") {
      std::string joined;
      for (const auto& item : value) {
        if (!item.IsScalar()) {
          return make_error(errc::config, prefix + key + ": every element must be a name");
        }
        if (item.Scalar().empty() || item.Scalar().find(',') != std::string::npos) {
          return make_error(errc::config, prefix + key + ": element '" + item.Scalar() +
                                              "' must be non-empty and without ','");
        }
        if (!joined.empty()) joined += ',';
        joined += item.Scalar();
      }
      setting = joined;
    } else {
      return make_error(errc::config, prefix + key + ": needs a single value");
    }
    if (auto applied = rrh::engine::set_config_key(config, key, setting); !applied) {
      return make_error(errc::config, prefix + applied.error().detail);
    }
  }
  if (auto valid = config.validate(); !valid)
    return make_error(errc::config, prefix + valid.error().detail);
  return ok();
}

status check_settings(const processor_settings& settings) {
  for (const auto& key : text_keys()) {
    if ((settings.*key.member).empty()) {
      return make_error(errc::config, std::string(key.name) + ": must not be empty");
    }
  }
  if (!is_valid_id(settings.node_id)) {
    return make_error(errc::config, "node_id: '" + settings.node_id + "' is not an id (1 to " +
                                        std::to_string(id_length_max) +
                                        " of A-Z a-z 0-9 . _ : @ -)");
  }
  if (settings.echo_interval_ms > 0 && settings.echo_timeout_ms <= settings.echo_interval_ms) {
    return make_error(errc::config, "echo_timeout: must be longer than echo_interval (" +
                                        std::to_string(settings.echo_interval_ms) + " ms)");
  }
  if (auto mode = parse_bus_security(settings.security, "security"); !mode) return mode.error();
  if (std::find(log_levels.begin(), log_levels.end(), settings.log_level) == log_levels.end()) {
    return make_error(errc::config, "log_level: unknown level '" + settings.log_level +
                                        "' (trace, debug, info, warn, error, critical or off)");
  }
  return ok();
}

/// A YAML double-quoted scalar: reads back as exactly `text`, whatever it holds.
std::string quote(std::string_view text) {
  std::string quoted = "\"";
  for (const char raw : text) {
    const auto c = static_cast<unsigned char>(raw);
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += raw;
    } else if (c < 0x20 || c == 0x7f) {
      constexpr std::string_view hex = "0123456789abcdef";
      quoted += "\\x";
      quoted += hex[c >> 4];
      quoted += hex[c & 0xf];
    } else {
      quoted += raw;
    }
  }
  return quoted + "\"";
}

/// Plain decimal where it fits ("300", "0.25"), else the shortest exact form.
std::string format_number(double value) {
  std::array<char, 128> buffer{};
  auto written =
      std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, std::chars_format::fixed);
  if (written.ec != std::errc{}) {
    written = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  }
  return std::string(buffer.data(), written.ptr);
}

std::string render_setting(const setting_value& value, std::string_view unit) {
  if (const auto* integer = std::get_if<std::int64_t>(&value)) return std::to_string(*integer);
  if (const auto* real = std::get_if<double>(&value)) return format_number(*real);
  if (const auto* flag = std::get_if<bool>(&value)) return *flag ? "true" : "false";
  const auto& text = std::get<std::string>(value);
  if (unit == "name") return text;  // enum names are plain identifiers
  if (unit != "list") return quote(text);
  std::string list = "[";
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    if (list.size() > 1) list += ", ";
    list += quote(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return list + "]";
}

/// `key: value` padded so that the comments line up.
void write_line(std::ostringstream& out, std::string_view indent, std::string_view key,
                const std::string& value, std::string_view comment) {
  constexpr std::size_t comment_column = 44;
  std::string line = std::string(indent) + std::string(key) + ": " + value;
  if (line.size() < comment_column) line.resize(comment_column, ' ');
  out << line << "  # " << comment << '\n';
}

}  // namespace

expected<processor_settings> parse_processor_settings(const std::string& yaml_text,
                                                      const std::string& origin) {
  const std::string where = origin + ": ";
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& failure) {
    return make_error(errc::config, where + failure.what());
  }
  processor_settings settings;
  if (root.IsNull()) return settings;  // an empty file keeps every default
  if (!root.IsMap()) return make_error(errc::config, where + "expected a mapping of keys");
  if (auto keys = check_keys(root, where); !keys) return keys.error();
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    if (key == resilience_section) {
      if (auto loaded = load_resilience(entry.second, settings.resilience); !loaded) {
        return make_error(errc::config, where + loaded.error().detail);
      }
      continue;
    }
    if (const auto* duration = find_duration_key(key)) {
      if (!entry.second.IsScalar()) return make_error(errc::config, where + key + ": needs a single value");
      auto parsed = rrh::engine::parse_duration_ms(to_setting(entry.second));
      if (!parsed) return make_error(errc::config, where + key + ": " + parsed.error().detail);
      if (parsed.value() < duration->min_ms || parsed.value() > duration->max_ms) {
        return make_error(errc::config, where + key + ": must be from " + std::to_string(duration->min_ms) + " ms to " +
                                            std::to_string(duration->max_ms) + " ms");
      }
      settings.*duration->member = parsed.value();
      continue;
    }
    const text_key* known = find_text_key(key);
    if (known == nullptr) {
      return make_error(errc::config, where + key +
                                          ": unknown key (known: events, publish, commands, "
                                          "control, state, node_id, log_level, security, "
                                          "curve_secret_key_file, curve_server_key_file, "
                                          "curve_allowed_keys_dir, stall_threshold, echo_interval, "
                                          "echo_timeout, resilience)");
    }
    if (!entry.second.IsScalar()) {
      return make_error(errc::config, where + key + ": needs a single value");
    }
    settings.*known->member = entry.second.Scalar();
  }
  if (auto valid = check_settings(settings); !valid) {
    return make_error(errc::config, where + valid.error().detail);
  }
  return settings;
}

expected<processor_settings> load_processor_settings(const std::string& yaml_path) {
  std::ifstream file(yaml_path, std::ios::binary);
  if (!file) return make_error(errc::config, "cannot read config file '" + yaml_path + "'");
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return make_error(errc::config, "cannot read config file '" + yaml_path + "'");
  return parse_processor_settings(text.str(), "config file '" + yaml_path + "'");
}

expected<processor_security> load_processor_security(const processor_settings& settings) {
  processor_security loaded;
  auto mode = parse_bus_security(settings.security, "security");
  if (!mode) return mode.error();
  loaded.mode = mode.value();
  if (loaded.mode == bus_security::none) return loaded;
  if (auto checked = check_curve_settings({{"curve_secret_key_file", &settings.curve_secret_key_file},
                                           {"curve_server_key_file", &settings.curve_server_key_file},
                                           {"curve_allowed_keys_dir", &settings.curve_allowed_keys_dir}});
      !checked) {
    return checked.error();
  }
  auto keys = load_client_keys(settings.curve_secret_key_file, settings.curve_server_key_file);
  if (!keys) return keys.error();
  loaded.keys = std::move(keys.value());
  allowed_keys control_keys(settings.curve_allowed_keys_dir);
  if (auto read = control_keys.load("curve_allowed_keys_dir"); !read) return read.error();
  return loaded;
}

std::string render_processor_settings(const processor_settings& settings) {
  std::ostringstream out;
  out << "# rrh-processor configuration. Durations are seconds (fractions allowed) or text with\n"
         "# a unit: \"250ms\", \"2s\", \"5m\", \"1h\". Keys marked (seed) keep the seed's "
         "meaning.\n";
  for (const auto& key : text_keys()) {
    write_line(out, "", key.name, quote(settings.*key.member), key.meaning);
  }
  for (const auto& key : security_keys()) {
    write_line(out, "", key.name, quote(settings.*key.member), key.meaning);
  }
  for (const auto& key : duration_keys()) {
    write_line(out, "", key.name, format_number(static_cast<double>(settings.*key.member) / 1000.0),
               std::string(key.meaning) + " (seconds)");
  }
  out << resilience_section << ":\n";
  for (const auto& info : rrh::engine::config_keys()) {
    const auto value = rrh::engine::get_config_key(settings.resilience, info.name);
    std::string comment(info.meaning);
    if (info.unit == "s" && info.from_seed) {
      comment += " (seconds, seed)";
    } else if (info.unit == "s") {
      comment += " (seconds)";
    } else if (info.from_seed) {
      comment += " (seed)";
    }
    write_line(out, "  ", info.name, render_setting(value, info.unit), comment);
  }
  return out.str();
}

}  // namespace rrh::processor
