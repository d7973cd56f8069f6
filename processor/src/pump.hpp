#pragma once
// rrh::processor::pump — one turn of the processor's loop, the same unit for the shell
// (processor/src/shell.cpp, real sockets and SQLite) and the simulator (tests/sim, a
// simulated bus), so that the path the simulator's seeds check is the path the
// processor runs: events drained in chunks into engine::on_events, the batch ended after
// the chunk that issued a command, due timers, then commit before anything leaves.
//
// It also keeps the processor from judging the fleet by what it could not see:
// - its own stalls (a gap between turns longer than stall_threshold_ms: a VM pause, a
//   SIGSTOP, a long swap-in): the engine loses sight from the last turn until the backlog
//   that queued meanwhile has been applied;
// - its hearing: it publishes its own echo (a heartbeat of the processor's node id) every
//   echo_interval_ms and expects it back through the bus; no echo back for
//   echo_timeout_ms, and the engine loses sight from the last echo heard until one comes
//   back (a broker paused or down, the processor cut off from it);
// - its store: a commit that fails keeps the batch, stops reading and acking, and retries
//   (store_guard) while the engine is blind.
// Sight comes back only when all three are well; the engine then gives every node a fresh
// detection window (engine::regain_sight).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "commit.hpp"
#include "rrh/clock.hpp"
#include "rrh/engine/engine.hpp"

namespace rrh::processor {

/// The limits and timings of a turn. The defaults are the processor's.
struct pump_settings {
  /// Events drained per turn (and per store commit): large enough to amortise a commit,
  /// small enough that control requests and timers are not starved.
  std::size_t batch_max = 2048;
  /// Events per engine call; a chunk that issues a command ends the batch, so the command
  /// waits for at most this many events and one commit.
  std::size_t chunk_max = 64;
  /// A gap between two turns longer than this is a stall of the processor's own. Above
  /// the shell's longest idle wait.
  std::uint64_t stall_threshold_ms = 1000;
  /// After a stall, sight returns when a drain finds the input empty, or after this long
  /// applying the backlog (a flood need not keep the processor blind).
  std::uint64_t catch_up_max_ms = 5000;
  /// Gap between two echoes; 0: no echo (the engine does not check its hearing).
  std::uint64_t echo_interval_ms = 250;
  /// No echo back for this long: deaf. Keep it well under the time the failure detector
  /// takes to declare a node dead (about 4.5 s with the defaults).
  std::uint64_t echo_timeout_ms = 1000;
  /// The processor's node id and incarnation: whose heartbeats are its own echo.
  std::string node_id;
  std::uint64_t incarnation = 0;
};

/// Counters of the pump, for status and tests.
struct pump_stats {
  std::uint64_t turns = 0;
  std::uint64_t stalls = 0;               ///< gaps between turns over stall_threshold_ms
  std::uint64_t last_stall_ms = 0;
  std::uint64_t longest_stall_ms = 0;
  std::uint64_t deaf_spells = 0;          ///< times no echo came back for echo_timeout_ms
  std::uint64_t echoes_sent = 0;
  std::uint64_t echoes_heard = 0;
  /// How long the newest echo heard took from publication to the engine: what a message
  /// sent now waits, broker and input queue included (the processor's ingest lag).
  std::uint64_t echo_round_trip_ms = 0;
  std::uint64_t store_retries = 0;        ///< commits tried again while the store was degraded
  std::uint64_t events_in_last_batch = 0;
  bool input_backlog = false;             ///< the last drain stopped with events still waiting
};

/// Why the engine is blind now, for status ("" when it sees).
struct pump_sight {
  bool stalled = false;  ///< applying the backlog of a stall
  bool deaf = false;     ///< no echo back within echo_timeout_ms
  bool store = false;    ///< the store refuses commits
};

class pump {
 public:
  pump(engine::engine& brain, pump_settings settings) : brain_(brain), settings_(std::move(settings)) {}

  /// One turn at engine time `now` (monotonic). `source.receive(into, limit)` appends up
  /// to `limit` decoded events to `into` and returns how many messages it took (invalid
  /// ones included, dropped); fewer than `limit` means none are waiting. `store` is a
  /// store_guard (commit with a time, retry_due, check_file, health). `sink` takes
  /// send_command, publish and send_echo(time_ms). Exceptions pass through (the simulator
  /// crashes its processor that way); the pump's state is then not used again.
  template <class Source, class Store, class Sink>
  void turn(Source& source, Store& store, Sink& sink, engine::time_ms now) {
    ++stats_.turns;
    note_gap(now);
    if (store.health().degraded) {
      // Nothing new is read or decided until the held batch is committed.
      if (!store.retry_due(mono(now))) return;
      ++stats_.store_retries;
      if (!commit_and_send(store, sink, now, true)) return;
    }
    if (settings_.echo_interval_ms > 0 && now >= next_echo_ms_) {
      sink.send_echo(now);
      ++stats_.echoes_sent;
      next_echo_ms_ = now + settings_.echo_interval_ms;
    }
    const bool drained_all = drain(source, now);
    if (sight_.stalled && (drained_all || now >= stalled_until_ms_)) sight_.stalled = false;
    brain_.on_tick(now, effects_);
    judge_sight(store, now);
    store.check_file(mono(now));
    commit_and_send(store, sink, now, false);
    judge_sight(store, now);
  }

