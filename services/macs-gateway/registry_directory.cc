#include "services/macs-gateway/registry_directory.h"

#include <glog/logging.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/crypto/crypto.h"
#include "libs/status/grpc_status.h"

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

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() +
         std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

absl::Status Unavailable(const grpc::Status& st, const std::string& what) {
  return absl::UnavailableError(
      absl::StrCat("registry: ", what, " failed: ", st.error_message()));
}

}  // namespace

RegistryAgentDirectory::RegistryAgentDirectory(std::shared_ptr<grpc::Channel> channel,
                                               std::string service_credential,
                                               absl::Duration rpc_deadline)
    : credential_(std::move(service_credential)),
      deadline_(rpc_deadline),
      stub_(pb::RegistryService::NewStub(channel)) {}

RegistryAgentDirectory::~RegistryAgentDirectory() { Stop(); }

void RegistryAgentDirectory::OnChange(
    std::function<void(const std::string&, pb::AgentEventType)> fn) {
  on_change_ = std::move(fn);
}

void RegistryAgentDirectory::Start() {
  thread_ = std::thread([this] { WatchLoop(); });
}

void RegistryAgentDirectory::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_ctx_ != nullptr) watch_ctx_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool RegistryAgentDirectory::synced() const {
  absl::MutexLock lock(&mu_);
  return synced_;
}

bool RegistryAgentDirectory::WaitSynced(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return synced_ || stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return synced_;
}

std::unique_ptr<grpc::ClientContext> RegistryAgentDirectory::Ctx() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(DeadlineIn(deadline_));
  auth::SetBearer(ctx.get(), credential_);
  return ctx;
}

void RegistryAgentDirectory::WatchLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    grpc::ClientContext ctx;
    auth::SetBearer(&ctx, credential_);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      watch_ctx_ = &ctx;
    }
    pb::WatchAgentsRequest req;
    req.set_send_snapshot(true);
    auto reader = stub_->Watch(&ctx, req);
    std::map<std::string, AgentInfo> snapshot;
    pb::AgentEvent ev;
    while (reader->Read(&ev)) {
      const std::string id = ev.agent().id();
      switch (ev.type()) {
        case pb::AGENT_EVENT_TYPE_SNAPSHOT:
          snapshot[id] = AgentInfoFrom(ev.agent());
          break;
        case pb::AGENT_EVENT_TYPE_SNAPSHOT_END: {
          absl::MutexLock lock(&mu_);
          agents_ = std::move(snapshot);
          synced_ = true;
          backoff = absl::Milliseconds(100);
          break;
        }
        case pb::AGENT_EVENT_TYPE_DEREGISTERED:
        case pb::AGENT_EVENT_TYPE_PRUNED: {
          absl::MutexLock lock(&mu_);
          agents_.erase(id);
          break;
        }
        case pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED: {
          absl::MutexLock lock(&mu_);
          synced_ = false;
          break;
        }
        case pb::AGENT_EVENT_TYPE_CHECKPOINT:
        case pb::AGENT_EVENT_TYPE_UNSPECIFIED:
          break;
        default:
          if (ev.has_agent()) {
            absl::MutexLock lock(&mu_);
            agents_[id] = AgentInfoFrom(ev.agent());
          }
      }
      if (on_change_ && !id.empty() && ev.type() != pb::AGENT_EVENT_TYPE_SNAPSHOT) {
        on_change_(id, ev.type());
      }
    }
    grpc::Status st = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      watch_ctx_ = nullptr;
      synced_ = false;
      if (stopping_) return;
      // Wait before reconnecting, waking early on Stop().
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
      if (stopping_) return;
    }
    if (!st.ok()) VLOG(1) << "registry watch ended: " << st.error_message();
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

