#include "process_info.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>

#include "rrh/protocol.hpp"

namespace rrh::shim_detail {

std::uint64_t process_id() { return static_cast<std::uint64_t>(::getpid()); }

std::string host_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0) return "unknown";
  return buffer;
}

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t total_pages = 0;
  std::uint64_t resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::string default_node_id() {
  std::string id = host_name() + "-" + std::to_string(process_id());
  for (auto& c : id) {
    if (!is_valid_id(std::string_view(&c, 1))) c = '-';
  }
  if (id.size() > id_length_max) id.erase(0, id.size() - id_length_max);
  return id;
}

std::uint64_t new_incarnation() {
  std::random_device entropy;
  std::seed_seq seed{entropy(), entropy(), entropy(),
                     static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())};
  std::mt19937_64 generator(seed);
  std::uint64_t value = 0;
  while (value == 0) value = generator();
  // Keep it within 2^53 so that JSON readers (JavaScript) hold it exactly.
  return (value & ((std::uint64_t{1} << 53) - 1)) | 1;
}

std::uint64_t start_incarnation(std::uint64_t chosen) {
  static std::atomic<bool> chosen_taken{false};
  if (chosen != 0 && !chosen_taken.exchange(true)) return chosen;
  return new_incarnation();
}

}  // namespace rrh::shim_detail
