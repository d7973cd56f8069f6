// Delivery semantics: every critical event applied once and in order per (node,
// incarnation), cumulative acks, and kinds the processor does not consume ignored.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

TEST_CASE("critical events are applied once and in order per node incarnation", "[engine][delivery]") {
  engine_fixture fixture;
  auto& sender = fixture.node("n1", 7);

  SECTION("in-order events are applied and acked cumulatively with the incarnation") {
    fixture.register_agent("n1", "a1");
    fixture.register_agent("n1", "a2");
    REQUIRE(fixture.subject().stats().events_applied == 2);
    REQUIRE(fixture.subject().agent_count() == 2);
    const auto ack = fixture.last_ack("n1");
    REQUIRE(ack);
    REQUIRE(ack->incarnation == 7);
    REQUIRE(ack->seq == 2);
    REQUIRE(fixture.subject().node("n1")->applied_seq == 2);
  }

  SECTION("a late first event of an incarnation seen only in heartbeats cannot take the node back") {
    // Incarnation 7 heartbeats, but its critical events are lost; it crashes, 8 starts.
    fixture.heartbeat("n1");
    const auto first_of_7 = fixture.critical(sender, events::episode_started{"old", {}, {}});
    auto& restarted = fixture.node("n1");
    restarted.incarnation = 8;
    restarted.next_seq = 1;
    fixture.register_agent("n1", "a1");
    fixture.register_agent("n1", "a2");
    REQUIRE(fixture.subject().node("n1")->incarnation == 8);
    // Seq 1 of incarnation 7 arrives late: stale, the node stays at 8 and keeps its events.
    fixture.deliver(first_of_7);
    REQUIRE(fixture.subject().node("n1")->incarnation == 8);
    REQUIRE(fixture.subject().node("n1")->applied_seq == 2);
    REQUIRE(fixture.subject().stats().events_stale_incarnation == 1);
    const auto& retired = fixture.subject().node("n1")->retired_incarnations;
    REQUIRE(std::find(retired.begin(), retired.end(), 7) != retired.end());
  }

  SECTION("a duplicate is acked again and not applied again") {
    fixture.register_agent("n1", "a1");
    const auto failure = fixture.critical(sender, events::task_failed{"t1", "a1", "Timeout", "", true, 1, "", {}});
    fixture.deliver(failure);
    REQUIRE(fixture.subject().task("t1")->failures == 1);
    fixture.clear_log();

    fixture.deliver(failure);
    REQUIRE(fixture.subject().stats().events_duplicate == 1);
    REQUIRE(fixture.subject().stats().events_applied == 2);
    REQUIRE(fixture.subject().task("t1")->failures == 1);
    REQUIRE(fixture.events_of<events::task_retry_scheduled>().empty());
    const auto ack = fixture.last_ack("n1");
    REQUIRE(ack);
    REQUIRE(ack->incarnation == 7);
    REQUIRE(ack->seq == 2);
  }

  SECTION("an event after a gap is dropped and the last contiguous seq is acked") {
    fixture.register_agent("n1", "a1");  // seq 1
    const auto lost = fixture.critical(sender, events::agent_registered{"a2", "", {}, "", 0});  // seq 2
    const auto after_gap = fixture.critical(sender, events::agent_registered{"a3", "", {}, "", 0});  // seq 3
    fixture.clear_log();
    fixture.deliver(after_gap);
    REQUIRE(fixture.subject().stats().events_out_of_order == 1);
    REQUIRE(fixture.subject().agent("a3") == nullptr);
    REQUIRE(fixture.last_ack("n1")->seq == 1);

    // The sender goes back to the gap and resends in order: both apply.
    fixture.deliver(lost);
    fixture.deliver(after_gap);
    REQUIRE(fixture.subject().agent("a2") != nullptr);
    REQUIRE(fixture.subject().agent("a3") != nullptr);
    REQUIRE(fixture.last_ack("n1")->seq == 3);
  }

  SECTION("an event after a gap before anything was applied is dropped without an ack") {
    fixture.critical(sender, events::agent_registered{"a1", "", {}, "", 0});  // seq 1, lost
    const auto second = fixture.critical(sender, events::agent_registered{"a2", "", {}, "", 0});
    fixture.deliver(second);
    REQUIRE(fixture.subject().agent("a2") == nullptr);
    REQUIRE(fixture.acks().empty());
  }

  SECTION("a new incarnation starting at seq 1 is accepted and its agents' retry state kept") {
    auto config = quiet_config();
    config.retry_backoff = backoff_policy::fixed;
    config.task_retry_delay_ms = 5000;
    engine_fixture restarted(config);
    auto& node = restarted.node("n1", 7);
    restarted.register_agent("n1", "a1");
    restarted.fail_task("n1", "t1", "a1");
    REQUIRE(restarted.subject().task("t1")->state == task_state::retry_scheduled);
    const auto due_ms = restarted.subject().task("t1")->retry_due_ms;

    // The node restarts: a new incarnation, numbering from 1 again.
    node.incarnation = 8;
    node.next_seq = 1;
    restarted.register_agent("n1", "a1");
    REQUIRE(restarted.subject().node("n1")->incarnation == 8);
    REQUIRE(restarted.subject().node("n1")->applied_seq == 1);
    REQUIRE(restarted.last_ack("n1")->incarnation == 8);
    REQUIRE(restarted.last_ack("n1")->seq == 1);
    const auto* task = restarted.subject().task("t1");
    REQUIRE(task != nullptr);
    REQUIRE(task->state == task_state::retry_scheduled);
    REQUIRE(task->failures == 1);
    REQUIRE(task->retry_due_ms == due_ms);

    restarted.advance_to(due_ms);
    REQUIRE(restarted.commands_of<commands::task_retry>().size() == 1);
  }

  SECTION("a new incarnation that does not start at seq 1 is not applied") {
    fixture.register_agent("n1", "a1");
    sender.incarnation = 9;
    sender.next_seq = 4;
    fixture.register_agent("n1", "a2");
    REQUIRE(fixture.subject().agent("a2") == nullptr);
    REQUIRE(fixture.subject().stats().events_stale_incarnation == 1);
    REQUIRE(fixture.subject().node("n1")->incarnation == 7);
  }

  SECTION("a late retransmission from the previous incarnation is not applied again") {
    fixture.register_agent("n1", "a1");
    const auto old_failure = fixture.critical(sender, events::task_failed{"t1", "a1", "Timeout", "", true, 1, "", {}});
    fixture.deliver(old_failure);
    REQUIRE(fixture.subject().task("t1")->failures == 1);

    sender.incarnation = 8;
    sender.next_seq = 1;
    fixture.register_agent("n1", "a1");
    // Copies of the old incarnation's events, still queued somewhere, arrive late.
    event old_registration;
    old_registration.header.node = "n1";
    old_registration.header.incarnation = 7;
    old_registration.header.seq = 1;
    old_registration.body = events::agent_registered{"a1", "", {}, "", 0};
    fixture.deliver(old_registration);
    fixture.deliver(old_failure);
    REQUIRE(fixture.subject().node("n1")->incarnation == 8);
    REQUIRE(fixture.subject().task("t1")->failures == 1);
    REQUIRE(fixture.subject().stats().events_stale_incarnation == 2);

    // The new incarnation keeps going where it was.
    fixture.fail_task("n1", "t2", "a1");
    REQUIRE(fixture.subject().node("n1")->applied_seq == 2);
    REQUIRE(fixture.subject().task("t2") != nullptr);
  }

  SECTION("events of a kind the processor does not consume are ignored and not acked") {
    fixture.register_agent("n1", "a1");
    fixture.clear_log();
    const auto ignored_before = fixture.subject().stats().events_ignored;
    event derived;
    derived.header.node = "n1";
    derived.header.incarnation = 7;
    derived.header.seq = 2;
    derived.body = events::agent_dead{"a1", 9000, "said so"};
    fixture.deliver(derived);
    REQUIRE(fixture.subject().stats().events_ignored == ignored_before + 1);
    REQUIRE(fixture.state_of("a1") == agent_state::healthy);
    REQUIRE(fixture.subject().node("n1")->applied_seq == 1);
    REQUIRE(fixture.acks().empty());
    REQUIRE(fixture.commands().empty());
  }

  SECTION("a critical kind without a seq is ignored") {
    event unsequenced;
    unsequenced.header.node = "n1";
    unsequenced.header.incarnation = 7;
    unsequenced.header.seq = 0;
    unsequenced.body = events::agent_registered{"a1", "", {}, "", 0};
    fixture.deliver(unsequenced);
    REQUIRE(fixture.subject().agent("a1") == nullptr);
    REQUIRE(fixture.subject().stats().events_ignored == 1);
  }
}
