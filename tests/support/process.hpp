#pragma once
/// Real child processes for integration tests: start a binary, read its output lines,
/// signal it, and wait for it to exit with a deadline.
#include <sys/types.h>

#include <chrono>
#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rrh/ready_line.hpp"

namespace rrh::test {

/// Path of an rrh executable in the build tree (build/bin/NAME).
std::string binary_path(const std::string& name);

/// A child process whose stdout and stderr are captured line by line.
class child_process {
 public:
  /// Starts `program` with `arguments`; throws std::runtime_error when it cannot start.
  child_process(const std::string& program, const std::vector<std::string>& arguments,
                const std::vector<std::string>& extra_environment = {});
  ~child_process();  ///< SIGKILLs the child if it still runs, then reaps it
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }
  /// Sends `signal_number` to the child.
  void signal(int signal_number) const;
  /// Waits for exit up to `deadline`, and for the child's last output to be read; returns
  /// the wait status, or nothing on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds deadline);
  /// Every line the child printed so far (stdout and stderr, interleaved).
  std::vector<std::string> lines() const;
  /// Waits until a printed line contains `needle`; returns that line.
  std::optional<std::string> wait_line(const std::string& needle,
                                       std::chrono::milliseconds deadline);
  /// True while the child has not been reaped.
  bool running();

 private:
  void read_output(int fd);
  pid_t pid_ = -1;
  int output_fd_ = -1;
  std::optional<int> exit_status_;
  std::atomic<bool> output_closed_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  std::thread reader_;
};

}  // namespace rrh::test
