#include "world.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>

#include "rrh/codec.hpp"
#include "stale_recover.hpp"

namespace rrh::sim {
namespace {

// ---- the shape of the world ----------------------------------------------------------
constexpr std::size_t node_count = 3;
constexpr std::size_t agents_per_node = 3;
constexpr time_ms start_time_ms = 1'700'000'000'000;
constexpr std::uint64_t heartbeat_interval_ms = 1000;
constexpr std::uint64_t watchdog_timeout_ms = 3000;
constexpr std::size_t outbox_capacity = 256;
constexpr std::size_t outbox_batch_max = 64;
constexpr std::size_t dedup_window = 4096;  // larger than the commands one node sees in a run

// ---- time ----------------------------------------------------------------------------
constexpr time_ms step_ms_min = 10;
constexpr time_ms step_ms_max = 300;
constexpr time_ms latency_ms_min = 1;
constexpr time_ms latency_ms_max = 40;
constexpr time_ms reorder_ms_max = 1500;
constexpr time_ms delay_ms_min = 2000;
constexpr time_ms delay_ms_max = 12'000;
constexpr time_ms clock_jump_ms_min = 5000;
constexpr time_ms clock_jump_ms_max = 60'000;
constexpr time_ms node_down_ms_min = 1000;
constexpr time_ms node_down_ms_max = 20'000;
constexpr time_ms processor_down_ms_min = 500;
constexpr time_ms processor_down_ms_max = 10'000;
constexpr time_ms hang_ms_min = 2000;
constexpr time_ms hang_ms_max = 40'000;
constexpr time_ms task_ms_min = 200;
constexpr time_ms task_ms_max = 5000;
constexpr time_ms liveness_duration_ms = 240'000;
constexpr time_ms drain_window_ms = 30'000;
constexpr std::uint64_t liveness_steps_max = 20'000;

// ---- limits on one step's work -------------------------------------------------------
constexpr std::size_t deliveries_per_step_max = 100'000;
constexpr std::size_t bus_packets_max = 1'000'000;

// ---- workload and faults (per step, per node or per message) ---------------------------
constexpr double task_start_chance = 0.05;
constexpr double episode_error_chance = 0.004;
constexpr double episode_end_chance = 0.0008;
constexpr double drop_chance = 0.02;       // times the seed's intensity
constexpr double duplicate_chance = 0.015;
constexpr double reorder_chance = 0.02;
constexpr double delay_chance = 0.004;
constexpr double node_crash_chance = 0.0012;
constexpr double processor_crash_chance = 0.0008;
constexpr double mid_batch_crash_chance = 0.0004;
constexpr double hang_chance = 0.003;
constexpr double hang_permanent_chance = 0.25;
constexpr double clock_jump_chance = 0.0006;
constexpr double late_packets_chance = 0.3;
constexpr double processor_stall_chance = 0.0008;
constexpr double processor_cut_off_chance = 0.0006;
constexpr double commit_failure_chance = 0.0006;
constexpr double state_file_chance = 0.0004;
constexpr time_ms processor_stall_ms_min = 2000;
constexpr time_ms processor_stall_ms_max = 20'000;
constexpr time_ms cut_off_ms_min = 2000;
constexpr time_ms cut_off_ms_max = 20'000;
constexpr std::uint64_t failing_commits_max = 6;
constexpr time_ms failing_commit_retry_ms = 200;
/// A node up this long is live: its silence can only be the processor's fault (checked on
/// seeds with a calm network, where no message is lost).
constexpr time_ms live_node_up_ms = 20'000;

// The processor's own sight, as the real processor's defaults.
constexpr std::uint64_t stall_threshold_ms = 1000;
constexpr std::uint64_t echo_interval_ms = 250;
constexpr std::uint64_t echo_timeout_ms = 1000;
const std::string processor_id = "processor";

/// Thrown from inside a turn to crash the processor there (before or after its commit).
struct crash_request {
  fault kind;
};

const std::string non_retryable_type = "FatalError";

// What a traced message is about: its agent and, for task messages, its task.
template <class Body>
std::string about(const Body& body) {
  std::string text(subject_agent(body));
  std::visit(
      [&](const auto& alternative) {
        if constexpr (requires { alternative.task; }) text += " " + alternative.task;
        if constexpr (requires { alternative.attempt; }) text += " attempt " + std::to_string(alternative.attempt);
      },
      body);
  return text;
}

mono_ms mono(time_ms now) { return mono_ms{static_cast<std::int64_t>(now - start_time_ms)}; }

}  // namespace

const char* to_string(fault kind) noexcept {
  switch (kind) {
    case fault::drop: return "drop";
    case fault::duplicate: return "duplicate";
    case fault::reorder: return "reorder";
    case fault::delay: return "delay";
    case fault::node_crash: return "node_crash";
    case fault::processor_crash: return "processor_crash";
    case fault::processor_crash_before_commit: return "processor_crash_before_commit";
    case fault::processor_crash_after_commit: return "processor_crash_after_commit";
    case fault::agent_hang: return "agent_hang";
    case fault::agent_hang_permanent: return "agent_hang_permanent";
    case fault::clock_jump: return "clock_jump";
    case fault::late_packets: return "late_packets";
    case fault::processor_stall: return "processor_stall";
    case fault::processor_cut_off: return "processor_cut_off";
    case fault::commit_failure: return "commit_failure";
    case fault::state_file_replaced: return "state_file_replaced";
    case fault::count_: break;
  }
  return "unknown";
}

world::world(run_options options, totals& sums)
    : options_(std::move(options)), sums_(sums), random_(options_.seed), now_ms_(start_time_ms) {
  // The configuration varies with the seed too, so that every policy gets exercised.
  config_.max_recovery_attempts = 3;
  config_.recovery_cooldown_ms = 10'000;
  config_.error_threshold = 5;
  config_.agent_health_check_interval_ms = 15'000;
  config_.task_retry_delay_ms = 2000;
  config_.max_task_retries = 3;
  const std::uint64_t backoff = uniform(0, 2);
  config_.retry_backoff = backoff == 0   ? engine::backoff_policy::fixed
                          : backoff == 1 ? engine::backoff_policy::exponential
                                         : engine::backoff_policy::exponential_full_jitter;
  config_.task_retry_delay_max_ms = 20'000;
  config_.non_retryable_errors = {non_retryable_type};
  config_.error_window_ms = chance(0.5) ? 30'000 : 0;
  config_.shutdown_grace_ms = 10'000;
  config_.failure_detector =
      chance(0.5) ? engine::detector_mode::phi_accrual : engine::detector_mode::missed_heartbeats;
  config_.stale_grace_ms = 5000;
  // Even seeds time out attempts that lost their outcome (a node crash, a hang). Taken
  // from the seed, not drawn, so that every seed's run stays what it was before.
  config_.task_timeout_ms = options_.seed % 2 == 0 ? 30'000 : 0;
  config_.probe_timeout_ms = 5000;
  config_.probe_slow_ms = 2000;
  config_.recovery_timeout_ms = 8000;
  config_.recovery_reset_after_ms = 60'000;
  config_.command_retransmit_initial_ms = 1000;
  config_.command_retransmit_max_ms = 8000;
  config_.jitter_seed = options_.seed;
  if (auto valid = config_.validate(); !valid) fail("simulation config invalid: " + valid.error().detail);
  intensity_ = static_cast<double>(uniform(0, 3));  // 0: a calm network this seed

  state_file_ = options_.state_dir / ("rrh-sim-" + std::to_string(options_.seed) + ".db");
  std::error_code ignored;
  std::filesystem::remove(state_file_, ignored);
  std::filesystem::remove(state_file_.string() + "-wal", ignored);
  std::filesystem::remove(state_file_.string() + "-shm", ignored);

  nodes_.resize(node_count);
  for (std::size_t index = 0; index < node_count; ++index) {
    auto& node = nodes_[index];
    node.id = "n" + std::to_string(index + 1);
    for (std::size_t agent = 0; agent < agents_per_node; ++agent) {
      sim_agent member;
      member.id = "a" + std::to_string(index + 1) + "-" + std::to_string(agent + 1);
      member.pool = agent % 2 == 0 ? "pool-a" : "pool-b";
      node.agents.push_back(member);
    }
  }
}

world::~world() {
  processor_.pump.reset();
  processor_.brain.reset();
  processor_.store.reset();
  // The state file, its -wal and -shm, and what replaced ones were moved aside to.
  std::error_code ignored;
  const auto name = state_file_.filename().string();
  for (const auto& entry : std::filesystem::directory_iterator(options_.state_dir, ignored)) {
    if (entry.path().filename().string().rfind(name, 0) == 0) std::filesystem::remove(entry.path(), ignored);
  }
}

// ---- the run --------------------------------------------------------------------------

void world::run() {
  open_processor();
  for (auto& node : nodes_) start_node(node);
  for (step_ = 1; step_ <= options_.steps; ++step_) {
    step(true);
    check_invariants();
  }
  liveness_phase();
  sums_.seeds += 1;
  sums_.steps += options_.steps;
  if (processor_.brain) sums_.blind_spells += processor_.brain->stats().blind_spells;
}

void world::step(bool faults_on) {
  faults_on_ = faults_on;
  advance_clock(faults_on);
  if (faults_on) inject_faults();
  if (!processor_.up && now_ms_ >= processor_.restart_ms) open_processor();
  for (auto& node : nodes_) node_step(node);
  deliver_due();
  processor_tick();
}

void world::advance_clock(bool faults_on) {
  now_ms_ += uniform(step_ms_min, step_ms_max);
  if (faults_on && chance(clock_jump_chance)) {
    const auto jump = uniform(clock_jump_ms_min, clock_jump_ms_max);
    count(fault::clock_jump);
    trace("clock jumps " + std::to_string(jump) + " ms");
    now_ms_ += jump;
  }
}

void world::inject_faults() {
  for (auto& node : nodes_) {
    if (node.up && chance(node_crash_chance)) crash_node(node);
  }
  // A crash with the state file taken away loses it (not a promise: the processor rebuilds
  // the file before its next ack, but only while it lives).
  if (processor_.up && !processor_.file_fault_open && chance(processor_crash_chance)) {
    crash_processor(fault::processor_crash);
  }
  if (processor_.up && now_ms_ >= processor_.stalled_until_ms && chance(processor_stall_chance)) {
    count(fault::processor_stall);
    processor_.stalled_until_ms = now_ms_ + uniform(processor_stall_ms_min, processor_stall_ms_max);
    trace("processor stalls until t=" + std::to_string(processor_.stalled_until_ms - start_time_ms));
  }
  if (!processor_cut_off() && chance(processor_cut_off_chance)) {
    count(fault::processor_cut_off);
    processor_.cut_off_until_ms = now_ms_ + uniform(cut_off_ms_min, cut_off_ms_max);
    trace("the bus is unreachable from the processor until t=" + std::to_string(processor_.cut_off_until_ms - start_time_ms));
  }
  if (processor_.up && processor_.commits_to_fail == 0 && chance(commit_failure_chance)) {
    count(fault::commit_failure);
    processor_.commits_to_fail = uniform(1, failing_commits_max);
    trace("the store refuses the next " + std::to_string(processor_.commits_to_fail) + " commits");
  }
  if (processor_.up && !processor_.file_fault_open && chance(state_file_chance)) take_state_file();
  if (chance(hang_chance)) {
    auto& node = nodes_[uniform(0, nodes_.size() - 1)];
    auto& agent = node.agents[uniform(0, node.agents.size() - 1)];
    if (node.up && !agent.hung) {
      agent.hung = true;
      agent.hang_permanent = chance(hang_permanent_chance);
      agent.hang_until_ms = now_ms_ + uniform(hang_ms_min, hang_ms_max);
      count(agent.hang_permanent ? fault::agent_hang_permanent : fault::agent_hang);
      trace("agent " + agent.id + " hangs" + (agent.hang_permanent ? " for good" : ""));
    }
  }
}

void world::deliver_due() {
  for (std::size_t delivered = 0; delivered < deliveries_per_step_max; ++delivered) {
    if (bus_.empty() || bus_.begin()->first.first > now_ms_) return;
    const packet message = std::move(bus_.begin()->second);
    bus_.erase(bus_.begin());
    if (message.to_processor) {
      // Into the processor's input queue; a processor that is down or cut off misses it.
      if (processor_.up && !processor_cut_off()) processor_.inbox.push_back(message);
      continue;
    }
    auto* node = node_by_id(message.node);
    if (node == nullptr) fail("command for unknown node '" + message.node + "'");
    if (!node->up) continue;  // the broker's ROUTER has no peer: the command is lost
    auto decoded = decode_command(message.bytes.data(), message.bytes.size());
    if (!decoded) fail("a command the processor sent does not decode: " + decoded.error().detail);
    node_receive(*node, decoded.value());
  }
  fail("more than deliveries_per_step_max deliveries in one step");
}

void world::liveness_phase() {
  // Faults off; an operator restarts whatever is down and fixes every hung agent.
  faults_on_ = false;
  trace("liveness phase");
  if (!processor_.up) open_processor();
  processor_.stalled_until_ms = 0;
  processor_.cut_off_until_ms = 0;
  processor_.commits_to_fail = 0;
  for (auto& node : nodes_) {
    if (!node.up) start_node(node);
    for (auto& agent : node.agents) {
      agent.hung = false;
      agent.hang_permanent = false;
      agent.last_beat_ms = now_ms_;
    }
    register_agents(node);  // re-registration lifts a quarantine
  }
  const time_ms end_ms = now_ms_ + liveness_duration_ms;
  std::uint64_t count_steps = 0;
  for (; now_ms_ < end_ms; ++count_steps) {
    if (count_steps == liveness_steps_max) fail("liveness phase ran out of steps");
    step(false);
    check_invariants();
  }
  // Probes go on, and each is acked with a critical command.ack: an outbox is never
  // empty for long, so "drains" means empty at some step of a short final window.
  const time_ms drain_end_ms = now_ms_ + drain_window_ms;
  const auto drained = [&] {
    return std::all_of(nodes_.begin(), nodes_.end(),
                       [](const sim_node& node) { return node.box->empty() && node.backlog.empty(); });
  };
  for (; !drained() && now_ms_ < drain_end_ms; ++count_steps) {
    if (count_steps == liveness_steps_max) fail("liveness phase ran out of steps");
    step(false);
    check_invariants();
  }
  check_liveness();
}

void world::check_invariants() {
  if (!processor_.up) return;
  const auto& brain = *processor_.brain;
  // No acked event lost: the processor holds every event a node saw acked.
  for (const auto& node : nodes_) {
    if (!node.up || node.box->acked_seq() == 0) continue;
    const auto* record = brain.node(node.id);
    if (record == nullptr || record->incarnation != node.incarnation ||
        record->applied_seq < node.box->acked_seq()) {
      std::ostringstream text;
      text << "acked event lost: node " << node.id << " incarnation " << node.incarnation
           << " saw seq " << node.box->acked_seq() << " acked, processor holds ";
      if (record == nullptr) {
        text << "no record";
      } else {
        text << "incarnation " << record->incarnation << " applied_seq " << record->applied_seq;
      }
      fail(text.str());
    }
  }
  // Engine consistency.
  std::size_t agents = 0;
  brain.for_each_agent([&](const engine::agent_record& agent) {
    ++agents;
    if (brain.node(agent.node) == nullptr) fail("agent " + agent.agent + " on unknown node " + agent.node);
    const auto& config = brain.config_for_episode(agent.episode);
    if (agent.recovery_attempts > config.max_recovery_attempts) {
      fail("agent " + agent.agent + " has " + std::to_string(agent.recovery_attempts) +
           " recovery attempts, over max_recovery_attempts");
    }
  });
  if (agents != brain.agent_count()) fail("agent_count does not match the agents visited");
  // The counts by state that status reports without scanning agree with a scan.
  engine::state_counts scanned;
  brain.for_each_agent([&](const engine::agent_record& agent) { ++scanned.agents[static_cast<std::size_t>(agent.state)]; });
  brain.for_each_task([&](const engine::task_record& task) { ++scanned.tasks[static_cast<std::size_t>(task.state)]; });
  brain.for_each_episode(
      [&](const engine::episode_record& episode) { ++scanned.episodes[static_cast<std::size_t>(episode.state)]; });
  const auto& kept = brain.counts();
  if (scanned.agents != kept.agents || scanned.tasks != kept.tasks || scanned.episodes != kept.episodes) {
    fail("the engine's counts by state differ from a scan of its records");
  }
  std::size_t tasks = 0;
  brain.for_each_task([&](const engine::task_record& task) {
    ++tasks;
    const auto& config = brain.config_for_episode(task.episode);
    // A record may be created anew by a late task.started of a task already finished (the
    // engine keeps no tombstones); its attempt is then the one a node ran, which invariant
    // 2 checked when the retry was issued.
    const auto ran = max_attempt_run_.find(task.task);
    const auto limit = std::max<std::uint64_t>(1 + config.max_task_retries, ran == max_attempt_run_.end() ? 0 : ran->second);
    if (task.attempt == 0 || task.attempt > limit) {
      fail("task " + task.task + " at attempt " + std::to_string(task.attempt) +
           ", beyond 1 + max_task_retries = " + std::to_string(1 + config.max_task_retries));
    }
    if (task.state == engine::task_state::retry_scheduled && task.retry_due_ms == 0) {
      fail("task " + task.task + " has a retry scheduled at time 0");
    }
    if (task.state == engine::task_state::succeeded || task.state == engine::task_state::abandoned) {
      fail("task " + task.task + " is finished but still tracked");
    }
  });
  if (tasks != brain.task_count()) fail("task_count does not match the tasks visited");
  brain.for_each_episode([&](const engine::episode_record& episode) {
    if (episode.recoveries_succeeded > episode.recoveries_attempted) {
      fail("episode " + episode.episode + " counts " + std::to_string(episode.recoveries_succeeded) +
           " recoveries succeeded of " + std::to_string(episode.recoveries_attempted) + " attempted");
    }
    if (episode.tasks_recovered > episode.tasks_failed) {
      fail("episode " + episode.episode + " counts more tasks recovered than failed");
    }
    if (episode.state == engine::episode_state::ended && episode.status.empty()) {
      fail("episode " + episode.episode + " ended without a status");
    }
  });
  if (!commands_seen_.empty() && brain.next_command_id() <= commands_seen_.rbegin()->first) {
    fail("next_command_id " + std::to_string(brain.next_command_id()) +
         " would reuse an id already sent (" + std::to_string(commands_seen_.rbegin()->first) + ")");
  }
}

void world::check_liveness() {
  if (!processor_.up) fail("liveness: processor down");
  const auto& brain = *processor_.brain;
  for (const auto& node : nodes_) {
    if (!node.up) fail("liveness: node " + node.id + " down");
    if (!node.box->empty() || !node.backlog.empty()) {
      fail("liveness: outbox of " + node.id + " did not drain (" + std::to_string(node.box->size()) +
           " unacked, " + std::to_string(node.backlog.size()) + " waiting)");
    }
    for (const auto& agent : node.agents) {
      const auto* record = brain.agent(agent.id);
      if (record == nullptr) fail("liveness: agent " + agent.id + " unknown to the processor");
      if (record->state != engine::agent_state::healthy) {
        fail(std::string("liveness: heartbeating agent ") + agent.id + " is " + engine::to_string(record->state));
      }
      if (record->node != node.id) fail("liveness: agent " + agent.id + " recorded on " + record->node);
    }
  }
  brain.for_each_task([&](const engine::task_record& task) {
    if (task.state == engine::task_state::retry_scheduled) {
      fail("liveness: task " + task.task + " still has a retry scheduled at " + std::to_string(task.retry_due_ms) +
           " (now " + std::to_string(now_ms_) + ")");
    }
    // With task_timeout, no attempt is lost for good: one whose run died with its node
    // (or was never started) timed out and was retried or abandoned.
    if (config_.task_timeout_ms > 0 &&
        (task.state == engine::task_state::running || task.state == engine::task_state::retrying)) {
      fail("liveness: task " + task.task + " still " + engine::to_string(task.state) + " although task_timeout is " +
           std::to_string(config_.task_timeout_ms) + " ms");
    }
  });
  brain.for_each_episode([&](const engine::episode_record& episode) {
    if (episode.state == engine::episode_state::shutting_down) {
      fail("liveness: episode " + episode.episode + " still shutting down");
    }
  });
  for (const auto& [episode, who] : episodes_ended_) {
    const auto* node = node_by_id(who.first);
    if (node == nullptr || node->incarnation != who.second) continue;  // ended by a dead incarnation
    const auto* record = brain.episode(episode);
    if (record == nullptr || record->state != engine::episode_state::ended) {
      fail("liveness: episode " + episode + " ended by its node but not by the processor");
    }
  }
  if (brain.pending_count() != 0) {
    fail("liveness: " + std::to_string(brain.pending_count()) + " commands still unacked");
  }
}

void world::fail(const std::string& what) const {
  std::fflush(stdout);
  const auto line = "FAIL seed=" + std::to_string(options_.seed) + " step=" + std::to_string(step_) +
                    " t=" + std::to_string(now_ms_ - start_time_ms) + "ms: " + what;
  std::printf("%s\nreplay: rrh-sim --seed %" PRIu64 " --steps %" PRIu64 " --verbose\n", line.c_str(),
              options_.seed, options_.steps);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  throw violation(line);
}

void world::trace(const std::string& what) const {
  if (!options_.verbose) return;
  std::printf("[%" PRIu64 " t=%" PRIu64 "] %s\n", step_, now_ms_ - start_time_ms, what.c_str());
}

bool world::chance(double probability) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(random_) < probability;
}

