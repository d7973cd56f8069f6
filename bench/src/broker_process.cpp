#include "broker_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace rrh::bench {
namespace {

using steady = std::chrono::steady_clock;

/// Longest ready line accepted, in bytes.
constexpr std::size_t ready_line_bytes_max = 4096;

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

zmq::socket_t make_socket(zmq::context_t& context, zmq::socket_type type) {
  zmq::socket_t socket(context, type);
  socket.set(zmq::sockopt::linger, 0);
  return socket;
}

bool subscription_handshake(zmq::socket_t& publisher, zmq::socket_t& subscriber) {
  constexpr std::chrono::milliseconds timeout{10'000};
  constexpr std::chrono::milliseconds probe_interval{10};
  const auto deadline = steady::now() + timeout;
  while (steady::now() < deadline) {
    publisher.send(zmq::buffer(probe_topic), zmq::send_flags::sndmore);
    publisher.send(zmq::str_buffer(""), zmq::send_flags::none);
    zmq::pollitem_t item{subscriber.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, probe_interval) > 0) return true;
  }
  return false;
}

std::string beside_this_executable(const std::string& name) {
  std::error_code ignored;
  return (std::filesystem::read_symlink("/proc/self/exe", ignored).parent_path() / name).string();
}

expected<std::unique_ptr<child_process>> child_process::start(
    const std::string& program, const std::vector<std::string>& arguments,
    const std::string& ready_prefix) {
  const bool quiet = ready_prefix.empty();
  int fds[2] = {-1, -1};
  if (!quiet && ::pipe2(fds, O_CLOEXEC) != 0) {
    return make_error(errc::invalid_argument, "pipe failed");
  }
  std::vector<std::string> words{program};
  words.insert(words.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);

  std::unique_ptr<child_process> child(new child_process());
  child->pid_ = ::fork();
  if (child->pid_ < 0) {
    if (!quiet) {
      ::close(fds[0]);
      ::close(fds[1]);
    }
    return make_error(errc::invalid_argument, "fork failed");
  }
  if (child->pid_ == 0) {
    if (quiet) {
      const int null_fd = ::open("/dev/null", O_WRONLY);
      ::dup2(null_fd, STDOUT_FILENO);
      ::dup2(null_fd, STDERR_FILENO);
    } else {
      ::dup2(fds[1], STDOUT_FILENO);
    }
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  if (quiet) return child;
  ::close(fds[1]);
  child->stdout_fd_ = fds[0];
  child->ready_line_ = read_line(child->stdout_fd_, steady::now() + broker_start_timeout_ms);
  if (child->ready_line_.rfind(ready_prefix, 0) != 0) {
    return make_error(errc::timeout, "'" + program + "' printed no ready line");
  }
  return child;
}

void child_process::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

child_process::~child_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline = steady::now() + broker_stop_timeout_ms;
    int status = 0;
    // A child with a stdout pipe closes it when it exits: wait on that instead of sleeping;
    // a quiet child is polled on a short step.
    pollfd item{stdout_fd_, POLLIN, 0};
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      if (::poll(&item, 1, static_cast<int>(std::min<long>(left.count(), 20))) > 0) {
        char buffer[256];
        if (::read(stdout_fd_, buffer, sizeof buffer) <= 0)
          item.fd = -1;  // closed: poll only times out
      }
    }
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

expected<std::unique_ptr<broker_process>> broker_process::start(const std::string& program) {
  const std::string any_port = "tcp://127.0.0.1:*";
  auto child = child_process::start(program,
                                    {"--events-in", any_port, "--events-out", any_port,
                                     "--commands-in", any_port, "--commands-out", any_port,
                                     "--log-level", "warn"},
                                    "rrh-broker ready");
  if (!child) return child.error();
  std::unique_ptr<broker_process> broker(new broker_process());
  const auto& line = (*child)->ready_line();
  broker->events_in = ready_line_field(line, "events-in");
  broker->events_out = ready_line_field(line, "events-out");
  broker->commands_in = ready_line_field(line, "commands-in");
  broker->commands_out = ready_line_field(line, "commands-out");
  broker->process_ = std::move(child.value());
  return broker;
}

}  // namespace rrh::bench
