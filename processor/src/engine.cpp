// The engine: every state machine of the design in one pure object. All timers live in
// one min-heap with lazy cancellation (each entity carries a generation; a timer whose
// generation is stale is skipped), so nothing ever scans all agents or tasks per tick.
// Entities sit in slot tables indexed by interned string ids, so timers hold small
// integers rather than strings.
#include "rrh/engine/engine.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "rrh/assert.hpp"
#include "rrh/engine/detector.hpp"
#include "big_table_allocator.hpp"
#include "flat_index.hpp"
#include "prefetch.hpp"
#include "timer_queue.hpp"

namespace rrh::engine {
namespace {

/// A slot index that names no slot.
constexpr std::uint32_t no_slot = std::numeric_limits<std::uint32_t>::max();

/// Slots start on a cache line, so that "a slot's first N bytes" is a known set of lines.
constexpr std::size_t cache_line = 64;

/// How many events ahead of the one applied a batch starts loading their records.
constexpr std::size_t prefetch_distance = 6;

/// Fleets from this many agents on load records ahead (a batch's events, a round of due
/// timers): below it the records fit in the caches and loading ahead is only overhead.
constexpr std::size_t prefetch_agents_min = 16'384;

/// Due timers fired per round of on_tick (their slots are loaded together).
constexpr std::size_t due_round_max = 32;

/// Pool members looked at per retry target pick.
constexpr std::size_t pool_scan_max = 64;

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept {
    return std::hash<std::string_view>{}(text);
  }
};

/// A dense table of records addressed by slot, with an id → slot index. A slot type names
/// its id with `key()`; the index holds no copy of it.
template <class Slot>
class slot_table {
 public:
  std::optional<std::uint32_t> find(std::string_view id) const { return index_.find(id, hash_of(id), key_of()); }
  std::uint32_t insert(const std::string& id) {
    std::uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
      // Generations survive reuse, every one that timers carry: a timer of the slot's
      // previous entity must not match the new one (a task timeout armed for a finished
      // task would otherwise fire early for the next task in its slot).
      Slot fresh{};
      fresh.generation = slots_[slot].generation + 1;
      if constexpr (requires { fresh.timeout_generation; }) fresh.timeout_generation = slots_[slot].timeout_generation + 1;
      if constexpr (requires { fresh.probe_generation; }) fresh.probe_generation = slots_[slot].probe_generation + 1;
      slots_[slot] = std::move(fresh);
    } else {
      slot = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    slots_[slot].live = true;
    slots_[slot].key() = id;
    index_.insert(id, hash_of(id), slot, key_of());
    return slot;
  }
  void erase(std::string_view id) {
    const auto found = index_.erase(id, hash_of(id), key_of());
    if (!found) return;
    auto& slot = slots_[*found];
    slot.live = false;
    ++slot.generation;  // cancels every timer of this slot
    free_.push_back(*found);
  }
  Slot& operator[](std::uint32_t slot) { return slots_[slot]; }
  const Slot& operator[](std::uint32_t slot) const { return slots_[slot]; }
  std::size_t size() const noexcept { return index_.size(); }

  // Two stages of loading ahead of use: first the index line of an id (by its hash), then
  // (once that has arrived) the first `bytes` bytes of the slot it points to (all of it
  // when `bytes` is 0; fields are in order of use). Few lines: the core tracks only so
  // many misses at once.
  void prefetch_index(std::uint64_t id_hash) const noexcept { index_.prefetch(id_hash); }
  void prefetch_slot(std::uint64_t id_hash, std::size_t bytes) const noexcept {
    if (const auto slot = index_.likely_slot(id_hash)) prefetch_at(*slot, 0, bytes);
  }
  // Loads the lines of bytes [from, from + bytes) of a slot (all of it from `from` when
  // `bytes` is 0).
  // (A prefetch never faults: a slot index from a stale or colliding index entry costs a
  // useless load at worst, so there is no bounds check on this path. The address is
  // computed as an integer, not by indexing the vector.)
  void prefetch_at(std::uint32_t slot, std::size_t from, std::size_t bytes) const noexcept {
    const auto start = reinterpret_cast<std::uintptr_t>(slots_.data()) + std::uintptr_t{slot} * sizeof(Slot);
    const std::size_t end = bytes == 0 ? sizeof(Slot) : std::min(from + bytes, sizeof(Slot));
    for (std::size_t at = from & ~(cache_line - 1); at < end; at += cache_line) {
      detail::prefetch_line(reinterpret_cast<const void*>(start + at));
    }
  }
  // While one event is applied: the hash of one of its ids, computed when the batch loaded
  // the event ahead. A lookup of that very string (the same storage) reuses it.
  void set_hint(std::string_view id, std::uint64_t id_hash) noexcept {
    hint_ = id;
    hint_hash_ = id_hash;
  }
  void clear_hint() noexcept { hint_ = {}; }

  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const auto& slot : slots_) {
      if (slot.live) visit(slot);
    }
  }
  template <class Visit>
  void for_each_index(Visit&& visit) const {
    for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
      if (slots_[slot].live) visit(slot);
    }
  }

 private:
  auto key_of() const {
    return [this](std::uint32_t slot) -> std::string_view { return slots_[slot].key(); };
  }

  std::uint64_t hash_of(std::string_view id) const noexcept {
    const bool hinted = hint_.data() != nullptr && id.data() == hint_.data() && id.size() == hint_.size();
    return hinted ? hint_hash_ : detail::flat_index::hash(id);
  }

  std::vector<Slot, detail::big_table_allocator<Slot>> slots_;
  std::vector<std::uint32_t> free_;
  detail::flat_index index_;
  std::string_view hint_;
  std::uint64_t hint_hash_ = 0;
};

enum class timer_kind : std::uint8_t {
  node_check,        // phi or missed-heartbeat threshold of a node
  agent_stale,       // a stale agent's grace ran out
  agent_probe,       // time for the next active probe
  probe_timeout,     // a probe went unanswered
  recovery_ready,    // cooldown over: the agent may join the recovery queue
  recovery_timeout,  // a recovery was not confirmed in time
  recovery_queue,    // the recovery pacer has a token again
  task_retry,        // a scheduled retry is due
  task_timeout,      // a running (or retried) task had no outcome in task_timeout
  episode_timeout,   // an episode has run for episode_timeout
  episode_shutdown,  // the shutdown grace of an episode ran out
  command_resend,    // an unacked command is due for retransmission
  node_forget,       // a node has been dead for node_retention
  episode_forget,    // an episode has been ended for episode_retention
};

/// Timers that act on what the processor has not heard: while it cannot see the bus
/// (blind) they are held, and fire after it sees again, late by as long as it was blind.
/// A retry, an episode's timers and the pacer's own timer do not judge anyone's silence.
constexpr bool judges_silence(timer_kind kind) noexcept {
  switch (kind) {
    case timer_kind::node_check:
    case timer_kind::agent_stale:
    case timer_kind::agent_probe:
    case timer_kind::probe_timeout:
    case timer_kind::recovery_ready:
    case timer_kind::recovery_timeout:
    case timer_kind::task_timeout:
    case timer_kind::command_resend:
    case timer_kind::node_forget: return true;
    default: return false;
  }
}

struct timer {
  time_ms due;
  std::uint64_t key;         // slot, or command id for command_resend
  std::uint64_t generation;  // must still match for the timer to fire
  timer_kind kind;
};

struct alignas(cache_line) node_slot {
  std::string& key() { return record.node; }
  const std::string& key() const { return record.node; }
  // Members in order of use: what every event of the node reads fits its first cache line
  // (up to the record's applied_seq: `node_hot_bytes`); the detector's window (heartbeats
  // only) comes last.
  std::uint32_t ack_index = no_slot;   // where this node's ack sits in the current effects
  std::uint32_t mark_index = no_slot;  // where its key sits in the effects' nodes_changed
  bool live = false;
  // detector.started(), kept here because every event of the node asks and the detector
  // lies lines away: true from start_detection on (a reset of the detector is always
  // followed at once by a heartbeat that starts it again).
  bool detecting = false;
  bool suspect = false;
  bool dead = false;
  bool silent = false;  // fell silent hosting a live agent (not by node.exited): the disruption guard counts it
  bool silence_recent = false;  // ... and within disruption_window of now (set_silent, age_silences)
  node_record record;
  std::uint64_t generation = 0;
  /// Hosted agents a heartbeat may change (not healthy, or stale): while 0, a heartbeat
  /// without stale entries needs no per-agent work, so a healthy fleet's heartbeats cost
  /// the same at a thousand agents as at a million.
  std::uint32_t attention = 0;
  time_ms dead_since_ms = 0;  // when `dead` was last set
  std::vector<std::uint32_t> agents;
  phi_detector detector;
  /// Other incarnations of this node seen since its record last switched (heartbeats, or
  /// events not applied: a process whose critical events were all lost or delayed). They
  /// are retired with the current one at the next switch, so that a late first event of
  /// one of them cannot take the node back. Newest last; the oldest falls off.
  std::array<std::uint64_t, 4> other_incarnations{};
  time_ms silent_since_ms = 0;  // when `silent` was last set
};

struct alignas(cache_line) agent_slot {
  std::string& key() { return record.agent; }
  const std::string& key() const { return record.agent; }
  // What an event of the agent reads comes first, with the record's id, state, episode
  // and pool right after (`agent_hot_bytes`): in a large fleet each line of a slot is a
  // cache miss.
  std::uint32_t node = 0;
  bool live = false;
  bool stale = false;
  std::uint64_t tasks = 0;
  std::uint64_t generation = 0;
  agent_record record;
  time_ms healthy_since_ms = 0;
  std::uint64_t recover_command = 0;
  std::uint64_t probe_command = 0;
  time_ms probe_sent_ms = 0;
  std::uint64_t probe_generation = 0;
  double rtt_average_ms = 0;
  double rtt_baseline_ms = 0;
  bool rtt_alerted = false;
  bool slow_responder = false;  // suspect for its probe answers: only a fast answer clears it
  // What a death by node silence looked like, so that the same process heartbeating again
  // (an unreachable node, not a dead one: a broker outage, a partition) is not charged a
  // recovery attempt.
  bool died_of_silence = false;
  std::uint64_t incarnation_at_death = 0;
  std::uint64_t attempts_before_death = 0;
  // The current agent.recover reached its target (acked, or refused for a reason other
  // than `stale`): only such recoveries count toward quarantine.
  bool recover_delivered = false;
};

struct alignas(cache_line) task_slot {
  std::string& key() { return record.task; }
  const std::string& key() const { return record.task; }
  // Scalars first, then the record's ids (`task_hot_bytes`); error texts and checkpoint last.
  std::uint32_t owner = no_slot;  // cached slot of record.agent; checked before use
  bool live = false;
  bool no_target_alerted = false;
  std::uint64_t retry_command = 0;
  std::uint64_t generation = 0;
  std::uint64_t timeout_generation = 0;  // moves whenever an attempt's timeout is (re)armed
  task_record record;
};

/// Bytes from a slot's start that an event of its entity reads; prefetched ahead of use.
/// (offsetof of a member of a record with strings: not standard layout, but g++ and
/// clang give the offset all the same.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
constexpr std::size_t node_hot_bytes = offsetof(node_slot, record) + offsetof(node_record, retired_incarnations);
static_assert(node_hot_bytes <= cache_line, "an event of a node reads one line of its slot");
constexpr std::size_t node_generation_offset = offsetof(node_slot, generation);
constexpr std::size_t agent_hot_bytes = offsetof(agent_slot, record) + offsetof(agent_record, node);
constexpr std::size_t task_hot_bytes = offsetof(task_slot, record) + offsetof(task_record, retry_due_ms);
/// A heartbeat reads its node's record and the detector's sums, and writes one entry of
/// the detector's window (a store, which does not wait for its line).
constexpr std::size_t node_heartbeat_bytes = offsetof(node_slot, detector) + phi_detector::summary_bytes;
/// The probe fields of an agent (a probe timer checks them).
constexpr std::size_t agent_probe_offset = offsetof(agent_slot, probe_command);
constexpr std::size_t agent_probe_bytes = offsetof(agent_slot, probe_generation) + sizeof(std::uint64_t) - agent_probe_offset;
#pragma GCC diagnostic pop

struct episode_slot {
  std::string& key() { return record.episode; }
  const std::string& key() const { return record.episode; }
  episode_record record;
  std::shared_ptr<const resilience_config> config;
  std::unordered_set<std::uint32_t> agents;
  std::unordered_set<std::string> seen;
  std::uint64_t generation = 0;
  std::uint64_t timeout_generation = 0;  // moves whenever the episode's timeout is (re)armed
  bool live = false;
};

/// Whether a heartbeat listing this agent may change it.
bool needs_attention(const agent_slot& agent) {
  const auto state = agent.record.state;
  // A quarantined agent too: a heartbeat that lists it alive releases it.
  if (state == agent_state::left) return false;
  return state != agent_state::healthy || agent.stale;
}

