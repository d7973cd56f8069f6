// Integration tests of the real rrh-broker process: raw ZeroMQ sockets on loopback talk
// to it the way agents, the processor and taps do.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
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
using rrh::test::frames;
using rrh::test::send_parts;
using rrh::test::sockets;
using rrh::test::task_failed_event;
using rrh::test::text_of;
using rrh::test::try_receive;
using rrh::test::wait_until;

std::string retry_command(std::uint64_t id, const std::string& target) {
  rrh::command message;
  message.id = id;
  message.node = target;
  message.ts_ms = 1'700'000'000'000;
  rrh::commands::task_retry retry;
  retry.task = "task-1";
  retry.agent = "agent-1";
  retry.attempt = 2;
  message.body = retry;
  return bytes_of(rrh::encode(message));
}

std::uint64_t command_id_of(const zmq::message_t& body) {
  auto decoded = rrh::decode_command(body.data(), body.size());
  REQUIRE(decoded.has_value());
  return decoded->id;
}

/// Exit status of the broker after SIGTERM, with its final stats line.
int stop_broker(broker_process& broker) {
  broker.process().signal(SIGTERM);
  const auto status = broker.process().wait_exit(std::chrono::milliseconds(1000));
  REQUIRE(status.has_value());
  REQUIRE(WIFEXITED(*status));
  return WEXITSTATUS(*status);
}

}  // namespace

TEST_CASE("an event published on events-in reaches a subscriber on events-out", "[broker]") {
  broker_process broker;
  sockets zmq_sockets;
  auto publisher = zmq_sockets.make(zmq::socket_type::pub);
  publisher.connect(broker.events_in);
  auto subscriber = zmq_sockets.make(zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::subscribe, "task.failed");
  subscriber.connect(broker.events_out);

  const auto message = task_failed_event(1);
  const auto topic = rrh::event_topic(message);
  const auto body = bytes_of(rrh::encode(message));
  std::optional<frames> received;
  // PUB drops until the subscription has travelled SUB → XPUB → XSUB → PUB: publish again
  // until one arrives.
  REQUIRE(wait_until([&] {
    send_parts(publisher, {topic, body});
    received = try_receive(subscriber);
    return received.has_value();
  }));
  REQUIRE(received->size() == 2);
  CHECK(text_of((*received)[0]) == "task.failed agent-1");
  CHECK(text_of((*received)[1]) == body);

  SECTION("a topic nobody subscribed to is not delivered") {
    const auto heartbeat_topic = std::string("heartbeat node-a");
    send_parts(publisher, {heartbeat_topic, "x"});
    send_parts(publisher, {topic, "marker"});
    bool saw_marker = false;
    REQUIRE(wait_until([&] {
      while (auto next = try_receive(subscriber)) {
        CHECK(text_of(next->front()) == topic);
        saw_marker = saw_marker || text_of(next->back()) == "marker";
      }
      return saw_marker;
    }));
  }
  CHECK(stop_broker(broker) == 0);
}

TEST_CASE("a command reaches only the node it is addressed to and is seen on the bus", "[broker]") {
  broker_process broker;
  sockets zmq_sockets;
  auto node_x = zmq_sockets.make(zmq::socket_type::dealer);
  node_x.set(zmq::sockopt::routing_id, "node-x");
  node_x.connect(broker.commands_out);
  auto node_y = zmq_sockets.make(zmq::socket_type::dealer);
  node_y.set(zmq::sockopt::routing_id, "node-y");
  node_y.connect(broker.commands_out);
  auto tap = zmq_sockets.make(zmq::socket_type::sub);
  tap.set(zmq::sockopt::subscribe, "cmd.");
  tap.connect(broker.events_out);
  auto processor = zmq_sockets.make(zmq::socket_type::push);
  processor.connect(broker.commands_in);

  // Until both DEALERs are connected and the tap's subscription is in, probes (ids < 100)
  // may be undeliverable or unseen; keep sending until each end has seen one.
  std::vector<std::uint64_t> ids_at_y;
  bool x_ready = false, y_ready = false, tap_ready = false;
  REQUIRE(wait_until([&] {
    send_parts(processor, {"node-x", "task.retry", retry_command(1, "node-x")});
    send_parts(processor, {"node-y", "task.retry", retry_command(2, "node-y")});
    while (auto got = try_receive(node_x)) x_ready = true;
    while (auto got = try_receive(node_y)) {
      ids_at_y.push_back(command_id_of(got->back()));
      y_ready = true;
    }
    while (auto got = try_receive(tap)) tap_ready = true;
    return x_ready && y_ready && tap_ready;
  }));

  const auto command_body = retry_command(100, "node-x");
  send_parts(processor, {"node-x", "task.retry", command_body});
  send_parts(processor, {"node-y", "task.retry", retry_command(200, "node-y")});

  std::optional<frames> at_x;
  REQUIRE(wait_until([&] {
    auto got = try_receive(node_x);
    if (got && command_id_of(got->back()) == 100) at_x = std::move(got);
    return at_x.has_value();
  }));
  REQUIRE(at_x->size() == 1);  // the ROUTER strips the routing frame
  CHECK(text_of(at_x->front()) == command_body);

  // The marker for node-y was relayed after command 100: once it is in, command 100 would
  // have arrived before it had it been misrouted.
  REQUIRE(wait_until([&] {
    while (auto got = try_receive(node_y)) ids_at_y.push_back(command_id_of(got->back()));
    return !ids_at_y.empty() && ids_at_y.back() == 200;
  }));
  for (const auto id : ids_at_y) CHECK(id != 100);

  std::optional<frames> on_bus;
  REQUIRE(wait_until([&] {
    auto got = try_receive(tap);
    if (got && got->size() == 2 && command_id_of(got->back()) == 100) on_bus = std::move(got);
    return on_bus.has_value();
  }));
  CHECK(text_of(on_bus->front()) == "cmd.task.retry node-x");
  CHECK(text_of(on_bus->back()) == command_body);
  CHECK(stop_broker(broker) == 0);
}

