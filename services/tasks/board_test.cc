// Board core: creation and its bad inputs, idempotency, dependencies, the
// queue (priority, age, aging), listing, history, statistics, the event log
// and notices.
#include "google/protobuf/util/message_differencer.h"
#include "services/tasks/board_test_util.h"

namespace cnet::tasks {
namespace {

using testing::BoardFixture;
using testing::Held;
using testing::kSha1;

class BoardTest : public BoardFixture {
 protected:
  int64_t TaskCount() {
    auto r = board_->List(pb::ListTasksRequest());
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->total_size() : -1;
  }

  // Asserts that `req` is refused with `code`, and that nothing was stored:
  // no task, no event.
  void ExpectRefused(const pb::CreateTaskRequest& req, absl::StatusCode code,
                     const std::string& fragment) {
    board_->Flush();
    int64_t tasks = TaskCount();
    int64_t seq = board_->last_sequence();
    auto r = board_->Create(Agent("boss"), req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status();
    EXPECT_NE(std::string(r.status().message()).find(fragment), std::string::npos)
        << r.status();
    board_->Flush();
    EXPECT_EQ(TaskCount(), tasks);
    EXPECT_EQ(board_->last_sequence(), seq);
  }
};

TEST_F(BoardTest, CreateWithoutDependenciesQueuesAtOnce) {
  pb::Task t = Create("write docs");
  EXPECT_EQ(t.state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(t.id().substr(0, 5), "task-");
  EXPECT_TRUE(ValidTaskId(t.id()));
  EXPECT_EQ(t.creator().id(), "boss");
  EXPECT_EQ(t.max_attempts(), 3);
  auto h = History(t.id());
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].from_state(), pb::TASK_STATE_UNSPECIFIED);
  EXPECT_EQ(h[0].to_state(), pb::TASK_STATE_CREATED);
  EXPECT_EQ(h[0].actor().id(), "boss");
  EXPECT_EQ(h[1].to_state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(h[1].reason(), "no dependencies");
}

TEST_F(BoardTest, IdempotencyKeyReturnsTheSameTaskAndRefusesADifferentRequest) {
  pb::CreateTaskRequest req;
  req.set_title("once");
  req.set_idempotency_key("k-1");
  auto first = board_->Create(Agent("boss"), req);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->created);
  auto again = board_->Create(Agent("boss"), req);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->task.id(), first->task.id());
  // Keys are scoped to the creator.
  auto other = board_->Create(Agent("someone-else"), req);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->task.id(), first->task.id());
  req.set_title("changed");
  ExpectRefused(req, absl::StatusCode::kAlreadyExists, "idempotency_key");
  // Survives a restart.
  req.set_title("once");
  OpenBoard();
  auto after = board_->Create(Agent("boss"), req);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->created);
  EXPECT_EQ(after->task.id(), first->task.id());
}

TEST_F(BoardTest, BadCreateInputsAreRefusedAndStoreNothing) {
  pb::Task existing = Create("existing");
  pb::CreateTaskRequest base;
  base.set_title("ok");

  pb::CreateTaskRequest r = base;
  r.set_title("");
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "title: must not be empty");
  r = base;
  r.set_title(std::string(257, 'x'));
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "title: longer than 256");
  r = base;
  (*r.mutable_payload()->mutable_fields())["blob"].set_string_value(std::string(300 * 1024, 'p'));
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "payload: larger than");
  r = base;
  r.add_required_capabilities("Py Thon");
  ExpectRefused(r, absl::StatusCode::kInvalidArgument,
                "required_capabilities[0] \"Py Thon\": must match");
  r = base;
  r.add_tags("UPPER");
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "tags[0]");
  r = base;
  r.set_priority(static_cast<pb::Priority>(7));
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "priority out of range");
  r = base;
  r.set_max_attempts(101);
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "max_attempts");
  r = base;
  *r.mutable_deadline() = ToProto(clock_.Now() - absl::Seconds(1));
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "deadline");
  r = base;
  r.add_dependencies("task-00000000000000000000000000");
  ExpectRefused(r, absl::StatusCode::kNotFound, "no such task");
  r = base;
  r.add_dependencies("not-a-task");
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "dependencies[0]");
  r = base;
  r.add_dependencies(existing.id());
  r.add_dependencies(existing.id());
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "listed twice");
  r = base;
  r.set_parent_id("task-00000000000000000000000000");
  ExpectRefused(r, absl::StatusCode::kNotFound, "parent_id");
  r = base;
  r.mutable_review()->set_required(true);
  r.mutable_review()->set_required_approvals(9);
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "review.required_approvals");
  r = base;
  r.mutable_acceptance()->add_required_evidence(pb::EVIDENCE_KIND_UNSPECIFIED);
  ExpectRefused(r, absl::StatusCode::kInvalidArgument, "acceptance.required_evidence[0]");
  r = base;
  r.set_assign_to("nobody");
  ExpectRefused(r, absl::StatusCode::kNotFound, "assign_to");
}

