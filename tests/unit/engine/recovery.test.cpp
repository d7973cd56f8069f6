// Recovery: a dead agent gets agent.recover (to its supervisor, else its node), spaced by
// recovery_cooldown, judged by recovery_timeout, limited by max_recovery_attempts, and
// paced fleet-wide.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

// Deaths at a predictable time (five missed one-second heartbeats), recoveries a minute apart.
resilience_config recovery_config() {
  auto config = missed_heartbeats_config();
  config.recovery_cooldown_ms = 60'000;
  config.recovery_timeout_ms = 30'000;
  config.max_recovery_attempts = 3;
  return config;
}

// Silences n1 after one heartbeat; returns the time its agents are declared dead.
time_ms silence_node(engine_fixture& fixture, const std::string& node_id = "n1") {
  fixture.heartbeat(node_id);
  const auto dead_ms = fixture.now() + 5000;
  fixture.advance_to(dead_ms);
  return dead_ms;
}

std::vector<time_ms> recover_times(const engine_fixture& fixture) {
  std::vector<time_ms> times;
  for (const auto& sent : fixture.commands_of<commands::agent_recover>()) times.push_back(sent.at_ms);
  return times;
}

}  // namespace

TEST_CASE("dead agents are recovered within their budget", "[engine][recovery]") {
  engine_fixture fixture(recovery_config());

  SECTION("dead: agent.recover goes to the agent's own node when it has no supervisor") {
    fixture.register_agent("n1", "a1");
    const auto dead_ms = silence_node(fixture);
    const auto recovers = fixture.commands_of<commands::agent_recover>();
    REQUIRE(recovers.size() == 1);
    REQUIRE(recovers[0].at_ms == dead_ms);
    REQUIRE(recovers[0].message.node == "n1");
    REQUIRE(body_of<commands::agent_recover>(recovers[0]).agent == "a1");
    REQUIRE(body_of<commands::agent_recover>(recovers[0]).attempt == 1);
    REQUIRE(fixture.state_of("a1") == agent_state::recovering);
    REQUIRE(fixture.subject().agent("a1")->recovery_attempts == 1);
    REQUIRE(fixture.subject().pending(recovers[0].message.id) != nullptr);
  }

  SECTION("dead: agent.recover goes to the supervisor when the agent has one") {
    fixture.register_agent("n1", "a1", "", "launcher-1");
    silence_node(fixture);
    const auto recovers = fixture.commands_of<commands::agent_recover>();
    REQUIRE(recovers.size() == 1);
    REQUIRE(recovers[0].message.node == "launcher-1");
  }

  SECTION("recoveries carried out without the agent's return repeat after recovery_cooldown, then quarantine") {
    fixture.register_agent("n1", "a1", "", "launcher-1");
    const auto dead_ms = silence_node(fixture);
    // The supervisor accepts each recovery (it restarts the process), but the agent never
    // comes back.
    for (int second = 0; second < 10 * 60; ++second) {
      for (const auto& sent : fixture.commands_of<commands::agent_recover>()) {
        if (fixture.subject().pending(sent.message.id) != nullptr) fixture.ack_command("launcher-1", sent.message.id);
      }
      fixture.advance(1000);
    }
    REQUIRE(recover_times(fixture) == std::vector<time_ms>{dead_ms, dead_ms + 60'000, dead_ms + 120'000});
    std::vector<std::uint64_t> attempts;
    for (const auto& sent : fixture.commands_of<commands::agent_recover>()) {
      attempts.push_back(body_of<commands::agent_recover>(sent).attempt);
    }
    REQUIRE(attempts == std::vector<std::uint64_t>{1, 2, 3});
    REQUIRE(fixture.state_of("a1") == agent_state::quarantined);
    REQUIRE(fixture.times_of<events::agent_quarantined>() == std::vector<time_ms>{dead_ms + 150'000});
    REQUIRE(fixture.events_of<events::agent_quarantined>()[0].attempts == 3);
    const auto alerts = fixture.alerts("agent.quarantined");
    REQUIRE(alerts.size() == 1);
    REQUIRE(alerts[0].severity == "critical");
    REQUIRE(alerts[0].agent == "a1");
  }

  SECTION("recoveries that reach nobody are not charged: an unreachable agent is never quarantined") {
    fixture.register_agent("n1", "a1");
    const auto dead_ms = silence_node(fixture);
    fixture.advance(10 * 60'000);
    const auto times = recover_times(fixture);
    REQUIRE(times.size() >= 5);
    REQUIRE(times[0] == dead_ms);
    for (const auto& sent : fixture.commands_of<commands::agent_recover>()) {
      REQUIRE(body_of<commands::agent_recover>(sent).attempt == 1);
    }
    REQUIRE(fixture.state_of("a1") != agent_state::quarantined);
    REQUIRE(fixture.events_of<events::agent_quarantined>().empty());
    REQUIRE(fixture.subject().stats().recoveries_undelivered >= 4);
  }

  SECTION("a recovery_timeout longer than the cooldown sets the pace of attempts") {
    auto config = recovery_config();
    config.recovery_cooldown_ms = 10'000;
    engine_fixture quick(config);
    quick.register_agent("n1", "a1");
    const auto dead_ms = silence_node(quick);
    quick.advance(45'000);
    REQUIRE(recover_times(quick) == std::vector<time_ms>{dead_ms, dead_ms + 30'000});
  }

  SECTION("re-registration: healthy, agent.recovered, and the recovery counted as succeeded") {
    fixture.register_agent("n1", "a1", "", "", "e1");
    silence_node(fixture);
    const auto recover_id = fixture.commands_of<commands::agent_recover>()[0].message.id;
    fixture.advance(2000);
    fixture.register_agent("n1", "a1", "", "", "e1");
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    const auto recovered = fixture.events_of<events::agent_recovered>();
    REQUIRE(recovered.size() == 1);
    REQUIRE(recovered[0].agent == "a1");
    REQUIRE(recovered[0].attempts == 1);
    REQUIRE(fixture.subject().episode("e1")->recoveries_attempted == 1);
    REQUIRE(fixture.subject().episode("e1")->recoveries_succeeded == 1);
    REQUIRE(fixture.subject().pending(recover_id) == nullptr);
    // The recovery timeout no longer applies.
    fixture.advance_with_heartbeats(fixture.now() + 60'000, {"n1"});
    REQUIRE(fixture.commands_of<commands::agent_recover>().size() == 1);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
  }

  SECTION("a refused agent.recover counts as a failed attempt") {
    fixture.register_agent("n1", "a1", "", "launcher-1");
    const auto dead_ms = silence_node(fixture);
    const auto first = fixture.commands_of<commands::agent_recover>()[0];
    fixture.advance(500);
    fixture.ack_command("launcher-1", first.message.id, false, "no such program");
    REQUIRE(fixture.state_of("a1") == agent_state::dead);
    REQUIRE(fixture.subject().stats().commands_refused == 1);
    REQUIRE(fixture.alerts("agent.recover_refused").size() == 1);
    fixture.advance_to(dead_ms + 60'000);
    const auto recovers = fixture.commands_of<commands::agent_recover>();
    REQUIRE(recovers.size() == 2);
    REQUIRE(recovers[1].at_ms == dead_ms + 60'000);
    REQUIRE(body_of<commands::agent_recover>(recovers[1]).attempt == 2);
  }

  SECTION("an accepted agent.recover stops its retransmission but still waits for the agent") {
    fixture.register_agent("n1", "a1", "", "launcher-1");
    silence_node(fixture);
    const auto first = fixture.commands_of<commands::agent_recover>()[0];
    fixture.ack_command("launcher-1", first.message.id, true);
    REQUIRE(fixture.subject().pending(first.message.id) == nullptr);
    REQUIRE(fixture.state_of("a1") == agent_state::recovering);
  }

  SECTION("a quarantined agent that lives again gets a fresh budget") {
    fixture.register_agent("n1", "a1", "", "launcher-1");
    silence_node(fixture);
    for (int second = 0; second < 10 * 60; ++second) {
      for (const auto& sent : fixture.commands_of<commands::agent_recover>()) {
        if (fixture.subject().pending(sent.message.id) != nullptr) fixture.ack_command("launcher-1", sent.message.id);
      }
      fixture.advance(1000);
    }
    REQUIRE(fixture.state_of("a1") == agent_state::quarantined);
    // A hung agent's heartbeats (its watchdog lapsed) keep it quarantined ...
    fixture.node("n1").stale_agents = {"a1"};
    fixture.heartbeat("n1");
    REQUIRE(fixture.state_of("a1") == agent_state::quarantined);
    fixture.node("n1").stale_agents.clear();

    SECTION("a heartbeat that lists it alive: never left quarantined") {
      fixture.heartbeat("n1");
      REQUIRE(fixture.state_of("a1") == agent_state::healthy);
      REQUIRE(fixture.subject().agent("a1")->recovery_attempts == 0);
      REQUIRE(fixture.alerts("agent.released").size() == 1);
    }

    fixture.register_agent("n1", "a1", "", "launcher-1");
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    REQUIRE(fixture.subject().agent("a1")->recovery_attempts == 0);
    fixture.clear_log();
    silence_node(fixture);
    const auto recovers = fixture.commands_of<commands::agent_recover>();
    REQUIRE(recovers.size() == 1);
    REQUIRE(body_of<commands::agent_recover>(recovers[0]).attempt == 1);
  }

  SECTION("healthy for recovery_reset_after_ms: the next death starts a fresh budget") {
    auto config = recovery_config();
    config.recovery_reset_after_ms = 60'000;
    engine_fixture resetting(config);
    resetting.register_agent("n1", "a1");
    silence_node(resetting);
    resetting.node("n1", 2);  // restarted: a new process registers a1 after one attempt
    resetting.register_agent("n1", "a1");
    REQUIRE(resetting.state_of("a1") == agent_state::healthy);
    REQUIRE(resetting.subject().agent("a1")->recovery_attempts == 1);
    resetting.advance_with_heartbeats(resetting.now() + 120'000, {"n1"});
    resetting.clear_log();
    silence_node(resetting);  // healthy → suspect → dead, as silence always goes
    const auto recovers = resetting.commands_of<commands::agent_recover>();
    REQUIRE(recovers.size() == 1);
    REQUIRE(body_of<commands::agent_recover>(recovers[0]).attempt == 1);
  }

  SECTION("a death soon after a recovery keeps counting attempts") {
    auto config = recovery_config();
    config.recovery_reset_after_ms = 600'000;
    engine_fixture flapping(config);
    flapping.register_agent("n1", "a1");
    silence_node(flapping);
    flapping.node("n1", 2);  // restarted
    flapping.register_agent("n1", "a1");
    flapping.advance_with_heartbeats(flapping.now() + 120'000, {"n1"});
    flapping.clear_log();
    silence_node(flapping);
    const auto recovers = flapping.commands_of<commands::agent_recover>();
    REQUIRE(recovers.size() == 1);
    REQUIRE(body_of<commands::agent_recover>(recovers[0]).attempt == 2);
  }
}

TEST_CASE("a node that was only unreachable is not charged a recovery attempt", "[engine][recovery]") {
  engine_fixture fixture(recovery_config());
  fixture.register_agent("n1", "a1");
  for (int outage = 1; outage <= 5; ++outage) {
    CAPTURE(outage);
    silence_node(fixture);  // a broker outage: the node is judged dead and recovery sent
    REQUIRE(fixture.state_of("a1") != agent_state::healthy);
    fixture.heartbeat("n1");  // the same process speaks again
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    REQUIRE(fixture.subject().agent("a1")->recovery_attempts == 0);
  }
  // Five outages, more than max_recovery_attempts, and no quarantine.
  REQUIRE(fixture.events_of<events::agent_quarantined>().empty());
}

TEST_CASE("a recovery storm is paced fleet-wide", "[engine][recovery]") {
  auto config = recovery_config();
  config.recovery_rate_per_s = 10.0;
  config.recovery_burst = 5;
  engine_fixture fixture(config);
  for (int index = 0; index < 50; ++index) fixture.register_agent("n1", "a" + std::to_string(index));

  SECTION("50 agents dying at once: 5 recoveries at once, then one per 100 ms") {
    const auto dead_ms = silence_node(fixture);
    REQUIRE(fixture.events_of<events::agent_dead>().size() == 50);
    fixture.advance(10'000);
    const auto times = recover_times(fixture);
    REQUIRE(times.size() == 50);
    std::vector<time_ms> expected(5, dead_ms);
    for (time_ms step = 1; step <= 45; ++step) expected.push_back(dead_ms + step * 100);
    REQUIRE(times == expected);
    std::set<std::string> recovered;
    for (const auto& sent : fixture.commands_of<commands::agent_recover>()) {
      recovered.insert(body_of<commands::agent_recover>(sent).agent);
    }
    REQUIRE(recovered.size() == 50);
  }

  SECTION("an agent back before its turn is not sent a recovery") {
    const auto dead_ms = silence_node(fixture);
    fixture.heartbeat("n1");  // everyone is back at once
    fixture.advance_with_heartbeats(fixture.now() + 10'000, {"n1"});
    REQUIRE(recover_times(fixture) == std::vector<time_ms>(5, dead_ms));
    REQUIRE(fixture.state_of("a0") == agent_state::healthy);
  }
}
