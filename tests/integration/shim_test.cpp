// The shim against a real rrh-broker process: reliable delivery of critical events,
// outbox overflow policies, command routing, de-duplication and probes.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <thread>

#include "bus_peer.hpp"
#include "rrh/shim.hpp"
#include "shim_fixture.hpp"

using namespace std::chrono_literals;
using rrh::test::wait_until;

namespace {

rrh::shim_config config_for(const rrh::test::broker_process& broker, const std::string& node) {
  auto config = rrh::test::test_shim_config(node, broker.events_in, broker.commands_out, 50);
  config.retransmit_max_ms = 200;
  return config;
}

rrh::command retry_command(std::uint64_t id, const std::string& node, const std::string& agent) {
  rrh::command message;
  message.id = id;
  message.node = node;
  message.body = rrh::commands::task_retry{"task-1", agent, 2, {}, {'c', 'k'}};
  return message;
}

// Sends `message` until the shim acks it (the command channel drops commands for a node
// whose DEALER has not connected yet, as the processor's retransmission expects).
bool deliver(rrh::test::bus_peer& peer, const rrh::command& message) {
  auto next_send = std::chrono::steady_clock::now();
  return wait_until([&] {
    if (std::chrono::steady_clock::now() >= next_send) {
      peer.send(message);
      next_send = std::chrono::steady_clock::now() + 100ms;
    }
    peer.pump();
    return !peer.acks_of(message.id).empty();
  });
}

}  // namespace

TEST_CASE("shim retransmits critical events until the processor acks them", "[shim][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);
  rrh::shim node(config_for(broker, "node-r"));
  REQUIRE(node.register_agent("agent-r"));
  REQUIRE(node.record_task_started("agent-r", "task-1"));

  // Unacked, the first event keeps coming back, byte for byte the same.
  REQUIRE(wait_until([&] {
    peer.pump();
    return peer.copies("node-r", node.incarnation(), 1) >= 3;
  }));
  REQUIRE(peer.conflicting_copies == 0);
  REQUIRE(node.stats().events_retransmitted >= 2);
  REQUIRE(node.stats().outbox_size == 2);

  // Once acked, the outbox drains and flush succeeds.
  peer.auto_ack = true;
  REQUIRE(wait_until([&] {
    peer.pump();
    return node.stats().outbox_size == 0;
  }));
  REQUIRE(node.stats().events_acked == 2);
  REQUIRE(node.flush(0ms));
  REQUIRE(peer.contiguous("node-r", node.incarnation()) == 2);
}

TEST_CASE("a full outbox follows its overflow policy and never drops silently", "[shim][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);

  SECTION("policy error: refused at once, accepted again after an ack") {
    auto config = config_for(broker, "node-e");
    config.outbox_capacity = 2;
    config.outbox_overflow = rrh::overflow_policy::error;
    rrh::shim node(config);
    REQUIRE(node.register_agent("agent-e"));
    REQUIRE(node.record_task_started("agent-e", "task-1"));
    const auto refused = node.record_task_succeeded("agent-e", "task-1");
    REQUIRE_FALSE(refused);
    REQUIRE(refused.error().code == rrh::errc::outbox_full);
    REQUIRE(node.stats().outbox_rejections == 1);

    peer.auto_ack = true;
    REQUIRE(wait_until([&] {
      peer.pump();
      return node.stats().outbox_size == 0;
    }));
    REQUIRE(node.record_task_succeeded("agent-e", "task-1"));
  }
  SECTION("policy block: waits for space, times out when none comes") {
    auto config = config_for(broker, "node-b");
    config.outbox_capacity = 1;
    config.outbox_overflow = rrh::overflow_policy::block;
    config.outbox_block_timeout_ms = 100;
    rrh::shim node(config);
    REQUIRE(node.register_agent("agent-b"));
    const auto timed_out = node.record_task_started("agent-b", "task-1");
    REQUIRE_FALSE(timed_out);
    REQUIRE(timed_out.error().code == rrh::errc::timeout);
    REQUIRE(node.stats().outbox_rejections == 1);
  }
  SECTION("policy block: a blocked caller continues when an ack frees space") {
    auto config = config_for(broker, "node-w");
    config.outbox_capacity = 1;
    config.outbox_overflow = rrh::overflow_policy::block;
    config.outbox_block_timeout_ms = 30'000;
    rrh::shim node(config);
    REQUIRE(node.register_agent("agent-w"));
    auto blocked = std::async(std::launch::async,
                              [&node] { return node.record_task_started("agent-w", "task-1"); });
    REQUIRE(blocked.wait_for(0ms) == std::future_status::timeout);
    peer.auto_ack = true;
    REQUIRE(wait_until([&] {
      peer.pump();
      return blocked.wait_for(0ms) == std::future_status::ready;
    }));
    REQUIRE(blocked.get());
    REQUIRE(node.stats().outbox_rejections == 0);
  }
}

