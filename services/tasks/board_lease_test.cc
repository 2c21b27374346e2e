// Board core on a simulated clock: leases and fencing, expiry and attempts,
// release, agent death, work stealing, long-poll claims, push assignment,
// review, acceptance checks, ExplainTask, cancellation and questions.
#include "services/tasks/board_test_util.h"

namespace cnet::tasks {
namespace {

using testing::BoardFixture;
using testing::Held;
using testing::kSha1;
using testing::kSha2;
using testing::kSha3;

class LeaseTest : public BoardFixture {};

TEST_F(LeaseTest, LeaseExpiryRequeuesAndBumpsTheAttempt) {
  AddAgent("a1");
  AddAgent("a2");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  EXPECT_EQ(h.task.attempt(), 1);
  clock_.Advance(absl::Seconds(59));
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_ASSIGNED);
  clock_.Advance(absl::Seconds(1));
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(after.attempts_used(), 1);
  EXPECT_FALSE(after.has_lease());
  auto hist = History(t.id());
  EXPECT_EQ(hist.back().actor().id(), "system:lease-timer");
  EXPECT_NE(hist.back().reason().find("lease expired"), std::string::npos);
  Held again = Claim("a2", t.id());
  EXPECT_EQ(again.task.attempt(), 2);
  EXPECT_EQ(again.epoch, 2);
}

TEST_F(LeaseTest, ProgressRenewsTheLease) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(40));
    auto p = Progress("a1", h, 10.0 * i);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(p->lease_valid());
    EXPECT_EQ(FromProto(p->lease().expires_at()), clock_.Now() + absl::Seconds(60));
  }
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_RUNNING);
  EXPECT_EQ(Get(t.id()).attempts_used(), 0);
}

TEST_F(LeaseTest, MaxAttemptsEndsInFailedAttemptsExhausted) {
  AddAgent("a1");
  pb::CreateTaskRequest req;
  req.set_max_attempts(2);
  pb::Task t = CreateWith(req);
  Claim("a1", t.id());
  clock_.Advance(absl::Seconds(60));
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_QUEUED);
  Claim("a1", t.id());
  clock_.Advance(absl::Seconds(60));
  pb::Task dead = Get(t.id());
  EXPECT_EQ(dead.state(), pb::TASK_STATE_FAILED);
  EXPECT_EQ(dead.terminal_cause(), pb::TERMINAL_CAUSE_ATTEMPTS_EXHAUSTED);
  EXPECT_NE(dead.terminal_reason().find("attempts exhausted"), std::string::npos);
  EXPECT_EQ(board_->Stats(pb::GetTaskStatsRequest())->dead_work(), 1);
}

TEST_F(LeaseTest, StaleLeaseIsRejectedAndTheNewOwnersWorkIsSafe) {
  AddAgent("a1");
  AddAgent("a2");
  pb::Task t = Create();
  Held old = Claim("a1", t.id());
  ASSERT_TRUE(Start("a1", old).ok());
  clock_.Advance(absl::Seconds(61));  // a1 stalls; its lease lapses
  Held fresh = Claim("a2", t.id());
  ASSERT_TRUE(Start("a2", fresh).ok());
  ASSERT_TRUE(Progress("a2", fresh, 30).ok());
  const pb::Task before = Get(t.id());

  // The zombie comes back.
  auto c = Complete("a1", old);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(c.status()), "LEASE_STALE");
  pb::FailRequest f;
  f.set_task_id(t.id());
  f.set_lease_id(old.lease_id);
  f.set_lease_epoch(old.epoch);
  f.set_reason("zombie");
  EXPECT_EQ(ErrorReason(board_->Fail(Agent("a1"), f).status()), "LEASE_STALE");
  // Its next renewal is told to stop, and why.
  auto p = Progress("a1", old, 99);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->lease_valid());
  EXPECT_EQ(p->lease_loss_reason(), pb::LEASE_LOSS_REASON_SUPERSEDED);
  auto r = Renew("a1", old);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->lease_valid());
  const pb::Task after = Get(t.id());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  EXPECT_DOUBLE_EQ(after.progress().percent(), 30);
  // Someone who never held it is refused outright.
  EXPECT_EQ(Progress("intruder", fresh).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Complete("intruder", fresh).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(LeaseTest, ExpiredLeaseIsReportedExpiredToItsHolder) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  clock_.Advance(absl::Seconds(60));
  auto r = Renew("a1", h);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->lease_valid());
  EXPECT_EQ(r->lease_loss_reason(), pb::LEASE_LOSS_REASON_EXPIRED);
  EXPECT_EQ(r->task_state(), pb::TASK_STATE_QUEUED);
}