std::uint64_t world::uniform(std::uint64_t low, std::uint64_t high) {
  return std::uniform_int_distribution<std::uint64_t>(low, high)(random_);
}

void world::count(fault kind) { ++sums_.faults[static_cast<std::size_t>(kind)]; }

// ---- the bus ----------------------------------------------------------------------------

void world::send(packet message, bool faults_on) {
  if (!message.to_processor) {
    // The broker's ROUTER routes at once: a command for a node that is down is lost.
    const auto* target = node_by_id(message.node);
    if (target == nullptr || !target->up) return;
  }
  // A link is a TCP connection: FIFO unless a fault holds one message back.
  auto& link_ms = link_ms_[{message.to_processor, message.node}];
  const auto in_order = [&] {
    link_ms = std::max(link_ms, now_ms_ + uniform(latency_ms_min, latency_ms_max));
    return link_ms - now_ms_;
  };
  if (!faults_on) {
    const auto delay = in_order();
    enqueue(std::move(message), delay);
    return;
  }
  if (chance(drop_chance * intensity_)) {
    count(fault::drop);
    return;
  }
  const auto copies = chance(duplicate_chance * intensity_) ? 2 : 1;
  if (copies == 2) count(fault::duplicate);
  for (int copy = 0; copy < copies; ++copy) {
    if (chance(reorder_chance * intensity_)) {
      count(fault::reorder);
      enqueue(message, uniform(latency_ms_min, latency_ms_max) + uniform(1, reorder_ms_max));
    } else if (chance(delay_chance * intensity_)) {
      count(fault::delay);
      enqueue(message, uniform(latency_ms_min, latency_ms_max) + uniform(delay_ms_min, delay_ms_max));
    } else {
      enqueue(message, in_order());
    }
  }
}

