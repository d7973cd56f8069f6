// rrh-agent: a demo agent node on the shim, used by the quick start, the integration tests
// and the benchmarks. Each hosted agent runs tasks in a loop; tasks fail at a configured
// rate with a checkpoint, and `task.retry` re-runs a task from that checkpoint.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include <poll.h>

#include "rrh/log.hpp"
#include "rrh/shim.hpp"
#include "rrh/signals.hpp"

namespace {

struct options {
  std::string node_id;
  std::size_t agent_count = 1;
  std::string episode;
  std::string pool;
  std::string supervisor;
  std::uint64_t task_ms = 200;
  double fail_rate = 0.0;
  double non_retryable_rate = 0.0;
  double crash_after_s = 0.0;
  std::string crash_once_path;
  bool leave_episode_open = false;
  double hang_after_s = 0.0;
  double duration_s = 0.0;
  std::uint64_t tasks_max = 0;
  std::uint64_t heartbeat_ms = 1000;
  std::uint64_t watchdog_ms = 0;
  std::string events_endpoint;
  std::string commands_endpoint;
  std::string curve_secret_key_file;  ///< with curve_server_key_file: security curve
  std::string curve_server_key_file;
  std::string config_path;
  std::uint64_t seed = 0;
  std::string log_level = "info";
  std::string journal_path;
};

/// --journal: one line per critical event the node emitted successfully
/// ("event <kind> <agent> <task> <attempt>"), per command a handler executed
/// ("command <id> <kind> <agent> <task> <attempt>"), and "acked <k>" once the first k
/// event lines are known acked (the outbox was empty after they were emitted). Each line
/// is flushed at once, so the journal of a killed process is complete up to its death.
class journal {
 public:
  explicit journal(const std::string& path) {
    if (!path.empty()) file_ = std::fopen(path.c_str(), "a");
  }
  ~journal() {
    if (file_ != nullptr) std::fclose(file_);
  }
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;
  bool failed(const std::string& path) const { return !path.empty() && file_ == nullptr; }

  /// Runs `emit` (a shim call) and journals the event when the shim accepted it. The lock
  /// spans both, so an "acked" line never overtakes an event emitted before it.
  template <class Emit>
  rrh::status event(std::string_view kind, const std::string& agent, const std::string& task,
                    std::uint64_t attempt, Emit&& emit) {
    const std::lock_guard lock(mutex_);
    auto sent = emit();
    if (sent && file_ != nullptr) {
      write("event %s %s %s %llu\n", std::string(kind).c_str(), agent.c_str(),
            task.empty() ? "-" : task.c_str(), static_cast<unsigned long long>(attempt));
      ++events_;
    }
    return sent;
  }

  void command(std::uint64_t id, std::string_view kind, const std::string& agent,
               const std::string& task, std::uint64_t attempt) {
    const std::lock_guard lock(mutex_);
    if (file_ == nullptr) return;
    write("command %llu %s %s %s %llu\n", static_cast<unsigned long long>(id), std::string(kind).c_str(),
          agent.c_str(), task.empty() ? "-" : task.c_str(), static_cast<unsigned long long>(attempt));
  }

  /// Journals "acked <k>" when every event emitted so far is acked.
  void mark_acked(rrh::shim& node) {
    const std::lock_guard lock(mutex_);
    if (file_ == nullptr || events_ == acked_ || !node.flush(std::chrono::milliseconds(0))) return;
    acked_ = events_;
    write("acked %llu\n", static_cast<unsigned long long>(acked_));
  }

 private:
  template <class... Args>
  void write(const char* format, Args... arguments) {
    std::fprintf(file_, format, arguments...);
    std::fflush(file_);
  }

  std::mutex mutex_;
  std::FILE* file_ = nullptr;
  std::uint64_t events_ = 0;
  std::uint64_t acked_ = 0;
};

/// A unit of work for one agent: a new task, or a retry handed over by the processor.
struct work_item {
  std::string task;
  std::uint64_t attempt = 1;
  rrh::byte_buffer checkpoint;
};

/// One hosted agent: a worker thread with a queue of retries.
class demo_agent {
 public:
  demo_agent(rrh::shim& node, journal& log, std::string id, const options& settings, std::uint64_t seed)
      : node_(node), journal_(log), id_(std::move(id)), settings_(settings), random_(seed) {}

  const std::string& id() const { return id_; }

  void start() { worker_ = std::thread([this] { run(); }); }

  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  void hang() { hung_.store(true); }
  void resume() {
    hung_.store(false);
    wake_.notify_all();
  }

  rrh::command_result enqueue_retry(const rrh::commands::task_retry& retry) {
    const std::lock_guard lock(mutex_);
    retries_.push_back({retry.task, retry.attempt, retry.checkpoint});
    wake_.notify_all();
    return rrh::command_result::accept();
  }

