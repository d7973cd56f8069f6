#include "store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "rrh/codec.hpp"
#include "rrh/json.hpp"

namespace rrh::processor {

namespace {

using rrh::engine::agent_record;
using rrh::engine::agent_state;
using rrh::engine::episode_record;
using rrh::engine::episode_state;
using rrh::engine::node_record;
using rrh::engine::pending_command;
using rrh::engine::task_record;
using rrh::engine::task_state;

/// SQLite's page cache, in KiB (a negative cache_size is KiB). The default 2 MiB holds the
/// B-trees of a few thousand agents; past that every upsert reads its pages back through
/// the file system (at a million agents that was two thirds of the processor's time in
/// rrh-bench's scale scenario). 64 MiB keeps the upper levels of a million-agent store
/// cached for a small share of the 1 GiB budget.
constexpr int page_cache_kib = 64 * 1024;

// ---- schema ---------------------------------------------------------------------------------
// docs/STORE.md documents every column; keep the two in step. Column lists below give the
// order in which rows are bound and read; the CREATE statements give the types.

constexpr std::string_view schema_sql = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE nodes (
  node                  TEXT PRIMARY KEY NOT NULL,
  incarnation           INTEGER NOT NULL,
  applied_seq           INTEGER NOT NULL,
  last_heartbeat_ms     INTEGER NOT NULL,
  heartbeat_interval_ms INTEGER NOT NULL,
  host                  TEXT NOT NULL,
  pid                   INTEGER NOT NULL,
  rss_bytes             INTEGER NOT NULL,
  in_flight             INTEGER NOT NULL,
  retired_incarnations  TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE TABLE agents (
  agent               TEXT PRIMARY KEY NOT NULL,
  node                TEXT NOT NULL,
  pool                TEXT NOT NULL,
  supervisor          TEXT NOT NULL,
  episode             TEXT NOT NULL,
  state               TEXT NOT NULL,
  watchdog_timeout_ms INTEGER NOT NULL,
  recovery_attempts   INTEGER NOT NULL,
  last_recovery_ms    INTEGER NOT NULL,
  state_since_ms      INTEGER NOT NULL,
  registered_ms       INTEGER NOT NULL,
  probe_rtt_avg_ms    INTEGER NOT NULL,
  probe_rtt_max_ms    INTEGER NOT NULL,
  probes_answered     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE tasks (
  task               TEXT PRIMARY KEY NOT NULL,
  agent              TEXT NOT NULL,
  pool               TEXT NOT NULL,
  episode            TEXT NOT NULL,
  state              TEXT NOT NULL,
  attempt            INTEGER NOT NULL,
  failures           INTEGER NOT NULL,
  retry_due_ms       INTEGER NOT NULL,
  last_error_type    TEXT NOT NULL,
  last_error_message TEXT NOT NULL,
  checkpoint         BLOB NOT NULL
);
CREATE TABLE episodes (
  episode              TEXT PRIMARY KEY NOT NULL,
  name                 TEXT NOT NULL,
  state                TEXT NOT NULL,
  status               TEXT NOT NULL,
  started_ms           INTEGER NOT NULL,
  ended_ms             INTEGER NOT NULL,
  shutdown_deadline_ms INTEGER NOT NULL,
  errors               INTEGER NOT NULL,
  error_times_ms       TEXT NOT NULL,
  recoveries_attempted INTEGER NOT NULL,
  recoveries_succeeded INTEGER NOT NULL,
  tasks_failed         INTEGER NOT NULL,
  tasks_retried        INTEGER NOT NULL,
  tasks_recovered      INTEGER NOT NULL,
  tasks_abandoned      INTEGER NOT NULL,
  agents_seen          TEXT NOT NULL,
  overrides            TEXT NOT NULL
);
CREATE TABLE commands (
  id           INTEGER PRIMARY KEY NOT NULL,
  node         TEXT NOT NULL,
  kind         TEXT NOT NULL,
  agent        TEXT NOT NULL,
  episode      TEXT NOT NULL,
  next_send_ms INTEGER NOT NULL,
  sends        INTEGER NOT NULL,
  message      BLOB NOT NULL
);
)sql";

// Created in every file, new or of version 1, when it opens: an additive table that an
// older build ignores, so the schema version stays 1.
constexpr std::string_view node_keys_sql = R"sql(
CREATE TABLE IF NOT EXISTS node_keys (
  node       TEXT PRIMARY KEY NOT NULL,
  public_key TEXT NOT NULL,
  bound_ms   INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

constexpr std::array<std::string_view, 10> node_columns{
    "node", "incarnation", "applied_seq", "last_heartbeat_ms", "heartbeat_interval_ms",
    "host", "pid",         "rss_bytes",   "in_flight",         "retired_incarnations"};

// Added to files of version 1 made before the column existed; the default reads as "none
// retired", which is what such a file knew.
constexpr std::string_view retired_incarnations_column_sql =
    "ALTER TABLE nodes ADD COLUMN retired_incarnations TEXT NOT NULL DEFAULT '[]'";
constexpr std::array<std::string_view, 14> agent_columns{
    "agent",            "node",           "pool",          "supervisor",       "episode",
    "state",            "watchdog_timeout_ms", "recovery_attempts", "last_recovery_ms",
    "state_since_ms",   "registered_ms",  "probe_rtt_avg_ms", "probe_rtt_max_ms",
    "probes_answered"};
constexpr std::array<std::string_view, 11> task_columns{
    "task",    "agent",    "pool",         "episode",         "state",     "attempt",
    "failures", "retry_due_ms", "last_error_type", "last_error_message", "checkpoint"};
constexpr std::array<std::string_view, 17> episode_columns{
    "episode",       "name",          "state",                "status",
    "started_ms",    "ended_ms",      "shutdown_deadline_ms", "errors",
    "error_times_ms", "recoveries_attempted", "recoveries_succeeded", "tasks_failed",
    "tasks_retried", "tasks_recovered", "tasks_abandoned",    "agents_seen",
    "overrides"};
constexpr std::array<std::string_view, 8> command_columns{
    "id", "node", "kind", "agent", "episode", "next_send_ms", "sends", "message"};

constexpr std::string_view meta_schema_version = "schema_version";
constexpr std::string_view meta_next_command_id = "next_command_id";

template <std::size_t count>
std::string joined(const std::array<std::string_view, count>& columns, std::string_view prefix = {}) {
  std::string out;
  for (const auto column : columns) {
    if (!out.empty()) out += ',';
    out += prefix;
    out += column;
  }
  return out;
}

// INSERT … ON CONFLICT(key) DO UPDATE: the first column is the key.
template <std::size_t count>
std::string upsert_sql(std::string_view table, const std::array<std::string_view, count>& columns) {
  std::string sql = "INSERT INTO " + std::string(table) + "(" + joined(columns) + ") VALUES(";
  for (std::size_t index = 0; index < count; ++index) sql += index == 0 ? "?" : ",?";
  sql += ") ON CONFLICT(" + std::string(columns[0]) + ") DO UPDATE SET ";
  for (std::size_t index = 1; index < count; ++index) {
    if (index > 1) sql += ',';
    sql += std::string(columns[index]) + "=excluded." + std::string(columns[index]);
  }
  return sql;
}

template <std::size_t count>
std::string delete_sql(std::string_view table, const std::array<std::string_view, count>& columns) {
  return "DELETE FROM " + std::string(table) + " WHERE " + std::string(columns[0]) + "=?";
}

template <std::size_t count>
std::string select_sql(std::string_view table, const std::array<std::string_view, count>& columns) {
  return "SELECT " + joined(columns) + " FROM " + std::string(table) + " ORDER BY " +
         std::string(columns[0]);
}

// SQLite integers are signed 64-bit; unsigned values travel as their two's-complement bits
// and come back exactly (values of 2^63 and above would show as negative in the CLI).
std::int64_t to_column(std::uint64_t value) noexcept { return static_cast<std::int64_t>(value); }
std::uint64_t from_column(std::int64_t value) noexcept { return static_cast<std::uint64_t>(value); }

// The text name of a state back to its value; to_string gives "unknown" past the last one.
template <class State>
std::optional<State> parse_state(std::string_view name) {
  using underlying = std::underlying_type_t<State>;
  for (unsigned value = 0; value <= std::numeric_limits<underlying>::max(); ++value) {
    const auto state = static_cast<State>(value);
    const std::string_view known = to_string(state);
    if (known == "unknown") return std::nullopt;
    if (known == name) return state;
  }
  return std::nullopt;
}

// ---- JSON for the list and map columns ----------------------------------------------------
// The shapes are fixed and small (a list of ids, a list of times, a flat map of scalar
// settings), so a writer and a reader of exactly these shapes is all that is needed.

void append_json_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "null";  // JSON has no NaN; read back as NaN
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "1e999" : "-1e999";  // overflows to ±infinity when read
    return;
  }
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  const std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
  out += text;
  // A reader must tell 2.0 (double) from 2 (integer).
  if (text.find_first_of(".eE") == std::string_view::npos) out += ".0";
}

void write_string_list(std::string& out, const std::vector<std::string>& items) {
  out.clear();
  out += '[';
  for (std::size_t index = 0; index < items.size(); ++index) {
    if (index > 0) out += ',';
    append_json_string(out, items[index]);
  }
  out += ']';
}

template <class Numbers>
void write_time_list(std::string& out, const Numbers& items) {
  out.clear();
  out += '[';
  bool first = true;
  for (const auto item : items) {
    if (!first) out += ',';
    first = false;
    out += std::to_string(item);
  }
  out += ']';
}

void write_settings(std::string& out, const settings& values) {
  out.clear();
  out += '{';
  bool first = true;
  for (const auto& [key, value] : values) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, key);
    out += ':';
    std::visit(
        [&out](const auto& held) {
          using held_t = std::decay_t<decltype(held)>;
          if constexpr (std::is_same_v<held_t, std::string>) {
            append_json_string(out, held);
          } else if constexpr (std::is_same_v<held_t, bool>) {
            out += held ? "true" : "false";
          } else if constexpr (std::is_same_v<held_t, double>) {
            append_json_double(out, held);
          } else {
            out += std::to_string(held);
          }
        },
        value);
  }
  out += '}';
}

