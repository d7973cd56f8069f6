#pragma once
/// The ready lines the binaries print once they listen ("rrh-broker ready events-in=… "),
/// read back by whatever started them: tests, benchmarks, scripts.
#include <string>
#include <string_view>

namespace rrh {

/// The value of `key=value` in a ready line (up to the next space), or empty.
inline std::string ready_line_field(std::string_view line, std::string_view key) {
  std::string pattern(key);
  pattern += '=';
  const auto start = line.find(pattern);
  if (start == std::string_view::npos) return {};
  const auto value_start = start + pattern.size();
  const auto end = line.find(' ', value_start);
  return std::string(line.substr(value_start, end == std::string_view::npos ? std::string_view::npos : end - value_start));
}

}  // namespace rrh
