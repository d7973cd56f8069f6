#pragma once
/// rrh::engine — the processor's brain, pure: no socket, clock, file or thread. Give it an
/// event and the current time, or only the time (a tick); it returns effects: commands to
/// send, derived events to publish, and the keys of records whose state changed (for the
/// store). The shell commits those changes before it sends the commands and acks.
#include <cstdint>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rrh/engine/config.hpp"
#include "rrh/engine/state.hpp"
#include "rrh/protocol.hpp"

namespace rrh::engine {

/// A derived event for the bus; the shell fills in the envelope.
struct derived_event {
  std::string episode;
  event_body body;
};

/// What one call of the engine produced.
struct effects {
  std::vector<command> commands;       ///< new commands and retransmissions (ids > 0)
  std::vector<command> acks;           ///< cumulative acks (id 0); send after the commit
  std::vector<derived_event> events;   ///< derived events to publish
  // Keys of records to write (upsert) or delete in the store; may repeat.
  std::vector<std::string> nodes_changed;
  std::vector<std::string> agents_changed;
  std::vector<std::string> agents_removed;
  std::vector<std::string> tasks_changed;
  std::vector<std::string> tasks_removed;
  std::vector<std::string> episodes_changed;
  std::vector<std::uint64_t> commands_changed;  ///< pending commands to upsert
  std::vector<std::uint64_t> commands_removed;  ///< acked or dropped
  bool meta_changed = false;                    ///< next command id moved

  /// True when nothing needs to be stored.
  bool nothing_to_store() const noexcept;
  void clear();
};

/// Counters for status and tests.
struct engine_stats {
  std::uint64_t events_applied = 0;
  std::uint64_t events_duplicate = 0;     ///< already applied; re-acked
  std::uint64_t events_out_of_order = 0;  ///< beyond a gap; dropped for the sender to resend
  std::uint64_t events_stale_incarnation = 0;
  std::uint64_t events_ignored = 0;       ///< kinds the processor does not consume, or over a limit
  std::uint64_t heartbeats = 0;
  std::uint64_t commands_issued = 0;
  std::uint64_t commands_retransmitted = 0;
  std::uint64_t commands_acked = 0;
  std::uint64_t commands_refused = 0;
  std::uint64_t commands_dropped = 0;
  std::uint64_t limit_rejections = 0;
  std::uint64_t timers_fired = 0;
  std::uint64_t events_loaded_ahead = 0;  ///< applied by on_events with their records loaded ahead
  std::uint64_t events_refused = 0;       ///< task events naming an agent that is not registered
  std::uint64_t events_stale_attempt = 0;  ///< failures of an attempt already superseded
  std::uint64_t blind_spells = 0;         ///< times the processor lost sight of the bus (lose_sight)
  std::uint64_t timers_held = 0;          ///< judging timers held while blind
  std::uint64_t disruptions = 0;          ///< times the fleet was judged disrupted
  std::uint64_t recoveries_undelivered = 0;  ///< recoveries timed out unacked: not charged
  std::uint64_t nodes_forgotten = 0;      ///< nodes dead for node_retention, removed
};

/// Records by state (index: the enum's value), kept as states change, so that a status
/// answer costs the same at a million tasks as at ten.
struct state_counts {
  std::array<std::uint64_t, 7> agents{};    ///< by agent_state
  std::array<std::uint64_t, 5> tasks{};     ///< by task_state
  std::array<std::uint64_t, 3> episodes{};  ///< by episode_state
};

/// Everything the store holds, for a restart.
struct snapshot {
  std::vector<node_record> nodes;
  std::vector<agent_record> agents;
  std::vector<task_record> tasks;
  std::vector<episode_record> episodes;
  std::vector<pending_command> commands;
  std::uint64_t next_command_id = 1;
};

/// Bytes the engines' large tables hold in blocks mapped outside the malloc heap (huge
/// pages, see engine.cpp), process-wide: memory that mallinfo does not count.
std::size_t mapped_table_bytes() noexcept;

class engine {
 public:
  explicit engine(resilience_config config);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Applies one event received at `now`. Critical events are applied once and in order
  /// per (node, incarnation); duplicates are re-acked, events past a gap are dropped.
  void on_event(const event& message, time_ms now, effects& out);

  /// Applies a batch of events received at `now`, in order; the same as on_event for
  /// each, but it loads the records of later events while earlier ones are applied.
  void on_events(std::span<const event> batch, time_ms now, effects& out);

  /// Fires every timer due at or before `now`.
  void on_tick(time_ms now, effects& out);

  /// The processor could not see the bus from `since` on: its own loop stalled, its echo
  /// did not come back, or its store refused commits. Until regain_sight, nobody is
  /// judged by silence: timers that would declare a node dead or suspect, time a task out,
  /// resend a command or send a recovery are held. Events are still applied (a backlog's
  /// heartbeats revive whoever they name).
  void lose_sight(time_ms since, time_ms now);
  /// Sight is back: every node gets a fresh detection window starting at `now` (as after a
  /// restart), and the held timers fire late by as long as the blindness lasted.
  void regain_sight(time_ms now, effects& out);
  bool blind() const noexcept;
  /// The shell publishes its own echo on the bus and reports each one it hears back with
  /// bus_heard. With a timeout set, a timer that would judge someone's silence while no
  /// echo sent within the last `timeout_ms` was heard makes the engine lose sight itself
  /// (since the last echo heard): the processor never judges while it may be deaf. The
  /// window starts at `now`. 0 turns the check off (the default).
  void expect_echo(std::uint64_t timeout_ms, time_ms now);
  /// The bus carried the processor's own message sent at `sent_ms`.
  void bus_heard(time_ms sent_ms);
  time_ms heard_ms() const noexcept;
  /// More than disruption_threshold of the known nodes silent at once: recoveries are paced
  /// by disruption_recovery_rate_per_s (0: paused) until the fleet answers again.
  bool disrupted() const noexcept;
  std::size_t silent_node_count() const noexcept;
  const state_counts& counts() const noexcept;
  std::size_t node_count() const noexcept;

  /// The earliest pending timer, if any: the shell sleeps until then.
  std::optional<time_ms> next_deadline() const;

  /// Loads a stored state before the first event: pending retries fire at their time (at
  /// once when overdue), pending commands are resent with their ids, and every node gets
  /// a fresh detection window starting at `now`.
  void restore(const snapshot& stored, time_ms now);

  /// The base configuration and the one in force for an episode (with its overrides).
  const resilience_config& config() const noexcept;
  const resilience_config& config_for_episode(std::string_view episode) const;

  // Read access for the store and the control socket. Pointers stay valid until the next
  // call that changes the engine.
  const node_record* node(std::string_view id) const;
  const agent_record* agent(std::string_view id) const;
  const task_record* task(std::string_view id) const;
  const episode_record* episode(std::string_view id) const;
  const pending_command* pending(std::uint64_t command_id) const;
  std::uint64_t next_command_id() const noexcept;

  void for_each_node(const std::function<void(const node_record&)>& visit) const;
  void for_each_agent(const std::function<void(const agent_record&)>& visit) const;
  void for_each_task(const std::function<void(const task_record&)>& visit) const;
  void for_each_episode(const std::function<void(const episode_record&)>& visit) const;
  std::size_t agent_count() const noexcept;
  std::size_t task_count() const noexcept;
  std::size_t pending_count() const noexcept;
  std::size_t timer_count() const noexcept;

  const engine_stats& stats() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace rrh::engine
