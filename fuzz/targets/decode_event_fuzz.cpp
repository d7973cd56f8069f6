// rrh::decode_event on arbitrary bytes. Beyond not crashing, a message that decodes must
// pass `validate`, have a topic, convert to JSON, and re-encode to bytes that decode to the
// same message again (the codec's round trip).
#include <cstddef>
#include <cstdint>

#include "fuzz_check.hpp"
#include "rrh/codec.hpp"
#include "rrh/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto decoded = rrh::decode_event(data, size);
  if (!decoded) return 0;
  RRH_FUZZ_REQUIRE(rrh::validate(*decoded));
  RRH_FUZZ_REQUIRE(!rrh::event_topic(*decoded).empty());
  RRH_FUZZ_REQUIRE(rrh::msgpack_to_json(data, size));
  const auto encoded = rrh::encode(*decoded);
  const auto again = rrh::decode_event(encoded.data(), encoded.size());
  RRH_FUZZ_REQUIRE(again);
  RRH_FUZZ_REQUIRE(rrh::encode(*again) == encoded);
  return 0;
}
