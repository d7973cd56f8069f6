#include "harness.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "broker.hpp"  // the broker's event high-water mark
#include "rrh/codec.hpp"

namespace rrh::bench {
namespace {

/// How long a control request may wait for its answer (the processor answers between
/// batches, so a busy one takes a moment).
constexpr std::chrono::milliseconds control_timeout_ms{20'000};
/// Longest a waiting fleet sleeps in poll before it looks at retransmissions again.
constexpr std::chrono::milliseconds fleet_poll_step_ms{10};
/// A fleet drains its DEALERs at least this often while sending, so acks never pile up.
constexpr std::size_t fleet_sends_per_pump = 256;
/// The simulated nodes' PUB queue: heartbeat bursts wait here rather than being dropped.
constexpr int fleet_send_hwm = 1'000'000;

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t random_incarnation() {
  static std::mt19937_64 generator{std::random_device{}()};
  return (generator() & ((std::uint64_t{1} << 53) - 1)) | 1;
}

std::string format_number(double value) {
  if (!std::isfinite(value)) return "null";
  char buffer[64];
  if (std::fabs(value) >= 1000 || value == std::floor(value)) {
    std::snprintf(buffer, sizeof buffer, "%.0f", value);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.4g", value);
  }
  return buffer;
}

/// Publishes the probe on `publisher` until `subscriber` (subscribed to it) receives it.
void handshake(zmq::socket_t& publisher, zmq::socket_t& subscriber) {
  if (!subscription_handshake(publisher, subscriber)) {
    throw scenario_failure{"subscription handshake through the broker timed out"};
  }
}

}  // namespace

std::string format_text(const char* format, ...) {
  std::va_list arguments;
  va_start(arguments, format);
  std::va_list measuring;
  va_copy(measuring, arguments);
  const int length = std::vsnprintf(nullptr, 0, format, measuring);
  va_end(measuring);
  std::string text(length > 0 ? static_cast<std::size_t>(length) : 0, '\0');
  if (length > 0) std::vsnprintf(text.data(), text.size() + 1, format, arguments);
  va_end(arguments);
  return text;
}

std::optional<bool> figure::met() const {
  if (!target) return std::nullopt;
  const bool within = higher_is_better ? ratio >= *target : ratio <= *target;
  return within && lost_nothing;
}

void print_json(const figure& item) {
  const auto met = item.met();
  std::printf(
      "{\"scenario\":\"%s\",\"value\":%s,\"baseline\":%s,\"ratio\":%s,\"unit\":\"%s\","
      "\"target\":%s,\"met\":%s}\n",
      item.scenario.c_str(), format_number(item.value).c_str(),
      format_number(item.baseline).c_str(), format_number(item.ratio).c_str(), item.unit.c_str(),
      item.target ? format_number(*item.target).c_str() : "null",
      met ? (*met ? "true" : "false") : "null");
  std::fflush(stdout);
}

void print_text(const figure& item) {
  const auto met = item.met();
  std::string verdict = "(information)";
  if (met) {
    verdict = std::string(item.higher_is_better ? "target ratio >= " : "target ratio <= ") +
              format_number(*item.target) + ": " + (*met ? "met" : "NOT met");
  }
  std::printf("  %-34s %14s %-13s baseline %14s   ratio %7.3f   %s\n", item.scenario.c_str(),
              format_number(item.value).c_str(), item.unit.c_str(),
              format_number(item.baseline).c_str(), item.ratio, verdict.c_str());
  std::fflush(stdout);
}

double percentile(std::vector<double>& values, double share) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(share * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw scenario_failure{"cannot write " + path};
}

double json_number(const std::string& text, const std::string& key) {
  const auto needle = "\"" + key + "\":";
  const auto found = text.find(needle);
  if (found == std::string::npos) return 0.0;
  return std::strtod(text.c_str() + found + needle.size(), nullptr);
}

std::uint64_t resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

std::uint64_t cpu_ns(pid_t pid) {
  const auto tasks = "/proc/" + std::to_string(pid) + "/task";
  std::uint64_t total = 0;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(tasks, ignored)) {
    std::ifstream schedstat(entry.path() / "schedstat");
    std::uint64_t on_cpu_ns = 0;
    if (schedstat >> on_cpu_ns) total += on_cpu_ns;
  }
  return total;
}

std::string quiet_resilience_yaml(const std::string& acceptable_pause_s) {
  return "  agent_health_check_interval: 86400\n"
         "  probe_timeout: 3600\n"
         "  probe_slow: 3600\n"
         "  acceptable_pause: " + acceptable_pause_s + "\n"
         "  recovery_cooldown: 3600\n"
         "  recovery_timeout: 3600\n"
         "  command_retransmit_initial: 2\n"
         "  command_retransmit_max: 30\n";
}

// ---- stack ---------------------------------------------------------------------------------

stack::stack(const options& settings, const std::string& name, const std::string& resilience_yaml,
             bool with_processor)
    : settings_(settings), resilience_yaml_(resilience_yaml) {
  static std::atomic<int> counter{0};
  directory_ = settings.state_dir + "/rrh-bench-" + std::to_string(::getpid()) + "-" +
               std::to_string(counter++) + "-" + name;
  std::error_code failed;
  std::filesystem::create_directories(directory_, failed);
  if (failed) throw scenario_failure{"cannot create " + directory_ + ": " + failed.message()};
  auto broker = broker_process::start(settings.broker_path);
  if (!broker) throw scenario_failure{broker.error().detail};
  broker_ = std::move(broker.value());
  if (with_processor) start_processor();
}

void stack::start_processor() {
  const auto config_path = directory_ + "/processor.yaml";
  write_file(config_path, "resilience:\n" + resilience_yaml_);
  auto processor = child_process::start(
      settings_.processor_path,
      {"--config", config_path, "--events", broker_->events_out, "--publish", broker_->events_in,
       "--commands", broker_->commands_in, "--control", "tcp://127.0.0.1:*", "--state",
       directory_ + "/state.db", "--node-id", "bench-processor", "--log-level", "warn"},
      "rrh-processor ready");
  if (!processor) throw scenario_failure{processor.error().detail};
  processor_ = std::move(processor.value());
  control_endpoint_ = ready_line_field(processor_->ready_line(), "control");
}

stack::~stack() {
  processor_.reset();
  broker_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

std::string stack::control(const std::string& request) {
  auto requester = make_socket(context_, zmq::socket_type::req);
  requester.connect(control_endpoint_);
  requester.send(zmq::buffer(request), zmq::send_flags::none);
  zmq::pollitem_t item{requester.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, control_timeout_ms) <= 0) {
    throw scenario_failure{"the processor did not answer '" + request + "'"};
  }
  zmq::message_t reply;
  (void)requester.recv(reply, zmq::recv_flags::none);
  return reply.to_string();
}

// ---- bus helpers ---------------------------------------------------------------------------

bus_message to_bus(const event& message) {
  const auto body = encode(message);
  return {event_topic(message), std::string(body.begin(), body.end())};
}

zmq::socket_t subscribe(zmq::context_t& context, const broker_process& broker,
                        const std::vector<std::string>& prefixes) {
  auto subscriber = make_socket(context, zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::rcvhwm, 0);
  subscriber.set(zmq::sockopt::subscribe, probe_topic);
  for (const auto& prefix : prefixes) subscriber.set(zmq::sockopt::subscribe, prefix);
  subscriber.connect(broker.events_out);
  auto publisher = make_socket(context, zmq::socket_type::pub);
  publisher.connect(broker.events_in);
  handshake(publisher, subscriber);
  return subscriber;
}

bool pump_until(const std::function<bool()>& done, const std::function<void()>& step,
                steady::time_point deadline) {
  while (!done()) {
    if (steady::now() >= deadline) return false;
    step();
  }
  return true;
}

// ---- fleet ---------------------------------------------------------------------------------

fleet::fleet(zmq::context_t& context, const broker_process& broker, std::size_t node_count,
             const std::string& node_prefix, std::uint64_t window_events)
    : publisher_(make_socket(context, zmq::socket_type::pub)), window_events_(window_events) {
  publisher_.set(zmq::sockopt::sndhwm, fleet_send_hwm);
  publisher_.connect(broker.events_in);
  nodes_.reserve(node_count);
  const auto now = steady::now();
  for (std::size_t index = 0; index < node_count; ++index) {
    node_state node;
    node.id = node_prefix + "-" + std::to_string(index);
    node.incarnation = random_incarnation();
    node.last_progress = now;
    node.dealer = make_socket(context, zmq::socket_type::dealer);
    node.dealer.set(zmq::sockopt::routing_id, node.id);
    node.dealer.set(zmq::sockopt::rcvhwm, 0);
    node.dealer.connect(broker.commands_out);
    nodes_.push_back(std::move(node));
  }
  // The PUB drops what it sends before the broker's subscription reaches it.
  auto subscriber = make_socket(context, zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::subscribe, probe_topic);
  subscriber.connect(broker.events_out);
  handshake(publisher_, subscriber);
}

event fleet::make(std::size_t node, event_body body, bool critical) {
  auto& state = nodes_[node];
  event message;
  message.header.node = state.id;
  message.header.incarnation = state.incarnation;
  message.header.seq = critical ? state.next_seq++ : 0;
  message.header.ts_ms = wall_ms();
  message.body = std::move(body);
  return message;
}

void fleet::publish(const bus_message& message) {
  publisher_.send(zmq::buffer(message.topic), zmq::send_flags::sndmore);
  publisher_.send(zmq::buffer(message.body), zmq::send_flags::none);
}

void fleet::send_best_effort(const bus_message& message) { publish(message); }

void fleet::send_critical(std::size_t node, bus_message message) {
  while (critical_sent_ - critical_acked_ >= window_events_) {
    zmq::poll(poll_items(), fleet_poll_step_ms);
    pump();
  }
  auto& state = nodes_[node];
  const auto seq = state.outbox.empty() ? state.acked_seq + 1 : state.outbox.back().first + 1;
  if (state.outbox.empty()) state.last_progress = steady::now();
  publish(message);
  state.outbox.emplace_back(seq, std::move(message));
  ++critical_sent_;
  if (++sends_since_pump_ >= fleet_sends_per_pump) pump();
}

void fleet::drain(std::size_t node) {
  auto& state = nodes_[node];
  zmq::message_t frame;
  while (state.dealer.recv(frame, zmq::recv_flags::dontwait)) {
    const auto received = steady::now();
    auto decoded = decode_command(frame.data(), frame.size());
    if (!decoded) continue;
    if (const auto* ack = std::get_if<commands::ack>(&decoded->body)) {
      if (ack->incarnation != state.incarnation || ack->seq <= state.acked_seq) continue;
      while (!state.outbox.empty() && state.outbox.front().first <= ack->seq) {
        state.outbox.pop_front();
        ++critical_acked_;
      }
      state.acked_seq = ack->seq;
      state.last_progress = received;
      continue;
    }
    if (on_command) on_command(node, *decoded, received);
  }
}

void fleet::pump() {
  sends_since_pump_ = 0;
  const auto now = steady::now();
  for (std::size_t node = 0; node < nodes_.size(); ++node) {
    drain(node);
    auto& state = nodes_[node];
    if (state.outbox.empty() || now - state.last_progress < retransmit_after_ms) continue;
    // Go-back-N, as the shim: the processor applies in order and drops what follows a gap.
    const auto count = std::min(state.outbox.size(), retransmit_batch_max);
    for (std::size_t index = 0; index < count; ++index) publish(state.outbox[index].second);
    retransmitted_ += count;
    state.last_progress = now;
  }
}

std::vector<zmq::pollitem_t>& fleet::poll_items() {
  if (poll_items_.empty()) {
    for (auto& state : nodes_) poll_items_.push_back({state.dealer.handle(), 0, ZMQ_POLLIN, 0});
  }
  return poll_items_;
}

void fleet::wait_for_command(std::chrono::microseconds timeout) {
  zmq::poll(poll_items(), std::chrono::ceil<std::chrono::milliseconds>(timeout));
  pump();
}

bool fleet::wait_all_acked(steady::time_point deadline) {
  return pump_until([this] { return all_acked(); },
                    [&] {
                      zmq::poll(poll_items(), fleet_poll_step_ms);
                      pump();
                    },
                    deadline);
}

}  // namespace rrh::bench
