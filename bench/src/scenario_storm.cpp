// storm: thousands of agents die at once (their supervisors report their nodes killed); the
// time until every agent.recover is sent, received by the supervisor and its ack applied by
// the processor, against the configured pace: (agents - recovery_burst) / recovery_rate_per_s.
#include <cstdio>
#include <set>

#include "harness.hpp"

namespace rrh::bench {
namespace {

/// Agents per worker node; each worker has its own supervisor node.
constexpr std::uint64_t agents_per_worker = 1'000;
constexpr std::uint64_t window_events = 20'000;
constexpr std::chrono::milliseconds setup_timeout_ms{120'000};
/// The storm must end within its expected time plus this share.
constexpr double ratio_target = 1.1;
/// Wait at most this many times the expected duration (plus a constant) for the storm.
constexpr double storm_timeout_factor = 3.0;
constexpr std::chrono::milliseconds storm_timeout_extra_ms{30'000};
constexpr int context_sockets_max = 4096;

}  // namespace

scenario_result run_storm(const options& settings) {
  scenario_result result;
  const auto worker_count = std::max<std::uint64_t>(1, (settings.storm_agents + agents_per_worker - 1) / agents_per_worker);
  const auto per_worker = settings.storm_agents / worker_count;
  const auto agent_count = per_worker * worker_count;
  char pace[256];
  std::snprintf(pace, sizeof pace, "  recovery_rate_per_s: %g\n  recovery_burst: %llu\n", settings.storm_rate,
                static_cast<unsigned long long>(settings.storm_burst));
  stack bus(settings, "storm", quiet_resilience_yaml() + pace);
  zmq::context_t context;
  context.set(zmq::ctxopt::max_sockets, context_sockets_max);
  fleet workers(context, bus.broker(), worker_count, "storm-node", window_events);
  fleet supervisors(context, bus.broker(), worker_count, "storm-sup", window_events);

  std::vector<std::vector<std::string>> hosted(worker_count);
  for (std::uint64_t agent = 0; agent < per_worker; ++agent) {
    for (std::size_t worker = 0; worker < worker_count; ++worker) {
      events::agent_registered registered;
      registered.agent = workers.node_id(worker) + ".a" + std::to_string(agent);
      registered.supervisor = supervisors.node_id(worker);
      hosted[worker].push_back(registered.agent);
      workers.send_critical(worker, to_bus(workers.make(worker, registered, true)));
    }
  }
  if (!workers.wait_all_acked(steady::now() + setup_timeout_ms)) {
    throw scenario_failure{"storm: registrations were not acked"};
  }
  for (std::size_t worker = 0; worker < worker_count; ++worker) {
    events::heartbeat beat;
    beat.interval_ms = 1000;
    for (const auto& agent : hosted[worker]) beat.agents.push_back({agent, 0, false});
    workers.send_best_effort(to_bus(workers.make(worker, beat, false)));
  }
  const auto healthy = [&] { return bus.status_number("healthy") >= static_cast<double>(agent_count); };
  const auto wait_step = [&] { supervisors.wait_for_command(std::chrono::milliseconds(20)); };
  if (!pump_until(healthy, wait_step, steady::now() + setup_timeout_ms)) {
    throw scenario_failure{"storm: the agents did not become healthy"};
  }
  const auto acked_before = bus.status_number("commands_acked");

  std::set<std::string> recovered;
  std::uint64_t recover_commands = 0;
  steady::time_point last_recover;
  supervisors.on_command = [&](std::size_t node, const command& message, steady::time_point received) {
    const auto* recover = std::get_if<commands::agent_recover>(&message.body);
    if (recover == nullptr) return;
    ++recover_commands;
    recovered.insert(recover->agent);
    last_recover = received;
    // The supervisor restarts the process and acks, as rrh-launch does.
    supervisors.send_critical(node, to_bus(supervisors.make(node, events::command_ack{message.id, true, ""}, true)));
  };
  const double expected_s =
      static_cast<double>(agent_count - std::min(agent_count, settings.storm_burst)) / settings.storm_rate;
  const auto start = steady::now();
  for (std::size_t worker = 0; worker < worker_count; ++worker) {
    events::node_exited exited;
    exited.child = workers.node_id(worker);
    exited.pid = 1000 + worker;
    exited.signal = 9;
    exited.reason = "killed by SIGKILL";
    exited.agents = hosted[worker];
    supervisors.send_critical(worker, to_bus(supervisors.make(worker, exited, true)));
  }
  const auto done = [&] { return recovered.size() == agent_count && supervisors.all_acked(); };
  const auto deadline = start + std::chrono::milliseconds(static_cast<std::int64_t>(expected_s * 1000 * storm_timeout_factor)) +
                        storm_timeout_extra_ms;
  const bool finished = pump_until(done, [&] { supervisors.wait_for_command(std::chrono::milliseconds(10)); }, deadline);
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  const double last_sent_s = std::chrono::duration<double>(last_recover - start).count();
  supervisors.on_command = nullptr;
  const auto status = bus.control("status");
  const auto acked = json_number(status, "commands_acked") - acked_before;
  const auto pending = json_number(status, "pending_commands");
  const bool lossless = finished && acked == static_cast<double>(agent_count) && pending == 0;

  result.figures.push_back({"storm", seconds, expected_s, expected_s > 0 ? seconds / expected_s : 0, "s",
                            ratio_target, false, lossless});
  result.notes.push_back(format_text(
      "storm: %llu agents on %llu nodes died at once; %zu distinct agents got agent.recover "
      "(%llu commands, last at %.3f s), %.0f acks applied, %.0f commands still pending; "
      "pace %g/s, burst %llu%s",
      static_cast<unsigned long long>(agent_count), static_cast<unsigned long long>(worker_count),
      recovered.size(), static_cast<unsigned long long>(recover_commands), last_sent_s, acked, pending,
      settings.storm_rate, static_cast<unsigned long long>(settings.storm_burst),
      lossless ? "; nothing lost" : "; RECOVERIES MISSING"));
  return result;
}

}  // namespace rrh::bench
