// rrh-broker against hostile input on its command and event sockets: wrong frame counts,
// invalid ids, oversized frames, garbage bodies and raw bytes that are not ZeroMQ at all.
// It stays up, keeps relaying, counts each bad command once and logs sparingly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <initializer_list>
#include <sys/wait.h>

#include "badinput_support.hpp"
#include "broker_fixture.hpp"
#include "rrh/codec.hpp"

using namespace std::chrono_literals;
using rrh::test::wait_until;

namespace {

// A valid agent.probe for `node`, with `id`.
std::string probe_body(const std::string& node, std::uint64_t id) {
  rrh::command message;
  message.id = id;
  message.node = node;
  message.body = rrh::commands::agent_probe{};
  return rrh::test::bytes_of(rrh::encode(message));
}

// Pushes a valid command for `node` until its DEALER receives it (a DEALER that has not
// finished connecting misses commands, which the broker reports undeliverable). Any other
// body the DEALER receives meanwhile is appended to `others`.
bool relay_until_received(zmq::socket_t& pusher, zmq::socket_t& dealer, const std::string& node,
                          std::uint64_t id, std::vector<std::string>& others) {
  const auto body = probe_body(node, id);
  auto next_send = std::chrono::steady_clock::now();
  return wait_until([&] {
    if (std::chrono::steady_clock::now() >= next_send) {
      rrh::test::send_parts(pusher, {node, "agent.probe", body});
      next_send = std::chrono::steady_clock::now() + 100ms;
    }
    while (auto parts = rrh::test::try_receive(dealer)) {
      const auto received = parts->size() == 1 ? rrh::test::text_of(parts->front()) : "(frames)";
      if (received == body) return true;
      others.push_back(received);
    }
    return false;
  });
}

// True when every body in `received` is the probe of one of `ids` (late copies of the
// warm-up), so that nothing else reached the node.
bool only_probes(const std::vector<std::string>& received, const std::string& node,
                 std::initializer_list<std::uint64_t> ids) {
  return std::all_of(received.begin(), received.end(), [&](const std::string& body) {
    return std::any_of(ids.begin(), ids.end(),
                       [&](std::uint64_t id) { return body == probe_body(node, id); });
  });
}

// Publishes `parts` on `publisher` until `subscriber` receives a message whose last frame
// equals `marker`; the subscription may still be travelling when the first copies leave.
bool forward_until_received(zmq::socket_t& publisher, zmq::socket_t& subscriber,
                            const std::vector<std::string>& parts) {
  auto next_send = std::chrono::steady_clock::now();
  return wait_until([&] {
    if (std::chrono::steady_clock::now() >= next_send) {
      rrh::test::send_parts(publisher, parts);
      next_send = std::chrono::steady_clock::now() + 100ms;
    }
    while (auto received = rrh::test::try_receive(subscriber)) {
      if (received->size() == parts.size() && rrh::test::text_of(received->back()) == parts.back()) {
        return true;
      }
    }
    return false;
  });
}

}  // namespace

