// Faults of rrh's own parts under a live fleet, on real processes: the processor or the
// broker stopped (SIGSTOP) for many detection windows, the broker killed and restarted
// on its ports, a flood of task events of an agent that never registered, more nodes
// than max_nodes that then fall silent, and acks for nodes without a command socket.
// Every wait is on a condition with a deadline; where the fault is "time passes while a
// process is stopped", the test lets it pass in a deadline-bound loop that drains the bus.
#include <cstdlib>
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "processor_stack.hpp"

using namespace std::chrono_literals;
using rrh::test::elapsed_ms;
using rrh::test::wait_until;

namespace {

/// Long enough for the detector (about 0.7 s of silence at test speed) to judge every
/// node several times over.
constexpr auto pause_duration = 4s;
/// After a fault ends: time for any false verdict, recover or restart to show.
constexpr auto settle_duration = 3s;
/// One broker outage of the restart test: several detection windows.
constexpr auto outage_duration = 2500ms;

/// The number after `"key":` in `json` (the first occurrence, or the last with
/// `last`); nothing when the key is absent.
std::optional<std::uint64_t> json_number(const std::string& json, const std::string& key, bool last = false) {
  const auto needle = "\"" + key + "\":";
  const auto at = last ? json.rfind(needle) : json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  const auto start = at + needle.size();
  std::size_t end = start;
  while (end < json.size() && json[end] >= '0' && json[end] <= '9') ++end;
  if (end == start) return std::nullopt;
  return std::stoull(json.substr(start, end - start));
}

/// Occurrences of `needle` in `text`.
std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

/// Pids of the children a launcher started, from its "child pid=N started" lines.
std::vector<pid_t> started_children(const rrh::test::child_process& launcher) {
  std::vector<pid_t> pids;
  for (const auto& line : launcher.lines()) {
    if (line.find("rrh-launch: child pid=") == std::string::npos || line.find(" started for node ") == std::string::npos) {
      continue;
    }
    pids.push_back(static_cast<pid_t>(std::stol(rrh::ready_line_field(line, "pid"))));
  }
  return pids;
}

struct fleet : rrh::test::processor_stack {
  using processor_stack::processor_stack;

  /// rrh-agent for `node` hosting `agents` agents (`node`.a1 …), tasks running on end.
  std::unique_ptr<rrh::test::child_process> agent(const std::string& node, int agents) {
    return std::make_unique<rrh::test::child_process>(
        rrh::test::binary_path("rrh-agent"),
        std::vector<std::string>{"--node", node, "--agents", std::to_string(agents), "--task-ms", "50",
                                 "--heartbeat-ms", "100", "--events", broker.events_in, "--commands",
                                 broker.commands_out},
        std::vector<std::string>{"RRH_RETRANSMIT_INITIAL_MS=100", "RRH_RETRANSMIT_MAX_MS=500"});
  }

  /// rrh-launch for `node` supervising an rrh-agent that hosts `node`.a1.
  std::unique_ptr<rrh::test::child_process> launch(const std::string& node) {
    return std::make_unique<rrh::test::child_process>(
        rrh::test::binary_path("rrh-launch"),
        std::vector<std::string>{"--node", node, "--agent", node + ".a1", "--events", broker.events_in,
                                 "--commands", broker.commands_out, "--heartbeat-ms", "100", "--grace-ms",
                                 "5000", "--", rrh::test::binary_path("rrh-agent"), "--agents", "1",
                                 "--task-ms", "50", "--heartbeat-ms", "100"},
        std::vector<std::string>{"RRH_RETRANSMIT_INITIAL_MS=100", "RRH_RETRANSMIT_MAX_MS=500"});
  }

  /// rrh-ctl's answer to `arguments` (its output lines joined), empty when it failed.
  std::string ctl(const std::vector<std::string>& arguments) {
    std::vector<std::string> full = {"--control", processor->control};
    full.insert(full.end(), arguments.begin(), arguments.end());
    rrh::test::child_process answer(rrh::test::binary_path("rrh-ctl"), full);
    const auto status = answer.wait_exit(10s);
    if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) return {};
    std::string text;
    for (const auto& line : answer.lines()) text += line;
    return text;
  }

  /// Lets `duration` pass while the bus is drained (a fault that is time itself).
  void let_pass(std::chrono::milliseconds duration) {
    const auto until = std::chrono::steady_clock::now() + duration;
    wait_for([&] { return std::chrono::steady_clock::now() >= until; }, duration + 5s);
  }