void world::enqueue(packet message, time_ms delay_ms) {
  if (bus_.size() >= bus_packets_max) fail("bus holds more than bus_packets_max packets");
  bus_.emplace(std::make_pair(now_ms_ + delay_ms, bus_order_++), std::move(message));
}

// ---- nodes ------------------------------------------------------------------------------

sim_node* world::node_by_id(std::string_view id) {
  for (auto& node : nodes_) {
    if (node.id == id) return &node;
  }
  return nullptr;
}

sim_agent* world::hosted(sim_node& node, std::string_view agent) {
  for (auto& member : node.agents) {
    if (member.id == agent) return &member;
  }
  return nullptr;
}

void world::start_node(sim_node& node) {
  node.up = true;
  node.up_since_ms = now_ms_;
  // As the shim: random, within 2^53, odd (never 0).
  node.incarnation = (random_() & ((std::uint64_t{1} << 53) - 1)) | 1;
  shim_detail::outbox::limits bounds;
  bounds.capacity = outbox_capacity;
  bounds.retransmit_initial = mono_ms{500};
  bounds.retransmit_max = mono_ms{8000};
  bounds.batch_max = outbox_batch_max;
  node.box = std::make_unique<shim_detail::outbox>(bounds);
  node.dedup = std::make_unique<shim_detail::command_dedup>(dedup_window);
  node.handled.clear();
  node.running.clear();
  node.backlog.clear();
  node.episode.clear();
  for (auto& agent : node.agents) {
    agent.hung = false;  // a fresh process
    agent.hang_permanent = false;
    agent.last_beat_ms = now_ms_;
  }
  node.next_heartbeat_ms = now_ms_;
  trace("node " + node.id + " starts, incarnation " + std::to_string(node.incarnation));
  start_episode(node);
  register_agents(node);
}

