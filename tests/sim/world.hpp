#pragma once
// The simulated world of rrh-sim: agent nodes (each with the shim's real outbox and
// command_dedup), a processor (the real engine, the real SQLite store and the real
// commit_then_send), and a bus between them that drops, duplicates, reorders and delays
// encoded messages. One std::mt19937_64 seeded once draws every decision, so a seed
// replays exactly. Invariants are checked after every step; a violation names the seed.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <deque>

#include "command_dedup.hpp"
#include "outbox.hpp"
#include "pump.hpp"
#include "rrh/engine/engine.hpp"
#include "store.hpp"
#include "store_guard.hpp"

namespace rrh::sim {

using time_ms = std::uint64_t;

/// Every fault kind the simulator injects, counted for the summary line.
enum class fault : std::uint8_t {
  drop,                 ///< a message is lost on the bus
  duplicate,            ///< a message is delivered twice
  reorder,              ///< a message is held back a little, so later ones overtake it
  delay,                ///< a message is held back for seconds
  node_crash,           ///< a node process dies: outbox, dedup, running tasks are gone
  processor_crash,      ///< the processor dies between batches
  processor_crash_before_commit,  ///< the processor dies with a batch applied but not committed
  processor_crash_after_commit,   ///< the processor dies with a batch committed but not sent
  agent_hang,           ///< an agent's watchdog lapses (stale heartbeats)
  agent_hang_permanent, ///< ... and a restart does not cure it
  clock_jump,           ///< time leaps forward by tens of seconds
  late_packets,         ///< a crashed node's in-flight events arrive after its restart
  processor_stall,      ///< the processor alone stops for seconds (a VM pause) while the bus buffers
  processor_cut_off,    ///< the bus is unreachable from the processor only, for seconds
  commit_failure,       ///< the store refuses commits for a while (a full disk)
  state_file_replaced,  ///< the state file is deleted or replaced under the running processor
  count_,
};
inline constexpr std::size_t fault_kinds = static_cast<std::size_t>(fault::count_);
const char* to_string(fault kind) noexcept;

/// Totals over every seed of a run, for the final summary line.
struct totals {
  std::uint64_t seeds = 0;
  std::uint64_t steps = 0;
  std::uint64_t faults[fault_kinds] = {};
  std::uint64_t events_applied = 0;
  std::uint64_t commands_issued = 0;
  std::uint64_t handler_calls = 0;
  std::uint64_t tasks_started = 0;
  std::uint64_t retries_applied = 0;
  std::uint64_t recoveries_issued = 0;
  std::uint64_t abandoned = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t episodes_shut_down = 0;
  std::uint64_t outbox_full = 0;
  std::uint64_t attempts_run_twice = 0;  ///< one attempt of a task run by two retry commands
  std::uint64_t blind_spells = 0;        ///< times the processor lost sight (stall, deafness, store)
  std::uint64_t stale_recovers_refused = 0;
  std::uint64_t outcomes_unchecked = 0;  ///< failures that raced their task's timeout in one batch
};

/// A broken invariant; its text names the seed, the step and the simulated time.
struct violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What one simulated run does.
struct run_options {
  std::uint64_t seed = 1;
  std::uint64_t steps = 2000;
  bool verbose = false;
  std::filesystem::path state_dir;  ///< where the processor's SQLite file lives
};

/// A message on the simulated bus, already encoded with the real codec.
struct packet {
  bool to_processor = true;
  std::string node;      ///< sender (events) or target (commands)
  std::uint64_t incarnation = 0;  ///< sender incarnation of an event, for crash purging
  byte_buffer bytes;
};

struct sim_agent {
  std::string id;
  std::string pool;
  time_ms last_beat_ms = 0;
  bool hung = false;
  bool hang_permanent = false;
  time_ms hang_until_ms = 0;
};

/// One run of a task on a node.
struct sim_run {
  std::string task;
  std::string agent;
  std::uint64_t attempt = 1;
  time_ms finish_ms = 0;
};

struct sim_node {
  std::string id;
  bool up = true;
  time_ms up_since_ms = 0;
  time_ms restart_ms = 0;
  std::uint64_t incarnation = 0;
  std::unique_ptr<shim_detail::outbox> box;
  std::unique_ptr<shim_detail::command_dedup> dedup;
  std::vector<sim_agent> agents;
  std::vector<sim_run> running;
  std::string episode;
  std::uint64_t episodes_started = 0;
  time_ms next_heartbeat_ms = 0;
  time_ms episode_restart_ms = 0;  ///< after a shutdown, when the next episode starts
  /// Handler invocations per command id in this incarnation (the dedup invariant).
  std::map<std::uint64_t, std::uint64_t> handled;
  /// Events a full outbox refused, with their episode, retried oldest first each step.
  std::vector<std::pair<std::string, event_body>> backlog;
};

/// The processor: the real engine, store guard and pump (the processor's own loop body).
struct sim_processor {
  bool up = true;
  time_ms restart_ms = 0;
  std::uint64_t incarnation = 0;
  std::unique_ptr<processor::store_guard> store;
  std::unique_ptr<engine::engine> brain;
  std::unique_ptr<processor::pump> pump;
  std::deque<packet> inbox;          ///< delivered, not yet taken: the SUB socket's queue
  time_ms stalled_until_ms = 0;      ///< processor_stall: no turn before this
  time_ms cut_off_until_ms = 0;      ///< processor_cut_off: nothing in or out before this
  std::uint64_t commits_to_fail = 0;  ///< commit_failure: commits still to refuse
  bool commit_failing = false;       ///< the last commit was refused (injected)
  time_ms next_failing_retry_ms = 0;
  bool file_fault_open = false;      ///< the state file was taken away and is not rebuilt yet
};

class world {
 public:
  world(run_options options, totals& sums);
  ~world();
  world(const world&) = delete;
  world& operator=(const world&) = delete;

