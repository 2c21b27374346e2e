// Who exists: the gateway's view of the registry.
//
// AgentDirectory is the small interface the gateway core needs from the
// registry: does agent X exist (and on which node), which non-DEAD agents
// make up `broadcast` or `cap:<name>`, which registered ids are closest to
// a misspelt one, and an agent's Ed25519 key. Implementations:
//   * InMemoryAgentDirectory (here): tests, and the bench.
//   * RegistryAgentDirectory (registry_directory.h): the registry over gRPC,
//     mirrored in memory by a Watch stream (snapshot + live events) so that
//     lookups are local and invalidated the moment the registry changes.
#ifndef CNET_SERVICES_MACS_GATEWAY_DIRECTORY_H_
#define CNET_SERVICES_MACS_GATEWAY_DIRECTORY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/claudenet/v1/common.pb.h"

namespace cnet::macs {

struct AgentInfo {
  std::string id;
  std::string node;  // empty = this node
  bool remote = false;
  std::vector<std::string> capabilities;
  claudenet::v1::Health health = claudenet::v1::HEALTH_HEALTHY;
  bool human = false;
  std::string spawned_by;
  std::string public_key;  // raw Ed25519 key (32 bytes) or empty
  std::string key_id;
};

class AgentDirectory {
 public:
  virtual ~AgentDirectory() = default;
  // The agent, nullopt when unknown; UNAVAILABLE when the registry cannot
  // be asked right now.
  virtual absl::StatusOr<std::optional<AgentInfo>> Get(const std::string& id) = 0;
  // Every non-DEAD agent having `capability` (every non-DEAD agent when
  // empty), by id.
  virtual absl::StatusOr<std::vector<AgentInfo>> ListLive(const std::string& capability) = 0;
  // Up to `max` registered ids closest to `id`, best first.
  virtual std::vector<std::string> Suggest(const std::string& id, int max) = 0;
};

// Closest candidates by edit distance (case-insensitive), ties by id; only
// candidates within max(2, len/3) edits, or sharing a prefix of 3+ bytes.
std::vector<std::string> ClosestIds(const std::string& id,
                                    const std::vector<std::string>& candidates, int max);

class InMemoryAgentDirectory final : public AgentDirectory {
 public:
  void Put(AgentInfo agent);
  void Remove(const std::string& id);
  void SetUnavailable(bool unavailable);

  absl::StatusOr<std::optional<AgentInfo>> Get(const std::string& id) override;
  absl::StatusOr<std::vector<AgentInfo>> ListLive(const std::string& capability) override;
  std::vector<std::string> Suggest(const std::string& id, int max) override;

 private:
  absl::Mutex mu_;
  std::map<std::string, AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  bool unavailable_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_DIRECTORY_H_
