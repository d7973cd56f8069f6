#pragma once
/// rrh::agent_shim — the library an agent process links. One `shim` is one node: one
/// process-wide identity (node id + incarnation), one set of sockets, hosting one or more
/// agents. It publishes lifecycle and task events, heartbeats from a background thread,
/// receives commands and hands them to the application's handlers, and makes delivery
/// reliable: critical events stay in a bounded outbox until the processor acks them, and
/// commands are de-duplicated by id.
///
/// Every public member function is thread-safe.
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "rrh/clock.hpp"
#include "rrh/curve.hpp"
#include "rrh/expected.hpp"
#include "rrh/protocol.hpp"

namespace rrh {

/// What a full outbox does to the caller that wants to add an event.
enum class overflow_policy {
  block,  ///< wait until an ack frees space, up to `outbox_block_timeout_ms`, then errc::timeout
  error,  ///< return errc::outbox_full at once
};

/// Everything a shim needs; built in code, from a YAML file, or from RRH_* variables.
struct shim_config {
  std::string node_id;  ///< RRH_NODE_ID; empty: "<hostname>-<pid>"
  std::string events_endpoint = "tcp://127.0.0.1:7701";    ///< RRH_EVENTS_ENDPOINT: broker events-in
  std::string commands_endpoint = "tcp://127.0.0.1:7704";  ///< RRH_COMMANDS_ENDPOINT: broker commands-out
  std::uint64_t heartbeat_interval_ms = 1000;   ///< RRH_HEARTBEAT_MS
  std::size_t outbox_capacity = 10'000;         ///< RRH_OUTBOX_CAPACITY: unacked critical events
  overflow_policy outbox_overflow = overflow_policy::block;  ///< RRH_OUTBOX_OVERFLOW: block|error
  std::uint64_t outbox_block_timeout_ms = 5000;  ///< RRH_OUTBOX_BLOCK_TIMEOUT_MS
  std::uint64_t retransmit_initial_ms = 500;     ///< RRH_RETRANSMIT_INITIAL_MS: first resend after
  std::uint64_t retransmit_max_ms = 8000;        ///< RRH_RETRANSMIT_MAX_MS: backoff cap
  std::size_t retransmit_batch_max = 512;        ///< events resent per retransmission round
  std::size_t command_dedup_window = 4096;       ///< RRH_COMMAND_DEDUP_WINDOW: ids remembered
  std::size_t command_queue_max = 1024;          ///< commands waiting for a handler
  std::string supervisor;  ///< RRH_SUPERVISOR: default supervisor node of registered agents
  /// RRH_SECURITY: `none`, or `curve` to join an authenticated bus (the broker runs with
  /// `security: curve`). With curve the node's DEALER sets no routing id; it says hello
  /// (its node id, signed by its key) at connect and with every heartbeat instead.
  bus_security security = bus_security::none;
  std::string curve_secret_key_file;  ///< RRH_CURVE_SECRET_KEY_FILE: this node's secret key
  std::string curve_server_key_file;  ///< RRH_CURVE_SERVER_KEY_FILE: the broker's public key
  /// RRH_INCARNATION: this start's incarnation, chosen by the supervisor that started the
  /// process (rrh-launch), so that it can tell a recover of an earlier start from one of
  /// this start. 0: a fresh random one (the default). Never a YAML key: a file would give
  /// every start the same one. Read from the environment only by a process that leads its
  /// own process group (the supervisor's direct child), and taken by the first shim of a
  /// process only: a second shim, or a process the child starts, draws a fresh one.
  std::uint64_t incarnation = 0;

