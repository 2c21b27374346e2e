// A small in-process stand-in for the registry's gRPC API, for tests and
// benchmarks of services that call it (tasks): ValidateToken, GetAgent,
// FindAgents, GetNetworkStatus (current sequence) and Watch (snapshot or
// resume, then live changes), over agents and tokens
// the test sets. Everything else answers UNIMPLEMENTED.
#ifndef CNET_TESTS_FAKES_REGISTRY_FAKE_H_
#define CNET_TESTS_FAKES_REGISTRY_FAKE_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"

namespace cnet::fakes {

class RegistryFake final
    : public claudenet::v1::RegistryService::WithCallbackMethod_Watch<
          claudenet::v1::RegistryService::Service> {
 public:
  RegistryFake();
  ~RegistryFake() override;

  // Adds or replaces an agent (HEALTHY, ONLINE unless set) with a token.
  void PutAgent(const claudenet::v1::Agent& agent, const std::string& token);
  // Changes an agent's health and tells watchers (HEALTH_CHANGED).
  void SetHealth(const std::string& agent_id, claudenet::v1::Health health);
  int find_calls() const;

  grpc::Status ValidateToken(grpc::ServerContext* ctx,
                             const claudenet::v1::ValidateTokenRequest* req,
                             claudenet::v1::ValidateTokenResponse* resp) override;
  grpc::Status GetAgent(grpc::ServerContext* ctx, const claudenet::v1::GetAgentRequest* req,
                        claudenet::v1::GetAgentResponse* resp) override;
  grpc::Status FindAgents(grpc::ServerContext* ctx, const claudenet::v1::FindAgentsRequest* req,
                          claudenet::v1::FindAgentsResponse* resp) override;
  grpc::Status GetNetworkStatus(grpc::ServerContext* ctx,
                                const claudenet::v1::GetNetworkStatusRequest* req,
                                claudenet::v1::GetNetworkStatusResponse* resp) override;
  grpc::ServerWriteReactor<claudenet::v1::AgentEvent>* Watch(
      grpc::CallbackServerContext* ctx, const claudenet::v1::WatchAgentsRequest* req) override;

  class Watcher;

 private:
  void Publish(const claudenet::v1::AgentEvent& ev);

  mutable absl::Mutex mu_;
  std::map<std::string, claudenet::v1::Agent> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> tokens_ ABSL_GUARDED_BY(mu_);  // token -> agent id
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  std::vector<claudenet::v1::AgentEvent> log_ ABSL_GUARDED_BY(mu_);  // for resume
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int find_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cnet::fakes

#endif  // CNET_TESTS_FAKES_REGISTRY_FAKE_H_
