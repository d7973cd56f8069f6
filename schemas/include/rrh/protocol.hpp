#pragma once
/// Wire protocol v1: the message types every rrh part speaks. `schemas/PROTOCOL.md` is the
/// normative text; this header is its C++ form. Each message struct lists its fields once,
/// in wire order, through a static `fields` template that the codec walks both ways.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace rrh {

/// Protocol major version. A receiver rejects (and counts) any other major version.
inline constexpr std::uint64_t protocol_version = 1;

/// Largest encoded message a receiver accepts, in bytes.
inline constexpr std::size_t message_bytes_max = 1'048'576;
/// Longest id (node, agent, task, episode, pool), in bytes.
inline constexpr std::size_t id_length_max = 128;
/// Longest free-text field (error messages, reasons), in bytes.
inline constexpr std::size_t text_length_max = 4096;
/// Largest task checkpoint carried in `task.failed` and `task.retry`, in bytes.
inline constexpr std::size_t checkpoint_bytes_max = 262'144;
/// Longest list (agents in a heartbeat, capabilities, settings), in elements.
inline constexpr std::size_t list_length_max = 4096;

/// Raw bytes on the wire (msgpack bin).
using byte_buffer = std::vector<std::uint8_t>;

/// How the codec checks a string field.
enum class field_rule : std::uint8_t {
  plain,        ///< any string up to `text_length_max`
  id,           ///< required id: 1..id_length_max of [A-Za-z0-9._:@-]
  optional_id,  ///< empty, or a valid id
};

/// A value of an episode's `resilience:` block (number, flag or name).
using setting_value = std::variant<std::int64_t, double, bool, std::string>;
/// Settings by key, sorted by key so that encoding is canonical.
using settings = std::map<std::string, setting_value>;

/// True when `text` is a valid id: 1 to id_length_max bytes of [A-Za-z0-9._:@-].
bool is_valid_id(std::string_view text) noexcept;

namespace events {

/// One hosted agent's liveness inside a node heartbeat.
struct agent_liveness {
  std::string agent;
  std::uint64_t age_ms = 0;  ///< time since the agent's last watchdog beat (or registration)
  bool stale = false;        ///< true when age_ms passed the agent's watchdog timeout
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("age_ms", self.age_ms);
    visit("stale", self.stale);
  }
};

/// Best-effort, once per node per interval: the node lives; how its agents are.
struct heartbeat {
  static constexpr std::string_view kind_name = "heartbeat";
  std::uint64_t interval_ms = 0;  ///< the sender's heartbeat interval
  std::uint64_t pid = 0;
  std::string host;
  std::uint64_t rss_bytes = 0;
  std::uint64_t in_flight = 0;    ///< tasks started and not yet finished on this node
  std::uint64_t last_seq = 0;     ///< highest critical sequence number issued so far
  std::vector<agent_liveness> agents;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("interval_ms", self.interval_ms);
    visit("pid", self.pid);
    visit("host", self.host);
    visit("rss_bytes", self.rss_bytes);
    visit("in_flight", self.in_flight);
    visit("last_seq", self.last_seq);
    visit("agents", self.agents);
  }
};

struct agent_registered {
  static constexpr std::string_view kind_name = "agent.registered";
  std::string agent;
  std::string pool;                       ///< agents of one pool can take each other's retries
  std::vector<std::string> capabilities;
  std::string supervisor;                 ///< node id of the process that restarts this agent
  std::uint64_t watchdog_timeout_ms = 0;  ///< 0: the agent has no watchdog of its own
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("pool", self.pool, field_rule::optional_id);
    visit("capabilities", self.capabilities);
    visit("supervisor", self.supervisor, field_rule::optional_id);
    visit("watchdog_timeout_ms", self.watchdog_timeout_ms);
  }
};

struct agent_unregistered {
  static constexpr std::string_view kind_name = "agent.unregistered";
  std::string agent;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("reason", self.reason);
  }
};

struct episode_started {
  static constexpr std::string_view kind_name = "episode.started";
  std::string name;
  std::vector<std::string> agents;
  settings resilience;  ///< per-episode overrides of the seed's configuration keys
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("name", self.name);
    visit("agents", self.agents, field_rule::id);
    visit("resilience", self.resilience);
  }
};