TEST_F(BoardTest, SelfDependencyAndUnknownDependencyOnUpdate) {
  pb::Task blocker = Create("blocker");
  pb::Task t = Create("t", {"py"}, {blocker.id()});
  ASSERT_EQ(t.state(), pb::TASK_STATE_CREATED);
  pb::UpdateTaskRequest u;
  u.mutable_task()->set_id(t.id());
  u.mutable_task()->add_dependencies(t.id());
  u.mutable_update_mask()->add_paths("dependencies");
  auto r = board_->Update(Agent("boss"), u);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("cannot depend on itself"), std::string::npos);
  u.mutable_task()->set_dependencies(0, "task-00000000000000000000000000");
  EXPECT_EQ(board_->Update(Agent("boss"), u).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Get(t.id()).dependencies(0), blocker.id());
  // Only the creator (or admin) may update.
  u.mutable_task()->set_dependencies(0, blocker.id());
  EXPECT_EQ(board_->Update(Agent("intruder"), u).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(BoardTest, DiamondRunsInDependencyOrder) {
  AddAgent("a1");
  pb::Task a = Create("A");
  pb::Task b = Create("B", {"py"}, {a.id()});
  pb::Task c = Create("C", {"py"}, {a.id()});
  pb::Task d = Create("D", {"py"}, {b.id(), c.id()});
  EXPECT_EQ(b.state(), pb::TASK_STATE_CREATED);
  EXPECT_EQ(d.state(), pb::TASK_STATE_CREATED);

  std::vector<std::string> order;
  // Claim whatever is eligible, one at a time, and record the order.
  for (int i = 0; i < 4; ++i) {
    Held h = Claim("a1");
    ASSERT_FALSE(h.task.id().empty()) << "nothing eligible at step " << i;
    order.push_back(h.task.title());
    ASSERT_TRUE(Start("a1", h).ok());
    if (h.task.id() == b.id()) {
      // B done but C not yet: D still waits.
      ASSERT_TRUE(Complete("a1", h).ok());
      EXPECT_EQ(Get(d.id()).state(), Get(c.id()).state() == pb::TASK_STATE_COMPLETED
                                         ? pb::TASK_STATE_QUEUED
                                         : pb::TASK_STATE_CREATED);
      continue;
    }
    ASSERT_TRUE(Complete("a1", h).ok());
  }
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0], "A");
  EXPECT_EQ(order[3], "D");
  EXPECT_EQ(Get(d.id()).state(), pb::TASK_STATE_COMPLETED);
}

