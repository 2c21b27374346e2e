// The task state machine: the ONE table of legal transitions, exactly as
// written in proto/claudenet/v1/tasks.proto above `enum TaskState`.
//
// Every state change of the board goes through CheckMove(); a move that is
// not in the table is FAILED_PRECONDITION (reason ILLEGAL_TRANSITION)
// `task "<id>": cannot move from <FROM> to <TO>`, and the caller changes
// nothing. Which target a request aims at (e.g. Complete -> COMPLETED or
// REVIEWING) is the caller's decision; whether that move is allowed for that
// operation is decided here only.
#ifndef CNET_SERVICES_TASKS_STATE_MACHINE_H_
#define CNET_SERVICES_TASKS_STATE_MACHINE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "proto/claudenet/v1/tasks.pb.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

// What causes a move (one per row group of the proto table).
enum class Op {
  kCreate,            // (new) -> CREATED
  kDependenciesMet,   // CREATED -> QUEUED
  kDependencyFailed,  // CREATED -> FAILED
  kAssign,            // QUEUED -> ASSIGNED (Claim or push)
  kSteal,             // ASSIGNED -> ASSIGNED (new holder)
  kStart,             // ASSIGNED -> RUNNING (Start or first Progress)
  kRequestInput,      // RUNNING -> INPUT_REQUIRED
  kProvideInput,      // INPUT_REQUIRED -> RUNNING
  kComplete,          // RUNNING -> COMPLETED | REVIEWING
  kResubmit,          // REVIEWING -> REVIEWING (new SHA, author)
  kApprove,           // REVIEWING -> COMPLETED
  kReject,            // REVIEWING -> FAILED | QUEUED
  kReopen,            // COMPLETED -> REVIEWING (new SHA, author, window)
  kRequeue,           // leased -> QUEUED (Release, retryable Fail, expiry, DEAD)
  kFail,              // leased -> FAILED (Fail, attempts exhausted)
  kCancel,            // non-terminal -> CANCELLED
  kDeadline,          // non-terminal -> FAILED
};

std::string_view OpName(Op op);

struct TransitionRule {
  pb::TaskState from;  // TASK_STATE_UNSPECIFIED for creation
  pb::TaskState to;
  Op op;
  std::string_view by;  // who performs it, as in the proto table
};

// Every legal (from, to, op), expanded (one row per from state).
const std::vector<TransitionRule>& TransitionTable();

bool IsLegal(pb::TaskState from, pb::TaskState to, Op op);

// OK when (from, to, op) is in the table; else FAILED_PRECONDITION, reason
// ILLEGAL_TRANSITION: `task "<id>": cannot move from FROM to TO`.
absl::Status CheckMove(std::string_view task_id, pb::TaskState from,
                       pb::TaskState to, Op op);

// COMPLETED, FAILED, CANCELLED. (COMPLETED may still be reopened for
// review by its author; it is terminal for every other purpose.)
bool IsTerminal(pb::TaskState state);
// ASSIGNED, RUNNING, INPUT_REQUIRED: the states in which a lease exists.
bool IsLeased(pb::TaskState state);

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_STATE_MACHINE_H_
