#include "services/macs-gateway/store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/status/macros.h"

namespace cnet::macs {
namespace pb = claudenet::v1;

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

namespace {

const std::vector<std::string>& Migrations() {
  static const auto* kMigrations = new std::vector<std::string>{
      R"sql(
CREATE TABLE messages (
  rowid INTEGER PRIMARY KEY,
  sender TEXT NOT NULL,
  id TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  accepted_us INTEGER NOT NULL,
  ack_deadline_us INTEGER NOT NULL DEFAULT 0,
  escalated INTEGER NOT NULL DEFAULT 0,
  data BLOB NOT NULL
);
CREATE INDEX messages_by_id ON messages(id, sender);
CREATE INDEX messages_by_thread ON messages(correlation_id) WHERE correlation_id <> '';
CREATE INDEX messages_escalation ON messages(ack_deadline_us)
  WHERE ack_deadline_us > 0 AND escalated = 0;

CREATE TABLE deliveries (
  recipient TEXT NOT NULL,
  seq INTEGER NOT NULL,
  msg_rowid INTEGER NOT NULL,
  msg_id TEXT NOT NULL,
  sender TEXT NOT NULL,
  node TEXT NOT NULL,
  remote INTEGER NOT NULL,
  state INTEGER NOT NULL,
  state_changed_us INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  dl_reason INTEGER NOT NULL,
  dl_detail TEXT NOT NULL,
  dl_at_us INTEGER NOT NULL,
  received_us INTEGER NOT NULL,
  first_delivered_us INTEGER NOT NULL,
  last_delivered_us INTEGER NOT NULL,
  read_us INTEGER NOT NULL,
  acked_us INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  type INTEGER NOT NULL,
  expires_us INTEGER NOT NULL,
  PRIMARY KEY (recipient, seq)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_message ON deliveries(msg_rowid, recipient);
CREATE INDEX deliveries_dead ON deliveries(recipient, dl_at_us) WHERE state = 7;

CREATE TABLE dedupe (
  sender TEXT NOT NULL,
  id TEXT NOT NULL,
  content_hash BLOB NOT NULL,
  msg_rowid INTEGER NOT NULL,
  expires_us INTEGER NOT NULL,
  response BLOB NOT NULL,
  PRIMARY KEY (sender, id)
) WITHOUT ROWID;
CREATE INDEX dedupe_expiry ON dedupe(expires_us);

CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  msg_rowid INTEGER NOT NULL,
  recipient TEXT NOT NULL,
  node TEXT NOT NULL,
  created_us INTEGER NOT NULL
);

CREATE TABLE counters (
  scope TEXT NOT NULL,
  name TEXT NOT NULL,
  value INTEGER NOT NULL,
  PRIMARY KEY (scope, name)
) WITHOUT ROWID;

CREATE TABLE inbox_seq (
  agent TEXT PRIMARY KEY,
  last_seq INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
  };
  return *kMigrations;
}

constexpr char kDeliveryColumns[] =
    "d.recipient, d.seq, d.msg_rowid, d.msg_id, d.sender, d.node, d.remote, d.state, "
    "d.state_changed_us, d.attempts, d.dl_reason, d.dl_detail, d.dl_at_us, d.received_us, "
    "d.first_delivered_us, d.last_delivered_us, d.read_us, d.acked_us, d.priority, d.type, "
    "d.expires_us";
constexpr int kDeliveryColumnCount = 21;

DeliveryRow ReadDelivery(const sqlite::Statement& st, int c = 0) {
  DeliveryRow r;
  r.recipient = st.ColumnText(c + 0);
  r.seq = st.ColumnInt(c + 1);
  r.msg_rowid = st.ColumnInt(c + 2);
  r.msg_id = st.ColumnText(c + 3);
  r.sender = st.ColumnText(c + 4);
  r.node = st.ColumnText(c + 5);
  r.remote = st.ColumnInt(c + 6) != 0;
  r.state = static_cast<int>(st.ColumnInt(c + 7));
  r.state_changed_us = st.ColumnInt(c + 8);
  r.attempts = static_cast<int>(st.ColumnInt(c + 9));
  r.dl_reason = static_cast<int>(st.ColumnInt(c + 10));
  r.dl_detail = st.ColumnText(c + 11);
  r.dl_at_us = st.ColumnInt(c + 12);
  r.received_us = st.ColumnInt(c + 13);
  r.first_delivered_us = st.ColumnInt(c + 14);
  r.last_delivered_us = st.ColumnInt(c + 15);
  r.read_us = st.ColumnInt(c + 16);
  r.acked_us = st.ColumnInt(c + 17);
  r.priority = static_cast<int>(st.ColumnInt(c + 18));
  r.type = static_cast<int>(st.ColumnInt(c + 19));
  r.expires_us = st.ColumnInt(c + 20);
  return r;
}

absl::StatusOr<std::shared_ptr<const pb::Message>> ParseMessage(const std::string& blob) {
  auto m = std::make_shared<pb::Message>();
  if (!m->ParseFromString(blob)) {
    return absl::DataLossError("message store: a stored message does not parse");
  }
  return std::shared_ptr<const pb::Message>(std::move(m));
}

}  // namespace

absl::StatusOr<std::unique_ptr<MessageStore>> MessageStore::Open(const std::string& path,
                                                                 bool fsync) {
  sqlite::Database::Options options;
  options.path = path;
  options.synchronous_full = fsync;
  CNET_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> db, sqlite::Database::Open(options));
  CNET_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=OFF"));
  CNET_RETURN_IF_ERROR(db->Migrate(Migrations()));
  return std::unique_ptr<MessageStore>(new MessageStore(std::move(db)));
}

MessageStore::~MessageStore() { StopCheckpointer(); }

absl::Status MessageStore::StartCheckpointer(absl::Duration interval) {
  sqlite::Database::Options options;
  options.path = db_->path();
  options.synchronous_full = true;
  CNET_ASSIGN_OR_RETURN(checkpoint_db_, sqlite::Database::Open(options));
  CNET_RETURN_IF_ERROR(db_->Exec("PRAGMA wal_autocheckpoint=16384"));
  checkpointer_ = std::thread([this, interval] {
    for (;;) {
      {
        absl::MutexLock lock(&checkpoint_mu_);
        auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(checkpoint_mu_) {
          return checkpoint_stop_;
        };
        checkpoint_mu_.AwaitWithTimeout(absl::Condition(&stop), interval);
        if (checkpoint_stop_) return;
      }
      checkpoint_db_->Exec("PRAGMA wal_checkpoint(PASSIVE)").IgnoreError();
    }
  });
  return absl::OkStatus();
}

void MessageStore::StopCheckpointer() {
  {
    absl::MutexLock lock(&checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  if (checkpointer_.joinable()) checkpointer_.join();
}

absl::StatusOr<sqlite::Statement*> MessageStore::Cached(const std::string& sql) {
  return db_->Cached(sql);
}

absl::StatusOr<int64_t> MessageStore::InsertMessage(const pb::Message& m, int64_t ack_deadline_us) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached("INSERT INTO messages(sender, id, correlation_id, accepted_us, "
                               "ack_deadline_us, escalated, data) VALUES(?,?,?,?,?,0,?)"));
  st->Bind(1, m.sender())
      .Bind(2, m.id())
      .Bind(3, m.correlation_id())
      .Bind(4, m.accepted_at().seconds() * 1000000 + m.accepted_at().nanos() / 1000)
      .Bind(5, ack_deadline_us)
      .BindBlob(6, m.SerializeAsString());
  CNET_RETURN_IF_ERROR(st->Run());
  return db_->LastInsertRowId();
}

absl::Status MessageStore::InsertDelivery(const DeliveryRow& r) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("INSERT INTO deliveries(recipient, seq, msg_rowid, msg_id, sender, node, remote, "
             "state, state_changed_us, attempts, dl_reason, dl_detail, dl_at_us, received_us, "
             "first_delivered_us, last_delivered_us, read_us, acked_us, priority, type, "
             "expires_us) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  st->Bind(1, r.recipient)
      .Bind(2, r.seq)
      .Bind(3, r.msg_rowid)
      .Bind(4, r.msg_id)
      .Bind(5, r.sender)
      .Bind(6, r.node)
      .Bind(7, r.remote ? 1 : 0)
      .Bind(8, r.state)
      .Bind(9, r.state_changed_us)
      .Bind(10, r.attempts)
      .Bind(11, r.dl_reason)
      .Bind(12, r.dl_detail)
      .Bind(13, r.dl_at_us)
      .Bind(14, r.received_us)
      .Bind(15, r.first_delivered_us)
      .Bind(16, r.last_delivered_us)
      .Bind(17, r.read_us)
      .Bind(18, r.acked_us)
      .Bind(19, r.priority)
      .Bind(20, r.type)
      .Bind(21, r.expires_us);
  return st->Run();
}

absl::Status MessageStore::InsertDedupe(const DedupeRecord& rec, int64_t msg_rowid,
                                        const std::string& response_blob) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached("INSERT OR REPLACE INTO dedupe(sender, id, content_hash, "
                               "msg_rowid, expires_us, response) VALUES(?,?,?,?,?,?)"));
  st->Bind(1, rec.sender)
      .Bind(2, rec.id)
      .BindBlob(3, rec.content_hash)
      .Bind(4, msg_rowid)
      .Bind(5, rec.expires_us)
      .BindBlob(6, response_blob);
  return st->Run();
}

