#pragma once
/// The engine's one deadline structure: a min-heap for what is due soon, and coarse
/// buckets for later. A large fleet keeps a timer per agent (its next probe), but only the
/// timers of the current bucket sit in the heap, so the heap stays small enough to live in
/// cache and scheduling a far timer is an append. Invariant: every bucketed timer is later
/// than every heap timer's bucket, and the heap is empty only when no bucket is left — so
/// the heap's top is always the earliest timer. Timers due at the same time pop in the
/// order they were pushed (a sequence number breaks ties), so the order of a run does not
/// depend on how pushes and pops happened to interleave.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace rrh::engine::detail {

template <class Timer>
class timer_queue {
 public:
  /// Timers due within one bucket of this width share a bucket.
  static constexpr std::uint64_t bucket_width_ms = 1024;

  void push(const Timer& timer) {
    const auto bucket = bucket_of(timer.due);
    if (heap_.empty() && buckets_.empty()) current_ = bucket;
    const entry pushed{timer, next_sequence_++};
    if (bucket <= current_) {
      heap_.push_back(pushed);
      std::push_heap(heap_.begin(), heap_.end(), later);
    } else {
      buckets_[bucket].push_back(pushed);
    }
    ++size_;
  }

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  /// The earliest timer (the first pushed of the earliest); the queue must not be empty.
  const Timer& top() const { return heap_.front().timer; }

  void pop() {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
    --size_;
    if (heap_.empty() && !buckets_.empty()) promote();
  }

  std::optional<std::uint64_t> next_due() const {
    if (heap_.empty()) return std::nullopt;
    return heap_.front().timer.due;
  }

 private:
  struct entry {
    Timer timer;
    std::uint64_t sequence;  // push order, the tie-break among equal due times
  };
  static bool later(const entry& left, const entry& right) {
    if (left.timer.due != right.timer.due) return left.timer.due > right.timer.due;
    return left.sequence > right.sequence;
  }
  static std::uint64_t bucket_of(std::uint64_t due) { return due / bucket_width_ms; }

  // Moves the earliest bucket into the (empty) heap.
  void promote() {
    auto first = buckets_.begin();
    current_ = first->first;
    heap_.swap(first->second);
    buckets_.erase(first);
    std::make_heap(heap_.begin(), heap_.end(), later);
  }

  std::vector<entry> heap_;
  std::map<std::uint64_t, std::vector<entry>> buckets_;
  std::uint64_t current_ = 0;
  std::size_t size_ = 0;
  std::uint64_t next_sequence_ = 0;
};

}  // namespace rrh::engine::detail
