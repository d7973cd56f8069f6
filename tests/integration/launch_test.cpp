// rrh-launch end to end: a real broker, a real rrh-processor at test speed, and rrh-launch
// supervising a real rrh-agent, watched from the bus as a tap would. Every wait is on a
// condition with a deadline.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <set>

#include "processor_stack.hpp"

using namespace std::chrono_literals;
using rrh::test::elapsed_ms;
using rrh::test::wait_until;

namespace {

/// Test-speed recovery cooldown (test_speed_resilience's), in ms.
constexpr std::uint64_t recovery_cooldown_ms = 300;

struct stack : rrh::test::processor_stack {
  using processor_stack::processor_stack;

  /// rrh-launch for node `node` hosting `node`.a1, running `child` (a command line).
  std::unique_ptr<rrh::test::child_process> launch_child(const std::string& node,
                                                         const std::vector<std::string>& child) {
    std::vector<std::string> arguments = {"--node", node, "--agent", node + ".a1", "--events",
                                          broker.events_in, "--commands", broker.commands_out,
                                          "--heartbeat-ms", "100", "--grace-ms", "5000", "--log-level",
                                          "debug", "--"};
    arguments.insert(arguments.end(), child.begin(), child.end());
    return std::make_unique<rrh::test::child_process>(
        rrh::test::binary_path("rrh-launch"), arguments,
        std::vector<std::string>{"RRH_RETRANSMIT_INITIAL_MS=100", "RRH_RETRANSMIT_MAX_MS=500"});
  }

  /// rrh-launch for node `node` hosting `node`.a1, running rrh-agent with `agent_flags`.
  std::unique_ptr<rrh::test::child_process> launch(const std::string& node,
                                                   const std::vector<std::string>& agent_flags) {
    std::vector<std::string> child = {rrh::test::binary_path("rrh-agent"), "--agents", "1", "--task-ms", "50",
                                      "--heartbeat-ms", "100"};
    child.insert(child.end(), agent_flags.begin(), agent_flags.end());
    return launch_child(node, child);
  }

  /// Incarnations of `node` that registered an agent, in order of first appearance.
  std::vector<std::uint64_t> incarnations_of(const std::string& node) const {
    std::vector<std::uint64_t> found;
    for (const auto& [entry, registered] : recorder.events_of<rrh::events::agent_registered>()) {
      const auto incarnation = entry->message->header.incarnation;
      if (entry->message->header.node == node &&
          std::find(found.begin(), found.end(), incarnation) == found.end()) {
        found.push_back(incarnation);
      }
    }
    return found;
  }

  template <class Body>
  std::size_t count_about(const std::string& agent) const {
    std::size_t count = 0;
    for (const auto& [entry, body] : recorder.events_of<Body>()) count += body->agent == agent ? 1 : 0;
    return count;
  }

};

/// Pids of the children the launcher started, from its "child pid=N started" lines.
std::vector<pid_t> started_children(const rrh::test::child_process& launcher) {
  std::vector<pid_t> pids;
  for (const auto& line : launcher.lines()) {
    if (line.find("rrh-launch: child pid=") == std::string::npos || line.find(" started for node ") == std::string::npos) {
      continue;
    }
    pids.push_back(static_cast<pid_t>(std::stol(rrh::ready_line_field(line, "pid"))));
  }
  return pids;
}

/// True once `pid` no longer runs: gone, or a zombie waiting for a reaper that is not us.
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto state_at = text.rfind(')');
  return state_at != std::string::npos && state_at + 2 < text.size() && text[state_at + 2] == 'Z';
}

}  // namespace

