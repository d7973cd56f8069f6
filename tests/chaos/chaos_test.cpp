// Chaos on real processes. A broker, a processor (state in a real SQLite file, on a small
// tmpfs the test mounts) and several rrh-agent nodes run on loopback under load; over many
// rounds the processor, the broker and random agent nodes are SIGKILLed at random instants
// and started again, the processor and the broker are SIGSTOPped for several times the
// failure detector's window and continued, and the processor's disk is filled for a while
// and freed. Then a calm phase lets every task finish, and what the agents journaled
// (rrh-agent --journal) is compared with what the processor recorded (rrh-ctl tasks /
// agents):
//
// - no lost critical event: every event an agent journaled and then saw acked (an
//   "acked <k>" line), and every event of a node that was never killed, had its effect:
//   a failure was retried (or rolled back at the retry limit), a success removed the task,
//   a start without outcome left the task running there, a registration made the agent;
// - no duplicated effect: no command id ran twice on one incarnation; a retry
//   (task, attempt) ran at most once on the nodes that lived, and ran again elsewhere only
//   when the first run was on a node killed before the processor saw the retry start;
//   every retry answered a journaled failure and stayed within the retry limit;
// - every agent in the right state: agents of live nodes healthy, agents of killed nodes
//   dead, recovering or quarantined; an unfinished task is one whose progress died with a
//   killed node (GUARANTEES.md: tasks running on an agent that dies are not retried);
// - no judgement of a live node: no agent.dead published for an agent whose node still
//   ran, no agent.recover relayed to a node that still ran, none executed (journaled) at
//   all — the processor's stalls, the broker's and a full disk are its own faults, not the
//   fleet's;
// - the processor survives a full disk: the same process goes degraded and back to ok.
//
// The run is seeded: it prints `seed=N` first; RRH_CHAOS_SEED=N replays the same kill
// schedule (process timing still varies).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "chaos_support.hpp"
#include "processor_fixture.hpp"

using namespace std::chrono_literals;
using rrh::test::child_process;
using rrh::test::wait_until;
using rrh::test::chaos::judgement_watch;
using rrh::test::chaos::small_tmpfs;

