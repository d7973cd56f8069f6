#include "broker_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace rrh::bench {
namespace {

using steady = std::chrono::steady_clock;

/// Longest ready line accepted, in bytes.
constexpr std::size_t ready_line_bytes_max = 4096;

std::string field_of(const std::string& line, const std::string& key) {
  const auto start = line.find(key + "=");
  if (start == std::string::npos) return {};
  const auto value_start = start + key.size() + 1;
  const auto end = line.find(' ', value_start);
  return line.substr(value_start, end == std::string::npos ? std::string::npos : end - value_start);
}

/// Reads one line from `fd` until `deadline`; empty when none arrives in time.
std::string read_line(int fd, steady::time_point deadline) {
  std::string line;
  while (line.size() < ready_line_bytes_max) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0) return {};
    pollfd item{fd, POLLIN, 0};
    if (::poll(&item, 1, static_cast<int>(left.count())) <= 0) continue;
    char byte = 0;
    if (::read(fd, &byte, 1) != 1) return {};
    if (byte == '\n') return line;
    line.push_back(byte);
  }
  return {};
}

}  // namespace

expected<std::unique_ptr<broker_process>> broker_process::start(const std::string& program) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error(errc::invalid_argument, "pipe failed");
  const std::string any_port = "tcp://127.0.0.1:*";
  std::vector<std::string> arguments{program,  "--events-in",   any_port, "--events-out",
                                     any_port, "--commands-in", any_port, "--commands-out",
                                     any_port, "--log-level",   "warn"};
  std::vector<char*> argv;
  for (auto& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);

  std::unique_ptr<broker_process> broker(new broker_process());
  broker->pid_ = ::fork();
  if (broker->pid_ < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return make_error(errc::invalid_argument, "fork failed");
  }
  if (broker->pid_ == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  broker->stdout_fd_ = fds[0];
  const auto line = read_line(broker->stdout_fd_, steady::now() + broker_start_timeout_ms);
  if (line.rfind("rrh-broker ready", 0) != 0) {
    return make_error(errc::timeout, "'" + program + "' printed no ready line");
  }
  broker->events_in = field_of(line, "events-in");
  broker->events_out = field_of(line, "events-out");
  return broker;
}

broker_process::~broker_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline = steady::now() + broker_stop_timeout_ms;
    int status = 0;
    pollfd item{stdout_fd_, POLLIN, 0};
    // The broker's stdout closes when it exits: wait on that instead of sleeping.
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      if (::poll(&item, 1, static_cast<int>(std::min<long>(left.count(), 50))) > 0) {
        char buffer[256];
        if (::read(stdout_fd_, buffer, sizeof buffer) <= 0)
          item.fd = -1;  // closed: poll only times out
      }
    }
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

}  // namespace rrh::bench