TEST_CASE("rrh-launch reports a killed child at once and restarts it on agent.recover",
          "[launch][integration]") {
  stack bus("rrh-launch-kill");
  auto launcher = bus.launch("launch-node", {});
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("launch-node").size() == 1; }));
  const auto registered = bus.recorder.events_of<rrh::events::agent_registered>().front();
  CHECK(registered.second->agent == "launch-node.a1");
  CHECK(registered.second->supervisor == "launch-node.launcher");  // RRH_SUPERVISOR from the launcher
  // Healthy first: the agent answered the processor's probe.
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::probe_reply>().empty(); }));
  REQUIRE(started_children(*launcher).size() == 1);
  const pid_t first_child = started_children(*launcher).front();

  const auto killed_at = std::chrono::steady_clock::now();
  REQUIRE(::kill(first_child, SIGKILL) == 0);
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::node_exited>().empty(); }));
  const auto exited = bus.recorder.events_of<rrh::events::node_exited>().front();
  CHECK(exited.second->child == "launch-node");
  CHECK(exited.second->pid == static_cast<std::uint64_t>(first_child));
  CHECK(exited.second->signal == SIGKILL);
  CHECK(exited.second->reason == "killed by SIGKILL");
  CHECK(exited.second->agents == std::vector<std::string>{"launch-node.a1"});
  CHECK(exited.first->message->header.node == "launch-node.launcher");
  // At once: the phi detector needs about 0.7 s of silence at these settings.
  CHECK(elapsed_ms(killed_at, exited.first->arrived) <= 500.0);

  // The processor acted on the report, not on silence: its reason names the exit.
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::agent_dead>().empty(); }));
  const auto dead = bus.recorder.events_of<rrh::events::agent_dead>().front();
  CAPTURE(dead.second->reason, elapsed_ms(killed_at, dead.first->arrived));
  CHECK(dead.second->agent == "launch-node.a1");
  CHECK(dead.second->reason.find("killed by SIGKILL") != std::string::npos);
  CHECK(dead.first->arrived >= exited.first->arrived);

  REQUIRE(bus.wait_for([&] { return !bus.recorder.commands_of<rrh::commands::agent_recover>().empty(); }));
  const auto recover = bus.recorder.commands_of<rrh::commands::agent_recover>().front();
  CHECK(recover.first->relayed->node == "launch-node.launcher");
  CHECK(recover.second->agent == "launch-node.a1");
  CHECK(recover.second->attempt == 1);

  // A new incarnation of the node registers the agent again, and the processor sees it back.
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("launch-node").size() == 2; }));
  REQUIRE(bus.wait_for([&] { return bus.count_about<rrh::events::agent_recovered>("launch-node.a1") >= 1; }));
  REQUIRE(launcher->wait_line("restart #1 of node launch-node (command " +
                                  std::to_string(recover.first->relayed->id) + " agent.recover launch-node.a1 attempt 1)",
                              5s));
  const auto children = started_children(*launcher);
  REQUIRE(children.size() == 2);
  CHECK(children.back() != first_child);
  CHECK(process_gone(first_child));
  CHECK(!process_gone(children.back()));
  // The launcher accepted the command.
  REQUIRE(bus.wait_for([&] {
    for (const auto& [entry, ack] : bus.recorder.events_of<rrh::events::command_ack>()) {
      if (ack->command_id == recover.first->relayed->id) return true;
    }
    return false;
  }));
  for (const auto& [entry, ack] : bus.recorder.events_of<rrh::events::command_ack>()) {
    if (ack->command_id == recover.first->relayed->id) CHECK(ack->accepted);
  }
}

TEST_CASE("rrh-launch refuses as stale a recover naming an earlier child's incarnation",
          "[launch][integration]") {
  stack bus("rrh-launch-stale");
  auto launcher = bus.launch("stale-node", {});
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("stale-node").size() == 1; }));
  const auto first_incarnation = bus.incarnations_of("stale-node").front();
  // The child's node took the incarnation the launcher chose for it.
  CHECK(launcher->wait_line("incarnation " + std::to_string(first_incarnation) + "):", 5s));
  REQUIRE(started_children(*launcher).size() == 1);

  // The first child dies; the processor's recover replaces it with a new incarnation.
  REQUIRE(::kill(started_children(*launcher).front(), SIGKILL) == 0);
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("stale-node").size() == 2; }));
  REQUIRE(bus.wait_for(
      [&] { return bus.count_about<rrh::events::agent_recovered>("stale-node.a1") >= 1; }));
  REQUIRE(started_children(*launcher).size() == 2);
  const pid_t second_child = started_children(*launcher).back();

  // A late recover for the first child (queued while the broker was paused, say), under
  // an id of its own: the launcher must not restart the healthy second child for it.
  rrh::test::sockets sockets;
  auto processor_pipe = sockets.make(zmq::socket_type::push);
  processor_pipe.connect(bus.broker.commands_in);
  rrh::command late;
  late.id = 9'000'001;
  late.node = "stale-node.launcher";
  late.ts_ms = 1'700'000'000'000;
  late.body = rrh::commands::agent_recover{
      .agent = "stale-node.a1", .attempt = 1, .incarnation = first_incarnation};
  rrh::test::send_parts(processor_pipe, {late.node, std::string(rrh::kind_name(late.body)),
                                         rrh::test::bytes_of(rrh::encode(late))});
  std::optional<rrh::events::command_ack> answer;
  REQUIRE(bus.wait_for([&] {
    for (const auto& [entry, ack] : bus.recorder.events_of<rrh::events::command_ack>()) {
      if (ack->command_id == late.id) answer = *ack;
    }
    return answer.has_value();
  }));
  CHECK_FALSE(answer->accepted);
  CHECK(answer->reason == rrh::refused_stale);
  // Deliberate bounded negative check: a restart would SIGTERM the child at once and start
  // a third within its grace; a second without either is the evidence.
  CHECK_FALSE(bus.wait_for(
      [&] { return started_children(*launcher).size() > 2 || process_gone(second_child); }, 1s));
  CHECK(bus.incarnations_of("stale-node").size() == 2);
}

