#include "services/macs-gateway/registry_directory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace cnet::macs {
namespace pb = claudenet::v1;

AgentInfo AgentInfoFrom(const pb::Agent& a) {
  AgentInfo info;
  info.id = a.id();
  info.node = a.node();
  info.remote = a.remote();
  info.capabilities.assign(a.capabilities().begin(), a.capabilities().end());
  info.health = a.health();
  info.human = a.kind() == pb::AGENT_KIND_HUMAN;
  info.spawned_by = a.spawned_by();
  if (a.has_public_key()) {
    info.public_key = a.public_key().key();
    info.key_id = a.public_key().key_id();
  }
  return info;
}

namespace {

bool Live(const AgentInfo& a, const std::string& capability) {
  if (a.health == pb::HEALTH_DEAD) return false;
  return capability.empty() ||
         std::find(a.capabilities.begin(), a.capabilities.end(), capability) !=
             a.capabilities.end();
}

absl::Status Unavailable(const absl::Status& st) {
  if (st.code() == absl::StatusCode::kUnavailable) return st;
  return absl::UnavailableError(
      absl::StrCat("registry: ", std::string(st.message())));
}

}  // namespace

RegistryAgentDirectory::RegistryAgentDirectory(
    std::shared_ptr<registry_client::RegistryClient> client)
    : client_(std::move(client)) {}

RegistryAgentDirectory::~RegistryAgentDirectory() { Stop(); }

void RegistryAgentDirectory::Start() {
  pb::WatchAgentsRequest req;
  req.set_send_snapshot(true);
  watch_ = client_->Watch(req, [this](const pb::AgentEvent& ev) { OnEvent(ev); },
                          /*resync_with_snapshot=*/true);
}

void RegistryAgentDirectory::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  if (watch_) watch_->Stop();
}

void RegistryAgentDirectory::OnEvent(const pb::AgentEvent& ev) {
  absl::MutexLock lock(&mu_);
  const std::string& id = ev.agent().id();
  switch (ev.type()) {
    case pb::AGENT_EVENT_TYPE_SNAPSHOT:
      staging_[id] = AgentInfoFrom(ev.agent());
      return;
    case pb::AGENT_EVENT_TYPE_SNAPSHOT_END:
      agents_ = std::move(staging_);
      staging_.clear();
      synced_ = true;
      return;
    case pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED:
      synced_ = false;
      staging_.clear();
      return;
    case pb::AGENT_EVENT_TYPE_DEREGISTERED:
    case pb::AGENT_EVENT_TYPE_PRUNED:
      agents_.erase(id);
      return;
    case pb::AGENT_EVENT_TYPE_CHECKPOINT:
    case pb::AGENT_EVENT_TYPE_UNSPECIFIED:
      return;
    default:
      if (ev.has_agent() && !id.empty()) agents_[id] = AgentInfoFrom(ev.agent());
  }
}

bool RegistryAgentDirectory::synced() const {
  absl::MutexLock lock(&mu_);
  return synced_;
}

bool RegistryAgentDirectory::WaitSynced(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return synced_ || stopped_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return synced_;
}

absl::StatusOr<std::optional<AgentInfo>> RegistryAgentDirectory::Get(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (synced_) {
      auto it = agents_.find(id);
      if (it != agents_.end()) return std::optional<AgentInfo>(it->second);
    }
  }
  absl::StatusOr<pb::Agent> agent = client_->GetAgent(id);
  if (agent.status().code() == absl::StatusCode::kNotFound ||
      agent.status().code() == absl::StatusCode::kInvalidArgument) {
    return std::optional<AgentInfo>();
  }
  if (!agent.ok()) return Unavailable(agent.status());
  AgentInfo info = AgentInfoFrom(*agent);
  absl::MutexLock lock(&mu_);
  if (synced_) agents_[id] = info;  // the event is on its way; do not ask twice
  return std::optional<AgentInfo>(std::move(info));
}

absl::StatusOr<std::vector<AgentInfo>> RegistryAgentDirectory::ListLive(
    const std::string& capability) {
  std::vector<AgentInfo> out;
  {
    absl::MutexLock lock(&mu_);
    if (synced_) {
      for (const auto& [id, a] : agents_) {
        if (Live(a, capability)) out.push_back(a);
      }
      return out;
    }
  }
  pb::ListAgentsRequest req;
  if (!capability.empty()) req.add_capabilities_all(capability);
  absl::StatusOr<std::vector<pb::Agent>> all = client_->ListAllAgents(req);
  if (!all.ok()) return Unavailable(all.status());
  for (const pb::Agent& a : *all) {
    AgentInfo info = AgentInfoFrom(a);
    if (Live(info, capability)) out.push_back(std::move(info));
  }
  return out;
}

std::vector<std::string> RegistryAgentDirectory::Suggest(const std::string& id, int max) {
  std::vector<std::string> ids;
  bool synced;
  {
    absl::MutexLock lock(&mu_);
    synced = synced_;
    for (const auto& [k, unused] : agents_) ids.push_back(k);
  }
  if (!synced) {
    absl::StatusOr<std::vector<pb::Agent>> all = client_->ListAllAgents({}, 100000);
    if (all.ok()) {
      ids.clear();
      for (const pb::Agent& a : *all) ids.push_back(a.id());
    }
  }
  return ClosestIds(id, ids, max);
}

}  // namespace cnet::macs
