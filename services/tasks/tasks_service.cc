#include "services/tasks/tasks_service.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "libs/status/grpc_status.h"
#include "libs/stream/hub_writer.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks {
namespace {

namespace pb = ::claudenet::v1;

// The caller as the board sees it; UNAUTHENTICATED without a credential.
absl::StatusOr<Actor> ActorOf(const grpc::ServerContextBase* ctx) {
  absl::StatusOr<auth::Principal> p = auth::RequireAuthenticated(ctx);
  if (!p.ok()) return p.status();
  Actor a;
  switch (p->kind) {
    case auth::Kind::kAgent:
      a.kind = pb::PRINCIPAL_KIND_AGENT;
      a.id = p->id;
      break;
    case auth::Kind::kService:
      a.kind = pb::PRINCIPAL_KIND_SERVICE;
      a.id = p->id;
      a.on_behalf_of = p->on_behalf_of;
      break;
    case auth::Kind::kAdmin:
      a = Actor::Admin();
      break;
    case auth::Kind::kAnonymous:
      return absl::UnauthenticatedError("a credential is required");
  }
  return a;
}

// The caller, who must be `*agent_id` (empty = the caller) or admin.
absl::StatusOr<Actor> ActingAs(const grpc::ServerContextBase* ctx, std::string* agent_id) {
  absl::StatusOr<auth::Principal> p = auth::RequireActingAs(ctx, agent_id);
  if (!p.ok()) return p.status();
  return ActorOf(ctx);
}

// Maps a core status, attaching the ErrorDetail as `claudenet-error-bin`.
grpc::Status Answer(grpc::ServerContextBase* ctx, const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  auto payload = status.GetPayload(kErrorDetailUrl);
  pb::ErrorDetail detail;
  if (payload.has_value()) detail.ParseFromString(std::string(*payload));
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    // Every RESOURCE_EXHAUSTED carries its retry delay (default 1 s) in the
    // ErrorDetail and as `claudenet-retry-after-ms` (common.proto).
    if (!detail.has_retry_delay()) detail.mutable_retry_delay()->set_seconds(1);
    int64_t ms = detail.retry_delay().seconds() * 1000 + detail.retry_delay().nanos() / 1000000;
    ctx->AddTrailingMetadata("claudenet-retry-after-ms", std::to_string(std::max<int64_t>(ms, 1)));
    payload = absl::Cord(detail.SerializeAsString());
  }
  if (payload.has_value()) ctx->AddTrailingMetadata("claudenet-error-bin", std::string(*payload));
  return ToGrpcStatus(status);
}

// Runs `call` for a caller resolved by `who`, then maps the result.
template <typename Resp, typename Call>
grpc::Status Serve(grpc::ServerContext* ctx, const absl::StatusOr<Actor>& who, Resp* resp,
                   Call&& call) {
  if (!who.ok()) return Answer(ctx, who.status());
  auto result = call(*who);
  if (!result.ok()) return Answer(ctx, result.status());
  *resp = std::move(*result);
  return grpc::Status::OK;
}

// Long-poll Claim: finishes when the board answers (a task, the wait ended,
// the caller went away, shutdown). The board may answer before ClaimAsync
// returns; Begin then finishes, so nothing touches the reactor after Finish.
class ClaimReactor final : public grpc::ServerUnaryReactor {
 public:
  ClaimReactor(Board* board, grpc::CallbackServerContext* ctx, pb::ClaimResponse* resp)
      : board_(board), ctx_(ctx), resp_(resp) {}

