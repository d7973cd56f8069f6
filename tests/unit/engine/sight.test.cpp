// The processor's own faults must not hurt the fleet: while it cannot see (a stall of its
// own, the bus unreachable, the store failing) nobody is judged by silence; a mass silence
// pauses recoveries (the disruption guard); dead nodes are forgotten after node_retention.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

resilience_config sight_config() { return missed_heartbeats_config(); }

// `count` nodes n1.. with one agent each (a1..), each heartbeating once now.
void fleet(engine_fixture& fixture, int count) {
  for (int index = 1; index <= count; ++index) {
    const auto id = std::to_string(index);
    fixture.register_agent("n" + id, "a" + id);
    fixture.heartbeat("n" + id);
  }
}

std::vector<event> heartbeats_of(engine_fixture& fixture, int first, int last) {
  std::vector<event> batch;
  for (int index = first; index <= last; ++index) batch.push_back(fixture.heartbeat_event(fixture.node("n" + std::to_string(index))));
  return batch;
}

}  // namespace

TEST_CASE("a processor that could not see judges nobody by the silence it missed", "[engine][sight]") {
  engine_fixture fixture(sight_config());
  fleet(fixture, 10);
  fixture.advance_with_heartbeats(fixture.now() + 3000, {"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"});
  const auto stalled_at = fixture.now();
  fixture.stall(20'000);  // the processor stopped; the nodes went on heartbeating into its queue

  SECTION("without lose_sight the first event of the backlog fires every overdue check (the bug)") {
    fixture.deliver_batch(heartbeats_of(fixture, 1, 10));
    REQUIRE(fixture.events_of<events::agent_dead>().size() == 9);
  }

  SECTION("blind: the backlog is applied, nobody dies, no recovery is sent") {
    fixture.lose_sight(stalled_at);
    fixture.deliver_batch(heartbeats_of(fixture, 1, 10));
    fixture.tick();
    REQUIRE(fixture.subject().blind());
    REQUIRE(fixture.events_of<events::agent_dead>().empty());
    REQUIRE(fixture.commands_of<commands::agent_recover>().empty());
    fixture.regain_sight();
    REQUIRE_FALSE(fixture.subject().blind());
    fixture.advance_with_heartbeats(fixture.now() + 60'000, {"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"});
    REQUIRE(fixture.events_of<events::agent_dead>().empty());
    REQUIRE(fixture.subject().stats().blind_spells == 1);
    for (int index = 1; index <= 10; ++index) REQUIRE(fixture.state_of("a" + std::to_string(index)) == agent_state::healthy);
  }

  SECTION("a node that died while the processor was blind is declared dead within its bound after it") {
    fixture.lose_sight(stalled_at);
    fixture.deliver_batch(heartbeats_of(fixture, 1, 9));  // n10 sent nothing: it died
    fixture.regain_sight();
    const auto sight_ms = fixture.now();
    fixture.advance_with_heartbeats(sight_ms + 4999, {"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"});
    REQUIRE(fixture.events_of<events::agent_dead>().empty());
    fixture.advance_with_heartbeats(sight_ms + 5000, {"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"});
    const auto dead = fixture.events_of<events::agent_dead>();
    REQUIRE(dead.size() == 1);
    REQUIRE(dead[0].agent == "a10");
    REQUIRE(fixture.times_of<events::agent_dead>() == std::vector<time_ms>{sight_ms + 5000});
  }
}

TEST_CASE("timers that judge silence are held while blind and fire late by the blind time", "[engine][sight]") {
  auto config = sight_config();
  config.recovery_timeout_ms = 30'000;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1", "", "launcher-1");
  fixture.heartbeat("n1");
  fixture.advance(5000);  // a1 dead, agent.recover sent
  const auto recovers = fixture.commands_of<commands::agent_recover>();
  REQUIRE(recovers.size() == 1);
  fixture.ack_command("launcher-1", recovers[0].message.id);
  const auto sent_ms = recovers[0].at_ms;

  fixture.advance(10'000);
  fixture.lose_sight(fixture.now());
  fixture.advance(30'000);  // the recovery's timeout falls due while blind
  REQUIRE(fixture.state_of("a1") == agent_state::recovering);
  fixture.regain_sight();
  REQUIRE(fixture.state_of("a1") == agent_state::recovering);
  // Its timeout fires 30 s late; the next attempt follows at once (the cooldown is over).
  fixture.advance_to(sent_ms + 30'000 + 30'000 - 1);
  REQUIRE(fixture.commands_of<commands::agent_recover>().size() == 1);
  fixture.advance_to(sent_ms + 30'000 + 30'000);
  const auto again = fixture.commands_of<commands::agent_recover>();
  REQUIRE(again.size() == 2);
  REQUIRE(again[1].at_ms == sent_ms + 60'000);
}

TEST_CASE("disruption guard: a mass silence pauses recoveries", "[engine][sight][disruption]") {
  auto config = sight_config();
  config.disruption_min_nodes = 10;

  SECTION("more than disruption_threshold of the nodes silent: no recovery, no attempt, then back") {
    engine_fixture fixture(config);
    fleet(fixture, 12);
    const std::vector<std::string> beating = {"n9", "n10", "n11", "n12"};  // 8 of 12 fall silent
    fixture.advance_with_heartbeats(fixture.now() + 30'000, beating);
    REQUIRE(fixture.subject().disrupted());
    REQUIRE(fixture.alerts("fleet.disrupted").size() == 1);
    REQUIRE(fixture.events_of<events::agent_dead>().size() == 8);
    REQUIRE(fixture.commands_of<commands::agent_recover>().empty());
    REQUIRE(fixture.subject().agent("a1")->recovery_attempts == 0);
    // The silent nodes answer again.
    for (int index = 1; index <= 8; ++index) fixture.heartbeat("n" + std::to_string(index));
    REQUIRE_FALSE(fixture.subject().disrupted());
    REQUIRE(fixture.alerts("fleet.answering").size() == 1);
    fixture.advance_with_heartbeats(fixture.now() + 30'000, {"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n11", "n12"});
    REQUIRE(fixture.commands_of<commands::agent_recover>().empty());
    for (int index = 1; index <= 12; ++index) REQUIRE(fixture.state_of("a" + std::to_string(index)) == agent_state::healthy);
  }

  SECTION("a disruption that ends with the silent nodes still dead resumes their recoveries") {
    engine_fixture fixture(config);
    fleet(fixture, 12);
    fixture.advance_with_heartbeats(fixture.now() + 30'000, {"n9", "n10", "n11", "n12"});
    REQUIRE(fixture.commands_of<commands::agent_recover>().empty());
    // Four of the silent nodes answer: 4 of 12 silent is under the threshold.
    for (int index = 1; index <= 4; ++index) fixture.heartbeat("n" + std::to_string(index));
    REQUIRE_FALSE(fixture.subject().disrupted());
    // The four still silent get a fresh window, then their verdict, then their recoveries.
    const auto answered_ms = fixture.now();
    fixture.advance_with_heartbeats(answered_ms + 4999, {"n1", "n2", "n3", "n4", "n9", "n10", "n11", "n12"});
    REQUIRE(fixture.commands_of<commands::agent_recover>().empty());
    fixture.advance_with_heartbeats(answered_ms + 6000, {"n1", "n2", "n3", "n4", "n9", "n10", "n11", "n12"});
    REQUIRE(fixture.commands_of<commands::agent_recover>().size() == 4);
  }

  SECTION("disruption_recovery_rate_per_s > 0: recoveries go on at the slow pace") {
    config.disruption_recovery_rate_per_s = 0.1;  // one per 10 s
    engine_fixture fixture(config);
    fleet(fixture, 12);
    fixture.advance_with_heartbeats(fixture.now() + 5000, {"n9", "n10", "n11", "n12"});
    const auto dead_ms = fixture.now();
    fixture.advance_with_heartbeats(dead_ms + 35'000, {"n9", "n10", "n11", "n12"});
    const auto recovers = fixture.commands_of<commands::agent_recover>();
    REQUIRE(recovers.size() >= 3);
    REQUIRE(recovers.size() <= 5);
    for (std::size_t at = 1; at < recovers.size(); ++at) REQUIRE(recovers[at].at_ms - recovers[at - 1].at_ms >= 9'999);
  }

  SECTION("nodes dying one by one never add up to a disruption, not even after a fresh window") {
    engine_fixture fixture(config);
    fleet(fixture, 12);
    std::vector<std::string> beating;
    for (int index = 1; index <= 12; ++index) beating.push_back("n" + std::to_string(index));
    for (int dying = 0; dying < 8; ++dying) {
      beating.erase(beating.begin());  // n1, then n2, ... fall silent 30 s apart
      fixture.advance_with_heartbeats(fixture.now() + 30'000, beating);
    }
    REQUIRE(fixture.events_of<events::agent_dead>().size() == 8);
    REQUIRE_FALSE(fixture.subject().disrupted());
    REQUIRE(fixture.alerts("fleet.disrupted").empty());
    REQUIRE(fixture.commands_of<commands::agent_recover>().size() >= 8);
    // The processor loses sight and regains it: every node gets a fresh window, and the
    // eight dead ones fall silent again together, but they host no live agent.
    fixture.lose_sight(fixture.now());
    fixture.regain_sight();
    fixture.advance_with_heartbeats(fixture.now() + 30'000, beating);
    REQUIRE_FALSE(fixture.subject().disrupted());
    REQUIRE(fixture.alerts("fleet.disrupted").empty());
  }

  SECTION("a fleet smaller than disruption_min_nodes is judged node by node") {
    engine_fixture fixture(config);
    fleet(fixture, 5);
    fixture.advance(30'000);
    REQUIRE_FALSE(fixture.subject().disrupted());
    REQUIRE(fixture.commands_of<commands::agent_recover>().size() == 5);
  }
}

TEST_CASE("node_retention: a node dead that long is forgotten with its agents", "[engine][limits][retention]") {
  auto config = sight_config();
  config.node_retention_ms = 60'000;
  config.max_nodes = 3;
  engine_fixture fixture(config);
  fleet(fixture, 3);
  fixture.register_agent("n1", "a1b");
  fixture.heartbeat("n4");  // over max_nodes: refused, with an alert
  REQUIRE(fixture.subject().node("n4") == nullptr);
  REQUIRE(fixture.alerts("limit.nodes").size() == 1);

  fixture.advance_with_heartbeats(fixture.now() + 5000 + 60'000 - 1, {"n2"});
  REQUIRE(fixture.subject().node("n1") != nullptr);
  fixture.advance_with_heartbeats(fixture.now() + 1, {"n2"});
  REQUIRE(fixture.subject().node("n1") == nullptr);
  REQUIRE(fixture.subject().agent("a1") == nullptr);
  REQUIRE(fixture.subject().agent("a1b") == nullptr);
  REQUIRE(fixture.subject().node("n2") != nullptr);
  REQUIRE(fixture.subject().agent("a2") != nullptr);
  REQUIRE(fixture.subject().stats().nodes_forgotten >= 1);
  const auto forgotten = fixture.events_of<events::node_forgotten>();
  REQUIRE_FALSE(forgotten.empty());
  REQUIRE(forgotten[0].node == "n1");
  REQUIRE(forgotten[0].agents == std::vector<std::string>{"a1", "a1b"});
  REQUIRE(forgotten[0].dead_ms == 60'000);
  fixture.advance_with_heartbeats(fixture.now() + 1000, {"n2"});
  REQUIRE(fixture.subject().node("n3") == nullptr);
  // Room again: a new node is accepted.
  fixture.register_agent("n4", "a4");
  REQUIRE(fixture.subject().node("n4") != nullptr);
  REQUIRE(fixture.subject().agent("a4") != nullptr);
}

TEST_CASE("after a long blindness a phi detector judges from a fresh window, not from the gap", "[engine][sight]") {
  engine_fixture fixture(quiet_config());  // phi accrual, Akka's defaults
  std::vector<std::string> beating;
  for (int index = 1; index <= 10; ++index) beating.push_back("n" + std::to_string(index));
  fleet(fixture, 10);
  fixture.advance_with_heartbeats(fixture.now() + 30'000, beating);
  fixture.lose_sight(fixture.now());
  fixture.stall(60'000);
  fixture.deliver_batch(heartbeats_of(fixture, 1, 9));  // n10 died while the processor was blind
  fixture.regain_sight();
  const auto sight_ms = fixture.now();
  beating.pop_back();
  fixture.advance_with_heartbeats(sight_ms + 15'000, beating);
  const auto dead = fixture.events_of<events::agent_dead>();
  REQUIRE(dead.size() == 1);
  REQUIRE(dead[0].agent == "a10");
  // About as long as a node that falls silent at sight_ms takes with the defaults (~4.5 s
  // plus the pause), not the minutes that a 60 s interval in its statistics would take.
  REQUIRE(fixture.times_of<events::agent_dead>()[0] <= sight_ms + 10'000);
}

TEST_CASE("a blind spell does not revive dead nodes or restart their node_retention", "[engine][sight][retention]") {
  auto config = sight_config();
  config.node_retention_ms = 60'000;
  engine_fixture fixture(config);
  fleet(fixture, 2);
  fixture.advance_with_heartbeats(fixture.now() + 5000, {"n2"});  // n1 dead
  REQUIRE(fixture.subject().agent("a1")->state == agent_state::recovering);
  const auto dead_ms = fixture.times_of<events::agent_dead>().at(0);
  fixture.advance_with_heartbeats(fixture.now() + 20'000, {"n2"});
  fixture.lose_sight(fixture.now());
  fixture.advance_with_heartbeats(fixture.now() + 2000, {"n2"});
  fixture.regain_sight();
  // Forgotten node_retention after its death, as if the processor had never been blind
  // (a fresh window for a dead node would restart the retention from a new verdict).
  fixture.advance_with_heartbeats(dead_ms + 60'000 - 1, {"n2"});
  REQUIRE(fixture.subject().node("n1") != nullptr);
  fixture.advance_with_heartbeats(dead_ms + 60'000, {"n2"});
  REQUIRE(fixture.subject().node("n1") == nullptr);
  REQUIRE(fixture.subject().node("n2") != nullptr);
}
