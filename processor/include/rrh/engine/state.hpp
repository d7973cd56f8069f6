#pragma once
/// The engine's state, as records: what the store persists, what rrh-ctl shows, and what
/// the engine restores from after a restart. Failure-detector statistics are deliberately
/// not here: after a restart every agent gets a fresh detection window.
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "rrh/engine/config.hpp"
#include "rrh/protocol.hpp"

namespace rrh::engine {

/// Agent health (design: registered → healthy ⇄ suspect → dead → recovering → healthy,
/// or quarantined; left on unregister).
enum class agent_state : std::uint8_t { registered, healthy, suspect, dead, recovering, quarantined, left };

/// Task lifecycle as the processor sees it.
enum class task_state : std::uint8_t {
  running,          ///< started, no outcome yet
  retry_scheduled,  ///< failed; a retry fires at retry_due_ms
  retrying,         ///< task.retry sent, waiting for the outcome
  succeeded,
  abandoned,
};

enum class episode_state : std::uint8_t { running, shutting_down, ended };

const char* to_string(agent_state state) noexcept;
const char* to_string(task_state state) noexcept;
const char* to_string(episode_state state) noexcept;

/// Incarnations of one node remembered as retired.
inline constexpr std::size_t retired_incarnations_max = 16;

/// One sender's delivery cursor: the next critical seq it will apply.
struct node_record {
  std::string node;
  std::uint64_t incarnation = 0;
  std::uint64_t applied_seq = 0;   ///< every critical event up to this seq is applied
  /// Incarnations this node has left behind, oldest first (at most
  /// retired_incarnations_max): a late retransmission from one of them must not switch
  /// the node back and replay events already applied. Stored with the node, so the
  /// switch and the memory of what was left are one commit.
  std::vector<std::uint64_t> retired_incarnations;
  time_ms last_heartbeat_ms = 0;   ///< processor time of the last heartbeat (not persisted across restarts' meaning)
  std::uint64_t heartbeat_interval_ms = 1000;
  std::string host;
  std::uint64_t pid = 0;
  std::uint64_t rss_bytes = 0;
  std::uint64_t in_flight = 0;
};

struct agent_record {
  // Fields in order of use (the engine reads the first ones on every event of the agent).
  std::string agent;
  agent_state state = agent_state::registered;
  std::string episode;
  std::string pool;
  std::string node;        ///< node hosting it
  std::string supervisor;  ///< node that restarts it; empty: its own node
  std::uint64_t watchdog_timeout_ms = 0;
  std::uint64_t recovery_attempts = 0;
  time_ms last_recovery_ms = 0;     ///< when the last agent.recover was sent
  time_ms state_since_ms = 0;       ///< when the current state began
  time_ms registered_ms = 0;
  std::uint64_t probe_rtt_avg_ms = 0;  ///< moving average of probe response time
  std::uint64_t probe_rtt_max_ms = 0;
  std::uint64_t probes_answered = 0;
};

struct task_record {
  std::string task;
  std::string agent;         ///< agent of the latest attempt
  std::string pool;
  std::string episode;
  task_state state = task_state::running;
  std::uint64_t attempt = 1;  ///< attempt of the latest run (1 = first)
  std::uint64_t failures = 0;
  time_ms retry_due_ms = 0;
  std::string last_error_type;
  std::string last_error_message;
  byte_buffer checkpoint;
};

struct episode_record {
  std::string episode;
  std::string name;
  episode_state state = episode_state::running;
  std::string status;  ///< at the end: "completed" or "aborted"
  time_ms started_ms = 0;
  time_ms ended_ms = 0;
  time_ms shutdown_deadline_ms = 0;
  std::uint64_t errors = 0;
  std::deque<time_ms> error_times_ms;  ///< inside error_window, when one is set
  std::uint64_t recoveries_attempted = 0;
  std::uint64_t recoveries_succeeded = 0;
  std::uint64_t tasks_failed = 0;
  std::uint64_t tasks_retried = 0;
  std::uint64_t tasks_recovered = 0;
  std::uint64_t tasks_abandoned = 0;
  std::vector<std::string> agents_seen;
  settings overrides;   ///< the episode's accepted resilience block
};

/// A command sent and not yet acked.
struct pending_command {
  command message;
  time_ms next_send_ms = 0;
  std::uint64_t sends = 0;
};

}  // namespace rrh::engine
