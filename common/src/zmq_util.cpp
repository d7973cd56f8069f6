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
  const auto address = endpoint.substr(tcp.size());
  const auto colon = address.rfind(':');
  const auto host = address.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  // 127.0.0.0/8 written as a dotted quad: four numbers, the first 127.
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (const char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

}  // namespace rrh
