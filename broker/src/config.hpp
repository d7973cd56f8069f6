#pragma once
/// The broker's configuration: four endpoints and a log level, from defaults, a YAML file
/// and command-line flags (in that order of precedence, lowest first).
#include <string>

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
};

/// Reads a YAML mapping with the keys events_in, events_out, commands_in, commands_out and
/// log_level into `base` (keys absent from the file keep their value in `base`). An unknown
/// key, a non-scalar value or an unreadable file is an `errc::config` error that names the
/// file and the key, so a typo never silently falls back to a default.
expected<config> load_config_file(const std::string& path, config base);

}  // namespace rrh::broker
