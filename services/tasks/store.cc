#include "services/tasks/store.h"

#include <utility>

#include <glog/logging.h>

#include "absl/strings/str_cat.h"
#include "libs/status/macros.h"
#include "proto/claudenet/v1/tasks.pb.h"

namespace cnet::tasks {
namespace {

// Migration i brings the schema to version i + 1. Never edit a shipped
// migration; append a new one.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string>* const migrations = new std::vector<std::string>{
      R"sql(
CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  state INTEGER NOT NULL,
  creator TEXT NOT NULL,
  parent_id TEXT NOT NULL,
  assignee TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  history_len INTEGER NOT NULL,
  body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX tasks_by_state ON tasks(state);
CREATE INDEX tasks_by_parent ON tasks(parent_id);
CREATE TABLE dependencies (
  task_id TEXT NOT NULL,
  depends_on TEXT NOT NULL,
  PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX dependencies_reverse ON dependencies(depends_on);
CREATE TABLE history (
  task_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  from_state INTEGER NOT NULL,
  to_state INTEGER NOT NULL,
  actor_kind INTEGER NOT NULL,
  actor_id TEXT NOT NULL,
  actor_on_behalf_of TEXT NOT NULL,
  reason TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  lease_epoch INTEGER NOT NULL,
  holder TEXT NOT NULL,
  event_seq INTEGER NOT NULL,
  PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE INDEX history_by_time ON history(time_us);
CREATE TABLE leases (
  task_id TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  lease_id TEXT NOT NULL,
  holder TEXT NOT NULL,
  acquired_us INTEGER NOT NULL,
  ended_us INTEGER NOT NULL,
  end_reason TEXT NOT NULL,
  PRIMARY KEY (task_id, epoch)
) WITHOUT ROWID;
CREATE TABLE idempotency (
  creator TEXT NOT NULL,
  key TEXT NOT NULL,
  task_id TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  PRIMARY KEY (creator, key)
) WITHOUT ROWID;
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  time_us INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  body BLOB NOT NULL
);
CREATE TABLE notices (
  id TEXT PRIMARY KEY,
  created_us INTEGER NOT NULL,
  body BLOB NOT NULL
) WITHOUT ROWID;
)sql",
      // 2: rows carry a ~1 KB blob, so a rowid table (WITHOUT ROWID suits
      // small rows); the service reads every task at start and keeps them in
      // memory, so no secondary index is needed, and each cost a page write
      // per change. (Idempotent for either earlier shape of the table.)
      R"sql(
CREATE TABLE tasks_v2 (
  id TEXT PRIMARY KEY,
  state INTEGER NOT NULL,
  creator TEXT NOT NULL,
  parent_id TEXT NOT NULL,
  assignee TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  history_len INTEGER NOT NULL,
  body BLOB NOT NULL
);
INSERT INTO tasks_v2 (id, state, creator, parent_id, assignee, created_us, updated_us,
                      history_len, body)
  SELECT id, state, creator, parent_id, assignee, created_us, updated_us, history_len, body
  FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_v2 RENAME TO tasks;
)sql",
      // 3: path reservations.
      R"sql(
CREATE TABLE reservations (
  id TEXT PRIMARY KEY,
  workspace TEXT NOT NULL,
  holder TEXT NOT NULL,
  expires_us INTEGER NOT NULL,
  body BLOB NOT NULL
);
)sql",
  };
  return *migrations;
}

// Indexed columns of a stored reservation (for inspection with sqlite3).
struct ReservationColumns {
  std::string workspace;
  std::string holder;
  int64_t expires_us = 0;
};
ReservationColumns ReservationColumnsOf(const std::string& body) {
  claudenet::v1::Reservation r;
  ReservationColumns c;
  if (r.ParseFromString(body)) {
    c.workspace = r.workspace();
    c.holder = r.holder();
    c.expires_us = r.expires_at().seconds() * 1000000 + r.expires_at().nanos() / 1000;
  }
  return c;
}

}  // namespace

