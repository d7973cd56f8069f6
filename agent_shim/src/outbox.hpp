#pragma once
// The shim's reliability core, free of sockets and clocks so that it is unit-tested with a
// manual clock and driven by the simulator: critical events wait here until the processor
// acks them cumulatively, and are resent go-back-N with capped exponential backoff.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "rrh/clock.hpp"
#include "rrh/expected.hpp"
#include "rrh/protocol.hpp"

namespace rrh::shim_detail {

/// One encoded critical event and the topic it is published under.
struct outbox_entry {
  std::uint64_t seq = 0;
  std::string topic;
  byte_buffer bytes;
};

/// Bounded store of unacked critical events of one incarnation.
class outbox {
 public:
  struct limits {
    std::size_t capacity = 10'000;
    mono_ms retransmit_initial{500};
    mono_ms retransmit_max{8000};
    std::size_t batch_max = 512;  ///< entries resent per round
  };

  explicit outbox(limits bounds);

  bool full() const noexcept { return entries_.size() >= limits_.capacity; }
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  /// Highest sequence number ever pushed (0 before the first).
  std::uint64_t last_seq() const noexcept { return last_seq_; }
  /// Highest sequence number acked so far.
  std::uint64_t acked_seq() const noexcept { return acked_seq_; }

  /// Stores the next event; its seq must be last_seq() + 1. errc::outbox_full at capacity.
  status push(outbox_entry entry, mono_ms now);

  /// Releases every entry up to `seq` (cumulative ack) and resets the backoff when that
  /// made progress. Acks at or below acked_seq() are stale and change nothing; acks above
  /// last_seq() are clamped. Returns the number of entries released.
  std::size_t acknowledge(std::uint64_t seq, mono_ms now);

  /// When the retransmission round is due, calls `resend` for the oldest entries (at
  /// most batch_max), then doubles the backoff up to its cap. Returns entries resent.
  template <class Resend>
  std::size_t retransmit_due(mono_ms now, Resend&& resend) {
    if (entries_.empty() || now < due_) return 0;
    std::size_t count = 0;
    for (const auto& entry : entries_) {
      if (count == limits_.batch_max) break;
      resend(entry);
      ++count;
    }
    backoff_ = std::min(backoff_ * 2, limits_.retransmit_max);
    due_ = now + backoff_;
    return count;
  }

  /// When the next retransmission round is due; nothing when the outbox is empty.
  std::optional<mono_ms> next_due() const;

 private:
  limits limits_;
  std::deque<outbox_entry> entries_;
  std::uint64_t last_seq_ = 0;
  std::uint64_t acked_seq_ = 0;
  mono_ms backoff_;
  mono_ms due_{0};
};

}  // namespace rrh::shim_detail
