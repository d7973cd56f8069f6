#include "rrh/engine/detector.hpp"

#include <algorithm>
#include <cmath>

namespace rrh::engine {

void phi_detector::add_interval(double interval_ms) {
  if (count_ == window_size) {
    const double oldest = intervals_[next_];
    sum_ -= oldest;
    sum_squares_ -= oldest * oldest;
  } else {
    ++count_;
  }
  intervals_[next_] = static_cast<float>(interval_ms);
  sum_ += interval_ms;
  sum_squares_ += interval_ms * interval_ms;
  next_ = (next_ + 1) % window_size;
}

void phi_detector::heartbeat(time_ms now, std::uint64_t declared_interval_ms) {
  if (count_ == 0) {
    // Bootstrap as Akka does: two samples around the declared interval, so the first
    // silence is judged against what the sender promised.
    const double interval = static_cast<double>(std::max<std::uint64_t>(declared_interval_ms, 1));
    add_interval(interval * 0.75);
    add_interval(interval * 1.25);
  } else if (now > last_ms_) {
    add_interval(static_cast<double>(now - last_ms_));
  }
  last_ms_ = std::max(last_ms_, now);
}

double phi_detector::mean_interval_ms() const noexcept {
  return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_);
}

double phi_detector::phi_after(double elapsed_ms, std::uint64_t acceptable_pause_ms,
                               std::uint64_t min_std_deviation_ms) const {
  const double mean = mean_interval_ms() + static_cast<double>(acceptable_pause_ms);
  const double variance = std::max(0.0, sum_squares_ / static_cast<double>(count_) -
                                            mean_interval_ms() * mean_interval_ms());
  const double deviation = std::max(std::sqrt(variance), static_cast<double>(min_std_deviation_ms));
  // Logistic approximation of the normal CDF, as Akka uses; phi = -log10(P(later)).
  const double y = (elapsed_ms - mean) / deviation;
  const double e = std::exp(-y * (1.5976 + 0.070566 * y * y));
  if (elapsed_ms > mean) return -std::log10(e / (1.0 + e));
  return -std::log10(1.0 - 1.0 / (1.0 + e));
}

double phi_detector::phi(time_ms now, std::uint64_t acceptable_pause_ms,
                         std::uint64_t min_std_deviation_ms) const {
  if (count_ == 0 || now <= last_ms_) return 0.0;
  return phi_after(static_cast<double>(now - last_ms_), acceptable_pause_ms, min_std_deviation_ms);
}

time_ms phi_detector::time_at_phi(double threshold, std::uint64_t acceptable_pause_ms,
                                  std::uint64_t min_std_deviation_ms) const {
  // phi grows monotonically with silence: bisect for the crossing, to the millisecond.
  double low = 0.0;
  double high = std::max(1.0, mean_interval_ms() + static_cast<double>(acceptable_pause_ms));
  constexpr int doublings_max = 40;
  for (int step = 0; step < doublings_max &&
                     phi_after(high, acceptable_pause_ms, min_std_deviation_ms) < threshold;
       ++step) {
    high *= 2.0;
  }
  while (high - low > 1.0) {
    const double middle = (low + high) / 2.0;
    if (phi_after(middle, acceptable_pause_ms, min_std_deviation_ms) >= threshold) {
      high = middle;
    } else {
      low = middle;
    }
  }
  return last_ms_ + static_cast<time_ms>(std::ceil(high));
}

}  // namespace rrh::engine
