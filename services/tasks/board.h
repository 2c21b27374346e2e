// The task board: the core of the tasks service (no gRPC types).
//
// It owns every task of this node in memory (the authority while the process
// runs) and makes each change durable in the Store before the change is
// acknowledged. It implements the state machine (state_machine.h),
// dependencies, the eligible queue with aging, assignment by push (the
// scheduler, through the AgentDirectory) and by pull (Claim, with long-poll),
// leases with fencing and expiry timers on the injected Clock, work stealing,
// progress and checkpoints, results with acceptance checks, pinned review,
// cancellation with cascade, ExplainTask, history, the event log behind
// Watch, and statistics.
//
// Records: the board keeps each task as a claudenet.v1.Task message (a data
// type, not a gRPC type) so that storage, the event log and the adapter share
// one representation; requests arrive as the proto request messages. The
// board never sees a grpc::Status, a server context or a stub.
//
// Invariants:
//  - Every transition is checked against the one table (CheckMove) before
//    anything changes; a failed call changes nothing (all validation
//    happens before the first mutation).
//  - A task is never handed to two agents: assignment happens under the
//    board mutex and only from QUEUED (or, by stealing, from ASSIGNED with a
//    new epoch, which fences the previous holder out).
//  - Lease epochs only grow. A call with a lease that is not the current one
//    is stale: FAILED_PRECONDITION (LEASE_STALE), or lease_valid = false for
//    Progress/RenewLease; nothing is recorded.
//  - Durability: changes are appended to a journal under the mutex in the
//    order they happen and committed in batches (group commit); an rpc
//    returns only after the batch holding its change committed. Watch events
//    and MACS notices are released only after their batch committed, so a
//    watcher never sees a change that a crash could undo. A failed commit
//    stops the process (fail-stop): the in-memory state would otherwise be
//    ahead of the disk.
//  - One committer thread writes batches; callers wait for their ticket.
//  - Lock order: life_mu_ (reader) -> commit_mu_ -> mu_. Directory and
//    notifier calls are never made with mu_ held.
#ifndef CNET_SERVICES_TASKS_BOARD_H_
#define CNET_SERVICES_TASKS_BOARD_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/ids/ids.h"
#include "libs/stream/event_hub.h"
#include "proto/claudenet/v1/tasks.pb.h"
#include "services/tasks/directory.h"
#include "services/tasks/glob.h"
#include "services/tasks/notifier.h"
#include "services/tasks/state_machine.h"
#include "services/tasks/stats.h"
#include "services/tasks/store.h"

namespace cnet::tasks {

struct BoardOptions {
  absl::Duration default_lease = absl::Seconds(60);
  absl::Duration min_lease = absl::Seconds(10);
  absl::Duration max_lease = absl::Hours(1);
  // A queued task gains one priority step per this much waiting.
  absl::Duration aging_interval = absl::Seconds(60);
  // An agent holding MORE than this many ASSIGNED-not-RUNNING tasks may be
  // stolen from.
  int steal_threshold = 2;
  int default_max_attempts = 3;
  // Concurrency limit of agents that do not state their own.
  int default_agent_concurrency = 4;
  absl::Duration review_reopen_window = absl::Hours(24);
  // The scheduler pushes eligible tasks to agents (else pull only).
  bool push_assignment = true;
  // Period of the scheduler sweep (push retries, no-eligible-agent alerts).
  absl::Duration sweep_interval = absl::Seconds(5);
  // A lease restored at start whose expiry passed while the service was
  // down is extended to now + this, so its holder can renew.
  absl::Duration restart_grace = absl::Seconds(30);
  absl::Duration max_claim_wait = absl::Minutes(5);
  size_t max_payload_bytes = 256 * 1024;
  // Recent events kept in memory for Watch resume (older: from the store).
  size_t recent_events = 16384;
  // Most events replayed to one resuming watcher before RESYNC_REQUIRED.
  size_t max_replay = 100000;
  // Node name stamped as origin_node.
  std::string node = "local";
  // Path reservations: default TTL, its bounds, the "expiring soon" lead
  // time, the per-agent cap, and how long a changed-paths report lives.
  absl::Duration reservation_ttl = absl::Minutes(15);
  absl::Duration min_reservation_ttl = absl::Seconds(10);
  absl::Duration max_reservation_ttl = absl::Hours(24);
  absl::Duration reservation_warning = absl::Minutes(2);
  int max_reservations_per_agent = 1000;
  absl::Duration changed_paths_ttl = absl::Hours(1);
  // Background threads for the scheduler and the notice sender. Tests set
  // false: scheduling and notices then run inline in the calling thread
  // right after the commit, deterministically.
  bool background = true;
};

// Who performs an operation (converted from the authenticated caller by
// the adapter).
struct Actor {
  claudenet::v1::PrincipalKind kind = claudenet::v1::PRINCIPAL_KIND_AGENT;
  std::string id;            // agent id, "svc", "admin", "system:<component>"
  std::string on_behalf_of;  // a service acting for an agent

