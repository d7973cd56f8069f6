// The control socket's answers: every request gives {"ok":true,"data":…} of the documented
// shape, read from a real engine fed by hand; bad requests, unknown ids and huge fleets
// give documented errors and bounded lists.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "control.hpp"
#include "json_reader.hpp"
#include "rrh/engine/config.hpp"
#include "rrh/engine/engine.hpp"

namespace {

using rrh::ctl::json_value;
using rrh::processor::answer_control;
using rrh::processor::processor_status;

constexpr std::uint64_t start_ms = 1'700'000'000'000;
constexpr std::uint64_t incarnation = 7;

/// A node that numbers its critical events 1, 2, 3… as a shim does.
class node_feed {
 public:
  node_feed(rrh::engine::engine& engine, std::string node)
      : engine_(engine), node_(std::move(node)) {}

  void send(rrh::event_body body, const std::string& episode, std::uint64_t now_ms) {
    rrh::event message;
    message.header.node = node_;
    message.header.incarnation = incarnation;
    message.header.seq = ++seq_;
    message.header.ts_ms = now_ms;
    message.header.episode = episode;
    message.body = std::move(body);
    rrh::engine::effects out;
    engine_.on_event(message, now_ms, out);
  }

 private:
  rrh::engine::engine& engine_;
  std::string node_;
  std::uint64_t seq_ = 0;
};

processor_status status_at(std::uint64_t now_ms) {
  processor_status status;
  status.node_id = "processor-1";
  status.state_path = "/var/lib/rrh/state.sqlite";
  status.uptime_ms = 12'345;
  status.events_received = 41;
  status.events_malformed = 2;
  status.batches_committed = 9;
  status.store_commit_us_last = 480;
  status.commands_sent = 3;
  status.derived_events_published = 5;
  status.version = "0.1.0";
  status.now_ms = now_ms;
  return status;
}

/// Parses a reply and checks its envelope: {"ok":true,"data":…} or {"ok":false,"error":…}.
json_value parse_reply(const std::string& reply) {
  auto parsed = rrh::ctl::parse_json(reply);
  INFO(reply);
  REQUIRE(parsed.has_value());
  REQUIRE(parsed->is_object());
  const auto* ok = parsed->find("ok");
  REQUIRE(ok != nullptr);
  REQUIRE(ok->type == json_value::kind::boolean);
  REQUIRE(parsed->members.size() == 2);
  REQUIRE(parsed->members[1].key == (ok->boolean ? "data" : "error"));
  return std::move(*parsed);
}

/// The `data` of a successful reply.
json_value data_of(const std::string& reply) {
  auto parsed = parse_reply(reply);
  INFO(reply);
  REQUIRE(parsed.find("ok")->boolean);
  return *parsed.find("data");
}

/// The error text of a failed reply.
std::string error_of(const std::string& reply) {
  auto parsed = parse_reply(reply);
  INFO(reply);
  REQUIRE_FALSE(parsed.find("ok")->boolean);
  const auto* error = parsed.find("error");
  REQUIRE(error->is_string());
  return error->text;
}

std::string text_at(const json_value& object, std::string_view key) {
  const auto* value = object.find(key);
  INFO("key " << key << " in " << rrh::ctl::to_json(object));
  REQUIRE(value != nullptr);
  REQUIRE(value->is_string());
  return value->text;
}

std::uint64_t number_at(const json_value& object, std::string_view key) {
  const auto* value = object.find(key);
  INFO("key " << key << " in " << rrh::ctl::to_json(object));
  REQUIRE(value != nullptr);
  REQUIRE(value->as_u64().has_value());
  return *value->as_u64();
}

std::vector<std::string> keys_of(const json_value& object) {
  std::vector<std::string> keys;
  for (const auto& member : object.members) keys.push_back(member.key);
  return keys;
}

/// An engine that has seen: agents a-1 (pool p, in episode e-1) and a-2 on node n-1;
/// episode e-1 started with an override; task t-1 of a-1 failed with a checkpoint;
/// episode e-2 started and ended.
struct fed_engine {
  rrh::engine::engine engine{rrh::engine::resilience_config{}};
  node_feed feed{engine, "n-1"};
  std::uint64_t now_ms = start_ms;

