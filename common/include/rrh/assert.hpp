#pragma once
/// Assertions that stay on in release builds: a broken invariant stops the process
/// with a message instead of corrupting state silently.
#include <cstdio>
#include <cstdlib>

#define RRH_ASSERT(condition)                                                              \
  do {                                                                                     \
    if (!(condition)) {                                                                    \
      std::fprintf(stderr, "rrh: assertion failed: %s (%s:%d)\n", #condition, __FILE__,  \
                   __LINE__);                                                              \
      std::abort();                                                                        \
    }                                                                                      \
  } while (false)
