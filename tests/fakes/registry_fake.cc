#include "tests/fakes/registry_fake.h"

#include <algorithm>
#include <deque>

namespace cnet::fakes {

namespace pb = ::claudenet::v1;

// One Watch stream: queued events written one at a time.
class RegistryFake::Watcher final : public grpc::ServerWriteReactor<pb::AgentEvent> {
 public:
  Watcher(RegistryFake* owner, std::vector<pb::AgentEvent> initial) : owner_(owner) {
    absl::MutexLock lock(&mu_);
    for (auto& e : initial) queue_.push_back(std::move(e));
    PumpLocked();
  }
  void Push(const pb::AgentEvent& ev) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(ev);
    PumpLocked();
  }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    PumpLocked();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&owner_->mu_);
      owner_->watchers_.erase(this);
    }
    delete this;
  }

 private:
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }
  void FinishLocked(const grpc::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }
  RegistryFake* owner_;
  absl::Mutex mu_;
  std::deque<pb::AgentEvent> queue_ ABSL_GUARDED_BY(mu_);
  pb::AgentEvent current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

RegistryFake::RegistryFake() = default;
RegistryFake::~RegistryFake() = default;

void RegistryFake::PutAgent(const pb::Agent& agent, const std::string& token) {
  pb::Agent a = agent;
  if (a.health() == pb::HEALTH_UNSPECIFIED) a.set_health(pb::HEALTH_HEALTHY);
  if (a.status() == pb::AGENT_STATUS_UNSPECIFIED) a.set_status(pb::AGENT_STATUS_ONLINE);
  pb::AgentEvent ev;
  {
    absl::MutexLock lock(&mu_);
    agents_[a.id()] = a;
    if (!token.empty()) tokens_[token] = a.id();
    ev.set_sequence(++sequence_);
  }
  ev.set_type(pb::AGENT_EVENT_TYPE_REGISTERED);
  *ev.mutable_agent() = a;
  Publish(ev);
}

void RegistryFake::SetHealth(const std::string& agent_id, pb::Health health) {
  pb::AgentEvent ev;
  {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(agent_id);
    if (it == agents_.end()) return;
    ev.set_previous_health(it->second.health());
    it->second.set_health(health);
    *ev.mutable_agent() = it->second;
    ev.set_sequence(++sequence_);
  }
  ev.set_type(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  Publish(ev);
}

int RegistryFake::find_calls() const {
  absl::MutexLock lock(&mu_);
  return find_calls_;
}

void RegistryFake::Publish(const pb::AgentEvent& ev) {
  absl::MutexLock lock(&mu_);
  log_.push_back(ev);
  for (Watcher* w : watchers_) w->Push(ev);
}

grpc::Status RegistryFake::GetNetworkStatus(grpc::ServerContext*,
                                            const pb::GetNetworkStatusRequest*,
                                            pb::GetNetworkStatusResponse* resp) {
  absl::MutexLock lock(&mu_);
  resp->set_current_sequence(sequence_);
  return grpc::Status::OK;
}

grpc::Status RegistryFake::ValidateToken(grpc::ServerContext*,
                                         const pb::ValidateTokenRequest* req,
                                         pb::ValidateTokenResponse* resp) {
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(req->token());
  if (it == tokens_.end()) {
    resp->set_valid(false);
    resp->set_invalid_reason(pb::TOKEN_INVALID_REASON_UNKNOWN);
    return grpc::Status::OK;
  }
  resp->set_valid(true);
  resp->mutable_principal()->set_kind(pb::PRINCIPAL_KIND_AGENT);
  resp->mutable_principal()->set_id(it->second);
  resp->mutable_cache_for()->set_seconds(30);
  return grpc::Status::OK;
}

grpc::Status RegistryFake::GetAgent(grpc::ServerContext*, const pb::GetAgentRequest* req,
                                    pb::GetAgentResponse* resp) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(req->agent_id());
  if (it == agents_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such agent");
  *resp->mutable_agent() = it->second;
  return grpc::Status::OK;
}

grpc::Status RegistryFake::FindAgents(grpc::ServerContext*, const pb::FindAgentsRequest* req,
                                      pb::FindAgentsResponse* resp) {
  absl::MutexLock lock(&mu_);
  ++find_calls_;
  std::vector<const pb::Agent*> found;
  for (const auto& [id, a] : agents_) {
    if (a.health() != pb::HEALTH_HEALTHY) continue;
    if (a.status() != pb::AGENT_STATUS_ONLINE && a.status() != pb::AGENT_STATUS_BUSY) continue;
    bool all = std::all_of(req->capabilities().begin(), req->capabilities().end(),
                           [&](const std::string& c) {
                             return std::find(a.capabilities().begin(), a.capabilities().end(),
                                              c) != a.capabilities().end();
                           });
    if (all) found.push_back(&a);
  }
  resp->set_total_matching(static_cast<int64_t>(found.size()));
  int limit = req->limit() == 0 ? 10 : req->limit();
  for (const pb::Agent* a : found) {
    if (resp->agents_size() >= limit) break;
    *resp->add_agents() = *a;
  }
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<pb::AgentEvent>* RegistryFake::Watch(grpc::CallbackServerContext*,
                                                              const pb::WatchAgentsRequest* req) {
  absl::MutexLock lock(&mu_);
  std::vector<pb::AgentEvent> initial;
  if (req->send_snapshot()) {
    for (const auto& [id, a] : agents_) {
      pb::AgentEvent ev;
      ev.set_sequence(sequence_);
      ev.set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT);
      *ev.mutable_agent() = a;
      initial.push_back(std::move(ev));
    }
    pb::AgentEvent end;
    end.set_sequence(sequence_);
    end.set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT_END);
    initial.push_back(std::move(end));
  } else if (req->from_sequence() > 0) {
    for (const pb::AgentEvent& ev : log_) {
      if (ev.sequence() > req->from_sequence()) initial.push_back(ev);
    }
  }
  auto* w = new Watcher(this, std::move(initial));
  watchers_.insert(w);
  return w;
}

}  // namespace cnet::fakes