  void Begin(const Actor& actor, const pb::ClaimRequest& req) {
    uint64_t id = board_->ClaimAsync(actor, req, [this](absl::StatusOr<pb::ClaimResponse> r) {
      {
        absl::MutexLock lock(&mu_);
        if (!begun_) {
          early_ = std::move(r);
          return;
        }
      }
      FinishWith(std::move(r));
    });
    std::optional<absl::StatusOr<pb::ClaimResponse>> early;
    bool cancel = false;
    {
      absl::MutexLock lock(&mu_);
      begun_ = true;
      waiter_ = id;
      early = std::move(early_);
      cancel = cancelled_;
    }
    if (early.has_value()) {
      FinishWith(std::move(*early));
    } else if (cancel && id != 0) {
      board_->CancelClaim(id);
    }
  }

  void OnCancel() override {
    uint64_t id = 0;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      if (begun_) id = waiter_;
    }
    if (id != 0) board_->CancelClaim(id);
  }

  void OnDone() override { delete this; }

 private:
  void FinishWith(absl::StatusOr<pb::ClaimResponse> r) {
    if (r.ok()) {
      *resp_ = std::move(*r);
      Finish(grpc::Status::OK);
    } else {
      Finish(Answer(ctx_, r.status()));
    }
  }

  Board* const board_;
  grpc::CallbackServerContext* const ctx_;
  pb::ClaimResponse* const resp_;
  absl::Mutex mu_;
  bool begun_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t waiter_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::StatusOr<pb::ClaimResponse>> early_ ABSL_GUARDED_BY(mu_);
};

// Writes a fixed list of messages, then ends with OK (RESYNC_REQUIRED at
// the start of a Watch).
class OneShotWriter final : public grpc::ServerWriteReactor<pb::TaskEvent> {
 public:
  explicit OneShotWriter(std::vector<pb::TaskEvent> msgs) : msgs_(std::move(msgs)) { Next(); }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (next_ >= msgs_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&msgs_[next_++]);
  }
  std::vector<pb::TaskEvent> msgs_;
  size_t next_ = 0;
};

pb::TaskEvent ResyncEvent(int64_t sequence) {
  pb::TaskEvent ev;
  ev.set_sequence(sequence);
  ev.set_type(pb::TASK_EVENT_TYPE_RESYNC_REQUIRED);
  return ev;
}

}  // namespace

grpc::Status TaskServiceImpl::CreateTask(grpc::ServerContext* ctx,
                                         const pb::CreateTaskRequest* req,
                                         pb::CreateTaskResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor& a) -> absl::StatusOr<pb::CreateTaskResponse> {
                 if (!a.admin()) {
                   // Per-creator rate (tasks.create_rate_per_agent): checked
                   // before anything is validated or stored.
                   std::string who = a.agent().empty() ? a.id : a.agent();
                   absl::Duration wait = create_limiter_.Take(who);
                   if (wait > absl::ZeroDuration()) {
                     absl::Status s(absl::StatusCode::kResourceExhausted,
                                    absl::StrCat("agent \"", who, "\": task creation rate limit (",
                                                 options_.create_rate_per_agent, "/s, burst ",
                                                 options_.create_burst_per_agent, "); ",
                                                 limits::RetryAfterText(wait)));
                     pb::ErrorDetail detail;
                     detail.set_reason("RATE_LIMITED");
                     detail.set_resource_type("agent");
                     detail.set_resource_id(who);
                     int64_t ms = limits::RetryAfterMs(wait);
                     detail.mutable_retry_delay()->set_seconds(ms / 1000);
                     detail.mutable_retry_delay()->set_nanos(static_cast<int32_t>(ms % 1000) *
                                                             1000000);
                     s.SetPayload(kErrorDetailUrl, absl::Cord(detail.SerializeAsString()));
                     return s;
                   }
                 }
                 auto r = board_->Create(a, *req);
                 if (!r.ok()) return r.status();
                 pb::CreateTaskResponse out;
                 *out.mutable_task() = std::move(r->task);
                 out.set_created(r->created);
                 return out;
               });
}

