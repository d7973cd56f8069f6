#pragma once
/// What the fuzz targets assert beyond "no crash": a property of the code under test that
/// must hold for every input. A violation aborts, which libFuzzer reports as a crash and
/// saves the input.
#include <cstdio>
#include <cstdlib>

#define RRH_FUZZ_REQUIRE(condition)                                                          \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "rrh fuzz: property violated: %s (%s:%d)\n", #condition, __FILE__, \
                   __LINE__);                                                                \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