TEST_CASE("rrh-launch stops restarting once the processor quarantines the agent", "[launch][integration]") {
  stack bus("rrh-launch-quarantine", {{"max_recovery_attempts", "3"},
                                      {"recovery_cooldown", std::to_string(recovery_cooldown_ms / 1000.0)}});
  // The child crashes (SIGKILLs itself) half a second after every start.
  auto launcher = bus.launch("crashy-node", {"--crash-after", "0.5"});
  REQUIRE(bus.wait_for([&] { return bus.count_about<rrh::events::agent_quarantined>("crashy-node.a1") == 1; },
                       60s));
  const auto quarantined = bus.recorder.events_of<rrh::events::agent_quarantined>().front();
  CHECK(quarantined.second->attempts == 3);
  // The last child crashed too, and each of the four crashes was reported.
  REQUIRE(bus.wait_for([&] { return bus.recorder.events_of<rrh::events::node_exited>().size() >= 4; }));
  CHECK(started_children(*launcher).size() == 4);  // the first start and three restarts
  CHECK(bus.incarnations_of("crashy-node").size() == 4);
  CHECK(bus.recorder.commands_of<rrh::commands::agent_recover>().size() == 3);

  // Deliberate bounded negative check: nothing may restart the child after the quarantine.
  // A recover would follow a death within one cooldown, so twice the cooldown (and at
  // least a second, for a loaded machine) without a new child or a new recover is the
  // evidence; the wait is expected to run out.
  const auto quiet = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(2 * recovery_cooldown_ms), 1s);
  CHECK_FALSE(bus.wait_for(
      [&] {
        return started_children(*launcher).size() > 4 || bus.incarnations_of("crashy-node").size() > 4 ||
               bus.recorder.commands_of<rrh::commands::agent_recover>().size() > 3;
      },
      quiet));
  // The launcher stays up, idle, and says why.
  CHECK(launcher->running());
  CHECK(launcher->wait_line("node crashy-node is down; waiting for agent.recover", 1s));
}

TEST_CASE("rrh-launch replaces a hung child on agent.recover", "[launch][integration]") {
  stack bus("rrh-launch-hang");
  auto launcher = bus.launch("hung-node", {"--watchdog-ms", "300", "--hang-after", "0.5"});
  REQUIRE(bus.wait_for_suspect("watchdog"));
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::agent_dead>().empty(); }));
  CHECK(bus.recorder.events_of<rrh::events::agent_dead>().front().second->reason.find("hung") != std::string::npos);
  REQUIRE(bus.wait_for([&] { return !bus.recorder.commands_of<rrh::commands::agent_recover>().empty(); }));
  CHECK(bus.recorder.commands_of<rrh::commands::agent_recover>().front().first->relayed->node == "hung-node.launcher");
  const pid_t hung_child = started_children(*launcher).front();
  // The hung process lives: the launcher asks it to stop, and it does (the demo agent
  // obeys SIGTERM), so no SIGKILL is needed.
  REQUIRE(launcher->wait_line("stopping child pid=" + std::to_string(hung_child) + " of node hung-node (restart #1): SIGTERM", 10s));
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::node_exited>().empty(); }));
  const auto exited = bus.recorder.events_of<rrh::events::node_exited>().front();
  CHECK(exited.second->pid == static_cast<std::uint64_t>(hung_child));
  CHECK(exited.second->signal == 0);
  CHECK(exited.second->exit_code == 0);
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("hung-node").size() >= 2; }));
  REQUIRE(bus.wait_for([&] { return bus.count_about<rrh::events::agent_recovered>("hung-node.a1") >= 1; }));
  CHECK(process_gone(hung_child));
  for (const auto& line : launcher->lines()) CHECK(line.find("asked to stop: SIGKILL") == std::string::npos);
  // The restart is one recovery of the same agent, not a new agent: the new child hangs
  // too, and the processor's next recover counts on (attempt 2), toward the quarantine.
  REQUIRE(bus.wait_for([&] { return bus.recorder.commands_of<rrh::commands::agent_recover>().size() >= 2; }));
  CHECK(bus.recorder.commands_of<rrh::commands::agent_recover>()[1].second->attempt == 2);
}