  /// When the next turn is needed at the latest (besides input arriving).
  engine::time_ms next_wake(engine::time_ms now, const std::optional<mono_ms>& store_retry) const {
    engine::time_ms wake = now + settings_.stall_threshold_ms / 2;  // turn often enough not to look stalled
    if (const auto deadline = brain_.next_deadline()) wake = std::min(wake, *deadline);
    if (settings_.echo_interval_ms > 0) wake = std::min(wake, next_echo_ms_);
    if (store_retry) wake = std::min(wake, static_cast<engine::time_ms>(std::max<std::int64_t>(store_retry->count(), 0)));
    return std::max(wake, now);
  }

  const pump_stats& stats() const noexcept { return stats_; }
  const pump_sight& sight() const noexcept { return sight_; }
  const pump_settings& settings() const noexcept { return settings_; }
  /// The effects of the turn in progress or held for the store (read-only; for tests).
  const engine::effects& pending_effects() const noexcept { return effects_; }

 private:
  static mono_ms mono(engine::time_ms now) { return mono_ms{static_cast<std::int64_t>(now)}; }

  void note_gap(engine::time_ms now) {
    if (!last_turn_ms_) {
      // The first turn: hearing is judged from here on.
      if (settings_.echo_interval_ms > 0) brain_.expect_echo(settings_.echo_timeout_ms, now);
    } else if (now > *last_turn_ms_ + settings_.stall_threshold_ms) {
      const auto gap = now - *last_turn_ms_;
      ++stats_.stalls;
      stats_.last_stall_ms = gap;
      stats_.longest_stall_ms = std::max<std::uint64_t>(stats_.longest_stall_ms, gap);
      // Everything that queued while the processor did not run is applied blind.
      brain_.lose_sight(*last_turn_ms_, now);
      sight_.stalled = true;
      stalled_until_ms_ = now + settings_.catch_up_max_ms;
    }
    last_turn_ms_ = now;
  }

  // Receives and applies up to a batch in chunks. Returns true when the input ran dry.
  template <class Source>
  bool drain(Source& source, engine::time_ms now) {
    std::size_t received = 0;
    stats_.events_in_last_batch = 0;
    while (received < settings_.batch_max) {
      const auto wanted = std::min(settings_.chunk_max, settings_.batch_max - received);
      const auto taken = source.receive(batch_, wanted);
      received += taken;
      take_echoes(now);
      if (!batch_.empty()) {
        stats_.events_in_last_batch += batch_.size();
        const auto derived_before = effects_.events.size();
        brain_.on_events(batch_, now, effects_);
        // A source that wants to see each chunk's outcome (the simulator checks its
        // invariants per event) says so with `applied`.
        if constexpr (requires { source.applied(batch_, effects_, derived_before); }) {
          source.applied(batch_, effects_, derived_before);
        }
        batch_.clear();
      }
      if (taken < wanted) {
        stats_.input_backlog = false;
        return true;
      }
      if (!effects_.commands.empty()) break;
    }
    stats_.input_backlog = true;
    return false;
  }

  // The processor's own heartbeats are its echo: they tell the engine when the bus last
  // carried a message of the processor's, and go no further.
  void take_echoes(engine::time_ms now) {
    if (settings_.echo_interval_ms == 0) return;
    const auto own = [this](const event& message) {
      return message.header.incarnation == settings_.incarnation && message.header.node == settings_.node_id &&
             std::holds_alternative<events::heartbeat>(message.body);
    };
    for (const auto& message : batch_) {
      if (!own(message)) continue;
      brain_.bus_heard(message.header.ts_ms);
      ++stats_.echoes_heard;
      stats_.echo_round_trip_ms = now - std::min(now, message.header.ts_ms);
    }
    if (stats_.echoes_heard != echoes_taken_) {
      echoes_taken_ = stats_.echoes_heard;
      batch_.erase(std::remove_if(batch_.begin(), batch_.end(), own), batch_.end());
    }
  }

  template <class Store>
  void judge_sight(Store& store, engine::time_ms now) {
    const bool deaf = settings_.echo_interval_ms > 0 && now > brain_.heard_ms() + settings_.echo_timeout_ms;
    if (deaf && !sight_.deaf) ++stats_.deaf_spells;
    sight_.deaf = deaf;
    sight_.store = store.health().degraded;
    const bool blind = sight_.stalled || sight_.deaf || sight_.store;
    if (blind && !brain_.blind()) {
      brain_.lose_sight(sight_.deaf ? brain_.heard_ms() : now, now);
    } else if (!blind && brain_.blind()) {
      brain_.regain_sight(now, effects_);
    }
  }

  // The durability rule (commit.hpp) with the guard's retry: on a failed commit the
  // effects stay, to be committed by a later turn. `retrying`: commit even with nothing
  // new to store (a degraded guard may have a file to rebuild).
  template <class Store, class Sink>
  bool commit_and_send(Store& store, Sink& sink, engine::time_ms now, bool retrying) {
    const auto commit = [&] { return store.commit(brain_, effects_, mono(now)); };
    auto sent = commit_then_send(commit, effects_, sink, retrying);
    if (!sent) judge_sight(store, now);
    return sent.has_value();
  }

  engine::engine& brain_;
  pump_settings settings_;
  pump_stats stats_;
  pump_sight sight_;
  engine::effects effects_;
  std::vector<event> batch_;
  std::optional<engine::time_ms> last_turn_ms_;
  engine::time_ms stalled_until_ms_ = 0;
  engine::time_ms next_echo_ms_ = 0;
  std::uint64_t echoes_taken_ = 0;
};

}  // namespace rrh::processor
