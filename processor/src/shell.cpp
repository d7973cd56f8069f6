#include "shell.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <unistd.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "control.hpp"
#include "pump.hpp"
#include "rrh/codec.hpp"
#include "rrh/curve.hpp"
#include "rrh/engine/engine.hpp"
#include "rrh/log.hpp"
#include "rrh/signals.hpp"
#include "rrh/zmq_util.hpp"
#include "store.hpp"
#include "store_guard.hpp"

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

/// ZAP domain of the control socket.
constexpr std::string_view control_zap_domain = "control";

/// Frames of a bus event: [topic][body], and with CURVE the broker's [sender key] after.
constexpr std::size_t event_frames_plain = 2;
constexpr std::size_t event_frames_curve = 3;

/// Send high-water marks: bursts of commands and derived events queue rather than drop.
constexpr int send_hwm = 1'000'000;

std::uint64_t random_incarnation() {
  std::random_device entropy;
  std::mt19937_64 generator((static_cast<std::uint64_t>(entropy()) << 32) ^ entropy());
  return (generator() & ((std::uint64_t{1} << 53) - 1)) | 1;
}

class processor_shell {
 public:
  processor_shell(const processor_settings& settings, const processor_security& security, const clock& time)
      : settings_(settings),
        security_(security),
        control_keys_(settings.curve_allowed_keys_dir),
        clock_(time),
        engine_(settings.resilience),
        incarnation_(random_incarnation()),
        start_wall_ms_(time.wall_ms()),
        start_mono_(time.now()),
        pump_(engine_, pump_settings_of(settings, incarnation_)) {}

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
    const auto& detection = settings_.resilience;
    if (settings_.echo_interval_ms > 0 && detection.failure_detector == engine::detector_mode::phi_accrual &&
        settings_.echo_timeout_ms >= detection.acceptable_pause_ms) {
      spdlog::warn("echo_timeout ({} ms) is not below acceptable_pause ({} ms): a broker outage may be judged as the "
                   "fleet's silence before the processor notices it is deaf; lower echo_timeout",
                   settings_.echo_timeout_ms, detection.acceptable_pause_ms);
    }
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

  static pump_settings pump_settings_of(const processor_settings& settings, std::uint64_t incarnation) {
    pump_settings made;
    made.stall_threshold_ms = settings.stall_threshold_ms;
    made.echo_interval_ms = settings.echo_interval_ms;
    made.echo_timeout_ms = settings.echo_timeout_ms;
    made.node_id = settings.node_id;
    made.incarnation = incarnation;
    return made;
  }

  status open_store() {
    auto opened = store::open(settings_.state_path);
    if (!opened) return make_error(opened.error().code, "cannot open the state store: " + opened.error().detail);
    store_ = std::make_unique<store_guard>(std::move(opened.value()), store_guard::options{}, clock_);
    auto loaded = store_->get().load();
    if (!loaded) return make_error(loaded.error().code, "cannot load the state store: " + loaded.error().detail);
    engine_.restore(loaded.value(), now());
    auto bindings = store_->get().load_node_keys();
    if (!bindings) return make_error(bindings.error().code, "cannot load node keys: " + bindings.error().detail);
    for (auto& [node, key] : bindings.value()) node_keys_.emplace(std::move(node), std::move(key));
    spdlog::info("state {}: {} agents, {} tasks, {} pending commands restored", settings_.state_path,
                 engine_.agent_count(), engine_.task_count(), engine_.pending_count());
    return ok();
  }