bool WriteBatch::empty() const {
  return tasks.empty() && dependencies.empty() && history.empty() && leases.empty() &&
         idempotency.empty() && events.empty() && notices.empty() && notices_done.empty() &&
         reservations.empty() && reservations_deleted.empty();
}

void WriteBatch::Merge(WriteBatch&& later) {
  for (auto& [id, row] : later.tasks) tasks[id] = std::move(row);
  for (auto& [id, deps] : later.dependencies) dependencies[id] = std::move(deps);
  for (auto& [key, row] : later.leases) leases[key] = std::move(row);
  auto append = [](auto& to, auto& from) {
    if (to.empty()) {
      to = std::move(from);
    } else {
      for (auto& x : from) to.push_back(std::move(x));
    }
  };
  append(history, later.history);
  append(idempotency, later.idempotency);
  append(events, later.events);
  append(notices, later.notices);
  append(notices_done, later.notices_done);
  for (auto& [id, body] : later.reservations) {
    reservations_deleted.erase(id);
    reservations[id] = std::move(body);
  }
  for (const std::string& id : later.reservations_deleted) {
    reservations.erase(id);
    reservations_deleted.insert(id);
  }
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const Options& options) {
  if (options.path.empty() || options.path == ":memory:") {
    return absl::InvalidArgumentError("tasks store needs a file path");
  }
  sqlite::Database::Options db_options;
  db_options.path = options.path;
  db_options.synchronous_full = options.synchronous_full;
  CNET_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> writer,
                        sqlite::Database::Open(db_options));
  CNET_RETURN_IF_ERROR(writer->Migrate(Migrations()));
  CNET_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> reader,
                        sqlite::Database::Open(db_options));
  std::unique_ptr<Store> store(new Store(options, std::move(writer), std::move(reader)));
  if (options.background_checkpoint) {
    CNET_RETURN_IF_ERROR(store->writer_->Exec("PRAGMA wal_autocheckpoint=0;"));
    CNET_ASSIGN_OR_RETURN(store->checkpointer_, sqlite::Database::Open(db_options));
    store->checkpoint_thread_ = std::thread([s = store.get()] { s->CheckpointLoop(); });
  }
  return store;
}

Store::~Store() {
  {
    absl::MutexLock lock(&checkpoint_mu_);
    stopping_ = true;
    checkpoint_cv_.SignalAll();
  }
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
}

void Store::CheckpointLoop() {
  absl::MutexLock lock(&checkpoint_mu_);
  while (!stopping_) {
    checkpoint_cv_.WaitWithTimeout(&checkpoint_mu_, options_.checkpoint_interval);
    if (stopping_) break;
    checkpoint_mu_.Unlock();
    // PASSIVE: copies what it can without blocking the writer or readers.
    absl::Status s = checkpointer_->Exec("PRAGMA wal_checkpoint(PASSIVE);");
    if (!s.ok()) LOG(WARNING) << "tasks store: checkpoint: " << s;
    checkpoint_mu_.Lock();
  }
}

absl::Status Store::Apply(const WriteBatch& batch) {
  if (batch.empty()) return absl::OkStatus();
  sqlite::Transaction tx(writer_.get());
  CNET_RETURN_IF_ERROR(tx.status());
  CNET_RETURN_IF_ERROR(ApplyLocked(batch));
  return tx.Commit();
}

