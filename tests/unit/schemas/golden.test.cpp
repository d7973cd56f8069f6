// The golden vectors in schemas/golden are the protocol's contract with other languages:
// the C++ codec must read each one and write it back byte for byte, and there must be one
// for every kind this build knows.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <string>

#include "msgpack_tree.hpp"
#include "rrh/codec.hpp"
#include "rrh/json.hpp"
#include "rrh/protocol.hpp"

namespace {

namespace fs = std::filesystem;
using rrh::test::golden_vector;

std::string text_of(const fs::path& path) {
  const auto bytes = rrh::test::read_file(path.string());
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("every event kind has a golden vector that round-trips byte for byte", "[schemas]") {
  const auto kinds = rrh::event_kind_names();
  REQUIRE(kinds.size() == std::variant_size_v<rrh::event_body>);
  for (const auto kind : kinds) {
    CAPTURE(kind);
    const auto bytes = golden_vector("event", kind);
    const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
    REQUIRE(decoded);
    CHECK(rrh::kind_name(decoded->body) == kind);
    CHECK(decoded->header.version == rrh::protocol_version);
    CHECK(rrh::encode(*decoded) == bytes);
  }
}

TEST_CASE("every command kind has a golden vector that round-trips byte for byte", "[schemas]") {
  const auto kinds = rrh::command_kind_names();
  REQUIRE(kinds.size() == std::variant_size_v<rrh::command_body>);
  for (const auto kind : kinds) {
    CAPTURE(kind);
    const auto bytes = golden_vector("command", kind);
    const auto decoded = rrh::decode_command(bytes.data(), bytes.size());
    REQUIRE(decoded);
    CHECK(rrh::kind_name(decoded->body) == kind);
    CHECK(decoded->version == rrh::protocol_version);
    CHECK(rrh::encode(*decoded) == bytes);
  }
}

TEST_CASE("every file in the golden directory names a known kind and matches its twin",
          "[schemas]") {
  const std::set<std::string_view> event_kinds = [] {
    const auto names = rrh::event_kind_names();
    return std::set<std::string_view>(names.begin(), names.end());
  }();
  const std::set<std::string_view> command_kinds = [] {
    const auto names = rrh::command_kind_names();
    return std::set<std::string_view>(names.begin(), names.end());
  }();
  std::size_t vectors = 0;
  for (const auto& entry : fs::directory_iterator(RRH_GOLDEN_DIR)) {
    const auto path = entry.path();
    if (path.extension() != ".msgpack") continue;
    ++vectors;
    const std::string stem = path.stem().string();
    CAPTURE(stem);
    const auto dot = stem.find('.');
    REQUIRE(dot != std::string::npos);
    const std::string prefix = stem.substr(0, dot);
    const std::string kind = stem.substr(dot + 1);
    const auto bytes = rrh::test::read_file(path.string());
    if (prefix == "event") {
      CHECK(event_kinds.count(kind) == 1);
      const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
      REQUIRE(decoded);
      CHECK(rrh::kind_name(decoded->body) == kind);
    } else {
      REQUIRE(prefix == "command");
      CHECK(command_kinds.count(kind) == 1);
      const auto decoded = rrh::decode_command(bytes.data(), bytes.size());
      REQUIRE(decoded);
      CHECK(rrh::kind_name(decoded->body) == kind);
    }
    // The twin is exactly what msgpack_to_json writes, plus a final newline.
    const auto json = rrh::msgpack_to_json(bytes.data(), bytes.size());
    REQUIRE(json);
    CHECK(text_of(fs::path(path).replace_extension(".json")) == *json + "\n");
  }
  CHECK(vectors == event_kinds.size() + command_kinds.size());
}

TEST_CASE("golden vectors follow the sequence rules of critical and best-effort events",
          "[schemas]") {
  for (const auto kind : rrh::event_kind_names()) {
    CAPTURE(kind);
    const auto bytes = golden_vector("event", kind);
    const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
    REQUIRE(decoded);
    // The broker has no outbox: it publishes command.undeliverable once, with seq 0.
    const bool best_effort =
        kind == "heartbeat" || kind == "probe.reply" || kind == "command.undeliverable";
    CHECK(rrh::is_critical(decoded->body) == !best_effort);
    // The processor publishes its derived events once, with seq 0, too.
    const bool derived = decoded->header.node == "rrh-processor";
    if (best_effort || derived) {
      CHECK(decoded->header.seq == 0);
    } else {
      CHECK(decoded->header.seq >= 1);
    }
  }
}

TEST_CASE("golden vectors carry the values that exercise every field type", "[schemas]") {
  SECTION("task.failed keeps a checkpoint with bytes that are not UTF-8") {
    const auto bytes = golden_vector("event", "task.failed");
    const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
    REQUIRE(decoded);
    const auto& failed = std::get<rrh::events::task_failed>(decoded->body);
    REQUIRE_FALSE(failed.checkpoint.empty());
    CHECK(failed.checkpoint.back() == 0xc1);
  }
  SECTION("episode.started keeps int, double, bool and string settings apart") {
    const auto bytes = golden_vector("event", "episode.started");
    const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
    REQUIRE(decoded);
    const auto& settings = std::get<rrh::events::episode_started>(decoded->body).resilience;
    CHECK(std::get<std::int64_t>(settings.at("error_threshold")) == 5);
    CHECK(std::get<std::int64_t>(settings.at("task_retry_delay")) == -1);
    CHECK(std::get<double>(settings.at("recovery_cooldown")) == 60.5);
    // An integral double stays a double: the codec must not pack 2.0 as the integer 2.
    CHECK(std::get<double>(settings.at("retry_backoff_multiplier")) == 2.0);
    CHECK(std::get<bool>(settings.at("retry_jitter")));
    CHECK(std::get<std::string>(settings.at("retry_mode")) == "full-jitter");
  }
  SECTION("agent.recover names the incarnation of the agent's node, a uint 64") {
    const auto bytes = golden_vector("command", "agent.recover");
    const auto decoded = rrh::decode_command(bytes.data(), bytes.size());
    REQUIRE(decoded);
    const auto& recover = std::get<rrh::commands::agent_recover>(decoded->body);
    CHECK(recover.incarnation > std::uint64_t{0xffff'ffff});
    // The agent node's incarnation in the vectors: the one its critical events carry.
    const auto registered = golden_vector("event", "agent.registered");
    const auto agent_event = rrh::decode_event(registered.data(), registered.size());
    REQUIRE(agent_event);
    CHECK(recover.incarnation == agent_event->header.incarnation);
  }
  SECTION("heartbeat lists several agents") {
    const auto bytes = golden_vector("event", "heartbeat");
    const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
    REQUIRE(decoded);
    const auto& beat = std::get<rrh::events::heartbeat>(decoded->body);
    CHECK(beat.agents.size() >= 2);
    CHECK(beat.last_seq > 0);
  }
  SECTION("agent.suspect carries a fractional phi") {
    const auto bytes = golden_vector("event", "agent.suspect");
    const auto decoded = rrh::decode_event(bytes.data(), bytes.size());
    REQUIRE(decoded);
    CHECK(std::get<rrh::events::agent_suspect>(decoded->body).phi == 8.25);
  }
}
