// latency: task.failed -> task.retry (zero retry delay) received by the agent's DEALER, under
// a background load of heartbeats, against the raw round trip through the same broker: a
// plain peer that pushes a command back the moment it sees the event.
#include <atomic>
#include <cstdio>
#include <map>
#include <thread>

#include "harness.hpp"
#include "rrh/codec.hpp"

namespace rrh::bench {
namespace {

/// Background nodes and the agents each lists in its heartbeats.
constexpr std::size_t background_nodes = 100;
constexpr std::size_t background_agents_per_node = 10;
/// The background publisher tops up to its rate this often.
constexpr std::chrono::milliseconds background_tick_ms{1};
/// One timed failure every `failure_interval`: a few hundred per second, so the samples
/// measure latency, not a queue of their own making.
constexpr std::chrono::microseconds failure_interval_us{2'000};
/// How long after the last failure its retry may still come.
constexpr std::chrono::milliseconds last_retry_timeout_ms{10'000};
constexpr std::chrono::milliseconds setup_timeout_ms{30'000};
constexpr double p99_ratio_target = 1.5;

/// Heartbeats of nodes that are not registered: the processor decodes and judges each one
/// (detector, timers), as it does for any node.
class background_load {
 public:
  background_load(const broker_process& broker, std::uint64_t rate_per_s) : rate_per_s_(rate_per_s) {
    for (std::size_t node = 0; node < background_nodes; ++node) {
      event beat_event;
      beat_event.header.node = "background-" + std::to_string(node);
      beat_event.header.incarnation = 1 + node;
      events::heartbeat beat;
      beat.interval_ms = 1000;
      beat.host = "bench-host";
      for (std::size_t agent = 0; agent < background_agents_per_node; ++agent) {
        beat.agents.push_back({beat_event.header.node + ".a" + std::to_string(agent), 50, false});
      }
      beat_event.body = beat;
      beats_.push_back(to_bus(beat_event));
    }
    thread_ = std::thread([this, endpoint = broker.events_in] { run(endpoint); });
  }
  ~background_load() {
    stop_ = true;
    thread_.join();
  }
  background_load(const background_load&) = delete;
  background_load& operator=(const background_load&) = delete;

  /// Events/s actually sent since the start.
  double achieved_rate() const {
    const auto seconds = std::chrono::duration<double>(steady::now() - start_).count();
    return seconds > 0 ? static_cast<double>(sent_.load()) / seconds : 0;
  }

 private:
  void run(const std::string& endpoint) {
    zmq::context_t context;
    zmq::socket_t publisher(context, zmq::socket_type::pub);
    publisher.set(zmq::sockopt::linger, 0);
    publisher.connect(endpoint);
    std::uint64_t sent = 0;
    auto tick = steady::now();
    while (!stop_) {
      const double elapsed_s = std::chrono::duration<double>(steady::now() - start_).count();
      const auto due = static_cast<std::uint64_t>(elapsed_s * static_cast<double>(rate_per_s_));
      for (; sent < due; ++sent) {
        const auto& beat = beats_[sent % beats_.size()];
        publisher.send(zmq::buffer(beat.topic), zmq::send_flags::sndmore);
        publisher.send(zmq::buffer(beat.body), zmq::send_flags::none);
      }
      sent_ = sent;
      tick += background_tick_ms;
      std::this_thread::sleep_until(tick);  // pacing a load generator, not waiting on a result
    }
  }

  std::uint64_t rate_per_s_;
  std::vector<bus_message> beats_;
  const steady::time_point start_ = steady::now();
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// The baseline's processor stand-in: every task.failed is answered at once with a
/// task.retry pushed through the broker's command relay to the sending node.
class raw_peer {
 public:
  explicit raw_peer(const broker_process& broker) {
    subscriber_ = subscribe(context_, broker, {"task.failed "});
    pusher_ = zmq::socket_t(context_, zmq::socket_type::push);
    pusher_.set(zmq::sockopt::linger, 0);
    pusher_.connect(broker.commands_in);
    thread_ = std::thread([this] { run(); });
  }
  ~raw_peer() {
    stop_ = true;
    thread_.join();
  }
  raw_peer(const raw_peer&) = delete;
  raw_peer& operator=(const raw_peer&) = delete;

 private:
  void run() {
    zmq::pollitem_t item{subscriber_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::message_t topic, body;
    std::uint64_t next_id = 1;
    while (!stop_) {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) == 0) continue;
      (void)subscriber_.recv(topic, zmq::recv_flags::none);
      if (!topic.more()) continue;
      (void)subscriber_.recv(body, zmq::recv_flags::none);
      auto decoded = decode_event(body.data(), body.size());
      if (!decoded) continue;
      const auto* failed = std::get_if<events::task_failed>(&decoded->body);
      if (failed == nullptr) continue;
      command retry;
      retry.id = next_id++;
      retry.node = decoded->header.node;
      retry.ts_ms = decoded->header.ts_ms;
      retry.body = commands::task_retry{failed->task, failed->agent, failed->attempt + 1, "", failed->checkpoint};
      const auto encoded = encode(retry);
      const auto kind = kind_name(retry.body);
      pusher_.send(zmq::buffer(retry.node), zmq::send_flags::sndmore);
      pusher_.send(zmq::buffer(kind.data(), kind.size()), zmq::send_flags::sndmore);
      pusher_.send(zmq::buffer(encoded.data(), encoded.size()), zmq::send_flags::none);
    }
  }

  zmq::context_t context_;
  zmq::socket_t subscriber_;
  zmq::socket_t pusher_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Sends `samples` task failures from the probe node, one per interval, and times each
/// until its task.retry arrives on the node's DEALER. With `processor`, each retry is
/// acked and the task succeeds, as an agent would; the baseline peer needs neither.
std::vector<double> time_failures(fleet& probe, std::uint64_t samples, bool processor, const std::string& run) {
  const auto agent = probe.node_id(0) + ".a0";
  std::map<std::string, steady::time_point> sent_at;
  std::vector<double> latencies_us;
  latencies_us.reserve(samples);
  probe.on_command = [&](std::size_t, const command& message, steady::time_point received) {
    const auto* retry = std::get_if<commands::task_retry>(&message.body);
    if (retry == nullptr) return;
    const auto found = sent_at.find(retry->task);
    if (found == sent_at.end()) return;  // a resent copy of one already timed
    latencies_us.push_back(std::chrono::duration<double, std::micro>(received - found->second).count());
    sent_at.erase(found);
    if (processor) {
      probe.send_critical(0, to_bus(probe.make(0, events::command_ack{message.id, true, ""}, true)));
      probe.send_critical(0, to_bus(probe.make(0, events::task_succeeded{retry->task, retry->agent, retry->attempt}, true)));
    }
  };
  auto next_send = steady::now();
  std::uint64_t sent = 0;
  steady::time_point last_sent = next_send;
  while (latencies_us.size() < samples) {
    const auto now = steady::now();
    if (sent < samples && now >= next_send) {
      events::task_failed failed;
      failed.task = run + ".t" + std::to_string(sent);
      failed.agent = agent;
      failed.error_type = "TimeoutError";
      failed.message = "tool call timed out";
      failed.checkpoint.assign(64, 7);
      auto message = to_bus(probe.make(0, failed, processor));
      sent_at[failed.task] = steady::now();
      if (processor) {
        probe.send_critical(0, std::move(message));
      } else {
        probe.send_best_effort(message);
      }
      ++sent;
      last_sent = now;
      next_send += failure_interval_us;
    }
    if (sent == samples && now > last_sent + last_retry_timeout_ms) break;
    // Wait for a command or the next send, whichever comes first.
    probe.pump();
    const auto wait = sent < samples ? std::chrono::duration_cast<std::chrono::microseconds>(next_send - steady::now())
                                     : std::chrono::microseconds(1000);
    if (wait.count() > 0) probe.wait_for_command(wait);
  }
  probe.on_command = nullptr;
  return latencies_us;
}

}  // namespace

scenario_result run_latency(const options& settings) {
  scenario_result result;
  stack bus(settings, "latency",
            quiet_resilience_yaml() +
                "  task_retry_delay: 0\n  task_retry_delay_max: 0\n  max_task_retries: 3\n",
            /*with_processor=*/false);
  zmq::context_t context;
  background_load load(bus.broker(), settings.background_rate);

  std::vector<double> raw;
  {
    raw_peer peer(bus.broker());
    fleet probe(context, bus.broker(), 1, "latency-raw", 1'000'000);
    raw = time_failures(probe, settings.latency_samples, false, "raw");
  }
  const double raw_load = load.achieved_rate();

  bus.start_processor();
  fleet probe(context, bus.broker(), 1, "latency-rrh", 1'000'000);
  events::agent_registered registered;
  registered.agent = probe.node_id(0) + ".a0";
  probe.send_critical(0, to_bus(probe.make(0, registered, true)));
  if (!probe.wait_all_acked(steady::now() + setup_timeout_ms)) {
    throw scenario_failure{"latency: the probe agent's registration was not acked"};
  }
  events::heartbeat beat;
  beat.interval_ms = 1000;
  beat.agents.push_back({registered.agent, 0, false});
  probe.send_best_effort(to_bus(probe.make(0, beat, false)));
  const auto beats_before = bus.status_number("heartbeats");
  const auto rrh_start = steady::now();
  auto timed = time_failures(probe, settings.latency_samples, true, "rrh");
  const double rrh_seconds = std::chrono::duration<double>(steady::now() - rrh_start).count();
  const auto beats_applied = bus.status_number("heartbeats") - beats_before;
  const bool all_acked = probe.wait_all_acked(steady::now() + setup_timeout_ms);
  const bool complete = timed.size() == settings.latency_samples && raw.size() == settings.latency_samples;

  struct level {
    const char* name;
    double share;
    std::optional<double> target;
  };
  for (const level& each : {level{"p50", 0.50, std::nullopt}, level{"p99", 0.99, p99_ratio_target},
                            level{"p99_9", 0.999, std::nullopt}}) {
    const double value = percentile(timed, each.share);
    const double baseline = percentile(raw, each.share);
    result.figures.push_back({std::string("latency.") + each.name, value, baseline,
                              baseline > 0 ? value / baseline : 0, "us", each.target, false,
                              complete && all_acked});
  }
  result.notes.push_back(format_text(
      "latency: %zu of %llu retries timed through the processor, %zu of %llu raw round trips; "
      "background %.0f heartbeats/s (%.0f during the raw run), processor applied %.0f/s of "
      "them; every ack %s",
      timed.size(), static_cast<unsigned long long>(settings.latency_samples), raw.size(),
      static_cast<unsigned long long>(settings.latency_samples), load.achieved_rate(), raw_load,
      beats_applied / rrh_seconds, all_acked ? "applied" : "NOT applied"));
  return result;
}

}  // namespace rrh::bench
