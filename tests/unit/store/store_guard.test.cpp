// Storage faults are survived: real SQLite files under real faults. A commit on a full file
// system degrades the guard, is retried with capped backoff and lands once space is freed;
// a state file deleted or replaced under an open store is written again from the open
// database (an operator's file kept aside) before anything is acked. The clock is the
// argument; nothing here sleeps.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "rrh/clock.hpp"
#include "rrh/engine/engine.hpp"
#include "store.hpp"
#include "store_guard.hpp"

namespace {

using namespace rrh;
using namespace rrh::engine;
using rrh::processor::store;
using rrh::processor::store_guard;

constexpr time_ms start_ms = 1'700'000'000'000;
constexpr std::uint64_t wall_start_ms = 1'750'000'000'000;

/// A fresh directory under the temporary directory, removed with its contents at scope exit.
class scratch_directory {
 public:
  scratch_directory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "rrh_store_guard_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~scratch_directory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  scratch_directory(const scratch_directory&) = delete;
  scratch_directory& operator=(const scratch_directory&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// A small tmpfs mounted on a scratch directory, so that a full disk is a real ENOSPC.
/// Mounting needs root (the tests run as root here and in CI); if the mount is refused the
/// test fails, loudly, rather than passing without the fault.
class small_tmpfs {
 public:
  explicit small_tmpfs(const std::string& size) {
    const std::string options = "size=" + size + ",mode=0700";
    const int mounted = ::mount("tmpfs", directory_.path().c_str(), "tmpfs", 0, options.c_str());
    const int reason = errno;
    INFO("mount -t tmpfs -o " << options << " on " << directory_.path() << ": " << std::strerror(reason)
                              << " (this test needs root to mount a small tmpfs)");
    REQUIRE(mounted == 0);
    mounted_ = true;
  }
  ~small_tmpfs() {
    if (mounted_) (void)::umount2(directory_.path().c_str(), MNT_DETACH);
  }
  small_tmpfs(const small_tmpfs&) = delete;
  small_tmpfs& operator=(const small_tmpfs&) = delete;
  std::string file(const std::string& name) const { return directory_.file(name); }

  /// Writes `path` until the file system refuses with ENOSPC: the disk is then full.
  static void fill(const std::string& path) {
    const int descriptor = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(descriptor >= 0);
    const std::vector<char> block(4096, 'x');
    int reason = 0;
    for (;;) {
      if (::write(descriptor, block.data(), block.size()) < 0) {
        reason = errno;
        break;
      }
    }
    // Then the last partial page, byte by byte.
    while (::write(descriptor, block.data(), 1) == 1) {
    }
    ::close(descriptor);
    REQUIRE(reason == ENOSPC);
  }

 private:
  scratch_directory directory_;
  bool mounted_ = false;
};

/// A real engine whose batches are committed by the test, through a guard.
class fleet {
 public:
  fleet() : engine_(config()) {}

  rrh::engine::engine& subject() { return engine_; }
  effects& batch() { return batch_; }

  /// Registers agents `<prefix>0` … on node n1, each a critical event, into the batch.
  void register_agents(const std::string& prefix, int count) {
    for (int index = 0; index < count; ++index) {
      const std::string agent = prefix + std::to_string(index);
      events::agent_registered body{agent, "pool-" + prefix, {}, "", 0};
      engine_.on_event(event{event_header{protocol_version, "n1", 1, ++seq_, start_ms, ""}, std::move(body)},
                       start_ms, batch_);
    }
  }

 private:
  static resilience_config config() {
    resilience_config settings;
    settings.retry_backoff = backoff_policy::fixed;
    return settings;
  }
  rrh::engine::engine engine_;
  effects batch_;
  std::uint64_t seq_ = 0;
};

std::unique_ptr<store> open_or_fail(const std::string& path) {
  auto opened = store::open(path);
  INFO((opened ? std::string() : opened.error().detail));
  REQUIRE(opened.has_value());
  return std::move(opened.value());
}

/// The agents a fresh store opened on `path` loads.
std::set<std::string> agents_in(const std::string& path) {
  auto reopened = open_or_fail(path);
  auto loaded = reopened->load();
  INFO((loaded ? std::string() : loaded.error().detail));
  REQUIRE(loaded.has_value());
  std::set<std::string> agents;
  for (const auto& record : loaded.value().agents) agents.insert(record.agent);
  return agents;
}

/// Whether the file the path names (not the one a store has open) holds `agent`, read as
/// the sqlite3 CLI would while the store runs.
bool path_holds_agent(const std::string& path, const std::string& agent) {
  sqlite3* database = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &database, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  bool found = false;
  if (sqlite3_prepare_v2(database, "SELECT 1 FROM agents WHERE agent = ?1", -1, &statement, nullptr) == SQLITE_OK) {
    sqlite3_bind_text(statement, 1, agent.c_str(), -1, SQLITE_TRANSIENT);
    found = sqlite3_step(statement) == SQLITE_ROW;
  }
  sqlite3_finalize(statement);
  sqlite3_close(database);
  return found;
}

std::set<std::string> names(const std::string& prefix, int count) {
  std::set<std::string> out;
  for (int index = 0; index < count; ++index) out.insert(prefix + std::to_string(index));
  return out;
}

std::set<std::string> joined(std::set<std::string> first, const std::set<std::string>& second) {
  first.insert(second.begin(), second.end());
  return first;
}

std::string contents_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

store_guard::options test_options() {
  store_guard::options settings;
  settings.retry_initial_ms = 50;
  settings.retry_max_ms = 400;
  settings.report_interval_ms = 10'000;
  settings.file_check_interval_ms = 1000;
  return settings;
}

void require_ok(const status& result) {
  INFO((result ? std::string() : result.error().detail));
  REQUIRE(result.has_value());
}

}  // namespace

TEST_CASE("a commit on a full disk degrades, backs off, and lands once space is freed", "[store][guard]") {
  small_tmpfs disk("2m");
  const auto path = disk.file("state.db");
  const auto filler = disk.file("filler");
  manual_clock wall(mono_ms{0}, wall_start_ms);
  fleet agents;
  {
    store_guard guard(open_or_fail(path), test_options(), wall);
    agents.register_agents("early-", 1);
    require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{0}));
    agents.batch().clear();

