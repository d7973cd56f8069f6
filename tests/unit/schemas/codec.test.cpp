// The codec's contract with hostile input: every malformed message is rejected with the
// documented error code, nothing crashes, and what is merely unfamiliar (an unknown field,
// a missing one) is tolerated.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>

#include "msgpack_tree.hpp"
#include "rrh/codec.hpp"
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

rrh::event sample_event(rrh::event_body body, std::string episode = "ep-1") {
  rrh::event message;
  message.header.node = "node-1";
  message.header.incarnation = 7;
  message.header.seq = 3;
  message.header.ts_ms = 1'700'000'000'000;
  message.header.episode = std::move(episode);
  message.body = std::move(body);
  return message;
}

// A body of type T whose `agent` is `agent`, every other field default.
template <class T>
T with_agent(std::string agent) {
  T body;
  body.agent = std::move(agent);
  return body;
}

}  // namespace

TEST_CASE("garbage bytes are rejected as malformed", "[schemas]") {
  SECTION("empty input") {
    CHECK(error_of(rrh::decode_event(nullptr, 0)) == errc::malformed);
    CHECK(error_of(rrh::decode_command(nullptr, 0)) == errc::malformed);
  }
  SECTION("valid msgpack that is not a map") {
    for (const tree& value : {tree(1), tree("heartbeat"), tree(tree_list{tree(1)}), tree(true)}) {
      CHECK(error_of(decode_event(value)) == errc::malformed);
      CHECK(error_of(decode_command(value)) == errc::malformed);
    }
  }
  SECTION("bytes that are not msgpack at all") {
    const rrh::byte_buffer reserved{0xc1};  // the one byte msgpack never uses
    CHECK(error_of(rrh::decode_event(reserved.data(), reserved.size())) == errc::malformed);
    const rrh::byte_buffer ext{0xd4, 0x01, 0x00};  // fixext 1: no ext type is allowed
    CHECK(error_of(rrh::decode_event(ext.data(), ext.size())) == errc::malformed);
    const rrh::byte_buffer huge_array{0xdd, 0xff, 0xff, 0xff, 0xff};  // claims 4 G elements
    CHECK(error_of(rrh::decode_event(huge_array.data(), huge_array.size())) == errc::malformed);
  }
  SECTION("a map key that is not a string") {
    const rrh::byte_buffer int_key{0x81, 0x01, 0x01};
    CHECK(error_of(rrh::decode_event(int_key.data(), int_key.size())) == errc::malformed);
  }
  SECTION("random bytes from a fixed seed") {
    std::mt19937 random(20241130);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<std::size_t> length(1, 64);
    for (int round = 0; round < 2000; ++round) {
      rrh::byte_buffer bytes(length(random));
      for (auto& item : bytes) item = static_cast<std::uint8_t>(byte(random));
      CAPTURE(round);
      CHECK_FALSE(rrh::decode_event(bytes.data(), bytes.size()));
      CHECK_FALSE(rrh::decode_command(bytes.data(), bytes.size()));
    }
  }
}

TEST_CASE("every truncation of every golden vector is rejected as malformed", "[schemas]") {
  for (const auto kind : rrh::event_kind_names()) {
    const auto bytes = golden_vector("event", kind);
    for (std::size_t size = 0; size < bytes.size(); ++size) {
      CAPTURE(kind, size);
      CHECK(error_of(rrh::decode_event(bytes.data(), size)) == errc::malformed);
    }
  }
  for (const auto kind : rrh::command_kind_names()) {
    const auto bytes = golden_vector("command", kind);
    for (std::size_t size = 0; size < bytes.size(); ++size) {
      CAPTURE(kind, size);
      CHECK(error_of(rrh::decode_command(bytes.data(), size)) == errc::malformed);
    }
  }
}