bool is_alive(agent_state state) {
  return state == agent_state::healthy || state == agent_state::suspect ||
         state == agent_state::registered;
}

double ewma(double average, double sample, double weight) {
  return average == 0.0 ? sample : average + weight * (sample - average);
}

}  // namespace

const char* to_string(agent_state state) noexcept {
  switch (state) {
    case agent_state::registered: return "registered";
    case agent_state::healthy: return "healthy";
    case agent_state::suspect: return "suspect";
    case agent_state::dead: return "dead";
    case agent_state::recovering: return "recovering";
    case agent_state::quarantined: return "quarantined";
    case agent_state::left: return "left";
  }
  return "unknown";
}

const char* to_string(task_state state) noexcept {
  switch (state) {
    case task_state::running: return "running";
    case task_state::retry_scheduled: return "retry_scheduled";
    case task_state::retrying: return "retrying";
    case task_state::succeeded: return "succeeded";
    case task_state::abandoned: return "abandoned";
  }
  return "unknown";
}

const char* to_string(episode_state state) noexcept {
  switch (state) {
    case episode_state::running: return "running";
    case episode_state::shutting_down: return "shutting_down";
    case episode_state::ended: return "ended";
  }
  return "unknown";
}

bool effects::nothing_to_store() const noexcept {
  return nodes_changed.empty() && agents_changed.empty() && agents_removed.empty() &&
         tasks_changed.empty() && tasks_removed.empty() && episodes_changed.empty() &&
         commands_changed.empty() && commands_removed.empty() && !meta_changed;
}

void effects::clear() {
  commands.clear();
  acks.clear();
  events.clear();
  nodes_changed.clear();
  agents_changed.clear();
  agents_removed.clear();
  tasks_changed.clear();
  tasks_removed.clear();
  episodes_changed.clear();
  commands_changed.clear();
  commands_removed.clear();
  meta_changed = false;
}

struct engine::impl {
  explicit impl(resilience_config configuration)
      : base(std::make_shared<const resilience_config>(std::move(configuration))),
        recovery_tokens(static_cast<double>(base->recovery_burst)),
        jitter(base->jitter_seed) {}

  std::shared_ptr<const resilience_config> base;
  slot_table<node_slot> nodes;
  slot_table<agent_slot> agents;
  slot_table<task_slot> tasks;
  slot_table<episode_slot> episodes;
  std::unordered_map<std::uint64_t, pending_command> pending;
  std::unordered_map<std::string, std::vector<std::uint32_t>, string_hash, std::equal_to<>> pools;
  std::unordered_map<std::string, std::size_t, string_hash, std::equal_to<>> pool_cursor;
  detail::timer_queue<timer> timers;
  std::vector<timer> due_round;  // on_tick's current round (kept for its capacity)
  std::deque<std::pair<std::uint32_t, std::uint64_t>> recovery_queue;  // (agent slot, generation)
  bool recovery_timer_armed = false;
  double recovery_tokens;
  time_ms recovery_refill_ms = 0;
  std::mt19937_64 jitter;
  std::uint64_t next_command_id = 1;
  std::unordered_map<std::string, time_ms> alert_last_ms;  // limit alerts, at most one a minute
  engine_stats counters;
  time_ms now = 0;
  effects* out = nullptr;
  // The processor's own sight (lose_sight, regain_sight) and the disruption guard.
  bool blind = false;
  time_ms blind_since_ms = 0;
  std::uint64_t echo_timeout_ms = 0;  // expect_echo: 0 = the engine does not check its hearing
  time_ms heard_ms = 0;               // the send time of the newest own echo heard back
  std::vector<timer> held;       // timers that judge silence and fell due while blind
  std::size_t silent_nodes = 0;   // nodes with `silent` set
  std::size_t recent_silent = 0;  // of those, fallen silent within disruption_window
  std::deque<std::pair<time_ms, std::uint32_t>> silence_onsets;  // (since, node slot), oldest first
  bool disrupted = false;
  state_counts counts;  // records by state, kept as states change: status is O(1)

  // ---- helpers ------------------------------------------------------------------------

  const resilience_config& config_of_episode(std::string_view id) const {
    if (!id.empty()) {
      if (const auto slot = episodes.find(id)) {
        const auto& config = episodes[*slot].config;
        if (config) return *config;
      }
    }
    return *base;
  }
  const resilience_config& config_of(const agent_slot& agent) const {
    return config_of_episode(agent.record.episode);
  }

  void schedule(time_ms due, timer_kind kind, std::uint64_t key, std::uint64_t generation) {
    timers.push(timer{due, key, generation, kind});
  }

  void publish(const std::string& episode, event_body body) {
    out->events.push_back(derived_event{episode, std::move(body)});
  }

  void raise_alert(const std::string& severity, const std::string& code, const std::string& message,
                   const std::string& agent = {}, const std::string& episode = {}) {
    publish(episode, events::alert{severity, code, message.substr(0, text_length_max), agent});
  }

