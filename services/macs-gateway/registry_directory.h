// AgentDirectory over the registry's client library (//libs/registry_client).
//
// One Watch subscription (snapshot, then live events; the library resumes
// after a dropped stream and re-snapshots after RESYNC_REQUIRED) keeps an
// in-memory mirror of every agent, so recipient checks and fan-out are
// local lookups and any change in the registry reaches them at once.
// A lookup that misses the mirror, or any lookup while the mirror is not in
// sync (before the first snapshot, after RESYNC_REQUIRED), asks the
// registry directly (GetAgent / ListAgents, with the client's deadline):
// an agent registered a moment ago is never refused because its event is
// still in flight. An unreachable registry is UNAVAILABLE, never "unknown
// agent". Agent tokens are checked by registry_client::RegistryAuthenticator
// (main.cc).
#ifndef CNET_SERVICES_MACS_GATEWAY_REGISTRY_DIRECTORY_H_
#define CNET_SERVICES_MACS_GATEWAY_REGISTRY_DIRECTORY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/registry_client/registry_client.h"
#include "services/macs-gateway/directory.h"

namespace cnet::macs {

AgentInfo AgentInfoFrom(const claudenet::v1::Agent& agent);

class RegistryAgentDirectory final : public AgentDirectory {
 public:
  explicit RegistryAgentDirectory(std::shared_ptr<registry_client::RegistryClient> client);
  ~RegistryAgentDirectory() override;

  // Starts the Watch that keeps the mirror (until Stop()).
  void Start();
  void Stop();

  absl::StatusOr<std::optional<AgentInfo>> Get(const std::string& id) override;
  absl::StatusOr<std::vector<AgentInfo>> ListLive(const std::string& capability) override;
  std::vector<std::string> Suggest(const std::string& id, int max) override;

  // True while the mirror follows the registry.
  bool synced() const;
  // Blocks until synced or the timeout passes (tests, start-up).
  bool WaitSynced(absl::Duration timeout) const;
  // The Watch (null before Start), e.g. to wait for an event's sequence.
  const registry_client::WatchSubscription* watch() const { return watch_.get(); }

 private:
  void OnEvent(const claudenet::v1::AgentEvent& event);

  const std::shared_ptr<registry_client::RegistryClient> client_;
  mutable absl::Mutex mu_;
  std::map<std::string, AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, AgentInfo> staging_ ABSL_GUARDED_BY(mu_);  // snapshot in progress
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<registry_client::WatchSubscription> watch_;
};

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_REGISTRY_DIRECTORY_H_