  fed_engine() {
    feed.send(
        rrh::events::episode_started{"demo", {"a-1"}, {{"max_recovery_attempts", std::int64_t{4}}}},
        "e-1", now_ms);
    feed.send(rrh::events::agent_registered{"a-1", "p", {}, "", 5000}, "e-1", now_ms);
    feed.send(rrh::events::agent_registered{"a-2", "", {}, "sup-1", 0}, "", now_ms);
    now_ms += 2500;
    rrh::events::task_failed failed;
    failed.task = "t-1";
    failed.agent = "a-1";
    failed.error_type = "Timeout";
    failed.message = "took \"too\" long";
    failed.checkpoint = {1, 2, 3};
    feed.send(failed, "e-1", now_ms);
    feed.send(rrh::events::episode_started{"short", {}, {}}, "e-2", now_ms);
    now_ms += 1000;
    feed.send(rrh::events::episode_ended{"completed"}, "e-2", now_ms);
    now_ms += 500;
  }

  std::string ask(std::string_view request) const {
    return answer_control(engine, status_at(now_ms), request);
  }
};

}  // namespace

TEST_CASE("agents lists every agent with every field, states by name, in id order", "[control]") {
  const fed_engine fed;
  const auto data = data_of(fed.ask("agents"));
  CHECK(number_at(data, "total") == 2);
  CHECK_FALSE(data.find("truncated")->boolean);
  const auto* agents = data.find("agents");
  REQUIRE(agents->is_array());
  REQUIRE(agents->items.size() == 2);
  const auto& first = agents->items[0];
  CHECK(keys_of(first) ==
        std::vector<std::string>{"agent", "node", "pool", "supervisor", "episode", "state",
                                 "watchdog_timeout_ms", "recovery_attempts", "last_recovery_ms",
                                 "state_since_ms", "registered_ms", "probe_rtt_avg_ms",
                                 "probe_rtt_max_ms", "probes_answered"});
  CHECK(text_at(first, "agent") == "a-1");
  CHECK(text_at(first, "node") == "n-1");
  CHECK(text_at(first, "pool") == "p");
  CHECK(text_at(first, "episode") == "e-1");
  CHECK(text_at(first, "state") == "healthy");
  CHECK(number_at(first, "watchdog_timeout_ms") == 5000);
  CHECK(number_at(first, "registered_ms") == start_ms);
  CHECK(text_at(agents->items[1], "agent") == "a-2");
  CHECK(text_at(agents->items[1], "supervisor") == "sup-1");
}

TEST_CASE("agent ID answers one agent, or an error naming the missing id", "[control]") {
  const fed_engine fed;
  SECTION("known") {
    const auto agent = data_of(fed.ask("agent a-2"));
    CHECK(text_at(agent, "agent") == "a-2");
    CHECK(text_at(agent, "episode").empty());
    CHECK(agent.members.size() == 14);
  }
  SECTION("unknown") { CHECK(error_of(fed.ask("agent a-9")) == "no agent 'a-9'"); }
  SECTION("surrounding blanks are ignored") {
    CHECK(text_at(data_of(fed.ask("  agent\ta-1 \n")), "agent") == "a-1");
  }
}

TEST_CASE("tasks and task ID show the checkpoint's size, not its bytes", "[control]") {
  const fed_engine fed;
  const auto data = data_of(fed.ask("tasks"));
  CHECK(number_at(data, "total") == 1);
  const auto& task = data.find("tasks")->items.at(0);
  CHECK(keys_of(task) == std::vector<std::string>{"task", "agent", "pool", "episode", "state",
                                                  "attempt", "failures", "retry_due_ms",
                                                  "last_error_type", "last_error_message",
                                                  "checkpoint_bytes"});
  CHECK(text_at(task, "task") == "t-1");
  CHECK(text_at(task, "agent") == "a-1");
  CHECK(text_at(task, "episode") == "e-1");
  CHECK(text_at(task, "state") == "retry_scheduled");
  CHECK(number_at(task, "failures") == 1);
  CHECK(number_at(task, "retry_due_ms") >= start_ms + 2500);
  CHECK(text_at(task, "last_error_type") == "Timeout");
  CHECK(text_at(task, "last_error_message") == "took \"too\" long");
  CHECK(number_at(task, "checkpoint_bytes") == 3);

  CHECK(rrh::ctl::to_json(data_of(fed.ask("task t-1"))) == rrh::ctl::to_json(task));
  CHECK(error_of(fed.ask("task t-2")) == "no task 't-2'");
}

