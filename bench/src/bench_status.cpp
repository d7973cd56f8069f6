// rrh-bench-status: what one `rrh-ctl status` costs the processor's event loop, at a small
// state and at a large one (default 1,000,000 tasks), measured in the same run. The
// status answer must not grow with the state: the engine keeps its counts by state as
// states change (control.cpp), so the ratio large/small should stay near 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "control.hpp"
#include "rrh/engine/engine.hpp"

namespace {

using rrh::engine::time_ms;

constexpr time_ms start_ms = 1'700'000'000'000;

// An engine holding `tasks` unfinished tasks spread over `agents` agents on one node.
std::unique_ptr<rrh::engine::engine> engine_with(std::uint64_t agents, std::uint64_t tasks) {
  rrh::engine::resilience_config config;
  config.max_tasks = std::max<std::uint64_t>(tasks, 1);
  config.max_tasks_per_agent = std::max<std::uint64_t>(tasks / std::max<std::uint64_t>(agents, 1) + 1, 1);
  config.acceptable_pause_ms = 86'400'000;
  config.agent_health_check_interval_ms = 86'400'000;
  auto engine = std::make_unique<rrh::engine::engine>(config);
  std::uint64_t seq = 0;
  rrh::engine::effects out;
  const auto deliver = [&](rrh::event_body body) {
    rrh::event message;
    message.header.node = "bench-node";
    message.header.incarnation = 1;
    message.header.seq = ++seq;
    message.header.ts_ms = start_ms;
    message.body = std::move(body);
    engine->on_event(message, start_ms, out);
    out.clear();
  };
  for (std::uint64_t agent = 0; agent < agents; ++agent) {
    deliver(rrh::events::agent_registered{"a" + std::to_string(agent), "", {}, "", 0});
  }
  for (std::uint64_t task = 0; task < tasks; ++task) {
    deliver(rrh::events::task_started{"t" + std::to_string(task), "a" + std::to_string(task % agents), 1});
  }
  return engine;
}

// Median microseconds of one status answer over `rounds`.
double status_us(const rrh::engine::engine& engine, int rounds) {
  rrh::processor::processor_status status;
  status.node_id = "processor";
  status.now_ms = start_ms;
  std::vector<double> samples;
  std::size_t bytes = 0;
  for (int round = 0; round < rounds; ++round) {
    const auto began = std::chrono::steady_clock::now();
    const auto reply = rrh::processor::answer_control(engine, status, "status");
    const auto took = std::chrono::steady_clock::now() - began;
    bytes += reply.size();
    samples.push_back(std::chrono::duration<double, std::micro>(took).count());
  }
  std::sort(samples.begin(), samples.end());
  if (bytes == 0) std::fprintf(stderr, "rrh-bench-status: empty replies\n");
  return samples[samples.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t tasks = 1'000'000;
  std::uint64_t agents = 1000;
  int rounds = 1000;
  CLI::App app{"rrh-bench-status: event-loop cost of one status answer, small state vs large state"};
  app.add_option("--tasks", tasks, "unfinished tasks of the large state")->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000'000}));
  app.add_option("--agents", agents, "agents holding them")->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000}));
  app.add_option("--rounds", rounds, "status answers timed per state (median reported)")->check(CLI::Range(1, 1'000'000));
  app.set_version_flag("--version", RRH_VERSION);
  CLI11_PARSE(app, argc, argv);

  std::fprintf(stderr, "building the states (%llu tasks)...\n", static_cast<unsigned long long>(tasks));
  std::fflush(stderr);
  const auto small = engine_with(std::min<std::uint64_t>(agents, 10), 10);
  const auto large = engine_with(agents, tasks);
  const double small_us = status_us(*small, rounds);
  const double large_us = status_us(*large, rounds);
  std::printf("status answer: %.1f us at %zu tasks, %.1f us at %zu tasks (ratio %.2f; target < 1000 us at 1M)\n",
              small_us, small->task_count(), large_us, large->task_count(), large_us / small_us);
  std::printf("{\"scenario\":\"status\",\"value\":%.1f,\"baseline\":%.1f,\"ratio\":%.3f,\"unit\":\"us\",\"target\":1000,\"met\":%s}\n",
              large_us, small_us, large_us / small_us, large_us < 1000.0 ? "true" : "false");
  return 0;
}
