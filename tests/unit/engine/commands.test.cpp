// Command delivery: unacked commands are resent with backoff under their id, ids never
// repeat, and a command for a dead node is re-routed (a retry) or dropped with an alert.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace rrh;
using namespace rrh::engine;
using namespace rrh::engine::test;

namespace {

resilience_config command_config() {
  auto config = quiet_config();
  config.command_retransmit_initial_ms = 1000;
  config.command_retransmit_max_ms = 8000;
  config.retry_backoff = backoff_policy::fixed;
  config.task_retry_delay_ms = 1000;
  return config;
}

std::vector<time_ms> send_times(const engine_fixture& fixture, std::uint64_t id) {
  std::vector<time_ms> times;
  for (const auto& sent : fixture.commands()) {
    if (sent.message.id == id) times.push_back(sent.at_ms);
  }
  return times;
}

}  // namespace

TEST_CASE("commands are resent until acked", "[engine][commands]") {
  engine_fixture fixture(command_config());
  fixture.register_agent("n1", "a1");
  fixture.fail_task("n1", "t1", "a1", 1, false, "Fatal");  // a task.rollback to deliver
  const auto rollback = fixture.commands_of<commands::task_rollback>()[0];
  const auto sent_ms = rollback.at_ms;

  SECTION("unacked: resent under the same id with doubling delays up to the cap") {
    fixture.advance_with_heartbeats(sent_ms + 30'000, {"n1"});
    REQUIRE(send_times(fixture, rollback.message.id) ==
            std::vector<time_ms>{sent_ms, sent_ms + 1000, sent_ms + 3000, sent_ms + 7000, sent_ms + 15'000,
                                 sent_ms + 23'000});
    REQUIRE(fixture.subject().pending(rollback.message.id)->sends == 6);
    REQUIRE(fixture.subject().stats().commands_retransmitted == 5);
  }

  SECTION("acked: no longer pending, no longer resent") {
    fixture.advance_with_heartbeats(sent_ms + 2000, {"n1"});
    fixture.ack_command("n1", rollback.message.id);
    REQUIRE(fixture.subject().pending(rollback.message.id) == nullptr);
    REQUIRE(fixture.subject().stats().commands_acked == 1);
    fixture.advance_with_heartbeats(sent_ms + 60'000, {"n1"});
    REQUIRE(send_times(fixture, rollback.message.id) == std::vector<time_ms>{sent_ms, sent_ms + 1000});
  }

  SECTION("a repeated ack changes nothing") {
    fixture.ack_command("n1", rollback.message.id);
    const auto acked = fixture.subject().stats().commands_acked;
    fixture.ack_command("n1", rollback.message.id);
    REQUIRE(fixture.subject().stats().commands_acked == acked);
    REQUIRE(fixture.subject().pending_count() == 0);
  }

  SECTION("command ids increase and never repeat") {
    fixture.register_agent("n1", "a2", "", "", "e1");
    for (int task = 2; task <= 6; ++task) fixture.fail_task("n1", "t" + std::to_string(task), "a1");
    fixture.advance_with_heartbeats(sent_ms + 20'000, {"n1"});
    for (int error = 0; error < 5; ++error) fixture.episode_error("n1", "e1");
    std::vector<std::uint64_t> first_sends;
    std::set<std::uint64_t> seen;
    for (const auto& sent : fixture.commands()) {
      if (seen.insert(sent.message.id).second) first_sends.push_back(sent.message.id);
    }
    REQUIRE(first_sends.size() >= 7);  // a rollback, five retries and a shutdown at least
    REQUIRE(std::is_sorted(first_sends.begin(), first_sends.end()));
    REQUIRE(std::adjacent_find(first_sends.begin(), first_sends.end()) == first_sends.end());
    REQUIRE(first_sends.back() < fixture.subject().next_command_id());
    for (const auto& sent : fixture.commands()) REQUIRE(sent.message.id > 0);
  }
}

TEST_CASE("a command for a dead node does not wait for it", "[engine][commands]") {
  auto config = command_config();
  config.task_retry_delay_ms = 1000;
  engine_fixture fixture(config);
  fixture.register_agent("n1", "a1", "gpu");
  fixture.register_agent("n2", "a2", "gpu");
  fixture.fail_task("n1", "t1", "a1", 1, true, "Timeout", {0x2a}, {}, "gpu");
  fixture.advance_with_heartbeats(fixture.now() + 1000, {"n1", "n2"});
  const auto first = fixture.commands_of<commands::task_retry>();
  REQUIRE(first.size() == 1);
  REQUIRE(first[0].message.node == "n1");

  SECTION("an unacked task.retry to a node that died is re-routed within the pool") {
    fixture.advance_with_heartbeats(fixture.now() + 20'000, {"n2"});  // n1 falls silent
    REQUIRE(fixture.events_of<events::agent_dead>().size() == 1);
    // Within recovery_timeout of its death the node may only be unreachable and may have
    // run the retry: it keeps the retry.
    const auto died_at = fixture.times_of<events::agent_dead>()[0];
    fixture.advance_with_heartbeats(died_at + config.recovery_timeout_ms - 1, {"n2"});
    for (const auto& sent : fixture.commands_of<commands::task_retry>()) REQUIRE(sent.message.node == "n1");
    fixture.advance_with_heartbeats(died_at + config.recovery_timeout_ms + 20'000, {"n2"});
    const auto retries = fixture.commands_of<commands::task_retry>();
    const auto rerouted = std::find_if(retries.begin(), retries.end(),
                                       [](const auto& sent) { return sent.message.node == "n2"; });
    REQUIRE(rerouted != retries.end());
    const auto& retry = body_of<commands::task_retry>(*rerouted);
    REQUIRE(retry.agent == "a2");
    REQUIRE(retry.from_agent == "a1");
    REQUIRE(retry.attempt == 2);  // the undelivered attempt does not count
    REQUIRE(retry.checkpoint == byte_buffer{0x2a});
    REQUIRE(rerouted->message.id != first[0].message.id);
    REQUIRE(fixture.subject().pending(first[0].message.id) == nullptr);
    REQUIRE(rerouted->at_ms > fixture.times_of<events::agent_dead>()[0]);
  }

  SECTION("another command to a dead node is dropped with an alert") {
    fixture.fail_task("n1", "t2", "a1", 1, false, "Fatal");
    const auto rollback = fixture.commands_of<commands::task_rollback>()[0];
    fixture.advance_with_heartbeats(fixture.now() + 20'000 + config.recovery_timeout_ms, {"n2"});
    REQUIRE(fixture.subject().pending(rollback.message.id) == nullptr);
    REQUIRE(fixture.subject().stats().commands_dropped == 1);
    const auto alerts = fixture.alerts("command.dropped");
    REQUIRE(alerts.size() == 1);
    REQUIRE(alerts[0].message.find("task.rollback") != std::string::npos);
  }
}