TEST_F(BoardTest, CycleIsRejectedWithItsPath) {
  pb::Task x = Create("X");
  pb::Task a = Create("A", {"py"}, {x.id()});
  pb::Task b = Create("B", {"py"}, {a.id()});
  pb::UpdateTaskRequest u;
  u.mutable_task()->set_id(a.id());
  u.mutable_task()->add_dependencies(b.id());
  u.mutable_update_mask()->add_paths("dependencies");
  auto r = board_->Update(Agent("boss"), u);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_EQ(ErrorReason(r.status()), "DEPENDENCY_CYCLE");
  EXPECT_NE(std::string(r.status().message())
                .find(absl::StrCat(a.id(), " -> ", b.id(), " -> ", a.id())),
            std::string::npos)
      << r.status();
  pb::Task still = Get(a.id());
  ASSERT_EQ(still.dependencies_size(), 1);
  EXPECT_EQ(still.dependencies(0), x.id());
}

TEST_F(BoardTest, FailedDependencyFailsDependentsDownTheGraph) {
  AddAgent("a1");
  pb::Task a = Create("A");
  pb::Task b = Create("B", {"py"}, {a.id()});
  pb::Task c = Create("C", {"py"}, {b.id()});
  Held h = Claim("a1", a.id());
  pb::FailRequest f;
  f.set_task_id(a.id());
  f.set_lease_id(h.lease_id);
  f.set_lease_epoch(h.epoch);
  f.set_reason("compiler crashed");
  ASSERT_TRUE(board_->Fail(Agent("a1"), f).ok());
  for (const pb::Task& t : {Get(b.id()), Get(c.id())}) {
    EXPECT_EQ(t.state(), pb::TASK_STATE_FAILED);
    EXPECT_EQ(t.terminal_cause(), pb::TERMINAL_CAUSE_DEPENDENCY_FAILED);
  }
  EXPECT_NE(Get(b.id()).terminal_reason().find(a.id()), std::string::npos);
  EXPECT_NE(Get(c.id()).terminal_reason().find(b.id()), std::string::npos);
  // A new task depending on the failed one is refused under policy FAIL.
  pb::CreateTaskRequest req;
  req.set_title("late");
  req.add_dependencies(a.id());
  auto late = board_->Create(Agent("boss"), req);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(late.status()), "DEPENDENCY_FAILED");
}

TEST_F(BoardTest, BlockPolicyKeepsDependentVisiblyBlockedUntilUpdated) {
  pb::Task a = Create("A");
  pb::CreateTaskRequest req;
  req.set_title("B");
  req.add_dependencies(a.id());
  req.set_on_dependency_failure(pb::DEPENDENCY_FAILURE_POLICY_BLOCK);
  pb::Task b = CreateWith(req);
  pb::CancelRequest c;
  c.set_task_id(a.id());
  ASSERT_TRUE(board_->Cancel(Agent("boss"), c).ok());
  pb::Task blocked = Get(b.id());
  EXPECT_EQ(blocked.state(), pb::TASK_STATE_CREATED);
  EXPECT_TRUE(blocked.blocked());
  EXPECT_NE(blocked.blocked_reason().find(a.id()), std::string::npos);
  auto why = board_->Explain(b.id());
  ASSERT_TRUE(why.ok());
  ASSERT_EQ(why->reasons_size(), 1);
  EXPECT_EQ(why->reasons(0).kind(), pb::BLOCKING_REASON_KIND_DEPENDENCY_FAILED);
  EXPECT_EQ(why->reasons(0).task_id(), a.id());
  pb::ListTasksRequest list;
  list.set_blocked_only(true);
  EXPECT_EQ(board_->List(list)->total_size(), 1);
  // Someone acts: replace the dependencies.
  pb::Task a2 = Create("A again");
  pb::UpdateTaskRequest u;
  u.mutable_task()->set_id(b.id());
  u.mutable_task()->add_dependencies(a2.id());
  u.mutable_update_mask()->add_paths("dependencies");
  auto updated = board_->Update(Agent("boss"), u);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_FALSE(updated->blocked());
  EXPECT_EQ(updated->state(), pb::TASK_STATE_CREATED);
}