TEST_F(LeaseTest, RateLimitedReleaseKeepsTheAttemptAndHonoursNotBefore) {
  AddAgent("a1");
  AddAgent("a2");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  pb::ReleaseRequest rel;
  rel.set_task_id(t.id());
  rel.set_lease_id(h.lease_id);
  rel.set_lease_epoch(h.epoch);
  rel.set_reason(pb::RELEASE_REASON_RATE_LIMITED);
  (*rel.mutable_checkpoint()->mutable_fields())["step"].set_number_value(3);
  // Bad inputs first: nothing changes.
  pb::ReleaseRequest bad = rel;
  bad.clear_not_before();
  EXPECT_EQ(board_->Release(Agent("a1"), bad).status().code(), absl::StatusCode::kInvalidArgument);
  *bad.mutable_not_before() = ToProto(clock_.Now() + absl::Hours(25));
  EXPECT_EQ(board_->Release(Agent("a1"), bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_ASSIGNED);

  *rel.mutable_not_before() = ToProto(clock_.Now() + absl::Minutes(10));
  auto r = board_->Release(Agent("a1"), rel);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->task().state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(r->task().attempts_used(), 0);
  // Not offered before not_before.
  EXPECT_FALSE(Claim("a2").task.has_lease());
  pb::ClaimRequest direct;
  direct.set_task_id(t.id());
  EXPECT_EQ(ErrorReason(board_->Claim(Agent("a2"), direct).status()), "NOT_ELIGIBLE");
  auto why = board_->Explain(t.id());
  ASSERT_TRUE(why.ok());
  EXPECT_EQ(why->reasons(0).kind(), pb::BLOCKING_REASON_KIND_NOT_BEFORE);
  clock_.Advance(absl::Minutes(9));
  EXPECT_FALSE(Claim("a2").task.has_lease());
  clock_.Advance(absl::Minutes(1));
  Held next = Claim("a2");
  ASSERT_EQ(next.task.id(), t.id());
  EXPECT_EQ(next.task.attempt(), 1);  // the same attempt: none was consumed
  EXPECT_EQ(next.task.progress().checkpoint().fields().at("step").number_value(), 3);
}

TEST_F(LeaseTest, NotCapableReleaseExcludesTheAgent) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  pb::ReleaseRequest rel;
  rel.set_task_id(t.id());
  rel.set_lease_id(h.lease_id);
  rel.set_lease_epoch(h.epoch);
  rel.set_reason(pb::RELEASE_REASON_NOT_CAPABLE);
  ASSERT_TRUE(board_->Release(Agent("a1"), rel).ok());
  EXPECT_FALSE(Claim("a1").task.has_lease());
  EXPECT_EQ(Get(t.id()).excluded_agents(0), "a1");
}

TEST_F(LeaseTest, AgentDeadEventRequeuesItsLeases) {
  AddAgent("a1");
  AddAgent("a2");
  pb::Task t1 = Create();
  pb::Task t2 = Create();
  pb::Task other = Create();
  Held h1 = Claim("a1", t1.id());
  Held h2 = Claim("a1", t2.id());
  ASSERT_TRUE(Start("a1", h2).ok());
  Claim("a2", other.id());
  directory_.SetHealth("a1", pb::HEALTH_DEAD);
  for (const std::string& id : {t1.id(), t2.id()}) {
    pb::Task t = Get(id);
    EXPECT_EQ(t.state(), pb::TASK_STATE_QUEUED);
    EXPECT_EQ(t.attempts_used(), 1);
    EXPECT_NE(History(id).back().reason().find("DEAD"), std::string::npos);
  }
  EXPECT_EQ(Get(other.id()).state(), pb::TASK_STATE_ASSIGNED);
  // The dead agent cannot claim; a deregistered one neither.
  pb::ClaimRequest req;
  EXPECT_EQ(ErrorReason(board_->Claim(Agent("a1"), req).status()), "AGENT_NOT_HEALTHY");
  directory_.Remove("a2");
  EXPECT_EQ(Get(other.id()).state(), pb::TASK_STATE_QUEUED);
}

