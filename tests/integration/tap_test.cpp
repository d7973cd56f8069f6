// Integration tests of rrh-tap against a real rrh-broker. The test publishes through an
// XPUB socket so that it sees the tap's subscription arrive (forwarded by the broker) and
// publishes only then: no message is lost to the slow-joiner window, and no sleep is needed.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "broker_fixture.hpp"
#include "process.hpp"
#include "rrh/codec.hpp"
#include "rrh/protocol.hpp"
#include "wait.hpp"

namespace {

using rrh::test::broker_process;
using rrh::test::bytes_of;
using rrh::test::child_process;
using rrh::test::send_parts;
using rrh::test::sockets;
using rrh::test::task_failed_event;
using rrh::test::text_of;
using rrh::test::try_receive;
using rrh::test::wait_until;

/// Waits until the subscription `prefix` reached the publisher through the broker.
bool wait_for_subscription(zmq::socket_t& xpub_publisher, const std::string& prefix) {
  const std::string wanted = std::string(1, '\x01') + prefix;
  bool seen = false;
  return wait_until([&] {
    while (auto got = try_receive(xpub_publisher)) seen = seen || text_of(got->front()) == wanted;
    return seen;
  });
}

void publish(zmq::socket_t& publisher, const rrh::event& message) {
  send_parts(publisher, {rrh::event_topic(message), bytes_of(rrh::encode(message))});
}

rrh::event heartbeat_event() {
  rrh::event message;
  message.header.node = "node-a";
  message.header.incarnation = 42;
  message.header.ts_ms = 1'700'000'000'000;
  rrh::events::heartbeat beat;
  beat.interval_ms = 1000;
  beat.host = "host-1";
  message.body = beat;
  return message;
}

/// The JSON lines the tap printed (its diagnostics go to the same pipe and are skipped).
std::vector<std::string> json_lines(const child_process& tap) {
  std::vector<std::string> found;
  for (const auto& line : tap.lines()) {
    if (!line.empty() && line.front() == '{') found.push_back(line);
  }
  return found;
}

/// The tap's JSON lines once `expected` of them were read. The output is read on another
/// thread, so it can trail the exit: wait for it rather than read it at once. The tap stops
/// printing at --count, so a line that should not be there shows among these.
std::vector<std::string> json_lines_after_exit(const child_process& tap, std::size_t expected) {
  wait_until([&] { return json_lines(tap).size() >= expected; });
  return json_lines(tap);
}

int exit_code(child_process& tap) {
  const auto status = tap.wait_exit(rrh::test::wait_deadline_default);
  REQUIRE(status.has_value());
  REQUIRE(WIFEXITED(*status));
  return WEXITSTATUS(*status);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("the tap prints each event as one JSON line with its topic and exits after --count",
          "[tap]") {
  broker_process broker;
  child_process tap(rrh::test::binary_path("rrh-tap"),
                    {"--connect", broker.events_out, "--json", "--count", "3"});
  sockets zmq_sockets;
  auto publisher = zmq_sockets.make(zmq::socket_type::xpub);
  publisher.connect(broker.events_in);
  REQUIRE(wait_for_subscription(publisher, ""));

  publish(publisher, task_failed_event(1));
  publish(publisher, heartbeat_event());
  publish(publisher, task_failed_event(2));
  CHECK(exit_code(tap) == 0);

  const auto lines = json_lines_after_exit(tap, 3);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].rfind(R"({"topic":"task.failed agent-1","v":1,"kind":"task.failed",)", 0) == 0);
  CHECK(contains(lines[0], R"("task":"task-1")"));
  CHECK(contains(lines[0], R"("checkpoint":{"$bin":""})"));
  CHECK(lines[1].rfind(R"({"topic":"heartbeat node-a","v":1,"kind":"heartbeat",)", 0) == 0);
  CHECK(contains(lines[2], R"("seq":2)"));
  for (const auto& line : lines) CHECK(line.back() == '}');
}

