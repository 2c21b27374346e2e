// The transition table itself: exactly the rows of the proto comment, and
// the error an illegal move produces.
#include "services/tasks/state_machine.h"

#include <set>
#include <tuple>

#include "gtest/gtest.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks {
namespace {

using S = pb::TaskState;

TEST(StateMachineTest, TableHasExactlyTheProtoRows) {
  std::set<std::pair<S, S>> moves;
  for (const TransitionRule& r : TransitionTable()) moves.insert({r.from, r.to});
  const std::set<std::pair<S, S>> expected = {
      {pb::TASK_STATE_UNSPECIFIED, pb::TASK_STATE_CREATED},
      {pb::TASK_STATE_CREATED, pb::TASK_STATE_QUEUED},
      {pb::TASK_STATE_CREATED, pb::TASK_STATE_FAILED},
      {pb::TASK_STATE_CREATED, pb::TASK_STATE_CANCELLED},
      {pb::TASK_STATE_QUEUED, pb::TASK_STATE_ASSIGNED},
      {pb::TASK_STATE_QUEUED, pb::TASK_STATE_CANCELLED},
      {pb::TASK_STATE_QUEUED, pb::TASK_STATE_FAILED},
      {pb::TASK_STATE_ASSIGNED, pb::TASK_STATE_ASSIGNED},
      {pb::TASK_STATE_ASSIGNED, pb::TASK_STATE_RUNNING},
      {pb::TASK_STATE_ASSIGNED, pb::TASK_STATE_QUEUED},
      {pb::TASK_STATE_ASSIGNED, pb::TASK_STATE_FAILED},
      {pb::TASK_STATE_ASSIGNED, pb::TASK_STATE_CANCELLED},
      {pb::TASK_STATE_RUNNING, pb::TASK_STATE_INPUT_REQUIRED},
      {pb::TASK_STATE_RUNNING, pb::TASK_STATE_COMPLETED},
      {pb::TASK_STATE_RUNNING, pb::TASK_STATE_REVIEWING},
      {pb::TASK_STATE_RUNNING, pb::TASK_STATE_QUEUED},
      {pb::TASK_STATE_RUNNING, pb::TASK_STATE_FAILED},
      {pb::TASK_STATE_RUNNING, pb::TASK_STATE_CANCELLED},
      {pb::TASK_STATE_INPUT_REQUIRED, pb::TASK_STATE_RUNNING},
      {pb::TASK_STATE_INPUT_REQUIRED, pb::TASK_STATE_QUEUED},
      {pb::TASK_STATE_INPUT_REQUIRED, pb::TASK_STATE_FAILED},
      {pb::TASK_STATE_INPUT_REQUIRED, pb::TASK_STATE_CANCELLED},
      {pb::TASK_STATE_REVIEWING, pb::TASK_STATE_REVIEWING},
      {pb::TASK_STATE_REVIEWING, pb::TASK_STATE_COMPLETED},
      {pb::TASK_STATE_REVIEWING, pb::TASK_STATE_FAILED},
      {pb::TASK_STATE_REVIEWING, pb::TASK_STATE_QUEUED},
      {pb::TASK_STATE_REVIEWING, pb::TASK_STATE_CANCELLED},
      {pb::TASK_STATE_COMPLETED, pb::TASK_STATE_REVIEWING},
  };
  EXPECT_EQ(moves, expected);
}

TEST(StateMachineTest, NothingLeavesFailedOrCancelled) {
  for (const TransitionRule& r : TransitionTable()) {
    EXPECT_NE(r.from, pb::TASK_STATE_FAILED);
    EXPECT_NE(r.from, pb::TASK_STATE_CANCELLED);
  }
}

TEST(StateMachineTest, IllegalMoveNamesTaskAndBothStates) {
  absl::Status s = CheckMove("task-01abc", pb::TASK_STATE_COMPLETED, pb::TASK_STATE_RUNNING,
                             Op::kStart);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "task \"task-01abc\": cannot move from COMPLETED to RUNNING");
  EXPECT_EQ(ErrorReason(s), "ILLEGAL_TRANSITION");
}

TEST(StateMachineTest, LegalMoveNeedsTheRightOperation) {
  EXPECT_TRUE(CheckMove("t", pb::TASK_STATE_ASSIGNED, pb::TASK_STATE_RUNNING, Op::kStart).ok());
  // Same states, wrong cause: RUNNING -> QUEUED exists only as a requeue.
  EXPECT_FALSE(
      CheckMove("t", pb::TASK_STATE_RUNNING, pb::TASK_STATE_QUEUED, Op::kReject).ok());
  EXPECT_TRUE(CheckMove("t", pb::TASK_STATE_RUNNING, pb::TASK_STATE_QUEUED, Op::kRequeue).ok());
}

TEST(StateMachineTest, TerminalAndLeasedStates) {
  EXPECT_TRUE(IsTerminal(pb::TASK_STATE_COMPLETED));
  EXPECT_TRUE(IsTerminal(pb::TASK_STATE_FAILED));
  EXPECT_TRUE(IsTerminal(pb::TASK_STATE_CANCELLED));
  EXPECT_FALSE(IsTerminal(pb::TASK_STATE_REVIEWING));
  EXPECT_TRUE(IsLeased(pb::TASK_STATE_ASSIGNED));
  EXPECT_TRUE(IsLeased(pb::TASK_STATE_RUNNING));
  EXPECT_TRUE(IsLeased(pb::TASK_STATE_INPUT_REQUIRED));
  EXPECT_FALSE(IsLeased(pb::TASK_STATE_QUEUED));
}

}  // namespace
}  // namespace cnet::tasks
