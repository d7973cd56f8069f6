#include "rrh/codec.hpp"

#include <msgpack.hpp>

#include <bit>
#include <concepts>
#include <limits>
#include <optional>
#include <span>
#include <utility>

namespace rrh {
namespace {

using packer = msgpack::packer<msgpack::sbuffer>;

// ---------------------------------------------------------------------------------------
// Encoding

template <class T>
void pack_struct(packer& out, const T& value);

void pack_value(packer& out, const std::string& value) {
  out.pack_str(static_cast<std::uint32_t>(value.size()));
  out.pack_str_body(value.data(), static_cast<std::uint32_t>(value.size()));
}
void pack_value(packer& out, std::uint64_t value) { out.pack_uint64(value); }
void pack_value(packer& out, bool value) { value ? out.pack_true() : out.pack_false(); }
// msgpack-cxx 4.x packs a double with an integral value as an integer (2.0 becomes 2),
// which would turn a float field or setting into an int on the wire. The protocol keeps
// every float a float64, so its nine bytes (0xcb, then big-endian IEEE 754) are written
// here; pack_bin_body appends raw bytes without a header of its own.
void pack_value(packer& out, double value) {
  const auto bits = std::bit_cast<std::uint64_t>(value);
  char bytes[9];
  bytes[0] = static_cast<char>(0xcb);
  for (int index = 0; index < 8; ++index) {
    bytes[1 + index] = static_cast<char>((bits >> (56 - 8 * index)) & 0xff);
  }
  out.pack_bin_body(bytes, sizeof bytes);
}
void pack_value(packer& out, const byte_buffer& value) {
  out.pack_bin(static_cast<std::uint32_t>(value.size()));
  out.pack_bin_body(reinterpret_cast<const char*>(value.data()),
                    static_cast<std::uint32_t>(value.size()));
}
void pack_value(packer& out, const std::vector<std::string>& value) {
  out.pack_array(static_cast<std::uint32_t>(value.size()));
  for (const auto& item : value) pack_value(out, item);
}
void pack_value(packer& out, const settings& value) {
  out.pack_map(static_cast<std::uint32_t>(value.size()));
  for (const auto& [key, setting] : value) {
    pack_value(out, key);
    std::visit(
        [&out](const auto& item) {
          using item_type = std::decay_t<decltype(item)>;
          if constexpr (std::same_as<item_type, std::int64_t>) {
            out.pack_int64(item);
          } else {
            pack_value(out, item);
          }
        },
        setting);
  }
}
template <class T>
void pack_value(packer& out, const std::vector<T>& value) {
  out.pack_array(static_cast<std::uint32_t>(value.size()));
  for (const auto& item : value) pack_struct(out, item);
}

struct field_counter {
  std::uint32_t count = 0;
  template <class T>
  void operator()(std::string_view, const T&, field_rule = field_rule::plain) {
    ++count;
  }
};

struct field_packer {
  packer& out;
  template <class T>
  void operator()(std::string_view name, const T& value, field_rule = field_rule::plain) {
    out.pack_str(static_cast<std::uint32_t>(name.size()));
    out.pack_str_body(name.data(), static_cast<std::uint32_t>(name.size()));
    pack_value(out, value);
  }
};

template <class T>
void pack_struct(packer& out, const T& value) {
  field_counter counter;
  T::fields(value, counter);
  out.pack_map(counter.count);
  field_packer writer{out};
  T::fields(value, writer);
}

void pack_key(packer& out, std::string_view name) {
  out.pack_str(static_cast<std::uint32_t>(name.size()));
  out.pack_str_body(name.data(), static_cast<std::uint32_t>(name.size()));
}

byte_buffer to_bytes(const msgpack::sbuffer& buffer) {
  const auto* begin = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return byte_buffer(begin, begin + buffer.size());
}

// ---------------------------------------------------------------------------------------
// Decoding

error malformed(std::string detail) { return make_error(errc::malformed, std::move(detail)); }

template <class T>
status unpack_struct(const msgpack::object& source, T& target);

status unpack_value(const msgpack::object& source, std::string& target) {
  if (source.type != msgpack::type::STR) return malformed("expected a string");
  target.assign(source.via.str.ptr, source.via.str.size);
  return ok();
}
status unpack_value(const msgpack::object& source, std::uint64_t& target) {
  if (source.type != msgpack::type::POSITIVE_INTEGER) {
    return malformed("expected a non-negative integer");
  }
  target = source.via.u64;
  return ok();
}
status unpack_value(const msgpack::object& source, bool& target) {
  if (source.type != msgpack::type::BOOLEAN) return malformed("expected a boolean");
  target = source.via.boolean;
  return ok();
}
status unpack_value(const msgpack::object& source, double& target) {
  switch (source.type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: target = source.via.f64; return ok();
    case msgpack::type::POSITIVE_INTEGER: target = static_cast<double>(source.via.u64); return ok();
    case msgpack::type::NEGATIVE_INTEGER: target = static_cast<double>(source.via.i64); return ok();
    default: return malformed("expected a number");
  }
}
status unpack_value(const msgpack::object& source, byte_buffer& target) {
  if (source.type != msgpack::type::BIN) return malformed("expected bin bytes");
  const auto* begin = reinterpret_cast<const std::uint8_t*>(source.via.bin.ptr);
  target.assign(begin, begin + source.via.bin.size);
  return ok();
}
status unpack_value(const msgpack::object& source, std::vector<std::string>& target) {
  if (source.type != msgpack::type::ARRAY) return malformed("expected an array of strings");
  target.clear();
  target.reserve(source.via.array.size);
  for (const auto& item : std::span(source.via.array.ptr, source.via.array.size)) {
    if (auto result = unpack_value(item, target.emplace_back()); !result) return result;
  }
  return ok();
}
status unpack_value(const msgpack::object& source, settings& target) {
  if (source.type != msgpack::type::MAP) return malformed("expected a map of settings");
  target.clear();
  for (const auto& pair : std::span(source.via.map.ptr, source.via.map.size)) {
    std::string key;
    if (auto result = unpack_value(pair.key, key); !result) return result;
    const auto& value = pair.val;
    switch (value.type) {
      case msgpack::type::POSITIVE_INTEGER:
        if (value.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          return make_error(errc::too_large, "setting '" + key + "' is out of range");
        }
        target[key] = static_cast<std::int64_t>(value.via.u64);
        break;
      case msgpack::type::NEGATIVE_INTEGER: target[key] = value.via.i64; break;
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: target[key] = value.via.f64; break;
      case msgpack::type::BOOLEAN: target[key] = value.via.boolean; break;
      case msgpack::type::STR:
        target[key] = std::string(value.via.str.ptr, value.via.str.size);
        break;
      default: return malformed("setting '" + key + "' must be a number, boolean or string");
    }
  }
  return ok();
}
template <class T>
status unpack_value(const msgpack::object& source, std::vector<T>& target) {
  if (source.type != msgpack::type::ARRAY) return malformed("expected an array");
  target.clear();
  target.reserve(source.via.array.size);
  for (const auto& item : std::span(source.via.array.ptr, source.via.array.size)) {
    if (auto result = unpack_struct(item, target.emplace_back()); !result) return result;
  }
  return ok();
}

// Assigns the value of one wire key to the field of that name, if the struct has one.
struct field_unpacker {
  std::string_view key;
  const msgpack::object& value;
  std::optional<error> failure;
  template <class T>
  void operator()(std::string_view name, T& field, field_rule = field_rule::plain) {
    if (name != key || failure) return;
    if (auto result = unpack_value(value, field); !result) {
      failure = make_error(result.error().code,
                           "field '" + std::string(name) + "': " + result.error().detail);
    }
  }
};

template <class T>
status unpack_struct(const msgpack::object& source, T& target) {
  if (source.type != msgpack::type::MAP) return malformed("expected a map");
  for (const auto& pair : std::span(source.via.map.ptr, source.via.map.size)) {
    if (pair.key.type != msgpack::type::STR) return malformed("map key is not a string");
    field_unpacker unpacker{std::string_view(pair.key.via.str.ptr, pair.key.via.str.size),
                            pair.val, std::nullopt};
    T::fields(target, unpacker);
    if (unpacker.failure) return *unpacker.failure;
  }
  return ok();
}

// ---------------------------------------------------------------------------------------
// Validation: ids, text lengths and checkpoint sizes, after decoding.

template <class T>
status validate_struct(const T& value);

status check_string(std::string_view name, const std::string& value, field_rule rule) {
  switch (rule) {
    case field_rule::id:
      if (!is_valid_id(value)) {
        return make_error(errc::invalid_id, "field '" + std::string(name) +
                                                "' is not a valid id (1-128 of A-Za-z0-9._:@-)");
      }
      return ok();
    case field_rule::optional_id:
      if (!value.empty() && !is_valid_id(value)) {
        return make_error(errc::invalid_id, "field '" + std::string(name) + "' is not a valid id");
      }
      return ok();
    case field_rule::plain:
      if (value.size() > text_length_max) {
        return make_error(errc::too_large, "field '" + std::string(name) + "' is over " +
                                               std::to_string(text_length_max) + " bytes");
      }
      return ok();
  }
  return ok();
}

struct field_validator {
  std::optional<error> failure;

