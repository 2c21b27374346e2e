#include "libs/registry_client/registry_client.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "libs/status/grpc_status.h"

namespace cnet::registry_client {
namespace pb = claudenet::v1;

RegistryClient::RegistryClient(ClientOptions options) : options_(std::move(options)) {
  channel_ = options_.channel ? options_.channel : MakeChannel(options_.address);
  stub_ = pb::RegistryService::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> RegistryClient::NewContext() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  if (!options_.credential.empty()) auth::SetBearer(ctx.get(), options_.credential);
  return ctx;
}

namespace {

template <typename Resp, typename Call>
absl::StatusOr<Resp> Unary(const RegistryClient& client, Call call) {
  Resp resp;
  auto ctx = client.NewContext();
  grpc::Status s = call(ctx.get(), &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

}  // namespace

absl::StatusOr<pb::Agent> RegistryClient::GetAgent(const std::string& agent_id) const {
  pb::GetAgentRequest req;
  req.set_agent_id(agent_id);
  auto resp = Unary<pb::GetAgentResponse>(*this, [&](grpc::ClientContext* ctx, auto* out) {
    return stub_->GetAgent(ctx, req, out);
  });
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_agent());
}

absl::StatusOr<pb::FindAgentsResponse> RegistryClient::FindAgents(
    const pb::FindAgentsRequest& req) const {
  return Unary<pb::FindAgentsResponse>(*this, [&](grpc::ClientContext* ctx, auto* out) {
    return stub_->FindAgents(ctx, req, out);
  });
}

absl::StatusOr<pb::FindAgentsResponse> RegistryClient::FindAgents(
    const std::vector<std::string>& capabilities, int limit) const {
  pb::FindAgentsRequest req;
  for (const std::string& c : capabilities) req.add_capabilities(c);
  req.set_limit(limit);
  return FindAgents(req);
}

absl::StatusOr<pb::ListAgentsResponse> RegistryClient::ListAgents(
    const pb::ListAgentsRequest& req) const {
  return Unary<pb::ListAgentsResponse>(*this, [&](grpc::ClientContext* ctx, auto* out) {
    return stub_->ListAgents(ctx, req, out);
  });
}

absl::StatusOr<std::vector<pb::Agent>> RegistryClient::ListAllAgents(pb::ListAgentsRequest req,
                                                                      size_t max_agents) const {
  std::vector<pb::Agent> agents;
  if (req.page_size() == 0) req.set_page_size(1000);
  for (;;) {
    absl::StatusOr<pb::ListAgentsResponse> page = ListAgents(req);
    if (!page.ok()) return page.status();
    for (pb::Agent& a : *page->mutable_agents()) {
      if (agents.size() == max_agents) return agents;
      agents.push_back(std::move(a));
    }
    if (page->next_page_token().empty()) return agents;
    req.set_page_token(page->next_page_token());
  }
}

absl::StatusOr<pb::ValidateTokenResponse> RegistryClient::ValidateToken(
    const std::string& token) const {
  pb::ValidateTokenRequest req;
  req.set_token(token);
  return Unary<pb::ValidateTokenResponse>(*this, [&](grpc::ClientContext* ctx, auto* out) {
    return stub_->ValidateToken(ctx, req, out);
  });
}

absl::StatusOr<pb::GetNetworkStatusResponse> RegistryClient::GetNetworkStatus(
    const pb::GetNetworkStatusRequest& req) const {
  return Unary<pb::GetNetworkStatusResponse>(*this, [&](grpc::ClientContext* ctx, auto* out) {
    return stub_->GetNetworkStatus(ctx, req, out);
  });
}

std::unique_ptr<WatchSubscription> RegistryClient::Watch(pb::WatchAgentsRequest request,
                                                         EventCallback on_event,
                                                         bool resync_with_snapshot) const {
  return std::unique_ptr<WatchSubscription>(
      new WatchSubscription(this, std::move(request), std::move(on_event), resync_with_snapshot));
}

// ---------------------------------------------------------------------------
// WatchSubscription

// State shared with the backoff timer callback, which may outlive the
// subscription.
struct WatchSubscription::Shared {
  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool timer_fired ABSL_GUARDED_BY(mu) = false;
  grpc::ClientContext* current ABSL_GUARDED_BY(mu) = nullptr;
  int64_t last_sequence ABSL_GUARDED_BY(mu) = 0;
  int connections ABSL_GUARDED_BY(mu) = 0;
};

WatchSubscription::WatchSubscription(const RegistryClient* client,
                                     pb::WatchAgentsRequest request,
                                     RegistryClient::EventCallback on_event,
                                     bool resync_with_snapshot)
    : client_(client),
      base_(std::move(request)),
      on_event_(std::move(on_event)),
      resync_with_snapshot_(resync_with_snapshot),
      shared_(std::make_shared<Shared>()),
      need_snapshot_(base_.send_snapshot()) {
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->last_sequence = base_.send_snapshot() ? 0 : base_.from_sequence();
  }
  thread_ = std::thread([this] { Run(); });
}

WatchSubscription::~WatchSubscription() { Stop(); }

void WatchSubscription::Stop() {
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->stopping = true;
    if (shared_->current != nullptr) shared_->current->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

int64_t WatchSubscription::last_sequence() const {
  absl::MutexLock lock(&shared_->mu);
  return shared_->last_sequence;
}

int WatchSubscription::connections() const {
  absl::MutexLock lock(&shared_->mu);
  return shared_->connections;
}

bool WatchSubscription::WaitForSequence(int64_t sequence, absl::Duration timeout) const {
  absl::MutexLock lock(&shared_->mu);
  auto reached = [this, sequence]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
    return shared_->stopping || shared_->last_sequence >= sequence;
  };
  shared_->mu.AwaitWithTimeout(absl::Condition(&reached), timeout);
  return shared_->last_sequence >= sequence;
}

void WatchSubscription::Run() {
  const ClientOptions& o = client_->options();
  absl::Duration backoff = o.reconnect_min;
  std::mt19937_64 random(std::random_device{}());
  for (;;) {
    {
      absl::MutexLock lock(&shared_->mu);
      if (shared_->stopping) return;
    }
    if (RunOnce()) backoff = o.reconnect_min;
    // Full jitter in [backoff/2, backoff].
    double f = 0.5 + 0.5 * std::uniform_real_distribution<double>(0, 1)(random);
    if (!WaitBackoff(backoff * f)) return;
    backoff = std::min(backoff * 2, o.reconnect_max);
  }
}

bool WatchSubscription::WaitBackoff(absl::Duration delay) {
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->stopping) return false;
    shared_->timer_fired = false;
  }
  std::weak_ptr<Shared> weak = shared_;
  Clock* clock = client_->options().clock;
  Clock::TimerId timer = clock->RunAfter(delay, [weak] {
    if (auto shared = weak.lock()) {
      absl::MutexLock lock(&shared->mu);
      shared->timer_fired = true;
    }
  });
  bool stopping;
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->mu.Await(absl::Condition(
        +[](Shared* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
          return s->stopping || s->timer_fired;
        },
        shared_.get()));
    stopping = shared_->stopping;
  }
  clock->Cancel(timer);
  return !stopping;
}