grpc::Status TaskServiceImpl::GetTask(grpc::ServerContext* ctx, const pb::GetTaskRequest* req,
                                      pb::GetTaskResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor&) -> absl::StatusOr<pb::GetTaskResponse> {
    auto t = board_->Get(req->task_id());
    if (!t.ok()) return t.status();
    pb::GetTaskResponse out;
    *out.mutable_task() = std::move(*t);
    return out;
  });
}

grpc::Status TaskServiceImpl::UpdateTask(grpc::ServerContext* ctx,
                                         const pb::UpdateTaskRequest* req,
                                         pb::UpdateTaskResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor& a) -> absl::StatusOr<pb::UpdateTaskResponse> {
                 auto t = board_->Update(a, *req);
                 if (!t.ok()) return t.status();
                 pb::UpdateTaskResponse out;
                 *out.mutable_task() = std::move(*t);
                 return out;
               });
}

grpc::Status TaskServiceImpl::ListTasks(grpc::ServerContext* ctx, const pb::ListTasksRequest* req,
                                        pb::ListTasksResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor&) { return board_->List(*req); });
}

grpc::ServerUnaryReactor* TaskServiceImpl::Claim(grpc::CallbackServerContext* ctx,
                                                 const pb::ClaimRequest* req,
                                                 pb::ClaimResponse* resp) {
  std::string agent = req->agent_id();
  absl::StatusOr<Actor> who = ActingAs(ctx, &agent);
  if (!who.ok()) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(Answer(ctx, who.status()));
    return reactor;
  }
  pb::ClaimRequest resolved = *req;
  resolved.set_agent_id(agent);
  auto* reactor = new ClaimReactor(board_, ctx, resp);
  reactor->Begin(*who, resolved);
  return reactor;
}

grpc::Status TaskServiceImpl::Steal(grpc::ServerContext* ctx, const pb::StealRequest* req,
                                    pb::StealResponse* resp) {
  std::string agent = req->agent_id();
  absl::StatusOr<Actor> who = ActingAs(ctx, &agent);
  return Serve(ctx, who, resp, [&](const Actor& a) {
    pb::StealRequest resolved = *req;
    resolved.set_agent_id(agent);
    return board_->Steal(a, resolved);
  });
}

grpc::Status TaskServiceImpl::Start(grpc::ServerContext* ctx, const pb::StartRequest* req,
                                    pb::StartResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->Start(a, *req); });
}

grpc::Status TaskServiceImpl::Progress(grpc::ServerContext* ctx, const pb::ProgressRequest* req,
                                       pb::ProgressResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->Progress(a, *req); });
}

grpc::Status TaskServiceImpl::RenewLease(grpc::ServerContext* ctx,
                                         const pb::RenewLeaseRequest* req,
                                         pb::RenewLeaseResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor& a) { return board_->RenewLease(a, *req); });
}

grpc::Status TaskServiceImpl::Release(grpc::ServerContext* ctx, const pb::ReleaseRequest* req,
                                      pb::ReleaseResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->Release(a, *req); });
}

grpc::Status TaskServiceImpl::RequestInput(grpc::ServerContext* ctx,
                                           const pb::RequestInputRequest* req,
                                           pb::RequestInputResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor& a) { return board_->RequestInput(a, *req); });
}

grpc::Status TaskServiceImpl::ProvideInput(grpc::ServerContext* ctx,
                                           const pb::ProvideInputRequest* req,
                                           pb::ProvideInputResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor& a) { return board_->ProvideInput(a, *req); });
}

grpc::Status TaskServiceImpl::Complete(grpc::ServerContext* ctx, const pb::CompleteRequest* req,
                                       pb::CompleteResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->Complete(a, *req); });
}

grpc::Status TaskServiceImpl::Fail(grpc::ServerContext* ctx, const pb::FailRequest* req,
                                   pb::FailResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->Fail(a, *req); });
}

grpc::Status TaskServiceImpl::Review(grpc::ServerContext* ctx, const pb::ReviewRequest* req,
                                     pb::ReviewResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->Review(a, *req); });
}

