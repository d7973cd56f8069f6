// The store keeps what the engine holds: a real engine driven by events, committed batch by
// batch, loads back field by field (in memory, in a file, and after reopening the file),
// restores a fresh engine to the same records, deletes what the engine removed, writes a
// repeated key once, refuses a newer schema and does nothing for an empty batch.
#include <catch2/catch.hpp>

#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "rrh/codec.hpp"
#include "rrh/engine/engine.hpp"
#include "store.hpp"

namespace {

using namespace rrh;
using namespace rrh::engine;
using rrh::processor::store;
using rrh::processor::store_sync;

constexpr time_ms start_ms = 1'700'000'000'000;

/// A state file in the temporary directory, removed (with its WAL files) at scope exit.
class temp_state_file {
 public:
  temp_state_file() {
    static int counter = 0;
    path_ = (std::filesystem::temp_directory_path() /
             ("rrh_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + ".db"))
                .string();
    remove_all();
  }
  ~temp_state_file() { remove_all(); }
  temp_state_file(const temp_state_file&) = delete;
  temp_state_file& operator=(const temp_state_file&) = delete;
  const std::string& path() const { return path_; }

 private:
  void remove_all() {
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path_ + suffix, ignored);
  }
  std::string path_;
};

/// Runs one SQL statement on a file directly, as the sqlite3 CLI would.
void run_sql(const std::string& path, const std::string& sql) {
  sqlite3* database = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &database) == SQLITE_OK);
  char* message = nullptr;
  const int result = sqlite3_exec(database, sql.c_str(), nullptr, nullptr, &message);
  INFO((message ? message : ""));
  sqlite3_free(message);
  sqlite3_close(database);
  REQUIRE(result == SQLITE_OK);
}

/// The first column of the first row of a query on a file, as text.
std::string query_text(const std::string& path, const std::string& sql) {
  sqlite3* database = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &database) == SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  REQUIRE(sqlite3_prepare_v2(database, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK);
  std::string text;
  if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_text(statement, 0) != nullptr) {
    text = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
  }
  sqlite3_finalize(statement);
  sqlite3_close(database);
  return text;
}

std::unique_ptr<store> open_or_fail(const std::string& path, store_sync sync = store_sync::full) {
  auto opened = store::open(path, sync);
  INFO((opened ? std::string() : opened.error().detail));
  REQUIRE(opened.has_value());
  return std::move(opened.value());
}

snapshot load_or_fail(store& subject) {
  auto loaded = subject.load();
  INFO((loaded ? std::string() : loaded.error().detail));
  REQUIRE(loaded.has_value());
  return std::move(loaded.value());
}

resilience_config test_config() {
  resilience_config config;
  config.retry_backoff = backoff_policy::fixed;
  config.task_retry_delay_ms = 1000;
  config.command_retransmit_initial_ms = 1000;
  return config;
}

/// A real engine whose every batch of effects is committed to a store, as the shell does.
class committing_engine {
 public:
  explicit committing_engine(store& target, resilience_config config = test_config())
      : store_(target), engine_(std::move(config)) {}

  rrh::engine::engine& subject() { return engine_; }
  time_ms now() const { return now_; }

  /// Sends a critical event from `node` (next seq of that node's incarnation).
  void critical(const std::string& node, std::uint64_t incarnation, const std::string& episode, event_body body) {
    auto& seq = seqs_[node];
    send(event{event_header{protocol_version, node, incarnation, ++seq, now_, episode}, std::move(body)});
  }

  /// A heartbeat from `node` saying its `agents` are fresh.
  void heartbeat(const std::string& node, std::uint64_t incarnation, const std::vector<std::string>& agents) {
    events::heartbeat beat;
    beat.interval_ms = 1000;
    beat.pid = 4242;
    beat.host = "host-" + node;
    beat.rss_bytes = 1 << 20;
    beat.in_flight = 1;
    beat.last_seq = seqs_[node];
    for (const auto& agent : agents) beat.agents.push_back(events::agent_liveness{agent, 0, false});
    send(event{event_header{protocol_version, node, incarnation, 0, now_, ""}, std::move(beat)});
  }

  /// Advances time and fires due timers.
  void advance(time_ms step_ms) {
    now_ += step_ms;
    engine_.on_tick(now_, batch_);
    commit_batch();
  }

