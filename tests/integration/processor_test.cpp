// The processor end to end: a real broker, a real rrh-processor and real rrh-agent
// processes (or an in-process shim) on loopback, watched from the bus as a tap would.
#include <catch2/catch.hpp>

#include <csignal>
#include <map>
#include <regex>
#include <set>
#include <sys/wait.h>

#include "processor_stack.hpp"
#include "rrh/shim.hpp"
#include "shim_fixture.hpp"

using namespace std::chrono_literals;
using rrh::test::elapsed_ms;
using rrh::test::wait_until;

namespace {

struct stack : rrh::test::processor_stack {
  using processor_stack::processor_stack;

  std::unique_ptr<rrh::test::child_process> agent(const std::string& node, std::vector<std::string> flags) {
    std::vector<std::string> arguments = {"--node", node, "--events", broker.events_in, "--commands",
                                          broker.commands_out, "--heartbeat-ms", "100"};
    arguments.insert(arguments.end(), flags.begin(), flags.end());
    return std::make_unique<rrh::test::child_process>(
        rrh::test::binary_path("rrh-agent"), arguments,
        std::vector<std::string>{"RRH_RETRANSMIT_INITIAL_MS=100", "RRH_RETRANSMIT_MAX_MS=500"});
  }

  /// A shim for node `node` on this bus, at test speed.
  rrh::shim_config node_config(const std::string& node) const {
    return rrh::test::test_shim_config(node, broker.events_in, broker.commands_out);
  }
};

}  // namespace

TEST_CASE("a retryable failure is retried from its checkpoint, then abandoned at the limit",
          "[processor][integration]") {
  stack bus("rrh-retry");
  auto agent = bus.agent("retry-node", {"--agents", "1", "--task-ms", "20", "--fail-rate", "1", "--tasks", "2"});
  // Two tasks, each failing on every attempt: attempts 1, 2, 3 (max_task_retries 2), then abandoned.
  REQUIRE(bus.wait_for([&] { return bus.recorder.events_of<rrh::events::task_abandoned>().size() >= 2; }));
  REQUIRE(bus.wait_for([&] { return bus.recorder.commands_of<rrh::commands::task_rollback>().size() >= 2; }));

  for (const auto& task : {"retry-node.a1.t1", "retry-node.a1.t2"}) {
    CAPTURE(task);
    std::set<std::uint64_t> retried_attempts;
    for (const auto& [entry, retry] : bus.recorder.commands_of<rrh::commands::task_retry>()) {
      if (retry->task != task) continue;
      retried_attempts.insert(retry->attempt);
      // The checkpoint saved at the failure travels with the retry.
      const std::string checkpoint(retry->checkpoint.begin(), retry->checkpoint.end());
      CHECK(checkpoint == "step=" + std::to_string(retry->attempt - 1) + ";task=" + task);
      // Each retry follows its announcement, no later than the delay bound allows. The
      // bound here is generous (a loaded 2-core machine); the quick start measures the
      // real lateness.
      const auto scheduled = bus.recorder.events_of<rrh::events::task_retry_scheduled>();
      const auto announcement = std::find_if(scheduled.begin(), scheduled.end(), [&](const auto& item) {
        return item.second->task == task && item.second->attempt == retry->attempt;
      });
      REQUIRE(announcement != scheduled.end());
      CHECK(announcement->second->delay_ms <= 1000);  // task_retry_delay_max
      CHECK(elapsed_ms(announcement->first->arrived, entry->arrived) <=
            static_cast<double>(announcement->second->delay_ms) + 1000.0);
    }
    CHECK(retried_attempts == std::set<std::uint64_t>{2, 3});
    const auto abandoned = bus.recorder.events_of<rrh::events::task_abandoned>();
    const auto found = std::find_if(abandoned.begin(), abandoned.end(),
                                    [&](const auto& item) { return item.second->task == task; });
    REQUIRE(found != abandoned.end());
    CHECK(found->second->attempts == 3);
    CHECK(found->second->reason.find("retry limit") != std::string::npos);
  }
  REQUIRE(agent->wait_line("task.rollback retry-node.a1.t1", 10s));
}

TEST_CASE("a non-retryable failure is abandoned at once and rolled back", "[processor][integration]") {
  stack bus("rrh-rollback");
  auto agent = bus.agent("final-node", {"--agents", "1", "--task-ms", "20", "--fail-rate", "1",
                                        "--non-retryable-rate", "1", "--tasks", "1"});
  REQUIRE(bus.wait_for([&] { return !bus.recorder.commands_of<rrh::commands::task_rollback>().empty(); }));
  const auto abandoned = bus.recorder.events_of<rrh::events::task_abandoned>();
  REQUIRE(abandoned.size() == 1);
  CHECK(abandoned.front().second->attempts == 1);
  CHECK(abandoned.front().second->reason.find("non-retryable") != std::string::npos);
  CHECK(bus.recorder.commands_of<rrh::commands::task_retry>().empty());
  REQUIRE(agent->wait_line("task.rollback final-node.a1.t1", 10s));
}

