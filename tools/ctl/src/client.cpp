#include "client.hpp"

#include <array>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace rrh::ctl {

expected<std::string> ask(const std::string& endpoint, std::string_view request,
                          std::chrono::milliseconds timeout, const curve_client_keys* curve) {
  using steady = std::chrono::steady_clock;
  const auto deadline = steady::now() + timeout;
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(reply_bytes_max));
  if (curve != nullptr) make_curve_client(socket, *curve);
  try {
    socket.connect(endpoint);
  } catch (const zmq::error_t& failure) {
    return make_error(errc::invalid_argument,
                      "cannot use control endpoint '" + endpoint + "': " + failure.what());
  }
  try {
    // A DEALER queues the message until the connection is up; the send itself never waits
    // for a peer, and the poll below bounds the whole exchange.
    const std::array<zmq::const_buffer, 2> frames{zmq::const_buffer(nullptr, 0),
                                                  zmq::buffer(request.data(), request.size())};
    if (!zmq::send_multipart(socket, frames, zmq::send_flags::dontwait)) {
      return make_error(errc::timeout, "the request could not be queued");
    }
    std::vector<zmq::message_t> reply;
    while (true) {
      const auto now = steady::now();
      if (now >= deadline) return make_error(errc::timeout, "no answer");
      // Rounded up: a poll rounded down would wake just before the deadline and give up early.
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
      std::array<zmq::pollitem_t, 1> items{{{socket.handle(), 0, ZMQ_POLLIN, 0}}};
      try {
        zmq::poll(items.data(), items.size(), left);
      } catch (const zmq::error_t& failure) {
        if (failure.num() == EINTR) continue;
        throw;
      }
      if ((items[0].revents & ZMQ_POLLIN) == 0) continue;
      reply.clear();
      if (!zmq::recv_multipart(socket, std::back_inserter(reply), zmq::recv_flags::dontwait)) {
        continue;
      }
      break;
    }
    // [empty delimiter][reply], as a REQ socket would see it; a bare [reply] is accepted too.
    if (reply.size() == 2 && reply[0].empty()) return reply[1].to_string();
    if (reply.size() == 1) return reply[0].to_string();
    return make_error(errc::malformed,
                      "reply of " + std::to_string(reply.size()) + " frames; expected one");
  } catch (const zmq::error_t& failure) {
    return make_error(errc::closed, std::string("socket error: ") + failure.what());
  }
}

}  // namespace rrh::ctl