  static Actor Agent(std::string agent_id);
  static Actor Admin();
  static Actor System(std::string component);  // id "system:<component>"

  // The agent this call acts as (agent itself or on-behalf-of), else "".
  std::string agent() const;
  bool admin() const { return kind == claudenet::v1::PRINCIPAL_KIND_ADMIN; }
  // The identity recorded as creator and compared for ownership.
  std::string principal_id() const;
  claudenet::v1::Principal ToProto() const;
};

// One entry of the board's event log as fanned out to watchers.
struct BoardEvent {
  claudenet::v1::TaskEvent event;
  // The holder whose lease this event ended, if any (Watch agent filter).
  std::string previous_holder;
};
using BoardEventPtr = std::shared_ptr<const BoardEvent>;

// Runs scheduling work off the calling thread (production) or inline.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void Post(std::function<void()> fn) = 0;
};

class Board {
 public:
  using ClaimDone = std::function<void(absl::StatusOr<claudenet::v1::ClaimResponse>)>;

  // Loads every task from the store, restores leases (timers from stored
  // expiry times), queues, deadlines and undelivered notices.
  static absl::StatusOr<std::unique_ptr<Board>> Open(BoardOptions options, Store* store,
                                                     Clock* clock, AgentDirectory* directory,
                                                     Notifier* notifier);
  ~Board();

  // Stops timers and threads, answers pending long-polls (no task), closes
  // the event hub so Watch streams end. Idempotent.
  void Shutdown();

  struct CreateResult {
    claudenet::v1::Task task;
    bool created = true;
  };
  absl::StatusOr<CreateResult> Create(const Actor& actor,
                                      const claudenet::v1::CreateTaskRequest& request);
  absl::StatusOr<claudenet::v1::Task> Get(const std::string& task_id);
  absl::StatusOr<claudenet::v1::Task> Update(const Actor& actor,
                                             const claudenet::v1::UpdateTaskRequest& request);
  absl::StatusOr<claudenet::v1::ListTasksResponse> List(
      const claudenet::v1::ListTasksRequest& request);

  // Claim without waiting (request.wait is ignored).
  absl::StatusOr<claudenet::v1::ClaimResponse> Claim(const Actor& actor,
                                                     const claudenet::v1::ClaimRequest& request);
  // Claim with long-poll: `done` runs exactly once, possibly before this
  // returns, possibly later from another thread (a task appeared, the wait
  // ended, CancelClaim, Shutdown). Returns a waiter id for CancelClaim (0 when
  // done already ran).
  uint64_t ClaimAsync(const Actor& actor, const claudenet::v1::ClaimRequest& request,
                      ClaimDone done);
  // The caller went away: `done` runs with CANCELLED if still waiting.
  void CancelClaim(uint64_t waiter_id);

  absl::StatusOr<claudenet::v1::StealResponse> Steal(const Actor& actor,
                                                     const claudenet::v1::StealRequest& request);
  absl::StatusOr<claudenet::v1::StartResponse> Start(const Actor& actor,
                                                     const claudenet::v1::StartRequest& request);
  absl::StatusOr<claudenet::v1::ProgressResponse> Progress(
      const Actor& actor, const claudenet::v1::ProgressRequest& request);
  absl::StatusOr<claudenet::v1::RenewLeaseResponse> RenewLease(
      const Actor& actor, const claudenet::v1::RenewLeaseRequest& request);
  absl::StatusOr<claudenet::v1::ReleaseResponse> Release(
      const Actor& actor, const claudenet::v1::ReleaseRequest& request);
  absl::StatusOr<claudenet::v1::RequestInputResponse> RequestInput(
      const Actor& actor, const claudenet::v1::RequestInputRequest& request);
  absl::StatusOr<claudenet::v1::ProvideInputResponse> ProvideInput(
      const Actor& actor, const claudenet::v1::ProvideInputRequest& request);
  absl::StatusOr<claudenet::v1::CompleteResponse> Complete(
      const Actor& actor, const claudenet::v1::CompleteRequest& request);
  absl::StatusOr<claudenet::v1::FailResponse> Fail(const Actor& actor,
                                                   const claudenet::v1::FailRequest& request);
  absl::StatusOr<claudenet::v1::ReviewResponse> Review(
      const Actor& actor, const claudenet::v1::ReviewRequest& request);
  absl::StatusOr<claudenet::v1::CancelResponse> Cancel(
      const Actor& actor, const claudenet::v1::CancelRequest& request);
  absl::StatusOr<claudenet::v1::ExplainTaskResponse> Explain(const std::string& task_id);
  absl::StatusOr<claudenet::v1::GetHistoryResponse> History(
      const claudenet::v1::GetHistoryRequest& request);
  absl::StatusOr<claudenet::v1::GetTaskStatsResponse> Stats(
      const claudenet::v1::GetTaskStatsRequest& request);