  std::uint64_t completed() const { return completed_.load(); }

 private:
  void run() {
    std::uint64_t next_task = 1;
    while (true) {
      work_item item;
      {
        std::unique_lock lock(mutex_);
        // The work loop paces itself by the task duration; a retry wakes it early.
        wake_.wait_for(lock, std::chrono::milliseconds(settings_.task_ms),
                       [this] { return stopping_ || (!retries_.empty() && !hung_.load()); });
        if (stopping_) return;
        if (hung_.load()) continue;  // hung: alive, but neither beating nor working
        if (!retries_.empty()) {
          item = std::move(retries_.front());
          retries_.pop_front();
        } else {
          if (settings_.tasks_max > 0 && next_task > settings_.tasks_max) {
            node_.beat(id_);
            continue;
          }
          item.task = id_ + ".t" + std::to_string(next_task++);
        }
      }
      node_.beat(id_);
      perform(item);
    }
  }

  void perform(const work_item& item) {
    (void)journal_.event("task.started", id_, item.task, item.attempt,
                         [&] { return node_.record_task_started(id_, item.task, item.attempt); });
    if (!item.checkpoint.empty()) {
      spdlog::info("{}: resuming {} attempt {} from a {}-byte checkpoint", id_, item.task,
                   item.attempt, item.checkpoint.size());
    }
    std::uniform_real_distribution<double> roll(0.0, 1.0);
    const bool fails = roll(random_) < settings_.fail_rate;
    if (!fails) {
      (void)journal_.event("task.succeeded", id_, item.task, item.attempt,
                           [&] { return node_.record_task_succeeded(id_, item.task, item.attempt); });
      ++completed_;
      return;
    }
    const bool retryable = roll(random_) >= settings_.non_retryable_rate;
    const std::string progress = "step=" + std::to_string(item.attempt) + ";task=" + item.task;
    rrh::task_failure failure;
    failure.error_type = retryable ? "TransientError" : "ValidationError";
    failure.message = retryable ? "simulated transient failure" : "simulated permanent failure";
    failure.retryable = retryable;
    failure.attempt = item.attempt;
    failure.checkpoint.assign(progress.begin(), progress.end());
    if (auto sent = journal_.event("task.failed", id_, item.task, item.attempt,
                                   [&] { return node_.record_failed_task(id_, item.task, failure); });
        !sent) {
      spdlog::warn("{}: could not report failure of {}: {}", id_, item.task, sent.error().detail);
    }
  }

