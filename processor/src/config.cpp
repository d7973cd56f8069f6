// The resilience configuration: one table lists every key once, with its field, its kind
// and its range, so that parsing, printing, validation and documentation cannot drift.
#include "rrh/engine/config.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace rrh::engine {

const char* to_string(backoff_policy policy) noexcept {
  switch (policy) {
    case backoff_policy::fixed: return "fixed";
    case backoff_policy::exponential: return "exponential";
    case backoff_policy::exponential_full_jitter: return "exponential_full_jitter";
  }
  return "unknown";
}

const char* to_string(detector_mode mode) noexcept {
  switch (mode) {
    case detector_mode::phi_accrual: return "phi_accrual";
    case detector_mode::missed_heartbeats: return "missed_heartbeats";
  }
  return "unknown";
}

namespace {

constexpr std::uint64_t second_ms = 1000;
constexpr std::uint64_t minute_ms = 60 * second_ms;
constexpr std::uint64_t hour_ms = 60 * minute_ms;
constexpr std::uint64_t day_ms = 24 * hour_ms;
/// Longest duration any key accepts: far beyond every sensible setting, and small enough
/// that the engine can add it to a timestamp without overflow.
constexpr std::uint64_t duration_ms_max = 365 * day_ms;
/// Largest count any key accepts; keeps every count representable as a setting (int64).
constexpr std::uint64_t count_max = 1'000'000'000;

// --- Kinds of keys ------------------------------------------------------------------------

/// A duration kept in milliseconds, written in seconds or with a unit.
struct duration_key {
  std::uint64_t resilience_config::*member;
  std::uint64_t min_ms;
  std::uint64_t max_ms;
};

/// A whole number.
struct count_key {
  std::uint64_t resilience_config::*member;
  std::uint64_t min;
  std::uint64_t max;
};

/// A real number; `min_exclusive` makes the lower bound strict (a threshold > 0).
struct real_key {
  double resilience_config::*member;
  double min;
  double max;
  bool min_exclusive;
  std::string_view unit;
};

/// One of an enum's names, as `to_string` writes them.
template <class Enum>
struct enum_key {
  Enum resilience_config::*member;
};

/// A list of names, written as a YAML list or a comma-separated string.
struct list_key {
  std::vector<std::string> resilience_config::*member;
};

using key_access = std::variant<duration_key, count_key, real_key, enum_key<backoff_policy>,
                                enum_key<detector_mode>, list_key>;

struct key_entry {
  std::string_view name;
  key_access access;
  std::string_view meaning;
  bool from_seed = false;
};

template <class Enum>
constexpr auto enum_values() {
  if constexpr (std::is_same_v<Enum, backoff_policy>) {
    return std::array{backoff_policy::fixed, backoff_policy::exponential,
                      backoff_policy::exponential_full_jitter};
  } else {
    return std::array{detector_mode::phi_accrual, detector_mode::missed_heartbeats};
  }
}

std::string_view unit_of(const key_access& access) {
  return std::visit(
      [](const auto& kind) -> std::string_view {
        using kind_t = std::decay_t<decltype(kind)>;
        if constexpr (std::is_same_v<kind_t, duration_key>) {
          return "s";
        } else if constexpr (std::is_same_v<kind_t, count_key>) {
          return "count";
        } else if constexpr (std::is_same_v<kind_t, real_key>) {
          return kind.unit;
        } else if constexpr (std::is_same_v<kind_t, list_key>) {
          return "list";
        } else {
          return "name";
        }
      },
      access);
}

// --- The table ----------------------------------------------------------------------------

using rc = resilience_config;

constexpr duration_key duration(std::uint64_t rc::*member, std::uint64_t min_ms,
                                std::uint64_t max_ms = duration_ms_max) {
  return {member, min_ms, max_ms};
}
constexpr count_key count(std::uint64_t rc::*member, std::uint64_t min,
                          std::uint64_t max = count_max) {
  return {member, min, max};
}

const auto& key_table() {
  static const auto table = std::to_array<key_entry>({
      // The seed's five keys.
      {"max_recovery_attempts", count(&rc::max_recovery_attempts, 0, 1000),
       "recoveries of one agent before it is quarantined", true},
      {"recovery_cooldown", duration(&rc::recovery_cooldown_ms, 0, day_ms),
       "least time between two recoveries of one agent", true},
      {"error_threshold", count(&rc::error_threshold, 1),
       "episode errors (within error_window) that shut the episode down", true},
      {"agent_health_check_interval", duration(&rc::agent_health_check_interval_ms, 100, day_ms),
       "gap between two active probes of one agent", true},
      {"task_retry_delay", duration(&rc::task_retry_delay_ms, 0, day_ms),
       "base delay before a failed task is retried", true},
      // Task retry.
      {"max_task_retries", count(&rc::max_task_retries, 0, 1000),
       "retries of a failed task after its first attempt"},
      {"retry_backoff", enum_key<backoff_policy>{&rc::retry_backoff},
       "growth of the retry delay: fixed, exponential or exponential_full_jitter"},
      {"retry_backoff_factor", real_key{&rc::retry_backoff_factor, 1.0, 100.0, false, "ratio"},
       "growth of the retry delay per retry for the exponential policies"},
      {"task_retry_delay_max", duration(&rc::task_retry_delay_max_ms, 0, day_ms),
       "cap of the exponential retry delay"},
      {"non_retryable_errors", list_key{&rc::non_retryable_errors},
       "error types that fail a task at once, without retry"},
      {"task_timeout", duration(&rc::task_timeout_ms, 0),
       "an attempt without an outcome this long fails (rrh.TaskTimeout, retryable); 0 = never"},
      // Episodes.
      {"error_window", duration(&rc::error_window_ms, 0),
       "count only errors this recent toward error_threshold; 0 counts the whole episode"},
      {"shutdown_grace", duration(&rc::shutdown_grace_ms, 0, day_ms),
       "after an episode shutdown, how long agents get to leave"},
      {"episode_timeout", duration(&rc::episode_timeout_ms, 0),
       "an episode still running this long is shut down and ends aborted; 0 = never"},
      // Failure detection.
      {"failure_detector", enum_key<detector_mode>{&rc::failure_detector},
       "how silence is judged: phi_accrual or missed_heartbeats"},
      {"phi_suspect_threshold", real_key{&rc::phi_suspect_threshold, 0.0, 1000.0, true, "ratio"},
       "phi at which an agent becomes suspect"},
      {"phi_threshold", real_key{&rc::phi_threshold, 0.0, 1000.0, true, "ratio"},
       "phi at which an agent is dead"},
      {"acceptable_pause", duration(&rc::acceptable_pause_ms, 0, day_ms),
       "heartbeat pause tolerated before phi rises"},
      {"min_std_deviation", duration(&rc::min_std_deviation_ms, 1, hour_ms),
       "floor of the heartbeat interval deviation in the phi estimate"},
      {"missed_heartbeats_suspect", count(&rc::missed_heartbeats_suspect, 1, 1000),
       "missed_heartbeats mode: missed intervals before an agent is suspect"},
      {"missed_heartbeats_dead", count(&rc::missed_heartbeats_dead, 1, 1000),
       "missed_heartbeats mode: missed intervals before an agent is dead"},
      {"stale_grace", duration(&rc::stale_grace_ms, 0, day_ms),
       "how long an agent may stay stale (hung) before it is dead"},
      {"probe_timeout", duration(&rc::probe_timeout_ms, 1, day_ms),
       "a probe unanswered this long counts as slow"},
      {"probe_slow", duration(&rc::probe_slow_ms, 1, day_ms),
       "a probe answered slower than this makes the agent suspect"},
      // Recovery.
      {"recovery_timeout", duration(&rc::recovery_timeout_ms, 1, day_ms),
       "a recovery not confirmed within this time has failed"},
      {"recovery_rate_per_s", real_key{&rc::recovery_rate_per_s, 0.0, 1'000'000.0, true, "1/s"},
       "fleet-wide pace of agent recoveries, per second"},
      {"recovery_burst", count(&rc::recovery_burst, 1, 1'000'000),
       "recoveries allowed at once before the pace applies"},
      {"recovery_reset_after", duration(&rc::recovery_reset_after_ms, 0),
       "healthy this long resets an agent's recovery attempts"},
      // Disruption guard.
      {"disruption_threshold", real_key{&rc::disruption_threshold, 0.0, 1.0, true, "ratio"},
       "share of the known nodes silent at once above which the fleet is disrupted and recoveries slow"},
      {"disruption_recovery_rate_per_s", real_key{&rc::disruption_recovery_rate_per_s, 0.0, 1'000'000.0, false, "1/s"},
       "pace of recoveries while the fleet is disrupted, per second; 0 pauses them"},
      {"disruption_min_nodes", count(&rc::disruption_min_nodes, 1),
       "fleets of fewer known nodes are judged node by node, never as disrupted"},
      {"disruption_window", duration(&rc::disruption_window_ms, 1, day_ms),
       "nodes falling silent within this long of each other count together toward a disruption"},
      // Command delivery.
      {"command_retransmit_initial", duration(&rc::command_retransmit_initial_ms, 1, hour_ms),
       "first retransmission delay of an unacknowledged command"},
      {"command_retransmit_max", duration(&rc::command_retransmit_max_ms, 1, day_ms),
       "cap of the doubling retransmission delay of a command"},
      // Limits.
      {"max_agents", count(&rc::max_agents, 1), "agents tracked at once"},
      {"max_nodes", count(&rc::max_nodes, 1), "agent nodes tracked at once"},
      {"max_tasks_per_agent", count(&rc::max_tasks_per_agent, 1),
       "unfinished tasks tracked per agent"},
      {"max_tasks", count(&rc::max_tasks, 1), "unfinished tasks tracked in all"},
      {"max_pending_commands", count(&rc::max_pending_commands, 1),
       "commands awaiting acknowledgement at once"},
      {"max_episodes", count(&rc::max_episodes, 1), "episodes tracked at once"},
      {"node_retention", duration(&rc::node_retention_ms, 0),
       "a node dead or gone this long is forgotten with its agents; 0 = never"},
      {"episode_retention", duration(&rc::episode_retention_ms, 0),
       "an ended episode is kept this long, then removed; 0 = until max_episodes needs the room"},
      {"jitter_seed", count(&rc::jitter_seed, 0, std::numeric_limits<std::int64_t>::max()),
       "seed of the retry jitter generator, for reproducible runs"},
  });
  return table;
}

const key_entry* find_key(std::string_view name) {
  for (const auto& entry : key_table()) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

// --- Small helpers ------------------------------------------------------------------------

error key_error(std::string_view key, const std::string& problem) {
  return make_error(errc::config, std::string(key) + ": " + problem);
}

/// Shortest text that reads back as the same double ("60", "0.25", "1e+21").
std::string format_number(double value) {
  std::array<char, 64> buffer{};
  const auto [end, failure] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  if (failure != std::errc{}) return "?";
  return std::string(buffer.data(), end);
}

std::string describe_duration(std::uint64_t ms) {
  return format_number(static_cast<double>(ms) / static_cast<double>(second_ms)) + " s";
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view blanks = " \t\r\n";
  const auto first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(blanks);
  return text.substr(first, last - first + 1);
}

const char* type_name(const setting_value& value) {
  switch (value.index()) {
    case 0: return "an integer";
    case 1: return "a number";
    case 2: return "a boolean";
    default: return "a string";
  }
}

/// Seconds (possibly fractional) times `unit_ms`, rounded to whole milliseconds.
expected<std::uint64_t> scale_to_ms(double amount, double unit_ms) {
  if (!std::isfinite(amount)) return make_error(errc::config, "duration is not a finite number");
  if (amount < 0) return make_error(errc::config, "duration must not be negative");
  const double ms = std::round(amount * unit_ms);
  // 2^63 is exactly representable; anything at or above it would not fit.
  if (!(ms < 9'223'372'036'854'775'808.0)) return make_error(errc::config, "duration is too large");
  return static_cast<std::uint64_t>(ms);
}

expected<std::uint64_t> parse_duration_text(std::string_view raw) {
  const std::string_view text = trim(raw);
  std::string quoted;  // appended, not "'" + ... + "'": g++ 12 warns falsely on that (-Wrestrict)
  quoted.reserve(raw.size() + 2);
  quoted.append(1, '\'').append(raw).append(1, '\'');
  if (text.empty()) return make_error(errc::config, "duration is empty");
  // std::from_chars would also take "inf", "nan" and hexadecimal; a duration starts
  // with a digit or a point.
  if (!(text.front() == '.' || (text.front() >= '0' && text.front() <= '9'))) {
    return make_error(errc::config, "duration " + quoted +
                                        " is not a number with an optional "
                                        "unit (ms, s, m, h)");
  }
  double amount = 0;
  const auto [number_end, failure] =
      std::from_chars(text.data(), text.data() + text.size(), amount);
  if (failure == std::errc::result_out_of_range) {
    return make_error(errc::config, "duration " + quoted + " is too large");
  }
  if (failure != std::errc{}) {
    return make_error(errc::config, "duration " + quoted + " is not a number");
  }
  const std::string_view unit =
      trim(std::string_view(number_end, text.data() + text.size() - number_end));
  double unit_ms = 0;
  if (unit.empty() || unit == "s") {
    unit_ms = second_ms;
  } else if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "m") {
    unit_ms = minute_ms;
  } else if (unit == "h") {
    unit_ms = hour_ms;
  } else {
    return make_error(errc::config, "duration " + quoted + " has unknown unit '" +
                                        std::string(unit) + "' (use ms, s, m or h)");
  }
  return scale_to_ms(amount, unit_ms);
}

expected<std::uint64_t> parse_count(const setting_value& value) {
  if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    if (*integer < 0)
      return make_error(errc::config, "must not be negative, got " + std::to_string(*integer));
    return static_cast<std::uint64_t>(*integer);
  }
  if (const auto* real = std::get_if<double>(&value)) {
    // 3.0 is a whole number; 2.5 or 1e300 is not a count.
    if (std::isfinite(*real) && *real >= 0 && *real < 9.0e18 && std::floor(*real) == *real) {
      return static_cast<std::uint64_t>(*real);
    }
    return make_error(errc::config,
                      "must be a non-negative whole number, got " + format_number(*real));
  }
  return make_error(errc::config, std::string("must be a whole number, got ") + type_name(value));
}

