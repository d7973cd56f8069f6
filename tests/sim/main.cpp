// rrh-sim: deterministic simulation of the processor's engine and store and the shim's
// reliability core under faults. `seed=N` is the first line of output; a failing seed
// replays exactly with `rrh-sim --seed N --steps K`.
#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "world.hpp"

namespace {

/// Longest run one invocation accepts, so that a typo cannot start an endless run.
constexpr std::uint64_t seeds_max = 10'000'000;
constexpr std::uint64_t steps_max = 10'000'000;

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = 1;
  std::uint64_t seeds = 1;
  std::uint64_t steps = 2000;
  bool verbose = false;
  bool keep_going = false;
  std::string state_dir;
  CLI::App app{"rrh-sim: the engine, store and shim reliability core under seeded faults"};
  app.add_option("--seed", seed, "first seed (every fault is drawn from it)");
  app.add_option("--seeds", seeds, "number of consecutive seeds to run")->check(CLI::Range(std::uint64_t{1}, seeds_max));
  app.add_option("--steps", steps, "steps of the fault phase per seed")->check(CLI::Range(std::uint64_t{1}, steps_max));
  app.add_flag("--verbose", verbose, "trace every message and decision");
  app.add_flag("--keep-going", keep_going, "after a failing seed, run the remaining seeds (long runs)");
  app.add_option("--state-dir", state_dir, "directory of the processor's SQLite file (default: a new one under /dev/shm, else the temporary directory)");
  CLI11_PARSE(app, argc, argv);

  std::printf("seed=%" PRIu64 "\n", seed);
  std::fflush(stdout);
  // The store guard logs its storage faults; the simulator injects thousands of them.
  spdlog::set_level(verbose ? spdlog::level::info : spdlog::level::off);

  std::error_code error;
  std::filesystem::path directory;
  bool owned_directory = false;
  if (state_dir.empty()) {
    // A memory-backed directory when there is one: the simulated crashes are process
    // crashes, which a real file there survives, and no run waits for a disk.
    const std::filesystem::path memory_backed = "/dev/shm";
    const auto base = std::filesystem::is_directory(memory_backed, error) && ::access("/dev/shm", W_OK) == 0
                          ? memory_backed
                          : std::filesystem::temp_directory_path(error);
    directory = base / ("rrh-sim-" + std::to_string(static_cast<long long>(::getpid())));
    owned_directory = true;
  } else {
    directory = state_dir;
  }
  std::filesystem::create_directories(directory, error);
  if (error) {
    std::fprintf(stderr, "rrh-sim: cannot create %s: %s\n", directory.c_str(), error.message().c_str());
    return 2;
  }

  rrh::sim::totals sums;
  std::vector<std::uint64_t> failed_seeds;
  for (std::uint64_t index = 0; index < seeds; ++index) {
    rrh::sim::run_options options;
    options.seed = seed + index;
    options.steps = steps;
    options.verbose = verbose;
    options.state_dir = directory;
    if (seeds > 1 && verbose) std::printf("seed=%" PRIu64 "\n", options.seed);
    try {
      rrh::sim::world simulated(options, sums);
      simulated.run();
    } catch (const rrh::sim::violation&) {
      failed_seeds.push_back(options.seed);  // already printed, with the replay command
      if (!keep_going) break;
    }
  }
  if (owned_directory) std::filesystem::remove_all(directory, error);

  std::printf("%s seeds=%" PRIu64 " first=%" PRIu64 " steps=%" PRIu64 " faults:", failed_seeds.empty() ? "ok" : "FAILED",
              sums.seeds, seed, sums.steps);
  std::uint64_t faults_total = 0;
  for (std::size_t kind = 0; kind < rrh::sim::fault_kinds; ++kind) {
    std::printf(" %s=%" PRIu64, rrh::sim::to_string(static_cast<rrh::sim::fault>(kind)), sums.faults[kind]);
    faults_total += sums.faults[kind];
  }
  std::printf(" total=%" PRIu64 " | events_applied=%" PRIu64 " commands=%" PRIu64 " handler_calls=%" PRIu64
              " tasks=%" PRIu64 " retries_run=%" PRIu64 " recoveries=%" PRIu64 " abandoned=%" PRIu64
              " quarantined=%" PRIu64 " episode_shutdowns=%" PRIu64 " outbox_full=%" PRIu64
              " attempts_run_twice=%" PRIu64 " blind_spells=%" PRIu64 " stale_recovers_refused=%" PRIu64 " outcomes_unchecked=%" PRIu64 "\n",
              faults_total, sums.events_applied, sums.commands_issued, sums.handler_calls, sums.tasks_started,
              sums.retries_applied, sums.recoveries_issued, sums.abandoned, sums.quarantined,
              sums.episodes_shut_down, sums.outbox_full, sums.attempts_run_twice, sums.blind_spells,
              sums.stale_recovers_refused, sums.outcomes_unchecked);
  if (failed_seeds.empty()) return 0;
  std::printf("failed seeds (%zu):", failed_seeds.size());
  for (const auto failed : failed_seeds) std::printf(" %" PRIu64, failed);
  std::printf("\n");
  return 1;
}
