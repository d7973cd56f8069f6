#pragma once
/// A real rrh-broker process on ephemeral loopback ports, shared by the broker and tap
/// integration tests.
#include <signal.h>

#include <chrono>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "process.hpp"
#include "rrh/protocol.hpp"
#include "wait.hpp"

namespace rrh::test {

/// Starts build/bin/rrh-broker bound to tcp://127.0.0.1:* and reads the chosen endpoints
/// from its ready line; the child is killed when the fixture goes out of scope.
class broker_process {
 public:
  broker_process()
      : process_(binary_path("rrh-broker"),
                 {"--events-in", any_port, "--events-out", any_port, "--commands-in", any_port,
                  "--commands-out", any_port}) {
    const auto ready = process_.wait_line("rrh-broker ready", wait_deadline_default);
    if (!ready) throw std::runtime_error("rrh-broker printed no ready line");
    events_in = ready_line_field(*ready, "events-in");
    events_out = ready_line_field(*ready, "events-out");
    commands_in = ready_line_field(*ready, "commands-in");
    commands_out = ready_line_field(*ready, "commands-out");
  }

  child_process& process() { return process_; }

  std::string events_in;     ///< XSUB: publish events here
  std::string events_out;    ///< XPUB: subscribe here
  std::string commands_in;   ///< PULL: push [target][kind][body] here
  std::string commands_out;  ///< ROUTER: DEALERs with a routing id connect here

 private:
  static constexpr const char* any_port = "tcp://127.0.0.1:*";
  child_process process_;
};

/// Sockets of a test on one context, with linger 0 so that a failing test never hangs
/// on close.
struct sockets {
  zmq::context_t context;
  zmq::socket_t make(zmq::socket_type type) {
    zmq::socket_t socket(context, type);
    socket.set(zmq::sockopt::linger, 0);
    return socket;
  }
};

/// The frames of one bus or command message.
using frames = std::vector<zmq::message_t>;

/// A frame's bytes as text.
inline std::string text_of(const zmq::message_t& message) {
  return {static_cast<const char*>(message.data()), message.size()};
}

/// Encoded bytes as a frame-ready string.
inline std::string bytes_of(const rrh::byte_buffer& bytes) { return {bytes.begin(), bytes.end()}; }

/// One whole message if one is waiting, else nothing (never blocks).
inline std::optional<frames> try_receive(zmq::socket_t& socket) {
  frames parts;
  if (!zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
    return std::nullopt;
  }
  return parts;
}

/// Sends `parts` as one multipart message.
inline void send_parts(zmq::socket_t& socket, const std::vector<std::string>& parts) {
  for (std::size_t index = 0; index < parts.size(); ++index) {
    const auto flags = index + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    socket.send(zmq::buffer(parts[index]), flags);
  }
}

/// A critical task.failed event from node-a about `agent`.
inline rrh::event task_failed_event(std::uint64_t seq, const std::string& agent = "agent-1") {
  rrh::event message;
  message.header.node = "node-a";
  message.header.incarnation = 42;
  message.header.seq = seq;
  message.header.ts_ms = 1'700'000'000'000;
  rrh::events::task_failed failed;
  failed.task = "task-" + std::to_string(seq);
  failed.agent = agent;
  failed.error_type = "TimeoutError";
  failed.message = "took too long";
  message.body = failed;
  return message;
}

}  // namespace rrh::test