TEST_CASE("the broker drops and counts bad commands, survives garbage and keeps relaying",
          "[badinput][broker][integration]") {
  const auto started = std::chrono::steady_clock::now();
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  auto pusher = context.make(zmq::socket_type::push);
  pusher.connect(broker.commands_in);
  auto dealer = context.make(zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::routing_id, "bad-dealer");
  dealer.connect(broker.commands_out);
  std::vector<std::string> others;
  REQUIRE(relay_until_received(pusher, dealer, "bad-dealer", 1, others));

  // Never sent validly: if it reached the DEALER, a bad command was relayed.
  const auto valid = probe_body("bad-dealer", 99);
  const std::string megabyte_id(1'000'000, 'n');
  // Each is dropped by the broker's frame checks and counted exactly once as malformed.
  const std::vector<std::vector<std::string>> bad_commands = {
      {"bad-dealer"},                                              // one frame
      {"bad-dealer", valid},                                       // two frames
      {"bad-dealer", "agent.probe", valid, "extra"},               // four frames
      {"", "agent.probe", valid},                                  // empty target
      {std::string(rrh::id_length_max + 1, 'n'), "agent.probe", valid},  // target too long
      {megabyte_id, "agent.probe", valid},                         // target of a megabyte
      {"bad dealer", "agent.probe", valid},                        // space in the target
      {"bad-dealer", "agent probe", valid},                        // kind with a space
      {"bad-dealer", "agent.probe", ""},                           // empty body
      {"bad-dealer", "agent.probe", std::string(rrh::message_bytes_max + 1, '\x01')},  // > 1 MiB
  };
  for (const auto& parts : bad_commands) rrh::test::send_parts(pusher, parts);
  // Well framed, but for an absent node with a body that does not decode: published as
  // undeliverable, and the undecodable body is counted too.
  rrh::test::send_parts(pusher, {"nobody-here", "agent.probe", "\xc1 not msgpack"});
  const std::size_t malformed_expected = bad_commands.size() + 1;

  // Bytes that are not ZeroMQ at all. (commands-in has a test of its own: libzmq may
  // read random bytes as ZMTP 1.0 frames, which would add messages to the count.)
  for (const auto* endpoint : {&broker.commands_out, &broker.events_in, &broker.events_out}) {
    CHECK(rrh::test::send_raw_garbage(*endpoint, 64 * 1024, 7));
  }

  // Commands from one PUSH arrive in order: once this one is relayed, every bad one has
  // been judged. Nothing bad reached the DEALER.
  REQUIRE(relay_until_received(pusher, dealer, "bad-dealer", 3, others));
  CHECK(only_probes(others, "bad-dealer", {1}));
  REQUIRE(broker.process().running());

  broker.process().signal(SIGTERM);
  const auto status = broker.process().wait_exit(10s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  const auto stopped = broker.process().wait_line("stopped:", 1s);
  REQUIRE(stopped);
  CAPTURE(*stopped);
  CHECK(stopped->find("malformed=" + std::to_string(malformed_expected) + " ") != std::string::npos);
  CHECK(stopped->find("undeliverable=0 ") == std::string::npos);
  // One line per kind of bad input at most per 5 s (kinds: frames, invalid_id, malformed,
  // too_large, undecodable_body), however many arrived.
  const auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(rrh::test::count_lines(broker.process(), "dropped malformed command input") <=
        5 * rrh::test::throttled_lines_max(elapsed));
}

TEST_CASE("the broker forwards events it does not judge and survives oversized frames",
          "[badinput][broker][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  auto subscriber = context.make(zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::subscribe, "");
  subscriber.connect(broker.events_out);
  auto publisher = context.make(zmq::socket_type::pub);
  publisher.connect(broker.events_in);
  const auto valid = rrh::test::bytes_of(rrh::encode(rrh::test::task_failed_event(1)));
  REQUIRE(forward_until_received(publisher, subscriber, {"task.failed agent-1", valid}));

  // Events are the subscribers' to judge: the broker moves any frames, whole.
  rrh::test::send_parts(publisher, {"heartbeat garbage"});
  rrh::test::send_parts(publisher, {"heartbeat a", valid, "third frame"});
  rrh::test::send_parts(publisher, {"heartbeat b", std::string(2 * rrh::message_bytes_max, '\xc1')});

  // A frame over the broker's transport cap (4 MiB) costs its sender the connection;
  // the broker and everyone else carry on.
  {
    auto flooder = context.make(zmq::socket_type::pub);
    flooder.connect(broker.events_in);
    const std::string huge(5 * rrh::message_bytes_max, 'x');
    for (int copy = 0; copy < 3; ++copy) rrh::test::send_parts(flooder, {"heartbeat huge", huge});
  }
  CHECK(rrh::test::send_raw_garbage(broker.events_in, 256 * 1024, 11));

  const auto marker = rrh::test::bytes_of(rrh::encode(rrh::test::task_failed_event(2)));
  REQUIRE(forward_until_received(publisher, subscriber, {"task.failed agent-1", marker}));
  REQUIRE(broker.process().running());
  broker.process().signal(SIGTERM);
  const auto status = broker.process().wait_exit(10s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("raw bytes on commands-in neither stop nor confuse the relay",
          "[badinput][broker][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  auto pusher = context.make(zmq::socket_type::push);
  pusher.connect(broker.commands_in);
  auto dealer = context.make(zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::routing_id, "raw-dealer");
  dealer.connect(broker.commands_out);
  std::vector<std::string> others;
  REQUIRE(relay_until_received(pusher, dealer, "raw-dealer", 1, others));
  for (unsigned seed = 1; seed <= 8; ++seed) {
    CHECK(rrh::test::send_raw_garbage(broker.commands_in, 16 * 1024, seed));
  }
  REQUIRE(relay_until_received(pusher, dealer, "raw-dealer", 2, others));
  // Whatever libzmq made of the bytes, nothing but the probes reached the node.
  CHECK(only_probes(others, "raw-dealer", {1}));
  broker.process().signal(SIGTERM);
  const auto status = broker.process().wait_exit(10s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(broker.process().wait_line("stopped:", 1s));
}
