#pragma once
/// rrh::processor::store — the engine's state in one SQLite file, so that a processor
/// restart loses no acked work. The shell commits each batch's changed records (the keys
/// in `rrh::engine::effects`) in one transaction before it sends the acks and commands
/// that depend on them; on start it loads a snapshot and restores the engine from it.
/// Tables are readable with the sqlite3 CLI; docs/STORE.md describes the schema.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "rrh/engine/engine.hpp"
#include "rrh/expected.hpp"

// SQLite's handles, declared as sqlite3.h declares them, so that includers need not see SQLite.
struct sqlite3;
struct sqlite3_stmt;

namespace rrh::processor {

/// How hard a commit waits for the disk. `full` (the default) survives power loss and OS
/// crashes; `normal` survives a crash of the processor only (in WAL mode the last commits
/// may roll back after a power loss), in exchange for no fsync per commit.
enum class store_sync : std::uint8_t { full, normal };

/// What the state file's path names, compared with the file a store has open.
enum class store_file : std::uint8_t {
  same,      ///< the path names the open file (always, in memory)
  deleted,   ///< nothing at the path, or the open file has no link left
  replaced,  ///< another file sits at the path
};

/// The name of a `store_file` value, for logs and status text.
const char* to_string(store_file identity) noexcept;

/// Counters for status output and for measuring the cost of durability.
struct store_stats {
  std::uint64_t commits = 0;                ///< transactions committed (no-op commits excluded)
  std::uint64_t rows_written = 0;           ///< rows upserted, over all commits
  std::uint64_t rows_deleted = 0;           ///< rows deleted, over all commits
  std::uint64_t commit_failures = 0;        ///< commits rolled back
  std::uint64_t last_commit_duration_us = 0;  ///< wall time of the latest commit, fsync included
};

/// The processor's durable state. Not thread-safe: one store per processor, used from the
/// thread that runs the engine.
class store {
 public:
  /// The schema this build writes. A file with a newer version is refused, never guessed at.
  static constexpr std::int64_t schema_version = 1;
  /// How long a statement waits for a lock held by another connection (a sqlite3 CLI or
  /// a backup), before the commit fails.
  static constexpr int busy_timeout_ms = 5000;

  /// Opens (creating when missing) the state file at `path`, or a private in-memory
  /// database for ":memory:". Creates the schema in an empty database; refuses a file of
  /// a newer schema version or one that is not an rrh state file, and a file another
  /// store (in this or another process) holds open. Errors: errc::config.
  static expected<std::unique_ptr<store>> open(const std::string& path,
                                               store_sync sync = store_sync::full);

  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Reads every table into a snapshot for `rrh::engine::engine::restore`. A row that
  /// cannot be read back (an unknown state name, a command that does not decode) is an
  /// errc::config error naming the table and key: a damaged state is reported, not
  /// half-loaded.
  expected<rrh::engine::snapshot> load();

  /// Writes the records named in `changes` as `engine` holds them now, in one
  /// transaction: a key the engine still has is upserted, a key it no longer has is
  /// deleted, whichever list named it; each row is written once per call. Returns at once
  /// when nothing needs storing. On failure the transaction is rolled back and the file
  /// keeps the previous commit; the caller must not send the acks of this batch.
  status commit(const rrh::engine::engine& engine, const rrh::engine::effects& changes);

  /// Whether the path still names the file this store has open: stat of the path against
  /// fstat of the locked descriptor (same device and inode, a link count above zero). A
  /// commit into a file that was deleted or replaced under the processor would be durable
  /// nowhere a restart looks. Errors (the path cannot be examined, other than missing):
  /// errc::config.
  expected<store_file> check_file() const;

  /// Writes the whole state this store holds to its path again and reopens the store on
  /// that file, for when `check_file` found it deleted or replaced: the state, acked work
  /// included, then lives only in the open (unlinked) database. Writes `<path>.rebuild`
  /// with VACUUM INTO and syncs it, moves a file that sits at the path aside to
  /// `<path>.replaced-<wall_ms>` (never destroying it), renames the rebuilt file to the path,
  /// syncs the directory, then opens it (schema checked, flock taken) and closes the old
  /// connection. On failure (directory gone, disk full) the open database is unchanged and
  /// the call may be repeated. Does nothing in memory, or when the path names the open file.
  status rebuild(std::uint64_t wall_ms);

  /// With CURVE: which public key owns each node id, first key wins. (node, key) pairs in
  /// node order, from the `node_keys` table.
  expected<std::vector<std::pair<std::string, std::string>>> load_node_keys();

  /// Binds `node` to `public_key` (Z85) at `bound_ms`, in its own transaction, unless the
  /// node is bound already (the first binding stays). Called before the node's first
  /// event is applied, so no ack ever precedes the binding on disk.
  status bind_node_key(std::string_view node, std::string_view public_key, std::uint64_t bound_ms);

  /// The path given to `open`.
  const std::string& path() const noexcept { return path_; }
  /// The journal mode SQLite accepted ("wal" for files; "memory" for ":memory:").
  const std::string& journal_mode() const noexcept { return journal_mode_; }
  const store_stats& stats() const noexcept { return stats_; }

 private:
  struct statements;
  store(std::string path, sqlite3* database, store_sync sync);
  void swap_connection(store& other) noexcept;

  status write_changes(const rrh::engine::engine& engine, const rrh::engine::effects& changes);
  status write_node(const rrh::engine::engine& engine, std::string_view id);
  status write_agent(const rrh::engine::engine& engine, std::string_view id);
  status write_task(const rrh::engine::engine& engine, std::string_view id);
  status write_episode(const rrh::engine::engine& engine, std::string_view id);
  status write_command(const rrh::engine::engine& engine, std::uint64_t id);
  status write_meta(std::string_view key, std::int64_t value);
  status remove(sqlite3_stmt* statement, std::string_view what, std::string_view id);
  status remove(sqlite3_stmt* statement, std::string_view what, std::uint64_t id);
  status run(sqlite3_stmt* statement, std::string_view what);

  std::string path_;
  store_sync sync_;
  std::string journal_mode_;
  sqlite3* database_ = nullptr;
  int lock_descriptor_ = -1;  ///< holds the exclusive flock of a state file; -1 in memory
  // The file a rebuild renamed into place but could not open yet (see rebuild).
  bool placed_ = false;
  std::uint64_t placed_device_ = 0;
  std::uint64_t placed_inode_ = 0;
  std::unique_ptr<statements> statements_;
  store_stats stats_;
  // Reused per commit, so that deduplicating keys and rendering JSON allocate rarely.
  std::unordered_set<std::string_view> seen_keys_;
  std::unordered_set<std::uint64_t> seen_ids_;
  std::string json_agents_seen_;
  std::string json_error_times_;
  std::string json_retired_;
  std::string json_overrides_;
};

}  // namespace rrh::processor
