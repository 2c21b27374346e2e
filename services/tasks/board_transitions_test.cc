// Every (state, operation) pair on a real board: a legal move succeeds and
// lands in the expected state; an illegal one is FAILED_PRECONDITION and
// leaves the task exactly as it was (same record, same history).
#include <map>
#include <set>
#include <tuple>

#include "google/protobuf/util/message_differencer.h"
#include "services/tasks/board_test_util.h"

namespace cnet::tasks {
namespace {

using testing::BoardFixture;
using testing::Held;
using testing::kSha1;
using testing::kSha2;

enum class TOp {
  kClaim, kSteal, kStart, kProgress, kRenew, kRelease, kRequestInput, kProvideInput,
  kComplete, kFail, kApprove, kRejectFail, kRejectRequeue, kCancel, kUpdate,
};

const char* OpLabel(TOp op) {
  switch (op) {
    case TOp::kClaim: return "Claim";
    case TOp::kSteal: return "Steal";
    case TOp::kStart: return "Start";
    case TOp::kProgress: return "Progress";
    case TOp::kRenew: return "RenewLease";
    case TOp::kRelease: return "Release";
    case TOp::kRequestInput: return "RequestInput";
    case TOp::kProvideInput: return "ProvideInput";
    case TOp::kComplete: return "Complete";
    case TOp::kFail: return "Fail";
    case TOp::kApprove: return "ReviewApprove";
    case TOp::kRejectFail: return "ReviewRejectFail";
    case TOp::kRejectRequeue: return "ReviewRejectRequeue";
    case TOp::kCancel: return "Cancel";
    case TOp::kUpdate: return "Update";
  }
  return "?";
}

// What the test expects of one pair.
struct Expect {
  enum Kind {
    kIllegal,       // FAILED_PRECONDITION, nothing changes
    kMoves,         // OK, task ends in `to`
    kLeaseInvalid,  // OK with lease_valid = false, nothing changes
    kDenied,        // PERMISSION_DENIED (the caller never held a lease), nothing changes
  } kind = kIllegal;
  pb::TaskState to = pb::TASK_STATE_UNSPECIFIED;
};

Expect Moves(pb::TaskState to) { return {Expect::kMoves, to}; }

// The expected outcome, written from the proto table (not from the code).
Expect Expected(pb::TaskState s, TOp op) {
  using E = Expect;
  const pb::TaskState kS = s;
  switch (op) {
    case TOp::kClaim:
      if (s == pb::TASK_STATE_QUEUED) return Moves(pb::TASK_STATE_ASSIGNED);
      break;
    case TOp::kSteal:
      if (s == pb::TASK_STATE_ASSIGNED) return Moves(pb::TASK_STATE_ASSIGNED);
      break;
    case TOp::kStart:
      if (s == pb::TASK_STATE_ASSIGNED) return Moves(pb::TASK_STATE_RUNNING);
      break;
    case TOp::kProgress:
    case TOp::kRenew:
      if (s == pb::TASK_STATE_ASSIGNED) {
        return Moves(op == TOp::kProgress ? pb::TASK_STATE_RUNNING : pb::TASK_STATE_ASSIGNED);
      }
      if (s == pb::TASK_STATE_RUNNING || s == pb::TASK_STATE_INPUT_REQUIRED) return Moves(kS);
      if (s == pb::TASK_STATE_CREATED || s == pb::TASK_STATE_QUEUED ||
          s == pb::TASK_STATE_CANCELLED) {
        return {E::kDenied};
      }
      return {E::kLeaseInvalid};
    case TOp::kRelease:
      if (IsLeased(s)) return Moves(pb::TASK_STATE_QUEUED);
      break;
    case TOp::kRequestInput:
      if (s == pb::TASK_STATE_RUNNING) return Moves(pb::TASK_STATE_INPUT_REQUIRED);
      break;
    case TOp::kProvideInput:
      if (s == pb::TASK_STATE_INPUT_REQUIRED) return Moves(pb::TASK_STATE_RUNNING);
      break;
    case TOp::kComplete:
      // Review is required for the table's task: RUNNING -> REVIEWING;
      // REVIEWING -> REVIEWING (new SHA); COMPLETED -> REVIEWING (reopen).
      if (s == pb::TASK_STATE_RUNNING || s == pb::TASK_STATE_REVIEWING ||
          s == pb::TASK_STATE_COMPLETED) {
        return Moves(pb::TASK_STATE_REVIEWING);
      }
      break;
    case TOp::kFail:
      if (IsLeased(s)) return Moves(pb::TASK_STATE_FAILED);
      break;
    case TOp::kApprove:
      if (s == pb::TASK_STATE_REVIEWING) return Moves(pb::TASK_STATE_COMPLETED);
      break;
    case TOp::kRejectFail:
      if (s == pb::TASK_STATE_REVIEWING) return Moves(pb::TASK_STATE_FAILED);
      break;
    case TOp::kRejectRequeue:
      if (s == pb::TASK_STATE_REVIEWING) return Moves(pb::TASK_STATE_QUEUED);
      break;
    case TOp::kCancel:
      if (!IsTerminal(s)) return Moves(pb::TASK_STATE_CANCELLED);
      break;
    case TOp::kUpdate:
      if (!IsTerminal(s)) return Moves(kS);
      break;
  }
  return {E::kIllegal};
}

class TransitionTableTest
    : public BoardFixture,
      public ::testing::WithParamInterface<std::tuple<pb::TaskState, TOp>> {
 protected:
  BoardOptions Options() override {
    BoardOptions o = BoardFixture::Options();
    o.steal_threshold = 0;  // any ASSIGNED holder may be stolen from
    return o;
  }

  // Brings a fresh review-required task into `state`; a1 is the worker.
  void Reach(pb::TaskState state) {
    AddAgent("a1");
    AddAgent("a2");
    AddAgent("rev");
    pb::CreateTaskRequest req;
    req.add_required_capabilities("py");
    req.mutable_review()->set_required(true);
    if (state == pb::TASK_STATE_CREATED) {
      pb::Task dep = Create("dependency");
      req.add_dependencies(dep.id());
    }
    id_ = CreateWith(req).id();
    if (state == pb::TASK_STATE_CREATED || state == pb::TASK_STATE_QUEUED) return;
    if (state == pb::TASK_STATE_CANCELLED) {
      pb::CancelRequest c;
      c.set_task_id(id_);
      ASSERT_TRUE(board_->Cancel(Agent("boss"), c).ok());
      return;
    }
    held_ = Claim("a1", id_);
    ASSERT_EQ(held_.task.id(), id_);
    if (state == pb::TASK_STATE_ASSIGNED) return;
    if (state == pb::TASK_STATE_FAILED) {
      pb::FailRequest f;
      f.set_task_id(id_);
      f.set_lease_id(held_.lease_id);
      f.set_lease_epoch(held_.epoch);
      f.set_reason("broken");
      ASSERT_TRUE(board_->Fail(Agent("a1"), f).ok());
      return;
    }
    ASSERT_TRUE(Start("a1", held_).ok());
    if (state == pb::TASK_STATE_RUNNING) return;
    if (state == pb::TASK_STATE_INPUT_REQUIRED) {
      pb::RequestInputRequest r;
      r.set_task_id(id_);
      r.set_lease_id(held_.lease_id);
      r.set_lease_epoch(held_.epoch);
      r.set_question("which branch?");
      ASSERT_TRUE(board_->RequestInput(Agent("a1"), r).ok());
      return;
    }
    ASSERT_TRUE(Complete("a1", held_, kSha1()).ok());
    if (state == pb::TASK_STATE_REVIEWING) return;
    pb::ReviewRequest rv;
    rv.set_task_id(id_);
    rv.set_verdict(pb::REVIEW_VERDICT_APPROVE);
    rv.set_reviewed_commit_sha(kSha1());
    ASSERT_TRUE(board_->Review(Agent("rev"), rv).ok());
    ASSERT_EQ(Get(id_).state(), pb::TASK_STATE_COMPLETED);
  }

  // Applies `op` as its natural caller would; returns the status and, for
  // Progress/RenewLease, whether the lease was valid.
  absl::Status Apply(TOp op, bool* lease_valid) {
    pb::Task t = Get(id_);
    const bool leased = t.has_lease();
    const std::string lease_id = leased ? t.lease().lease_id() : "";
    const int64_t epoch = leased ? t.lease().epoch() : 0;
    switch (op) {
      case TOp::kClaim: {
        pb::ClaimRequest r;
        r.set_task_id(id_);
        return board_->Claim(Agent("a2"), r).status();
      }
      case TOp::kSteal: {
        pb::StealRequest r;
        r.set_task_id(id_);
        return board_->Steal(Agent("a2"), r).status();
      }
      case TOp::kStart: {
        pb::StartRequest r;
        r.set_task_id(id_);
        r.set_lease_id(lease_id);
        r.set_lease_epoch(epoch);
        return board_->Start(Agent("a1"), r).status();
      }
      case TOp::kProgress: {
        // A former holder reports with the lease it last had.
        pb::ProgressRequest r;
        r.set_task_id(id_);
        r.set_lease_id(leased ? lease_id : held_.lease_id);
        r.set_lease_epoch(leased ? epoch : held_.epoch);
        r.set_percent(50);
        auto resp = board_->Progress(Agent("a1"), r);
        if (resp.ok()) *lease_valid = resp->lease_valid();
        return resp.status();
      }
      case TOp::kRenew: {
        pb::RenewLeaseRequest r;
        r.set_task_id(id_);
        r.set_lease_id(leased ? lease_id : held_.lease_id);
        r.set_lease_epoch(leased ? epoch : held_.epoch);
        auto resp = board_->RenewLease(Agent("a1"), r);
        if (resp.ok()) *lease_valid = resp->lease_valid();
        return resp.status();
      }
      case TOp::kRelease: {
        pb::ReleaseRequest r;
        r.set_task_id(id_);
        r.set_lease_id(lease_id);
        r.set_lease_epoch(epoch);
        r.set_reason(pb::RELEASE_REASON_SHUTDOWN);
        return board_->Release(Agent("a1"), r).status();
      }
      case TOp::kRequestInput: {
        pb::RequestInputRequest r;
        r.set_task_id(id_);
        r.set_lease_id(lease_id);
        r.set_lease_epoch(epoch);
        r.set_question("?");
        return board_->RequestInput(Agent("a1"), r).status();
      }
      case TOp::kProvideInput: {
        pb::ProvideInputRequest r;
        r.set_task_id(id_);
        r.set_answer("main");
        return board_->ProvideInput(Agent("boss"), r).status();
      }
      case TOp::kComplete: {
        pb::CompleteRequest r;
        r.set_task_id(id_);
        r.set_lease_id(lease_id);
        r.set_lease_epoch(epoch);
        r.mutable_result()->set_commit_sha(kSha2());
        return board_->Complete(Agent("a1"), r).status();
      }
      case TOp::kFail: {
        pb::FailRequest r;
        r.set_task_id(id_);
        r.set_lease_id(lease_id);
        r.set_lease_epoch(epoch);
        r.set_reason("gave up");
        return board_->Fail(Agent("a1"), r).status();
      }
      case TOp::kApprove:
      case TOp::kRejectFail:
      case TOp::kRejectRequeue: {
        pb::ReviewRequest r;
        r.set_task_id(id_);
        r.set_verdict(op == TOp::kApprove ? pb::REVIEW_VERDICT_APPROVE
                                          : pb::REVIEW_VERDICT_REJECT);
        if (op == TOp::kRejectRequeue) r.set_reject_mode(pb::REJECT_MODE_REQUEUE);
        r.set_reviewed_commit_sha(t.result().commit_sha());
        return board_->Review(Agent("rev"), r).status();
      }
      case TOp::kCancel: {
        pb::CancelRequest r;
        r.set_task_id(id_);
        return board_->Cancel(Agent("boss"), r).status();
      }
      case TOp::kUpdate: {
        pb::UpdateTaskRequest r;
        r.mutable_task()->set_id(id_);
        r.mutable_task()->set_title("renamed");
        r.mutable_update_mask()->add_paths("title");
        return board_->Update(Agent("boss"), r).status();
      }
    }
    return absl::InternalError("unknown op");
  }

  std::string id_;
  Held held_;
};

TEST_P(TransitionTableTest, LegalMovesSucceedIllegalOnesChangeNothing) {
  const auto [state, op] = GetParam();
  ASSERT_NO_FATAL_FAILURE(Reach(state));
  ASSERT_EQ(Get(id_).state(), state);
  const pb::Task before = Get(id_);
  const size_t history_before = History(id_).size();
  const Expect want = Expected(state, op);

  bool lease_valid = true;
  absl::Status s = Apply(op, &lease_valid);
  const pb::Task after = Get(id_);
  SCOPED_TRACE(::testing::Message() << StateName(state) << " x " << OpLabel(op) << ": " << s);

  switch (want.kind) {
    case Expect::kMoves:
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_TRUE(lease_valid);
      EXPECT_EQ(after.state(), want.to);
      EXPECT_GT(after.revision(), before.revision());
      break;
    case Expect::kIllegal:
      EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      // The message names the task; the detail says which rule refused it.
      EXPECT_NE(std::string(s.message()).find(id_), std::string::npos) << s;
      EXPECT_TRUE(std::set<std::string>({"ILLEGAL_TRANSITION", "LEASE_STALE", "NOT_ELIGIBLE",
                                         "NOT_STEALABLE", "TERMINAL"})
                      .count(ErrorReason(s)))
          << ErrorReason(s);
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
          << "task changed:\n" << before.DebugString() << "\n--- after ---\n"
          << after.DebugString();
      EXPECT_EQ(History(id_).size(), history_before);
      break;
    case Expect::kLeaseInvalid:
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_FALSE(lease_valid);
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after));
      EXPECT_EQ(History(id_).size(), history_before);
      break;
    case Expect::kDenied:
      EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after));
      EXPECT_EQ(History(id_).size(), history_before);
      break;
  }
}

std::string PairName(const ::testing::TestParamInfo<std::tuple<pb::TaskState, TOp>>& info) {
  return StateName(std::get<0>(info.param)) + "_" + OpLabel(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(
    EveryPair, TransitionTableTest,
    ::testing::Combine(
        ::testing::Values(pb::TASK_STATE_CREATED, pb::TASK_STATE_QUEUED, pb::TASK_STATE_ASSIGNED,
                          pb::TASK_STATE_RUNNING, pb::TASK_STATE_INPUT_REQUIRED,
                          pb::TASK_STATE_REVIEWING, pb::TASK_STATE_COMPLETED,
                          pb::TASK_STATE_FAILED, pb::TASK_STATE_CANCELLED),
        ::testing::Values(TOp::kClaim, TOp::kSteal, TOp::kStart, TOp::kProgress, TOp::kRenew,
                          TOp::kRelease, TOp::kRequestInput, TOp::kProvideInput, TOp::kComplete,
                          TOp::kFail, TOp::kApprove, TOp::kRejectFail, TOp::kRejectRequeue,
                          TOp::kCancel, TOp::kUpdate)),
    PairName);

}  // namespace
}  // namespace cnet::tasks