expected<double> parse_real(const setting_value& value) {
  if (const auto* integer = std::get_if<std::int64_t>(&value)) return static_cast<double>(*integer);
  if (const auto* real = std::get_if<double>(&value)) return *real;
  return make_error(errc::config, std::string("must be a number, got ") + type_name(value));
}

template <class Enum>
expected<Enum> parse_enum(const setting_value& value) {
  std::string names;
  for (const Enum candidate : enum_values<Enum>()) {
    if (!names.empty()) names += ", ";
    names += to_string(candidate);
  }
  const auto* text = std::get_if<std::string>(&value);
  if (text == nullptr) {
    return make_error(errc::config,
                      std::string("must be one of ") + names + ", got " + type_name(value));
  }
  for (const Enum candidate : enum_values<Enum>()) {
    if (*text == to_string(candidate)) return candidate;
  }
  return make_error(errc::config, "must be one of " + names + ", got '" + *text + "'");
}

expected<std::vector<std::string>> parse_list(const setting_value& value) {
  const auto* text = std::get_if<std::string>(&value);
  if (text == nullptr) {
    return make_error(errc::config,
                      std::string("must be a list of names or a comma-separated string, got ") +
                          type_name(value));
  }
  std::vector<std::string> items;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return items;
}

// --- Range checks, shared by set_config_key and validate ----------------------------------