TEST_F(BoardTest, QueueOrderIsPriorityThenAge) {
  AddAgent("a1");
  pb::CreateTaskRequest req;
  req.set_priority(pb::PRIORITY_NORMAL);
  pb::Task n1 = CreateWith(req);
  clock_.Advance(absl::Seconds(1));
  pb::Task n2 = CreateWith(req);
  req.set_priority(pb::PRIORITY_HIGH);
  pb::Task h1 = CreateWith(req);
  req.set_priority(pb::PRIORITY_LOW);
  pb::Task l1 = CreateWith(req);
  EXPECT_EQ(Claim("a1").task.id(), h1.id());
  EXPECT_EQ(Claim("a1").task.id(), n1.id());
  EXPECT_EQ(Claim("a1").task.id(), n2.id());
  EXPECT_EQ(Claim("a1").task.id(), l1.id());
}

TEST_F(BoardTest, AgingLiftsAStarvingTask) {
  AddAgent("a1");
  pb::CreateTaskRequest low;
  low.set_priority(pb::PRIORITY_LOW);
  pb::Task starving = CreateWith(low);
  pb::CreateTaskRequest high;
  high.set_priority(pb::PRIORITY_HIGH);
  // A steady stream of HIGH work: without aging LOW would wait forever.
  clock_.Advance(absl::Seconds(60));
  pb::Task early_high = CreateWith(high);
  Held first = Claim("a1");
  EXPECT_EQ(first.task.id(), early_high.id());  // one step of aging is not enough
  ASSERT_TRUE(Start("a1", first).ok());
  ASSERT_TRUE(Complete("a1", first).ok());
  clock_.Advance(absl::Seconds(125));  // LOW has now waited > 3 steps
  pb::Task late_high = CreateWith(high);
  EXPECT_EQ(Claim("a1").task.id(), starving.id());
  EXPECT_EQ(Claim("a1").task.id(), late_high.id());
}

