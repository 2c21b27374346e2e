// Small helpers shared by the tasks service's units: state names, error
// statuses carrying a machine-readable ErrorDetail, and conversions between
// absl time and protobuf timestamps/durations.
#ifndef CNET_SERVICES_TASKS_TASK_UTIL_H_
#define CNET_SERVICES_TASKS_TASK_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "proto/claudenet/v1/tasks.pb.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

// "QUEUED" for TASK_STATE_QUEUED.
std::string StateName(pb::TaskState state);

// The absl::Status payload key under which a serialized pb::ErrorDetail
// travels from the core to the adapter (which sends it as the trailing
// metadata entry `claudenet-error-bin`).
inline constexpr char kErrorDetailUrl[] = "type.googleapis.com/claudenet.v1.ErrorDetail";

// A status with `message` and an ErrorDetail {reason, resource_type "task",
// resource_id}. `reason` may be empty.
absl::Status TaskError(absl::StatusCode code, std::string_view reason,
                       std::string_view task_id, std::string message);
// Shorthands.
absl::Status InvalidArgument(std::string message);
absl::Status NotFound(std::string_view task_id, std::string message,
                      std::string_view reason = "");
absl::Status Precondition(std::string_view task_id, std::string_view reason,
                          std::string message);
absl::Status Denied(std::string_view task_id, std::string_view reason,
                    std::string message);

// The ErrorDetail reason of a status made by TaskError (empty if none).
std::string ErrorReason(const absl::Status& status);

// `task "<id>"` as used at the start of messages.
std::string TaskRef(std::string_view task_id);

google::protobuf::Timestamp ToProto(absl::Time t);
absl::Time FromProto(const google::protobuf::Timestamp& ts);
google::protobuf::Duration ToProtoDuration(absl::Duration d);
absl::Duration FromProtoDuration(const google::protobuf::Duration& d);
int64_t ToMicros(absl::Time t);
absl::Time FromMicros(int64_t us);

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_TASK_UTIL_H_