status check_range(const duration_key& kind, std::uint64_t ms) {
  if (ms < kind.min_ms || ms > kind.max_ms) {
    return make_error(errc::config, "must be between " + describe_duration(kind.min_ms) + " and " +
                                        describe_duration(kind.max_ms) + ", got " +
                                        describe_duration(ms));
  }
  return ok();
}

status check_range(const count_key& kind, std::uint64_t number) {
  if (number < kind.min || number > kind.max) {
    return make_error(errc::config, "must be between " + std::to_string(kind.min) + " and " +
                                        std::to_string(kind.max) + ", got " +
                                        std::to_string(number));
  }
  return ok();
}

status check_range(const real_key& kind, double number) {
  const bool above_min = kind.min_exclusive ? number > kind.min : number >= kind.min;
  if (!(above_min && number <= kind.max)) {  // also rejects NaN
    return make_error(errc::config, std::string("must be ") +
                                        (kind.min_exclusive ? "above " : "at least ") +
                                        format_number(kind.min) + " and at most " +
                                        format_number(kind.max) + ", got " + format_number(number));
  }
  return ok();
}

template <class Enum>
status check_range(const enum_key<Enum>&, Enum value) {
  for (const Enum candidate : enum_values<Enum>()) {
    if (value == candidate) return ok();
  }
  return make_error(errc::config, "holds no known value");
}

