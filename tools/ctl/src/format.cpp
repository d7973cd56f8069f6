#include "format.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>

namespace rrh::ctl {
namespace {

/// Characters (UTF-8 code points) in `text`: continuation bytes do not count.
std::size_t width_of(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  }));
}

/// `text` cut to at most `chars_max` characters, on a character boundary; one line.
std::string cell(std::string text, std::size_t chars_max) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\t', ' ');
  if (text.empty()) return "-";
  if (width_of(text) <= chars_max) return text;
  std::size_t characters = 0;
  std::size_t cut = 0;
  for (; cut < text.size(); ++cut) {
    if ((static_cast<unsigned char>(text[cut]) & 0xc0) != 0x80 && ++characters == chars_max) {
      break;
    }
  }
  text.resize(cut);
  return text + "…";
}

std::string field_text(const json_value& object, std::string_view key) {
  const auto* value = object.find(key);
  return value == nullptr ? std::string() : value->display();
}

std::uint64_t field_u64(const json_value& object, std::string_view key) {
  const auto* value = object.find(key);
  return value == nullptr ? 0 : value->as_u64().value_or(0);
}

void flatten(const json_value& value, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>& lines) {
  if (value.is_object() && !value.members.empty()) {
    for (const auto& member : value.members) {
      flatten(member.value, prefix.empty() ? member.key : prefix + "." + member.key, lines);
    }
    return;
  }
  lines.emplace_back(prefix, value.is_object() ? std::string() : value.display());
}

/// A list answer {"total","truncated","<key>":[…]} as a table of `columns`.
std::string format_list(const json_value& data, std::string_view key,
                        const std::vector<std::string>& headers,
                        const std::function<std::vector<std::string>(const json_value&)>& row_of) {
  const auto* items = data.find(key);
  if (items == nullptr || !items->is_array()) return format_fields(data);
  if (items->items.empty()) return "no " + std::string(key) + "\n";
  std::vector<std::vector<std::string>> rows;
  rows.reserve(items->items.size());
  for (const auto& item : items->items) rows.push_back(row_of(item));
  auto out = format_table(headers, rows);
  const auto* truncated = data.find("truncated");
  if (truncated != nullptr && truncated->boolean) {
    out += "(" + std::to_string(items->items.size()) + " of " +
           std::to_string(field_u64(data, "total")) + " " + std::string(key) +
           " shown; ask for one id to see any other)\n";
  }
  return out;
}

std::vector<std::string> agent_row(const json_value& agent) {
  return {field_text(agent, "agent"), field_text(agent, "node"),
          field_text(agent, "state"), field_text(agent, "recovery_attempts"),
          field_text(agent, "pool"),  field_text(agent, "episode")};
}

std::vector<std::string> task_row(const json_value& task) {
  std::string last_error = field_text(task, "last_error_type");
  const auto message = field_text(task, "last_error_message");
  if (!message.empty()) last_error += last_error.empty() ? message : ": " + message;
  return {field_text(task, "task"),     field_text(task, "agent"),
          field_text(task, "state"),    field_text(task, "attempt"),
          field_text(task, "failures"), field_text(task, "pool"),
          field_text(task, "episode"),  last_error};
}

std::vector<std::string> episode_row(const json_value& episode) {
  return {field_text(episode, "episode"),
          field_text(episode, "state"),
          field_text(episode, "status"),
          format_duration_ms(field_u64(episode, "duration_ms")),
          field_text(episode, "errors"),
          field_text(episode, "recoveries_succeeded") + "/" +
              field_text(episode, "recoveries_attempted"),
          field_text(episode, "tasks_failed") + "/" + field_text(episode, "tasks_retried") + "/" +
              field_text(episode, "tasks_recovered") + "/" + field_text(episode, "tasks_abandoned"),
          field_text(episode, "agents_seen")};
}

std::string format_rows(const json_value& data, const std::vector<std::string>& headers,
                        const std::function<std::vector<std::string>(const json_value&)>& row_of) {
  if (!data.is_array()) return format_fields(data);
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : data.items) rows.push_back(row_of(item));
  return format_table(headers, rows, prose_cell_chars_max);
}

}  // namespace

std::string format_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows,
                         std::size_t cell_chars) {
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size() + 1);
  cells.push_back(headers);
  for (const auto& row : rows) {
    auto& line = cells.emplace_back();
    for (std::size_t column = 0; column < headers.size(); ++column) {
      line.push_back(cell(column < row.size() ? row[column] : std::string(), cell_chars));
    }
  }
  std::vector<std::size_t> widths(headers.size(), 0);
  for (const auto& line : cells) {
    for (std::size_t column = 0; column < headers.size(); ++column) {
      widths[column] = std::max(widths[column], width_of(line[column]));
    }
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (std::size_t column = 0; column < headers.size(); ++column) {
      if (column > 0) text += "  ";
      text += line[column];
      if (column + 1 < headers.size()) {
        text.append(widths[column] - width_of(line[column]), ' ');
      }
    }
    out += text;
    out += '\n';
  }
  return out;
}

