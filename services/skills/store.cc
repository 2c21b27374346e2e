#include "services/skills/store.h"

#include <glog/logging.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/status/macros.h"

namespace cnet::skills {
namespace {

const std::vector<std::string> kMigrations = {
    R"sql(
    CREATE TABLE runs (
      run_id TEXT PRIMARY KEY,
      skill_name TEXT NOT NULL,
      skill_version TEXT NOT NULL,
      state INTEGER NOT NULL,
      mode INTEGER NOT NULL,
      caller_kind INTEGER NOT NULL,
      caller_id TEXT NOT NULL,
      on_behalf_of TEXT NOT NULL,
      created_us INTEGER NOT NULL,
      started_us INTEGER NOT NULL,
      finished_us INTEGER NOT NULL,
      timeout_us INTEGER NOT NULL,
      event_count INTEGER NOT NULL,
      idempotency_key TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      inputs TEXT NOT NULL,
      outputs TEXT NOT NULL,
      error TEXT NOT NULL,
      steps TEXT NOT NULL
    );
    CREATE INDEX runs_by_skill ON runs(skill_name, run_id);
    CREATE INDEX runs_by_caller ON runs(caller_id, run_id);
    CREATE INDEX runs_by_finish ON runs(finished_us);
    CREATE INDEX runs_by_state ON runs(state);
    CREATE INDEX runs_by_key ON runs(caller_id, idempotency_key) WHERE idempotency_key <> '';
    CREATE TABLE run_events (
      run_id TEXT NOT NULL,
      seq INTEGER NOT NULL,
      body TEXT NOT NULL,
      PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE step_overhead (
      run_id TEXT NOT NULL,
      skill_name TEXT NOT NULL,
      finished_us INTEGER NOT NULL,
      overhead_us INTEGER NOT NULL
    );
    CREATE INDEX step_overhead_by_skill ON step_overhead(skill_name, finished_us);
    CREATE TABLE data_kv (
      namespace TEXT NOT NULL,
      key TEXT NOT NULL,
      value TEXT NOT NULL,
      updated_us INTEGER NOT NULL,
      updated_by TEXT NOT NULL,
      PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    )sql",
};

constexpr char kRunColumns[] =
    "run_id, skill_name, skill_version, state, mode, caller_kind, caller_id, on_behalf_of, "
    "created_us, started_us, finished_us, timeout_us, event_count, idempotency_key, "
    "request_hash, inputs, outputs, error";

absl::Status RunCached(sqlite::Database* db, const std::string& sql) {
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st, db->Cached(sql));
  return st->Run();
}

Json ParseOr(const std::string& text, Json fallback) {
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path, Clock* clock) {
  sqlite::Database::Options options;
  options.path = path;
  CNET_ASSIGN_OR_RETURN(auto writer, sqlite::Database::Open(options));
  CNET_RETURN_IF_ERROR(writer->Migrate(kMigrations));
  CNET_ASSIGN_OR_RETURN(auto reader, sqlite::Database::Open(options));
  return std::unique_ptr<Store>(new Store(std::move(writer), std::move(reader), clock));
}

Store::Store(std::unique_ptr<sqlite::Database> writer, std::unique_ptr<sqlite::Database> reader,
             Clock* clock)
    : writer_(std::move(writer)), clock_(clock), reader_(std::move(reader)) {
  writer_thread_ = std::thread([this] { WriterLoop(); });
}

Store::~Store() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  writer_thread_.join();
}

void Store::Submit(Op op, Done done) {
  absl::MutexLock lock(&queue_mu_);
  queue_.push_back(Pending{std::move(op), std::move(done)});
  ++submitted_;
}

absl::Status Store::Execute(Op op) {
  absl::Notification committed;
  absl::Status result;
  Submit(std::move(op), [&](absl::Status s) {
    result = std::move(s);
    committed.Notify();
  });
  committed.WaitForNotification();
  return result;
}

void Store::Flush() {
  absl::MutexLock lock(&queue_mu_);
  int64_t target = submitted_;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
    return committed_ >= target;
  };
  queue_mu_.Await(absl::Condition(&done));
}

