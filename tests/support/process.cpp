#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "wait.hpp"

extern char** environ;

namespace rrh::test {

std::string binary_path(const std::string& name) { return std::string(RRH_BIN_DIR) + "/" + name; }

child_process::child_process(const std::string& program, const std::vector<std::string>& arguments,
                             const std::vector<std::string>& extra_environment) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) environment.emplace_back(*entry);
  environment.insert(environment.end(), extra_environment.begin(), extra_environment.end());

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // A test that crashes must not leave its processes behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::execve(program.c_str(), argv.data(), envp.data());
    const char message[] = "exec failed\n";
    [[maybe_unused]] auto written = ::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  ::close(fds[1]);
  output_fd_ = fds[0];
  reader_ = std::thread([this] { read_output(output_fd_); });
}

child_process::~child_process() {
  if (running()) {
    signal(SIGKILL);
    wait_exit(std::chrono::milliseconds(5000));
  }
  if (reader_.joinable()) reader_.join();
  if (output_fd_ >= 0) ::close(output_fd_);
}

void child_process::read_output(int fd) {
  std::string pending;
  char buffer[4096];
  while (true) {
    const auto count = ::read(fd, buffer, sizeof buffer);
    if (count <= 0) break;
    pending.append(buffer, static_cast<std::size_t>(count));
    std::size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      const std::lock_guard lock(mutex_);
      lines_.push_back(pending.substr(0, newline));
      pending.erase(0, newline + 1);
    }
  }
  if (!pending.empty()) {
    const std::lock_guard lock(mutex_);
    lines_.push_back(pending);
  }
  output_closed_.store(true);
}

void child_process::signal(int signal_number) const {
  if (pid_ > 0) ::kill(pid_, signal_number);
}

bool child_process::running() {
  if (exit_status_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_status_ = status;
    return false;
  }
  return true;
}

std::optional<int> child_process::wait_exit(std::chrono::milliseconds deadline) {
  if (!wait_until([this] { return !running(); }, deadline)) return std::nullopt;
  // The pipe closes once the child (and anything it spawned) is gone; a grandchild that
  // keeps it open must not hang the test, hence the bound.
  wait_until([this] { return output_closed_.load(); }, std::chrono::milliseconds(2000));
  return exit_status_;
}

std::vector<std::string> child_process::lines() const {
  const std::lock_guard lock(mutex_);
  return lines_;
}

std::optional<std::string> child_process::wait_line(const std::string& needle,
                                                    std::chrono::milliseconds deadline) {
  std::optional<std::string> found;
  wait_until(
      [&] {
        const std::lock_guard lock(mutex_);
        for (const auto& line : lines_) {
          if (line.find(needle) != std::string::npos) {
            found = line;
            return true;
          }
        }
        return false;
      },
      deadline);
  return found;
}

}  // namespace rrh::test