absl::StatusOr<int64_t> MessageStore::InsertOutbox(int64_t msg_rowid, const std::string& recipient,
                                                   const std::string& node, int64_t created_us) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("INSERT INTO outbox(msg_rowid, recipient, node, created_us) VALUES(?,?,?,?)"));
  st->Bind(1, msg_rowid).Bind(2, recipient).Bind(3, node).Bind(4, created_us);
  CNET_RETURN_IF_ERROR(st->Run());
  return db_->LastInsertRowId();
}

absl::Status MessageStore::DeleteOutbox(int64_t id) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st, Cached("DELETE FROM outbox WHERE id = ?"));
  st->Bind(1, id);
  return st->Run();
}

absl::StatusOr<std::optional<std::string>> MessageStore::OutboxRecipient(int64_t id) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached("SELECT recipient FROM outbox WHERE id = ?"));
  st->Bind(1, id);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st->ColumnText(0));
}

absl::StatusOr<bool> MessageStore::MarkDelivered(const std::string& recipient, int64_t seq,
                                                 int attempts, int64_t now_us) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("UPDATE deliveries SET "
             "state = CASE WHEN state = 1 THEN 3 ELSE state END, "
             "state_changed_us = CASE WHEN state = 1 THEN ?3 ELSE state_changed_us END, "
             "attempts = MAX(attempts, ?4), "
             "first_delivered_us = CASE WHEN first_delivered_us = 0 THEN ?3 "
             "ELSE first_delivered_us END, last_delivered_us = ?3 "
             "WHERE recipient = ?1 AND seq = ?2 AND state IN (1, 3, 4)"));
  st->Bind(1, recipient).Bind(2, seq).Bind(3, now_us).Bind(4, attempts);
  CNET_RETURN_IF_ERROR(st->Run());
  return db_->Changes() > 0;
}