// Reads the JSON the writers above produce (and any equivalent JSON of the same shape, so
// a hand-edited row still loads). Every failure is a message; no exceptions.
class json_reader {
 public:
  explicit json_reader(std::string_view text) : text_(text) {}

  expected<std::vector<std::string>> string_list() {
    std::vector<std::string> items;
    if (!take('[')) return fail("expected '['");
    if (!take(']')) {
      do {
        std::string item;
        if (auto read = string(item); !read) return read.error();
        items.push_back(std::move(item));
      } while (take(','));
      if (!take(']')) return fail("expected ',' or ']'");
    }
    if (auto end = finish(); !end) return end.error();
    return items;
  }

  expected<std::deque<rrh::engine::time_ms>> time_list() {
    std::deque<rrh::engine::time_ms> items;
    if (!take('[')) return fail("expected '['");
    if (!take(']')) {
      do {
        skip_space();
        std::uint64_t item = 0;
        const auto* begin = text_.data() + position_;
        const auto result = std::from_chars(begin, text_.data() + text_.size(), item);
        if (result.ec != std::errc{}) return fail("expected an unsigned integer");
        position_ += static_cast<std::size_t>(result.ptr - begin);
        items.push_back(item);
      } while (take(','));
      if (!take(']')) return fail("expected ',' or ']'");
    }
    if (auto end = finish(); !end) return end.error();
    return items;
  }

  expected<settings> settings_map() {
    settings values;
    if (!take('{')) return fail("expected '{'");
    if (!take('}')) {
      do {
        std::string key;
        if (auto read = string(key); !read) return read.error();
        if (!take(':')) return fail("expected ':'");
        auto value = scalar();
        if (!value) return value.error();
        values.insert_or_assign(std::move(key), std::move(value.value()));
      } while (take(','));
      if (!take('}')) return fail("expected ',' or '}'");
    }
    if (auto end = finish(); !end) return end.error();
    return values;
  }

 private:
  rrh::error fail(std::string_view why) const {
    return make_error(errc::config, std::string(why) + " at offset " + std::to_string(position_));
  }