TEST_F(LeaseTest, ClaimRefusals) {
  AddAgent("a1", {"py"}, /*limit=*/1);
  AddAgent("gopher", {"go"});
  pb::Task t = Create("py work", {"py"});
  pb::ClaimRequest req;
  req.set_task_id(t.id());
  auto r = board_->Claim(Agent("gopher"), req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(r.status()), "MISSING_CAPABILITY");
  req.set_agent_id("a1");
  EXPECT_EQ(board_->Claim(Agent("gopher"), req).status().code(),
            absl::StatusCode::kPermissionDenied);
  pb::ClaimRequest w;
  *w.mutable_wait() = ToProtoDuration(absl::Minutes(6));
  EXPECT_EQ(board_->Claim(Agent("a1"), w).status().code(), absl::StatusCode::kInvalidArgument);
  pb::ClaimRequest l;
  *l.mutable_lease_duration() = ToProtoDuration(absl::Seconds(5));
  EXPECT_EQ(board_->Claim(Agent("a1"), l).status().code(), absl::StatusCode::kInvalidArgument);
  pb::ClaimRequest c;
  c.add_capabilities("go");
  EXPECT_EQ(board_->Claim(Agent("a1"), c).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_QUEUED);
  Claim("a1", t.id());
  Create("second", {"py"});
  EXPECT_EQ(ErrorReason(board_->Claim(Agent("a1"), pb::ClaimRequest()).status()), "AT_CAPACITY");
}

TEST_F(LeaseTest, StealingTakesAssignedWorkFromAnOverloadedAgentNeverRunningWork) {
  AddAgent("a1");
  AddAgent("a2");
  std::vector<Held> held;
  for (int i = 0; i < 3; ++i) held.push_back(Claim("a1", Create().id()));
  // a1 holds 3 ASSIGNED (> threshold 2). The running one is never stolen.
  ASSERT_TRUE(Start("a1", held[0]).ok());
  pb::StealRequest running;
  running.set_task_id(held[0].task.id());
  auto no = board_->Steal(Agent("a2"), running);
  EXPECT_EQ(no.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(no.status().message()).find("never stolen"), std::string::npos);
  // Now only 2 ASSIGNED: not over the threshold.
  pb::StealRequest any;
  EXPECT_EQ(board_->Steal(Agent("a2"), any).status().code(), absl::StatusCode::kNotFound);
  held.push_back(Claim("a1", Create().id()));
  auto s = board_->Steal(Agent("a2"), any);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->stolen_from(), "a1");
  EXPECT_EQ(s->task().assignee(), "a2");
  EXPECT_EQ(s->lease().epoch(), 2);
  EXPECT_EQ(s->task().attempt(), 1);  // stealing consumes no attempt
  EXPECT_EQ(s->task().attempts_used(), 0);
  const Held* victim = nullptr;
  for (const Held& h : held) {
    if (h.task.id() == s->task().id()) victim = &h;
  }
  ASSERT_NE(victim, nullptr);
  auto r = Renew("a1", *victim);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->lease_valid());
  EXPECT_EQ(r->lease_loss_reason(), pb::LEASE_LOSS_REASON_SUPERSEDED);
  EXPECT_EQ(notifier_.Count("a1", "lease_lost"), 1);
  auto hist = History(s->task().id());
  EXPECT_EQ(hist.back().from_state(), pb::TASK_STATE_ASSIGNED);
  EXPECT_EQ(hist.back().to_state(), pb::TASK_STATE_ASSIGNED);
  EXPECT_EQ(hist.back().holder(), "a2");
}

TEST_F(LeaseTest, IdleClaimStealsAutomaticallyUnlessDisabled) {
  AddAgent("a1");
  AddAgent("a2");
  for (int i = 0; i < 3; ++i) Claim("a1", Create().id());
  pb::ClaimRequest no_steal;
  no_steal.set_disable_steal(true);
  EXPECT_FALSE(board_->Claim(Agent("a2"), no_steal)->has_task());
  auto r = board_->Claim(Agent("a2"), pb::ClaimRequest());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_task());
  EXPECT_EQ(r->stolen_from(), "a1");
  EXPECT_EQ(r->task().assignee(), "a2");
}

TEST_F(LeaseTest, LongPollClaimGetsTheNextTaskOrTimesOut) {
  AddAgent("a1");
  absl::StatusOr<pb::ClaimResponse> got = absl::UnknownError("not called");
  int calls = 0;
  pb::ClaimRequest req;
  *req.mutable_wait() = ToProtoDuration(absl::Seconds(30));
  uint64_t id = board_->ClaimAsync(Agent("a1"), req, [&](absl::StatusOr<pb::ClaimResponse> r) {
    ++calls;
    got = std::move(r);
  });
  EXPECT_NE(id, 0u);
  EXPECT_EQ(calls, 0);
  pb::Task t = Create();
  ASSERT_EQ(calls, 1);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->task().id(), t.id());
  EXPECT_EQ(Get(t.id()).assignee(), "a1");
  // Nothing comes: an empty answer when the wait ends.
  calls = 0;
  board_->ClaimAsync(Agent("a1"), req, [&](absl::StatusOr<pb::ClaimResponse> r) {
    ++calls;
    got = std::move(r);
  });
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(calls, 0);
  clock_.Advance(absl::Seconds(1));
  ASSERT_EQ(calls, 1);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_task());
  // The caller goes away.
  calls = 0;
  uint64_t w = board_->ClaimAsync(Agent("a1"), req, [&](absl::StatusOr<pb::ClaimResponse> r) {
    ++calls;
    got = std::move(r);
  });
  board_->CancelClaim(w);
  ASSERT_EQ(calls, 1);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kCancelled);
}

