#include "services/tasks/state_machine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks {
namespace {

using S = pb::TaskState;
constexpr S kNew = pb::TASK_STATE_UNSPECIFIED;
constexpr S kCreated = pb::TASK_STATE_CREATED;
constexpr S kQueued = pb::TASK_STATE_QUEUED;
constexpr S kAssigned = pb::TASK_STATE_ASSIGNED;
constexpr S kRunning = pb::TASK_STATE_RUNNING;
constexpr S kInput = pb::TASK_STATE_INPUT_REQUIRED;
constexpr S kReviewing = pb::TASK_STATE_REVIEWING;
constexpr S kCompleted = pb::TASK_STATE_COMPLETED;
constexpr S kFailed = pb::TASK_STATE_FAILED;
constexpr S kCancelled = pb::TASK_STATE_CANCELLED;

std::vector<TransitionRule> Build() {
  std::vector<TransitionRule> rows = {
      {kNew, kCreated, Op::kCreate, "CreateTask (creator)"},
      {kCreated, kQueued, Op::kDependenciesMet,
       "all dependencies COMPLETED; at once at creation when there are none (system)"},
      {kCreated, kFailed, Op::kDependencyFailed,
       "a dependency FAILED or was CANCELLED and on_dependency_failure = FAIL (system)"},
      {kQueued, kAssigned, Op::kAssign, "Claim (agent) or push assignment (system)"},
      {kAssigned, kAssigned, Op::kSteal, "Steal / stealing Claim (agent)"},
      {kAssigned, kRunning, Op::kStart, "Start, or the first Progress (holder)"},
      {kRunning, kInput, Op::kRequestInput, "RequestInput (holder)"},
      {kInput, kRunning, Op::kProvideInput, "ProvideInput (creator, asked agent, admin)"},
      {kRunning, kCompleted, Op::kComplete, "Complete, no review required (holder)"},
      {kRunning, kReviewing, Op::kComplete, "Complete, review required (holder)"},
      {kReviewing, kReviewing, Op::kResubmit, "Complete with a new commit SHA (author)"},
      {kReviewing, kCompleted, Op::kApprove, "Review APPROVE reaching required_approvals"},
      {kReviewing, kFailed, Op::kReject, "Review REJECT, reject_mode FAIL"},
      {kReviewing, kQueued, Op::kReject, "Review REJECT, reject_mode REQUEUE"},
      {kCompleted, kReviewing, Op::kReopen,
       "Complete with a new commit SHA by the author, within the reopen window"},
  };
  for (S leased : {kAssigned, kRunning, kInput}) {
    rows.push_back({leased, kQueued, Op::kRequeue,
                    "Release; retryable Fail; lease expiry; holder DEAD/deregistered"});
    rows.push_back({leased, kFailed, Op::kFail,
                    "Fail (holder); a requeue consuming the last attempt (system)"});
  }
  for (S live : {kCreated, kQueued, kAssigned, kRunning, kInput, kReviewing}) {
    rows.push_back({live, kCancelled, Op::kCancel, "Cancel (creator, admin); cascade"});
    rows.push_back({live, kFailed, Op::kDeadline, "deadline passed (system)"});
  }
  return rows;
}

}  // namespace

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kCreate: return "create";
    case Op::kDependenciesMet: return "dependencies met";
    case Op::kDependencyFailed: return "dependency failed";
    case Op::kAssign: return "assign";
    case Op::kSteal: return "steal";
    case Op::kStart: return "start";
    case Op::kRequestInput: return "request input";
    case Op::kProvideInput: return "provide input";
    case Op::kComplete: return "complete";
    case Op::kResubmit: return "resubmit";
    case Op::kApprove: return "approve";
    case Op::kReject: return "reject";
    case Op::kReopen: return "reopen";
    case Op::kRequeue: return "requeue";
    case Op::kFail: return "fail";
    case Op::kCancel: return "cancel";
    case Op::kDeadline: return "deadline";
  }
  return "?";
}

const std::vector<TransitionRule>& TransitionTable() {
  static const std::vector<TransitionRule>* const table =
      new std::vector<TransitionRule>(Build());
  return *table;
}

bool IsLegal(pb::TaskState from, pb::TaskState to, Op op) {
  const auto& table = TransitionTable();
  return std::any_of(table.begin(), table.end(), [&](const TransitionRule& r) {
    return r.from == from && r.to == to && r.op == op;
  });
}

absl::Status CheckMove(std::string_view task_id, pb::TaskState from,
                       pb::TaskState to, Op op) {
  if (IsLegal(from, to, op)) return absl::OkStatus();
  return Precondition(task_id, "ILLEGAL_TRANSITION",
                      absl::StrCat(TaskRef(task_id), ": cannot move from ",
                                   StateName(from), " to ", StateName(to)));
}

bool IsTerminal(pb::TaskState state) {
  return state == kCompleted || state == kFailed || state == kCancelled;
}

bool IsLeased(pb::TaskState state) {
  return state == kAssigned || state == kRunning || state == kInput;
}

}  // namespace cnet::tasks
