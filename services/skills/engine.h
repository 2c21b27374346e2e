// The skill engine: runs skills and keeps their history.
//
// A run executes the skill's steps in sequence; `parallel:` groups run
// their steps at once (each on the bounded pool) and wait for all, and
// groups nest. A step calls a built-in action or another skill
// (composition: the composed skill's declared outputs become the step's
// output). Per step: a `when` condition (false -> SKIPPED), a timeout per
// attempt (on the injected clock), retries with exponential backoff (on the
// injected clock), and on_error fail|continue. Inputs are type-checked and
// defaults applied before the first step. A run can be cancelled at any
// point; running actions are interrupted through their cancel hooks.
//
// Nothing here blocks a thread while waiting: every wait is a clock timer
// or an action completing, and continuations are posted to the executor.
// With an InlineExecutor and a SimulatedClock a test drives a run
// deterministically.
//
// Every event is persisted in order (Store); a run is acknowledged (the
// `on_accepted` / `on_finished` callbacks) only after its state is
// committed. Runs left unfinished by a crash are marked FAILED at start.
#ifndef CNET_SERVICES_SKILLS_ENGINE_H_
#define CNET_SERVICES_SKILLS_ENGINE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/ids/ids.h"
#include "libs/stream/event_hub.h"
#include "services/skills/actions.h"
#include "services/skills/executor.h"
#include "services/skills/loader.h"
#include "services/skills/run.h"
#include "services/skills/store.h"

namespace cnet::skills {

// Machine-readable details attached to refusals as absl::Status payloads
// (the adapter turns them into claudenet.v1.ErrorDetail).
inline constexpr char kReasonPayload[] = "type.claudenet.dev/reason";
inline constexpr char kRetryAfterPayload[] = "type.claudenet.dev/retry_after_ms";
absl::Status WithReason(absl::Status status, const std::string& reason);

struct EngineOptions {
  // Runs in flight at once, over all agents (config limits.max_skill_runs)
  // and per agent (config skills.max_runs_per_agent).
  int max_runs = 50;
  int max_runs_per_agent = 50;
  // Per-attempt limit of action steps without `timeout:`.
  absl::Duration default_step_timeout = absl::Seconds(30);
  // Per-attempt limit of shell steps (the smaller of this and the step's).
  absl::Duration shell_timeout = absl::Seconds(30);
  // Run limit when RunSkill gives none; requests may ask 1 s .. 24 h.
  absl::Duration default_run_timeout = absl::Minutes(10);
  // Largest output / arguments kept in step records and events (bytes).
  size_t output_cap = 64 << 10;
  // How long an idempotency key is remembered.
  absl::Duration idempotency_window = absl::Hours(24);
  // Suggested wait after RESOURCE_EXHAUSTED.
  absl::Duration retry_after = absl::Seconds(1);
};

struct RunRequest {
  std::string skill_name;
  std::string version;  // exact version or range; empty = highest valid
  Json inputs = Json::object();
  RunMode mode = RunMode::kSync;
  std::optional<absl::Duration> timeout;
  std::string idempotency_key;
  CallerInfo caller;  // caller.agent() is who the run acts as
};

struct DurationSummary {
  int64_t count = 0;
  absl::Duration mean, p50, p95, p99, max;
};

struct SkillStats {
  std::string skill_name;
  int64_t runs = 0, succeeded = 0, failed = 0, cancelled = 0;
  double success_rate = 0;
  DurationSummary duration;
  DurationSummary step_overhead;
  int64_t in_flight = 0;
  absl::Time last_run_at = absl::InfinitePast();
};

// Looks up the capabilities of an agent (the registry in production).
using CapabilityLookup =
    std::function<absl::StatusOr<std::vector<std::string>>(const std::string& agent_id)>;

class Engine {
 public:
  Engine(LibraryManager* library, ActionRegistry* actions, Store* store, Clock* clock,
         Executor* pool, Executor* blocking, EngineOptions options,
         CapabilityLookup capabilities = nullptr);
  // Cancels the runs in flight and waits until they are recorded.
  ~Engine();

  // Marks runs interrupted by a previous crash as FAILED. Call once at start.
  absl::StatusOr<int> Recover();

  using Accepted = std::function<void(absl::Status durable, const RunRecord& run)>;
  using Finished = std::function<void(absl::Status durable, const RunRecord& run)>;