void world::crash_node(sim_node& node) {
  count(fault::node_crash);
  trace("node " + node.id + " crashes");
  node.up = false;
  node.restart_ms = now_ms_ + uniform(node_down_ms_min, node_down_ms_max);
  node.box.reset();
  node.dedup.reset();
  // Commands on the dead connection are lost. The events in the dead process's socket
  // buffers usually die with it; sometimes the broker already holds them, and they
  // arrive after the node has restarted.
  const bool late_packets = chance(late_packets_chance);
  if (late_packets) count(fault::late_packets);
  for (auto position = bus_.begin(); position != bus_.end();) {
    if (position->second.node == node.id && !position->second.to_processor) {
      position = bus_.erase(position);
    } else if (!late_packets && position->second.to_processor && position->second.node == node.id &&
               position->second.incarnation == node.incarnation) {
      position = bus_.erase(position);
    } else {
      ++position;
    }
  }
}

bool world::emit(sim_node& node, event_body body) {
  const bool critical = is_critical(body);
  event message{event_header{protocol_version, node.id, node.incarnation, 0, now_ms_, node.episode},
                std::move(body)};
  if (auto valid = validate(message); !valid) fail("the simulation built an invalid event: " + valid.error().detail);
  if (critical && node.box->full()) {
    ++sums_.outbox_full;
    return false;
  }
  if (critical) message.header.seq = node.box->last_seq() + 1;
  auto bytes = encode(message);
  if (critical) {
    auto pushed = node.box->push({message.header.seq, event_topic(message), bytes}, mono(now_ms_));
    if (!pushed) fail("outbox refused an event below capacity: " + pushed.error().detail);
  }
  if (options_.verbose && !std::holds_alternative<events::heartbeat>(message.body)) {
    trace(node.id + " emits " + std::string(kind_name(message.body)) + " seq " +
          std::to_string(message.header.seq) + " " + about(message.body));
  }
  send(packet{true, node.id, node.incarnation, std::move(bytes)}, faults_on_);
  return true;
}

