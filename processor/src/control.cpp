#include "control.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <functional>
#include <type_traits>
#include <variant>
#include <vector>

#include "rrh/engine/config.hpp"
#include "rrh/engine/state.hpp"
#include "rrh/json.hpp"

namespace rrh::processor {
namespace {

using rrh::engine::agent_record;
using rrh::engine::agent_state;
using rrh::engine::episode_record;
using rrh::engine::episode_state;
using rrh::engine::task_record;
using rrh::engine::task_state;

/// Longest piece of a bad request echoed back in an error, in bytes.
constexpr std::size_t echoed_request_bytes_max = 64;

// The help text below quotes the list limit.
static_assert(control_list_entries_max == 10'000);

/// Every request, in the order `help` lists them.
struct request_info {
  std::string_view request;
  std::string_view meaning;
};
constexpr std::array<request_info, 9> requests{{
    {"status", "processor and engine counters; agents, tasks and episodes by state"},
    {"agents", "every agent (at most 10000, in id order)"},
    {"tasks", "every tracked task (at most 10000, in id order)"},
    {"episodes", "every episode (at most 10000, in id order)"},
    {"agent ID", "one agent"},
    {"task ID", "one task"},
    {"episode ID", "one episode with the agents it has seen"},
    {"config", "every resilience key with its value, unit and meaning"},
    {"help", "this list"},
}};

// Every value of the state enums, for counts by state that always list each state.
constexpr std::array agent_states{
    agent_state::registered, agent_state::healthy,     agent_state::suspect, agent_state::dead,
    agent_state::recovering, agent_state::quarantined, agent_state::left};
constexpr std::array task_states{task_state::running, task_state::retry_scheduled,
                                 task_state::retrying, task_state::succeeded,
                                 task_state::abandoned};
constexpr std::array episode_states{episode_state::running, episode_state::shutting_down,
                                    episode_state::ended};

/// Writes one JSON object's members into `out`; the member functions are named by value
/// type so that a string literal never silently becomes a bool.
class object_writer {
 public:
  explicit object_writer(std::string& out) : out_(out) { out_ += '{'; }

  object_writer& number(std::string_view key, std::uint64_t value) {
    key_of(key) += std::to_string(value);
    return *this;
  }
  object_writer& text(std::string_view key, std::string_view value) {
    append_json_string(key_of(key), value);
    return *this;
  }
  object_writer& flag(std::string_view key, bool value) {
    key_of(key) += value ? "true" : "false";
    return *this;
  }
  object_writer& setting(std::string_view key, const setting_value& value) {
    append_json_setting(key_of(key), value);
    return *this;
  }
  /// Starts a member whose value the caller appends to the returned text.
  std::string& raw(std::string_view key) { return key_of(key); }
  void close() { out_ += '}'; }

 private:
  std::string& key_of(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    append_json_string(out_, key);
    out_ += ':';
    return out_;
  }
  std::string& out_;
  bool first_ = true;
};

std::string reply_ok(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 20);
  out += R"({"ok":true,"data":)";
  out += data;
  out += '}';
  return out;
}

std::string reply_error(std::string_view message) {
  std::string out = R"({"ok":false,"error":)";
  append_json_string(out, message);
  out += '}';
  return out;
}

/// A piece of client input fit to quote in an error: printable ASCII, bounded.
std::string echo(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, echoed_request_bytes_max)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte >= 0x20 && byte < 0x7f) ? c : '?';
  }
  if (text.size() > echoed_request_bytes_max) out += "...";
  return out;
}

std::string valid_requests() {
  std::string out;
  for (const auto& info : requests) {
    if (!out.empty()) out += ", ";
    out += info.request;
  }
  return out;
}

std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t position = 0;
  constexpr std::string_view blanks = " \t\r\n";
  while (true) {
    const auto start = text.find_first_not_of(blanks, position);
    if (start == std::string_view::npos) break;
    const auto end = std::min(text.find_first_of(blanks, start), text.size());
    words.push_back(text.substr(start, end - start));
    position = end;
  }
  return words;
}

void write_agent(std::string& out, const agent_record& agent) {
  object_writer(out)
      .text("agent", agent.agent)
      .text("node", agent.node)
      .text("pool", agent.pool)
      .text("supervisor", agent.supervisor)
      .text("episode", agent.episode)
      .text("state", to_string(agent.state))
      .number("watchdog_timeout_ms", agent.watchdog_timeout_ms)
      .number("recovery_attempts", agent.recovery_attempts)
      .number("last_recovery_ms", agent.last_recovery_ms)
      .number("state_since_ms", agent.state_since_ms)
      .number("registered_ms", agent.registered_ms)
      .number("probe_rtt_avg_ms", agent.probe_rtt_avg_ms)
      .number("probe_rtt_max_ms", agent.probe_rtt_max_ms)
      .number("probes_answered", agent.probes_answered)
      .close();
}