absl::Status Store::ApplyLocked(const WriteBatch& batch) {
  sqlite::Database* db = writer_.get();
  if (!batch.tasks.empty()) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * put,
        db->Cached("INSERT OR REPLACE INTO tasks (id, state, creator, parent_id, assignee, "
                   "created_us, updated_us, history_len, body) VALUES (?,?,?,?,?,?,?,?,?)"));
    for (const auto& [id, row] : batch.tasks) {
      put->Reset();
      put->Bind(1, row.id).Bind(2, row.state).Bind(3, row.creator).Bind(4, row.parent_id)
          .Bind(5, row.assignee).Bind(6, row.created_us).Bind(7, row.updated_us)
          .Bind(8, row.history_len).BindBlob(9, row.body);
      CNET_RETURN_IF_ERROR(put->Run());
    }
  }
  if (!batch.dependencies.empty()) {
    CNET_ASSIGN_OR_RETURN(sqlite::Statement * del,
                          db->Cached("DELETE FROM dependencies WHERE task_id = ?"));
    for (const auto& [id, deps] : batch.dependencies) {
      del->Reset();
      del->Bind(1, id);
      CNET_RETURN_IF_ERROR(del->Run());
      CNET_ASSIGN_OR_RETURN(
          sqlite::Statement * ins,
          db->Cached("INSERT OR IGNORE INTO dependencies (task_id, depends_on) VALUES (?,?)"));
      for (const std::string& dep : deps) {
        ins->Reset();
        ins->Bind(1, id).Bind(2, dep);
        CNET_RETURN_IF_ERROR(ins->Run());
      }
    }
  }
  if (!batch.history.empty()) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * ins,
        db->Cached("INSERT OR REPLACE INTO history (task_id, idx, from_state, to_state, "
                   "actor_kind, actor_id, actor_on_behalf_of, reason, time_us, attempt, "
                   "lease_epoch, holder, event_seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    for (const HistoryRow& h : batch.history) {
      ins->Reset();
      ins->Bind(1, h.task_id).Bind(2, h.index).Bind(3, h.from_state).Bind(4, h.to_state)
          .Bind(5, h.actor_kind).Bind(6, h.actor_id).Bind(7, h.actor_on_behalf_of)
          .Bind(8, h.reason).Bind(9, h.time_us).Bind(10, h.attempt).Bind(11, h.lease_epoch)
          .Bind(12, h.holder).Bind(13, h.event_sequence);
      CNET_RETURN_IF_ERROR(ins->Run());
    }
  }
  if (!batch.leases.empty()) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * put,
        db->Cached("INSERT OR REPLACE INTO leases (task_id, epoch, lease_id, holder, "
                   "acquired_us, ended_us, end_reason) VALUES (?,?,?,?,?,?,?)"));
    for (const auto& [key, l] : batch.leases) {
      put->Reset();
      put->Bind(1, l.task_id).Bind(2, l.epoch).Bind(3, l.lease_id).Bind(4, l.holder)
          .Bind(5, l.acquired_us).Bind(6, l.ended_us).Bind(7, l.end_reason);
      CNET_RETURN_IF_ERROR(put->Run());
    }
  }
  if (!batch.idempotency.empty()) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * put,
        db->Cached("INSERT OR REPLACE INTO idempotency (creator, key, task_id, request_hash, "
                   "created_us) VALUES (?,?,?,?,?)"));
    for (const IdempotencyRow& r : batch.idempotency) {
      put->Reset();
      put->Bind(1, r.creator).Bind(2, r.key).Bind(3, r.task_id).Bind(4, r.request_hash)
          .Bind(5, r.created_us);
      CNET_RETURN_IF_ERROR(put->Run());
    }
  }
  if (!batch.events.empty()) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * put,
        db->Cached("INSERT OR REPLACE INTO events (seq, time_us, task_id, body) VALUES (?,?,?,?)"));
    for (const EventRow& e : batch.events) {
      put->Reset();
      put->Bind(1, e.sequence).Bind(2, e.time_us).Bind(3, e.task_id).BindBlob(4, e.body);
      CNET_RETURN_IF_ERROR(put->Run());
    }
    // Prune the tail now and then (not every batch: the delete walks an
    // index range).
    if (++applied_batches_ % 64 == 0) {
      CNET_ASSIGN_OR_RETURN(sqlite::Statement * prune,
                            db->Cached("DELETE FROM events WHERE seq <= ?"));
      prune->Bind(1, batch.events.back().sequence - options_.event_retention);
      CNET_RETURN_IF_ERROR(prune->Run());
    }
  }
  if (!batch.notices.empty()) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * put,
        db->Cached("INSERT OR REPLACE INTO notices (id, created_us, body) VALUES (?,?,?)"));
    for (const NoticeRow& n : batch.notices) {
      put->Reset();
      put->Bind(1, n.id).Bind(2, n.created_us).BindBlob(3, n.body);
      CNET_RETURN_IF_ERROR(put->Run());
    }
  }
  if (!batch.notices_done.empty()) {
    CNET_ASSIGN_OR_RETURN(sqlite::Statement * del,
                          db->Cached("DELETE FROM notices WHERE id = ?"));
    for (const std::string& id : batch.notices_done) {
      del->Reset();
      del->Bind(1, id);
      CNET_RETURN_IF_ERROR(del->Run());
    }
  }
  if (!batch.reservations.empty()) {
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * put,
        db->Cached("INSERT OR REPLACE INTO reservations (id, workspace, holder, expires_us, body) "
                   "VALUES (?,?,?,?,?)"));
    for (const auto& [id, body] : batch.reservations) {
      ReservationColumns c = ReservationColumnsOf(body);
      put->Reset();
      put->Bind(1, id).Bind(2, c.workspace).Bind(3, c.holder).Bind(4, c.expires_us)
          .BindBlob(5, body);
      CNET_RETURN_IF_ERROR(put->Run());
    }
  }
  if (!batch.reservations_deleted.empty()) {
    CNET_ASSIGN_OR_RETURN(sqlite::Statement * del,
                          db->Cached("DELETE FROM reservations WHERE id = ?"));
    for (const std::string& id : batch.reservations_deleted) {
      del->Reset();
      del->Bind(1, id);
      CNET_RETURN_IF_ERROR(del->Run());
    }
  }
  return absl::OkStatus();
}