  /// agent.dead events about `agent`.
  std::size_t deaths_of(const std::string& agent) const {
    std::size_t count = 0;
    for (const auto& [entry, dead] : recorder.events_of<rrh::events::agent_dead>()) count += dead->agent == agent ? 1 : 0;
    return count;
  }

  /// agent.recover commands relayed on the bus about `agent`.
  std::size_t recovers_of(const std::string& agent) const {
    std::size_t count = 0;
    for (const auto& [entry, recover] : recorder.commands_of<rrh::commands::agent_recover>()) {
      count += recover->agent == agent ? 1 : 0;
    }
    return count;
  }

  /// Waits until rrh-ctl lists each of `agents` as healthy.
  bool all_healthy(const std::vector<std::string>& agents, std::chrono::milliseconds deadline = 20s) {
    return wait_for(
        [&] {
          for (const auto& id : agents) {
            if (ctl({"agent", id}).find("\"state\":\"healthy\"") == std::string::npos) return false;
          }
          return true;
        },
        deadline);
  }

  /// Kills the broker and, after `outage`, starts it again on the same endpoints.
  void restart_broker(std::chrono::milliseconds outage) {
    auto& running = replacement_broker ? *replacement_broker : broker.process();
    running.signal(SIGKILL);
    REQUIRE(running.wait_exit(5s));
    let_pass(outage);
    replacement_broker = std::make_unique<rrh::test::child_process>(
        rrh::test::binary_path("rrh-broker"),
        std::vector<std::string>{"--events-in", broker.events_in, "--events-out", broker.events_out,
                                 "--commands-in", broker.commands_in, "--commands-out", broker.commands_out});
    REQUIRE(replacement_broker->wait_line("rrh-broker ready", rrh::test::wait_deadline_default));
  }

  std::unique_ptr<rrh::test::child_process> replacement_broker;
};

/// A fleet of ten healthy agents on six nodes, two of them rrh-launch children.
struct healthy_fleet {
  explicit healthy_fleet(fleet& bus) {
    for (const auto* node : {"plain-1", "plain-2", "plain-3", "plain-4"}) {
      plain.push_back(bus.agent(node, 2));
      agents.push_back(std::string(node) + ".a1");
      agents.push_back(std::string(node) + ".a2");
    }
    for (const auto* node : {"kept-1", "kept-2"}) {
      launchers.push_back(bus.launch(node));
      agents.push_back(std::string(node) + ".a1");
    }
  }

  /// Each launcher's first child, once each launcher has started exactly one.
  std::vector<pid_t> children() const {
    std::vector<pid_t> pids;
    for (const auto& launcher : launchers) {
      const auto started = started_children(*launcher);
      if (started.size() == 1) pids.push_back(started.front());
    }
    return pids;
  }

  std::vector<std::unique_ptr<rrh::test::child_process>> plain;
  std::vector<std::unique_ptr<rrh::test::child_process>> launchers;
  std::vector<std::string> agents;
};

/// What a fault may not have done to a live fleet: counted, then checked exactly.
void check_untouched(fleet& bus, const healthy_fleet& live, const std::vector<pid_t>& children_before) {
  std::size_t deaths = 0;
  std::size_t recovers = 0;
  for (const auto& id : live.agents) {
    deaths += bus.deaths_of(id);
    recovers += bus.recovers_of(id);
  }
  std::size_t restarts = 0;
  for (const auto& launcher : live.launchers) restarts += started_children(*launcher).size() - 1;
  const auto listing = bus.ctl({"agents"});
  REQUIRE_FALSE(listing.empty());
  std::size_t attempts = 0;
  std::size_t not_healthy = 0;
  for (const auto& id : live.agents) {
    const auto answer = bus.ctl({"agent", id});
    attempts += json_number(answer, "recovery_attempts").value_or(1);
    not_healthy += answer.find("\"state\":\"healthy\"") == std::string::npos ? 1 : 0;
  }
  CAPTURE(deaths, recovers, restarts, attempts, not_healthy, listing);
  CHECK(deaths == 0);
  CHECK(recovers == 0);
  CHECK(restarts == 0);
  CHECK(live.children() == children_before);
  CHECK(occurrences(listing, "\"state\":\"quarantined\"") == 0);
  CHECK(attempts == 0);
  CHECK(not_healthy == 0);
}