TEST_CASE("a command for a node that is not connected produces command.undeliverable", "[broker]") {
  broker_process broker;
  sockets zmq_sockets;
  auto monitor = zmq_sockets.make(zmq::socket_type::sub);
  monitor.set(zmq::sockopt::subscribe, "command.undeliverable");
  monitor.connect(broker.events_out);
  auto processor = zmq_sockets.make(zmq::socket_type::push);
  processor.connect(broker.commands_in);

  std::optional<frames> notice;
  REQUIRE(wait_until([&] {
    send_parts(processor, {"ghost", "task.retry", retry_command(7, "ghost")});
    notice = try_receive(monitor);
    return notice.has_value();
  }));
  REQUIRE(notice->size() == 2);
  CHECK(text_of(notice->front()) == "command.undeliverable broker");
  auto decoded = rrh::decode_event(notice->back().data(), notice->back().size());
  REQUIRE(decoded.has_value());
  CHECK(decoded->header.node == "broker");
  CHECK(decoded->header.seq == 0);
  CHECK(decoded->header.incarnation != 0);
  const auto* body = std::get_if<rrh::events::command_undeliverable>(&decoded->body);
  REQUIRE(body != nullptr);
  CHECK(body->command_id == 7);
  CHECK(body->target == "ghost");
  CHECK(body->command_kind == "task.retry");
  CHECK(body->reason == "target not connected");
  CHECK(stop_broker(broker) == 0);
}

TEST_CASE("an undeliverable ack is counted, not reported, and a tracked command still is",
          "[broker]") {
  broker_process broker;
  sockets zmq_sockets;
  auto monitor = zmq_sockets.make(zmq::socket_type::sub);
  monitor.set(zmq::sockopt::subscribe, "command.undeliverable");
  monitor.connect(broker.events_out);
  auto processor = zmq_sockets.make(zmq::socket_type::push);
  processor.connect(broker.commands_in);

  rrh::command ack;
  ack.node = "ghost";
  ack.body = rrh::commands::ack{.incarnation = 42, .seq = 9};
  const auto ack_body = bytes_of(rrh::encode(ack));
  // Each round sends acks first, then one tracked command: PUSH keeps their order, so
  // once the command's report is seen every ack before it was judged too.
  std::uint64_t acks_sent = 0;
  std::size_t reports_of_acks = 0;
  bool saw_retry = false;
  REQUIRE(wait_until([&] {
    for (int index = 0; index < 10; ++index, ++acks_sent)
      send_parts(processor, {"ghost", "ack", ack_body});
    send_parts(processor, {"ghost", "task.retry", retry_command(7, "ghost")});
    while (auto notice = try_receive(monitor)) {
      auto decoded = rrh::decode_event(notice->back().data(), notice->back().size());
      REQUIRE(decoded.has_value());
      const auto& body = std::get<rrh::events::command_undeliverable>(decoded->body);
      if (body.command_kind == "ack") ++reports_of_acks;
      if (body.command_kind == "task.retry" && body.command_id == 7) saw_retry = true;
    }
    return saw_retry;
  }));
  CHECK(reports_of_acks == 0);
  CHECK(stop_broker(broker) == 0);
  const auto stats = broker.process().wait_line("stopped:", rrh::test::wait_deadline_default);
  REQUIRE(stats.has_value());
  CAPTURE(*stats, acks_sent);
  // Counted: at least the acks of the round whose command report was seen (those of
  // earlier rounds may have been sent before the PUSH connected).
  const auto counter_at = stats->find("undeliverable acks=");
  REQUIRE(counter_at != std::string::npos);
  const auto counted = std::stoull(stats->substr(counter_at + std::string("undeliverable acks=").size()));
  CHECK(counted >= 10);
  CHECK(counted <= acks_sent);
}

