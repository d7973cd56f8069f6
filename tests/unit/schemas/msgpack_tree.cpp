#include "msgpack_tree.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <bit>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>

namespace rrh::test {
namespace {

using packer = msgpack::packer<msgpack::sbuffer>;

tree from_object(const msgpack::object& source) {
  switch (source.type) {
    case msgpack::type::NIL: return tree(nil_t{});
    case msgpack::type::BOOLEAN: return tree(source.via.boolean);
    case msgpack::type::POSITIVE_INTEGER: return tree(source.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return tree(source.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return tree(source.via.f64);
    case msgpack::type::STR: return tree(std::string(source.via.str.ptr, source.via.str.size));
    case msgpack::type::BIN: {
      const auto* begin = reinterpret_cast<const std::uint8_t*>(source.via.bin.ptr);
      return tree(byte_buffer(begin, begin + source.via.bin.size));
    }
    case msgpack::type::ARRAY: {
      tree_list items;
      for (const auto& item : std::span(source.via.array.ptr, source.via.array.size)) {
        items.push_back(from_object(item));
      }
      return tree(std::move(items));
    }
    case msgpack::type::MAP: {
      tree_map entries;
      for (const auto& pair : std::span(source.via.map.ptr, source.via.map.size)) {
        if (pair.key.type != msgpack::type::STR) throw std::runtime_error("non-string map key");
        entries.emplace_back(std::string(pair.key.via.str.ptr, pair.key.via.str.size),
                             from_object(pair.val));
      }
      return tree(std::move(entries));
    }
    default: throw std::runtime_error("unsupported msgpack type");
  }
}

void pack_to(packer& out, const tree& source) {
  std::visit(
      [&out](const auto& item) {
        using item_type = std::decay_t<decltype(item)>;
        if constexpr (std::is_same_v<item_type, nil_t>) {
          out.pack_nil();
        } else if constexpr (std::is_same_v<item_type, bool>) {
          item ? out.pack_true() : out.pack_false();
        } else if constexpr (std::is_same_v<item_type, std::uint64_t>) {
          out.pack_uint64(item);
        } else if constexpr (std::is_same_v<item_type, std::int64_t>) {
          out.pack_int64(item);
        } else if constexpr (std::is_same_v<item_type, double>) {
          // msgpack-cxx would pack 2.0 as the integer 2; the protocol keeps floats float64.
          const auto bits = std::bit_cast<std::uint64_t>(item);
          char bytes[9];
          bytes[0] = static_cast<char>(0xcb);
          for (int index = 0; index < 8; ++index) {
            bytes[1 + index] = static_cast<char>((bits >> (56 - 8 * index)) & 0xff);
          }
          out.pack_bin_body(bytes, sizeof bytes);
        } else if constexpr (std::is_same_v<item_type, std::string>) {
          out.pack_str(static_cast<std::uint32_t>(item.size()));
          out.pack_str_body(item.data(), static_cast<std::uint32_t>(item.size()));
        } else if constexpr (std::is_same_v<item_type, byte_buffer>) {
          out.pack_bin(static_cast<std::uint32_t>(item.size()));
          out.pack_bin_body(reinterpret_cast<const char*>(item.data()),
                            static_cast<std::uint32_t>(item.size()));
        } else if constexpr (std::is_same_v<item_type, tree_list>) {
          out.pack_array(static_cast<std::uint32_t>(item.size()));
          for (const auto& element : item) pack_to(out, element);
        } else {
          out.pack_map(static_cast<std::uint32_t>(item.size()));
          for (const auto& [key, element] : item) {
            out.pack_str(static_cast<std::uint32_t>(key.size()));
            out.pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
            pack_to(out, element);
          }
        }
      },
      source.value);
}

}  // namespace

tree& tree::operator[](std::string_view key) {
  auto& entries = std::get<tree_map>(value);
  const auto found = std::find_if(entries.begin(), entries.end(),
                                  [key](const auto& entry) { return entry.first == key; });
  if (found != entries.end()) return found->second;
  entries.emplace_back(std::string(key), tree(nil_t{}));
  return entries.back().second;
}

bool tree::erase(std::string_view key) {
  auto& entries = std::get<tree_map>(value);
  const auto before = entries.size();
  std::erase_if(entries, [key](const auto& entry) { return entry.first == key; });
  return entries.size() != before;
}

tree parse(const byte_buffer& bytes) {
  const auto handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return from_object(handle.get());
}

byte_buffer pack(const tree& value) {
  msgpack::sbuffer buffer;
  packer out(buffer);
  pack_to(out, value);
  const auto* begin = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return byte_buffer(begin, begin + buffer.size());
}

byte_buffer read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open " + path);
  return byte_buffer(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

byte_buffer golden_vector(std::string_view prefix, std::string_view kind) {
  return read_file(std::string(RRH_GOLDEN_DIR) + "/" + std::string(prefix) + "." +
                   std::string(kind) + ".msgpack");
}

tree golden_tree(std::string_view prefix, std::string_view kind) {
  return parse(golden_vector(prefix, kind));
}

expected<event> decode_event(const tree& message) {
  const auto bytes = pack(message);
  return rrh::decode_event(bytes.data(), bytes.size());
}

expected<command> decode_command(const tree& message) {
  const auto bytes = pack(message);
  return rrh::decode_command(bytes.data(), bytes.size());
}

}  // namespace rrh::test