  // Checks the request and starts the run; the returned record is the
  // accepted run. Refusals change nothing: NOT_FOUND (skill/version),
  // INVALID_ARGUMENT (inputs, version range, timeout, key), FAILED_PRECONDITION
  // (invalid skill, missing capability), PERMISSION_DENIED (disabled
  // action), ALREADY_EXISTS (idempotency key with other inputs),
  // RESOURCE_EXHAUSTED (concurrency limit). An idempotent repeat returns
  // the existing run (*existing = true) and calls the callbacks for it.
  // `on_accepted` runs once the accepted run is committed; `on_finished`
  // once the finished run is committed (both on another thread, maybe
  // before Start returns).
  absl::StatusOr<RunRecord> Start(const RunRequest& request, Accepted on_accepted,
                                  Finished on_finished, bool* existing = nullptr);

  // Cancels a run in flight and waits until it is recorded CANCELLED.
  // NOT_FOUND; PERMISSION_DENIED (not the caller nor admin);
  // FAILED_PRECONDITION (already finished).
  absl::StatusOr<RunRecord> Cancel(const std::string& run_id, const CallerInfo& who, bool admin,
                                   const std::string& reason);
  // Cancels without waiting (a SYNC caller went away); no-op when finished.
  void Abandon(const std::string& run_id, const std::string& reason);

  absl::StatusOr<RunRecord> GetRun(const std::string& run_id, bool with_steps);
  absl::StatusOr<std::vector<RunRecord>> ListRuns(const Store::RunFilter& filter);

  // A run's events: `hub` delivers those published from now on (closed
  // when the run has finished); `backlog(after)` those already recorded.
  struct WatchSource {
    std::shared_ptr<EventHub<RunEvent>> hub;
    std::function<std::vector<RunEvent>(int64_t after)> backlog;
  };
  absl::StatusOr<WatchSource> Watch(const std::string& run_id);

  // Metrics per skill (all skills with runs when `skill` is empty) over
  // runs finished within `window` (all history when unset), and totals.
  absl::StatusOr<std::vector<SkillStats>> Stats(const std::string& skill,
                                                std::optional<absl::Duration> window,
                                                SkillStats* totals);

  int64_t in_flight() const;

 private:
  struct Run;
  struct Frame;
  struct Attempt;
  class Call;
  class CancelScope;
  struct Outcome;
  struct Ctx;
  using Next = std::function<void(Outcome)>;

  absl::StatusOr<std::shared_ptr<const LoadedSkill>> Resolve(const std::string& name,
                                                             const std::string& version,
                                                             std::shared_ptr<const Library>* lib);
  absl::Status CheckRunnable(const Library& lib, const LoadedSkill& skill,
                             const CallerInfo& caller);

  void ExecSequence(Ctx ctx, const std::vector<Step>* steps, std::vector<StepRecord>* recs,
                    size_t index, Next done);
  void ExecParallel(Ctx ctx, const std::vector<Step>* steps, std::vector<StepRecord>* recs,
                    Next done);
  void ExecStep(Ctx ctx, const Step* step, StepRecord* rec, Next done);
  struct StepRun;
  void StartAttempt(const std::shared_ptr<StepRun>& sr, int n);
  void AfterAttempt(const std::shared_ptr<StepRun>& sr, int n, absl::Status status, Json output,
                    std::optional<RunError> inner);
  void EndStep(const std::shared_ptr<StepRun>& sr, StepState state, Json output,
               std::optional<RunError> error);
  void FinishRun(const std::shared_ptr<Run>& run, Outcome top);
  // Requires run->mu.
  void Emit(Run* run, RunEvent event);
  absl::StatusOr<Json> Outputs(const LoadedSkill& skill, const Frame& frame);
  RunRecord Snapshot(Run* run, bool with_steps);

  LibraryManager* const library_;
  ActionRegistry* const actions_;
  Store* const store_;
  Clock* const clock_;
  Executor* const pool_;
  Executor* const blocking_;
  const EngineOptions options_;
  const CapabilityLookup capabilities_;
  IdGenerator ids_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Run>> active_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> per_agent_ ABSL_GUARDED_BY(mu_);
  // (caller id, idempotency key) -> run id, for runs in flight.
  std::map<std::pair<std::string, std::string>, std::string> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_ENGINE_H_
