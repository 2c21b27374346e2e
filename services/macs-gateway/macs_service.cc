#include "services/macs-gateway/macs_service.h"

#include <deque>
#include <memory>

#include "absl/strings/str_cat.h"
#include "libs/auth/auth.h"
#include "libs/status/grpc_status.h"
#include "libs/stream/hub_writer.h"

namespace cnet::macs {
namespace pb = claudenet::v1;

grpc::Status ToWire(grpc::ServerContextBase* ctx, const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  pb::ErrorDetail detail;
  absl::optional<absl::Cord> payload = status.GetPayload(kErrorDetailPayload);
  bool has_detail = payload.has_value() && detail.ParseFromString(std::string(*payload));
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    if (!detail.has_retry_delay()) detail.mutable_retry_delay()->set_seconds(1);
    int64_t ms = detail.retry_delay().seconds() * 1000 + detail.retry_delay().nanos() / 1000000;
    ctx->AddTrailingMetadata("claudenet-retry-after-ms", absl::StrCat(std::max<int64_t>(ms, 1)));
    has_detail = true;
  }
  if (has_detail) ctx->AddTrailingMetadata("claudenet-error-bin", detail.SerializeAsString());
  return ToGrpcStatus(status);
}

namespace {

absl::StatusOr<Caller> CallerOf(const grpc::ServerContextBase* ctx) {
  absl::StatusOr<auth::Principal> p = auth::Caller(ctx);
  if (!p.ok()) return p.status();
  Caller c;
  c.id = p->id;
  c.on_behalf_of = p->on_behalf_of;
  switch (p->kind) {
    case auth::Kind::kAnonymous: c.kind = Caller::Kind::kAnonymous; break;
    case auth::Kind::kAgent: c.kind = Caller::Kind::kAgent; break;
    case auth::Kind::kService: c.kind = Caller::Kind::kService; break;
    case auth::Kind::kAdmin: c.kind = Caller::Kind::kAdmin; break;
  }
  return c;
}

// Streams one agent's deliveries; the gateway pushes frames (DeliverySink)
// and this writes them one at a time.
class InboxStream final : public grpc::ServerWriteReactor<pb::SubscribeResponse>,
                          public DeliverySink {
 public:
  InboxStream(Gateway* gateway, grpc::CallbackServerContext* ctx)
      : gateway_(gateway), ctx_(ctx) {}

  void Start(const Caller& caller, const pb::SubscribeRequest& req) {
    absl::StatusOr<uint64_t> id = gateway_->Subscribe(caller, req, this);
    absl::MutexLock lock(&mu_);
    if (!id.ok()) {
      FinishLocked(ToWire(ctx_, id.status()));
      return;
    }
    id_ = *id;
  }

  void Deliver(pb::SubscribeResponse frame) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    queue_.push_back(std::move(frame));
    PumpLocked();
  }

  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    end_status_ = status;
    PumpLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed"));
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled"));
  }

  void OnDone() override {
    uint64_t id;
    {
      absl::MutexLock lock(&mu_);
      id = id_;
    }
    if (id != 0) gateway_->Unsubscribe(id);
    delete this;
  }

 private:
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_) return;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    if (ended_) FinishLocked(ToWire(ctx_, end_status_));
  }
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Gateway* const gateway_;
  grpc::CallbackServerContext* const ctx_;
  absl::Mutex mu_;
  uint64_t id_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<pb::SubscribeResponse> queue_ ABSL_GUARDED_BY(mu_);
  pb::SubscribeResponse current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

// One GetStats frame per interval, timed by the clock.
class StatsStream final : public grpc::ServerWriteReactor<pb::GetStatsResponse> {
 public:
  StatsStream(MacsServiceImpl* service, Caller caller, pb::GetStatsRequest req,
              absl::Duration interval)
      : service_(service),
        caller_(std::move(caller)),
        req_(std::move(req)),
        interval_(interval),
        state_(std::make_shared<State>()) {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = this;
    WriteLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed"));
      return;
    }
    if (due_ || end_) WriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled"));
  }

  void OnDone() override {
    service_->Forget(this);
    {
      absl::MutexLock lock(&state_->mu);
      if (state_->timer != 0) service_->clock_->Cancel(state_->timer);
      state_->reactor = nullptr;
    }
    delete this;
  }

  void End() {
    absl::MutexLock lock(&state_->mu);
    if (!writing_) FinishLocked(grpc::Status::OK);
    end_ = true;
  }

 private:
  struct State {
    absl::Mutex mu;
    StatsStream* reactor ABSL_GUARDED_BY(mu) = nullptr;
    Clock::TimerId timer ABSL_GUARDED_BY(mu) = 0;
  };

  // Writes a frame now (or, while one is in flight, as soon as it is done)
  // and arms the timer of the next one before the client can see this one.
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    if (writing_) {
      due_ = true;
      return;
    }
    due_ = false;
    if (end_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    absl::StatusOr<pb::GetStatsResponse> stats = service_->gateway_->GetStats(caller_, req_);
    if (!stats.ok()) {
      FinishLocked(ToGrpcStatus(stats.status()));
      return;
    }
    current_ = std::move(*stats);
    writing_ = true;
    std::weak_ptr<State> weak = state_;
    state_->timer = service_->clock_->RunAfter(interval_, [weak] {
      std::shared_ptr<State> s = weak.lock();
      if (!s) return;
      absl::MutexLock lock(&s->mu);
      s->timer = 0;
      if (s->reactor != nullptr) s->reactor->WriteLocked();
    });
    StartWrite(&current_);
  }
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    finished_ = true;
    if (state_->timer != 0) service_->clock_->Cancel(state_->timer);
    state_->timer = 0;
    Finish(status);
  }

  MacsServiceImpl* const service_;
  const Caller caller_;
  const pb::GetStatsRequest req_;
  const absl::Duration interval_;
  std::shared_ptr<State> state_;
  pb::GetStatsResponse current_;
  bool writing_ = false;
  bool finished_ = false;
  bool end_ = false;
  bool due_ = false;
};

