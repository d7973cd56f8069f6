#pragma once
/// Helpers of the bad-input integration tests: hostile bytes on a raw TCP connection,
/// rrh-ctl answers, counting log lines, and golden messages altered one field at a time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "msgpack_tree.hpp"
#include "process.hpp"
#include "rrh/protocol.hpp"

namespace rrh::test {

/// The port of "tcp://127.0.0.1:PORT".
inline int port_of(const std::string& endpoint) {
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

/// Connects to a ZeroMQ endpoint with a plain TCP socket, writes `size` random bytes (no
/// ZMTP greeting) and closes. True when the connection and the write succeeded.
inline bool send_raw_garbage(const std::string& endpoint, std::size_t size, unsigned seed) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port_of(endpoint)));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool sent = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (auto& byte : bytes) byte = static_cast<char>(random());
  std::size_t written = 0;
  while (sent && written < bytes.size()) {
    // The peer may close on the first bad byte; a short write is still garbage delivered.
    const auto count = ::send(fd, bytes.data() + written, bytes.size() - written, MSG_NOSIGNAL);
    if (count <= 0) break;
    written += static_cast<std::size_t>(count);
  }
  ::close(fd);
  return sent;
}

/// Runs `rrh-ctl --control <control> <request...>` and returns everything it printed
/// (empty when it did not exit in time).
inline std::string ctl(const std::string& control, const std::vector<std::string>& request) {
  std::vector<std::string> arguments{"--control", control};
  arguments.insert(arguments.end(), request.begin(), request.end());
  child_process tool(binary_path("rrh-ctl"), arguments);
  if (!tool.wait_exit(std::chrono::seconds(10))) return {};
  std::string out;
  for (const auto& line : tool.lines()) out += line + "\n";
  return out;
}

/// The number after `"name":` in JSON text, or -1.
inline long long json_number(const std::string& json, const std::string& name) {
  std::smatch match;
  if (!std::regex_search(json, match, std::regex("\"" + name + "\":([0-9]+)"))) return -1;
  return std::stoll(match[1].str());
}

/// Lines of `process` that contain `needle`.
inline std::size_t count_lines(const child_process& process, const std::string& needle) {
  std::size_t count = 0;
  for (const auto& line : process.lines()) count += line.find(needle) != std::string::npos ? 1 : 0;
  return count;
}

/// How many lines a log throttle of `interval` may let through for one error kind in
/// `elapsed`: one at once, then at most one per interval.
inline std::size_t throttled_lines_max(std::chrono::steady_clock::duration elapsed,
                                       std::chrono::milliseconds interval = std::chrono::seconds(5)) {
  return 1 + static_cast<std::size_t>(elapsed / interval);
}

/// Packed bytes of a tree as a frame.
inline std::string frame_of(const tree& message) {
  const auto bytes = pack(message);
  return {bytes.begin(), bytes.end()};
}

/// A golden vector as a frame.
inline std::string golden_frame(std::string_view prefix, std::string_view kind) {
  const auto bytes = golden_vector(prefix, kind);
  return {bytes.begin(), bytes.end()};
}

}  // namespace rrh::test
