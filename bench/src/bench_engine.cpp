// rrh-bench-engine: the processor's engine alone, fed a generated mix of heartbeats and
// task events for fleets of 1k, 100k and 1M agents. Prints events/s, ns per event and
// heap bytes per agent, and the cost per event relative to the smallest fleet: the
// engine's timers and indexes must keep that cost flat as the fleet grows.
#include <CLI/CLI.hpp>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <cstdio>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "rrh/engine/engine.hpp"

namespace {

using steady = std::chrono::steady_clock;

/// Agents per node: fixed, so a heartbeat costs the same at every fleet size and the
/// figures compare the engine's scaling, not the heartbeat's size.
constexpr std::size_t agents_per_node = 100;
/// One step in `heartbeat_every` is a node heartbeat; the others a task's start and outcome.
constexpr std::size_t heartbeat_every = 10;
/// Share of finished tasks that fail (and are scheduled for a retry).
constexpr double failure_share = 0.2;
/// Engine time advances this much per event (1 ms per 100 events: 100k events/s).
constexpr double time_per_event_ms = 0.01;
/// Engine time of the mix applied before the clock starts (see run_fleet).
constexpr double warmup_ms = 2000;
/// Base delay of a retry: short enough that the retries of the run's failures fire within
/// the run (with the default 30 s, most would still be waiting at its end).
constexpr std::uint64_t retry_delay_ms = 1000;
/// Cost per event may grow at most this much from the smallest to the largest fleet.
constexpr double flatness_target = 1.5;
/// Heap bytes per agent target.
constexpr double bytes_per_agent_target = 1024.0;

std::size_t heap_bytes() {
  const auto info = ::mallinfo2();
  return info.uordblks + info.hblkhd + rrh::engine::mapped_table_bytes();
}

struct node_stream {
  std::string node;
  std::uint64_t seq = 0;
  rrh::event heartbeat;
};

/// A critical event of the stream's node, numbered as its shim numbers events: in the
/// order they are sent. Events generated ahead are numbered when they are fed (`number`),
/// so that answers the fleet sends meanwhile take their place in the sequence.
rrh::event critical(node_stream& stream, rrh::event_body body, bool numbered = true) {
  rrh::event message;
  message.header.node = stream.node;
  message.header.incarnation = 7;
  if (numbered) message.header.seq = ++stream.seq;
  message.header.ts_ms = 1;
  message.body = std::move(body);
  return message;
}

/// Stream of each generated event that still needs its number; heartbeats need none.
constexpr std::uint32_t not_numbered = std::numeric_limits<std::uint32_t>::max();

struct fleet_result {
  std::size_t agents = 0;
  std::size_t nodes = 0;
  std::size_t events = 0;
  double seconds = 0;
  double bytes_per_agent = 0;
  double ns_per_event() const { return seconds * 1e9 / static_cast<double>(events); }
  double events_per_s() const { return static_cast<double>(events) / seconds; }
};

fleet_result run_fleet(std::size_t agent_count, std::size_t event_count, std::size_t batch_size, std::uint64_t probe_interval_s, std::uint64_t seed) {
  rrh::engine::resilience_config config;
  config.max_agents = agent_count + 1;
  config.max_nodes = agent_count / agents_per_node + 1;
  config.max_pending_commands = 10'000'000;
  config.task_retry_delay_ms = retry_delay_ms;
  if (probe_interval_s > 0) config.agent_health_check_interval_ms = probe_interval_s * 1000;
  rrh::engine::engine engine(config);
  rrh::engine::effects out;
  rrh::engine::time_ms now = 1'700'000'000'000;

  const std::size_t node_count = std::max<std::size_t>(1, agent_count / agents_per_node);
  std::vector<node_stream> streams(node_count);
  const auto agent_id = [](std::size_t node, std::size_t slot) {
    return "n" + std::to_string(node) + ".a" + std::to_string(slot);
  };

  // Registration: the fleet's standing state, measured as heap bytes per agent.
  const auto heap_before = heap_bytes();
  for (std::size_t node = 0; node < node_count; ++node) {
    auto& stream = streams[node];
    stream.node = "n" + std::to_string(node);
    rrh::events::heartbeat beat;
    // Nodes beat in turn, one heartbeat every (2 * heartbeat_every - 1) events, so each
    // node's real cadence grows with the fleet; it declares that cadence, so that at every
    // size the fleet is healthy and the failure detector sees beats on time (declaring a
    // shorter interval would make a large fleet's nodes late, and suspect).
    beat.interval_ms = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(static_cast<double>(node_count * (2 * heartbeat_every - 1)) *
                                      time_per_event_ms));
    for (std::size_t slot = 0; slot < agents_per_node; ++slot) {
      engine.on_event(critical(stream, rrh::events::agent_registered{agent_id(node, slot), "pool", {}, {}, 0}),
                      now, out);
      out.clear();
      beat.agents.push_back({agent_id(node, slot), 10, false});
    }
    stream.heartbeat.header.node = stream.node;
    stream.heartbeat.header.incarnation = 7;
    stream.heartbeat.body = std::move(beat);
  }
  // Every node's first heartbeat makes its registered agents healthy: part of joining the
  // fleet, not of its steady state, so it happens before the clock starts.
  for (auto& stream : streams) {
    engine.on_event(stream.heartbeat, now, out);
    out.clear();
  }
  const auto heap_after = heap_bytes();