bool WatchSubscription::RunOnce() {
  pb::WatchAgentsRequest request = base_;
  int64_t last;
  {
    absl::MutexLock lock(&shared_->mu);
    last = shared_->last_sequence;
  }
  if (need_snapshot_) {
    request.set_send_snapshot(true);
    request.set_from_sequence(0);
  } else {
    request.set_send_snapshot(false);
    if (last == 0) {
      // A live watch: learn where "now" is, so that a reconnect before the
      // first event still resumes without a gap.
      absl::StatusOr<pb::GetNetworkStatusResponse> status = client_->GetNetworkStatus();
      if (!status.ok()) return false;
      last = status->current_sequence();
      absl::MutexLock lock(&shared_->mu);
      shared_->last_sequence = last;
    }
    request.set_from_sequence(last);
  }
  grpc::ClientContext ctx;
  if (!client_->options().credential.empty()) {
    auth::SetBearer(&ctx, client_->options().credential);
  }
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->stopping) return false;
    shared_->current = &ctx;
    ++shared_->connections;
  }
  std::unique_ptr<grpc::ClientReader<pb::AgentEvent>> reader =
      client_->stub()->Watch(&ctx, request);
  bool received = false;
  pb::AgentEvent event;
  while (reader->Read(&event)) {
    received = true;
    on_event_(event);
    if (event.type() == pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED) {
      need_snapshot_ = resync_with_snapshot_;
      absl::MutexLock lock(&shared_->mu);
      shared_->last_sequence = 0;
      ctx.TryCancel();
      break;
    }
    if (event.type() == pb::AGENT_EVENT_TYPE_SNAPSHOT) continue;  // complete only at the end
    if (event.type() == pb::AGENT_EVENT_TYPE_SNAPSHOT_END) need_snapshot_ = false;
    absl::MutexLock lock(&shared_->mu);
    shared_->last_sequence = std::max(shared_->last_sequence, event.sequence());
  }
  (void)reader->Finish();
  absl::MutexLock lock(&shared_->mu);
  shared_->current = nullptr;
  return received;
}

}  // namespace cnet::registry_client