class PushTest : public BoardFixture {
 protected:
  BoardOptions Options() override {
    BoardOptions o = BoardFixture::Options();
    o.push_assignment = true;
    o.sweep_interval = absl::Seconds(5);
    return o;
  }
};

TEST_F(PushTest, SchedulerAssignsToTheLeastLoadedCapableAgentAndNotifies) {
  AddAgent("busy", {"py"}, 2);
  AddAgent("idle", {"py"}, 2);
  AddAgent("gopher", {"go"}, 2);
  // Equal load: the directory's order decides (busy); then idle is less loaded.
  pb::Task first = Create("first");
  EXPECT_EQ(Get(first.id()).assignee(), "busy");
  pb::Task t = Create("pushed");
  pb::Task now = Get(t.id());
  ASSERT_EQ(now.state(), pb::TASK_STATE_ASSIGNED);
  EXPECT_EQ(now.assignee(), "idle");
  EXPECT_EQ(History(t.id()).back().actor().id(), "system:scheduler");
  ASSERT_GE(notifier_.Count("idle", "assigned"), 1);
  bool named = false;
  for (const Notice& n : notifier_.sent()) named |= n.task_id == t.id() && n.recipient == "idle";
  EXPECT_TRUE(named);
}

TEST_F(PushTest, NoEligibleAgentRaisesAnEventAndAnArrivingAgentGetsTheWork) {
  auto sub = board_->hub()->Subscribe(1000, [] {});
  pb::Task t = Create("rust job", {"rust"});
  clock_.Advance(absl::Seconds(5));  // a sweep
  BoardEventPtr ev;
  int alerts = 0;
  while (sub->Pop(&ev)) {
    if (ev->event.type() == pb::TASK_EVENT_TYPE_NO_ELIGIBLE_AGENTS) {
      ++alerts;
      EXPECT_EQ(ev->event.alert().capabilities(0), "rust");
      EXPECT_EQ(ev->event.alert().waiting_tasks(), 1);
    }
  }
  EXPECT_EQ(alerts, 1);
  clock_.Advance(absl::Seconds(10));  // edge-triggered: no repeat
  while (sub->Pop(&ev)) EXPECT_NE(ev->event.type(), pb::TASK_EVENT_TYPE_NO_ELIGIBLE_AGENTS);
  AddAgent("rusty", {"rust"});
  EXPECT_EQ(Get(t.id()).assignee(), "rusty");
}

TEST_F(PushTest, CapacityFreedIsFilledAndAwayAgentsAreSkipped) {
  AddAgent("solo", {"py"}, 1);
  pb::Task a = Create("a");
  pb::Task b = Create("b");
  EXPECT_EQ(Get(a.id()).assignee(), "solo");
  EXPECT_EQ(Get(b.id()).state(), pb::TASK_STATE_QUEUED);
  Held h;
  h.task = Get(a.id());
  h.lease_id = h.task.lease().lease_id();
  h.epoch = h.task.lease().epoch();
  ASSERT_TRUE(Start("solo", h).ok());
  ASSERT_TRUE(Complete("solo", h).ok());
  EXPECT_EQ(Get(b.id()).assignee(), "solo");
  directory_.SetStatus("solo", pb::AGENT_STATUS_AWAY);
  pb::Task c = Create("c");
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(Get(c.id()).state(), pb::TASK_STATE_QUEUED);
}

class ReviewTest : public BoardFixture {
 protected:
  // A review-required task completed by a1 with kSha1; returns its id.
  std::string Submitted(pb::ReviewPolicy policy = {}, pb::AcceptanceChecks checks = {}) {
    AddAgent("a1");
    AddAgent("a2");
    AddAgent("rev", {"review"});
    AddAgent("rev2", {"review"});
    pb::CreateTaskRequest req;
    req.set_title("change");
    req.add_required_capabilities("py");
    policy.set_required(true);
    *req.mutable_review() = policy;
    *req.mutable_acceptance() = checks;
    std::string id = CreateWith(req).id();
    // a2 held it first and let it lapse: a former holder.
    Claim("a2", id);
    clock_.Advance(absl::Seconds(60));
    held_ = Claim("a1", id);
    EXPECT_TRUE(Start("a1", held_).ok());
    auto c = Complete("a1", held_, kSha1());
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(Get(id).state(), pb::TASK_STATE_REVIEWING);
    return id;
  }