status check_range(const list_key&, const std::vector<std::string>& items) {
  if (items.size() > list_length_max) {
    return make_error(errc::config, "holds " + std::to_string(items.size()) + " names, at most " +
                                        std::to_string(list_length_max) + " are allowed");
  }
  for (const auto& item : items) {
    if (item.empty() || item.size() > text_length_max || item.find(',') != std::string::npos) {
      return make_error(errc::config, "names must be non-empty, without ',' and at most " +
                                          std::to_string(text_length_max) + " bytes");
    }
  }
  return ok();
}

/// Parses `value` as the kind's type (the right parser chosen by overload).
expected<std::uint64_t> parse_as(const duration_key&, const setting_value& value) {
  return parse_duration_ms(value);
}
expected<std::uint64_t> parse_as(const count_key&, const setting_value& value) {
  return parse_count(value);
}
expected<double> parse_as(const real_key&, const setting_value& value) { return parse_real(value); }
template <class Enum>
expected<Enum> parse_as(const enum_key<Enum>&, const setting_value& value) {
  return parse_enum<Enum>(value);
}
expected<std::vector<std::string>> parse_as(const list_key&, const setting_value& value) {
  return parse_list(value);
}

}  // namespace

// --- Public functions ---------------------------------------------------------------------

expected<std::uint64_t> parse_duration_ms(const setting_value& value) {
  if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    if (*integer < 0) return make_error(errc::config, "duration must not be negative");
    const auto seconds = static_cast<std::uint64_t>(*integer);
    if (seconds > std::numeric_limits<std::int64_t>::max() / second_ms) {
      return make_error(errc::config, "duration is too large");
    }
    return seconds * second_ms;
  }
  if (const auto* real = std::get_if<double>(&value)) return scale_to_ms(*real, second_ms);
  if (const auto* text = std::get_if<std::string>(&value)) return parse_duration_text(*text);
  return make_error(errc::config,
                    "a duration must be a number of seconds or a string such as "
                    "'250ms', got a boolean");
}

