#include "broker.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <random>

#include "rrh/clock.hpp"
#include "rrh/codec.hpp"
#include "rrh/protocol.hpp"
#include "rrh/zmq_util.hpp"

namespace rrh::broker {
namespace {

std::uint64_t random_incarnation() {
  std::random_device device;
  std::uint64_t value = 0;
  while (value == 0) {  // 0 would read as "no incarnation"
    value = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }
  return value;
}

std::string_view view_of(const zmq::message_t& message) {
  return {static_cast<const char*>(message.data()), message.size()};
}

/// Binds one socket and, without CURVE, warns when the address is reachable from other
/// machines.
void bind_socket(zmq::socket_t& socket, const std::string& endpoint, const std::string& role,
                 bus_security security) {
  bind_or_throw(socket, endpoint, role);
  if (security == bus_security::none && !is_local_endpoint(endpoint)) {
    spdlog::warn(
        "{} is bound to non-loopback '{}': the bus is reachable from the network "
        "and carries no authentication",
        role, endpoint);
  }
}

}  // namespace

status check_command_frames(std::string_view target, std::string_view kind,
                            std::size_t body_bytes) {
  if (!is_valid_id(target)) {
    return make_error(errc::invalid_id,
                      "target node id is empty, too long or has a "
                      "disallowed character");
  }
  if (!is_valid_id(kind)) {
    return make_error(errc::malformed,
                      "command kind is empty, too long or has a "
                      "disallowed character");
  }
  if (body_bytes == 0) return make_error(errc::malformed, "empty command body");
  if (body_bytes > message_bytes_max) {
    return make_error(errc::too_large, "command body of " + std::to_string(body_bytes) +
                                           " bytes (limit " + std::to_string(message_bytes_max) +
                                           ")");
  }
  return ok();
}

broker::broker(zmq::context_t& context, const config& settings, const security_setup& security)
    : security_(security.mode),
      own_key_(security.own.public_key),
      processor_key_(security.processor_key),
      allowed_(settings.curve_allowed_keys_dir),
      events_in_(context, zmq::socket_type::xsub),
      events_out_(context, zmq::socket_type::xpub),
      commands_in_(context, zmq::socket_type::pull),
      commands_out_(context, zmq::socket_type::router),
      incarnation_(random_incarnation()) {
  events_in_.set(zmq::sockopt::rcvhwm, event_hwm_messages);
  events_in_.set(zmq::sockopt::maxmsgsize, transport_frame_bytes_max);
  events_out_.set(zmq::sockopt::sndhwm, event_hwm_messages);
  commands_in_.set(zmq::sockopt::rcvhwm, command_hwm_messages);
  commands_in_.set(zmq::sockopt::maxmsgsize, transport_frame_bytes_max);
  commands_out_.set(zmq::sockopt::sndhwm, command_hwm_messages);
  commands_out_.set(zmq::sockopt::router_mandatory, true);
  // Without CURVE a restarted node takes its routing id (its node id) over at once. With
  // CURVE nodes connect without a routing id and are addressed by the one the ROUTER
  // generates, learned from a hello signed by the node's key; handover off then keeps a
  // peer from claiming a routing id that is in use.
  commands_out_.set(zmq::sockopt::router_handover, security_ == bus_security::none);
  // Shims never send on their DEALER; a tight cap keeps a misbehaving one from filling memory.
  commands_out_.set(zmq::sockopt::maxmsgsize, std::int64_t{65'536});
  for (auto* socket : {&events_in_, &events_out_, &commands_in_, &commands_out_}) {
    socket->set(zmq::sockopt::linger, socket_linger_ms);
  }

  if (security_ == bus_security::curve) {
    if (auto loaded = allowed_.load("curve_allowed_keys_dir"); !loaded) {
      throw std::runtime_error(loaded.error().detail);
    }
    zap_ = std::make_unique<zap_handler>(
        context, [this](std::string_view domain, const std::string& key) { return authorize(domain, key); });
    make_curve_server(events_in_, security.own, zap_domain_events_in);
    make_curve_server(events_out_, security.own, zap_domain_events_out);
    make_curve_server(commands_in_, security.own, zap_domain_commands_in);
    make_curve_server(commands_out_, security.own, zap_domain_commands_out);
    spdlog::info("CURVE on: {} allowed keys in {}; commands-in accepts {}", allowed_.size(),
                 allowed_.directory(), processor_key_.empty() ? "any allowed key" : "the processor's key only");
    if (processor_key_.empty()) {
      spdlog::warn(
          "no curve_processor_key_file: any allowed key may push commands to commands-in");
    }
  }
  bind_socket(events_in_, settings.events_in, "events-in", security_);
  bind_socket(events_out_, settings.events_out, "events-out", security_);
  bind_socket(commands_in_, settings.commands_in, "commands-in", security_);
  bind_socket(commands_out_, settings.commands_out, "commands-out", security_);
  endpoints_ = {bound_endpoint(events_in_), bound_endpoint(events_out_),
                bound_endpoint(commands_in_), bound_endpoint(commands_out_)};
}

broker::~broker() {
  for (auto* socket : {&events_in_, &events_out_, &commands_in_, &commands_out_}) {
    try {
      socket->set(zmq::sockopt::linger, socket_linger_ms);
      socket->close();
    } catch (const zmq::error_t& failure) {
      spdlog::warn("closing a socket failed: {}", failure.what());
    }
  }
}

void broker::run(int stop_fd) {
  enum : std::size_t {
    stop_item,
    commands_in_item,
    events_out_item,
    events_in_item,
    commands_out_item,
    zap_item
  };
  std::array<zmq::pollitem_t, 6> items{{
      {nullptr, stop_fd, ZMQ_POLLIN, 0},
      {commands_in_.handle(), 0, ZMQ_POLLIN, 0},
      {events_out_.handle(), 0, ZMQ_POLLIN, 0},
      {events_in_.handle(), 0, ZMQ_POLLIN, 0},
      {commands_out_.handle(), 0, ZMQ_POLLIN, 0},
      {zap_ ? zap_->socket().handle() : nullptr, 0, ZMQ_POLLIN, 0},
  }};
  // Without CURVE there is no ZAP socket: the last item is left out of the poll.
  const std::size_t polled = zap_ ? items.size() : items.size() - 1;
  while (true) {
    try {
      zmq::poll(items.data(), polled, std::chrono::milliseconds{-1});
      if ((items[stop_item].revents & ZMQ_POLLIN) != 0) return;
      // Authentication first: a handshake waits for its answer.
      if (zap_ && (items[zap_item].revents & ZMQ_POLLIN) != 0) zap_->handle_requests();
      // Commands first: they are few and latency matters more for them than for events.
      if ((items[commands_in_item].revents & ZMQ_POLLIN) != 0) relay_commands();
      if ((items[events_out_item].revents & ZMQ_POLLIN) != 0) forward_subscriptions();
      if ((items[events_in_item].revents & ZMQ_POLLIN) != 0) forward_events();
      if ((items[commands_out_item].revents & ZMQ_POLLIN) != 0) discard_commands_out_input();
    } catch (const zmq::error_t& failure) {
      if (failure.num() == EINTR) continue;  // a signal; the stop fd tells whether to stop
      if (failure.num() == ETERM) return;
      ++stats_.socket_errors;
      if (const auto count = throttle_.admit("socket_error"); count > 0) {
        spdlog::error("socket error in the broker loop: {} ({} since last report)", failure.what(),
                      count);
      }
    }
  }
}

void broker::forward_events() {
  if (security_ == bus_security::curve) {
    forward_authenticated_events();
    return;
  }
  for (std::size_t moved = 0; moved < event_batch_max; ++moved) {
    if (!events_in_.recv(scratch_, zmq::recv_flags::dontwait)) return;
    // The remaining frames of a multipart message are already here: libzmq delivers
    // messages atomically. XPUB never blocks: it drops at the HWM, as PUB does.
    while (scratch_.more()) {
      events_out_.send(scratch_, zmq::send_flags::sndmore);
      (void)events_in_.recv(scratch_, zmq::recv_flags::none);
    }
    events_out_.send(scratch_, zmq::send_flags::none);
    ++stats_.events_forwarded;
  }
}

void broker::forward_authenticated_events() {
  for (std::size_t moved = 0; moved < event_batch_max; ++moved) {
    if (!events_in_.recv(topic_, zmq::recv_flags::dontwait)) return;
    std::size_t frame_count = 1;
    bool more = topic_.more();
    if (more) {
      (void)events_in_.recv(scratch_, zmq::recv_flags::none);
      ++frame_count;
      more = scratch_.more();
    }
    if (more) {
      zmq::message_t extra;
      while (more) {
        (void)events_in_.recv(extra, zmq::recv_flags::none);
        more = extra.more();
        ++frame_count;
      }
    }
    if (frame_count != event_frame_count) {
      // A third frame would pass for the broker's own sender-key frame: drop the message.
      ++stats_.malformed;
      if (const auto count = throttle_.admit("event_frames"); count > 0) {
        spdlog::warn("dropped an event of {} frames (expected [topic][body]) ({} since last report)",
                     frame_count, count);
      }
      continue;
    }
    // The User-Id the ZAP handler gave this connection: the publisher's Z85 public key.
    const char* key = scratch_.gets("User-Id");
    events_out_.send(topic_, zmq::send_flags::sndmore);
    events_out_.send(scratch_, zmq::send_flags::sndmore);
    events_out_.send(zmq::buffer(std::string_view(key)), zmq::send_flags::none);
    ++stats_.events_forwarded;
  }
}

bool broker::authorize(std::string_view domain, const std::string& key) {
  const bool is_processor = !processor_key_.empty() && key == processor_key_;
  if (domain == zap_domain_commands_in) {
    return processor_key_.empty() ? allowed_.allows(key) : is_processor;
  }
  if (domain == zap_domain_events_in || domain == zap_domain_events_out ||
      domain == zap_domain_commands_out) {
    return is_processor || allowed_.allows(key);
  }
  return false;
}

void broker::handle_hello(const zmq::message_t& routing_id, zmq::message_t& hello) {
  const auto node = view_of(hello);
  if (!is_valid_id(node)) {
    note_malformed("hello", "hello with an invalid node id");
    return;
  }
  const std::string key = hello.gets("User-Id");
  const std::string node_id(node);
  auto bound = node_keys_.find(node_id);
  if (bound == node_keys_.end()) {
    if (node_keys_.size() >= node_bindings_max) {
      ++stats_.hellos_refused;
      if (const auto count = throttle_.admit("bindings_full"); count > 0) {
        spdlog::error("{} nodes bound to keys: hello of '{}' refused ({} since last report)",
                      node_bindings_max, node_id, count);
      }
      return;
    }
    bound = node_keys_.emplace(node_id, key).first;
    spdlog::info("node '{}' bound to key {}", node_id, key);
  }
  if (bound->second != key) {
    ++stats_.hellos_refused;
    // One throttle for all refused hellos: node ids are the sender's to invent.
    if (const auto count = throttle_.admit("hello_refused"); count > 0) {
      spdlog::warn(
          "refused a hello for node '{}' from key {}: the node is bound to key {} ({} since "
          "last report)",
          node_id, key, bound->second, count);
    }
    return;
  }
  auto& route = node_routes_[node_id];
  const auto routing = view_of(routing_id);
  if (route != routing) {
    route.assign(routing.data(), routing.size());
    ++stats_.hellos;
  }
}

void broker::send_own_event(std::string_view topic, zmq::message_t& body) {
  events_out_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  if (security_ == bus_security::none) {
    events_out_.send(body, zmq::send_flags::none);
    return;
  }
  events_out_.send(body, zmq::send_flags::sndmore);
  events_out_.send(zmq::buffer(own_key_), zmq::send_flags::none);
}

void broker::forward_subscriptions() {
  for (std::size_t moved = 0; moved < subscription_batch_max; ++moved) {
    if (!events_out_.recv(scratch_, zmq::recv_flags::dontwait)) return;
    while (scratch_.more()) {
      events_in_.send(scratch_, zmq::send_flags::sndmore);
      (void)events_out_.recv(scratch_, zmq::recv_flags::none);
    }
    events_in_.send(scratch_, zmq::send_flags::none);
    ++stats_.subscriptions_forwarded;
  }
}

void broker::relay_commands() {
  std::array<zmq::message_t, command_frame_count> frames;
  for (std::size_t handled = 0; handled < command_batch_max; ++handled) {
    if (!commands_in_.recv(frames[0], zmq::recv_flags::dontwait)) return;
    std::size_t frame_count = 1;
    bool more = frames[0].more();
    while (more) {
      // Frames past the third are read only to be dropped with the message.
      auto& into = frame_count < command_frame_count ? frames[frame_count] : scratch_;
      (void)commands_in_.recv(into, zmq::recv_flags::none);
      more = into.more();
      ++frame_count;
    }
    if (frame_count != command_frame_count) {
      note_malformed("frames", "command with " + std::to_string(frame_count) +
                                   " frames (expected [target][kind][body])");
      continue;
    }
    relay_one(frames[0], frames[1], frames[2]);
  }
}

void broker::relay_one(zmq::message_t& target, zmq::message_t& kind, zmq::message_t& body) {
  const auto target_id = view_of(target);
  const auto kind_name_text = view_of(kind);
  if (auto checked = check_command_frames(target_id, kind_name_text, body.size()); !checked) {
    note_malformed(to_string(checked.error().code), checked.error().detail);
    return;
  }
  publish_command_copy(target_id, kind_name_text, body);

  const std::string target_copy(target_id);  // `target` is emptied by the send below
  const std::string kind_copy(kind_name_text);
  if (security_ == bus_security::curve) {
    // Only the connection whose hello the node's key signed receives its commands.
    const auto route = node_routes_.find(target_copy);
    if (route == node_routes_.end()) {
      report_undeliverable(target_copy, kind_copy, body, "target not connected");
      return;
    }
    target.rebuild(route->second.data(), route->second.size());
  }
  try {
    if (!commands_out_.send(target, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      report_undeliverable(target_copy, kind_copy, body, "target queue full");
      return;
    }
    // Once the routing frame is accepted, the rest of the message goes to the same pipe.
    (void)commands_out_.send(body, zmq::send_flags::dontwait);
    ++stats_.commands_relayed;
  } catch (const zmq::error_t& failure) {
    if (failure.num() != EHOSTUNREACH) throw;
    node_routes_.erase(target_copy);  // that connection is gone; the next hello brings the new one
    report_undeliverable(target_copy, kind_copy, body, "target not connected");
  }
}

void broker::publish_command_copy(std::string_view target, std::string_view kind,
                                  const zmq::message_t& body) {
  const auto topic = command_topic(kind, target);
  zmq::message_t body_copy;
  body_copy.copy(const_cast<zmq::message_t&>(body));  // shares the buffer: no byte copy
  send_own_event(topic, body_copy);
}

void broker::report_undeliverable(std::string_view target, std::string_view kind,
                                  const zmq::message_t& body, std::string_view reason) {
  // An ack is untracked (id 0, never acked, never retransmitted by the processor): a
  // report of it would tell the processor nothing, and a node that is gone while its
  // events still arrive would make one report per event.
  if (kind == commands::ack::kind_name) {
    ++stats_.acks_undeliverable;
    return;
  }
  ++stats_.commands_undeliverable;
  events::command_undeliverable notice;
  notice.target = std::string(target);
  notice.command_kind = std::string(kind);
  notice.reason = std::string(reason);
  event message;
  message.header.node = std::string(broker_node_id);
  message.header.incarnation = incarnation_;
  message.header.seq = 0;  // best-effort: the processor retransmits unacked commands anyway
  message.header.ts_ms = system_clock::instance().wall_ms();
  if (auto decoded = decode_command(body.data(), body.size()); decoded) {
    notice.command_id = decoded->id;
    message.header.episode = decoded->episode;
  } else {
    note_malformed("undecodable_body",
                   "undeliverable command body does not decode: " + decoded.error().detail);
  }
  message.body = std::move(notice);
  const auto topic = event_topic(message);
  const auto bytes = encode(message);
  zmq::message_t body_frame(bytes.data(), bytes.size());
  send_own_event(topic, body_frame);
  if (const auto count = throttle_.admit("undeliverable"); count > 0) {
    spdlog::info("command {} for '{}' undeliverable: {} ({} since last report)", kind, target,
                 reason, count);
  }
}

void broker::discard_commands_out_input() {
  for (std::size_t handled = 0; handled < ignored_batch_max; ++handled) {
    if (!commands_out_.recv(topic_, zmq::recv_flags::dontwait)) return;  // the routing id
    std::size_t frames = 1;
    bool more = topic_.more();
    while (more) {
      (void)commands_out_.recv(scratch_, zmq::recv_flags::none);
      more = scratch_.more();
      ++frames;
    }
    // With CURVE a node says hello: [routing id][node id], signed by its connection's key.
    if (security_ == bus_security::curve && frames == 2) {
      handle_hello(topic_, scratch_);
      continue;
    }
    ++stats_.ignored;
    if (const auto count = throttle_.admit("ignored"); count > 0) {
      spdlog::debug("ignored a message sent to commands-out ({} since last report)", count);
    }
  }
}

void broker::note_malformed(const std::string& key, const std::string& detail) {
  ++stats_.malformed;
  if (const auto count = throttle_.admit("malformed." + key); count > 0) {
    spdlog::warn("dropped malformed command input: {} ({} of this kind since last report)", detail,
                 count);
  }
}

}  // namespace rrh::broker
