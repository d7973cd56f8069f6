// rrh::processor::parse_processor_settings on arbitrary text. Settings that parse must
// render (--print-config) to text that parses back to settings rendering the same text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "processor_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto parsed = rrh::processor::parse_processor_settings(text, "fuzz");
  if (!parsed) return 0;
  const auto rendered = rrh::processor::render_processor_settings(*parsed);
  const auto again = rrh::processor::parse_processor_settings(rendered, "rendered");
  RRH_FUZZ_REQUIRE(again);
  RRH_FUZZ_REQUIRE(rrh::processor::render_processor_settings(*again) == rendered);
  return 0;
}
