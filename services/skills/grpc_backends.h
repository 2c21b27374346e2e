// The production backends of the built-in actions: the MACS gateway, the
// Registry and the Tasks service over their generated gRPC stubs. Every
// call carries a deadline (the step's, or call_timeout), the service
// credential and `claudenet-on-behalf-of: <acting agent>`, so the other
// services authorise it exactly as that agent (common.proto). Messages are
// signed (CNET-MSG-V1) when message signing is on. (Agent tokens of the
// skills service's own callers are checked by libs/registry_client's
// RegistryAuthenticator.)
#ifndef CNET_SERVICES_SKILLS_GRPC_BACKENDS_H_
#define CNET_SERVICES_SKILLS_GRPC_BACKENDS_H_

#include <memory>
#include <string>

#include "libs/clock/clock.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "services/skills/actions.h"

namespace cnet::skills {

struct BackendOptions {
  // Channels to the services (libs/server MakeSuiteChannel: TLS when
  // configured).
  std::shared_ptr<grpc::Channel> registry;
  std::shared_ptr<grpc::Channel> macs;
  std::shared_ptr<grpc::Channel> tasks;
  std::string service_credential;
  // Sign outgoing messages with this secret (empty = do not sign).
  bool sign_messages = false;
  std::string shared_secret;
  // Deadline of a call when the step sets none.
  absl::Duration call_timeout = absl::Seconds(30);
};

class GrpcBackends final : public MessagingBackend, public RegistryBackend, public TaskBackend {
 public:
  GrpcBackends(BackendOptions options, Clock* clock);

  absl::Status Send(const CallContext& ctx, const pb::SendRequest& req,
                    pb::SendResponse* resp) override;
  absl::Status FetchInbox(const CallContext& ctx, const pb::FetchInboxRequest& req,
                          pb::FetchInboxResponse* resp) override;
  absl::Status Ack(const CallContext& ctx, const pb::AckRequest& req,
                   pb::AckResponse* resp) override;
  absl::Status Register(const CallContext& ctx, const pb::RegisterRequest& req,
                        pb::RegisterResponse* resp) override;
  absl::Status GetAgent(const CallContext& ctx, const pb::GetAgentRequest& req,
                        pb::GetAgentResponse* resp) override;
  absl::Status ListAgents(const CallContext& ctx, const pb::ListAgentsRequest& req,
                          pb::ListAgentsResponse* resp) override;
  absl::Status GetNetworkStatus(const CallContext& ctx, const pb::GetNetworkStatusRequest& req,
                                pb::GetNetworkStatusResponse* resp) override;
  absl::Status CreateTask(const CallContext& ctx, const pb::CreateTaskRequest& req,
                          pb::CreateTaskResponse* resp) override;
  absl::Status GetTask(const CallContext& ctx, const pb::GetTaskRequest& req,
                       pb::GetTaskResponse* resp) override;
  absl::Status ListTasks(const CallContext& ctx, const pb::ListTasksRequest& req,
                         pb::ListTasksResponse* resp) override;
  absl::Status Claim(const CallContext& ctx, const pb::ClaimRequest& req,
                     pb::ClaimResponse* resp) override;
  absl::Status Progress(const CallContext& ctx, const pb::ProgressRequest& req,
                        pb::ProgressResponse* resp) override;
  absl::Status Complete(const CallContext& ctx, const pb::CompleteRequest& req,
                        pb::CompleteResponse* resp) override;


 private:
  // A client context with deadline, credential and on-behalf-of, cancelled
  // through the action's cancel hook.
  std::shared_ptr<grpc::ClientContext> Context(const CallContext& ctx,
                                               absl::Duration extra = absl::ZeroDuration());
  absl::Status Done(const char* service, const grpc::Status& status);

  BackendOptions options_;
  Clock* clock_;
  std::unique_ptr<pb::RegistryService::Stub> registry_;
  std::unique_ptr<pb::MacsGateway::Stub> macs_;
  std::unique_ptr<pb::TaskService::Stub> tasks_;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_GRPC_BACKENDS_H_
