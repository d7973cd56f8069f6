#include "rrh/json.hpp"

#include <msgpack.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <span>

#include "rrh/protocol.hpp"

namespace rrh {
namespace {

void append_value(std::string& out, const msgpack::object& value) {
  switch (value.type) {
    case msgpack::type::NIL: out += "null"; break;
    case msgpack::type::BOOLEAN: out += value.via.boolean ? "true" : "false"; break;
    case msgpack::type::POSITIVE_INTEGER: out += std::to_string(value.via.u64); break;
    case msgpack::type::NEGATIVE_INTEGER: out += std::to_string(value.via.i64); break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: append_json_number(out, value.via.f64); break;
    case msgpack::type::STR:
      append_json_string(out, std::string_view(value.via.str.ptr, value.via.str.size));
      break;
    case msgpack::type::BIN:
      out += "{\"$bin\":\"";
      out += base64_encode(value.via.bin.ptr, value.via.bin.size);
      out += "\"}";
      break;
    case msgpack::type::ARRAY: {
      out += '[';
      bool first = true;
      for (const auto& item : std::span(value.via.array.ptr, value.via.array.size)) {
        if (!first) out += ',';
        first = false;
        append_value(out, item);
      }
      out += ']';
      break;
    }
    case msgpack::type::MAP: {
      out += '{';
      bool first = true;
      for (const auto& pair : std::span(value.via.map.ptr, value.via.map.size)) {
        if (!first) out += ',';
        first = false;
        if (pair.key.type == msgpack::type::STR) {
          append_value(out, pair.key);
        } else {
          // JSON keys are strings: render any other key as its JSON text, quoted.
          std::string key;
          append_value(key, pair.key);
          append_json_string(out, key);
        }
        out += ':';
        append_value(out, pair.val);
      }
      out += '}';
      break;
    }
    case msgpack::type::EXT: out += "null"; break;
  }
}

}  // namespace

std::string base64_encode(const void* data, std::size_t size) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  std::size_t index = 0;
  for (; index + 2 < size; index += 3) {
    const unsigned triple = (bytes[index] << 16) | (bytes[index + 1] << 8) | bytes[index + 2];
    out += alphabet[(triple >> 18) & 63];
    out += alphabet[(triple >> 12) & 63];
    out += alphabet[(triple >> 6) & 63];
    out += alphabet[triple & 63];
  }
  if (index < size) {
    unsigned triple = bytes[index] << 16;
    if (index + 1 < size) triple |= bytes[index + 1] << 8;
    out += alphabet[(triple >> 18) & 63];
    out += alphabet[(triple >> 12) & 63];
    out += (index + 1 < size) ? alphabet[(triple >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escape[8];
          std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
          out += escape;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void append_json_number(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  const std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
  out += text;
  if (text.find_first_of(".eE") == std::string_view::npos) out += ".0";
}

void append_json_setting(std::string& out, const setting_value& value) {
  std::visit(
      [&out](const auto& held) {
        using held_type = std::decay_t<decltype(held)>;
        if constexpr (std::is_same_v<held_type, std::string>) {
          append_json_string(out, held);
        } else if constexpr (std::is_same_v<held_type, bool>) {
          out += held ? "true" : "false";
        } else if constexpr (std::is_same_v<held_type, double>) {
          append_json_number(out, held);
        } else {
          out += std::to_string(held);
        }
      },
      value);
}

expected<std::string> msgpack_to_json(const void* data, std::size_t size) {
  if (size > message_bytes_max) return make_error(errc::too_large, "message over the size limit");
  try {
    std::size_t offset = 0;
    const msgpack::unpack_limit limits(list_length_max, list_length_max, message_bytes_max,
                                       message_bytes_max, message_bytes_max, 16);
    auto handle = msgpack::unpack(static_cast<const char*>(data), size, offset, nullptr, nullptr,
                                  limits);
    if (offset != size) return make_error(errc::malformed, "trailing bytes after the message");
    std::string out;
    append_value(out, handle.get());
    return out;
  } catch (const std::exception& failure) {
    return make_error(errc::malformed, std::string("not valid msgpack: ") + failure.what());
  }
}

}  // namespace rrh
