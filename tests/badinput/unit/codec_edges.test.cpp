// Codec cases that tests/unit/schemas/codec.test.cpp leaves out: length headers that
// promise more than the message holds, map-sized claims, keys of other types, extreme
// but legal integers, duplicate keys and the absurd values an attacker would try.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include "msgpack_tree.hpp"
#include "rrh/codec.hpp"
#include "rrh/json.hpp"
#include "rrh/protocol.hpp"

namespace {

using rrh::errc;
using rrh::test::golden_vector;
using rrh::test::tree;
using rrh::test::tree_list;
using rrh::test::tree_map;

using rrh::test::golden_tree;
using rrh::test::decode_command;
using rrh::test::decode_event;
using rrh::test::error_of;

errc event_error(const rrh::byte_buffer& bytes) {
  return error_of(rrh::decode_event(bytes.data(), bytes.size()));
}

}  // namespace

TEST_CASE("length headers that promise more than the message holds are malformed",
          "[badinput][schemas]") {
  // Each claims up to 4 GiB and carries a few bytes: the decoder must not trust the claim.
  const std::vector<rrh::byte_buffer> claims = {
      {0xdf, 0xff, 0xff, 0xff, 0xff},                    // map 32
      {0xde, 0xff, 0xff},                                // map 16
      {0x81, 0xa1, 'v', 0xdb, 0xff, 0xff, 0xff, 0xff},  // str 32 value
      {0x81, 0xa1, 'v', 0xc6, 0xff, 0xff, 0xff, 0xff},  // bin 32 value
      {0x81, 0xdb, 0x00, 0x10, 0x00, 0x00, 'v'},        // str 32 key of 1 MiB
      {0x81, 0xa1, 'v', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},  // ext 32
  };
  for (const auto& bytes : claims) {
    CAPTURE(bytes);
    CHECK(event_error(bytes) == errc::malformed);
    CHECK(error_of(rrh::decode_command(bytes.data(), bytes.size())) == errc::malformed);
    CHECK_FALSE(rrh::msgpack_to_json(bytes.data(), bytes.size()));
  }
}

TEST_CASE("map keys of any type but str are malformed", "[badinput][schemas]") {
  const auto valid = golden_vector("event", "heartbeat");
  for (const rrh::byte_buffer& key : {rrh::byte_buffer{0xc4, 0x01, 'v'},    // bin "v"
                                      rrh::byte_buffer{0xc0},               // nil
                                      rrh::byte_buffer{0xc3},               // true
                                      rrh::byte_buffer{0x91, 0xa1, 'v'}}) {  // ["v"]
    CAPTURE(key);
    // One more entry in the top-level map (fixmap 8 -> 9): the bad key with value 1.
    auto bytes = valid;
    REQUIRE(bytes[0] == 0x88);
    bytes[0] = 0x89;
    bytes.insert(bytes.end(), key.begin(), key.end());
    bytes.push_back(0x01);
    CHECK(event_error(bytes) == errc::malformed);
  }
}

TEST_CASE("the version and kind fields reject every other type", "[badinput][schemas]") {
  auto message = golden_tree("event", "heartbeat");
  SECTION("v as nil, bool, float, bin") {
    for (const tree& value : {tree(rrh::test::nil_t{}), tree(true), tree(1.0),
                              tree(rrh::byte_buffer{1})}) {
      message["v"] = value;
      CHECK(error_of(decode_event(message)) == errc::malformed);
    }
  }
  SECTION("v as the largest uint64 is an unsupported version") {
    message["v"] = tree(std::numeric_limits<std::uint64_t>::max());
    CHECK(error_of(decode_event(message)) == errc::unsupported_version);
  }
  SECTION("kind as bin, list or map") {
    for (const tree& value : {tree(rrh::byte_buffer{'h'}), tree(tree_list{tree("heartbeat")}),
                              tree(tree_map{{"heartbeat", tree(1)}})}) {
      message["kind"] = value;
      CHECK(error_of(decode_event(message)) == errc::malformed);
    }
  }
  SECTION("a kind of a megabyte is unknown, and the error detail stays short") {
    message["kind"] = tree(std::string(1'000'000, 'k'));
    const auto decoded = decode_event(message);
    CHECK(error_of(decoded) == errc::unknown_kind);
    CHECK(decoded.error().detail.size() < 1024);
  }
}

TEST_CASE("duplicate keys: the last occurrence wins, as PROTOCOL.md says", "[badinput][schemas]") {
  auto message = golden_tree("event", "task.started");
  auto& entries = std::get<tree_map>(message.value);
  entries.emplace_back("node", tree("second-node"));
  const auto decoded = decode_event(message);
  REQUIRE(decoded);
  CHECK(decoded->header.node == "second-node");
  // A later invalid duplicate makes the message invalid, whatever came first.
  entries.emplace_back("node", tree("bad node"));
  CHECK(error_of(decode_event(message)) == errc::invalid_id);
}

