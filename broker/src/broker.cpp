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

/// Binds one socket and warns when the address is reachable from other machines.
void bind_socket(zmq::socket_t& socket, const std::string& endpoint, const std::string& role) {
  bind_or_throw(socket, endpoint, role);
  if (!is_local_endpoint(endpoint)) {
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

broker::broker(zmq::context_t& context, const config& settings)
    : events_in_(context, zmq::socket_type::xsub),
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
  commands_out_.set(zmq::sockopt::router_handover, true);
  // Shims never send on their DEALER; a tight cap keeps a misbehaving one from filling memory.
  commands_out_.set(zmq::sockopt::maxmsgsize, std::int64_t{65'536});
  for (auto* socket : {&events_in_, &events_out_, &commands_in_, &commands_out_}) {
    socket->set(zmq::sockopt::linger, socket_linger_ms);
  }

  bind_socket(events_in_, settings.events_in, "events-in");
  bind_socket(events_out_, settings.events_out, "events-out");
  bind_socket(commands_in_, settings.commands_in, "commands-in");
  bind_socket(commands_out_, settings.commands_out, "commands-out");
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
    commands_out_item
  };
  std::array<zmq::pollitem_t, 5> items{{
      {nullptr, stop_fd, ZMQ_POLLIN, 0},
      {commands_in_.handle(), 0, ZMQ_POLLIN, 0},
      {events_out_.handle(), 0, ZMQ_POLLIN, 0},
      {events_in_.handle(), 0, ZMQ_POLLIN, 0},
      {commands_out_.handle(), 0, ZMQ_POLLIN, 0},
  }};
  while (true) {
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds{-1});
      if ((items[stop_item].revents & ZMQ_POLLIN) != 0) return;
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
    report_undeliverable(target_copy, kind_copy, body, "target not connected");
  }
}

void broker::publish_command_copy(std::string_view target, std::string_view kind,
                                  const zmq::message_t& body) {
  const auto topic = command_topic(kind, target);
  zmq::message_t body_copy;
  body_copy.copy(const_cast<zmq::message_t&>(body));  // shares the buffer: no byte copy
  events_out_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  events_out_.send(body_copy, zmq::send_flags::none);
}

void broker::report_undeliverable(std::string_view target, std::string_view kind,
                                  const zmq::message_t& body, std::string_view reason) {
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
  events_out_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  events_out_.send(zmq::buffer(bytes), zmq::send_flags::none);
  if (const auto count = throttle_.admit("undeliverable"); count > 0) {
    spdlog::info("command {} for '{}' undeliverable: {} ({} since last report)", kind, target,
                 reason, count);
  }
}

void broker::discard_commands_out_input() {
  for (std::size_t handled = 0; handled < ignored_batch_max; ++handled) {
    if (!commands_out_.recv(scratch_, zmq::recv_flags::dontwait)) return;
    while (scratch_.more()) (void)commands_out_.recv(scratch_, zmq::recv_flags::none);
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