void Store::WriterLoop() {
  for (;;) {
    std::deque<Pending> batch;
    std::vector<RunEvent> events;
    int64_t count = 0;
    {
      absl::MutexLock lock(&queue_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
        return !queue_.empty() || !events_.empty() || stopping_;
      };
      queue_mu_.Await(absl::Condition(&ready));
      if (queue_.empty() && events_.empty()) return;
      batch.swap(queue_);
      events.swap(events_);
      count = submitted_ - committed_;
    }
    std::vector<absl::Status> results;
    results.reserve(batch.size());
    absl::Status commit;
    {
      sqlite::Transaction tx(writer_.get());
      commit = tx.status();
      if (commit.ok() && !events.empty()) {
        absl::Status s = WriteEvents(writer_.get(), events);
        // A bad event must not cost the batch its operations.
        if (!s.ok()) LOG(ERROR) << "skills store: events not written: " << s.message();
      }
      for (Pending& p : batch) {
        if (!commit.ok()) {
          results.push_back(commit);
          continue;
        }
        // Each operation in its own savepoint, so one failure (a bad row)
        // does not undo the others of the batch.
        absl::Status s = RunCached(writer_.get(), "SAVEPOINT op");
        if (s.ok()) {
          s = p.op(writer_.get());
          if (s.ok()) {
            s = RunCached(writer_.get(), "RELEASE op");
          } else {
            RunCached(writer_.get(), "ROLLBACK TO op").IgnoreError();
            RunCached(writer_.get(), "RELEASE op").IgnoreError();
          }
        }
        results.push_back(s);
      }
      if (commit.ok()) commit = tx.Commit();
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(commit.ok() ? results[i] : commit);
    }
    absl::MutexLock lock(&queue_mu_);
    committed_ += count;
  }
}

absl::Status Store::WriteRun(sqlite::Database* db, const RunRecord& run) {
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      db->Cached(absl::StrCat("INSERT OR REPLACE INTO runs (", kRunColumns,
                              ", steps) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")));
  st->Bind(1, run.run_id)
      .Bind(2, run.skill_name)
      .Bind(3, run.skill_version)
      .Bind(4, static_cast<int>(run.state))
      .Bind(5, static_cast<int>(run.mode))
      .Bind(6, run.caller.kind)
      .Bind(7, run.caller.id)
      .Bind(8, run.caller.on_behalf_of)
      .Bind(9, ToMicros(run.created_at))
      .Bind(10, ToMicros(run.started_at))
      .Bind(11, ToMicros(run.finished_at))
      .Bind(12, absl::ToInt64Microseconds(run.timeout))
      .Bind(13, run.event_count)
      .Bind(14, run.idempotency_key)
      .Bind(15, run.request_hash)
      .Bind(16, Dump(run.inputs))
      .Bind(17, Dump(run.outputs))
      .Bind(18, Dump(ErrorToJson(run.error)))
      .Bind(19, Dump(StepsToJson(run.steps)));
  return st->Run();
}

absl::Status Store::WriteEvents(sqlite::Database* db, const std::vector<RunEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      db->Cached("INSERT OR REPLACE INTO run_events (run_id, seq, body) VALUES (?,?,?)"));
  for (const RunEvent& e : events) {
    st->Reset();
    st->Bind(1, e.run_id).Bind(2, e.sequence).Bind(3, Dump(EventToJson(e)));
    CNET_RETURN_IF_ERROR(st->Run());
  }
  return absl::OkStatus();
}

void Store::SaveRun(const RunRecord& run, Done done) {
  Submit([run](sqlite::Database* db) { return WriteRun(db, run); }, std::move(done));
}

void Store::AppendEvents(std::vector<RunEvent> events, Done done) {
  if (done) {
    Submit([events = std::move(events)](sqlite::Database* db) { return WriteEvents(db, events); },
           std::move(done));
    return;
  }
  absl::MutexLock lock(&queue_mu_);
  for (RunEvent& e : events) events_.push_back(std::move(e));
  ++submitted_;
}

