#pragma once
// When a node refuses an agent.recover as stale: the rule alone, apart from sockets and
// threads, so that it is tested without a bus.
#include <cstdint>

#include "rrh/protocol.hpp"

namespace rrh::shim_detail {

/// True when a node of incarnation `own_incarnation` must refuse `recover` with reason
/// `refused_stale` instead of handing it to the application: the node hosts the agent
/// (`hosts_agent`), so the incarnation the recover names is one of this node's, and it is
/// not this one: the processor judged an earlier start dead. Incarnation 0 (a processor
/// that does not send one) names none and is never stale. A recover for an agent the node
/// does not host goes to a supervisor's handler, which alone knows the incarnation of the
/// node it supervises (rrh-launch judges its child's).
constexpr bool is_stale_recover(const commands::agent_recover& recover, bool hosts_agent,
                                std::uint64_t own_incarnation) noexcept {
  return hosts_agent && recover.incarnation != 0 && recover.incarnation != own_incarnation;
}

}  // namespace rrh::shim_detail
