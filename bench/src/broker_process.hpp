#pragma once
/// Real rrh processes as children of a benchmark: started with their arguments, their ready
/// line read from stdout, stopped with SIGTERM (or killed on purpose).
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "rrh/expected.hpp"
#include "rrh/ready_line.hpp"

namespace rrh::bench {

/// How long a child may take to print its ready line, and to exit after SIGTERM.
inline constexpr std::chrono::milliseconds broker_start_timeout_ms{10'000};
inline constexpr std::chrono::milliseconds broker_stop_timeout_ms{5'000};

/// The topic of the probe a subscription handshake publishes (receivers skip it).
inline constexpr std::string_view probe_topic = "bench.probe";

/// A socket that drops what it has not sent when it closes: a benchmark never waits.
zmq::socket_t make_socket(zmq::context_t& context, zmq::socket_type type);

/// Publishes the probe on `publisher` until `subscriber` (subscribed to it) receives it:
/// from then on the subscription is in place end to end and a timed stream loses nothing
/// to the slow-joiner window. False when that took longer than 10 s.
bool subscription_handshake(zmq::socket_t& publisher, zmq::socket_t& subscriber);

/// The executable `name` in the directory of the running benchmark.
std::string beside_this_executable(const std::string& name);

/// A running child process; the destructor stops it (SIGTERM, then SIGKILL past the
/// timeout) and reaps it.
class child_process {
 public:
  /// Starts `program` with `arguments`. With a `ready_prefix`, waits up to
  /// `broker_start_timeout_ms` for a stdout line starting with it; without one, the child's
  /// stdout and stderr go to /dev/null (a quiet helper such as an agent node).
  static expected<std::unique_ptr<child_process>> start(const std::string& program,
                                                        const std::vector<std::string>& arguments,
                                                        const std::string& ready_prefix);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// The ready line (empty for a quiet child).
  const std::string& ready_line() const noexcept { return ready_line_; }
  /// SIGKILLs the child now and reaps it: a crash, on purpose.
  void kill_now();

 private:
  child_process() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string ready_line_;
};

/// A running rrh-broker on ephemeral loopback ports; the destructor stops it.
class broker_process {
 public:
  /// Starts `program` bound to tcp://127.0.0.1:* and waits for its ready line.
  static expected<std::unique_ptr<broker_process>> start(const std::string& program);

  std::string events_in;     ///< XSUB: where publishers connect
  std::string events_out;    ///< XPUB: where subscribers connect
  std::string commands_in;   ///< PULL: where the processor pushes [target][kind][body]
  std::string commands_out;  ///< ROUTER: where nodes' DEALERs connect

 private:
  broker_process() = default;
  std::unique_ptr<child_process> process_;
};

}  // namespace rrh::bench