grpc::Status TaskServiceImpl::Cancel(grpc::ServerContext* ctx, const pb::CancelRequest* req,
                                     pb::CancelResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->Cancel(a, *req); });
}

grpc::Status TaskServiceImpl::ExplainTask(grpc::ServerContext* ctx,
                                          const pb::ExplainTaskRequest* req,
                                          pb::ExplainTaskResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor&) { return board_->Explain(req->task_id()); });
}

grpc::Status TaskServiceImpl::GetHistory(grpc::ServerContext* ctx,
                                         const pb::GetHistoryRequest* req,
                                         pb::GetHistoryResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor&) { return board_->History(*req); });
}

grpc::Status TaskServiceImpl::GetStats(grpc::ServerContext* ctx,
                                       const pb::GetTaskStatsRequest* req,
                                       pb::GetTaskStatsResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor&) { return board_->Stats(*req); });
}

grpc::Status TaskServiceImpl::Reserve(grpc::ServerContext* ctx, const pb::ReserveRequest* req,
                                      pb::ReserveResponse* resp) {
  std::string agent = req->agent_id();
  absl::StatusOr<Actor> who = ActingAs(ctx, &agent);
  return Serve(ctx, who, resp, [&](const Actor& a) {
    pb::ReserveRequest resolved = *req;
    resolved.set_agent_id(agent);
    return board_->Reserve(a, resolved);
  });
}

grpc::Status TaskServiceImpl::RenewReservation(grpc::ServerContext* ctx,
                                               const pb::RenewReservationRequest* req,
                                               pb::RenewReservationResponse* resp) {
  std::string agent = req->agent_id();
  absl::StatusOr<Actor> who = ActingAs(ctx, &agent);
  return Serve(ctx, who, resp, [&](const Actor& a) {
    pb::RenewReservationRequest resolved = *req;
    resolved.set_agent_id(agent);
    return board_->RenewReservation(a, resolved);
  });
}

grpc::Status TaskServiceImpl::ReleaseReservation(grpc::ServerContext* ctx,
                                                 const pb::ReleaseReservationRequest* req,
                                                 pb::ReleaseReservationResponse* resp) {
  std::string agent = req->agent_id();
  absl::StatusOr<Actor> who = ActingAs(ctx, &agent);
  return Serve(ctx, who, resp, [&](const Actor& a) {
    pb::ReleaseReservationRequest resolved = *req;
    resolved.set_agent_id(agent);
    return board_->ReleaseReservation(a, resolved);
  });
}

grpc::Status TaskServiceImpl::ListReservations(grpc::ServerContext* ctx,
                                               const pb::ListReservationsRequest* req,
                                               pb::ListReservationsResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor&) { return board_->ListReservations(*req); });
}

grpc::Status TaskServiceImpl::ForceRelease(grpc::ServerContext* ctx,
                                           const pb::ForceReleaseRequest* req,
                                           pb::ForceReleaseResponse* resp) {
  absl::StatusOr<auth::Principal> admin = auth::RequireAdmin(ctx);
  if (!admin.ok()) return Answer(ctx, admin.status());
  return Serve(ctx, ActorOf(ctx), resp,
               [&](const Actor& a) { return board_->ForceRelease(a, *req); });
}

grpc::Status TaskServiceImpl::CheckPaths(grpc::ServerContext* ctx,
                                         const pb::CheckPathsRequest* req,
                                         pb::CheckPathsResponse* resp) {
  return Serve(ctx, ActorOf(ctx), resp, [&](const Actor& a) { return board_->CheckPaths(a, *req); });
}

grpc::Status TaskServiceImpl::ReportChangedPaths(grpc::ServerContext* ctx,
                                                 const pb::ReportChangedPathsRequest* req,
                                                 pb::ReportChangedPathsResponse* resp) {
  std::string agent = req->agent_id();
  absl::StatusOr<Actor> who = ActingAs(ctx, &agent);
  return Serve(ctx, who, resp, [&](const Actor& a) {
    pb::ReportChangedPathsRequest resolved = *req;
    resolved.set_agent_id(agent);
    return board_->ReportChangedPaths(a, resolved);
  });
}