  // Path reservations (board_reservations.cc). The acting agent is
  // resolved by the adapter (RequireActingAs) into the request's agent_id.
  absl::StatusOr<claudenet::v1::ReserveResponse> Reserve(
      const Actor& actor, const claudenet::v1::ReserveRequest& request);
  absl::StatusOr<claudenet::v1::RenewReservationResponse> RenewReservation(
      const Actor& actor, const claudenet::v1::RenewReservationRequest& request);
  absl::StatusOr<claudenet::v1::ReleaseReservationResponse> ReleaseReservation(
      const Actor& actor, const claudenet::v1::ReleaseReservationRequest& request);
  absl::StatusOr<claudenet::v1::ListReservationsResponse> ListReservations(
      const claudenet::v1::ListReservationsRequest& request);
  absl::StatusOr<claudenet::v1::ForceReleaseResponse> ForceRelease(
      const Actor& actor, const claudenet::v1::ForceReleaseRequest& request);
  absl::StatusOr<claudenet::v1::CheckPathsResponse> CheckPaths(
      const Actor& actor, const claudenet::v1::CheckPathsRequest& request);
  absl::StatusOr<claudenet::v1::ReportChangedPathsResponse> ReportChangedPaths(
      const Actor& actor, const claudenet::v1::ReportChangedPathsRequest& request);

  // Watch support. ValidateWatch checks the request; WatchInitial returns
  // the snapshot or the replay (with `*resync` set when the resume point is
  // no longer retained: send RESYNC_REQUIRED and end); WatchConvert filters
  // and converts a live event, dropping those at or below `after_sequence`.
  absl::Status ValidateWatch(const claudenet::v1::WatchTasksRequest& request);
  // `*covered` is the highest sequence the initial batch accounts for: live
  // events at or below it must be dropped.
  std::vector<claudenet::v1::TaskEvent> WatchInitial(
      const claudenet::v1::WatchTasksRequest& request, bool* resync, int64_t* covered = nullptr);
  // True when a watcher may resume after `from_sequence` (0 = live).
  bool CanResume(int64_t from_sequence);
  static bool WatchMatches(const claudenet::v1::WatchTasksRequest& request,
                           const BoardEvent& event);
  EventHub<BoardEventPtr>* hub() { return &hub_; }
  // Sequence of the last durable (published) event.
  int64_t last_sequence() const;

  // Waits until everything changed so far is durable (and its events and
  // notices released).
  void Flush();
  // Tries to hand queued notices to the notifier now.
  void DrainNotices();
  // Runs the scheduler sweep now (push retries, alerts).
  void Sweep();
  // Notices not yet accepted by the notifier.
  size_t pending_notices() const;
  // Claims currently long-polling.
  size_t waiting_claims() const;
  // Group-commit figures: transactions committed, and operations (journal
  // tickets) they carried.
  struct JournalStats {
    int64_t commits = 0;
    int64_t operations = 0;
  };
  JournalStats journal_stats() const {
    return {commits_.load(), operations_.load()};
  }

 private:
  struct LeaseRecord {
    int64_t epoch = 0;
    std::string lease_id;
    std::string holder;
    absl::Time acquired;
    absl::Time ended = absl::InfiniteFuture();
    std::string end_reason;
  };

  struct QueueKey {
    int64_t virtual_us = 0;  // eligible_since - priority * aging
    int64_t since_us = 0;
    std::string id;
    bool operator<(const QueueKey& o) const {
      if (virtual_us != o.virtual_us) return virtual_us < o.virtual_us;
      if (since_us != o.since_us) return since_us < o.since_us;
      return id < o.id;
    }
  };