  /// Every command id the engine issued so far.
  const std::vector<command>& issued() const { return issued_; }

  /// Applies an event into a batch that the caller commits later (to build mixed batches).
  void apply_uncommitted(const std::string& node, std::uint64_t incarnation, const std::string& episode,
                         event_body body) {
    auto& seq = seqs_[node];
    engine_.on_event(event{event_header{protocol_version, node, incarnation, ++seq, now_, episode}, std::move(body)},
                     now_, batch_);
  }
  effects& batch() { return batch_; }
  void commit_batch() {
    for (const auto& message : batch_.commands) issued_.push_back(message);
    auto committed = store_.commit(engine_, batch_);
    INFO((committed ? std::string() : committed.error().detail));
    REQUIRE(committed.has_value());
    batch_.clear();
  }

 private:
  void send(const event& message) {
    engine_.on_event(message, now_, batch_);
    commit_batch();
  }

  store& store_;
  rrh::engine::engine engine_;
  effects batch_;
  time_ms now_ = start_ms;
  std::map<std::string, std::uint64_t> seqs_;
  std::vector<command> issued_;
};

/// Leaves `file` holding node n1 with agent a1, as a processor that stopped would.
void write_one_agent(const temp_state_file& file) {
  auto subject = open_or_fail(file.path());
  committing_engine fleet(*subject);
  fleet.critical("n1", 1, "", events::agent_registered{"a1", "", {}, "", 0});
}

// ---- field-by-field comparisons ---------------------------------------------------------------

void check_same(const node_record& stored, const node_record& live) {
  INFO("node " << live.node);
  CHECK(stored.node == live.node);
  CHECK(stored.incarnation == live.incarnation);
  CHECK(stored.applied_seq == live.applied_seq);
  CHECK(stored.last_heartbeat_ms == live.last_heartbeat_ms);
  CHECK(stored.heartbeat_interval_ms == live.heartbeat_interval_ms);
  CHECK(stored.host == live.host);
  CHECK(stored.pid == live.pid);
  CHECK(stored.rss_bytes == live.rss_bytes);
  CHECK(stored.in_flight == live.in_flight);
  CHECK(stored.retired_incarnations == live.retired_incarnations);
}

void check_same(const agent_record& stored, const agent_record& live) {
  INFO("agent " << live.agent);
  CHECK(stored.agent == live.agent);
  CHECK(stored.node == live.node);
  CHECK(stored.pool == live.pool);
  CHECK(stored.supervisor == live.supervisor);
  CHECK(stored.episode == live.episode);
  CHECK(to_string(stored.state) == std::string(to_string(live.state)));
  CHECK(stored.watchdog_timeout_ms == live.watchdog_timeout_ms);
  CHECK(stored.recovery_attempts == live.recovery_attempts);
  CHECK(stored.last_recovery_ms == live.last_recovery_ms);
  CHECK(stored.state_since_ms == live.state_since_ms);
  CHECK(stored.registered_ms == live.registered_ms);
  CHECK(stored.probe_rtt_avg_ms == live.probe_rtt_avg_ms);
  CHECK(stored.probe_rtt_max_ms == live.probe_rtt_max_ms);
  CHECK(stored.probes_answered == live.probes_answered);
}

void check_same(const task_record& stored, const task_record& live) {
  INFO("task " << live.task);
  CHECK(stored.task == live.task);
  CHECK(stored.agent == live.agent);
  CHECK(stored.pool == live.pool);
  CHECK(stored.episode == live.episode);
  CHECK(to_string(stored.state) == std::string(to_string(live.state)));
  CHECK(stored.attempt == live.attempt);
  CHECK(stored.failures == live.failures);
  CHECK(stored.retry_due_ms == live.retry_due_ms);
  CHECK(stored.last_error_type == live.last_error_type);
  CHECK(stored.last_error_message == live.last_error_message);
  CHECK(stored.checkpoint == live.checkpoint);
}

/// Settings equal key by key, with NaN equal to NaN (it is stored as JSON null).
bool same_settings(const settings& stored, const settings& live) {
  if (stored.size() != live.size()) return false;
  for (const auto& [key, value] : live) {
    const auto found = stored.find(key);
    if (found == stored.end() || found->second.index() != value.index()) return false;
    if (const auto* real = std::get_if<double>(&value)) {
      const double other = std::get<double>(found->second);
      if (std::isnan(*real) ? !std::isnan(other) : (other != *real || std::signbit(other) != std::signbit(*real))) {
        return false;
      }
    } else if (found->second != value) {
      return false;
    }
  }
  return true;
}