grpc::ServerWriteReactor<pb::TaskEvent>* TaskServiceImpl::Watch(
    grpc::CallbackServerContext* ctx, const pb::WatchTasksRequest* req) {
  absl::StatusOr<Actor> who = ActorOf(ctx);
  if (!who.ok()) return FailedWriter<pb::TaskEvent>(ToGrpcStatus(who.status()));
  absl::Status valid = board_->ValidateWatch(*req);
  if (!valid.ok()) return FailedWriter<pb::TaskEvent>(ToGrpcStatus(valid));
  // Stream limits: RESOURCE_EXHAUSTED with a 5 s retry delay (Answer adds
  // the ErrorDetail and `claudenet-retry-after-ms`).
  auto exhausted = [ctx](std::string message) {
    absl::Status s(absl::StatusCode::kResourceExhausted, std::move(message));
    pb::ErrorDetail detail;
    detail.set_reason("TOO_MANY_WATCHERS");
    detail.mutable_retry_delay()->set_seconds(5);
    s.SetPayload(kErrorDetailUrl, absl::Cord(detail.SerializeAsString()));
    return FailedWriter<pb::TaskEvent>(Answer(ctx, s));
  };
  if (board_->hub()->subscriber_count() >= options_.max_watchers) {
    return exhausted(
        absl::StrCat("too many watchers (", options_.max_watchers, "); retry after 5s"));
  }
  // Per caller: the slot lives as long as the stream (it is held by the
  // stream's convert function below).
  const std::string caller = who->agent().empty() ? who->id : who->agent();
  std::shared_ptr<void> slot = watch_slots_.Acquire(caller);
  if (slot == nullptr) {
    return exhausted(absl::StrCat("\"", caller, "\" has ", options_.max_watchers_per_caller,
                                  " Watch streams open already; close one or retry after 5s"));
  }
  auto request = std::make_shared<pb::WatchTasksRequest>(*req);
  auto covered = std::make_shared<std::atomic<int64_t>>(0);
  auto resync = std::make_shared<std::atomic<bool>>(false);
  HubWriter<BoardEventPtr, pb::TaskEvent>::Options options;
  options.queue_capacity = options_.watch_queue;
  options.convert = [request, covered, resync, slot](const BoardEventPtr& ev,
                                                     pb::TaskEvent* out) {
    if (resync->load() || ev->event.sequence() <= covered->load()) return false;
    if (!Board::WatchMatches(*request, *ev)) return false;
    *out = ev->event;
    return true;
  };
  Board* board = board_;
  options.on_overflow = [board](pb::TaskEvent* out) {
    *out = ResyncEvent(board->last_sequence());
    return true;
  };
  options.overflow_status = grpc::Status::OK;
  if (!req->send_snapshot() && req->from_sequence() > 0) {
    // Decide about a resync before streaming: a resume point that is no
    // longer retained gets RESYNC_REQUIRED and the stream ends.
    if (!board_->CanResume(req->from_sequence())) {
      return new OneShotWriter({ResyncEvent(board_->last_sequence())});
    }
  }
  return HubWriter<BoardEventPtr, pb::TaskEvent>::Start(
      board_->hub(), std::move(options), [board, request, covered, resync] {
        bool need = false;
        int64_t cov = 0;
        std::vector<pb::TaskEvent> initial = board->WatchInitial(*request, &need, &cov);
        covered->store(cov);
        if (need) {
          // Lost the resume point meanwhile: tell the client, send nothing more.
          resync->store(true);
          initial.push_back(ResyncEvent(board->last_sequence()));
        }
        return initial;
      });
}

}  // namespace cnet::tasks
