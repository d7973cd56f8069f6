#pragma once
/// rrh::processor::store_guard — storage faults survived, not just detected. It owns the
/// store and stands in front of every commit: a commit that fails (disk full, I/O error, a
/// read-only file system), or a state file deleted or replaced under the processor, puts it
/// in a degraded mode in which the shell keeps the failed batch, sends nothing, reads no new
/// events and retries the same batch with capped backoff, until the store accepts it. Acks
/// leave only after a commit into the file that the state path names. Time is an argument,
/// so the tests drive the backoff and the checks without waiting.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "rrh/clock.hpp"
#include "rrh/engine/engine.hpp"
#include "rrh/expected.hpp"
#include "store.hpp"

namespace rrh::processor {

/// The store's health, for `rrh-ctl status` ("store: ok | degraded (reason, since)").
struct store_health {
  bool degraded = false;          ///< a commit or the state file failed and is being retried
  std::string reason;             ///< why, while degraded ("commit failed: …", "state file deleted")
  std::int64_t since_wall_ms = 0;  ///< when this degraded spell began (Unix epoch ms); 0 when ok
  std::uint64_t failures = 0;     ///< failed attempts (commits, file checks, rebuilds), over the run
  std::uint64_t recoveries = 0;   ///< degraded spells ended, and state files rebuilt, over the run
};

/// The commit step of the shell, with the store behind it. Not thread-safe: used from the
/// thread that runs the engine, as the store is.
class store_guard {
 public:
  /// The limits of the retry, the log and the file check.
  struct options {
    std::int64_t retry_initial_ms = 50;         ///< the first retry's delay after a failure
    std::int64_t retry_max_ms = 5000;           ///< the delay doubles per failure up to this
    std::int64_t report_interval_ms = 10'000;   ///< one critical log line per interval while degraded
    std::int64_t file_check_interval_ms = 1000;  ///< how often check_file looks at the path while idle
  };

  /// Owns `opened`. `wall` gives the wall time of `store_health::since_wall_ms` and of the
  /// name a replaced file is moved aside to; everything scheduled runs on the `now` passed in.
  explicit store_guard(std::unique_ptr<store> opened, options settings, const clock& wall = system_clock::instance());
  explicit store_guard(std::unique_ptr<store> opened) : store_guard(std::move(opened), options{}) {}

  /// The store, for load(), stats() and bind_node_key. Not for commit: that goes through
  /// the guard, or the checks are bypassed.
  store& get() noexcept { return *store_; }
  const store& get() const noexcept { return *store_; }

  /// Commits `changes` as `engine` holds them now. First checks that the path still names
  /// the file the store has open, and rebuilds the file from the open database when it was
  /// deleted or replaced; commits; then checks the file again, so that a deletion during
  /// the commit is not acked. On success (ok) the caller sends the acks and commands of the
  /// batch, and a degraded spell ends. On failure the guard is degraded, the next attempt
  /// is scheduled (see retry_due) and the error is returned: the caller keeps `changes`
  /// (not cleared), applies no new events, sends nothing, and calls commit again with the
  /// same `changes` when retry_due(now) — with an empty batch too, to rebuild the file.
  status commit(const rrh::engine::engine& engine, const rrh::engine::effects& changes, mono_ms now);

  /// While degraded: whether the next attempt is due at `now`. False when not degraded.
  bool retry_due(mono_ms now) const noexcept { return health_.degraded && now >= next_retry_; }
  /// While degraded: when the next attempt is due (for the shell's poll timeout).
  std::optional<mono_ms> next_retry() const noexcept {
    return health_.degraded ? std::optional<mono_ms>(next_retry_) : std::nullopt;
  }

  /// Called once per loop iteration, committed or not: looks at the path at most every
  /// file_check_interval_ms, so that a deleted or replaced state file is seen within that
  /// interval while idle. Returns false when the path does not name the open file (the
  /// guard is then degraded, its next attempt due at once, and commit rebuilds the file);
  /// between looks, returns what the last look found.
  bool check_file(mono_ms now);

  const store_health& health() const noexcept { return health_; }
  /// The delay before the next attempt, as the backoff stands now (for tests and status).
  std::int64_t retry_delay_ms() const noexcept { return retry_delay_ms_; }

 private:
  status ensure_file(mono_ms now);
  status fail(mono_ms now, std::string reason, const rrh::error& failure, bool retry_at_once);
  void recovered(mono_ms now);

  std::unique_ptr<store> store_;
  options settings_;
  const clock& wall_;
  store_health health_;
  mono_ms next_retry_{0};
  std::int64_t retry_delay_ms_;
  std::uint64_t attempts_in_spell_ = 0;
  mono_ms spell_started_{0};
  std::optional<mono_ms> last_report_;
  std::optional<mono_ms> last_file_check_;
  bool file_named_ = true;
};

}  // namespace rrh::processor
