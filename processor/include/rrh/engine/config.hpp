#pragma once
/// The processor's resilience configuration: the seed's five keys with the seed's
/// defaults, and the keys rrh adds to fix the seed's weak points. Durations are kept in
/// milliseconds; configuration files give them in seconds or with units.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rrh/expected.hpp"
#include "rrh/protocol.hpp"

namespace rrh::engine {

/// Milliseconds on the processor's clock (Unix epoch based, advanced monotonically).
using time_ms = std::uint64_t;

/// How the delay before retry n grows.
enum class backoff_policy {
  fixed,                    ///< always task_retry_delay
  exponential,              ///< task_retry_delay · factor^(n-1), capped
  exponential_full_jitter,  ///< uniform in [0, the exponential delay] (AWS "full jitter")
};

/// How a node's silence is judged.
enum class detector_mode {
  phi_accrual,        ///< suspicion level from heartbeat arrival statistics (Akka, Cassandra)
  missed_heartbeats,  ///< a fixed count of missed heartbeat intervals
};

const char* to_string(backoff_policy policy) noexcept;
const char* to_string(detector_mode mode) noexcept;

/// The error type of a failure the processor declares for an attempt without an outcome.
inline constexpr std::string_view task_timeout_error = "rrh.TaskTimeout";

/// Every tunable of the engine. Field names are the configuration keys.
struct resilience_config {
  // --- The seed's keys, with the seed's defaults ---------------------------------------
  std::uint64_t max_recovery_attempts = 3;           ///< recoveries of one agent before quarantine
  std::uint64_t recovery_cooldown_ms = 60'000;       ///< least time between recoveries of one agent
  std::uint64_t error_threshold = 5;                 ///< episode errors that shut the episode down
  std::uint64_t agent_health_check_interval_ms = 300'000;  ///< gap between active probes of an agent
  std::uint64_t task_retry_delay_ms = 30'000;        ///< base delay before a failed task is retried

  // --- Task retry ------------------------------------------------------------------------
  std::uint64_t max_task_retries = 3;        ///< retries after the first attempt (Ray's max_retries)
  backoff_policy retry_backoff = backoff_policy::exponential_full_jitter;
  double retry_backoff_factor = 2.0;         ///< growth per retry for the exponential policies
  std::uint64_t task_retry_delay_max_ms = 300'000;  ///< cap of the exponential delay
  std::vector<std::string> non_retryable_errors;    ///< error types abandoned at once
  /// An attempt (a task.started, or a task.retry sent) without an outcome this long fails
  /// with error type rrh.TaskTimeout (retryable); 0 = never (the seed's behaviour).
  std::uint64_t task_timeout_ms = 0;

  // --- Episodes --------------------------------------------------------------------------
  std::uint64_t error_window_ms = 0;       ///< count errors only this far back; 0 = whole episode
  std::uint64_t shutdown_grace_ms = 30'000;  ///< after episode.shutdown, wait this long for agents to leave
  /// An episode still running this long after it began is shut down (and ends aborted);
  /// 0 = never (the seed's behaviour).
  std::uint64_t episode_timeout_ms = 0;

  // --- Failure detection -----------------------------------------------------------------
  detector_mode failure_detector = detector_mode::phi_accrual;
  double phi_suspect_threshold = 5.0;        ///< phi at which an agent becomes suspect
  double phi_threshold = 8.0;                ///< phi at which an agent is dead (Akka's default)
  std::uint64_t acceptable_pause_ms = 3000;  ///< heartbeat pause tolerated before phi rises (Akka)
  std::uint64_t min_std_deviation_ms = 100;  ///< floor of the interval deviation (Akka)
  std::uint64_t missed_heartbeats_suspect = 2;  ///< missed_heartbeats mode: suspect after this many
  std::uint64_t missed_heartbeats_dead = 5;     ///< missed_heartbeats mode: dead after this many
  std::uint64_t stale_grace_ms = 5000;       ///< a stale (hung) agent is dead after this long stale
  std::uint64_t probe_timeout_ms = 10'000;   ///< a probe unanswered this long counts as slow
  std::uint64_t probe_slow_ms = 2000;        ///< a probe answer slower than this makes the agent suspect

