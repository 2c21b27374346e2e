#include "services/tasks/in_memory.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

void InMemoryDirectory::Put(AgentInfo agent) {
  std::sort(agent.capabilities.begin(), agent.capabilities.end());
  agent.capabilities.erase(std::unique(agent.capabilities.begin(), agent.capabilities.end()),
                           agent.capabilities.end());
  AgentChange change{AgentChange::Kind::kAvailable, agent.id, "registered"};
  bool available = agent.Available();
  {
    absl::MutexLock lock(&mu_);
    agents_[agent.id] = std::move(agent);
  }
  if (available) Fire(change);
}

void InMemoryDirectory::SetHealth(const std::string& agent_id, pb::Health health) {
  AgentChange change;
  change.agent_id = agent_id;
  bool fire = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(agent_id);
    if (it == agents_.end()) return;
    it->second.health = health;
    if (health == pb::HEALTH_DEAD) {
      change.kind = AgentChange::Kind::kGone;
      change.reason = absl::StrCat("agent ", agent_id, " is DEAD");
      fire = true;
    } else if (it->second.Available()) {
      change.kind = AgentChange::Kind::kAvailable;
      change.reason = absl::StrCat("agent ", agent_id, " is HEALTHY");
      fire = true;
    }
  }
  if (fire) Fire(change);
}

void InMemoryDirectory::SetStatus(const std::string& agent_id, pb::AgentStatus status) {
  bool available = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(agent_id);
    if (it == agents_.end()) return;
    it->second.status = status;
    available = it->second.Available();
  }
  if (available) Fire({AgentChange::Kind::kAvailable, agent_id, "status changed"});
}

void InMemoryDirectory::Remove(const std::string& agent_id) {
  {
    absl::MutexLock lock(&mu_);
    if (agents_.erase(agent_id) == 0) return;
  }
  Fire({AgentChange::Kind::kGone, agent_id,
        absl::StrCat("agent ", agent_id, " was deregistered")});
}

void InMemoryDirectory::SetDown(bool down) {
  absl::MutexLock lock(&mu_);
  down_ = down;
}

int InMemoryDirectory::find_calls() const {
  absl::MutexLock lock(&mu_);
  return find_calls_;
}

absl::StatusOr<std::vector<AgentInfo>> InMemoryDirectory::FindAgents(
    const std::vector<std::string>& capabilities, int limit) {
  absl::MutexLock lock(&mu_);
  ++find_calls_;
  if (down_) return absl::UnavailableError("registry unreachable (in-memory directory down)");
  std::vector<const AgentInfo*> found;
  for (const auto& [id, agent] : agents_) {
    if (agent.Available() && agent.HasAll(capabilities)) found.push_back(&agent);
  }
  auto utilisation = [](const AgentInfo* a) {
    int limit = a->max_concurrent_tasks > 0 ? a->max_concurrent_tasks : 1;
    return static_cast<double>(a->active_tasks) / limit;
  };
  std::stable_sort(found.begin(), found.end(), [&](const AgentInfo* a, const AgentInfo* b) {
    return std::make_tuple(utilisation(a), a->load, a->id) <
           std::make_tuple(utilisation(b), b->load, b->id);
  });
  std::vector<AgentInfo> out;
  for (const AgentInfo* a : found) {
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
    out.push_back(*a);
  }
  return out;
}

absl::StatusOr<AgentInfo> InMemoryDirectory::GetAgent(const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  if (down_) return absl::UnavailableError("registry unreachable (in-memory directory down)");
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) {
    return absl::NotFoundError(absl::StrCat("agent \"", agent_id, "\" is not registered"));
  }
  return it->second;
}

void InMemoryDirectory::SetListener(std::function<void(const AgentChange&)> listener) {
  listener_ = std::move(listener);
}

void InMemoryDirectory::Fire(const AgentChange& change) {
  if (listener_) listener_(change);
}

absl::Status RecordingNotifier::Send(const Notice& notice) {
  absl::MutexLock lock(&mu_);
  if (down_) return absl::UnavailableError("gateway unreachable (recording notifier down)");
  sent_.push_back(notice);
  return absl::OkStatus();
}

void RecordingNotifier::SetDown(bool down) {
  absl::MutexLock lock(&mu_);
  down_ = down;
}

std::vector<Notice> RecordingNotifier::sent() const {
  absl::MutexLock lock(&mu_);
  return sent_;
}

int RecordingNotifier::Count(const std::string& recipient, const std::string& kind) const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(std::count_if(sent_.begin(), sent_.end(), [&](const Notice& n) {
    return n.recipient == recipient && n.kind == kind;
  }));
}

}  // namespace cnet::tasks
