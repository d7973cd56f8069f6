#include "format.hpp"

#include <msgpack.hpp>

#include <ctime>
#include <span>

#include "rrh/codec.hpp"
#include "rrh/json.hpp"
#include "rrh/protocol.hpp"

namespace rrh::tap {
namespace {

/// Nesting accepted when unpacking a body for display, as in the JSON conversion.
constexpr std::size_t nesting_depth_max = 16;

expected<msgpack::object_handle> unpack_map(const void* data, std::size_t size) {
  if (size > message_bytes_max) return make_error(errc::too_large, "message over the size limit");
  msgpack::object_handle handle;
  try {
    std::size_t offset = 0;
    const msgpack::unpack_limit limits(list_length_max, list_length_max, message_bytes_max,
                                       message_bytes_max, message_bytes_max, nesting_depth_max);
    handle =
        msgpack::unpack(static_cast<const char*>(data), size, offset, nullptr, nullptr, limits);
    if (offset != size) return make_error(errc::malformed, "trailing bytes after the message");
  } catch (const std::exception& failure) {
    return make_error(errc::malformed, std::string("not valid msgpack: ") + failure.what());
  }
  if (handle.get().type != msgpack::type::MAP) {
    return make_error(errc::malformed, "message is not a msgpack map");
  }
  return handle;
}

std::span<const msgpack::object_kv> entries_of(const msgpack::object& map) {
  return {map.via.map.ptr, map.via.map.size};
}

std::string_view string_of(const msgpack::object& value) {
  if (value.type != msgpack::type::STR) return {};
  return {value.via.str.ptr, value.via.str.size};
}

const msgpack::object* find_key(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (const auto& pair : entries_of(map)) {
    if (string_of(pair.key) == key && pair.key.type == msgpack::type::STR) return &pair.val;
  }
  return nullptr;
}

std::string_view topic_subject(std::string_view topic) {
  const auto space = topic.find(' ');
  return space == std::string_view::npos ? std::string_view{} : topic.substr(space + 1);
}

void append_short(std::string& out, const msgpack::object& value);

void append_short_text(std::string& out, std::string_view text) {
  const bool quote = text.empty() || text.find_first_of(" \t\"=") != std::string_view::npos;
  if (quote) {
    append_json_string(out, text);
  } else {
    out.append(text);
  }
}

void append_short(std::string& out, const msgpack::object& value) {
  switch (value.type) {
    case msgpack::type::NIL: out += "null"; break;
    case msgpack::type::BOOLEAN: out += value.via.boolean ? "true" : "false"; break;
    case msgpack::type::POSITIVE_INTEGER: out += std::to_string(value.via.u64); break;
    case msgpack::type::NEGATIVE_INTEGER: out += std::to_string(value.via.i64); break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.4g", value.via.f64);
      out += buffer;
      break;
    }
    case msgpack::type::STR: append_short_text(out, string_of(value)); break;
    case msgpack::type::BIN: out += "<" + std::to_string(value.via.bin.size) + " bytes>"; break;
    case msgpack::type::ARRAY: {
      out += '[';
      for (std::uint32_t index = 0; index < value.via.array.size; ++index) {
        if (index > 0) out += ',';
        append_short(out, value.via.array.ptr[index]);
        if (out.size() > pretty_value_chars_max) break;  // the caller cuts the rest
      }
      out += ']';
      break;
    }
    case msgpack::type::MAP: {
      out += '{';
      bool first = true;
      for (const auto& pair : entries_of(value)) {
        if (!first) out += ',';
        first = false;
        append_short(out, pair.key);
        out += '=';
        append_short(out, pair.val);
        if (out.size() > pretty_value_chars_max) break;
      }
      out += '}';
      break;
    }
    case msgpack::type::EXT: out += "<ext>"; break;
  }
}

std::string short_value(const msgpack::object& value) {
  std::string out;
  append_short(out, value);
  if (out.size() > pretty_value_chars_max) {
    out.resize(pretty_value_chars_max);
    out += "…";
  }
  return out;
}

std::uint64_t unsigned_of(const msgpack::object* value) {
  return value != nullptr && value->type == msgpack::type::POSITIVE_INTEGER ? value->via.u64 : 0;
}

std::string local_time(std::uint64_t ts_ms) {
  const auto seconds = static_cast<std::time_t>(ts_ms / 1000);
  std::tm parts{};
  ::localtime_r(&seconds, &parts);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02d:%02d:%02d.%03u", parts.tm_hour, parts.tm_min,
                parts.tm_sec, static_cast<unsigned>(ts_ms % 1000));
  return buffer;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

const char* color_of(std::string_view kind, bool is_command) {
  if (is_command) return "\033[36m";  // cyan
  if (kind == "heartbeat" || kind == "probe.reply" || kind == "command.ack") return "\033[2m";
  if (contains(kind, "failed") || contains(kind, "dead") || contains(kind, "quarantined") ||
      contains(kind, "abandoned") || contains(kind, "undeliverable") || contains(kind, "error") ||
      contains(kind, "shutdown")) {
    return "\033[31m";  // red
  }
  if (contains(kind, "suspect") || contains(kind, "retry") || kind == "alert") {
    return "\033[33m";  // yellow
  }
  if (contains(kind, "recovered") || contains(kind, "succeeded") || contains(kind, "registered")) {
    return "\033[32m";  // green
  }
  return "";
}

}  // namespace