TEST_CASE("corrupted golden vectors never crash, and what decodes re-encodes stably", "[schemas]") {
  std::mt19937 random(7701);
  for (const auto kind : rrh::event_kind_names()) {
    const auto original = golden_vector("event", kind);
    std::uniform_int_distribution<std::size_t> position(0, original.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int round = 0; round < 200; ++round) {
      auto bytes = original;
      bytes[position(random)] = static_cast<std::uint8_t>(byte(random));
      const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
      if (!decoded) continue;
      // Accepted input must be a message the codec can write and read back unchanged.
      const auto encoded = rrh::encode(*decoded);
      const auto again = rrh::decode_event(encoded.data(), encoded.size());
      CAPTURE(kind, round);
      REQUIRE(again);
      CHECK(rrh::encode(*again) == encoded);
    }
  }
}

TEST_CASE("trailing bytes after a message are rejected", "[schemas]") {
  auto bytes = golden_vector("event", "task.failed");
  bytes.push_back(0xc0);
  CHECK(error_of(rrh::decode_event(bytes.data(), bytes.size())) == errc::malformed);
  auto twice = golden_vector("command", "ack");
  const auto copy = twice;
  twice.insert(twice.end(), copy.begin(), copy.end());
  CHECK(error_of(rrh::decode_command(twice.data(), twice.size())) == errc::malformed);
}

