#include "services/tasks/registry_directory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

AgentInfo ToAgentInfo(const pb::Agent& agent) {
  AgentInfo a;
  a.id = agent.id();
  a.capabilities.assign(agent.capabilities().begin(), agent.capabilities().end());
  std::sort(a.capabilities.begin(), a.capabilities.end());
  a.capabilities.erase(std::unique(a.capabilities.begin(), a.capabilities.end()),
                       a.capabilities.end());
  a.health = agent.health();
  a.status = agent.status();
  a.max_concurrent_tasks = agent.max_concurrent_tasks();
  a.active_tasks = agent.metrics().active_tasks();
  a.load = agent.metrics().load();
  return a;
}

RegistryDirectory::RegistryDirectory(std::shared_ptr<registry_client::RegistryClient> client)
    : client_(std::move(client)) {}

RegistryDirectory::~RegistryDirectory() { Stop(); }

void RegistryDirectory::Start() {
  pb::WatchAgentsRequest req;
  req.set_send_snapshot(true);
  watch_ = client_->Watch(req, [this](const pb::AgentEvent& ev) { Apply(ev); },
                          /*resync_with_snapshot=*/true);
}

void RegistryDirectory::Stop() {
  if (watch_) watch_->Stop();
}

void RegistryDirectory::SetListener(std::function<void(const AgentChange&)> listener) {
  listener_ = std::move(listener);
}

void RegistryDirectory::Fire(const AgentChange& change) {
  if (listener_) listener_(change);
}

absl::StatusOr<std::vector<AgentInfo>> RegistryDirectory::FindAgents(
    const std::vector<std::string>& capabilities, int limit) {
  absl::StatusOr<pb::FindAgentsResponse> found =
      client_->FindAgents(capabilities, std::min(std::max(limit, 1), 1000));
  if (!found.ok()) {
    if (absl::IsInvalidArgument(found.status())) return found.status();
    return absl::UnavailableError(
        absl::StrCat("registry: FindAgents: ", found.status().message()));
  }
  std::vector<AgentInfo> out;
  for (const pb::Agent& a : found->agents()) out.push_back(ToAgentInfo(a));
  return out;
}

absl::StatusOr<AgentInfo> RegistryDirectory::GetAgent(const std::string& agent_id) {
  if (synced_.load()) {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(agent_id);
    if (it != agents_.end()) return it->second;
  }
  absl::StatusOr<pb::Agent> agent = client_->GetAgent(agent_id);
  if (!agent.ok()) {
    if (absl::IsNotFound(agent.status()) || absl::IsInvalidArgument(agent.status())) {
      return agent.status();
    }
    return absl::UnavailableError(
        absl::StrCat("registry: GetAgent: ", agent.status().message()));
  }
  return ToAgentInfo(*agent);
}

void RegistryDirectory::Apply(const pb::AgentEvent& ev) {
  const std::string& id = ev.agent().id();
  switch (ev.type()) {
    case pb::AGENT_EVENT_TYPE_SNAPSHOT: {
      absl::MutexLock lock(&mu_);
      incoming_[id] = ToAgentInfo(ev.agent());
      return;
    }
    case pb::AGENT_EVENT_TYPE_SNAPSHOT_END: {
      absl::MutexLock lock(&mu_);
      agents_.swap(incoming_);
      incoming_.clear();
      synced_.store(true);
      return;
    }
    case pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED: {
      // A new snapshot follows; until then ask the registry directly.
      synced_.store(false);
      absl::MutexLock lock(&mu_);
      incoming_.clear();
      return;
    }
    case pb::AGENT_EVENT_TYPE_REGISTERED:
    case pb::AGENT_EVENT_TYPE_UPDATED:
    case pb::AGENT_EVENT_TYPE_STATUS_CHANGED:
    case pb::AGENT_EVENT_TYPE_HEALTH_CHANGED: {
      AgentInfo info = ToAgentInfo(ev.agent());
      {
        absl::MutexLock lock(&mu_);
        agents_[id] = info;
      }
      if (info.health == pb::HEALTH_DEAD) {
        Fire({AgentChange::Kind::kGone, id,
              ev.reason().empty() ? absl::StrCat("holder ", id, " is DEAD")
                                  : absl::StrCat("holder ", id, " is DEAD (", ev.reason(), ")")});
      } else if (info.Available()) {
        Fire({AgentChange::Kind::kAvailable, id, ev.reason()});
      }
      return;
    }
    case pb::AGENT_EVENT_TYPE_DEREGISTERED:
    case pb::AGENT_EVENT_TYPE_PRUNED: {
      {
        absl::MutexLock lock(&mu_);
        agents_.erase(id);
      }
      Fire({AgentChange::Kind::kGone, id,
            absl::StrCat("holder ", id, " was ",
                         ev.type() == pb::AGENT_EVENT_TYPE_PRUNED ? "pruned" : "deregistered")});
      return;
    }
    default:
      return;
  }
}

}  // namespace cnet::tasks
