// Limits (each enforced with an alert, never a crash or a silent drop) and the timer
// structure the shell sleeps on.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

TEST_CASE("limits are enforced with an alert", "[engine][limits]") {
  auto config = quiet_config();
  config.max_agents = 2;
  config.max_tasks_per_agent = 2;
  config.max_pending_commands = 2;
  config.acceptable_pause_ms = 86'400'000;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1");
  fixture.register_agent("n1", "a2");

  SECTION("max_agents: the next agent is not tracked, but its event is acked") {
    fixture.register_agent("n2", "a3");
    REQUIRE(fixture.subject().agent_count() == 2);
    REQUIRE(fixture.subject().agent("a3") == nullptr);
    const auto alerts = fixture.alerts("limit.agents");
    REQUIRE(alerts.size() == 1);
    REQUIRE(alerts[0].message.find("a3") != std::string::npos);
    REQUIRE(fixture.last_ack("n2")->seq == 1);
    REQUIRE(fixture.subject().stats().limit_rejections == 1);

    SECTION("room again once an agent leaves") {
      fixture.unregister_agent("n1", "a2");
      fixture.register_agent("n2", "a3");
      REQUIRE(fixture.subject().agent("a3") != nullptr);
    }
  }

  SECTION("max_tasks_per_agent: a third unfinished task is not tracked") {
    fixture.start_task("n1", "t1", "a1");
    fixture.start_task("n1", "t2", "a1");
    fixture.start_task("n1", "t3", "a1");
    REQUIRE(fixture.subject().task("t3") == nullptr);
    REQUIRE(fixture.subject().task_count() == 2);
    REQUIRE(fixture.alerts("limit.tasks_per_agent").size() == 1);
    fixture.start_task("n1", "t4", "a2");  // another agent has its own allowance
    REQUIRE(fixture.subject().task("t4") != nullptr);

    SECTION("room again once a task finishes") {
      fixture.succeed_task("n1", "t1", "a1");
      fixture.start_task("n1", "t3", "a1");
      REQUIRE(fixture.subject().task("t3") != nullptr);
    }
  }

  SECTION("max_pending_commands: a command past the limit is not sent, with an alert") {
    fixture.fail_task("n1", "t1", "a1", 1, false, "Fatal");
    fixture.fail_task("n1", "t2", "a1", 1, false, "Fatal");
    fixture.fail_task("n1", "t3", "a2", 1, false, "Fatal");
    REQUIRE(fixture.commands_of<commands::task_rollback>().size() == 2);
    REQUIRE(fixture.subject().pending_count() == 2);
    REQUIRE(fixture.subject().stats().commands_dropped == 1);
    REQUIRE(fixture.alerts("limit.pending_commands").size() == 1);

    SECTION("room again once a command is acked") {
      fixture.ack_command("n1", fixture.commands_of<commands::task_rollback>()[0].message.id);
      fixture.fail_task("n1", "t4", "a2", 1, false, "Fatal");
      REQUIRE(fixture.commands_of<commands::task_rollback>().size() == 3);
    }
  }

  SECTION("max_pending_commands: a task.retry that cannot be sent waits and is tried again") {
    auto retrying_config = config;
    retrying_config.max_pending_commands = 1;
    retrying_config.retry_backoff = backoff_policy::fixed;
    retrying_config.task_retry_delay_ms = 1000;
    engine_fixture retrying(retrying_config);
    retrying.register_agent("n1", "a1");
    retrying.fail_task("n1", "t0", "a1", 1, false, "Fatal");  // its rollback fills the limit
    retrying.fail_task("n1", "t1", "a1");
    const auto failed_ms = retrying.now();
    retrying.advance_to(failed_ms + 1000);
    REQUIRE(retrying.commands_of<commands::task_retry>().empty());
    REQUIRE(retrying.alerts("limit.pending_commands").size() == 1);
    REQUIRE(retrying.subject().task("t1")->state == task_state::retry_scheduled);
    REQUIRE(retrying.subject().task("t1")->attempt == 1);
    retrying.ack_command("n1", retrying.commands_of<commands::task_rollback>()[0].message.id);
    retrying.advance_to(failed_ms + 2000);
    const auto retries = retrying.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 1);
    REQUIRE(body_of<commands::task_retry>(retries[0]).attempt == 2);
  }

  SECTION("a flood of rejections raises one alert a minute per limit") {
    for (int agent = 3; agent <= 10; ++agent) fixture.register_agent("n2", "a" + std::to_string(agent));
    REQUIRE(fixture.alerts("limit.agents").size() == 1);
    REQUIRE(fixture.subject().stats().limit_rejections == 8);
    fixture.advance(60'000);
    fixture.register_agent("n2", "a11");
    REQUIRE(fixture.alerts("limit.agents").size() == 2);
  }
}

namespace {

// A failed task whose agent has left since: no probes of it, and nobody to run its retry.
void orphan_task(engine_fixture& fixture) {
  fixture.register_agent("n1", "gone");
  fixture.fail_task("n1", "t1", "gone");
  fixture.unregister_agent("n1", "gone");
}

}  // namespace