TEST_F(BoardTest, ListFiltersAndPagesWithoutRepeatsOrSkips) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    pb::CreateTaskRequest req;
    req.set_title(absl::StrCat("t", i));
    if (i % 2 == 0) req.add_tags("even");
    ids.push_back(CreateWith(req).id());
  }
  pb::ListTasksRequest req;
  req.add_tags("even");
  req.set_page_size(5);
  std::vector<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    auto r = board_->List(req);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->total_size(), 13);
    for (const auto& t : r->tasks()) seen.push_back(t.id());
    if (r->next_page_token().empty()) break;
    req.set_page_token(r->next_page_token());
  }
  std::vector<std::string> want;
  for (int i = 0; i < 25; i += 2) want.push_back(ids[i]);
  EXPECT_EQ(seen, want);
  // A token is bound to its filters.
  pb::ListTasksRequest other;
  other.set_page_token(req.page_token());
  EXPECT_EQ(board_->List(other).status().code(), absl::StatusCode::kInvalidArgument);
  pb::ListTasksRequest bad;
  bad.set_page_size(1001);
  EXPECT_EQ(board_->List(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.set_page_size(0);
  *bad.mutable_created_after() = ToProto(clock_.Now());
  *bad.mutable_created_before() = ToProto(clock_.Now() - absl::Seconds(1));
  EXPECT_EQ(board_->List(bad).status().code(), absl::StatusCode::kInvalidArgument);
  // Newest first.
  pb::ListTasksRequest desc;
  desc.set_order_by(pb::TASK_ORDER_CREATED_DESC);
  desc.set_page_size(1);
  EXPECT_EQ(board_->List(desc)->tasks(0).id(), ids.back());
}

TEST_F(BoardTest, HistoryRecordsEveryTransitionWithActorAttemptAndEpoch) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  ASSERT_TRUE(Start("a1", h).ok());
  ASSERT_TRUE(Complete("a1", h).ok());
  auto hist = History(t.id());
  ASSERT_EQ(hist.size(), 5u);
  EXPECT_EQ(hist[2].from_state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(hist[2].to_state(), pb::TASK_STATE_ASSIGNED);
  EXPECT_EQ(hist[2].actor().id(), "a1");
  EXPECT_EQ(hist[2].reason(), "claimed");
  EXPECT_EQ(hist[2].attempt(), 1);
  EXPECT_EQ(hist[2].lease_epoch(), 1);
  EXPECT_EQ(hist[2].holder(), "a1");
  EXPECT_EQ(hist[4].to_state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(hist[4].lease_epoch(), 0);
  for (size_t i = 0; i < hist.size(); ++i) EXPECT_EQ(hist[i].index(), static_cast<int64_t>(i + 1));
  // Paged.
  pb::GetHistoryRequest req;
  req.set_task_id(t.id());
  req.set_page_size(2);
  auto p1 = board_->History(req);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->transitions_size(), 2);
  req.set_page_token(p1->next_page_token());
  auto p2 = board_->History(req);
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->transitions(0).index(), 3);
  pb::GetHistoryRequest missing;
  missing.set_task_id("task-00000000000000000000000000");
  EXPECT_EQ(board_->History(missing).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BoardTest, EventsCarryIncreasingSequencesAndResumeFromAnyPoint) {
  std::vector<BoardEventPtr> seen;
  auto sub = board_->hub()->Subscribe(1000, [] {});
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  ASSERT_TRUE(Progress("a1", h, 40).ok());
  BoardEventPtr ev;
  while (sub->Pop(&ev)) seen.push_back(ev);
  ASSERT_EQ(seen.size(), 5u);  // CREATED, ->QUEUED, ->ASSIGNED, ->RUNNING, PROGRESS
  EXPECT_EQ(seen[0]->event.type(), pb::TASK_EVENT_TYPE_CREATED);
  EXPECT_EQ(seen[4]->event.type(), pb::TASK_EVENT_TYPE_PROGRESS);
  EXPECT_DOUBLE_EQ(seen[4]->event.task().progress().percent(), 40);
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i]->event.sequence(), seen[i - 1]->event.sequence() + 1);
  }
  pb::WatchTasksRequest w;
  w.set_from_sequence(seen[1]->event.sequence());
  bool resync = false;
  auto replay = board_->WatchInitial(w, &resync);
  EXPECT_FALSE(resync);
  ASSERT_EQ(replay.size(), 3u);
  EXPECT_EQ(replay[0].sequence(), seen[2]->event.sequence());
  // Sequences continue across a restart, and old events are replayed from the store.
  int64_t last = board_->last_sequence();
  OpenBoard();
  EXPECT_EQ(board_->last_sequence(), last);
  replay = board_->WatchInitial(w, &resync);
  EXPECT_EQ(replay.size(), 3u);
  // A resume point in the future is refused.
  w.set_from_sequence(last + 10);
  EXPECT_EQ(board_->ValidateWatch(w).code(), absl::StatusCode::kInvalidArgument);
  // Snapshot: non-terminal tasks, then SNAPSHOT_END.
  pb::WatchTasksRequest snap;
  snap.set_send_snapshot(true);
  auto s = board_->WatchInitial(snap, &resync);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].type(), pb::TASK_EVENT_TYPE_SNAPSHOT);
  EXPECT_EQ(s[0].task().id(), t.id());
  EXPECT_EQ(s[1].type(), pb::TASK_EVENT_TYPE_SNAPSHOT_END);
  EXPECT_EQ(s[1].sequence(), last);
}

