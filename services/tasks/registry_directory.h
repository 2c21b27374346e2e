// The registry as the board's AgentDirectory, on //libs/registry_client.
//
// A Watch subscription (snapshot, then events; the client library resumes
// after reconnects and resynchronizes with a new snapshot when told to)
// keeps a local mirror of agents, so GetAgent for claims is a map lookup;
// FindAgents asks the registry (its FindAgents is the authority on "least
// loaded HEALTHY agent with these capabilities"). DEAD, deregistered and
// pruned agents are reported to the board, which requeues their leases.
//
// Degrades gracefully: with the registry down, FindAgents/GetAgent of an
// agent not mirrored answer UNAVAILABLE (push waits for the next sweep,
// Claim answers UNAVAILABLE) and the subscription keeps reconnecting.
#ifndef CNET_SERVICES_TASKS_REGISTRY_DIRECTORY_H_
#define CNET_SERVICES_TASKS_REGISTRY_DIRECTORY_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/registry_client/registry_client.h"
#include "services/tasks/directory.h"

namespace cnet::tasks {

// Converts a registry Agent record.
AgentInfo ToAgentInfo(const claudenet::v1::Agent& agent);

class RegistryDirectory final : public AgentDirectory {
 public:
  explicit RegistryDirectory(std::shared_ptr<registry_client::RegistryClient> client);
  ~RegistryDirectory() override;

  // Starts following the registry's Watch stream.
  void Start();
  void Stop();

  absl::StatusOr<std::vector<AgentInfo>> FindAgents(const std::vector<std::string>& capabilities,
                                                    int limit) override;
  absl::StatusOr<AgentInfo> GetAgent(const std::string& agent_id) override;
  void SetListener(std::function<void(const AgentChange&)> listener) override;

  // True once the mirror holds a complete snapshot.
  bool synced() const { return synced_.load(); }

 private:
  void Apply(const claudenet::v1::AgentEvent& event);
  void Fire(const AgentChange& change);

  const std::shared_ptr<registry_client::RegistryClient> client_;
  std::function<void(const AgentChange&)> listener_;
  std::unique_ptr<registry_client::WatchSubscription> watch_;

  mutable absl::Mutex mu_;
  std::map<std::string, AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  // A snapshot being received replaces the mirror at SNAPSHOT_END.
  std::map<std::string, AgentInfo> incoming_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> synced_{false};
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_REGISTRY_DIRECTORY_H_