TEST_CASE("task events of agents that never registered are refused", "[engine][limits]") {
  auto config = quiet_config();
  config.acceptable_pause_ms = 86'400'000;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1");
  for (int task = 0; task < 1000; ++task) fixture.start_task("n1", "t" + std::to_string(task), "ghost");
  fixture.fail_task("n1", "t-failed", "ghost");
  REQUIRE(fixture.subject().task_count() == 0);
  REQUIRE(fixture.subject().stats().events_refused == 1001);
  // Applied and acked (the sender's outbox empties), alerted once a minute.
  REQUIRE(fixture.last_ack("n1")->seq == 1002);
  REQUIRE(fixture.alerts("task.unknown_agent").size() == 1);
  fixture.start_task("n1", "t-known", "a1");
  REQUIRE(fixture.subject().task("t-known") != nullptr);
}

TEST_CASE("max_tasks bounds the tasks of all agents together", "[engine][limits]") {
  auto config = quiet_config();
  config.acceptable_pause_ms = 86'400'000;
  config.max_tasks = 3;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1");
  fixture.register_agent("n2", "a2");
  fixture.start_task("n1", "t1", "a1");
  fixture.start_task("n1", "t2", "a1");
  fixture.start_task("n2", "t3", "a2");
  fixture.start_task("n2", "t4", "a2");
  REQUIRE(fixture.subject().task_count() == 3);
  REQUIRE(fixture.subject().task("t4") == nullptr);
  REQUIRE(fixture.alerts("limit.tasks").size() == 1);
  fixture.succeed_task("n1", "t1", "a1");
  fixture.start_task("n2", "t4", "a2");
  REQUIRE(fixture.subject().task("t4") != nullptr);
}

TEST_CASE("a timer of a finished entity does not fire for the next one in its slot", "[engine][timers]") {
  auto config = quiet_config();
  config.acceptable_pause_ms = 86'400'000;
  config.task_timeout_ms = 30'000;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1");
  fixture.start_task("n1", "t1", "a1");  // its timeout is armed for +30 s
  fixture.advance(1000);
  fixture.succeed_task("n1", "t1", "a1");  // its slot is free
  fixture.advance(1000);
  fixture.start_task("n1", "t2", "a1");  // takes the slot; its timeout is due 30 s from now
  const auto started_ms = fixture.now();
  fixture.advance_to(started_ms + 29'999);
  REQUIRE(fixture.alerts("task.timeout").empty());
  REQUIRE(fixture.subject().task("t2")->state == task_state::running);
  fixture.advance_to(started_ms + 30'000);
  REQUIRE(fixture.alerts("task.timeout").size() == 1);
}

TEST_CASE("timers: the shell sleeps until next_deadline", "[engine][timers]") {
  auto config = quiet_config();
  config.retry_backoff = backoff_policy::fixed;
  config.task_retry_delay_ms = 5000;
  config.acceptable_pause_ms = 86'400'000;  // the node's own check lies a day away
  engine_fixture fixture(config);

  SECTION("a fresh engine has no deadline") {
    REQUIRE_FALSE(fixture.subject().next_deadline());
    REQUIRE(fixture.subject().timer_count() == 0);
  }

  SECTION("next_deadline is the earliest pending timer") {
    orphan_task(fixture);
    const auto failed_ms = fixture.now();
    REQUIRE(fixture.subject().next_deadline() == failed_ms + 5000);
    fixture.advance_to(failed_ms + 5000);
    // No one to run the retry: it waits another task_retry_delay.
    REQUIRE(fixture.alerts("task.no_target").size() == 1);
    REQUIRE(fixture.subject().next_deadline() == failed_ms + 10'000);
  }

  SECTION("on_tick with nothing due changes nothing") {
    orphan_task(fixture);
    const auto deadline = *fixture.subject().next_deadline();
    const auto timers = fixture.subject().timer_count();
    const auto fired = fixture.subject().stats().timers_fired;
    effects out;
    fixture.subject().on_tick(deadline - 1, out);
    REQUIRE(out.nothing_to_store());
    REQUIRE(out.commands.empty());
    REQUIRE(out.events.empty());
    REQUIRE(out.acks.empty());
    REQUIRE(fixture.subject().timer_count() == timers);
    REQUIRE(fixture.subject().stats().timers_fired == fired);
    REQUIRE(fixture.subject().task("t1")->state == task_state::retry_scheduled);
    REQUIRE(fixture.subject().next_deadline() == deadline);
  }

  SECTION("time never runs backwards: an earlier now is treated as the latest seen") {
    orphan_task(fixture);
    const auto failed_ms = fixture.now();
    effects out;
    fixture.subject().on_tick(failed_ms + 5000, out);
    REQUIRE(fixture.subject().next_deadline() == failed_ms + 10'000);
    effects later;
    fixture.subject().on_tick(failed_ms, later);  // a clock step back
    REQUIRE(later.events.empty());
    REQUIRE(fixture.subject().next_deadline() == failed_ms + 10'000);
  }
}
