#pragma once
/// A deterministic harness for the engine: simulated nodes that number their critical
/// events, a clock the test advances by hand, and a log of every effect with the time it
/// was produced. Nothing here reads the real clock or sleeps.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "rrh/engine/engine.hpp"

namespace rrh::engine::test {

/// A configuration with every background activity pushed far away (probes once a day,
/// slow command retransmission), so a test only sees what it sets up.
inline resilience_config quiet_config() {
  resilience_config config;
  config.agent_health_check_interval_ms = 86'400'000;
  config.command_retransmit_initial_ms = 3'600'000;
  config.command_retransmit_max_ms = 3'600'000;
  return config;
}

/// Deaths at a predictable time: suspect after two missed one-second heartbeats, dead
/// after five.
inline resilience_config missed_heartbeats_config() {
  auto config = quiet_config();
  config.failure_detector = detector_mode::missed_heartbeats;
  config.missed_heartbeats_suspect = 2;
  config.missed_heartbeats_dead = 5;
  return config;
}

/// One simulated agent process: a node id, an incarnation, the next critical seq, and
/// the agents it hosts (listed in its heartbeats, with their stale flags).
struct sim_node {
  std::string id;
  std::uint64_t incarnation = 1;
  std::uint64_t next_seq = 1;
  std::uint64_t heartbeat_interval_ms = 1000;
  std::vector<std::string> agents;
  std::set<std::string> stale_agents;
};

/// A command the engine produced, with the processor time it was produced at.
struct sent_command {
  time_ms at_ms;
  command message;
};

/// A derived event the engine published, with the processor time it was published at.
struct published_event {
  time_ms at_ms;
  derived_event event;
};

class engine_fixture {
 public:
  /// Processor time at the start of every test: far from zero, like a real epoch clock.
  static constexpr time_ms start_ms = 1'700'000'000'000;

  explicit engine_fixture(resilience_config config = quiet_config()) : engine_(std::move(config)) {}

  engine& subject() { return engine_; }
  time_ms now() const { return now_; }

  // ---- simulated nodes --------------------------------------------------------------

  sim_node& node(const std::string& id, std::uint64_t incarnation = 1) {
    auto [found, inserted] = nodes_.try_emplace(id);
    if (inserted) {
      found->second.id = id;
      found->second.incarnation = incarnation;
    }
    return found->second;
  }

  /// A critical event from `sender`, numbered with its next seq.
  event critical(sim_node& sender, event_body body, const std::string& episode = {}) {
    event message;
    message.header.node = sender.id;
    message.header.incarnation = sender.incarnation;
    message.header.seq = sender.next_seq++;
    message.header.ts_ms = now_;
    message.header.episode = episode;
    message.body = std::move(body);
    return message;
  }