void world::emit_or_backlog(sim_node& node, event_body body) {
  if (node.backlog.empty() && emit(node, body)) return;
  node.backlog.emplace_back(node.episode, std::move(body));
}

void world::node_step(sim_node& node) {
  if (!node.up) {
    if (now_ms_ >= node.restart_ms) start_node(node);
    return;
  }
  for (auto& agent : node.agents) {
    if (agent.hung && !agent.hang_permanent && now_ms_ >= agent.hang_until_ms) {
      agent.hung = false;
      trace("agent " + agent.id + " wakes up");
    }
    if (!agent.hung) agent.last_beat_ms = now_ms_;
  }
  node.box->retransmit_due(mono(now_ms_), [&](const shim_detail::outbox_entry& entry) {
    send(packet{true, node.id, node.incarnation, entry.bytes}, faults_on_);
  });
  // Events an earlier full outbox refused, oldest first, each under its own episode.
  const auto current_episode = node.episode;
  std::size_t sent = 0;
  for (; sent < node.backlog.size(); ++sent) {
    node.episode = node.backlog[sent].first;
    if (!emit(node, node.backlog[sent].second)) break;
  }
  node.episode = current_episode;
  node.backlog.erase(node.backlog.begin(), node.backlog.begin() + static_cast<std::ptrdiff_t>(sent));
  if (now_ms_ >= node.next_heartbeat_ms) {
    send_heartbeat(node);
    node.next_heartbeat_ms = now_ms_ + heartbeat_interval_ms;
  }
  finish_runs(node);
  if (node.episode.empty() && now_ms_ >= node.episode_restart_ms) {
    start_episode(node);
    register_agents(node);
  }
  if (!faults_on_) return;  // the liveness phase starts no new work
  if (chance(task_start_chance)) {
    auto& agent = node.agents[uniform(0, node.agents.size() - 1)];
    if (!agent.hung) start_task(node, agent);
  }
  if (!node.episode.empty() && chance(episode_error_chance)) {
    const auto& agent = node.agents[uniform(0, node.agents.size() - 1)];
    emit_or_backlog(node, events::episode_error{agent.id, "SimError", "simulated episode error"});
  }
  if (!node.episode.empty() && chance(episode_end_chance)) {
    episodes_ended_[node.episode] = {node.id, node.incarnation};
    emit_or_backlog(node, events::episode_ended{"completed"});
    node.episode.clear();
    node.episode_restart_ms = now_ms_ + uniform(500, 5000);
  }
}

void world::send_heartbeat(sim_node& node) {
  events::heartbeat beat;
  beat.interval_ms = heartbeat_interval_ms;
  beat.pid = 1000 + static_cast<std::uint64_t>(&node - nodes_.data());
  beat.host = "sim";
  beat.in_flight = node.running.size();
  beat.last_seq = node.box->last_seq();
  for (const auto& agent : node.agents) {
    const auto age = now_ms_ - agent.last_beat_ms;
    beat.agents.push_back(events::agent_liveness{agent.id, age, age > watchdog_timeout_ms});
  }
  emit(node, std::move(beat));
}

void world::start_episode(sim_node& node) {
  node.episode = "e." + node.id + "." + std::to_string(++node.episodes_started);
  events::episode_started started;
  started.name = "episode " + std::to_string(node.episodes_started) + " of " + node.id;
  for (const auto& agent : node.agents) started.agents.push_back(agent.id);
  if (chance(0.3)) started.resilience["max_task_retries"] = static_cast<std::int64_t>(uniform(1, 2));
  emit_or_backlog(node, std::move(started));
}

void world::register_agents(sim_node& node) {
  for (const auto& agent : node.agents) {
    emit_or_backlog(node, events::agent_registered{agent.id, agent.pool, {}, {}, watchdog_timeout_ms});
  }
}

void world::start_task(sim_node& node, sim_agent& agent) {
  const auto task = "t" + std::to_string(++task_counter_);
  ++sums_.tasks_started;
  emit_or_backlog(node, events::task_started{task, agent.id, 1});
  node.running.push_back(sim_run{task, agent.id, 1, now_ms_ + uniform(task_ms_min, task_ms_max)});
}

void world::finish_runs(sim_node& node) {
  for (std::size_t index = 0; index < node.running.size();) {
    const auto run = node.running[index];
    const auto* agent = hosted(node, run.agent);
    if (now_ms_ < run.finish_ms || agent == nullptr || agent->hung) {
      ++index;
      continue;
    }
    node.running.erase(node.running.begin() + static_cast<std::ptrdiff_t>(index));
    const auto roll = faults_on_ ? uniform(0, 99) : 0;  // the liveness phase: every run succeeds
    if (roll < 50) {
      emit_or_backlog(node, events::task_succeeded{run.task, run.agent, run.attempt});
      continue;
    }
    events::task_failed failed;
    failed.task = run.task;
    failed.agent = run.agent;
    failed.attempt = run.attempt;
    failed.error_type = roll < 85 ? "TransientError" : (roll < 95 ? "BadInput" : non_retryable_type);
    failed.message = "simulated failure";
    failed.retryable = roll < 85 || roll >= 95;  // FatalError is listed as non-retryable instead
    failed.checkpoint = {static_cast<std::uint8_t>(run.attempt), 0x5a};
    emit_or_backlog(node, std::move(failed));
  }
}

void world::node_receive(sim_node& node, const command& message) {
  if (message.node != node.id) fail("command for " + message.node + " delivered to " + node.id);
  if (const auto* acked = std::get_if<commands::ack>(&message.body)) {
    if (acked->incarnation == node.incarnation) node.box->acknowledge(acked->seq, mono(now_ms_));
    return;
  }
  // As the shim's accept_command and dispatcher: admit, run the handler once, ack.
  const auto verdict = node.dedup->admit(message.id);
  if (verdict.state == shim_detail::command_dedup::seen::pending) return;
  command_result result = verdict.result;
  if (verdict.state == shim_detail::command_dedup::seen::fresh) {
    if (++node.handled[message.id] > 1) {
      fail("command " + std::to_string(message.id) + " applied twice by node " + node.id + " incarnation " +
           std::to_string(node.incarnation));
    }
    ++sums_.handler_calls;
    result = handle(node, message);
    node.dedup->complete(message.id, result);
  }
  emit_or_backlog(node, events::command_ack{message.id, result.accepted, result.reason});
  if (result.accepted) {
    if (const auto* probe = std::get_if<commands::agent_probe>(&message.body)) {
      emit(node, events::probe_reply{message.id, probe->agent});
    }
  }
}

