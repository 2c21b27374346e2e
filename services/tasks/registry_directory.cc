#include "services/tasks/registry_directory.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "libs/crypto/crypto.h"
#include "libs/status/grpc_status.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

namespace {
std::chrono::system_clock::time_point After(absl::Duration d) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

// Registry errors as the board expects them: NOT_FOUND stays, anything
// that means "cannot ask now" is UNAVAILABLE.
absl::Status Mapped(const grpc::Status& s, const std::string& what) {
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::NotFoundError(s.error_message());
  }
  if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    return absl::InvalidArgumentError(s.error_message());
  }
  return absl::UnavailableError(
      absl::StrCat("registry: ", what, ": ", s.error_message(), " (code ", s.error_code(), ")"));
}
}  // namespace

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

RegistryDirectory::RegistryDirectory(std::shared_ptr<grpc::Channel> channel,
                                     std::string service_credential, absl::Duration deadline)
    : stub_(pb::RegistryService::NewStub(std::move(channel))),
      credential_(std::move(service_credential)),
      deadline_(deadline) {}

RegistryDirectory::~RegistryDirectory() { Stop(); }

std::unique_ptr<grpc::ClientContext> RegistryDirectory::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(After(deadline_));
  auth::SetBearer(ctx.get(), credential_);
  return ctx;
}

void RegistryDirectory::Start() {
  thread_ = std::thread([this] { WatchLoop(); });
}

void RegistryDirectory::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (watch_ctx_ != nullptr) watch_ctx_->TryCancel();
    stop_cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void RegistryDirectory::SetListener(std::function<void(const AgentChange&)> listener) {
  listener_ = std::move(listener);
}

void RegistryDirectory::Fire(const AgentChange& change) {
  if (listener_) listener_(change);
}

absl::StatusOr<std::vector<AgentInfo>> RegistryDirectory::FindAgents(
    const std::vector<std::string>& capabilities, int limit) {
  pb::FindAgentsRequest req;
  for (const std::string& c : capabilities) req.add_capabilities(c);
  req.set_limit(std::min(std::max(limit, 1), 1000));
  pb::FindAgentsResponse resp;
  auto ctx = Context();
  grpc::Status s = stub_->FindAgents(ctx.get(), req, &resp);
  if (!s.ok()) return Mapped(s, "FindAgents");
  std::vector<AgentInfo> out;
  for (const pb::Agent& a : resp.agents()) out.push_back(ToAgentInfo(a));
  return out;
}

absl::StatusOr<AgentInfo> RegistryDirectory::GetAgent(const std::string& agent_id) {
  if (synced_.load()) {
    absl::MutexLock lock(&mu_);
    auto it = agents_.find(agent_id);
    if (it != agents_.end()) return it->second;
  }
  pb::GetAgentRequest req;
  req.set_agent_id(agent_id);
  pb::GetAgentResponse resp;
  auto ctx = Context();
  grpc::Status s = stub_->GetAgent(ctx.get(), req, &resp);
  if (!s.ok()) return Mapped(s, "GetAgent");
  AgentInfo info = ToAgentInfo(resp.agent());
  if (synced_.load()) {
    absl::MutexLock lock(&mu_);
    agents_[info.id] = info;
  }
  return info;
}

void RegistryDirectory::Apply(const pb::AgentEvent& ev) {
  const std::string& id = ev.agent().id();
  switch (ev.type()) {
    case pb::AGENT_EVENT_TYPE_SNAPSHOT:
    case pb::AGENT_EVENT_TYPE_REGISTERED:
    case pb::AGENT_EVENT_TYPE_UPDATED:
    case pb::AGENT_EVENT_TYPE_STATUS_CHANGED:
    case pb::AGENT_EVENT_TYPE_HEALTH_CHANGED: {
      AgentInfo info = ToAgentInfo(ev.agent());
      {
        absl::MutexLock lock(&mu_);
        agents_[id] = info;
      }
      if (ev.type() == pb::AGENT_EVENT_TYPE_SNAPSHOT) return;
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
    case pb::AGENT_EVENT_TYPE_SNAPSHOT_END:
      synced_.store(true);
      return;
    default:
      return;
  }
}

void RegistryDirectory::WatchLoop() {
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    grpc::ClientContext ctx;
    auth::SetBearer(&ctx, credential_);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      watch_ctx_ = &ctx;
      agents_.clear();
    }
    pb::WatchAgentsRequest req;
    req.set_send_snapshot(true);
    auto stream = stub_->Watch(&ctx, req);
    pb::AgentEvent ev;
    bool got_any = false;
    while (stream->Read(&ev)) {
      got_any = true;
      if (ev.type() == pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED) break;
      Apply(ev);
    }
    synced_.store(false);
    grpc::Status s = stream->Finish();
    absl::MutexLock lock(&mu_);
    watch_ctx_ = nullptr;
    if (stopping_) return;
    if (got_any) backoff = absl::Milliseconds(200);
    LOG_EVERY_N(WARNING, 10) << "tasks: registry Watch ended (" << s.error_code() << " "
                             << s.error_message() << "); reconnecting";
    stop_cv_.WaitWithTimeout(&mu_, backoff);
    backoff = std::min(backoff * 2, absl::Seconds(10));
  }
}

RegistryTokenAuthenticator::RegistryTokenAuthenticator(std::shared_ptr<grpc::Channel> channel,
                                                       std::string service_credential,
                                                       Clock* clock, absl::Duration deadline)
    : stub_(pb::RegistryService::NewStub(std::move(channel))),
      credential_(std::move(service_credential)),
      clock_(clock),
      deadline_(deadline) {}

absl::StatusOr<auth::Principal> RegistryTokenAuthenticator::Authenticate(
    std::string_view credential) {
  if (credential.empty() || credential.size() > 512) {
    return absl::UnauthenticatedError("authorization: malformed credential");
  }
  const std::string key = crypto::Sha256Hex(credential);
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.until > now) return it->second.principal;
    if (cache_.size() > 100000) cache_.clear();
  }
  pb::ValidateTokenRequest req;
  req.set_token(std::string(credential));
  pb::ValidateTokenResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(After(deadline_));
  auth::SetBearer(&ctx, credential_);
  grpc::Status s = stub_->ValidateToken(&ctx, req, &resp);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot check the agent token with the registry: ", s.error_message()));
  }
  if (!resp.valid()) return absl::UnauthenticatedError("authorization: unknown or revoked token");
  auth::Principal p{auth::Kind::kAgent, resp.principal().id(), ""};
  absl::Duration ttl = resp.has_cache_for() ? FromProtoDuration(resp.cache_for())
                                            : absl::Seconds(30);
  absl::MutexLock lock(&mu_);
  cache_[key] = {p, now + std::min(ttl, absl::Minutes(5))};
  return p;
}

}  // namespace cnet::tasks
