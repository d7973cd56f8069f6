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
/// The incarnation of a shim starting now: `chosen` (a supervisor's choice) for the first
/// shim of this process that has one, else a new one. One incarnation names one start,
/// so a second shim of the process never reuses it.
std::uint64_t start_incarnation(std::uint64_t chosen);

}  // namespace rrh::shim_detail
