// Active health checks: agent.probe every agent_health_check_interval, response time
// measured on the processor's clock, slow or silent agents suspect, rising trend alerted.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

constexpr time_ms interval_ms = 30'000;

resilience_config probe_config() {
  auto config = quiet_config();
  config.agent_health_check_interval_ms = interval_ms;
  config.probe_slow_ms = 2000;
  config.probe_timeout_ms = 10'000;
  config.acceptable_pause_ms = 86'400'000;  // no node dies for silence in these tests
  return config;
}

// Runs the clock timer by timer until the next agent.probe goes out; returns it.
sent_command next_probe(engine_fixture& fixture) {
  const auto before = fixture.commands_of<commands::agent_probe>().size();
  while (fixture.commands_of<commands::agent_probe>().size() == before) {
    const auto due = fixture.subject().next_deadline();
    REQUIRE(due);
    fixture.advance_to(*due);
  }
  return fixture.commands_of<commands::agent_probe>().back();
}

// The node answers `probe` after `rtt_ms`.
void answer(engine_fixture& fixture, const sent_command& probe, time_ms rtt_ms) {
  fixture.advance_to(probe.at_ms + rtt_ms);
  event reply;
  reply.header.node = probe.message.node;
  reply.header.incarnation = fixture.node(probe.message.node).incarnation;
  reply.header.seq = 0;
  reply.body = events::probe_reply{probe.message.id, body_of<commands::agent_probe>(probe).agent};
  fixture.deliver(reply);
}

}  // namespace

TEST_CASE("agents are probed actively and judged by their response time", "[engine][probes]") {
  engine_fixture fixture(probe_config());
  fixture.register_agent("n1", "a1");
  const auto registered_ms = fixture.now();

  SECTION("the first probe lands at a random point of the interval, then one per interval") {
    const auto first = next_probe(fixture);
    REQUIRE(first.at_ms >= registered_ms + 1);
    REQUIRE(first.at_ms <= registered_ms + interval_ms);
    REQUIRE(first.message.node == "n1");
    REQUIRE(body_of<commands::agent_probe>(first).agent == "a1");
    REQUIRE(fixture.subject().pending(first.message.id) == nullptr);  // best-effort, not resent
    answer(fixture, first, 50);
    const auto second = next_probe(fixture);
    REQUIRE(second.at_ms == first.at_ms + interval_ms);
    answer(fixture, second, 50);
    REQUIRE(next_probe(fixture).at_ms == first.at_ms + 2 * interval_ms);
  }

  SECTION("agents registered together are probed at different offsets") {
    for (int index = 2; index <= 6; ++index) fixture.register_agent("n1", "a" + std::to_string(index));
    fixture.advance_to(registered_ms + interval_ms);
    std::set<time_ms> times;
    for (const auto& probe : fixture.commands_of<commands::agent_probe>()) times.insert(probe.at_ms);
    REQUIRE(fixture.commands_of<commands::agent_probe>().size() == 6);
    REQUIRE(times.size() > 1);
  }

  SECTION("a reply's round trip is measured into the agent's average and maximum") {
    answer(fixture, next_probe(fixture), 120);
    REQUIRE(fixture.subject().agent("a1")->probe_rtt_avg_ms == 120);
    REQUIRE(fixture.subject().agent("a1")->probe_rtt_max_ms == 120);
    answer(fixture, next_probe(fixture), 220);
    const auto* record = fixture.subject().agent("a1");
    REQUIRE(record->probe_rtt_avg_ms == 150);  // moving average, weight 0.3
    REQUIRE(record->probe_rtt_max_ms == 220);
    REQUIRE(record->probes_answered == 2);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
  }

  SECTION("a reply to an unknown or old probe id is not measured") {
    const auto probe = next_probe(fixture);
    auto wrong = probe;
    wrong.message.id = probe.message.id + 1000;
    answer(fixture, wrong, 100);
    REQUIRE(fixture.subject().agent("a1")->probes_answered == 0);
  }

  SECTION("a slow reply makes the agent suspect") {
    answer(fixture, next_probe(fixture), 2500);
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);
    const auto suspects = fixture.events_of<events::agent_suspect>();
    REQUIRE(suspects.size() == 1);
    REQUIRE(suspects[0].reason.find("slow probe response: 2500 ms") != std::string::npos);

    SECTION("and a fast reply later makes it healthy again") {
      answer(fixture, next_probe(fixture), 100);
      REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    }
  }

  SECTION("an unanswered probe makes the agent suspect after probe_timeout_ms") {
    const auto probe = next_probe(fixture);
    fixture.advance_to(probe.at_ms + 10'000 - 1);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    fixture.advance_to(probe.at_ms + 10'000);
    REQUIRE(fixture.state_of("a1") == agent_state::suspect);
    REQUIRE(fixture.times_of<events::agent_suspect>() == std::vector<time_ms>{probe.at_ms + 10'000});
    REQUIRE(fixture.events_of<events::agent_suspect>()[0].reason.find("probe unanswered") != std::string::npos);
  }

  SECTION("a probe answered in time does not time out") {
    const auto probe = next_probe(fixture);
    answer(fixture, probe, 300);
    fixture.advance_to(probe.at_ms + 20'000);
    REQUIRE(fixture.events_of<events::agent_suspect>().empty());
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
  }

  SECTION("a rising response time raises agent.response_time_rising once") {
    for (int probe = 0; probe < 5; ++probe) answer(fixture, next_probe(fixture), 100);
    answer(fixture, next_probe(fixture), 1500);
    answer(fixture, next_probe(fixture), 1500);
    REQUIRE(fixture.alerts("agent.response_time_rising").empty());
    answer(fixture, next_probe(fixture), 1500);  // average 1019 ms against a baseline near 300 ms
    const auto alerts = fixture.alerts("agent.response_time_rising");
    REQUIRE(alerts.size() == 1);
    REQUIRE(alerts[0].agent == "a1");
    REQUIRE(alerts[0].severity == "warning");
    answer(fixture, next_probe(fixture), 1500);
    REQUIRE(fixture.alerts("agent.response_time_rising").size() == 1);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);  // slow-ish, never over probe_slow
  }

  SECTION("a dead node's agents are not probed") {
    auto config = probe_config();
    config.acceptable_pause_ms = 3000;
    engine_fixture silent(config);
    silent.register_agent("n1", "a1");
    silent.advance(3 * interval_ms);
    REQUIRE(silent.events_of<events::agent_dead>().size() == 1);
    const auto died_ms = silent.times_of<events::agent_dead>()[0];
    for (const auto& probe : silent.commands_of<commands::agent_probe>()) REQUIRE(probe.at_ms < died_ms);
  }
}