TEST_CASE("episodes carry their summary counters and a duration to the end or to now",
          "[control]") {
  const fed_engine fed;
  const auto data = data_of(fed.ask("episodes"));
  CHECK(number_at(data, "total") == 2);
  const auto& items = data.find("episodes")->items;
  REQUIRE(items.size() == 2);
  const auto& running = items[0];
  const auto& ended = items[1];
  CHECK(keys_of(running) ==
        std::vector<std::string>{"episode", "name", "state", "status", "started_ms", "ended_ms",
                                 "duration_ms", "shutdown_deadline_ms", "errors",
                                 "errors_in_window", "recoveries_attempted", "recoveries_succeeded",
                                 "tasks_failed", "tasks_retried", "tasks_recovered",
                                 "tasks_abandoned", "agents_seen", "overrides"});
  CHECK(text_at(running, "episode") == "e-1");
  CHECK(text_at(running, "name") == "demo");
  CHECK(text_at(running, "state") == "running");
  CHECK(number_at(running, "duration_ms") == 4000);  // still running: up to now
  CHECK(number_at(running, "tasks_failed") == 1);
  CHECK(number_at(running, "agents_seen") == 1);
  CHECK(rrh::ctl::to_json(*running.find("overrides")) == R"({"max_recovery_attempts":4})");
  CHECK(running.find("agents") == nullptr);  // only the single-episode answer lists them

  CHECK(text_at(ended, "episode") == "e-2");
  CHECK(text_at(ended, "state") == "ended");
  CHECK(text_at(ended, "status") == "completed");
  CHECK(number_at(ended, "duration_ms") == 1000);  // ended: up to its end, not now

  SECTION("episode ID adds the agents it has seen") {
    const auto episode = data_of(fed.ask("episode e-1"));
    CHECK(rrh::ctl::to_json(*episode.find("agents")) == R"(["a-1"])");
    CHECK(episode.find("agents_truncated") == nullptr);
  }
  SECTION("unknown episode") { CHECK(error_of(fed.ask("episode e-3")) == "no episode 'e-3'"); }
}

