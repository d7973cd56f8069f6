#pragma once
/// rrh-launch's loop: one child process, watched from the main thread, restarted only on
/// the processor's agent.recover.
#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "child.hpp"
#include "restart_gate.hpp"
#include "rrh/shim.hpp"

namespace rrh::launch {

/// What the command line decided.
struct launch_options {
  std::string node_id;              ///< the child's node id (RRH_NODE_ID)
  std::vector<std::string> agents;  ///< agents the child hosts; empty: accept any recover
  std::uint64_t grace_ms = 5000;    ///< SIGTERM to SIGKILL
  std::uint64_t check_interval_ms = 1000;  ///< liveness check period (the heartbeat interval)
  child_spec child;                 ///< program, argv and environment, prepared
};

/// The supervisor. Construct and run it on the main thread: the child's parent-death
/// signal is tied to the thread that forks it.
class launcher {
 public:
  launcher(launch_options options, shim& node);
  ~launcher();
  launcher(const launcher&) = delete;
  launcher& operator=(const launcher&) = delete;

  /// Starts the child and supervises it until SIGINT/SIGTERM (rrh::stop_fd), then stops
  /// the child (SIGTERM, grace, SIGKILL). Returns the process exit code: 0 after a clean
  /// stop, 1 when the first child could not be started.
  int run();

 private:
  /// The child as the main thread knows it.
  struct running_child {
    pid_t pid = 0;
    int pidfd = -1;  ///< readable when the child ends; -1 where pidfd_open is missing
    mono_ms started_at{0};
    std::optional<mono_ms> kill_at;  ///< set once SIGTERM was sent: when SIGKILL follows
    bool killed = false;             ///< SIGKILL sent
  };

  command_result on_recover(const command& message);
  bool start_child(const std::string& why);
  void reap_child();
  void report_exit(const child_exit& ended);
  void carry_out_restart(const restart_request& request);
  void terminate_child(const std::string& why, int signal_number);
  void enforce_grace();
  void remind_if_down();
  int wait_ms() const;
  void wait_for_wake(int timeout_ms, bool watch_stop);
  void stop_child();
  void forget_child();

  launch_options options_;
  shim& node_;
  const clock& time_;

  std::mutex mutex_;  // guards gate_: the dispatcher thread decides, the main thread acts
  restart_gate gate_;

  int wake_fd_ = -1;  // eventfd: the dispatcher thread wakes the main loop

  // Main thread only.
  std::optional<running_child> child_;
  std::optional<restart_request> restart_;  ///< taken from the gate, waiting for the old child to end
  std::uint64_t starts_ = 0;
  bool stopping_ = false;
  mono_ms down_since_{0};
  mono_ms last_check_{0};
  mono_ms last_reminder_{0};
};

}  // namespace rrh::launch