void check_same(const episode_record& stored, const episode_record& live) {
  INFO("episode " << live.episode);
  CHECK(stored.episode == live.episode);
  CHECK(stored.name == live.name);
  CHECK(to_string(stored.state) == std::string(to_string(live.state)));
  CHECK(stored.status == live.status);
  CHECK(stored.started_ms == live.started_ms);
  CHECK(stored.ended_ms == live.ended_ms);
  CHECK(stored.shutdown_deadline_ms == live.shutdown_deadline_ms);
  CHECK(stored.errors == live.errors);
  CHECK(stored.error_times_ms == live.error_times_ms);
  CHECK(stored.recoveries_attempted == live.recoveries_attempted);
  CHECK(stored.recoveries_succeeded == live.recoveries_succeeded);
  CHECK(stored.tasks_failed == live.tasks_failed);
  CHECK(stored.tasks_retried == live.tasks_retried);
  CHECK(stored.tasks_recovered == live.tasks_recovered);
  CHECK(stored.tasks_abandoned == live.tasks_abandoned);
  CHECK(stored.agents_seen == live.agents_seen);
  CHECK(same_settings(stored.overrides, live.overrides));
}

void check_same(const pending_command& stored, const pending_command& live) {
  INFO("command " << live.message.id);
  CHECK(encode(stored.message) == encode(live.message));
  CHECK(stored.sends == live.sends);
}

/// Every record of `live` is in `stored` with equal fields, and nothing else is.
void check_snapshot_matches(const snapshot& stored, const rrh::engine::engine& live,
                            const std::vector<command>& issued) {
  std::size_t nodes = 0;
  live.for_each_node([&](const node_record& record) {
    ++nodes;
    const auto found = std::find_if(stored.nodes.begin(), stored.nodes.end(),
                                    [&](const node_record& row) { return row.node == record.node; });
    REQUIRE(found != stored.nodes.end());
    check_same(*found, record);
  });
  CHECK(stored.nodes.size() == nodes);

  CHECK(stored.agents.size() == live.agent_count());
  for (const auto& record : stored.agents) {
    const auto* current = live.agent(record.agent);
    REQUIRE(current != nullptr);
    check_same(record, *current);
  }
  CHECK(stored.tasks.size() == live.task_count());
  for (const auto& record : stored.tasks) {
    const auto* current = live.task(record.task);
    REQUIRE(current != nullptr);
    check_same(record, *current);
  }
  std::size_t episodes = 0;
  live.for_each_episode([&](const episode_record&) { ++episodes; });
  CHECK(stored.episodes.size() == episodes);
  for (const auto& record : stored.episodes) {
    const auto* current = live.episode(record.episode);
    REQUIRE(current != nullptr);
    check_same(record, *current);
  }
  CHECK(stored.commands.size() == live.pending_count());
  std::set<std::uint64_t> stored_ids;
  for (const auto& entry : stored.commands) {
    stored_ids.insert(entry.message.id);
    const auto* current = live.pending(entry.message.id);
    REQUIRE(current != nullptr);
    check_same(entry, *current);
    CHECK(entry.next_send_ms == current->next_send_ms);
  }
  for (const auto& message : issued) {
    INFO("issued command " << message.id);
    CHECK(stored_ids.count(message.id) == (live.pending(message.id) != nullptr ? 1U : 0U));
  }
  CHECK(stored.next_command_id == live.next_command_id());
}