TEST_CASE("malformed command input is dropped and counted, and the broker keeps working",
          "[broker]") {
  broker_process broker;
  sockets zmq_sockets;
  auto node_x = zmq_sockets.make(zmq::socket_type::dealer);
  node_x.set(zmq::sockopt::routing_id, "node-x");
  node_x.connect(broker.commands_out);
  auto monitor = zmq_sockets.make(zmq::socket_type::sub);
  monitor.set(zmq::sockopt::subscribe, "");
  monitor.connect(broker.events_out);
  auto processor = zmq_sockets.make(zmq::socket_type::push);
  processor.connect(broker.commands_in);

  bool x_ready = false, monitor_ready = false;
  REQUIRE(wait_until([&] {
    send_parts(processor, {"node-x", "task.retry", retry_command(1, "node-x")});
    while (auto got = try_receive(node_x)) x_ready = true;
    while (auto got = try_receive(monitor)) monitor_ready = true;
    return x_ready && monitor_ready;
  }));

  const std::string oversized(rrh::message_bytes_max + 1, 'x');
  send_parts(processor, {"node-x"});                // 1 frame
  send_parts(processor, {"node-x", "task.retry"});  // 2 frames
  send_parts(processor, {"node-x", "task.retry", retry_command(3, "node-x"), "extra"});
  send_parts(processor, {"bad id!", "task.retry", retry_command(4, "node-x")});  // invalid id
  send_parts(processor, {"node-x", "task retry", retry_command(5, "node-x")});   // invalid kind
  send_parts(processor, {"node-x", "task.retry", ""});                           // empty body
  send_parts(processor, {"node-x", "task.retry", oversized});                    // too large
  send_parts(processor, {"ghost", "task.retry", "not msgpack"});  // undeliverable, undecodable
  const auto valid = retry_command(300, "node-x");
  send_parts(processor, {"node-x", "task.retry", valid});
  constexpr std::uint64_t malformed_sent = 8;

  std::optional<frames> at_x;
  REQUIRE(wait_until([&] {
    auto got = try_receive(node_x);
    if (got && text_of(got->back()) == valid) at_x = std::move(got);
    return at_x.has_value();
  }));

  // The undecodable body is still reported, with command id 0; nothing malformed reaches
  // the bus as a command.
  bool saw_undeliverable = false;
  REQUIRE(wait_until([&] {
    while (auto got = try_receive(monitor)) {
      const auto topic = text_of(got->front());
      CHECK(topic.find("bad id!") == std::string::npos);
      CHECK(topic.find("task retry") == std::string::npos);
      if (topic == "command.undeliverable broker") {
        auto decoded = rrh::decode_event(got->back().data(), got->back().size());
        REQUIRE(decoded.has_value());
        const auto& body = std::get<rrh::events::command_undeliverable>(decoded->body);
        if (body.target == "ghost") {
          CHECK(body.command_id == 0);
          saw_undeliverable = true;
        }
      }
    }
    return saw_undeliverable;
  }));

  // Events still flow after the bad input.
  auto publisher = zmq_sockets.make(zmq::socket_type::pub);
  publisher.connect(broker.events_in);
  const auto body = bytes_of(rrh::encode(task_failed_event(9)));
  REQUIRE(wait_until([&] {
    send_parts(publisher, {"task.failed agent-1", body});
    while (auto got = try_receive(monitor)) {
      if (text_of(got->back()) == body) return true;
    }
    return false;
  }));

  CHECK(stop_broker(broker) == 0);
  const auto stats = broker.process().wait_line("stopped:", rrh::test::wait_deadline_default);
  REQUIRE(stats.has_value());
  CHECK(stats->find("malformed=" + std::to_string(malformed_sent) + " ") != std::string::npos);
}

TEST_CASE("SIGTERM stops the broker with exit code 0 within a second", "[broker]") {
  broker_process broker;
  sockets zmq_sockets;
  auto subscriber = zmq_sockets.make(zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::subscribe, "");
  subscriber.connect(broker.events_out);
  const auto started = std::chrono::steady_clock::now();
  CHECK(stop_broker(broker) == 0);  // stop_broker allows exactly one second
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
}

TEST_CASE("a config file with an unknown key is refused with the key's name", "[broker]") {
  const auto path = std::filesystem::temp_directory_path() /
                    ("rrh-broker-test-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream file(path);
    file << "events_in: tcp://127.0.0.1:*\nevent_out: tcp://127.0.0.1:*\n";
  }
  rrh::test::child_process broker(rrh::test::binary_path("rrh-broker"),
                                  {"--config", path.string()});
  const auto status = broker.wait_exit(rrh::test::wait_deadline_default);
  std::filesystem::remove(path);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 2);
  CHECK(broker.wait_line("unknown key 'event_out'", std::chrono::milliseconds(1000)).has_value());
}
