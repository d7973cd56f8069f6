// rrh-bench-broker: events per second through the real rrh-broker process, against a bare
// zmq_proxy(XSUB, XPUB) measured on the same stream in the same run. Only messages the
// subscriber actually received count, timed from the first to the last.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "broker.hpp"  // the broker's HWM, so that the baseline proxy runs with the same queues
#include "broker_process.hpp"
#include "rrh/codec.hpp"
#include "rrh/protocol.hpp"

namespace {

using rrh::bench::make_socket;
using rrh::bench::probe_topic;
using rrh::bench::subscription_handshake;
using steady = std::chrono::steady_clock;

/// Distinct pre-encoded messages cycled through by the publisher (encoding is not timed).
constexpr std::size_t distinct_messages = 80;
/// Every `failure_every`-th message is a task.failed, the rest heartbeats.
constexpr std::size_t failure_every = 10;
/// Longest wait for one timed run.
constexpr std::chrono::milliseconds run_timeout_ms{120'000};
/// The run ends when nothing arrived for this long after the publisher finished.
constexpr std::chrono::milliseconds idle_end_ms{500};
/// The broker must reach this share of the bare proxy's rate.
constexpr double ratio_target = 0.8;
/// Messages the publisher may be ahead of the subscriber. PUB and XPUB drop at the HWM, so
/// an unpaced publisher would measure how fast messages are dropped; a window well under
/// every HWM on the path measures sustained forwarding with nothing lost, and is deep
/// enough (tens of milliseconds of traffic) to keep every hop busy.
constexpr std::uint64_t in_flight_window_messages = 20'000;
/// The subscriber reports its progress to the publisher every this many messages.
constexpr std::uint64_t progress_step_messages = 1'000;

using bus_message = std::pair<std::string, std::string>;  // [topic][body]

std::string bytes_of(const rrh::byte_buffer& bytes) { return {bytes.begin(), bytes.end()}; }

/// Heartbeats of nodes with four agents, and task failures with a small checkpoint: the
/// shapes that dominate a real bus.
std::vector<bus_message> realistic_messages() {
  std::vector<bus_message> messages;
  for (std::size_t index = 0; index < distinct_messages; ++index) {
    rrh::event message;
    message.header.node = "node-" + std::to_string(index);
    message.header.incarnation = 0x5eed0000 + index;
    message.header.ts_ms = 1'700'000'000'000 + index;
    if (index % failure_every == 0) {
      rrh::events::task_failed failed;
      failed.task = "task-" + std::to_string(index);
      failed.agent = "agent-" + std::to_string(index);
      failed.error_type = "TimeoutError";
      failed.message = "tool call timed out after 30000 ms";
      failed.pool = "workers";
      failed.checkpoint.assign(64, static_cast<std::uint8_t>(index));
      message.header.seq = index + 1;
      message.body = failed;
    } else {
      rrh::events::heartbeat beat;
      beat.interval_ms = 1000;
      beat.pid = 4000 + index;
      beat.host = "host-" + std::to_string(index % 8);
      beat.rss_bytes = 512ull << 20;
      for (std::size_t agent = 0; agent < 4; ++agent) {
        beat.agents.push_back(
            {"agent-" + std::to_string(index) + "-" + std::to_string(agent), 120, false});
      }
      message.body = beat;
    }
    messages.emplace_back(rrh::event_topic(message), bytes_of(rrh::encode(message)));
  }
  return messages;
}

struct run_result {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  double seconds = 0.0;  ///< first to last received message
  double rate() const { return seconds > 0.0 ? static_cast<double>(received - 1) / seconds : 0.0; }
};

/// One timed run of `count` messages from a PUB on `events_in` to a SUB on `events_out`.
std::optional<run_result> measure(const std::string& events_in, const std::string& events_out,
                                  const std::vector<bus_message>& messages, std::uint64_t count) {
  zmq::context_t context;
  auto subscriber = make_socket(context, zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::rcvhwm, rrh::broker::event_hwm_messages);
  subscriber.set(zmq::sockopt::subscribe, "");
  subscriber.connect(events_out);
  auto publisher = make_socket(context, zmq::socket_type::pub);
  publisher.set(zmq::sockopt::sndhwm, rrh::broker::event_hwm_messages);
  publisher.connect(events_in);
  if (!subscription_handshake(publisher, subscriber)) {
    std::fprintf(stderr, "rrh-bench-broker: subscription handshake timed out\n");
    return std::nullopt;
  }

  std::atomic<bool> publisher_done{false};
  std::atomic<std::uint64_t> progress{0};  // messages received, updated every step
  run_result result;
  std::thread sender([&] {
    for (std::uint64_t index = 0; index < count; ++index) {
      for (auto seen = progress.load(); index >= seen + in_flight_window_messages;
           seen = progress.load()) {
        progress.wait(seen);
      }
      const auto& [topic, body] = messages[index % messages.size()];
      publisher.send(zmq::buffer(topic), zmq::send_flags::sndmore);
      publisher.send(zmq::buffer(body), zmq::send_flags::none);
    }
    result.sent = count;
    publisher_done = true;
  });

  zmq::message_t frame;
  std::optional<steady::time_point> first, last;
  const auto give_up = steady::now() + run_timeout_ms;
  zmq::pollitem_t item{subscriber.handle(), 0, ZMQ_POLLIN, 0};
  while (result.received < count && steady::now() < give_up) {
    if (zmq::poll(&item, 1, idle_end_ms) == 0) {
      if (publisher_done) break;  // idle after the last send: the rest was dropped
      // Lost messages would stall the window: release the publisher so the run ends.
      progress = count;
      progress.notify_one();
      continue;
    }
    (void)subscriber.recv(frame, zmq::recv_flags::none);
    const bool is_probe =
        frame.size() == probe_topic.size() &&
        std::equal(probe_topic.begin(), probe_topic.end(), static_cast<const char*>(frame.data()));
    while (frame.more()) (void)subscriber.recv(frame, zmq::recv_flags::none);
    if (is_probe) continue;  // late copies of the handshake probe
    last = steady::now();
    if (!first) first = last;
    if (++result.received % progress_step_messages == 0) {
      progress = result.received;
      progress.notify_one();
    }
  }
  sender.join();
  if (result.received < 2) {
    std::fprintf(stderr, "rrh-bench-broker: only %llu messages received\n",
                 static_cast<unsigned long long>(result.received));
    return std::nullopt;
  }
  result.seconds = std::chrono::duration<double>(*last - *first).count();
  return result;
}

/// A bare zmq_proxy(XSUB, XPUB) in a thread, with the broker's HWMs: the baseline.
class bare_proxy {
 public:
  bare_proxy()
      : frontend_(make_socket(context_, zmq::socket_type::xsub)),
        backend_(make_socket(context_, zmq::socket_type::xpub)) {
    frontend_.set(zmq::sockopt::rcvhwm, rrh::broker::event_hwm_messages);
    backend_.set(zmq::sockopt::sndhwm, rrh::broker::event_hwm_messages);
    frontend_.bind("tcp://127.0.0.1:*");
    backend_.bind("tcp://127.0.0.1:*");
    events_in = frontend_.get(zmq::sockopt::last_endpoint);
    events_out = backend_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] {
      try {
        zmq::proxy(frontend_, backend_);
      } catch (const zmq::error_t&) {
        // ETERM: the context was shut down; the proxy is done.
      }
      frontend_.close();
      backend_.close();
    });
  }
  ~bare_proxy() {
    context_.shutdown();
    thread_.join();
  }
  bare_proxy(const bare_proxy&) = delete;
  bare_proxy& operator=(const bare_proxy&) = delete;