  // The measured mix, generated before the clock starts.
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<std::size_t> pick_node(0, node_count - 1);
  std::uniform_int_distribution<std::size_t> pick_slot(0, agents_per_node - 1);
  std::uniform_real_distribution<double> roll(0.0, 1.0);
  std::vector<rrh::event> mix;
  std::vector<std::uint32_t> mix_stream;
  const auto warmup_count = static_cast<std::size_t>(warmup_ms / time_per_event_ms);
  mix.reserve(warmup_count + event_count + 1);
  mix_stream.reserve(warmup_count + event_count + 1);
  std::uint64_t task_number = 0;
  std::size_t next_heartbeat_node = 0;
  for (std::size_t step = 0; mix.size() < warmup_count + event_count; ++step) {
    if (step % heartbeat_every == 0) {
      // Nodes beat in turn, as real nodes beat on their own timers: regular intervals.
      mix.push_back(streams[next_heartbeat_node].heartbeat);
      mix_stream.push_back(not_numbered);
      next_heartbeat_node = (next_heartbeat_node + 1) % node_count;
      continue;
    }
    const auto node = pick_node(random);
    auto& stream = streams[node];
    const auto agent = agent_id(node, pick_slot(random));
    const auto task = "t" + std::to_string(++task_number);
    mix.push_back(critical(stream, rrh::events::task_started{task, agent, 1}, false));
    if (roll(random) < failure_share) {
      mix.push_back(critical(stream, rrh::events::task_failed{task, agent, "TransientError", "bench", true, 1, "pool", {}}, false));
    } else {
      mix.push_back(critical(stream, rrh::events::task_succeeded{task, agent, 1}, false));
    }
    mix_stream.insert(mix_stream.end(), 2, static_cast<std::uint32_t>(node));
  }
  mix.resize(warmup_count + event_count);
  mix_stream.resize(warmup_count + event_count);
  // A batch is what one poll brings: the fleet's answers to the previous batch's commands,
  // then the next `batch_size` generated events, applied in one on_events call as the
  // processor applies them. The batch is assembled in a buffer the engine reads it from,
  // as the processor decodes a poll's messages into one: the events are fresh in cache,
  // not fetched from a mix of gigabytes.
  const auto number = [&](std::size_t from, std::size_t count) {
    for (std::size_t at = from; at < from + count; ++at) {
      if (mix_stream[at] != not_numbered) mix[at].header.seq = ++streams[mix_stream[at]].seq;
    }
  };

