#include "command_dedup.hpp"

namespace rrh::shim_detail {

command_dedup::command_dedup(std::size_t window) : window_(window) { RRH_ASSERT(window_ > 0); }

command_dedup::verdict command_dedup::admit(std::uint64_t id) {
  if (const auto found = entries_.find(id); found != entries_.end()) {
    return {found->second.done ? seen::done : seen::pending, found->second.result};
  }
  while (order_.size() >= window_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  entries_.emplace(id, entry{});
  order_.push_back(id);
  return {seen::fresh, {}};
}

void command_dedup::complete(std::uint64_t id, command_result result) {
  if (const auto found = entries_.find(id); found != entries_.end()) {
    found->second.done = true;
    found->second.result = std::move(result);
  }
}

void command_dedup::forget(std::uint64_t id) {
  // Rare (only when the command queue overflows), so a linear search is fine; a resent
  // command with this id is then admitted as fresh again.
  if (entries_.erase(id) == 0) return;
  for (auto position = order_.begin(); position != order_.end(); ++position) {
    if (*position == id) {
      order_.erase(position);
      break;
    }
  }
}

}  // namespace rrh::shim_detail