  /// Runs the fault phase and the liveness phase. Returns normally only when every
  /// invariant held; a violation is printed with its seed and thrown as `violation`.
  void run();

 private:
  // ---- the run ----
  void step(bool faults_on);
  void advance_clock(bool faults_on);
  void deliver_due();
  void inject_faults();
  void liveness_phase();
  void check_invariants();
  void check_liveness();
  [[noreturn]] void fail(const std::string& what) const;
  void trace(const std::string& what) const;
  bool chance(double probability);
  std::uint64_t uniform(std::uint64_t low, std::uint64_t high);
  void count(fault kind);

  // ---- the bus ----
  void send(packet message, bool faults_on);
  void enqueue(packet message, time_ms delay_ms);

  // ---- nodes ----
  void start_node(sim_node& node);
  void crash_node(sim_node& node);
  void node_step(sim_node& node);
  bool emit(sim_node& node, event_body body);
  void emit_or_backlog(sim_node& node, event_body body);
  void send_heartbeat(sim_node& node);
  void start_episode(sim_node& node);
  void register_agents(sim_node& node);
  void start_task(sim_node& node, sim_agent& agent);
  void finish_runs(sim_node& node);
  void node_receive(sim_node& node, const command& message);
  command_result handle(sim_node& node, const command& message);
  void restart_agent(sim_node& node, sim_agent& agent);
  sim_agent* hosted(sim_node& node, std::string_view agent);
  sim_node* node_by_id(std::string_view id);

  // ---- the processor ----
  void open_processor();
  void crash_processor(fault kind);
  void processor_tick();
  void take_state_file();
  bool processor_cut_off() const;
  void expect_task_outcome(const event& message, const engine::effects& changes, std::size_t derived_from,
                           const std::optional<engine::task_record>& before);
  void expect_no_false_death(const engine::derived_event& derived);
  friend struct processor_ports;
  void expect_episode_threshold(const event& message);
  void on_command_sent(const command& message);
  void on_command_issued(const command& message);
  void on_derived(const engine::derived_event& derived);

  // Shadow of the committed state at a clean crash, compared after the restart.
  struct shadow {
    std::map<std::string, std::string> records;
  };
  shadow capture() const;

  run_options options_;
  totals& sums_;
  std::mt19937_64 random_;
  engine::resilience_config config_;
  time_ms now_ms_;
  std::uint64_t step_ = 0;
  std::uint64_t bus_order_ = 0;
  std::multimap<std::pair<time_ms, std::uint64_t>, packet> bus_;
  /// (to processor, node) → latest delivery time on that link, which keeps links FIFO
  std::map<std::pair<bool, std::string>, time_ms> link_ms_;
  std::vector<sim_node> nodes_;
  sim_processor processor_;
  std::filesystem::path state_file_;
  std::uint64_t task_counter_ = 0;
  std::optional<shadow> shadow_at_crash_;
  double intensity_ = 1.0;  ///< this seed's multiplier of the message fault chances
  bool faults_on_ = true;

  // ---- facts for the invariants ----
  std::map<std::uint64_t, byte_buffer> commands_seen_;  ///< id → the command first sent with it
  std::map<std::string, time_ms> last_recovery_ms_;    ///< agent → when agent.recover was first sent
  std::map<std::string, std::uint64_t> max_attempt_run_;  ///< task → highest attempt a node ran
  std::map<std::pair<std::string, std::uint64_t>, std::uint64_t> attempt_runs_;  ///< (task, attempt) → runs
  /// episode → (node, incarnation) that sent its episode.ended
  std::map<std::string, std::pair<std::string, std::uint64_t>> episodes_ended_;
};

}  // namespace rrh::sim