  absl::StatusOr<pb::ReviewResponse> Verdict(const std::string& who, const std::string& id,
                                             bool approve, const std::string& sha,
                                             pb::RejectMode mode = pb::REJECT_MODE_FAIL) {
    pb::ReviewRequest r;
    r.set_task_id(id);
    r.set_verdict(approve ? pb::REVIEW_VERDICT_APPROVE : pb::REVIEW_VERDICT_REJECT);
    r.set_reject_mode(mode);
    r.set_note("see comments");
    r.set_reviewed_commit_sha(sha);
    return board_->Review(Agent(who), r);
  }

  absl::StatusOr<pb::CompleteResponse> Resubmit(const std::string& who, const std::string& id,
                                                const std::string& sha) {
    pb::CompleteRequest r;
    r.set_task_id(id);
    r.mutable_result()->set_commit_sha(sha);
    return board_->Complete(Agent(who), r);
  }

  Held held_;
};

TEST_F(ReviewTest, AuthorAndFormerHoldersCannotReview) {
  std::string id = Submitted();
  for (const char* who : {"a1", "a2"}) {
    auto r = Verdict(who, id, true, kSha1());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << who;
    EXPECT_EQ(ErrorReason(r.status()), "REVIEWER_CONFLICT");
  }
  EXPECT_EQ(Get(id).state(), pb::TASK_STATE_REVIEWING);
  EXPECT_EQ(Get(id).reviews_size(), 0);
  auto ok = Verdict("rev", id, true, kSha1());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->task().state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(ok->task().reviews(0).reviewed_commit_sha(), kSha1());
  EXPECT_EQ(ok->task().reviews(0).reviewer(), "rev");
}

TEST_F(ReviewTest, DesignatedReviewerAndReviewerCapability) {
  pb::ReviewPolicy p;
  p.set_reviewer_agent_id("rev2");
  std::string id = Submitted(p);
  EXPECT_EQ(ErrorReason(Verdict("rev", id, true, kSha1()).status()), "NOT_REVIEWER");
  EXPECT_EQ(notifier_.Count("rev2", "review_requested"), 1);
  ASSERT_TRUE(Verdict("rev2", id, true, kSha1()).ok());
}

