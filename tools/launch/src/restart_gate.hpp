#pragma once
/// The launcher's decision on each agent.recover, kept apart from processes and sockets
/// (time is an argument): start a restart, join the restart under way, or refuse.
///
/// One child hosts several agents, and its death makes the processor send one
/// agent.recover per agent, at about the same time. They must cause one restart, not N:
/// a recover joins the latest restart while it is under way, or shortly after it when
/// its agent has not been served by it yet. A second recover for an agent that the latest
/// restart already served is a new failure (the processor's cooldown lies between the
/// two), so it starts a new restart.
///
/// A recover that names an incarnation of the child that is over (the gate was told of
/// each child's incarnation as it started) is stale: the processor judged an earlier
/// child dead, and the child now running is its successor. It is refused instead of
/// starting a restart of that successor. One that joins the restart under way (or just
/// done, for an agent it did not serve yet) is accepted as before: that restart is the
/// one it asked for.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "rrh/clock.hpp"
#include "rrh/protocol.hpp"

namespace rrh::launch {

/// A restart the main loop must carry out.
struct restart_request {
  std::uint64_t number = 0;      ///< 1, 2, 3… per launcher
  std::uint64_t command_id = 0;  ///< the agent.recover that started it
  std::string agent;
  std::uint64_t attempt = 0;
};

/// Not thread-safe: the launcher guards it with its mutex.
class restart_gate {
 public:
  enum class verdict {
    restart,  ///< a new restart was requested (take it with `take_pending`)
    joined,   ///< the restart under way (or just done) covers this agent too
    refused,  ///< see `decision::reason`
  };
  struct decision {
    verdict what = verdict::refused;
    std::string reason;          ///< why it was refused
    std::uint64_t restart = 0;   ///< number of the restart started or joined
  };

  /// `agents`: the agents the launcher accepts recovers for (empty: any).
  /// `join_window`: how long after a restart's new child started a recover for an agent
  /// it did not serve yet still joins it.
  restart_gate(std::vector<std::string> agents, mono_ms join_window)
      : agents_(std::move(agents)), join_window_(join_window) {}

  /// Incarnations of earlier children remembered, so a recover naming one is known
  /// stale. Stale recovers come within minutes of their child's end (the processor's
  /// recovery timeout bounds their resends), and restarts are paced by its cooldown and
  /// ended by its quarantine, so far fewer children than this end in between.
  static constexpr std::size_t earlier_incarnations_max = 256;

  /// An agent.recover arrived at `now`; `incarnation` is the one it names (0: none).
  decision on_recover(const std::string& agent, std::uint64_t command_id, std::uint64_t attempt,
                      std::uint64_t incarnation, mono_ms now) {
    if (stopping_) return {verdict::refused, "the launcher is stopping", 0};
    if (!agents_.empty() && std::find(agents_.begin(), agents_.end(), agent) == agents_.end()) {
      return {verdict::refused, "agent '" + agent + "' is not supervised by this launcher", 0};
    }
    const bool recently_done = done_at_.has_value() && now < *done_at_ + join_window_;
    if (in_progress_ || (recently_done && served_.count(agent) == 0)) {
      served_.insert(agent);
      return {verdict::joined, {}, restarts_};
    }
    if (is_earlier_incarnation(incarnation))
      return {verdict::refused, std::string(refused_stale), 0};
    ++restarts_;
    in_progress_ = true;
    done_at_.reset();
    served_ = {agent};
    pending_ = restart_request{restarts_, command_id, agent, attempt};
    return {verdict::restart, {}, restarts_};
  }

  /// The restart requested and not yet taken by the main loop, if any.
  std::optional<restart_request> take_pending() {
    auto taken = std::move(pending_);
    pending_.reset();
    return taken;
  }

  /// A child with `incarnation` started (the first one or a restart's): from now on a
  /// recover naming the previous child's incarnation is stale. 0: unknown.
  void child_started(std::uint64_t incarnation) {
    if (current_incarnation_ != 0) {
      earlier_incarnations_.push_back(current_incarnation_);
      if (earlier_incarnations_.size() > earlier_incarnations_max)
        earlier_incarnations_.pop_front();
    }
    current_incarnation_ = incarnation;
  }

  /// The incarnation of the child started last (0: none, or unknown).
  std::uint64_t current_incarnation() const { return current_incarnation_; }

  /// The restart's new child started at `now`.
  void restart_done(mono_ms now) {
    in_progress_ = false;
    done_at_ = now;
  }

  /// The restart could not start a child: the next recover starts a new one.
  void restart_failed() {
    in_progress_ = false;
    done_at_.reset();
    served_.clear();
  }

  /// From now on every recover is refused.
  void stop() {
    stopping_ = true;
    pending_.reset();
  }

  bool stopping() const { return stopping_; }

 private:
  bool is_earlier_incarnation(std::uint64_t incarnation) const {
    return incarnation != 0 && incarnation != current_incarnation_ &&
           std::find(earlier_incarnations_.begin(), earlier_incarnations_.end(), incarnation) !=
               earlier_incarnations_.end();
  }

  const std::vector<std::string> agents_;
  const mono_ms join_window_;
  bool stopping_ = false;
  bool in_progress_ = false;
  std::optional<mono_ms> done_at_;
  std::set<std::string> served_;
  std::optional<restart_request> pending_;
  std::uint64_t restarts_ = 0;
  std::uint64_t current_incarnation_ = 0;
  std::deque<std::uint64_t>
      earlier_incarnations_;  ///< oldest first, at most earlier_incarnations_max
};

}  // namespace rrh::launch