TEST_CASE("the version field is required and must be 1", "[schemas]") {
  auto message = golden_tree("event", "task.started");
  SECTION("missing v") {
    REQUIRE(message.erase("v"));
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  SECTION("v = 2 is an unsupported version") {
    message["v"] = tree(2);
    CHECK(error_of(decode_event(message)) == errc::unsupported_version);
    auto command = golden_tree("command", "ack");
    command["v"] = tree(2);
    CHECK(error_of(decode_command(command)) == errc::unsupported_version);
  }
  SECTION("v = 0 is an unsupported version") {
    message["v"] = tree(0);
    CHECK(error_of(decode_event(message)) == errc::unsupported_version);
  }
  SECTION("an unknown version wins over an unknown kind") {
    message["v"] = tree(2);
    message["kind"] = tree("task.teleported");
    CHECK(error_of(decode_event(message)) == errc::unsupported_version);
  }
  SECTION("v of the wrong type") {
    message["v"] = tree("1");
    CHECK(error_of(decode_event(message)) == errc::malformed);
    message["v"] = tree(-1);
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
}

TEST_CASE("the kind must be present and known", "[schemas]") {
  auto message = golden_tree("event", "task.started");
  SECTION("missing kind") {
    REQUIRE(message.erase("kind"));
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  SECTION("unknown kind") {
    message["kind"] = tree("task.teleported");
    CHECK(error_of(decode_event(message)) == errc::unknown_kind);
  }
  SECTION("kind of the wrong type") {
    message["kind"] = tree(3);
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  SECTION("an event kind is not a command kind, and the other way round") {
    auto command = golden_tree("command", "task.retry");
    command["kind"] = tree("task.failed");
    CHECK(error_of(decode_command(command)) == errc::unknown_kind);
    message["kind"] = tree("task.retry");
    CHECK(error_of(decode_event(message)) == errc::unknown_kind);
  }
}

TEST_CASE("fields of the wrong type are rejected as malformed", "[schemas]") {
  SECTION("envelope fields") {
    auto message = golden_tree("event", "task.failed");
    SECTION("seq as a string") { message["seq"] = tree("3"); }
    SECTION("node as an integer") { message["node"] = tree(12); }
    SECTION("episode as nil") { message["episode"] = tree(rrh::test::nil_t{}); }
    SECTION("ts_ms as a float") { message["ts_ms"] = tree(1.5e12); }
    SECTION("data as an array") { message["data"] = tree(tree_list{tree(1)}); }
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  SECTION("body fields") {
    auto message = golden_tree("event", "task.failed");
    auto& data = message["data"];
    SECTION("checkpoint as a string") { data["checkpoint"] = tree("state"); }
    SECTION("retryable as an integer") { data["retryable"] = tree(1); }
    SECTION("message as bin") { data["message"] = tree(rrh::byte_buffer{'h', 'i'}); }
    SECTION("negative attempt") { data["attempt"] = tree(-1); }
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  SECTION("nested fields") {
    auto message = golden_tree("event", "heartbeat");
    auto& data = message["data"];
    SECTION("an agent entry that is not a map") { data["agents"] = tree(tree_list{tree("a1")}); }
    SECTION("stale as a string") {
      data["agents"] = tree(tree_list{tree(tree_map{{"agent", "a1"}, {"stale", "yes"}})});
    }
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  SECTION("lists and settings") {
    auto message = golden_tree("event", "episode.started");
    auto& data = message["data"];
    SECTION("agents holding an integer") { data["agents"] = tree(tree_list{tree("a1"), tree(2)}); }
    SECTION("a setting that is nil") {
      data["resilience"] = tree(tree_map{{"error_threshold", tree(rrh::test::nil_t{})}});
    }
    SECTION("a setting that is a list") {
      data["resilience"] = tree(tree_map{{"error_threshold", tree(tree_list{tree(5)})}});
    }
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  SECTION("command fields") {
    auto message = golden_tree("command", "ack");
    SECTION("id as a string") { message["id"] = tree("504"); }
    SECTION("negative seq") { message["data"]["seq"] = tree(-9); }
    CHECK(error_of(decode_command(message)) == errc::malformed);
  }
}

TEST_CASE("a negative attempt is rejected in every message that has one", "[schemas]") {
  for (const auto kind :
       {"task.started", "task.failed", "task.succeeded", "task.retry_scheduled"}) {
    CAPTURE(kind);
    auto message = golden_tree("event", kind);
    message["data"]["attempt"] = tree(-1);
    CHECK(error_of(decode_event(message)) == errc::malformed);
  }
  for (const auto kind : {"task.retry", "agent.recover"}) {
    CAPTURE(kind);
    auto message = golden_tree("command", kind);
    message["data"]["attempt"] = tree(-1);
    CHECK(error_of(decode_command(message)) == errc::malformed);
  }
}

TEST_CASE("ids must be 1 to 128 bytes of [A-Za-z0-9._:@-]", "[schemas]") {
  SECTION("is_valid_id") {
    CHECK(rrh::is_valid_id("a"));
    CHECK(rrh::is_valid_id("worker-3.rack_b:4312@eu"));
    CHECK(rrh::is_valid_id(std::string(128, 'x')));
    CHECK_FALSE(rrh::is_valid_id(""));
    CHECK_FALSE(rrh::is_valid_id(std::string(129, 'x')));
    CHECK_FALSE(rrh::is_valid_id("a b"));
    CHECK_FALSE(rrh::is_valid_id("a/b"));
    CHECK_FALSE(rrh::is_valid_id("caf\xc3\xa9"));
    CHECK_FALSE(rrh::is_valid_id(std::string("a\0b", 3)));
  }
  SECTION("the envelope's node") {
    auto message = golden_tree("event", "task.started");
    message["node"] = tree(std::string(128, 'n'));
    CHECK(decode_event(message));
    for (const std::string& bad :
         {std::string(), std::string(129, 'n'), std::string("node 1"), std::string("node/1")}) {
      CAPTURE(bad);
      message["node"] = tree(bad);
      CHECK(error_of(decode_event(message)) == errc::invalid_id);
    }
  }
  SECTION("a missing node is an empty, invalid one") {
    auto message = golden_tree("command", "agent.probe");
    REQUIRE(message.erase("node"));
    CHECK(error_of(decode_command(message)) == errc::invalid_id);
  }
  SECTION("the episode may be empty but not invalid") {
    auto message = golden_tree("event", "task.started");
    message["episode"] = tree("");
    CHECK(decode_event(message));
    message["episode"] = tree("ep 1");
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
  }
  SECTION("required ids in the body") {
    auto message = golden_tree("event", "task.failed");
    message["data"]["task"] = tree("");
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
    message = golden_tree("event", "task.failed");
    message["data"]["agent"] = tree("coder/2");
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
  }
  SECTION("optional ids in the body may be empty but not invalid") {
    auto message = golden_tree("command", "task.retry");
    message["data"]["from_agent"] = tree("");
    CHECK(decode_command(message));
    message["data"]["from_agent"] = tree(std::string(129, 'a'));
    CHECK(error_of(decode_command(message)) == errc::invalid_id);
  }
  SECTION("agents inside a heartbeat") {
    auto message = golden_tree("event", "heartbeat");
    message["data"]["agents"] =
        tree(tree_list{tree(tree_map{{"agent", "ok-1"}}), tree(tree_map{{"agent", "bad one"}})});
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
  }
  SECTION("agents of an episode") {
    auto message = golden_tree("event", "episode.started");
    message["data"]["agents"] = tree(tree_list{tree("planner-1"), tree("")});
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
  }
  SECTION("setting keys") {
    auto message = golden_tree("event", "episode.started");
    message["data"]["resilience"] = tree(tree_map{{"error threshold", tree(5)}});
    CHECK(error_of(decode_event(message)) == errc::invalid_id);
  }
}

TEST_CASE("values over their limits are rejected as too large", "[schemas]") {
  SECTION("text of 4096 bytes passes, 4097 does not") {
    auto message = golden_tree("event", "task.failed");
    message["data"]["message"] = tree(std::string(rrh::text_length_max, 'm'));
    CHECK(decode_event(message));
    message["data"]["message"] = tree(std::string(rrh::text_length_max + 1, 'm'));
    CHECK(error_of(decode_event(message)) == errc::too_large);
  }
  SECTION("a string setting is text") {
    auto message = golden_tree("event", "episode.started");
    message["data"]["resilience"] =
        tree(tree_map{{"retry_mode", tree(std::string(rrh::text_length_max + 1, 'x'))}});
    CHECK(error_of(decode_event(message)) == errc::too_large);
  }
  SECTION("a setting integer beyond int64") {
    auto message = golden_tree("event", "episode.started");
    message["data"]["resilience"] =
        tree(tree_map{{"error_threshold", tree(std::uint64_t{1} << 63)}});
    CHECK(error_of(decode_event(message)) == errc::too_large);
  }
  SECTION("a checkpoint of 256 KiB passes, one byte more does not") {
    auto message = golden_tree("event", "task.failed");
    message["data"]["checkpoint"] = tree(rrh::byte_buffer(rrh::checkpoint_bytes_max, 0xab));
    CHECK(decode_event(message));
    message["data"]["checkpoint"] = tree(rrh::byte_buffer(rrh::checkpoint_bytes_max + 1, 0xab));
    CHECK(error_of(decode_event(message)) == errc::too_large);
    auto command = golden_tree("command", "task.retry");
    command["data"]["checkpoint"] = tree(rrh::byte_buffer(rrh::checkpoint_bytes_max + 1, 0));
    CHECK(error_of(decode_command(command)) == errc::too_large);
  }
  SECTION("a message over 1 MiB") {
    auto message = golden_tree("event", "heartbeat");
    // An unknown field is ignored, but it still counts towards the message size.
    message["padding"] = tree(rrh::byte_buffer(rrh::message_bytes_max, 0));
    CHECK(error_of(decode_event(message)) == errc::too_large);
    const rrh::byte_buffer filler(rrh::message_bytes_max + 1, 0xc0);
    CHECK(error_of(rrh::decode_command(filler.data(), filler.size())) == errc::too_large);
  }
  SECTION("a list of 4096 passes, 4097 does not") {
    auto message = golden_tree("event", "agent.registered");
    message["data"]["capabilities"] = tree(tree_list(rrh::list_length_max, tree("c")));
    CHECK(decode_event(message));
    message["data"]["capabilities"] = tree(tree_list(rrh::list_length_max + 1, tree("c")));
    // msgpack's own limit trips before the field is read, so this one reports malformed.
    CHECK_FALSE(decode_event(message));
  }
}

TEST_CASE("nesting deeper than six containers is rejected", "[schemas]") {
  // The top-level map is the first container; an unknown field adds the rest.
  const auto nested = [](int depth) {
    tree value(1);
    for (int level = 0; level < depth; ++level) value = tree(tree_list{value});
    return value;
  };
  auto message = golden_tree("event", "alert");
  message["extra"] = nested(5);  // 1 + 5 = 6 containers
  CHECK(decode_event(message));
  message["extra"] = nested(6);  // 7 containers
  CHECK(error_of(decode_event(message)) == errc::malformed);
  message["extra"] = nested(1000);
  CHECK(error_of(decode_event(message)) == errc::malformed);
}

TEST_CASE("unknown fields are ignored and missing fields take their defaults", "[schemas]") {
  SECTION("an extra key in the envelope and in the body") {
    const auto original = golden_vector("event", "task.failed");
    auto message = rrh::test::parse(original);
    message["trace_id"] = tree("4bf92f3577b34da6");
    message["data"]["cost_usd"] = tree(0.25);
    message["data"]["tags"] = tree(tree_list{tree("a"), tree(tree_map{{"k", tree(1)}})});
    const auto decoded = decode_event(message);
    REQUIRE(decoded);
    // The extra keys are dropped: re-encoding gives the original vector.
    CHECK(rrh::encode(*decoded) == original);
  }
  SECTION("an extra key in a command") {
    const auto original = golden_vector("command", "task.retry");
    auto message = rrh::test::parse(original);
    message["priority"] = tree(3);
    const auto decoded = decode_command(message);
    REQUIRE(decoded);
    CHECK(rrh::encode(*decoded) == original);
  }
  SECTION("keys in another order decode to the same message") {
    const auto original = golden_vector("event", "agent.dead");
    auto message = rrh::test::parse(original);
    auto& entries = std::get<tree_map>(message.value);
    std::reverse(entries.begin(), entries.end());
    const auto decoded = decode_event(message);
    REQUIRE(decoded);
    CHECK(rrh::encode(*decoded) == original);
  }
  SECTION("missing body fields and a missing body") {
    auto message = golden_tree("event", "task.started");
    REQUIRE(message["data"].erase("attempt"));
    auto decoded = decode_event(message);
    REQUIRE(decoded);
    CHECK(std::get<rrh::events::task_started>(decoded->body).attempt == 1);
    auto ended = golden_tree("event", "episode.ended");
    REQUIRE(ended.erase("data"));
    decoded = decode_event(ended);
    REQUIRE(decoded);
    CHECK(std::get<rrh::events::episode_ended>(decoded->body).status.empty());
  }
  SECTION("agent.recover without incarnation (an older processor) names none") {
    auto message = golden_tree("command", "agent.recover");
    REQUIRE(message["data"].erase("incarnation"));
    const auto decoded = decode_command(message);
    REQUIRE(decoded);
    const auto& recover = std::get<rrh::commands::agent_recover>(decoded->body);
    CHECK(recover.incarnation == 0);
    CHECK(recover.agent == "coder-2");
    // The aggregate form of senders that predate the field still compiles, naming none.
    CHECK(rrh::commands::agent_recover{"coder-2", 1}.incarnation == 0);
  }
  SECTION("missing envelope fields other than v, kind and node") {
    auto message = golden_tree("event", "heartbeat");
    for (const auto key : {"incarnation", "seq", "ts_ms", "episode"}) REQUIRE(message.erase(key));
    const auto decoded = decode_event(message);
    REQUIRE(decoded);
    CHECK(decoded->header.incarnation == 0);
    CHECK(decoded->header.seq == 0);
    CHECK(decoded->header.episode.empty());
  }
  SECTION("a float field accepts an integer") {
    auto message = golden_tree("event", "agent.suspect");
    message["data"]["phi"] = tree(9);
    const auto decoded = decode_event(message);
    REQUIRE(decoded);
    CHECK(std::get<rrh::events::agent_suspect>(decoded->body).phi == 9.0);
  }
}

TEST_CASE("encoding is canonical", "[schemas]") {
  SECTION("integers take their smallest form and floats stay float64") {
    auto suspect = with_agent<rrh::events::agent_suspect>("a1");
    suspect.phi = 2.0;
    rrh::event message = sample_event(suspect);
    message.header.seq = 5;            // positive fixint
    message.header.incarnation = 200;  // uint8
    const auto bytes = rrh::encode(message);
    auto parsed = rrh::test::parse(bytes);
    CHECK(std::get<double>(parsed["data"]["phi"].value) == 2.0);
    const rrh::byte_buffer seq_key{0xa3, 's', 'e', 'q', 0x05};
    CHECK(std::search(bytes.begin(), bytes.end(), seq_key.begin(), seq_key.end()) != bytes.end());
    const rrh::byte_buffer incarnation_value{'o', 'n', 0xcc, 200};
    CHECK(std::search(bytes.begin(), bytes.end(), incarnation_value.begin(),
                      incarnation_value.end()) != bytes.end());
    const rrh::byte_buffer phi{0xa3, 'p', 'h', 'i', 0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0};
    CHECK(std::search(bytes.begin(), bytes.end(), phi.begin(), phi.end()) != bytes.end());
  }
  SECTION("every envelope field is written, in wire order, even when empty") {
    const auto bytes = rrh::encode(sample_event(rrh::events::episode_ended{}, ""));
    const auto parsed = rrh::test::parse(bytes);
    std::vector<std::string> keys;
    for (const auto& [key, value] : std::get<tree_map>(parsed.value)) keys.push_back(key);
    CHECK(keys == std::vector<std::string>{"v", "kind", "node", "incarnation", "seq", "ts_ms",
                                           "episode", "data"});
    rrh::command command;
    command.node = "n1";
    command.body = rrh::commands::agent_probe{};
    const auto command_bytes = rrh::encode(command);
    keys.clear();
    const auto command_parsed = rrh::test::parse(command_bytes);
    for (const auto& [key, value] : std::get<tree_map>(command_parsed.value)) keys.push_back(key);
    CHECK(keys == std::vector<std::string>{"v", "kind", "id", "node", "ts_ms", "episode", "data"});
  }
}

TEST_CASE("event topics name the kind and the subject", "[schemas]") {
  namespace ev = rrh::events;
  SECTION("agent-scoped events use the agent") {
    CHECK(rrh::event_topic(sample_event(with_agent<ev::task_failed>("a1"))) == "task.failed a1");
    CHECK(rrh::event_topic(sample_event(with_agent<ev::agent_suspect>("a2"))) ==
          "agent.suspect a2");
    CHECK(rrh::event_topic(sample_event(with_agent<ev::episode_error>("a3"))) ==
          "episode.error a3");
  }
  SECTION("episode events without an agent use the episode") {
    CHECK(rrh::event_topic(sample_event(ev::episode_started{})) == "episode.started ep-1");
    CHECK(rrh::event_topic(sample_event(ev::episode_error{})) == "episode.error ep-1");
    CHECK(rrh::event_topic(sample_event(ev::episode_summary{})) == "episode.summary ep-1");
  }
  SECTION("episode events outside an episode fall back to the node") {
    CHECK(rrh::event_topic(sample_event(ev::episode_shutdown{}, "")) == "episode.shutdown node-1");
  }
  SECTION("everything else uses the sender node") {
    CHECK(rrh::event_topic(sample_event(ev::heartbeat{})) == "heartbeat node-1");
    CHECK(rrh::event_topic(sample_event(ev::command_ack{})) == "command.ack node-1");
    CHECK(rrh::event_topic(sample_event(ev::probe_reply{})) == "probe.reply node-1");
    CHECK(rrh::event_topic(sample_event(ev::alert{})) == "alert node-1");
    ev::command_undeliverable undeliverable;
    undeliverable.target = "n9";
    CHECK(rrh::event_topic(sample_event(undeliverable)) == "command.undeliverable node-1");
  }
  SECTION("relayed commands") {
    CHECK(rrh::command_topic("task.retry", "node-7") == "cmd.task.retry node-7");
    CHECK(rrh::command_topic("ack", "n") == "cmd.ack n");
  }
}

TEST_CASE("critical and best-effort kinds, and the subject agent of commands", "[schemas]") {
  CHECK_FALSE(rrh::is_critical(rrh::events::heartbeat{}));
  CHECK_FALSE(rrh::is_critical(rrh::events::probe_reply{}));
  CHECK(rrh::is_critical(rrh::events::task_failed{}));
  CHECK(rrh::is_critical(rrh::events::command_ack{}));
  CHECK(rrh::subject_agent(rrh::command_body{with_agent<rrh::commands::task_retry>("a5")}) == "a5");
  CHECK(rrh::subject_agent(rrh::command_body{rrh::commands::ack{}}).empty());
}