TEST_F(ReviewTest, ReviewerCapabilityIsRequired) {
  pb::ReviewPolicy p;
  p.set_reviewer_capability("review");
  std::string id = Submitted(p);
  AddAgent("plain", {"py"});
  EXPECT_EQ(Verdict("plain", id, true, kSha1()).status().code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(Verdict("rev", id, true, kSha1()).ok());
}

TEST_F(ReviewTest, VerdictIsPinnedToTheCommitAndANewShaReopens) {
  std::string id = Submitted();
  auto stale = Verdict("rev", id, true, kSha2());
  EXPECT_EQ(ErrorReason(stale.status()), "STALE_REVIEW");
  ASSERT_TRUE(Verdict("rev", id, true, kSha1()).ok());
  EXPECT_EQ(Get(id).state(), pb::TASK_STATE_COMPLETED);
  // Same SHA again: refused. A non-author: refused.
  EXPECT_EQ(ErrorReason(Resubmit("a1", id, kSha1()).status()), "SAME_COMMIT");
  EXPECT_EQ(Resubmit("rev", id, kSha2()).status().code(), absl::StatusCode::kPermissionDenied);
  // A new SHA after approval sends it back to REVIEWING; the approval is superseded.
  auto again = Resubmit("a1", id, kSha2());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->task().state(), pb::TASK_STATE_REVIEWING);
  EXPECT_TRUE(again->task().reviews(0).superseded());
  EXPECT_EQ(again->task().result().commit_sha(), kSha2());
  // While REVIEWING, a newer SHA supersedes again.
  ASSERT_TRUE(Resubmit("a1", id, kSha3()).ok());
  EXPECT_EQ(ErrorReason(Verdict("rev", id, true, kSha2()).status()), "STALE_REVIEW");
  ASSERT_TRUE(Verdict("rev", id, true, kSha3()).ok());
  EXPECT_EQ(Get(id).state(), pb::TASK_STATE_COMPLETED);
  // Outside the reopen window: no more.
  clock_.Advance(absl::Hours(25));
  EXPECT_EQ(Resubmit("a1", id, kSha1()).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ReviewTest, RequiredApprovalsAndDuplicateVerdicts) {
  pb::ReviewPolicy p;
  p.set_required_approvals(2);
  std::string id = Submitted(p);
  ASSERT_TRUE(Verdict("rev", id, true, kSha1()).ok());
  EXPECT_EQ(Get(id).state(), pb::TASK_STATE_REVIEWING);
  EXPECT_EQ(Verdict("rev", id, true, kSha1()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Verdict("rev2", id, true, kSha1()).ok());
  EXPECT_EQ(Get(id).state(), pb::TASK_STATE_COMPLETED);
}

TEST_F(ReviewTest, RejectFailsOrRequeuesAndTellsTheAuthor) {
  std::string id = Submitted();
  auto r = Verdict("rev", id, false, kSha1(), pb::REJECT_MODE_REQUEUE);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->task().state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(r->task().attempts_used(), 2);  // a2's lapse + the rejection
  EXPECT_EQ(notifier_.Count("a1", "rejected"), 1);
  // Attempts are now exhausted at 3: the next rejection fails it.
  Held h = Claim("a1", id);
  ASSERT_TRUE(Start("a1", h).ok());
  ASSERT_TRUE(Complete("a1", h, kSha2()).ok());
  auto f = Verdict("rev", id, false, kSha2(), pb::REJECT_MODE_FAIL);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->task().state(), pb::TASK_STATE_FAILED);
  EXPECT_EQ(f->task().terminal_cause(), pb::TERMINAL_CAUSE_REVIEW_REJECTED);
}

TEST_F(ReviewTest, CompletionWithoutDeclaredEvidenceIsRefused) {
  AddAgent("a1");
  pb::CreateTaskRequest req;
  req.mutable_acceptance()->add_required_evidence(pb::EVIDENCE_KIND_COMMAND);
  req.mutable_acceptance()->add_required_evidence(pb::EVIDENCE_KIND_COMMIT);
  req.mutable_acceptance()->add_required_artifacts("report.pdf");
  req.mutable_acceptance()->set_require_success(true);
  pb::Task t = CreateWith(req);
  Held h = Claim("a1", t.id());
  ASSERT_TRUE(Start("a1", h).ok());
  pb::CompleteRequest c;
  c.set_task_id(t.id());
  c.set_lease_id(h.lease_id);
  c.set_lease_epoch(h.epoch);
  c.mutable_result()->set_summary("trust me");
  auto r = board_->Complete(Agent("a1"), c);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(r.status()), "ACCEPTANCE_FAILED");
  std::string msg(r.status().message());
  EXPECT_NE(msg.find("COMMAND"), std::string::npos) << msg;
  EXPECT_NE(msg.find("COMMIT"), std::string::npos) << msg;
  EXPECT_NE(msg.find("report.pdf"), std::string::npos) << msg;
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_RUNNING);
  // A failing command does not count as success.
  auto* cmd = c.mutable_result()->add_evidence()->mutable_command();
  cmd->set_command("bazel test //...");
  cmd->set_exit_code(1);
  c.mutable_result()->add_evidence()->mutable_commit()->set_sha(kSha1());
  auto* art = c.mutable_result()->add_evidence()->mutable_artifact();
  art->set_name("report.pdf");
  art->set_sha256(std::string(64, 'f'));
  r = board_->Complete(Agent("a1"), c);
  EXPECT_EQ(ErrorReason(r.status()), "ACCEPTANCE_FAILED");
  EXPECT_NE(std::string(r.status().message()).find("exit code 1"), std::string::npos);
  cmd->set_exit_code(0);
  r = board_->Complete(Agent("a1"), c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->task().state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(r->task().result().commit_sha(), kSha1());  // taken from the one commit evidence
  // Malformed evidence is INVALID_ARGUMENT.
  pb::CompleteRequest bad = c;
  bad.mutable_result()->mutable_evidence(1)->mutable_commit()->set_sha("xyz");
  EXPECT_EQ(board_->Complete(Agent("a1"), bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

class ExplainTest : public BoardFixture {};

TEST_F(ExplainTest, NamesEachBlockingReason) {
  AddAgent("a1", {"py"}, 1);
  AddAgent("asker", {"asking"});
  // Unmet dependency (which, and its state).
  pb::Task dep = Create("dep");
  pb::Task waiting = Create("waiting", {"py"}, {dep.id()});
  auto e = board_->Explain(waiting.id());
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->reasons_size(), 1);
  EXPECT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_UNMET_DEPENDENCY);
  EXPECT_EQ(e->reasons(0).task_id(), dep.id());
  EXPECT_EQ(e->reasons(0).dependency_state(), pb::TASK_STATE_QUEUED);
  EXPECT_FALSE(e->eligible());
  // Missing capability (which).
  pb::Task rust = Create("rust", {"py", "rust"});
  e = board_->Explain(rust.id());
  ASSERT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_MISSING_CAPABILITY);
  EXPECT_EQ(e->reasons(0).capability(), "rust");
  // Eligible, but queued behind dep.
  e = board_->Explain(Create("third").id());
  EXPECT_TRUE(e->eligible());
  bool behind = false;
  for (const auto& r : e->reasons()) behind |= r.kind() == pb::BLOCKING_REASON_KIND_QUEUED_BEHIND;
  EXPECT_TRUE(behind);
  // Lease held by whom until when.
  Held h = Claim("a1", dep.id());
  e = board_->Explain(dep.id());
  ASSERT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_LEASE_HELD);
  EXPECT_EQ(e->reasons(0).agent_id(), "a1");
  EXPECT_EQ(FromProto(e->reasons(0).until()), clock_.Now() + absl::Seconds(60));
  // No capacity: a1 (the only py agent) is at its limit of 1.
  e = board_->Explain(rust.id());
  pb::Task py = Create("py");
  e = board_->Explain(py.id());
  EXPECT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_NO_AGENT_CAPACITY);
  EXPECT_EQ(e->reasons(0).count(), 1);
  // Awaiting input.
  ASSERT_TRUE(Start("a1", h).ok());
  pb::RequestInputRequest q;
  q.set_task_id(dep.id());
  q.set_lease_id(h.lease_id);
  q.set_lease_epoch(h.epoch);
  q.set_question("tabs or spaces?");
  ASSERT_TRUE(board_->RequestInput(Agent("a1"), q).ok());
  e = board_->Explain(dep.id());
  EXPECT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_AWAITING_INPUT);
  EXPECT_EQ(e->reasons(0).agent_id(), "boss");
  // Assigned agent unavailable.
  pb::CreateTaskRequest only;
  only.set_title("only for asker");
  only.set_assign_to("asker");
  pb::Task reserved = CreateWith(only);
  directory_.SetHealth("asker", pb::HEALTH_CRITICAL);
  e = board_->Explain(reserved.id());
  EXPECT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_ASSIGNED_AGENT_UNAVAILABLE);
  EXPECT_EQ(e->reasons(0).agent_id(), "asker");
  // Terminal.
  pb::CancelRequest c;
  c.set_task_id(reserved.id());
  ASSERT_TRUE(board_->Cancel(Agent("boss"), c).ok());
  e = board_->Explain(reserved.id());
  EXPECT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_TERMINAL);
  EXPECT_FALSE(e->summary().empty());
  EXPECT_EQ(board_->Explain("task-00000000000000000000000000").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ExplainTest, AwaitingReviewNamesTheReviewer) {
  AddAgent("a1");
  pb::CreateTaskRequest req;
  req.mutable_review()->set_required(true);
  req.mutable_review()->set_reviewer_agent_id("rev");
  pb::Task t = CreateWith(req);
  Held h = Claim("a1", t.id());
  ASSERT_TRUE(Start("a1", h).ok());
  ASSERT_TRUE(Complete("a1", h, kSha1()).ok());
  auto e = board_->Explain(t.id());
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->reasons(0).kind(), pb::BLOCKING_REASON_KIND_AWAITING_REVIEW);
  EXPECT_EQ(e->reasons(0).agent_id(), "rev");
}