expected<std::string> json_line(std::string_view topic, const void* body, std::size_t size) {
  auto json = msgpack_to_json(body, size);
  if (!json) return json.error();
  const std::string& object = *json;
  if (object.empty() || object.front() != '{') {
    return make_error(errc::malformed, "message is not a msgpack map");
  }
  std::string line = "{\"topic\":";
  append_json_string(line, topic);
  if (object != "{}") line += ',';
  line.append(object, 1, std::string::npos);
  return line;
}

expected<bool> concerns_agent(std::string_view topic, const void* body, std::size_t size,
                              std::string_view agent) {
  auto handle = unpack_map(body, size);
  if (!handle) return handle.error();
  if (topic_subject(topic) == agent) return true;
  const auto* data = find_key(handle->get(), "data");
  const auto* data_agent = data != nullptr ? find_key(*data, "agent") : nullptr;
  return data_agent != nullptr && data_agent->type == msgpack::type::STR &&
         string_of(*data_agent) == agent;
}

expected<std::string> pretty_line(std::string_view topic, const void* body, std::size_t size,
                                  bool color) {
  auto handle = unpack_map(body, size);
  if (!handle) return handle.error();
  const auto& root = handle->get();
  const bool is_command = topic.starts_with(command_topic_prefix);
  const auto* kind_value = find_key(root, "kind");
  std::string kind(kind_value != nullptr ? string_of(*kind_value) : std::string_view{});
  if (kind.empty()) kind = std::string(topic.substr(0, topic.find(' ')));
  const auto* node_value = find_key(root, "node");
  const std::string_view node = node_value != nullptr ? string_of(*node_value) : std::string_view{};
  const auto ts_ms = unsigned_of(find_key(root, "ts_ms"));

  std::string line = local_time(ts_ms);
  line += ' ';
  const char* paint = color ? color_of(kind, is_command) : "";
  line += paint;
  std::string label = is_command ? "cmd " + kind : kind;
  label.resize(std::max<std::size_t>(label.size(), 22), ' ');
  line += label;
  if (*paint != '\0') line += "\033[0m";
  line += ' ';
  if (is_command) {
    line += "-> ";
    line.append(node);
    line += " id=" + std::to_string(unsigned_of(find_key(root, "id")));
  } else {
    line.append(node);
    if (const auto* seq = find_key(root, "seq"); unsigned_of(seq) != 0) {
      line += " #" + std::to_string(unsigned_of(seq));
    }
  }
  if (const auto* episode = find_key(root, "episode"); episode && !string_of(*episode).empty()) {
    line += " episode=";
    append_short_text(line, string_of(*episode));
  }
  if (const auto* data = find_key(root, "data");
      data != nullptr && data->type == msgpack::type::MAP) {
    for (const auto& pair : entries_of(*data)) {
      // Empty optional fields (pool="", from_agent="") are noise in a line meant for people.
      if (pair.val.type == msgpack::type::STR && pair.val.via.str.size == 0) continue;
      line += ' ';
      line.append(short_value(pair.key));
      line += '=';
      line += short_value(pair.val);
    }
  }
  return line;
}

}  // namespace rrh::tap