TEST_CASE("a command reaches its node's handler once, however often it is sent", "[shim][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);
  peer.auto_ack = true;
  rrh::shim node_x(config_for(broker, "node-x"));
  rrh::shim node_y(config_for(broker, "node-y"));
  REQUIRE(node_x.register_agent("agent-x"));
  REQUIRE(node_y.register_agent("agent-y"));
  std::atomic<int> handled_x{0};
  std::atomic<int> handled_y{0};
  rrh::byte_buffer checkpoint_seen;
  std::mutex checkpoint_mutex;
  node_x.set_handler("task.retry", [&](const rrh::command& message) {
    const std::lock_guard lock(checkpoint_mutex);
    checkpoint_seen = std::get<rrh::commands::task_retry>(message.body).checkpoint;
    ++handled_x;
    return rrh::command_result::accept();
  });
  node_y.set_handler("task.retry", [&](const rrh::command&) {
    ++handled_y;
    return rrh::command_result::accept();
  });

  const auto command = retry_command(77, "node-x", "agent-x");
  REQUIRE(deliver(peer, command));
  REQUIRE(handled_x == 1);
  {
    const std::lock_guard lock(checkpoint_mutex);
    REQUIRE(checkpoint_seen == rrh::byte_buffer{'c', 'k'});
  }

  // The same id again (its ack was "lost"): acked again with the same answer, not re-run.
  const auto acks_before = peer.acks_of(77).size();
  peer.send(command);
  REQUIRE(wait_until([&] {
    peer.pump();
    return peer.acks_of(77).size() > acks_before;
  }));
  REQUIRE(handled_x == 1);
  REQUIRE(node_x.stats().commands_duplicate >= 1);
  for (const auto& ack : peer.acks_of(77)) REQUIRE(ack.accepted);

  // Node y never saw it; the bus shows the relayed command to node-x.
  REQUIRE(handled_y == 0);
  REQUIRE(node_y.stats().commands_received == 0);
  REQUIRE(std::find(peer.relayed_commands.begin(), peer.relayed_commands.end(),
                    "cmd.task.retry node-x") != peer.relayed_commands.end());
}

TEST_CASE("commands without a handler or for a foreign agent are refused", "[shim][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);
  peer.auto_ack = true;
  rrh::shim node(config_for(broker, "node-h"));
  REQUIRE(node.register_agent("agent-h"));

  SECTION("no handler for the kind") {
    rrh::command rollback;
    rollback.id = 5;
    rollback.node = "node-h";
    rollback.body = rrh::commands::task_rollback{"task-9", "agent-h", "abandoned"};
    REQUIRE(deliver(peer, rollback));
    const auto ack = peer.acks_of(5).front();
    REQUIRE_FALSE(ack.accepted);
    REQUIRE(ack.reason.find("no handler") != std::string::npos);
  }
  SECTION("an agent this node does not host") {
    node.set_handler("task.retry", [](const rrh::command&) { return rrh::command_result::accept(); });
    REQUIRE(deliver(peer, retry_command(6, "node-h", "agent-elsewhere")));
    const auto ack = peer.acks_of(6).front();
    REQUIRE_FALSE(ack.accepted);
    REQUIRE(ack.reason.find("not hosted") != std::string::npos);
  }
  SECTION("a handler that throws is a refusal carrying the reason") {
    node.set_handler("task.retry", [](const rrh::command&) -> rrh::command_result {
      throw std::runtime_error("disk full");
    });
    REQUIRE(deliver(peer, retry_command(7, "node-h", "agent-h")));
    const auto ack = peer.acks_of(7).front();
    REQUIRE_FALSE(ack.accepted);
    REQUIRE(ack.reason.find("disk full") != std::string::npos);
  }
}

