#include "rrh/clock.hpp"

namespace rrh {

mono_ms system_clock::now() const {
  return std::chrono::duration_cast<mono_ms>(std::chrono::steady_clock::now().time_since_epoch());
}

std::uint64_t system_clock::wall_ms() const {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

system_clock& system_clock::instance() {
  static system_clock shared;
  return shared;
}

}  // namespace rrh
