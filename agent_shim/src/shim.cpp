// The shim's shell: two threads around the pure core (outbox, command_dedup).
// - The I/O thread owns both sockets (ZeroMQ sockets are not thread-safe): it sends what
//   callers queued, resends what the outbox says is due, heartbeats, and reads commands.
// - The dispatcher thread runs the application's command handlers, so a slow handler
//   never delays a heartbeat.
// Callers on any thread take the mutex, append to the outbox and the send queue, and
// wake the I/O thread through an eventfd it polls beside the DEALER socket.
#include "rrh/shim.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cxxabi.h>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <typeinfo>
#include <zmq.hpp>

#include "command_dedup.hpp"
#include "outbox.hpp"
#include "process_info.hpp"
#include "rrh/codec.hpp"
#include "rrh/log.hpp"
#include "rrh/zmq_util.hpp"
#include "stale_recover.hpp"

namespace rrh {
namespace {

/// Commands read from the DEALER per wakeup, so a flood cannot starve heartbeats.
constexpr std::size_t command_batch_max = 256;
/// Longest the I/O thread sleeps without a reason to wake.
constexpr mono_ms io_idle_wait_max{1000};
/// Send high-water mark of the PUB socket: bursts up to this many messages queue
/// instead of being dropped while the broker connection is busy.
constexpr int publish_hwm = 100'000;

std::string type_name_of(const std::exception& failure) {
  const char* mangled = typeid(failure).name();
  int result = 0;
  char* readable = abi::__cxa_demangle(mangled, nullptr, nullptr, &result);
  std::string name = (result == 0 && readable != nullptr) ? readable : mangled;
  std::free(readable);
  return name;
}

struct queued_message {
  std::string topic;
  byte_buffer bytes;
};

struct agent_record {
  agent_options options;
  mono_ms last_beat{0};
};

}  // namespace

struct shim::impl {
  impl(shim_config configuration, const clock& time)
      : config(std::move(configuration)),
        time_source(time),
        incarnation(shim_detail::start_incarnation(config.incarnation)),
        pending(shim_detail::outbox::limits{config.outbox_capacity,
                                            mono_ms(config.retransmit_initial_ms),
                                            mono_ms(config.retransmit_max_ms),
                                            config.retransmit_batch_max}),
        dedup(config.command_dedup_window),
        host(shim_detail::host_name()) {}

  // Configuration and identity: fixed after construction.
  shim_config config;
  curve_client_keys curve_keys;  ///< read once at construction (security: curve)
  const clock& time_source;
  const std::uint64_t incarnation;

  // Everything below the mutex is shared between callers and the two threads.
  mutable std::mutex mutex;
  std::condition_variable outbox_changed;  // space freed or everything acked
  std::condition_variable commands_ready;
  shim_detail::outbox pending;
  std::deque<queued_message> send_queue;
  std::map<std::string, agent_record, std::less<>> agents;
  std::set<std::pair<std::string, std::string>> in_flight;  // (agent, task)
  std::string episode;
  std::map<std::string, command_handler, std::less<>> handlers;
  shim_detail::command_dedup dedup;
  std::deque<command> command_queue;
  shim_stats counters;
  bool stopping = false;

  const std::string host;
  log_throttle throttle{mono_ms{5000}, time_source};
  int wake_fd = -1;
  zmq::context_t context{1};
  std::thread io_thread;
  std::thread dispatcher_thread;

  void wake() const {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_fd, &one, sizeof one);
  }

  // Builds, validates and queues one event; critical ones also enter the outbox.
  status emit(event_body body) {
    std::unique_lock lock(mutex);
    return emit_locked(lock, std::move(body));
  }

  status emit_locked(std::unique_lock<std::mutex>& lock, event_body body) {
    if (stopping) return make_error(errc::closed, "the shim is shut down");
    const bool critical = is_critical(body);
    event message{event_header{protocol_version, config.node_id, incarnation, 0,
                               time_source.wall_ms(), episode},
                  std::move(body)};
    if (auto valid = validate(message); !valid) return valid;
    if (critical && pending.full()) {
      if (auto space = wait_for_space(lock); !space) return space;
    }
    if (critical) message.header.seq = pending.last_seq() + 1;
    queued_message queued{event_topic(message), encode(message)};
    if (queued.bytes.size() > message_bytes_max) {
      return make_error(errc::too_large, "event of " + std::to_string(queued.bytes.size()) +
                                             " bytes is over the message limit");
    }
    if (critical) {
      auto pushed = pending.push({message.header.seq, queued.topic, queued.bytes},
                                 time_source.now());
      RRH_ASSERT(pushed.has_value());
    }
    send_queue.push_back(std::move(queued));
    wake();
    return ok();
  }

