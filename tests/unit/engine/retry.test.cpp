// Task retry: scheduled after a growing, jittered delay, carried with its checkpoint,
// re-routed within the pool when the owner is dead, abandoned (and rolled back) at the
// limit or on a non-retryable error.
#include <catch2/catch.hpp>

#include <set>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

resilience_config retry_config(backoff_policy policy) {
  auto config = quiet_config();
  config.retry_backoff = policy;
  config.task_retry_delay_ms = 1000;
  config.retry_backoff_factor = 2.0;
  config.task_retry_delay_max_ms = 5000;
  config.max_task_retries = 3;
  config.acceptable_pause_ms = 86'400'000;  // nodes stay alive without heartbeats
  return config;
}

// Fails t1 on a1 attempt after attempt, answering each task.retry by failing again;
// returns the delays announced in task.retry_scheduled.
std::vector<std::uint64_t> delays_of_failures(engine_fixture& fixture, int failures) {
  fixture.register_agent("n1", "a1");
  for (int attempt = 1; attempt <= failures; ++attempt) {
    fixture.fail_task("n1", "t1", "a1", static_cast<std::uint64_t>(attempt));
    fixture.advance(200'000);  // past the longest delay of these tests
  }
  std::vector<std::uint64_t> delays;
  for (const auto& scheduled : fixture.events_of<events::task_retry_scheduled>()) {
    delays.push_back(scheduled.delay_ms);
  }
  return delays;
}

// Pool re-routing: nodes silent for seconds die, retries wait 30 s (fixed).
resilience_config pool_retry_config() {
  auto config = retry_config(backoff_policy::fixed);
  config.acceptable_pause_ms = 3000;
  config.task_retry_delay_ms = 30'000;
  config.task_retry_delay_max_ms = 300'000;
  return config;
}

}  // namespace