absl::StatusOr<bool> MessageStore::FinishPending(const std::string& recipient, int64_t seq,
                                                 int new_state, int64_t now_us, int dl_reason,
                                                 const std::string& dl_detail) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("UPDATE deliveries SET state = ?3, state_changed_us = ?4, "
             "dl_reason = CASE WHEN ?3 = 7 THEN ?5 ELSE dl_reason END, "
             "dl_detail = CASE WHEN ?3 = 7 THEN ?6 ELSE dl_detail END, "
             "dl_at_us = CASE WHEN ?3 = 7 THEN ?4 ELSE dl_at_us END, "
             "acked_us = CASE WHEN ?3 = 5 THEN ?4 ELSE acked_us END "
             "WHERE recipient = ?1 AND seq = ?2 AND state IN (1, 3, 4)"));
  st->Bind(1, recipient)
      .Bind(2, seq)
      .Bind(3, new_state)
      .Bind(4, now_us)
      .Bind(5, dl_reason)
      .Bind(6, dl_detail);
  CNET_RETURN_IF_ERROR(st->Run());
  return db_->Changes() > 0;
}

absl::Status MessageStore::UpdateDelivery(const DeliveryRow& r) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("UPDATE deliveries SET state = ?3, state_changed_us = ?4, attempts = ?5, "
             "dl_reason = ?6, dl_detail = ?7, dl_at_us = ?8, first_delivered_us = ?9, "
             "last_delivered_us = ?10, read_us = ?11, acked_us = ?12, expires_us = ?13 "
             "WHERE recipient = ?1 AND seq = ?2"));
  st->Bind(1, r.recipient)
      .Bind(2, r.seq)
      .Bind(3, r.state)
      .Bind(4, r.state_changed_us)
      .Bind(5, r.attempts)
      .Bind(6, r.dl_reason)
      .Bind(7, r.dl_detail)
      .Bind(8, r.dl_at_us)
      .Bind(9, r.first_delivered_us)
      .Bind(10, r.last_delivered_us)
      .Bind(11, r.read_us)
      .Bind(12, r.acked_us)
      .Bind(13, r.expires_us);
  return st->Run();
}