  void skip_space() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\n' ||
                                        text_[position_] == '\r' || text_[position_] == '\t')) {
      ++position_;
    }
  }

  bool take(char expected_char) {
    skip_space();
    if (position_ < text_.size() && text_[position_] == expected_char) {
      ++position_;
      return true;
    }
    return false;
  }

  bool take_word(std::string_view word) {
    skip_space();
    if (text_.substr(position_, word.size()) != word) return false;
    position_ += word.size();
    return true;
  }

  status finish() {
    skip_space();
    if (position_ != text_.size()) return fail("unexpected text after the value");
    return ok();
  }

  static void append_utf8(std::string& out, std::uint32_t code_point) {
    if (code_point < 0x80) {
      out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
      out += static_cast<char>(0xC0 | (code_point >> 6));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
      out += static_cast<char>(0xE0 | (code_point >> 12));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code_point >> 18));
      out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
  }

  std::optional<std::uint32_t> hex4() {
    if (position_ + 4 > text_.size()) return std::nullopt;
    std::uint32_t value = 0;
    const auto* begin = text_.data() + position_;
    const auto result = std::from_chars(begin, begin + 4, value, 16);
    if (result.ec != std::errc{} || result.ptr != begin + 4) return std::nullopt;
    position_ += 4;
    return value;
  }

  status string(std::string& out) {
    if (!take('"')) return fail("expected a string");
    while (position_ < text_.size()) {
      const char c = text_[position_++];
      if (c == '"') return ok();
      if (c != '\\') {
        out += c;
        continue;
      }
      if (position_ >= text_.size()) break;
      const char escape = text_[position_++];
      switch (escape) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          auto code_point = hex4();
          if (!code_point) return fail("bad \\u escape");
          if (*code_point >= 0xD800 && *code_point < 0xDC00 && text_.substr(position_, 2) == "\\u") {
            position_ += 2;
            const auto low = hex4();
            if (!low || *low < 0xDC00 || *low > 0xDFFF) return fail("bad surrogate pair");
            *code_point = 0x10000 + ((*code_point - 0xD800) << 10) + (*low - 0xDC00);
          }
          append_utf8(out, *code_point);
          break;
        }
        default: return fail("unknown escape");
      }
    }
    return fail("unterminated string");
  }

  expected<setting_value> scalar() {
    skip_space();
    if (position_ < text_.size() && text_[position_] == '"') {
      std::string text;
      if (auto read = string(text); !read) return read.error();
      return setting_value{std::move(text)};
    }
    if (take_word("true")) return setting_value{true};
    if (take_word("false")) return setting_value{false};
    if (take_word("null")) return setting_value{std::numeric_limits<double>::quiet_NaN()};
    const auto start = position_;
    while (position_ < text_.size() &&
           std::string_view("+-0123456789.eE").find(text_[position_]) != std::string_view::npos) {
      ++position_;
    }
    const auto token = text_.substr(start, position_ - start);
    if (token.empty()) return fail("expected a value");
    const auto* end = token.data() + token.size();
    if (token.find_first_of(".eE") == std::string_view::npos) {
      std::int64_t integer = 0;
      const auto result = std::from_chars(token.data(), end, integer);
      if (result.ec != std::errc{} || result.ptr != end) return fail("bad integer");
      return setting_value{integer};
    }
    double real = 0.0;
    const auto result = std::from_chars(token.data(), end, real);
    if (result.ptr != end) return fail("bad number");
    if (result.ec == std::errc::result_out_of_range) {
      real = token.front() == '-' ? -std::numeric_limits<double>::infinity()
                                  : std::numeric_limits<double>::infinity();
    } else if (result.ec != std::errc{}) {
      return fail("bad number");
    }
    return setting_value{real};
  }

  std::string_view text_;
  std::size_t position_ = 0;
};

// ---- statement helpers ----------------------------------------------------------------------

struct finalizer {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using statement_handle = std::unique_ptr<sqlite3_stmt, finalizer>;

// Binds parameters in order; remembers the first failure so a row is checked once.
class binder {
 public:
  explicit binder(sqlite3_stmt* statement) : statement_(statement) {}
  binder& text(std::string_view value) {
    // An empty view may carry a null pointer, which SQLite would bind as NULL.
    note(sqlite3_bind_text(statement_, ++index_, value.data() ? value.data() : "",
                           static_cast<int>(value.size()), SQLITE_STATIC));
    return *this;
  }
  binder& integer(std::uint64_t value) {
    note(sqlite3_bind_int64(statement_, ++index_, to_column(value)));
    return *this;
  }
  binder& blob(const byte_buffer& value) {
    // An empty blob is a zero-length blob, not NULL, so the column stays NOT NULL.
    note(value.empty() ? sqlite3_bind_zeroblob(statement_, ++index_, 0)
                       : sqlite3_bind_blob(statement_, ++index_, value.data(),
                                           static_cast<int>(value.size()), SQLITE_STATIC));
    return *this;
  }
  int result() const noexcept { return result_; }

 private:
  void note(int result) {
    if (result_ == SQLITE_OK) result_ = result;
  }
  sqlite3_stmt* statement_;
  int index_ = 0;
  int result_ = SQLITE_OK;
};

// Reads the columns of the current row in order.
class row_reader {
 public:
  explicit row_reader(sqlite3_stmt* statement) : statement_(statement) {}
  std::string text() {
    const auto* data = sqlite3_column_text(statement_, index_);
    const auto size = sqlite3_column_bytes(statement_, index_++);
    return data ? std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size))
                : std::string();
  }
  std::uint64_t integer() { return from_column(sqlite3_column_int64(statement_, index_++)); }
  byte_buffer blob() {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(statement_, index_));
    const auto size = sqlite3_column_bytes(statement_, index_++);
    return data ? byte_buffer(data, data + size) : byte_buffer();
  }

 private:
  sqlite3_stmt* statement_;
  int index_ = 0;
};

std::string describe(sqlite3* database) { return database ? sqlite3_errmsg(database) : "out of memory"; }

}  // namespace

// ---- statements prepared once ---------------------------------------------------------------