TEST_CASE("a failed task is retried after its delay", "[engine][retry]") {
  engine_fixture fixture(retry_config(backoff_policy::fixed));
  fixture.register_agent("n1", "a1");

  SECTION("retryable failure: task.retry_scheduled, then task.retry after the delay") {
    fixture.fail_task("n1", "t1", "a1");
    const auto failed_ms = fixture.now();
    const auto scheduled = fixture.events_of<events::task_retry_scheduled>();
    REQUIRE(scheduled.size() == 1);
    REQUIRE(scheduled[0].task == "t1");
    REQUIRE(scheduled[0].agent == "a1");
    REQUIRE(scheduled[0].attempt == 2);
    REQUIRE(scheduled[0].delay_ms == 1000);
    REQUIRE(scheduled[0].target_agent == "a1");
    REQUIRE(fixture.subject().task("t1")->state == task_state::retry_scheduled);
    REQUIRE(fixture.subject().task("t1")->retry_due_ms == failed_ms + 1000);

    fixture.advance_to(failed_ms + 999);
    REQUIRE(fixture.commands_of<commands::task_retry>().empty());
    fixture.advance_to(failed_ms + 1000);
    const auto retries = fixture.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 1);
    REQUIRE(retries[0].at_ms == failed_ms + 1000);
    REQUIRE(retries[0].message.node == "n1");
    const auto& retry = body_of<commands::task_retry>(retries[0]);
    REQUIRE(retry.task == "t1");
    REQUIRE(retry.agent == "a1");
    REQUIRE(retry.attempt == 2);
    REQUIRE(retry.from_agent.empty());
    REQUIRE(fixture.subject().task("t1")->state == task_state::retrying);
    REQUIRE(fixture.subject().pending(retries[0].message.id) != nullptr);
  }

  SECTION("the checkpoint saved at failure travels in task.retry") {
    const byte_buffer checkpoint{0x01, 0x02, 0xfe, 0xff};
    fixture.fail_task("n1", "t1", "a1", 1, true, "Timeout", checkpoint);
    fixture.advance(1000);
    const auto retries = fixture.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 1);
    REQUIRE(body_of<commands::task_retry>(retries[0]).checkpoint == checkpoint);
  }

  SECTION("after max_task_retries: task.abandoned and task.rollback") {
    for (std::uint64_t attempt = 1; attempt <= 4; ++attempt) {
      fixture.fail_task("n1", "t1", "a1", attempt);
      fixture.advance(1000);
    }
    REQUIRE(fixture.commands_of<commands::task_retry>().size() == 3);
    const auto abandoned = fixture.events_of<events::task_abandoned>();
    REQUIRE(abandoned.size() == 1);
    REQUIRE(abandoned[0].task == "t1");
    REQUIRE(abandoned[0].attempts == 4);
    const auto rollbacks = fixture.commands_of<commands::task_rollback>();
    REQUIRE(rollbacks.size() == 1);
    REQUIRE(rollbacks[0].message.node == "n1");
    REQUIRE(body_of<commands::task_rollback>(rollbacks[0]).task == "t1");
    REQUIRE(body_of<commands::task_rollback>(rollbacks[0]).agent == "a1");
    REQUIRE(fixture.subject().task("t1") == nullptr);
  }

  SECTION("a failure flagged non-retryable is abandoned at once and rolled back") {
    fixture.fail_task("n1", "t1", "a1", 1, false, "PermissionDenied");
    REQUIRE(fixture.events_of<events::task_retry_scheduled>().empty());
    REQUIRE(fixture.events_of<events::task_abandoned>().size() == 1);
    REQUIRE(fixture.events_of<events::task_abandoned>()[0].reason.find("PermissionDenied") != std::string::npos);
    REQUIRE(fixture.commands_of<commands::task_rollback>().size() == 1);
    REQUIRE(fixture.subject().task("t1") == nullptr);
  }

  SECTION("an error type listed in non_retryable_errors is abandoned at once and rolled back") {
    auto config = retry_config(backoff_policy::fixed);
    config.non_retryable_errors = {"ValueError", "KeyError"};
    engine_fixture listed(config);
    listed.register_agent("n1", "a1");
    listed.fail_task("n1", "t1", "a1", 1, true, "KeyError");
    REQUIRE(listed.events_of<events::task_retry_scheduled>().empty());
    REQUIRE(listed.events_of<events::task_abandoned>().size() == 1);
    REQUIRE(listed.commands_of<commands::task_rollback>().size() == 1);
    listed.fail_task("n1", "t2", "a1", 1, true, "Timeout");
    REQUIRE(listed.events_of<events::task_retry_scheduled>().size() == 1);
  }

  SECTION("a refused task.retry counts as a failed attempt") {
    fixture.fail_task("n1", "t1", "a1");
    fixture.advance(1000);
    const auto retry = fixture.commands_of<commands::task_retry>()[0];
    fixture.ack_command("n1", retry.message.id, false, "busy");
    const auto* task = fixture.subject().task("t1");
    REQUIRE(task->failures == 2);
    REQUIRE(task->last_error_type == "RetryRefused");
    REQUIRE(task->state == task_state::retry_scheduled);
    const auto scheduled = fixture.events_of<events::task_retry_scheduled>();
    REQUIRE(scheduled.size() == 2);
    REQUIRE(scheduled[1].attempt == 3);
    fixture.advance(1000);
    const auto retries = fixture.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 2);
    REQUIRE(body_of<commands::task_retry>(retries[1]).attempt == 3);
  }

  SECTION("success after a retry counts the task as recovered") {
    fixture.register_agent("n1", "a1", "", "", "e1");
    fixture.start_task("n1", "t1", "a1", 1, "e1");
    fixture.fail_task("n1", "t1", "a1", 1, true, "Timeout", {}, "e1");
    fixture.advance(1000);
    fixture.start_task("n1", "t1", "a1", 2, "e1");
    fixture.succeed_task("n1", "t1", "a1", 2, "e1");
    REQUIRE(fixture.subject().task("t1") == nullptr);
    const auto* episode = fixture.subject().episode("e1");
    REQUIRE(episode->tasks_failed == 1);
    REQUIRE(episode->tasks_retried == 1);
    REQUIRE(episode->tasks_recovered == 1);
    REQUIRE(episode->tasks_abandoned == 0);
  }

  SECTION("success without a failure is not counted as recovered") {
    fixture.register_agent("n1", "a1", "", "", "e1");
    fixture.start_task("n1", "t1", "a1", 1, "e1");
    fixture.succeed_task("n1", "t1", "a1", 1, "e1");
    REQUIRE(fixture.subject().task("t1") == nullptr);
    REQUIRE(fixture.subject().episode("e1")->tasks_recovered == 0);
  }

  SECTION("task.started of the retry stops its retransmission") {
    fixture.fail_task("n1", "t1", "a1");
    fixture.advance(1000);
    const auto retry = fixture.commands_of<commands::task_retry>()[0];
    fixture.start_task("n1", "t1", "a1", 2);
    REQUIRE(fixture.subject().pending(retry.message.id) == nullptr);
    REQUIRE(fixture.subject().task("t1")->state == task_state::running);
  }
}

