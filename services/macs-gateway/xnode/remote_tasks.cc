#include "services/macs-gateway/xnode/remote_tasks.h"

#include <glog/logging.h>

#include <algorithm>
#include <set>

#include "libs/auth/auth.h"
#include "libs/status/grpc_status.h"

namespace cnet::federation {
namespace pb = ::claudenet::v1;

RemoteTasks::RemoteTasks(RemoteTasksOptions options, KvStore* kv)
    : options_(std::move(options)), kv_(kv), ids_(options_.clock) {}

RemoteTasks::~RemoteTasks() { Stop(); }

void RemoteTasks::Start() {
  cleaner_ = std::make_unique<Worker>();
  tasks_stream_ = kv_->Listen("tasks", [this](const KvEvent& ev) { OnTasksEvent(ev); });
  results_stream_ = kv_->Listen("task_results/" + NodeKey(options_.node),
                                [this](const KvEvent& ev) { OnResultsEvent(ev); });
}

void RemoteTasks::Stop() {
  tasks_stream_.reset();
  results_stream_.reset();
  if (cleaner_) cleaner_->Stop();
  absl::MutexLock lock(&mu_);
  for (auto& [id, p] : pending_) {
    p->result.op_id = id;
    p->result.code = grpc::StatusCode::UNAVAILABLE;
    p->result.message = "gateway shutting down";
    if (!p->done.HasBeenNotified()) p->done.Notify();
  }
  pending_.clear();
}

RemoteTasks::Stats RemoteTasks::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void RemoteTasks::OnTasksEvent(const KvEvent& ev) {
  absl::MutexLock lock(&mu_);
  auto touched = tasks_.Apply(ev);
  if (!touched.ok()) {
    ++stats_.rejected;
    LOG(WARNING) << "remote tasks: event at tasks" << ev.path << " rejected: "
                 << touched.status().message();
  }
}

std::vector<pb::Task> RemoteTasks::List() const {
  std::map<std::string, pb::Task> out;
  absl::MutexLock lock(&mu_);
  for (const char* bucket : {"available", "assigned", "completed"}) {
    const JsonValue* b = tasks_.Get({bucket});
    if (b == nullptr || b->kind_case() != JsonValue::kStructValue) continue;
    for (const auto& [id, doc] : b->struct_value().fields()) {
      if (StringField(doc, "node") == options_.node) continue;  // ours: TaskService
      if (doc.ByteSizeLong() > kMaxDocumentBytes) continue;
      absl::StatusOr<pb::Task> t = TaskFromDocument(doc, id, options_.secret);
      if (!t.ok() || t->origin_node() == options_.node) continue;
      out[id] = std::move(*t);
    }
  }
  std::vector<pb::Task> v;
  v.reserve(out.size());
  for (auto& [id, t] : out) v.push_back(std::move(t));
  return v;
}

absl::StatusOr<pb::Task> RemoteTasks::Get(const std::string& task_id) const {
  if (!ValidKey(task_id)) {
    return absl::InvalidArgumentError("task_id \"" + task_id + "\": malformed");
  }
  absl::MutexLock lock(&mu_);
  for (const char* bucket : {"available", "assigned", "completed"}) {
    const JsonValue* doc = tasks_.Get({bucket, task_id});
    if (doc == nullptr) continue;
    absl::StatusOr<pb::Task> t = TaskFromDocument(*doc, task_id, options_.secret);
    if (!t.ok()) return absl::NotFoundError("task \"" + task_id + "\": " +
                                            std::string(t.status().message()));
    if (t->origin_node() == options_.node) {
      return absl::NotFoundError("task \"" + task_id +
                                 "\" is owned by this node: use TaskService");
    }
    return t;
  }
  return absl::NotFoundError("task \"" + task_id + "\": not a known remote task");
}

absl::StatusOr<TaskOpResult> RemoteTasks::Submit(TaskOp op) {
  absl::StatusOr<pb::Task> task = Get(op.task_id);
  if (!task.ok()) return task.status();
  const std::string owner = task->origin_node();
  op.op_id = ids_.Next("op-");
  op.from_node = options_.node;
  op.created_ms = absl::ToUnixMillis(options_.clock->Now());
  auto pending = std::make_shared<Pending>();
  {
    absl::MutexLock lock(&mu_);
    pending_[op.op_id] = pending;
    ++stats_.ops_sent;
  }
  const std::string op_path = "task_ops/" + NodeKey(owner) + "/" + op.op_id;
  absl::Status s = kv_->Put(op_path, ToJson(TaskOpDocument(op, options_.secret)));
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    pending_.erase(op.op_id);
    return absl::UnavailableError("task \"" + op.task_id + "\": cannot reach the database: " +
                                  std::string(s.message()));
  }
  if (!pending->done.WaitForNotificationWithTimeout(options_.op_timeout)) {
    {
      absl::MutexLock lock(&mu_);
      pending_.erase(op.op_id);
      ++stats_.ops_timed_out;
    }
    (void)kv_->Put(op_path, "null");  // withdraw it if not yet executed
    return absl::UnavailableError("task \"" + op.task_id + "\": node \"" + owner +
                                  "\" did not answer " + TaskOpName(op.kind) + " within " +
                                  absl::FormatDuration(options_.op_timeout) +
                                  " (it may or may not have been applied)");
  }
  absl::Status verified = VerifyTaskOpResult(pending->result, op.kind, options_.secret);
  if (!verified.ok()) {
    LOG(WARNING) << "remote tasks: answer from " << owner << " rejected: " << verified.message();
    absl::MutexLock lock(&mu_);
    ++stats_.rejected;
    return absl::UnavailableError("task \"" + op.task_id + "\": the answer of node \"" + owner +
                                  "\" was rejected (" + std::string(verified.message()) +
                                  "); it may or may not have been applied");
  }
  return pending->result;
}