    // A batch bigger than any free page the WAL may still have.
    agents.register_agents("late-", 300);
    small_tmpfs::fill(filler);
    const auto failed = guard.commit(agents.subject(), agents.batch(), mono_ms{1000});
    REQUIRE_FALSE(failed.has_value());
    const auto& health = guard.health();
    CHECK(health.degraded);
    INFO("reason: " << health.reason);
    CHECK(health.reason.find("commit failed") == 0);
    CHECK(health.reason.find("full") != std::string::npos);
    CHECK(health.since_wall_ms == static_cast<std::int64_t>(wall_start_ms));
    CHECK(health.failures == 1);

    // Not before the backoff.
    CHECK_FALSE(guard.retry_due(mono_ms{1049}));
    CHECK(guard.retry_due(mono_ms{1050}));
    REQUIRE(guard.next_retry() == mono_ms{1050});

    // Still full: fails again, the delay doubles, the spell keeps its start.
    wall.advance(mono_ms{50});
    REQUIRE_FALSE(guard.commit(agents.subject(), agents.batch(), mono_ms{1050}).has_value());
    CHECK(guard.next_retry() == mono_ms{1150});
    CHECK(guard.health().since_wall_ms == static_cast<std::int64_t>(wall_start_ms));
    CHECK(guard.health().failures == 2);

    // Space freed: the same batch commits, and the spell ends.
    std::filesystem::remove(filler);
    CHECK_FALSE(guard.retry_due(mono_ms{1149}));
    REQUIRE(guard.retry_due(mono_ms{1150}));
    require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{1150}));
    CHECK_FALSE(guard.health().degraded);
    CHECK(guard.health().reason.empty());
    CHECK(guard.health().since_wall_ms == 0);
    CHECK(guard.health().recoveries == 1);
    CHECK_FALSE(guard.next_retry().has_value());
    CHECK_FALSE(guard.retry_due(mono_ms{100'000}));
    agents.batch().clear();
  }
  CHECK(agents_in(path) == joined(names("early-", 1), names("late-", 300)));
}

TEST_CASE("a state file deleted under the store is written again before the batch is acked", "[store][guard]") {
  scratch_directory directory;
  const auto path = directory.file("state.db");
  manual_clock wall(mono_ms{0}, wall_start_ms);
  fleet agents;
  {
    store_guard guard(open_or_fail(path), test_options(), wall);
    agents.register_agents("before-", 3);
    require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{0}));
    agents.batch().clear();

    SECTION("found by the commit itself") {
      // As `rm state.db` does: the -wal and -shm files stay behind.
      std::filesystem::remove(path);
      agents.register_agents("after-", 2);
      const auto committed = guard.commit(agents.subject(), agents.batch(), mono_ms{10});
      // Rebuilt in the same call: ok only because the path holds the batch now.
      require_ok(committed);
      REQUIRE(std::filesystem::exists(path));
      CHECK(path_holds_agent(path, "before-0"));
      CHECK(path_holds_agent(path, "after-1"));
      CHECK_FALSE(guard.health().degraded);
      CHECK(guard.health().recoveries == 1);
      CHECK(guard.get().check_file().value() == rrh::processor::store_file::same);
      agents.batch().clear();

      // And the store keeps committing into the new file.
      agents.register_agents("later-", 1);
      require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{20}));
      CHECK(path_holds_agent(path, "later-0"));
      agents.batch().clear();
    }

    SECTION("found by the idle check within its interval, rebuilt by the next commit") {
      // The commit at 0 looked last.
      std::filesystem::remove(path);
      // Within the interval the last look stands; at the interval the deletion is seen.
      CHECK(guard.check_file(mono_ms{999}));
      CHECK_FALSE(guard.check_file(mono_ms{1000}));
      CHECK_FALSE(guard.check_file(mono_ms{1050}));
      CHECK(guard.health().degraded);
      CHECK(guard.health().reason == "state file deleted");
      REQUIRE(guard.retry_due(mono_ms{1000}));
      // Nothing to store: the commit rebuilds the file all the same.
      require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{1100}));
      CHECK_FALSE(guard.health().degraded);
      CHECK(path_holds_agent(path, "before-2"));
      CHECK(guard.check_file(mono_ms{2100}));
      agents.register_agents("after-", 2);
      require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{2100}));
      agents.batch().clear();
      agents.register_agents("later-", 1);
      require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{2200}));
      agents.batch().clear();
    }

    SECTION("with its directory gone: degraded until the directory is back") {
      std::filesystem::remove_all(directory.path());
      agents.register_agents("after-", 2);
      REQUIRE_FALSE(guard.commit(agents.subject(), agents.batch(), mono_ms{10}).has_value());
      CHECK(guard.health().degraded);
      INFO("reason: " << guard.health().reason);
      CHECK(guard.health().reason.find("state file deleted; rebuild failed") == 0);
      CHECK_FALSE(guard.retry_due(mono_ms{59}));
      REQUIRE(guard.retry_due(mono_ms{60}));
      REQUIRE_FALSE(guard.commit(agents.subject(), agents.batch(), mono_ms{60}).has_value());
      std::filesystem::create_directory(directory.path());
      REQUIRE(guard.retry_due(mono_ms{160}));
      require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{160}));
      CHECK_FALSE(guard.health().degraded);
      CHECK(path_holds_agent(path, "after-0"));
      agents.batch().clear();
      agents.register_agents("later-", 1);
      require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{200}));
      agents.batch().clear();
    }
  }
  CHECK(agents_in(path) == joined(joined(names("before-", 3), names("after-", 2)), names("later-", 1)));
}

