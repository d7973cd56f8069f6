// rrh::common holds what every process shares; these tests pin its small contracts. Time
// comes from a manual clock, so nothing here waits.
#include <catch2/catch.hpp>

#include <string>

#include "rrh/clock.hpp"
#include "rrh/expected.hpp"
#include "rrh/log.hpp"
#include "rrh/zmq_util.hpp"

using namespace std::chrono_literals;

TEST_CASE("manual_clock moves only when advanced", "[common]") {
  rrh::manual_clock time(rrh::mono_ms{100}, 1'000);
  CHECK(time.now() == rrh::mono_ms{100});
  CHECK(time.wall_ms() == 1'100);
  time.advance(rrh::mono_ms{250});
  CHECK(time.now() == rrh::mono_ms{350});
  CHECK(time.wall_ms() == 1'350);
}

TEST_CASE("log_throttle admits one message per key per interval and counts the rest", "[common]") {
  rrh::manual_clock time;
  rrh::log_throttle throttle(rrh::mono_ms{5000}, time);

  SECTION("the first message is admitted with a count of one") {
    CHECK(throttle.admit("bad-msgpack") == 1);
  }
  SECTION("messages inside the interval are suppressed and counted") {
    REQUIRE(throttle.admit("bad-msgpack") == 1);
    CHECK(throttle.admit("bad-msgpack") == 0);
    time.advance(rrh::mono_ms{4999});
    CHECK(throttle.admit("bad-msgpack") == 0);
    CHECK(throttle.admit("bad-msgpack") == 0);
    time.advance(rrh::mono_ms{1});
    // Three suppressed since the last one let through, plus this one.
    CHECK(throttle.admit("bad-msgpack") == 4);
    CHECK(throttle.admit("bad-msgpack") == 0);
  }
  SECTION("after a quiet interval the count starts again at one") {
    REQUIRE(throttle.admit("bad-msgpack") == 1);
    time.advance(rrh::mono_ms{60'000});
    CHECK(throttle.admit("bad-msgpack") == 1);
  }
  SECTION("keys are throttled independently") {
    REQUIRE(throttle.admit("bad-msgpack") == 1);
    CHECK(throttle.admit("unknown-kind") == 1);
    CHECK(throttle.admit("bad-msgpack") == 0);
    CHECK(throttle.admit("unknown-kind") == 0);
  }
  SECTION("a clock origin of zero does not suppress the first message") {
    rrh::manual_clock origin(rrh::mono_ms{0});
    rrh::log_throttle fresh(rrh::mono_ms{5000}, origin);
    CHECK(fresh.admit("k") == 1);
  }
}

TEST_CASE("expected holds a value or an error", "[common]") {
  SECTION("a value") {
    rrh::expected<std::string> result(std::string("ok"));
    REQUIRE(result);
    CHECK(result.has_value());
    CHECK(*result == "ok");
    CHECK(result->size() == 2);
  }
  SECTION("an error") {
    rrh::expected<int> result = rrh::make_error(rrh::errc::too_large, "over 4096 bytes");
    REQUIRE_FALSE(result);
    CHECK(result.error().code == rrh::errc::too_large);
    CHECK(result.error().detail == "over 4096 bytes");
  }
  SECTION("status") {
    CHECK(rrh::ok());
    const rrh::status failed = rrh::make_error(rrh::errc::closed, "shutting down");
    CHECK_FALSE(failed);
    CHECK(failed.error().code == rrh::errc::closed);
  }
  SECTION("a value can be moved out") {
    rrh::expected<std::string> result(std::string(100, 'x'));
    const std::string taken = std::move(result).value();
    CHECK(taken.size() == 100);
  }
}

TEST_CASE("every error code has a stable lower-case name", "[common]") {
  CHECK(std::string(rrh::to_string(rrh::errc::malformed)) == "malformed");
  CHECK(std::string(rrh::to_string(rrh::errc::too_large)) == "too_large");
  CHECK(std::string(rrh::to_string(rrh::errc::invalid_id)) == "invalid_id");
  CHECK(std::string(rrh::to_string(rrh::errc::unsupported_version)) == "unsupported_version");
  CHECK(std::string(rrh::to_string(rrh::errc::unknown_kind)) == "unknown_kind");
  CHECK(std::string(rrh::to_string(rrh::errc::outbox_full)) == "outbox_full");
  CHECK(std::string(rrh::to_string(rrh::errc::timeout)) == "timeout");
  CHECK(std::string(rrh::to_string(rrh::errc::closed)) == "closed");
  CHECK(std::string(rrh::to_string(rrh::errc::invalid_argument)) == "invalid_argument");
  CHECK(std::string(rrh::to_string(rrh::errc::config)) == "config");
}

TEST_CASE("is_local_endpoint accepts loopback, ipc and inproc only", "[common]") {
  CHECK(rrh::is_local_endpoint("tcp://127.0.0.1:7701"));
  CHECK(rrh::is_local_endpoint("tcp://127.0.0.1:*"));
  CHECK(rrh::is_local_endpoint("tcp://127.10.20.30:7702"));
  CHECK(rrh::is_local_endpoint("tcp://localhost:7703"));
  CHECK(rrh::is_local_endpoint("tcp://[::1]:7704"));
  CHECK(rrh::is_local_endpoint("ipc:///run/rrh/events"));
  CHECK(rrh::is_local_endpoint("inproc://commands"));
  CHECK_FALSE(rrh::is_local_endpoint("tcp://0.0.0.0:7701"));
  CHECK_FALSE(rrh::is_local_endpoint("tcp://*:7701"));
  CHECK_FALSE(rrh::is_local_endpoint("tcp://10.0.0.5:7701"));
  CHECK_FALSE(rrh::is_local_endpoint("tcp://localhost.example.com:7701"));
  CHECK_FALSE(rrh::is_local_endpoint("tcp://[::]:7701"));
  CHECK_FALSE(rrh::is_local_endpoint("udp://127.0.0.1:7701"));
  CHECK_FALSE(rrh::is_local_endpoint(""));
}
