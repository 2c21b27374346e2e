// The registry as the board's AgentDirectory, and the registry's agent
// tokens as an Authenticator, through the registry's generated gRPC stub
// with the service credential and a deadline on every call.
//
// Until //libs/registry_client (registry branch) is merged, these adapters
// are the tasks service's own; they degrade gracefully: with the registry
// down, FindAgents/GetAgent answer UNAVAILABLE (push assignment waits for
// the next sweep, Claim answers UNAVAILABLE), agent tokens cannot be checked
// (UNAVAILABLE, never a false "unknown token"), and the Watch feed
// reconnects with backoff.
//
// RegistryDirectory keeps a local mirror of agents from the registry's
// Watch (snapshot, then events), so GetAgent for claims is a map lookup
// while the stream is connected; FindAgents always asks the registry (its
// FindAgents rpc is the authority on "least loaded HEALTHY agent").
#ifndef CNET_SERVICES_TASKS_REGISTRY_DIRECTORY_H_
#define CNET_SERVICES_TASKS_REGISTRY_DIRECTORY_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "services/tasks/directory.h"

namespace cnet::tasks {

// Converts a registry Agent record.
AgentInfo ToAgentInfo(const claudenet::v1::Agent& agent);

class RegistryDirectory final : public AgentDirectory {
 public:
  RegistryDirectory(std::shared_ptr<grpc::Channel> channel, std::string service_credential,
                    absl::Duration deadline = absl::Seconds(2));
  ~RegistryDirectory() override;

  // Starts following the registry's Watch stream (background thread).
  void Start();
  void Stop();

  absl::StatusOr<std::vector<AgentInfo>> FindAgents(const std::vector<std::string>& capabilities,
                                                    int limit) override;
  absl::StatusOr<AgentInfo> GetAgent(const std::string& agent_id) override;
  void SetListener(std::function<void(const AgentChange&)> listener) override;

  // True while the Watch stream is connected and past its snapshot.
  bool synced() const { return synced_.load(); }

 private:
  void WatchLoop();
  void Apply(const claudenet::v1::AgentEvent& event);
  void Fire(const AgentChange& change);
  std::unique_ptr<grpc::ClientContext> Context() const;

  std::unique_ptr<claudenet::v1::RegistryService::Stub> stub_;
  const std::string credential_;
  const absl::Duration deadline_;
  std::function<void(const AgentChange&)> listener_;

  mutable absl::Mutex mu_;
  std::map<std::string, AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::CondVar stop_cv_;
  std::atomic<bool> synced_{false};
  std::thread thread_;
};

// Agent tokens checked with the registry's ValidateToken, cached for the
// time the registry allows (default 30 s). A token the registry rejects is
// UNAUTHENTICATED; a registry that cannot be reached is UNAVAILABLE.
class RegistryTokenAuthenticator final : public auth::Authenticator {
 public:
  RegistryTokenAuthenticator(std::shared_ptr<grpc::Channel> channel,
                             std::string service_credential, Clock* clock,
                             absl::Duration deadline = absl::Seconds(2));
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override;

 private:
  struct Cached {
    auth::Principal principal;
    absl::Time until;
  };
  std::unique_ptr<claudenet::v1::RegistryService::Stub> stub_;
  const std::string credential_;
  Clock* const clock_;
  const absl::Duration deadline_;
  absl::Mutex mu_;
  std::map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);  // by SHA-256 of the token
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_REGISTRY_DIRECTORY_H_
