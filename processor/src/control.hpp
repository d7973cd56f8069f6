#pragma once
/// The processor's control protocol: read-only operator queries answered from the engine's
/// state. `answer_control` is pure (request text in, reply text out); the shell owns the
/// socket.
///
/// Control protocol
/// ----------------
/// The processor binds a ZeroMQ ROUTER at the control endpoint (default
/// tcp://127.0.0.1:7705). The socket has no authentication and changes nothing, but it
/// shows every agent, task and error message: keep it on loopback.
///
/// Request: ONE frame of UTF-8 text, words separated by spaces. A REQ client sends the
/// frame as is; a DEALER client sends an empty delimiter frame first, like REQ does. The
/// reply goes back with the same envelope. Requests longer than
/// `control_request_bytes_max` are refused.
///
///   status        processor counters, engine counters, and counts of agents, tasks and
///                 episodes by state, nodes, pending commands and timers
///   agents        every agent (at most `control_list_entries_max`, in id order)
///   tasks         every tracked task (same limit)
///   episodes      every episode (same limit)
///   agent ID      one agent
///   task ID       one task
///   episode ID    one episode, with the ids of the agents it has seen
///   config        every resilience key: value, unit, meaning and whether the seed has it
///   help          the requests above
///
/// Reply: ONE frame of JSON, either {"ok":true,"data":…} or {"ok":false,"error":"…"}.
/// An unknown request, a missing or extra argument, or an unknown id is an error
/// ({"ok":false,"error":"no agent 'a-9'"}).
///
/// Shapes of `data`:
///   agents / tasks / episodes:
///     {"total":N,"truncated":false,"agents":[{…},…]}   (key "tasks" / "episodes")
///     At most `control_list_entries_max` entries, the first ones in id order; when there
///     are more, "truncated" is true and "total" says how many exist. Ask for one id to see
///     any other entry.
///   agent:   {"agent","node","pool","supervisor","episode","state","watchdog_timeout_ms",
///             "recovery_attempts","last_recovery_ms","state_since_ms","registered_ms",
///             "probe_rtt_avg_ms","probe_rtt_max_ms","probes_answered"}
///   task:    {"task","agent","pool","episode","state","attempt","failures","retry_due_ms",
///             "last_error_type","last_error_message","checkpoint_bytes"}
///   episode: {"episode","name","state","status","started_ms","ended_ms","duration_ms",
///             "shutdown_deadline_ms","errors","errors_in_window","recoveries_attempted",
///             "recoveries_succeeded","tasks_failed","tasks_retried","tasks_recovered",
///             "tasks_abandoned","agents_seen","overrides":{key:value}}
///            `agents_seen` is a count (as in episode.summary); duration_ms runs to ended_ms,
///            or to now while the episode runs. The single-episode answer adds "agents":
///            [ids] (at most `control_list_entries_max`, then "agents_truncated": true).
///   status:  {"node_id","version","state_path","now_ms","uptime_ms",
///             "processor":{events_received,…},"engine":{engine_stats…},"nodes":N,
///             "agents":{"total":N,"by_state":{"registered":N,…}},"tasks":{…},
///             "episodes":{…},"pending_commands":N,"timers":N,"next_command_id":N}
///   config:  [{"key","value","unit","meaning","seed"},…] in documentation order; durations
///            in seconds, as in the configuration file.
///   help:    [{"request","meaning"},…]
/// Times (`*_ms` that are instants) are the processor's wall clock, ms since the Unix epoch;
/// 0 means never.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pump.hpp"
#include "rrh/engine/engine.hpp"
#include "store_guard.hpp"

namespace rrh::processor {

/// Longest control request accepted, in bytes: requests are a word and an id.
inline constexpr std::size_t control_request_bytes_max = 1024;

/// Most entries in one list answer (agents, tasks, episodes, an episode's agents): keeps a
/// reply to a fleet of millions at a few megabytes and the engine loop responsive.
inline constexpr std::size_t control_list_entries_max = 10'000;

/// What the shell knows that the engine does not: identity, uptime and I/O counters.
struct processor_status {
  std::string node_id;
  std::string state_path;
  std::uint64_t uptime_ms = 0;
  std::uint64_t events_received = 0;
  std::uint64_t events_malformed = 0;
  std::uint64_t events_rejected = 0;  ///< curve: events of a node id bound to another key
  std::uint64_t batches_committed = 0;
  std::uint64_t store_commit_us_last = 0;  ///< duration of the latest store commit
  std::uint64_t commands_sent = 0;
  std::uint64_t derived_events_published = 0;
  std::string version;
  std::uint64_t now_ms = 0;  ///< the engine's current time (wall ms), for durations
  store_health store;        ///< ok, or degraded with reason and since
  pump_sight sight;          ///< why the processor does not judge now, if it does not
  pump_stats pump;           ///< stalls, echoes, the last batch
};

/// Answers one control request (the request frame's text) with the reply frame's JSON.
/// Never changes the engine; bad requests give {"ok":false,"error":…}, never an exception
/// (except std::bad_alloc).
std::string answer_control(const rrh::engine::engine& engine, const processor_status& status,
                           std::string_view request);

}  // namespace rrh::processor