  void check(status result) {
    if (!result && !failure) failure = result.error();
  }
  void operator()(std::string_view name, const std::string& value, field_rule rule = field_rule::plain) {
    check(check_string(name, value, rule));
  }
  void operator()(std::string_view name, const std::vector<std::string>& value,
                  field_rule rule = field_rule::plain) {
    if (value.size() > list_length_max) {
      check(make_error(errc::too_large, "list '" + std::string(name) + "' is too long"));
    }
    for (const auto& item : value) check(check_string(name, item, rule));
  }
  void operator()(std::string_view name, const byte_buffer& value, field_rule = field_rule::plain) {
    if (value.size() > checkpoint_bytes_max) {
      check(make_error(errc::too_large, "field '" + std::string(name) + "' is over " +
                                            std::to_string(checkpoint_bytes_max) + " bytes"));
    }
  }
  void operator()(std::string_view name, const settings& value, field_rule = field_rule::plain) {
    if (value.size() > list_length_max) {
      check(make_error(errc::too_large, "map '" + std::string(name) + "' is too long"));
    }
    for (const auto& [key, setting] : value) {
      check(check_string(name, key, field_rule::id));
      if (const auto* text = std::get_if<std::string>(&setting)) {
        check(check_string(name, *text, field_rule::plain));
      }
    }
  }
  template <class T>
  void operator()(std::string_view name, const std::vector<T>& value, field_rule = field_rule::plain) {
    if (value.size() > list_length_max) {
      check(make_error(errc::too_large, "list '" + std::string(name) + "' is too long"));
    }
    for (const auto& item : value) check(validate_struct(item));
  }
  template <class T>
  void operator()(std::string_view, const T&, field_rule = field_rule::plain) {}
};

template <class T>
status validate_struct(const T& value) {
  field_validator validator;
  T::fields(value, validator);
  if (validator.failure) return *validator.failure;
  return ok();
}

// Builds the alternative of `Variant` whose kind_name is `name`; false when none is.
template <class Variant, std::size_t... index>
bool emplace_kind(Variant& target, std::string_view name, std::index_sequence<index...>) {
  return ((std::variant_alternative_t<index, Variant>::kind_name == name
               ? (target.template emplace<index>(), true)
               : false) ||
          ...);
}

// The envelope keys, read in one pass over the top-level map.
struct envelope_fields {
  const msgpack::object* version = nullptr;
  const msgpack::object* kind = nullptr;
  const msgpack::object* data = nullptr;
};

constexpr unsigned nesting_depth_max = 6;

std::uint64_t& version_of(event& message) { return message.header.version; }
std::uint64_t& version_of(command& message) { return message.version; }

template <class Message, class Body, class ReadHeader>
expected<Message> decode_message(const void* data, std::size_t size, ReadHeader read_header) {
  if (size > message_bytes_max) {
    return make_error(errc::too_large, "message of " + std::to_string(size) + " bytes is over " +
                                           std::to_string(message_bytes_max));
  }
  msgpack::object_handle handle;
  try {
    std::size_t offset = 0;
    const msgpack::unpack_limit limits(list_length_max, list_length_max, message_bytes_max,
                                       message_bytes_max, 0, nesting_depth_max);
    handle = msgpack::unpack(static_cast<const char*>(data), size, offset, nullptr, nullptr,
                             limits);
    if (offset != size) return malformed("trailing bytes after the message");
  } catch (const std::exception& failure) {
    return malformed(std::string("not valid msgpack: ") + failure.what());
  }
  const msgpack::object& root = handle.get();
  if (root.type != msgpack::type::MAP) return malformed("message is not a map");

  Message message;
  envelope_fields envelope;
  for (const auto& pair : std::span(root.via.map.ptr, root.via.map.size)) {
    if (pair.key.type != msgpack::type::STR) return malformed("map key is not a string");
    const std::string_view key(pair.key.via.str.ptr, pair.key.via.str.size);
    if (key == "v") {
      envelope.version = &pair.val;
    } else if (key == "kind") {
      envelope.kind = &pair.val;
    } else if (key == "data") {
      envelope.data = &pair.val;
    } else if (auto result = read_header(message, key, pair.val); !result) {
      return result.error();
    }
  }
  if (envelope.version == nullptr) return malformed("missing 'v'");
  std::uint64_t version = 0;
  if (auto result = unpack_value(*envelope.version, version); !result) return result.error();
  if (version != protocol_version) {
    return make_error(errc::unsupported_version,
                      "protocol version " + std::to_string(version) + " (this build speaks " +
                          std::to_string(protocol_version) + ")");
  }
  version_of(message) = version;
  if (envelope.kind == nullptr) return malformed("missing 'kind'");
  std::string kind;
  if (auto result = unpack_value(*envelope.kind, kind); !result) return result.error();
  Body& body = message.body;
  if (!emplace_kind(body, kind, std::make_index_sequence<std::variant_size_v<Body>>{})) {
    return make_error(errc::unknown_kind, "unknown kind '" + kind.substr(0, id_length_max) + "'");
  }
  if (envelope.data != nullptr) {
    auto result = std::visit([&](auto& alternative) { return unpack_struct(*envelope.data, alternative); },
                             body);
    if (!result) return result.error();
  }
  auto valid = std::visit([](const auto& alternative) { return validate_struct(alternative); }, body);
  if (!valid) return valid.error();
  return message;
}

template <class T>
status read_key(T& target, std::string_view key, const msgpack::object& value) {
  if (auto result = unpack_value(value, target); !result) {
    return make_error(result.error().code,
                      "field '" + std::string(key) + "': " + result.error().detail);
  }
  return ok();
}

status check_envelope_ids(const std::string& node, const std::string& episode) {
  if (auto result = check_string("node", node, field_rule::id); !result) return result;
  return check_string("episode", episode, field_rule::optional_id);
}

}  // namespace

byte_buffer encode(const event& message) {
  msgpack::sbuffer buffer;
  packer out(buffer);
  out.pack_map(8);
  pack_key(out, "v");
  out.pack_uint64(message.header.version);
  pack_key(out, "kind");
  pack_value(out, std::string(kind_name(message.body)));
  pack_key(out, "node");
  pack_value(out, message.header.node);
  pack_key(out, "incarnation");
  out.pack_uint64(message.header.incarnation);
  pack_key(out, "seq");
  out.pack_uint64(message.header.seq);
  pack_key(out, "ts_ms");
  out.pack_uint64(message.header.ts_ms);
  pack_key(out, "episode");
  pack_value(out, message.header.episode);
  pack_key(out, "data");
  std::visit([&out](const auto& body) { pack_struct(out, body); }, message.body);
  return to_bytes(buffer);
}

byte_buffer encode(const command& message) {
  msgpack::sbuffer buffer;
  packer out(buffer);
  out.pack_map(7);
  pack_key(out, "v");
  out.pack_uint64(message.version);
  pack_key(out, "kind");
  pack_value(out, std::string(kind_name(message.body)));
  pack_key(out, "id");
  out.pack_uint64(message.id);
  pack_key(out, "node");
  pack_value(out, message.node);
  pack_key(out, "ts_ms");
  out.pack_uint64(message.ts_ms);
  pack_key(out, "episode");
  pack_value(out, message.episode);
  pack_key(out, "data");
  std::visit([&out](const auto& body) { pack_struct(out, body); }, message.body);
  return to_bytes(buffer);
}

expected<event> decode_event(const void* data, std::size_t size) {
  auto decoded = decode_message<event, event_body>(
      data, size, [](event& message, std::string_view key, const msgpack::object& value) -> status {
        auto& header = message.header;
        if (key == "node") return read_key(header.node, key, value);
        if (key == "incarnation") return read_key(header.incarnation, key, value);
        if (key == "seq") return read_key(header.seq, key, value);
        if (key == "ts_ms") return read_key(header.ts_ms, key, value);
        if (key == "episode") return read_key(header.episode, key, value);
        return ok();  // unknown envelope keys are ignored
      });
  if (!decoded) return decoded;
  if (auto ids = check_envelope_ids(decoded->header.node, decoded->header.episode); !ids) {
    return ids.error();
  }
  return decoded;
}

expected<command> decode_command(const void* data, std::size_t size) {
  auto decoded = decode_message<command, command_body>(
      data, size, [](command& message, std::string_view key, const msgpack::object& value) -> status {
        if (key == "id") return read_key(message.id, key, value);
        if (key == "node") return read_key(message.node, key, value);
        if (key == "ts_ms") return read_key(message.ts_ms, key, value);
        if (key == "episode") return read_key(message.episode, key, value);
        return ok();
      });
  if (!decoded) return decoded;
  if (auto ids = check_envelope_ids(decoded->node, decoded->episode); !ids) return ids.error();
  return decoded;
}

status validate(const event& message) {
  if (auto ids = check_envelope_ids(message.header.node, message.header.episode); !ids) return ids;
  return std::visit([](const auto& body) { return validate_struct(body); }, message.body);
}

status validate(const command& message) {
  if (auto ids = check_envelope_ids(message.node, message.episode); !ids) return ids;
  return std::visit([](const auto& body) { return validate_struct(body); }, message.body);
}

std::string event_topic(const event& message) {
  const auto kind = kind_name(message.body);
  std::string_view subject = subject_agent(message.body);
  if (subject.empty()) {
    subject = (kind.rfind("episode.", 0) == 0 && !message.header.episode.empty())
                  ? std::string_view(message.header.episode)
                  : std::string_view(message.header.node);
  }
  std::string topic;
  topic.reserve(kind.size() + 1 + subject.size());
  topic.append(kind).append(" ").append(subject);
  return topic;
}

std::string command_topic(std::string_view kind, std::string_view node) {
  std::string topic;
  topic.reserve(command_topic_prefix.size() + kind.size() + 1 + node.size());
  topic.append(command_topic_prefix).append(kind).append(" ").append(node);
  return topic;
}

}  // namespace rrh