MacsServiceImpl::~MacsServiceImpl() { Shutdown(); }

void MacsServiceImpl::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (StatsStream* s : stats_streams_) s->End();
}

void MacsServiceImpl::Forget(StatsStream* s) {
  absl::MutexLock lock(&mu_);
  stats_streams_.erase(s);
}

grpc::ServerUnaryReactor* MacsServiceImpl::Send(grpc::CallbackServerContext* ctx,
                                                const pb::SendRequest* req,
                                                pb::SendResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = CallerOf(ctx);
  if (!caller.ok()) {
    gateway_->CountRejection(pb::REJECT_REASON_UNAUTHENTICATED);
    reactor->Finish(ToWire(ctx, caller.status()));
    return reactor;
  }
  gateway_->Send(*caller, *req, [ctx, reactor, resp](absl::StatusOr<pb::SendResponse> r) {
    if (!r.ok()) {
      reactor->Finish(ToWire(ctx, r.status()));
      return;
    }
    *resp = std::move(*r);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerWriteReactor<pb::SubscribeResponse>* MacsServiceImpl::Subscribe(
    grpc::CallbackServerContext* ctx, const pb::SubscribeRequest* req) {
  absl::StatusOr<Caller> caller = CallerOf(ctx);
  if (!caller.ok()) return FailedWriter<pb::SubscribeResponse>(ToWire(ctx, caller.status()));
  auto* stream = new InboxStream(gateway_, ctx);
  stream->Start(*caller, *req);
  return stream;
}

grpc::ServerWriteReactor<pb::GetStatsResponse>* MacsServiceImpl::WatchStats(
    grpc::CallbackServerContext* ctx, const pb::WatchStatsRequest* req) {
  absl::StatusOr<Caller> caller = CallerOf(ctx);
  if (!caller.ok()) return FailedWriter<pb::GetStatsResponse>(ToWire(ctx, caller.status()));
  absl::Duration interval = absl::Seconds(1);
  if (req->has_interval()) {
    interval = absl::Seconds(req->interval().seconds()) + absl::Nanoseconds(req->interval().nanos());
    if (interval < absl::Seconds(1) || interval > absl::Seconds(60)) {
      return FailedWriter<pb::GetStatsResponse>(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT, "interval: must be 1s..60s"));
    }
  }
  pb::GetStatsRequest stats_req;
  stats_req.set_agent_id(req->agent_id());
  // Check the request once (unknown agent, credential) before streaming.
  absl::StatusOr<pb::GetStatsResponse> first = gateway_->GetStats(*caller, stats_req);
  if (!first.ok()) return FailedWriter<pb::GetStatsResponse>(ToWire(ctx, first.status()));
  absl::MutexLock lock(&mu_);
  if (shut_down_) {
    return FailedWriter<pb::GetStatsResponse>(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "the gateway is shutting down"));
  }
  auto* stream = new StatsStream(this, *caller, stats_req, interval);
  stats_streams_.insert(stream);
  return stream;
}

#define CNET_MACS_UNARY(Method, Req, Resp)                                       \
  grpc::Status MacsServiceImpl::Method(grpc::ServerContext* ctx, const Req* req, \
                                       Resp* resp) {                             \
    absl::StatusOr<Caller> caller = CallerOf(ctx);                               \
    if (!caller.ok()) return ToWire(ctx, caller.status());                       \
    auto result = gateway_->Method(*caller, *req);                               \
    if (!result.ok()) return ToWire(ctx, result.status());                       \
    *resp = std::move(*result);                                                  \
    return grpc::Status::OK;                                                     \
  }

CNET_MACS_UNARY(Ack, pb::AckRequest, pb::AckResponse)
CNET_MACS_UNARY(MarkRead, pb::MarkReadRequest, pb::MarkReadResponse)
CNET_MACS_UNARY(FetchInbox, pb::FetchInboxRequest, pb::FetchInboxResponse)
CNET_MACS_UNARY(GetMessageStatus, pb::GetMessageStatusRequest, pb::GetMessageStatusResponse)
CNET_MACS_UNARY(ListDeadLetters, pb::ListDeadLettersRequest, pb::ListDeadLettersResponse)
CNET_MACS_UNARY(RequeueDeadLetter, pb::RequeueDeadLetterRequest, pb::RequeueDeadLetterResponse)
CNET_MACS_UNARY(GetThread, pb::GetThreadRequest, pb::GetThreadResponse)
CNET_MACS_UNARY(GetStats, pb::GetStatsRequest, pb::GetStatsResponse)

#undef CNET_MACS_UNARY

}  // namespace cnet::macs
