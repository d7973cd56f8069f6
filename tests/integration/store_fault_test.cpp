// Storage faults under a running processor: a real broker, a real rrh-processor and a node
// (an in-process shim). A full disk degrades the processor (same process, nothing acked,
// `rrh-ctl status` says so) until space is freed, then every event is acked and stored; a
// state file deleted mid-run is written again, so a restart holds every acked event.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "processor_stack.hpp"
#include "rrh/shim.hpp"
#include "shim_fixture.hpp"

using namespace std::chrono_literals;

namespace {

/// The ids of the agents in the state file at `path`, read as the sqlite3 CLI would.
std::set<std::string> agents_in_file(const std::string& path) {
  std::set<std::string> agents;
  sqlite3* database = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &database, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(database, "SELECT agent FROM agents", -1, &statement, nullptr) == SQLITE_OK) {
    while (sqlite3_step(statement) == SQLITE_ROW) {
      agents.insert(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)));
    }
  }
  sqlite3_finalize(statement);
  sqlite3_close(database);
  return agents;
}

/// `rrh-ctl <command>` against the running processor: its one line of JSON, or "".
std::string ctl(const rrh::test::processor_stack& bus, const std::string& command) {
  rrh::test::child_process answer(rrh::test::binary_path("rrh-ctl"), {"--control", bus.processor->control, command});
  if (!answer.wait_exit(10s)) return {};
  std::string text;
  for (const auto& line : answer.lines()) text += line;
  return text;
}

/// A small tmpfs on `directory`, so that a full disk is a real ENOSPC. Needs root (these
/// tests run as root here and in CI); a refused mount fails the test rather than skip it.
class small_tmpfs {
 public:
  small_tmpfs(std::string directory, const std::string& size) : directory_(std::move(directory)) {
    std::filesystem::create_directories(directory_);
    const int mounted = ::mount("tmpfs", directory_.c_str(), "tmpfs", 0, ("size=" + size).c_str());
    const int reason = errno;
    INFO("mount -t tmpfs -o size=" << size << " on " << directory_ << ": " << std::strerror(reason)
                                   << " (this test needs root)");
    REQUIRE(mounted == 0);
  }
  ~small_tmpfs() { (void)::umount2(directory_.c_str(), MNT_DETACH); }
  small_tmpfs(const small_tmpfs&) = delete;
  small_tmpfs& operator=(const small_tmpfs&) = delete;
  std::string file(const std::string& name) const { return directory_ + "/" + name; }

  /// Writes `path` until the file system refuses: the disk is then full.
  static void fill(const std::string& path) {
    const int descriptor = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(descriptor >= 0);
    const std::vector<char> block(4096, 'x');
    while (::write(descriptor, block.data(), block.size()) > 0) {
    }
    while (::write(descriptor, block.data(), 1) == 1) {
    }
    const int reason = errno;
    ::close(descriptor);
    REQUIRE(reason == ENOSPC);
  }

 private:
  std::string directory_;
};

std::set<std::string> names(const std::string& prefix, int count) {
  std::set<std::string> out;
  for (int index = 0; index < count; ++index) out.insert(prefix + std::to_string(index));
  return out;
}

bool holds_all(const std::set<std::string>& have, const std::set<std::string>& wanted) {
  for (const auto& name : wanted) {
    if (have.count(name) == 0) return false;
  }
  return true;
}

// How `rrh-ctl status` shows the store: {"store":{"state":"ok"|"degraded","reason":…,
// "since_ms":…,"failures":…,"recoveries":…}} in the processor's JSON.
constexpr const char* store_degraded = R"("store":{"state":"degraded")";
constexpr const char* store_ok = R"("store":{"state":"ok")";

}  // namespace

TEST_CASE("a full disk degrades the processor until space is freed; then every event is acked and stored",
          "[processor][integration][store]") {
  rrh::test::processor_stack bus("rrh-disk-full");
  // The state on a small tmpfs: the processor started by the stack is replaced by one there.
  bus.processor.reset();
  small_tmpfs disk(bus.scratch.file("disk"), "4m");
  const auto state_path = disk.file("state.db");
  bus.processor = std::make_unique<rrh::test::processor_process>(bus.broker, bus.config_path, state_path);
  const auto pid = bus.processor->process().pid();

  rrh::shim node(rrh::test::test_shim_config("disk-node", bus.broker.events_in, bus.broker.commands_out));
  const auto early = names("early-", 3);
  for (const auto& agent : early) REQUIRE(node.register_agent(agent));
  REQUIRE(node.flush(10s));

  small_tmpfs::fill(disk.file("filler"));
  const auto late = names("late-", 200);
  for (const auto& agent : late) REQUIRE(node.register_agent(agent));

  // Degraded, not dead: the same process says so, and nothing more is acked.
  std::string status;
  REQUIRE(bus.wait_for([&] {
    status = ctl(bus, "status");
    return status.find(store_degraded) != std::string::npos;
  }));
  INFO("status: " << status);
  CHECK(status.find("full") != std::string::npos);
  CHECK(bus.processor->process().running());
  CHECK(bus.processor->process().pid() == pid);
  CHECK(node.stats().outbox_size > 0);

  std::filesystem::remove(disk.file("filler"));
  REQUIRE(node.flush(20s));
  CHECK(bus.processor->process().running());
  CHECK(bus.processor->process().pid() == pid);
  REQUIRE(bus.wait_for([&] { return ctl(bus, "status").find(store_ok) != std::string::npos; }));
  CHECK(holds_all(agents_in_file(state_path), early));
  CHECK(holds_all(agents_in_file(state_path), late));
  // Nobody was declared dead for the processor's own fault.
  bus.recorder.pump();
  CHECK(bus.recorder.events_of<rrh::events::agent_dead>().empty());
  bus.processor.reset();  // before the tmpfs is unmounted
}

TEST_CASE("a state file deleted mid-run is written again: a restart holds every acked event",
          "[processor][integration][store]") {
  rrh::test::processor_stack bus("rrh-state-deleted");
  rrh::shim node(rrh::test::test_shim_config("deleted-node", bus.broker.events_in, bus.broker.commands_out));
  const auto before = names("before-", 5);
  for (const auto& agent : before) REQUIRE(node.register_agent(agent));
  REQUIRE(node.flush(10s));

  // As `rm state.db` does, leaving the -wal and -shm files.
  REQUIRE(std::filesystem::remove(bus.state_path));
  const auto after = names("after-", 5);
  for (const auto& agent : after) REQUIRE(node.register_agent(agent));
  REQUIRE(node.flush(20s));
  // Idle now: within a second the file is back, even with nothing more to commit.
  REQUIRE(bus.wait_for([&] { return std::filesystem::exists(bus.state_path); }, 5s));

  // A SIGKILL loses nothing that was acked: a restart opens the file the path names.
  bus.processor->process().signal(SIGKILL);
  REQUIRE(bus.processor->process().wait_exit(5s));
  const auto stored = agents_in_file(bus.state_path);
  CHECK(holds_all(stored, before));
  CHECK(holds_all(stored, after));
  bus.processor = std::make_unique<rrh::test::processor_process>(bus.broker, bus.config_path, bus.state_path);
  const auto listed = ctl(bus, "agents");
  INFO("agents: " << listed);
  for (const auto& agent : after) CHECK(listed.find('"' + agent + '"') != std::string::npos);
  for (const auto& agent : before) CHECK(listed.find('"' + agent + '"') != std::string::npos);
}