TEST_CASE("SIGTERM stops rrh-launch and its child; it exits 0 and leaves no process",
          "[launch][integration]") {
  stack bus("rrh-launch-stop");
  auto launcher = bus.launch("stop-node", {});
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("stop-node").size() == 1; }));
  REQUIRE(started_children(*launcher).size() == 1);
  const pid_t child = started_children(*launcher).front();

  launcher->signal(SIGTERM);
  const auto status = launcher->wait_exit(15s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  // The launcher reaped its child before it exited: nothing is left, not even a zombie.
  CHECK(::kill(child, 0) == -1);
  CHECK(errno == ESRCH);
  // The child stopped cleanly (it unregistered its agent), and its exit was reported.
  REQUIRE(bus.wait_for([&] { return bus.count_about<rrh::events::agent_unregistered>("stop-node.a1") == 1; }));
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::node_exited>().empty(); }));
  CHECK(bus.recorder.events_of<rrh::events::node_exited>().front().second->exit_code == 0);
  CHECK(bus.recorder.commands_of<rrh::commands::agent_recover>().empty());
}

TEST_CASE("a launcher killed with SIGKILL takes its child with it (no orphan)", "[launch][integration]") {
  stack bus("rrh-launch-orphan");
  auto launcher = bus.launch("orphan-node", {});
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("orphan-node").size() == 1; }));
  REQUIRE(started_children(*launcher).size() == 1);
  const pid_t child = started_children(*launcher).front();
  launcher->signal(SIGKILL);
  REQUIRE(launcher->wait_exit(5s));
  // PR_SET_PDEATHSIG: the kernel SIGKILLs the child when the launcher dies.
  REQUIRE(wait_until([&] { return process_gone(child); }, 5s));
}

TEST_CASE("the child's own children stop with it: signals go to its process group", "[launch][integration]") {
  stack bus("rrh-launch-group");
  const auto grandchild_file = bus.scratch.file("grandchild.pid");
  // A child that is a shell: it starts the node and a long-lived process of its own.
  const std::string script = "'" + rrh::test::binary_path("rrh-agent") +
                             "' --agents 1 --task-ms 50 --heartbeat-ms 100 & sleep 300 & echo $! > '" +
                             grandchild_file + "'; wait";
  auto launcher = bus.launch_child("group-node", {"/bin/sh", "-c", script});
  REQUIRE(bus.wait_for([&] { return bus.incarnations_of("group-node").size() == 1; }));
  pid_t grandchild = 0;
  REQUIRE(wait_until([&] {
    std::ifstream in(grandchild_file);
    return static_cast<bool>(in >> grandchild) && grandchild > 0;
  }, 10s));
  REQUIRE_FALSE(process_gone(grandchild));

  pid_t node_process = 0;  // the rrh-agent the shell started, from its heartbeats
  REQUIRE(bus.wait_for([&] {
    for (const auto& [entry, beat] : bus.recorder.events_of<rrh::events::heartbeat>()) {
      if (entry->message->header.node == "group-node") node_process = static_cast<pid_t>(beat->pid);
    }
    return node_process > 0;
  }));

  launcher->signal(SIGTERM);
  const auto status = launcher->wait_exit(15s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  // The shell, the node and the shell's sleep all got the SIGTERM (and what outlived the
  // shell, a SIGKILL when the launcher reaped it): nothing is left.
  CHECK(wait_until([&] { return process_gone(grandchild); }, 5s));
  CHECK(wait_until([&] { return process_gone(node_process); }, 5s));
}
