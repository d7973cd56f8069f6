#pragma once
/// Time is an interface: the shell reads a real clock, tests advance a manual one, so no
/// unit test ever waits on the wall clock.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace rrh {

/// Milliseconds on a monotonic clock: for deadlines, timeouts and intervals.
using mono_ms = std::chrono::milliseconds;

/// Source of time for everything that schedules. Thread-safe.
class clock {
 public:
  virtual ~clock() = default;
  /// Monotonic time since an arbitrary origin; never goes backwards.
  virtual mono_ms now() const = 0;
  /// Wall-clock time in milliseconds since the Unix epoch, for timestamps on the wire.
  virtual std::uint64_t wall_ms() const = 0;
};

/// The real clocks of the machine (steady_clock and system_clock).
class system_clock final : public clock {
 public:
  mono_ms now() const override;
  std::uint64_t wall_ms() const override;
  /// A shared instance; the default wherever no clock is injected.
  static system_clock& instance();
};

/// A clock that moves only when told to: for deterministic tests and simulation.
class manual_clock final : public clock {
 public:
  explicit manual_clock(mono_ms start = mono_ms{0}, std::uint64_t wall_start_ms = 1'700'000'000'000)
      : now_ms_(start.count()), wall_offset_ms_(wall_start_ms) {}
  mono_ms now() const override { return mono_ms{now_ms_.load()}; }
  std::uint64_t wall_ms() const override {
    return wall_offset_ms_ + static_cast<std::uint64_t>(now_ms_.load());
  }
  /// Moves time forward by `step`.
  void advance(mono_ms step) { now_ms_ += step.count(); }

 private:
  std::atomic<std::int64_t> now_ms_;
  std::uint64_t wall_offset_ms_;
};

}  // namespace rrh