/// Publishes raw events on the bus as nodes would, each node numbering its critical
/// events from 1 within its incarnation.
class raw_nodes {
 public:
  raw_nodes(rrh::test::sockets& owner, const std::string& events_in) : publisher_(owner.make(zmq::socket_type::pub)) {
    publisher_.set(zmq::sockopt::sndhwm, 0);  // a flood queues here rather than drop
    publisher_.connect(events_in);
  }

  /// Sends `body` as `node` (incarnation `incarnation`) with sequence number `seq`.
  void send(const std::string& node, std::uint64_t incarnation, std::uint64_t seq, rrh::event_body body) {
    rrh::event message;
    message.header.node = node;
    message.header.incarnation = incarnation;
    message.header.seq = seq;
    message.header.ts_ms = 1'700'000'000'000;
    message.body = std::move(body);
    rrh::test::send_parts(publisher_, {rrh::event_topic(message), rrh::test::bytes_of(rrh::encode(message))});
  }

  /// A heartbeat of `node` with no agents.
  void heartbeat(const std::string& node, std::uint64_t incarnation) {
    rrh::events::heartbeat beat;
    beat.interval_ms = 100;
    beat.pid = 1;
    beat.host = "raw";
    send(node, incarnation, 0, beat);
  }

  /// Until the bus carries this publisher's events: heartbeats of `node` until the
  /// recorder has one.
  bool warm_up(fleet& bus, const std::string& node, std::uint64_t incarnation) {
    return bus.wait_for([&] {
      heartbeat(node, incarnation);
      for (const auto& [entry, beat] : bus.recorder.events_of<rrh::events::heartbeat>()) {
        if (entry->message->header.node == node) return true;
      }
      return false;
    });
  }

 private:
  zmq::socket_t publisher_;
};

/// A task.started of `agent` for task `task`.
rrh::events::task_started started_of(const std::string& agent, const std::string& task) {
  rrh::events::task_started started;
  started.task = task;
  started.agent = agent;
  return started;
}

/// A subscriber to one topic prefix, beside the recorder: a flood may overrun the
/// recorder's queue, and the one event a test looks for must not be lost with it.
struct topic_watch {
  topic_watch(rrh::test::sockets& owner, const std::string& events_out, const std::string& prefix)
      : subscriber(owner.make(zmq::socket_type::sub)) {
    subscriber.set(zmq::sockopt::rcvhwm, 0);
    subscriber.set(zmq::sockopt::subscribe, prefix);
    subscriber.connect(events_out);
  }
  void pump() {
    while (auto parts = rrh::test::try_receive(subscriber)) {
      if (parts->size() < 2) continue;
      auto decoded = rrh::decode_event((*parts)[1].data(), (*parts)[1].size());
      if (decoded) seen.push_back(std::move(decoded.value()));
    }
  }
  zmq::socket_t subscriber;
  std::vector<rrh::event> seen;
};

}  // namespace

TEST_CASE("a processor stopped for many detection windows kills nobody alive, then judges the dead",
          "[own_faults][integration]") {
  fleet bus("rrh-own-processor-stop");
  healthy_fleet live(bus);
  auto victim = bus.agent("victim", 1);
  auto all = live.agents;
  all.push_back("victim.a1");
  REQUIRE(bus.all_healthy(all));
  const auto children_before = live.children();
  REQUIRE(children_before.size() == live.launchers.size());

  bus.processor->process().signal(SIGSTOP);
  victim->signal(SIGKILL);  // dies unseen, with no supervisor to report it
  REQUIRE(victim->wait_exit(5s));
  bus.let_pass(pause_duration);
  bus.processor->process().signal(SIGCONT);
  const auto resumed_at = std::chrono::steady_clock::now();

  // The dead node is judged after the pause, within a fresh detection window: about
  // 0.7 s of silence, as before the pause (processor_test's bound, 3 s, leaves room for
  // the backlog on a loaded machine). The pause itself is no evidence of its death.
  REQUIRE(bus.wait_for([&] { return bus.deaths_of("victim.a1") >= 1; }, 15s));
  for (const auto& [entry, dead] : bus.recorder.events_of<rrh::events::agent_dead>()) {
    if (dead->agent != "victim.a1") continue;
    CAPTURE(elapsed_ms(resumed_at, entry->arrived));
    CHECK(elapsed_ms(resumed_at, entry->arrived) <= 3000.0);
    break;
  }
  bus.let_pass(settle_duration);
  check_untouched(bus, live, children_before);
  CHECK(bus.deaths_of("victim.a1") == 1);
  const auto status = bus.ctl({"status"});
  CAPTURE(status);
  CHECK(json_number(status, "stalls").value_or(0) >= 1);
}

