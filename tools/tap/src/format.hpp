#pragma once
/// How rrh-tap renders one bus message: a JSON line for machines, a colored line for
/// people, and the --agent filter. Pure functions over (topic, msgpack body): no socket,
/// so every rule is testable with bytes alone. Works on any msgpack map, so the tap shows
/// kinds this build does not know yet.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rrh/expected.hpp"

namespace rrh::tap {

/// Longest rendering of one field value in a pretty line, in characters; longer values are
/// cut with "…" so one huge field cannot flood a terminal.
inline constexpr std::size_t pretty_value_chars_max = 80;

/// One JSON object: {"topic": <topic>, then the message's own fields in wire order}.
/// Fails (errc::malformed) when the body is not exactly one msgpack map.
expected<std::string> json_line(std::string_view topic, const void* body, std::size_t size);

/// Whether the message concerns `agent`: its `data.agent` equals it, or the topic's subject
/// (the word after the first space) does. Fails when the body is not a msgpack map.
expected<bool> concerns_agent(std::string_view topic, const void* body, std::size_t size,
                              std::string_view agent);

/// A readable line: local time (from ts_ms), kind, sender node or command target, and the
/// data fields as key=value (empty strings left out). ANSI colors when `color` is set: failures
/// red, suspicion and retries yellow, recoveries green, commands cyan, heartbeats dim.
expected<std::string> pretty_line(std::string_view topic, const void* body, std::size_t size,
                                  bool color);

}  // namespace rrh::tap