class CancelTest : public BoardFixture {};

TEST_F(CancelTest, CascadeReachesSubtasksAndDependents) {
  pb::Task root = Create("root");
  pb::CreateTaskRequest sub;
  sub.set_title("sub");
  sub.set_parent_id(root.id());
  pb::Task child = CreateWith(sub, Agent("helper"));
  pb::Task dependent = Create("dependent", {"py"}, {root.id()});
  pb::Task unrelated = Create("unrelated");
  // The creator of an ancestor may cancel a subtask; others may not.
  pb::CancelRequest c;
  c.set_task_id(child.id());
  EXPECT_EQ(board_->Cancel(Agent("stranger"), c).status().code(),
            absl::StatusCode::kPermissionDenied);
  c.set_task_id(root.id());
  c.set_cascade(pb::CANCEL_CASCADE_SUBTASKS_AND_DEPENDENTS);
  c.set_reason("scope changed");
  auto r = board_->Cancel(Agent("boss"), c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->task().state(), pb::TASK_STATE_CANCELLED);
  EXPECT_EQ(r->cascaded_task_ids_size(), 2);
  EXPECT_EQ(Get(child.id()).terminal_cause(), pb::TERMINAL_CAUSE_CANCELLED_BY_CASCADE);
  EXPECT_EQ(Get(dependent.id()).state(), pb::TASK_STATE_CANCELLED);
  EXPECT_EQ(Get(unrelated.id()).state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(ErrorReason(board_->Cancel(Agent("boss"), c).status()), "ILLEGAL_TRANSITION");
}

TEST_F(CancelTest, GraceLetsTheHolderStopAndItsRenewalsSayCancelRequested) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  ASSERT_TRUE(Start("a1", h).ok());
  pb::CancelRequest c;
  c.set_task_id(t.id());
  *c.mutable_grace() = ToProtoDuration(absl::Seconds(30));
  auto r = board_->Cancel(Agent("boss"), c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->task().state(), pb::TASK_STATE_RUNNING);
  EXPECT_TRUE(r->task().cancel_requested());
  EXPECT_EQ(notifier_.Count("a1", "cancel_requested"), 1);
  auto p = Progress("a1", h);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->lease_valid());
  EXPECT_TRUE(p->cancel_requested());
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_CANCELLED);
  auto after = Renew("a1", h);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->lease_valid());
  EXPECT_EQ(after->lease_loss_reason(), pb::LEASE_LOSS_REASON_CANCELLED);
  EXPECT_TRUE(after->cancel_requested());
}