  void open_sockets() {
    const bool curve = security_.mode == bus_security::curve;
    const auto make = [this, curve](zmq::socket_type type) {
      zmq::socket_t socket(context_, type);
      socket.set(zmq::sockopt::linger, rrh::socket_linger_ms);
      if (curve) rrh::make_curve_client(socket, security_.keys);
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
    control_ = zmq::socket_t(context_, zmq::socket_type::router);
    control_.set(zmq::sockopt::linger, rrh::socket_linger_ms);
    // A client sending more than a request can be is disconnected before it is buffered.
    control_.set(zmq::sockopt::maxmsgsize, control_frame_bytes_max);
    if (curve) {
      if (auto loaded = control_keys_.load("curve_allowed_keys_dir"); !loaded) {
        throw std::runtime_error(loaded.error().detail);
      }
      // The ZAP handler must be bound before the CURVE server, in the same context.
      zap_ = std::make_unique<rrh::zap_handler>(
          context_, [this](std::string_view domain, const std::string& key) {
            return domain == control_zap_domain && control_keys_.allows(key);
          });
      rrh::make_curve_server(control_, security_.keys.own, control_zap_domain);
    }
    rrh::bind_or_throw(control_, settings_.control_endpoint, "control");
    if (!curve && !rrh::is_local_endpoint(settings_.control_endpoint)) {
      spdlog::warn("control is bound to non-loopback '{}' without CURVE: anyone who reaches it "
                   "can query state",
                   settings_.control_endpoint);
    }
  }

  int loop() {
    while (true) {
      const bool stopping = rrh::stop_requested();
      pump_.turn(*this, *store_, *this, now());
      report_sight();
      answer_control_requests();
      if (stopping) {
        if (store_->health().degraded) {
          spdlog::critical("processor {} stopping on signal {} with the store degraded ({}): the last batch was "
                           "not committed and not acked; its senders resend it to the next processor",
                           settings_.node_id, rrh::stop_signal(), store_->health().reason);
        }
        spdlog::info("processor {} stopping on signal {}: {} events, {} batches committed", settings_.node_id,
                     rrh::stop_signal(), counters_.events_received, store_->get().stats().commits);
        return 0;
      }
      const auto current = now();
      const auto wake = pump_.next_wake(current, store_->next_retry());
      const std::int64_t wait_ms =
          std::min<std::int64_t>(idle_wait_max_ms, static_cast<std::int64_t>(wake - current));
      // While the store is degraded no event is read: waiting on the subscriber would only
      // spin on the input that waits for the store.
      const short input_events = store_->health().degraded ? 0 : ZMQ_POLLIN;
      zmq::pollitem_t items[] = {{subscriber_.handle(), 0, input_events, 0},
                                 {control_.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, rrh::stop_fd(), ZMQ_POLLIN, 0},
                                 {zap_ ? zap_->socket().handle() : nullptr, 0, ZMQ_POLLIN, 0}};
      try {
        // The ZAP item only with CURVE: a handshake on the control socket waits for it.
        zmq::poll(items, zap_ ? 4 : 3, std::chrono::milliseconds(wait_ms));
        if (zap_ && (items[3].revents & ZMQ_POLLIN) != 0) zap_->handle_requests();
      } catch (const zmq::error_t& failure) {
        if (failure.num() != EINTR) spdlog::warn("poll: {}", failure.what());
      }
    }
  }

  // The pump's changes of sight, logged once each (a disruption is an engine alert, logged
  // with the others by publish).
  void report_sight() {
    const auto& stats = pump_.stats();
    if (stats.stalls != reported_.stalls) {
      spdlog::warn("the processor did not run for {} ms (a stall of its own: a pause, swap, SIGSTOP): nobody is "
                   "judged until what queued meanwhile is applied",
                   stats.last_stall_ms);
    }
    if (stats.deaf_spells != reported_.deaf_spells) {
      spdlog::warn("no echo of the processor's own heartbeat came back through the bus for {} ms: it may not hear "
                   "the fleet (broker down, paused or unreachable), so it judges nobody until it hears again",
                   settings_.echo_timeout_ms);
    }
    // A lag the operator should see in the log too (it is in status always).
    if (stats.echo_round_trip_ms >= ingest_lag_warn_ms && throttle_.admit("ingest lag") > 0) {
      spdlog::warn("ingest lag {} ms: an event published now waits that long before it is applied (a flood, or a "
                   "slow store); rrh-ctl status shows the backlog",
                   stats.echo_round_trip_ms);
    }
    const bool blind = engine_.blind();
    if (blind != reported_blind_) {
      if (!blind) spdlog::info("the processor sees the bus again: every node has a fresh detection window");
      reported_blind_ = blind;
    }
    reported_ = stats;
  }

 public:
  // The pump's source: takes up to `limit` messages off the subscriber (fewer when no
  // more are waiting); the valid events go to `into`. Returns how many were taken.
  std::size_t receive(std::vector<event>& decoded_events, std::size_t limit) {
    const bool curve = security_.mode == bus_security::curve;
    const std::size_t frames_expected = curve ? event_frames_curve : event_frames_plain;
    std::size_t count = 0;
    for (; count < limit; ++count) {
      // [topic][body], and with CURVE [sender key]: the publisher's public key, which the
      // broker appends after authenticating it (it drops events that bring their own).
      std::array<zmq::message_t, event_frames_curve> frames;
      std::size_t frame_count = 0;
      try {
        if (!subscriber_.recv(frames[0], zmq::recv_flags::dontwait)) return count;
        frame_count = 1;
        bool more = frames[0].more();
        zmq::message_t extra;
        while (more) {
          auto& into = frame_count < frames.size() ? frames[frame_count] : extra;
          (void)subscriber_.recv(into, zmq::recv_flags::none);
          more = into.more();
          ++frame_count;
        }
      } catch (const zmq::error_t& failure) {
        spdlog::warn("receive: {}", failure.what());
        return count;
      }
      if (frame_count != frames_expected) {
        count_malformed([&] {
          return "a message of " + std::to_string(frame_count) + " frames (expected " +
                 (curve ? "[topic][body][sender key])" : "[topic][body])");
        });
        continue;
      }
      const auto& body = frames[1];
      ++counters_.events_received;
      auto decoded = rrh::decode_event(body.data(), body.size());
      if (!decoded) {
        count_malformed([&] { return std::string(rrh::to_string(decoded.error().code)) + ": " + decoded.error().detail; });
        continue;
      }
      // The processor's own echo carries its own key: it needs no binding (and must not
      // lose to one, or a rotated key would leave the processor deaf for good).
      const bool own_echo = decoded->header.node == settings_.node_id && decoded->header.incarnation == incarnation_ &&
                            (!curve || frames[2].to_string_view() == security_.keys.own.public_key);
      if (curve && !own_echo && !sender_owns_node(decoded->header.node, frames[2].to_string_view())) {
        continue;
      }
      if (const auto* lost = std::get_if<events::command_undeliverable>(&decoded->body)) {
        if (throttle_.admit("undeliverable") > 0) {
          spdlog::warn("command {} ({}) for node '{}' undeliverable: {}; it will be resent while the node lives",
                       lost->command_id, lost->command_kind, lost->target, lost->reason);
        }
        continue;
      }
      decoded_events.push_back(std::move(decoded.value()));
    }
    return count;
  }

  // The pump's echo: a heartbeat of the processor's own node id, which the bus carries
  // back to its subscriber. ts_ms is the engine time it was sent at (the pump compares).
  void send_echo(engine::time_ms sent_at) {
    events::heartbeat beat;
    beat.interval_ms = settings_.echo_interval_ms;
    beat.pid = static_cast<std::uint64_t>(::getpid());
    event message{event_header{rrh::protocol_version, settings_.node_id, incarnation_, 0, sent_at, {}}, std::move(beat)};
    const auto topic = rrh::event_topic(message);
    const auto body = rrh::encode(message);
    try {
      publisher_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      publisher_.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& failure) {
      if (throttle_.admit("echo") > 0) spdlog::warn("echo publish failed: {}", failure.what());
    }
  }

 private:

  // CURVE: a node id belongs to the key that first sent an event for it (bound in the
  // store before that event is applied). An event for a node bound to another key is
  // rejected: counted, logged and raised as an `alert`, never applied.
  bool sender_owns_node(const std::string& node, std::string_view key) {
    // Every event of a bound node comes here: the common case (its own key, valid since
    // it was checked when bound) costs one lookup and one comparison.
    const auto bound = node_keys_.find(node);
    if (bound != node_keys_.end() && bound->second == key) return true;
    if (!rrh::is_curve_key_text(key)) {
      count_malformed([] { return std::string("a sender key frame that is not a CURVE key"); });
      return false;
    }
    if (bound != node_keys_.end()) {
      reject_spoofed(node, key, bound->second);
      return false;
    }
    if (node_keys_.size() >= node_key_bindings_max) {
      reject_spoofed(node, key, "(none: the binding table is full)");
      return false;
    }
    if (auto stored = store_->get().bind_node_key(node, key, now()); !stored) {
      // Kept in memory regardless: the binding holds for this run, and the store is
      // asked again after a restart.
      spdlog::error("cannot store the key of node '{}': {}", node, stored.error().detail);
    }
    node_keys_.emplace(node, std::string(key));
    spdlog::info("node '{}' bound to key {}", node, key);
    return true;
  }

  void reject_spoofed(const std::string& node, std::string_view key, const std::string& owner) {
    ++counters_.events_rejected;
    // Throttled per sender key (the allowed-keys directory bounds them), not per node id,
    // which a sender makes up at will.
    const std::string sender(key);
    const auto seen = spoof_throttle_.admit(sender);
    if (seen == 0) return;
    spdlog::warn("rejected an event for node '{}' from key {}: the node belongs to key {} ({} since last report)",
                 node, key, owner, seen);
    engine::derived_event derived;
    events::alert alert;
    alert.severity = "critical";
    alert.code = "node.spoofed";
    alert.message = "events for node '" + node + "' came from key " + sender + ", not from the node's key " +
                    owner + " (" + std::to_string(seen) + " rejected); they were not applied";
    derived.body = std::move(alert);
    publish(derived);
  }

  // `why` builds the text only when the throttle lets a report through: a flood of bad
  // input costs a counter, not a string per message.
  template <class Why>
  void count_malformed(Why&& why) {
    ++counters_.events_malformed;
    if (const auto seen = throttle_.admit("malformed"); seen > 0) {
      spdlog::warn("dropped malformed event ({} since last report): {}", seen, why());
    }
  }


 public:
  // The pump's sink: what leaves after a commit.
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
    if (const auto* alert = std::get_if<events::alert>(&derived.body)) log_alert(*alert);
    if (const auto* forgotten = std::get_if<events::node_forgotten>(&derived.body)) {
      if (const auto seen = alert_throttle_.admit("node.forgotten"); seen > 0) {
        spdlog::info("node '{}' forgotten with its {} agents after {} ms dead (node_retention; {} since last report)",
                     forgotten->node, forgotten->agents.size(), forgotten->dead_ms, seen);
      }
    }
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
      try {
        if (!zmq::recv_multipart(control_, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
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

  // The engine's alerts (limits hit, quarantines, disruption...) in the log too, at most
  // once per interval per code, so that nothing is refused or decided silently.
  void log_alert(const events::alert& alert) {
    const auto seen = alert_throttle_.admit(alert.code);
    if (seen == 0) return;
    const auto level = alert.severity == "critical" ? spdlog::level::critical
                       : alert.severity == "warning" ? spdlog::level::warn
                                                     : spdlog::level::info;
    spdlog::log(level, "alert {}: {} ({} since last report)", alert.code, alert.message, seen);
  }

  processor_status status_snapshot() const {
    processor_status status;
    status.node_id = settings_.node_id;
    status.state_path = settings_.state_path;
    status.now_ms = now();
    status.uptime_ms = static_cast<std::uint64_t>((clock_.now() - start_mono_).count());
    status.events_received = counters_.events_received;
    status.events_malformed = counters_.events_malformed;
    status.events_rejected = counters_.events_rejected;
    status.batches_committed = store_->get().stats().commits;
    status.store_commit_us_last = store_->get().stats().last_commit_duration_us;
    status.store = store_->health();
    status.sight = pump_.sight();
    status.pump = pump_.stats();
    status.commands_sent = counters_.commands_sent;
    status.derived_events_published = counters_.derived_events_published;
    status.version = RRH_VERSION;
    return status;
  }

  struct shell_counters {
    std::uint64_t events_received = 0;
    std::uint64_t events_malformed = 0;
    std::uint64_t events_rejected = 0;
    std::uint64_t commands_sent = 0;
    std::uint64_t commands_unsent = 0;
    std::uint64_t derived_events_published = 0;
  };

  const processor_settings& settings_;
  const processor_security& security_;
  rrh::allowed_keys control_keys_;
  std::unordered_map<std::string, std::string> node_keys_;  ///< curve: node id -> owner's key
  const clock& clock_;
  engine::engine engine_;
  std::unique_ptr<store_guard> store_;
  const std::uint64_t incarnation_;
  const engine::time_ms start_wall_ms_;
  const mono_ms start_mono_;
  pump pump_;
  pump_stats reported_;  ///< what report_sight has logged
  bool reported_blind_ = false;
  zmq::context_t context_{1};
  zmq::socket_t subscriber_;
  zmq::socket_t publisher_;
  zmq::socket_t pusher_;
  zmq::socket_t control_;
  std::unique_ptr<rrh::zap_handler> zap_;  ///< curve: answers the control socket's handshakes
  shell_counters counters_;
  log_throttle throttle_{mono_ms{5000}};
  log_throttle spoof_throttle_{mono_ms{spoof_report_interval_ms}};
  log_throttle alert_throttle_{mono_ms{alert_log_interval_ms}};
};

}  // namespace

int run_processor(const processor_settings& settings, const processor_security& security,
                  const clock& time) {
  processor_shell shell(settings, security, time);
  return shell.run();
}

}  // namespace rrh::processor
