#include "shell.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <random>
#include <zmq.hpp>

#include "commit.hpp"
#include "control.hpp"
#include "rrh/codec.hpp"
#include "rrh/engine/engine.hpp"
#include "rrh/log.hpp"
#include "rrh/signals.hpp"
#include "rrh/zmq_util.hpp"
#include "store.hpp"

namespace rrh::processor {
namespace {

/// The kinds the engine consumes, as subscription prefixes. Derived events (which this
/// processor publishes itself) and relayed commands are not subscribed to.
constexpr std::array subscribed_kinds = {
    "heartbeat ",       "agent.registered ", "agent.unregistered ", "episode.started ",
    "episode.ended ",   "episode.error ",    "task.started ",       "task.failed ",
    "task.succeeded ",  "command.ack ",      "probe.reply ",        "command.undeliverable ",
    "node.exited "};

/// Largest control frame accepted; requests are a few words.
constexpr std::int64_t control_frame_bytes_max = 64 * 1024;

/// Send high-water marks: bursts of commands and derived events queue rather than drop.
constexpr int send_hwm = 1'000'000;

std::uint64_t random_incarnation() {
  std::random_device entropy;
  std::mt19937_64 generator((static_cast<std::uint64_t>(entropy()) << 32) ^ entropy());
  return (generator() & ((std::uint64_t{1} << 53) - 1)) | 1;
}

class processor_shell {
 public:
  processor_shell(const processor_settings& settings, const clock& time)
      : settings_(settings),
        clock_(time),
        engine_(settings.resilience),
        incarnation_(random_incarnation()),
        start_wall_ms_(time.wall_ms()),
        start_mono_(time.now()) {}

  int run() {
    if (auto opened = open_store(); !opened) {
      spdlog::error("{}", opened.error().detail);
      return 2;
    }
    try {
      open_sockets();
    } catch (const std::exception& failure) {
      spdlog::error("{}", failure.what());
      return 2;
    }
    spdlog::info("processor {} up: events <- {}, commands -> {}, derived events -> {}, control {}, state {}",
                 settings_.node_id, settings_.events_endpoint, settings_.commands_endpoint,
                 settings_.publish_endpoint, rrh::bound_endpoint(control_), settings_.state_path);
    std::printf("rrh-processor ready control=%s\n", rrh::bound_endpoint(control_).c_str());
    std::fflush(stdout);
    return loop();
  }

 private:
  // Engine time: the wall clock at start, advanced by the monotonic clock, so deadlines
  // stored before a restart stay meaningful and a wall-clock jump cannot fire timers.
  engine::time_ms now() const {
    return start_wall_ms_ + static_cast<engine::time_ms>((clock_.now() - start_mono_).count());
  }

  status open_store() {
    auto opened = store::open(settings_.state_path);
    if (!opened) return make_error(opened.error().code, "cannot open the state store: " + opened.error().detail);
    store_ = std::move(opened.value());
    auto loaded = store_->load();
    if (!loaded) return make_error(loaded.error().code, "cannot load the state store: " + loaded.error().detail);
    engine_.restore(loaded.value(), now());
    spdlog::info("state {}: {} agents, {} tasks, {} pending commands restored", settings_.state_path,
                 engine_.agent_count(), engine_.task_count(), engine_.pending_count());
    return ok();
  }