  struct CapQueue {
    std::vector<std::string> caps;  // sorted
    std::string assign_to;
    std::set<QueueKey> items;
  };

  struct Entry {
    claudenet::v1::Task task;
    std::vector<LeaseRecord> leases;
    std::vector<std::string> dependents;
    std::vector<std::string> children;
    int64_t history_len = 0;
    // Queue index (QUEUED and eligible).
    std::string queue_name;  // empty when not indexed
    QueueKey key;
    bool deferred = false;  // QUEUED, waiting for not_before
    Clock::TimerId lease_timer = 0;
    absl::Time lease_timer_at = absl::InfiniteFuture();
    Clock::TimerId not_before_timer = 0;
    Clock::TimerId deadline_timer = 0;
    Clock::TimerId cancel_timer = 0;
  };

  struct AgentLoad {
    std::set<std::string> held;      // leased: ASSIGNED, RUNNING, INPUT_REQUIRED
    std::set<std::string> assigned;  // ASSIGNED (not yet RUNNING)
  };

  struct ClaimFilter {
    std::vector<std::string> caps;  // sorted: what the agent may do
    std::vector<std::string> tags;
    std::string workspace;
  };

  struct Waiter {
    uint64_t id = 0;
    Actor actor;
    std::string agent;
    ClaimFilter filter;
    int limit = 0;
    absl::Duration lease;
    ClaimDone done;
    Clock::TimerId timer = 0;
  };

  // Effects of one operation, gathered under mu_ and acted upon after the
  // commit (Finish).
  struct Fx {
    uint64_t ticket = 0;
    bool wrote = false;                 // something was appended to the journal
    std::set<std::string> dirty;        // tasks whose row must be rewritten
    std::vector<std::string> push_ids;  // eligible tasks for the scheduler
    std::vector<std::string> check_dependents;  // tasks whose state changed
    std::vector<std::string> newly_eligible;
    std::set<std::string> freed_agents;
    std::vector<std::pair<ClaimDone, absl::StatusOr<claudenet::v1::ClaimResponse>>> completions;
  };

  struct ResEntry {
    claudenet::v1::Reservation r;
    Glob glob;
    Clock::TimerId expiry_timer = 0;
    Clock::TimerId warning_timer = 0;
  };
  // A reservation that lapsed (RenewReservation then answers EXPIRED).
  struct Lapsed {
    std::string holder;
    std::string workspace;
    std::string pattern;
  };
  struct ChangedReport {
    std::string base_ref;
    std::string task_id;
    std::set<std::string> paths;
    absl::Time reported_at;
    Clock::TimerId timer = 0;
  };

  Board(BoardOptions options, Store* store, Clock* clock, AgentDirectory* directory,
        Notifier* notifier);
  absl::Status Load();