absl::Status Store::ForEachReservation(const std::function<void(std::string&&)>& fn) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement q,
                        writer_->Prepare("SELECT body FROM reservations ORDER BY id"));
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    fn(q.ColumnText(0));
  }
  return absl::OkStatus();
}

absl::Status Store::ForEachTask(const std::function<void(TaskRow&&)>& fn) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement q,
                        writer_->Prepare("SELECT id, state, creator, parent_id, assignee, "
                                         "created_us, updated_us, history_len, body FROM tasks "
                                         "ORDER BY id"));
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    TaskRow r;
    r.id = q.ColumnText(0);
    r.state = static_cast<int>(q.ColumnInt(1));
    r.creator = q.ColumnText(2);
    r.parent_id = q.ColumnText(3);
    r.assignee = q.ColumnText(4);
    r.created_us = q.ColumnInt(5);
    r.updated_us = q.ColumnInt(6);
    r.history_len = q.ColumnInt(7);
    r.body = q.ColumnText(8);
    fn(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status Store::ForEachLease(const std::function<void(LeaseRow&&)>& fn) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement q,
                        writer_->Prepare("SELECT task_id, epoch, lease_id, holder, acquired_us, "
                                         "ended_us, end_reason FROM leases "
                                         "ORDER BY task_id, epoch"));
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    LeaseRow r;
    r.task_id = q.ColumnText(0);
    r.epoch = q.ColumnInt(1);
    r.lease_id = q.ColumnText(2);
    r.holder = q.ColumnText(3);
    r.acquired_us = q.ColumnInt(4);
    r.ended_us = q.ColumnInt(5);
    r.end_reason = q.ColumnText(6);
    fn(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status Store::ForEachIdempotencyKey(const std::function<void(IdempotencyRow&&)>& fn) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement q,
                        writer_->Prepare("SELECT creator, key, task_id, request_hash, "
                                         "created_us FROM idempotency"));
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    IdempotencyRow r;
    r.creator = q.ColumnText(0);
    r.key = q.ColumnText(1);
    r.task_id = q.ColumnText(2);
    r.request_hash = q.ColumnText(3);
    r.created_us = q.ColumnInt(4);
    fn(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status Store::ForEachNotice(const std::function<void(NoticeRow&&)>& fn) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement q,
      writer_->Prepare("SELECT id, created_us, body FROM notices ORDER BY created_us, id"));
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    NoticeRow r;
    r.id = q.ColumnText(0);
    r.created_us = q.ColumnInt(1);
    r.body = q.ColumnText(2);
    fn(std::move(r));
  }
  return absl::OkStatus();
}