TEST_F(BoardTest, StatsReportCountsPercentilesRatesAndCapabilitySets) {
  AddAgent("a1", {"py"});
  AddAgent("a2", {"py", "go"});
  for (int i = 0; i < 4; ++i) {
    pb::Task t = Create();
    clock_.Advance(absl::Seconds(10));
    Held h = Claim("a1", t.id());
    ASSERT_TRUE(Start("a1", h).ok());
    clock_.Advance(absl::Seconds(5 * (i + 1)));
    ASSERT_TRUE(Complete("a1", h).ok());
  }
  pb::Task waiting = Create("needs rust", {"rust"});
  clock_.Advance(absl::Seconds(30));
  pb::GetTaskStatsRequest req;
  req.set_include_per_agent(true);
  auto s = board_->Stats(req);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->by_state_size(), 9);
  EXPECT_EQ(s->by_state(pb::TASK_STATE_COMPLETED - 1).count(), 4);
  EXPECT_EQ(s->by_state(pb::TASK_STATE_QUEUED - 1).count(), 1);
  EXPECT_EQ(s->queue_wait().count(), 4);
  EXPECT_EQ(FromProtoDuration(s->queue_wait().p50()), absl::Seconds(10));
  EXPECT_EQ(s->run_time().count(), 4);
  EXPECT_EQ(FromProtoDuration(s->run_time().max()), absl::Seconds(20));
  EXPECT_EQ(FromProtoDuration(s->run_time().p99()), absl::Seconds(20));
  EXPECT_DOUBLE_EQ(s->completion_rate(), 1.0);
  EXPECT_EQ(s->oldest_eligible_task_id(), waiting.id());
  EXPECT_EQ(FromProtoDuration(s->oldest_eligible_age()), absl::Seconds(30));
  ASSERT_EQ(s->capability_sets_size(), 1);
  EXPECT_EQ(s->capability_sets(0).capabilities(0), "rust");
  EXPECT_EQ(s->capability_sets(0).waiting_tasks(), 1);
  EXPECT_EQ(s->capability_sets(0).eligible_agents(), 0);
  ASSERT_GE(s->per_agent_size(), 1);
  EXPECT_EQ(s->per_agent(0).agent_id(), "a1");
  EXPECT_EQ(s->per_agent(0).completed(), 4);
  pb::GetTaskStatsRequest bad;
  *bad.mutable_window() = ToProtoDuration(absl::Seconds(5));
  EXPECT_EQ(board_->Stats(bad).status().code(), absl::StatusCode::kInvalidArgument);
  // The figures survive a restart (rebuilt from the history).
  OpenBoard();
  auto again = board_->Stats(req);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->queue_wait().count(), 4);
  EXPECT_EQ(again->run_time().count(), 4);
  EXPECT_EQ(again->completed(), 4);
}

TEST_F(BoardTest, NoticesQueueWhileTheGatewayIsDownAndCatchUp) {
  AddAgent("a1");
  notifier_.SetDown(true);
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  ASSERT_TRUE(Start("a1", h).ok());
  pb::RequestInputRequest r;
  r.set_task_id(t.id());
  r.set_lease_id(h.lease_id);
  r.set_lease_epoch(h.epoch);
  r.set_question("which database?");
  ASSERT_TRUE(board_->RequestInput(Agent("a1"), r).ok());  // the board does not block or fail
  EXPECT_EQ(board_->pending_notices(), 1u);
  EXPECT_TRUE(notifier_.sent().empty());
  // Still queued across a restart.
  OpenBoard();
  EXPECT_EQ(board_->pending_notices(), 1u);
  notifier_.SetDown(false);
  board_->DrainNotices();
  ASSERT_EQ(notifier_.Count("boss", "input_requested"), 1);
  EXPECT_EQ(notifier_.sent()[0].task_id, t.id());
  EXPECT_EQ(board_->pending_notices(), 0u);
  board_->Flush();
  OpenBoard();
  EXPECT_EQ(board_->pending_notices(), 0u);
}

TEST_F(BoardTest, DeadlinePassingFailsTheTask) {
  pb::CreateTaskRequest req;
  req.set_title("urgent");
  *req.mutable_deadline() = ToProto(clock_.Now() + absl::Minutes(5));
  pb::Task t = CreateWith(req);
  clock_.Advance(absl::Minutes(5));
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.state(), pb::TASK_STATE_FAILED);
  EXPECT_EQ(after.terminal_cause(), pb::TERMINAL_CAUSE_DEADLINE_EXCEEDED);
}

}  // namespace
}  // namespace cnet::tasks