void write_task(std::string& out, const task_record& task) {
  object_writer(out)
      .text("task", task.task)
      .text("agent", task.agent)
      .text("pool", task.pool)
      .text("episode", task.episode)
      .text("state", to_string(task.state))
      .number("attempt", task.attempt)
      .number("failures", task.failures)
      .number("retry_due_ms", task.retry_due_ms)
      .text("last_error_type", task.last_error_type)
      .text("last_error_message", task.last_error_message)
      .number("checkpoint_bytes", task.checkpoint.size())
      .close();
}

std::uint64_t duration_ms(const episode_record& episode, std::uint64_t now_ms) {
  const auto end_ms = episode.state == episode_state::ended ? episode.ended_ms : now_ms;
  return end_ms > episode.started_ms ? end_ms - episode.started_ms : 0;
}

/// One episode; with `with_agents`, also the ids of the agents it has seen.
void write_episode(std::string& out, const episode_record& episode, std::uint64_t now_ms,
                   bool with_agents) {
  object_writer writer(out);
  writer.text("episode", episode.episode)
      .text("name", episode.name)
      .text("state", to_string(episode.state))
      .text("status", episode.status)
      .number("started_ms", episode.started_ms)
      .number("ended_ms", episode.ended_ms)
      .number("duration_ms", duration_ms(episode, now_ms))
      .number("shutdown_deadline_ms", episode.shutdown_deadline_ms)
      .number("errors", episode.errors)
      .number("errors_in_window", episode.error_times_ms.size())
      .number("recoveries_attempted", episode.recoveries_attempted)
      .number("recoveries_succeeded", episode.recoveries_succeeded)
      .number("tasks_failed", episode.tasks_failed)
      .number("tasks_retried", episode.tasks_retried)
      .number("tasks_recovered", episode.tasks_recovered)
      .number("tasks_abandoned", episode.tasks_abandoned)
      .number("agents_seen", episode.agents_seen.size());
  object_writer overrides(writer.raw("overrides"));
  for (const auto& [key, value] : episode.overrides) overrides.setting(key, value);
  overrides.close();
  if (with_agents) {
    auto& agents = writer.raw("agents");
    agents += '[';
    const auto shown = std::min(episode.agents_seen.size(), control_list_entries_max);
    for (std::size_t index = 0; index < shown; ++index) {
      if (index > 0) agents += ',';
      append_json_string(agents, episode.agents_seen[index]);
    }
    agents += ']';
    if (shown < episode.agents_seen.size()) writer.flag("agents_truncated", true);
  }
  writer.close();
}

/// {"total":N,"truncated":…,"<key>":[…]} with the first `control_list_entries_max` records
/// in id order. Only the shown records are sorted in full, so a huge fleet costs one pass
/// and a partition rather than a full sort.
template <class Record>
std::string write_list(std::string_view key,
                       const std::function<void(const std::function<void(const Record&)>&)>& visit,
                       std::string Record::*id,
                       const std::function<void(std::string&, const Record&)>& write) {
  std::vector<const Record*> records;
  visit([&records](const Record& record) { records.push_back(&record); });
  const auto by_id = [id](const Record* left, const Record* right) {
    return left->*id < right->*id;
  };
  const auto total = records.size();
  if (total > control_list_entries_max) {
    const auto limit = records.begin() + static_cast<std::ptrdiff_t>(control_list_entries_max);
    std::nth_element(records.begin(), limit, records.end(), by_id);
    records.erase(limit, records.end());
  }
  std::sort(records.begin(), records.end(), by_id);

  std::string out;
  out.reserve(64 + records.size() * 320);
  object_writer writer(out);
  writer.number("total", total).flag("truncated", total > records.size());
  auto& items = writer.raw(key);
  items += '[';
  bool first = true;
  for (const auto* record : records) {
    if (!first) items += ',';
    first = false;
    write(items, *record);
  }
  items += ']';
  writer.close();
  return out;
}

template <class State, std::size_t count>
void write_counts(object_writer& writer, std::string_view key, std::uint64_t total,
                  const std::array<State, count>& states,
                  const std::array<std::uint64_t, count>& by_state) {
  object_writer group(writer.raw(key));
  group.number("total", total);
  object_writer states_writer(group.raw("by_state"));
  for (std::size_t index = 0; index < count; ++index) {
    states_writer.number(to_string(states[index]), by_state[index]);
  }
  states_writer.close();
  group.close();
}