  // --- Recovery --------------------------------------------------------------------------
  std::uint64_t recovery_timeout_ms = 30'000;  ///< a recovery not confirmed in this time has failed
  double recovery_rate_per_s = 20.0;           ///< fleet-wide pace of agent.recover commands
  std::uint64_t recovery_burst = 50;           ///< recoveries allowed at once before pacing applies
  std::uint64_t recovery_reset_after_ms = 600'000;  ///< healthy this long resets an agent's attempts

  // --- Disruption guard (Kubernetes' zone disruption modes) -------------------------------
  /// More than this share of the known nodes silent at once: the fleet is disrupted (the
  /// cause is more likely the network or rrh than the nodes) and recoveries slow down.
  double disruption_threshold = 0.55;
  /// Pace of recoveries while the fleet is disrupted; 0 pauses them.
  double disruption_recovery_rate_per_s = 0.0;
  /// Fleets of fewer nodes are judged node by node, never as disrupted.
  std::uint64_t disruption_min_nodes = 10;
  /// Nodes that fall silent within this long of each other count together toward a
  /// disruption; older silences (nodes dying one by one) do not.
  std::uint64_t disruption_window_ms = 10'000;

  // --- Command delivery ------------------------------------------------------------------
  std::uint64_t command_retransmit_initial_ms = 1000;
  std::uint64_t command_retransmit_max_ms = 30'000;

  // --- Limits ----------------------------------------------------------------------------
  std::uint64_t max_agents = 2'000'000;
  std::uint64_t max_nodes = 100'000;
  std::uint64_t max_tasks_per_agent = 10'000;   ///< tracked (unfinished) tasks per agent
  std::uint64_t max_tasks = 1'000'000;          ///< tracked (unfinished) tasks in all
  std::uint64_t max_pending_commands = 1'000'000;
  std::uint64_t max_episodes = 100'000;
  /// A node dead (or gone) this long is forgotten with its agents, so that the node table
  /// empties again; 0 = never.
  std::uint64_t node_retention_ms = 3'600'000;
  /// An ended episode is kept this long (its summary stays readable), then removed; 0 =
  /// until max_episodes needs the room.
  std::uint64_t episode_retention_ms = 86'400'000;

  std::uint64_t jitter_seed = 1;  ///< seed of the jitter generator, for reproducible runs

  /// Checks ranges and relations; the error names the key.
  status validate() const;
};

/// Applies an episode's `resilience:` block over `base`. Keys are the configuration keys
/// (seed keys in seconds, as in the seed: `recovery_cooldown: 60`); an unknown key, a
/// wrong type or an out-of-range value is an error naming the key, and nothing is applied.
expected<resilience_config> apply_overrides(const resilience_config& base, const settings& overrides);

/// One configuration key for documentation, --print-config and parsers.
struct config_key_info {
  std::string_view name;        ///< key as written in YAML (`task_retry_delay`)
  /// "s" (duration in seconds), "count", "ratio", "1/s" (a rate), "name", "list"
  std::string_view unit;
  std::string_view meaning;
  bool from_seed;               ///< one of the seed's five keys
};

/// Every key of the `resilience:` section, in documentation order.
const std::vector<config_key_info>& config_keys();

/// Sets one key from a setting value (durations in seconds, fractions allowed, or a string
/// with a unit: "250ms", "2s", "5m", "1h"). Error names the key.
status set_config_key(resilience_config& config, std::string_view key, const setting_value& value);

/// The value of one key, for --print-config and control answers: durations in seconds
/// (double), counts as integers, names as text, lists comma-joined; an unknown key gives "".
setting_value get_config_key(const resilience_config& config, std::string_view key);

/// Parses a duration: number of seconds, or a string with unit ms/s/m/h.
expected<std::uint64_t> parse_duration_ms(const setting_value& value);

}  // namespace rrh::engine
