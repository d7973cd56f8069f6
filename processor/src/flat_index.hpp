#pragma once
/// An id → slot index as one flat array with linear probing: a lookup touches one
/// cache line of the index and then the slot itself, where a node-based hash map would
/// chase a bucket, a node and the key's storage. Keys are not stored here: the caller's
/// slots hold them, and the index compares through a key accessor. Erasure shifts the
/// following entries back, so there are no tombstones and probe chains stay short.
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "big_table_allocator.hpp"
#include "prefetch.hpp"
#include "rrh/assert.hpp"

namespace rrh::engine::detail {

class flat_index {
 public:
  /// Hash of an id; the index keeps its low 32 bits to skip most key comparisons. Ids are
  /// short (a node or agent name, a task id), so the hash reads them in at most two
  /// overlapping 8-byte words per 16 bytes and folds each pair with one 64×64→128-bit
  /// multiply: a few ns where a general byte-wise hash took tens, and an event hashes up
  /// to three ids twice (once to load ahead, once to apply).
  static std::uint64_t hash(std::string_view id) noexcept {
    const auto* bytes = reinterpret_cast<const unsigned char*>(id.data());
    std::size_t left = id.size();
    std::uint64_t state = seed_a ^ (left * seed_b);
    while (left > 16) {
      state = fold(word(bytes) ^ seed_b, word(bytes + 8) ^ state);
      bytes += 16;
      left -= 16;
    }
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    if (left >= 8) {
      low = word(bytes);
      high = word(bytes + left - 8);
    } else if (left >= 4) {
      low = half_word(bytes);
      high = half_word(bytes + left - 4);
    } else if (left > 0) {
      low = (std::uint64_t{bytes[0]} << 16) | (std::uint64_t{bytes[left / 2]} << 8) | bytes[left - 1];
    }
    return fold(low ^ seed_b, high ^ state);
  }

  /// The slot holding `id`, where `key_of(slot)` gives a slot's id.
  template <class KeyOf>
  std::optional<std::uint32_t> find(std::string_view id, std::uint64_t id_hash, KeyOf&& key_of) const {
    if (entries_.empty()) return std::nullopt;
    const auto tag = static_cast<std::uint32_t>(id_hash);
    for (std::size_t at = tag & mask_;; at = (at + 1) & mask_) {
      const auto& candidate = entries_[at];
      if (candidate.slot_plus_one == 0) return std::nullopt;
      if (candidate.tag == tag && key_of(candidate.slot_plus_one - 1) == id) return candidate.slot_plus_one - 1;
    }
  }

  /// Starts loading the index line where `id_hash` would be found.
  void prefetch(std::uint64_t id_hash) const noexcept {
    if (!entries_.empty()) prefetch_line(&entries_[static_cast<std::uint32_t>(id_hash) & mask_]);
  }

  /// The first slot whose tag matches, without comparing keys (which would wait for the
  /// slot's memory): a guess for prefetching, wrong only on a tag collision.
  std::optional<std::uint32_t> likely_slot(std::uint64_t id_hash) const noexcept {
    if (entries_.empty()) return std::nullopt;
    const auto tag = static_cast<std::uint32_t>(id_hash);
    for (std::size_t at = tag & mask_;; at = (at + 1) & mask_) {
      const auto& candidate = entries_[at];
      if (candidate.slot_plus_one == 0) return std::nullopt;
      if (candidate.tag == tag) return candidate.slot_plus_one - 1;
    }
  }

  /// Adds `id` → `slot`; `id` must not be present yet.
  template <class KeyOf>
  void insert(std::string_view id, std::uint64_t id_hash, std::uint32_t slot, KeyOf&& key_of) {
    RRH_ASSERT(slot < std::numeric_limits<std::uint32_t>::max());
    if ((size_ + 1) * load_denominator > entries_.size() * load_numerator) grow();
    const auto tag = static_cast<std::uint32_t>(id_hash);
    std::size_t at = tag & mask_;
    while (entries_[at].slot_plus_one != 0) {
      RRH_ASSERT(!(entries_[at].tag == tag && key_of(entries_[at].slot_plus_one - 1) == id));
      at = (at + 1) & mask_;
    }
    entries_[at] = entry{tag, slot + 1};
    ++size_;
  }

  /// Removes the entry of `id` and returns the slot it named; nothing when absent.
  template <class KeyOf>
  std::optional<std::uint32_t> erase(std::string_view id, std::uint64_t id_hash, KeyOf&& key_of) {
    if (entries_.empty()) return std::nullopt;
    const auto tag = static_cast<std::uint32_t>(id_hash);
    std::size_t hole = tag & mask_;
    while (true) {
      const auto& candidate = entries_[hole];
      if (candidate.slot_plus_one == 0) return std::nullopt;
      if (candidate.tag == tag && key_of(candidate.slot_plus_one - 1) == id) break;
      hole = (hole + 1) & mask_;
    }
    const std::uint32_t erased = entries_[hole].slot_plus_one - 1;
    // Backward shift: move up every following entry whose home is at or before the hole.
    for (std::size_t next = (hole + 1) & mask_; entries_[next].slot_plus_one != 0; next = (next + 1) & mask_) {
      const std::size_t home = entries_[next].tag & mask_;
      const bool movable = hole <= next ? (home <= hole || home > next) : (home <= hole && home > next);
      if (movable) {
        entries_[hole] = entries_[next];
        hole = next;
      }
    }
    entries_[hole] = entry{};
    --size_;
    return erased;
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return entries_.size(); }

 private:
  struct entry {
    std::uint32_t tag = 0;            // low bits of the id's hash
    std::uint32_t slot_plus_one = 0;  // 0: empty
  };
  // Odd constants with bits spread evenly, so that no input word multiplies by zero.
  static constexpr std::uint64_t seed_a = 0x9e3779b97f4a7c15ULL;
  static constexpr std::uint64_t seed_b = 0xd6e8feb86659fd93ULL;

  static std::uint64_t word(const unsigned char* at) noexcept {
    std::uint64_t value;
    std::memcpy(&value, at, sizeof value);
    return value;
  }
  static std::uint64_t half_word(const unsigned char* at) noexcept {
    std::uint32_t value;
    std::memcpy(&value, at, sizeof value);
    return value;
  }
  // Both halves of the full product, xored: every input bit reaches the low bits, which
  // pick the home entry.
  static std::uint64_t fold(std::uint64_t left, std::uint64_t right) noexcept {
    __extension__ using wide = unsigned __int128;  // g++ and clang on 64-bit targets
    const auto product = static_cast<wide>(left) * right;
    return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
  }

  // At most three quarters full: linear probing stays short.
  static constexpr std::size_t load_numerator = 3;
  static constexpr std::size_t load_denominator = 4;
  static constexpr std::size_t initial_capacity = 16;

  void grow() {
    std::vector<entry, big_table_allocator<entry>> old;
    old.swap(entries_);
    const std::size_t capacity = old.empty() ? initial_capacity : old.size() * 2;
    RRH_ASSERT(capacity <= (std::size_t{1} << 32));  // a tag must still name the home
    entries_.assign(capacity, entry{});
    mask_ = capacity - 1;
    for (const auto& moved : old) {
      if (moved.slot_plus_one == 0) continue;
      std::size_t at = moved.tag & mask_;
      while (entries_[at].slot_plus_one != 0) at = (at + 1) & mask_;
      entries_[at] = moved;
    }
  }

  std::vector<entry, big_table_allocator<entry>> entries_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace rrh::engine::detail