TEST_F(CancelTest, ReleaseDuringGraceCancelsAtOnce) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  pb::CancelRequest c;
  c.set_task_id(t.id());
  *c.mutable_grace() = ToProtoDuration(absl::Minutes(5));
  ASSERT_TRUE(board_->Cancel(Agent("boss"), c).ok());
  pb::ReleaseRequest rel;
  rel.set_task_id(t.id());
  rel.set_lease_id(h.lease_id);
  rel.set_lease_epoch(h.epoch);
  rel.set_reason(pb::RELEASE_REASON_SHUTDOWN);
  auto r = board_->Release(Agent("a1"), rel);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->task().state(), pb::TASK_STATE_CANCELLED);
}

class InputTest : public BoardFixture {};

TEST_F(InputTest, QuestionGoesToTheCreatorAndTheAnswerBackToTheHolder) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  ASSERT_TRUE(Start("a1", h).ok());
  pb::RequestInputRequest q;
  q.set_task_id(t.id());
  q.set_lease_id(h.lease_id);
  q.set_lease_epoch(h.epoch);
  EXPECT_EQ(board_->RequestInput(Agent("a1"), q).status().code(),
            absl::StatusCode::kInvalidArgument);  // empty question
  q.set_question("Postgres or SQLite?");
  q.set_ask("nobody-registered");
  EXPECT_EQ(board_->RequestInput(Agent("a1"), q).status().code(), absl::StatusCode::kNotFound);
  q.clear_ask();
  ASSERT_TRUE(board_->RequestInput(Agent("a1"), q).ok());
  EXPECT_EQ(notifier_.Count("boss", "input_requested"), 1);
  pb::ProvideInputRequest a;
  a.set_task_id(t.id());
  a.set_answer("SQLite");
  EXPECT_EQ(board_->ProvideInput(Agent("stranger"), a).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto r = board_->ProvideInput(Agent("boss"), a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->task().state(), pb::TASK_STATE_RUNNING);
  EXPECT_EQ(r->task().input_request().answer(), "SQLite");
  EXPECT_EQ(notifier_.Count("a1", "input_provided"), 1);
}

class RestartTest : public BoardFixture {};

TEST_F(RestartTest, LeasesResumeFromStoredExpiryTimes) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(Progress("a1", h).ok());  // expires at now + 60
  OpenBoard();
  pb::Task after = Get(t.id());
  EXPECT_EQ(after.state(), pb::TASK_STATE_RUNNING);
  EXPECT_EQ(after.lease().lease_id(), h.lease_id);
  auto r = Renew("a1", h);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->lease_valid());
  // The restored timer still fires: no renewal for 60 s requeues.
  clock_.Advance(absl::Seconds(60));
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(Get(t.id()).attempts_used(), 1);
}

TEST_F(RestartTest, ALeaseThatLapsedWhileDownGetsAGracePeriod) {
  AddAgent("a1");
  pb::Task t = Create();
  Held h = Claim("a1", t.id());
  board_.reset();
  clock_.Advance(absl::Minutes(5));  // the service was down
  OpenBoard();
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_ASSIGNED);
  auto r = Renew("a1", h);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->lease_valid());
}

}  // namespace
}  // namespace cnet::tasks