void RemoteTasks::OnResultsEvent(const KvEvent& ev) {
  std::vector<std::string> cleanup;
  {
    absl::MutexLock lock(&mu_);
    auto touched = results_.Apply(ev);
    if (!touched.ok()) {
      ++stats_.rejected;
      return;
    }
    if (ev.type == KvEvent::Type::kReset) return;
    std::set<std::string> ids = *touched;
    if (ids.count("*") > 0) {
      ids.clear();
      const JsonValue& root = results_.root();
      if (root.kind_case() == JsonValue::kStructValue) {
        for (const auto& [id, doc] : root.struct_value().fields()) ids.insert(id);
      }
    }
    for (const std::string& id : ids) {
      const JsonValue* doc = results_.Get({id});
      if (doc == nullptr || IsNull(*doc)) continue;
      absl::StatusOr<TaskOpResult> r = TaskOpResultFromDocument(*doc, id);
      auto it = pending_.find(id);
      if (!r.ok()) {
        ++stats_.rejected;
        LOG(WARNING) << "remote tasks: " << r.status().message();
      } else if (it == pending_.end()) {
        ++stats_.results_discarded;
      } else {
        it->second->result = std::move(*r);
        it->second->done.Notify();
        pending_.erase(it);
        ++stats_.ops_answered;
      }
      cleanup.push_back(id);
    }
  }
  for (const std::string& id : cleanup) {
    cleaner_->Post([this, path = "task_results/" + NodeKey(options_.node) + "/" + id] {
      (void)kv_->Put(path, "null");
    });
  }
}

// ---------------------------------------------------------------- service

namespace {

bool HasAllTags(const pb::Task& t, const pb::ListTasksRequest& req) {
  for (const std::string& tag : req.tags()) {
    if (std::find(t.tags().begin(), t.tags().end(), tag) == t.tags().end()) return false;
  }
  return true;
}

}  // namespace

grpc::Status RemoteTaskServiceImpl::ListRemoteTasks(grpc::ServerContext* ctx,
                                                    const pb::ListTasksRequest* req,
                                                    pb::ListTasksResponse* resp) {
  auto who = auth::RequireAuthenticated(ctx);
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (req->page_size() < 0 || req->page_size() > 1000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "page_size " + std::to_string(req->page_size()) +
                            ": must be within 0..1000");
  }
  const int page = req->page_size() == 0 ? 100 : req->page_size();
  std::set<int> states(req->states().begin(), req->states().end());
  int64_t total = 0;
  for (pb::Task& t : tasks_->List()) {
    if (!states.empty() && states.count(t.state()) == 0) continue;
    if (!req->assignee().empty() && t.assignee() != req->assignee()) continue;
    if (!req->creator().empty() && t.creator().id() != req->creator()) continue;
    if (!req->capability().empty() &&
        std::find(t.required_capabilities().begin(), t.required_capabilities().end(),
                  req->capability()) == t.required_capabilities().end()) {
      continue;
    }
    if (!HasAllTags(t, *req)) continue;
    ++total;
    if (t.id() <= req->page_token()) continue;
    if (resp->tasks_size() < page) {
      *resp->add_tasks() = std::move(t);
      if (resp->tasks_size() == page) resp->set_next_page_token(resp->tasks(page - 1).id());
    }
  }
  resp->set_total_size(total);
  if (resp->tasks_size() < page) resp->clear_next_page_token();
  return grpc::Status::OK;
}

