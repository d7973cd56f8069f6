// Restore after a processor restart: the state read back through the engine's accessors
// continues where it stopped — retries at their time, commands under their ids, command
// ids onward, and a fresh detection window for every node.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

// What the store would hold: everything the engine shows through its accessors.
snapshot take_snapshot(const rrh::engine::engine& source) {
  snapshot stored;
  source.for_each_node([&](const node_record& record) { stored.nodes.push_back(record); });
  source.for_each_agent([&](const agent_record& record) { stored.agents.push_back(record); });
  source.for_each_task([&](const task_record& record) { stored.tasks.push_back(record); });
  source.for_each_episode([&](const episode_record& record) { stored.episodes.push_back(record); });
  for (std::uint64_t id = 1; id < source.next_command_id(); ++id) {
    if (const auto* pending = source.pending(id)) stored.commands.push_back(*pending);
  }
  stored.next_command_id = source.next_command_id();
  return stored;
}

resilience_config restore_config() {
  auto config = quiet_config();
  config.retry_backoff = backoff_policy::fixed;
  config.task_retry_delay_ms = 60'000;
  config.command_retransmit_initial_ms = 1000;
  config.command_retransmit_max_ms = 8000;
  return config;
}

}  // namespace

TEST_CASE("a restored engine continues where the stored one stopped", "[engine][restore]") {
  engine_fixture before(restore_config());
  before.register_agent("n1", "a1", "", "", "e1");
  before.register_agent("n2", "a2", "", "", "e1");
  const auto start_ms = before.now();
  before.fail_task("n1", "t1", "a1");                     // retry due at start + 60 s
  before.fail_task("n1", "t3", "a1", 1, false, "Fatal");  // a rollback left unacked
  before.advance_with_heartbeats(start_ms + 50'000, {"n1", "n2"});
  before.fail_task("n2", "t2", "a2");                     // retry due at start + 110 s
  const auto rollback = before.commands_of<commands::task_rollback>()[0];
  REQUIRE(before.subject().pending(rollback.message.id) != nullptr);
  const auto stored = take_snapshot(before.subject());
  REQUIRE(stored.tasks.size() == 2);
  REQUIRE(stored.commands.size() == 1);

  // The processor was down for 40 s.
  const auto restart_ms = start_ms + 90'000;
  engine_fixture after(restore_config());
  after.restore(stored, restart_ms);
  after.node("n1").next_seq = before.node("n1").next_seq;
  after.node("n2").next_seq = before.node("n2").next_seq;

  SECTION("the records are back as they were") {
    REQUIRE(after.subject().agent_count() == 2);
    REQUIRE(after.subject().task("t1")->state == task_state::retry_scheduled);
    REQUIRE(after.subject().task("t2")->retry_due_ms == start_ms + 110'000);
    REQUIRE(after.subject().node("n1")->applied_seq == before.subject().node("n1")->applied_seq);
    REQUIRE(after.subject().episode("e1")->agents_seen == std::vector<std::string>{"a1", "a2"});
    REQUIRE(after.subject().agent("a2")->node == "n2");
    REQUIRE(after.subject().next_command_id() == before.subject().next_command_id());
  }

  SECTION("an overdue retry fires at once, a later one at its due time") {
    REQUIRE(after.subject().next_deadline().has_value());
    REQUIRE(*after.subject().next_deadline() <= restart_ms);
    after.tick();
    auto retries = after.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 1);
    REQUIRE(body_of<commands::task_retry>(retries[0]).task == "t1");
    REQUIRE(retries[0].at_ms == restart_ms);
    after.ack_command("n1", retries[0].message.id);  // delivered: no retransmissions to count
    after.advance_with_heartbeats(start_ms + 110'000 - 1, {"n1", "n2"});
    REQUIRE(after.commands_of<commands::task_retry>().size() == 1);
    after.advance_to(start_ms + 110'000);
    retries = after.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 2);
    REQUIRE(body_of<commands::task_retry>(retries[1]).task == "t2");
  }

  SECTION("pending commands are resent at once with their original ids") {
    after.tick();
    const auto rollbacks = after.commands_of<commands::task_rollback>();
    REQUIRE(rollbacks.size() == 1);
    REQUIRE(rollbacks[0].message.id == rollback.message.id);
    REQUIRE(rollbacks[0].at_ms == restart_ms);
    after.ack_command("n1", rollback.message.id);
    REQUIRE(after.subject().pending(rollback.message.id) == nullptr);
  }

  SECTION("command ids continue after the stored next_command_id") {
    after.tick();
    const auto retry = after.commands_of<commands::task_retry>()[0];
    REQUIRE(retry.message.id == before.subject().next_command_id());
    REQUIRE(retry.message.id > rollback.message.id);
  }

  SECTION("agents get a fresh detection window, not a death for the downtime") {
    after.tick();
    REQUIRE(after.events_of<events::agent_suspect>().empty());
    after.advance_to(restart_ms + 4000);
    REQUIRE(after.events_of<events::agent_dead>().empty());
    REQUIRE(after.state_of("a1") == agent_state::healthy);
    after.advance_to(restart_ms + 10'000);  // still silent: now they die
    REQUIRE(after.events_of<events::agent_dead>().size() == 2);
  }

  SECTION("heartbeats after the restart keep agents healthy") {
    after.advance_with_heartbeats(restart_ms + 60'000, {"n1", "n2"});
    REQUIRE(after.events_of<events::agent_dead>().empty());
    REQUIRE(after.state_of("a2") == agent_state::healthy);
  }

  SECTION("events continue the stored sequence: a resent old event is a duplicate") {
    auto& sender = after.node("n1");
    sender.next_seq -= 1;
    after.fail_task("n1", "t9", "a1");
    REQUIRE(after.subject().task("t9") == nullptr);
    REQUIRE(after.subject().stats().events_duplicate == 1);
    after.fail_task("n1", "t9", "a1");
    REQUIRE(after.subject().task("t9") != nullptr);
  }
}

TEST_CASE("a restored engine resumes recoveries in flight", "[engine][restore]") {
  auto config = restore_config();
  config.failure_detector = detector_mode::missed_heartbeats;
  config.recovery_timeout_ms = 30'000;
  config.recovery_cooldown_ms = 60'000;
  engine_fixture before(config);
  before.register_agent("n1", "a1");
  before.heartbeat("n1");
  before.advance(5000);
  REQUIRE(before.state_of("a1") == agent_state::recovering);
  const auto recover = before.commands_of<commands::agent_recover>()[0];
  const auto stored = take_snapshot(before.subject());

  const auto restart_ms = before.now() + 10'000;
  engine_fixture after(config);
  after.restore(stored, restart_ms);

  SECTION("the recover command is resent under its id and its timeout runs from the restart") {
    after.tick();
    const auto resent = after.commands_of<commands::agent_recover>();
    REQUIRE(resent.size() == 1);
    REQUIRE(resent[0].message.id == recover.message.id);
    REQUIRE(after.state_of("a1") == agent_state::recovering);
    after.node("n1").next_seq = before.node("n1").next_seq;
    after.ack_command("n1", recover.message.id);
    after.advance_to(restart_ms + 30'000 - 1);
    REQUIRE(after.state_of("a1") == agent_state::recovering);
    after.advance_to(restart_ms + 30'000);
    REQUIRE(after.state_of("a1") == agent_state::dead);
    REQUIRE(after.subject().agent("a1")->recovery_attempts == 1);
  }
}

TEST_CASE("a restored running task gets a fresh task_timeout window", "[engine][restore][timeout]") {
  auto config = restore_config();
  config.task_timeout_ms = 10'000;
  engine_fixture before(config);
  before.register_agent("n1", "a1");
  before.start_task("n1", "t1", "a1");
  before.advance(8'000);
  const auto stored = take_snapshot(before.subject());

  engine_fixture after(config);
  const auto restart_ms = before.now() + 60'000;  // down a minute: past the old deadline
  after.restore(stored, restart_ms);
  after.advance_to(restart_ms + 9'999);
  REQUIRE(after.subject().task("t1")->state == task_state::running);
  after.advance_to(restart_ms + 10'000);
  REQUIRE(after.subject().task("t1")->state == task_state::retry_scheduled);
  REQUIRE(after.subject().task("t1")->last_error_type == "rrh.TaskTimeout");
}
