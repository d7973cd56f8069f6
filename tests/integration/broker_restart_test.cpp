// The broker is stateless: SIGKILL it under live agents, start it again on the same
// endpoints, and every critical event still arrives, exactly once after de-duplication.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <csignal>

#include "bus_peer.hpp"

using namespace std::chrono_literals;
using rrh::test::wait_until;

namespace {

constexpr int tasks_per_agent = 40;
constexpr int agents_per_node = 2;
// Per node: one agent.registered per agent, then task.started + one outcome per task.
constexpr std::uint64_t events_while_running = agents_per_node * (1 + 2 * tasks_per_agent);
// On SIGTERM each agent also sends agent.unregistered.
constexpr std::uint64_t events_in_total = events_while_running + agents_per_node;

std::vector<std::string> broker_arguments(const std::string& events_in,
                                          const std::string& events_out,
                                          const std::string& commands_in,
                                          const std::string& commands_out) {
  return {"--events-in",   events_in,   "--events-out",   events_out,
          "--commands-in", commands_in, "--commands-out", commands_out};
}

std::uint64_t incarnation_of(const rrh::test::bus_peer& peer, const std::string& node) {
  for (const auto& [stream, events] : peer.streams()) {
    if (stream.first == node) return stream.second;
  }
  return 0;
}

}  // namespace

TEST_CASE("a broker restarted under live agents loses no critical event",
          "[broker][shim][integration]") {
  const std::string any = "tcp://127.0.0.1:*";
  auto broker = std::make_unique<rrh::test::child_process>(rrh::test::binary_path("rrh-broker"),
                                                           broker_arguments(any, any, any, any));
  const auto ready = broker->wait_line("rrh-broker ready", rrh::test::wait_deadline_default);
  REQUIRE(ready);
  const auto events_in = rrh::ready_line_field(*ready, "events-in");
  const auto events_out = rrh::ready_line_field(*ready, "events-out");
  const auto commands_in = rrh::ready_line_field(*ready, "commands-in");
  const auto commands_out = rrh::ready_line_field(*ready, "commands-out");

  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, events_out, commands_in);
  peer.auto_ack = true;

  const std::vector<std::string> nodes = {"restart-n1", "restart-n2"};
  std::vector<std::unique_ptr<rrh::test::child_process>> agents;
  for (std::size_t index = 0; index < nodes.size(); ++index) {
    agents.push_back(std::make_unique<rrh::test::child_process>(
        rrh::test::binary_path("rrh-agent"),
        std::vector<std::string>{"--node", nodes[index], "--agents",
                                 std::to_string(agents_per_node), "--task-ms", "10", "--fail-rate",
                                 "0.3", "--tasks", std::to_string(tasks_per_agent),
                                 "--heartbeat-ms", "100", "--seed", std::to_string(index + 1),
                                 "--events", events_in, "--commands", commands_out},
        std::vector<std::string>{"RRH_RETRANSMIT_INITIAL_MS=50", "RRH_RETRANSMIT_MAX_MS=400"}));
  }

  const auto received = [&peer] {
    std::size_t total = 0;
    for (const auto& [stream, events] : peer.streams()) total += events.size();
    return total;
  };
  // Mid-stream: some events are in, most are still to come.
  REQUIRE(wait_until([&] {
    peer.pump();
    return received() >= 30;
  }));
  REQUIRE(received() < 2 * events_while_running);

  broker->signal(SIGKILL);
  REQUIRE(broker->wait_exit(5s));
  broker = std::make_unique<rrh::test::child_process>(
      rrh::test::binary_path("rrh-broker"),
      broker_arguments(events_in, events_out, commands_in, commands_out));
  REQUIRE(broker->wait_line("rrh-broker ready", rrh::test::wait_deadline_default));

  const auto all_arrived = [&](std::uint64_t expected) {
    return wait_until(
        [&] {
          peer.pump();
          for (const auto& node : nodes) {
            if (peer.contiguous(node, incarnation_of(peer, node)) < expected) return false;
          }
          return true;
        },
        30s);
  };
  REQUIRE(all_arrived(events_while_running));

  for (auto& agent : agents) agent->signal(SIGTERM);
  REQUIRE(all_arrived(events_in_total));
  for (auto& agent : agents) {
    const auto status = agent->wait_exit(10s);
    REQUIRE(status);
    REQUIRE(WIFEXITED(*status));
    REQUIRE(WEXITSTATUS(*status) == 0);
  }

  // Exactly once after de-duplication: per node, seq 1..N with nothing beyond, the copies
  // of one seq identical, and each task reported started once and finished once.
  REQUIRE(peer.conflicting_copies == 0);
  for (const auto& node : nodes) {
    const auto incarnation = incarnation_of(peer, node);
    const auto stream = peer.streams().at({node, incarnation});
    REQUIRE(stream.size() == events_in_total);
    REQUIRE(stream.rbegin()->first == events_in_total);
    std::map<std::string, int> started;
    std::map<std::string, int> finished;
    for (const auto& [seq, message] : stream) {
      if (const auto* start = std::get_if<rrh::events::task_started>(&message.body))
        ++started[start->task];
      if (const auto* done = std::get_if<rrh::events::task_succeeded>(&message.body))
        ++finished[done->task];
      if (const auto* failed = std::get_if<rrh::events::task_failed>(&message.body))
        ++finished[failed->task];
    }
    REQUIRE(started.size() == agents_per_node * tasks_per_agent);
    REQUIRE(finished.size() == agents_per_node * tasks_per_agent);
    for (const auto& [task, count] : started) REQUIRE(count == 1);
    for (const auto& [task, count] : finished) REQUIRE(count == 1);
  }
}