struct episode_ended {
  static constexpr std::string_view kind_name = "episode.ended";
  std::string status;  ///< "completed" or "aborted"
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("status", self.status);
  }
};

struct episode_error {
  static constexpr std::string_view kind_name = "episode.error";
  std::string agent;  ///< empty when the error is not an agent's
  std::string error_type;
  std::string message;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::optional_id);
    visit("error_type", self.error_type);
    visit("message", self.message);
  }
};

struct task_started {
  static constexpr std::string_view kind_name = "task.started";
  std::string task;
  std::string agent;
  std::uint64_t attempt = 1;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("task", self.task, field_rule::id);
    visit("agent", self.agent, field_rule::id);
    visit("attempt", self.attempt);
  }
};

struct task_failed {
  static constexpr std::string_view kind_name = "task.failed";
  std::string task;
  std::string agent;
  std::string error_type;
  std::string message;
  bool retryable = true;
  std::uint64_t attempt = 1;
  std::string pool;
  byte_buffer checkpoint;  ///< state saved at failure; travels with the retry
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("task", self.task, field_rule::id);
    visit("agent", self.agent, field_rule::id);
    visit("error_type", self.error_type);
    visit("message", self.message);
    visit("retryable", self.retryable);
    visit("attempt", self.attempt);
    visit("pool", self.pool, field_rule::optional_id);
    visit("checkpoint", self.checkpoint);
  }
};

struct task_succeeded {
  static constexpr std::string_view kind_name = "task.succeeded";
  std::string task;
  std::string agent;
  std::uint64_t attempt = 1;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("task", self.task, field_rule::id);
    visit("agent", self.agent, field_rule::id);
    visit("attempt", self.attempt);
  }
};

/// The shim's answer to a command: accepted, or refused with a reason.
struct command_ack {
  static constexpr std::string_view kind_name = "command.ack";
  std::uint64_t command_id = 0;
  bool accepted = true;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("command_id", self.command_id);
    visit("accepted", self.accepted);
    visit("reason", self.reason);
  }
};

/// Best-effort answer to `agent.probe`; the processor times it on its own clock.
struct probe_reply {
  static constexpr std::string_view kind_name = "probe.reply";
  std::uint64_t command_id = 0;
  std::string agent;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("command_id", self.command_id);
    visit("agent", self.agent, field_rule::optional_id);
  }
};

// Derived events: published by the processor.

struct agent_suspect {
  static constexpr std::string_view kind_name = "agent.suspect";
  std::string agent;
  double phi = 0.0;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("phi", self.phi);
    visit("reason", self.reason);
  }
};

struct agent_dead {
  static constexpr std::string_view kind_name = "agent.dead";
  std::string agent;
  std::uint64_t silent_ms = 0;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("silent_ms", self.silent_ms);
    visit("reason", self.reason);
  }
};

struct agent_recovered {
  static constexpr std::string_view kind_name = "agent.recovered";
  std::string agent;
  std::uint64_t attempts = 0;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("attempts", self.attempts);
  }
};

struct agent_quarantined {
  static constexpr std::string_view kind_name = "agent.quarantined";
  std::string agent;
  std::uint64_t attempts = 0;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("attempts", self.attempts);
    visit("reason", self.reason);
  }
};

/// A node dead (or exited) for node_retention, removed with its agents, so that the
/// processor's node table empties again (its events from then on are a new node's).
struct node_forgotten {
  static constexpr std::string_view kind_name = "node.forgotten";
  std::string node;
  std::uint64_t dead_ms = 0;  ///< how long it had been dead
  std::vector<std::string> agents;  ///< the agents forgotten with it
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("node", self.node, field_rule::id);
    visit("dead_ms", self.dead_ms);
    visit("agents", self.agents);
  }
};

struct task_retry_scheduled {
  static constexpr std::string_view kind_name = "task.retry_scheduled";
  std::string task;
  std::string agent;         ///< the agent whose attempt failed
  std::uint64_t attempt = 0; ///< the attempt that will run
  std::uint64_t delay_ms = 0;
  std::string target_agent;  ///< the agent that will run it (another of the pool, or the same)
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("task", self.task, field_rule::id);
    visit("agent", self.agent, field_rule::id);
    visit("attempt", self.attempt);
    visit("delay_ms", self.delay_ms);
    visit("target_agent", self.target_agent, field_rule::optional_id);
  }
};