void Store::FinishRun(const RunRecord& run, std::vector<RunEvent> events,
                      std::vector<absl::Duration> step_overheads, Done done) {
  Submit(
      [run, events = std::move(events),
       overheads = std::move(step_overheads)](sqlite::Database* db) -> absl::Status {
        CNET_RETURN_IF_ERROR(WriteRun(db, run));
        CNET_RETURN_IF_ERROR(WriteEvents(db, events));
        if (!overheads.empty()) {
          CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                                db->Cached("INSERT INTO step_overhead (run_id, skill_name, "
                                           "finished_us, overhead_us) VALUES (?,?,?,?)"));
          for (absl::Duration d : overheads) {
            st->Reset();
            st->Bind(1, run.run_id)
                .Bind(2, run.skill_name)
                .Bind(3, ToMicros(run.finished_at))
                .Bind(4, absl::ToInt64Microseconds(d));
            CNET_RETURN_IF_ERROR(st->Run());
          }
        }
        return absl::OkStatus();
      },
      std::move(done));
}

absl::StatusOr<int> Store::FailInterruptedRuns(absl::Time now) {
  std::vector<RunRecord> interrupted;
  {
    absl::MutexLock lock(&read_mu_);
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement st,
        reader_->Prepare(absl::StrCat("SELECT ", kRunColumns, ", steps FROM runs WHERE state IN (",
                                      static_cast<int>(RunState::kQueued), ",",
                                      static_cast<int>(RunState::kRunning), ")")));
    for (;;) {
      CNET_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      interrupted.push_back(ReadRun(&st, true));
    }
  }
  for (RunRecord& run : interrupted) {
    std::vector<RunEvent> events;
    {
      absl::MutexLock lock(&read_mu_);
      CNET_ASSIGN_OR_RETURN(
          sqlite::Statement st,
          reader_->Prepare("SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?"));
      st.Bind(1, run.run_id);
      CNET_ASSIGN_OR_RETURN(bool row, st.Step());
      run.event_count = row ? st.ColumnInt(0) : run.event_count;
    }
    run.state = RunState::kFailed;
    run.error = RunError{"UNAVAILABLE", "the skills service stopped during the run", ""};
    run.finished_at = now;
    if (run.started_at == absl::InfinitePast()) run.started_at = now;
    RunEvent e;
    e.run_id = run.run_id;
    e.sequence = ++run.event_count;
    e.type = EventType::kRunFinished;
    e.time = now;
    e.run_state = run.state;
    e.error = run.error;
    e.started_at = run.started_at;
    e.duration = run.finished_at - run.started_at;
    e.message = run.error->message;
    events.push_back(e);
    CNET_RETURN_IF_ERROR(Execute([run, events](sqlite::Database* db) -> absl::Status {
      CNET_RETURN_IF_ERROR(WriteRun(db, run));
      return WriteEvents(db, events);
    }));
  }
  return static_cast<int>(interrupted.size());
}

RunRecord Store::ReadRun(sqlite::Statement* st, bool with_steps) {
  RunRecord r;
  r.run_id = st->ColumnText(0);
  r.skill_name = st->ColumnText(1);
  r.skill_version = st->ColumnText(2);
  r.state = static_cast<RunState>(st->ColumnInt(3));
  r.mode = static_cast<RunMode>(st->ColumnInt(4));
  r.caller.kind = static_cast<int>(st->ColumnInt(5));
  r.caller.id = st->ColumnText(6);
  r.caller.on_behalf_of = st->ColumnText(7);
  r.created_at = FromMicros(st->ColumnInt(8));
  r.started_at = FromMicros(st->ColumnInt(9));
  r.finished_at = FromMicros(st->ColumnInt(10));
  r.timeout = absl::Microseconds(st->ColumnInt(11));
  r.event_count = st->ColumnInt(12);
  r.idempotency_key = st->ColumnText(13);
  r.request_hash = st->ColumnText(14);
  r.inputs = ParseOr(st->ColumnText(15), Json::object());
  r.outputs = ParseOr(st->ColumnText(16), Json::object());
  r.error = ErrorFromJson(ParseOr(st->ColumnText(17), Json()));
  if (with_steps) r.steps = StepsFromJson(ParseOr(st->ColumnText(18), Json::array()));
  return r;
}