TEST_CASE("a recover of a hosted agent naming another incarnation is refused as stale",
          "[shim][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);
  peer.auto_ack = true;
  rrh::shim node(config_for(broker, "node-r"));
  REQUIRE(node.register_agent("agent-r"));
  std::atomic<int> handled{0};
  node.set_handler("agent.recover", [&](const rrh::command&) {
    ++handled;
    return rrh::command_result::accept();
  });
  rrh::command recover;
  recover.node = "node-r";

  SECTION("an earlier incarnation: the handler never runs") {
    recover.id = 11;
    recover.body = rrh::commands::agent_recover{
        .agent = "agent-r", .attempt = 1, .incarnation = node.incarnation() + 2};
    REQUIRE(deliver(peer, recover));
    const auto ack = peer.acks_of(11).front();
    CHECK_FALSE(ack.accepted);
    CHECK(ack.reason == rrh::refused_stale);
    CHECK(handled == 0);
  }
  SECTION("the current incarnation, or none, reaches the handler") {
    recover.id = 12;
    recover.body = rrh::commands::agent_recover{
        .agent = "agent-r", .attempt = 1, .incarnation = node.incarnation()};
    REQUIRE(deliver(peer, recover));
    CHECK(peer.acks_of(12).front().accepted);
    recover.id = 13;
    recover.body = rrh::commands::agent_recover{"agent-r", 2};
    REQUIRE(deliver(peer, recover));
    CHECK(peer.acks_of(13).front().accepted);
    CHECK(handled == 2);
  }
  SECTION("an agent hosted elsewhere: the supervisor's handler judges") {
    recover.id = 14;
    recover.body =
        rrh::commands::agent_recover{.agent = "agent-supervised", .attempt = 1, .incarnation = 77};
    REQUIRE(deliver(peer, recover));
    CHECK(peer.acks_of(14).front().accepted);
    CHECK(handled == 1);
  }
}

TEST_CASE("a probe is answered with probe.reply carrying the command id", "[shim][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);
  peer.auto_ack = true;
  rrh::shim node(config_for(broker, "node-p"));
  REQUIRE(node.register_agent("agent-p"));
  // probe.reply is best-effort: probe only once the bus path is up (a heartbeat arrived).
  REQUIRE(wait_until([&] {
    peer.pump();
    return !peer.heartbeats.empty();
  }));
  rrh::command probe;
  probe.id = 900;
  probe.node = "node-p";
  probe.body = rrh::commands::agent_probe{"agent-p"};
  REQUIRE(deliver(peer, probe));
  REQUIRE(wait_until([&] {
    peer.pump();
    return std::any_of(peer.probe_replies.begin(), peer.probe_replies.end(),
                       [](const auto& reply) { return reply.command_id == 900; });
  }));
}

TEST_CASE("heartbeats report each agent's watchdog, stale once it lapses", "[shim][integration]") {
  rrh::test::broker_process broker;
  rrh::test::sockets context;
  rrh::test::bus_peer peer(context, broker.events_out, broker.commands_in);
  peer.auto_ack = true;
  rrh::manual_clock time;
  auto config = config_for(broker, "node-w");
  config.heartbeat_interval_ms = 10;  // on the manual clock: every pump of time sends one
  rrh::shim node(config, time);
  rrh::agent_options watched;
  watched.watchdog_timeout_ms = 1000;
  REQUIRE(node.register_agent("agent-watched", watched));
  REQUIRE(node.register_agent("agent-free"));

  const auto latest_stale = [&](const std::string& agent) -> std::optional<bool> {
    for (auto beat = peer.heartbeats.rbegin(); beat != peer.heartbeats.rend(); ++beat) {
      for (const auto& liveness : beat->agents) {
        if (liveness.agent == agent) return liveness.stale;
      }
    }
    return std::nullopt;
  };
  // The manual clock moves in steps; each step lets the shim's I/O thread send a heartbeat.
  const auto wait_stale = [&](bool expected) {
    return wait_until([&] {
      time.advance(rrh::mono_ms{20});
      peer.pump();
      const auto stale = latest_stale("agent-watched");
      return stale.has_value() && *stale == expected;
    });
  };
  node.beat("agent-watched");
  REQUIRE(wait_stale(false));
  time.advance(rrh::mono_ms{2000});
  REQUIRE(wait_stale(true));
  REQUIRE(latest_stale("agent-free") == false);  // no watchdog: never stale
  node.beat("agent-watched");
  REQUIRE(wait_stale(false));
}
