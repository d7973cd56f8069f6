// rrh::shim_config::from_yaml_file on arbitrary file content: an agent reads it at start
// (RRH_CONFIG), and a bad file must be an error, never a crash.
#include <cstddef>
#include <cstdint>

#include "file_input.hpp"
#include "rrh/shim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto loaded = rrh::shim_config::from_yaml_file(rrh::fuzz::as_file(data, size));
  if (loaded) (void)loaded->validate();
  return 0;
}