TEST_CASE("a broker stopped for many detection windows kills nobody and restarts nothing",
          "[own_faults][integration]") {
  fleet bus("rrh-own-broker-stop");
  healthy_fleet live(bus);
  REQUIRE(bus.all_healthy(live.agents));
  const auto children_before = live.children();
  REQUIRE(children_before.size() == live.launchers.size());

  bus.broker.process().signal(SIGSTOP);
  bus.let_pass(pause_duration);
  bus.broker.process().signal(SIGCONT);
  bus.let_pass(settle_duration);
  REQUIRE(bus.all_healthy(live.agents));
  check_untouched(bus, live, children_before);
  const auto status = bus.ctl({"status"});
  CAPTURE(status);
  CHECK(json_number(status, "deaf_spells").value_or(0) >= 1);
}

TEST_CASE("a broker killed and restarted twice on its ports charges no live agent a recovery",
          "[own_faults][integration]") {
  fleet bus("rrh-own-broker-restart");
  healthy_fleet live(bus);
  REQUIRE(bus.all_healthy(live.agents));
  const auto children_before = live.children();
  REQUIRE(children_before.size() == live.launchers.size());

  for (int outage = 1; outage <= 2; ++outage) {
    CAPTURE(outage);
    bus.restart_broker(outage_duration);
    REQUIRE(bus.all_healthy(live.agents, 30s));
  }
  bus.let_pass(settle_duration);
  check_untouched(bus, live, children_before);
}

TEST_CASE("task events of an agent that never registered are refused, counted, alerted and acked",
          "[own_faults][integration]") {
  // RRH_UNKNOWN_TASK_EVENTS sets the flood's size for a long run (1,000,000 in the issue).
  const char* override_total = std::getenv("RRH_UNKNOWN_TASK_EVENTS");
  const std::uint64_t events_total = override_total != nullptr ? std::strtoull(override_total, nullptr, 10) : 100'000;
  constexpr std::uint64_t window = 5'000;  // sent beyond the last ack
  const std::string node = "ghost-node";
  constexpr std::uint64_t incarnation = 7;
  fleet bus("rrh-own-unknown-agent");
  topic_watch alerts(bus.context, bus.broker.events_out, "alert");
  auto commands = bus.context.make(zmq::socket_type::dealer);
  commands.set(zmq::sockopt::routing_id, node);
  commands.connect(bus.broker.commands_out);
  raw_nodes nodes(bus.context, bus.broker.events_in);
  REQUIRE(nodes.warm_up(bus, node, incarnation));

  std::uint64_t acked = 0;
  std::uint64_t sent = 0;
  auto progress_at = std::chrono::steady_clock::now();
  const auto started_at = progress_at;
  const bool all_acked = wait_until(
      [&] {
        while (auto parts = rrh::test::try_receive(commands)) {
          auto decoded = rrh::decode_command(parts->back().data(), parts->back().size());
          if (!decoded) continue;
          if (const auto* ack = std::get_if<rrh::commands::ack>(&decoded->body);
              ack != nullptr && ack->incarnation == incarnation && ack->seq > acked) {
            acked = ack->seq;
            progress_at = std::chrono::steady_clock::now();
          }
        }
        // A gap (an event lost before the subscription was in) stalls the acks: resend
        // from the first unacked, as the shim does.
        if (std::chrono::steady_clock::now() - progress_at > 1s) {
          sent = acked;
          progress_at = std::chrono::steady_clock::now();
        }
        while (sent < events_total && sent < acked + window) {
          ++sent;
          nodes.send(node, incarnation, sent, started_of("never-registered", "ghost-task-" + std::to_string(sent)));
        }
        alerts.pump();
        return acked == events_total;
      },
      120s);
  CAPTURE(acked, sent, elapsed_ms(started_at, std::chrono::steady_clock::now()));
  REQUIRE(all_acked);

  const auto status = bus.ctl({"status"});
  CAPTURE(status);
  const auto tasks_at = status.find("\"tasks\":{");
  REQUIRE(tasks_at != std::string::npos);
  CHECK(json_number(status.substr(tasks_at), "total") == 0u);
  CHECK(json_number(status, "events_refused") == events_total);
  REQUIRE(wait_until([&] {
    alerts.pump();
    return std::any_of(alerts.seen.begin(), alerts.seen.end(), [](const rrh::event& message) {
      const auto* alert = std::get_if<rrh::events::alert>(&message.body);
      return alert != nullptr && alert->code == "task.unknown_agent";
    });
  }));
}