namespace {
HistoryRow ReadHistoryRow(const sqlite::Statement& q) {
  HistoryRow h;
  h.task_id = q.ColumnText(0);
  h.index = q.ColumnInt(1);
  h.from_state = static_cast<int>(q.ColumnInt(2));
  h.to_state = static_cast<int>(q.ColumnInt(3));
  h.actor_kind = static_cast<int>(q.ColumnInt(4));
  h.actor_id = q.ColumnText(5);
  h.actor_on_behalf_of = q.ColumnText(6);
  h.reason = q.ColumnText(7);
  h.time_us = q.ColumnInt(8);
  h.attempt = static_cast<int>(q.ColumnInt(9));
  h.lease_epoch = q.ColumnInt(10);
  h.holder = q.ColumnText(11);
  h.event_sequence = q.ColumnInt(12);
  return h;
}
constexpr char kHistoryColumns[] =
    "task_id, idx, from_state, to_state, actor_kind, actor_id, actor_on_behalf_of, reason, "
    "time_us, attempt, lease_epoch, holder, event_seq";
}  // namespace

absl::Status Store::ForEachHistorySince(int64_t since_us,
                                        const std::function<void(HistoryRow&&)>& fn) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement q,
      writer_->Prepare(absl::StrCat("SELECT ", kHistoryColumns,
                                    " FROM history WHERE time_us >= ? ORDER BY time_us, "
                                    "task_id, idx")));
  q.Bind(1, since_us);
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    fn(ReadHistoryRow(q));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Store::MaxEventSequence() {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement q,
                        writer_->Prepare("SELECT COALESCE(MAX(seq), 0) FROM events"));
  CNET_ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? q.ColumnInt(0) : 0;
}

absl::StatusOr<std::vector<HistoryRow>> Store::ReadHistory(const std::string& task_id,
                                                           int64_t after_index, int limit) {
  absl::MutexLock lock(&reader_mu_);
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * q,
      reader_->Cached(absl::StrCat("SELECT ", kHistoryColumns,
                                   " FROM history WHERE task_id = ? AND idx > ? "
                                   "ORDER BY idx LIMIT ?")));
  q->Bind(1, task_id).Bind(2, after_index).Bind(3, limit);
  std::vector<HistoryRow> out;
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(ReadHistoryRow(*q));
  }
  q->Reset();
  return out;
}

absl::StatusOr<std::vector<EventRow>> Store::ReadEvents(int64_t after_sequence, int limit) {
  absl::MutexLock lock(&reader_mu_);
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * q,
      reader_->Cached("SELECT seq, time_us, task_id, body FROM events WHERE seq > ? "
                      "ORDER BY seq LIMIT ?"));
  q->Bind(1, after_sequence).Bind(2, limit);
  std::vector<EventRow> out;
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    EventRow e;
    e.sequence = q->ColumnInt(0);
    e.time_us = q->ColumnInt(1);
    e.task_id = q->ColumnText(2);
    e.body = q->ColumnText(3);
    out.push_back(std::move(e));
  }
  q->Reset();
  return out;
}

absl::StatusOr<int64_t> Store::MinEventSequence() {
  absl::MutexLock lock(&reader_mu_);
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * q,
                        reader_->Cached("SELECT COALESCE(MIN(seq), 0) FROM events"));
  CNET_ASSIGN_OR_RETURN(bool row, q->Step());
  int64_t min = row ? q->ColumnInt(0) : 0;
  q->Reset();
  return min;
}

absl::StatusOr<std::vector<std::string>> Store::ReadDependencies(const std::string& task_id) {
  absl::MutexLock lock(&reader_mu_);
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * q,
      reader_->Cached("SELECT depends_on FROM dependencies WHERE task_id = ? ORDER BY depends_on"));
  q->Bind(1, task_id);
  std::vector<std::string> out;
  while (true) {
    CNET_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(q->ColumnText(0));
  }
  q->Reset();
  return out;
}

}  // namespace cnet::tasks