absl::Status MessageStore::MarkEscalated(int64_t msg_rowid) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached("UPDATE messages SET escalated = 1 WHERE rowid = ?"));
  st->Bind(1, msg_rowid);
  return st->Run();
}

absl::Status MessageStore::SaveInboxSeq(const std::string& agent, int64_t last_seq) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("INSERT INTO inbox_seq(agent, last_seq) VALUES(?1, ?2) "
             "ON CONFLICT(agent) DO UPDATE SET last_seq = MAX(last_seq, ?2)"));
  st->Bind(1, agent).Bind(2, last_seq);
  return st->Run();
}

absl::Status MessageStore::SaveCounter(const std::string& scope, const std::string& name,
                                       int64_t value) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("INSERT INTO counters(scope, name, value) VALUES(?1, ?2, ?3) "
             "ON CONFLICT(scope, name) DO UPDATE SET value = ?3"));
  st->Bind(1, scope).Bind(2, name).Bind(3, value);
  return st->Run();
}

absl::StatusOr<std::optional<std::string>> MessageStore::DedupeResponse(const std::string& sender,
                                                                        const std::string& id) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached("SELECT response FROM dedupe WHERE sender = ? AND id = ?"));
  st->Bind(1, sender).Bind(2, id);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st->ColumnText(0));
}

absl::StatusOr<std::optional<DeliveryRow>> MessageStore::GetDelivery(const std::string& recipient,
                                                                     int64_t seq) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached(absl::StrCat("SELECT ", kDeliveryColumns,
                                            " FROM deliveries d WHERE recipient = ? AND seq = ?")));
  st->Bind(1, recipient).Bind(2, seq);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<DeliveryRow>();
  return std::optional<DeliveryRow>(ReadDelivery(*st));
}

absl::StatusOr<std::vector<DeliveryRow>> MessageStore::DeliveriesByMessageId(
    const std::string& recipient, const std::string& msg_id) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached(absl::StrCat("SELECT ", kDeliveryColumns,
                          " FROM messages m JOIN deliveries d ON d.msg_rowid = m.rowid "
                          "AND d.recipient = ?1 WHERE m.id = ?2 AND d.seq > 0 ORDER BY d.seq")));
  st->Bind(1, recipient).Bind(2, msg_id);
  std::vector<DeliveryRow> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back(ReadDelivery(*st));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const pb::Message>> MessageStore::GetMessage(int64_t rowid) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached("SELECT data FROM messages WHERE rowid = ?"));
  st->Bind(1, rowid);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("message row ", rowid, " not found"));
  return ParseMessage(st->ColumnText(0));
}

absl::StatusOr<std::optional<MessageRow>> MessageStore::FindMessage(const std::string& sender,
                                                                    const std::string& id) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("SELECT rowid, data, ack_deadline_us, escalated FROM messages "
             "WHERE id = ? AND sender = ? ORDER BY rowid DESC LIMIT 1"));
  st->Bind(1, id).Bind(2, sender);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<MessageRow>();
  MessageRow out;
  out.rowid = st->ColumnInt(0);
  CNET_ASSIGN_OR_RETURN(out.message, ParseMessage(st->ColumnText(1)));
  out.ack_deadline_us = st->ColumnInt(2);
  out.escalated = st->ColumnInt(3) != 0;
  return std::optional<MessageRow>(std::move(out));
}