grpc::Status RemoteTaskServiceImpl::GetRemoteTask(grpc::ServerContext* ctx,
                                                  const pb::GetTaskRequest* req,
                                                  pb::GetTaskResponse* resp) {
  auto who = auth::RequireAuthenticated(ctx);
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (req->task_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "task_id: required");
  }
  auto t = tasks_->Get(req->task_id());
  if (!t.ok()) return ToGrpcStatus(t.status());
  *resp->mutable_task() = std::move(*t);
  return grpc::Status::OK;
}

template <typename Req, typename Resp>
grpc::Status RemoteTaskServiceImpl::Forward(grpc::ServerContext* ctx, TaskOpKind kind, Req req,
                                            Resp* resp) {
  std::string agent;
  if constexpr (std::is_same_v<Req, pb::ClaimRequest>) agent = req.agent_id();
  auto who = auth::RequireActingAs(ctx, &agent);
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (agent.empty()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "remote task operations must act as an agent of this node");
  }
  if (req.task_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "task_id: required");
  }
  if constexpr (std::is_same_v<Req, pb::ClaimRequest>) {
    if (req.has_wait() && (req.wait().seconds() != 0 || req.wait().nanos() != 0)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "wait: must be 0 for a remote task (long-polls are not forwarded)");
    }
    req.set_agent_id(agent);
  }
  TaskOp op;
  op.agent_id = agent;
  op.task_id = req.task_id();
  op.kind = kind;
  op.request = MessageToValue(req);
  absl::StatusOr<TaskOpResult> r = tasks_->Submit(std::move(op));
  if (!r.ok()) return ToGrpcStatus(r.status());
  if (r->code != 0) {
    return grpc::Status(static_cast<grpc::StatusCode>(r->code), r->message);
  }
  absl::Status parsed = ValueToMessage(r->response, resp);
  if (!parsed.ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "answer of the owner node: " + std::string(parsed.message()));
  }
  return grpc::Status::OK;
}

grpc::Status RemoteTaskServiceImpl::Claim(grpc::ServerContext* ctx, const pb::ClaimRequest* req,
                                          pb::ClaimResponse* resp) {
  return Forward(ctx, TaskOpKind::kClaim, *req, resp);
}
grpc::Status RemoteTaskServiceImpl::Start(grpc::ServerContext* ctx, const pb::StartRequest* req,
                                          pb::StartResponse* resp) {
  return Forward(ctx, TaskOpKind::kStart, *req, resp);
}
grpc::Status RemoteTaskServiceImpl::Progress(grpc::ServerContext* ctx,
                                             const pb::ProgressRequest* req,
                                             pb::ProgressResponse* resp) {
  return Forward(ctx, TaskOpKind::kProgress, *req, resp);
}
grpc::Status RemoteTaskServiceImpl::RenewLease(grpc::ServerContext* ctx,
                                               const pb::RenewLeaseRequest* req,
                                               pb::RenewLeaseResponse* resp) {
  return Forward(ctx, TaskOpKind::kRenewLease, *req, resp);
}
grpc::Status RemoteTaskServiceImpl::Release(grpc::ServerContext* ctx,
                                            const pb::ReleaseRequest* req,
                                            pb::ReleaseResponse* resp) {
  return Forward(ctx, TaskOpKind::kRelease, *req, resp);
}
grpc::Status RemoteTaskServiceImpl::Complete(grpc::ServerContext* ctx,
                                             const pb::CompleteRequest* req,
                                             pb::CompleteResponse* resp) {
  return Forward(ctx, TaskOpKind::kComplete, *req, resp);
}
grpc::Status RemoteTaskServiceImpl::Fail(grpc::ServerContext* ctx, const pb::FailRequest* req,
                                         pb::FailResponse* resp) {
  return Forward(ctx, TaskOpKind::kFail, *req, resp);
}

}  // namespace cnet::federation
