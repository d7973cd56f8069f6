#pragma once
// The processor's one durability rule, as a function the tests can hold to it: the state
// changes of a batch are committed before anything that depends on them leaves — the
// acks that release the senders' outboxes, the derived events, the commands. If the
// commit fails, nothing leaves: unacked events are resent by their senders and applied
// after a restart.
#include <type_traits>

#include "rrh/engine/engine.hpp"
#include "rrh/expected.hpp"

namespace rrh::processor {

/// Commits `changes` to `store` (anything with `status commit(const engine&, const
/// effects&)`), then hands acks, derived events and commands, in that order, to `sink`
/// (`send_command(const command&)`, `publish(engine::derived_event&)`), and clears
/// `changes`. On a failed commit nothing is sent and the error is returned.
///
/// This form takes the commit as a callable (`status commit()`), for stores whose commit
/// takes more (the store_guard's time); `always`: commit even with nothing to store.
template <class Commit, class Sink>
  requires std::is_invocable_r_v<status, Commit&>
status commit_then_send(Commit&& commit, engine::effects& changes, Sink& sink, bool always = false) {
  if (always || !changes.nothing_to_store()) {
    if (auto committed = commit(); !committed) return committed;
  }
  // Acks first (they release the senders' outboxes), then what was decided, then the
  // commands that act on it, so a tap usually shows "agent.dead" before "agent.recover".
  for (const auto& message : changes.acks) sink.send_command(message);
  for (auto& derived : changes.events) sink.publish(derived);
  for (const auto& message : changes.commands) sink.send_command(message);
  changes.clear();
  return ok();
}

/// The same with `store.commit(engine, changes)`.
template <class Store, class Sink>
status commit_then_send(Store& store, const engine::engine& engine, engine::effects& changes, Sink& sink) {
  return commit_then_send([&] { return store.commit(engine, changes); }, changes, sink);
}

}  // namespace rrh::processor