  // Alerts about limits: at most one a minute per code, so a flood cannot flood the bus.
  void raise_limit_alert(const std::string& code, const std::string& message) {
    ++counters.limit_rejections;
    auto& last = alert_last_ms[code];
    if (last != 0 && now < last + 60'000) return;
    last = now;
    raise_alert("warning", code, message);
  }

  void mark(const node_slot& node) { out->nodes_changed.push_back(node.record.node); }
  void mark(const agent_slot& agent) { out->agents_changed.push_back(agent.record.agent); }
  void mark(const task_slot& task) { out->tasks_changed.push_back(task.record.task); }
  void mark(const episode_slot& episode) { out->episodes_changed.push_back(episode.record.episode); }

  // Issues a command; tracked ones stay pending (and are resent) until acked.
  std::uint64_t issue(const std::string& node, const std::string& episode, command_body body,
                      bool tracked = true) {
    if (tracked && pending.size() >= base->max_pending_commands) {
      raise_limit_alert("limit.pending_commands", "pending command limit reached; command not sent");
      ++counters.commands_dropped;
      return 0;
    }
    command message;
    message.id = next_command_id++;
    message.node = node;
    message.ts_ms = now;
    message.episode = episode;
    message.body = std::move(body);
    out->meta_changed = true;
    ++counters.commands_issued;
    const auto id = message.id;
    if (tracked) {
      const auto first_resend = now + base->command_retransmit_initial_ms;
      out->commands.push_back(message);
      pending.emplace(id, pending_command{std::move(message), first_resend, 1});
      schedule(first_resend, timer_kind::command_resend, id, 1);
      out->commands_changed.push_back(id);
    } else {
      out->commands.push_back(std::move(message));  // a probe: sent once, not kept
    }
    return id;
  }

  void cancel_command(std::uint64_t id) {
    if (id != 0 && pending.erase(id) > 0) out->commands_removed.push_back(id);
  }

  // A node's applied_seq moves with every critical event: its record is marked once per
  // batch of effects, not once per event (a batch from many nodes would copy a node id
  // per event). The node remembers where its mark sits, as it does for its ack.
  void mark_once(node_slot& node) {
    auto& changed = out->nodes_changed;
    if (node.mark_index < changed.size() && changed[node.mark_index] == node.record.node) return;
    node.mark_index = static_cast<std::uint32_t>(changed.size());
    changed.push_back(node.record.node);
  }

  // One cumulative ack per node per batch of effects: a later event of the node moves it.
  // The node remembers where its ack sits, so a batch from many nodes does not scan.
  void add_ack(node_slot& node) {
    auto& acks = out->acks;
    const commands::ack body{node.record.incarnation, node.record.applied_seq};
    if (node.ack_index < acks.size() && acks[node.ack_index].node == node.record.node) {
      std::get<commands::ack>(acks[node.ack_index].body) = body;
      return;
    }
    node.ack_index = static_cast<std::uint32_t>(acks.size());
    // Built in place with its body: a default command would first build (and then destroy)
    // the body's first alternative, a task.retry with its strings and checkpoint.
    acks.emplace_back(protocol_version, std::uint64_t{0}, node.record.node, now, std::string(), body);
  }

  // ---- nodes and failure detection ------------------------------------------------------

  std::optional<std::uint32_t> ensure_node(const std::string& id) {
    if (auto slot = nodes.find(id)) return slot;
    if (nodes.size() >= base->max_nodes) {
      raise_limit_alert("limit.nodes", "node limit reached; events of node '" + id + "' ignored");
      return std::nullopt;
    }
    const auto slot = nodes.insert(id);
    nodes[slot].record.node = id;
    return slot;
  }

  // Next time the node's silence crosses a threshold it has not crossed yet.
  void schedule_node_check(std::uint32_t slot) {
    auto& node = nodes[slot];
    ++node.generation;
    const auto& config = *base;
    time_ms due;
    if (config.failure_detector == detector_mode::phi_accrual) {
      const double threshold = node.suspect ? config.phi_threshold : config.phi_suspect_threshold;
      due = node.detector.time_at_phi(threshold, config.acceptable_pause_ms, config.min_std_deviation_ms);
    } else {
      const auto missed = node.suspect ? config.missed_heartbeats_dead : config.missed_heartbeats_suspect;
      due = node.detector.last_heartbeat_ms() + missed * node.record.heartbeat_interval_ms;
    }
    schedule(std::max(due, now), timer_kind::node_check, slot, node.generation);
  }

  void start_detection(std::uint32_t slot, std::uint64_t interval_ms) {
    auto& node = nodes[slot];
    node.detecting = true;
    node.detector.heartbeat(now, interval_ms);
    node.suspect = false;
    node.dead = false;
    set_silent(slot, false);
    schedule_node_check(slot);
  }

  // A window as a restart gives: no statistics from before (a silence or a backlog that
  // the processor could not judge would distort them for minutes), silence measured from
  // now against the interval the node promised.
  void fresh_window(std::uint32_t slot) {
    nodes[slot].detector = phi_detector{};
    start_detection(slot, std::max<std::uint64_t>(nodes[slot].record.heartbeat_interval_ms, 1));
  }

  // ---- the disruption guard -----------------------------------------------------------------
  // When more than disruption_threshold of the known nodes fall silent within one
  // disruption_window, the cause is more likely between them and the processor than in
  // each of them: recoveries slow to disruption_recovery_rate_per_s (0: paused) until the
  // fleet answers again (the share of silent nodes back at or under the threshold). Nodes
  // fall suspect before they are dead, so a mass silence trips the guard before the first
  // of its deaths reaches the recovery pacer. A node falls silent only while it hosts a
  // live agent: one whose agents are already dead (killed long ago, or dead again after
  // a fresh window) is not news, and nodes dying one by one over the day never add up to
  // a disruption.

  void set_silent(std::uint32_t slot, bool silent) {
    auto& node = nodes[slot];
    if (node.silent == silent) return;
    if (silent) {
      const bool hosts_live = std::any_of(node.agents.begin(), node.agents.end(),
                                          [&](std::uint32_t agent) { return is_alive(agents[agent].record.state); });
      if (!hosts_live) return;
      node.silent = true;
      node.silent_since_ms = now;
      node.silence_recent = true;
      ++silent_nodes;
      ++recent_silent;
      silence_onsets.emplace_back(now, slot);
    } else {
      node.silent = false;
      RRH_ASSERT(silent_nodes > 0);
      --silent_nodes;
      if (node.silence_recent) {
        node.silence_recent = false;
        RRH_ASSERT(recent_silent > 0);
        --recent_silent;
      }
    }
    judge_disruption();
  }

  // Onsets older than disruption_window no longer count toward entering a disruption.
  void age_silences() {
    const auto window_ms = base->disruption_window_ms;
    while (!silence_onsets.empty() && silence_onsets.front().first + window_ms < now) {
      const auto [since, slot] = silence_onsets.front();
      silence_onsets.pop_front();
      auto& node = nodes[slot];
      if (node.live && node.silent && node.silence_recent && node.silent_since_ms == since) {
        node.silence_recent = false;
        RRH_ASSERT(recent_silent > 0);
        --recent_silent;
      }
    }
  }

  void judge_disruption() {
    const auto& config = *base;
    age_silences();
    const auto known = static_cast<double>(nodes.size());
    const auto limit = config.disruption_threshold * known;
    const bool mass_silence =
        disrupted ? static_cast<double>(silent_nodes) > limit
                  : nodes.size() >= config.disruption_min_nodes && static_cast<double>(recent_silent) > limit;
    if (mass_silence == disrupted) return;
    disrupted = mass_silence;
    const auto share = std::to_string(silent_nodes) + " of " + std::to_string(nodes.size()) + " nodes silent";
    if (disrupted) {
      ++counters.disruptions;
      const auto pace = config.disruption_recovery_rate_per_s > 0.0
                            ? "slowed to " + std::to_string(config.disruption_recovery_rate_per_s) + "/s"
                            : std::string("paused");
      raise_alert("critical", "fleet.disrupted",
                  std::to_string(recent_silent) + " of " + std::to_string(nodes.size()) +
                      " nodes fell silent within disruption_window: recoveries " + pace +
                      " until the fleet answers again");
      return;
    }
    raise_alert("info", "fleet.answering", share + ": the fleet answers again; recoveries resume at their pace");
    // What was judged during the mass silence is suspect: the nodes still silent get a
    // fresh window (the rest of the fleet's answers are seconds behind), and their agents'
    // recoveries wait for that verdict.
    nodes.for_each_index([&](std::uint32_t slot) {
      if (nodes[slot].silent) fresh_window(slot);
    });
    drain_recovery_queue();
  }

  void on_node_check(std::uint32_t slot) {
    auto& node = nodes[slot];
    const auto& config = *base;
    const auto silent_ms = now - node.detector.last_heartbeat_ms();
    const double phi = node.detector.phi(now, config.acceptable_pause_ms, config.min_std_deviation_ms);
    if (!node.suspect) {
      node.suspect = true;
      set_silent(slot, true);
      for (const auto agent_slot_index : node.agents) {
        auto& agent = agents[agent_slot_index];
        if (agent.record.state == agent_state::healthy || agent.record.state == agent_state::registered) {
          set_state(agent, agent_state::suspect);
          publish(agent.record.episode,
                  events::agent_suspect{agent.record.agent, phi,
                                        "no heartbeat from node '" + node.record.node + "' for " +
                                            std::to_string(silent_ms) + " ms"});
        }
      }
      schedule_node_check(slot);
      return;
    }
    node.dead = true;
    node.dead_since_ms = now;
    ++node.generation;
    schedule_forget(slot);
    const auto hosted = node.agents;  // agent_dead may change the node's list
    for (const auto agent_slot_index : hosted) {
      auto& agent = agents[agent_slot_index];
      if (is_alive(agent.record.state)) {
        agent_dead(agent_slot_index, silent_ms,
                   "no heartbeat from node '" + node.record.node + "' for " +
                       std::to_string(silent_ms) + " ms",
                   true);
      } else if (agent.record.state == agent_state::dead && agent.died_of_silence) {
        begin_recovery(agent_slot_index);  // its recovery waited for this verdict
      }
    }
  }

  // A supervisor saw its child exit: the child's agents are dead now, not when their
  // heartbeats lapse. Its next incarnation's heartbeats and registrations revive them.
  void on_node_exited(const events::node_exited& exited) {
    const auto slot = nodes.find(exited.child);
    if (!slot) return;
    auto& node = nodes[*slot];
    node.dead = true;
    node.dead_since_ms = now;
    node.suspect = true;
    set_silent(*slot, false);  // gone, not silent: a supervisor saw it exit
    ++node.generation;  // no silence timer for a node known to be gone
    schedule_forget(*slot);
    const auto hosted = node.agents;
    for (const auto agent_slot_index : hosted) {
      if (is_alive(agents[agent_slot_index].record.state)) {
        agent_dead(agent_slot_index, 0, "process of node '" + exited.child + "' " + exited.reason);
      }
    }
  }

  // A node dead or gone for node_retention is forgotten with its agents: node ids are
  // made up by every process start (`<host>-<pid>`), so without this the node table
  // would fill over months and then refuse new nodes.
  void schedule_forget(std::uint32_t slot) {
    if (base->node_retention_ms == 0) return;
    schedule(now + base->node_retention_ms, timer_kind::node_forget, slot, nodes[slot].generation);
  }

  void forget_node(std::uint32_t slot) {
    auto& node = nodes[slot];
    RRH_ASSERT(node.dead);
    events::node_forgotten forgotten{node.record.node, now - node.dead_since_ms, {}};
    const auto hosted = node.agents;  // remove_agent changes the node's list
    for (const auto agent_slot_index : hosted) {
      forgotten.agents.push_back(agents[agent_slot_index].record.agent);
      remove_agent(agent_slot_index);
    }
    set_silent(slot, false);
    mark(nodes[slot]);  // gone from the engine: the store deletes its row
    nodes.erase(forgotten.node);
    ++counters.nodes_forgotten;
    publish({}, std::move(forgotten));
    judge_disruption();
  }

  void on_heartbeat(std::uint32_t node_slot_index, const event& message) {
    const auto& beat = std::get<events::heartbeat>(message.body);
    ++counters.heartbeats;
    auto& node = nodes[node_slot_index];
    node.record.last_heartbeat_ms = now;
    const auto interval_ms = std::max<std::uint64_t>(beat.interval_ms, 1);
    // Stored when what a restart needs changes (not on every beat: that would be a
    // store write per heartbeat).
    if (node.record.heartbeat_interval_ms != interval_ms || node.record.host != beat.host ||
        node.record.pid != beat.pid) {
      mark(node);
    }
    // The detector's statistics rest on the interval the node promised; a new promise (a
    // node's first heartbeat after its registration opened the window with the default)
    // starts them again, or a fast node would be judged by a slow default for a while.
    if (node.record.heartbeat_interval_ms != interval_ms) node.detector = phi_detector{};
    node.record.heartbeat_interval_ms = interval_ms;
    node.record.host = beat.host;
    node.record.pid = beat.pid;
    node.record.rss_bytes = beat.rss_bytes;
    node.record.in_flight = beat.in_flight;
    node.detector.heartbeat(now, node.record.heartbeat_interval_ms);
    node.suspect = false;
    node.dead = false;
    if (node.silent) set_silent(node_slot_index, false);
    schedule_node_check(node_slot_index);
    const bool any_stale = std::any_of(beat.agents.begin(), beat.agents.end(),
                                       [](const auto& liveness) { return liveness.stale; });
    if (node.attention == 0 && !any_stale) return;
    for (const auto& liveness : beat.agents) {
      const auto slot = agents.find(liveness.agent);
      if (!slot) continue;
      auto& agent = agents[*slot];
      if (agent.node != node_slot_index || agent.record.state == agent_state::left) continue;
      if (liveness.stale) {
        if (!agent.stale && agent.record.state != agent_state::quarantined) agent_went_stale(*slot, liveness.age_ms);
      } else {
        set_stale(agent, false);
        if (agent.record.state == agent_state::quarantined) release_quarantine(*slot, "its node reports it alive");
        agent_alive(*slot, message.header.incarnation);
      }
    }
  }

  // ---- agents ---------------------------------------------------------------------------

  // Every change of an agent's state or stale flag goes through these two, which keep the
  // hosting node's attention count right.
  template <class Change>
  void change_agent(agent_slot& agent, Change&& change) {
    const bool before = needs_attention(agent);
    change();
    const bool after = needs_attention(agent);
    if (before != after) {
      auto& count = nodes[agent.node].attention;
      count = after ? count + 1 : count - 1;
    }
  }

  void set_stale(agent_slot& agent, bool stale) {
    change_agent(agent, [&] { agent.stale = stale; });
  }

  // Every count of records by state moves here, and where records are made and removed.
  template <std::size_t size, class State>
  static void count_in(std::array<std::uint64_t, size>& by_state, State state) {
    ++by_state[static_cast<std::size_t>(state)];
  }
  template <std::size_t size, class State>
  static void count_out(std::array<std::uint64_t, size>& by_state, State state) {
    RRH_ASSERT(by_state[static_cast<std::size_t>(state)] > 0);
    --by_state[static_cast<std::size_t>(state)];
  }

  void set_task_state(task_slot& task, task_state state) {
    count_out(counts.tasks, task.record.state);
    task.record.state = state;
    count_in(counts.tasks, state);
  }

  void set_episode_state(episode_slot& episode, episode_state state) {
    count_out(counts.episodes, episode.record.state);
    episode.record.state = state;
    count_in(counts.episodes, state);
  }

  void set_state(agent_slot& agent, agent_state state) {
    if (agent.record.state == state) return;
    count_out(counts.agents, agent.record.state);
    count_in(counts.agents, state);
    change_agent(agent, [&] { agent.record.state = state; });
    agent.record.state_since_ms = now;
    if (state == agent_state::healthy) agent.healthy_since_ms = now;
    mark(agent);
  }

  // Evidence of life: heartbeat without a stale watchdog, or a re-registration.
  // `heartbeat_incarnation`: the incarnation of the heartbeat that shows the agent alive;
  // 0 for a registration (a new process, or the same one registering again).
  void agent_alive(std::uint32_t slot, std::uint64_t heartbeat_incarnation = 0) {
    auto& agent = agents[slot];
    const auto previous = agent.record.state;
    if (previous == agent_state::healthy) return;
    if (previous == agent_state::quarantined || previous == agent_state::left) return;
    // A heartbeat proves the process lives, not that it answers in time.
    if (previous == agent_state::suspect && agent.slow_responder) return;
    if ((previous == agent_state::dead || previous == agent_state::recovering) && agent.died_of_silence &&
        heartbeat_incarnation != 0 && heartbeat_incarnation == agent.incarnation_at_death) {
      // The very process that fell silent speaks again: it was unreachable, not dead. Its
      // recovery attempt is given back, or a few broker outages would quarantine a
      // healthy fleet for good.
      agent.record.recovery_attempts = agent.attempts_before_death;
    }
    agent.died_of_silence = false;
    ++agent.generation;  // cancels stale, recovery and recovery-timeout timers
    cancel_command(agent.recover_command);
    agent.recover_command = 0;
    set_state(agent, agent_state::healthy);
    if (previous == agent_state::dead || previous == agent_state::recovering) {
      publish(agent.record.episode, events::agent_recovered{agent.record.agent, agent.record.recovery_attempts});
      if (previous == agent_state::recovering) {
        if (auto* episode = episode_of(agent)) {
          ++episode->record.recoveries_succeeded;
          mark(*episode);
        }
      }
    }
  }

  void agent_went_stale(std::uint32_t slot, std::uint64_t age_ms) {
    auto& agent = agents[slot];
    set_stale(agent, true);
    if (!is_alive(agent.record.state)) return;
    if (agent.record.state != agent_state::suspect) {
      set_state(agent, agent_state::suspect);
      publish(agent.record.episode,
              events::agent_suspect{agent.record.agent, 0.0,
                                    "watchdog lapsed: no beat for " + std::to_string(age_ms) + " ms"});
    }
    ++agent.generation;
    schedule(now + config_of(agent).stale_grace_ms, timer_kind::agent_stale, slot, agent.generation);
  }

  void on_agent_stale_timer(std::uint32_t slot) {
    auto& agent = agents[slot];
    if (!agent.stale || !is_alive(agent.record.state)) return;
    agent_dead(slot, config_of(agent).stale_grace_ms, "watchdog lapsed and stayed lapsed (hung)");
  }

  void agent_dead(std::uint32_t slot, std::uint64_t silent_ms, const std::string& reason,
                  bool silence = false) {
    auto& agent = agents[slot];
    const auto& config = config_of(agent);
    // Silence passes through suspect before dead, so a suspect agent's healthy time counts too.
    const bool was_healthy = agent.record.state == agent_state::healthy ||
                             (agent.record.state == agent_state::suspect && agent.healthy_since_ms != 0);
    if (was_healthy && now >= agent.healthy_since_ms + config.recovery_reset_after_ms) {
      agent.record.recovery_attempts = 0;  // healthy long enough: a fresh budget
    }
    agent.died_of_silence = silence;
    agent.incarnation_at_death = nodes[agent.node].record.incarnation;
    agent.attempts_before_death = agent.record.recovery_attempts;
    ++agent.generation;
    set_state(agent, agent_state::dead);
    publish(agent.record.episode, events::agent_dead{agent.record.agent, silent_ms, reason});
    begin_recovery(slot);
  }

  void begin_recovery(std::uint32_t slot) {
    auto& agent = agents[slot];
    const auto& config = config_of(agent);
    if (agent.record.recovery_attempts >= config.max_recovery_attempts) {
      quarantine(slot);
      return;
    }
    time_ms ready = now;
    if (agent.record.last_recovery_ms != 0) {
      ready = std::max(now, agent.record.last_recovery_ms + config.recovery_cooldown_ms);
    }
    schedule(ready, timer_kind::recovery_ready, slot, agent.generation);
  }

  void quarantine(std::uint32_t slot) {
    auto& agent = agents[slot];
    ++agent.generation;
    set_state(agent, agent_state::quarantined);
    const auto reason = "no recovery after " + std::to_string(agent.record.recovery_attempts) + " attempts";
    publish(agent.record.episode,
            events::agent_quarantined{agent.record.agent, agent.record.recovery_attempts, reason});
    raise_alert("critical", "agent.quarantined", "agent '" + agent.record.agent + "' quarantined: " + reason,
                agent.record.agent, agent.record.episode);
  }

  // A quarantined agent that lives again (it registered again, or its node reports it
  // alive and not hung): someone fixed it. A fresh budget; agent_alive makes it healthy.
  void release_quarantine(std::uint32_t slot, const std::string& why) {
    auto& agent = agents[slot];
    agent.record.recovery_attempts = 0;
    set_state(agent, agent_state::dead);
    raise_alert("info", "agent.released", "agent '" + agent.record.agent + "' out of quarantine: " + why,
                agent.record.agent, agent.record.episode);
  }

  void on_recovery_ready(std::uint32_t slot) {
    recovery_queue.emplace_back(slot, agents[slot].generation);
    drain_recovery_queue();
  }

  // The fleet-wide pacer: a token bucket of recovery_rate_per_s and recovery_burst.
  // While the processor is blind, or the fleet is disrupted and the disruption pace is 0,
  // the queue waits: nothing is sent, so no attempt is charged; regain_sight and the end
  // of the disruption drain it again.
  void drain_recovery_queue() {
    const auto& config = *base;
    const double rate = disrupted ? config.disruption_recovery_rate_per_s : config.recovery_rate_per_s;
    if (blind || rate <= 0.0) return;
    const double burst = disrupted ? 1.0 : static_cast<double>(config.recovery_burst);
    const double elapsed_s = static_cast<double>(now - std::min(now, recovery_refill_ms)) / 1000.0;
    recovery_tokens = std::min(burst, recovery_tokens + elapsed_s * rate);
    recovery_refill_ms = now;
    while (!recovery_queue.empty() && recovery_tokens >= 1.0) {
      const auto [slot, generation] = recovery_queue.front();
      recovery_queue.pop_front();
      auto& agent = agents[slot];
      if (!agent.live || agent.generation != generation || agent.record.state != agent_state::dead) continue;
      // Dead of its node's silence, and the node has a fresh window since (the processor
      // saw again, a disruption ended): it waits for the node's new verdict, which queues
      // it again (on_node_check).
      if (agent.died_of_silence && !nodes[agent.node].dead) continue;
      recovery_tokens -= 1.0;
      send_recover(slot);
    }
    if (!recovery_queue.empty() && !recovery_timer_armed) {
      const auto wait_ms = static_cast<time_ms>(std::ceil((1.0 - recovery_tokens) * 1000.0 / rate));
      recovery_timer_armed = true;
      schedule(now + std::max<time_ms>(wait_ms, 1), timer_kind::recovery_queue, 0, 0);
    }
  }

  void send_recover(std::uint32_t slot) {
    auto& agent = agents[slot];
    ++agent.record.recovery_attempts;
    agent.record.last_recovery_ms = now;
    set_state(agent, agent_state::recovering);
    agent.recover_delivered = false;
    mark(agent);
    const auto& target = agent.record.supervisor.empty() ? nodes[agent.node].record.node
                                                         : agent.record.supervisor;
    cancel_command(agent.recover_command);
    agent.recover_command = issue(target, agent.record.episode,
                                  commands::agent_recover{agent.record.agent, agent.record.recovery_attempts,
                                                          agent.incarnation_at_death});
    if (auto* episode = episode_of(agent)) {
      ++episode->record.recoveries_attempted;
      mark(*episode);
    }
    ++agent.generation;
    schedule(now + config_of(agent).recovery_timeout_ms, timer_kind::recovery_timeout, slot, agent.generation);
  }

  void recovery_failed(std::uint32_t slot) {
    auto& agent = agents[slot];
    if (agent.record.state != agent_state::recovering) return;
    if (!agent.recover_delivered) {
      // The command never reached anyone who acted on it (the target unreachable, the
      // bus down): not an attempt. Only recoveries that were carried out and not followed
      // by the agent's return lead to quarantine.
      RRH_ASSERT(agent.record.recovery_attempts > 0);
      --agent.record.recovery_attempts;
      ++counters.recoveries_undelivered;
      mark(agent);
    }
    cancel_command(agent.recover_command);
    agent.recover_command = 0;
    ++agent.generation;
    set_state(agent, agent_state::dead);
    begin_recovery(slot);
  }

  episode_slot* episode_of(const agent_slot& agent) {
    if (agent.record.episode.empty()) return nullptr;
    const auto slot = episodes.find(agent.record.episode);
    return slot ? &episodes[*slot] : nullptr;
  }

  void schedule_probe(std::uint32_t slot, bool spread) {
    auto& agent = agents[slot];
    const auto interval = config_of(agent).agent_health_check_interval_ms;
    // The first probe of an agent lands at a random point of the interval, so agents
    // registered together are not probed together.
    const auto offset = spread ? std::uniform_int_distribution<time_ms>(1, interval)(jitter) : interval;
    ++agent.probe_generation;
    schedule(now + offset, timer_kind::agent_probe, slot, agent.probe_generation);
  }

  void on_probe_timer(std::uint32_t slot) {
    // Schedule the next probe first: it moves probe_generation, and the timeout below
    // must carry the new generation or it would be cancelled before it fires.
    schedule_probe(slot, false);
    auto& agent = agents[slot];
    const auto& config = config_of(agent);
    if (is_alive(agent.record.state) && !nodes[agent.node].dead) {
      agent.probe_command = issue(nodes[agent.node].record.node, agent.record.episode,
                                  commands::agent_probe{agent.record.agent}, false);
      agent.probe_sent_ms = now;
      schedule(now + config.probe_timeout_ms, timer_kind::probe_timeout, slot, agent.probe_generation);
    }
  }

  void on_probe_timeout(std::uint32_t slot) {
    auto& agent = agents[slot];
    if (agent.probe_command == 0 || now < agent.probe_sent_ms + config_of(agent).probe_timeout_ms) return;
    agent.probe_command = 0;
    if (agent.record.state == agent_state::healthy) {
      set_state(agent, agent_state::suspect);
      publish(agent.record.episode,
              events::agent_suspect{agent.record.agent, 0.0,
                                    "probe unanswered for " + std::to_string(config_of(agent).probe_timeout_ms) + " ms"});
    }
  }

  void on_probe_reply(const events::probe_reply& reply) {
    const auto slot = agents.find(reply.agent);
    if (!slot) return;
    auto& agent = agents[*slot];
    if (agent.probe_command == 0 || agent.probe_command != reply.command_id) return;
    agent.probe_command = 0;
    const auto rtt_ms = static_cast<double>(now - agent.probe_sent_ms);
    const auto& config = config_of(agent);
    agent.rtt_average_ms = ewma(agent.rtt_average_ms, rtt_ms, 0.3);
    agent.rtt_baseline_ms = ewma(agent.rtt_baseline_ms, rtt_ms, 0.05);
    agent.record.probe_rtt_avg_ms = static_cast<std::uint64_t>(agent.rtt_average_ms);
    agent.record.probe_rtt_max_ms = std::max(agent.record.probe_rtt_max_ms, static_cast<std::uint64_t>(rtt_ms));
    ++agent.record.probes_answered;
    mark(agent);
    const auto slow_ms = static_cast<double>(config.probe_slow_ms);
    if (rtt_ms > slow_ms) {
      agent.slow_responder = true;
      if (agent.record.state == agent_state::healthy) {
        set_state(agent, agent_state::suspect);
        publish(agent.record.episode,
                events::agent_suspect{agent.record.agent, 0.0,
                                      "slow probe response: " + std::to_string(static_cast<std::uint64_t>(rtt_ms)) + " ms"});
      }
    } else {
      agent.slow_responder = false;
      if (agent.record.state == agent_state::suspect && !agent.stale && !nodes[agent.node].suspect) {
        set_state(agent, agent_state::healthy);
      }
    }
    // Early warning: the recent average well above the long-run baseline.
    constexpr std::uint64_t trend_samples_min = 5;
    if (agent.record.probes_answered >= trend_samples_min && !agent.rtt_alerted &&
        agent.rtt_average_ms > 1.5 * agent.rtt_baseline_ms && agent.rtt_average_ms > slow_ms / 2.0) {
      agent.rtt_alerted = true;
      raise_alert("warning", "agent.response_time_rising",
                  "probe response time of '" + agent.record.agent + "' rising: " +
                      std::to_string(agent.record.probe_rtt_avg_ms) + " ms average",
                  agent.record.agent, agent.record.episode);
    } else if (agent.rtt_alerted && agent.rtt_average_ms < 1.1 * agent.rtt_baseline_ms) {
      agent.rtt_alerted = false;
    }
  }

  void on_registered(std::uint32_t node_slot_index, const event& message) {
    const auto& data = std::get<events::agent_registered>(message.body);
    auto slot = agents.find(data.agent);
    if (!slot) {
      if (agents.size() >= base->max_agents) {
        raise_limit_alert("limit.agents", "agent limit reached; '" + data.agent + "' not tracked");
        return;
      }
      slot = agents.insert(data.agent);
      auto& fresh = agents[*slot];
      count_in(counts.agents, fresh.record.state);
      fresh.record.agent = data.agent;
      fresh.record.registered_ms = now;
      fresh.record.state_since_ms = now;
      fresh.node = node_slot_index;
      nodes[node_slot_index].agents.push_back(*slot);
      ++nodes[node_slot_index].attention;  // registered: the first heartbeat makes it healthy
      schedule_probe(*slot, true);
    }
    auto& agent = agents[*slot];
    if (agent.node != node_slot_index) move_agent(*slot, node_slot_index);
    set_pool(*slot, data.pool);
    agent.record.node = nodes[node_slot_index].record.node;
    agent.record.supervisor = data.supervisor;
    agent.record.watchdog_timeout_ms = data.watchdog_timeout_ms;
    set_stale(agent, false);
    if (agent.record.state == agent_state::quarantined) release_quarantine(*slot, "it registered again");
    // A recovery ends in the episode that attempted it, before the agent joins a new one.
    agent_alive(*slot);
    if (!message.header.episode.empty()) join_episode(*slot, message.header.episode);
    mark(agent);
  }

  void move_agent(std::uint32_t slot, std::uint32_t node_slot_index) {
    auto& agent = agents[slot];
    auto& old_list = nodes[agent.node].agents;
    old_list.erase(std::remove(old_list.begin(), old_list.end(), slot), old_list.end());
    const bool attention = needs_attention(agent);
    if (attention) --nodes[agent.node].attention;
    agent.node = node_slot_index;
    nodes[node_slot_index].agents.push_back(slot);
    if (attention) ++nodes[node_slot_index].attention;
  }

  void set_pool(std::uint32_t slot, const std::string& pool) {
    auto& agent = agents[slot];
    if (agent.record.pool == pool && (pool.empty() || agent.record.registered_ms != now)) return;
    leave_pool(slot);
    agent.record.pool = pool;
    if (!pool.empty()) pools[pool].push_back(slot);
  }

  void leave_pool(std::uint32_t slot) {
    auto& agent = agents[slot];
    if (agent.record.pool.empty()) return;
    const auto found = pools.find(agent.record.pool);
    if (found == pools.end()) return;
    auto& members = found->second;
    members.erase(std::remove(members.begin(), members.end(), slot), members.end());
    if (members.empty()) pools.erase(found);
  }

  void on_unregistered(const event& message) {
    const auto& data = std::get<events::agent_unregistered>(message.body);
    const auto slot = agents.find(data.agent);
    if (!slot) return;
    auto& agent = agents[*slot];
    // The old process of an agent under recovery winds down (a supervisor stopped it to
    // restart it): keep the agent and its attempt count for the new process to pick up.
    if (agent.record.state == agent_state::recovering) return;
    remove_agent(*slot);
  }

  void remove_agent(std::uint32_t slot) {
    auto& agent = agents[slot];
    auto& hosted = nodes[agent.node].agents;
    hosted.erase(std::remove(hosted.begin(), hosted.end(), slot), hosted.end());
    if (needs_attention(agent)) {
      RRH_ASSERT(nodes[agent.node].attention > 0);
      --nodes[agent.node].attention;
    }
    leave_pool(slot);
    cancel_command(agent.recover_command);
    const auto episode_id = agent.record.episode;
    const auto id = agent.record.agent;
    if (auto* episode = episode_of(agent)) episode->agents.erase(slot);
    count_out(counts.agents, agent.record.state);
    agents.erase(id);
    out->agents_removed.push_back(id);
    if (const auto episode_slot_index = episodes.find(episode_id)) {
      auto& episode = episodes[*episode_slot_index];
      if (episode.record.state == episode_state::shutting_down && episode.agents.empty()) {
        end_episode(*episode_slot_index, "aborted");
      }
    }
  }

  // ---- episodes -------------------------------------------------------------------------

  std::optional<std::uint32_t> ensure_episode(const std::string& id) {
    if (auto slot = episodes.find(id)) return slot;
    if (episodes.size() >= base->max_episodes && !evict_ended_episode()) {
      raise_limit_alert("limit.episodes", "episode limit reached; episode '" + id + "' not tracked");
      return std::nullopt;
    }
    const auto slot = episodes.insert(id);
    auto& episode = episodes[slot];
    count_in(counts.episodes, episode.record.state);
    episode.record.episode = id;
    episode.record.started_ms = now;
    episode.config = base;
    arm_episode_timeout(slot);
    mark(episode);
    return slot;
  }

  // With episode_timeout set, an episode still running that long after it began is shut
  // down as if it had reached its error threshold: its owner may have died without
  // ending it, and it would otherwise run (and count) forever.
  void arm_episode_timeout(std::uint32_t slot) {
    auto& episode = episodes[slot];
    ++episode.timeout_generation;
    const auto timeout_ms = episode.config->episode_timeout_ms;
    if (timeout_ms == 0) return;
    schedule(episode.record.started_ms + timeout_ms, timer_kind::episode_timeout, slot, episode.timeout_generation);
  }

  void on_episode_timeout(std::uint32_t slot) {
    auto& episode = episodes[slot];
    if (episode.record.state != episode_state::running) return;
    const auto why = "episode '" + episode.record.episode + "' still running after " +
                     std::to_string(episode.config->episode_timeout_ms) + " ms (episode_timeout)";
    raise_alert("warning", "episode.timeout", why, {}, episode.record.episode);
    shutdown_episode(slot, why);
  }

  bool evict_ended_episode() {
    std::optional<std::string> oldest;
    time_ms oldest_end = 0;
    episodes.for_each([&](const episode_slot& episode) {
      if (episode.record.state == episode_state::ended && (!oldest || episode.record.ended_ms < oldest_end)) {
        oldest = episode.record.episode;
        oldest_end = episode.record.ended_ms;
      }
    });
    if (!oldest) return false;
    remove_episode(*episodes.find(*oldest));
    return true;
  }

  void remove_episode(std::uint32_t slot) {
    auto& episode = episodes[slot];
    RRH_ASSERT(episode.record.state == episode_state::ended);
    count_out(counts.episodes, episode_state::ended);
    const auto id = episode.record.episode;
    episodes.erase(id);
    out->episodes_changed.push_back(id);  // gone from the engine: the store deletes it
  }

  // An ended episode is kept for episode_retention (rrh-ctl shows its summary), then
  // removed, so that the episode table empties again without waiting for max_episodes.
  void schedule_episode_forget(std::uint32_t slot) {
    const auto& episode = episodes[slot];
    if (base->episode_retention_ms == 0) return;
    schedule(std::max(now, episode.record.ended_ms + base->episode_retention_ms), timer_kind::episode_forget, slot,
             episode.generation);
  }

  void join_episode(std::uint32_t slot, const std::string& episode_id) {
    auto& agent = agents[slot];
    if (agent.record.episode != episode_id) {
      if (auto* previous = episode_of(agent)) previous->agents.erase(slot);
    }
    const auto episode_slot_index = ensure_episode(episode_id);
    if (!episode_slot_index) return;
    auto& episode = episodes[*episode_slot_index];
    agent.record.episode = episode_id;
    episode.agents.insert(slot);
    if (episode.seen.insert(agent.record.agent).second) {
      episode.record.agents_seen.push_back(agent.record.agent);
      mark(episode);
    }
  }

  void on_episode_started(const event& message) {
    const auto& data = std::get<events::episode_started>(message.body);
    if (message.header.episode.empty()) {
      ++counters.events_ignored;
      return;
    }
    const auto slot = ensure_episode(message.header.episode);
    if (!slot) return;
    auto& episode = episodes[*slot];
    episode.record.name = data.name;
    for (const auto& agent : data.agents) {
      if (episode.seen.insert(agent).second) episode.record.agents_seen.push_back(agent);
    }
    if (!data.resilience.empty()) {
      auto applied = episode_overrides(data.resilience);
      if (applied) {
        episode.config = std::make_shared<const resilience_config>(std::move(applied.value()));
        episode.record.overrides = data.resilience;
        arm_episode_timeout(*slot);  // the episode's own timeout may differ
      } else {
        raise_alert("warning", "episode.config_rejected",
                    "episode '" + episode.record.episode + "' resilience block rejected: " +
                        applied.error().detail,
                    {}, episode.record.episode);
      }
    }
    mark(episode);
  }

  // An episode may tune how its own tasks and agents are treated, not what is shared by
  // the whole fleet (failure detection runs per node, pacing and limits per processor).
  expected<resilience_config> episode_overrides(const settings& overrides) const {
    static constexpr std::array<std::string_view, 23> fleet_wide = {
        "failure_detector",           "phi_suspect_threshold",  "phi_threshold",
        "acceptable_pause",           "min_std_deviation",      "missed_heartbeats_suspect",
        "missed_heartbeats_dead",     "recovery_rate_per_s",    "recovery_burst",
        "command_retransmit_initial", "command_retransmit_max", "max_agents",
        "max_nodes",                  "max_pending_commands",   "max_episodes",
        "jitter_seed",                "max_tasks",              "node_retention",
        "disruption_threshold",       "disruption_recovery_rate_per_s", "disruption_min_nodes",
        "disruption_window",          "episode_retention"};
    for (const auto& [key, value] : overrides) {
      if (std::find(fleet_wide.begin(), fleet_wide.end(), key) != fleet_wide.end()) {
        return make_error(errc::config, key + ": applies to the whole fleet; set it in the processor's configuration");
      }
    }
    return apply_overrides(*base, overrides);
  }

  void on_episode_error(const event& message) {
    if (message.header.episode.empty()) {
      ++counters.events_ignored;
      return;
    }
    const auto slot = ensure_episode(message.header.episode);
    if (!slot) return;
    auto& episode = episodes[*slot];
    const auto& config = *episode.config;
    ++episode.record.errors;
    std::uint64_t counted = episode.record.errors;
    if (config.error_window_ms > 0) {
      episode.record.error_times_ms.push_back(now);
      while (!episode.record.error_times_ms.empty() &&
             episode.record.error_times_ms.front() + config.error_window_ms <= now) {
        episode.record.error_times_ms.pop_front();
      }
      counted = episode.record.error_times_ms.size();
    }
    mark(episode);
    if (episode.record.state == episode_state::running && counted >= config.error_threshold) {
      shutdown_episode(*slot, std::to_string(counted) + " errors reached error_threshold " +
                                  std::to_string(config.error_threshold) +
                                  (config.error_window_ms > 0
                                       ? " within " + std::to_string(config.error_window_ms) + " ms"
                                       : std::string()));
    }
  }

  void shutdown_episode(std::uint32_t slot, const std::string& reason) {
    auto& episode = episodes[slot];
    set_episode_state(episode, episode_state::shutting_down);
    episode.record.shutdown_deadline_ms = now + episode.config->shutdown_grace_ms;
    mark(episode);
    publish(episode.record.episode, events::episode_shutdown{reason, episode.record.errors});
    std::unordered_set<std::uint32_t> target_nodes;
    for (const auto agent_slot_index : episode.agents) target_nodes.insert(agents[agent_slot_index].node);
    for (const auto node_slot_index : target_nodes) {
      issue(nodes[node_slot_index].record.node, episode.record.episode, commands::episode_shutdown{reason});
    }
    if (episode.agents.empty()) {
      end_episode(slot, "aborted");
      return;
    }
    ++episode.generation;
    schedule(episode.record.shutdown_deadline_ms, timer_kind::episode_shutdown, slot, episode.generation);
  }

  void end_episode(std::uint32_t slot, const std::string& status) {
    auto& episode = episodes[slot];
    if (episode.record.state == episode_state::ended) return;
    ++episode.generation;
    set_episode_state(episode, episode_state::ended);
    episode.record.status = status;
    episode.record.ended_ms = now;
    mark(episode);
    schedule_episode_forget(slot);
    const auto& record = episode.record;
    publish(record.episode,
            events::episode_summary{status, record.ended_ms - record.started_ms, record.errors,
                                    record.recoveries_attempted, record.recoveries_succeeded,
                                    record.tasks_failed, record.tasks_retried, record.tasks_recovered,
                                    record.tasks_abandoned, record.agents_seen.size()});
  }

  void on_episode_ended(const event& message) {
    const auto slot = episodes.find(message.header.episode);
    if (!slot) return;
    const auto& data = std::get<events::episode_ended>(message.body);
    const bool aborted = episodes[*slot].record.state == episode_state::shutting_down;
    end_episode(*slot, aborted ? "aborted" : (data.status.empty() ? "completed" : data.status));
  }

  void count_episode(const std::string& episode_id, std::uint64_t episode_record::*counter) {
    if (episode_id.empty()) return;
    if (const auto slot = episodes.find(episode_id)) {
      ++(episodes[*slot].record.*counter);
      mark(episodes[*slot]);
    }
  }

  // ---- tasks ----------------------------------------------------------------------------

  // The slot of the task's agent: the cached one while it still holds that agent, which
  // saves a hash lookup per task event (a cache miss or three in a large fleet).
  std::optional<std::uint32_t> owner_of(task_slot& task) {
    if (task.owner != no_slot) {
      const auto& cached = agents[task.owner];
      if (cached.live && cached.record.agent == task.record.agent) return task.owner;
    }
    const auto found = agents.find(task.record.agent);
    task.owner = found ? *found : no_slot;
    return found;
  }

  std::optional<std::uint32_t> ensure_task(const std::string& task_id, const std::string& agent_id,
                                           const std::string& episode) {
    if (auto slot = tasks.find(task_id)) return slot;
    const auto owner = agents.find(agent_id);
    if (!owner) {
      // Nothing could act on it (no node to retry on, no pool), and ids nobody registered
      // would fill the table: refused, counted and alerted (throttled).
      ++counters.events_refused;
      raise_limit_alert("task.unknown_agent", "task events of agents that never registered are refused; '" + task_id +
                                                  "' names agent '" + agent_id + "'");
      return std::nullopt;
    }
    auto& agent = agents[*owner];
    if (agent.tasks >= config_of(agent).max_tasks_per_agent) {
      raise_limit_alert("limit.tasks_per_agent",
                        "agent '" + agent_id + "' has too many unfinished tasks; '" + task_id + "' not tracked");
      return std::nullopt;
    }
    if (tasks.size() >= base->max_tasks) {
      raise_limit_alert("limit.tasks", "task limit (max_tasks) reached; '" + task_id + "' not tracked");
      return std::nullopt;
    }
    ++agent.tasks;
    const auto slot = tasks.insert(task_id);
    auto& task = tasks[slot];
    count_in(counts.tasks, task.record.state);
    task.record.task = task_id;
    task.record.agent = agent_id;
    task.record.episode = episode;
    task.owner = *owner;
    return slot;
  }

  void remove_task(std::uint32_t slot) {
    auto& task = tasks[slot];
    cancel_command(task.retry_command);
    if (const auto owner = owner_of(task)) {
      auto& agent = agents[*owner];
      if (agent.tasks > 0) --agent.tasks;
    }
    out->tasks_removed.push_back(task.record.task);
    count_out(counts.tasks, task.record.state);
    tasks.erase(task.record.task);
  }

  void on_task_started(const event& message) {
    const auto& data = std::get<events::task_started>(message.body);
    const auto slot = ensure_task(data.task, data.agent, message.header.episode);
    if (!slot) return;
    auto& task = tasks[*slot];
    cancel_command(task.retry_command);  // the retry evidently arrived
    task.retry_command = 0;
    ++task.generation;
    set_task_state(task, task_state::running);
    task.record.agent = data.agent;
    task.record.attempt = std::max(task.record.attempt, data.attempt);
    if (const auto owner = owner_of(task)) task.record.pool = agents[*owner].record.pool;
    arm_task_timeout(*slot);
    mark(task);
  }

  // With task_timeout set, an attempt without an outcome in that time fails: the agent
  // died or hung with the task, or the retry never reached it.
  void arm_task_timeout(std::uint32_t slot) {
    auto& task = tasks[slot];
    const auto timeout_ms = config_of_episode(task.record.episode).task_timeout_ms;
    ++task.timeout_generation;  // an earlier attempt's timeout no longer applies
    if (timeout_ms == 0) return;
    schedule(now + timeout_ms, timer_kind::task_timeout, slot, task.timeout_generation);
  }

  void on_task_timeout(std::uint32_t slot) {
    auto& task = tasks[slot];
    if (task.record.state != task_state::running && task.record.state != task_state::retrying) return;
    const auto timeout_ms = config_of_episode(task.record.episode).task_timeout_ms;
    cancel_command(task.retry_command);  // a retry never started is not waited for any more
    task.retry_command = 0;
    count_episode(task.record.episode, &episode_record::tasks_failed);
    const auto why = "no outcome of attempt " + std::to_string(task.record.attempt) + " of task '" +
                     task.record.task + "' within " + std::to_string(timeout_ms) + " ms (task_timeout)";
    raise_alert("warning", "task.timeout", why, task.record.agent, task.record.episode);
    task_failure(slot, std::string(task_timeout_error), why, true);
  }

  void on_task_failed(const event& message) {
    const auto& data = std::get<events::task_failed>(message.body);
    const auto slot = ensure_task(data.task, data.agent, message.header.episode);
    if (!slot) return;
    auto& task = tasks[*slot];
    if (data.attempt != 0 && data.attempt < task.record.attempt) {
      // A late report of an attempt already superseded (its task_timeout failed it, and
      // the next attempt is under way): counted once already, not again against the
      // attempt that runs now.
      ++counters.events_stale_attempt;
      return;
    }
    cancel_command(task.retry_command);
    task.retry_command = 0;
    task.record.agent = data.agent;
    task.record.attempt = std::max(task.record.attempt, data.attempt);
    if (!data.pool.empty()) {
      task.record.pool = data.pool;
    } else if (const auto owner = owner_of(task); owner && task.record.pool.empty()) {
      task.record.pool = agents[*owner].record.pool;  // no task.started seen: the owner's pool
    }
    task.record.checkpoint = data.checkpoint;
    count_episode(task.record.episode, &episode_record::tasks_failed);
    const auto& config = config_of_episode(task.record.episode);
    const bool listed = std::find(config.non_retryable_errors.begin(), config.non_retryable_errors.end(),
                                  data.error_type) != config.non_retryable_errors.end();
    task_failure(*slot, data.error_type, data.message, data.retryable && !listed);
  }

  // A failed attempt: schedule the next retry, or abandon the task.
  void task_failure(std::uint32_t slot, const std::string& error_type, const std::string& message,
                    bool retryable) {
    auto& task = tasks[slot];
    ++task.record.failures;
    task.record.last_error_type = error_type;
    task.record.last_error_message = message;
    const auto& config = config_of_episode(task.record.episode);
    if (!retryable) {
      abandon(slot, "non-retryable error " + error_type);
      return;
    }
    const auto retries_done = task.record.attempt - 1;
    if (retries_done >= config.max_task_retries) {
      abandon(slot, "retry limit reached after " + std::to_string(task.record.attempt) + " attempts");
      return;
    }
    const auto delay_ms = retry_delay_ms(config, retries_done + 1);
    set_task_state(task, task_state::retry_scheduled);
    task.record.retry_due_ms = now + delay_ms;
    ++task.generation;
    schedule(task.record.retry_due_ms, timer_kind::task_retry, slot, task.generation);
    mark(task);
    publish(task.record.episode,
            events::task_retry_scheduled{task.record.task, task.record.agent, task.record.attempt + 1,
                                         delay_ms, planned_target(task)});
  }

  // Delay before retry n (n = 1 for the first retry).
  time_ms retry_delay_ms(const resilience_config& config, std::uint64_t retry_number) {
    const double base_ms = static_cast<double>(config.task_retry_delay_ms);
    if (config.retry_backoff == backoff_policy::fixed) return config.task_retry_delay_ms;
    const double grown = base_ms * std::pow(config.retry_backoff_factor, static_cast<double>(retry_number - 1));
    const auto capped = static_cast<time_ms>(std::min(grown, static_cast<double>(config.task_retry_delay_max_ms)));
    if (config.retry_backoff == backoff_policy::exponential) return capped;
    return std::uniform_int_distribution<time_ms>(0, capped)(jitter);
  }

  // A forecast for task.retry_scheduled: it must not move the pool's round-robin cursor,
  // or the retry would then go to the next member instead of the one announced.
  std::string planned_target(task_slot& task) {
    const auto cursor = pool_cursor.find(task.record.pool);
    const auto saved = cursor == pool_cursor.end() ? std::optional<std::size_t>() : cursor->second;
    const auto target = pick_target(task);
    if (saved) {
      pool_cursor[task.record.pool] = *saved;
    } else {
      pool_cursor.erase(task.record.pool);
    }
    return target ? agents[*target].record.agent : std::string();
  }

  // The owner while it lives, else a live agent of the same pool (round robin).
  std::optional<std::uint32_t> pick_target(task_slot& task) {
    const auto owner = owner_of(task);
    if (owner && is_alive(agents[*owner].record.state) && !nodes[agents[*owner].node].dead) return owner;
    if (task.record.pool.empty()) return std::nullopt;
    const auto found = pools.find(task.record.pool);
    if (found == pools.end()) return std::nullopt;
    const auto& members = found->second;
    auto& cursor = pool_cursor[task.record.pool];
    // Bounded: after a mass death most members may be dead, and a retry must not cost a
    // scan of the whole pool; the cursor moves on, so the next pick looks further.
    const auto scan = std::min(members.size(), pool_scan_max);
    for (std::size_t step = 0; step < scan; ++step) {
      const auto candidate = members[(cursor + step) % members.size()];
      const auto& agent = agents[candidate];
      if (agent.record.state == agent_state::healthy && !nodes[agent.node].dead) {
        cursor = (cursor + step + 1) % members.size();
        return candidate;
      }
    }
    cursor = (cursor + scan) % members.size();
    return std::nullopt;
  }

  void on_retry_timer(std::uint32_t slot) {
    auto& task = tasks[slot];
    if (task.record.state != task_state::retry_scheduled) return;
    const auto& config = config_of_episode(task.record.episode);
    const auto target = pick_target(task);
    if (!target) {
      if (!task.no_target_alerted) {
        task.no_target_alerted = true;
        raise_alert("warning", "task.no_target",
                    "no live agent to retry task '" + task.record.task + "'; waiting",
                    task.record.agent, task.record.episode);
      }
      ++task.generation;
      schedule(now + config.task_retry_delay_ms, timer_kind::task_retry, slot, task.generation);
      return;
    }
    auto& agent = agents[*target];
    const auto from_agent = agent.record.agent == task.record.agent ? std::string() : task.record.agent;
    task.record.attempt += 1;
    set_task_state(task, task_state::retrying);
    if (!from_agent.empty()) {
      if (const auto owner = agents.find(task.record.agent); owner && agents[*owner].tasks > 0) --agents[*owner].tasks;
      ++agent.tasks;
    }
    task.record.agent = agent.record.agent;
    task.no_target_alerted = false;
    task.retry_command = issue(nodes[agent.node].record.node, task.record.episode,
                               commands::task_retry{task.record.task, agent.record.agent, task.record.attempt,
                                                    from_agent, task.record.checkpoint});
    if (task.retry_command == 0) {
      // Not sent (pending-command limit): not an attempt; try again after the base delay
      // rather than leave the task waiting for an outcome that cannot come.
      task.record.attempt -= 1;
      set_task_state(task, task_state::retry_scheduled);
      task.record.retry_due_ms = now + config.task_retry_delay_ms;
      ++task.generation;
      schedule(task.record.retry_due_ms, timer_kind::task_retry, slot, task.generation);
      mark(task);
      return;
    }
    count_episode(task.record.episode, &episode_record::tasks_retried);
    arm_task_timeout(slot);
    mark(task);
  }

  void abandon(std::uint32_t slot, const std::string& reason) {
    auto& task = tasks[slot];
    publish(task.record.episode,
            events::task_abandoned{task.record.task, task.record.agent, task.record.attempt, reason});
    if (const auto agent_slot_index = agents.find(task.record.agent)) {
      issue(nodes[agents[*agent_slot_index].node].record.node, task.record.episode,
            commands::task_rollback{task.record.task, task.record.agent, reason});
    }
    count_episode(task.record.episode, &episode_record::tasks_abandoned);
    remove_task(slot);
  }

  void on_task_succeeded(const event& message) {
    const auto& data = std::get<events::task_succeeded>(message.body);
    const auto slot = tasks.find(data.task);
    if (!slot) return;
    auto& task = tasks[*slot];
    if (task.record.failures > 0) count_episode(task.record.episode, &episode_record::tasks_recovered);
    remove_task(*slot);
  }

  // ---- command delivery -------------------------------------------------------------------

  void on_command_ack(const events::command_ack& ack) {
    const auto found = pending.find(ack.command_id);
    if (found == pending.end()) return;
    const command message = found->second.message;
    pending.erase(found);
    out->commands_removed.push_back(ack.command_id);
    ++counters.commands_acked;
    if (const auto* recover = std::get_if<commands::agent_recover>(&message.body)) {
      // A `stale` refusal: the target runs a newer incarnation than the one judged dead.
      if (const auto slot = agents.find(recover->agent); slot && agents[*slot].recover_command == ack.command_id) {
        agents[*slot].recover_delivered = ack.accepted || ack.reason != refused_stale;
      }
    }
    if (ack.accepted) return;
    ++counters.commands_refused;
    if (const auto* retry = std::get_if<commands::task_retry>(&message.body)) {
      if (const auto slot = tasks.find(retry->task)) {
        auto& task = tasks[*slot];
        if (task.retry_command == ack.command_id) {
          task.retry_command = 0;
          task_failure(*slot, "RetryRefused", ack.reason, true);
        }
      }
    } else if (const auto* recover = std::get_if<commands::agent_recover>(&message.body)) {
      if (const auto slot = agents.find(recover->agent); slot && agents[*slot].recover_command == ack.command_id) {
        agents[*slot].recover_command = 0;
        raise_alert("warning", "agent.recover_refused",
                    "recovery of '" + recover->agent + "' refused: " + ack.reason, recover->agent,
                    message.episode);
        recovery_failed(*slot);
      }
    }
  }

  void on_command_resend(std::uint64_t id, std::uint64_t sends) {
    const auto found = pending.find(id);
    if (found == pending.end() || found->second.sends != sends) return;
    auto& entry = found->second;
    const auto node_slot_index = nodes.find(entry.message.node);
    // A node judged dead may only be unreachable for a while (a broker outage, a
    // partition) and may already have run the command: it is given up on only after it
    // has been dead for recovery_timeout, so a retry is not run twice on a blip.
    // A node forgotten (node_retention) is gone as well.
    const bool gone = !node_slot_index ? std::holds_alternative<commands::task_retry>(entry.message.body)
                                       : nodes[*node_slot_index].dead &&
                                             now >= nodes[*node_slot_index].dead_since_ms + base->recovery_timeout_ms;
    if (gone) {
      // The target is gone: a retry goes back to scheduling (to its pool); a recovery is
      // judged by its own timeout; anything else is dropped with an alert.
      const command message = entry.message;
      pending.erase(found);
      out->commands_removed.push_back(id);
      if (const auto* retry = std::get_if<commands::task_retry>(&message.body)) {
        if (const auto slot = tasks.find(retry->task); slot && tasks[*slot].retry_command == id) {
          auto& task = tasks[*slot];
          task.retry_command = 0;
          task.record.attempt -= 1;  // never delivered: not an attempt
          set_task_state(task, task_state::retry_scheduled);
          task.record.retry_due_ms = now;
          ++task.generation;
          schedule(now, timer_kind::task_retry, *slot, task.generation);
          mark(task);
        }
      } else if (!std::holds_alternative<commands::agent_recover>(message.body)) {
        ++counters.commands_dropped;
        raise_alert("warning", "command.dropped",
                    std::string(kind_name(message.body)) + " " + std::to_string(id) + " dropped: node '" +
                        message.node + "' is dead",
                    std::string(subject_agent(message.body)), message.episode);
      }
      return;
    }
    out->commands.push_back(entry.message);
    ++counters.commands_retransmitted;
    const auto backoff = std::min(base->command_retransmit_max_ms,
                                  base->command_retransmit_initial_ms << std::min<std::uint64_t>(entry.sends, 20));
    ++entry.sends;
    entry.next_send_ms = now + backoff;
    schedule(entry.next_send_ms, timer_kind::command_resend, id, entry.sends);
    out->commands_changed.push_back(id);
  }

  // ---- dispatch ---------------------------------------------------------------------------

  // The ids of an event in the batch pipeline and their hashes, found with one visit of
  // the event and kept until it is applied (views into the event, which the batch holds).
  struct event_ids {
    std::string_view node, agent, task;
    std::uint64_t node_hash = 0, agent_hash = 0, task_hash = 0;
    bool heartbeat = false;
    bool new_task = false;  // task.started: its task has no slot yet (usually), only a home
    // The event before names the same node, agent or task (by hash: a collision only
    // skips a prefetch): its loads already bring those lines.
    bool same_node = false, same_agent = false, same_task = false;
  };

  // Stage 0 of loading ahead: finds the event's ids, hashes them and starts loading their
  // index lines, unless the event before (`previous`, when there is one) names the same
  // record — a node's events and a task's start and outcome often come in runs.
  void load_index_lines(const event& message, event_ids& ids, const event_ids* previous) const {
    ids = event_ids{};
    ids.node = message.header.node;
    ids.node_hash = detail::flat_index::hash(ids.node);
    const auto take = [&](const auto& body) {
      using kind = std::decay_t<decltype(body)>;
      ids.heartbeat = std::is_same_v<kind, events::heartbeat>;
      ids.new_task = std::is_same_v<kind, events::task_started>;
      // A heartbeat reads more of its node's slot than other events: loaded on its own.
      ids.same_node = previous != nullptr && previous->node_hash == ids.node_hash && !ids.heartbeat;
      if (!ids.same_node) nodes.prefetch_index(ids.node_hash);
      if constexpr (requires { body.agent; }) {
        ids.agent = body.agent;
        ids.agent_hash = detail::flat_index::hash(ids.agent);
        ids.same_agent = previous != nullptr && previous->agent.data() != nullptr && previous->agent_hash == ids.agent_hash;
        if (!ids.same_agent) agents.prefetch_index(ids.agent_hash);
      }
      if constexpr (requires { body.task; }) {
        ids.task = body.task;
        ids.task_hash = detail::flat_index::hash(ids.task);
        ids.same_task = previous != nullptr && previous->task.data() != nullptr && previous->task_hash == ids.task_hash;
        if (!ids.same_task) tasks.prefetch_index(ids.task_hash);
      }
    };
    // The common kinds first, inline; std::visit (a call through a table) for the rest.
    const auto& body = message.body;
    if (const auto* started = std::get_if<events::task_started>(&body)) return take(*started);
    if (const auto* succeeded = std::get_if<events::task_succeeded>(&body)) return take(*succeeded);
    if (const auto* failed = std::get_if<events::task_failed>(&body)) return take(*failed);
    if (const auto* beat = std::get_if<events::heartbeat>(&body)) return take(*beat);
    if (const auto* ack = std::get_if<events::command_ack>(&body)) return take(*ack);
    std::visit(take, body);
  }

  // Stage 1, once the index lines have arrived: starts loading the slots they point to
  // (a heartbeat also its detector's sums).
  void load_slots(const event_ids& ids) const {
    if (!ids.same_node) nodes.prefetch_slot(ids.node_hash, ids.heartbeat ? node_heartbeat_bytes : node_hot_bytes);
    if (ids.agent.data() != nullptr && !ids.same_agent) agents.prefetch_slot(ids.agent_hash, agent_hot_bytes);
    if (ids.task.data() != nullptr && !ids.new_task && !ids.same_task) {
      tasks.prefetch_slot(ids.task_hash, task_hot_bytes);
    }
  }

  // Applies an event whose ids were hashed when it was loaded ahead. The hints point into
  // the event: they end with its application, however that ends.
  void on_event(const event& message, const event_ids& ids) {
    struct hints {
      impl& self;
      hints(impl& owner, const event_ids& ids) : self(owner) {
        self.nodes.set_hint(ids.node, ids.node_hash);
        self.agents.set_hint(ids.agent, ids.agent_hash);
        self.tasks.set_hint(ids.task, ids.task_hash);
      }
      ~hints() {
        self.nodes.clear_hint();
        self.agents.clear_hint();
        self.tasks.clear_hint();
      }
      hints(const hints&) = delete;
      hints& operator=(const hints&) = delete;
    } hinted(*this, ids);
    on_event(message);
  }

  void on_event(const event& message) {
    const auto node_slot_index = ensure_node(message.header.node);
    if (!node_slot_index) return;
    auto& node = nodes[*node_slot_index];
    if (!node.detecting) start_detection(*node_slot_index, node.record.heartbeat_interval_ms);
    if (message.header.incarnation != node.record.incarnation) note_other_incarnation(node, message.header.incarnation);

    if (std::holds_alternative<events::heartbeat>(message.body)) {
      on_heartbeat(*node_slot_index, message);
      return;
    }
    if (const auto* reply = std::get_if<events::probe_reply>(&message.body)) {
      on_probe_reply(*reply);
      return;
    }
    if (!consumed(message.body)) {
      ++counters.events_ignored;
      return;
    }
    if (message.header.seq == 0) {
      ++counters.events_ignored;  // critical kinds must be sequenced
      return;
    }
    if (message.header.incarnation != node.record.incarnation) {
      auto& retired = node.record.retired_incarnations;
      if (message.header.seq != 1 ||
          std::find(retired.begin(), retired.end(), message.header.incarnation) != retired.end()) {
        ++counters.events_stale_incarnation;
        return;
      }
      const auto retire = [&](std::uint64_t incarnation) {
        if (incarnation == 0 || incarnation == message.header.incarnation) return;
        if (std::find(retired.begin(), retired.end(), incarnation) != retired.end()) return;
        retired.push_back(incarnation);
        if (retired.size() > retired_incarnations_max) retired.erase(retired.begin());
      };
      retire(node.record.incarnation);
      for (auto& other : node.other_incarnations) {
        retire(other);
        other = 0;
      }
      node.record.incarnation = message.header.incarnation;  // the node restarted
      node.record.applied_seq = 0;
      // A new process: the old one's silence must not count against it (its agents would
      // be declared dead right after registering). A fresh detection window, as on restore.
      node.detector = phi_detector{};
      start_detection(*node_slot_index, node.record.heartbeat_interval_ms);
    }
    if (message.header.seq <= node.record.applied_seq) {
      ++counters.events_duplicate;
      add_ack(node);
      return;
    }
    if (message.header.seq > node.record.applied_seq + 1) {
      ++counters.events_out_of_order;
      if (node.record.applied_seq > 0) add_ack(node);
      return;
    }
    node.record.applied_seq = message.header.seq;
    mark_once(node);
    add_ack(node);
    ++counters.events_applied;
    apply(*node_slot_index, message);
  }

  static void note_other_incarnation(node_slot& node, std::uint64_t incarnation) {
    auto& seen = node.other_incarnations;
    if (incarnation == 0 || std::find(seen.begin(), seen.end(), incarnation) != seen.end()) return;
    std::rotate(seen.begin(), seen.begin() + 1, seen.end());
    seen.back() = incarnation;
  }

  static bool consumed(const event_body& body) {
    return std::holds_alternative<events::agent_registered>(body) ||
           std::holds_alternative<events::agent_unregistered>(body) ||
           std::holds_alternative<events::episode_started>(body) ||
           std::holds_alternative<events::episode_ended>(body) ||
           std::holds_alternative<events::episode_error>(body) ||
           std::holds_alternative<events::task_started>(body) ||
           std::holds_alternative<events::task_failed>(body) ||
           std::holds_alternative<events::task_succeeded>(body) ||
           std::holds_alternative<events::command_ack>(body) ||
           std::holds_alternative<events::node_exited>(body);
  }

  void apply(std::uint32_t node_slot_index, const event& message) {
    std::visit(
        [&](const auto& body) {
          using kind = std::decay_t<decltype(body)>;
          if constexpr (std::is_same_v<kind, events::agent_registered>) {
            on_registered(node_slot_index, message);
          } else if constexpr (std::is_same_v<kind, events::agent_unregistered>) {
            on_unregistered(message);
          } else if constexpr (std::is_same_v<kind, events::episode_started>) {
            on_episode_started(message);
          } else if constexpr (std::is_same_v<kind, events::episode_ended>) {
            on_episode_ended(message);
          } else if constexpr (std::is_same_v<kind, events::episode_error>) {
            on_episode_error(message);
          } else if constexpr (std::is_same_v<kind, events::task_started>) {
            on_task_started(message);
          } else if constexpr (std::is_same_v<kind, events::task_failed>) {
            on_task_failed(message);
          } else if constexpr (std::is_same_v<kind, events::task_succeeded>) {
            on_task_succeeded(message);
          } else if constexpr (std::is_same_v<kind, events::command_ack>) {
            on_command_ack(body);
          } else if constexpr (std::is_same_v<kind, events::node_exited>) {
            on_node_exited(body);
          }
        },
        message.body);
  }

  // Fires the due timers in rounds: a round takes up to `due_round_max` of them off the
  // queue, loads the slots they will check, then fires them in order. Timers a firing
  // schedules are due at `now` or later, and among equal due times the queue pops in push
  // order, so every timer of the round comes before them either way: the order is the
  // one popping and firing one at a time gives. In a large fleet each timer's slot is a
  // cache miss; a round overlaps them.
  bool load_ahead() const noexcept { return agents.size() >= prefetch_agents_min; }

  void on_tick() {
    const bool load_ahead = this->load_ahead();
    while (!timers.empty() && timers.top().due <= now) {
      due_round.clear();
      while (!timers.empty() && timers.top().due <= now && due_round.size() < due_round_max) {
        due_round.push_back(timers.top());
        timers.pop();
      }
      if (!load_ahead) {
        for (const auto& due : due_round) fire(due);
        continue;
      }
      // Stages, as for a batch of events: the timers' slots; two timers ahead, what
      // those slots point to (a retry's agent, a probed agent's node); one ahead, the
      // node of a retry's agent.
      const std::size_t count = due_round.size();
      for (const auto& due : due_round) prefetch(due);
      for (std::size_t at = 0; at < std::min<std::size_t>(2, count); ++at) prefetch_referred(due_round[at]);
      if (count > 0) prefetch_retry_node(due_round[0]);
      for (std::size_t at = 0; at < count; ++at) {
        if (at + 2 < count) prefetch_referred(due_round[at + 2]);
        if (at + 1 < count) prefetch_retry_node(due_round[at + 1]);
        fire(due_round[at]);
      }
    }
  }

  // Once a timer's slot has arrived: the agent a due retry's task last ran on (the retry
  // goes to it when it is alive), or the node of an agent due for a probe.
  void prefetch_referred(const timer& due) const {
    const auto slot = static_cast<std::uint32_t>(due.key);
    if (due.kind == timer_kind::task_retry) {
      const auto owner = tasks[slot].owner;
      if (owner != no_slot) agents.prefetch_at(owner, 0, agent_hot_bytes);
    } else if (due.kind == timer_kind::agent_probe) {
      nodes.prefetch_at(agents[slot].node, 0, node_hot_bytes);
    }
  }

  // Once a retry's agent has arrived: its node, where the retry is sent.
  void prefetch_retry_node(const timer& due) const {
    if (due.kind != timer_kind::task_retry) return;
    const auto owner = tasks[static_cast<std::uint32_t>(due.key)].owner;
    if (owner != no_slot) nodes.prefetch_at(agents[owner].node, 0, node_hot_bytes);
  }

  // Loads the lines fire() reads to check a timer (and most of what its handler reads).
  void prefetch(const timer& due) const {
    const auto slot = static_cast<std::uint32_t>(due.key);
    switch (due.kind) {
      case timer_kind::node_check:
        nodes.prefetch_at(slot, 0, node_hot_bytes);
        nodes.prefetch_at(slot, node_generation_offset, sizeof(std::uint64_t));
        return;
      case timer_kind::agent_stale:
      case timer_kind::recovery_ready:
      case timer_kind::recovery_timeout: agents.prefetch_at(slot, 0, agent_hot_bytes); return;
      case timer_kind::agent_probe:
      case timer_kind::probe_timeout:
        agents.prefetch_at(slot, 0, agent_hot_bytes);
        agents.prefetch_at(slot, agent_probe_offset, agent_probe_bytes);
        return;
      case timer_kind::task_retry:
      case timer_kind::task_timeout: tasks.prefetch_at(slot, 0, task_hot_bytes); return;
      default: return;
    }
  }

  // A timer fires when its entity still lives and has not moved on since it was
  // scheduled (lazy cancellation: see the generations in the slots).
  void fire(const timer& due) {
    if (judges_silence(due.kind) && !blind && echo_timeout_ms > 0 && now > heard_ms + echo_timeout_ms) {
      // About to judge without proof that the bus carried anything lately: deaf since the
      // last echo heard. (The shell sees it too, a turn later; judging first would race it.)
      lose_sight(heard_ms);
    }
    if (blind && judges_silence(due.kind)) {
      // Node checks are replaced by the fresh windows of regain_sight: not kept (every
      // heartbeat while blind supersedes one).
      if (due.kind == timer_kind::node_check) return;
      held.push_back(due);
      ++counters.timers_held;
      return;
    }
    const auto slot = static_cast<std::uint32_t>(due.key);
    const auto fire_if = [&](bool current, auto&& handle) {
      if (!current) return;
      ++counters.timers_fired;
      handle();
    };
    const auto agent_current = [&](std::uint64_t generation) { return agents[slot].live && generation == due.generation; };
    switch (due.kind) {
      case timer_kind::node_check:
        return fire_if(nodes[slot].live && nodes[slot].generation == due.generation, [&] { on_node_check(slot); });
      case timer_kind::agent_stale:
        return fire_if(agent_current(agents[slot].generation), [&] { on_agent_stale_timer(slot); });
      case timer_kind::recovery_ready:
        return fire_if(agent_current(agents[slot].generation), [&] { on_recovery_ready(slot); });
      case timer_kind::recovery_timeout:
        return fire_if(agent_current(agents[slot].generation), [&] { recovery_failed(slot); });
      case timer_kind::agent_probe:
        return fire_if(agent_current(agents[slot].probe_generation), [&] { on_probe_timer(slot); });
      case timer_kind::probe_timeout:
        return fire_if(agent_current(agents[slot].probe_generation), [&] { on_probe_timeout(slot); });
      case timer_kind::recovery_queue:
        return fire_if(true, [&] {
          recovery_timer_armed = false;
          drain_recovery_queue();
        });
      case timer_kind::task_retry:
        return fire_if(tasks[slot].live && tasks[slot].generation == due.generation, [&] { on_retry_timer(slot); });
      case timer_kind::task_timeout:
        return fire_if(tasks[slot].live && tasks[slot].timeout_generation == due.generation,
                       [&] { on_task_timeout(slot); });
      case timer_kind::episode_timeout:
        return fire_if(episodes[slot].live && episodes[slot].timeout_generation == due.generation,
                       [&] { on_episode_timeout(slot); });
      case timer_kind::episode_shutdown:
        return fire_if(episodes[slot].live && episodes[slot].generation == due.generation &&
                           episodes[slot].record.state == episode_state::shutting_down,
                       [&] { end_episode(slot, "aborted"); });
      case timer_kind::command_resend:
        return fire_if(true, [&] { on_command_resend(due.key, due.generation); });
      case timer_kind::node_forget:
        return fire_if(nodes[slot].live && nodes[slot].generation == due.generation && nodes[slot].dead,
                       [&] { forget_node(slot); });
      case timer_kind::episode_forget:
        return fire_if(episodes[slot].live && episodes[slot].generation == due.generation &&
                           episodes[slot].record.state == episode_state::ended,
                       [&] { remove_episode(slot); });
    }
  }

  // ---- the processor's own sight ------------------------------------------------------------
  // A processor that could not run (a stall: a VM pause, a long swap-in), could not hear
  // the bus (its echo did not come back) or could not store must not judge the fleet by
  // the silence it did not hear. While blind, timers that judge silence are held; on
  // regaining sight every node gets a fresh detection window (as after a restart) and the
  // held timers fire late by as long as the blindness lasted. A node that really died
  // meanwhile is declared dead within its normal bound after that.

  void lose_sight(time_ms since) {
    if (blind) return;
    blind = true;
    blind_since_ms = std::min(since, now);
    ++counters.blind_spells;
  }

  void regain_sight() {
    if (!blind) return;
    blind = false;
    const time_ms blind_ms = now - blind_since_ms;
    // Nodes already dead keep their verdict, its time and their node_forget timer (a
    // heartbeat still revives them): a blind spell must not restart node_retention or
    // the dead-target clock of their commands.
    nodes.for_each_index([&](std::uint32_t slot) {
      if (!nodes[slot].dead) fresh_window(slot);
    });
    for (auto due : held) {
      if (due.kind == timer_kind::node_check) continue;  // the fresh windows replace them
      due.due = std::max(now, due.due + blind_ms);
      timers.push(due);
    }
    held.clear();
    drain_recovery_queue();
  }

  // ---- restore ----------------------------------------------------------------------------

  void restore(const snapshot& stored) {
    next_command_id = std::max(next_command_id, stored.next_command_id);
    for (const auto& record : stored.episodes) {
      const auto slot = episodes.insert(record.episode);
      auto& episode = episodes[slot];
      episode.record = record;
      count_in(counts.episodes, record.state);
      auto applied = apply_overrides(*base, record.overrides);
      episode.config = applied ? std::make_shared<const resilience_config>(std::move(applied.value())) : base;
      for (const auto& agent : record.agents_seen) episode.seen.insert(agent);
      if (record.state == episode_state::shutting_down) {
        schedule(std::max(now, record.shutdown_deadline_ms), timer_kind::episode_shutdown, slot, episode.generation);
      } else if (record.state == episode_state::running) {
        arm_episode_timeout(slot);  // from its start: overdue, it fires at once
      } else {
        schedule_episode_forget(slot);
      }
    }
    for (const auto& record : stored.nodes) {
      const auto slot = nodes.insert(record.node);
      nodes[slot].record = record;
      // A fresh detection window: silence is measured from now, not from before the restart.
      start_detection(slot, std::max<std::uint64_t>(record.heartbeat_interval_ms, 1));
    }
    for (const auto& record : stored.agents) {
      auto node_slot_index = nodes.find(record.node);
      if (!node_slot_index) {
        node_slot_index = ensure_node(record.node);
        if (!node_slot_index) continue;
        start_detection(*node_slot_index, nodes[*node_slot_index].record.heartbeat_interval_ms);
      }
      const auto slot = agents.insert(record.agent);
      auto& agent = agents[slot];
      agent.record = record;
      count_in(counts.agents, record.state);
      agent.node = *node_slot_index;
      agent.healthy_since_ms = record.state == agent_state::healthy ? now : 0;
      nodes[*node_slot_index].agents.push_back(slot);
      if (needs_attention(agent)) ++nodes[*node_slot_index].attention;
      if (!record.pool.empty()) pools[record.pool].push_back(slot);
      if (const auto episode_slot_index = episodes.find(record.episode)) {
        episodes[*episode_slot_index].agents.insert(slot);
      }
      schedule_probe(slot, true);
      if (record.state == agent_state::recovering) {
        schedule(now + config_of(agent).recovery_timeout_ms, timer_kind::recovery_timeout, slot, agent.generation);
      } else if (record.state == agent_state::dead) {
        begin_recovery(slot);
      }
    }
    for (const auto& record : stored.tasks) {
      const auto slot = tasks.insert(record.task);
      auto& task = tasks[slot];
      task.record = record;
      count_in(counts.tasks, record.state);
      if (const auto agent_slot_index = agents.find(record.agent)) ++agents[*agent_slot_index].tasks;
      if (record.state == task_state::retry_scheduled) {
        schedule(record.retry_due_ms, timer_kind::task_retry, slot, task.generation);
      } else if (record.state == task_state::running || record.state == task_state::retrying) {
        arm_task_timeout(slot);  // a fresh window from the restart, as detection gets
      }
    }
    for (const auto& stored_command : stored.commands) {
      auto entry = stored_command;
      entry.next_send_ms = now;
      const auto id = entry.message.id;
      if (const auto* retry = std::get_if<commands::task_retry>(&entry.message.body)) {
        if (const auto slot = tasks.find(retry->task)) tasks[*slot].retry_command = id;
      } else if (const auto* recover = std::get_if<commands::agent_recover>(&entry.message.body)) {
        if (const auto slot = agents.find(recover->agent)) agents[*slot].recover_command = id;
      }
      schedule(now, timer_kind::command_resend, id, entry.sends);
      pending.emplace(id, std::move(entry));
    }
  }
};

engine::engine(resilience_config config) : impl_(std::make_unique<impl>(std::move(config))) {
  RRH_ASSERT(impl_->base->validate().has_value());
}

engine::~engine() = default;

std::size_t mapped_table_bytes() noexcept { return detail::mapped_bytes.load(std::memory_order_relaxed); }

void engine::on_event(const event& message, time_ms now, effects& out) {
  impl_->now = std::max(impl_->now, now);
  impl_->out = &out;
  impl_->on_event(message);
  impl_->on_tick();  // a late event may also be the first moment a timer is noticed
  impl_->out = nullptr;
}

void engine::on_events(std::span<const event> batch, time_ms now, effects& out) {
  impl_->now = std::max(impl_->now, now);
  impl_->out = &out;
  // A pipeline over the batch: while one event is applied, the index lines of an event
  // further on and the slots of the one between are already on their way from memory.
  // In a large fleet each event's records are cache misses; this overlaps them. A small
  // fleet's records stay in cache, and loading ahead would only cost time.
  if (!impl_->load_ahead()) {
    for (const auto& message : batch) {
      impl_->on_event(message);
      impl_->on_tick();
    }
    impl_->out = nullptr;
    return;
  }
  constexpr std::size_t slot_distance = prefetch_distance / 2;
  constexpr std::size_t ring_size = 8;  // a power of two above prefetch_distance
  static_assert(ring_size > prefetch_distance && (ring_size & (ring_size - 1)) == 0);
  std::array<impl::event_ids, ring_size> ring;
  const auto loaded = [&](std::size_t at) -> impl::event_ids& { return ring[at & (ring_size - 1)]; };
  const std::size_t count = batch.size();
  const auto before = [&](std::size_t at) -> const impl::event_ids* { return at == 0 ? nullptr : &loaded(at - 1); };
  for (std::size_t at = 0; at < std::min(prefetch_distance, count); ++at) {
    impl_->load_index_lines(batch[at], loaded(at), before(at));
  }
  for (std::size_t at = 0; at < std::min(slot_distance, count); ++at) impl_->load_slots(loaded(at));
  for (std::size_t at = 0; at < count; ++at) {
    if (at + prefetch_distance < count) {
      impl_->load_index_lines(batch[at + prefetch_distance], loaded(at + prefetch_distance), before(at + prefetch_distance));
    }
    if (at + slot_distance < count) impl_->load_slots(loaded(at + slot_distance));
    impl_->on_event(batch[at], loaded(at));
    impl_->on_tick();
  }
  impl_->counters.events_loaded_ahead += count;
  impl_->out = nullptr;
}

void engine::lose_sight(time_ms since, time_ms now) {
  impl_->now = std::max(impl_->now, now);
  impl_->lose_sight(since);
}

void engine::regain_sight(time_ms now, effects& out) {
  impl_->now = std::max(impl_->now, now);
  impl_->out = &out;
  impl_->regain_sight();
  impl_->on_tick();
  impl_->out = nullptr;
}

void engine::expect_echo(std::uint64_t timeout_ms, time_ms now) {
  impl_->echo_timeout_ms = timeout_ms;
  impl_->now = std::max(impl_->now, now);
  impl_->heard_ms = std::max(impl_->heard_ms, impl_->now);
}

void engine::bus_heard(time_ms sent_ms) { impl_->heard_ms = std::max(impl_->heard_ms, sent_ms); }
time_ms engine::heard_ms() const noexcept { return impl_->heard_ms; }

bool engine::blind() const noexcept { return impl_->blind; }
bool engine::disrupted() const noexcept { return impl_->disrupted; }
std::size_t engine::silent_node_count() const noexcept { return impl_->silent_nodes; }
std::size_t engine::node_count() const noexcept { return impl_->nodes.size(); }
const state_counts& engine::counts() const noexcept { return impl_->counts; }

void engine::on_tick(time_ms now, effects& out) {
  impl_->now = std::max(impl_->now, now);
  impl_->out = &out;
  impl_->on_tick();
  impl_->out = nullptr;
}

std::optional<time_ms> engine::next_deadline() const {
  if (impl_->timers.empty()) return std::nullopt;
  return impl_->timers.top().due;
}

void engine::restore(const snapshot& stored, time_ms now) {
  impl_->now = std::max(impl_->now, now);
  effects ignored;
  impl_->out = &ignored;
  impl_->restore(stored);
  impl_->out = nullptr;
}

const resilience_config& engine::config() const noexcept { return *impl_->base; }

const resilience_config& engine::config_for_episode(std::string_view episode) const {
  return impl_->config_of_episode(episode);
}

const node_record* engine::node(std::string_view id) const {
  const auto slot = impl_->nodes.find(id);
  return slot ? &impl_->nodes[*slot].record : nullptr;
}

const agent_record* engine::agent(std::string_view id) const {
  const auto slot = impl_->agents.find(id);
  return slot ? &impl_->agents[*slot].record : nullptr;
}

const task_record* engine::task(std::string_view id) const {
  const auto slot = impl_->tasks.find(id);
  return slot ? &impl_->tasks[*slot].record : nullptr;
}

const episode_record* engine::episode(std::string_view id) const {
  const auto slot = impl_->episodes.find(id);
  return slot ? &impl_->episodes[*slot].record : nullptr;
}

const pending_command* engine::pending(std::uint64_t command_id) const {
  const auto found = impl_->pending.find(command_id);
  return found == impl_->pending.end() ? nullptr : &found->second;
}

std::uint64_t engine::next_command_id() const noexcept { return impl_->next_command_id; }

void engine::for_each_node(const std::function<void(const node_record&)>& visit) const {
  impl_->nodes.for_each([&](const auto& slot) { visit(slot.record); });
}
void engine::for_each_agent(const std::function<void(const agent_record&)>& visit) const {
  impl_->agents.for_each([&](const auto& slot) { visit(slot.record); });
}
void engine::for_each_task(const std::function<void(const task_record&)>& visit) const {
  impl_->tasks.for_each([&](const auto& slot) { visit(slot.record); });
}
void engine::for_each_episode(const std::function<void(const episode_record&)>& visit) const {
  impl_->episodes.for_each([&](const auto& slot) { visit(slot.record); });
}

std::size_t engine::agent_count() const noexcept { return impl_->agents.size(); }
std::size_t engine::task_count() const noexcept { return impl_->tasks.size(); }
std::size_t engine::pending_count() const noexcept { return impl_->pending.size(); }
std::size_t engine::timer_count() const noexcept { return impl_->timers.size(); }
const engine_stats& engine::stats() const noexcept { return impl_->counters; }

}  // namespace rrh::engine
