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
#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "rrh/clock.hpp"

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

  /// An agent.recover arrived at `now`.
  decision on_recover(const std::string& agent, std::uint64_t command_id, std::uint64_t attempt,
                      mono_ms now) {
    if (stopping_) return {verdict::refused, "the launcher is stopping", 0};
    if (!agents_.empty() && std::find(agents_.begin(), agents_.end(), agent) == agents_.end()) {
      return {verdict::refused, "agent '" + agent + "' is not supervised by this launcher", 0};
    }
    const bool recently_done = done_at_.has_value() && now < *done_at_ + join_window_;
    if (in_progress_ || (recently_done && served_.count(agent) == 0)) {
      served_.insert(agent);
      return {verdict::joined, {}, restarts_};
    }
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
  const std::vector<std::string> agents_;
  const mono_ms join_window_;
  bool stopping_ = false;
  bool in_progress_ = false;
  std::optional<mono_ms> done_at_;
  std::set<std::string> served_;
  std::optional<restart_request> pending_;
  std::uint64_t restarts_ = 0;
};

}  // namespace rrh::launch
