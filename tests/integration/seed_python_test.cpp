// The seed's Basic Usage example, unchanged but for its import line, against a real
// broker and processor: rrh-ctl then shows the episode started and ended, with one
// failed task and one error.
#include <catch2/catch.hpp>

#include <csignal>
#include <sys/wait.h>

#include "bus_recorder.hpp"
#include "processor_fixture.hpp"

using namespace std::chrono_literals;

TEST_CASE("the seed's example runs against a real processor", "[python][integration]") {
  rrh::test::broker_process broker;
  rrh::test::scratch_directory scratch("rrh-seed");
  const auto config = scratch.file("rrh.yaml");
  rrh::test::write_file(config, rrh::test::resilience_yaml(rrh::test::test_speed_resilience()));
  rrh::test::processor_process processor(broker, config, scratch.file("state.db"));

  // The example opens episode.yaml from its working directory.
  const std::string examples = std::string(RRH_SOURCE_DIR) + "/python/examples";
  rrh::test::child_process seed(
      "/usr/bin/python3",
      {"-c", "import os, runpy; os.chdir('" + examples + "'); runpy.run_path('seed_basic_usage.py')"},
      {"PYTHONPATH=" + std::string(RRH_PYTHON_DIR), "RRH_NODE_ID=seed-node",
       "RRH_EVENTS_ENDPOINT=" + broker.events_in, "RRH_COMMANDS_ENDPOINT=" + broker.commands_out});
  const auto status = seed.wait_exit(30s);
  REQUIRE(status);
  for (const auto& line : seed.lines()) UNSCOPED_INFO(line);
  REQUIRE(WIFEXITED(*status));
  REQUIRE(WEXITSTATUS(*status) == 0);

  // The processor applied everything the example sent (the shim flushed before exit).
  std::string answer;
  REQUIRE(rrh::test::wait_until(
      [&] {
        rrh::test::child_process ctl(rrh::test::binary_path("rrh-ctl"),
                                     {"--control", processor.control, "episodes"});
        if (!ctl.wait_exit(10s)) return false;
        const auto lines = ctl.lines();
        answer = lines.empty() ? "" : lines.front();
        return answer.find("\"state\":\"ended\"") != std::string::npos;
      },
      20s));
  INFO(answer);
  CHECK(answer.find("\"episode\":\"seed-demo-episode\"") != std::string::npos);
  CHECK(answer.find("\"status\":\"completed\"") != std::string::npos);
  CHECK(answer.find("\"tasks_failed\":1") != std::string::npos);
  CHECK(answer.find("\"errors\":1") != std::string::npos);
}

TEST_CASE("a Python agent's failed task is retried by the processor from its checkpoint",
          "[python][integration]") {
  rrh::test::broker_process broker;
  rrh::test::scratch_directory scratch("rrh-python-retry");
  const auto config = scratch.file("rrh.yaml");
  rrh::test::write_file(config, rrh::test::resilience_yaml(rrh::test::test_speed_resilience()));
  rrh::test::processor_process processor(broker, config, scratch.file("state.db"));
  rrh::test::sockets context;
  rrh::test::bus_recorder recorder(context, broker.events_out);

  // demo_agent.py fails task .t2 at step 3 with checkpoint b"3"; its task.retry handler
  // resumes the task from that checkpoint and prints where it resumed.
  rrh::test::child_process agent(
      "/usr/bin/python3",
      {std::string(RRH_SOURCE_DIR) + "/python/examples/demo_agent.py", "--agent", "py-retry",
       "--tasks", "2", "--duration-s", "20"},
      {"PYTHONPATH=" + std::string(RRH_PYTHON_DIR), "RRH_NODE_ID=py-retry-node",
       "RRH_EVENTS_ENDPOINT=" + broker.events_in, "RRH_COMMANDS_ENDPOINT=" + broker.commands_out});
  REQUIRE(agent.wait_line("py-retry.t2 attempt 2 done (resumed from step 3)", 30s));

  REQUIRE(rrh::test::wait_until([&] {
    recorder.pump();
    return !recorder.commands_of<rrh::commands::task_retry>().empty();
  }));
  const auto retry = recorder.commands_of<rrh::commands::task_retry>().front().second;
  CHECK(retry->task == "py-retry.t2");
  CHECK(retry->attempt == 2);
  CHECK(retry->checkpoint == rrh::byte_buffer{'3'});
  agent.signal(SIGTERM);
  const auto status = agent.wait_exit(10s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
}
