#include "rrh/zmq_util.hpp"

#include <stdexcept>

namespace rrh {

std::string bound_endpoint(const zmq::socket_t& socket) {
  return socket.get(zmq::sockopt::last_endpoint);
}

void bind_or_throw(zmq::socket_t& socket, const std::string& endpoint, const std::string& role) {
  try {
    socket.bind(endpoint);
  } catch (const zmq::error_t& failure) {
    throw std::runtime_error("cannot bind " + role + " to '" + endpoint + "': " + failure.what());
  }
}

bool is_local_endpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  const std::string tcp = "tcp://";
  if (endpoint.rfind(tcp, 0) != 0) return false;
  const auto host = endpoint.substr(tcp.size());
  return host.rfind("127.", 0) == 0 || host.rfind("localhost:", 0) == 0 ||
         host.rfind("[::1]:", 0) == 0;
}

}  // namespace rrh
