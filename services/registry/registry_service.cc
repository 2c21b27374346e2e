#include "services/registry/registry_service.h"

#include <google/protobuf/util/time_util.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/status/grpc_status.h"
#include "libs/stream/hub_writer.h"
#include "services/registry/validation.h"

namespace cnet::registry {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

Actor ToActor(const auth::Principal& p) {
  switch (p.kind) {
    case auth::Kind::kAgent:
      return Actor{Actor::Kind::kAgent, p.id, ""};
    case auth::Kind::kService:
      return Actor{Actor::Kind::kService, p.id, p.on_behalf_of};
    case auth::Kind::kAdmin:
      return Actor{Actor::Kind::kAdmin, p.id, ""};
    case auth::Kind::kAnonymous:
      break;
  }
  return Actor();
}

absl::StatusOr<auth::Principal> RegistryTokenAuthenticator::Authenticate(
    std::string_view credential) {
  absl::StatusOr<std::string> id = registry_->AuthenticateToken(credential);
  if (!id.ok()) return id.status();
  return auth::Principal{auth::Kind::kAgent, *id, ""};
}

namespace {

// The field a validation message starts with: `capabilities[3] "x": ...`,
// `metadata["a b"]: ...` or `page_size: ...`.
std::string FieldOf(const std::string& message) {
  size_t colon = message.find(": ");
  if (colon == std::string::npos || colon == 0) return "";
  std::string field = message.substr(0, colon);
  if (!field.empty() && (field.back() == '"' || absl::EndsWith(field, "\"..."))) {
    size_t value = field.rfind(" \"");
    if (value == std::string::npos) return "";
    field = field.substr(0, value);
  }
  return field.find(' ') == std::string::npos || field.find('[') != std::string::npos ? field
                                                                                     : "";
}

// Maps a core status to the reply, adding the machine-readable trailers.
grpc::Status Fail(grpc::CallbackServerContext* ctx, const absl::Status& s,
                  const std::string& agent_id = "") {
  pb::ErrorDetail detail;
  std::string message(s.message());
  absl::optional<absl::Cord> reason = s.GetPayload(kReasonPayload);
  detail.set_reason(reason ? std::string(*reason) : absl::StatusCodeToString(s.code()));
  if (!agent_id.empty()) {
    detail.set_resource_type("agent");
    detail.set_resource_id(agent_id);
  }
  if (s.code() == absl::StatusCode::kInvalidArgument) {
    std::string field = FieldOf(message);
    if (!field.empty()) {
      pb::FieldViolation* v = detail.add_field_violations();
      v->set_field(field);
      v->set_description(message);
    }
  }
  absl::optional<absl::Cord> retry = s.GetPayload(kRetryAfterPayload);
  int64_t retry_ms = 0;
  if (s.code() == absl::StatusCode::kResourceExhausted) {
    if (!retry || !absl::SimpleAtoi(std::string(*retry), &retry_ms)) retry_ms = 1000;
    *detail.mutable_retry_delay() = TimeUtil::MillisecondsToDuration(retry_ms);
    ctx->AddTrailingMetadata("claudenet-retry-after-ms", absl::StrCat(retry_ms));
  }
  ctx->AddTrailingMetadata("claudenet-error-bin", detail.SerializeAsString());
  return ToGrpcStatus(s);
}

template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(fn());
  return reactor;
}

// A caller with a credential (any kind).
absl::StatusOr<Actor> Authenticated(const grpc::ServerContextBase* ctx) {
  absl::StatusOr<auth::Principal> p = auth::RequireAuthenticated(ctx);
  if (!p.ok()) return p.status();
  return ToActor(*p);
}

// The caller as presented: anonymous is allowed (the core decides), an
// invalid credential is not.
absl::StatusOr<Actor> AnyCaller(const grpc::ServerContextBase* ctx) {
  absl::StatusOr<auth::Principal> p = auth::Caller(ctx);
  if (!p.ok()) return p.status();
  return ToActor(*p);
}

// One stream's Watch state, touched only by the writer's convert callback
// (which HubWriter runs under its own lock).
struct WatchState {
  WatchFilter filter;
  int64_t covered = 0;         // sequence the initial batch covered
  int64_t last_sequence = 0;   // highest sequence written
  bool dead = false;           // resync was sent: drop everything
  std::shared_ptr<void> ticket;
};

// Writes one RESYNC_REQUIRED event and ends the stream with OK.
class ResyncWriter final : public grpc::ServerWriteReactor<pb::AgentEvent> {
 public:
  explicit ResyncWriter(int64_t sequence) {
    event_.set_type(pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED);
    event_.set_sequence(sequence);
    event_.set_reason("from_sequence is no longer retained; reconnect with send_snapshot");
    *event_.mutable_time() = TimeUtil::GetCurrentTime();
    StartWriteAndFinish(&event_, grpc::WriteOptions(), grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  pb::AgentEvent event_;
};

// HeartbeatStream: read a heartbeat, answer it, read the next. All requests
// must name the token's agent; offline_on_close of the first request sets
// OFFLINE when the client closes cleanly.
class HeartbeatReactor final
    : public grpc::ServerBidiReactor<pb::HeartbeatRequest, pb::HeartbeatResponse> {
 public:
  HeartbeatReactor(Registry* registry, grpc::CallbackServerContext* ctx)
      : registry_(registry), ctx_(ctx) {
    absl::StatusOr<auth::Principal> p = auth::RequireAuthenticated(ctx);
    if (!p.ok()) {
      Finish(Fail(ctx, p.status()));
      return;
    }
    actor_ = ToActor(*p);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side (or went away).
      if (offline_on_close_ && !ctx_->IsCancelled()) {
        pb::HeartbeatRequest offline;
        offline.set_agent_id(agent_id_);
        offline.set_status(pb::AGENT_STATUS_OFFLINE);
        (void)registry_->Heartbeat(actor_, offline);
      }
      Finish(grpc::Status::OK);
      return;
    }
    if (first_) {
      first_ = false;
      offline_on_close_ = request_.offline_on_close();
      agent_id_ = request_.agent_id().empty() ? actor_.id : request_.agent_id();
    } else if (!request_.agent_id().empty() && request_.agent_id() != agent_id_) {
      Finish(Fail(ctx_, absl::PermissionDeniedError(absl::StrCat(
                            "agent_id ", Quote(request_.agent_id()),
                            ": this stream heartbeats for agent ", Quote(agent_id_)))));
      return;
    }
    if (request_.agent_id().empty()) request_.set_agent_id(agent_id_);
    absl::StatusOr<pb::HeartbeatResponse> response = registry_->Heartbeat(actor_, request_);
    if (!response.ok()) {
      Finish(Fail(ctx_, response.status(), agent_id_));
      return;
    }
    response_ = std::move(*response);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed"));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  Registry* registry_;
  grpc::CallbackServerContext* ctx_;
  Actor actor_;
  bool first_ = true;
  bool offline_on_close_ = false;
  std::string agent_id_;
  pb::HeartbeatRequest request_;
  pb::HeartbeatResponse response_;
};

}  // namespace

grpc::ServerUnaryReactor* RegistryServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                        const pb::RegisterRequest* req,
                                                        pb::RegisterResponse* resp) {
  return Unary(ctx, [&]() {
    absl::StatusOr<Actor> actor = AnyCaller(ctx);
    if (!actor.ok()) return Fail(ctx, actor.status());
    absl::StatusOr<Registry::Registration> r = registry_->Register(*actor, *req);
    if (!r.ok()) return Fail(ctx, r.status(), req->agent_id());
    *resp->mutable_agent() = std::move(r->agent);
    resp->set_token(std::move(r->token));
    resp->set_created(r->created);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::UpdateAgent(grpc::CallbackServerContext* ctx,
                                                           const pb::UpdateAgentRequest* req,
                                                           pb::UpdateAgentResponse* resp) {
  return Unary(ctx, [&]() {
    absl::StatusOr<Actor> actor = AnyCaller(ctx);
    if (!actor.ok()) return Fail(ctx, actor.status());
    absl::StatusOr<pb::Agent> agent = registry_->UpdateAgent(*actor, *req);
    if (!agent.ok()) return Fail(ctx, agent.status(), req->agent().id());
    *resp->mutable_agent() = std::move(*agent);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::Deregister(grpc::CallbackServerContext* ctx,
                                                          const pb::DeregisterRequest* req,
                                                          pb::DeregisterResponse* resp) {
  return Unary(ctx, [&]() {
    absl::StatusOr<Actor> actor = AnyCaller(ctx);
    if (!actor.ok()) return Fail(ctx, actor.status());
    absl::StatusOr<pb::Agent> agent =
        registry_->Deregister(*actor, req->agent_id(), req->reason());
    if (!agent.ok()) return Fail(ctx, agent.status(), req->agent_id());
    *resp->mutable_agent() = std::move(*agent);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::RotateToken(grpc::CallbackServerContext* ctx,
                                                           const pb::RotateTokenRequest* req,
                                                           pb::RotateTokenResponse* resp) {
  return Unary(ctx, [&]() {
    absl::StatusOr<Actor> actor = AnyCaller(ctx);
    if (!actor.ok()) return Fail(ctx, actor.status());
    absl::StatusOr<Registry::Rotation> r = registry_->RotateToken(*actor, req->agent_id());
    if (!r.ok()) return Fail(ctx, r.status(), req->agent_id());
    resp->set_token(r->token);
    *resp->mutable_rotated_at() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(r->rotated_at));
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                         const pb::HeartbeatRequest* req,
                                                         pb::HeartbeatResponse* resp) {
  return Unary(ctx, [&]() {
    absl::StatusOr<Actor> actor = AnyCaller(ctx);
    if (!actor.ok()) return Fail(ctx, actor.status());
    absl::StatusOr<pb::HeartbeatResponse> r = registry_->Heartbeat(*actor, *req);
    if (!r.ok()) return Fail(ctx, r.status(), req->agent_id());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::ServerBidiReactor<pb::HeartbeatRequest, pb::HeartbeatResponse>*
RegistryServiceImpl::HeartbeatStream(grpc::CallbackServerContext* ctx) {
  return new HeartbeatReactor(registry_, ctx);
}

grpc::ServerUnaryReactor* RegistryServiceImpl::GetAgent(grpc::CallbackServerContext* ctx,
                                                        const pb::GetAgentRequest* req,
                                                        pb::GetAgentResponse* resp) {
  return Unary(ctx, [&]() {
    if (auto a = Authenticated(ctx); !a.ok()) return Fail(ctx, a.status());
    absl::StatusOr<pb::Agent> agent = registry_->GetAgent(req->agent_id());
    if (!agent.ok()) return Fail(ctx, agent.status(), req->agent_id());
    *resp->mutable_agent() = std::move(*agent);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::ListAgents(grpc::CallbackServerContext* ctx,
                                                          const pb::ListAgentsRequest* req,
                                                          pb::ListAgentsResponse* resp) {
  return Unary(ctx, [&]() {
    if (auto a = Authenticated(ctx); !a.ok()) return Fail(ctx, a.status());
    absl::StatusOr<pb::ListAgentsResponse> r = registry_->ListAgents(*req);
    if (!r.ok()) return Fail(ctx, r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::FindAgents(grpc::CallbackServerContext* ctx,
                                                          const pb::FindAgentsRequest* req,
                                                          pb::FindAgentsResponse* resp) {
  return Unary(ctx, [&]() {
    if (auto a = Authenticated(ctx); !a.ok()) return Fail(ctx, a.status());
    absl::StatusOr<pb::FindAgentsResponse> r = registry_->FindAgents(*req);
    if (!r.ok()) return Fail(ctx, r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

std::shared_ptr<void> RegistryServiceImpl::AcquireWatcher(const std::string& caller) {
  absl::MutexLock lock(&watchers_mu_);
  int& open = watchers_[caller];
  if (open >= registry_->options().max_watchers_per_caller) return nullptr;
  ++open;
  // Released when the stream's writer (which holds it) is destroyed.
  struct Ticket {
    RegistryServiceImpl* impl;
    std::string caller;
    ~Ticket() {
      absl::MutexLock lock(&impl->watchers_mu_);
      if (--impl->watchers_[caller] <= 0) impl->watchers_.erase(caller);
    }
  };
  return std::shared_ptr<Ticket>(new Ticket{this, caller});
}

grpc::ServerWriteReactor<pb::AgentEvent>* RegistryServiceImpl::Watch(
    grpc::CallbackServerContext* ctx, const pb::WatchAgentsRequest* req) {
  using Writer = HubWriter<EventPtr, pb::AgentEvent>;
  absl::StatusOr<Actor> actor = Authenticated(ctx);
  if (!actor.ok()) return FailedWriter<pb::AgentEvent>(Fail(ctx, actor.status()));
  absl::StatusOr<WatchFilter> filter = WatchFilter::Create(*req);
  if (!filter.ok()) return FailedWriter<pb::AgentEvent>(Fail(ctx, filter.status()));
  // Resume checks first: the current sequence only grows and the retained
  // window only moves forward, so these answers stay true.
  if (!req->send_snapshot() && req->from_sequence() > 0) {
    absl::StatusOr<Registry::WatchStart> probe =
        registry_->StartWatch(*req, *filter);
    if (!probe.ok()) return FailedWriter<pb::AgentEvent>(Fail(ctx, probe.status()));
    if (probe->resync_required) return new ResyncWriter(probe->covered_sequence);
  }
  std::string caller_key = absl::StrCat(static_cast<int>(actor->kind), ":", actor->id);
  std::shared_ptr<void> ticket = AcquireWatcher(caller_key);
  if (!ticket) {
    absl::Status s = absl::ResourceExhaustedError(absl::StrCat(
        "too many Watch streams for this credential (registry.max_watchers_per_caller = ",
        registry_->options().max_watchers_per_caller, "); close one or retry after 5s"));
    s.SetPayload(kRetryAfterPayload, absl::Cord("5000"));
    return FailedWriter<pb::AgentEvent>(Fail(ctx, s));
  }
  auto state = std::make_shared<WatchState>();
  state->filter = std::move(*filter);
  state->ticket = std::move(ticket);
  Writer::Options options;
  options.queue_capacity = registry_->options().watch_buffer;
  options.overflow_status = grpc::Status::OK;
  options.convert = [state](const EventPtr& ev, pb::AgentEvent* out) {
    if (state->dead || ev->sequence() < state->covered) return false;
    if (ev->type() == pb::AGENT_EVENT_TYPE_CHECKPOINT) {
      // Only useful to a filtered stream that has not seen that far.
      if (!state->filter.filtered() || ev->sequence() <= state->last_sequence) return false;
    } else if (ev->sequence() == state->covered || !state->filter.Matches(*ev)) {
      return false;
    }
    *out = *ev;
    state->last_sequence = ev->sequence();
    return true;
  };
  options.on_overflow = [state](pb::AgentEvent* out) {
    out->set_type(pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED);
    out->set_sequence(state->last_sequence);
    out->set_reason("watcher fell too far behind; reconnect with send_snapshot");
    *out->mutable_time() = TimeUtil::GetCurrentTime();
    return true;
  };
  Registry* registry = registry_;
  pb::WatchAgentsRequest request = *req;
  return Writer::Start(registry_->hub(), std::move(options), [registry, request, state, ctx] {
    std::vector<pb::AgentEvent> initial;
    absl::StatusOr<Registry::WatchStart> start = registry->StartWatch(request, state->filter);
    if (!start.ok() || start->resync_required) {
      // The retained window moved between the probe and now (only with a
      // tiny network.event_retention): tell the client and drop the rest.
      pb::AgentEvent resync;
      resync.set_type(pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED);
      resync.set_sequence(request.from_sequence());
      initial.push_back(std::move(resync));
      state->dead = true;
      ctx->TryCancel();
      return initial;
    }
    state->covered = start->covered_sequence;
    state->last_sequence = start->covered_sequence;
    initial.reserve(start->initial.size());
    for (const EventPtr& ev : start->initial) initial.push_back(*ev);
    return initial;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::ValidateToken(grpc::CallbackServerContext* ctx,
                                                             const pb::ValidateTokenRequest* req,
                                                             pb::ValidateTokenResponse* resp) {
  return Unary(ctx, [&]() {
    absl::StatusOr<Actor> actor = Authenticated(ctx);
    if (!actor.ok()) return Fail(ctx, actor.status());
    if (actor->kind != Actor::Kind::kService && actor->kind != Actor::Kind::kAdmin) {
      return Fail(ctx, absl::PermissionDeniedError(
                           "ValidateToken needs the service or admin credential"));
    }
    absl::StatusOr<pb::ValidateTokenResponse> r = registry_->ValidateToken(req->token());
    if (!r.ok()) return Fail(ctx, r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::GetNetworkStatus(
    grpc::CallbackServerContext* ctx, const pb::GetNetworkStatusRequest* req,
    pb::GetNetworkStatusResponse* resp) {
  return Unary(ctx, [&]() {
    if (auto a = Authenticated(ctx); !a.ok()) return Fail(ctx, a.status());
    absl::StatusOr<pb::GetNetworkStatusResponse> r = registry_->GetNetworkStatus(*req);
    if (!r.ok()) return Fail(ctx, r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::GetAgentCard(grpc::CallbackServerContext* ctx,
                                                            const pb::GetAgentCardRequest* req,
                                                            pb::GetAgentCardResponse* resp) {
  return Unary(ctx, [&]() {
    if (auto a = Authenticated(ctx); !a.ok()) return Fail(ctx, a.status());
    absl::StatusOr<pb::GetAgentCardResponse> r = registry_->GetAgentCard(req->agent_id());
    if (!r.ok()) return Fail(ctx, r.status(), req->agent_id());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::ListAgentCards(
    grpc::CallbackServerContext* ctx, const pb::ListAgentCardsRequest* req,
    pb::ListAgentCardsResponse* resp) {
  return Unary(ctx, [&]() {
    if (auto a = Authenticated(ctx); !a.ok()) return Fail(ctx, a.status());
    absl::StatusOr<pb::ListAgentCardsResponse> r = registry_->ListAgentCards(*req);
    if (!r.ok()) return Fail(ctx, r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegistryServiceImpl::SyncRemoteAgents(
    grpc::CallbackServerContext* ctx, const pb::SyncRemoteAgentsRequest* req,
    pb::SyncRemoteAgentsResponse* resp) {
  return Unary(ctx, [&]() {
    absl::StatusOr<Actor> actor = AnyCaller(ctx);
    if (!actor.ok()) return Fail(ctx, actor.status());
    absl::StatusOr<pb::SyncRemoteAgentsResponse> r = registry_->SyncRemoteAgents(*actor, *req);
    if (!r.ok()) return Fail(ctx, r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  });
}

}  // namespace cnet::registry
