#pragma once
/// The broker's configuration: four endpoints and a log level, from defaults, a YAML file
/// and command-line flags (in that order of precedence, lowest first).
#include <string>

#include "rrh/curve.hpp"
#include "rrh/expected.hpp"

namespace rrh::broker {

/// Where the broker binds and how much it logs. Defaults are loopback only: exposing the
/// bus beyond the machine is a deliberate choice the operator makes in the config.
struct config {
  std::string events_in = "tcp://127.0.0.1:7701";     ///< XSUB: agents' PUB sockets connect here
  std::string events_out = "tcp://127.0.0.1:7702";    ///< XPUB: processor, taps and monitors
  std::string commands_in = "tcp://127.0.0.1:7703";   ///< PULL: the processor's PUSH
  std::string commands_out = "tcp://127.0.0.1:7704";  ///< ROUTER: each shim's DEALER
  std::string log_level = "info";
  /// `none` (no authentication) or `curve`: every socket a CURVE server, every peer
  /// authenticated against curve_allowed_keys_dir.
  std::string security = "none";
  std::string curve_secret_key_file;   ///< the broker's own secret key (curve)
  std::string curve_allowed_keys_dir;  ///< `*.key` public keys allowed to connect (curve)
  /// The processor's public key: with it, only the processor may push commands to
  /// commands-in; without it, any allowed key may (the broker warns at start).
  std::string curve_processor_key_file;
};

/// The keys the broker runs with, read from the files the config names.
struct security_setup {
  bus_security mode = bus_security::none;
  curve_keypair own;              ///< the broker's pair (curve)
  std::string processor_key;      ///< Z85; empty: any allowed key may send commands
};

/// Checks `security` and reads the key files it needs. Errors (errc::config) name the key
/// whose value is wrong: `curve_secret_key_file: '/etc/rrh/broker.key_secret': no such
/// file`. The allowed keys directory is checked here too (it must exist and hold only
/// readable keys).
expected<security_setup> load_security(const config& settings);

/// Reads a YAML mapping with the keys events_in, events_out, commands_in, commands_out,
/// log_level, security, curve_secret_key_file, curve_allowed_keys_dir and
/// curve_processor_key_file into `base` (keys absent from the file keep their value in `base`). An unknown
/// key, a non-scalar value or an unreadable file is an `errc::config` error that names the
/// file and the key, so a typo never silently falls back to a default.
expected<config> load_config_file(const std::string& path, config base);

}  // namespace rrh::broker
