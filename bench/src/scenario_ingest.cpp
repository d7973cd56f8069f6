// ingest: events per second the processor applies (heartbeat/task mix, every critical
// event acked), against a bare subscriber decoding the same stream through the same broker.
#include <atomic>
#include <cstdio>
#include <thread>

#include "harness.hpp"
#include "rrh/codec.hpp"

namespace rrh::bench {
namespace {

/// The simulated fleet: nodes and the agents each hosts.
constexpr std::size_t ingest_nodes = 100;
constexpr std::size_t ingest_agents_per_node = 10;
/// Every `heartbeat_every`-th event of a node is a heartbeat; the rest are task events.
constexpr std::size_t heartbeat_every = 10;
/// Every `failure_every`-th task fails (retryable; its retry is far in the future).
constexpr std::size_t failure_every = 5;
/// Critical events in flight (sent, not yet acked or consumed): deep enough to keep every
/// hop busy, far below the broker's high-water mark, so nothing is dropped.
constexpr std::uint64_t window_events = 20'000;
/// Longest a timed run may take, and how long after the last send a run ends for lack of
/// messages.
constexpr std::chrono::milliseconds run_timeout_ms{300'000};
constexpr std::chrono::milliseconds idle_end_ms{2'000};
constexpr double ratio_target = 0.8;

struct stream_entry {
  std::size_t node;
  bool critical;
  bus_message message;
};

std::string agent_id(const fleet& nodes, std::size_t node, std::size_t agent) {
  return nodes.node_id(node) + ".a" + std::to_string(agent);
}

/// The timed stream: per node, a heartbeat listing its agents every tenth event, else a
/// task's start and then its outcome (one in five fails with a small checkpoint).
std::vector<stream_entry> build_stream(fleet& nodes, std::uint64_t count) {
  std::vector<stream_entry> stream;
  stream.reserve(count);
  std::vector<std::uint64_t> steps(nodes.size(), 0);
  for (std::uint64_t index = 0; index < count; ++index) {
    const auto node = index % nodes.size();
    const auto step = steps[node]++;
    if (step % heartbeat_every == 0) {
      events::heartbeat beat;
      beat.interval_ms = 1000;
      beat.pid = 1000 + node;
      beat.host = "bench-host";
      for (std::size_t agent = 0; agent < ingest_agents_per_node; ++agent) {
        beat.agents.push_back({agent_id(nodes, node, agent), 100, false});
      }
      stream.push_back({node, false, to_bus(nodes.make(node, beat, false))});
      continue;
    }
    const auto task_step = step - step / heartbeat_every - 1;  // 0, 1, 2… over task events
    const auto task_number = task_step / 2;
    const auto agent = agent_id(nodes, node, task_number % ingest_agents_per_node);
    const auto task = nodes.node_id(node) + ".t" + std::to_string(task_number);
    event_body body;
    if (task_step % 2 == 0) {
      body = events::task_started{task, agent, 1};
    } else if (task_number % failure_every == 0) {
      events::task_failed failed;
      failed.task = task;
      failed.agent = agent;
      failed.error_type = "TimeoutError";
      failed.message = "tool call timed out";
      failed.checkpoint.assign(64, static_cast<std::uint8_t>(task_number));
      body = failed;
    } else {
      body = events::task_succeeded{task, agent, 1};
    }
    stream.push_back({node, true, to_bus(nodes.make(node, std::move(body), true))});
  }
  return stream;
}

struct bare_run {
  std::uint64_t received = 0;
  double seconds = 0;
};

/// The baseline: one SUB decoding every event of the stream, the publisher paced by the
/// same window of critical events.
bare_run run_bare(stack& bus, const std::vector<stream_entry>& stream) {
  zmq::context_t context;
  auto subscriber = subscribe(context, bus.broker(), {"heartbeat ", "task.", "agent.registered "});
  zmq::socket_t publisher(context, zmq::socket_type::pub);
  publisher.set(zmq::sockopt::linger, 0);
  publisher.set(zmq::sockopt::sndhwm, 0);
  publisher.connect(bus.broker().events_in);
  // The publisher's own path: its first messages would be dropped before the broker's
  // subscription reaches it, so wait until one of its probes arrives.
  {
    auto probe_subscriber = subscribe(context, bus.broker(), {});
    const auto deadline = steady::now() + std::chrono::seconds(10);
    zmq::pollitem_t item{probe_subscriber.handle(), 0, ZMQ_POLLIN, 0};
    while (true) {
      zmq::message_t drain;
      while (probe_subscriber.recv(drain, zmq::recv_flags::dontwait)) {
      }
      publisher.send(zmq::str_buffer("bench.probe"), zmq::send_flags::sndmore);
      publisher.send(zmq::str_buffer(""), zmq::send_flags::none);
      if (zmq::poll(&item, 1, std::chrono::milliseconds(10)) > 0) break;
      if (steady::now() > deadline) throw scenario_failure{"baseline publisher handshake timed out"};
    }
  }
  std::atomic<std::uint64_t> consumed_critical{0};
  std::atomic<bool> sender_done{false};
  const auto start = steady::now();
  std::thread sender([&] {
    std::uint64_t sent_critical = 0;
    for (const auto& entry : stream) {
      if (entry.critical) {
        for (auto seen = consumed_critical.load(); sent_critical >= seen + window_events;
             seen = consumed_critical.load()) {
          consumed_critical.wait(seen);
        }
        ++sent_critical;
      }
      publisher.send(zmq::buffer(entry.message.topic), zmq::send_flags::sndmore);
      publisher.send(zmq::buffer(entry.message.body), zmq::send_flags::none);
    }
    sender_done = true;
  });
  bare_run run;
  steady::time_point last = start;
  std::uint64_t critical = 0;
  zmq::pollitem_t item{subscriber.handle(), 0, ZMQ_POLLIN, 0};
  zmq::message_t topic, body;
  const auto give_up = start + run_timeout_ms;
  while (run.received < stream.size() && steady::now() < give_up) {
    if (zmq::poll(&item, 1, idle_end_ms) == 0) {
      if (sender_done) break;
      consumed_critical = stream.size();  // something was lost: release the sender
      consumed_critical.notify_one();
      continue;
    }
    (void)subscriber.recv(topic, zmq::recv_flags::none);
    if (!topic.more()) continue;
    (void)subscriber.recv(body, zmq::recv_flags::none);
    auto decoded = decode_event(body.data(), body.size());
    if (!decoded) continue;  // the handshake probe
    ++run.received;
    last = steady::now();
    if (decoded->header.seq != 0 && ++critical % 256 == 0) {
      consumed_critical = critical;
      consumed_critical.notify_one();
    }
  }
  consumed_critical = stream.size();
  consumed_critical.notify_one();
  sender.join();
  run.seconds = std::chrono::duration<double>(last - start).count();
  return run;
}

}  // namespace

scenario_result run_ingest(const options& settings) {
  const auto count = settings.ingest_events;
  scenario_result result;
  stack bus(settings, "ingest",
            quiet_resilience_yaml() + "  task_retry_delay: 3600\n  task_retry_delay_max: 3600\n",
            /*with_processor=*/false);
  zmq::context_t context;
  fleet nodes(context, bus.broker(), ingest_nodes, "ingest", window_events);
  std::vector<stream_entry> registrations;
  for (std::size_t node = 0; node < nodes.size(); ++node) {
    for (std::size_t agent = 0; agent < ingest_agents_per_node; ++agent) {
      events::agent_registered registered;
      registered.agent = agent_id(nodes, node, agent);
      registered.pool = "bench";
      registrations.push_back({node, true, to_bus(nodes.make(node, registered, true))});
    }
  }
  auto stream = build_stream(nodes, count);
  std::uint64_t critical_count = 0;
  for (const auto& entry : stream) critical_count += entry.critical ? 1 : 0;

  const auto bare = run_bare(bus, stream);
  const double bare_rate = bare.seconds > 0 ? static_cast<double>(bare.received) / bare.seconds : 0;

  bus.start_processor();
  for (auto& entry : registrations) nodes.send_critical(entry.node, std::move(entry.message));
  if (!nodes.wait_all_acked(steady::now() + run_timeout_ms)) {
    throw scenario_failure{"ingest: registrations were not acked"};
  }
  const auto applied_before = bus.status_number("events_applied");
  const auto beats_before = bus.status_number("heartbeats");
  const auto start = steady::now();
  for (auto& entry : stream) {
    if (entry.critical) {
      nodes.send_critical(entry.node, std::move(entry.message));
    } else {
      nodes.send_best_effort(entry.message);
    }
  }
  const bool all_acked = nodes.wait_all_acked(start + run_timeout_ms);
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  const auto status = bus.control("status");
  const auto applied = json_number(status, "events_applied") - applied_before;
  const auto beats = json_number(status, "heartbeats") - beats_before;
  const double rate = (applied + beats) / seconds;
  const bool lossless = all_acked && static_cast<std::uint64_t>(applied) == critical_count;

  figure item{"ingest", rate, bare_rate, bare_rate > 0 ? rate / bare_rate : 0, "events/s", ratio_target,
              true, lossless};
  result.figures.push_back(item);
  result.notes.push_back(format_text(
      "ingest: %llu events (%llu critical, %zu nodes x %zu agents); bare subscriber decoded "
      "%llu in %.2f s; processor applied %.0f critical + %.0f heartbeats in %.2f s, %s, "
      "%llu resent",
      static_cast<unsigned long long>(count), static_cast<unsigned long long>(critical_count),
      ingest_nodes, ingest_agents_per_node, static_cast<unsigned long long>(bare.received),
      bare.seconds, applied, beats, seconds,
      lossless ? "every critical event acked (0 lost)" : "CRITICAL EVENTS MISSING",
      static_cast<unsigned long long>(nodes.retransmitted())));
  return result;
}

}  // namespace rrh::bench