TEST_CASE("a killed agent process is declared dead within the bound and recovered",
          "[processor][integration]") {
  stack bus("rrh-kill");
  auto agent = bus.agent("doomed-node", {"--agents", "1", "--task-ms", "50"});
  // Healthy first: heartbeats flow and the processor's active probe was answered.
  REQUIRE(bus.wait_for([&] { return bus.recorder.events_of<rrh::events::heartbeat>().size() >= 10; }));
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::probe_reply>().empty(); }));
  const auto killed_at = std::chrono::steady_clock::now();
  agent->signal(SIGKILL);
  REQUIRE(agent->wait_exit(5s));
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::agent_dead>().empty(); }));
  const auto dead = bus.recorder.events_of<rrh::events::agent_dead>().front();
  CHECK(dead.second->agent == "doomed-node.a1");
  // 100 ms heartbeats, acceptable_pause 300 ms, min deviation 50 ms: phi 8 falls at about
  // 0.7 s of silence; 3 s leaves room for a loaded machine.
  CHECK(elapsed_ms(killed_at, dead.first->arrived) <= 3000.0);
  REQUIRE(bus.wait_for([&] { return !bus.recorder.commands_of<rrh::commands::agent_recover>().empty(); }));
  const auto recover = bus.recorder.commands_of<rrh::commands::agent_recover>().front();
  CHECK(recover.second->agent == "doomed-node.a1");
  CHECK(recover.second->attempt == 1);
  CHECK(recover.first->relayed->node == "doomed-node");  // no supervisor: its own node
}

TEST_CASE("a hung agent (alive, not beating) is detected and recovered in place", "[processor][integration]") {
  stack bus("rrh-hang");
  auto agent = bus.agent("hung-node", {"--agents", "1", "--task-ms", "50", "--watchdog-ms", "300",
                                       "--hang-after", "0.5"});
  REQUIRE(bus.wait_for_suspect("watchdog"));
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::agent_dead>().empty(); }));
  CHECK(bus.recorder.events_of<rrh::events::agent_dead>().front().second->reason.find("hung") != std::string::npos);
  // The process lives: agent.recover reaches its node, the worker resumes, beats again.
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::agent_recovered>().empty(); }));
  CHECK(bus.recorder.events_of<rrh::events::agent_recovered>().front().second->agent == "hung-node.a1");
  REQUIRE(agent->wait_line("agent.recover hung-node.a1", 10s));
}

TEST_CASE("passing the error threshold shuts the episode down and ends it with a summary",
          "[processor][integration]") {
  stack bus("rrh-threshold");
  auto config = bus.node_config("episode-node");
  rrh::shim node(config);
  std::atomic<int> shutdowns{0};
  node.set_handler("episode.shutdown", [&](const rrh::command&) {
    ++shutdowns;
    return rrh::command_result::accept();
  });
  REQUIRE(node.start_episode("episode-t", "threshold test"));
  REQUIRE(node.register_agent("episode-agent"));
  for (int error = 1; error <= 5; ++error) {  // error_threshold: 5, the seed's default
    REQUIRE(node.record_episode_error("RuntimeError", "error " + std::to_string(error), "episode-agent"));
  }
  REQUIRE(bus.wait_for([&] { return shutdowns.load() == 1; }));
  const auto shutdown_events = bus.recorder.events_of<rrh::events::episode_shutdown>();
  REQUIRE(shutdown_events.size() == 1);
  CHECK(shutdown_events.front().second->errors == 5);

  REQUIRE(node.unregister_agent("episode-agent", "shut down"));
  REQUIRE(bus.wait_for([&] { return !bus.recorder.events_of<rrh::events::episode_summary>().empty(); }));
  const auto& summary = *bus.recorder.events_of<rrh::events::episode_summary>().front().second;
  CHECK(summary.status == "aborted");
  CHECK(summary.errors == 5);
  CHECK(summary.agents_seen == 1);
  REQUIRE(node.flush(10s));
}