/// A fresh engine restored from `stored` holds the same records as `original`.
void check_restores_to(const snapshot& stored, const rrh::engine::engine& original, time_ms now) {
  rrh::engine::engine restored(original.config());
  restored.restore(stored, now);
  CHECK(restored.agent_count() == original.agent_count());
  CHECK(restored.task_count() == original.task_count());
  CHECK(restored.pending_count() == original.pending_count());
  CHECK(restored.next_command_id() == original.next_command_id());
  original.for_each_node([&](const node_record& record) {
    const auto* back = restored.node(record.node);
    REQUIRE(back != nullptr);
    check_same(*back, record);
  });
  original.for_each_agent([&](const agent_record& record) {
    const auto* back = restored.agent(record.agent);
    REQUIRE(back != nullptr);
    check_same(*back, record);
  });
  original.for_each_task([&](const task_record& record) {
    const auto* back = restored.task(record.task);
    REQUIRE(back != nullptr);
    check_same(*back, record);
  });
  original.for_each_episode([&](const episode_record& record) {
    const auto* back = restored.episode(record.episode);
    REQUIRE(back != nullptr);
    check_same(*back, record);
  });
  for (const auto& entry : stored.commands) {
    const auto* back = restored.pending(entry.message.id);
    const auto* live = original.pending(entry.message.id);
    REQUIRE(back != nullptr);
    REQUIRE(live != nullptr);
    check_same(*back, *live);
  }
}

/// Two nodes, an episode with overrides, agents registered and one unregistered, a task
/// failed with a checkpoint and retried, a task abandoned (its rollback acked), an episode
/// error, and a silent node whose agent is dead and being recovered.
void run_scenario(committing_engine& fleet) {
  constexpr std::uint64_t incarnation_one = 11;
  constexpr std::uint64_t incarnation_two = 22;
  fleet.heartbeat("n1", incarnation_one, {});
  fleet.critical("n1", incarnation_one, "e1",
                 events::episode_started{"training run",
                                         {"a1", "a2"},
                                         {{"max_recovery_attempts", std::int64_t{5}},
                                          {"retry_backoff_factor", 1.5},
                                          {"task_retry_delay", std::string("2s")},
                                          {"error_window", std::string("1m")}}});
  REQUIRE(fleet.subject().episode("e1") != nullptr);
  REQUIRE(fleet.subject().episode("e1")->overrides.size() == 4);  // accepted, not rejected
  fleet.critical("n1", incarnation_one, "e1", events::agent_registered{"a1", "p1", {"gpu"}, "sup", 5000});
  fleet.critical("n1", incarnation_one, "e1", events::agent_registered{"a2", "p1", {}, "", 0});
  fleet.heartbeat("n1", incarnation_one, {"a1", "a2"});
  fleet.critical("n1", incarnation_one, "e1", events::task_started{"t1", "a1", 1});
  fleet.critical("n1", incarnation_one, "e1",
                 events::task_failed{"t1", "a1", "IOError", "disk \"full\"\n\t\\", true, 1, "p1",
                                     byte_buffer{0, 1, 2, 0xFF, 0}});
  REQUIRE(fleet.subject().task("t1")->state == task_state::retry_scheduled);
  fleet.critical("n1", incarnation_one, "e1", events::task_started{"t2", "a2", 1});
  fleet.critical("n1", incarnation_one, "e1",
                 events::task_failed{"t2", "a2", "Fatal", "no way", false, 1, "p1", {}});
  REQUIRE(fleet.subject().task("t2") == nullptr);  // abandoned: rolled back, forgotten
  fleet.critical("n1", incarnation_one, "e1", events::episode_error{"a1", "Boom", "once"});
  fleet.critical("n1", incarnation_one, "e1", events::agent_unregistered{"a2", "scaled down"});
  REQUIRE(fleet.subject().agent("a2") == nullptr);

  // a3's supervisor lives on n1, so its agent.recover stays pending while n2 is silent.
  fleet.critical("n2", incarnation_two, "", events::agent_registered{"a3", "", {}, "n1", 0});
  fleet.critical("n2", incarnation_two, "", events::task_started{"t3", "a3", 1});

  // The rollback of t2 is acked; the retry of t1 comes due.
  const auto rollback = std::find_if(fleet.issued().begin(), fleet.issued().end(), [](const command& message) {
    return std::holds_alternative<commands::task_rollback>(message.body);
  });
  REQUIRE(rollback != fleet.issued().end());
  fleet.critical("n1", incarnation_one, "e1", events::command_ack{rollback->id, true, ""});
  REQUIRE(fleet.subject().pending(rollback->id) == nullptr);

  // An episode with error_threshold 1 shuts down at its first error: episode.shutdown (a
  // command about no agent) stays pending for n1.
  fleet.critical("n1", incarnation_one, "e2",
                 events::episode_started{"short run", {"a4"}, {{"error_threshold", std::int64_t{1}}}});
  fleet.critical("n1", incarnation_one, "e2", events::agent_registered{"a4", "", {}, "", 0});
  fleet.critical("n1", incarnation_one, "e2", events::episode_error{"a4", "Boom", "one is enough"});
  REQUIRE(fleet.subject().episode("e2")->state == episode_state::shutting_down);

  // n1 keeps beating, n2 falls silent: a3 ends up dead and in recovery.
  for (int second = 0; second < 20; ++second) {
    fleet.advance(1000);
    fleet.heartbeat("n1", incarnation_one, {"a1"});
  }
  REQUIRE(fleet.subject().task("t1")->state == task_state::retrying);
  REQUIRE(fleet.subject().agent("a1")->state == agent_state::healthy);
  REQUIRE(fleet.subject().agent("a3")->state == agent_state::recovering);
  const auto pending_kind = [&](const command_body& body) {
    return std::any_of(fleet.issued().begin(), fleet.issued().end(), [&](const command& message) {
      return message.body.index() == body.index() && fleet.subject().pending(message.id) != nullptr;
    });
  };
  REQUIRE(pending_kind(commands::task_retry{}));
  REQUIRE(pending_kind(commands::agent_recover{}));
  // Heartbeats change the node records without marking them; a critical event commits them.
  fleet.critical("n1", incarnation_one, "e1", events::episode_error{"", "Minor", "twice"});
  REQUIRE(pending_kind(commands::episode_shutdown{}));
}

}  // namespace