  /// Reads a YAML file whose keys are the field names above (all optional); unknown keys
  /// are an error that names the key.
  static expected<shim_config> from_yaml_file(const std::string& path);
  /// Overrides the fields of `base` with the RRH_* environment variables that are set.
  /// RRH_CONFIG, when set, names a YAML file read first.
  static expected<shim_config> from_environment(shim_config base);
  /// The same over the defaults.
  static expected<shim_config> from_environment();
  /// Checks ids, endpoints and ranges, and with curve reads the key files; the shim
  /// constructor calls it.
  status validate() const;
};

/// A fresh incarnation: random, non-zero, below 2^53 (exact in JSON readers). For a
/// supervisor that chooses its child's incarnation (shim_config::incarnation).
std::uint64_t new_incarnation();

/// How an agent registers.
struct agent_options {
  std::string pool;                       ///< agents of one pool may take each other's retries
  std::vector<std::string> capabilities;
  std::string supervisor;                 ///< node that restarts this agent; default: config's
  std::uint64_t watchdog_timeout_ms = 0;  ///< >0: the agent is stale when `beat` lapses this long
};

/// A task failure as the application describes it.
struct task_failure {
  std::string error_type;  ///< e.g. the exception's type name
  std::string message;
  bool retryable = true;
  std::uint64_t attempt = 1;
  byte_buffer checkpoint;  ///< state to resume from; at most checkpoint_bytes_max
  std::string pool;        ///< default: the agent's pool
};

/// A handler's answer; the shim turns it into `command.ack`.
struct command_result {
  bool accepted = true;
  std::string reason;
  static command_result accept() { return {true, {}}; }
  static command_result refuse(std::string why) { return {false, std::move(why)}; }
};

/// Handlers run on the shim's dispatcher thread, one command at a time, never on the
/// heartbeat thread: a slow handler delays commands, not liveness. Return promptly and
/// hand long work to the application's own threads.
using command_handler = std::function<command_result(const command&)>;

/// Counters for monitoring and tests.
struct shim_stats {
  std::uint64_t events_sent = 0;          ///< first transmissions, critical and best-effort
  std::uint64_t events_retransmitted = 0;
  std::uint64_t events_acked = 0;
  std::uint64_t outbox_size = 0;
  std::uint64_t outbox_rejections = 0;    ///< calls refused by a full outbox (error or timeout)
  std::uint64_t heartbeats_sent = 0;
  std::uint64_t commands_received = 0;
  std::uint64_t commands_duplicate = 0;
  std::uint64_t commands_refused = 0;
  std::uint64_t commands_malformed = 0;
  std::uint64_t commands_dropped = 0;     ///< command queue full; the processor resends
};

/// One node on the rrh bus.
class shim {
 public:
  /// Validates `config`, connects and starts the I/O and dispatcher threads. Throws
  /// std::invalid_argument on an invalid configuration.
  explicit shim(shim_config config, const clock& time = system_clock::instance());
  /// Stops the threads without waiting for acks (call `flush` first to wait).
  ~shim();
  shim(const shim&) = delete;
  shim& operator=(const shim&) = delete;

  /// The running episode's id; empty outside an episode.
  std::string episode() const;
  /// This node's id and incarnation.
  const std::string& node_id() const;
  std::uint64_t incarnation() const;

  // Lifecycle, mirroring the seed's hooks. Each returns an error when the input is invalid
  // or the outbox refuses the event; nothing is sent then.

  /// Starts an episode; following events carry its id until `end_episode`.
  status start_episode(const std::string& episode_id, const std::string& name = {},
                       const settings& resilience = {}, const std::vector<std::string>& agents = {});
  /// Starts the episode an episode file describes (the seed's on_episode_start(path)):
  /// YAML with `id` (required), `name`, `agents` (list of ids) and a `resilience:` map of
  /// configuration keys (the seed's: max_recovery_attempts, recovery_cooldown,
  /// error_threshold, agent_health_check_interval, task_retry_delay, and rrh's own),
  /// sent in episode.started for the processor to apply to this episode only. A file
  /// that cannot be read or parsed is errc::config naming the file and key.
  status start_episode_from_file(const std::string& path);
  /// Ends the current episode with `outcome` ("completed" or "aborted").
  status end_episode(const std::string& outcome = "completed");
  /// Reports an episode-level error (the seed's on_episode_error).
  status record_episode_error(const std::string& error_type, const std::string& message,
                              const std::string& agent = {});
  /// Registers an agent hosted by this node (the seed's register_agent).
  status register_agent(const std::string& agent_id, const agent_options& options = {});
  /// Unregisters an agent (the seed's unregister_agent).
  status unregister_agent(const std::string& agent_id, const std::string& reason = {});
  /// A task began on `agent_id`.
  status record_task_started(const std::string& agent_id, const std::string& task_id,
                             std::uint64_t attempt = 1);
  /// A task failed (the seed's record_failed_task).
  status record_failed_task(const std::string& agent_id, const std::string& task_id,
                            const task_failure& failure);
  /// A task failed with an exception: its type name and what() are carried.
  status record_failed_task(const std::string& agent_id, const std::string& task_id,
                            const std::exception& failure, bool retryable = true,
                            std::uint64_t attempt = 1, byte_buffer checkpoint = {});
  /// A task finished well.
  status record_task_succeeded(const std::string& agent_id, const std::string& task_id,
                               std::uint64_t attempt = 1);
  /// A supervisor's report that its child process `exited.child` is gone (critical): the
  /// processor declares the child's agents dead at once instead of waiting for silence.
  status report_node_exited(const events::node_exited& exited);
  /// The agent's own watchdog: call it from the agent's work loop. An agent with a
  /// watchdog timeout whose beats lapse is reported stale while the process lives.
  void beat(const std::string& agent_id);

  /// Installs the handler for a command kind ("task.retry", "agent.recover",
  /// "agent.probe", "task.rollback", "episode.shutdown"). A kind without a handler is
  /// acked as refused, except agent.probe, which is answered by default.
  void set_handler(std::string_view kind, command_handler handler);

  /// Waits until every critical event is acked, or `deadline` passes (errc::timeout).
  status flush(std::chrono::milliseconds deadline);
  /// Counters.
  shim_stats stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace rrh
