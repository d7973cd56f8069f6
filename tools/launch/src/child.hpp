#pragma once
/// The child process of rrh-launch: start it with the bus settings in its environment,
/// tied to the launcher's life, and learn how it ended. No sockets, no logging: every
/// failure comes back as a value for the loop in launcher.cpp to log.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rrh/expected.hpp"

namespace rrh::launch {

/// Everything `spawn` needs, prepared before the fork (the child may only call
/// async-signal-safe functions between fork and exec).
struct child_spec {
  std::string program;                    ///< absolute or relative path, already resolved
  std::vector<std::string> arguments;     ///< argv, program name first
  std::vector<std::string> environment;   ///< "KEY=VALUE" entries, the whole environment
};

/// How a child ended, as waitpid reported it.
struct child_exit {
  pid_t pid = 0;
  std::uint64_t exit_code = 0;  ///< when it exited normally
  std::uint64_t signal = 0;     ///< when a signal killed it; 0 otherwise
  std::string reason;           ///< "exited with code 3", "killed by SIGKILL"
};

/// Finds `name` the way execvp would: as given when it holds a '/', else in each PATH
/// directory. errc::config when no executable file is found.
expected<std::string> resolve_program(const std::string& name);

/// This process's environment with `overrides` set (replacing entries of the same key).
std::vector<std::string> environment_with(const std::map<std::string, std::string>& overrides);

/// Sets `key` to `value` in `environment` ("KEY=VALUE" entries), replacing its entry.
void set_variable(std::vector<std::string>& environment, const std::string& key,
                  const std::string& value);

/// Forks and execs `spec`. The child gets PR_SET_PDEATHSIG(SIGKILL), so it dies when the
/// thread that forked it ends: call this from the main thread only, which lives as long
/// as the launcher. The child's signal mask and SIGPIPE disposition are reset; stdout and
/// stderr are inherited. Returns the pid once exec succeeded, or the reason it did not
/// (exec failures are reported through a close-on-exec pipe, not as an exit code).
expected<pid_t> spawn(const child_spec& spec);

/// Reaps `pid` without blocking: nothing while it runs, its exit once it ended.
/// errc::invalid_argument when `pid` is not a child of this process.
expected<std::optional<child_exit>> try_reap(pid_t pid);

/// Readable name of a signal number ("SIGKILL"), "signal N" when unknown.
std::string signal_name(int signal_number);

}  // namespace rrh::launch
