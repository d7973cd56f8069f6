#pragma once
/// An allocator for the engine's large tables (slots and id indexes): blocks of 4 MiB and
/// more come straight from mmap, aligned to 2 MiB and marked MADV_HUGEPAGE, so that a
/// million-agent fleet's tables sit in a few hundred huge pages. A lookup of a random
/// agent then misses the cache but not the TLB: with 4 KiB pages every such lookup also
/// walked the page tables (twice over under a hypervisor), and a prefetch that misses the
/// TLB may be dropped. Smaller blocks use the global allocator.
#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace rrh::engine::detail {

inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;
inline constexpr std::size_t big_block_min_bytes = std::size_t{4} << 20;

/// Bytes mapped by big_table_allocator and not yet unmapped, process-wide.
inline std::atomic<std::size_t> mapped_bytes{0};

/// Maps `bytes` (a multiple of huge_page_bytes) at a huge-page boundary; nullptr on failure.
inline void* map_huge(std::size_t bytes) noexcept {
  const std::size_t span = bytes + huge_page_bytes;
  void* mapped = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(mapped);
  const auto aligned = (start + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
  if (aligned > start) ::munmap(mapped, aligned - start);
  const auto tail = start + span - (aligned + bytes);
  if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // a hint: 4 KiB pages work too
  return reinterpret_cast<void*>(aligned);
}

template <class T>
struct big_table_allocator {
  using value_type = T;

  big_table_allocator() noexcept = default;
  template <class U>
  big_table_allocator(const big_table_allocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    if (bytes < big_block_min_bytes) return static_cast<T*>(::operator new(bytes, std::align_val_t{alignof(T)}));
    void* block = map_huge(rounded(bytes));
    if (block == nullptr) throw std::bad_alloc();
    mapped_bytes.fetch_add(rounded(bytes), std::memory_order_relaxed);
    return static_cast<T*>(block);
  }

  void deallocate(T* block, std::size_t count) noexcept {
    const std::size_t bytes = count * sizeof(T);
    if (bytes < big_block_min_bytes) {
      ::operator delete(block, std::align_val_t{alignof(T)});
      return;
    }
    ::munmap(block, rounded(bytes));
    mapped_bytes.fetch_sub(rounded(bytes), std::memory_order_relaxed);
  }

  template <class U>
  bool operator==(const big_table_allocator<U>&) const noexcept {
    return true;
  }

 private:
  static std::size_t rounded(std::size_t bytes) noexcept {
    return (bytes + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
  }
};

}  // namespace rrh::engine::detail