struct task_abandoned {
  static constexpr std::string_view kind_name = "task.abandoned";
  std::string task;
  std::string agent;
  std::uint64_t attempts = 0;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("task", self.task, field_rule::id);
    visit("agent", self.agent, field_rule::id);
    visit("attempts", self.attempts);
    visit("reason", self.reason);
  }
};

struct episode_shutdown {
  static constexpr std::string_view kind_name = "episode.shutdown";
  std::string reason;
  std::uint64_t errors = 0;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("reason", self.reason);
    visit("errors", self.errors);
  }
};

struct episode_summary {
  static constexpr std::string_view kind_name = "episode.summary";
  std::string status;
  std::uint64_t duration_ms = 0;
  std::uint64_t errors = 0;
  std::uint64_t recoveries_attempted = 0;
  std::uint64_t recoveries_succeeded = 0;
  std::uint64_t tasks_failed = 0;
  std::uint64_t tasks_retried = 0;
  std::uint64_t tasks_recovered = 0;
  std::uint64_t tasks_abandoned = 0;
  std::uint64_t agents_seen = 0;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("status", self.status);
    visit("duration_ms", self.duration_ms);
    visit("errors", self.errors);
    visit("recoveries_attempted", self.recoveries_attempted);
    visit("recoveries_succeeded", self.recoveries_succeeded);
    visit("tasks_failed", self.tasks_failed);
    visit("tasks_retried", self.tasks_retried);
    visit("tasks_recovered", self.tasks_recovered);
    visit("tasks_abandoned", self.tasks_abandoned);
    visit("agents_seen", self.agents_seen);
  }
};

struct alert {
  static constexpr std::string_view kind_name = "alert";
  std::string severity;  ///< "info", "warning" or "critical"
  std::string code;      ///< stable machine-readable name, e.g. "agent.quarantined"
  std::string message;
  std::string agent;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("severity", self.severity);
    visit("code", self.code);
    visit("message", self.message);
    visit("agent", self.agent, field_rule::optional_id);
  }
};

/// Published by the broker: a command's target node was not connected.
struct command_undeliverable {
  static constexpr std::string_view kind_name = "command.undeliverable";
  std::uint64_t command_id = 0;
  std::string target;
  std::string command_kind;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("command_id", self.command_id);
    visit("target", self.target, field_rule::id);
    visit("command_kind", self.command_kind);
    visit("reason", self.reason);
  }
};

/// Published by a supervisor (rrh-launch) the moment its child process exits, so the
/// processor knows the child's agents are gone before their heartbeats lapse.
struct node_exited {
  static constexpr std::string_view kind_name = "node.exited";
  std::string child;          ///< node id of the process that exited
  std::uint64_t pid = 0;
  std::uint64_t exit_code = 0;  ///< when it exited normally
  std::uint64_t signal = 0;     ///< when a signal killed it (0: none)
  std::string reason;           ///< readable: "exited with code 3", "killed by SIGKILL"
  std::vector<std::string> agents;  ///< the agents it hosted
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("child", self.child, field_rule::id);
    visit("pid", self.pid);
    visit("exit_code", self.exit_code);
    visit("signal", self.signal);
    visit("reason", self.reason);
    visit("agents", self.agents, field_rule::id);
  }
};

}  // namespace events

namespace commands {

/// Run a failed task again, from its checkpoint.
struct task_retry {
  static constexpr std::string_view kind_name = "task.retry";
  std::string task;
  std::string agent;       ///< the agent that should run it
  std::uint64_t attempt = 0;
  std::string from_agent;  ///< the agent whose attempt failed, when it is another one
  byte_buffer checkpoint;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("task", self.task, field_rule::id);
    visit("agent", self.agent, field_rule::id);
    visit("attempt", self.attempt);
    visit("from_agent", self.from_agent, field_rule::optional_id);
    visit("checkpoint", self.checkpoint);
  }
};

