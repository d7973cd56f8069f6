#pragma once
/// A small JSON reader for the control socket's replies: objects (members in order),
/// arrays, strings, numbers (kept as their text, so integers print exactly), booleans and
/// null. Enough for rrh-ctl and its tests, without a new dependency.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rrh/expected.hpp"

namespace rrh::ctl {

/// Deepest nesting accepted, so a hostile reply cannot overflow the stack.
inline constexpr std::size_t json_depth_max = 64;

struct json_member;

/// One JSON value.
struct json_value {
  enum class kind : std::uint8_t { null, boolean, number, string, array, object };

  kind type = kind::null;
  bool boolean = false;
  std::string text;               ///< a string's content (unescaped), or a number's text as written
  std::vector<json_value> items;  ///< array elements
  std::vector<json_member> members;  ///< object members, in the order received

  bool is_null() const noexcept { return type == kind::null; }
  bool is_object() const noexcept { return type == kind::object; }
  bool is_array() const noexcept { return type == kind::array; }
  bool is_string() const noexcept { return type == kind::string; }

  /// The member named `key` of an object, or nullptr (also when this is not an object).
  const json_value* find(std::string_view key) const;

  /// The number as an unsigned integer, when it is one.
  std::optional<std::uint64_t> as_u64() const;

  /// A short rendering for tables: strings as they are, numbers as written, true/false,
  /// null as "null", arrays of scalars comma-joined, other containers as compact JSON.
  std::string display() const;
};

/// One member of an object.
struct json_member {
  std::string key;
  json_value value;
};

/// Parses exactly one JSON value (surrounding whitespace allowed); the error (errc::malformed)
/// names the byte offset.
expected<json_value> parse_json(std::string_view text);

/// Compact JSON text of a value (members in order), as a writer would produce it.
std::string to_json(const json_value& value);

}  // namespace rrh::ctl
