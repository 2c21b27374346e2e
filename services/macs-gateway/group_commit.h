// Group commit: one writer thread owns the gateway's SQLite connection and
// runs every job against it, many jobs per transaction.
//
// Callers Submit() jobs from any thread. The writer drains the queue in
// batches (up to max_batch jobs): BEGIN IMMEDIATE, each job's `run` inside
// its own SAVEPOINT (a failing job rolls back only its own writes), the
// `before_commit` hook, COMMIT — one fsync of the WAL for the whole batch
// with synchronous=FULL — and only then each job's `done`, in submission
// order, with the job's own status or the commit error. So "done with OK"
// means "on disk", and while one batch is being fsynced the next one is
// already filling up: durable throughput grows with concurrency instead of
// being one fsync per message. The `done` callbacks (replies, in-memory
// effects) run on a second thread, in order, so the writer goes straight on
// to the next batch.
//
// Reads are jobs too: they run in submission order after every earlier
// write, so a read never misses an acknowledged write, and nothing else
// ever touches the connection (no locking around SQLite at all).
#ifndef CNET_SERVICES_MACS_GATEWAY_GROUP_COMMIT_H_
#define CNET_SERVICES_MACS_GATEWAY_GROUP_COMMIT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "libs/sqlite/database.h"

namespace cnet::macs {

class GroupCommitWriter {
 public:
  struct Job {
    // Runs on the writer thread inside the batch transaction. A non-OK
    // status rolls back this job's writes only.
    std::function<absl::Status(sqlite::Database*)> run;
    // Runs on the completion thread after the batch committed (or failed),
    // in submission order. May be empty.
    std::function<void(const absl::Status&)> done;
  };

  struct Stats {
    int64_t batches = 0;
    int64_t jobs = 0;
    int64_t largest_batch = 0;
    int64_t run_micros = 0;     // time spent running jobs
    int64_t commit_micros = 0;  // time spent in COMMIT (the fsync)
    int64_t run_cpu_micros = 0;  // CPU time of the writer thread running jobs
  };

  // `before_commit` runs once per batch inside the transaction, after the
  // jobs (may be null). The writer starts at once.
  GroupCommitWriter(sqlite::Database* db, size_t max_batch,
                    std::function<absl::Status(sqlite::Database*)> before_commit);
  ~GroupCommitWriter();  // Stop()

  // Queues a job. After Stop() the job's done runs at once with UNAVAILABLE.
  void Submit(Job job);

  // Runs `run` as a job and waits for its batch to commit. Must not be
  // called from the writer thread.
  absl::Status RunAndWait(std::function<absl::Status(sqlite::Database*)> run);

  // Finishes the queued jobs and their callbacks, then stops the threads.
  // Idempotent.
  void Stop();

  bool OnWriterThread() const { return std::this_thread::get_id() == thread_.get_id(); }
  Stats stats() const;

 private:
  struct Finished {
    std::deque<Job> jobs;
    std::vector<absl::Status> results;
  };
  void Loop();
  void CompleteLoop();
  void RunBatch(std::deque<Job>* batch);
  absl::Status Exec(const std::string& sql);

  sqlite::Database* db_;
  const size_t max_batch_;
  std::function<absl::Status(sqlite::Database*)> before_commit_;

  mutable absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::deque<Finished> finished_ ABSL_GUARDED_BY(mu_);
  bool writer_done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  std::thread completer_;
};

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_GROUP_COMMIT_H_
