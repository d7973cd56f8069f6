#pragma once
/// A mutable msgpack value for tests: load a golden vector, change one key, add or remove
/// one, and pack it again, so that each malformed-input test differs from a valid message
/// in exactly the way it names.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "rrh/codec.hpp"
#include "rrh/protocol.hpp"

namespace rrh::test {

struct tree;
/// A msgpack array.
using tree_list = std::vector<tree>;
/// A msgpack map with string keys, in wire order.
using tree_map = std::vector<std::pair<std::string, tree>>;

/// Marks a msgpack nil.
struct nil_t {
  bool operator==(const nil_t&) const = default;
};

/// One msgpack value. Integers keep their signedness so that a test can write -1.
struct tree {
  std::variant<nil_t, bool, std::uint64_t, std::int64_t, double, std::string, byte_buffer,
               tree_list, tree_map>
      value;

  tree() = default;
  tree(nil_t) {}
  tree(bool flag) : value(flag) {}
  tree(std::uint64_t number) : value(number) {}
  tree(int number) : value(static_cast<std::int64_t>(number)) {}
  tree(std::int64_t number) : value(number) {}
  tree(double number) : value(number) {}
  tree(const char* text) : value(std::string(text)) {}
  tree(std::string text) : value(std::move(text)) {}
  tree(byte_buffer bytes) : value(std::move(bytes)) {}
  tree(tree_list items) : value(std::move(items)) {}
  tree(tree_map entries) : value(std::move(entries)) {}

  /// The value under `key` of a map, appended as nil when absent.
  tree& operator[](std::string_view key);
  /// Removes `key` from a map; true when it was there.
  bool erase(std::string_view key);
};

/// Unpacks one msgpack value (the bytes must be valid msgpack).
tree parse(const byte_buffer& bytes);
/// Packs canonically: smallest integer forms, floats as float64, str and bin apart.
byte_buffer pack(const tree& value);

/// Reads a whole file; throws (failing the running test) when it cannot.
byte_buffer read_file(const std::string& path);

/// The bytes of golden vector `<prefix>.<kind>.msgpack` ("event", "task.failed").
byte_buffer golden_vector(std::string_view prefix, std::string_view kind);

/// A golden vector as a tree, to change one key of it.
tree golden_tree(std::string_view prefix, std::string_view kind);

/// Packs `message` and decodes it as an event / a command.
expected<event> decode_event(const tree& message);
expected<command> decode_command(const tree& message);

/// The error code of a failed decode; fails the test when the decode succeeded.
template <class T>
errc error_of(const expected<T>& result) {
  REQUIRE_FALSE(result);
  return result.error().code;
}

}  // namespace rrh::test
