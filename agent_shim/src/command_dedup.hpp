#pragma once
// Remembers the last N command ids and what the handler answered, so that a command the
// processor resends (its ack was lost) is acked again but never applied twice.
#include <cstdint>
#include <deque>
#include <unordered_map>

#include "rrh/shim.hpp"

namespace rrh::shim_detail {

class command_dedup {
 public:
  /// What is known of a command id.
  enum class seen {
    fresh,    ///< first sighting; now recorded as pending
    pending,  ///< its handler has not answered yet
    done,     ///< answered; `result` holds the answer
  };
  struct verdict {
    seen state = seen::fresh;
    command_result result;
  };

  /// `window`: how many ids are remembered; the oldest is forgotten first.
  explicit command_dedup(std::size_t window);

  /// Looks `id` up; a fresh id is recorded as pending.
  verdict admit(std::uint64_t id);
  /// Records the handler's answer for a pending id.
  void complete(std::uint64_t id, command_result result);
  /// Forgets a pending id (its command was dropped before a handler saw it).
  void forget(std::uint64_t id);
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  struct entry {
    bool done = false;
    command_result result;
  };
  std::size_t window_;
  std::unordered_map<std::uint64_t, entry> entries_;
  std::deque<std::uint64_t> order_;
};

}  // namespace rrh::shim_detail