  rrh::shim& node_;
  journal& journal_;
  const std::string id_;
  const options& settings_;
  std::mt19937_64 random_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<work_item> retries_;
  bool stopping_ = false;
  std::atomic<bool> hung_{false};
  std::atomic<std::uint64_t> completed_{0};
  std::thread worker_;
};

demo_agent* find_agent(std::vector<std::unique_ptr<demo_agent>>& agents, std::string_view id) {
  for (auto& agent : agents) {
    if (agent->id() == id) return agent.get();
  }
  return nullptr;
}

void install_handlers(rrh::shim& node, std::vector<std::unique_ptr<demo_agent>>& agents,
                      std::atomic<bool>& shutdown_requested, journal& log) {
  node.set_handler("task.retry", [&agents, &log](const rrh::command& message) {
    const auto& retry = std::get<rrh::commands::task_retry>(message.body);
    log.command(message.id, "task.retry", retry.agent, retry.task, retry.attempt);
    spdlog::info("command {} task.retry {} attempt {} for {} ({}-byte checkpoint)", message.id,
                 retry.task, retry.attempt, retry.agent, retry.checkpoint.size());
    auto* agent = find_agent(agents, retry.agent);
    if (agent == nullptr) return rrh::command_result::refuse("unknown agent");
    return agent->enqueue_retry(retry);
  });
  node.set_handler("task.rollback", [&log](const rrh::command& message) {
    const auto& rollback = std::get<rrh::commands::task_rollback>(message.body);
    log.command(message.id, "task.rollback", rollback.agent, rollback.task, 0);
    spdlog::info("command {} task.rollback {} on {}: {}", message.id, rollback.task, rollback.agent,
                 rollback.reason);
    return rrh::command_result::accept();
  });
  node.set_handler("agent.probe", [&log](const rrh::command& message) {
    log.command(message.id, "agent.probe", std::get<rrh::commands::agent_probe>(message.body).agent, {}, 0);
    spdlog::debug("command {} agent.probe {}", message.id,
                  std::get<rrh::commands::agent_probe>(message.body).agent);
    return rrh::command_result::accept();
  });
  node.set_handler("agent.recover", [&agents, &log](const rrh::command& message) {
    const auto& recover = std::get<rrh::commands::agent_recover>(message.body);
    log.command(message.id, "agent.recover", recover.agent, {}, recover.attempt);
    spdlog::info("command {} agent.recover {} attempt {}", message.id, recover.agent, recover.attempt);
    auto* agent = find_agent(agents, recover.agent);
    if (agent == nullptr) return rrh::command_result::refuse("unknown agent");
    agent->resume();  // in-process recovery: a hung worker starts again
    return rrh::command_result::accept();
  });
  node.set_handler("episode.shutdown", [&shutdown_requested, &log](const rrh::command& message) {
    log.command(message.id, "episode.shutdown", {}, {}, 0);
    spdlog::info("command {} episode.shutdown {}: {}", message.id, message.episode,
                 std::get<rrh::commands::episode_shutdown>(message.body).reason);
    shutdown_requested.store(true);
    rrh::request_stop();
    return rrh::command_result::accept();
  });
}

/// --crash-once: the first process to get here crashes (and leaves FILE behind); its
/// restarts find FILE and run on.
bool crash_allowed(const options& settings) {
  if (settings.crash_once_path.empty()) return true;
  if (std::filesystem::exists(settings.crash_once_path)) return false;
  std::ofstream(settings.crash_once_path) << "crashed\n";
  return true;
}

int run(const options& settings) {
  auto loaded = settings.config_path.empty() ? rrh::shim_config::from_environment()
                                             : rrh::shim_config::from_yaml_file(settings.config_path);
  if (!loaded) {
    spdlog::error("configuration: {}", loaded.error().detail);
    return 2;
  }
  rrh::shim_config config = loaded.value();
  if (!settings.node_id.empty()) config.node_id = settings.node_id;
  if (!settings.events_endpoint.empty()) config.events_endpoint = settings.events_endpoint;
  if (!settings.commands_endpoint.empty()) config.commands_endpoint = settings.commands_endpoint;
  if (!settings.curve_secret_key_file.empty() || !settings.curve_server_key_file.empty()) {
    config.security = rrh::bus_security::curve;
    config.curve_secret_key_file = settings.curve_secret_key_file;
    config.curve_server_key_file = settings.curve_server_key_file;
  }
  if (!settings.supervisor.empty()) config.supervisor = settings.supervisor;
  config.heartbeat_interval_ms = settings.heartbeat_ms;

  std::unique_ptr<rrh::shim> node;
  try {
    node = std::make_unique<rrh::shim>(config);
  } catch (const std::exception& failure) {
    spdlog::error("cannot start the node: {}", failure.what());
    return 2;
  }
  spdlog::info("node {} incarnation {} up: events -> {}, commands <- {}", node->node_id(),
               node->incarnation(), config.events_endpoint, config.commands_endpoint);

  journal log(settings.journal_path);
  if (log.failed(settings.journal_path)) {
    spdlog::error("cannot open the journal {}", settings.journal_path);
    return 2;
  }
  std::vector<std::unique_ptr<demo_agent>> agents;
  std::vector<std::string> agent_ids;
  for (std::size_t index = 1; index <= settings.agent_count; ++index) {
    const auto id = node->node_id() + ".a" + std::to_string(index);
    agents.push_back(std::make_unique<demo_agent>(*node, log, id, settings, settings.seed + index));
    agent_ids.push_back(id);
  }
  std::atomic<bool> shutdown_requested{false};
  install_handlers(*node, agents, shutdown_requested, log);

  if (!settings.episode.empty()) {
    if (auto started = node->start_episode(settings.episode, settings.episode, {}, agent_ids); !started) {
      spdlog::error("cannot start episode: {}", started.error().detail);
      return 2;
    }
  }
  rrh::agent_options agent_settings;
  agent_settings.pool = settings.pool;
  agent_settings.watchdog_timeout_ms = settings.watchdog_ms;
  for (auto& agent : agents) {
    if (auto registered = log.event("agent.registered", agent->id(), {}, 0,
                                    [&] { return node->register_agent(agent->id(), agent_settings); });
        !registered) {
      spdlog::error("cannot register {}: {}", agent->id(), registered.error().detail);
      return 2;
    }
    agent->start();
  }

  const auto started_at = std::chrono::steady_clock::now();
  const auto elapsed_s = [&started_at] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
  };
  bool hung = false;
  while (!rrh::stop_requested()) {
    if (settings.crash_after_s > 0 && elapsed_s() >= settings.crash_after_s && crash_allowed(settings)) {
      spdlog::warn("crashing on purpose (--crash-after {})", settings.crash_after_s);
      std::raise(SIGKILL);
    }
    if (settings.hang_after_s > 0 && !hung && elapsed_s() >= settings.hang_after_s) {
      spdlog::warn("hanging on purpose (--hang-after {}): agents stop beating", settings.hang_after_s);
      for (auto& agent : agents) agent->hang();
      hung = true;
    }
    if (settings.duration_s > 0 && elapsed_s() >= settings.duration_s) break;
    log.mark_acked(*node);
    // The control loop wakes on a stop signal at once (stop_fd), else every 50 ms to check
    // its deadlines.
    pollfd wake{rrh::stop_fd(), POLLIN, 0};
    ::poll(&wake, 1, 50);
  }