TEST_CASE("a state file replaced under the store is kept aside, and the path holds the state", "[store][guard]") {
  scratch_directory directory;
  const auto path = directory.file("state.db");
  manual_clock wall(mono_ms{0}, wall_start_ms);
  fleet agents;
  const std::string foreign = "an operator's file, not a state file\n";
  {
    store_guard guard(open_or_fail(path), test_options(), wall);
    agents.register_agents("before-", 2);
    require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{0}));
    agents.batch().clear();

    // As `mv other state.db` does: another inode at the path.
    const auto other = directory.file("other");
    std::ofstream(other, std::ios::binary) << foreign;
    std::filesystem::rename(other, path);
    CHECK(guard.get().check_file().value() == rrh::processor::store_file::replaced);

    wall.advance(mono_ms{5});
    agents.register_agents("after-", 1);
    require_ok(guard.commit(agents.subject(), agents.batch(), mono_ms{10}));
    agents.batch().clear();
    CHECK(path_holds_agent(path, "after-0"));
    CHECK(guard.health().recoveries == 1);
  }
  const auto aside = path + ".replaced-" + std::to_string(wall_start_ms + 5);
  REQUIRE(std::filesystem::exists(aside));
  CHECK(contents_of(aside) == foreign);
  CHECK_FALSE(std::filesystem::exists(path + ".rebuild"));
  CHECK(agents_in(path) == joined(names("before-", 2), names("after-", 1)));
}

TEST_CASE("the retry delay doubles from retry_initial_ms up to retry_max_ms, and resets", "[store][guard]") {
  scratch_directory directory;
  const auto path = directory.file("state.db");
  manual_clock wall(mono_ms{0}, wall_start_ms);
  fleet agents;
  store_guard guard(open_or_fail(path), test_options(), wall);  // 50 ms up to 400 ms
  agents.register_agents("a", 1);
  // Directory gone: every attempt fails until it is back.
  std::filesystem::remove_all(directory.path());
  mono_ms now{0};
  std::vector<std::int64_t> delays;
  for (int attempt = 0; attempt < 7; ++attempt) {
    REQUIRE_FALSE(guard.commit(agents.subject(), agents.batch(), now).has_value());
    const auto next = guard.next_retry();
    REQUIRE(next.has_value());
    delays.push_back((*next - now).count());
    now = *next;
  }
  CHECK(delays == std::vector<std::int64_t>{50, 100, 200, 400, 400, 400, 400});
  CHECK(guard.health().failures == 7);
  std::filesystem::create_directory(directory.path());
  require_ok(guard.commit(agents.subject(), agents.batch(), now));
  CHECK(guard.retry_delay_ms() == 50);
  // A new spell starts from the initial delay again.
  std::filesystem::remove_all(directory.path());
  REQUIRE_FALSE(guard.commit(agents.subject(), agents.batch(), now).has_value());
  CHECK(guard.next_retry() == now + mono_ms{50});
}
