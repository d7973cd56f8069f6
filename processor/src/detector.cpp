#include "rrh/engine/detector.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>

namespace rrh::engine {
namespace {

// The logistic approximation of the normal CDF Akka uses: P(later) = e / (1 + e) with
// ln e = -y (logistic_a + logistic_b y^2), y the silence in standard deviations.
constexpr double logistic_a = 1.5976;
constexpr double logistic_b = 0.070566;

}  // namespace

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

phi_detector::silence_model phi_detector::model(std::uint64_t acceptable_pause_ms,
                                                std::uint64_t min_std_deviation_ms) const {
  static_assert(offsetof(phi_detector, intervals_) == summary_bytes, "summary_bytes: the scalars ahead of the window");
  const double mean = mean_interval_ms();
  const double variance = std::max(0.0, sum_squares_ / static_cast<double>(count_) - mean * mean);
  return {mean + static_cast<double>(acceptable_pause_ms),
          std::max(std::sqrt(variance), static_cast<double>(min_std_deviation_ms))};
}

double phi_detector::phi_after(double elapsed_ms, std::uint64_t acceptable_pause_ms,
                               std::uint64_t min_std_deviation_ms) const {
  const auto [mean, deviation] = model(acceptable_pause_ms, min_std_deviation_ms);
  // phi = -log10(P(later)).
  const double y = (elapsed_ms - mean) / deviation;
  const double e = std::exp(-y * (logistic_a + logistic_b * y * y));
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
  const auto phi_at = [&](double elapsed_ms) {
    return phi_after(elapsed_ms, acceptable_pause_ms, min_std_deviation_ms);
  };
  if (phi_at(0.0) >= threshold) return last_ms_;
  // phi = -log10(p) with p = e / (1 + e) and ln e = -y (a + b y^2): for the threshold's p,
  // y solves b y^3 + a y - c = 0 with c = ln((1 - p) / p). With a, b > 0 the cubic has one
  // real root (Cardano). One evaluation instead of a search: every heartbeat asks this.
  // ln((1 - p) / p) with p = 10^-threshold, computed without underflow for large thresholds.
  const double c = threshold * std::numbers::ln10 + std::log1p(-std::pow(10.0, -threshold));
  const double half_q = -c / (2.0 * logistic_b);
  const double third_p = logistic_a / (3.0 * logistic_b);
  const double root = std::sqrt(half_q * half_q + third_p * third_p * third_p);
  const double y = std::cbrt(-half_q + root) + std::cbrt(-half_q - root);
  const auto [mean, deviation] = model(acceptable_pause_ms, min_std_deviation_ms);
  constexpr double elapsed_max_ms = 1e15;  // far beyond any timer; keeps the cast defined
  double elapsed = std::clamp(std::ceil(mean + y * deviation), 0.0, elapsed_max_ms);
  // Rounding of the closed form can be off by a millisecond either way: settle on the
  // first whole millisecond at which phi reaches the threshold, as phi() will judge it.
  constexpr int settle_steps_max = 4;
  for (int step = 0; step < settle_steps_max && elapsed < elapsed_max_ms && phi_at(elapsed) < threshold; ++step) {
    elapsed += 1.0;
  }
  for (int step = 0; step < settle_steps_max && elapsed >= 1.0 && phi_at(elapsed - 1.0) >= threshold; ++step) {
    elapsed -= 1.0;
  }
  return last_ms_ + static_cast<time_ms>(elapsed);
}

}  // namespace rrh::engine
