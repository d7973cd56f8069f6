#pragma once
/// Phi-accrual failure detection (Hayashibara et al. 2004, as in Akka and Cassandra):
/// instead of a yes/no timeout, a suspicion level phi that grows with silence, scaled by
/// how regular the sender's heartbeats have been. Pure: time is passed in.
#include <array>
#include <cstdint>

#include "rrh/engine/config.hpp"

namespace rrh::engine {

class phi_detector {
 public:
  /// Heartbeat intervals remembered for the statistics.
  static constexpr std::size_t window_size = 100;
  /// Bytes of the scalars ahead of the window: what a heartbeat reads besides one entry.
  static constexpr std::size_t summary_bytes = 5 * sizeof(std::uint64_t);

  /// A heartbeat arrived at `now`; `declared_interval_ms` seeds the statistics on the first.
  void heartbeat(time_ms now, std::uint64_t declared_interval_ms);

  /// Suspicion level after `now - last heartbeat` of silence (0 before any heartbeat).
  double phi(time_ms now, std::uint64_t acceptable_pause_ms, std::uint64_t min_std_deviation_ms) const;

  /// The earliest time at which phi reaches `threshold` if no heartbeat arrives.
  time_ms time_at_phi(double threshold, std::uint64_t acceptable_pause_ms,
                      std::uint64_t min_std_deviation_ms) const;

  time_ms last_heartbeat_ms() const noexcept { return last_ms_; }
  bool started() const noexcept { return count_ > 0; }
  double mean_interval_ms() const noexcept;

 private:
  // The silence the statistics expect: mean interval plus the acceptable pause, and the
  // standard deviation (at least the configured minimum).
  struct silence_model {
    double mean_ms;
    double deviation_ms;
  };
  silence_model model(std::uint64_t acceptable_pause_ms, std::uint64_t min_std_deviation_ms) const;
  void add_interval(double interval_ms);
  double phi_after(double elapsed_ms, std::uint64_t acceptable_pause_ms,
                   std::uint64_t min_std_deviation_ms) const;

  // The scalars first: every event of a node reads them, and they share a cache line.
  std::size_t next_ = 0;
  std::size_t count_ = 0;
  double sum_ = 0;
  double sum_squares_ = 0;
  time_ms last_ms_ = 0;
  std::array<float, window_size> intervals_{};
};

}  // namespace rrh::engine
