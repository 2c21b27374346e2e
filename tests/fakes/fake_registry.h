// A stand-in for the registry service, speaking its real gRPC API
// (claudenet.v1.RegistryService) for what the MACS gateway uses: GetAgent,
// ListAgents, Watch (snapshot + live events) and ValidateToken. Agents and
// their tokens are set by the test. Every other rpc is UNIMPLEMENTED.
#ifndef CNET_TESTS_FAKES_FAKE_REGISTRY_H_
#define CNET_TESTS_FAKES_FAKE_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"

namespace cnet::fakes {

class FakeRegistry final : public claudenet::v1::RegistryService::Service {
 public:
  // Calls must present this credential (the suite's service credential).
  explicit FakeRegistry(std::string service_credential)
      : service_credential_(std::move(service_credential)) {}

  // Adds or replaces an agent (emits REGISTERED/UPDATED); `token` may be
  // empty.
  void Put(const claudenet::v1::Agent& agent, const std::string& token);
  // Removes an agent and its token (emits DEREGISTERED).
  void Remove(const std::string& id);
  // Ends every open Watch stream (as a restarting registry would).
  void DropWatchers();
  void Shutdown();
  int validate_calls() const;

  grpc::Status GetAgent(grpc::ServerContext* ctx, const claudenet::v1::GetAgentRequest* req,
                        claudenet::v1::GetAgentResponse* resp) override;
  grpc::Status ListAgents(grpc::ServerContext* ctx, const claudenet::v1::ListAgentsRequest* req,
                          claudenet::v1::ListAgentsResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const claudenet::v1::WatchAgentsRequest* req,
                     grpc::ServerWriter<claudenet::v1::AgentEvent>* writer) override;
  grpc::Status ValidateToken(grpc::ServerContext* ctx,
                             const claudenet::v1::ValidateTokenRequest* req,
                             claudenet::v1::ValidateTokenResponse* resp) override;

 private:
  bool Authorized(grpc::ServerContext* ctx) const;
  void Emit(claudenet::v1::AgentEventType type, const claudenet::v1::Agent& agent)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string service_credential_;
  mutable absl::Mutex mu_;
  std::map<std::string, claudenet::v1::Agent> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> tokens_ ABSL_GUARDED_BY(mu_);  // token -> agent
  std::vector<claudenet::v1::AgentEvent> events_ ABSL_GUARDED_BY(mu_);
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by DropWatchers
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int validate_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cnet::fakes

#endif  // CNET_TESTS_FAKES_FAKE_REGISTRY_H_
