// The skills service's own SQLite database: run history (runs, their step
// records and event log, per-step engine overhead samples) and the data
// actions' namespaced key-value store.
//
// Writes go through one writer thread that commits whatever is queued in
// one transaction (group commit), in submission order; a write's callback
// runs after its transaction committed, which is when the engine
// acknowledges (a SYNC RunSkill answers, an ASYNC run id is returned).
// WAL with synchronous=NORMAL: a committed write survives kill -9 of the
// service (not a power cut; FULL is not worth its fsync per commit here).
// Reads use a second connection and see committed data only.
#ifndef CNET_SERVICES_SKILLS_STORE_H_
#define CNET_SERVICES_SKILLS_STORE_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "libs/clock/clock.h"
#include "libs/sqlite/database.h"
#include "services/skills/actions.h"
#include "services/skills/run.h"

namespace cnet::skills {

class Store final : public DataStore {
 public:
  // Opens (creating) the database file and starts the writer.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path, Clock* clock);
  // Commits everything queued, then stops the writer.
  ~Store() override;

  using Done = std::function<void(absl::Status)>;

  // --- queued writes -------------------------------------------------------
  // Inserts or replaces the run row (steps included).
  void SaveRun(const RunRecord& run, Done done = nullptr);
  void AppendEvents(std::vector<RunEvent> events, Done done = nullptr);
  // The final row of a run, its remaining events and its step overhead
  // samples, in one transaction.
  void FinishRun(const RunRecord& run, std::vector<RunEvent> events,
                 std::vector<absl::Duration> step_overheads, Done done);
  // Waits until everything queued so far is committed.
  void Flush();

  // Runs still QUEUED/RUNNING (the service died under them) become FAILED
  // with code UNAVAILABLE and a RUN_FINISHED event. Returns how many.
  absl::StatusOr<int> FailInterruptedRuns(absl::Time now);

  // --- reads ---------------------------------------------------------------
  absl::StatusOr<std::optional<RunRecord>> GetRun(const std::string& run_id, bool with_steps);
  absl::StatusOr<std::vector<RunEvent>> GetEvents(const std::string& run_id, int64_t after);

  struct RunFilter {
    std::string skill_name;
    std::vector<RunState> states;
    std::string caller;
    absl::Time created_after = absl::InfinitePast();  // inclusive
    absl::Time created_before = absl::InfiniteFuture();
    std::string before_run_id;  // cursor: only runs with a smaller id
    int limit = 100;
  };
  // Newest first (by run id, which sorts by creation), without steps.
  absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunFilter& filter);

  absl::StatusOr<std::optional<RunRecord>> FindByIdempotencyKey(const std::string& caller_id,
                                                                const std::string& key,
                                                                absl::Time since);

  struct FinishedRun {
    std::string skill_name;
    RunState state;
    absl::Time created_at;
    absl::Duration duration;
  };
  // Finished runs (finished_at >= since), every skill or one.
  absl::StatusOr<std::vector<FinishedRun>> FinishedRuns(const std::string& skill,
                                                        absl::Time since);
  // Step overhead samples (skill name, overhead) of runs finished since.
  absl::StatusOr<std::vector<std::pair<std::string, absl::Duration>>> StepOverheads(
      const std::string& skill, absl::Time since);
  absl::StatusOr<bool> SkillHasRuns(const std::string& skill);

  // --- DataStore -----------------------------------------------------------
  absl::StatusOr<bool> DataPut(const std::string& ns, const std::string& key, const Json& value,
                               const std::string& agent) override;
  absl::StatusOr<std::optional<Json>> DataGet(const std::string& ns,
                                              const std::string& key) override;
  absl::StatusOr<bool> DataDelete(const std::string& ns, const std::string& key) override;
  absl::StatusOr<std::vector<std::string>> DataList(const std::string& ns,
                                                    const std::string& prefix,
                                                    int limit) override;

 private:
  using Op = std::function<absl::Status(sqlite::Database*)>;
  struct Pending {
    Op op;
    Done done;
  };

  Store(std::unique_ptr<sqlite::Database> writer, std::unique_ptr<sqlite::Database> reader,
        Clock* clock);
  void Submit(Op op, Done done);
  // Submits and waits for the commit.
  absl::Status Execute(Op op);
  void WriterLoop();

  static absl::Status WriteRun(sqlite::Database* db, const RunRecord& run);
  static absl::Status WriteEvents(sqlite::Database* db, const std::vector<RunEvent>& events);
  RunRecord ReadRun(sqlite::Statement* st, bool with_steps);

  std::unique_ptr<sqlite::Database> writer_;
  Clock* clock_;

  absl::Mutex queue_mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(queue_mu_);
  // Events wait here and are written at the start of the next batch (one
  // statement each, no per-event operation): every event appended before
  // an operation was submitted commits no later than that operation.
  std::vector<RunEvent> events_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  int64_t submitted_ ABSL_GUARDED_BY(queue_mu_) = 0;
  int64_t committed_ ABSL_GUARDED_BY(queue_mu_) = 0;
  std::thread writer_thread_;

  absl::Mutex read_mu_;
  std::unique_ptr<sqlite::Database> reader_ ABSL_GUARDED_BY(read_mu_);
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_STORE_H_
