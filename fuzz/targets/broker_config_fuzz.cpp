// rrh::broker::load_config_file on arbitrary file content: a bad file must be an error,
// never a crash.
#include <cstddef>
#include <cstdint>

#include "config.hpp"
#include "file_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)rrh::broker::load_config_file(rrh::fuzz::as_file(data, size), rrh::broker::config{});
  return 0;
}