absl::StatusOr<MessageRow> MessageStore::GetMessageRow(int64_t rowid) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("SELECT rowid, data, ack_deadline_us, escalated FROM messages WHERE rowid = ?"));
  st->Bind(1, rowid);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("message row ", rowid, " not found"));
  MessageRow out;
  out.rowid = st->ColumnInt(0);
  CNET_ASSIGN_OR_RETURN(out.message, ParseMessage(st->ColumnText(1)));
  out.ack_deadline_us = st->ColumnInt(2);
  out.escalated = st->ColumnInt(3) != 0;
  return out;
}

absl::StatusOr<std::vector<DeliveryRow>> MessageStore::DeliveriesOfMessage(
    int64_t msg_rowid, const std::string& after_recipient, int limit) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached(absl::StrCat("SELECT ", kDeliveryColumns,
                          " FROM deliveries d WHERE msg_rowid = ? AND recipient > ? "
                          "ORDER BY recipient LIMIT ?")));
  st->Bind(1, msg_rowid).Bind(2, after_recipient).Bind(3, limit);
  std::vector<DeliveryRow> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back(ReadDelivery(*st));
  }
  return out;
}

absl::StatusOr<std::map<int, int64_t>> MessageStore::StateCountsOfMessage(int64_t msg_rowid) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("SELECT state, COUNT(*) FROM deliveries WHERE msg_rowid = ? GROUP BY state"));
  st->Bind(1, msg_rowid);
  std::map<int, int64_t> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out[static_cast<int>(st->ColumnInt(0))] = st->ColumnInt(1);
  }
  return out;
}

absl::StatusOr<std::vector<StoredEntry>> MessageStore::QueryDeliveries(const Query& q) {
  std::string sql = absl::StrCat("SELECT ", kDeliveryColumns,
                                 ", m.data FROM deliveries d JOIN messages m ON "
                                 "m.rowid = d.msg_rowid WHERE ",
                                 q.where, " ORDER BY ", q.order, " LIMIT ", q.limit);
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st, Cached(sql));
  int i = 1;
  for (const std::string& t : q.text_binds) st->Bind(i++, t);
  for (int64_t v : q.int_binds) st->Bind(i++, v);
  std::vector<StoredEntry> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    StoredEntry e;
    e.row = ReadDelivery(*st);
    CNET_ASSIGN_OR_RETURN(e.message, ParseMessage(st->ColumnText(kDeliveryColumnCount)));
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<std::shared_ptr<const pb::Message>>> MessageStore::QueryThread(
    const std::string& correlation_id, const std::string& visible_to, int64_t after_accepted_us,
    const std::string& after_id, int64_t after_rowid, int limit, std::vector<int64_t>* rowids) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("SELECT m.rowid, m.data FROM messages m "
             "WHERE (m.correlation_id = ?1 OR m.id = ?1) "
             "AND (?2 = '' OR m.sender = ?2 OR EXISTS (SELECT 1 FROM deliveries d "
             "WHERE d.msg_rowid = m.rowid AND d.recipient = ?2)) "
             "AND (m.accepted_us, m.id, m.rowid) > (?3, ?4, ?5) "
             "ORDER BY m.accepted_us, m.id, m.rowid LIMIT ?6"));
  st->Bind(1, correlation_id)
      .Bind(2, visible_to)
      .Bind(3, after_accepted_us)
      .Bind(4, after_id)
      .Bind(5, after_rowid)
      .Bind(6, limit);
  std::vector<std::shared_ptr<const pb::Message>> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    rowids->push_back(st->ColumnInt(0));
    CNET_ASSIGN_OR_RETURN(auto m, ParseMessage(st->ColumnText(1)));
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<std::vector<StoredEntry>> MessageStore::LoadPending() {
  Query q;
  q.where = "d.state IN (1, 3, 4) AND d.remote = 0";
  q.order = "d.recipient, d.seq";
  q.limit = -1;
  return QueryDeliveries(q);
}

