#pragma once
/// How rrh-ctl shows a control reply to people (--pretty): aligned tables for lists, and
/// `key: value` lines for single objects. Pure functions over the parsed reply, so every
/// layout is testable without a socket.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "json_reader.hpp"

namespace rrh::ctl {

/// Widest cell of a data table, in characters; longer values (error messages) are cut with
/// "…" so one message cannot push every other column off the screen.
inline constexpr std::size_t cell_chars_max = 60;
/// Widest cell of a reference table (config, help), whose last column is prose to read.
inline constexpr std::size_t prose_cell_chars_max = 200;

/// Columns separated by two spaces, each as wide as its widest cell (counted in UTF-8
/// characters), no trailing blanks; one line per row, header first. Empty cells show "-";
/// cells longer than `cell_chars` characters are cut with "…".
std::string format_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows,
                         std::size_t cell_chars = cell_chars_max);

/// `key: value` lines with aligned values; nested objects are flattened with dotted keys
/// (`agents.by_state.healthy: 3`) and arrays of scalars comma-joined.
std::string format_fields(const json_value& object);

/// A duration for people: "850ms", "12.3s", "5m03s", "2h05m", "3d04h".
std::string format_duration_ms(std::uint64_t duration_ms);

/// The readable form of a successful reply's `data` for request `command` (the request's
/// first word: status, agents, tasks, episodes, agent, task, episode, config, help). Data
/// of an unexpected shape is shown as fields rather than refused. Ends with a newline.
std::string format_pretty(std::string_view command, const json_value& data);

}  // namespace rrh::ctl
