// The JSON writer feeds taps, control answers and the golden twins: it must escape every
// string, mark bin values and keep floats distinguishable from integers.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "msgpack_tree.hpp"
#include "rrh/json.hpp"

namespace {

using rrh::test::tree;
using rrh::test::tree_list;
using rrh::test::tree_map;

std::string json_of(const tree& value) {
  const auto bytes = rrh::test::pack(value);
  const auto json = rrh::msgpack_to_json(bytes.data(), bytes.size());
  REQUIRE(json);
  return *json;
}

std::string escaped(std::string_view text) {
  std::string out;
  rrh::append_json_string(out, text);
  return out;
}

}  // namespace

TEST_CASE("JSON strings are escaped", "[schemas]") {
  CHECK(escaped("plain") == "\"plain\"");
  CHECK(escaped("say \"hi\"") == "\"say \\\"hi\\\"\"");
  CHECK(escaped("C:\\path") == "\"C:\\\\path\"");
  CHECK(escaped("a\nb\rc\td") == "\"a\\nb\\rc\\td\"");
  CHECK(escaped(std::string("\x01\x1f", 2)) == "\"\\u0001\\u001f\"");
  CHECK(escaped(std::string("nul\0end", 7)) == "\"nul\\u0000end\"");
  // UTF-8 passes through untouched: JSON text is UTF-8.
  CHECK(escaped("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
  CHECK(json_of(tree(tree_map{{"k\"ey", tree("v\n")}})) == "{\"k\\\"ey\":\"v\\n\"}");
}

TEST_CASE("base64 follows RFC 4648 with padding", "[schemas]") {
  const auto encode = [](std::string_view text) {
    return rrh::base64_encode(text.data(), text.size());
  };
  CHECK(encode("").empty());
  CHECK(encode("f") == "Zg==");
  CHECK(encode("fo") == "Zm8=");
  CHECK(encode("foo") == "Zm9v");
  CHECK(encode("foob") == "Zm9vYg==");
  CHECK(encode("fooba") == "Zm9vYmE=");
  CHECK(encode("foobar") == "Zm9vYmFy");
  const unsigned char high[] = {0xfb, 0xff, 0xbf};
  CHECK(rrh::base64_encode(high, sizeof high) == "+/+/");
}

TEST_CASE("bin values become {\"$bin\": base64}", "[schemas]") {
  CHECK(json_of(tree(rrh::byte_buffer{0x00, 0xff, 0x10})) == "{\"$bin\":\"AP8Q\"}");
  CHECK(json_of(tree(rrh::byte_buffer{})) == "{\"$bin\":\"\"}");
  // A string is never mistaken for bin.
  CHECK(json_of(tree("AP8Q")) == "\"AP8Q\"");
}

TEST_CASE("floats always carry a decimal point or an exponent", "[schemas]") {
  CHECK(json_of(tree(2.0)) == "2.0");
  CHECK(json_of(tree(-3.0)) == "-3.0");
  CHECK(json_of(tree(0.0)) == "0.0");
  CHECK(json_of(tree(8.25)) == "8.25");
  CHECK(json_of(tree(0.1)) == "0.1");
  CHECK(json_of(tree(1e300)) == "1e+300");
  // JSON has no NaN or infinity.
  CHECK(json_of(tree(std::numeric_limits<double>::quiet_NaN())) == "null");
  CHECK(json_of(tree(std::numeric_limits<double>::infinity())) == "null");
  // Integers stay integers.
  CHECK(json_of(tree(2)) == "2");
  CHECK(json_of(tree(-7)) == "-7");
  CHECK(json_of(tree(std::numeric_limits<std::uint64_t>::max())) == "18446744073709551615");
  CHECK(json_of(tree(std::numeric_limits<std::int64_t>::min())) == "-9223372036854775808");
}

TEST_CASE("maps keep their key order and other values map one to one", "[schemas]") {
  CHECK(
      json_of(tree(tree_map{{"z", tree(1)}, {"a", tree(true)}, {"m", tree(rrh::test::nil_t{})}})) ==
      "{\"z\":1,\"a\":true,\"m\":null}");
  CHECK(json_of(tree(tree_list{tree(false), tree(tree_list{}), tree(tree_map{})})) ==
        "[false,[],{}]");
  // A non-string key (legal msgpack, never used by rrh) is rendered as its JSON text.
  const rrh::byte_buffer int_key{0x81, 0x07, 0xc3};
  const auto json = rrh::msgpack_to_json(int_key.data(), int_key.size());
  REQUIRE(json);
  CHECK(*json == "{\"7\":true}");
}

TEST_CASE("msgpack_to_json rejects what is not exactly one msgpack value", "[schemas]") {
  const rrh::byte_buffer two_values{0x01, 0x02};
  CHECK(rrh::msgpack_to_json(two_values.data(), two_values.size()).error().code ==
        rrh::errc::malformed);
  const rrh::byte_buffer truncated{0x92, 0x01};
  CHECK(rrh::msgpack_to_json(truncated.data(), truncated.size()).error().code ==
        rrh::errc::malformed);
  CHECK_FALSE(rrh::msgpack_to_json(nullptr, 0));
  const rrh::byte_buffer reserved{0xc1};
  CHECK_FALSE(rrh::msgpack_to_json(reserved.data(), reserved.size()));
}