// The state arrays above are in enum order, so the engine's counts (indexed by the enum's
// value) line up with them.
template <class State, std::size_t count>
constexpr bool in_enum_order(const std::array<State, count>& states) {
  for (std::size_t index = 0; index < count; ++index) {
    if (static_cast<std::size_t>(states[index]) != index) return false;
  }
  return true;
}
static_assert(in_enum_order(agent_states) && in_enum_order(task_states) && in_enum_order(episode_states));

// O(1) in the size of the state: the engine keeps its counts by state as states change,
// so a status request at a million tasks costs what it costs at ten.
std::string write_status(const rrh::engine::engine& engine, const processor_status& status) {
  const auto& counts = engine.counts();
  const auto& agents_by_state = counts.agents;
  const auto& tasks_by_state = counts.tasks;
  const auto& episodes_by_state = counts.episodes;
  static_assert(std::tuple_size_v<std::decay_t<decltype(counts.agents)>> == agent_states.size());
  static_assert(std::tuple_size_v<std::decay_t<decltype(counts.tasks)>> == task_states.size());
  static_assert(std::tuple_size_v<std::decay_t<decltype(counts.episodes)>> == episode_states.size());
  const std::uint64_t nodes = engine.node_count();
  std::uint64_t episodes = 0;
  for (const auto count : episodes_by_state) episodes += count;

  std::string out;
  object_writer writer(out);
  writer.text("node_id", status.node_id)
      .text("version", status.version)
      .text("state_path", status.state_path)
      .number("now_ms", status.now_ms)
      .number("uptime_ms", status.uptime_ms);
  object_writer(writer.raw("processor"))
      .number("events_received", status.events_received)
      .number("events_malformed", status.events_malformed)
      .number("events_rejected", status.events_rejected)
      .number("batches_committed", status.batches_committed)
      .number("store_commit_us_last", status.store_commit_us_last)
      .number("commands_sent", status.commands_sent)
      .number("derived_events_published", status.derived_events_published)
      .close();
  {
    // The store: ok, or degraded with why and since when (store_guard.hpp).
    object_writer(writer.raw("store"))
        .text("state", status.store.degraded ? "degraded" : "ok")
        .text("reason", status.store.reason)
        .number("since_ms", static_cast<std::uint64_t>(std::max<std::int64_t>(status.store.since_wall_ms, 0)))
        .number("failures", status.store.failures)
        .number("recoveries", status.store.recoveries)
        .close();
    const auto& sight = status.sight;
    const bool blind = engine.blind();
    std::string why;
    for (const auto& [flag, name] : {std::pair{sight.stalled, "stalled"}, std::pair{sight.deaf, "deaf"},
                                     std::pair{sight.store, "store"}}) {
      if (!flag) continue;
      if (!why.empty()) why += ",";
      why += name;
    }
    object_writer(writer.raw("sight"))
        .text("state", blind ? "blind" : "sees")
        .text("why", blind && why.empty() ? "echo" : why)
        .number("stalls", status.pump.stalls)
        .number("longest_stall_ms", status.pump.longest_stall_ms)
        .number("deaf_spells", status.pump.deaf_spells)
        .number("echoes_sent", status.pump.echoes_sent)
        .number("echoes_heard", status.pump.echoes_heard)
        .close();
    object_writer(writer.raw("ingest"))
        .number("lag_ms", status.pump.echo_round_trip_ms)
        .text("backlog", status.pump.input_backlog ? "yes" : "no")
        .number("events_in_last_batch", status.pump.events_in_last_batch)
        .close();
    object_writer(writer.raw("disruption"))
        .text("mode", engine.disrupted() ? "disrupted" : "normal")
        .number("silent_nodes", engine.silent_node_count())
        .number("nodes", engine.node_count())
        .close();
  }
  const auto& stats = engine.stats();
  object_writer(writer.raw("engine"))
      .number("events_applied", stats.events_applied)
      .number("events_duplicate", stats.events_duplicate)
      .number("events_out_of_order", stats.events_out_of_order)
      .number("events_stale_incarnation", stats.events_stale_incarnation)
      .number("events_ignored", stats.events_ignored)
      .number("heartbeats", stats.heartbeats)
      .number("commands_issued", stats.commands_issued)
      .number("commands_retransmitted", stats.commands_retransmitted)
      .number("commands_acked", stats.commands_acked)
      .number("commands_refused", stats.commands_refused)
      .number("commands_dropped", stats.commands_dropped)
      .number("limit_rejections", stats.limit_rejections)
      .number("timers_fired", stats.timers_fired)
      .number("events_refused", stats.events_refused)
      .number("blind_spells", stats.blind_spells)
      .number("timers_held", stats.timers_held)
      .number("disruptions", stats.disruptions)
      .number("recoveries_undelivered", stats.recoveries_undelivered)
      .number("nodes_forgotten", stats.nodes_forgotten)
      .close();
  writer.number("nodes", nodes);
  write_counts(writer, "agents", engine.agent_count(), agent_states, agents_by_state);
  write_counts(writer, "tasks", engine.task_count(), task_states, tasks_by_state);
  write_counts(writer, "episodes", episodes, episode_states, episodes_by_state);
  writer.number("pending_commands", engine.pending_count())
      .number("timers", engine.timer_count())
      .number("next_command_id", engine.next_command_id());
  writer.close();
  return out;
}