TEST_CASE("a committed engine loads back field by field and restores a fresh engine", "[store]") {
  SECTION("in memory") {
    auto subject = open_or_fail(":memory:");
    committing_engine fleet(*subject);
    run_scenario(fleet);
    const auto stored = load_or_fail(*subject);
    check_snapshot_matches(stored, fleet.subject(), fleet.issued());
    check_restores_to(stored, fleet.subject(), fleet.now());
    CHECK(stored.agents.size() == 3);
    CHECK(stored.tasks.size() == 2);
    CHECK(stored.episodes.size() == 2);
    CHECK(subject->stats().commits > 10);
    CHECK(subject->path() == ":memory:");
  }

  SECTION("in a file, reopened, with either sync mode") {
    const auto sync = GENERATE(store_sync::full, store_sync::normal);
    temp_state_file file;
    auto subject = open_or_fail(file.path(), sync);
    CHECK(subject->journal_mode() == "wal");
    committing_engine fleet(*subject);
    run_scenario(fleet);
    const auto first = load_or_fail(*subject);
    check_snapshot_matches(first, fleet.subject(), fleet.issued());
    subject.reset();

    auto reopened = open_or_fail(file.path(), sync);
    const auto second = load_or_fail(*reopened);
    check_snapshot_matches(second, fleet.subject(), fleet.issued());
    check_restores_to(second, fleet.subject(), fleet.now());

    // The columns read as the documentation says, for the sqlite3 CLI.
    CHECK(query_text(file.path(), "SELECT state FROM agents WHERE agent = 'a3'") == "recovering");
    CHECK(query_text(file.path(), "SELECT state FROM tasks WHERE task = 't1'") == "retrying");
    CHECK(query_text(file.path(), "SELECT count(*) FROM commands WHERE kind = 'task.retry' AND agent = 'a1'") ==
          "1");
    CHECK(query_text(file.path(), "SELECT agents_seen FROM episodes WHERE episode = 'e1'") ==
          R"(["a1","a2"])");
    CHECK(query_text(file.path(), "SELECT hex(checkpoint) FROM tasks WHERE task = 't1'") == "000102FF00");
    CHECK(query_text(file.path(), "SELECT json_extract(overrides, '$.retry_backoff_factor') FROM episodes") ==
          "1.5");
  }
}