TEST_CASE("nodes beyond max_nodes that fall silent are forgotten, and a new node is tracked again",
          "[own_faults][integration]") {
  constexpr int silent_nodes = 400;
  constexpr std::uint64_t max_nodes = 300;
  fleet bus("rrh-own-node-retention", {{"max_nodes", std::to_string(max_nodes)}, {"node_retention", "2"}});
  raw_nodes nodes(bus.context, bus.broker.events_in);
  const auto node_name = [](int index) { return "silent-" + std::to_string(index); };
  REQUIRE(nodes.warm_up(bus, node_name(0), 1));
  for (int index = 1; index < silent_nodes; ++index) nodes.heartbeat(node_name(index), 1);

  // The table fills to its limit; the rest are refused.
  std::string status;
  REQUIRE(bus.wait_for([&] {
    status = bus.ctl({"status"});
    return json_number(status, "limit_rejections").value_or(0) >= silent_nodes - max_nodes;
  }));
  CAPTURE(status);
  CHECK(json_number(status, "nodes", true) == max_nodes);

  // Dead after about 0.7 s of silence, forgotten 2 s later.
  const auto forgotten = bus.wait_for(
      [&] {
        status = bus.ctl({"status"});
        return json_number(status, "nodes_forgotten").value_or(0) >= max_nodes;
      },
      20s);
  CHECK(forgotten);
  CHECK(json_number(status, "nodes", true).value_or(max_nodes) == 0u);

  auto fresh = bus.agent("fresh-node", 1);
  CHECK(bus.all_healthy({"fresh-node.a1"}, 15s));
}

TEST_CASE("acks for nodes without a command socket never come back as command.undeliverable",
          "[own_faults][integration]") {
  constexpr int flood_nodes = 50;
  constexpr std::uint64_t events_per_node = 20;
  fleet bus("rrh-own-undeliverable-acks");
  topic_watch reports(bus.context, bus.broker.events_out, "command.undeliverable");
  raw_nodes nodes(bus.context, bus.broker.events_in);
  REQUIRE(nodes.warm_up(bus, "flood-warm", 1));
  for (int index = 0; index < flood_nodes; ++index) {
    const auto node = "flood-" + std::to_string(index);
    for (std::uint64_t seq = 1; seq <= events_per_node; ++seq) {
      nodes.send(node, 1, seq, started_of(node + ".never", node + ".t" + std::to_string(seq)));
    }
  }
  // The processor took the flood in and acked it: at least one ack per node went out.
  std::string status;
  REQUIRE(bus.wait_for([&] {
    status = bus.ctl({"status"});
    reports.pump();
    return json_number(status, "events_received").value_or(0) >= flood_nodes * events_per_node &&
           json_number(status, "commands_sent").value_or(0) >= static_cast<std::uint64_t>(flood_nodes);
  }));
  // Time for the broker's judgement of those acks to reach the bus.
  bus.let_pass(1s);
  reports.pump();
  std::size_t ack_reports = 0;
  for (const auto& message : reports.seen) {
    const auto* report = std::get_if<rrh::events::command_undeliverable>(&message.body);
    if (report != nullptr && report->command_kind == "ack") ++ack_reports;
  }
  CAPTURE(status, reports.seen.size());
  CHECK(ack_reports == 0);

  // The broker counted them instead.
  bus.broker.process().signal(SIGTERM);
  REQUIRE(bus.broker.process().wait_exit(5s));
  const auto stats = bus.broker.process().wait_line("stopped:", 1s);
  REQUIRE(stats.has_value());
  CAPTURE(*stats);
  const std::string counter = "undeliverable acks=";
  const auto counter_at = stats->find(counter);
  REQUIRE(counter_at != std::string::npos);
  CHECK(std::stoull(stats->substr(counter_at + counter.size())) >= static_cast<std::uint64_t>(flood_nodes));
}
