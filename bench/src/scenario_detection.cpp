// detection: real rrh-agent node processes, SIGKILLed one after another; the time from each
// kill to agent.dead on the bus for each of its agents, against the bound the failure
// detector predicts for the configuration and the nodes' heartbeat interval.
#include <cstdio>
#include <optional>
#include <map>

#include "harness.hpp"
#include "rrh/codec.hpp"
#include "rrh/engine/detector.hpp"

namespace rrh::bench {
namespace {

/// The nodes' heartbeat and the processor's detection keys: fast, as in the quick start.
constexpr std::uint64_t heartbeat_ms = 200;
constexpr std::uint64_t acceptable_pause_ms = 500;
constexpr std::uint64_t min_std_deviation_ms = 50;
constexpr double phi_threshold = 8.0;
constexpr std::uint64_t agents_per_node = 2;
/// Kills are spread over the heartbeat period, so they land at every phase of it.
constexpr std::chrono::milliseconds kill_stagger_ms{37};
/// Heartbeats a young node sends after it is healthy and before its kill, while the
/// detector's window still holds its first intervals.
constexpr std::uint64_t young_heartbeats = 10;
constexpr std::chrono::milliseconds setup_timeout_ms{30'000};
/// What the target adds to the bound.
constexpr double slack_ms = 100.0;
/// Share of detections that must come within bound + slack.
constexpr double within_share_target = 0.99;

/// Silence after which the detector declares a node of perfectly regular heartbeats dead:
/// the longest a kill can take to detect (a kill right after a heartbeat).
double predicted_bound_ms() {
  rrh::engine::phi_detector detector;
  engine::time_ms now = 1'000'000;
  for (std::size_t beat = 0; beat < rrh::engine::phi_detector::window_size; ++beat) {
    detector.heartbeat(now, heartbeat_ms);
    now += heartbeat_ms;
  }
  const auto last = detector.last_heartbeat_ms();
  return static_cast<double>(detector.time_at_phi(phi_threshold, acceptable_pause_ms, min_std_deviation_ms) - last);
}


/// One round: `nodes` fresh rrh-agent processes, killed one after another once every node
/// has been healthy for `warmup`; the detection time of each of their agents.
std::vector<double> kill_round(const options& settings, stack& bus, const std::string& round,
                               std::chrono::milliseconds warmup, double bound_ms) {
  zmq::context_t context;
  auto deaths = subscribe(context, bus.broker(), {"agent.dead "});
  // Agents of earlier rounds are dead by now; count from here.
  const auto healthy_before = bus.status_number("healthy");
  std::vector<std::string> node_ids;
  std::vector<std::unique_ptr<child_process>> agents;
  for (std::uint64_t index = 0; index < settings.detection_nodes; ++index) {
    node_ids.push_back("detect-" + round + "-" + std::to_string(index));
    auto agent = child_process::start(
        settings.agent_path,
        {"--node", node_ids.back(), "--agents", std::to_string(agents_per_node), "--heartbeat-ms",
         std::to_string(heartbeat_ms), "--task-ms", "3600000", "--fail-rate", "0", "--events",
         bus.broker().events_in, "--commands", bus.broker().commands_out, "--log-level", "error"},
        "");
    if (!agent) throw scenario_failure{agent.error().detail};
    agents.push_back(std::move(agent.value()));
  }
  const auto expected_agents = static_cast<double>(settings.detection_nodes * agents_per_node);
  const auto healthy = [&] { return bus.status_number("healthy") >= healthy_before + expected_agents; };
  zmq::pollitem_t item{deaths.handle(), 0, ZMQ_POLLIN, 0};
  const auto wait_step = [&] { zmq::poll(&item, 1, std::chrono::milliseconds(50)); };
  if (!pump_until(healthy, wait_step, steady::now() + setup_timeout_ms)) {
    throw scenario_failure{format_text("detection: only %.0f of %.0f agents of the rrh-agent nodes became healthy",
                                       bus.status_number("healthy") - healthy_before, expected_agents)};
  }
  const auto warm_until = steady::now() + warmup;
  pump_until([&] { return steady::now() >= warm_until; }, wait_step, warm_until + setup_timeout_ms);

  // Drop what the subscription saw before the kills (probes).
  zmq::message_t frame;
  while (deaths.recv(frame, zmq::recv_flags::dontwait)) {
  }
  std::map<std::string, steady::time_point> killed_at;
  std::vector<double> detections_ms;
  const auto kills_start = steady::now();
  std::size_t next_kill = 0;
  const auto collect_deadline = kills_start + kill_stagger_ms * settings.detection_nodes +
                                std::chrono::milliseconds(static_cast<std::int64_t>(bound_ms * 10));
  while (static_cast<double>(detections_ms.size()) < expected_agents && steady::now() < collect_deadline) {
    if (next_kill < agents.size() && steady::now() >= kills_start + kill_stagger_ms * next_kill) {
      killed_at[node_ids[next_kill]] = steady::now();
      agents[next_kill]->kill_now();
      ++next_kill;
      continue;
    }
    if (zmq::poll(&item, 1, std::chrono::milliseconds(1)) == 0) continue;
    zmq::message_t topic, body;
    (void)deaths.recv(topic, zmq::recv_flags::none);
    if (!topic.more()) continue;
    (void)deaths.recv(body, zmq::recv_flags::none);
    const auto received = steady::now();
    auto decoded = decode_event(body.data(), body.size());
    if (!decoded) continue;
    const auto* dead = std::get_if<events::agent_dead>(&decoded->body);
    if (dead == nullptr) continue;
    const auto node = dead->agent.substr(0, dead->agent.rfind(".a"));
    const auto killed = killed_at.find(node);
    if (killed == killed_at.end()) continue;  // not this round's, or declared before its kill
    detections_ms.push_back(std::chrono::duration<double, std::milli>(received - killed->second).count());
  }
  return detections_ms;
}

}  // namespace

scenario_result run_detection(const options& settings) {
  scenario_result result;
  const double bound_ms = predicted_bound_ms();
  const auto yaml = quiet_resilience_yaml(std::to_string(static_cast<double>(acceptable_pause_ms) / 1000.0)) +
                    "  min_std_deviation: " + std::to_string(static_cast<double>(min_std_deviation_ms) / 1000.0) +
                    "\n  phi_threshold: " + std::to_string(phi_threshold) + "\n";
  stack bus(settings, "detection", yaml);
  const auto expected_agents = static_cast<double>(settings.detection_nodes * agents_per_node);
  struct round_info {
    const char* name;
    std::chrono::milliseconds warmup;
  };
  // Settled: the detector's window holds only steady intervals; young: killed seconds
  // after start, while the window still holds the node's first intervals.
  const std::vector<round_info> rounds = {
      {"settled", std::chrono::milliseconds(static_cast<std::int64_t>(settings.detection_settle_s * 1000))},
      {"young", std::chrono::milliseconds(heartbeat_ms * young_heartbeats)}};
  for (const auto& each : rounds) {
    auto detections_ms = kill_round(settings, bus, each.name, each.warmup, bound_ms);
    std::size_t within = 0;
    for (const auto value : detections_ms) within += value <= bound_ms + slack_ms ? 1 : 0;
    const double share = static_cast<double>(within) / expected_agents;
    const bool all_detected = static_cast<double>(detections_ms.size()) == expected_agents;
    const double p50 = percentile(detections_ms, 0.5);
    const double p99 = percentile(detections_ms, within_share_target);
    const double worst = detections_ms.empty() ? 0 : detections_ms.back();
    const std::string prefix = std::string("detection.") + each.name;
    result.figures.push_back({prefix + ".p50", p50, bound_ms, p50 / bound_ms, "ms", std::nullopt});
    result.figures.push_back({prefix + ".p99", p99, bound_ms + slack_ms, p99 / (bound_ms + slack_ms), "ms", 1.0,
                              false, all_detected});
    result.notes.push_back(format_text(
        "detection %s (killed %.1f s after healthy): %zu of %.0f agents on %llu SIGKILLed rrh-agent "
        "nodes declared dead; %.1f%% within bound + 100 ms; worst %.0f ms",
        each.name, static_cast<double>(each.warmup.count()) / 1000.0, detections_ms.size(),
        expected_agents, static_cast<unsigned long long>(settings.detection_nodes), share * 100.0,
        worst));
  }
  result.notes.push_back(format_text(
      "detection bound %.0f ms: heartbeat %llu ms, acceptable_pause %llu ms, min_std_deviation %llu ms, "
      "phi_threshold %.0f",
      bound_ms, static_cast<unsigned long long>(heartbeat_ms),
      static_cast<unsigned long long>(acceptable_pause_ms),
      static_cast<unsigned long long>(min_std_deviation_ms), phi_threshold));
  return result;
}

}  // namespace rrh::bench
