#pragma once
/// Waiting in integration tests: on a condition, with a deadline, never a fixed sleep.
#include <chrono>
#include <functional>

namespace rrh::test {

/// Default deadline for a condition in an integration test: generous, because a loaded
/// CI machine is slow, and the wait ends as soon as the condition holds.
inline constexpr std::chrono::milliseconds wait_deadline_default{10'000};

/// Polls `condition` every few milliseconds until it is true (returns true) or `deadline`
/// passes (returns false).
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = wait_deadline_default);

}  // namespace rrh::test
