// scale: fleets of 1k to 1M agents on at most 1000 nodes. Processor RSS and bytes per
// agent after registration, and CPU per heartbeat and per registration, each against the
// smallest fleet (cost per event must stay flat) and RSS against 1 GiB at 1M agents.
#include <algorithm>
#include <cstdio>

#include "harness.hpp"

namespace rrh::bench {
namespace {

/// Nodes host this many agents each (the fleet grows by nodes), up to `nodes_max` nodes.
constexpr std::uint64_t agents_per_node_base = 1'000;
constexpr std::uint64_t nodes_max = 1'000;
/// Registrations in flight, as in the ingest scenario.
constexpr std::uint64_t window_events = 20'000;
/// Heartbeats sent between two markers (a critical event whose ack proves that everything
/// sent before it was consumed), so no queue on the path reaches its high-water mark.
constexpr std::uint64_t heartbeats_per_marker = 500;
/// Longest registration of a fleet, and longest wait for one marker.
constexpr std::chrono::milliseconds register_timeout_ms{900'000};
constexpr std::chrono::milliseconds marker_timeout_ms{120'000};
/// The RSS budget: 1 GiB for a million agents.
constexpr double rss_budget_bytes = 1024.0 * 1024.0 * 1024.0;
constexpr std::uint64_t rss_budget_agents = 1'000'000;
constexpr double cost_ratio_target = 1.5;
/// A ZeroMQ context holds 1023 sockets by default; a fleet needs one per node and more.
constexpr int context_sockets_max = 4096;

struct fleet_figures {
  std::uint64_t agents = 0;
  std::uint64_t nodes = 0;
  std::uint64_t rss_idle = 0;
  std::uint64_t rss = 0;
  double register_us = 0;   ///< processor CPU per registration
  double heartbeat_us = 0;  ///< processor CPU per heartbeat of a node with its agents
  double register_seconds = 0;
  double heartbeats = 0;
  std::uint64_t heartbeats_sent = 0;
  bool lossless = true;
};

/// A critical event the engine applies without changing agent state: an ack of a command
/// it never sent.
event_body marker_body() { return events::command_ack{std::uint64_t{1} << 60, true, ""}; }

fleet_figures measure_fleet(const options& settings, std::uint64_t agents_wanted) {
  fleet_figures figures;
  figures.nodes = std::clamp<std::uint64_t>((agents_wanted + agents_per_node_base - 1) / agents_per_node_base,
                                            1, nodes_max);
  const auto per_node = std::max<std::uint64_t>(1, agents_wanted / figures.nodes);
  figures.agents = per_node * figures.nodes;
  stack bus(settings, "scale-" + std::to_string(figures.agents), quiet_resilience_yaml());
  zmq::context_t context;
  context.set(zmq::ctxopt::max_sockets, context_sockets_max);
  fleet nodes(context, bus.broker(), figures.nodes, "scale", window_events);
  const auto pid = bus.processor_pid();
  figures.rss_idle = resident_bytes(pid);

  const auto cpu_start = cpu_ns(pid);
  const auto register_start = steady::now();
  for (std::uint64_t agent = 0; agent < per_node; ++agent) {
    for (std::size_t node = 0; node < nodes.size(); ++node) {
      events::agent_registered registered;
      registered.agent = nodes.node_id(node) + ".a" + std::to_string(agent);
      registered.pool = "pool-" + std::to_string(node % 10);
      nodes.send_critical(node, to_bus(nodes.make(node, registered, true)));
    }
  }
  if (!nodes.wait_all_acked(register_start + register_timeout_ms)) {
    throw scenario_failure{"scale: registrations of " + std::to_string(figures.agents) + " agents not acked"};
  }
  figures.register_seconds = std::chrono::duration<double>(steady::now() - register_start).count();
  figures.register_us = static_cast<double>(cpu_ns(pid) - cpu_start) / 1000.0 / static_cast<double>(figures.agents);

  // One heartbeat per node, the same bytes every time: best-effort events are not numbered.
  std::vector<bus_message> beats;
  for (std::size_t node = 0; node < nodes.size(); ++node) {
    events::heartbeat beat;
    beat.interval_ms = 1000;
    beat.pid = 1000 + node;
    beat.host = "bench-host";
    for (std::uint64_t agent = 0; agent < per_node; ++agent) {
      beat.agents.push_back({nodes.node_id(node) + ".a" + std::to_string(agent), 100, false});
    }
    beats.push_back(to_bus(nodes.make(node, beat, false)));
  }
  const auto send_marker = [&] {
    nodes.send_critical(0, to_bus(nodes.make(0, marker_body(), true)));
    if (!nodes.wait_all_acked(steady::now() + marker_timeout_ms)) {
      throw scenario_failure{"scale: a heartbeat marker was not acked"};
    }
  };
  // Warm-up: the first heartbeat makes each registered agent healthy (per-agent work);
  // later ones of a healthy node are what a steady fleet costs.
  for (const auto& beat : beats) nodes.send_best_effort(beat);
  send_marker();
  const auto beats_before = bus.status_number("heartbeats");
  figures.rss = resident_bytes(pid);

  const auto cpu_before = cpu_ns(pid);
  for (std::uint64_t sent = 0; sent < settings.scale_heartbeats; ++sent) {
    nodes.send_best_effort(beats[sent % beats.size()]);
    if ((sent + 1) % heartbeats_per_marker == 0) send_marker();
  }
  send_marker();
  const auto cpu_after = cpu_ns(pid);
  figures.heartbeats_sent = settings.scale_heartbeats;
  figures.heartbeats = bus.status_number("heartbeats") - beats_before;
  figures.rss = std::max(figures.rss, resident_bytes(pid));
  figures.lossless = nodes.all_acked() && figures.heartbeats == static_cast<double>(settings.scale_heartbeats);
  figures.heartbeat_us = figures.heartbeats > 0
                             ? static_cast<double>(cpu_after - cpu_before) / 1000.0 / figures.heartbeats
                             : 0;
  return figures;
}

}  // namespace

scenario_result run_scale(const options& settings) {
  scenario_result result;
  std::vector<fleet_figures> fleets;
  for (const auto agents : settings.scale_agents) fleets.push_back(measure_fleet(settings, agents));
  const auto& smallest = fleets.front();
  const double budget_per_agent = rss_budget_bytes / static_cast<double>(rss_budget_agents);
  for (const auto& item : fleets) {
    const auto name = std::to_string(item.agents);
    figure rss{"scale.rss." + name, static_cast<double>(item.rss), rss_budget_bytes,
               static_cast<double>(item.rss) / rss_budget_bytes, "bytes", std::nullopt};
    if (item.agents >= rss_budget_agents) rss.target = 1.0;
    result.figures.push_back(rss);
    const double per_agent =
        static_cast<double>(item.rss - std::min(item.rss, item.rss_idle)) / static_cast<double>(item.agents);
    // Per agent, the fixed cost of a small processor dominates: judged at a million only.
    figure bytes{"scale.bytes_per_agent." + name, per_agent, budget_per_agent, per_agent / budget_per_agent,
                 "bytes/agent", std::nullopt};
    if (item.agents >= rss_budget_agents) bytes.target = 1.0;
    result.figures.push_back(bytes);
    result.figures.push_back({"scale.heartbeat_cpu." + name, item.heartbeat_us, smallest.heartbeat_us,
                              smallest.heartbeat_us > 0 ? item.heartbeat_us / smallest.heartbeat_us : 0,
                              "us/heartbeat", cost_ratio_target, false, item.lossless});
    result.figures.push_back({"scale.register_cpu." + name, item.register_us, smallest.register_us,
                              smallest.register_us > 0 ? item.register_us / smallest.register_us : 0,
                              "us/event", cost_ratio_target, false, item.lossless});
    result.notes.push_back(format_text(
        "scale %llu agents on %llu nodes: registered in %.2f s; RSS %.1f MiB (idle %.1f MiB); "
        "%.0f of %llu heartbeats applied (%llu agents each)%s",
        static_cast<unsigned long long>(item.agents), static_cast<unsigned long long>(item.nodes),
        item.register_seconds, static_cast<double>(item.rss) / 1048576.0,
        static_cast<double>(item.rss_idle) / 1048576.0, item.heartbeats,
        static_cast<unsigned long long>(item.heartbeats_sent),
        static_cast<unsigned long long>(item.agents / item.nodes),
        item.lossless ? "" : "; EVENTS MISSING"));
  }
  return result;
}

}  // namespace rrh::bench
