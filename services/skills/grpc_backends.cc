#include "services/skills/grpc_backends.h"

#include "absl/strings/str_cat.h"
#include "libs/auth/auth.h"
#include "libs/status/grpc_status.h"
#include "services/macs-gateway/canonical.h"

namespace cnet::skills {

GrpcBackends::GrpcBackends(BackendOptions options, Clock* clock)
    : options_(std::move(options)), clock_(clock) {
  registry_ = pb::RegistryService::NewStub(options_.registry);
  macs_ = pb::MacsGateway::NewStub(options_.macs);
  tasks_ = pb::TaskService::NewStub(options_.tasks);
}

std::shared_ptr<grpc::ClientContext> GrpcBackends::Context(const CallContext& ctx,
                                                           absl::Duration extra) {
  auto c = std::make_shared<grpc::ClientContext>();
  // One call never outlives its step, nor call_timeout (plus what the call
  // itself asks to wait, e.g. a Claim long-poll): a long step (wait_for)
  // polls with short calls. The engine's clock is the wall clock here.
  absl::Time deadline = std::min(ctx.deadline, clock_->Now() + options_.call_timeout + extra);
  c->set_deadline(absl::ToChronoTime(deadline));
  auth::SetBearer(c.get(), options_.service_credential);
  if (!ctx.agent_id.empty()) c->AddMetadata("claudenet-on-behalf-of", ctx.agent_id);
  if (ctx.on_cancel) ctx.on_cancel([c] { c->TryCancel(); });
  return c;
}

absl::Status GrpcBackends::Done(const char* service, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(service, ": ", status.error_message()));
}

absl::Status GrpcBackends::Send(const CallContext& ctx, const pb::SendRequest& req,
                                pb::SendResponse* resp) {
  pb::SendRequest signed_req = req;
  pb::Message* m = signed_req.mutable_message();
  if (m->sender().empty()) m->set_sender(ctx.agent_id);
  if (!m->has_created_at()) m->mutable_created_at()->set_seconds(absl::ToUnixSeconds(clock_->Now()));
  if (options_.sign_messages && !options_.shared_secret.empty()) {
    absl::StatusOr<std::string> signature = macs::SignMessage(*m, options_.shared_secret);
    if (!signature.ok()) return signature.status();
    m->set_signature(*signature);
  }
  auto c = Context(ctx);
  return Done("macs", macs_->Send(c.get(), signed_req, resp));
}

absl::Status GrpcBackends::FetchInbox(const CallContext& ctx, const pb::FetchInboxRequest& req,
                                      pb::FetchInboxResponse* resp) {
  auto c = Context(ctx);
  return Done("macs", macs_->FetchInbox(c.get(), req, resp));
}

absl::Status GrpcBackends::Ack(const CallContext& ctx, const pb::AckRequest& req,
                               pb::AckResponse* resp) {
  auto c = Context(ctx);
  return Done("macs", macs_->Ack(c.get(), req, resp));
}

absl::Status GrpcBackends::Register(const CallContext& ctx, const pb::RegisterRequest& req,
                                    pb::RegisterResponse* resp) {
  auto c = Context(ctx);
  return Done("registry", registry_->Register(c.get(), req, resp));
}

absl::Status GrpcBackends::GetAgent(const CallContext& ctx, const pb::GetAgentRequest& req,
                                    pb::GetAgentResponse* resp) {
  auto c = Context(ctx);
  return Done("registry", registry_->GetAgent(c.get(), req, resp));
}

absl::Status GrpcBackends::ListAgents(const CallContext& ctx, const pb::ListAgentsRequest& req,
                                      pb::ListAgentsResponse* resp) {
  auto c = Context(ctx);
  return Done("registry", registry_->ListAgents(c.get(), req, resp));
}

absl::Status GrpcBackends::GetNetworkStatus(const CallContext& ctx,
                                            const pb::GetNetworkStatusRequest& req,
                                            pb::GetNetworkStatusResponse* resp) {
  auto c = Context(ctx);
  return Done("registry", registry_->GetNetworkStatus(c.get(), req, resp));
}

absl::Status GrpcBackends::CreateTask(const CallContext& ctx, const pb::CreateTaskRequest& req,
                                      pb::CreateTaskResponse* resp) {
  auto c = Context(ctx);
  return Done("tasks", tasks_->CreateTask(c.get(), req, resp));
}

absl::Status GrpcBackends::GetTask(const CallContext& ctx, const pb::GetTaskRequest& req,
                                   pb::GetTaskResponse* resp) {
  auto c = Context(ctx);
  return Done("tasks", tasks_->GetTask(c.get(), req, resp));
}

absl::Status GrpcBackends::ListTasks(const CallContext& ctx, const pb::ListTasksRequest& req,
                                     pb::ListTasksResponse* resp) {
  auto c = Context(ctx);
  return Done("tasks", tasks_->ListTasks(c.get(), req, resp));
}

absl::Status GrpcBackends::Claim(const CallContext& ctx, const pb::ClaimRequest& req,
                                 pb::ClaimResponse* resp) {
  auto c = Context(ctx, absl::Seconds(req.wait().seconds()));
  return Done("tasks", tasks_->Claim(c.get(), req, resp));
}

absl::Status GrpcBackends::Progress(const CallContext& ctx, const pb::ProgressRequest& req,
                                    pb::ProgressResponse* resp) {
  auto c = Context(ctx);
  return Done("tasks", tasks_->Progress(c.get(), req, resp));
}

absl::Status GrpcBackends::Complete(const CallContext& ctx, const pb::CompleteRequest& req,
                                    pb::CompleteResponse* resp) {
  auto c = Context(ctx);
  return Done("tasks", tasks_->Complete(c.get(), req, resp));
}

}  // namespace cnet::skills