absl::StatusOr<std::map<std::string, int64_t>> MessageStore::LoadInboxSeqs() {
  std::map<std::string, int64_t> out;
  CNET_ASSIGN_OR_RETURN(sqlite::Statement st,
                        db_->Prepare("SELECT agent, last_seq FROM inbox_seq"));
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out[st.ColumnText(0)] = st.ColumnInt(1);
  }
  CNET_ASSIGN_OR_RETURN(sqlite::Statement mx,
                        db_->Prepare("SELECT recipient, MAX(seq) FROM deliveries GROUP BY recipient"));
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, mx.Step());
    if (!row) break;
    int64_t& v = out[mx.ColumnText(0)];
    v = std::max(v, mx.ColumnInt(1));
  }
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> MessageStore::LoadDeadLetterCounts() {
  std::map<std::string, int64_t> out;
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement st,
      db_->Prepare("SELECT recipient, COUNT(*) FROM deliveries WHERE state = 7 GROUP BY recipient"));
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out[st.ColumnText(0)] = st.ColumnInt(1);
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>>
MessageStore::LoadCounters() {
  std::map<std::string, std::map<std::string, int64_t>> out;
  CNET_ASSIGN_OR_RETURN(sqlite::Statement st,
                        db_->Prepare("SELECT scope, name, value FROM counters"));
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out[st.ColumnText(0)][st.ColumnText(1)] = st.ColumnInt(2);
  }
  return out;
}

absl::StatusOr<std::vector<DedupeRecord>> MessageStore::LoadDedupe(int64_t now_us) {
  std::vector<DedupeRecord> out;
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement st,
      db_->Prepare("SELECT sender, id, content_hash, expires_us FROM dedupe "
                   "WHERE expires_us > ? ORDER BY expires_us"));
  st.Bind(1, now_us);
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    DedupeRecord r;
    r.sender = st.ColumnText(0);
    r.id = st.ColumnText(1);
    r.content_hash = st.ColumnText(2);
    r.expires_us = st.ColumnInt(3);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<MessageRow>> MessageStore::LoadUnescalated() {
  std::vector<MessageRow> out;
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement st,
      db_->Prepare("SELECT rowid, data, ack_deadline_us FROM messages "
                   "WHERE ack_deadline_us > 0 AND escalated = 0"));
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    MessageRow r;
    r.rowid = st.ColumnInt(0);
    CNET_ASSIGN_OR_RETURN(r.message, ParseMessage(st.ColumnText(1)));
    r.ack_deadline_us = st.ColumnInt(2);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<int64_t> MessageStore::OutboxDepth() {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st, Cached("SELECT COUNT(*) FROM outbox"));
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  return row ? st->ColumnInt(0) : 0;
}

absl::StatusOr<std::vector<OutboxRow>> MessageStore::PeekOutbox(int limit) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("SELECT o.id, o.msg_rowid, o.recipient, o.node, o.created_us, m.data FROM outbox o "
             "JOIN messages m ON m.rowid = o.msg_rowid ORDER BY o.id LIMIT ?"));
  st->Bind(1, limit);
  std::vector<OutboxRow> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    OutboxRow r;
    r.id = st->ColumnInt(0);
    r.msg_rowid = st->ColumnInt(1);
    r.recipient = st->ColumnText(2);
    r.node = st->ColumnText(3);
    r.created_us = st->ColumnInt(4);
    CNET_ASSIGN_OR_RETURN(r.message, ParseMessage(st->ColumnText(5)));
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<int64_t> MessageStore::PruneDedupe(int64_t now_us) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        Cached("DELETE FROM dedupe WHERE expires_us <= ?"));
  st->Bind(1, now_us);
  CNET_RETURN_IF_ERROR(st->Run());
  return static_cast<int64_t>(db_->Changes());
}

absl::StatusOr<int64_t> MessageStore::PruneRetention(int64_t cutoff_us) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      Cached("DELETE FROM deliveries WHERE state IN (5, 6) AND state_changed_us < ?"));
  st->Bind(1, cutoff_us);
  CNET_RETURN_IF_ERROR(st->Run());
  int64_t n = db_->Changes();
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * m,
      Cached("DELETE FROM messages WHERE accepted_us < ?1 "
             "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_rowid = messages.rowid) "
             "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.msg_rowid = messages.rowid)"));
  m->Bind(1, cutoff_us);
  CNET_RETURN_IF_ERROR(m->Run());
  return n + db_->Changes();
}

}  // namespace cnet::macs
