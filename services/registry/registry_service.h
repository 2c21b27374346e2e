// gRPC adapter of the registry: checks who calls (credentials come from the
// shared auth interceptor), calls the Registry core, maps statuses and adds
// the `claudenet-error-bin` / `claudenet-retry-after-ms` trailers. No
// registry logic lives here.
//
// Every rpc uses the callback API: unary handlers finish inline (the core
// never blocks for long), Watch is a libs/stream HubWriter over the core's
// event hub, HeartbeatStream is a small bidi reactor with one read or write
// in flight. No thread is held per stream.
#ifndef CNET_SERVICES_REGISTRY_REGISTRY_SERVICE_H_
#define CNET_SERVICES_REGISTRY_REGISTRY_SERVICE_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "services/registry/registry.h"

namespace cnet::registry {

// Agent tokens for the shared interceptor, answered from the core's token
// table (the registry is the authority; other services use
// libs/registry_client's RegistryAuthenticator instead).
class RegistryTokenAuthenticator final : public auth::Authenticator {
 public:
  explicit RegistryTokenAuthenticator(const Registry* registry) : registry_(registry) {}
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override;

 private:
  const Registry* registry_;
};

class RegistryServiceImpl final : public claudenet::v1::RegistryService::CallbackService {
 public:
  explicit RegistryServiceImpl(Registry* registry) : registry_(registry) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const claudenet::v1::RegisterRequest* req,
                                     claudenet::v1::RegisterResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateAgent(grpc::CallbackServerContext* ctx,
                                        const claudenet::v1::UpdateAgentRequest* req,
                                        claudenet::v1::UpdateAgentResponse* resp) override;
  grpc::ServerUnaryReactor* Deregister(grpc::CallbackServerContext* ctx,
                                       const claudenet::v1::DeregisterRequest* req,
                                       claudenet::v1::DeregisterResponse* resp) override;
  grpc::ServerUnaryReactor* RotateToken(grpc::CallbackServerContext* ctx,
                                        const claudenet::v1::RotateTokenRequest* req,
                                        claudenet::v1::RotateTokenResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const claudenet::v1::HeartbeatRequest* req,
                                      claudenet::v1::HeartbeatResponse* resp) override;
  grpc::ServerBidiReactor<claudenet::v1::HeartbeatRequest, claudenet::v1::HeartbeatResponse>*
  HeartbeatStream(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* ctx,
                                     const claudenet::v1::GetAgentRequest* req,
                                     claudenet::v1::GetAgentResponse* resp) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* ctx,
                                       const claudenet::v1::ListAgentsRequest* req,
                                       claudenet::v1::ListAgentsResponse* resp) override;
  grpc::ServerUnaryReactor* FindAgents(grpc::CallbackServerContext* ctx,
                                       const claudenet::v1::FindAgentsRequest* req,
                                       claudenet::v1::FindAgentsResponse* resp) override;
  grpc::ServerWriteReactor<claudenet::v1::AgentEvent>* Watch(
      grpc::CallbackServerContext* ctx, const claudenet::v1::WatchAgentsRequest* req) override;
  grpc::ServerUnaryReactor* ValidateToken(grpc::CallbackServerContext* ctx,
                                          const claudenet::v1::ValidateTokenRequest* req,
                                          claudenet::v1::ValidateTokenResponse* resp) override;
  grpc::ServerUnaryReactor* GetNetworkStatus(grpc::CallbackServerContext* ctx,
                                             const claudenet::v1::GetNetworkStatusRequest* req,
                                             claudenet::v1::GetNetworkStatusResponse* resp) override;
  grpc::ServerUnaryReactor* GetAgentCard(grpc::CallbackServerContext* ctx,
                                         const claudenet::v1::GetAgentCardRequest* req,
                                         claudenet::v1::GetAgentCardResponse* resp) override;
  grpc::ServerUnaryReactor* ListAgentCards(grpc::CallbackServerContext* ctx,
                                           const claudenet::v1::ListAgentCardsRequest* req,
                                           claudenet::v1::ListAgentCardsResponse* resp) override;
  grpc::ServerUnaryReactor* SyncRemoteAgents(
      grpc::CallbackServerContext* ctx, const claudenet::v1::SyncRemoteAgentsRequest* req,
      claudenet::v1::SyncRemoteAgentsResponse* resp) override;

 private:
  // Open Watch streams per credential (registry.max_watchers_per_caller).
  std::shared_ptr<void> AcquireWatcher(const std::string& caller);

  Registry* registry_;
  absl::Mutex watchers_mu_;
  absl::flat_hash_map<std::string, int> watchers_ ABSL_GUARDED_BY(watchers_mu_);
};

// The core's view of the authenticated caller.
Actor ToActor(const auth::Principal& principal);

}  // namespace cnet::registry

#endif  // CNET_SERVICES_REGISTRY_REGISTRY_SERVICE_H_
