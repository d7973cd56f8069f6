#pragma once
/// Loading a cache line ahead of its use.
namespace rrh::engine::detail {

/// Starts loading the cache line at `address` into every cache level; never faults. An
/// asm statement on x86-64 rather than __builtin_prefetch: GCC treats the builtin as free
/// of side effects, so once a function that only prefetches (hash an id, prefetch its
/// line) is found pure, its calls are deleted as dead code — which is what happened to
/// the engine's batch prefetch when the id hash became inline.
inline void prefetch_line(const void* address) noexcept {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address)));
#else
  __builtin_prefetch(address);
#endif
}

}  // namespace rrh::engine::detail
