// The supervisor loop. Threads:
// - the main thread forks, signals and reaps the child, and nothing else does: the
//   child's PR_SET_PDEATHSIG fires when the thread that forked it ends, so only a thread
//   that lives as long as the launcher may fork;
// - the shim's dispatcher thread runs the agent.recover handler, which only decides
//   (restart_gate, under the mutex) and wakes the main thread through an eventfd.
// The main thread sleeps in poll() on the stop pipe, that eventfd and the child's pidfd,
// so a stop, a recover and the child's exit are each handled at once; a timeout of one
// check interval (or less, up to a SIGKILL deadline) re-checks the child with waitpid.
#include "launcher.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "rrh/signals.hpp"

namespace rrh::launch {
namespace {

/// After a restart's new child started, a recover for an agent that restart did not serve
/// yet still joins it within this window. The processor sends the recovers of one child's
/// agents together (paced only beyond its recovery burst), so they arrive well inside it;
/// an unrelated failure of another agent that soon after a restart costs one recovery
/// attempt (the processor tries again after its recovery timeout) instead of killing a
/// child that just started.
constexpr mono_ms restart_join_window{10'000};
/// How often a launcher whose child is down (quarantined, or a failed start) says so.
constexpr mono_ms down_reminder_interval{60'000};
/// How long the stop waits for the child to be reaped after SIGKILL.
constexpr mono_ms kill_reap_wait_max{5'000};

}  // namespace

launcher::launcher(launch_options options, shim& node)
    : options_(std::move(options)),
      node_(node),
      time_(system_clock::instance()),
      gate_(options_.agents, restart_join_window) {}

launcher::~launcher() {
  forget_child();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

int launcher::run() {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    spdlog::error("eventfd failed: {}", std::strerror(errno));
    return 1;
  }
  node_.set_handler("agent.recover", [this](const command& message) { return on_recover(message); });
  if (!start_child("first start")) {
    const std::lock_guard lock(mutex_);
    gate_.stop();
    return 1;
  }
  last_check_ = time_.now();
  // Runs until SIGINT/SIGTERM; each pass handles what woke it and sleeps again.
  while (!stop_requested()) {
    wait_for_wake(wait_ms(), true);
    reap_child();
    std::optional<restart_request> requested;
    {
      const std::lock_guard lock(mutex_);
      requested = gate_.take_pending();
    }
    if (requested) carry_out_restart(*requested);
    if (restart_ && !child_) {
      const bool started = start_child("restart #" + std::to_string(restart_->number));
      const std::lock_guard lock(mutex_);
      if (started) {
        gate_.restart_done(time_.now());
      } else {
        gate_.restart_failed();
      }
      restart_.reset();
    }
    enforce_grace();
    if (time_.now() - last_check_ >= mono_ms(options_.check_interval_ms)) {
      last_check_ = time_.now();
      remind_if_down();
    }
  }
  stop_child();
  return 0;
}

command_result launcher::on_recover(const command& message) {
  const auto& recover = std::get<commands::agent_recover>(message.body);
  restart_gate::decision decided;
  std::uint64_t current_incarnation = 0;
  {
    const std::lock_guard lock(mutex_);
    decided = gate_.on_recover(recover.agent, message.id, recover.attempt, recover.incarnation,
                               time_.now());
    current_incarnation = gate_.current_incarnation();
  }
  switch (decided.what) {
    case restart_gate::verdict::restart: {
      spdlog::info("command {} agent.recover {} attempt {}: restart #{} of node {} under way", message.id,
                   recover.agent, recover.attempt, decided.restart, options_.node_id);
      const std::uint64_t one = 1;
      [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof one);
      return command_result::accept();
    }
    case restart_gate::verdict::joined:
      spdlog::info("command {} agent.recover {} attempt {}: joins restart #{} of node {}", message.id,
                   recover.agent, recover.attempt, decided.restart, options_.node_id);
      return command_result::accept();
    case restart_gate::verdict::refused:
      break;
  }
  spdlog::warn(
      "command {} agent.recover {} attempt {} incarnation {} refused: {} (node {} runs incarnation "
      "{})",
      message.id, recover.agent, recover.attempt, recover.incarnation, decided.reason,
      options_.node_id, current_incarnation);
  return command_result::refuse(decided.reason);
}

bool launcher::start_child(const std::string& why) {
  // The launcher chooses each child's incarnation, so it knows which recovers name an
  // earlier child (the child's shim takes RRH_INCARNATION: it leads its process group).
  const auto incarnation = new_incarnation();
  auto spec = options_.child;
  set_variable(spec.environment, "RRH_INCARNATION", std::to_string(incarnation));
  auto spawned = spawn(spec);
  if (!spawned) {
    spdlog::error("cannot start the child of node {} ({}): {}", options_.node_id, why,
                  spawned.error().detail);
    down_since_ = time_.now();
    last_reminder_ = down_since_;
    return false;
  }
  ++starts_;
  running_child started;
  started.pid = spawned.value();
  started.started_at = time_.now();
  // Without a pidfd (kernel before 5.3) the exit is still seen at the next check interval.
  // Through syscall(): glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage.
  started.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, started.pid, 0));
  if (started.pidfd < 0) {
    spdlog::debug("pidfd_open failed ({}): checking the child every {} ms", std::strerror(errno),
                  options_.check_interval_ms);
  }
  child_ = started;
  {
    const std::lock_guard lock(mutex_);
    gate_.child_started(incarnation);
  }
  spdlog::info("child pid={} started for node {} ({}, start {}, incarnation {}): {}", started.pid,
               options_.node_id, why, starts_, incarnation, options_.child.program);
  return true;
}

void launcher::forget_child() {
  if (child_ && child_->pidfd >= 0) ::close(child_->pidfd);
  child_.reset();
}

void launcher::reap_child() {
  if (!child_) return;
  auto reaped = try_reap(child_->pid);
  if (!reaped) {
    spdlog::error("child pid={} of node {} lost: {}", child_->pid, options_.node_id, reaped.error().detail);
    forget_child();
    down_since_ = last_reminder_ = time_.now();
    return;
  }
  if (!reaped.value()) return;
  report_exit(*reaped.value());
  forget_child();
  down_since_ = last_reminder_ = time_.now();
  if (!restart_ && !stopping_) {
    spdlog::warn("node {} is down; waiting for agent.recover from the processor (the launcher never "
                 "restarts on its own)",
                 options_.node_id);
  }
}

void launcher::report_exit(const child_exit& ended) {
  const auto lived = time_.now() - child_->started_at;
  const bool expected_exit = restart_.has_value() || child_->kill_at.has_value();
  spdlog::log(expected_exit ? spdlog::level::info : spdlog::level::warn,
              "child pid={} of node {} {} after {} ms", ended.pid, options_.node_id, ended.reason,
              lived.count());
  events::node_exited exited;
  exited.child = options_.node_id;
  exited.pid = static_cast<std::uint64_t>(ended.pid);
  exited.exit_code = ended.exit_code;
  exited.signal = ended.signal;
  exited.reason = ended.reason;
  exited.agents = options_.agents;
  if (auto sent = node_.report_node_exited(exited); !sent) {
    spdlog::error("cannot report the exit of node {}: {}", options_.node_id, sent.error().detail);
  }
}

void launcher::carry_out_restart(const restart_request& request) {
  spdlog::info("restart #{} of node {} (command {} agent.recover {} attempt {})", request.number,
               options_.node_id, request.command_id, request.agent, request.attempt);
  restart_ = request;
  if (child_ && !child_->kill_at) terminate_child("restart #" + std::to_string(request.number), SIGTERM);
  // A child already down is replaced by the loop at once; one being stopped, once reaped.
}

void launcher::terminate_child(const std::string& why, int signal_number) {
  spdlog::info("stopping child pid={} of node {} ({}): {}, SIGKILL after {} ms", child_->pid,
               options_.node_id, why, signal_name(signal_number), options_.grace_ms);
  ::kill(-child_->pid, signal_number);  // the child's process group: it and what it started
  child_->kill_at = time_.now() + mono_ms(options_.grace_ms);
}

void launcher::enforce_grace() {
  if (!child_ || !child_->kill_at || child_->killed || time_.now() < *child_->kill_at) return;
  spdlog::warn("child pid={} of node {} still runs {} ms after it was asked to stop: SIGKILL", child_->pid,
               options_.node_id, options_.grace_ms);
  ::kill(-child_->pid, SIGKILL);
  child_->killed = true;
}

void launcher::remind_if_down() {
  if (child_ || restart_ || time_.now() - last_reminder_ < down_reminder_interval) return;
  last_reminder_ = time_.now();
  spdlog::info("node {} down for {} s; waiting for agent.recover from the processor", options_.node_id,
               (time_.now() - down_since_).count() / 1000);
}

int launcher::wait_ms() const {
  auto wait = mono_ms(options_.check_interval_ms);
  if (child_ && child_->kill_at && !child_->killed) {
    wait = std::min(wait, std::max(mono_ms{0}, *child_->kill_at - time_.now()));
  }
  return static_cast<int>(wait.count());
}

void launcher::wait_for_wake(int timeout_ms, bool watch_stop) {
  pollfd watched[3];
  nfds_t count = 0;
  watched[count++] = {wake_fd_, POLLIN, 0};
  if (child_ && child_->pidfd >= 0) watched[count++] = {child_->pidfd, POLLIN, 0};
  if (watch_stop) watched[count++] = {stop_fd(), POLLIN, 0};
  if (::poll(watched, count, timeout_ms) > 0 && (watched[0].revents & POLLIN) != 0) {
    std::uint64_t drained = 0;
    [[maybe_unused]] const auto read_bytes = ::read(wake_fd_, &drained, sizeof drained);
  }
}

void launcher::stop_child() {
  {
    const std::lock_guard lock(mutex_);
    gate_.stop();
  }
  stopping_ = true;
  restart_.reset();
  reap_child();
  if (!child_) {
    spdlog::info("stopping: node {} has no child running", options_.node_id);
    return;
  }
  // A SIGTERM sent for a restart keeps its deadline; otherwise the stop signal goes on.
  if (!child_->kill_at) terminate_child("stop", stop_signal() != 0 ? stop_signal() : SIGTERM);
  const auto give_up_at = *child_->kill_at + kill_reap_wait_max;
  // Bounded by give_up_at: the grace, then SIGKILL, then a last wait for the reap.
  while (child_ && time_.now() < give_up_at) {
    const auto until_give_up = static_cast<int>((give_up_at - time_.now()).count());
    wait_for_wake(child_->killed ? std::min(until_give_up, static_cast<int>(options_.check_interval_ms))
                                 : std::min(wait_ms(), until_give_up),
                  false);
    reap_child();
    enforce_grace();
  }
  if (child_) {
    spdlog::error("child pid={} of node {} did not end after SIGKILL; leaving it", child_->pid,
                  options_.node_id);
  }
}

}  // namespace rrh::launch
