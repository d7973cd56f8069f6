// rrh-bench: the real rrh-broker and rrh-processor as child processes, driven by simulated
// agent nodes (and real rrh-agent processes for detection), each scenario's figure
// printed with the raw-ZeroMQ baseline measured in the same run and their ratio.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <map>

#include "harness.hpp"

namespace {

using rrh::bench::options;
using rrh::bench::scenario_result;

/// The scenarios, in the order they run.
const std::vector<std::pair<std::string, scenario_result (*)(const options&)>> scenarios = {
    {"ingest", rrh::bench::run_ingest},       {"scale", rrh::bench::run_scale},
    {"latency", rrh::bench::run_latency},     {"detection", rrh::bench::run_detection},
    {"storm", rrh::bench::run_storm},
};

/// Sizes of a full run and of a `--quick` one.
struct sizes {
  std::uint64_t ingest_events;
  std::vector<std::uint64_t> scale_agents;
  std::uint64_t scale_heartbeats;
  std::uint64_t latency_samples;
  std::uint64_t background_rate;
  std::uint64_t detection_nodes;
  std::uint64_t storm_agents;
  double storm_rate;
  std::uint64_t storm_burst;
};
const sizes full_sizes{1'000'000, {1'000, 100'000, 1'000'000}, 3'000, 5'000, 100'000, 20, 10'000,
                       2'000, 500};
const sizes quick_sizes{100'000, {1'000, 10'000}, 300, 500, 100'000, 4, 2'000, 2'000, 500};

/// The settled detection round waits until the detector's window (100 heartbeats of
/// 200 ms) holds only steady intervals, and two seconds more.
constexpr double default_settle_s = 22.0;

void apply_defaults(options& chosen) {
  const auto& base = chosen.quick ? quick_sizes : full_sizes;
  if (chosen.ingest_events == 0) chosen.ingest_events = base.ingest_events;
  if (chosen.scale_agents.empty()) chosen.scale_agents = base.scale_agents;
  if (chosen.scale_heartbeats == 0) chosen.scale_heartbeats = base.scale_heartbeats;
  if (chosen.latency_samples == 0) chosen.latency_samples = base.latency_samples;
  if (chosen.background_rate == 0) chosen.background_rate = base.background_rate;
  if (chosen.detection_nodes == 0) chosen.detection_nodes = base.detection_nodes;
  if (chosen.detection_settle_s < 0) chosen.detection_settle_s = default_settle_s;
  if (chosen.storm_agents == 0) chosen.storm_agents = base.storm_agents;
  if (chosen.storm_rate == 0) chosen.storm_rate = base.storm_rate;
  if (chosen.storm_burst == 0) chosen.storm_burst = base.storm_burst;
  if (chosen.broker_path.empty()) chosen.broker_path = rrh::bench::beside_this_executable("rrh-broker");
  if (chosen.processor_path.empty()) {
    chosen.processor_path = rrh::bench::beside_this_executable("rrh-processor");
  }
  if (chosen.agent_path.empty()) chosen.agent_path = rrh::bench::beside_this_executable("rrh-agent");
  if (chosen.state_dir.empty()) {
    std::error_code ignored;
    chosen.state_dir = std::filesystem::is_directory("/dev/shm", ignored)
                           ? "/dev/shm"
                           : std::filesystem::temp_directory_path(ignored).string();
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rrh-bench: the real rrh-broker and rrh-processor processes under simulated agent\n"
      "nodes. Each scenario prints rrh's figure, the raw-ZeroMQ baseline measured in the\n"
      "same run, and their ratio against the target:\n"
      "  ingest     events/s the processor applies, every critical event acked, against a\n"
      "             bare subscriber decoding the same stream through the same broker (>= 0.8)\n"
      "  scale      1k..1M agents on at most 1000 nodes: processor RSS (<= 1 GiB at 1M),\n"
      "             bytes per agent, CPU per heartbeat and per registration against the\n"
      "             smallest fleet (<= 1.5x)\n"
      "  latency    task.failed -> task.retry (zero delay) received by the agent, p50/p99/\n"
      "             p99.9, under background heartbeats, against the raw event -> command\n"
      "             round trip through the broker (p99 <= 1.5x)\n"
      "  detection  real rrh-agent nodes SIGKILLed -> agent.dead on the bus, against the\n"
      "             detector's bound for the configuration (99% within bound + 100 ms)\n"
      "  storm      thousands of agents die at once -> every agent.recover sent and acked,\n"
      "             against the configured pace (N - burst) / rate (<= 1.1x, nothing lost)\n"
      "Exit code 1 only when a scenario could not be measured; a missed target is reported."};
  options chosen;
  app.add_flag("--quick", chosen.quick, "a few seconds per scenario (smaller sizes)");
  app.add_flag("--json", chosen.json,
               "one JSON object per figure: scenario, value, baseline, ratio, unit, target, met");
  app.add_option("--scenario", chosen.scenarios,
                 "run only these (repeatable): ingest, scale, latency, detection, storm")
      ->check(CLI::IsMember({"ingest", "scale", "latency", "detection", "storm"}));
  app.add_option("--broker", chosen.broker_path, "rrh-broker executable (default: beside this one)");
  app.add_option("--processor", chosen.processor_path,
                 "rrh-processor executable (default: beside this one)");
  app.add_option("--agent", chosen.agent_path, "rrh-agent executable (default: beside this one)");
  app.add_option("--state-dir", chosen.state_dir,
                 "where the processors' temporary state directories go (default /dev/shm)");
  app.add_option("--ingest-events", chosen.ingest_events,
                 "events in the ingest stream (default 1000000; 100000 with --quick)")
      ->check(CLI::Range(std::uint64_t{1000}, std::uint64_t{100'000'000}));
  app.add_option("--scale-agents", chosen.scale_agents,
                 "fleet sizes of the scale scenario, smallest first (default 1000 100000 "
                 "1000000; 1000 10000 with --quick)")
      ->check(CLI::Range(std::uint64_t{10}, std::uint64_t{2'000'000}));
  app.add_option("--scale-heartbeats", chosen.scale_heartbeats,
                 "heartbeats timed per fleet size (default 3000; 300 with --quick)")
      ->check(CLI::Range(std::uint64_t{10}, std::uint64_t{10'000'000}));
  app.add_option("--latency-samples", chosen.latency_samples,
                 "failures timed, for rrh and for the baseline (default 5000; 500 with --quick)")
      ->check(CLI::Range(std::uint64_t{10}, std::uint64_t{10'000'000}));
  app.add_option("--background-rate", chosen.background_rate,
                 "background heartbeats/s during the latency scenario (default 100000)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000'000}));
  app.add_option("--detection-nodes", chosen.detection_nodes,
                 "rrh-agent processes killed in the detection scenario (default 20; 4 with --quick)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{200}));
  app.add_option("--detection-settle-s", chosen.detection_settle_s,
                 "seconds the settled detection round's nodes run healthy before their kill (default 22)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--storm-agents", chosen.storm_agents,
                 "agents that die at once in the storm (default 10000; 2000 with --quick)")
      ->check(CLI::Range(std::uint64_t{10}, std::uint64_t{1'000'000}));
  app.add_option("--storm-rate", chosen.storm_rate,
                 "recovery_rate_per_s of the storm's processor (default 2000)")
      ->check(CLI::Range(1.0, 1'000'000.0));
  app.add_option("--storm-burst", chosen.storm_burst,
                 "recovery_burst of the storm's processor (default 500)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000}));
  CLI11_PARSE(app, argc, argv);
  apply_defaults(chosen);

  int exit_code = 0;
  for (const auto& [name, run] : scenarios) {
    if (!chosen.scenarios.empty() &&
        std::find(chosen.scenarios.begin(), chosen.scenarios.end(), name) == chosen.scenarios.end()) {
      continue;
    }
    if (!chosen.json) {
      std::printf("%s\n", name.c_str());
      std::fflush(stdout);
    }
    try {
      const auto result = run(chosen);
      for (const auto& item : result.figures) {
        chosen.json ? rrh::bench::print_json(item) : rrh::bench::print_text(item);
      }
      for (const auto& note : result.notes) {
        std::fprintf(chosen.json ? stderr : stdout, "  %s\n", note.c_str());
      }
    } catch (const rrh::bench::scenario_failure& failure) {
      std::fprintf(stderr, "rrh-bench: %s: %s\n", name.c_str(), failure.what.c_str());
      exit_code = 1;
    } catch (const std::exception& failure) {
      std::fprintf(stderr, "rrh-bench: %s: %s\n", name.c_str(), failure.what());
      exit_code = 1;
    }
  }
  return exit_code;
}
