#include "outbox.hpp"

namespace rrh::shim_detail {

outbox::outbox(limits bounds) : limits_(bounds), backoff_(bounds.retransmit_initial) {
  RRH_ASSERT(limits_.capacity > 0);
  RRH_ASSERT(limits_.batch_max > 0);
  RRH_ASSERT(limits_.retransmit_initial.count() > 0);
  RRH_ASSERT(limits_.retransmit_initial <= limits_.retransmit_max);
}

status outbox::push(outbox_entry entry, mono_ms now) {
  if (full()) {
    return make_error(errc::outbox_full,
                      "outbox holds " + std::to_string(entries_.size()) + " unacked events");
  }
  RRH_ASSERT(entry.seq == last_seq_ + 1);
  if (entries_.empty()) {
    backoff_ = limits_.retransmit_initial;
    due_ = now + backoff_;
  }
  last_seq_ = entry.seq;
  entries_.push_back(std::move(entry));
  return ok();
}

std::size_t outbox::acknowledge(std::uint64_t seq, mono_ms now) {
  seq = std::min(seq, last_seq_);
  if (seq <= acked_seq_) return 0;
  acked_seq_ = seq;
  std::size_t released = 0;
  while (!entries_.empty() && entries_.front().seq <= seq) {
    entries_.pop_front();
    ++released;
  }
  backoff_ = limits_.retransmit_initial;
  due_ = now + backoff_;
  return released;
}

std::optional<mono_ms> outbox::next_due() const {
  if (entries_.empty()) return std::nullopt;
  return due_;
}

}  // namespace rrh::shim_detail
