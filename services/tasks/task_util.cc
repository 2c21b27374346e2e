#include "services/tasks/task_util.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proto/claudenet/v1/common.pb.h"

namespace cnet::tasks {
namespace {
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }
}  // namespace

std::string StateName(pb::TaskState state) {
  const std::string& full = pb::TaskState_Name(state);
  static constexpr std::string_view kPrefix = "TASK_STATE_";
  if (full.empty()) return absl::StrCat("STATE_", static_cast<int>(state));
  if (full.compare(0, kPrefix.size(), kPrefix.data(), kPrefix.size()) == 0) {
    return full.substr(kPrefix.size());
  }
  return full;
}

std::string TaskRef(std::string_view task_id) {
  return absl::StrCat("task \"", Sv(task_id), "\"");
}

absl::Status TaskError(absl::StatusCode code, std::string_view reason,
                       std::string_view task_id, std::string message) {
  absl::Status status(code, message);
  pb::ErrorDetail detail;
  if (!reason.empty()) detail.set_reason(std::string(reason));
  if (!task_id.empty()) {
    detail.set_resource_type("task");
    detail.set_resource_id(std::string(task_id));
  }
  if (!detail.reason().empty() || !detail.resource_id().empty()) {
    status.SetPayload(kErrorDetailUrl, absl::Cord(detail.SerializeAsString()));
  }
  return status;
}

absl::Status InvalidArgument(std::string message) {
  return absl::InvalidArgumentError(std::move(message));
}

absl::Status NotFound(std::string_view task_id, std::string message,
                      std::string_view reason) {
  return TaskError(absl::StatusCode::kNotFound, reason, task_id, std::move(message));
}

absl::Status Precondition(std::string_view task_id, std::string_view reason,
                          std::string message) {
  return TaskError(absl::StatusCode::kFailedPrecondition, reason, task_id,
                   std::move(message));
}

absl::Status Denied(std::string_view task_id, std::string_view reason,
                    std::string message) {
  return TaskError(absl::StatusCode::kPermissionDenied, reason, task_id,
                   std::move(message));
}

std::string ErrorReason(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorDetailUrl);
  if (!payload.has_value()) return "";
  pb::ErrorDetail detail;
  if (!detail.ParseFromString(std::string(*payload))) return "";
  return detail.reason();
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return ts;
  int64_t us = absl::ToUnixMicros(t);
  int64_t secs = us / 1000000;
  int64_t rem = us % 1000000;
  if (rem < 0) {
    rem += 1000000;
    --secs;
  }
  ts.set_seconds(secs);
  ts.set_nanos(static_cast<int32_t>(rem * 1000));
  return ts;
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  google::protobuf::Duration out;
  int64_t us = absl::ToInt64Microseconds(d);
  out.set_seconds(us / 1000000);
  out.set_nanos(static_cast<int32_t>((us % 1000000) * 1000));
  return out;
}

absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

}  // namespace cnet::tasks