  void open_sockets() {
    const auto make = [this](zmq::socket_type type) {
      zmq::socket_t socket(context_, type);
      socket.set(zmq::sockopt::linger, rrh::socket_linger_ms);
      return socket;
    };
    subscriber_ = make(zmq::socket_type::sub);
    subscriber_.set(zmq::sockopt::rcvhwm, send_hwm);
    // No maxmsgsize here: ZeroMQ would drop the whole broker connection on one oversized
    // frame, losing good events with it. The broker caps its inputs (4 MiB a frame) and
    // the decoder rejects anything over message_bytes_max.
    for (const auto* prefix : subscribed_kinds) subscriber_.set(zmq::sockopt::subscribe, prefix);
    subscriber_.connect(settings_.events_endpoint);
    publisher_ = make(zmq::socket_type::pub);
    publisher_.set(zmq::sockopt::sndhwm, send_hwm);
    publisher_.connect(settings_.publish_endpoint);
    pusher_ = make(zmq::socket_type::push);
    pusher_.set(zmq::sockopt::sndhwm, send_hwm);
    pusher_.connect(settings_.commands_endpoint);
    control_ = make(zmq::socket_type::router);
    // A client sending more than a request can be is disconnected before it is buffered.
    control_.set(zmq::sockopt::maxmsgsize, control_frame_bytes_max);
    rrh::bind_or_throw(control_, settings_.control_endpoint, "control");
    if (!rrh::is_local_endpoint(settings_.control_endpoint)) {
      spdlog::warn("control endpoint {} is not on loopback: anyone who reaches it can query state",
                   settings_.control_endpoint);
    }
  }

  int loop() {
    while (true) {
      const bool stopping = rrh::stop_requested();
      drain_events();
      engine_.on_tick(now(), effects_);
      if (auto flushed = flush(); !flushed) {
        spdlog::critical("state store commit failed, stopping without acking: {}", flushed.error().detail);
        return 1;
      }
      answer_control_requests();
      if (stopping) {
        spdlog::info("processor {} stopping on signal {}: {} events, {} batches committed", settings_.node_id,
                     rrh::stop_signal(), counters_.events_received, store_->stats().commits);
        return 0;
      }
      std::int64_t wait_ms = idle_wait_max_ms;
      if (const auto deadline = engine_.next_deadline()) {
        const auto current = now();
        wait_ms = *deadline <= current ? 0 : std::min<std::int64_t>(wait_ms, static_cast<std::int64_t>(*deadline - current));
      }
      zmq::pollitem_t items[] = {{subscriber_.handle(), 0, ZMQ_POLLIN, 0},
                                 {control_.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, rrh::stop_fd(), ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 3, std::chrono::milliseconds(wait_ms));
      } catch (const zmq::error_t& failure) {
        if (failure.num() != EINTR) spdlog::warn("poll: {}", failure.what());
      }
    }
  }

  void drain_events() {
    for (std::size_t count = 0; count < event_batch_max; ++count) {
      zmq::message_t topic;
      zmq::message_t body;
      try {
        if (!subscriber_.recv(topic, zmq::recv_flags::dontwait)) return;
        if (!topic.more()) {
          count_malformed("a message of one frame");
          continue;
        }
        (void)subscriber_.recv(body, zmq::recv_flags::none);
        if (body.more()) {
          zmq::message_t rest;
          while (body.more() && subscriber_.recv(rest, zmq::recv_flags::none)) body.swap(rest);
          count_malformed("a message of more than two frames");
          continue;
        }
      } catch (const zmq::error_t& failure) {
        spdlog::warn("receive: {}", failure.what());
        return;
      }
      ++counters_.events_received;
      auto decoded = rrh::decode_event(body.data(), body.size());
      if (!decoded) {
        count_malformed(std::string(rrh::to_string(decoded.error().code)) + ": " + decoded.error().detail);
        continue;
      }
      if (const auto* lost = std::get_if<events::command_undeliverable>(&decoded->body)) {
        if (throttle_.admit("undeliverable") > 0) {
          spdlog::warn("command {} ({}) for node '{}' undeliverable: {}; it will be resent while the node lives",
                       lost->command_id, lost->command_kind, lost->target, lost->reason);
        }
        continue;
      }
      engine_.on_event(decoded.value(), now(), effects_);
    }
  }

  void count_malformed(const std::string& why) {
    ++counters_.events_malformed;
    if (const auto seen = throttle_.admit("malformed"); seen > 0) {
      spdlog::warn("dropped malformed event ({} since last report): {}", seen, why);
    }
  }

  // Commit first; then everything that depends on the committed state leaves.
  status flush() { return commit_then_send(*store_, engine_, effects_, *this); }