TEST_CASE("absurd but well-typed values", "[badinput][schemas]") {
  SECTION("the largest uint64 in every counter decodes and re-encodes unchanged") {
    auto message = golden_tree("event", "task.failed");
    const auto huge = std::numeric_limits<std::uint64_t>::max();
    message["incarnation"] = tree(huge);
    message["seq"] = tree(huge);
    message["ts_ms"] = tree(huge);
    message["data"]["attempt"] = tree(huge);
    const auto decoded = decode_event(message);
    REQUIRE(decoded);
    CHECK(decoded->header.seq == huge);
    const auto encoded = rrh::encode(*decoded);
    const auto again = rrh::decode_event(encoded.data(), encoded.size());
    REQUIRE(again);
    CHECK(rrh::encode(*again) == encoded);
  }
  SECTION("a negative attempt as int 64") {
    auto message = golden_tree("command", "agent.recover");
    message["data"]["attempt"] = tree(std::numeric_limits<std::int64_t>::min());
    CHECK(error_of(decode_command(message)) == errc::malformed);
  }
  SECTION("an id of a megabyte") {
    auto message = golden_tree("event", "task.failed");
    message["data"]["agent"] = tree(std::string(1'000'000, 'a'));
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
    auto command = golden_tree("command", "task.retry");
    command["node"] = tree(std::string(1'000'000, 'n'));
    CHECK(error_of(decode_command(command)) == errc::invalid_id);
  }
  SECTION("an id with a NUL byte inside") {
    auto message = golden_tree("event", "task.started");
    message["data"]["task"] = tree(std::string("task\0one", 8));
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
  }
  SECTION("a heartbeat naming 10,000 agents") {
    auto message = golden_tree("event", "heartbeat");
    tree_list agents;
    for (int index = 0; index < 10'000; ++index) {
      agents.push_back(tree(tree_map{{"agent", tree("a" + std::to_string(index))}}));
    }
    message["data"]["agents"] = tree(agents);
    CHECK_FALSE(decode_event(message));
    agents.resize(rrh::list_length_max);
    message["data"]["agents"] = tree(agents);
    CHECK(decode_event(message));
  }
  SECTION("a checkpoint of a megabyte in a retry command") {
    auto command = golden_tree("command", "task.retry");
    command["data"]["checkpoint"] = tree(rrh::byte_buffer(1'000'000, 0x5a));
    CHECK(error_of(decode_command(command)) == errc::too_large);
  }
  SECTION("a body of exactly 1 MiB is read; one byte more is too large") {
    auto message = golden_tree("event", "heartbeat");
    message["padding"] = tree(rrh::byte_buffer{});
    const auto base_size = rrh::test::pack(message).size();
    // bin 32 header: 5 bytes, replacing the empty bin 8's 2.
    message["padding"] = tree(rrh::byte_buffer(rrh::message_bytes_max - base_size - 3, 0));
    const auto exact = rrh::test::pack(message);
    REQUIRE(exact.size() == rrh::message_bytes_max);
    CHECK(rrh::decode_event(exact.data(), exact.size()));
    auto over = exact;
    over.push_back(0);
    CHECK(error_of(rrh::decode_event(over.data(), over.size())) == errc::too_large);
  }
  SECTION("text that is not UTF-8 is carried, as the C++ codec does not check it") {
    auto message = golden_tree("event", "task.failed");
    message["data"]["message"] = tree(std::string("\xff\xfe\xc3", 3));
    const auto decoded = decode_event(message);
    REQUIRE(decoded);
    CHECK(std::get<rrh::events::task_failed>(decoded->body).message == "\xff\xfe\xc3");
  }
}

TEST_CASE("msgpack_to_json: depth and non-string keys", "[badinput][schemas]") {
  SECTION("nesting past its 16 levels is refused, not a deep recursion") {
    rrh::byte_buffer deep(100'000, 0x91);  // 100,000 nested one-element arrays
    deep.push_back(0x01);
    CHECK_FALSE(rrh::msgpack_to_json(deep.data(), deep.size()));
  }
  SECTION("a map key that is itself a map is written as a JSON string") {
    const rrh::byte_buffer bytes{0x81, 0x81, 0xa1, 'k', 0x01, 0x02};  // {{"k": 1}: 2}
    const auto json = rrh::msgpack_to_json(bytes.data(), bytes.size());
    REQUIRE(json);
    CHECK(*json == "{\"{\\\"k\\\":1}\":2}");
  }
}