const std::vector<config_key_info>& config_keys() {
  static const std::vector<config_key_info> keys = [] {
    std::vector<config_key_info> result;
    result.reserve(key_table().size());
    for (const auto& entry : key_table()) {
      result.push_back({entry.name, unit_of(entry.access), entry.meaning, entry.from_seed});
    }
    return result;
  }();
  return keys;
}

status set_config_key(resilience_config& config, std::string_view key, const setting_value& value) {
  const key_entry* entry = find_key(key);
  if (entry == nullptr) return key_error(key, "unknown key");
  return std::visit(
      [&](const auto& kind) -> status {
        auto parsed = parse_as(kind, value);
        if (!parsed) return key_error(key, parsed.error().detail);
        if (auto in_range = check_range(kind, *parsed); !in_range) {
          return key_error(key, in_range.error().detail);
        }
        config.*kind.member = std::move(parsed).value();
        return ok();
      },
      entry->access);
}

setting_value get_config_key(const resilience_config& config, std::string_view key) {
  const key_entry* entry = find_key(key);
  if (entry == nullptr) return std::string{};
  return std::visit(
      [&](const auto& kind) -> setting_value {
        using kind_t = std::decay_t<decltype(kind)>;
        const auto& field = config.*kind.member;
        if constexpr (std::is_same_v<kind_t, duration_key>) {
          return static_cast<double>(field) / static_cast<double>(second_ms);
        } else if constexpr (std::is_same_v<kind_t, count_key>) {
          // Counts above the int64 range fail validate(); saturate rather than wrap.
          constexpr auto int64_max =
              static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
          return static_cast<std::int64_t>(field < int64_max ? field : int64_max);
        } else if constexpr (std::is_same_v<kind_t, real_key>) {
          return field;
        } else if constexpr (std::is_same_v<kind_t, list_key>) {
          std::string joined;
          for (const auto& item : field) {
            if (!joined.empty()) joined += ',';
            joined += item;
          }
          return joined;
        } else {
          return std::string(to_string(field));
        }
      },
      entry->access);
}