 public:
  // The sink of commit_then_send.
  void send_command(const command& message) {
    const auto body = rrh::encode(message);
    const auto kind = rrh::kind_name(message.body);
    try {
      // dontwait: with the broker down, a command is dropped here rather than blocking
      // the loop; tracked commands are resent by the engine, acks by the next duplicate.
      if (!pusher_.send(zmq::buffer(message.node), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        ++counters_.commands_unsent;
        return;
      }
      pusher_.send(zmq::buffer(kind.data(), kind.size()), zmq::send_flags::sndmore);
      pusher_.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
      ++counters_.commands_sent;
    } catch (const zmq::error_t& failure) {
      ++counters_.commands_unsent;
      if (throttle_.admit("push") > 0) spdlog::warn("command send failed: {}", failure.what());
    }
  }

  void publish(engine::derived_event& derived) {
    event message{event_header{rrh::protocol_version, settings_.node_id, incarnation_, 0, clock_.wall_ms(),
                               derived.episode},
                  std::move(derived.body)};
    const auto topic = rrh::event_topic(message);
    const auto body = rrh::encode(message);
    try {
      publisher_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      publisher_.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
      ++counters_.derived_events_published;
    } catch (const zmq::error_t& failure) {
      if (throttle_.admit("publish") > 0) spdlog::warn("derived event publish failed: {}", failure.what());
    }
  }

 private:
  void answer_control_requests() {
    for (std::size_t count = 0; count < control_batch_max; ++count) {
      std::vector<zmq::message_t> frames;
      zmq::message_t frame;
      try {
        if (!control_.recv(frame, zmq::recv_flags::dontwait)) return;
        frames.push_back(std::move(frame));
        while (frames.back().more()) {
          zmq::message_t next;
          (void)control_.recv(next, zmq::recv_flags::none);
          frames.push_back(std::move(next));
        }
      } catch (const zmq::error_t& failure) {
        spdlog::warn("control receive: {}", failure.what());
        return;
      }
      // [identity][empty delimiter from REQ, optional][request]
      if (frames.size() < 2) continue;
      const auto& request = frames.back();
      const auto reply = answer_control(engine_, status_snapshot(),
                                        std::string_view(static_cast<const char*>(request.data()), request.size()));
      try {
        control_.send(frames.front(), zmq::send_flags::sndmore);
        if (frames.size() == 3) control_.send(zmq::message_t(), zmq::send_flags::sndmore);
        control_.send(zmq::buffer(reply), zmq::send_flags::dontwait);
      } catch (const zmq::error_t& failure) {
        spdlog::warn("control reply: {}", failure.what());
      }
    }
  }

  processor_status status_snapshot() const {
    processor_status status;
    status.node_id = settings_.node_id;
    status.state_path = settings_.state_path;
    status.now_ms = now();
    status.uptime_ms = static_cast<std::uint64_t>((clock_.now() - start_mono_).count());
    status.events_received = counters_.events_received;
    status.events_malformed = counters_.events_malformed;
    status.batches_committed = store_->stats().commits;
    status.store_commit_us_last = store_->stats().last_commit_duration_us;
    status.commands_sent = counters_.commands_sent;
    status.derived_events_published = counters_.derived_events_published;
    status.version = RRH_VERSION;
    return status;
  }

  struct shell_counters {
    std::uint64_t events_received = 0;
    std::uint64_t events_malformed = 0;
    std::uint64_t commands_sent = 0;
    std::uint64_t commands_unsent = 0;
    std::uint64_t derived_events_published = 0;
  };

  const processor_settings& settings_;
  const clock& clock_;
  engine::engine engine_;
  engine::effects effects_;
  std::unique_ptr<store> store_;
  const std::uint64_t incarnation_;
  const engine::time_ms start_wall_ms_;
  const mono_ms start_mono_;
  zmq::context_t context_{1};
  zmq::socket_t subscriber_;
  zmq::socket_t publisher_;
  zmq::socket_t pusher_;
  zmq::socket_t control_;
  shell_counters counters_;
  log_throttle throttle_{mono_ms{5000}};
};

}  // namespace

int run_processor(const processor_settings& settings, const clock& time) {
  processor_shell shell(settings, time);
  return shell.run();
}

}  // namespace rrh::processor
