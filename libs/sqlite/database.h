// A thin, safe layer over one SQLite connection: WAL mode, busy timeout,
// prepared (and cached) statements, RAII transactions and numbered schema
// migrations recorded in a version table.
//
// A Database is one connection and is not thread-safe: each service owns one
// writer connection and serializes access to it (its store's mutex). Errors
// come back as absl::Status with SQLite's message and the statement.
#ifndef CNET_LIBS_SQLITE_DATABASE_H_
#define CNET_LIBS_SQLITE_DATABASE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace cnet::sqlite {

// One prepared statement. Bind indexes are 1-based (SQLite's), column
// indexes 0-based. Movable, not copyable; finalized on destruction unless it
// belongs to the Database's cache.
class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Statement& BindBlob(int index, std::string_view bytes);
  Statement& BindNull(int index);

  // Advances to the next row: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows (INSERT/UPDATE/DELETE/DDL).
  absl::Status Run();

  int64_t ColumnInt(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  bool ColumnIsNull(int col) const;

  // Clears bindings and rewinds, ready for reuse.
  void Reset();

 private:
  friend class Database;
  Statement(sqlite3_stmt* stmt, bool owned) : stmt_(stmt), owned_(owned) {}
  absl::Status StepError(int rc) const;

  sqlite3_stmt* stmt_ = nullptr;
  bool owned_ = true;
  absl::Status bind_error_;
};

class Database {
 public:
  struct Options {
    std::string path;  // file path; ":memory:" for a private in-memory db
    // FULL fsyncs the WAL on every commit: the acknowledged write survives a
    // power loss, not only a process crash. NORMAL survives kill -9.
    bool synchronous_full = false;
    absl::Duration busy_timeout = absl::Seconds(5);
  };

  // Opens (creating the file and parent directory if needed) and configures
  // the connection.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const Options& options);
  ~Database();

  // Runs one or more SQL statements that return no rows.
  absl::Status Exec(std::string_view sql);

  // A fresh statement owned by the caller.
  absl::StatusOr<Statement> Prepare(std::string_view sql);

  // A statement prepared once and kept for the life of the Database; it is
  // reset before being returned. The reference is valid until the next
  // Cached() call with the same SQL.
  absl::StatusOr<Statement*> Cached(const std::string& sql);

  // Applies migrations[v] for every v at or above the stored version, each in
  // its own transaction together with the version bump. Migration i brings the
  // schema to version i + 1. Fails (and changes nothing further) on the first
  // error, or if the stored version is newer than this binary knows.
  absl::Status Migrate(const std::vector<std::string>& migrations);
  absl::StatusOr<int> SchemaVersion();

  // OK when PRAGMA integrity_check says "ok".
  absl::Status IntegrityCheck();

  int64_t LastInsertRowId() const;
  int Changes() const;
  sqlite3* raw() { return db_; }
  const std::string& path() const { return path_; }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status Error(int rc, std::string_view what) const;

  sqlite3* db_;
  std::string path_;
  std::map<std::string, Statement> cache_;
};

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless Commit()
// succeeded. IMMEDIATE takes the write lock up front so a transaction never
// fails half-way with SQLITE_BUSY on upgrade.
class Transaction {
 public:
  explicit Transaction(Database* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const absl::Status& status() const { return begin_status_; }
  absl::Status Commit();

 private:
  Database* db_;
  absl::Status begin_status_;
  bool done_ = false;
};

}  // namespace cnet::sqlite

#endif  // CNET_LIBS_SQLITE_DATABASE_H_