struct store::statements {
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_stmt* rollback = nullptr;
  sqlite3_stmt* upsert_meta = nullptr;
  sqlite3_stmt* upsert_node = nullptr;
  sqlite3_stmt* delete_node = nullptr;
  sqlite3_stmt* upsert_agent = nullptr;
  sqlite3_stmt* delete_agent = nullptr;
  sqlite3_stmt* upsert_task = nullptr;
  sqlite3_stmt* delete_task = nullptr;
  sqlite3_stmt* upsert_episode = nullptr;
  sqlite3_stmt* delete_episode = nullptr;
  sqlite3_stmt* upsert_command = nullptr;
  sqlite3_stmt* delete_command = nullptr;
  sqlite3_stmt* insert_node_key = nullptr;

  ~statements() {
    for (auto* statement : {begin, commit, rollback, upsert_meta, upsert_node, delete_node, upsert_agent,
                            delete_agent, upsert_task, delete_task, upsert_episode, delete_episode,
                            upsert_command, delete_command, insert_node_key}) {
      sqlite3_finalize(statement);
    }
  }
};

store::store(std::string path, sqlite3* database, store_sync sync)
    : path_(std::move(path)), sync_(sync), database_(database), statements_(std::make_unique<statements>()) {}

store::~store() {
  statements_.reset();  // finalize before close, or the close fails
  sqlite3_close(database_);
  if (lock_descriptor_ >= 0) ::close(lock_descriptor_);  // releases the flock
}

namespace {

rrh::error store_error(const std::string& path, std::string_view what, std::string_view why) {
  return make_error(errc::config,
                    "state store '" + path + "': " + std::string(what) + ": " + std::string(why));
}

status exec(sqlite3* database, const std::string& path, std::string_view what, const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(database, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string why = message ? message : describe(database);
    sqlite3_free(message);
    return store_error(path, what, why);
  }
  return ok();
}

// Runs a query that yields one text or integer value in its first row, or nothing.
expected<std::optional<std::string>> query_text(sqlite3* database, const std::string& path,
                                                const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(database, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    return store_error(path, sql, describe(database));
  }
  const statement_handle statement(raw);
  const int result = sqlite3_step(raw);
  if (result == SQLITE_DONE) return std::optional<std::string>();
  if (result != SQLITE_ROW) return store_error(path, sql, describe(database));
  return std::optional<std::string>(row_reader(raw).text());
}

status prepare(sqlite3* database, const std::string& path, const std::string& sql, sqlite3_stmt*& out) {
  if (sqlite3_prepare_v3(database, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &out, nullptr) != SQLITE_OK) {
    return store_error(path, "prepare " + sql, describe(database));
  }
  return ok();
}

// An empty database gets the schema; an rrh state file of this version is accepted; a
// newer version, an unknown older one or a foreign database is refused.
status check_or_create_schema(sqlite3* database, const std::string& path) {
  auto tables = query_text(database, path, "SELECT count(*) FROM sqlite_master");
  if (!tables) return tables.error();
  if (tables.value().value_or("0") == "0") {
    return exec(database, path, "create schema",
                "BEGIN IMMEDIATE;" + std::string(schema_sql) +
                    "INSERT INTO meta(key, value) VALUES('" + std::string(meta_schema_version) + "', " +
                    std::to_string(store::schema_version) + "), ('" + std::string(meta_next_command_id) +
                    "', 1);COMMIT;");
  }
  auto has_meta = query_text(database, path,
                             "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
  if (!has_meta) return has_meta.error();
  if (!has_meta.value()) {
    return store_error(path, "open", "not an rrh state file (the database has tables but no 'meta' table)");
  }
  auto version = query_text(database, path,
                            "SELECT value FROM meta WHERE key = '" + std::string(meta_schema_version) + "'");
  if (!version) return version.error();
  if (!version.value()) return store_error(path, "open", "not an rrh state file (no schema_version in 'meta')");
  std::int64_t found = 0;
  const auto& text = *version.value();
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), found);
  if (parsed.ec != std::errc{} || parsed.ptr != text.data() + text.size()) {
    return store_error(path, "open", "schema_version '" + text + "' is not an integer");
  }
  if (found > store::schema_version) {
    return store_error(path, "open",
                       "schema version " + std::to_string(found) + " is newer than this build reads (" +
                           std::to_string(store::schema_version) +
                           "); refusing to open it (run a newer rrh-processor, or move the file aside)");
  }
  if (found < store::schema_version) {
    return store_error(path, "open",
                       "schema version " + std::to_string(found) + " is older than any this build knows (" +
                           std::to_string(store::schema_version) + ")");
  }
  return ok();
}

bool is_memory_path(const std::string& path) { return path == ":memory:" || path.empty(); }

/// One state file serves one processor: two would both apply events and send commands,
/// each with its own idea of the state. An exclusive flock on the file (separate from
/// SQLite's own byte-range locks, so the sqlite3 CLI can still read) refuses a second
/// one. Released by the kernel when the holder exits, however it exits.
expected<int> lock_state_file(const std::string& path) {
  const int descriptor = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (descriptor < 0) return store_error(path, "open", std::strerror(errno));
  if (::flock(descriptor, LOCK_EX | LOCK_NB) != 0) {
    const int reason = errno;
    ::close(descriptor);
    if (reason == EWOULDBLOCK) {
      return store_error(path, "open",
                         "the state file is in use by another rrh-processor (one state file serves "
                         "one processor): stop that one, or give this one another --state path");
    }
    return store_error(path, "lock", std::strerror(reason));
  }
  return descriptor;
}

}  // namespace

