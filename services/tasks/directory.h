// What the board needs to know about agents, behind a small interface so the
// core does not depend on the registry's client: who is HEALTHY with which
// capabilities and how many tasks it may hold, and a feed of agents that go
// away (DEAD, deregistered, pruned) or become available.
//
// Production: services/tasks/registry_adapters.h (the registry's gRPC API).
// Tests and benchmarks: InMemoryDirectory (in_memory.h).
#ifndef CNET_SERVICES_TASKS_DIRECTORY_H_
#define CNET_SERVICES_TASKS_DIRECTORY_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/claudenet/v1/common.pb.h"

namespace cnet::tasks {

struct AgentInfo {
  std::string id;
  std::vector<std::string> capabilities;  // sorted, unique
  claudenet::v1::Health health = claudenet::v1::HEALTH_HEALTHY;
  claudenet::v1::AgentStatus status = claudenet::v1::AGENT_STATUS_ONLINE;
  // Tasks the scheduler may give it at once; 0 = the board's default.
  int max_concurrent_tasks = 0;
  // Self-reported figures from its latest heartbeat (ranking only).
  int active_tasks = 0;
  double load = 0;

  bool HasAll(const std::vector<std::string>& sorted_caps) const;
  // HEALTHY and ONLINE or BUSY: may be offered work.
  bool Available() const;
};

struct AgentChange {
  enum class Kind {
    kGone,       // DEAD, deregistered or pruned: its leases are requeued
    kAvailable,  // registered, became HEALTHY, or changed: may take work
  };
  Kind kind = Kind::kAvailable;
  std::string agent_id;
  std::string reason;  // one line, e.g. "agent a-1 is DEAD"
};

class AgentDirectory {
 public:
  virtual ~AgentDirectory() = default;

  // HEALTHY agents having ALL `capabilities` (sorted), status ONLINE or BUSY,
  // least loaded first (the registry's FindAgents order), at most `limit`.
  // UNAVAILABLE when the registry cannot be asked.
  virtual absl::StatusOr<std::vector<AgentInfo>> FindAgents(
      const std::vector<std::string>& capabilities, int limit) = 0;

  // One agent, any health. NOT_FOUND when unknown; UNAVAILABLE when the
  // registry cannot be asked.
  virtual absl::StatusOr<AgentInfo> GetAgent(const std::string& agent_id) = 0;

  // Lifecycle feed. Set once, before use; called from the directory's
  // thread, never with a board lock held by the directory.
  virtual void SetListener(std::function<void(const AgentChange&)> listener) = 0;
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_DIRECTORY_H_