  /// A best-effort heartbeat from `sender` listing its agents and their stale flags.
  event heartbeat_event(const sim_node& sender) const {
    events::heartbeat beat;
    beat.interval_ms = sender.heartbeat_interval_ms;
    beat.host = "host-" + sender.id;
    beat.pid = 100;
    beat.last_seq = sender.next_seq - 1;
    for (const auto& agent : sender.agents) {
      const bool stale = sender.stale_agents.count(agent) > 0;
      beat.agents.push_back(events::agent_liveness{agent, stale ? 60'000u : 10u, stale});
    }
    event message;
    message.header.node = sender.id;
    message.header.incarnation = sender.incarnation;
    message.header.seq = 0;
    message.header.ts_ms = now_;
    message.body = std::move(beat);
    return message;
  }

  // ---- driving the engine -----------------------------------------------------------

  void deliver(const event& message) {
    effects out;
    engine_.on_event(message, now_, out);
    absorb(out);
  }

  void heartbeat(const std::string& node_id) { deliver(heartbeat_event(node(node_id))); }

  /// Registers `agent` on `node_id` (and lists it in that node's heartbeats).
  void register_agent(const std::string& node_id, const std::string& agent, const std::string& pool = {},
                      const std::string& supervisor = {}, const std::string& episode = {}) {
    auto& sender = node(node_id);
    if (std::find(sender.agents.begin(), sender.agents.end(), agent) == sender.agents.end()) {
      sender.agents.push_back(agent);
    }
    events::agent_registered body;
    body.agent = agent;
    body.pool = pool;
    body.supervisor = supervisor;
    deliver(critical(sender, body, episode));
  }

  void unregister_agent(const std::string& node_id, const std::string& agent, const std::string& episode = {}) {
    auto& sender = node(node_id);
    sender.agents.erase(std::remove(sender.agents.begin(), sender.agents.end(), agent), sender.agents.end());
    deliver(critical(sender, events::agent_unregistered{agent, "done"}, episode));
  }

  void start_task(const std::string& node_id, const std::string& task, const std::string& agent,
                  std::uint64_t attempt = 1, const std::string& episode = {}) {
    deliver(critical(node(node_id), events::task_started{task, agent, attempt}, episode));
  }

  /// Reports a failed attempt of `task`; the checkpoint is the bytes the agent saved.
  void fail_task(const std::string& node_id, const std::string& task, const std::string& agent,
                 std::uint64_t attempt = 1, bool retryable = true, const std::string& error_type = "Timeout",
                 byte_buffer checkpoint = {}, const std::string& episode = {}, const std::string& pool = {}) {
    events::task_failed body;
    body.task = task;
    body.agent = agent;
    body.error_type = error_type;
    body.message = error_type + " in " + task;
    body.retryable = retryable;
    body.attempt = attempt;
    body.pool = pool;
    body.checkpoint = std::move(checkpoint);
    deliver(critical(node(node_id), body, episode));
  }

  void succeed_task(const std::string& node_id, const std::string& task, const std::string& agent,
                    std::uint64_t attempt = 1, const std::string& episode = {}) {
    deliver(critical(node(node_id), events::task_succeeded{task, agent, attempt}, episode));
  }

  void episode_error(const std::string& node_id, const std::string& episode, const std::string& agent = {}) {
    deliver(critical(node(node_id), events::episode_error{agent, "ValueError", "bad step"}, episode));
  }

  /// The node answers command `id` (sent to it) with a command.ack.
  void ack_command(const std::string& node_id, std::uint64_t id, bool accepted = true,
                   const std::string& reason = {}) {
    deliver(critical(node(node_id), events::command_ack{id, accepted, reason}));
  }

  /// Loads `stored` as a restarted processor would, with the clock set to `at_ms`.
  void restore(const snapshot& stored, time_ms at_ms) {
    now_ = at_ms;
    engine_.restore(stored, now_);
  }

  void tick() {
    effects out;
    engine_.on_tick(now_, out);
    absorb(out);
  }

  /// Moves the clock without firing anything: the processor was not running (a stall).
  void stall(time_ms by_ms) { now_ += by_ms; }

  /// Applies `batch` in one engine call, as the shell applies what it drained.
  void deliver_batch(const std::vector<event>& batch) {
    effects out;
    engine_.on_events(batch, now_, out);
    absorb(out);
  }

  void lose_sight(time_ms since) { engine_.lose_sight(since, now_); }
  void regain_sight() {
    effects out;
    engine_.regain_sight(now_, out);
    absorb(out);
  }

  /// Moves the clock to `until_ms`, firing every timer at its own due time on the way,
  /// as the shell does when it sleeps until next_deadline().
  void advance_to(time_ms until_ms) {
    while (const auto due = engine_.next_deadline()) {
      if (*due > until_ms) break;
      now_ = std::max(now_, *due);
      tick();
    }
    now_ = std::max(now_, until_ms);
    tick();
  }
  void advance(time_ms by_ms) { advance_to(now_ + by_ms); }

  /// Like advance_to, but the named nodes keep heartbeating at their interval, starting
  /// one interval from now.
  void advance_with_heartbeats(time_ms until_ms, const std::vector<std::string>& beating) {
    std::map<std::string, time_ms> next_beat;
    for (const auto& id : beating) next_beat[id] = now_ + node(id).heartbeat_interval_ms;
    while (true) {
      std::optional<std::pair<time_ms, std::string>> beat;
      for (const auto& [id, at] : next_beat) {
        if (!beat || at < beat->first) beat = std::make_pair(at, id);
      }
      if (!beat || beat->first > until_ms) break;
      advance_to(beat->first);
      heartbeat(beat->second);
      next_beat[beat->second] += node(beat->second).heartbeat_interval_ms;
    }
    advance_to(until_ms);
  }

  // ---- what the engine produced -----------------------------------------------------

  void clear_log() {
    commands_.clear();
    events_.clear();
    acks_.clear();
  }

  const std::vector<sent_command>& commands() const { return commands_; }
  const std::vector<published_event>& published() const { return events_; }
  const std::vector<command>& acks() const { return acks_; }

  /// Every command of kind `Body`, in the order produced (retransmissions included).
  template <class Body>
  std::vector<sent_command> commands_of() const {
    std::vector<sent_command> found;
    for (const auto& sent : commands_) {
      if (std::holds_alternative<Body>(sent.message.body)) found.push_back(sent);
    }
    return found;
  }

  /// Every derived event of kind `Body`, in the order published.
  template <class Body>
  std::vector<Body> events_of() const {
    std::vector<Body> found;
    for (const auto& item : events_) {
      if (const auto* body = std::get_if<Body>(&item.event.body)) found.push_back(*body);
    }
    return found;
  }

  /// The times at which derived events of kind `Body` were published.
  template <class Body>
  std::vector<time_ms> times_of() const {
    std::vector<time_ms> found;
    for (const auto& item : events_) {
      if (std::holds_alternative<Body>(item.event.body)) found.push_back(item.at_ms);
    }
    return found;
  }

  /// Alerts with the given code.
  std::vector<events::alert> alerts(const std::string& code) const {
    std::vector<events::alert> found;
    for (const auto& alert : events_of<events::alert>()) {
      if (alert.code == code) found.push_back(alert);
    }
    return found;
  }

  /// The last ack sent to `node_id`, if any.
  std::optional<commands::ack> last_ack(const std::string& node_id) const {
    for (auto it = acks_.rbegin(); it != acks_.rend(); ++it) {
      if (it->node == node_id) return std::get<commands::ack>(it->body);
    }
    return std::nullopt;
  }

  agent_state state_of(const std::string& agent) const {
    const auto* record = engine_.agent(agent);
    return record == nullptr ? agent_state::left : record->state;
  }

 private:
  void absorb(const effects& out) {
    for (const auto& message : out.commands) commands_.push_back(sent_command{now_, message});
    for (const auto& item : out.events) events_.push_back(published_event{now_, item});
    acks_.insert(acks_.end(), out.acks.begin(), out.acks.end());
  }

  engine engine_;
  time_ms now_ = start_ms;
  std::map<std::string, sim_node> nodes_;
  std::vector<sent_command> commands_;
  std::vector<published_event> events_;
  std::vector<command> acks_;
};

/// The body of a command, for a test that already checked its kind.
template <class Body>
const Body& body_of(const sent_command& sent) {
  return std::get<Body>(sent.message.body);
}

}  // namespace rrh::engine::test
