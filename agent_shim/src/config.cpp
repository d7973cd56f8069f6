// shim_config from YAML and from the environment. One table lists every key once, with
// its environment variable and its parser, so the two sources can never drift apart.
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>
#include <functional>
#include <limits>

#include "rrh/shim.hpp"

namespace rrh {
namespace {

status parse_unsigned(const std::string& key, const std::string& text, std::uint64_t& out) {
  std::uint64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [position, failure] = std::from_chars(text.data(), end, value);
  if (failure != std::errc{} || position != end) {
    return make_error(errc::config, "'" + key + "' must be a non-negative integer, got '" + text + "'");
  }
  out = value;
  return ok();
}

template <class Field>
std::function<status(shim_config&, const std::string&, const std::string&)> number(Field shim_config::*member) {
  return [member](shim_config& config, const std::string& key, const std::string& text) -> status {
    std::uint64_t value = 0;
    if (auto parsed = parse_unsigned(key, text, value); !parsed) return parsed;
    config.*member = static_cast<Field>(value);
    return ok();
  };
}

std::function<status(shim_config&, const std::string&, const std::string&)> text(
    std::string shim_config::*member) {
  return [member](shim_config& config, const std::string&, const std::string& value) -> status {
    config.*member = value;
    return ok();
  };
}

status parse_overflow(shim_config& config, const std::string& key, const std::string& value) {
  if (value == "block") {
    config.outbox_overflow = overflow_policy::block;
  } else if (value == "error") {
    config.outbox_overflow = overflow_policy::error;
  } else {
    return make_error(errc::config, "'" + key + "' must be 'block' or 'error', got '" + value + "'");
  }
  return ok();
}

status parse_security(shim_config& config, const std::string& key, const std::string& value) {
  auto parsed = parse_bus_security(value, "'" + key + "'");
  if (!parsed) return parsed.error();
  config.security = parsed.value();
  return ok();
}

/// Not in config_keys(): an incarnation is per start, so it has no YAML key.
constexpr const char* incarnation_variable = "RRH_INCARNATION";

struct config_key {
  const char* name;
  const char* environment;
  std::function<status(shim_config&, const std::string&, const std::string&)> assign;
};

const std::vector<config_key>& config_keys() {
  static const std::vector<config_key> keys = {
      {"node_id", "RRH_NODE_ID", text(&shim_config::node_id)},
      {"events_endpoint", "RRH_EVENTS_ENDPOINT", text(&shim_config::events_endpoint)},
      {"commands_endpoint", "RRH_COMMANDS_ENDPOINT", text(&shim_config::commands_endpoint)},
      {"heartbeat_interval_ms", "RRH_HEARTBEAT_MS", number(&shim_config::heartbeat_interval_ms)},
      {"outbox_capacity", "RRH_OUTBOX_CAPACITY", number(&shim_config::outbox_capacity)},
      {"outbox_overflow", "RRH_OUTBOX_OVERFLOW", parse_overflow},
      {"outbox_block_timeout_ms", "RRH_OUTBOX_BLOCK_TIMEOUT_MS",
       number(&shim_config::outbox_block_timeout_ms)},
      {"retransmit_initial_ms", "RRH_RETRANSMIT_INITIAL_MS",
       number(&shim_config::retransmit_initial_ms)},
      {"retransmit_max_ms", "RRH_RETRANSMIT_MAX_MS", number(&shim_config::retransmit_max_ms)},
      {"retransmit_batch_max", "RRH_RETRANSMIT_BATCH_MAX", number(&shim_config::retransmit_batch_max)},
      {"command_dedup_window", "RRH_COMMAND_DEDUP_WINDOW",
       number(&shim_config::command_dedup_window)},
      {"command_queue_max", "RRH_COMMAND_QUEUE_MAX", number(&shim_config::command_queue_max)},
      {"supervisor", "RRH_SUPERVISOR", text(&shim_config::supervisor)},
      {"security", "RRH_SECURITY", parse_security},
      {"curve_secret_key_file", "RRH_CURVE_SECRET_KEY_FILE", text(&shim_config::curve_secret_key_file)},
      {"curve_server_key_file", "RRH_CURVE_SERVER_KEY_FILE", text(&shim_config::curve_server_key_file)},
  };
  return keys;
}

status check_range(const char* key, std::uint64_t value, std::uint64_t low, std::uint64_t high) {
  if (value < low || value > high) {
    return make_error(errc::config, std::string("'") + key + "' = " + std::to_string(value) +
                                        " is outside [" + std::to_string(low) + ", " +
                                        std::to_string(high) + "]");
  }
  return ok();
}

}  // namespace

expected<shim_config> shim_config::from_yaml_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& failure) {
    return make_error(errc::config, "cannot read '" + path + "': " + failure.what());
  }
  shim_config config;
  if (root.IsNull()) return config;
  if (!root.IsMap()) return make_error(errc::config, "'" + path + "' must hold a map of keys");
  for (const auto& pair : root) {
    // A key may be a map, a list or null in YAML; as<std::string>() would throw on those.
    if (!pair.first.IsScalar()) {
      return make_error(errc::config, "'" + path + "': a key is not a name");
    }
    const auto key = pair.first.as<std::string>();
    const config_key* match = nullptr;
    for (const auto& candidate : config_keys()) {
      if (key == candidate.name) match = &candidate;
    }
    if (match == nullptr) {
      return make_error(errc::config, "'" + path + "': unknown key '" + key + "'");
    }
    if (!pair.second.IsScalar()) {
      return make_error(errc::config, "'" + path + "': '" + key + "' must be a single value");
    }
    if (auto assigned = match->assign(config, key, pair.second.as<std::string>()); !assigned) {
      return make_error(errc::config, "'" + path + "': " + assigned.error().detail);
    }
  }
  return config;
}