  double clock_ms = static_cast<double>(now);
  // The fleet answers the processor's commands as shims do: each command of a call is
  // acked in the next one, a probe also gets its probe.reply, and a retried task runs and
  // succeeds. Without answers the engine would be measured in a state no real fleet
  // reaches: probed agents turning suspect, every retry resent forever and the pending
  // commands and tasks growing with the run. Answers count as events applied.
  std::vector<rrh::event> replies;
  std::size_t replies_applied = 0;
  const auto collect_replies = [&] {
    for (const auto& sent : out.commands) {
      auto& stream = streams[std::stoul(sent.node.substr(1))];
      replies.push_back(critical(stream, rrh::events::command_ack{sent.id, true, {}}));
      if (const auto* probe = std::get_if<rrh::commands::agent_probe>(&sent.body)) {
        rrh::event reply;
        reply.header.node = sent.node;
        reply.header.incarnation = 7;
        reply.body = rrh::events::probe_reply{sent.id, probe->agent};
        replies.push_back(std::move(reply));
      } else if (const auto* retry = std::get_if<rrh::commands::task_retry>(&sent.body)) {
        replies.push_back(critical(stream, rrh::events::task_succeeded{retry->task, retry->agent, retry->attempt}));
      }
    }
    out.clear();
  };
  // Applies the generated events [from, to), each batch with the answers to the one before.
  // Only the engine's calls are timed: assembling a batch and answering its commands is
  // the fleet's work, not the engine's.
  std::vector<rrh::event> batch;
  double engine_seconds = 0;
  const auto feed = [&](std::size_t from, std::size_t to) {
    for (std::size_t at = from; at < to; at += batch_size) {
      const auto count = std::min(batch_size, to - at);
      clock_ms += time_per_event_ms * static_cast<double>(count);
      const auto now_ms = static_cast<rrh::engine::time_ms>(clock_ms);
      replies_applied += replies.size();
      number(at, count);
      batch.clear();
      std::move(replies.begin(), replies.end(), std::back_inserter(batch));
      std::copy_n(mix.begin() + static_cast<std::ptrdiff_t>(at), count, std::back_inserter(batch));
      replies.clear();
      const auto started = steady::now();
      if (batch_size <= 1) {
        for (const auto& message : batch) engine.on_event(message, now_ms, out);
      } else {
        engine.on_events(batch, now_ms, out);
      }
      engine_seconds += std::chrono::duration<double>(steady::now() - started).count();
      collect_replies();
    }
  };
  // Warm-up, not counted: the first seconds of the mix bring the engine to its steady
  // state (the task table at the size the retry delay keeps, probes under way), so that the
  // figures are of that state and not of the tables' first growth.
  feed(0, warmup_count);
  replies_applied = 0;
  engine_seconds = 0;
  feed(warmup_count, warmup_count + event_count);