expected<std::unique_ptr<store>> store::open(const std::string& path, store_sync sync) {
  const bool in_memory = is_memory_path(path);
  int lock_descriptor = -1;
  if (!in_memory) {
    auto locked = lock_state_file(path);
    if (!locked) return locked.error();
    lock_descriptor = locked.value();
  }
  sqlite3* database = nullptr;
  const int opened = sqlite3_open_v2(path.c_str(), &database,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // The store owns the handle from here on, even when the open failed.
  std::unique_ptr<store> opened_store(new store(path, database, sync));
  opened_store->lock_descriptor_ = lock_descriptor;
  if (opened != SQLITE_OK) return store_error(path, "open", describe(database));
  sqlite3_extended_result_codes(database, 1);
  sqlite3_busy_timeout(database, busy_timeout_ms);

  if (auto checked = check_or_create_schema(database, path); !checked) return checked.error();
  if (auto created = exec(database, path, "create node_keys", std::string(node_keys_sql)); !created) {
    return created.error();
  }
  auto has_retired = query_text(database, path,
                                "SELECT count(*) FROM pragma_table_info('nodes') WHERE name = 'retired_incarnations'");
  if (!has_retired) return has_retired.error();
  if (has_retired.value().value_or("0") == "0") {
    if (auto added = exec(database, path, "add nodes.retired_incarnations", std::string(retired_incarnations_column_sql));
        !added) {
      return added.error();
    }
  }

  auto mode = query_text(database, path, in_memory ? "PRAGMA journal_mode" : "PRAGMA journal_mode=WAL");
  if (!mode) return mode.error();
  opened_store->journal_mode_ = mode.value().value_or("");
  const std::string synchronous = sync == store_sync::full ? "FULL" : "NORMAL";
  // Records refer to each other loosely (a task may outlive its agent); the store mirrors
  // the engine rather than judging it, so there are no foreign keys to enforce.
  if (auto set = exec(database, path, "pragmas",
                      "PRAGMA synchronous=" + synchronous + ";PRAGMA foreign_keys=OFF;PRAGMA cache_size=-" +
                          std::to_string(page_cache_kib) + ";");
      !set) {
    return set.error();
  }

  // A first read opens the -wal and -shm files now, while the path names the file: a
  // connection that opens them later, after the file was deleted, cannot read it back.
  if (auto read = query_text(database, path, "SELECT count(*) FROM meta"); !read) return read.error();

  auto& prepared = *opened_store->statements_;
  const std::pair<std::string, sqlite3_stmt**> all[] = {
      {"BEGIN IMMEDIATE", &prepared.begin},
      {"COMMIT", &prepared.commit},
      {"ROLLBACK", &prepared.rollback},
      {"INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
       &prepared.upsert_meta},
      {upsert_sql("nodes", node_columns), &prepared.upsert_node},
      {delete_sql("nodes", node_columns), &prepared.delete_node},
      {upsert_sql("agents", agent_columns), &prepared.upsert_agent},
      {delete_sql("agents", agent_columns), &prepared.delete_agent},
      {upsert_sql("tasks", task_columns), &prepared.upsert_task},
      {delete_sql("tasks", task_columns), &prepared.delete_task},
      {upsert_sql("episodes", episode_columns), &prepared.upsert_episode},
      {delete_sql("episodes", episode_columns), &prepared.delete_episode},
      {upsert_sql("commands", command_columns), &prepared.upsert_command},
      {delete_sql("commands", command_columns), &prepared.delete_command},
      {"INSERT INTO node_keys(node, public_key, bound_ms) VALUES(?, ?, ?) ON CONFLICT(node) DO NOTHING",
       &prepared.insert_node_key},
  };
  for (const auto& [sql, target] : all) {
    if (auto done = prepare(database, path, sql, *target); !done) return done.error();
  }
  return opened_store;
}

// ---- the file under the path ---------------------------------------------------------------

const char* to_string(store_file identity) noexcept {
  switch (identity) {
    case store_file::same: return "same";
    case store_file::deleted: return "deleted";
    case store_file::replaced: return "replaced";
  }
  return "unknown";
}

namespace {

// Syncs a file or a directory by name, so that what was written to it, or a rename in it,
// survives a power loss.
status sync_path(const std::string& path, bool directory) {
  const int descriptor = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (descriptor < 0) return store_error(path, "open to sync", std::strerror(errno));
  const int synced = ::fsync(descriptor);
  const int reason = errno;
  ::close(descriptor);
  if (synced != 0) return store_error(path, "fsync", std::strerror(reason));
  return ok();
}

std::string directory_of(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Moves the file at `path` to `<path>.replaced-<wall_ms>` (with a counter when that name is
// taken), never over an existing file. Returns the new name.
expected<std::string> move_aside(const std::string& path, std::uint64_t wall_ms) {
  const std::string base = path + ".replaced-" + std::to_string(wall_ms);
  constexpr int names_tried_max = 100;
  for (int attempt = 0; attempt < names_tried_max; ++attempt) {
    const std::string target = attempt == 0 ? base : base + "." + std::to_string(attempt);
    if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) return target;
    if (errno != EEXIST) return store_error(path, "move the file at the path aside to " + target, std::strerror(errno));
  }
  return store_error(path, "move the file at the path aside", "every name " + base + ".N is taken");
}

}  // namespace

expected<store_file> store::check_file() const {
  if (lock_descriptor_ < 0) return store_file::same;
  struct stat open_file {};
  if (::fstat(lock_descriptor_, &open_file) != 0) return store_error(path_, "fstat", std::strerror(errno));
  struct stat named {};
  if (::stat(path_.c_str(), &named) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return store_file::deleted;
    return store_error(path_, "stat", std::strerror(errno));
  }
  if (named.st_dev != open_file.st_dev || named.st_ino != open_file.st_ino) return store_file::replaced;
  if (open_file.st_nlink == 0) return store_file::deleted;
  return store_file::same;
}

void store::swap_connection(store& other) noexcept {
  std::swap(database_, other.database_);
  std::swap(lock_descriptor_, other.lock_descriptor_);
  std::swap(statements_, other.statements_);
  std::swap(journal_mode_, other.journal_mode_);
}

status store::rebuild(std::uint64_t wall_ms) {
  auto identity = check_file();
  if (!identity) return identity.error();
  if (identity.value() == store_file::same) return ok();

  struct stat named {};
  const bool something_named = ::stat(path_.c_str(), &named) == 0;
  // The file an earlier call renamed into place, which it then failed to open: the open
  // database has not changed since (nothing is committed while the path is not ours), so
  // only the open is repeated, rather than moving our own copy aside as a foreign file.
  const bool ours_placed = something_named && placed_ && named.st_dev == placed_device_ && named.st_ino == placed_inode_;
  if (!ours_placed) {
    const std::string rebuilt = path_ + ".rebuild";
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) (void)::unlink((rebuilt + suffix).c_str());
    const auto abandon = [&](rrh::error failure) -> status {
      (void)::unlink(rebuilt.c_str());
      return failure;
    };
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(database_, "VACUUM INTO ?1", -1, &raw, nullptr) != SQLITE_OK) {
      return store_error(path_, "rebuild: prepare VACUUM INTO", describe(database_));
    }
    const statement_handle vacuum(raw);
    if (sqlite3_bind_text(raw, 1, rebuilt.c_str(), static_cast<int>(rebuilt.size()), SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_step(raw) != SQLITE_DONE) {
      return abandon(store_error(path_, "rebuild: VACUUM INTO " + rebuilt, describe(database_)));
    }
    if (auto synced = sync_path(rebuilt, false); !synced) return abandon(synced.error());
    // The -wal and -shm files at the path must not pair with the rebuilt file: a new
    // connection would replay a log that is not its own. They are most likely the old
    // connection's (a file moved to the path comes without its log), whose content the
    // rebuilt file holds: removed when the file was deleted; when it was replaced, kept
    // beside the moved file as .wal and .shm, unpaired, so that opening that file does not
    // replay our log onto it. The old connection must then not checkpoint or delete them
    // by name on its close: by then those names are the new file's.
    sqlite3_db_config(database_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    if (something_named) {
      auto moved = move_aside(path_, wall_ms);
      if (!moved) return abandon(moved.error());
      (void)::rename((path_ + "-wal").c_str(), (moved.value() + ".wal").c_str());
      (void)::rename((path_ + "-shm").c_str(), (moved.value() + ".shm").c_str());
    } else {
      for (const char* suffix : {"-wal", "-shm"}) (void)::unlink((path_ + suffix).c_str());
    }
    if (::rename(rebuilt.c_str(), path_.c_str()) != 0) {
      return abandon(store_error(path_, "rebuild: rename " + rebuilt + " to the path", std::strerror(errno)));
    }
    struct stat placed {};
    if (::stat(path_.c_str(), &placed) == 0) {
      placed_ = true;
      placed_device_ = placed.st_dev;
      placed_inode_ = placed.st_ino;
    }
    if (auto synced = sync_path(directory_of(path_), true); !synced) return synced.error();
  }
  auto reopened = store::open(path_, sync_);
  if (!reopened) return reopened.error();
  // The old connection, its statements and its flock leave with `reopened`.
  swap_connection(*reopened.value());
  placed_ = false;
  return ok();
}

// ---- load -------------------------------------------------------------------------------------

expected<rrh::engine::snapshot> store::load() {
  rrh::engine::snapshot out;
  // Runs `select` and hands each row to `read`, which may fail.
  const auto each_row = [this](const std::string& sql, const auto& read) -> status {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(database_, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
      return store_error(path_, "load: " + sql, describe(database_));
    }
    const statement_handle statement(raw);
    for (;;) {
      const int result = sqlite3_step(raw);
      if (result == SQLITE_DONE) return ok();
      if (result != SQLITE_ROW) return store_error(path_, "load: " + sql, describe(database_));
      if (auto done = read(row_reader(raw)); !done) return done;
    }
  };
  const auto bad_row = [this](std::string_view table, std::string_view key, std::string_view why) {
    return store_error(path_, "load " + std::string(table) + " '" + std::string(key) + "'", why);
  };

  // One read transaction, so that the snapshot is consistent even if a CLI writes meanwhile.
  if (auto begun = exec(database_, path_, "load", "BEGIN"); !begun) return begun.error();
  const auto read_all = [&]() -> status {
    auto next_id = query_text(database_, path_,
                              "SELECT value FROM meta WHERE key = '" + std::string(meta_next_command_id) + "'");
    if (!next_id) return next_id.error();
    if (next_id.value()) {
      const auto& text = *next_id.value();
      std::uint64_t value = 0;
      const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
      if (parsed.ec != std::errc{} || parsed.ptr != text.data() + text.size()) {
        return bad_row("meta", meta_next_command_id, "not an unsigned integer: '" + text + "'");
      }
      out.next_command_id = value;
    }
    if (auto done = each_row(select_sql("nodes", node_columns), [&](row_reader row) -> status {
          node_record record;
          record.node = row.text();
          record.incarnation = row.integer();
          record.applied_seq = row.integer();
          record.last_heartbeat_ms = row.integer();
          record.heartbeat_interval_ms = row.integer();
          record.host = row.text();
          record.pid = row.integer();
          record.rss_bytes = row.integer();
          record.in_flight = row.integer();
          auto retired = json_reader(row.text()).time_list();
          if (!retired) return bad_row("nodes", record.node, "retired_incarnations: " + retired.error().detail);
          record.retired_incarnations.assign(retired.value().begin(), retired.value().end());
          out.nodes.push_back(std::move(record));
          return ok();
        });
        !done) {
      return done;
    }
    if (auto done = each_row(select_sql("agents", agent_columns), [&](row_reader row) -> status {
          agent_record record;
          record.agent = row.text();
          record.node = row.text();
          record.pool = row.text();
          record.supervisor = row.text();
          record.episode = row.text();
          const auto state_name = row.text();
          const auto state = parse_state<agent_state>(state_name);
          if (!state) return bad_row("agents", record.agent, "unknown state '" + state_name + "'");
          record.state = *state;
          record.watchdog_timeout_ms = row.integer();
          record.recovery_attempts = row.integer();
          record.last_recovery_ms = row.integer();
          record.state_since_ms = row.integer();
          record.registered_ms = row.integer();
          record.probe_rtt_avg_ms = row.integer();
          record.probe_rtt_max_ms = row.integer();
          record.probes_answered = row.integer();
          out.agents.push_back(std::move(record));
          return ok();
        });
        !done) {
      return done;
    }
    if (auto done = each_row(select_sql("tasks", task_columns), [&](row_reader row) -> status {
          task_record record;
          record.task = row.text();
          record.agent = row.text();
          record.pool = row.text();
          record.episode = row.text();
          const auto state_name = row.text();
          const auto state = parse_state<task_state>(state_name);
          if (!state) return bad_row("tasks", record.task, "unknown state '" + state_name + "'");
          record.state = *state;
          record.attempt = row.integer();
          record.failures = row.integer();
          record.retry_due_ms = row.integer();
          record.last_error_type = row.text();
          record.last_error_message = row.text();
          record.checkpoint = row.blob();
          out.tasks.push_back(std::move(record));
          return ok();
        });
        !done) {
      return done;
    }
    if (auto done = each_row(select_sql("episodes", episode_columns), [&](row_reader row) -> status {
          episode_record record;
          record.episode = row.text();
          record.name = row.text();
          const auto state_name = row.text();
          const auto state = parse_state<episode_state>(state_name);
          if (!state) return bad_row("episodes", record.episode, "unknown state '" + state_name + "'");
          record.state = *state;
          record.status = row.text();
          record.started_ms = row.integer();
          record.ended_ms = row.integer();
          record.shutdown_deadline_ms = row.integer();
          record.errors = row.integer();
          auto error_times = json_reader(row.text()).time_list();
          if (!error_times) return bad_row("episodes", record.episode, "error_times_ms: " + error_times.error().detail);
          record.error_times_ms = std::move(error_times.value());
          record.recoveries_attempted = row.integer();
          record.recoveries_succeeded = row.integer();
          record.tasks_failed = row.integer();
          record.tasks_retried = row.integer();
          record.tasks_recovered = row.integer();
          record.tasks_abandoned = row.integer();
          auto agents_seen = json_reader(row.text()).string_list();
          if (!agents_seen) return bad_row("episodes", record.episode, "agents_seen: " + agents_seen.error().detail);
          record.agents_seen = std::move(agents_seen.value());
          auto overrides = json_reader(row.text()).settings_map();
          if (!overrides) return bad_row("episodes", record.episode, "overrides: " + overrides.error().detail);
          record.overrides = std::move(overrides.value());
          out.episodes.push_back(std::move(record));
          return ok();
        });
        !done) {
      return done;
    }
    return each_row(select_sql("commands", command_columns), [&](row_reader row) -> status {
      const auto id = row.integer();
      for (int skipped = 0; skipped < 4; ++skipped) row.text();  // node, kind, agent, episode: for readers
      pending_command entry;
      entry.next_send_ms = row.integer();
      entry.sends = row.integer();
      const auto bytes = row.blob();
      auto message = decode_command(bytes.data(), bytes.size());
      if (!message) return bad_row("commands", std::to_string(id), "message: " + message.error().detail);
      if (message.value().id != id) {
        return bad_row("commands", std::to_string(id),
                       "message carries id " + std::to_string(message.value().id));
      }
      entry.message = std::move(message.value());
      out.commands.push_back(std::move(entry));
      return ok();
    });
  };
  const auto loaded = read_all();
  if (auto ended = exec(database_, path_, "load", "COMMIT"); !ended) {
    (void)exec(database_, path_, "load", "ROLLBACK");
    return ended.error();
  }
  if (!loaded) return loaded.error();
  return out;
}

// ---- node keys --------------------------------------------------------------------------------

expected<std::vector<std::pair<std::string, std::string>>> store::load_node_keys() {
  const std::string sql = "SELECT node, public_key FROM node_keys ORDER BY node";
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(database_, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    return store_error(path_, "load: " + sql, describe(database_));
  }
  const statement_handle statement(raw);
  std::vector<std::pair<std::string, std::string>> bindings;
  for (;;) {
    const int result = sqlite3_step(raw);
    if (result == SQLITE_DONE) return bindings;
    if (result != SQLITE_ROW) return store_error(path_, "load node_keys", describe(database_));
    row_reader row(raw);
    auto node = row.text();
    auto key = row.text();
    bindings.emplace_back(std::move(node), std::move(key));
  }
}

status store::bind_node_key(std::string_view node, std::string_view public_key, std::uint64_t bound_ms) {
  auto* statement = statements_->insert_node_key;
  binder bound(statement);
  bound.text(node).text(public_key).integer(bound_ms);
  if (bound.result() != SQLITE_OK) return store_error(path_, "bind node key", describe(database_));
  // Outside BEGIN … COMMIT this statement is its own transaction, durable when it returns.
  if (auto done = run(statement, "bind node key"); !done) return done;
  ++stats_.rows_written;
  return ok();
}

// ---- commit -----------------------------------------------------------------------------------

status store::run(sqlite3_stmt* statement, std::string_view what) {
  const int result = sqlite3_step(statement);
  if (result != SQLITE_DONE) {
    auto failure = store_error(path_, what, describe(database_));
    sqlite3_reset(statement);
    return failure;
  }
  sqlite3_reset(statement);
  return ok();
}

status store::remove(sqlite3_stmt* statement, std::string_view what, std::string_view id) {
  binder bound(statement);
  bound.text(id);
  if (bound.result() != SQLITE_OK) return store_error(path_, what, describe(database_));
  if (auto done = run(statement, what); !done) return done;
  stats_.rows_deleted += static_cast<std::uint64_t>(sqlite3_changes(database_));
  return ok();
}

status store::remove(sqlite3_stmt* statement, std::string_view what, std::uint64_t id) {
  binder bound(statement);
  bound.integer(id);
  if (bound.result() != SQLITE_OK) return store_error(path_, what, describe(database_));
  if (auto done = run(statement, what); !done) return done;
  stats_.rows_deleted += static_cast<std::uint64_t>(sqlite3_changes(database_));
  return ok();
}

status store::write_meta(std::string_view key, std::int64_t value) {
  auto* statement = statements_->upsert_meta;
  binder bound(statement);
  bound.text(key);
  const int result = bound.result() == SQLITE_OK ? sqlite3_bind_int64(statement, 2, value) : bound.result();
  if (result != SQLITE_OK) return store_error(path_, "write meta", describe(database_));
  if (auto done = run(statement, "write meta"); !done) return done;
  ++stats_.rows_written;
  return ok();
}

status store::write_node(const rrh::engine::engine& engine, std::string_view id) {
  const auto* record = engine.node(id);
  if (!record) return remove(statements_->delete_node, "delete node", id);
  auto* statement = statements_->upsert_node;
  write_time_list(json_retired_, record->retired_incarnations);
  binder bound(statement);
  bound.text(record->node)
      .integer(record->incarnation)
      .integer(record->applied_seq)
      .integer(record->last_heartbeat_ms)
      .integer(record->heartbeat_interval_ms)
      .text(record->host)
      .integer(record->pid)
      .integer(record->rss_bytes)
      .integer(record->in_flight)
      .text(json_retired_);
  if (bound.result() != SQLITE_OK) return store_error(path_, "write node", describe(database_));
  if (auto done = run(statement, "write node"); !done) return done;
  ++stats_.rows_written;
  return ok();
}

status store::write_agent(const rrh::engine::engine& engine, std::string_view id) {
  const auto* record = engine.agent(id);
  if (!record) return remove(statements_->delete_agent, "delete agent", id);
  auto* statement = statements_->upsert_agent;
  binder bound(statement);
  bound.text(record->agent)
      .text(record->node)
      .text(record->pool)
      .text(record->supervisor)
      .text(record->episode)
      .text(to_string(record->state))
      .integer(record->watchdog_timeout_ms)
      .integer(record->recovery_attempts)
      .integer(record->last_recovery_ms)
      .integer(record->state_since_ms)
      .integer(record->registered_ms)
      .integer(record->probe_rtt_avg_ms)
      .integer(record->probe_rtt_max_ms)
      .integer(record->probes_answered);
  if (bound.result() != SQLITE_OK) return store_error(path_, "write agent", describe(database_));
  if (auto done = run(statement, "write agent"); !done) return done;
  ++stats_.rows_written;
  return ok();
}

status store::write_task(const rrh::engine::engine& engine, std::string_view id) {
  const auto* record = engine.task(id);
  if (!record) return remove(statements_->delete_task, "delete task", id);
  auto* statement = statements_->upsert_task;
  binder bound(statement);
  bound.text(record->task)
      .text(record->agent)
      .text(record->pool)
      .text(record->episode)
      .text(to_string(record->state))
      .integer(record->attempt)
      .integer(record->failures)
      .integer(record->retry_due_ms)
      .text(record->last_error_type)
      .text(record->last_error_message)
      .blob(record->checkpoint);
  if (bound.result() != SQLITE_OK) return store_error(path_, "write task", describe(database_));
  if (auto done = run(statement, "write task"); !done) return done;
  ++stats_.rows_written;
  return ok();
}

status store::write_episode(const rrh::engine::engine& engine, std::string_view id) {
  const auto* record = engine.episode(id);
  if (!record) return remove(statements_->delete_episode, "delete episode", id);
  write_time_list(json_error_times_, record->error_times_ms);
  write_string_list(json_agents_seen_, record->agents_seen);
  write_settings(json_overrides_, record->overrides);
  auto* statement = statements_->upsert_episode;
  binder bound(statement);
  bound.text(record->episode)
      .text(record->name)
      .text(to_string(record->state))
      .text(record->status)
      .integer(record->started_ms)
      .integer(record->ended_ms)
      .integer(record->shutdown_deadline_ms)
      .integer(record->errors)
      .text(json_error_times_)
      .integer(record->recoveries_attempted)
      .integer(record->recoveries_succeeded)
      .integer(record->tasks_failed)
      .integer(record->tasks_retried)
      .integer(record->tasks_recovered)
      .integer(record->tasks_abandoned)
      .text(json_agents_seen_)
      .text(json_overrides_);
  if (bound.result() != SQLITE_OK) return store_error(path_, "write episode", describe(database_));
  if (auto done = run(statement, "write episode"); !done) return done;
  ++stats_.rows_written;
  return ok();
}

status store::write_command(const rrh::engine::engine& engine, std::uint64_t id) {
  const auto* entry = engine.pending(id);
  if (!entry) return remove(statements_->delete_command, "delete command", id);
  const auto bytes = encode(entry->message);
  auto* statement = statements_->upsert_command;
  binder bound(statement);
  bound.integer(entry->message.id)
      .text(entry->message.node)
      .text(kind_name(entry->message.body))
      .text(subject_agent(entry->message.body))
      .text(entry->message.episode)
      .integer(entry->next_send_ms)
      .integer(entry->sends)
      .blob(bytes);
  if (bound.result() != SQLITE_OK) return store_error(path_, "write command", describe(database_));
  if (auto done = run(statement, "write command"); !done) return done;
  ++stats_.rows_written;
  return ok();
}

status store::write_changes(const rrh::engine::engine& engine, const rrh::engine::effects& changes) {
  // A key named twice, or both changed and removed (removed, then created again, within one
  // batch), is written once, as the engine holds it now.
  const auto each_key = [this](const auto& first, const auto& second, const auto& write) -> status {
    seen_keys_.clear();
    for (const auto* keys : {&first, &second}) {
      for (const auto& key : *keys) {
        if (!seen_keys_.insert(key).second) continue;
        if (auto done = write(key); !done) return done;
      }
    }
    return ok();
  };
  const std::vector<std::string> none;
  if (auto done = each_key(changes.nodes_changed, none, [&](std::string_view id) { return write_node(engine, id); });
      !done) {
    return done;
  }
  if (auto done = each_key(changes.agents_changed, changes.agents_removed,
                           [&](std::string_view id) { return write_agent(engine, id); });
      !done) {
    return done;
  }
  if (auto done = each_key(changes.tasks_changed, changes.tasks_removed,
                           [&](std::string_view id) { return write_task(engine, id); });
      !done) {
    return done;
  }
  if (auto done = each_key(changes.episodes_changed, none,
                           [&](std::string_view id) { return write_episode(engine, id); });
      !done) {
    return done;
  }
  seen_ids_.clear();
  for (const auto* ids : {&changes.commands_changed, &changes.commands_removed}) {
    for (const auto id : *ids) {
      if (!seen_ids_.insert(id).second) continue;
      if (auto done = write_command(engine, id); !done) return done;
    }
  }
  if (changes.meta_changed) {
    return write_meta(meta_next_command_id, to_column(engine.next_command_id()));
  }
  return ok();
}

status store::commit(const rrh::engine::engine& engine, const rrh::engine::effects& changes) {
  if (changes.nothing_to_store()) return ok();
  const auto started = std::chrono::steady_clock::now();
  const auto counted = stats_;
  const auto give_up = [&](status failure) {
    if (!sqlite3_get_autocommit(database_)) (void)run(statements_->rollback, "rollback");
    stats_ = counted;
    ++stats_.commit_failures;
    return failure;
  };
  if (auto begun = run(statements_->begin, "begin"); !begun) return give_up(std::move(begun));
  if (auto written = write_changes(engine, changes); !written) return give_up(std::move(written));
  if (auto committed = run(statements_->commit, "commit"); !committed) return give_up(std::move(committed));
  ++stats_.commits;
  stats_.last_commit_duration_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count());
  return ok();
}

}  // namespace rrh::processor