absl::StatusOr<std::optional<AgentInfo>> RegistryAgentDirectory::Get(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (synced_) {
      auto it = agents_.find(id);
      if (it == agents_.end()) return std::optional<AgentInfo>();
      return std::optional<AgentInfo>(it->second);
    }
  }
  pb::GetAgentRequest req;
  req.set_agent_id(id);
  pb::GetAgentResponse resp;
  grpc::Status st = stub_->GetAgent(Ctx().get(), req, &resp);
  if (st.error_code() == grpc::StatusCode::NOT_FOUND ||
      st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    return std::optional<AgentInfo>();
  }
  if (!st.ok()) return Unavailable(st, "GetAgent");
  return std::optional<AgentInfo>(AgentInfoFrom(resp.agent()));
}

absl::StatusOr<std::vector<AgentInfo>> RegistryAgentDirectory::ListLive(
    const std::string& capability) {
  std::vector<AgentInfo> out;
  {
    absl::MutexLock lock(&mu_);
    if (synced_) {
      for (const auto& [id, a] : agents_) {
        if (a.health == pb::HEALTH_DEAD) continue;
        if (!capability.empty() && std::find(a.capabilities.begin(), a.capabilities.end(),
                                             capability) == a.capabilities.end()) {
          continue;
        }
        out.push_back(a);
      }
      return out;
    }
  }
  pb::ListAgentsRequest req;
  req.set_page_size(1000);
  if (!capability.empty()) req.add_capabilities_all(capability);
  for (;;) {
    pb::ListAgentsResponse resp;
    grpc::Status st = stub_->ListAgents(Ctx().get(), req, &resp);
    if (!st.ok()) return Unavailable(st, "ListAgents");
    for (const pb::Agent& a : resp.agents()) {
      if (a.health() == pb::HEALTH_DEAD) continue;
      out.push_back(AgentInfoFrom(a));
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  return out;
}

std::vector<std::string> RegistryAgentDirectory::Suggest(const std::string& id, int max) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [k, unused] : agents_) ids.push_back(k);
  }
  if (ids.empty()) {
    pb::ListAgentsRequest req;
    req.set_page_size(1000);
    pb::ListAgentsResponse resp;
    if (stub_->ListAgents(Ctx().get(), req, &resp).ok()) {
      for (const pb::Agent& a : resp.agents()) ids.push_back(a.id());
    }
  }
  return ClosestIds(id, ids, max);
}

RegistryTokenAuthenticator::RegistryTokenAuthenticator(std::shared_ptr<grpc::Channel> channel,
                                                       std::string service_credential,
                                                       Clock* clock, absl::Duration rpc_deadline)
    : credential_(std::move(service_credential)),
      clock_(clock),
      deadline_(rpc_deadline),
      stub_(pb::RegistryService::NewStub(channel)) {}

absl::StatusOr<auth::Principal> RegistryTokenAuthenticator::Authenticate(
    std::string_view credential) {
  if (credential.empty() || credential.size() > 512) {
    return absl::UnauthenticatedError("authorization: malformed agent token");
  }
  const std::string key = crypto::Sha256(credential);
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.until > now) return it->second.principal;
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(deadline_));
  auth::SetBearer(&ctx, credential_);
  pb::ValidateTokenRequest req;
  req.set_token(std::string(credential));
  pb::ValidateTokenResponse resp;
  grpc::Status st = stub_->ValidateToken(&ctx, req, &resp);
  if (!st.ok()) return Unavailable(st, "ValidateToken");
  if (!resp.valid()) return absl::UnauthenticatedError("authorization: unknown or revoked agent token");
  auth::Principal p{auth::Kind::kAgent, resp.principal().id(), ""};
  absl::Duration ttl = absl::Seconds(resp.cache_for().seconds());
  if (ttl <= absl::ZeroDuration()) ttl = absl::Seconds(30);
  absl::MutexLock lock(&mu_);
  cache_[key] = Cached{p, now + ttl};
  return p;
}

void RegistryTokenAuthenticator::Invalidate(const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.principal.id == agent_id) {
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace cnet::macs