TEST_CASE("the tap subscribes only to its --filter prefixes", "[tap]") {
  broker_process broker;
  child_process tap(rrh::test::binary_path("rrh-tap"), {"--connect", broker.events_out, "--json",
                                                        "--filter", "task.failed", "--count", "2"});
  sockets zmq_sockets;
  auto publisher = zmq_sockets.make(zmq::socket_type::xpub);
  publisher.connect(broker.events_in);
  REQUIRE(wait_for_subscription(publisher, "task.failed"));

  publish(publisher, heartbeat_event());
  publish(publisher, task_failed_event(1));
  publish(publisher, heartbeat_event());
  publish(publisher, task_failed_event(2));
  CHECK(exit_code(tap) == 0);

  const auto lines = json_lines_after_exit(tap, 2);
  REQUIRE(lines.size() == 2);
  for (const auto& line : lines) CHECK(contains(line, R"("kind":"task.failed")"));
}

TEST_CASE("the tap's --agent keeps only messages about that agent", "[tap]") {
  broker_process broker;
  child_process tap(rrh::test::binary_path("rrh-tap"), {"--connect", broker.events_out, "--json",
                                                        "--agent", "agent-2", "--count", "1"});
  sockets zmq_sockets;
  auto publisher = zmq_sockets.make(zmq::socket_type::xpub);
  publisher.connect(broker.events_in);
  REQUIRE(wait_for_subscription(publisher, ""));

  publish(publisher, task_failed_event(1, "agent-1"));
  publish(publisher, heartbeat_event());
  publish(publisher, task_failed_event(2, "agent-2"));
  CHECK(exit_code(tap) == 0);

  const auto lines = json_lines_after_exit(tap, 1);
  REQUIRE(lines.size() == 1);
  CHECK(contains(lines[0], R"("topic":"task.failed agent-2")"));
}

TEST_CASE("the tap skips malformed messages, reports them on stderr and keeps going", "[tap]") {
  broker_process broker;
  child_process tap(rrh::test::binary_path("rrh-tap"),
                    {"--connect", broker.events_out, "--json", "--count", "1"});
  sockets zmq_sockets;
  auto publisher = zmq_sockets.make(zmq::socket_type::xpub);
  publisher.connect(broker.events_in);
  REQUIRE(wait_for_subscription(publisher, ""));

  send_parts(publisher, {"task.failed agent-1"});                      // one frame
  send_parts(publisher, {"task.failed agent-1", "\xc1 not msgpack"});  // bad body
  send_parts(publisher, {"task.failed agent-1", "\x93\x01\x02\x03"});  // msgpack, not a map
  publish(publisher, task_failed_event(5));
  CHECK(exit_code(tap) == 0);

  const auto lines = json_lines_after_exit(tap, 1);
  REQUIRE(lines.size() == 1);
  CHECK(contains(lines[0], R"("seq":5)"));
  CHECK(tap.wait_line("skipped", rrh::test::wait_deadline_default).has_value());
}

TEST_CASE("the tap exits 0 on SIGINT and 1 when --timeout-ms passes before --count", "[tap]") {
  broker_process broker;
  SECTION("SIGINT") {
    child_process tap(rrh::test::binary_path("rrh-tap"), {"--connect", broker.events_out});
    sockets zmq_sockets;
    auto publisher = zmq_sockets.make(zmq::socket_type::xpub);
    publisher.connect(broker.events_in);
    REQUIRE(wait_for_subscription(publisher, ""));  // the tap is up and in its loop
    tap.signal(SIGINT);
    const auto status = tap.wait_exit(std::chrono::milliseconds(1000));
    REQUIRE(status.has_value());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 0);
  }
  SECTION("timeout before count") {
    child_process tap(rrh::test::binary_path("rrh-tap"),
                      {"--connect", broker.events_out, "--count", "5", "--timeout-ms", "100"});
    CHECK(exit_code(tap) == 1);
  }
  SECTION("timeout without count") {
    child_process tap(rrh::test::binary_path("rrh-tap"),
                      {"--connect", broker.events_out, "--timeout-ms", "100"});
    CHECK(exit_code(tap) == 0);
  }
}
