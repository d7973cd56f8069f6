// rrh::decode_command on arbitrary bytes, with the same properties as decode_event_fuzz:
// what decodes validates, converts to JSON and survives an encode/decode round trip.
#include <cstddef>
#include <cstdint>

#include "fuzz_check.hpp"
#include "rrh/codec.hpp"
#include "rrh/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto decoded = rrh::decode_command(data, size);
  if (!decoded) return 0;
  RRH_FUZZ_REQUIRE(rrh::validate(*decoded));
  RRH_FUZZ_REQUIRE(!rrh::command_topic(rrh::kind_name(decoded->body), decoded->node).empty());
  RRH_FUZZ_REQUIRE(rrh::msgpack_to_json(data, size));
  const auto encoded = rrh::encode(*decoded);
  const auto again = rrh::decode_command(encoded.data(), encoded.size());
  RRH_FUZZ_REQUIRE(again);
  RRH_FUZZ_REQUIRE(rrh::encode(*again) == encoded);
  return 0;
}
