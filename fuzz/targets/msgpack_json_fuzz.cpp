// rrh::msgpack_to_json on arbitrary bytes: taps run it on whatever the bus carries. The
// output, when there is one, must be non-empty and free of raw control characters (JSON
// forbids them inside strings, and the writer escapes them).
#include <cstddef>
#include <cstdint>

#include "fuzz_check.hpp"
#include "rrh/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto json = rrh::msgpack_to_json(data, size);
  if (!json) return 0;
  RRH_FUZZ_REQUIRE(!json->empty());
  for (const char c : *json) RRH_FUZZ_REQUIRE(static_cast<unsigned char>(c) >= 0x20);
  return 0;
}