  status wait_for_space(std::unique_lock<std::mutex>& lock) {
    if (config.outbox_overflow == overflow_policy::error) {
      ++counters.outbox_rejections;
      return make_error(errc::outbox_full, "outbox full (" + std::to_string(pending.size()) +
                                               " unacked events); policy 'error'");
    }
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(config.outbox_block_timeout_ms);
    const bool space = outbox_changed.wait_until(
        lock, deadline, [this] { return stopping || !pending.full(); });
    if (stopping) return make_error(errc::closed, "the shim is shut down");
    if (!space) {
      ++counters.outbox_rejections;
      return make_error(errc::timeout, "outbox stayed full for " +
                                           std::to_string(config.outbox_block_timeout_ms) + " ms");
    }
    return ok();
  }

  events::heartbeat make_heartbeat_locked(mono_ms now) const {
    events::heartbeat beat;
    beat.interval_ms = config.heartbeat_interval_ms;
    beat.pid = shim_detail::process_id();
    beat.host = host;
    beat.rss_bytes = shim_detail::resident_bytes();
    beat.in_flight = in_flight.size();
    beat.last_seq = pending.last_seq();
    beat.agents.reserve(agents.size());
    for (const auto& [id, record] : agents) {
      const auto age = now > record.last_beat ? (now - record.last_beat).count() : 0;
      const auto timeout = record.options.watchdog_timeout_ms;
      beat.agents.push_back(events::agent_liveness{
          id, static_cast<std::uint64_t>(age),
          timeout > 0 && static_cast<std::uint64_t>(age) > timeout});
    }
    return beat;
  }

  // ---- I/O thread -------------------------------------------------------------------

  void run_io() {
    zmq::socket_t publisher(context, zmq::socket_type::pub);
    zmq::socket_t receiver(context, zmq::socket_type::dealer);
    try {
      publisher.set(zmq::sockopt::linger, socket_linger_ms);
      publisher.set(zmq::sockopt::sndhwm, publish_hwm);
      receiver.set(zmq::sockopt::linger, 0);
      if (config.security == bus_security::curve) {
        make_curve_client(publisher, curve_keys);
        make_curve_client(receiver, curve_keys);
      } else {
        receiver.set(zmq::sockopt::routing_id, config.node_id);
      }
      publisher.connect(config.events_endpoint);
      receiver.connect(config.commands_endpoint);
    } catch (const zmq::error_t& failure) {
      spdlog::error("rrh shim {}: cannot connect: {}", config.node_id, failure.what());
      return;
    }
    auto next_heartbeat = time_source.now();
    while (true) {
      std::deque<queued_message> outgoing;
      std::vector<queued_message> resend;
      bool heartbeat_due = false;
      bool stop = false;
      mono_ms wait = io_idle_wait_max;
      {
        const std::lock_guard lock(mutex);
        stop = stopping;
        outgoing.swap(send_queue);
        const auto now = time_source.now();
        const auto resent = pending.retransmit_due(now, [&resend](const shim_detail::outbox_entry& entry) {
          resend.push_back({entry.topic, entry.bytes});
        });
        counters.events_retransmitted += resent;
        if (now >= next_heartbeat && !stop) {
          heartbeat_due = true;
          next_heartbeat = now + mono_ms(config.heartbeat_interval_ms);
        }
        wait = std::min(wait, next_heartbeat - now);
        if (const auto due = pending.next_due()) wait = std::min(wait, *due - now);
        counters.events_sent += outgoing.size();
      }
      for (auto& message : outgoing) publish(publisher, message);
      for (auto& message : resend) publish(publisher, message);
      if (heartbeat_due) {
        send_heartbeat(publisher);
        send_hello(receiver);
      }
      if (stop) break;

      zmq::pollitem_t items[] = {{receiver.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, wake_fd, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2, std::max(wait, mono_ms{0}));
      } catch (const zmq::error_t& failure) {
        if (failure.num() != EINTR) spdlog::warn("rrh shim {}: poll: {}", config.node_id, failure.what());
      }
      if ((items[1].revents & ZMQ_POLLIN) != 0) {
        std::uint64_t drained = 0;
        [[maybe_unused]] const auto count = ::read(wake_fd, &drained, sizeof drained);
      }
      if ((items[0].revents & ZMQ_POLLIN) != 0) receive_commands(receiver);
    }
  }