std::string format_fields(const json_value& object) {
  std::vector<std::pair<std::string, std::string>> lines;
  flatten(object, "", lines);
  std::size_t width = 0;
  for (const auto& [key, value] : lines) width = std::max(width, width_of(key));
  std::string out;
  for (const auto& [key, value] : lines) {
    out += key;
    out += ':';
    if (!value.empty()) {
      out.append(width - width_of(key) + 1, ' ');
      out += value;
    }
    out += '\n';
  }
  return out;
}

std::string format_duration_ms(std::uint64_t duration_ms) {
  constexpr std::uint64_t second_ms = 1000;
  constexpr std::uint64_t minute_ms = 60 * second_ms;
  constexpr std::uint64_t hour_ms = 60 * minute_ms;
  constexpr std::uint64_t day_ms = 24 * hour_ms;
  char buffer[48];
  if (duration_ms < second_ms) {
    std::snprintf(buffer, sizeof buffer, "%llums", static_cast<unsigned long long>(duration_ms));
  } else if (duration_ms < minute_ms) {
    // Tenths, truncated rather than rounded, so 59.99 s never shows as "60.0s".
    std::snprintf(buffer, sizeof buffer, "%llu.%llus",
                  static_cast<unsigned long long>(duration_ms / second_ms),
                  static_cast<unsigned long long>(duration_ms % second_ms / 100));
  } else if (duration_ms < hour_ms) {
    std::snprintf(buffer, sizeof buffer, "%llum%02llus",
                  static_cast<unsigned long long>(duration_ms / minute_ms),
                  static_cast<unsigned long long>(duration_ms % minute_ms / second_ms));
  } else if (duration_ms < day_ms) {
    std::snprintf(buffer, sizeof buffer, "%lluh%02llum",
                  static_cast<unsigned long long>(duration_ms / hour_ms),
                  static_cast<unsigned long long>(duration_ms % hour_ms / minute_ms));
  } else {
    std::snprintf(buffer, sizeof buffer, "%llud%02lluh",
                  static_cast<unsigned long long>(duration_ms / day_ms),
                  static_cast<unsigned long long>(duration_ms % day_ms / hour_ms));
  }
  return buffer;
}

// The lines an operator reads first: is the store taking commits, is the processor
// judging the fleet, is the fleet disrupted, how far behind is ingest.
std::string status_summary(const json_value& data) {
  const auto until = field_u64(data, "now_ms");
  const auto ago = [&](const json_value& object, std::string_view key) {
    const auto from = field_u64(object, key);
    if (from == 0 || from > until) return std::string("?");
    return format_duration_ms(until - from) + " ago";
  };
  std::string out;
  if (const auto* store = data.find("store")) {
    out += "store: " + field_text(*store, "state");
    if (field_text(*store, "state") == "degraded") {
      out += " (" + field_text(*store, "reason") + ", since " + ago(*store, "since_ms") + ")";
    }
    out += '\n';
  }
  if (const auto* sight = data.find("sight")) {
    out += "sight: " + field_text(*sight, "state");
    if (field_text(*sight, "state") == "blind") out += " (" + field_text(*sight, "why") + "): nobody is judged";
    out += '\n';
  }
  if (const auto* disruption = data.find("disruption")) {
    out += "fleet: " + field_text(*disruption, "mode") + " (" + field_text(*disruption, "silent_nodes") + " of " +
           field_text(*disruption, "nodes") + " nodes silent)\n";
  }
  if (const auto* ingest = data.find("ingest")) {
    out += "ingest: lag " + field_text(*ingest, "lag_ms") + " ms, backlog " + field_text(*ingest, "backlog") + "\n";
  }
  return out.empty() ? out : out + '\n';
}

std::string format_pretty(std::string_view command, const json_value& data) {
  if (command == "agents") {
    return format_list(data, "agents", {"AGENT", "NODE", "STATE", "ATTEMPTS", "POOL", "EPISODE"},
                       agent_row);
  }
  if (command == "tasks") {
    return format_list(
        data, "tasks",
        {"TASK", "AGENT", "STATE", "ATTEMPT", "FAILURES", "POOL", "EPISODE", "LAST_ERROR"},
        task_row);
  }
  if (command == "episodes") {
    return format_list(data, "episodes",
                       {"EPISODE", "STATE", "STATUS", "DURATION", "ERRORS", "RECOVERIES",
                        "TASKS_FAILED/RETRIED/RECOVERED/ABANDONED", "AGENTS"},
                       episode_row);
  }
  if (command == "config") {
    return format_rows(
        data, {"KEY", "VALUE", "UNIT", "SEED", "MEANING"},
        [](const json_value& key) -> std::vector<std::string> {
          const auto* seed = key.find("seed");
          return {field_text(key, "key"), field_text(key, "value"), field_text(key, "unit"),
                  seed != nullptr && seed->boolean ? "seed" : "", field_text(key, "meaning")};
        });
  }
  if (command == "help") {
    return format_rows(data, {"REQUEST", "MEANING"},
                       [](const json_value& request) -> std::vector<std::string> {
                         return {field_text(request, "request"), field_text(request, "meaning")};
                       });
  }
  if (command == "status") return status_summary(data) + format_fields(data);
  return format_fields(data);
}

}  // namespace rrh::ctl
