// Builds against the installed rrh package: includes the shim's public header, links
// rrh::agent_shim and calls into it.
#include <cstdio>

#include "rrh/shim.hpp"

int main() {
  rrh::shim_config config;
  config.node_id = "consumer-1";
  const rrh::status valid = config.validate();
  if (!valid) {
    std::fprintf(stderr, "rrh consumer: default configuration rejected: %s: %s\n",
                 rrh::to_string(valid.error().code), valid.error().detail.c_str());
    return 1;
  }
  std::printf("rrh consumer: configuration of node %s is valid (protocol v%llu, events %s)\n",
              config.node_id.c_str(), static_cast<unsigned long long>(rrh::protocol_version),
              config.events_endpoint.c_str());
  return 0;
}