std::string write_config(const rrh::engine::resilience_config& config) {
  std::string out = "[";
  bool first = true;
  for (const auto& key : rrh::engine::config_keys()) {
    if (!first) out += ',';
    first = false;
    object_writer(out)
        .text("key", key.name)
        .setting("value", rrh::engine::get_config_key(config, key.name))
        .text("unit", key.unit)
        .text("meaning", key.meaning)
        .flag("seed", key.from_seed)
        .close();
  }
  out += ']';
  return out;
}

std::string write_help() {
  std::string out = "[";
  bool first = true;
  for (const auto& info : requests) {
    if (!first) out += ',';
    first = false;
    object_writer(out).text("request", info.request).text("meaning", info.meaning).close();
  }
  out += ']';
  return out;
}

}  // namespace

std::string answer_control(const rrh::engine::engine& engine, const processor_status& status,
                           std::string_view request) {
  if (request.size() > control_request_bytes_max) {
    return reply_error("request of " + std::to_string(request.size()) + " bytes is over the " +
                       std::to_string(control_request_bytes_max) + "-byte limit");
  }
  const auto words = words_of(request);
  if (words.empty()) return reply_error("empty request; valid requests: " + valid_requests());
  const auto verb = words[0];

  const bool takes_id = verb == "agent" || verb == "task" || verb == "episode";
  const bool takes_nothing = verb == "status" || verb == "agents" || verb == "tasks" ||
                             verb == "episodes" || verb == "config" || verb == "help";
  if (!takes_id && !takes_nothing) {
    return reply_error("unknown request '" + echo(request) +
                       "'; valid requests: " + valid_requests());
  }
  if (takes_nothing && words.size() != 1) {
    return reply_error("'" + std::string(verb) + "' takes no argument");
  }
  if (takes_id && words.size() != 2) {
    return reply_error("'" + std::string(verb) + "' needs exactly one id: " + std::string(verb) +
                       " ID");
  }

  if (verb == "status") return reply_ok(write_status(engine, status));
  if (verb == "config") return reply_ok(write_config(engine.config()));
  if (verb == "help") return reply_ok(write_help());
  if (verb == "agents") {
    return reply_ok(write_list<agent_record>(
        "agents", [&engine](const auto& visit) { engine.for_each_agent(visit); },
        &agent_record::agent, write_agent));
  }
  if (verb == "tasks") {
    return reply_ok(write_list<task_record>(
        "tasks", [&engine](const auto& visit) { engine.for_each_task(visit); }, &task_record::task,
        write_task));
  }
  if (verb == "episodes") {
    return reply_ok(write_list<episode_record>(
        "episodes", [&engine](const auto& visit) { engine.for_each_episode(visit); },
        &episode_record::episode,
        [&status](std::string& out, const episode_record& episode) {
          write_episode(out, episode, status.now_ms, false);
        }));
  }

  const auto id = words[1];
  std::string out;
  if (verb == "agent") {
    const auto* agent = engine.agent(id);
    if (agent == nullptr) return reply_error("no agent '" + echo(id) + "'");
    write_agent(out, *agent);
  } else if (verb == "task") {
    const auto* task = engine.task(id);
    if (task == nullptr) return reply_error("no task '" + echo(id) + "'");
    write_task(out, *task);
  } else {
    const auto* episode = engine.episode(id);
    if (episode == nullptr) return reply_error("no episode '" + echo(id) + "'");
    write_episode(out, *episode, status.now_ms, true);
  }
  return reply_ok(out);
}

}  // namespace rrh::processor
