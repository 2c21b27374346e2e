// The gateway's link to the registry over its gRPC API (the registry's own
// client library, //libs/registry_client, is being written in parallel;
// once it lands main.cc can use its RegistryAuthenticator instead of
// RegistryTokenAuthenticator below).
//
// RegistryAgentDirectory mirrors every agent in memory from one Watch
// stream (snapshot, then live events), so recipient checks and fan-out are
// local lookups and a change in the registry invalidates them at once.
// While the mirror is not in sync (start, registry restart, RESYNC_REQUIRED)
// lookups go to GetAgent/ListAgents directly, each with a deadline; when
// the registry cannot be reached they fail UNAVAILABLE (never "unknown").
//
// RegistryTokenAuthenticator turns agent tokens into principals with
// ValidateToken, caching valid answers for the registry's cache_for; the
// directory's events (TOKEN_ROTATED, DEREGISTERED, PRUNED) drop the cached
// answers of that agent at once.
#ifndef CNET_SERVICES_MACS_GATEWAY_REGISTRY_DIRECTORY_H_
#define CNET_SERVICES_MACS_GATEWAY_REGISTRY_DIRECTORY_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "services/macs-gateway/directory.h"

namespace cnet::macs {

AgentInfo AgentInfoFrom(const claudenet::v1::Agent& agent);

class RegistryAgentDirectory final : public AgentDirectory {
 public:
  RegistryAgentDirectory(std::shared_ptr<grpc::Channel> channel, std::string service_credential,
                         absl::Duration rpc_deadline = absl::Seconds(3));
  ~RegistryAgentDirectory() override;

  // Starts the Watch loop (reconnecting with backoff until Stop()).
  void Start();
  void Stop();

  // Called (on the watch thread) with the agent id of every change.
  void OnChange(std::function<void(const std::string& agent_id,
                                   claudenet::v1::AgentEventType type)> fn);

  absl::StatusOr<std::optional<AgentInfo>> Get(const std::string& id) override;
  absl::StatusOr<std::vector<AgentInfo>> ListLive(const std::string& capability) override;
  std::vector<std::string> Suggest(const std::string& id, int max) override;

  // True while the mirror follows the registry.
  bool synced() const;
  // Blocks until synced or the timeout passes (for tests and start-up).
  bool WaitSynced(absl::Duration timeout) const;

 private:
  void WatchLoop();
  std::unique_ptr<grpc::ClientContext> Ctx() const;

  const std::string credential_;
  const absl::Duration deadline_;
  std::unique_ptr<claudenet::v1::RegistryService::Stub> stub_;
  std::function<void(const std::string&, claudenet::v1::AgentEventType)> on_change_;

  mutable absl::Mutex mu_;
  std::map<std::string, AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

class RegistryTokenAuthenticator final : public auth::Authenticator {
 public:
  RegistryTokenAuthenticator(std::shared_ptr<grpc::Channel> channel,
                             std::string service_credential, Clock* clock,
                             absl::Duration rpc_deadline = absl::Seconds(3));

  // UNAUTHENTICATED for an invalid token; UNAVAILABLE when the registry
  // cannot be asked.
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override;

  // Drops cached validations of this agent's tokens.
  void Invalidate(const std::string& agent_id);

 private:
  struct Cached {
    auth::Principal principal;
    absl::Time until;
  };
  const std::string credential_;
  Clock* const clock_;
  const absl::Duration deadline_;
  std::unique_ptr<claudenet::v1::RegistryService::Stub> stub_;
  absl::Mutex mu_;
  std::unordered_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);  // sha256(token)
};

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_REGISTRY_DIRECTORY_H_
