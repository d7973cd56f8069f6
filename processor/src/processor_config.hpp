#pragma once
/// The rrh-processor binary's whole configuration: where it connects on the bus, where it
/// keeps its state, and the engine's resilience configuration, read from one YAML file.
#include <string>

#include "rrh/curve.hpp"
#include "rrh/engine/config.hpp"
#include "rrh/expected.hpp"

namespace rrh::processor {

/// Everything the processor needs to start. Defaults match the broker's loopback defaults,
/// so a processor and a broker started without files find each other.
struct processor_settings {
  std::string events_endpoint =
      "tcp://127.0.0.1:7702";  ///< SUB: connects to the broker's events-out
  std::string publish_endpoint =
      "tcp://127.0.0.1:7701";  ///< PUB: connects to the broker's events-in
  std::string commands_endpoint =
      "tcp://127.0.0.1:7703";  ///< PUSH: connects to the broker's commands-in
  std::string control_endpoint = "tcp://127.0.0.1:7705";  ///< bound: rrh-ctl's requests
  std::string state_path = "rrh-state.db";    ///< where the engine's state survives restarts
  std::string node_id = "processor";          ///< the processor's id on the bus
  std::string log_level = "info";             ///< trace, debug, info, warn, error, critical or off
  std::string security = "none";  ///< none, or curve: every socket authenticated and encrypted
  std::string curve_secret_key_file;   ///< the processor's secret key (curve)
  std::string curve_server_key_file;   ///< the broker's public key (curve)
  std::string curve_allowed_keys_dir;  ///< keys allowed on the control socket (curve)
  /// The processor's own sight (pump.hpp): a gap in its loop longer than this is a stall
  /// of its own, after which nobody is judged until the backlog is applied.
  std::uint64_t stall_threshold_ms = 1000;
  /// Gap between two of its echoes on the bus (a heartbeat of node_id); 0: no echo.
  std::uint64_t echo_interval_ms = 250;
  /// No echo back for this long: the processor is deaf and judges nobody.
  std::uint64_t echo_timeout_ms = 1000;
  rrh::engine::resilience_config resilience;  ///< the engine's defaults for every episode
};

/// Reads a YAML mapping with the keys events, publish, commands, control, state, node_id,
/// log_level, security, curve_secret_key_file, curve_server_key_file,
/// curve_allowed_keys_dir and a `resilience:` mapping of the engine's configuration keys (see
/// `rrh::engine::config_keys`). Absent keys keep their defaults. An unreadable file, an
/// unknown or repeated key anywhere, a wrong type or an out-of-range value is an
/// `errc::config` error naming the key (`resilience.recovery_cooldwn: unknown key`), so a
/// typo never silently falls back to a default.
expected<processor_settings> load_processor_settings(const std::string& yaml_path);

/// Parses the same YAML from text; `origin` names it in errors. load_processor_settings
/// reads a file and calls this.
expected<processor_settings> parse_processor_settings(const std::string& yaml_text,
                                                      const std::string& origin);

/// The keys the processor runs with, read from the files its settings name.
struct processor_security {
  bus_security mode = bus_security::none;
  curve_client_keys keys;  ///< own pair (also the control socket's server key) + the broker's
};

/// Checks `security` and reads the key files it needs; errors (errc::config) name the key
/// whose value is wrong. With curve, curve_allowed_keys_dir must name a readable
/// directory of keys (the control socket accepts only those).
expected<processor_security> load_processor_security(const processor_settings& settings);

/// The settings as YAML with every key, its value and its meaning in a comment, for
/// --print-config. The text loads back to the same settings.
std::string render_processor_settings(const processor_settings& settings);

}  // namespace rrh::processor
