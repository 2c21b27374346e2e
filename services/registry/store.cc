#include "services/registry/store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/status/macros.h"

namespace cnet::registry {

namespace {

// Migration i brings the schema to version i + 1. Never edit a released
// migration: append a new one.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string>* const migrations = new std::vector<std::string>{
      // 1: agents, presence, events, revoked tokens.
      R"sql(
        CREATE TABLE agents (
          rowid INTEGER PRIMARY KEY,
          id TEXT NOT NULL UNIQUE,
          token_hash BLOB,
          record BLOB NOT NULL
        );
        CREATE TABLE presence (
          agent_rowid INTEGER PRIMARY KEY REFERENCES agents(rowid) ON DELETE CASCADE,
          last_seen_ns INTEGER NOT NULL,
          metrics BLOB,
          recovery_remaining INTEGER NOT NULL DEFAULT 0,
          have_baseline INTEGER NOT NULL DEFAULT 0,
          base_errors INTEGER NOT NULL DEFAULT 0,
          base_messages INTEGER NOT NULL DEFAULT 0,
          base_time_ns INTEGER NOT NULL DEFAULT 0,
          base_uptime_ms INTEGER NOT NULL DEFAULT 0,
          metrics_violation INTEGER NOT NULL DEFAULT 0,
          metrics_reason TEXT NOT NULL DEFAULT '',
          reported_health INTEGER NOT NULL DEFAULT 0,
          last_rotation_ns INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE events (
          sequence INTEGER PRIMARY KEY,
          event BLOB NOT NULL
        );
        CREATE TABLE revoked_tokens (
          token_hash BLOB PRIMARY KEY,
          agent_id TEXT NOT NULL,
          reason INTEGER NOT NULL,
          revoked_ns INTEGER NOT NULL
        );
      )sql",
  };
  return *migrations;
}

constexpr char kPresenceColumns[] =
    "last_seen_ns, metrics, recovery_remaining, have_baseline, base_errors, base_messages, "
    "base_time_ns, base_uptime_ms, metrics_violation, metrics_reason, reported_health, "
    "last_rotation_ns";

// Binds the presence columns at 1..12; the rowid goes at 13.
void BindPresence(sqlite::Statement* st, const PresenceRow& p) {
  st->Bind(1, p.last_seen_ns);
  if (p.metrics.empty()) {
    st->BindNull(2);
  } else {
    st->BindBlob(2, p.metrics);
  }
  st->Bind(3, static_cast<int64_t>(p.recovery_remaining));
  st->Bind(4, static_cast<int64_t>(p.have_baseline));
  st->Bind(5, p.base_errors);
  st->Bind(6, p.base_messages);
  st->Bind(7, p.base_time_ns);
  st->Bind(8, p.base_uptime_ms);
  st->Bind(9, static_cast<int64_t>(p.metrics_violation));
  st->Bind(10, std::string_view(p.metrics_reason));
  st->Bind(11, static_cast<int64_t>(p.reported_health));
  st->Bind(12, p.last_rotation_ns);
  st->Bind(13, p.rowid);
}

PresenceRow ReadPresence(const sqlite::Statement& st, int first) {
  PresenceRow p;
  p.last_seen_ns = st.ColumnInt(first);
  p.metrics = st.ColumnText(first + 1);
  p.recovery_remaining = static_cast<int32_t>(st.ColumnInt(first + 2));
  p.have_baseline = st.ColumnInt(first + 3) != 0;
  p.base_errors = st.ColumnInt(first + 4);
  p.base_messages = st.ColumnInt(first + 5);
  p.base_time_ns = st.ColumnInt(first + 6);
  p.base_uptime_ms = st.ColumnInt(first + 7);
  p.metrics_violation = st.ColumnInt(first + 8) != 0;
  p.metrics_reason = st.ColumnText(first + 9);
  p.reported_health = static_cast<int32_t>(st.ColumnInt(first + 10));
  p.last_rotation_ns = st.ColumnInt(first + 11);
  return p;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RegistryStore>> RegistryStore::Open(const std::string& path) {
  sqlite::Database::Options options;
  options.path = path;
  CNET_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> db, sqlite::Database::Open(options));
  CNET_RETURN_IF_ERROR(db->Migrate(Migrations()));
  return std::unique_ptr<RegistryStore>(new RegistryStore(std::move(db)));
}

