#include "wait.hpp"

#include <thread>

namespace rrh::test {

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling step, not a wait for time
  }
  return true;
}

}  // namespace rrh::test