TEST_CASE("a processor SIGKILLed mid-stream resumes: each retry fires once, nothing lost",
          "[processor][integration][restart]") {
  // A fixed one-second retry delay keeps retries pending across the kill.
  stack bus("rrh-restart", {{"retry_backoff", "fixed"}, {"task_retry_delay", "1"}, {"max_task_retries", "3"}});
  const std::vector<std::string> nodes = {"restart-a", "restart-b"};
  std::vector<std::unique_ptr<rrh::test::child_process>> agents;
  for (std::size_t index = 0; index < nodes.size(); ++index) {
    agents.push_back(bus.agent(nodes[index], {"--agents", "2", "--task-ms", "30", "--fail-rate", "0.5",
                                              "--tasks", "15", "--seed", std::to_string(index + 11)}));
  }
  REQUIRE(bus.wait_for([&] { return bus.recorder.events_of<rrh::events::task_retry_scheduled>().size() >= 8; }));
  bus.processor->process().signal(SIGKILL);
  REQUIRE(bus.processor->process().wait_exit(5s));
  bus.processor = std::make_unique<rrh::test::processor_process>(bus.broker, bus.config_path, bus.state_path);

  // Every task ends: succeeded, or abandoned after its retries. 2 nodes × 2 agents × 15 tasks.
  constexpr std::size_t tasks_total = 60;
  const auto finished = [&] {
    std::set<std::string> done;
    for (const auto& [entry, success] : bus.recorder.events_of<rrh::events::task_succeeded>()) done.insert(success->task);
    for (const auto& [entry, abandoned] : bus.recorder.events_of<rrh::events::task_abandoned>()) done.insert(abandoned->task);
    return done.size();
  };
  REQUIRE(bus.wait_for([&] { return finished() == tasks_total; }, 60s));

  // Each announced retry ran exactly once on an agent; no retry ran that was not announced.
  std::set<std::pair<std::string, std::uint64_t>> announced;
  for (const auto& [entry, scheduled] : bus.recorder.events_of<rrh::events::task_retry_scheduled>()) {
    announced.emplace(scheduled->task, scheduled->attempt);
  }
  std::map<std::pair<std::string, std::uint64_t>, int> executed;
  const std::regex retry_line(R"(task\.retry (\S+) attempt (\d+))");
  for (auto& agent : agents) {
    for (const auto& line : agent->lines()) {
      std::smatch match;
      if (std::regex_search(line, match, retry_line)) ++executed[{match[1].str(), std::stoull(match[2].str())}];
    }
  }
  for (const auto& [retry, count] : executed) {
    CAPTURE(retry.first, retry.second);
    CHECK(count == 1);
  }
  std::set<std::pair<std::string, std::uint64_t>> executed_keys;
  for (const auto& [retry, count] : executed) executed_keys.insert(retry);
  CHECK(executed_keys == announced);

  // No acked event lost: the restarted processor holds no unfinished task.
  rrh::test::child_process status(rrh::test::binary_path("rrh-ctl"),
                                  {"--control", bus.processor->control, "tasks"});
  REQUIRE(status.wait_exit(10s));
  REQUIRE(status.wait_line("\"total\":0", 1s));
}

TEST_CASE("an episode file's resilience block applies to that episode; an invalid one is refused",
          "[processor][integration][episode]") {
  stack bus("rrh-episode-file");
  auto config = bus.node_config("file-node");
  rrh::shim node(config);

  SECTION("a valid block: the processor holds the overrides for this episode") {
    const auto path = bus.scratch.file("episode.yaml");
    rrh::test::write_file(path, "id: ep-file\nname: from a file\nagents: [file-agent]\n"
                                "resilience:\n  error_threshold: 2\n  task_retry_delay: 0.5\n"
                                "  non_retryable_errors: [ValueError]\n");
    REQUIRE(node.start_episode_from_file(path));
    REQUIRE(node.episode() == "ep-file");
    REQUIRE(node.register_agent("file-agent"));
    REQUIRE(node.record_episode_error("RuntimeError", "one"));
    REQUIRE(node.record_episode_error("RuntimeError", "two"));
    // error_threshold 2 from the file, not the processor's 5.
    REQUIRE(bus.wait_for([&] { return bus.recorder.events_of<rrh::events::episode_shutdown>().size() == 1; }));
    rrh::test::child_process answer(rrh::test::binary_path("rrh-ctl"),
                                    {"--control", bus.processor->control, "episode", "ep-file"});
    REQUIRE(answer.wait_exit(10s));
    REQUIRE(answer.wait_line("\"error_threshold\":2", 1s));
  }
  SECTION("an invalid block: refused with an alert naming the key") {
    const auto path = bus.scratch.file("bad-episode.yaml");
    rrh::test::write_file(path, "id: ep-bad\nresilience:\n  recovery_cooldwn: 5\n");
    REQUIRE(node.start_episode_from_file(path));
    REQUIRE(bus.wait_for([&] {
      for (const auto& [entry, alert] : bus.recorder.events_of<rrh::events::alert>()) {
        if (alert->code == "episode.config_rejected" && alert->message.find("recovery_cooldwn") != std::string::npos) {
          return true;
        }
      }
      return false;
    }));
  }
  SECTION("a file without an id is refused before anything is sent") {
    const auto path = bus.scratch.file("no-id.yaml");
    rrh::test::write_file(path, "name: nameless\n");
    const auto refused = node.start_episode_from_file(path);
    REQUIRE_FALSE(refused);
    REQUIRE(refused.error().code == rrh::errc::config);
    REQUIRE(refused.error().detail.find("'id' is missing") != std::string::npos);
    REQUIRE(node.episode().empty());
  }
}
