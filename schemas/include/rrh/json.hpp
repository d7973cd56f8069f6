#pragma once
/// msgpack → JSON, for taps, control answers and the golden vectors' JSON twins. Works on
/// any msgpack value, so a tap shows kinds this build does not know yet.
#include <cstddef>
#include <string>

#include "rrh/expected.hpp"
#include "rrh/protocol.hpp"

namespace rrh {

/// Converts one msgpack value to compact JSON. Map keys keep their order; bin becomes
/// {"$bin": "<base64>"}; floats always carry a decimal point or exponent, so that a
/// reader can tell 2.0 from 2. Fails on bytes that are not exactly one msgpack value.
expected<std::string> msgpack_to_json(const void* data, std::size_t size);

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(const void* data, std::size_t size);

/// Appends `text` to `out` as a JSON string literal, escaped.
void append_json_string(std::string& out, std::string_view text);

/// Appends a double as JSON: the shortest text that reads back the same, always with a
/// decimal point or exponent (2.0, not 2); null when not finite (JSON has no NaN).
void append_json_number(std::string& out, double value);

/// Appends a setting (integer, double, boolean or string) as JSON.
void append_json_setting(std::string& out, const setting_value& value);

}  // namespace rrh
