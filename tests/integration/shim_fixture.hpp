#pragma once
/// The shim configuration the integration tests give their nodes.
#include <cstdint>
#include <string>

#include "rrh/shim.hpp"

namespace rrh::test {

/// A shim for node `node` on the bus at `events_in` / `commands_out`, at test speed:
/// heartbeats every 100 ms, the first retransmission after `retransmit_initial_ms`.
inline shim_config test_shim_config(const std::string& node, const std::string& events_in,
                                    const std::string& commands_out, std::uint64_t retransmit_initial_ms = 100) {
  shim_config config;
  config.node_id = node;
  config.events_endpoint = events_in;
  config.commands_endpoint = commands_out;
  config.heartbeat_interval_ms = 100;
  config.retransmit_initial_ms = retransmit_initial_ms;
  return config;
}

}  // namespace rrh::test
