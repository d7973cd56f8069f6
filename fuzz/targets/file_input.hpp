#pragma once
/// The config loaders that take a path read the fuzz input from one memory-backed file,
/// rewritten for every input, so a run writes nothing to disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace rrh::fuzz {

/// Replaces the file's content with `data` and returns a path that opens it.
inline std::string as_file(const std::uint8_t* data, std::size_t size) {
  static const int fd = [] {
    const int created = ::memfd_create("rrh-fuzz-config", 0);
    if (created < 0) std::abort();
    return created;
  }();
  if (::ftruncate(fd, 0) != 0) std::abort();
  std::size_t written = 0;
  while (written < size) {
    const auto count = ::pwrite(fd, data + written, size - written, static_cast<off_t>(written));
    if (count <= 0) std::abort();
    written += static_cast<std::size_t>(count);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace rrh::fuzz
