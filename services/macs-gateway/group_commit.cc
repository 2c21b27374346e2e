#include "services/macs-gateway/group_commit.h"

#include <glog/logging.h>
#include <pthread.h>
#include <time.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace cnet::macs {

GroupCommitWriter::GroupCommitWriter(sqlite::Database* db, size_t max_batch,
                                     std::function<absl::Status(sqlite::Database*)> before_commit)
    : db_(db), max_batch_(max_batch == 0 ? 1 : max_batch), before_commit_(std::move(before_commit)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "macs-writer");
    Loop();
  });
  completer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "macs-complete");
    CompleteLoop();
  });
}

GroupCommitWriter::~GroupCommitWriter() { Stop(); }

void GroupCommitWriter::Submit(Job job) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(std::move(job));
      return;
    }
  }
  if (job.done) job.done(absl::UnavailableError("the gateway is shutting down"));
}

absl::Status GroupCommitWriter::RunAndWait(std::function<absl::Status(sqlite::Database*)> run) {
  absl::Notification finished;
  absl::Status result;
  Submit(Job{std::move(run), [&](const absl::Status& s) {
               result = s;
               finished.Notify();
             }});
  finished.WaitForNotification();
  return result;
}

void GroupCommitWriter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      if (!thread_.joinable()) return;
    }
    stopping_ = true;
  }
  if (thread_.joinable() && !OnWriterThread()) thread_.join();
  if (completer_.joinable() && std::this_thread::get_id() != completer_.get_id()) {
    completer_.join();
  }
}

void GroupCommitWriter::CompleteLoop() {
  for (;;) {
    Finished f;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return writer_done_ || !finished_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (finished_.empty()) return;  // the writer stopped and all is done
      f = std::move(finished_.front());
      finished_.pop_front();
    }
    for (size_t i = 0; i < f.jobs.size(); ++i) {
      if (f.jobs[i].done) f.jobs[i].done(f.results[i]);
    }
  }
}

GroupCommitWriter::Stats GroupCommitWriter::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void GroupCommitWriter::Loop() {
  for (;;) {
    std::deque<Job> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) {  // stopping and drained
        writer_done_ = true;
        return;
      }
      size_t n = std::min(queue_.size(), max_batch_);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.batches++;
      stats_.jobs += static_cast<int64_t>(n);
      if (static_cast<int64_t>(n) > stats_.largest_batch) stats_.largest_batch = n;
    }
    RunBatch(&batch);
  }
}

absl::Status GroupCommitWriter::Exec(const std::string& sql) {
  absl::StatusOr<sqlite::Statement*> st = db_->Cached(sql);
  if (!st.ok()) return st.status();
  return (*st)->Run();
}

void GroupCommitWriter::RunBatch(std::deque<Job>* batch) {
  std::vector<absl::Status> results(batch->size());
  absl::Status commit;
  // Wall time of the two phases, for the benchmark's "what bounds it".
  const absl::Time started = absl::Now();
  absl::Time committing = started;
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
  };
  const int64_t cpu_started = cpu_now();
  int64_t cpu_committing = cpu_started;
  {
    sqlite::Transaction tx(db_);
    commit = tx.status();
    if (commit.ok()) {
      for (size_t i = 0; i < batch->size(); ++i) {
        Job& job = (*batch)[i];
        if (!job.run) continue;
        absl::Status sp = Exec("SAVEPOINT job");
        if (!sp.ok()) {
          results[i] = sp;
          continue;
        }
        results[i] = job.run(db_);
        if (!results[i].ok()) {
          Exec("ROLLBACK TO job").IgnoreError();
        }
        absl::Status rel = Exec("RELEASE job");
        if (!rel.ok() && results[i].ok()) results[i] = rel;
      }
      if (before_commit_) {
        absl::Status hook = before_commit_(db_);
        if (!hook.ok()) commit = hook;
      }
      committing = absl::Now();
      cpu_committing = cpu_now();
      if (commit.ok()) commit = tx.Commit();
    }
  }
  {
    const absl::Time finished = absl::Now();
    absl::MutexLock lock(&mu_);
    stats_.run_micros += absl::ToInt64Microseconds(committing - started);
    stats_.commit_micros += absl::ToInt64Microseconds(finished - committing);
    stats_.run_cpu_micros += cpu_committing - cpu_started;
  }
  if (!commit.ok()) {
    LOG(ERROR) << "group commit of " << batch->size() << " jobs failed: " << commit.message();
    commit = absl::UnavailableError(
        absl::StrCat("the message store could not commit: ", std::string(commit.message())));
  }
  if (!commit.ok()) {
    for (absl::Status& r : results) r = commit;
  }
  absl::MutexLock lock(&mu_);
  finished_.push_back(Finished{std::move(*batch), std::move(results)});
}

}  // namespace cnet::macs