TEST_CASE("status joins the shell's counters, the engine's counters and counts by state",
          "[control]") {
  const fed_engine fed;
  const auto data = data_of(fed.ask("status"));
  CHECK(text_at(data, "node_id") == "processor-1");
  CHECK(text_at(data, "version") == "0.1.0");
  CHECK(text_at(data, "state_path") == "/var/lib/rrh/state.sqlite");
  CHECK(number_at(data, "now_ms") == fed.now_ms);
  CHECK(number_at(data, "uptime_ms") == 12'345);
  const auto& processor = *data.find("processor");
  CHECK(number_at(processor, "events_received") == 41);
  CHECK(number_at(processor, "events_malformed") == 2);
  CHECK(number_at(processor, "batches_committed") == 9);
  CHECK(number_at(processor, "store_commit_us_last") == 480);
  CHECK(number_at(processor, "commands_sent") == 3);
  CHECK(number_at(processor, "derived_events_published") == 5);
  const auto& engine = *data.find("engine");
  CHECK(number_at(engine, "events_applied") == 6);
  CHECK(engine.members.size() == 19);
  CHECK(number_at(data, "nodes") == 1);
  // What an operator reads first: the store, whether the processor judges, the fleet, ingest.
  CHECK(text_at(*data.find("store"), "state") == "ok");
  CHECK(text_at(*data.find("sight"), "state") == "sees");
  CHECK(text_at(*data.find("disruption"), "mode") == "normal");
  CHECK(number_at(*data.find("disruption"), "nodes") == 1);
  CHECK(text_at(*data.find("ingest"), "backlog") == "no");

  const auto& agents = *data.find("agents");
  CHECK(number_at(agents, "total") == 2);
  const auto& agents_by_state = *agents.find("by_state");
  CHECK(keys_of(agents_by_state) == std::vector<std::string>{"registered", "healthy", "suspect",
                                                             "dead", "recovering", "quarantined",
                                                             "left"});
  CHECK(number_at(agents_by_state, "healthy") == 2);
  const auto& tasks = *data.find("tasks");
  CHECK(number_at(tasks, "total") == 1);
  CHECK(number_at(*tasks.find("by_state"), "retry_scheduled") == 1);
  const auto& episodes = *data.find("episodes");
  CHECK(number_at(episodes, "total") == 2);
  CHECK(number_at(*episodes.find("by_state"), "running") == 1);
  CHECK(number_at(*episodes.find("by_state"), "ended") == 1);
  CHECK(number_at(data, "pending_commands") == fed.engine.pending_count());
  CHECK(number_at(data, "timers") == fed.engine.timer_count());
  CHECK(number_at(data, "next_command_id") == fed.engine.next_command_id());
}

TEST_CASE("config lists every key with value, unit, meaning and seed flag", "[control]") {
  const fed_engine fed;
  const auto data = data_of(fed.ask("config"));
  REQUIRE(data.is_array());
  const auto& keys = rrh::engine::config_keys();
  REQUIRE(data.items.size() == keys.size());
  std::size_t seed_keys = 0;
  for (std::size_t index = 0; index < keys.size(); ++index) {
    const auto& entry = data.items[index];
    CHECK(keys_of(entry) == std::vector<std::string>{"key", "value", "unit", "meaning", "seed"});
    CHECK(text_at(entry, "key") == keys[index].name);
    CHECK(text_at(entry, "unit") == keys[index].unit);
    CHECK(text_at(entry, "meaning") == keys[index].meaning);
    CHECK(entry.find("seed")->boolean == keys[index].from_seed);
    if (keys[index].from_seed) ++seed_keys;
  }
  CHECK(seed_keys == 5);
  const auto value_of = [&data](std::string_view key) {
    for (const auto& entry : data.items) {
      if (entry.find("key")->text == key) return entry.find("value")->display();
    }
    return std::string("(missing)");
  };
  CHECK(value_of("max_recovery_attempts") == "3");
  CHECK(value_of("task_retry_delay") == "30.0");  // seconds, as in the configuration file
  CHECK(value_of("failure_detector") == "phi_accrual");
  CHECK(value_of("phi_threshold") == "8.0");
}

TEST_CASE("help lists the requests", "[control]") {
  const fed_engine fed;
  const auto data = data_of(fed.ask("help"));
  std::vector<std::string> listed;
  for (const auto& entry : data.items) listed.push_back(text_at(entry, "request"));
  CHECK(listed == std::vector<std::string>{"status", "agents", "tasks", "episodes", "agent ID",
                                           "task ID", "episode ID", "config", "help"});
}

TEST_CASE("bad requests are errors that say what is valid", "[control]") {
  const fed_engine fed;
  SECTION("unknown word") {
    const auto error = error_of(fed.ask("nodes"));
    CHECK(error ==
          "unknown request 'nodes'; valid requests: status, agents, tasks, episodes, agent ID, "
          "task ID, episode ID, config, help");
  }
  SECTION("empty") {
    CHECK(error_of(fed.ask(" ")).rfind("empty request; valid requests: ", 0) == 0);
  }
  SECTION("missing id") {
    CHECK(error_of(fed.ask("agent")) == "'agent' needs exactly one id: agent ID");
  }
  SECTION("extra words") {
    CHECK(error_of(fed.ask("task t-1 t-2")) == "'task' needs exactly one id: task ID");
    CHECK(error_of(fed.ask("status now")) == "'status' takes no argument");
  }
  SECTION("case matters") {
    CHECK(error_of(fed.ask("STATUS")).rfind("unknown request 'STATUS'", 0) == 0);
  }
  SECTION("control bytes and long text are not echoed raw") {
    const auto error = error_of(fed.ask(std::string("x\x01\xff") + std::string(100, 'y')));
    CHECK(error.rfind("unknown request 'x??" + std::string(61, 'y') + "...'", 0) == 0);
  }
  SECTION("over the size limit") {
    const std::string huge(rrh::processor::control_request_bytes_max + 1, 'a');
    CHECK(error_of(fed.ask(huge)) == "request of 1025 bytes is over the 1024-byte limit");
    // At the limit, the request is read (and here, unknown).
    const std::string at_limit(rrh::processor::control_request_bytes_max, 'a');
    CHECK(error_of(fed.ask(at_limit)).rfind("unknown request", 0) == 0);
  }
}

TEST_CASE("a list over the limit is cut to the first entries in id order and says so",
          "[control]") {
  rrh::engine::engine engine{rrh::engine::resilience_config{}};
  node_feed feed{engine, "n-big"};
  const auto limit = rrh::processor::control_list_entries_max;
  // Registered in descending id order, so that id order differs from arrival order.
  for (std::size_t index = limit + 1; index-- > 0;) {
    char id[32];
    std::snprintf(id, sizeof id, "a-%06zu", index);
    feed.send(rrh::events::agent_registered{id, "", {}, "", 0}, "", start_ms);
  }
  REQUIRE(engine.agent_count() == limit + 1);

  const auto data = data_of(answer_control(engine, status_at(start_ms), "agents"));
  CHECK(number_at(data, "total") == limit + 1);
  CHECK(data.find("truncated")->boolean);
  const auto& agents = data.find("agents")->items;
  REQUIRE(agents.size() == limit);
  CHECK(text_at(agents.front(), "agent") == "a-000000");
  CHECK(text_at(agents.back(), "agent") == "a-009999");
  CHECK(std::is_sorted(agents.begin(), agents.end(),
                       [](const json_value& left, const json_value& right) {
                         return left.find("agent")->text < right.find("agent")->text;
                       }));
  // The one left out is still reachable by id.
  CHECK(text_at(data_of(answer_control(engine, status_at(start_ms), "agent a-010000")), "agent") ==
        "a-010000");
}

TEST_CASE("a list exactly at the limit is not cut", "[control]") {
  const auto limit = rrh::processor::control_list_entries_max;
  rrh::engine::engine small{rrh::engine::resilience_config{}};
  node_feed small_feed{small, "n-small"};
  for (std::size_t index = 0; index < limit; ++index) {
    small_feed.send(rrh::events::agent_registered{"a-" + std::to_string(index), "", {}, "", 0}, "",
                    start_ms);
  }
  const auto full = data_of(answer_control(small, status_at(start_ms), "agents"));
  CHECK(number_at(full, "total") == limit);
  CHECK_FALSE(full.find("truncated")->boolean);
  CHECK(full.find("agents")->items.size() == limit);
}

TEST_CASE("an empty engine answers every request", "[control]") {
  const rrh::engine::engine engine{rrh::engine::resilience_config{}};
  for (const char* request : {"status", "agents", "tasks", "episodes", "config", "help"}) {
    INFO(request);
    const auto data = data_of(answer_control(engine, processor_status{}, request));
    CHECK((data.is_object() || data.is_array()));
  }
  CHECK(rrh::ctl::to_json(data_of(answer_control(engine, processor_status{}, "agents"))) ==
        R"({"total":0,"truncated":false,"agents":[]})");
}

TEST_CASE("status says when the store is degraded and why the processor judges nobody", "[control]") {
  rrh::engine::engine engine(rrh::engine::resilience_config{});
  auto status = status_at(1'700'000'100'000);
  status.store.degraded = true;
  status.store.reason = "commit failed: database or disk is full";
  status.store.since_wall_ms = 1'700'000'040'000;
  status.store.failures = 7;
  status.sight.store = true;
  status.sight.deaf = true;
  status.pump.echo_round_trip_ms = 1500;
  status.pump.input_backlog = true;
  engine.lose_sight(1'700'000'040'000, 1'700'000'100'000);
  const auto data = data_of(answer_control(engine, status, "status"));
  const auto& store = *data.find("store");
  CHECK(text_at(store, "state") == "degraded");
  CHECK(text_at(store, "reason") == "commit failed: database or disk is full");
  CHECK(number_at(store, "since_ms") == 1'700'000'040'000);
  CHECK(number_at(store, "failures") == 7);
  const auto& sight = *data.find("sight");
  CHECK(text_at(sight, "state") == "blind");
  CHECK(text_at(sight, "why") == "deaf,store");
  CHECK(number_at(*data.find("ingest"), "lag_ms") == 1500);
  CHECK(text_at(*data.find("ingest"), "backlog") == "yes");
}
