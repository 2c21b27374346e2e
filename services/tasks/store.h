// The tasks service's own SQLite tables and migrations.
//
// Tables: tasks (one row per task; the full claudenet.v1.Task as a blob plus
// indexed columns), dependencies (edges), history (every transition), leases
// (every lease ever granted, for fencing), idempotency (creator-scoped keys),
// events (the retained tail of the Watch log), notices (MACS notifications
// not yet handed to the gateway: the outbox) and reservations (live path
// reservations).
//
// Writes arrive as WriteBatch objects assembled by the board's journal and
// are applied in ONE transaction each (group commit: many acknowledged
// operations share one commit). Reads of history and events go through a
// second, read-only connection so they never wait on the writer.
//
// Durability: WAL with synchronous=NORMAL: a committed batch survives kill -9
// of the process (the WAL is in the OS page cache); it is not fsynced per
// commit, so a power loss may lose the last commits. Config
// tasks.sync_full = true switches to FULL (fsync per commit).
#ifndef CNET_SERVICES_TASKS_STORE_H_
#define CNET_SERVICES_TASKS_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/sqlite/database.h"

namespace cnet::tasks {

struct TaskRow {
  std::string id;
  int state = 0;
  std::string creator;
  std::string parent_id;
  std::string assignee;
  int64_t created_us = 0;
  int64_t updated_us = 0;
  int64_t history_len = 0;
  std::string body;  // serialized claudenet.v1.Task
};

// One transition (see claudenet.v1.TaskTransition).
struct HistoryRow {
  std::string task_id;
  int64_t index = 0;  // 1-based within the task
  int from_state = 0;
  int to_state = 0;
  int actor_kind = 0;  // claudenet.v1.PrincipalKind
  std::string actor_id;
  std::string actor_on_behalf_of;
  std::string reason;
  int64_t time_us = 0;
  int attempt = 0;
  int64_t lease_epoch = 0;
  std::string holder;
  int64_t event_sequence = 0;
};

struct LeaseRow {
  std::string task_id;
  int64_t epoch = 0;
  std::string lease_id;
  std::string holder;
  int64_t acquired_us = 0;
  int64_t ended_us = 0;  // 0 while current
  std::string end_reason;
};

struct IdempotencyRow {
  std::string creator;
  std::string key;
  std::string task_id;
  std::string request_hash;
  int64_t created_us = 0;
};

struct EventRow {
  int64_t sequence = 0;
  int64_t time_us = 0;
  std::string task_id;
  std::string body;  // serialized claudenet.v1.TaskEvent
};

struct NoticeRow {
  std::string id;
  int64_t created_us = 0;
  std::string body;  // serialized notice (see notifier.h)
};

// Everything one group commit writes. Task rows are coalesced by id (the
// latest image wins).
struct WriteBatch {
  std::map<std::string, TaskRow> tasks;
  // task id -> its complete dependency list (replaces the stored one).
  std::map<std::string, std::vector<std::string>> dependencies;
  std::vector<HistoryRow> history;
  std::map<std::pair<std::string, int64_t>, LeaseRow> leases;
  std::vector<IdempotencyRow> idempotency;
  std::vector<EventRow> events;
  std::vector<NoticeRow> notices;
  std::vector<std::string> notices_done;
  // Path reservations: id -> serialized claudenet.v1.Reservation, and ids
  // to delete (released or expired).
  std::map<std::string, std::string> reservations;
  std::set<std::string> reservations_deleted;

  bool empty() const;
  // Appends `later` (which happened after everything in *this).
  void Merge(WriteBatch&& later);
};

class Store {
 public:
  struct Options {
    std::string path;  // ":memory:" is not allowed (two connections); use a file
    bool synchronous_full = false;
    // Events kept in the table; older ones are pruned.
    int64_t event_retention = 100000;
    // Checkpoint the WAL from a background thread (its fsyncs then never
    // delay a commit) instead of SQLite's automatic checkpoint inside the
    // committing transaction.
    bool background_checkpoint = false;
    absl::Duration checkpoint_interval = absl::Seconds(1);
  };
  ~Store();

  static absl::StatusOr<std::unique_ptr<Store>> Open(const Options& options);

  // Applies the batch in one transaction. Thread-compatible: the journal
  // serializes calls.
  absl::Status Apply(const WriteBatch& batch);

  // Loading at start (before serving).
  absl::Status ForEachTask(const std::function<void(TaskRow&&)>& fn);
  absl::Status ForEachLease(const std::function<void(LeaseRow&&)>& fn);
  absl::Status ForEachIdempotencyKey(const std::function<void(IdempotencyRow&&)>& fn);
  absl::Status ForEachNotice(const std::function<void(NoticeRow&&)>& fn);
  // Serialized claudenet.v1.Reservation of every stored reservation.
  absl::Status ForEachReservation(const std::function<void(std::string&&)>& fn);
  // History rows with time_us >= since (for statistics), in order.
  absl::Status ForEachHistorySince(int64_t since_us,
                                   const std::function<void(HistoryRow&&)>& fn);
  absl::StatusOr<int64_t> MaxEventSequence();

  // Reads (any thread).
  absl::StatusOr<std::vector<HistoryRow>> ReadHistory(const std::string& task_id,
                                                      int64_t after_index, int limit);
  absl::StatusOr<std::vector<EventRow>> ReadEvents(int64_t after_sequence, int limit);
  // Smallest retained event sequence (0 when none).
  absl::StatusOr<int64_t> MinEventSequence();
  absl::StatusOr<std::vector<std::string>> ReadDependencies(const std::string& task_id);

 private:
  Store(Options options, std::unique_ptr<sqlite::Database> writer,
        std::unique_ptr<sqlite::Database> reader)
      : options_(std::move(options)), writer_(std::move(writer)), reader_(std::move(reader)) {}

  absl::Status ApplyLocked(const WriteBatch& batch);

  void CheckpointLoop();

  const Options options_;
  std::unique_ptr<sqlite::Database> writer_;  // used only inside Apply/ForEach*
  std::unique_ptr<sqlite::Database> checkpointer_;
  absl::Mutex checkpoint_mu_;
  absl::CondVar checkpoint_cv_;
  bool stopping_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  std::thread checkpoint_thread_;
  int64_t applied_batches_ = 0;
  absl::Mutex reader_mu_;
  std::unique_ptr<sqlite::Database> reader_ ABSL_GUARDED_BY(reader_mu_);
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_STORE_H_
