// In-memory AgentDirectory and Notifier for tests, benchmarks and local
// experiments: a directory whose agents are set by the caller (health and
// status changes fire the listener like the registry's Watch would), and a
// notifier that records notices and can be switched "down".
#ifndef CNET_SERVICES_TASKS_IN_MEMORY_H_
#define CNET_SERVICES_TASKS_IN_MEMORY_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/tasks/directory.h"
#include "services/tasks/notifier.h"

namespace cnet::tasks {

class InMemoryDirectory final : public AgentDirectory {
 public:
  // Adds or replaces an agent (capabilities are sorted); fires kAvailable
  // when it may take work.
  void Put(AgentInfo agent);
  // Changes health; DEAD fires kGone, HEALTHY fires kAvailable.
  void SetHealth(const std::string& agent_id, claudenet::v1::Health health);
  void SetStatus(const std::string& agent_id, claudenet::v1::AgentStatus status);
  // Removes the agent (deregistered) and fires kGone.
  void Remove(const std::string& agent_id);
  // While down, every call answers UNAVAILABLE.
  void SetDown(bool down);
  int find_calls() const;

  absl::StatusOr<std::vector<AgentInfo>> FindAgents(const std::vector<std::string>& capabilities,
                                                    int limit) override;
  absl::StatusOr<AgentInfo> GetAgent(const std::string& agent_id) override;
  void SetListener(std::function<void(const AgentChange&)> listener) override;

 private:
  void Fire(const AgentChange& change);

  mutable absl::Mutex mu_;
  std::map<std::string, AgentInfo> agents_ ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  int find_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(const AgentChange&)> listener_;
};

class RecordingNotifier final : public Notifier {
 public:
  absl::Status Send(const Notice& notice) override;
  // While down, Send fails with UNAVAILABLE and records nothing.
  void SetDown(bool down);
  std::vector<Notice> sent() const;
  // Notices of `kind` sent to `recipient`.
  int Count(const std::string& recipient, const std::string& kind) const;

 private:
  mutable absl::Mutex mu_;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Notice> sent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_IN_MEMORY_H_
