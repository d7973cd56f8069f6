#pragma once
// Facts about this process for heartbeats: pid, host name, resident memory.
#include <cstdint>
#include <string>

namespace rrh::shim_detail {

std::uint64_t process_id();
std::string host_name();
/// Resident set size in bytes, from /proc/self/statm; 0 when unavailable.
std::uint64_t resident_bytes();
/// "<host>-<pid>" reduced to the characters an id allows.
std::string default_node_id();
/// A random, non-zero incarnation number: new on every start of a node.
std::uint64_t new_incarnation();

}  // namespace rrh::shim_detail