  for (auto& agent : agents) agent->stop();
  if (!shutdown_requested.load()) {
    for (auto& agent : agents) {
      (void)log.event("agent.unregistered", agent->id(), {}, 0,
                      [&] { return node->unregister_agent(agent->id(), "node stopping"); });
    }
    if (!settings.episode.empty() && !settings.leave_episode_open) (void)node->end_episode("completed");
  }
  if (auto flushed = node->flush(std::chrono::milliseconds(2000)); !flushed) {
    spdlog::warn("exiting with unacked events: {}", flushed.error().detail);
  }
  log.mark_acked(*node);
  const auto stats = node->stats();
  std::uint64_t completed = 0;
  for (const auto& agent : agents) completed += agent->completed();
  spdlog::info("node {} done: {} tasks completed, {} events sent, {} resent, {} acked, {} commands",
               node->node_id(), completed, stats.events_sent, stats.events_retransmitted,
               stats.events_acked, stats.commands_received);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options settings;
  CLI::App app{"rrh-agent: a demo agent node. Runs tasks on N agents, fails some of them on "
               "purpose, and obeys task.retry, task.rollback, agent.probe, agent.recover and "
               "episode.shutdown. Endpoints default to the shim's RRH_* environment."};
  app.add_option("--node", settings.node_id, "node id (default: RRH_NODE_ID or <host>-<pid>)");
  app.add_option("--agents", settings.agent_count, "agents hosted, named <node>.a1 … <node>.aN")
      ->check(CLI::Range(1, 100'000));
  app.add_option("--episode", settings.episode, "episode id to start (join) and, at a clean exit, end");
  app.add_flag("--leave-episode-open", settings.leave_episode_open,
               "join --episode but leave ending it to another node");
  app.add_option("--pool", settings.pool, "pool of the agents");
  app.add_option("--supervisor", settings.supervisor, "supervisor node id of the agents");
  app.add_option("--task-ms", settings.task_ms, "duration of one task")->check(CLI::Range(1, 3'600'000));
  app.add_option("--fail-rate", settings.fail_rate, "probability that a task fails")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--non-retryable-rate", settings.non_retryable_rate,
                 "probability that a failure is non-retryable")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--tasks", settings.tasks_max, "new tasks per agent, then only retries (0: no limit)");
  app.add_option("--crash-after", settings.crash_after_s, "SIGKILL itself after SECONDS");
  app.add_option("--crash-once", settings.crash_once_path,
                 "with --crash-after: crash only if FILE does not exist, creating it first "
                 "(so a restarted process runs on)");
  app.add_option("--hang-after", settings.hang_after_s,
                 "stop working and beating after SECONDS, but stay alive");
  app.add_option("--duration-s", settings.duration_s, "exit cleanly after SECONDS (0: run until Ctrl-C)");
  app.add_option("--heartbeat-ms", settings.heartbeat_ms, "heartbeat interval")
      ->check(CLI::Range(10, 3'600'000));
  app.add_option("--watchdog-ms", settings.watchdog_ms,
                 "per-agent watchdog timeout; 0: none (a hang then shows only as missing work)");
  app.add_option("--events", settings.events_endpoint, "broker events-in endpoint (RRH_EVENTS_ENDPOINT)");
  app.add_option("--commands", settings.commands_endpoint,
                 "broker commands-out endpoint (RRH_COMMANDS_ENDPOINT)");
  app.add_option("--curve-secret-key-file", settings.curve_secret_key_file,
                 "CURVE: this node's secret key (RRH_CURVE_SECRET_KEY_FILE; sets security curve)");
  app.add_option("--curve-server-key-file", settings.curve_server_key_file,
                 "CURVE: the broker's public key (RRH_CURVE_SERVER_KEY_FILE)");
  app.add_option("--config", settings.config_path, "shim YAML configuration file");
  app.add_option("--seed", settings.seed, "random seed for failures");
  app.add_option("--log-level", settings.log_level, "trace, debug, info, warn, error");
  app.add_option("--journal", settings.journal_path,
                 "append one line per critical event emitted, command executed and ack (flushed at once)");
  CLI11_PARSE(app, argc, argv);

  if (auto logging = rrh::setup_logging("rrh-agent", settings.log_level); !logging) {
    std::fprintf(stderr, "rrh-agent: %s\n", logging.error().detail.c_str());
    return 2;
  }
  rrh::install_stop_handlers();
  return run(settings);
}