  std::string events_in;
  std::string events_out;

 private:
  zmq::context_t context_;
  zmq::socket_t frontend_;
  zmq::socket_t backend_;
  std::thread thread_;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void print_run(const char* label, const run_result& run) {
  std::printf("  %-34s %12.0f events/s  (received %llu of %llu in %.3f s)\n", label, run.rate(),
              static_cast<unsigned long long>(run.received),
              static_cast<unsigned long long>(run.sent), run.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rrh-bench-broker: events/s through the rrh-broker process against a bare\n"
      "zmq_proxy(XSUB, XPUB) on the same stream, in the same run. Prints both rates\n"
      "(median of the rounds, which alternate) and their ratio; the target is a\n"
      "ratio of at least 0.8. Exit code 1 only when a run could not be measured."};
  bool quick = false;
  bool json = false;
  std::uint64_t message_count = 0;
  std::uint64_t rounds = 0;
  std::string broker_path;
  app.add_flag("--quick", quick, "a seconds-long smoke run (20000 messages, 1 round)");
  app.add_option("--messages", message_count,
                 "messages per run (default 500000; 20000 with --quick)");
  app.add_option("--rounds", rounds, "rounds of both scenarios (default 3; 1 with --quick)")
      ->check(CLI::Range(1, 100));
  app.add_flag("--json", json,
               "one JSON object: scenario, value, baseline, ratio, unit, target, met");
  app.add_option("--broker", broker_path, "rrh-broker executable (default: beside this one)");
  CLI11_PARSE(app, argc, argv);
  if (message_count == 0) message_count = quick ? 20'000 : 500'000;
  if (rounds == 0) rounds = quick ? 1 : 3;
  if (message_count < 2) {
    std::fprintf(stderr, "rrh-bench-broker: --messages must be at least 2\n");
    return 2;
  }
  if (broker_path.empty()) {
    std::error_code ignored;
    broker_path =
        (std::filesystem::read_symlink("/proc/self/exe", ignored).parent_path() / "rrh-broker")
            .string();
  }

  const auto messages = realistic_messages();
  std::vector<double> baseline_rates, broker_rates;
  if (!json) {
    std::printf("rrh-bench-broker: %llu events per run, %llu round(s), %zu-byte average body\n",
                static_cast<unsigned long long>(message_count),
                static_cast<unsigned long long>(rounds), [&] {
                  std::size_t total = 0;
                  for (const auto& message : messages) total += message.second.size();
                  return total / messages.size();
                }());
  }
  for (std::uint64_t round = 0; round < rounds; ++round) {
    std::optional<run_result> baseline_run;
    {
      bare_proxy proxy;
      baseline_run = measure(proxy.events_in, proxy.events_out, messages, message_count);
    }
    if (!baseline_run) return 1;
    auto broker = rrh::bench::broker_process::start(broker_path);
    if (!broker) {
      std::fprintf(stderr, "rrh-bench-broker: %s\n", broker.error().detail.c_str());
      return 1;
    }
    auto broker_run = measure((*broker)->events_in, (*broker)->events_out, messages, message_count);
    broker = rrh::make_error(rrh::errc::closed, "stopped");  // stops the broker process
    if (!broker_run) return 1;
    baseline_rates.push_back(baseline_run->rate());
    broker_rates.push_back(broker_run->rate());
    if (!json) {
      std::printf("round %llu\n", static_cast<unsigned long long>(round + 1));
      print_run("bare zmq_proxy (XSUB/XPUB thread)", *baseline_run);
      print_run("rrh-broker process", *broker_run);
    }
  }
  const double baseline = median(baseline_rates);
  const double value = median(broker_rates);
  const double ratio = baseline > 0.0 ? value / baseline : 0.0;
  const bool met = ratio >= ratio_target;
  if (json) {
    std::printf(
        "{\"scenario\":\"broker_event_forwarding\",\"value\":%.0f,\"baseline\":%.0f,"
        "\"ratio\":%.3f,\"unit\":\"events/s\",\"target\":%.2f,\"met\":%s}\n",
        value, baseline, ratio, ratio_target, met ? "true" : "false");
  } else {
    std::printf(
        "median: rrh-broker %.0f events/s, bare proxy %.0f events/s, ratio %.3f "
        "(target >= %.2f): %s\n",
        value, baseline, ratio, ratio_target, met ? "met" : "NOT met");
  }
  return 0;
}
