#include "tests/fakes/fake_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace cnet::fakes {
namespace pb = claudenet::v1;

bool FakeRegistry::Authorized(grpc::ServerContext* ctx) const {
  auto md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return false;
  return std::string(it->second.data(), it->second.size()) == "Bearer " + service_credential_;
}

void FakeRegistry::Emit(pb::AgentEventType type, const pb::Agent& agent) {
  pb::AgentEvent ev;
  ev.set_sequence(++sequence_);
  ev.set_type(type);
  *ev.mutable_agent() = agent;
  events_.push_back(ev);
}

void FakeRegistry::Put(const pb::Agent& agent, const std::string& token) {
  absl::MutexLock lock(&mu_);
  bool exists = agents_.count(agent.id()) > 0;
  agents_[agent.id()] = agent;
  if (!token.empty()) tokens_[token] = agent.id();
  Emit(exists ? pb::AGENT_EVENT_TYPE_UPDATED : pb::AGENT_EVENT_TYPE_REGISTERED, agent);
}

void FakeRegistry::Remove(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) return;
  pb::Agent last = it->second;
  agents_.erase(it);
  for (auto t = tokens_.begin(); t != tokens_.end();) {
    t = t->second == id ? tokens_.erase(t) : std::next(t);
  }
  Emit(pb::AGENT_EVENT_TYPE_DEREGISTERED, last);
}

void FakeRegistry::DropWatchers() {
  absl::MutexLock lock(&mu_);
  generation_++;
}

void FakeRegistry::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

int FakeRegistry::validate_calls() const {
  absl::MutexLock lock(&mu_);
  return validate_calls_;
}

grpc::Status FakeRegistry::GetAgent(grpc::ServerContext* ctx, const pb::GetAgentRequest* req,
                                    pb::GetAgentResponse* resp) {
  if (!Authorized(ctx)) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "credential");
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(req->agent_id());
  if (it == agents_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("agent \"", req->agent_id(), "\": not found"));
  }
  *resp->mutable_agent() = it->second;
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::ListAgents(grpc::ServerContext* ctx, const pb::ListAgentsRequest* req,
                                      pb::ListAgentsResponse* resp) {
  if (!Authorized(ctx)) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "credential");
  absl::MutexLock lock(&mu_);
  for (const auto& [id, a] : agents_) {
    bool ok = true;
    for (const std::string& c : req->capabilities_all()) {
      ok &= std::find(a.capabilities().begin(), a.capabilities().end(), c) !=
            a.capabilities().end();
    }
    if (ok) *resp->add_agents() = a;
  }
  resp->set_total_size(resp->agents_size());
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::Watch(grpc::ServerContext* ctx, const pb::WatchAgentsRequest* req,
                                 grpc::ServerWriter<pb::AgentEvent>* writer) {
  if (!Authorized(ctx)) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "credential");
  size_t next;
  int64_t generation;
  std::vector<pb::AgentEvent> snapshot;
  {
    absl::MutexLock lock(&mu_);
    next = events_.size();
    generation = generation_;
    if (req->send_snapshot()) {
      for (const auto& [id, a] : agents_) {
        pb::AgentEvent ev;
        ev.set_sequence(sequence_);
        ev.set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT);
        *ev.mutable_agent() = a;
        snapshot.push_back(ev);
      }
      pb::AgentEvent end;
      end.set_sequence(sequence_);
      end.set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT_END);
      snapshot.push_back(end);
    }
  }
  for (const pb::AgentEvent& ev : snapshot) {
    if (!writer->Write(ev)) return grpc::Status::OK;
  }
  for (;;) {
    std::vector<pb::AgentEvent> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return next < events_.size() || shutdown_ || generation_ != generation;
      };
      // Wakes at least every 50 ms to notice a cancelled client.
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(50));
      if (shutdown_ || generation_ != generation) return grpc::Status::OK;
      for (; next < events_.size(); ++next) batch.push_back(events_[next]);
    }
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    for (const pb::AgentEvent& ev : batch) {
      if (!writer->Write(ev)) return grpc::Status::OK;
    }
  }
}

grpc::Status FakeRegistry::ValidateToken(grpc::ServerContext* ctx,
                                         const pb::ValidateTokenRequest* req,
                                         pb::ValidateTokenResponse* resp) {
  if (!Authorized(ctx)) return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "credential");
  absl::MutexLock lock(&mu_);
  validate_calls_++;
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

}  // namespace cnet::fakes