absl::StatusOr<std::optional<RunRecord>> Store::GetRun(const std::string& run_id,
                                                       bool with_steps) {
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      reader_->Cached(absl::StrCat("SELECT ", kRunColumns, ", steps FROM runs WHERE run_id = ?")));
  st->Bind(1, run_id);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<RunRecord>();
  RunRecord r = ReadRun(st, with_steps);
  st->Reset();
  return std::optional<RunRecord>(std::move(r));
}

absl::StatusOr<std::vector<RunEvent>> Store::GetEvents(const std::string& run_id, int64_t after) {
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      reader_->Cached("SELECT body FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq"));
  st->Bind(1, run_id).Bind(2, after);
  std::vector<RunEvent> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back(EventFromJson(run_id, ParseOr(st->ColumnText(0), Json::object())));
  }
  st->Reset();
  return out;
}

absl::StatusOr<std::vector<RunRecord>> Store::ListRuns(const RunFilter& f) {
  std::string sql = absl::StrCat("SELECT ", kRunColumns, ", '' FROM runs WHERE 1=1");
  if (!f.skill_name.empty()) sql += " AND skill_name = ?1";
  if (!f.caller.empty()) sql += " AND caller_id = ?2";
  if (f.created_after != absl::InfinitePast()) sql += " AND created_us >= ?3";
  if (f.created_before != absl::InfiniteFuture()) sql += " AND created_us < ?4";
  if (!f.before_run_id.empty()) sql += " AND run_id < ?5";
  if (!f.states.empty()) {
    sql += " AND state IN (";
    for (size_t i = 0; i < f.states.size(); ++i) {
      absl::StrAppend(&sql, i == 0 ? "" : ",", static_cast<int>(f.states[i]));
    }
    sql += ")";
  }
  sql += " ORDER BY run_id DESC LIMIT ?6";
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(sqlite::Statement st, reader_->Prepare(sql));
  if (!f.skill_name.empty()) st.Bind(1, f.skill_name);
  if (!f.caller.empty()) st.Bind(2, f.caller);
  if (f.created_after != absl::InfinitePast()) st.Bind(3, ToMicros(f.created_after));
  if (f.created_before != absl::InfiniteFuture()) st.Bind(4, ToMicros(f.created_before));
  if (!f.before_run_id.empty()) st.Bind(5, f.before_run_id);
  st.Bind(6, f.limit);
  std::vector<RunRecord> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ReadRun(&st, false));
  }
  return out;
}

absl::StatusOr<std::optional<RunRecord>> Store::FindByIdempotencyKey(const std::string& caller_id,
                                                                     const std::string& key,
                                                                     absl::Time since) {
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      reader_->Cached(absl::StrCat("SELECT ", kRunColumns,
                                   ", steps FROM runs WHERE caller_id = ? AND idempotency_key = ? "
                                   "AND created_us >= ? ORDER BY run_id DESC LIMIT 1")));
  st->Bind(1, caller_id).Bind(2, key).Bind(3, ToMicros(since));
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  std::optional<RunRecord> out;
  if (row) out = ReadRun(st, true);
  st->Reset();
  return out;
}