  std::map<std::string, std::size_t> by_state;
  engine.for_each_agent([&](const rrh::engine::agent_record& agent) { ++by_state[rrh::engine::to_string(agent.state)]; });
  for (const auto& [state, count] : by_state) std::fprintf(stderr, "  %s=%zu", state.c_str(), count);
  std::fprintf(stderr, "  timers_fired=%llu commands_issued=%llu",
               static_cast<unsigned long long>(engine.stats().timers_fired),
               static_cast<unsigned long long>(engine.stats().commands_issued));
  std::fprintf(stderr, "  timers=%zu pending=%zu tasks=%zu\n", engine.timer_count(), engine.pending_count(),
               engine.task_count());
  fleet_result result;
  result.agents = agent_count;
  result.nodes = node_count;
  result.events = event_count + replies_applied;
  result.seconds = engine_seconds;
  result.bytes_per_agent = static_cast<double>(heap_after - heap_before) / static_cast<double>(agent_count);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rrh-bench-engine: the engine alone under a generated mix of heartbeats (one in ten "
               "events, 100 agents each) and task events (20% failures), for fleets of 1k, 100k "
               "and 1M agents. Targets: cost per event within 1.5x from the smallest to the largest "
               "fleet, and under 1 KiB of heap per agent."};
  bool quick = false;
  bool json = false;
  std::size_t events = 1'000'000;
  std::vector<std::size_t> fleets = {1'000, 100'000, 1'000'000};
  std::uint64_t seed = 1;
  std::size_t batch = 64;
  std::uint64_t probe_interval_s = 0;
  std::size_t repeat = 5;
  app.add_flag("--quick", quick, "smaller run: fleets of 1k and 10k agents, 100k events, once");
  app.add_flag("--json", json, "one JSON object per fleet size");
  app.add_option("--events", events, "events fed per fleet")->check(CLI::Range(1000, 100'000'000));
  app.add_option("--fleets", fleets, "fleet sizes in agents (multiples of 100)");
  app.add_option("--seed", seed, "seed of the generated mix");
  app.add_option("--batch", batch,
                 "events applied per engine call, as the processor applies one poll's worth "
                 "(1: one on_event call per event)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--probe-interval-s", probe_interval_s,
                 "agent_health_check_interval in seconds (0: the default, 300 s); the active "
                 "probes are work per agent and second, not per event: a long interval shows "
                 "the cost of events alone")
      ->check(CLI::Range(0, 86'400));
  app.add_option("--repeat", repeat,
                 "runs of every fleet, in turn; the figures are each fleet's median run (on a "
                 "shared or virtual machine one run can be 10% off)")
      ->check(CLI::Range(1, 99));
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    fleets = {1'000, 10'000};
    events = 100'000;
    repeat = 1;
  }

  // Fleets run in turn, `repeat` rounds, so that a slow spell of the machine touches every
  // fleet alike rather than one fleet's runs.
  std::vector<std::vector<fleet_result>> runs(fleets.size());
  for (std::size_t round = 0; round < repeat; ++round) {
    for (std::size_t at = 0; at < fleets.size(); ++at) {
      runs[at].push_back(
          run_fleet(std::max<std::size_t>(fleets[at], agents_per_node), events, batch, probe_interval_s, seed));
      std::fprintf(stderr, "round %zu/%zu, %zu agents: %.1f ns/event\n", round + 1, repeat, runs[at].back().agents,
                   runs[at].back().ns_per_event());
    }
  }
  std::vector<fleet_result> results;
  std::vector<std::pair<double, double>> ranges;  // fastest and slowest run of each fleet
  for (auto& fleet_runs : runs) {
    std::sort(fleet_runs.begin(), fleet_runs.end(),
              [](const fleet_result& left, const fleet_result& right) { return left.ns_per_event() < right.ns_per_event(); });
    results.push_back(fleet_runs[fleet_runs.size() / 2]);
    ranges.emplace_back(fleet_runs.front().ns_per_event(), fleet_runs.back().ns_per_event());
  }
  const double baseline_ns = results.front().ns_per_event();
  bool all_met = true;
  if (!json) {
    std::printf("rrh-bench-engine: %zu events per fleet, %zu agents per node, median of %zu run(s)\n", events,
                agents_per_node, repeat);
    std::printf("%10s %8s %14s %12s %16s %10s %14s\n", "agents", "nodes", "events/s", "ns/event", "runs",
                "vs first", "heap B/agent");
  }
  for (std::size_t at = 0; at < results.size(); ++at) {
    const auto& result = results[at];
    const double ratio = result.ns_per_event() / baseline_ns;
    const bool met = ratio <= flatness_target && result.bytes_per_agent <= bytes_per_agent_target;
    all_met = all_met && met;
    if (json) {
      std::printf(
          "{\"scenario\":\"engine_%zu_agents\",\"value\":%.1f,\"baseline\":%.1f,\"ratio\":%.3f,"
          "\"unit\":\"ns/event\",\"target\":%.2f,\"met\":%s,\"events_per_s\":%.0f,"
          "\"runs\":%zu,\"fastest\":%.1f,\"slowest\":%.1f,"
          "\"bytes_per_agent\":%.0f,\"bytes_per_agent_target\":%.0f}\n",
          result.agents, result.ns_per_event(), baseline_ns, ratio, flatness_target, met ? "true" : "false",
          result.events_per_s(), repeat, ranges[at].first, ranges[at].second, result.bytes_per_agent,
          bytes_per_agent_target);
    } else {
      char spread[64];
      std::snprintf(spread, sizeof spread, "%.0f-%.0f", ranges[at].first, ranges[at].second);
      std::printf("%10zu %8zu %14.0f %12.1f %16s %9.2fx %14.0f\n", result.agents, result.nodes,
                  result.events_per_s(), result.ns_per_event(), spread, ratio, result.bytes_per_agent);
    }
  }
  if (!json) {
    std::printf("targets: cost per event <= %.1fx of the first fleet, heap <= %.0f B/agent: %s\n",
                flatness_target, bytes_per_agent_target, all_met ? "met" : "NOT met");
  }
  return 0;
}
