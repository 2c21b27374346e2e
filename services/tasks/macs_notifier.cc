#include "services/tasks/macs_notifier.h"

#include <glog/logging.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "libs/auth/auth.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

MacsNotifier::MacsNotifier(std::shared_ptr<grpc::Channel> channel, std::string service_credential,
                           absl::Duration deadline)
    : stub_(pb::MacsGateway::NewStub(std::move(channel))),
      credential_(std::move(service_credential)),
      deadline_(deadline) {}

absl::Status MacsNotifier::Send(const Notice& notice) {
  pb::SendRequest req;
  pb::Message* m = req.mutable_message();
  m->set_id(notice.id);
  m->set_recipient(notice.recipient);
  m->set_type(pb::MESSAGE_TYPE_TASK);
  m->set_subject(notice.subject.substr(0, 256));
  m->set_body(notice.body);
  m->set_priority(notice.urgent ? pb::PRIORITY_HIGH : pb::PRIORITY_NORMAL);
  m->set_correlation_id(notice.task_id);
  auto& fields = *m->mutable_payload()->mutable_fields();
  fields["task_id"].set_string_value(notice.task_id);
  fields["kind"].set_string_value(notice.kind);
  pb::SendResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::microseconds(absl::ToInt64Microseconds(deadline_)));
  auth::SetBearer(&ctx, credential_);
  grpc::Status s = stub_->Send(&ctx, req, &resp);
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::ALREADY_EXISTS:  // delivered before under this id
      return absl::OkStatus();
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::PERMISSION_DENIED:
      LOG(WARNING) << "tasks: dropping notice " << notice.id << " to " << notice.recipient
                   << ": gateway refused it: " << s.error_message();
      return absl::OkStatus();
    default:
      return absl::UnavailableError(
          absl::StrCat("gateway: ", s.error_message(), " (code ", s.error_code(), ")"));
  }
}

}  // namespace cnet::tasks