expected<shim_config> shim_config::from_environment(shim_config base) {
  if (const char* path = std::getenv("RRH_CONFIG"); path != nullptr && *path != '\0') {
    auto loaded = from_yaml_file(path);
    if (!loaded) return loaded;
    base = std::move(loaded.value());
  }
  for (const auto& key : config_keys()) {
    const char* value = std::getenv(key.environment);
    if (value == nullptr) continue;
    if (auto assigned = key.assign(base, key.environment, value); !assigned) {
      return assigned.error();
    }
  }
  // The supervisor sets RRH_INCARNATION for the process it starts, which leads a process
  // group of its own; what that process starts inherits the variable but not the group
  // leadership, and must not reuse the incarnation.
  if (const char* value = std::getenv(incarnation_variable);
      value != nullptr && *value != '\0' && ::getpgrp() == ::getpid()) {
    if (auto parsed = parse_unsigned(incarnation_variable, value, base.incarnation); !parsed) {
      return parsed.error();
    }
  }
  return base;
}

expected<shim_config> shim_config::from_environment() { return from_environment(shim_config{}); }

status shim_config::validate() const {
  if (!node_id.empty() && !is_valid_id(node_id)) {
    return make_error(errc::config, "node_id '" + node_id +
                                        "' is not a valid id (1-128 of A-Za-z0-9._:@-)");
  }
  if (!supervisor.empty() && !is_valid_id(supervisor)) {
    return make_error(errc::config, "supervisor '" + supervisor + "' is not a valid id");
  }
  if (events_endpoint.empty()) return make_error(errc::config, "events_endpoint is empty");
  if (commands_endpoint.empty()) return make_error(errc::config, "commands_endpoint is empty");
  constexpr std::uint64_t hour_ms = 3'600'000;
  for (auto checked : {check_range("heartbeat_interval_ms", heartbeat_interval_ms, 10, hour_ms),
                       check_range("outbox_capacity", outbox_capacity, 1, 10'000'000),
                       check_range("outbox_block_timeout_ms", outbox_block_timeout_ms, 0, hour_ms),
                       check_range("retransmit_initial_ms", retransmit_initial_ms, 1, hour_ms),
                       check_range("retransmit_max_ms", retransmit_max_ms, retransmit_initial_ms, hour_ms),
                       check_range("retransmit_batch_max", retransmit_batch_max, 1, 1'000'000),
                       check_range("command_dedup_window", command_dedup_window, 1, 10'000'000),
                       check_range("command_queue_max", command_queue_max, 1, 1'000'000)}) {
    if (!checked) return checked;
  }
  if (security == bus_security::curve) {
    if (auto checked = check_curve_settings({{"curve_secret_key_file", &curve_secret_key_file},
                                             {"curve_server_key_file", &curve_server_key_file}});
        !checked) {
      return checked;
    }
    if (auto keys = load_client_keys(curve_secret_key_file, curve_server_key_file); !keys) {
      return keys.error();
    }
  }
  return ok();
}

}  // namespace rrh