  void publish(zmq::socket_t& publisher, const queued_message& message) {
    try {
      publisher.send(zmq::buffer(message.topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      publisher.send(zmq::buffer(message.bytes.data(), message.bytes.size()),
                     zmq::send_flags::dontwait);
    } catch (const zmq::error_t& failure) {
      // A lost critical event is resent from the outbox; a lost heartbeat is replaced
      // by the next one.
      if (throttle.admit("publish") > 0) {
        spdlog::warn("rrh shim {}: publish failed: {}", config.node_id, failure.what());
      }
    }
  }

  void send_heartbeat(zmq::socket_t& publisher) {
    queued_message message;
    {
      const std::lock_guard lock(mutex);
      event beat{event_header{protocol_version, config.node_id, incarnation, 0,
                              time_source.wall_ms(), episode},
                 make_heartbeat_locked(time_source.now())};
      message = {event_topic(beat), encode(beat)};
      ++counters.heartbeats_sent;
    }
    publish(publisher, message);
  }

  // With CURVE the broker addresses this node's commands to the connection whose hello
  // came with the node's key; repeated with every heartbeat, so a reconnection (a broker
  // restart) is learned within one interval.
  void send_hello(zmq::socket_t& receiver) {
    if (config.security != bus_security::curve) return;
    try {
      (void)receiver.send(zmq::buffer(config.node_id), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& failure) {
      if (throttle.admit("hello") > 0) spdlog::warn("rrh shim {}: hello failed: {}", config.node_id, failure.what());
    }
  }

  void receive_commands(zmq::socket_t& receiver) {
    for (std::size_t count = 0; count < command_batch_max; ++count) {
      zmq::message_t frame;
      std::optional<std::size_t> received;
      try {
        received = receiver.recv(frame, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t& failure) {
        spdlog::warn("rrh shim {}: receive failed: {}", config.node_id, failure.what());
        return;
      }
      if (!received) return;
      if (frame.more()) {
        // Commands are single frames; discard the rest of a multi-frame message.
        zmq::message_t rest;
        while (frame.more() && receiver.recv(rest, zmq::recv_flags::dontwait)) frame.swap(rest);
        count_malformed("a command of more than one frame");
        continue;
      }
      auto decoded = decode_command(frame.data(), frame.size());
      if (!decoded) {
        count_malformed(std::string(to_string(decoded.error().code)) + ": " + decoded.error().detail);
        continue;
      }
      accept_command(std::move(decoded.value()));
    }
  }

  void count_malformed(const std::string& why) {
    {
      const std::lock_guard lock(mutex);
      ++counters.commands_malformed;
    }
    if (const auto seen = throttle.admit("malformed-command"); seen > 0) {
      spdlog::warn("rrh shim {}: dropped malformed command ({} since last report): {}",
                   config.node_id, seen, why);
    }
  }

  void accept_command(command message) {
    std::unique_lock lock(mutex);
    if (message.node != config.node_id) {
      lock.unlock();
      count_malformed("command addressed to '" + message.node + "'");
      return;
    }
    if (const auto* acked = std::get_if<commands::ack>(&message.body)) {
      if (acked->incarnation == incarnation) {
        const auto released = pending.acknowledge(acked->seq, time_source.now());
        counters.events_acked += released;
        if (released > 0) outbox_changed.notify_all();
      }
      return;
    }
    ++counters.commands_received;
    const auto verdict = dedup.admit(message.id);
    switch (verdict.state) {
      case shim_detail::command_dedup::seen::fresh:
        if (command_queue.size() >= config.command_queue_max) {
          // Not acked, so the processor resends it once the queue has room.
          dedup.forget(message.id);
          ++counters.commands_dropped;
          return;
        }
        command_queue.push_back(std::move(message));
        commands_ready.notify_one();
        return;
      case shim_detail::command_dedup::seen::pending:
        ++counters.commands_duplicate;
        return;
      case shim_detail::command_dedup::seen::done:
        ++counters.commands_duplicate;
        queue_ack_locked(lock, message.id, verdict.result);
        if (verdict.result.accepted) reply_to_probe_locked(lock, message);
        return;
    }
  }

  void queue_ack_locked(std::unique_lock<std::mutex>& lock, std::uint64_t command_id,
                        const command_result& result) {
    auto sent = emit_locked(lock, events::command_ack{command_id, result.accepted,
                                                      result.reason.substr(0, text_length_max)});
    if (!sent && sent.error().code != errc::closed) {
      spdlog::warn("rrh shim {}: cannot ack command {}: {}", config.node_id, command_id,
                   sent.error().detail);
    }
  }

  // An accepted probe is answered with probe.reply, again for a resent probe: the reply
  // is best-effort, and the resend means the first one may be lost.
  void reply_to_probe_locked(std::unique_lock<std::mutex>& lock, const command& message) {
    const auto* probe = std::get_if<commands::agent_probe>(&message.body);
    if (probe == nullptr) return;
    if (auto sent = emit_locked(lock, events::probe_reply{message.id, probe->agent}); !sent) {
      spdlog::debug("rrh shim {}: probe reply not sent: {}", config.node_id, sent.error().detail);
    }
  }

  // ---- dispatcher thread ----------------------------------------------------------

  void run_dispatcher() {
    while (true) {
      command message;
      command_handler handler;
      {
        std::unique_lock lock(mutex);
        commands_ready.wait(lock, [this] { return stopping || !command_queue.empty(); });
        if (stopping) return;
        message = std::move(command_queue.front());
        command_queue.pop_front();
        if (const auto found = handlers.find(kind_name(message.body)); found != handlers.end()) {
          handler = found->second;
        }
      }
      const auto result = dispatch(message, handler);
      std::unique_lock lock(mutex);
      dedup.complete(message.id, result);
      if (!result.accepted) ++counters.commands_refused;
      queue_ack_locked(lock, message.id, result);
      if (result.accepted) reply_to_probe_locked(lock, message);
    }
  }

  command_result dispatch(const command& message, const command_handler& handler) {
    const auto kind = kind_name(message.body);
    const auto agent = subject_agent(message.body);
    const auto* recover = std::get_if<commands::agent_recover>(&message.body);
    if (!agent.empty()) {
      const std::lock_guard lock(mutex);
      const bool hosted = agents.find(agent) != agents.end();
      // A recover for an agent hosted elsewhere goes to the supervisor's handler.
      if (!hosted && recover == nullptr) {
        return command_result::refuse("agent '" + std::string(agent) + "' is not hosted by node '" +
                                      config.node_id + "'");
      }
      if (recover != nullptr && shim_detail::is_stale_recover(*recover, hosted, incarnation)) {
        return command_result::refuse(std::string(refused_stale));
      }
    }
    if (!handler) {
      if (std::holds_alternative<commands::agent_probe>(message.body)) return command_result::accept();
      return command_result::refuse("no handler for " + std::string(kind));
    }
    try {
      return handler(message);
    } catch (const std::exception& failure) {
      return command_result::refuse(std::string("handler threw: ") + failure.what());
    } catch (...) {
      return command_result::refuse("handler threw a non-standard exception");
    }
  }
};

// ---- public API -----------------------------------------------------------------------

shim::shim(shim_config config, const clock& time) {
  if (config.node_id.empty()) config.node_id = shim_detail::default_node_id();
  if (auto valid = config.validate(); !valid) throw std::invalid_argument(valid.error().detail);
  curve_client_keys keys;
  if (config.security == bus_security::curve) {
    auto loaded = load_client_keys(config.curve_secret_key_file, config.curve_server_key_file);
    if (!loaded) throw std::invalid_argument(loaded.error().detail);
    keys = std::move(loaded.value());
  }
  impl_ = std::make_unique<impl>(std::move(config), time);
  impl_->curve_keys = std::move(keys);
  impl_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl_->wake_fd < 0) throw std::runtime_error("rrh shim: eventfd failed");
  impl_->io_thread = std::thread([this] { impl_->run_io(); });
  impl_->dispatcher_thread = std::thread([this] { impl_->run_dispatcher(); });
}

shim::~shim() {
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->outbox_changed.notify_all();
  impl_->commands_ready.notify_all();
  impl_->wake();
  impl_->dispatcher_thread.join();
  impl_->io_thread.join();
  ::close(impl_->wake_fd);
}

const std::string& shim::node_id() const { return impl_->config.node_id; }

std::uint64_t shim::incarnation() const { return impl_->incarnation; }

std::uint64_t new_incarnation() { return shim_detail::new_incarnation(); }

std::string shim::episode() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->episode;
}

status shim::start_episode(const std::string& episode_id, const std::string& name,
                           const settings& resilience, const std::vector<std::string>& agents) {
  if (!is_valid_id(episode_id)) {
    return make_error(errc::invalid_id, "episode id '" + episode_id + "' is not a valid id");
  }
  std::unique_lock lock(impl_->mutex);
  const auto previous = impl_->episode;
  impl_->episode = episode_id;
  auto sent = impl_->emit_locked(lock, events::episode_started{name, agents, resilience});
  if (!sent) impl_->episode = previous;
  return sent;
}

status shim::end_episode(const std::string& outcome) {
  std::unique_lock lock(impl_->mutex);
  if (impl_->episode.empty()) return make_error(errc::invalid_argument, "no episode is running");
  auto sent = impl_->emit_locked(lock, events::episode_ended{outcome});
  if (sent) impl_->episode.clear();
  return sent;
}

status shim::record_episode_error(const std::string& error_type, const std::string& message,
                                  const std::string& agent) {
  return impl_->emit(events::episode_error{agent, error_type, message});
}

status shim::register_agent(const std::string& agent_id, const agent_options& options) {
  std::unique_lock lock(impl_->mutex);
  agent_record record{options, impl_->time_source.now()};
  if (record.options.supervisor.empty()) record.options.supervisor = impl_->config.supervisor;
  auto sent = impl_->emit_locked(
      lock, events::agent_registered{agent_id, record.options.pool, record.options.capabilities,
                                     record.options.supervisor, record.options.watchdog_timeout_ms});
  if (sent) impl_->agents[agent_id] = std::move(record);
  return sent;
}

status shim::unregister_agent(const std::string& agent_id, const std::string& reason) {
  std::unique_lock lock(impl_->mutex);
  auto sent = impl_->emit_locked(lock, events::agent_unregistered{agent_id, reason});
  if (sent) impl_->agents.erase(agent_id);
  return sent;
}

status shim::record_task_started(const std::string& agent_id, const std::string& task_id,
                                 std::uint64_t attempt) {
  std::unique_lock lock(impl_->mutex);
  auto sent = impl_->emit_locked(lock, events::task_started{task_id, agent_id, attempt});
  if (sent) impl_->in_flight.emplace(agent_id, task_id);
  return sent;
}

status shim::record_failed_task(const std::string& agent_id, const std::string& task_id,
                                const task_failure& failure) {
  std::unique_lock lock(impl_->mutex);
  std::string pool = failure.pool;
  if (pool.empty()) {
    if (const auto found = impl_->agents.find(agent_id); found != impl_->agents.end()) {
      pool = found->second.options.pool;
    }
  }
  auto sent = impl_->emit_locked(
      lock, events::task_failed{task_id, agent_id, failure.error_type,
                                failure.message.substr(0, text_length_max), failure.retryable,
                                failure.attempt, pool, failure.checkpoint});
  if (sent) impl_->in_flight.erase({agent_id, task_id});
  return sent;
}

status shim::record_failed_task(const std::string& agent_id, const std::string& task_id,
                                const std::exception& failure, bool retryable,
                                std::uint64_t attempt, byte_buffer checkpoint) {
  return record_failed_task(agent_id, task_id,
                            task_failure{type_name_of(failure), failure.what(), retryable, attempt,
                                         std::move(checkpoint), {}});
}

status shim::record_task_succeeded(const std::string& agent_id, const std::string& task_id,
                                   std::uint64_t attempt) {
  std::unique_lock lock(impl_->mutex);
  auto sent = impl_->emit_locked(lock, events::task_succeeded{task_id, agent_id, attempt});
  if (sent) impl_->in_flight.erase({agent_id, task_id});
  return sent;
}

status shim::report_node_exited(const events::node_exited& exited) { return impl_->emit(exited); }

void shim::beat(const std::string& agent_id) {
  const std::lock_guard lock(impl_->mutex);
  if (const auto found = impl_->agents.find(agent_id); found != impl_->agents.end()) {
    found->second.last_beat = impl_->time_source.now();
  }
}

void shim::set_handler(std::string_view kind, command_handler handler) {
  const std::lock_guard lock(impl_->mutex);
  impl_->handlers[std::string(kind)] = std::move(handler);
}

status shim::flush(std::chrono::milliseconds deadline) {
  std::unique_lock lock(impl_->mutex);
  const bool drained = impl_->outbox_changed.wait_for(
      lock, deadline, [this] { return impl_->stopping || impl_->pending.empty(); });
  if (!drained) {
    return make_error(errc::timeout, std::to_string(impl_->pending.size()) +
                                         " events still unacked after " +
                                         std::to_string(deadline.count()) + " ms");
  }
  return ok();
}

shim_stats shim::stats() const {
  const std::lock_guard lock(impl_->mutex);
  auto copy = impl_->counters;
  copy.outbox_size = impl_->pending.size();
  return copy;
}

}  // namespace rrh