/// Restart a dead agent; sent to its supervisor when it has one.
struct agent_recover {
  static constexpr std::string_view kind_name = "agent.recover";
  std::string agent;
  std::uint64_t attempt = 0;
  /// The incarnation of the agent's hosting node that the processor judged dead. A
  /// receiver refuses the recover as `refused_stale` when that incarnation is over; 0 (a
  /// processor that does not send it) names none, and the recover is acted on.
  std::uint64_t incarnation = 0;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::id);
    visit("attempt", self.attempt);
    visit("incarnation", self.incarnation);
  }
};

/// Active health check; answered with `probe.reply`.
struct agent_probe {
  static constexpr std::string_view kind_name = "agent.probe";
  std::string agent;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("agent", self.agent, field_rule::optional_id);
  }
};

/// Undo what an abandoned task did.
struct task_rollback {
  static constexpr std::string_view kind_name = "task.rollback";
  std::string task;
  std::string agent;
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("task", self.task, field_rule::id);
    visit("agent", self.agent, field_rule::id);
    visit("reason", self.reason);
  }
};

/// Stop work on the episode named in the envelope.
struct episode_shutdown {
  static constexpr std::string_view kind_name = "episode.shutdown";
  std::string reason;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("reason", self.reason);
  }
};

/// Cumulative acknowledgement: every critical event of `incarnation` up to `seq` is durable.
struct ack {
  static constexpr std::string_view kind_name = "ack";
  std::uint64_t incarnation = 0;
  std::uint64_t seq = 0;
  template <class Self, class V>
  static void fields(Self& self, V& visit) {
    visit("incarnation", self.incarnation);
    visit("seq", self.seq);
  }
};

}  // namespace commands

/// The `command.ack` reason of an `agent.recover` refused because the incarnation it
/// names is no longer the current one: acting on it would restart a healthy successor.
inline constexpr std::string_view refused_stale = "stale";

/// Any event's body. The alternative's `kind_name` is the `kind` on the wire.
using event_body =
    std::variant<events::heartbeat, events::agent_registered, events::agent_unregistered,
                 events::episode_started, events::episode_ended, events::episode_error,
                 events::task_started, events::task_failed, events::task_succeeded,
                 events::command_ack, events::probe_reply, events::agent_suspect,
                 events::agent_dead, events::agent_recovered, events::agent_quarantined,
                 events::task_retry_scheduled, events::task_abandoned, events::episode_shutdown,
                 events::episode_summary, events::alert, events::command_undeliverable,
                 events::node_exited, events::node_forgotten>;

/// Any command's body.
using command_body = std::variant<commands::task_retry, commands::agent_recover,
                                  commands::agent_probe, commands::task_rollback,
                                  commands::episode_shutdown, commands::ack>;

/// What every event carries besides its body.
struct event_header {
  std::uint64_t version = protocol_version;
  std::string node;               ///< sender node id
  std::uint64_t incarnation = 0;  ///< new on every start of the sender
  std::uint64_t seq = 0;          ///< 1, 2, 3… per incarnation for critical events; 0 otherwise
  std::uint64_t ts_ms = 0;        ///< sender's wall clock, ms since the Unix epoch
  std::string episode;            ///< episode id, empty outside an episode
};

/// One message on the event bus.
struct event {
  event_header header;
  event_body body;
};

/// One message on the command channel, addressed to a node.
struct command {
  std::uint64_t version = protocol_version;
  std::uint64_t id = 0;   ///< unique per processor state, survives processor restarts
  std::string node;       ///< target node id (the ROUTER routing id)
  std::uint64_t ts_ms = 0;
  std::string episode;
  command_body body;
};

/// Wire name of an event's or a command's kind ("task.failed", "task.retry").
std::string_view kind_name(const event_body& body) noexcept;
std::string_view kind_name(const command_body& body) noexcept;

/// Every event kind name, in variant order (for tools and tests that must cover each kind).
std::vector<std::string_view> event_kind_names();
/// Every command kind name, in variant order.
std::vector<std::string_view> command_kind_names();

/// Critical events are outboxed, retransmitted until acked and applied once; the rest
/// (heartbeat, probe.reply, and the broker's command.undeliverable) are best-effort and
/// carry seq 0.
bool is_critical(const event_body& body) noexcept;

/// The agent an event or command concerns, or empty.
std::string_view subject_agent(const event_body& body) noexcept;
std::string_view subject_agent(const command_body& body) noexcept;

}  // namespace rrh
