#pragma once
/// A real rrh-processor process beside a real rrh-broker, with test-speed settings, for
/// the processor's integration tests.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "broker_fixture.hpp"

namespace rrh::test {

/// Resilience settings at test speed: 100 ms heartbeats are judged within a second, a
/// retry waits up to 200 ms (doubling), a recovery is tried every 300 ms.
inline std::map<std::string, std::string> test_speed_resilience() {
  return {{"task_retry_delay", "0.2"},         {"task_retry_delay_max", "1"},
          {"retry_backoff", "exponential_full_jitter"}, {"max_task_retries", "2"},
          {"acceptable_pause", "0.3"},         {"min_std_deviation", "0.05"},
          {"stale_grace", "0.5"},              {"recovery_cooldown", "0.3"},
          {"recovery_timeout", "2"},           {"agent_health_check_interval", "1"},
          {"probe_timeout", "1"},              {"probe_slow", "0.5"},
          {"shutdown_grace", "2"},             {"command_retransmit_initial", "0.2"},
          {"command_retransmit_max", "1"}};
}

/// The processor's own sight at test speed: its echo must come back well within the
/// time the detector above takes to declare a node dead (about half a second).
inline constexpr const char* test_speed_sight = "echo_interval: 0.04\necho_timeout: 0.2\nstall_threshold: 0.4\n";

/// The processor's YAML for `resilience` settings (and the sight at test speed).
inline std::string resilience_yaml(const std::map<std::string, std::string>& resilience) {
  std::string text = std::string(test_speed_sight) + "resilience:\n";
  for (const auto& [key, value] : resilience) text += "  " + key + ": " + value + "\n";
  return text;
}

/// A scratch directory removed at the end of the test.
class scratch_directory {
 public:
  explicit scratch_directory(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              (name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~scratch_directory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  static int& counter() {
    static int value = 0;
    return value;
  }
  std::filesystem::path path_;
};

/// rrh-processor connected to `broker`, with `resilience_yaml` as its configuration and
/// its state in `state_path`.
class processor_process {
 public:
  processor_process(const broker_process& broker, const std::string& config_path,
                    const std::string& state_path)
      : process_(binary_path("rrh-processor"),
                 {"--config", config_path, "--events", broker.events_out, "--publish", broker.events_in,
                  "--commands", broker.commands_in, "--control", "tcp://127.0.0.1:*", "--state",
                  state_path, "--log-level", "debug"}) {
    const auto ready = process_.wait_line("rrh-processor ready", wait_deadline_default);
    if (!ready) throw std::runtime_error("rrh-processor printed no ready line");
    control = ready_line_field(*ready, "control");
  }
  child_process& process() { return process_; }
  std::string control;

 private:
  child_process process_;
};

/// Writes `text` to `path`.
inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

}  // namespace rrh::test
