#include "services/tasks/macs_notifier.h"

#include <glog/logging.h>

#include "absl/strings/str_cat.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

namespace {
macs_client::ClientOptions Options(std::string credential, std::string signing_key,
                                   absl::Duration deadline) {
  macs_client::ClientOptions o;
  o.agent_id = "svc:tasks";
  o.token = std::move(credential);
  o.signing_key = std::move(signing_key);
  o.deadline = deadline;
  o.max_attempts = 1;  // the board's outbox retries, with its own backoff
  return o;
}
}  // namespace

MacsNotifier::MacsNotifier(std::shared_ptr<grpc::Channel> channel, std::string service_credential,
                           std::string signing_key, absl::Duration deadline)
    : client_(std::move(channel),
              Options(std::move(service_credential), std::move(signing_key), deadline)) {}

absl::Status MacsNotifier::Send(const Notice& notice) {
  pb::Message m;
  m.set_id(notice.id);
  m.set_recipient(notice.recipient);
  m.set_type(pb::MESSAGE_TYPE_TASK);
  m.set_subject(notice.subject.substr(0, 256));
  m.set_body(notice.body);
  m.set_priority(notice.urgent ? pb::PRIORITY_HIGH : pb::PRIORITY_NORMAL);
  m.set_correlation_id(notice.task_id);
  auto& fields = *m.mutable_payload()->mutable_fields();
  fields["task_id"].set_string_value(notice.task_id);
  fields["kind"].set_string_value(notice.kind);
  absl::StatusOr<pb::SendResponse> sent = client_.Send(std::move(m));
  if (sent.ok()) return absl::OkStatus();
  switch (sent.status().code()) {
    case absl::StatusCode::kAlreadyExists:  // accepted before under this id
      return absl::OkStatus();
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
      LOG(WARNING) << "tasks: dropping notice " << notice.id << " to " << notice.recipient
                   << ": gateway refused it: " << sent.status();
      return absl::OkStatus();
    default:
      return absl::UnavailableError(absl::StrCat("gateway: ", sent.status().message()));
  }
}

}  // namespace cnet::tasks