TEST_CASE("removed records are deleted, whatever else the batch says about them", "[store]") {
  auto subject = open_or_fail(":memory:");
  committing_engine fleet(*subject);
  fleet.critical("n1", 1, "", events::agent_registered{"a1", "", {}, "", 0});
  fleet.critical("n1", 1, "", events::agent_registered{"a2", "", {}, "", 0});
  fleet.critical("n1", 1, "", events::task_started{"t1", "a1", 1});
  REQUIRE(load_or_fail(*subject).agents.size() == 2);

  SECTION("removed in a later batch") {
    fleet.critical("n1", 1, "", events::agent_unregistered{"a1", "done"});
    fleet.critical("n1", 1, "", events::task_succeeded{"t1", "a1", 1});
    const auto stored = load_or_fail(*subject);
    REQUIRE(stored.agents.size() == 1);
    CHECK(stored.agents.front().agent == "a2");
    CHECK(stored.tasks.empty());
  }

  SECTION("changed then removed within one batch") {
    fleet.apply_uncommitted("n1", 1, "", events::agent_registered{"a1", "pool-b", {}, "", 0});
    fleet.apply_uncommitted("n1", 1, "", events::task_failed{"t1", "a1", "X", "", true, 1, "", {}});
    fleet.apply_uncommitted("n1", 1, "", events::agent_unregistered{"a1", "done"});
    fleet.apply_uncommitted("n1", 1, "", events::task_succeeded{"t1", "a1", 2});
    REQUIRE(fleet.batch().agents_changed.size() >= 1);
    REQUIRE(fleet.batch().agents_removed.size() == 1);
    REQUIRE(fleet.batch().tasks_changed.size() >= 1);
    REQUIRE(fleet.batch().tasks_removed.size() == 1);
    fleet.commit_batch();
    const auto stored = load_or_fail(*subject);
    REQUIRE(stored.agents.size() == 1);
    CHECK(stored.agents.front().agent == "a2");
    CHECK(stored.tasks.empty());
  }

  SECTION("removed then created again within one batch is kept, as it is now") {
    fleet.apply_uncommitted("n1", 1, "", events::agent_unregistered{"a1", "restart"});
    fleet.apply_uncommitted("n1", 1, "", events::agent_registered{"a1", "pool-c", {}, "", 0});
    REQUIRE(fleet.batch().agents_removed.size() == 1);
    fleet.commit_batch();
    const auto stored = load_or_fail(*subject);
    REQUIRE(stored.agents.size() == 2);
    const auto again = std::find_if(stored.agents.begin(), stored.agents.end(),
                                    [](const agent_record& record) { return record.agent == "a1"; });
    REQUIRE(again != stored.agents.end());
    CHECK(again->pool == "pool-c");
    check_same(*again, *fleet.subject().agent("a1"));
  }
}

TEST_CASE("a key repeated in a batch is written once", "[store]") {
  auto subject = open_or_fail(":memory:");
  committing_engine fleet(*subject);
  fleet.critical("n1", 1, "", events::agent_registered{"a1", "", {}, "", 0});
  const auto written_before = subject->stats().rows_written;
  const auto commits_before = subject->stats().commits;

  effects repeated;
  repeated.agents_changed = {"a1", "a1", "a1"};
  repeated.agents_removed = {"a1"};
  repeated.nodes_changed = {"n1", "n1"};
  REQUIRE(subject->commit(fleet.subject(), repeated).has_value());
  CHECK(subject->stats().commits == commits_before + 1);
  CHECK(subject->stats().rows_written == written_before + 2);  // one agent row, one node row
  CHECK(load_or_fail(*subject).agents.size() == 1);
}

TEST_CASE("a commit of nothing is a no-op", "[store]") {
  auto subject = open_or_fail(":memory:");
  committing_engine fleet(*subject);
  fleet.critical("n1", 1, "", events::agent_registered{"a1", "", {}, "", 0});
  const auto before = subject->stats();
  effects nothing;
  nothing.commands.push_back(command{});  // commands and acks alone are nothing to store
  nothing.acks.push_back(command{});
  REQUIRE(nothing.nothing_to_store());
  REQUIRE(subject->commit(fleet.subject(), nothing).has_value());
  CHECK(subject->stats().commits == before.commits);
  CHECK(subject->stats().rows_written == before.rows_written);
  CHECK(subject->stats().rows_deleted == before.rows_deleted);
}