status resilience_config::validate() const {
  for (const auto& entry : key_table()) {
    auto in_range = std::visit(
        [&](const auto& kind) { return check_range(kind, this->*kind.member); }, entry.access);
    if (!in_range) return key_error(entry.name, in_range.error().detail);
  }
  // Relations between keys; the error names the key a reader would change.
  if (task_retry_delay_max_ms < task_retry_delay_ms) {
    return key_error("task_retry_delay_max", "must be at least task_retry_delay (" +
                                                 describe_duration(task_retry_delay_ms) +
                                                 "), got " +
                                                 describe_duration(task_retry_delay_max_ms));
  }
  if (phi_suspect_threshold > phi_threshold) {
    return key_error("phi_suspect_threshold", "must be at most phi_threshold (" +
                                                  format_number(phi_threshold) + "), got " +
                                                  format_number(phi_suspect_threshold));
  }
  if (missed_heartbeats_suspect > missed_heartbeats_dead) {
    return key_error("missed_heartbeats_suspect", "must be at most missed_heartbeats_dead (" +
                                                      std::to_string(missed_heartbeats_dead) +
                                                      "), got " +
                                                      std::to_string(missed_heartbeats_suspect));
  }
  if (probe_slow_ms > probe_timeout_ms) {
    return key_error("probe_slow", "must be at most probe_timeout (" +
                                       describe_duration(probe_timeout_ms) + "), got " +
                                       describe_duration(probe_slow_ms));
  }
  if (command_retransmit_initial_ms > command_retransmit_max_ms) {
    return key_error("command_retransmit_initial",
                     "must be at most command_retransmit_max (" +
                         describe_duration(command_retransmit_max_ms) + "), got " +
                         describe_duration(command_retransmit_initial_ms));
  }
  return ok();
}

expected<resilience_config> apply_overrides(const resilience_config& base,
                                            const settings& overrides) {
  resilience_config result = base;
  for (const auto& [key, value] : overrides) {
    if (auto applied = set_config_key(result, key, value); !applied) return applied.error();
  }
  if (auto valid = result.validate(); !valid) return valid.error();
  return result;
}

}  // namespace rrh::engine