TEST_CASE("retry delays follow the backoff policy", "[engine][retry]") {
  SECTION("fixed: always task_retry_delay") {
    engine_fixture fixture(retry_config(backoff_policy::fixed));
    REQUIRE(delays_of_failures(fixture, 4) == std::vector<std::uint64_t>{1000, 1000, 1000});
  }

  SECTION("exponential: base · factor^(n-1), capped at task_retry_delay_max") {
    auto config = retry_config(backoff_policy::exponential);
    config.max_task_retries = 5;
    engine_fixture fixture(config);
    REQUIRE(delays_of_failures(fixture, 6) == std::vector<std::uint64_t>{1000, 2000, 4000, 5000, 5000});
  }

  SECTION("full jitter: within [0, min(cap, base · factor^(n-1))], varying across retries") {
    auto config = retry_config(backoff_policy::exponential_full_jitter);
    config.max_task_retries = 8;
    config.task_retry_delay_max_ms = 100'000;
    engine_fixture fixture(config);
    const auto delays = delays_of_failures(fixture, 9);
    REQUIRE(delays.size() == 8);
    for (std::size_t index = 0; index < delays.size(); ++index) {
      const auto ceiling = std::min<std::uint64_t>(100'000, 1000ull << index);
      REQUIRE(delays[index] <= ceiling);
    }
    REQUIRE(std::set<std::uint64_t>(delays.begin(), delays.end()).size() > 4);
  }

  SECTION("full jitter: the same jitter_seed gives the same delays, another seed others") {
    auto config = retry_config(backoff_policy::exponential_full_jitter);
    config.max_task_retries = 6;
    config.task_retry_delay_max_ms = 100'000;
    config.jitter_seed = 42;
    engine_fixture first(config);
    engine_fixture second(config);
    config.jitter_seed = 43;
    engine_fixture other(config);
    const auto delays = delays_of_failures(first, 7);
    REQUIRE(delays.size() == 6);
    REQUIRE(delays_of_failures(second, 7) == delays);
    REQUIRE(delays_of_failures(other, 7) != delays);
  }

  SECTION("the retry fires after exactly the announced jittered delay") {
    engine_fixture fixture(retry_config(backoff_policy::exponential_full_jitter));
    fixture.register_agent("n1", "a1");
    fixture.fail_task("n1", "t1", "a1");
    const auto failed_ms = fixture.now();
    const auto delay_ms = fixture.events_of<events::task_retry_scheduled>()[0].delay_ms;
    fixture.advance(5000);
    REQUIRE(fixture.commands_of<commands::task_retry>().size() == 1);
    REQUIRE(fixture.commands_of<commands::task_retry>()[0].at_ms == failed_ms + delay_ms);
  }
}

TEST_CASE("a retry whose owner is dead goes to a healthy agent of its pool", "[engine][retry]") {
  engine_fixture fixture(pool_retry_config());
  fixture.register_agent("n1", "a1", "gpu");
  fixture.register_agent("n2", "a2", "gpu");
  fixture.register_agent("n3", "a3", "cpu");
  fixture.fail_task("n1", "t1", "a1", 1, true, "Timeout", {0x07}, {}, "gpu");
  const auto failed_ms = fixture.now();

  SECTION("owner dead when the retry is due: task.retry to a pool member, from_agent set") {
    // n1 falls silent; n2 and n3 keep beating.
    fixture.advance_with_heartbeats(failed_ms + 30'000, {"n2", "n3"});
    REQUIRE(fixture.state_of("a1") != agent_state::healthy);
    const auto retries = fixture.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 1);
    REQUIRE(retries[0].message.node == "n2");
    const auto& retry = body_of<commands::task_retry>(retries[0]);
    REQUIRE(retry.agent == "a2");
    REQUIRE(retry.from_agent == "a1");
    REQUIRE(retry.checkpoint == byte_buffer{0x07});
    REQUIRE(fixture.subject().task("t1")->agent == "a2");
  }

  SECTION("a failure that names no pool is re-routed within its owner's pool") {
    fixture.fail_task("n1", "t2", "a1");
    fixture.advance_with_heartbeats(failed_ms + 30'000, {"n2", "n3"});
    const auto retries = fixture.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 2);
    for (const auto& sent : retries) {
      REQUIRE(body_of<commands::task_retry>(sent).agent == "a2");
      REQUIRE(body_of<commands::task_retry>(sent).from_agent == "a1");
    }
  }

  SECTION("no live agent in the pool: an alert, and the retry waits") {
    fixture.advance_with_heartbeats(failed_ms + 30'000, {"n3"});
    REQUIRE(fixture.commands_of<commands::task_retry>().empty());
    REQUIRE(fixture.alerts("task.no_target").size() == 1);
    REQUIRE(fixture.subject().task("t1")->state == task_state::retry_scheduled);
    fixture.register_agent("n2", "a2", "gpu");  // back
    fixture.advance_with_heartbeats(failed_ms + 60'000, {"n2", "n3"});
    REQUIRE(fixture.commands_of<commands::task_retry>().size() == 1);
    REQUIRE(body_of<commands::task_retry>(fixture.commands_of<commands::task_retry>()[0]).agent == "a2");
  }
}

TEST_CASE("task.retry_scheduled names the agent the retry then goes to", "[engine][retry]") {
  engine_fixture fixture(pool_retry_config());
  fixture.register_agent("n1", "a1", "gpu");
  fixture.register_agent("n2", "a2", "gpu");
  fixture.register_agent("n3", "a3", "gpu");
  fixture.start_task("n1", "t1", "a1");
  fixture.advance_with_heartbeats(fixture.now() + 10'000, {"n2", "n3"});  // n1 dies
  REQUIRE(fixture.state_of("a1") != agent_state::healthy);

  SECTION("the planned target is the actual target") {
    fixture.fail_task("n2", "t1", "a1", 1, true, "Timeout", {}, {}, "gpu");
    const auto planned = fixture.events_of<events::task_retry_scheduled>()[0].target_agent;
    REQUIRE((planned == "a2" || planned == "a3"));
    fixture.advance_with_heartbeats(fixture.now() + 30'000, {"n2", "n3"});
    const auto retries = fixture.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 1);
    REQUIRE(body_of<commands::task_retry>(retries[0]).agent == planned);
  }
}

TEST_CASE("an attempt without an outcome fails after task_timeout", "[engine][retry][timeout]") {
  auto config = retry_config(backoff_policy::fixed);
  config.task_timeout_ms = 10'000;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1");
  fixture.start_task("n1", "t1", "a1");
  const auto started_ms = fixture.now();

  SECTION("no outcome: a retryable failure of type rrh.TaskTimeout, an alert, then the retry") {
    fixture.advance_to(started_ms + 9'999);
    REQUIRE(fixture.subject().task("t1")->state == task_state::running);
    REQUIRE(fixture.events_of<events::task_retry_scheduled>().empty());
    fixture.advance_to(started_ms + 10'000);
    const auto* task = fixture.subject().task("t1");
    REQUIRE(task->state == task_state::retry_scheduled);
    REQUIRE(task->last_error_type == "rrh.TaskTimeout");
    REQUIRE(task->failures == 1);
    const auto scheduled = fixture.events_of<events::task_retry_scheduled>();
    REQUIRE(scheduled.size() == 1);
    REQUIRE(scheduled[0].attempt == 2);
    REQUIRE(fixture.alerts("task.timeout").size() == 1);
    fixture.advance_to(started_ms + 11'000);
    const auto retries = fixture.commands_of<commands::task_retry>();
    REQUIRE(retries.size() == 1);
    REQUIRE(body_of<commands::task_retry>(retries[0]).attempt == 2);
  }

  SECTION("an outcome in time cancels it") {
    fixture.advance_to(started_ms + 5'000);
    fixture.succeed_task("n1", "t1", "a1");
    fixture.advance_to(started_ms + 60'000);
    REQUIRE(fixture.events_of<events::task_retry_scheduled>().empty());
    REQUIRE(fixture.alerts("task.timeout").empty());
  }

  SECTION("a reported failure re-arms nothing until the next attempt starts") {
    fixture.advance_to(started_ms + 5'000);
    fixture.fail_task("n1", "t1", "a1");                   // retry at +6 s
    fixture.advance_to(started_ms + 6'000);                // task.retry sent: attempt 2 timed from here
    REQUIRE(fixture.commands_of<commands::task_retry>().size() == 1);
    fixture.advance_to(started_ms + 15'999);
    REQUIRE(fixture.alerts("task.timeout").empty());       // the first attempt's timer is stale
    fixture.advance_to(started_ms + 16'000);
    REQUIRE(fixture.alerts("task.timeout").size() == 1);   // the retry never started
    REQUIRE(fixture.subject().task("t1")->last_error_type == "rrh.TaskTimeout");
  }

  SECTION("attempts that all time out end abandoned at the retry limit, with a rollback") {
    fixture.advance(200'000);  // every attempt times out; retries are sent and never start
    REQUIRE(fixture.subject().task("t1") == nullptr);  // an abandoned task is not kept
    REQUIRE(fixture.events_of<events::task_abandoned>().size() == 1);
    REQUIRE(fixture.commands_of<commands::task_retry>().size() == 3);
    REQUIRE(fixture.commands_of<commands::task_rollback>().size() == 1);
    REQUIRE(fixture.alerts("task.timeout").size() == 4);
  }
}

TEST_CASE("without task_timeout a task may run as long as it likes", "[engine][retry][timeout]") {
  engine_fixture fixture(retry_config(backoff_policy::fixed));
  REQUIRE(fixture.subject().config().task_timeout_ms == 0);
  fixture.register_agent("n1", "a1");
  fixture.start_task("n1", "t1", "a1");
  fixture.advance(7 * 86'400'000ull);
  REQUIRE(fixture.subject().task("t1")->state == task_state::running);
  REQUIRE(fixture.alerts("task.timeout").empty());
}