TEST_CASE("lists, settings of every type, odd text and checkpoints round-trip", "[store]") {
  episode_record episode;
  episode.episode = "e-odd";
  episode.name = std::string("quote \" backslash \\ tab \t nul ") + '\0' + " end, caf\xC3\xA9 \xF0\x9F\x9A\x80";
  episode.state = episode_state::shutting_down;
  episode.status = "";
  episode.started_ms = start_ms;
  episode.shutdown_deadline_ms = start_ms + 30'000;
  episode.errors = 3;
  episode.error_times_ms = {start_ms, start_ms + 1, std::numeric_limits<std::uint64_t>::max()};
  episode.agents_seen = {"a1", "b.2", "c:3@x-y"};
  episode.overrides = {
      {"int_max", std::numeric_limits<std::int64_t>::max()},
      {"int_min", std::numeric_limits<std::int64_t>::min()},
      {"zero", std::int64_t{0}},
      {"two_as_double", 2.0},
      {"tenth", 0.1},
      {"huge", 1e300},
      {"tiny", 5e-324},
      {"negative_zero", -0.0},
      {"infinite", std::numeric_limits<double>::infinity()},
      {"not_a_number", std::numeric_limits<double>::quiet_NaN()},
      {"yes", true},
      {"no", false},
      {"text", std::string("line\nbreak \"quoted\" \x01 control")},
      {"empty", std::string()},
      {"key \"quoted\"", std::string("k")},
  };
  task_record task;
  task.task = "t-odd";
  task.agent = "a1";
  task.state = task_state::retry_scheduled;
  task.retry_due_ms = start_ms + 5;
  task.last_error_message = std::string(4096, 'x');
  task.checkpoint.resize(checkpoint_bytes_max);
  for (std::size_t index = 0; index < task.checkpoint.size(); ++index) {
    task.checkpoint[index] = static_cast<std::uint8_t>(index * 7);
  }
  node_record node;
  node.node = "n1";
  node.incarnation = std::numeric_limits<std::uint64_t>::max();  // above SQLite's signed range
  node.applied_seq = 123;

  snapshot original;
  original.nodes = {node};
  original.episodes = {episode};
  original.tasks = {task};
  original.next_command_id = 77;

  rrh::engine::engine source(test_config());
  source.restore(original, start_ms);
  REQUIRE(source.episode("e-odd")->overrides.size() == episode.overrides.size());

  temp_state_file file;
  {
    auto subject = open_or_fail(file.path());
    effects changes;
    changes.nodes_changed = {"n1"};
    changes.episodes_changed = {"e-odd"};
    changes.tasks_changed = {"t-odd"};
    changes.meta_changed = true;
    REQUIRE(subject->commit(source, changes).has_value());
  }
  auto reopened = open_or_fail(file.path());
  const auto stored = load_or_fail(*reopened);
  REQUIRE(stored.episodes.size() == 1);
  check_same(stored.episodes.front(), episode);
  REQUIRE(stored.tasks.size() == 1);
  check_same(stored.tasks.front(), task);
  REQUIRE(stored.nodes.size() == 1);
  check_same(stored.nodes.front(), node);
  CHECK(stored.next_command_id == 77);
  // The JSON columns are real JSON: SQLite's own functions read them.
  CHECK(query_text(file.path(), "SELECT json_valid(overrides) AND json_valid(agents_seen) AND "
                                "json_valid(error_times_ms) FROM episodes") == "1");
  CHECK(query_text(file.path(), "SELECT json_extract(overrides, '$.yes') FROM episodes") == "1");
}

TEST_CASE("a state file of a newer schema, or not an rrh state file, is refused", "[store]") {
  temp_state_file file;
  open_or_fail(file.path()).reset();
  CHECK(query_text(file.path(), "SELECT value FROM meta WHERE key = 'schema_version'") ==
        std::to_string(store::schema_version));

  SECTION("a newer schema version") {
    run_sql(file.path(), "UPDATE meta SET value = " + std::to_string(store::schema_version + 1) +
                             " WHERE key = 'schema_version'");
    const auto refused = store::open(file.path());
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == errc::config);
    CHECK_THAT(refused.error().detail, Catch::Contains("schema version 2 is newer"));
    CHECK_THAT(refused.error().detail, Catch::Contains(file.path()));
    // Refusing changes nothing.
    CHECK(query_text(file.path(), "SELECT value FROM meta WHERE key = 'schema_version'") == "2");
  }

  SECTION("another application's database") {
    run_sql(file.path(), "DROP TABLE meta; CREATE TABLE other(x)");
    const auto refused = store::open(file.path());
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == errc::config);
    CHECK_THAT(refused.error().detail, Catch::Contains("not an rrh state file"));
  }

  SECTION("a file that is not a database") {
    temp_state_file text;
    std::ofstream(text.path()) << "this is not a database, it is a text file long enough to look like one\n";
    const auto refused = store::open(text.path());
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == errc::config);
  }
}

