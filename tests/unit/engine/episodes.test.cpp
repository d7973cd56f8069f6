// Episodes: errors counted against error_threshold (whole episode, or a window), shutdown
// to every node of the episode, the end (completed or aborted) and its summary, and
// per-episode resilience overrides.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

resilience_config episode_config() {
  auto config = quiet_config();
  config.error_threshold = 3;
  config.shutdown_grace_ms = 30'000;
  config.acceptable_pause_ms = 86'400'000;  // nodes stay alive without heartbeats
  return config;
}

void start_episode(engine_fixture& fixture, const std::string& node_id, const std::string& episode,
                   const settings& overrides = {}) {
  events::episode_started body;
  body.name = "run " + episode;
  body.resilience = overrides;
  fixture.deliver(fixture.critical(fixture.node(node_id), body, episode));
}

void end_episode(engine_fixture& fixture, const std::string& node_id, const std::string& episode) {
  fixture.deliver(fixture.critical(fixture.node(node_id), events::episode_ended{"completed"}, episode));
}

std::vector<std::string> shutdown_targets(const engine_fixture& fixture) {
  std::vector<std::string> nodes;
  for (const auto& sent : fixture.commands_of<commands::episode_shutdown>()) nodes.push_back(sent.message.node);
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

}  // namespace

