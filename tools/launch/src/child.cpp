#include "child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace rrh::launch {
namespace {

/// Directories of PATH searched at most, so a pathological PATH cannot loop for long.
constexpr std::size_t path_entries_max = 256;
/// Environment entries copied at most.
constexpr std::size_t environment_entries_max = 65'536;
/// Attempts of a read or waitpid interrupted by a signal (SIGCHLD arrives often here).
constexpr int interrupted_retries_max = 1000;

bool is_executable_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

/// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(const child_spec& spec, char* const* argv, char* const* envp,
                             pid_t launcher_pid, int report_fd) {
  // Die with the launcher: an orphaned child would be a second copy of the node once a
  // new launcher starts its own.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != launcher_pid) ::_exit(127);
  // A process group of its own: the launcher signals the group, so whatever the node
  // starts (a shell's children, worker processes) stops and restarts with it.
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);  // the launcher ignores it; an ignored signal survives exec
  ::execve(spec.program.c_str(), argv, envp);
  const int failure = errno;
  [[maybe_unused]] const auto written = ::write(report_fd, &failure, sizeof failure);
  ::_exit(127);
}

}  // namespace

expected<std::string> resolve_program(const std::string& name) {
  if (name.empty()) return make_error(errc::config, "the command is empty");
  if (name.find('/') != std::string::npos) {
    if (is_executable_file(name)) return name;
    return make_error(errc::config, "'" + name + "' is not an executable file");
  }
  const char* path_variable = std::getenv("PATH");
  const std::string path = path_variable != nullptr ? path_variable : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  for (std::size_t entry = 0; entry < path_entries_max && start <= path.size(); ++entry) {
    const auto end = std::min(path.find(':', start), path.size());
    const std::string directory = end > start ? path.substr(start, end - start) : ".";
    const std::string candidate = directory + "/" + name;
    if (is_executable_file(candidate)) return candidate;
    start = end + 1;
  }
  return make_error(errc::config, "'" + name + "' not found in PATH");
}

std::vector<std::string> environment_with(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> result;
  for (std::size_t index = 0; index < environment_entries_max && environ[index] != nullptr; ++index) {
    const std::string entry = environ[index];
    const auto key = entry.substr(0, entry.find('='));
    if (overrides.find(key) == overrides.end()) result.push_back(entry);
  }
  for (const auto& [key, value] : overrides) result.push_back(key + "=" + value);
  return result;
}

void set_variable(std::vector<std::string>& environment, const std::string& key,
                  const std::string& value) {
  const std::string prefix = key + "=";
  std::erase_if(environment, [&](const std::string& entry) { return entry.starts_with(prefix); });
  environment.push_back(prefix + value);
}

expected<pid_t> spawn(const child_spec& spec) {
  if (spec.arguments.empty()) return make_error(errc::invalid_argument, "no arguments (argv[0] missing)");
  std::vector<char*> argv;
  for (const auto& argument : spec.arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& entry : spec.environment) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    return make_error(errc::closed, std::string("pipe2 failed: ") + std::strerror(errno));
  }
  const pid_t launcher_pid = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int failure = errno;
    ::close(report[0]);
    ::close(report[1]);
    return make_error(errc::closed, std::string("fork failed: ") + std::strerror(failure));
  }
  if (pid == 0) {
    ::close(report[0]);
    exec_child(spec, argv.data(), envp.data(), launcher_pid, report[1]);
  }
  // Also here, so the group exists before the launcher can signal it (whichever of the
  // two runs first; EACCES once the child has exec'd, by when it has done it itself).
  ::setpgid(pid, pid);
  ::close(report[1]);
  // Zero bytes: exec closed the pipe, the program runs. An int: exec's errno.
  int exec_errno = 0;
  ssize_t count = -1;
  for (int attempt = 0; attempt < interrupted_retries_max; ++attempt) {
    count = ::read(report[0], &exec_errno, sizeof exec_errno);
    if (count >= 0 || errno != EINTR) break;
  }
  ::close(report[0]);
  if (count == static_cast<ssize_t>(sizeof exec_errno)) {
    int ignored = 0;
    ::waitpid(pid, &ignored, 0);
    return make_error(errc::config, "cannot execute '" + spec.program + "': " + std::strerror(exec_errno));
  }
  return pid;
}

expected<std::optional<child_exit>> try_reap(pid_t pid) {
  // Before reaping: once the child has ended, whatever is left of its process group goes
  // too. The unreaped child still holds its pid, so the group id cannot have been reused.
  siginfo_t info{};
  int looked = -1;
  for (int attempt = 0; attempt < interrupted_retries_max; ++attempt) {
    looked = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if (looked >= 0 || errno != EINTR) break;
  }
  if (looked == 0 && info.si_pid == pid) ::kill(-pid, SIGKILL);
  int status = 0;
  pid_t reaped = -1;
  for (int attempt = 0; attempt < interrupted_retries_max; ++attempt) {
    reaped = ::waitpid(pid, &status, WNOHANG);
    if (reaped >= 0 || errno != EINTR) break;
  }
  if (reaped < 0) {
    return make_error(errc::invalid_argument,
                      "waitpid(" + std::to_string(pid) + ") failed: " + std::strerror(errno));
  }
  if (reaped == 0) return std::optional<child_exit>{};
  child_exit ended;
  ended.pid = pid;
  if (WIFSIGNALED(status)) {
    ended.signal = static_cast<std::uint64_t>(WTERMSIG(status));
    ended.reason = "killed by " + signal_name(WTERMSIG(status));
  } else {
    ended.exit_code = static_cast<std::uint64_t>(WEXITSTATUS(status));
    ended.reason = "exited with code " + std::to_string(ended.exit_code);
  }
  return std::optional<child_exit>{std::move(ended)};
}

std::string signal_name(int signal_number) {
  const char* abbreviation = ::sigabbrev_np(signal_number);
  if (abbreviation == nullptr) return "signal " + std::to_string(signal_number);
  return std::string("SIG") + abbreviation;
}

}  // namespace rrh::launch