  // --- helpers under mu_ -------------------------------------------------
  Entry* Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Entry*> FindOr404(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Touch(Entry& e, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Move(Entry& e, claudenet::v1::TaskState to, Op op, const Actor& actor,
            const std::string& reason, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t Emit(Entry* e, claudenet::v1::TaskEventType type, const Actor& actor,
               const claudenet::v1::TaskTransition* transition, const std::string& prev_holder,
               Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitAlert(const std::vector<std::string>& caps, int64_t waiting, absl::Duration oldest,
                 Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends a task-less event (reservations, conflicts): sequence and time
  // are assigned here.
  int64_t EmitEvent(claudenet::v1::TaskEvent ev, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddNotice(const std::string& recipient, const std::string& task_id,
                 const std::string& kind, const std::string& subject, const std::string& body,
                 bool urgent, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void GrantLease(Entry& e, const std::string& agent, absl::Duration duration, Fx& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RenewLeaseLocked(Entry& e, absl::Duration duration, Fx& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the current lease (if any); returns the former holder.
  std::string EndLease(Entry& e, const std::string& reason, Fx& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmLeaseTimer(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnLeaseTimer(const std::string& id, int64_t epoch);

  // Requeue of a leased task: QUEUED, or FAILED "attempts exhausted" when
  // `consume` uses the last attempt.
  void Requeue(Entry& e, bool consume, const Actor& actor, const std::string& reason, Fx& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailTask(Entry& e, Op op, claudenet::v1::TerminalCause cause, const Actor& actor,
                const std::string& reason, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelTask(Entry& e, claudenet::v1::TerminalCause cause, const Actor& actor,
                  const std::string& reason, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Queue index.
  void Enqueue(Entry& e, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unindex(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void IndexEligible(Entry& e, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnNotBefore(const std::string& id);
  static std::string QueueName(const std::vector<std::string>& caps, const std::string& assign_to);
  int64_t PriorityRank(const claudenet::v1::Task& t) const;
  bool Accepts(const Entry& e, const std::string& agent, const ClaimFilter& filter) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry* BestFor(const std::string& agent, const ClaimFilter& filter)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry* BestStealable(const std::string& agent, const ClaimFilter& filter,
                       const std::string& from_agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int LimitOf(const AgentInfo& info) const;
  int LoadOf(const std::string& agent) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Assign(Entry& e, const std::string& agent, absl::Duration lease, const Actor& actor,
              const std::string& reason, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StealLocked(Entry& e, const std::string& agent, absl::Duration lease, const Actor& actor,
                   Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Settle(Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Dispatch(Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmDeadline(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnDeadline(const std::string& id);
  void OnCancelGrace(const std::string& id);
  void CancelTimers(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CascadeDependencyFailure(Entry& dep, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Holder checks shared by the lease-carrying calls.
  enum class LeaseCheck { kCurrent, kStale, kNeverHeld };
  LeaseCheck CheckLease(const Entry& e, const Actor& actor, const std::string& lease_id,
                        int64_t epoch) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RequireHolder(const Entry& e, const Actor& actor, const std::string& lease_id,
                             int64_t epoch) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For holder calls: a stale lease first (LEASE_STALE), then the move
  // (ILLEGAL_TRANSITION), then who calls (PERMISSION_DENIED).
  absl::Status Gate(const Entry& e, const Actor& actor, const std::string& lease_id,
                    int64_t epoch, claudenet::v1::TaskState to, Op op) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Processes a lease whose expiry has passed but whose timer has not run
  // yet, so no call ever honours an expired lease.
  void ExpireDue(const std::string& task_id);
  claudenet::v1::LeaseLossReason LossReason(const Entry& e, const std::string& lease_id,
                                            int64_t epoch) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsCreatorOrAncestorCreator(const Entry& e, const Actor& actor) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckNoCycle(const std::string& id, const std::vector<std::string>& deps) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AcceptanceFailure(const Entry& e, const claudenet::v1::TaskResult& result) const;

  // Reservations under mu_.
  std::string ResolveAgent(const Actor& actor, const std::string& requested) const;
  void PutReservation(ResEntry& e, claudenet::v1::TaskEventType type, const Actor& actor,
                      Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropReservation(const std::string& id, claudenet::v1::TaskEventType type,
                       const Actor& actor, const std::string& reason, Fx& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmReservationTimers(ResEntry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnReservationTimer(const std::string& id, bool warning);
  void DropAgentReservations(const std::string& agent, const std::string& reason, Fx& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnReportLapse(const std::string& workspace, const std::string& agent, int64_t at_us);
  std::vector<const ResEntry*> ReservationsIn(const std::string& workspace) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  claudenet::v1::PathCheck CheckOnePath(const std::string& workspace, const std::string& agent,
                                        const std::string& path, const Glob& glob) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- after the lock ------------------------------------------------------
  // Commits everything appended so far up to fx.ticket, releases events and
  // notices, runs completions, schedules pushes.
  void Finish(Fx& fx);
  void WaitDurable(uint64_t ticket);
  // The committer thread: commits whatever was appended, as one
  // transaction, whenever someone waits for durability; meanwhile new
  // operations accumulate into the next batch (group commit).
  void CommitLoop();
  // Takes everything appended so far and makes it durable; publishes the
  // batch's events and hands its notices to the outbox.
  void CommitOnce();
  // Runs `fn` once everything up to `ticket` is durable: at once if it is,
  // else on the committer thread right after the commit (never blocks the
  // caller: for the callback-API Claim).
  void WhenDurable(uint64_t ticket, std::function<void()> fn);
  // Finish without blocking: the post-commit work runs via WhenDurable.
  void FinishAsync(Fx fx, std::function<void()> then);
  void SchedulePush(std::vector<std::string> ids, std::set<std::string> agents);
  void PushTasks(const std::vector<std::string>& ids);
  // Assigns `e` (QUEUED, indexed) to the least loaded of `candidates` with
  // room; false when none has room.
  bool PushLocked(Entry& e, const std::vector<AgentInfo>& candidates, Fx& fx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillAgents(const std::set<std::string>& agents);
  void OnAgentChange(const AgentChange& change);
  void ArmSweep();
  void NoticeLoop();
  void Post(std::function<void()> fn);
  // Runs fn under the life guard (skipped once shut down).
  void Guarded(const std::function<void()>& fn);
  absl::StatusOr<claudenet::v1::ClaimResponse> ClaimNow(
      const Actor& actor, const std::string& agent, const AgentInfo& info,
      const claudenet::v1::ClaimRequest& request, const ClaimFilter& filter,
      absl::Duration lease, bool* found, Fx& fx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PrepareClaim(const Actor& actor, const claudenet::v1::ClaimRequest& request,
                            std::string* agent, AgentInfo* info, ClaimFilter* filter,
                            absl::Duration* lease);
  void OnWaitTimeout(uint64_t waiter_id);

  const BoardOptions options_;
  Store* const store_;
  Clock* const clock_;
  AgentDirectory* const directory_;
  Notifier* const notifier_;
  IdGenerator ids_;

  // Guards against timer/executor/directory callbacks after Shutdown.
  std::shared_ptr<absl::Mutex> life_mu_ = std::make_shared<absl::Mutex>();
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  absl::Mutex commit_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::CondVar commit_cv_;   // the committer waits for work
  absl::CondVar durable_cv_;  // callers wait for their ticket
  uint64_t wanted_ ABSL_GUARDED_BY(commit_mu_) = 0;
  bool committer_stop_ ABSL_GUARDED_BY(commit_mu_) = false;
  bool committer_running_ ABSL_GUARDED_BY(commit_mu_) = false;
  std::thread committer_;
  std::thread::id committer_id_;
  std::multimap<uint64_t, std::function<void()>> on_durable_ ABSL_GUARDED_BY(commit_mu_);
  std::atomic<uint64_t> durable_{0};
  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> operations_{0};

  mutable absl::Mutex mu_;
  absl::btree_map<std::string, Entry> tasks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CapQueue> queues_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, AgentLoad> loads_ ABSL_GUARDED_BY(mu_);
  // (creator principal id, key) -> (task id, request hash)
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>> idempotency_
      ABSL_GUARDED_BY(mu_);
  std::list<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_waiter_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t state_counts_[16] ABSL_GUARDED_BY(mu_) = {};
  int64_t dead_work_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> alerted_capsets_ ABSL_GUARDED_BY(mu_);
  StatsRecorder stats_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Path reservations: live ones by id, their ids per workspace and per
  // holder, recently lapsed ones (bounded), changed-path reports.
  absl::btree_map<std::string, ResEntry> reservations_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>> res_by_workspace_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>> res_by_holder_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Lapsed> lapsed_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> lapsed_order_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, ChangedReport> reports_ ABSL_GUARDED_BY(mu_);
  // Journal: appended under mu_, taken by the committer.
  WriteBatch pending_ ABSL_GUARDED_BY(mu_);
  std::vector<BoardEventPtr> pending_events_ ABSL_GUARDED_BY(mu_);
  std::vector<Notice> pending_notices_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;

  // Published (durable) events, newest last, for Watch resume.
  mutable absl::Mutex recent_mu_;
  std::deque<BoardEventPtr> recent_ ABSL_GUARDED_BY(recent_mu_);
  int64_t published_seq_ ABSL_GUARDED_BY(recent_mu_) = 0;
  EventHub<BoardEventPtr> hub_;

  // Notices accepted by the journal, waiting for the notifier.
  mutable absl::Mutex outbox_mu_;
  std::deque<Notice> outbox_ ABSL_GUARDED_BY(outbox_mu_);
  absl::CondVar outbox_cv_;
  bool outbox_stop_ ABSL_GUARDED_BY(outbox_mu_) = false;
  absl::Time outbox_retry_at_ ABSL_GUARDED_BY(outbox_mu_) = absl::InfinitePast();
  absl::Duration outbox_backoff_ ABSL_GUARDED_BY(outbox_mu_) = absl::Seconds(1);
  std::thread notice_thread_;

  std::unique_ptr<Executor> executor_;
  Clock::TimerId sweep_timer_ = 0;
};

// Validation helpers shared with the adapter and tests.
bool ValidCapability(const std::string& s);
bool ValidTag(const std::string& s);
bool ValidAgentId(const std::string& s);
bool ValidTaskId(const std::string& s);

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_BOARD_H_
