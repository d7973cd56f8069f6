#pragma once
// The processor's shell: the only place where the engine meets sockets, a clock and the
// store. One thread, one zmq::poll loop; per wakeup it drains a bounded batch of events,
// feeds them and the clock to the engine, commits the resulting state changes, and only
// then sends the acks, commands and derived events that depend on them.
#include <cstdint>
#include <memory>
#include <string>

#include "processor_config.hpp"
#include "rrh/clock.hpp"

namespace rrh::processor {

/// Control requests answered per loop iteration.
inline constexpr std::size_t control_batch_max = 16;
/// Rejected events (a node id bound to another key) let through to the log and to an
/// `alert` at most once per this interval per node, so a spoofing flood stays quiet.
inline constexpr std::int64_t spoof_report_interval_ms = 5000;
/// Node ids bound to keys at most; past it, events of new nodes are rejected (counted).
inline constexpr std::size_t node_key_bindings_max = 1'000'000;
/// Longest poll wait when nothing is due sooner (the pump wakes more often than its
/// stall threshold anyway, so that an idle loop never looks like a stall).
inline constexpr std::int64_t idle_wait_max_ms = 1000;
/// An ingest lag (the echo's round trip) at least this long is logged (throttled).
inline constexpr std::uint64_t ingest_lag_warn_ms = 1000;
/// Alerts of the engine logged at most once per this interval per alert code.
inline constexpr std::int64_t alert_log_interval_ms = 10'000;

/// Runs the processor until SIGINT/SIGTERM. Returns the process exit code: 0 after a clean
/// stop, 2 for a startup error. A store that fails while running does not stop it: the
/// processor is degraded (no acks, no new events, nobody judged) until the store accepts
/// the held batch again (store_guard.hpp).
/// `security` holds the keys load_processor_security read (mode none: plain sockets).
int run_processor(const processor_settings& settings, const processor_security& security = {},
                  const clock& time = system_clock::instance());

}  // namespace rrh::processor