TEST_CASE("a node's retired incarnations are stored with its switch to a new one", "[store]") {
  temp_state_file file;
  {
    auto subject = open_or_fail(file.path());
    committing_engine fleet(*subject);
    fleet.critical("n1", 11, "", events::agent_registered{"a1", "", {}, "", 0});
    fleet.critical("n1", 11, "", events::task_started{"t1", "a1", 1});
  }
  {
    // The node restarts as incarnation 12: the switch, and 11 as retired, are one commit.
    auto subject = open_or_fail(file.path());
    committing_engine fleet(*subject);
    fleet.subject().restore(load_or_fail(*subject), fleet.now());
    fleet.critical("n2", 5, "", events::agent_registered{"b1", "", {}, "", 0});  // n2's own seq 1
    auto first_of_12 = event{event_header{protocol_version, "n1", 12, 1, fleet.now(), ""},
                             events::agent_registered{"a1", "", {}, "", 0}};
    effects out;
    fleet.subject().on_event(first_of_12, fleet.now(), out);
    REQUIRE(subject->commit(fleet.subject(), out).has_value());
  }
  CHECK(query_text(file.path(), "SELECT retired_incarnations FROM nodes WHERE node = 'n1'") == "[11]");

  // After a restart, a late first event of the retired incarnation does not take the node
  // back: it is stale, and the live incarnation's events still apply.
  auto reopened = open_or_fail(file.path());
  const auto stored = load_or_fail(*reopened);
  rrh::engine::engine restarted(test_config());
  restarted.restore(stored, start_ms + 10);
  effects out;
  restarted.on_event(event{event_header{protocol_version, "n1", 11, 1, start_ms, ""},
                           events::agent_registered{"a1", "", {}, "", 0}},
                     start_ms + 10, out);
  CHECK(restarted.stats().events_stale_incarnation == 1);
  restarted.on_event(event{event_header{protocol_version, "n1", 12, 2, start_ms, ""},
                           events::task_started{"t2", "a1", 1}},
                     start_ms + 10, out);
  REQUIRE(restarted.node("n1") != nullptr);
  CHECK(restarted.node("n1")->incarnation == 12);
  CHECK(restarted.node("n1")->applied_seq == 2);
}

TEST_CASE("a state file made before nodes.retired_incarnations opens and gains the column", "[store]") {
  temp_state_file file;
  write_one_agent(file);
  run_sql(file.path(), "ALTER TABLE nodes DROP COLUMN retired_incarnations");
  auto reopened = open_or_fail(file.path());
  const auto stored = load_or_fail(*reopened);
  REQUIRE(stored.nodes.size() == 1);
  CHECK(stored.nodes.front().retired_incarnations.empty());
  CHECK(query_text(file.path(), "SELECT retired_incarnations FROM nodes WHERE node = 'n1'") == "[]");
}

TEST_CASE("a state file open in one store is refused to a second, until the first closes", "[store]") {
  temp_state_file file;
  auto first = open_or_fail(file.path());
  const auto second = store::open(file.path());
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().code == errc::config);
  CHECK_THAT(second.error().detail, Catch::Contains("in use by another rrh-processor") &&
                                        Catch::Contains(file.path()));
  // The refused open changed nothing, and readers (the sqlite3 CLI) are not locked out.
  CHECK(query_text(file.path(), "SELECT value FROM meta WHERE key = 'schema_version'") ==
        std::to_string(store::schema_version));
  first.reset();
  CHECK(store::open(file.path()).has_value());
  // In memory, every store is private: no lock.
  auto memory_one = open_or_fail(":memory:");
  auto memory_two = open_or_fail(":memory:");
  CHECK(memory_two->path() == ":memory:");
}

TEST_CASE("a damaged row is reported by load, naming the table and key", "[store]") {
  temp_state_file file;
  write_one_agent(file);
  run_sql(file.path(), "UPDATE agents SET state = 'sleepy' WHERE agent = 'a1'");
  auto reopened = open_or_fail(file.path());
  const auto loaded = reopened->load();
  REQUIRE_FALSE(loaded.has_value());
  CHECK(loaded.error().code == errc::config);
  CHECK_THAT(loaded.error().detail, Catch::Contains("agents 'a1'") && Catch::Contains("sleepy"));
}