absl::StatusOr<std::vector<Store::FinishedRun>> Store::FinishedRuns(const std::string& skill,
                                                                    absl::Time since) {
  std::string sql =
      "SELECT skill_name, state, created_us, finished_us - started_us FROM runs "
      "WHERE finished_us > 0 AND finished_us >= ?1";
  if (!skill.empty()) sql += " AND skill_name = ?2";
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st, reader_->Cached(sql));
  st->Bind(1, since == absl::InfinitePast() ? int64_t{0} : ToMicros(since));
  if (!skill.empty()) st->Bind(2, skill);
  std::vector<FinishedRun> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back(FinishedRun{st->ColumnText(0), static_cast<RunState>(st->ColumnInt(1)),
                              FromMicros(st->ColumnInt(2)), absl::Microseconds(st->ColumnInt(3))});
  }
  st->Reset();
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, absl::Duration>>> Store::StepOverheads(
    const std::string& skill, absl::Time since) {
  std::string sql = "SELECT skill_name, overhead_us FROM step_overhead WHERE finished_us >= ?1";
  if (!skill.empty()) sql += " AND skill_name = ?2";
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st, reader_->Cached(sql));
  st->Bind(1, since == absl::InfinitePast() ? int64_t{0} : ToMicros(since));
  if (!skill.empty()) st->Bind(2, skill);
  std::vector<std::pair<std::string, absl::Duration>> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.emplace_back(st->ColumnText(0), absl::Microseconds(st->ColumnInt(1)));
  }
  st->Reset();
  return out;
}

absl::StatusOr<bool> Store::SkillHasRuns(const std::string& skill) {
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        reader_->Cached("SELECT 1 FROM runs WHERE skill_name = ? LIMIT 1"));
  st->Bind(1, skill);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  st->Reset();
  return row;
}

absl::StatusOr<bool> Store::DataPut(const std::string& ns, const std::string& key,
                                    const Json& value, const std::string& agent) {
  bool created = false;
  int64_t now = ToMicros(clock_->Now());
  std::string text = Dump(value);
  CNET_RETURN_IF_ERROR(Execute([&](sqlite::Database* db) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(sqlite::Statement * check,
                          db->Cached("SELECT 1 FROM data_kv WHERE namespace = ? AND key = ?"));
    check->Bind(1, ns).Bind(2, key);
    CNET_ASSIGN_OR_RETURN(bool exists, check->Step());
    check->Reset();
    created = !exists;
    CNET_ASSIGN_OR_RETURN(
        sqlite::Statement * put,
        db->Cached("INSERT OR REPLACE INTO data_kv (namespace, key, value, updated_us, "
                   "updated_by) VALUES (?,?,?,?,?)"));
    put->Bind(1, ns).Bind(2, key).Bind(3, text).Bind(4, now).Bind(5, agent);
    return put->Run();
  }));
  return created;
}

absl::StatusOr<std::optional<Json>> Store::DataGet(const std::string& ns,
                                                   const std::string& key) {
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                        reader_->Cached("SELECT value FROM data_kv WHERE namespace = ? AND key = ?"));
  st->Bind(1, ns).Bind(2, key);
  CNET_ASSIGN_OR_RETURN(bool row, st->Step());
  std::optional<Json> out;
  if (row) out = ParseOr(st->ColumnText(0), Json());
  st->Reset();
  return out;
}

absl::StatusOr<bool> Store::DataDelete(const std::string& ns, const std::string& key) {
  bool deleted = false;
  CNET_RETURN_IF_ERROR(Execute([&](sqlite::Database* db) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(sqlite::Statement * st,
                          db->Cached("DELETE FROM data_kv WHERE namespace = ? AND key = ?"));
    st->Bind(1, ns).Bind(2, key);
    CNET_RETURN_IF_ERROR(st->Run());
    deleted = db->Changes() > 0;
    return absl::OkStatus();
  }));
  return deleted;
}

absl::StatusOr<std::vector<std::string>> Store::DataList(const std::string& ns,
                                                         const std::string& prefix, int limit) {
  absl::MutexLock lock(&read_mu_);
  CNET_ASSIGN_OR_RETURN(
      sqlite::Statement * st,
      reader_->Cached("SELECT key FROM data_kv WHERE namespace = ? AND substr(key, 1, ?) = ? "
                      "ORDER BY key LIMIT ?"));
  st->Bind(1, ns).Bind(2, static_cast<int64_t>(prefix.size())).Bind(3, prefix).Bind(4, limit);
  std::vector<std::string> out;
  for (;;) {
    CNET_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back(st->ColumnText(0));
  }
  st->Reset();
  return out;
}

}  // namespace cnet::skills
