#include "libs/sqlite/database.h"

#include <sqlite3.h>

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cnet::sqlite {

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      owned_(other.owned_),
      bind_error_(std::move(other.bind_error_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    owned_ = other.owned_;
    bind_error_ = std::move(other.bind_error_);
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

namespace {
absl::Status BindStatus(sqlite3_stmt* stmt, int rc, int index) {
  if (rc == SQLITE_OK) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("sqlite: binding parameter ", index,
                                          " of \"", sqlite3_sql(stmt), "\": ",
                                          sqlite3_errstr(rc)));
}
}  // namespace

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_error_.ok()) bind_error_ = BindStatus(stmt_, rc, index);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_, index, value);
  if (bind_error_.ok()) bind_error_ = BindStatus(stmt_, rc, index);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  int rc = sqlite3_bind_text(stmt_, index, text.data(),
                             static_cast<int>(text.size()), SQLITE_TRANSIENT);
  if (bind_error_.ok()) bind_error_ = BindStatus(stmt_, rc, index);
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  int rc = sqlite3_bind_blob(stmt_, index, bytes.data(),
                             static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  if (bind_error_.ok()) bind_error_ = BindStatus(stmt_, rc, index);
  return *this;
}

Statement& Statement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (bind_error_.ok()) bind_error_ = BindStatus(stmt_, rc, index);
  return *this;
}

absl::Status Statement::StepError(int rc) const {
  sqlite3* db = sqlite3_db_handle(stmt_);
  absl::StatusCode code = absl::StatusCode::kInternal;
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) code = absl::StatusCode::kUnavailable;
  if (rc == SQLITE_CONSTRAINT) code = absl::StatusCode::kAlreadyExists;
  if (rc == SQLITE_FULL) code = absl::StatusCode::kResourceExhausted;
  return absl::Status(code, absl::StrCat("sqlite: \"", sqlite3_sql(stmt_),
                                         "\": ", sqlite3_errmsg(db)));
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status error = StepError(rc);
  sqlite3_reset(stmt_);
  return error;
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  return absl::OkStatus();
}

int64_t Statement::ColumnInt(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

double Statement::ColumnDouble(int col) const {
  return sqlite3_column_double(stmt_, col);
}

std::string Statement::ColumnText(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  if (data == nullptr) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<size_t>(n));
}

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const Options& options) {
  if (options.path != ":memory:") {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create directory ", parent.string(), ": ", ec.message()));
    }
  }
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(options.path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open database ", options.path, ": ", msg));
  }
  std::unique_ptr<Database> db(new Database(raw, options.path));
  sqlite3_busy_timeout(raw, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  std::string pragmas = absl::StrCat(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=",
      options.synchronous_full ? "FULL" : "NORMAL",
      "; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;");
  absl::Status s = db->Exec(pragmas);
  if (!s.ok()) return s;
  return db;
}

Database::~Database() {
  cache_.clear();
  sqlite3_close(db_);
}

absl::Status Database::Error(int rc, std::string_view what) const {
  absl::StatusCode code = absl::StatusCode::kInternal;
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) code = absl::StatusCode::kUnavailable;
  if (rc == SQLITE_CONSTRAINT) code = absl::StatusCode::kAlreadyExists;
  return absl::Status(code, absl::StrCat("sqlite: ", std::string(what), ": ", sqlite3_errmsg(db_)));
}

absl::Status Database::Exec(std::string_view sql) {
  std::string copy(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    absl::StatusCode code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                                ? absl::StatusCode::kUnavailable
                                : absl::StatusCode::kInternal;
    return absl::Status(code, absl::StrCat("sqlite: \"", copy, "\": ", msg));
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()),
                              &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, absl::StrCat("preparing \"", std::string(sql), "\""));
  return Statement(stmt, true);
}

absl::StatusOr<Statement*> Database::Cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    absl::StatusOr<Statement> stmt = Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    it = cache_.emplace(sql, std::move(*stmt)).first;
  } else {
    it->second.Reset();
  }
  return &it->second;
}

absl::StatusOr<int> Database::SchemaVersion() {
  absl::Status s = Exec(
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);");
  if (!s.ok()) return s;
  absl::StatusOr<Statement> q = Prepare("SELECT version FROM schema_version LIMIT 1");
  if (!q.ok()) return q.status();
  absl::StatusOr<bool> row = q->Step();
  if (!row.ok()) return row.status();
  return *row ? static_cast<int>(q->ColumnInt(0)) : 0;
}

absl::Status Database::Migrate(const std::vector<std::string>& migrations) {
  absl::StatusOr<int> version = SchemaVersion();
  if (!version.ok()) return version.status();
  if (*version > static_cast<int>(migrations.size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", path_, " has schema version ", *version,
        " but this binary knows only up to ", migrations.size(),
        "; use a newer binary"));
  }
  for (int v = *version; v < static_cast<int>(migrations.size()); ++v) {
    Transaction tx(this);
    if (!tx.status().ok()) return tx.status();
    absl::Status s = Exec(migrations[v]);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("migration ", v + 1, " of ",
                                                 path_, ": ", s.message()));
    }
    s = Exec(absl::StrCat("DELETE FROM schema_version; INSERT INTO schema_version VALUES (",
                          v + 1, ");"));
    if (!s.ok()) return s;
    s = tx.Commit();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Database::IntegrityCheck() {
  absl::StatusOr<Statement> q = Prepare("PRAGMA integrity_check");
  if (!q.ok()) return q.status();
  absl::StatusOr<bool> row = q->Step();
  if (!row.ok()) return row.status();
  std::string result = *row ? q->ColumnText(0) : "no result";
  if (result != "ok") {
    return absl::DataLossError(absl::StrCat("integrity_check of ", path_, ": ", result));
  }
  return absl::OkStatus();
}

int64_t Database::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

int Database::Changes() const { return sqlite3_changes(db_); }

Transaction::Transaction(Database* db) : db_(db) {
  begin_status_ = db_->Exec("BEGIN IMMEDIATE");
  if (!begin_status_.ok()) done_ = true;
}

Transaction::~Transaction() {
  if (!done_) db_->Exec("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  if (done_) return absl::FailedPreconditionError("transaction already finished");
  absl::Status s = db_->Exec("COMMIT");
  if (s.ok()) done_ = true;
  return s;
}

}  // namespace cnet::sqlite
