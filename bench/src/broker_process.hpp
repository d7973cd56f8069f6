#pragma once
/// The real rrh-broker as a child process of the benchmark: started on ephemeral loopback
/// ports, its endpoints read from the ready line, stopped with SIGTERM.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "rrh/expected.hpp"

namespace rrh::bench {

/// How long the broker may take to print its ready line, and to exit after SIGTERM.
inline constexpr std::chrono::milliseconds broker_start_timeout_ms{10'000};
inline constexpr std::chrono::milliseconds broker_stop_timeout_ms{5'000};

/// A running rrh-broker; the destructor stops it (SIGTERM, then SIGKILL past the timeout).
class broker_process {
 public:
  /// Starts `program` bound to tcp://127.0.0.1:* and waits for its ready line.
  static expected<std::unique_ptr<broker_process>> start(const std::string& program);
  ~broker_process();
  broker_process(const broker_process&) = delete;
  broker_process& operator=(const broker_process&) = delete;

  std::string events_in;   ///< where publishers connect
  std::string events_out;  ///< where subscribers connect

 private:
  broker_process() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
};

}  // namespace rrh::bench