command_result world::handle(sim_node& node, const command& message) {
  trace(node.id + " handles " + std::string(kind_name(message.body)) + " " + std::to_string(message.id) + " " +
        about(message.body));
  if (const auto* retry = std::get_if<commands::task_retry>(&message.body)) {
    auto* agent = hosted(node, retry->agent);
    if (agent == nullptr) return command_result::refuse("agent not hosted here");
    if (agent->hung) return command_result::refuse("agent is hung");
    ++sums_.retries_applied;
    auto& highest = max_attempt_run_[retry->task];
    highest = std::max(highest, retry->attempt);
    if (++attempt_runs_[{retry->task, retry->attempt}] == 2) ++sums_.attempts_run_twice;
    emit_or_backlog(node, events::task_started{retry->task, retry->agent, retry->attempt});
    node.running.push_back(sim_run{retry->task, retry->agent, retry->attempt,
                                   now_ms_ + uniform(task_ms_min, task_ms_max)});
    return command_result::accept();
  }
  if (const auto* recover = std::get_if<commands::agent_recover>(&message.body)) {
    auto* agent = hosted(node, recover->agent);
    if (agent == nullptr) return command_result::refuse("agent not hosted here");
    // As the shim: a recover aimed at an earlier incarnation of this node is refused.
    if (shim_detail::is_stale_recover(*recover, true, node.incarnation)) {
      ++sums_.stale_recovers_refused;
      return command_result::refuse(std::string(refused_stale));
    }
    restart_agent(node, *agent);
    return command_result::accept();
  }
  if (std::holds_alternative<commands::episode_shutdown>(message.body)) {
    if (node.episode == message.episode) {
      episodes_ended_[node.episode] = {node.id, node.incarnation};
      emit_or_backlog(node, events::episode_ended{"aborted"});
      node.episode.clear();
      node.episode_restart_ms = now_ms_ + uniform(1000, 10'000);
    }
    return command_result::accept();
  }
  return command_result::accept();  // probe, rollback
}

void world::restart_agent(sim_node& node, sim_agent& agent) {
  if (agent.hang_permanent) return;  // the restart does not cure it
  agent.hung = false;
  agent.last_beat_ms = now_ms_;
  // The agent's runs die with it; the application reports them failed, retryable.
  for (std::size_t index = 0; index < node.running.size();) {
    if (node.running[index].agent != agent.id) {
      ++index;
      continue;
    }
    const auto run = node.running[index];
    node.running.erase(node.running.begin() + static_cast<std::ptrdiff_t>(index));
    events::task_failed failed;
    failed.task = run.task;
    failed.agent = run.agent;
    failed.attempt = run.attempt;
    failed.error_type = "AgentRestarted";
    failed.message = "the agent was restarted";
    emit_or_backlog(node, std::move(failed));
  }
  emit_or_backlog(node, events::agent_registered{agent.id, agent.pool, {}, {}, watchdog_timeout_ms});
}

// ---- the processor ------------------------------------------------------------------------

void world::open_processor() {
  auto opened = processor::store::open(state_file_.string(), processor::store_sync::normal);
  if (!opened) fail("store open failed: " + opened.error().detail);
  auto loaded = opened.value()->load();
  if (!loaded) fail("store load failed: " + loaded.error().detail);
  processor_.store = std::make_unique<processor::store_guard>(std::move(opened.value()));
  processor_.brain = std::make_unique<engine::engine>(config_);
  processor_.brain->restore(loaded.value(), now_ms_);
  processor_.incarnation = (random_() & ((std::uint64_t{1} << 53) - 1)) | 1;
  processor::pump_settings sight;
  sight.stall_threshold_ms = stall_threshold_ms;
  sight.echo_interval_ms = echo_interval_ms;
  sight.echo_timeout_ms = echo_timeout_ms;
  sight.node_id = processor_id;
  sight.incarnation = processor_.incarnation;
  processor_.pump = std::make_unique<processor::pump>(*processor_.brain, sight);
  processor_.up = true;
  trace("processor starts");
  if (shadow_at_crash_) {
    const auto restored = capture();
    const auto& before = shadow_at_crash_->records;
    for (const auto& [key, value] : before) {
      const auto found = restored.records.find(key);
      if (found == restored.records.end()) fail("restart lost " + key + " {" + value + "}");
      if (found->second != value) fail("restart changed " + key + ": {" + value + "} became {" + found->second + "}");
    }
    for (const auto& [key, value] : restored.records) {
      if (before.find(key) == before.end()) fail("restart invented " + key + " {" + value + "}");
    }
    shadow_at_crash_.reset();
  }
}

void world::crash_processor(fault kind) {
  count(kind);
  trace(std::string("processor crashes (") + to_string(kind) + ")");
  // Between batches and right after a commit, the file holds exactly what the engine holds;
  // not when a batch was applied and not committed (before a commit, or the store refusing).
  const bool held_batch = kind == fault::processor_crash_before_commit || processor_.commits_to_fail > 0 ||
                          processor_.store->health().degraded || processor_.commit_failing;
  if (!held_batch) {
    shadow_at_crash_ = capture();
  } else {
    shadow_at_crash_.reset();
  }
  sums_.blind_spells += processor_.brain->stats().blind_spells;
  processor_.pump.reset();
  processor_.brain.reset();
  processor_.store.reset();
  processor_.inbox.clear();  // its socket's queue dies with it
  processor_.up = false;
  processor_.stalled_until_ms = 0;
  processor_.commits_to_fail = 0;
  processor_.commit_failing = false;
  processor_.restart_ms = now_ms_ + uniform(processor_down_ms_min, processor_down_ms_max);
}

bool world::processor_cut_off() const { return now_ms_ < processor_.cut_off_until_ms; }

// The state file deleted (as by `rm`) or replaced by a foreign one under the running
// processor. Its store guard must notice before the next ack and rebuild the file.
void world::take_state_file() {
  count(fault::state_file_replaced);
  std::error_code ignored;
  std::filesystem::remove(state_file_, ignored);
  if (chance(0.5)) {
    std::ofstream(state_file_) << "not an rrh state file\n";
    trace("the state file is replaced");
  } else {
    trace("the state file is deleted");
  }
  processor_.file_fault_open = true;
}

// The pump's source, store and sink in the simulated world: the input queue, the real
// store guard with injected crashes and refusals, and the simulated bus.
struct processor_ports {
  world& owner;
  // Before each chunk: each node's delivery cursor and each failing task's record, so
  // that after the chunk it is known which events were applied and what they did.
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> cursors;
  std::map<std::string, std::optional<engine::task_record>> tasks_before;

  std::size_t receive(std::vector<event>& into, std::size_t limit) {
    auto& inbox = owner.processor_.inbox;
    const auto& brain = *owner.processor_.brain;
    cursors.clear();
    tasks_before.clear();
    std::size_t count = 0;
    for (; count < limit && !inbox.empty(); ++count) {
      auto decoded = decode_event(inbox.front().bytes.data(), inbox.front().bytes.size());
      inbox.pop_front();
      if (!decoded) owner.fail("an event a node sent does not decode: " + decoded.error().detail);
      const auto& incoming = decoded.value();
      if (!cursors.count(incoming.header.node)) {
        const auto* record = brain.node(incoming.header.node);
        cursors[incoming.header.node] = record ? std::pair{record->incarnation, record->applied_seq} : std::pair{std::uint64_t{0}, std::uint64_t{0}};
      }
      if (const auto* failed = std::get_if<events::task_failed>(&incoming.body); failed && !tasks_before.count(failed->task)) {
        const auto* record = brain.task(failed->task);
        tasks_before[failed->task] = record ? std::optional(*record) : std::nullopt;
      }
      into.push_back(std::move(decoded.value()));
    }
    return count;
  }

  // After a chunk: the invariants of each event the chunk applied.
  void applied(const std::vector<event>& chunk, const engine::effects& changes, std::size_t derived_from) {
    const auto& brain = *owner.processor_.brain;
    std::set<std::tuple<std::string, std::uint64_t, std::uint64_t>> counted;
    for (const auto& incoming : chunk) {
      if (incoming.header.seq == 0) continue;
      const auto* record = brain.node(incoming.header.node);
      const auto& [incarnation_before, seq_before] = cursors[incoming.header.node];
      const bool applied_now = record != nullptr && record->incarnation == incoming.header.incarnation &&
                               record->applied_seq >= incoming.header.seq &&
                               !(incarnation_before == incoming.header.incarnation && seq_before >= incoming.header.seq);
      owner.trace("processor " + std::string(applied_now ? "applies " : "skips ") + std::string(kind_name(incoming.body)) +
                  " " + about(incoming.body) + " from " + incoming.header.node + "/" +
                  std::to_string(incoming.header.incarnation) + " seq " + std::to_string(incoming.header.seq));
      if (!applied_now || !counted.emplace(incoming.header.node, incoming.header.incarnation, incoming.header.seq).second) {
        continue;
      }
      ++owner.sums_.events_applied;
      if (const auto* failed = std::get_if<events::task_failed>(&incoming.body)) {
        owner.expect_task_outcome(incoming, changes, derived_from, tasks_before[failed->task]);
      }
      if (std::holds_alternative<events::episode_error>(incoming.body)) owner.expect_episode_threshold(incoming);
    }
  }

  status commit(const engine::engine& brain, const engine::effects& changes, mono_ms now) {
    auto& processor = owner.processor_;
    if (owner.faults_on_ && !processor.file_fault_open && owner.chance(mid_batch_crash_chance)) {
      if (owner.chance(0.5)) throw crash_request{fault::processor_crash_before_commit};  // the batch is lost, unacked
      if (auto committed = processor.store->commit(brain, changes, now); !committed) {
        owner.fail("store commit failed: " + committed.error().detail);
      }
      throw crash_request{fault::processor_crash_after_commit};  // durable, but nothing was sent
    }
    if (processor.commits_to_fail > 0) {
      --processor.commits_to_fail;
      processor.commit_failing = true;
      processor.next_failing_retry_ms = owner.now_ms_ + failing_commit_retry_ms;
      failing_health().failures += 1;
      return make_error(errc::config, "simulated commit failure (a full disk)");
    }
    auto committed = processor.store->commit(brain, changes, now);
    if (committed) {
      processor.commit_failing = false;
      processor.file_fault_open = false;
    } else if (!processor.file_fault_open) {
      owner.fail("store commit failed: " + committed.error().detail);
    }
    return committed;
  }
  const processor::store_health& health() const {
    return owner.processor_.commit_failing ? failing_health() : owner.processor_.store->health();
  }
  bool retry_due(mono_ms now) const {
    if (owner.processor_.commit_failing) return owner.now_ms_ >= owner.processor_.next_failing_retry_ms;
    return owner.processor_.store->retry_due(now);
  }
  bool check_file(mono_ms now) { return owner.processor_.store->check_file(now); }

  void send_command(const command& message) { owner.on_command_sent(message); }
  void publish(engine::derived_event& derived) { owner.on_derived(derived); }
  void send_echo(engine::time_ms sent_at) {
    if (owner.processor_cut_off()) return;
    events::heartbeat beat;
    beat.interval_ms = echo_interval_ms;
    event message{event_header{protocol_version, processor_id, owner.processor_.incarnation, 0, sent_at, {}}, std::move(beat)};
    owner.send(packet{true, processor_id, owner.processor_.incarnation, encode(message)}, owner.faults_on_);
  }

  static processor::store_health& failing_health() {
    static processor::store_health health{true, "simulated commit failure", 0, 0, 0};
    return health;
  }
};

void world::processor_tick() {
  if (!processor_.up || now_ms_ < processor_.stalled_until_ms) return;  // stalled: the bus buffers
  processor_ports ports{*this, {}, {}};
  try {
    processor_.pump->turn(ports, ports, ports, now_ms_);
  } catch (const crash_request& crash) {
    crash_processor(crash.kind);
  }
}

void world::expect_task_outcome(const event& message, const engine::effects& changes, std::size_t derived_from,
                                const std::optional<engine::task_record>& before) {
  const auto& failed = std::get<events::task_failed>(message.body);
  const auto& brain = *processor_.brain;
  const auto& config = brain.config_for_episode(before ? before->episode : message.header.episode);
  const auto attempt = std::max(before ? before->attempt : std::uint64_t{1}, failed.attempt);
  const bool listed = std::find(config.non_retryable_errors.begin(), config.non_retryable_errors.end(),
                                failed.error_type) != config.non_retryable_errors.end();
  const bool retry_expected = failed.retryable && !listed && attempt - 1 < config.max_task_retries;
  // A batch fires due timers between its events: when the task's task_timeout fired in
  // the same chunk, before this failure was applied, the outcome depends on an attempt
  // the record before the chunk does not show, and this check cannot tell which.
  const bool timed_out_in_chunk = std::any_of(
      changes.events.begin() + static_cast<std::ptrdiff_t>(derived_from), changes.events.end(), [&](const auto& derived) {
        const auto* alert = std::get_if<events::alert>(&derived.body);
        return alert != nullptr && alert->code == "task.timeout" &&
               alert->message.find("'" + failed.task + "'") != std::string::npos;
      });
  // A failure of an attempt already superseded is ignored by the engine (its timeout
  // counted it); a retry fired within the chunk after it looks the same from here.
  const auto* after = brain.task(failed.task);
  const bool superseded = failed.attempt != 0 && ((after != nullptr && after->attempt > failed.attempt) ||
                                                  (before && before->attempt > failed.attempt));
  if (timed_out_in_chunk || superseded) {
    ++sums_.outcomes_unchecked;
    return;
  }
  for (std::size_t at = derived_from; at < changes.events.size(); ++at) {
    const auto& derived = changes.events[at];
    if (const auto* scheduled = std::get_if<events::task_retry_scheduled>(&derived.body)) {
      if (scheduled->task != failed.task) continue;
      if (!retry_expected) fail("task " + failed.task + " retried although the policy abandons it");
      if (scheduled->attempt != attempt + 1) {
        fail("task " + failed.task + " retry announced as attempt " + std::to_string(scheduled->attempt) +
             ", expected " + std::to_string(attempt + 1));
      }
      if (scheduled->delay_ms > config.task_retry_delay_max_ms) {
        fail("task " + failed.task + " retry delay " + std::to_string(scheduled->delay_ms) + " over the cap");
      }
      return;
    }
    if (const auto* abandoned = std::get_if<events::task_abandoned>(&derived.body)) {
      if (abandoned->task != failed.task) continue;
      if (retry_expected) fail("task " + failed.task + " abandoned at attempt " + std::to_string(attempt) +
                               " although the policy retries it (" + abandoned->reason + ")");
      return;
    }
  }
  fail("task " + failed.task + " failed (attempt " + std::to_string(attempt) +
       ") and was neither retried nor abandoned");
}

// An episode whose counted errors reached error_threshold is shutting down (or over).
void world::expect_episode_threshold(const event& message) {
  const auto& brain = *processor_.brain;
  const auto* episode = brain.episode(message.header.episode);
  if (episode == nullptr) fail("episode.error applied but episode " + message.header.episode + " unknown");
  const auto& config = brain.config_for_episode(episode->episode);
  const auto counted = config.error_window_ms > 0 ? episode->error_times_ms.size() : episode->errors;
  if (counted >= config.error_threshold && episode->state == engine::episode_state::running) {
    fail("episode " + episode->episode + " has " + std::to_string(counted) +
         " errors counted, at or over error_threshold, and still runs");
  }
}

void world::on_command_sent(const command& message) {
  auto bytes = encode(message);
  if (message.id != 0) {
    const auto [known, fresh] = commands_seen_.emplace(message.id, bytes);
    if (!fresh && known->second != bytes) {
      fail("command id " + std::to_string(message.id) + " reused for a different command (" +
           std::string(kind_name(message.body)) + " to " + message.node + ")");
    }
    if (fresh) on_command_issued(message);
  }
  if (processor_cut_off()) return;  // the broker is out of the processor's reach
  send(packet{false, message.node, 0, std::move(bytes)}, faults_on_);
}

// The first transmission of a command id. Its ts_ms is when the engine issued it: a
// command committed just before a crash goes out only after the restart.
void world::on_command_issued(const command& message) {
  ++sums_.commands_issued;
  const auto& config = processor_.brain->config_for_episode(message.episode);
  if (const auto* recover = std::get_if<commands::agent_recover>(&message.body)) {
    ++sums_.recoveries_issued;
    if (recover->attempt > config.max_recovery_attempts) {
      fail("agent " + recover->agent + " recovery attempt " + std::to_string(recover->attempt) +
           " beyond max_recovery_attempts");
    }
    const auto last = last_recovery_ms_.find(recover->agent);
    if (last != last_recovery_ms_.end() && message.ts_ms < last->second + config.recovery_cooldown_ms) {
      fail("agent " + recover->agent + " recovered again after " + std::to_string(message.ts_ms - last->second) +
           " ms, inside recovery_cooldown");
    }
    last_recovery_ms_[recover->agent] = message.ts_ms;
  }
  if (const auto* retry = std::get_if<commands::task_retry>(&message.body)) {
    if (retry->attempt > 1 + config.max_task_retries) {
      fail("task " + retry->task + " retried as attempt " + std::to_string(retry->attempt) +
           ", beyond 1 + max_task_retries");
    }
  }
  trace("processor sends " + std::string(kind_name(message.body)) + " " + std::to_string(message.id) + " to " +
        message.node + " " + about(message.body));
}

// On a calm network (this seed's message faults off) a node can fall silent only by
// going down: an agent of a node up for live_node_up_ms declared dead of its node's
// silence was killed by the processor's own fault (a stall, an outage, a failing store).
void world::expect_no_false_death(const engine::derived_event& derived) {
  const auto* dead = std::get_if<events::agent_dead>(&derived.body);
  if (dead == nullptr || intensity_ != 0.0 || dead->reason.find("no heartbeat from node") == std::string::npos) return;
  const auto* record = processor_.brain->agent(dead->agent);
  if (record == nullptr) return;
  const auto* node = node_by_id(record->node);
  if (node == nullptr || !node->up || now_ms_ < node->up_since_ms + live_node_up_ms) return;
  fail("live agent " + dead->agent + " declared dead (" + dead->reason + "): its node " + node->id +
       " has been up and heartbeating since t=" + std::to_string(node->up_since_ms - start_time_ms));
}

void world::on_derived(const engine::derived_event& derived) {
  expect_no_false_death(derived);
  if (std::holds_alternative<events::task_abandoned>(derived.body)) ++sums_.abandoned;
  if (std::holds_alternative<events::agent_quarantined>(derived.body)) ++sums_.quarantined;
  if (std::holds_alternative<events::episode_shutdown>(derived.body)) ++sums_.episodes_shut_down;
  if (options_.verbose) {
    const auto* alert = std::get_if<events::alert>(&derived.body);
    trace("processor publishes " + std::string(kind_name(derived.body)) + " " + about(derived.body) +
          (alert != nullptr ? " " + alert->code + ": " + alert->message : std::string()));
  }
}

world::shadow world::capture() const {
  shadow taken;
  const auto& brain = *processor_.brain;
  brain.for_each_node([&](const engine::node_record& node) {
    // A node known only from events it could not apply yet holds nothing worth keeping.
    if (node.incarnation == 0 && node.applied_seq == 0) return;
    taken.records["node " + node.node] =
        "incarnation " + std::to_string(node.incarnation) + " applied_seq " + std::to_string(node.applied_seq);
  });
  brain.for_each_agent([&](const engine::agent_record& agent) {
    taken.records["agent " + agent.agent] =
        std::string("state ") + engine::to_string(agent.state) + " node " + agent.node + " episode " +
        agent.episode + " pool " + agent.pool + " attempts " + std::to_string(agent.recovery_attempts) +
        " last_recovery " + std::to_string(agent.last_recovery_ms);
  });
  brain.for_each_task([&](const engine::task_record& task) {
    taken.records["task " + task.task] =
        std::string("state ") + engine::to_string(task.state) + " agent " + task.agent + " attempt " +
        std::to_string(task.attempt) + " failures " + std::to_string(task.failures) + " due " +
        std::to_string(task.retry_due_ms) + " checkpoint " + std::to_string(task.checkpoint.size());
  });
  brain.for_each_episode([&](const engine::episode_record& episode) {
    taken.records["episode " + episode.episode] =
        std::string("state ") + engine::to_string(episode.state) + " errors " + std::to_string(episode.errors) +
        " status " + episode.status + " agents_seen " + std::to_string(episode.agents_seen.size());
  });
  taken.records["meta"] = "pending " + std::to_string(brain.pending_count()) + " next_command_id " +
                          std::to_string(brain.next_command_id());
  return taken;
}

}  // namespace rrh::sim