TEST_CASE("an episode shuts down when its errors reach error_threshold", "[engine][episodes]") {
  engine_fixture fixture(episode_config());
  start_episode(fixture, "n1", "e1");
  fixture.register_agent("n1", "a1", "", "", "e1");
  fixture.register_agent("n2", "a2", "", "", "e1");
  fixture.register_agent("n2", "a3", "", "", "e1");
  fixture.register_agent("n3", "b1", "", "", "e2");

  SECTION("the Nth error over the whole episode: episode.shutdown event and a command per node") {
    fixture.episode_error("n1", "e1", "a1");
    fixture.advance(3'600'000);
    fixture.episode_error("n2", "e1", "a2");
    REQUIRE(fixture.events_of<events::episode_shutdown>().empty());
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::running);
    fixture.advance(3'600'000);
    fixture.episode_error("n2", "e1", "a3");
    const auto shutdowns = fixture.events_of<events::episode_shutdown>();
    REQUIRE(shutdowns.size() == 1);
    REQUIRE(shutdowns[0].errors == 3);
    REQUIRE(fixture.published().back().event.episode == "e1");
    REQUIRE(shutdown_targets(fixture) == std::vector<std::string>{"n1", "n2"});
    for (const auto& sent : fixture.commands_of<commands::episode_shutdown>()) {
      REQUIRE(sent.message.episode == "e1");
      REQUIRE(fixture.subject().pending(sent.message.id) != nullptr);
    }
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::shutting_down);
    REQUIRE(fixture.subject().episode("e1")->errors == 3);
  }

  SECTION("errors of another episode do not count") {
    fixture.episode_error("n1", "e1");
    fixture.episode_error("n3", "e2");
    fixture.episode_error("n3", "e2");
    REQUIRE(fixture.events_of<events::episode_shutdown>().empty());
    REQUIRE(fixture.subject().episode("e1")->errors == 1);
    REQUIRE(fixture.subject().episode("e2")->errors == 2);
  }

  SECTION("errors after the shutdown are counted but do not shut it down again") {
    for (int error = 0; error < 5; ++error) fixture.episode_error("n1", "e1");
    REQUIRE(fixture.events_of<events::episode_shutdown>().size() == 1);
    REQUIRE(fixture.subject().episode("e1")->errors == 5);
  }

  SECTION("shutting down ends (aborted) when every agent of the episode unregisters") {
    for (int error = 0; error < 3; ++error) fixture.episode_error("n1", "e1");
    fixture.advance(1000);
    fixture.unregister_agent("n1", "a1", "e1");
    fixture.unregister_agent("n2", "a2", "e1");
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::shutting_down);
    fixture.unregister_agent("n2", "a3", "e1");
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::ended);
    REQUIRE(fixture.subject().episode("e1")->status == "aborted");
    const auto summaries = fixture.events_of<events::episode_summary>();
    REQUIRE(summaries.size() == 1);
    REQUIRE(summaries[0].status == "aborted");
    REQUIRE(summaries[0].duration_ms == 1000);
  }

  SECTION("shutting down ends (aborted) after shutdown_grace_ms") {
    for (int error = 0; error < 3; ++error) fixture.episode_error("n1", "e1");
    const auto shutdown_ms = fixture.now();
    fixture.advance_to(shutdown_ms + 30'000 - 1);
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::shutting_down);
    fixture.advance_to(shutdown_ms + 30'000);
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::ended);
    REQUIRE(fixture.subject().episode("e1")->status == "aborted");
    REQUIRE(fixture.times_of<events::episode_summary>() == std::vector<time_ms>{shutdown_ms + 30'000});
  }

  SECTION("episode.ended while shutting down reports aborted") {
    for (int error = 0; error < 3; ++error) fixture.episode_error("n1", "e1");
    end_episode(fixture, "n1", "e1");
    REQUIRE(fixture.events_of<events::episode_summary>().size() == 1);
    REQUIRE(fixture.events_of<events::episode_summary>()[0].status == "aborted");
    fixture.advance(60'000);
    REQUIRE(fixture.events_of<events::episode_summary>().size() == 1);  // the grace timer is void
  }
}

TEST_CASE("error_window counts only recent errors", "[engine][episodes]") {
  auto config = episode_config();
  config.error_window_ms = 10'000;
  engine_fixture fixture(config);
  start_episode(fixture, "n1", "e1");
  fixture.register_agent("n1", "a1", "", "", "e1");
  const auto start_ms = fixture.now();

  SECTION("errors older than the window do not count") {
    fixture.episode_error("n1", "e1");
    fixture.advance_to(start_ms + 6000);
    fixture.episode_error("n1", "e1");
    fixture.advance_to(start_ms + 12'000);
    fixture.episode_error("n1", "e1");
    REQUIRE(fixture.events_of<events::episode_shutdown>().empty());
    REQUIRE(fixture.subject().episode("e1")->errors == 3);
    REQUIRE(fixture.subject().episode("e1")->error_times_ms.size() == 2);
  }

  SECTION("the threshold reached inside the window shuts the episode down") {
    fixture.episode_error("n1", "e1");
    fixture.advance_to(start_ms + 6000);
    fixture.episode_error("n1", "e1");
    fixture.advance_to(start_ms + 12'000);
    fixture.episode_error("n1", "e1");
    fixture.advance_to(start_ms + 13'000);
    fixture.episode_error("n1", "e1");
    REQUIRE(fixture.events_of<events::episode_shutdown>().size() == 1);
    REQUIRE(fixture.events_of<events::episode_shutdown>()[0].reason.find("within 10000 ms") != std::string::npos);
  }
}

TEST_CASE("an ended episode publishes its summary", "[engine][episodes]") {
  auto config = episode_config();
  config.retry_backoff = backoff_policy::fixed;
  config.task_retry_delay_ms = 1000;
  config.failure_detector = detector_mode::missed_heartbeats;
  config.acceptable_pause_ms = 3000;
  engine_fixture fixture(config);
  events::episode_started started;
  started.name = "nightly";
  started.agents = {"a1", "a2", "planned"};
  fixture.deliver(fixture.critical(fixture.node("n1"), started, "e1"));
  const auto start_ms = fixture.now();
  fixture.register_agent("n1", "a1", "", "", "e1");
  fixture.register_agent("n2", "a2", "", "", "e1");
  fixture.register_agent("n2", "a4", "", "", "e1");

  // Two errors, one retried-and-recovered task, one abandoned task, one recovery.
  fixture.episode_error("n1", "e1", "a1");
  fixture.episode_error("n1", "e1", "a1");
  fixture.start_task("n1", "t1", "a1", 1, "e1");
  fixture.fail_task("n1", "t1", "a1", 1, true, "Timeout", {}, "e1");
  fixture.advance_with_heartbeats(fixture.now() + 1000, {"n1", "n2"});
  fixture.start_task("n1", "t1", "a1", 2, "e1");
  fixture.succeed_task("n1", "t1", "a1", 2, "e1");
  fixture.fail_task("n1", "t2", "a1", 1, false, "Fatal", {}, "e1");
  fixture.advance_with_heartbeats(fixture.now() + 10'000, {"n1"});  // n2 dies: a2 and a4 recovering
  fixture.register_agent("n2", "a2", "", "", "e1");
  fixture.register_agent("n2", "a4", "", "", "e1");
  fixture.advance(4000);
  end_episode(fixture, "n1", "e1");

  SECTION("episode.ended: completed, with every counter") {
    const auto summaries = fixture.events_of<events::episode_summary>();
    REQUIRE(summaries.size() == 1);
    const auto& summary = summaries[0];
    REQUIRE(summary.status == "completed");
    REQUIRE(summary.duration_ms == fixture.now() - start_ms);
    REQUIRE(summary.duration_ms == 15'000);
    REQUIRE(summary.errors == 2);
    REQUIRE(summary.recoveries_attempted == 2);
    REQUIRE(summary.recoveries_succeeded == 2);
    REQUIRE(summary.tasks_failed == 2);
    REQUIRE(summary.tasks_retried == 1);
    REQUIRE(summary.tasks_recovered == 1);
    REQUIRE(summary.tasks_abandoned == 1);
    REQUIRE(summary.agents_seen == 4);  // a1, a2, planned, a4
    const auto* record = fixture.subject().episode("e1");
    REQUIRE(record->state == episode_state::ended);
    REQUIRE(record->status == "completed");
    REQUIRE(record->name == "nightly");
  }

  SECTION("a second episode.ended changes nothing") {
    end_episode(fixture, "n1", "e1");
    REQUIRE(fixture.events_of<events::episode_summary>().size() == 1);
  }
}

TEST_CASE("an episode's resilience overrides apply to that episode only", "[engine][episodes]") {
  engine_fixture fixture(episode_config());
  fixture.register_agent("n1", "a1", "", "", "e1");
  fixture.register_agent("n2", "a2", "", "", "e2");

  SECTION("a lower error_threshold shuts down only the episode that asked for it") {
    start_episode(fixture, "n1", "e1", settings{{"error_threshold", std::int64_t{1}}});
    start_episode(fixture, "n2", "e2");
    REQUIRE(fixture.subject().config_for_episode("e1").error_threshold == 1);
    REQUIRE(fixture.subject().config_for_episode("e2").error_threshold == 3);
    fixture.episode_error("n1", "e1");
    fixture.episode_error("n2", "e2");
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::shutting_down);
    REQUIRE(fixture.subject().episode("e2")->state == episode_state::running);
    REQUIRE(fixture.subject().episode("e1")->overrides.count("error_threshold") == 1);
  }

  SECTION("a task_retry_delay override (in seconds) sets that episode's retry delay") {
    auto config = episode_config();
    config.retry_backoff = backoff_policy::fixed;
    config.task_retry_delay_ms = 1000;
    engine_fixture retrying(config);
    retrying.register_agent("n1", "a1", "", "", "e1");
    retrying.register_agent("n2", "a2", "", "", "e2");
    start_episode(retrying, "n1", "e1", settings{{"task_retry_delay", std::int64_t{7}}});
    retrying.fail_task("n1", "t1", "a1", 1, true, "Timeout", {}, "e1");
    retrying.fail_task("n2", "t2", "a2", 1, true, "Timeout", {}, "e2");
    const auto scheduled = retrying.events_of<events::task_retry_scheduled>();
    REQUIRE(scheduled.size() == 2);
    REQUIRE(scheduled[0].delay_ms == 7000);
    REQUIRE(scheduled[1].delay_ms == 1000);
  }

  SECTION("an out-of-range override is rejected with an alert naming the key") {
    start_episode(fixture, "n1", "e1", settings{{"error_threshold", std::int64_t{0}}});
    const auto alerts = fixture.alerts("episode.config_rejected");
    REQUIRE(alerts.size() == 1);
    REQUIRE(alerts[0].message.find("error_threshold") != std::string::npos);
    REQUIRE(fixture.subject().config_for_episode("e1").error_threshold == 3);
    REQUIRE(fixture.subject().episode("e1")->overrides.empty());
  }

  SECTION("an unknown key is rejected with an alert naming it, and nothing is applied") {
    start_episode(fixture, "n1", "e1",
                  settings{{"error_threshold", std::int64_t{1}}, {"error_treshold", std::int64_t{2}}});
    const auto alerts = fixture.alerts("episode.config_rejected");
    REQUIRE(alerts.size() == 1);
    REQUIRE(alerts[0].message.find("error_treshold") != std::string::npos);
    REQUIRE(fixture.subject().config_for_episode("e1").error_threshold == 3);
  }
}

TEST_CASE("an episode still running after episode_timeout is shut down and ends aborted",
          "[engine][episodes][timeout]") {
  auto config = episode_config();
  config.episode_timeout_ms = 600'000;
  engine_fixture fixture(config);
  start_episode(fixture, "n1", "e1");
  const auto started_ms = fixture.now();
  fixture.register_agent("n1", "a1", "", "", "e1");
  fixture.register_agent("n2", "a2", "", "", "e1");

  SECTION("its owner never ends it: shutdown to its nodes at the timeout, aborted after the grace") {
    fixture.advance_to(started_ms + 599'999);
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::running);
    fixture.advance_to(started_ms + 600'000);
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::shutting_down);
    REQUIRE(fixture.alerts("episode.timeout").size() == 1);
    REQUIRE(shutdown_targets(fixture) == std::vector<std::string>{"n1", "n2"});
    fixture.advance_to(started_ms + 600'000 + 30'000);
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::ended);
    REQUIRE(fixture.subject().episode("e1")->status == "aborted");
    REQUIRE(fixture.events_of<events::episode_summary>().size() == 1);
  }

  SECTION("an episode ended in time is left alone") {
    fixture.advance_to(started_ms + 300'000);
    end_episode(fixture, "n1", "e1");
    fixture.advance_to(started_ms + 3'600'000);
    REQUIRE(fixture.alerts("episode.timeout").empty());
    REQUIRE(fixture.subject().episode("e1")->status == "completed");
  }

  SECTION("an episode's own episode_timeout replaces the processor's") {
    start_episode(fixture, "n2", "e2", settings{{"episode_timeout", std::int64_t{60}}});
    fixture.advance(60'000);
    REQUIRE(fixture.subject().episode("e2")->state != episode_state::running);
    REQUIRE(fixture.subject().episode("e1")->state == episode_state::running);
  }
}

TEST_CASE("without episode_timeout an episode may run as long as it likes", "[engine][episodes][timeout]") {
  engine_fixture fixture(episode_config());
  start_episode(fixture, "n1", "e1");
  fixture.advance(30 * 86'400'000ull);
  REQUIRE(fixture.subject().episode("e1")->state == episode_state::running);
  REQUIRE(fixture.alerts("episode.timeout").empty());
}

TEST_CASE("episode_retention: an ended episode is removed after it, a running one never", "[engine][episodes][retention]") {
  auto config = quiet_config();
  config.acceptable_pause_ms = 86'400'000;
  config.episode_retention_ms = 60'000;
  engine_fixture fixture(config);
  start_episode(fixture, "n1", "e1");
  start_episode(fixture, "n1", "e2");
  end_episode(fixture, "n1", "e1");
  const auto ended_ms = fixture.now();
  fixture.advance_to(ended_ms + 59'999);
  REQUIRE(fixture.subject().episode("e1") != nullptr);
  REQUIRE(fixture.subject().episode("e1")->state == episode_state::ended);
  fixture.advance_to(ended_ms + 60'000);
  REQUIRE(fixture.subject().episode("e1") == nullptr);
  REQUIRE(fixture.subject().counts().episodes[static_cast<std::size_t>(episode_state::ended)] == 0);
  fixture.advance(10 * 60'000);
  REQUIRE(fixture.subject().episode("e2") != nullptr);  // still running
}