namespace {

// ---- the shape of a run ----------------------------------------------------------------

constexpr int rounds = 20;                                   ///< kills in the chaos phase
constexpr std::chrono::milliseconds chaos_duration{60'000};  ///< planned length of the kill rounds
/// Rounds of each kind besides the kills (SIGSTOP of the processor, of the broker, a full
/// disk), put among the kills at random places.
constexpr int pause_rounds_per_kind = 2;
/// What those rounds add to the chaos phase, planned: the agents get work for it too.
constexpr std::chrono::milliseconds pause_rounds_duration{16'000};
constexpr std::chrono::milliseconds planned_duration = chaos_duration + pause_rounds_duration;
/// A SIGSTOP lasts several times the failure detector's window at test speed (about half
/// a second, processor_fixture.hpp), so that a processor judging by silence it could not
/// hear would declare live agents dead.
constexpr std::uint64_t stop_ms_min = 1500;
constexpr std::uint64_t stop_ms_max = 2500;
/// After a SIGCONT, or the disk freed: the processor must see again within this, and is
/// then watched for as long as observe_window for a false judgement before the next round.
constexpr std::chrono::milliseconds sight_deadline{10'000};
constexpr std::chrono::milliseconds observe_window{1000};
/// The processor's state directory: a tmpfs of this size, filled by the full-disk rounds.
constexpr const char* state_disk_size = "32m";
/// A full disk must degrade the processor within this (it commits several times a second
/// under the agents' load), stays full for a random hold, and the store must be ok again
/// within store_recover_deadline of freeing it (the retry backoff is capped at 5 s).
constexpr std::chrono::milliseconds degrade_deadline{10'000};
constexpr std::uint64_t disk_full_hold_ms_min = 500;
constexpr std::uint64_t disk_full_hold_ms_max = 2000;
constexpr std::chrono::milliseconds store_recover_deadline{15'000};
constexpr std::chrono::milliseconds calm_deadline{60'000};   ///< longest calm phase
constexpr std::size_t live_nodes = 4;                        ///< agent nodes running at any time
constexpr std::size_t agents_per_node = 2;
/// A full disk degrades the processor only once SQLite needs a new page: under a steady
/// load it rewrites its WAL in place and reuses freed pages. So a full-disk round also
/// starts a burst node: this many agents (one task each, none failing) under a long node
/// id and pool, whose registrations are new rows the store must grow for; another every
/// burst_interval while the store is not degraded, at most disk_full_bursts_max.
constexpr std::size_t disk_full_burst_agents = 128;
constexpr std::size_t disk_full_bursts_max = 3;
constexpr std::chrono::milliseconds burst_interval{3000};
constexpr std::uint64_t task_ms = 50;
constexpr const char* fail_rate = "0.3";
constexpr std::uint64_t max_task_retries = 2;
constexpr std::uint64_t tasks_min = 20;  ///< tasks per agent of a node started late
/// Kill instants: after this many more journal lines (agents' work), or at the latest
/// after a random share of chaos_duration / rounds, whichever comes first.
constexpr std::uint64_t gap_lines_min = 200;
constexpr std::uint64_t gap_lines_max = 3000;
/// A killed processor or broker stays down until this many more journal lines were
/// written (random, up to the maximum), and at most outage_max.
constexpr std::uint64_t outage_lines_max = 300;
constexpr std::chrono::milliseconds outage_max{1000};
constexpr std::chrono::milliseconds start_deadline{10'000};

// ---- journals ----------------------------------------------------------------------------

struct journal_line {
  enum class type { event, command, acked } what = type::event;
  std::string kind;
  std::string agent;
  std::string task;
  std::uint64_t attempt = 0;
  std::uint64_t id = 0;       ///< command id
  std::uint64_t ordinal = 0;  ///< events: 1, 2, 3… in the journal; acked: the count acked
};

struct journal {
  std::vector<journal_line> lines;
  std::uint64_t events = 0;
  std::uint64_t acked = 0;  ///< the first `acked` events are known acked
  std::vector<std::string> malformed;
};

journal read_journal(const std::string& path) {
  journal result;
  std::ifstream input(path);
  std::stringstream buffer;
  buffer << input.rdbuf();
  std::string text = buffer.str();
  // A line is complete once its newline is written; a SIGKILL may leave a partial tail.
  text.erase(text.find_last_of('\n') == std::string::npos ? 0 : text.find_last_of('\n') + 1);
  std::istringstream stream(text);
  std::string raw;
  while (std::getline(stream, raw)) {
    std::istringstream words(raw);
    std::string head;
    words >> head;
    journal_line line;
    bool ok = false;
    if (head == "event") {
      line.what = journal_line::type::event;
      ok = static_cast<bool>(words >> line.kind >> line.agent >> line.task >> line.attempt);
      line.ordinal = ++result.events;
    } else if (head == "command") {
      line.what = journal_line::type::command;
      ok = static_cast<bool>(words >> line.id >> line.kind >> line.agent >> line.task >> line.attempt);
    } else if (head == "acked") {
      line.what = journal_line::type::acked;
      ok = static_cast<bool>(words >> line.ordinal);
      if (ok) result.acked = std::max(result.acked, line.ordinal);
    }
    if (!ok) {
      result.malformed.push_back(raw);
      continue;
    }
    result.lines.push_back(std::move(line));
  }
  return result;
}

/// Counts the lines appended to a file since the last call, without re-reading it.
class line_counter {
 public:
  explicit line_counter(const std::string& path) : path_(path) {}
  ~line_counter() {
    if (fd_ >= 0) ::close(fd_);
  }
  line_counter(const line_counter&) = delete;
  line_counter& operator=(const line_counter&) = delete;
  std::uint64_t lines() {
    if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return lines_;  // not created yet
    char buffer[8192];
    ssize_t count;
    while ((count = ::read(fd_, buffer, sizeof buffer)) > 0) {
      lines_ += static_cast<std::uint64_t>(std::count(buffer, buffer + count, '\n'));
    }
    return lines_;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t lines_ = 0;
};

// ---- the processor's record (rrh-ctl JSON) -------------------------------------------------

struct task_row {
  std::string agent;
  std::string state;
  std::uint64_t attempt = 0;
};

struct agent_row {
  std::string node;
  std::string state;
};

/// `rrh-ctl --control EP WHAT`: the JSON answer, or nothing.
std::optional<std::string> ask(const std::string& control, const std::string& what) {
  child_process ctl(rrh::test::binary_path("rrh-ctl"), {"--control", control, "--timeout-ms", "3000", what});
  const auto status = ctl.wait_exit(10s);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) return std::nullopt;
  for (const auto& line : ctl.lines()) {
    if (line.rfind(R"({"ok":true)", 0) == 0) return line;
  }
  return std::nullopt;
}

std::optional<std::map<std::string, task_row>> processor_tasks(const std::string& control) {
  const auto json = ask(control, "tasks");
  if (!json || json->find(R"("truncated":false)") == std::string::npos) return std::nullopt;
  static const std::regex row(
      R"re(\{"task":"([^"]*)","agent":"([^"]*)","pool":"[^"]*","episode":"[^"]*","state":"([^"]*)","attempt":(\d+))re");
  std::map<std::string, task_row> rows;
  for (std::sregex_iterator match(json->begin(), json->end(), row), end; match != end; ++match) {
    rows[(*match)[1].str()] = {(*match)[2].str(), (*match)[3].str(), std::stoull((*match)[4].str())};
  }
  return rows;
}

std::optional<std::map<std::string, agent_row>> processor_agents(const std::string& control) {
  const auto json = ask(control, "agents");
  if (!json || json->find(R"("truncated":false)") == std::string::npos) return std::nullopt;
  static const std::regex row(
      R"re(\{"agent":"([^"]*)","node":"([^"]*)","pool":"[^"]*","supervisor":"[^"]*","episode":"[^"]*","state":"([^"]*)")re");
  std::map<std::string, agent_row> rows;
  for (std::sregex_iterator match(json->begin(), json->end(), row), end; match != end; ++match) {
    rows[(*match)[1].str()] = {(*match)[2].str(), (*match)[3].str()};
  }
  return rows;
}

// ---- the system under test -----------------------------------------------------------------

struct node_run {
  std::string node;
  std::string journal_path;
  std::uint64_t tasks = 0;
  std::size_t agents = agents_per_node;
  bool burst = false;  ///< a full-disk round's burst node
  bool killed = false;
  std::chrono::steady_clock::time_point killed_at{};  ///< when SIGKILL was sent
  std::unique_ptr<child_process> process;
  std::unique_ptr<line_counter> counter;
  journal record;  ///< read at the end
};

/// What a round strikes: a SIGKILL of the processor, the broker or an agent node; a
/// SIGSTOP of the processor or the broker; the processor's disk filled.
enum class target { processor, broker, agent, processor_stop, broker_stop, disk_full };

const char* name_of(target kind) {
  switch (kind) {
    case target::processor:
    case target::processor_stop: return "processor";
    case target::broker:
    case target::broker_stop: return "broker";
    case target::agent: return "agent";
    case target::disk_full: return "disk";
  }
  return "?";
}

/// The first `"key":<number>` in `json`, or nothing.
std::optional<std::uint64_t> json_number(const std::string& json, const std::string& key) {
  const auto at = json.find('"' + key + "\":");
  if (at == std::string::npos) return std::nullopt;
  const auto digits = at + key.size() + 3;
  const auto end = json.find_first_not_of("0123456789", digits);
  if (end == digits) return std::nullopt;
  return std::stoull(json.substr(digits, end - digits));
}

/// The `"key":"<text>"` right after `"object":{…` in `json` (an object of flat fields), or "".
std::string json_text_in(const std::string& json, const std::string& object, const std::string& key) {
  const auto start = json.find('"' + object + "\":{");
  if (start == std::string::npos) return {};
  const auto end = json.find('}', start);
  const auto field = json.find('"' + key + "\":\"", start);
  if (field == std::string::npos || field > end) return {};
  const auto text = field + key.size() + 4;
  return json.substr(text, json.find('"', text) - text);
}

/// A round as the report and the judgement check see it.
struct round_record {
  int number = 0;
  target kind = target::agent;
  std::chrono::steady_clock::time_point began, ended;
  std::string report;
};

class chaos_bus {
 public:
  explicit chaos_bus(std::uint64_t seed)
      : random_(seed),
        scratch_("rrh-chaos"),
        disk_(scratch_.file("state"), state_disk_size),
        config_path_(scratch_.file("rrh.yaml")),
        state_path_(disk_.file("state.db")) {
    auto resilience = rrh::test::test_speed_resilience();
    // A fixed one-second retry delay keeps retries pending across kills.
    resilience["retry_backoff"] = "fixed";
    resilience["task_retry_delay"] = "1";
    resilience["max_task_retries"] = std::to_string(max_task_retries);
    rrh::test::write_file(config_path_, rrh::test::resilience_yaml(resilience));
    start_broker();
    watch_ = std::make_unique<judgement_watch>(events_out_);
    start_processor();
  }

  void start_broker() {
    const std::string any = "tcp://127.0.0.1:*";
    const auto or_any = [&any](const std::string& endpoint) { return endpoint.empty() ? any : endpoint; };
    broker_ = std::make_unique<child_process>(
        rrh::test::binary_path("rrh-broker"),
        std::vector<std::string>{"--events-in", or_any(events_in_), "--events-out", or_any(events_out_),
                                 "--commands-in", or_any(commands_in_), "--commands-out",
                                 or_any(commands_out_), "--log-level", "warn"});
    const auto ready = broker_->wait_line("rrh-broker ready", start_deadline);
    if (!ready) throw std::runtime_error("rrh-broker printed no ready line");
    events_in_ = rrh::ready_line_field(*ready, "events-in");
    events_out_ = rrh::ready_line_field(*ready, "events-out");
    commands_in_ = rrh::ready_line_field(*ready, "commands-in");
    commands_out_ = rrh::ready_line_field(*ready, "commands-out");
  }

  void start_processor() {
    processor_ = std::make_unique<child_process>(
        rrh::test::binary_path("rrh-processor"),
        std::vector<std::string>{"--config", config_path_, "--events", events_out_, "--publish", events_in_,
                                 "--commands", commands_in_, "--control",
                                 control_.empty() ? "tcp://127.0.0.1:*" : control_, "--state",
                                 state_path_, "--log-level", "warn"});
    const auto ready = processor_->wait_line("rrh-processor ready", start_deadline);
    if (!ready) throw std::runtime_error("rrh-processor printed no ready line");
    control_ = rrh::ready_line_field(*ready, "control");
  }

  /// A new agent node (a new node id: task ids are per node, so a node is never reused).
  void start_node(std::uint64_t tasks) {
    launch_node("chaos-n" + std::to_string(nodes_.size() + 1), tasks, agents_per_node, "chaos", fail_rate,
                random_());
  }

  /// A full-disk round's burst node (see disk_full_burst_agents). Its seed is not drawn, so
  /// that how many bursts a round takes does not change the rest of the schedule; it is
  /// never a kill's victim, and no task of it fails, so none waits for a retry elsewhere.
  void start_burst_node() {
    const auto padded = [](std::string id) {
      id.resize(rrh::id_length_max - 16, 'b');  // room for ".a128.t1"
      return id;
    };
    const auto number = nodes_.size() + 1;
    launch_node(padded("chaos-n" + std::to_string(number) + "-burst-"), 1, disk_full_burst_agents,
                padded("chaos-burst-pool-"), "0", number);
    nodes_.back()->burst = true;
  }

  void launch_node(const std::string& node, std::uint64_t tasks, std::size_t agents, const std::string& pool,
                   const char* fail, std::uint64_t seed) {
    auto run = std::make_unique<node_run>();
    run->node = node;
    run->journal_path = scratch_.file(run->node + ".journal");
    run->tasks = tasks;
    run->agents = agents;
    run->counter = std::make_unique<line_counter>(run->journal_path);
    run->process = std::make_unique<child_process>(
        rrh::test::binary_path("rrh-agent"),
        std::vector<std::string>{"--node", run->node, "--agents", std::to_string(agents), "--pool", pool,
                                 "--task-ms", std::to_string(task_ms), "--fail-rate", fail, "--tasks",
                                 std::to_string(tasks), "--heartbeat-ms", "100", "--seed", std::to_string(seed),
                                 "--events", events_in_, "--commands", commands_out_, "--journal",
                                 run->journal_path, "--log-level", "warn"},
        std::vector<std::string>{"RRH_RETRANSMIT_INITIAL_MS=100", "RRH_RETRANSMIT_MAX_MS=500"});
    nodes_.push_back(std::move(run));
  }

  /// Lines journaled by every node so far.
  std::uint64_t journal_lines() {
    std::uint64_t total = 0;
    for (auto& run : nodes_) total += run->counter->lines();
    return total;
  }

  /// Waits until the agents journaled `lines` more lines, or `deadline` passed.
  void wait_for_work(std::uint64_t lines, std::chrono::milliseconds deadline) {
    const auto from = journal_lines();
    wait_until([&] { return journal_lines() >= from + lines; }, deadline);
  }

  static void kill(child_process& process, const char* what) {
    process.signal(SIGKILL);
    if (!process.wait_exit(5s)) throw std::runtime_error(std::string(what) + " survived SIGKILL");
  }

  std::uint64_t uniform(std::uint64_t low, std::uint64_t high) {
    return std::uniform_int_distribution<std::uint64_t>(low, high)(random_);
  }

  /// One round's kill; returns a line for the report.
  std::string strike(target kind) {
    std::ostringstream line;
    switch (kind) {
      case target::processor:
      case target::broker: {
        auto& victim = kind == target::processor ? processor_ : broker_;
        kill(*victim, name_of(kind));
        gone_.emplace_back(name_of(kind), std::move(victim));
        const auto down_lines = uniform(0, outage_lines_max);
        const auto since = std::chrono::steady_clock::now();
        wait_for_work(down_lines, outage_max);
        const auto down_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - since)
                                 .count();
        if (kind == target::processor) {
          start_processor();
        } else {
          start_broker();
        }
        line << "SIGKILL " << name_of(kind) << ", down " << down_ms << " ms";
        break;
      }
      case target::agent: {
        std::vector<node_run*> alive;
        for (auto& run : nodes_) {
          if (!run->killed && !run->burst) alive.push_back(run.get());
        }
        auto* victim = alive[uniform(0, alive.size() - 1)];
        kill(*victim->process, victim->node.c_str());
        victim->killed = true;
        victim->killed_at = std::chrono::steady_clock::now();
        const auto remaining = planned_duration - std::min(planned_duration, elapsed());
        const auto tasks = std::max<std::uint64_t>(
            tasks_min, static_cast<std::uint64_t>(remaining.count()) * 8 / 10 / task_ms);
        start_node(tasks);
        line << "SIGKILL agent node " << victim->node << ", started " << nodes_.back()->node << " ("
             << tasks << " tasks per agent)";
        break;
      }
      case target::processor_stop:
      case target::broker_stop: pause(kind == target::processor_stop ? *processor_ : *broker_, kind, line); break;
      case target::disk_full: fill_disk(line); break;
    }
    return line.str();
  }

  /// The processor's `rrh-ctl status`, or "" (it does not answer).
  std::string status() { return ask(control_, "status").value_or(""); }
  bool sees() { return json_text_in(status(), "sight", "state") == "sees"; }
  std::string store_state() { return json_text_in(status(), "store", "state"); }

  /// SIGSTOP, a pause of several detection windows, SIGCONT; then the processor must see
  /// again, and is watched for a while for a false judgement (the final check names it).
  void pause(child_process& victim, target kind, std::ostringstream& line) {
    const auto before = status();
    const auto pause_ms = uniform(stop_ms_min, stop_ms_max);
    victim.signal(SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));  // the fault itself: a pause
    victim.signal(SIGCONT);
    const auto resumed = std::chrono::steady_clock::now();
    line << "SIGSTOP " << name_of(kind) << " " << pause_ms << " ms";
    if (!wait_until([this] { return sees(); }, sight_deadline)) {
      fail_round(line, "the processor does not see " + std::to_string(sight_deadline.count()) +
                           " ms after SIGCONT: " + status());
      return;
    }
    line << ", sight back " << since_ms(resumed) << " ms after SIGCONT";
    const auto after = status();
    for (const char* counter : {"stalls", "deaf_spells", "blind_spells"}) {
      line << ", " << counter << " +"
           << json_number(after, counter).value_or(0) - json_number(before, counter).value_or(0);
    }
    const auto judged = watch_->count();
    wait_until([&] { return watch_->count() > judged; }, observe_window);
  }

  /// Fills the processor's disk, holds it full, frees it: the same processor goes degraded
  /// and back to ok, and nothing acked is lost (the final check).
  void fill_disk(std::ostringstream& line) {
    const auto pid = processor_->pid();
    const auto filler = disk_.file("filler");
    const auto bytes = small_tmpfs::fill(filler);
    const auto filled = std::chrono::steady_clock::now();
    line << "disk full (filler " << bytes / 1024 << " KiB)";
    std::string reason;
    std::size_t bursts = 0;
    auto burst_at = filled;
    const bool degraded = wait_until(
        [&] {
          if (bursts < disk_full_bursts_max && (bursts == 0 || std::chrono::steady_clock::now() >= burst_at)) {
            start_burst_node();
            ++bursts;
            burst_at = std::chrono::steady_clock::now() + burst_interval;
          }
          const auto answer = status();
          reason = json_text_in(answer, "store", "reason");
          return json_text_in(answer, "store", "state") == "degraded";
        },
        degrade_deadline);
    line << ", " << bursts << " burst node" << (bursts == 1 ? "" : "s") << " of " << disk_full_burst_agents
         << " agents";
    if (degraded) {
      line << ", degraded after " << since_ms(filled) << " ms (" << reason << ")";
    } else {
      fail_round(line, "the processor's store not degraded " + std::to_string(degrade_deadline.count()) +
                           " ms after its disk filled: " + status());
    }
    const auto hold_ms = uniform(disk_full_hold_ms_min, disk_full_hold_ms_max);
    std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));  // the fault itself: a full disk for a while
    std::filesystem::remove(filler);
    const auto freed = std::chrono::steady_clock::now();
    line << ", freed after " << hold_ms << " ms more";
    if (wait_until([this] { return store_state() == "ok"; }, store_recover_deadline)) {
      line << ", store ok " << since_ms(freed) << " ms after";
    } else {
      fail_round(line, "the processor's store not ok " + std::to_string(store_recover_deadline.count()) +
                           " ms after its disk was freed: " + status());
    }
    if (!processor_->running() || processor_->pid() != pid) {
      fail_round(line, "the processor (pid " + std::to_string(pid) + ") did not survive its full disk");
      gone_.emplace_back("processor", std::move(processor_));
      start_processor();  // the run goes on, judged with this failure
      return;
    }
    if (!wait_until([this] { return sees(); }, sight_deadline)) {
      fail_round(line, "the processor does not see " + std::to_string(sight_deadline.count()) +
                           " ms after its disk was freed: " + status());
    }
    const auto judged = watch_->count();
    wait_until([&] { return watch_->count() > judged; }, observe_window);
  }

  void fail_round(std::ostringstream& line, const std::string& what) {
    line << "; FAILED: " << what;
    problems_.push_back(what);
  }

  static std::int64_t since_ms(std::chrono::steady_clock::time_point from) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - from).count();
  }

  std::chrono::milliseconds elapsed() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  }

  /// Keeps the journals, the state file and every process's output for a post-mortem;
  /// returns the directory.
  std::string save(std::uint64_t seed) {
    const auto where = std::filesystem::temp_directory_path() /
                       ("rrh-chaos-seed-" + std::to_string(seed) + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(where);
    std::error_code ignored;
    std::filesystem::copy(std::filesystem::path(state_path_).parent_path(), where,
                          std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing,
                          ignored);
    std::map<std::string, int> counts;
    const auto dump = [&](const std::string& name, const child_process& process) {
      std::ofstream output(where / (name + "-" + std::to_string(++counts[name]) + ".log"));
      for (const auto& line : process.lines()) output << line << "\n";
    };
    for (const auto& [name, process] : gone_) dump(name, *process);
    dump("processor", *processor_);
    dump("broker", *broker_);
    for (const auto& run : nodes_) dump(run->node, *run->process);
    return where.string();
  }

  const std::string& control() const { return control_; }
  const judgement_watch& watch() const { return *watch_; }
  const std::vector<std::string>& problems() const { return problems_; }
  std::chrono::steady_clock::time_point started() const { return started_; }
  std::vector<std::unique_ptr<node_run>>& nodes() { return nodes_; }
  std::mt19937_64& random() { return random_; }
  child_process& processor() { return *processor_; }
  child_process& broker() { return *broker_; }

 private:
  std::mt19937_64 random_;
  rrh::test::scratch_directory scratch_;
  small_tmpfs disk_;  ///< after scratch_, before the processes: unmounted once they are gone
  std::string config_path_;
  std::string state_path_;
  std::string events_in_, events_out_, commands_in_, commands_out_, control_;
  std::unique_ptr<judgement_watch> watch_;
  std::unique_ptr<child_process> broker_;
  std::unique_ptr<child_process> processor_;
  std::vector<std::unique_ptr<node_run>> nodes_;
  std::vector<std::pair<std::string, std::unique_ptr<child_process>>> gone_;  ///< killed processors, brokers
  std::vector<std::string> problems_;  ///< what the rounds themselves found wrong
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

std::uint64_t chaos_seed() {
  if (const char* text = std::getenv("RRH_CHAOS_SEED"); text != nullptr && *text != '\0') {
    return std::stoull(text);
  }
  return std::random_device{}();
}

/// "chaos-n3.a2" → "chaos-n3".
std::string node_of(const std::string& agent) { return agent.substr(0, agent.rfind(".a")); }

bool is_outcome(const std::string& kind) { return kind == "task.succeeded" || kind == "task.failed"; }

// ---- the comparison ------------------------------------------------------------------------

struct verdict {
  std::vector<std::string> problems;
  std::uint64_t events_journaled = 0;
  std::uint64_t events_checked = 0;  ///< acked, or from a node that lived
  std::uint64_t events_unacked_lost = 0;  ///< journaled by killed nodes after their last ack
  std::uint64_t commands_checked = 0;
  std::uint64_t retries_executed = 0;
  std::uint64_t retries_rerun_after_kill = 0;
  std::uint64_t rollbacks = 0;
  std::uint64_t tasks_unfinished = 0;
  std::uint64_t deaths_seen = 0;    ///< agent.dead on the bus
  std::uint64_t recovers_seen = 0;  ///< agent.recover relayed by the broker
  void fail(std::string what) { problems.push_back(std::move(what)); }
};

using task_attempt = std::pair<std::string, std::uint64_t>;

verdict compare(std::vector<std::unique_ptr<node_run>>& nodes, const std::map<std::string, task_row>& tasks,
                const std::map<std::string, agent_row>& agents) {
  verdict result;
  std::map<std::string, node_run*> by_node;
  for (auto& run : nodes) by_node[run->node] = run.get();

  struct execution {
    node_run* run;
    bool confirmed;  ///< the processor saw this run start (a covered task.started follows)
  };
  std::map<task_attempt, std::vector<execution>> retries;
  std::set<task_attempt> failures;  ///< every journaled failure, covered or not

  for (auto& run_pointer : nodes) {
    auto& run = *run_pointer;
    const auto& record = run.record;
    for (const auto& raw : record.malformed) result.fail(run.node + ": malformed journal line '" + raw + "'");
    // A node that lived must have had everything acked by the end of the calm phase.
    const std::uint64_t covered = run.killed ? record.acked : record.events;
    if (!run.killed && record.acked != record.events) {
      result.fail(run.node + " (alive): " + std::to_string(record.events - record.acked) + " events never acked");
    }
    result.events_journaled += record.events;
    result.events_checked += covered;
    result.events_unacked_lost += record.events - covered;

    std::set<std::uint64_t> command_ids;
    for (std::size_t index = 0; index < record.lines.size(); ++index) {
      const auto& line = record.lines[index];
      if (line.what == journal_line::type::command) {
        ++result.commands_checked;
        if (!command_ids.insert(line.id).second) {
          result.fail(run.node + ": command " + std::to_string(line.id) + " (" + line.kind + ") executed twice");
        }
        // A node that executes a command is alive: a recover reached a live agent.
        if (line.kind == "agent.recover") {
          result.fail(run.node + ": agent.recover " + std::to_string(line.id) + " of " + line.agent +
                      " executed, the node was alive");
        }
        if (line.kind == "task.retry") {
          bool confirmed = false;
          for (std::size_t later = index + 1; later < record.lines.size(); ++later) {
            const auto& next = record.lines[later];
            if (next.what == journal_line::type::event && next.kind == "task.started" && next.task == line.task &&
                next.attempt == line.attempt) {
              confirmed = next.ordinal <= covered;
              break;
            }
          }
          retries[{line.task, line.attempt}].push_back({&run, confirmed});
        }
        if (line.kind == "task.rollback") ++result.rollbacks;
        continue;
      }
      if (line.what != journal_line::type::event) continue;
      if (line.kind == "task.failed") failures.insert({line.task, line.attempt});
      if (line.ordinal > covered) continue;
      const auto where = run.node + ": " + line.kind + " " + line.task + " attempt " + std::to_string(line.attempt);

      if (line.kind == "agent.registered") {
        if (agents.find(line.agent) == agents.end()) {
          result.fail(run.node + ": acked registration of " + line.agent + " lost (agent unknown to the processor)");
        }
        continue;
      }
      // The next journaled step of this task on this node, if any.
      const journal_line* next_step = nullptr;
      for (std::size_t later = index + 1; later < record.lines.size(); ++later) {
        const auto& next = record.lines[later];
        if (next.what == journal_line::type::event && next.task == line.task) {
          next_step = &next;
          break;
        }
      }
      const auto row = tasks.find(line.task);
      if (line.kind == "task.started") {
        if (next_step != nullptr && is_outcome(next_step->kind) && next_step->attempt == line.attempt) continue;
        // Started, never finished: the node must have been killed in the run, and the
        // processor must still show the run there.
        if (!run.killed) {
          result.fail(where + ": started on a node that lived, never finished");
        } else if (row == tasks.end() || row->second.state != "running" || row->second.attempt != line.attempt ||
                   row->second.agent != line.agent) {
          result.fail(where + ": acked start lost (the processor does not show it running there)");
        }
      } else if (line.kind == "task.succeeded") {
        if (row != tasks.end()) {
          result.fail(where + ": acked success lost (the processor still tracks the task, " + row->second.state + ")");
        }
      } else if (line.kind == "task.failed") {
        // Below the limit: checked below, once every node's retries are collected.
        if (line.attempt > max_task_retries && !run.killed) {
          bool rolled_back = false;
          for (const auto& other : record.lines) {
            if (other.what == journal_line::type::command && other.kind == "task.rollback" &&
                other.task == line.task) {
              rolled_back = true;
            }
          }
          if (!rolled_back) result.fail(where + ": failed at the retry limit, never rolled back");
        }
      }
    }
  }

  // Every acked failure below the limit was retried (by some node, at some point).
  for (auto& run_pointer : nodes) {
    const auto& run = *run_pointer;
    const std::uint64_t covered = run.killed ? run.record.acked : run.record.events;
    for (const auto& line : run.record.lines) {
      if (line.what != journal_line::type::event || line.kind != "task.failed" || line.ordinal > covered) continue;
      if (line.attempt <= max_task_retries && retries.find({line.task, line.attempt + 1}) == retries.end()) {
        result.fail(run.node + ": acked failure of " + line.task + " attempt " + std::to_string(line.attempt) +
                    " lost (never retried)");
      }
    }
  }

  // Each retry ran once; again only when its first run died unseen with a killed node.
  for (const auto& [key, runs] : retries) {
    const auto what = key.first + " attempt " + std::to_string(key.second);
    result.retries_executed += runs.size();
    result.retries_rerun_after_kill += runs.size() - 1;
    if (key.second < 2 || key.second > max_task_retries + 1) result.fail("retry " + what + " beyond the retry limit");
    if (failures.find({key.first, key.second - 1}) == failures.end()) {
      result.fail("retry " + what + " answers no journaled failure");
    }
    std::size_t on_live = 0;
    for (const auto& run : runs) on_live += run.run->killed ? 0 : 1;
    if (on_live > 1) result.fail("retry " + what + " executed " + std::to_string(on_live) + " times on live nodes");
    // The processor withdraws a retry once it sees that run start: two runs it saw start
    // mean it issued the same attempt again after that.
    std::string seen_on;
    for (const auto& run : runs) {
      if (run.confirmed) seen_on += " " + run.run->node;
    }
    if (std::count(seen_on.begin(), seen_on.end(), ' ') > 1) {
      result.fail("retry " + what + " executed " + std::to_string(runs.size()) + " times, seen starting on" + seen_on);
    }
  }

  // What the processor still tracks: only work that died with a killed node.
  for (const auto& [task, row] : tasks) {
    ++result.tasks_unfinished;
    const auto what = "unfinished task " + task + " (" + row.state + ", attempt " + std::to_string(row.attempt) +
                      ", agent " + row.agent + ")";
    const auto owner = by_node.find(node_of(row.agent));
    if (owner == by_node.end() || !owner->second->killed) {
      result.fail(what + ": not on a killed node");
      continue;
    }
    const auto& lines = owner->second->record.lines;
    const auto covered = owner->second->record.acked;
    bool explained = false;
    if (row.state == "running") {
      // Its start is journaled there, and no acked outcome of that attempt follows.
      for (std::size_t index = 0; index < lines.size(); ++index) {
        const auto& line = lines[index];
        if (line.what != journal_line::type::event || line.kind != "task.started" || line.task != task ||
            line.attempt != row.attempt) {
          continue;
        }
        explained = true;
        for (std::size_t later = index + 1; later < lines.size(); ++later) {
          const auto& next = lines[later];
          if (next.what == journal_line::type::event && next.task == task && is_outcome(next.kind) &&
              next.attempt == row.attempt && next.ordinal <= covered) {
            explained = false;
          }
        }
      }
    } else if (row.state == "retrying") {
      for (const auto& line : lines) {
        if (line.what == journal_line::type::command && line.kind == "task.retry" && line.task == task &&
            line.attempt == row.attempt) {
          explained = true;
        }
      }
    }
    if (!explained) result.fail(what + ": not explained by the killed node's journal");
  }

  // Agents: live nodes' healthy, killed nodes' detected.
  for (const auto& run_pointer : nodes) {
    const auto& run = *run_pointer;
    for (std::size_t index = 1; index <= run.agents; ++index) {
      const auto agent = run.node + ".a" + std::to_string(index);
      const auto row = agents.find(agent);
      if (!run.killed) {
        if (row == agents.end()) {
          result.fail("agent " + agent + " of a live node unknown to the processor");
        } else if (row->second.state != "healthy" && row->second.state != "registered") {
          result.fail("agent " + agent + " of a live node is " + row->second.state);
        }
      } else if (row != agents.end() && row->second.state != "dead" && row->second.state != "recovering" &&
                 row->second.state != "quarantined") {
        result.fail("agent " + agent + " of a killed node is " + row->second.state);
      }
    }
  }
  return result;
}

/// Judgements of live nodes: an agent.dead of an agent, or an agent.recover to a node, that
/// reached the bus before its node was killed (or of a node never killed). Each is named
/// with the round it followed.
void check_judgements(const std::vector<std::unique_ptr<node_run>>& nodes,
                      const std::vector<judgement_watch::judgement>& seen, const std::vector<round_record>& history,
                      std::chrono::steady_clock::time_point started, verdict& result) {
  std::map<std::string, const node_run*> by_node;
  for (const auto& run : nodes) by_node[run->node] = run.get();
  for (const auto& judged : seen) {
    const bool dead = judged.kind == "agent.dead";
    (dead ? result.deaths_seen : result.recovers_seen) += 1;
    const auto node = dead ? node_of(judged.subject) : judged.subject;
    const auto owner = by_node.find(node);
    if (owner == by_node.end()) continue;  // not an agent node of the run
    if (owner->second->killed && judged.arrived >= owner->second->killed_at) continue;
    std::ostringstream what;
    what << judged.kind << " " << judged.subject << " at "
         << std::chrono::duration_cast<std::chrono::milliseconds>(judged.arrived - started).count()
         << " ms, its node alive";
    const auto after = std::find_if(history.rbegin(), history.rend(),
                                    [&](const round_record& round) { return round.began <= judged.arrived; });
    if (after != history.rend()) {
      what << " (" << std::chrono::duration_cast<std::chrono::milliseconds>(judged.arrived - after->ended).count()
           << " ms after round " << after->number << " ended: " << after->report << ")";
    }
    result.fail(what.str());
  }
}

}  // namespace

TEST_CASE("chaos: processor, broker and agents SIGKILLed, processor and broker SIGSTOPped, the disk filled, under "
          "load; nothing acked lost, nothing applied twice, no live node judged dead",
          "[chaos]") {
  const auto seed = chaos_seed();
  std::cout << "seed=" << seed << std::endl;
  INFO("seed=" << seed << " (RRH_CHAOS_SEED=" << seed << " replays the kill schedule)");

  chaos_bus bus(seed);
  const auto tasks_first = static_cast<std::uint64_t>(planned_duration.count()) * 8 / 10 / task_ms;
  for (std::size_t index = 0; index < live_nodes; ++index) bus.start_node(tasks_first);

  // Load first: every node journals work before the first kill.
  REQUIRE(wait_until(
      [&] {
        for (auto& run : bus.nodes()) {
          if (run->counter->lines() < 10) return false;
        }
        return true;
      },
      20s));

  // The chaos phase. The first three kills take one of each kind, in random order; the
  // rest are drawn (processor 35 %, broker 25 %, agent 40 %). The SIGSTOP and full-disk
  // rounds, pause_rounds_per_kind of each, go in at random places among them; their own
  // gap is shorter, as the pause they make is work time too.
  std::vector<target> plan = {target::processor, target::broker, target::agent};
  std::shuffle(plan.begin(), plan.end(), bus.random());
  while (plan.size() < static_cast<std::size_t>(rounds)) {
    const auto draw = bus.uniform(0, 99);
    plan.push_back(draw < 35 ? target::processor : draw < 60 ? target::broker : target::agent);
  }
  for (const auto kind : {target::processor_stop, target::broker_stop, target::disk_full}) {
    for (int count = 0; count < pause_rounds_per_kind; ++count) {
      plan.insert(plan.begin() + static_cast<std::ptrdiff_t>(bus.uniform(0, plan.size())), kind);
    }
  }
  std::map<target, int> kills;
  std::vector<round_record> history;
  const auto round_budget = static_cast<std::uint64_t>((chaos_duration / rounds).count());
  for (std::size_t index = 0; index < plan.size(); ++index) {
    const auto kind = plan[index];
    const bool pause_round = kind == target::processor_stop || kind == target::broker_stop || kind == target::disk_full;
    const auto gap_lines = pause_round ? bus.uniform(gap_lines_min / 4, gap_lines_min * 2)
                                       : bus.uniform(gap_lines_min, gap_lines_max);
    const auto gap_deadline = std::chrono::milliseconds(pause_round ? bus.uniform(round_budget / 6, round_budget / 3)
                                                                    : bus.uniform(round_budget / 2, round_budget * 3 / 2));
    bus.wait_for_work(gap_lines, gap_deadline);
    round_record record;
    record.number = static_cast<int>(index) + 1;
    record.kind = kind;
    record.began = std::chrono::steady_clock::now();
    const auto at = bus.elapsed();
    record.report = bus.strike(kind);
    record.ended = std::chrono::steady_clock::now();
    ++kills[kind];
    std::cout << "round " << record.number << " at " << at.count() << " ms: " << record.report << std::endl;
    history.push_back(std::move(record));
  }
  const auto chaos_ms = bus.elapsed().count();

  // The calm phase: no kills until every node finished its tasks, everything is acked,
  // no retry is pending, and the processor judged every agent.
  std::string pending_reason;
  std::map<std::string, task_row> final_tasks;
  std::map<std::string, agent_row> final_agents;
  auto last_query = std::chrono::steady_clock::time_point{};
  const auto settled = [&]() -> bool {
    if (std::chrono::steady_clock::now() - last_query < 300ms) return false;  // polling step
    last_query = std::chrono::steady_clock::now();
    for (auto& run : bus.nodes()) {
      if (run->killed) continue;
      const auto record = read_journal(run->journal_path);
      for (std::size_t index = 1; index <= run->agents; ++index) {
        const auto last_task = run->node + ".a" + std::to_string(index) + ".t" + std::to_string(run->tasks);
        const bool started = std::any_of(record.lines.begin(), record.lines.end(), [&](const journal_line& line) {
          return line.what == journal_line::type::event && line.kind == "task.started" && line.task == last_task;
        });
        if (!started) {
          pending_reason = run->node + " has not started " + last_task;
          return false;
        }
      }
      if (record.acked != record.events) {
        pending_reason = run->node + " has unacked events";
        return false;
      }
    }
    const auto tasks = processor_tasks(bus.control());
    const auto agents = processor_agents(bus.control());
    if (!tasks || !agents) {
      pending_reason = "rrh-ctl gave no answer";
      return false;
    }
    for (const auto& [task, row] : *tasks) {
      const auto owner = std::find_if(bus.nodes().begin(), bus.nodes().end(),
                                      [&](const auto& run) { return run->node == node_of(row.agent); });
      if (row.state == "retry_scheduled" || owner == bus.nodes().end() || !(*owner)->killed) {
        pending_reason = "task " + task + " is " + row.state + " on " + row.agent;
        return false;
      }
    }
    for (const auto& run : bus.nodes()) {
      for (std::size_t index = 1; index <= run->agents; ++index) {
        const auto agent = run->node + ".a" + std::to_string(index);
        const auto row = agents->find(agent);
        const bool judged = run->killed ? row == agents->end() || row->second.state == "dead" ||
                                              row->second.state == "recovering" || row->second.state == "quarantined"
                                        : row != agents->end() && row->second.state == "healthy";
        if (!judged) {
          pending_reason = "agent " + agent + " is " + (row == agents->end() ? "unknown" : row->second.state);
          return false;
        }
      }
    }
    final_tasks = *tasks;
    final_agents = *agents;
    return true;
  };
  const bool calm = wait_until(settled, calm_deadline);
  const auto total_ms = bus.elapsed().count();

  // Everything journaled, as of now (live nodes keep beating but do no more work).
  for (auto& run : bus.nodes()) run->record = read_journal(run->journal_path);
  if (!calm) {
    // Judge what there is anyway: the problems name what was lost.
    if (auto tasks = processor_tasks(bus.control())) final_tasks = *tasks;
    if (auto agents = processor_agents(bus.control())) final_agents = *agents;
  }
  auto result = compare(bus.nodes(), final_tasks, final_agents);
  check_judgements(bus.nodes(), bus.watch().seen(), history, bus.started(), result);
  for (const auto& problem : bus.problems()) result.fail(problem);

  std::size_t killed_nodes = 0;
  for (const auto& run : bus.nodes()) killed_nodes += run->killed ? 1 : 0;
  std::cout << "chaos: seed=" << seed << ", " << plan.size() << " rounds in " << chaos_ms << " ms, settled after "
            << total_ms << " ms; kills: processor " << kills[target::processor] << ", broker "
            << kills[target::broker] << ", agent " << kills[target::agent] << "; stops: processor "
            << kills[target::processor_stop] << ", broker " << kills[target::broker_stop] << "; disk full "
            << kills[target::disk_full] << "; nodes " << bus.nodes().size() << " (" << killed_nodes << " killed)\n"
            << "chaos: events journaled " << result.events_journaled << ", checked (acked or from live nodes) "
            << result.events_checked << ", unacked when their node was killed " << result.events_unacked_lost
            << "; commands checked " << result.commands_checked << ", retries executed " << result.retries_executed
            << " (re-run after a kill " << result.retries_rerun_after_kill << "), rollbacks " << result.rollbacks
            << "; unfinished tasks (died with a killed node) " << result.tasks_unfinished << "; agent.dead seen "
            << result.deaths_seen << ", agent.recover seen " << result.recovers_seen << std::endl;
  for (std::size_t index = 0; index < std::min<std::size_t>(result.problems.size(), 40); ++index) {
    std::cout << "problem: " << result.problems[index] << "\n";
  }
  if (!calm) std::cout << "calm phase never settled: " << pending_reason << "\n";
  if (!calm || !result.problems.empty()) std::cout << "kept for a post-mortem: " << bus.save(seed) << "\n";
  std::cout << std::flush;

  CHECK(calm);
  CHECK(result.problems.empty());
  CHECK(result.events_checked > 0);
  CHECK(result.retries_executed > 0);
  CHECK(kills[target::processor] > 0);
  CHECK(kills[target::broker] > 0);
  CHECK(kills[target::agent] > 0);
  CHECK(kills[target::processor_stop] > 0);
  CHECK(kills[target::broker_stop] > 0);
  CHECK(kills[target::disk_full] > 0);
  // The stack survived the chaos: the last processor and broker still run.
  CHECK(bus.processor().running());
  CHECK(bus.broker().running());
}