absl::StatusOr<std::vector<AgentRow>> RegistryStore::LoadAgents() {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement st,
      db_->Prepare(absl::StrCat("SELECT a.rowid, a.id, a.token_hash, a.record, ",
                                kPresenceColumns,
                                " FROM agents a JOIN presence p ON p.agent_rowid = a.rowid"
                                " ORDER BY a.rowid")));
  std::vector<AgentRow> rows;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool more, st.Step());
    if (!more) break;
    AgentRow row;
    row.rowid = st.ColumnInt(0);
    row.id = st.ColumnText(1);
    row.token_hash = st.ColumnText(2);
    row.record = st.ColumnText(3);
    row.presence = ReadPresence(st, 4);
    row.presence.rowid = row.rowid;
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::vector<std::string>> RegistryStore::LoadEvents(int64_t limit) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement st,
      db_->Prepare("SELECT event FROM (SELECT sequence, event FROM events ORDER BY sequence "
                   "DESC LIMIT ?) ORDER BY sequence"));
  st.Bind(1, limit);
  std::vector<std::string> events;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool more, st.Step());
    if (!more) break;
    events.push_back(st.ColumnText(0));
  }
  return events;
}

absl::StatusOr<int64_t> RegistryStore::LastSequence() {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement st,
                        db_->Prepare("SELECT COALESCE(MAX(sequence), 0) FROM events"));
  CNET_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.ColumnInt(0) : 0;
}

absl::StatusOr<std::vector<RevokedToken>> RegistryStore::LoadRevoked(int64_t limit) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement st,
      db_->Prepare("SELECT token_hash, agent_id, reason, revoked_ns FROM (SELECT * FROM "
                   "revoked_tokens ORDER BY revoked_ns DESC LIMIT ?) ORDER BY revoked_ns"));
  st.Bind(1, limit);
  std::vector<RevokedToken> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool more, st.Step());
    if (!more) break;
    RevokedToken t;
    t.token_hash = st.ColumnText(0);
    t.agent_id = st.ColumnText(1);
    t.reason = static_cast<int32_t>(st.ColumnInt(2));
    t.revoked_ns = st.ColumnInt(3);
    out.push_back(std::move(t));
  }
  return out;
}

absl::Status RegistryStore::UpsertPresence(const PresenceRow& row, bool insert) {
  static const std::string* const kInsert = new std::string(
      absl::StrCat("INSERT OR REPLACE INTO presence (", kPresenceColumns,
                   ", agent_rowid) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  static const std::string* const kUpdate = new std::string(
      "UPDATE presence SET last_seen_ns=?, metrics=?, recovery_remaining=?, have_baseline=?, "
      "base_errors=?, base_messages=?, base_time_ns=?, base_uptime_ms=?, metrics_violation=?, "
      "metrics_reason=?, reported_health=?, last_rotation_ns=? WHERE agent_rowid=?");
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st, db_->Cached(insert ? *kInsert : *kUpdate));
  BindPresence(st, row);
  return st->Run();
}

