#pragma once
/// Small helpers around cppzmq shared by the broker, the shim, the tap and the tests.
#include <string>
#include <zmq.hpp>

namespace rrh {

/// How long a closing socket may keep trying to deliver queued messages. Short, so that
/// context termination never hangs on a peer that is gone.
inline constexpr int socket_linger_ms = 200;

/// The endpoint a socket actually bound, with the port chosen for `tcp://host:*`.
std::string bound_endpoint(const zmq::socket_t& socket);

/// Binds `socket` to `endpoint`; on failure throws std::runtime_error naming the role
/// ("events-in") and the endpoint, so the operator sees which flag is wrong.
void bind_or_throw(zmq::socket_t& socket, const std::string& endpoint, const std::string& role);

/// True when `endpoint` is a tcp endpoint on a loopback address (127.0.0.0/8, ::1,
/// localhost) or an ipc/inproc endpoint.
bool is_local_endpoint(const std::string& endpoint);

}  // namespace rrh
