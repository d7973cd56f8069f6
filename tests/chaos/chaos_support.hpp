#pragma once
/// What the chaos test needs besides processes: a watch on the bus for the processor's
/// judgements (agent.dead, agent.recover), and a small tmpfs for the processor's state, so
/// that a full disk is a real ENOSPC.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>


namespace rrh::test::chaos {

/// Every agent.dead the processor published and every agent.recover the broker relayed,
/// with the instant it reached the test. It listens on the broker's events-out from its
/// own thread, so that it misses nothing while the test waits elsewhere; a restarted
/// broker binds the same endpoint and the subscription reconnects to it.
class judgement_watch {
 public:
  struct judgement {
    std::chrono::steady_clock::time_point arrived;
    std::string kind;     ///< "agent.dead" or "agent.recover"
    std::string subject;  ///< the agent declared dead, or the node a recover was sent to
  };

  explicit judgement_watch(const std::string& events_out) : listener_([this, events_out] { listen(events_out); }) {}
  ~judgement_watch() {
    stop_ = true;
    listener_.join();
  }
  judgement_watch(const judgement_watch&) = delete;
  judgement_watch& operator=(const judgement_watch&) = delete;

  /// Everything seen so far, in arrival order.
  std::vector<judgement> seen() const {
    const std::lock_guard lock(mutex_);
    return seen_;
  }
  std::size_t count() const {
    const std::lock_guard lock(mutex_);
    return seen_.size();
  }

 private:
  // Topics are "<kind> <subject>" (rrh::event_topic, rrh::command_topic).
  static constexpr const char* dead_topic = "agent.dead ";
  static constexpr const char* recover_topic = "cmd.agent.recover ";

  void listen(const std::string& events_out) {
    zmq::context_t context;
    zmq::socket_t subscriber(context, zmq::socket_type::sub);
    subscriber.set(zmq::sockopt::linger, 0);
    subscriber.set(zmq::sockopt::rcvtimeo, 100);  // how often the stop flag is looked at
    subscriber.set(zmq::sockopt::subscribe, dead_topic);
    subscriber.set(zmq::sockopt::subscribe, recover_topic);
    subscriber.connect(events_out);
    std::vector<zmq::message_t> parts;
    while (!stop_) {
      parts.clear();
      const auto received = zmq::recv_multipart(subscriber, std::back_inserter(parts));
      if (!received || parts.empty()) continue;
      const auto topic = parts.front().to_string();
      judgement item{std::chrono::steady_clock::now(), {}, {}};
      for (const auto& [prefix, kind] : {std::pair{std::string(dead_topic), "agent.dead"},
                                         std::pair{std::string(recover_topic), "agent.recover"}}) {
        if (topic.rfind(prefix, 0) != 0) continue;
        item.kind = kind;
        item.subject = topic.substr(prefix.size());
      }
      if (item.kind.empty()) continue;
      const std::lock_guard lock(mutex_);
      seen_.push_back(std::move(item));
    }
  }

  mutable std::mutex mutex_;
  std::vector<judgement> seen_;
  std::atomic<bool> stop_{false};
  std::thread listener_;  ///< last: starts once the rest is built
};

/// A small tmpfs mounted on `directory` for the life of the object (needs root, as the
/// tests have here and in CI; a refused mount throws rather than skip the rounds).
class small_tmpfs {
 public:
  small_tmpfs(std::string directory, const std::string& size) : directory_(std::move(directory)) {
    std::filesystem::create_directories(directory_);
    if (::mount("tmpfs", directory_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) {
      throw std::runtime_error("mount -t tmpfs -o size=" + size + " on " + directory_ + ": " +
                               std::strerror(errno) + " (the chaos test's full-disk rounds need root)");
    }
  }
  ~small_tmpfs() { (void)::umount2(directory_.c_str(), MNT_DETACH); }
  small_tmpfs(const small_tmpfs&) = delete;
  small_tmpfs& operator=(const small_tmpfs&) = delete;

  std::string file(const std::string& name) const { return directory_ + "/" + name; }
  const std::string& directory() const { return directory_; }

  /// Writes `path` until the file system refuses: the disk is then full. Returns the bytes
  /// written; throws unless the refusal was ENOSPC.
  static std::uint64_t fill(const std::string& path) {
    const int descriptor = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (descriptor < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
    const std::vector<char> block(1 << 16, 'x');
    std::uint64_t written = 0;
    ssize_t count = 0;
    while ((count = ::write(descriptor, block.data(), block.size())) > 0) written += static_cast<std::uint64_t>(count);
    while ((count = ::write(descriptor, block.data(), 1)) == 1) ++written;
    const int reason = errno;
    ::close(descriptor);
    if (reason != ENOSPC) throw std::runtime_error("filling " + path + " stopped by " + std::strerror(reason));
    return written;
  }

 private:
  std::string directory_;
};

}  // namespace rrh::test::chaos
