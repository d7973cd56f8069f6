#include <catch2/catch.hpp>

#include "outbox.hpp"

using rrh::mono_ms;
using rrh::shim_detail::outbox;
using rrh::shim_detail::outbox_entry;

namespace {

outbox_entry entry_for(std::uint64_t seq) { return {seq, "task.failed a1", {static_cast<std::uint8_t>(seq)}}; }

std::vector<std::uint64_t> resent_seqs(outbox& box, mono_ms now) {
  std::vector<std::uint64_t> seqs;
  box.retransmit_due(now, [&seqs](const outbox_entry& entry) { seqs.push_back(entry.seq); });
  return seqs;
}

}  // namespace

TEST_CASE("outbox keeps events until a cumulative ack releases them", "[shim][outbox]") {
  outbox box({.capacity = 8, .retransmit_initial = mono_ms{100}, .retransmit_max = mono_ms{800},
              .batch_max = 4});
  for (std::uint64_t seq = 1; seq <= 5; ++seq) REQUIRE(box.push(entry_for(seq), mono_ms{0}));
  REQUIRE(box.size() == 5);
  REQUIRE(box.last_seq() == 5);

  SECTION("an ack releases everything up to its seq") {
    REQUIRE(box.acknowledge(3, mono_ms{10}) == 3);
    REQUIRE(box.size() == 2);
    REQUIRE(box.acked_seq() == 3);
  }
  SECTION("a stale ack changes nothing") {
    REQUIRE(box.acknowledge(3, mono_ms{10}) == 3);
    REQUIRE(box.acknowledge(2, mono_ms{20}) == 0);
    REQUIRE(box.size() == 2);
  }
  SECTION("an ack beyond the last seq is clamped") {
    REQUIRE(box.acknowledge(99, mono_ms{10}) == 5);
    REQUIRE(box.empty());
    REQUIRE(box.acked_seq() == 5);
    REQUIRE_FALSE(box.next_due().has_value());
  }
}

TEST_CASE("outbox reports overflow instead of dropping", "[shim][outbox]") {
  outbox box({.capacity = 3, .retransmit_initial = mono_ms{100}, .retransmit_max = mono_ms{800},
              .batch_max = 4});
  for (std::uint64_t seq = 1; seq <= 3; ++seq) REQUIRE(box.push(entry_for(seq), mono_ms{0}));
  REQUIRE(box.full());
  const auto refused = box.push(entry_for(4), mono_ms{0});
  REQUIRE_FALSE(refused);
  REQUIRE(refused.error().code == rrh::errc::outbox_full);
  REQUIRE(box.size() == 3);
  REQUIRE(box.last_seq() == 3);
  REQUIRE(box.acknowledge(1, mono_ms{1}) == 1);
  REQUIRE(box.push(entry_for(4), mono_ms{1}));
}

TEST_CASE("outbox retransmits go-back-N with capped exponential backoff", "[shim][outbox]") {
  outbox box({.capacity = 16, .retransmit_initial = mono_ms{100}, .retransmit_max = mono_ms{400},
              .batch_max = 3});
  for (std::uint64_t seq = 1; seq <= 5; ++seq) REQUIRE(box.push(entry_for(seq), mono_ms{0}));

  SECTION("nothing is resent before the first deadline") {
    REQUIRE(resent_seqs(box, mono_ms{99}).empty());
    REQUIRE(box.next_due() == mono_ms{100});
  }
  SECTION("a round resends the oldest entries up to the batch limit") {
    REQUIRE(resent_seqs(box, mono_ms{100}) == std::vector<std::uint64_t>{1, 2, 3});
  }
  SECTION("the gap between rounds doubles up to the cap") {
    REQUIRE(resent_seqs(box, mono_ms{100}).size() == 3);
    REQUIRE(box.next_due() == mono_ms{300});  // 100 + 200
    REQUIRE(resent_seqs(box, mono_ms{299}).empty());
    REQUIRE(resent_seqs(box, mono_ms{300}).size() == 3);
    REQUIRE(box.next_due() == mono_ms{700});  // 300 + 400 (cap)
    REQUIRE(resent_seqs(box, mono_ms{700}).size() == 3);
    REQUIRE(box.next_due() == mono_ms{1100});  // stays at the cap
  }
  SECTION("ack progress resets the backoff and resends from the new oldest") {
    REQUIRE(resent_seqs(box, mono_ms{100}).size() == 3);
    REQUIRE(resent_seqs(box, mono_ms{300}).size() == 3);
    REQUIRE(box.acknowledge(2, mono_ms{350}) == 2);
    REQUIRE(box.next_due() == mono_ms{450});
    REQUIRE(resent_seqs(box, mono_ms{450}) == std::vector<std::uint64_t>{3, 4, 5});
  }
}