absl::Status RegistryStore::Apply(WriteBatch* batch) {
  sqlite::Transaction tx(db_.get());
  CNET_RETURN_IF_ERROR(tx.status());
  for (int64_t rowid : batch->deletes) {
    CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                          db_->Cached("DELETE FROM agents WHERE rowid = ?"));
    st->Bind(1, rowid);
    CNET_RETURN_IF_ERROR(st->Run());
  }
  std::vector<int64_t> inserted(batch->upserts.size(), 0);
  for (size_t i = 0; i < batch->upserts.size(); ++i) {
    AgentRow& row = batch->upserts[i];
    sqlite::Statement* st = nullptr;
    if (row.rowid == 0) {
      CNET_ASSIGN_OR_RETURN(
          st, db_->Cached("INSERT INTO agents (id, token_hash, record) VALUES (?, ?, ?)"));
      st->Bind(1, std::string_view(row.id));
    } else {
      CNET_ASSIGN_OR_RETURN(
          st, db_->Cached("UPDATE agents SET id = ?, token_hash = ?, record = ? WHERE rowid = ?"));
      st->Bind(1, std::string_view(row.id));
      st->Bind(4, row.rowid);
    }
    if (row.token_hash.empty()) {
      st->BindNull(2);
    } else {
      st->BindBlob(2, row.token_hash);
    }
    st->BindBlob(3, row.record);
    CNET_RETURN_IF_ERROR(st->Run());
    int64_t rowid = row.rowid;
    if (rowid == 0) {
      rowid = db_->LastInsertRowId();
      inserted[i] = rowid;
    }
    PresenceRow presence = row.presence;
    presence.rowid = rowid;
    CNET_RETURN_IF_ERROR(UpsertPresence(presence, /*insert=*/true));
  }
  for (const RevokedToken& t : batch->revoked) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * st,
        db_->Cached("INSERT OR REPLACE INTO revoked_tokens (token_hash, agent_id, reason, "
                    "revoked_ns) VALUES (?, ?, ?, ?)"));
    st->BindBlob(1, t.token_hash);
    st->Bind(2, std::string_view(t.agent_id));
    st->Bind(3, static_cast<int64_t>(t.reason));
    st->Bind(4, t.revoked_ns);
    CNET_RETURN_IF_ERROR(st->Run());
  }
  for (const auto& [sequence, event] : batch->events) {
    CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                          db_->Cached("INSERT INTO events (sequence, event) VALUES (?, ?)"));
    st->Bind(1, sequence);
    st->BindBlob(2, event);
    CNET_RETURN_IF_ERROR(st->Run());
  }
  CNET_RETURN_IF_ERROR(tx.Commit());
  for (size_t i = 0; i < batch->upserts.size(); ++i) {
    if (inserted[i] != 0) {
      batch->upserts[i].rowid = inserted[i];
      batch->upserts[i].presence.rowid = inserted[i];
    }
  }
  return absl::OkStatus();
}

absl::Status RegistryStore::WritePresence(const std::vector<PresenceRow>& rows) {
  if (rows.empty()) return absl::OkStatus();
  sqlite::Transaction tx(db_.get());
  CNET_RETURN_IF_ERROR(tx.status());
  for (const PresenceRow& row : rows) {
    CNET_RETURN_IF_ERROR(UpsertPresence(row, /*insert=*/false));
  }
  return tx.Commit();
}

absl::Status RegistryStore::Trim(int64_t up_to_sequence, int64_t keep_revoked) {
  sqlite::Transaction tx(db_.get());
  CNET_RETURN_IF_ERROR(tx.status());
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      db_->Cached("DELETE FROM events WHERE sequence <= ? AND sequence < "
                  "(SELECT MAX(sequence) FROM events)"));
  st->Bind(1, up_to_sequence);
  CNET_RETURN_IF_ERROR(st->Run());
  CNET_ASSIGN_OR_RETURN(
      st, db_->Cached("DELETE FROM revoked_tokens WHERE token_hash NOT IN (SELECT token_hash "
                      "FROM revoked_tokens ORDER BY revoked_ns DESC LIMIT ?)"));
  st->Bind(1, keep_revoked);
  CNET_RETURN_IF_ERROR(st->Run());
  return tx.Commit();
}

}  // namespace cnet::registry
