#pragma once
/// Logging setup shared by every rrh binary, and a throttle so that a flood of bad input
/// produces one log line per interval rather than one per message.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "rrh/clock.hpp"
#include "rrh/expected.hpp"

namespace rrh {

/// Configures the default spdlog logger (stderr, colored on a terminal) for binary
/// `name` at `level` ("trace", "debug", "info", "warn", "error", "critical", "off").
status setup_logging(const std::string& name, const std::string& level);

/// Lets a message of one key through at most once per interval and counts the rest.
/// Thread-safe.
class log_throttle {
 public:
  explicit log_throttle(mono_ms interval = mono_ms{5000}, const clock& time = system_clock::instance())
      : interval_(interval), clock_(time) {}

  /// Returns how many messages of `key` were suppressed since the last one let through
  /// plus one (so >= 1) when this message should be logged, or 0 when it should not.
  std::uint64_t admit(const std::string& key);

 private:
  struct slot {
    mono_ms last_logged{-1};
    std::uint64_t suppressed = 0;
    bool logged_once = false;
  };
  mono_ms interval_;
  const clock& clock_;
  std::mutex mutex_;
  std::map<std::string, slot> slots_;
};

}  // namespace rrh
