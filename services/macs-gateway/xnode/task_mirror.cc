#include "services/macs-gateway/xnode/task_mirror.h"

#include <glog/logging.h>

#include <set>

#include "libs/auth/auth.h"

namespace cnet::federation {
namespace pb = ::claudenet::v1;

TaskMirror::TaskMirror(TaskMirrorOptions options, KvStore* kv,
                       std::shared_ptr<registry_client::RegistryClient> registry)
    : options_(std::move(options)),
      kv_(kv),
      registry_(std::move(registry)),
      stub_(pb::TaskService::NewStub(options_.tasks_channel)) {}

TaskMirror::~TaskMirror() { Stop(); }

void TaskMirror::Start() {
  publisher_ = std::make_unique<Worker>();
  writer_ = std::make_unique<CoalescingWriter>(
      kv_, publisher_.get(), 500, [this](const absl::Status& s, size_t paths) {
        absl::MutexLock lock(&mu_);
        if (!s.ok()) {
          ++stats_.write_errors;
          LOG(WARNING) << "task mirror: writing " << paths << " paths: " << s.message();
        } else {
          stats_.published += static_cast<int64_t>(paths / 3);
        }
      });
  executor_ = std::make_unique<Worker>();
  ops_stream_ =
      kv_->Listen("task_ops/" + NodeKey(options_.node), [this](const KvEvent& ev) { OnOpEvent(ev); });
  watch_thread_ = std::thread([this] { WatchLoop(); });
}

void TaskMirror::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    if (watch_ctx_ != nullptr) watch_ctx_->TryCancel();
  }
  if (watch_thread_.joinable()) watch_thread_.join();
  ops_stream_.reset();
  if (executor_) executor_->Stop();
  if (publisher_) publisher_->Stop();
}

TaskMirror::Stats TaskMirror::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void TaskMirror::WatchLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    grpc::ClientContext ctx;
    auth::SetBearer(&ctx, options_.service_credential);
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      watch_ctx_ = &ctx;
      ++stats_.watch_streams;
    }
    pb::WatchTasksRequest req;
    req.set_send_snapshot(true);
    std::unique_ptr<grpc::ClientReader<pb::TaskEvent>> reader = stub_->Watch(&ctx, req);
    pb::TaskEvent ev;
    bool got = false;
    while (reader->Read(&ev)) {
      got = true;
      switch (ev.type()) {
        case pb::TASK_EVENT_TYPE_SNAPSHOT:
        case pb::TASK_EVENT_TYPE_CREATED:
        case pb::TASK_EVENT_TYPE_UPDATED:
        case pb::TASK_EVENT_TYPE_TRANSITION:
        case pb::TASK_EVENT_TYPE_PROGRESS:
          if (ev.has_task()) Publish(ev.task());
          break;
        case pb::TASK_EVENT_TYPE_RESYNC_REQUIRED:
          ctx.TryCancel();
          break;
        default:
          break;
      }
    }
    grpc::Status st = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      watch_ctx_ = nullptr;
      if (stop_) return;
      if (got) backoff = absl::Milliseconds(100);
      // Wait before reopening (woken early by Stop).
      auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopped), backoff);
      if (stop_) return;
    }
    if (!st.ok()) VLOG(1) << "task mirror: tasks Watch ended: " << st.error_message();
    backoff = std::min(backoff * 2, absl::Seconds(10));
  }
}

void TaskMirror::Publish(const pb::Task& task) {
  if (!task.origin_node().empty() && task.origin_node() != options_.node) return;
  if (!ValidKey(task.id())) return;
  pb::Task t = task;
  if (t.origin_node().empty()) t.set_origin_node(options_.node);
  std::string bucket = TaskBucket(t.state());
  std::map<std::string, std::string> writes;
  for (const char* b : {"available", "assigned", "completed"}) {
    writes[std::string("tasks/") + b + "/" + t.id()] = "null";
  }
  writes["tasks/" + bucket + "/" + t.id()] = ToJson(TaskDocument(t, options_.secret));
  writer_->Write(t.id(), std::move(writes));
}

void TaskMirror::OnOpEvent(const KvEvent& ev) {
  std::vector<std::pair<std::string, JsonValue>> docs;
  {
    absl::MutexLock lock(&mu_);
    auto touched = ops_.Apply(ev);
    if (!touched.ok()) {
      ++stats_.ops_malformed;
      LOG(WARNING) << "task ops: event at " << ev.path << " rejected: "
                   << touched.status().message();
      return;
    }
    if (ev.type == KvEvent::Type::kReset) return;  // the full put follows
    std::set<std::string> ids = *touched;
    if (ids.count("*") > 0) {
      ids.clear();
      const JsonValue& root = ops_.root();
      if (root.kind_case() == JsonValue::kStructValue) {
        for (const auto& [id, doc] : root.struct_value().fields()) ids.insert(id);
      }
    }
    for (const std::string& id : ids) {
      const JsonValue* doc = ops_.Get({id});
      if (doc == nullptr || IsNull(*doc) || in_flight_.count(id) > 0) continue;
      in_flight_.insert(id);
      docs.emplace_back(id, *doc);
    }
  }
  for (auto& [id, doc] : docs) {
    absl::StatusOr<TaskOp> op = TaskOpFromDocument(doc, id, options_.secret);
    if (!op.ok() || doc.ByteSizeLong() > kMaxDocumentBytes) {
      {
        absl::MutexLock lock(&mu_);
        ++stats_.ops_malformed;
      }
      LOG(WARNING) << "task ops: "
                   << (op.ok() ? "task_ops/" + id + ": oversize" : std::string(op.status().message()));
      // Drop it so it is not seen again.
      executor_->Post([this, id] {
        (void)kv_->Put("task_ops/" + NodeKey(options_.node) + "/" + id, "null");
        absl::MutexLock lock(&mu_);
        in_flight_.erase(id);
      });
      continue;
    }
    executor_->Post([this, op = std::move(*op)]() mutable { Execute(std::move(op)); });
  }
}

void TaskMirror::Execute(TaskOp op) {
  std::string result_json;
  {
    absl::MutexLock lock(&mu_);
    auto it = done_.find(op.op_id);
    if (it != done_.end()) result_json = it->second;
  }
  if (result_json.empty()) {
    TaskOpResult r = Run(op);
    result_json = ToJson(TaskOpResultDocument(r, op.kind, options_.secret));
    absl::MutexLock lock(&mu_);
    if (done_.size() > 100000) done_.clear();
    done_[op.op_id] = result_json;
  }
  std::map<std::string, std::string> writes;
  writes["task_ops/" + NodeKey(options_.node) + "/" + op.op_id] = "null";
  writes["task_results/" + NodeKey(op.from_node) + "/" + op.op_id] = result_json;
  absl::Status s = kv_->Update(writes);
  {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(op.op_id);
  }
  if (!s.ok()) {
    // The op stays in the database: the stream's next full snapshot brings
    // it back and the stored result is re-sent.
    LOG(WARNING) << "task ops: writing the result of " << op.op_id << ": " << s.message();
  }
}

namespace {

template <typename Req, typename Resp, typename Call>
TaskOpResult Invoke(const TaskOp& op, Call&& call) {
  TaskOpResult r;
  r.op_id = op.op_id;
  Req req;
  absl::Status parsed = ValueToMessage(op.request, &req);
  if (!parsed.ok()) {
    r.code = grpc::StatusCode::INVALID_ARGUMENT;
    r.message = "op " + op.op_id + ": " + std::string(parsed.message());
    return r;
  }
  if (req.task_id() != op.task_id) {
    r.code = grpc::StatusCode::INVALID_ARGUMENT;
    r.message = "op " + op.op_id + ": request task_id \"" + req.task_id() +
                "\" differs from the op's task \"" + op.task_id + "\"";
    return r;
  }
  Resp resp;
  grpc::Status st = call(req, &resp);
  r.code = st.error_code();
  r.message = st.error_message();
  if (st.ok()) r.response = MessageToValue(resp);
  return r;
}

}  // namespace

TaskOpResult TaskMirror::Run(const TaskOp& op) {
  TaskOpResult refused;
  refused.op_id = op.op_id;
  // The acting agent must be an agent of the requesting node, as mirrored
  // here: a node can act only for its own agents.
  absl::StatusOr<pb::Agent> agent = registry_->GetAgent(op.agent_id);
  if (!agent.ok() || !agent->remote() || agent->node() != op.from_node) {
    absl::MutexLock lock(&mu_);
    ++stats_.ops_refused;
    refused.code = grpc::StatusCode::PERMISSION_DENIED;
    refused.message = "op " + op.op_id + ": agent \"" + op.agent_id +
                      "\" is not a known agent of node \"" + op.from_node + "\" here";
    if (!agent.ok() && agent.status().code() == absl::StatusCode::kUnavailable) {
      refused.code = grpc::StatusCode::UNAVAILABLE;
      refused.message = "op " + op.op_id + ": registry unavailable";
    }
    return refused;
  }
  auto context = [&](grpc::ClientContext* ctx) {
    auth::SetBearer(ctx, options_.service_credential);
    ctx->AddMetadata("claudenet-on-behalf-of", op.agent_id);
    ctx->set_deadline(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(options_.call_deadline));
  };
  TaskOpResult r;
  switch (op.kind) {
    case TaskOpKind::kClaim:
      r = Invoke<pb::ClaimRequest, pb::ClaimResponse>(
          op, [&](pb::ClaimRequest req, pb::ClaimResponse* resp) {
            grpc::ClientContext ctx;
            context(&ctx);
            req.set_agent_id(op.agent_id);
            req.clear_wait();
            return stub_->Claim(&ctx, req, resp);
          });
      break;
    case TaskOpKind::kStart:
      r = Invoke<pb::StartRequest, pb::StartResponse>(
          op, [&](const pb::StartRequest& req, pb::StartResponse* resp) {
            grpc::ClientContext ctx;
            context(&ctx);
            return stub_->Start(&ctx, req, resp);
          });
      break;
    case TaskOpKind::kProgress:
      r = Invoke<pb::ProgressRequest, pb::ProgressResponse>(
          op, [&](const pb::ProgressRequest& req, pb::ProgressResponse* resp) {
            grpc::ClientContext ctx;
            context(&ctx);
            return stub_->Progress(&ctx, req, resp);
          });
      break;
    case TaskOpKind::kRenewLease:
      r = Invoke<pb::RenewLeaseRequest, pb::RenewLeaseResponse>(
          op, [&](const pb::RenewLeaseRequest& req, pb::RenewLeaseResponse* resp) {
            grpc::ClientContext ctx;
            context(&ctx);
            return stub_->RenewLease(&ctx, req, resp);
          });
      break;
    case TaskOpKind::kRelease:
      r = Invoke<pb::ReleaseRequest, pb::ReleaseResponse>(
          op, [&](const pb::ReleaseRequest& req, pb::ReleaseResponse* resp) {
            grpc::ClientContext ctx;
            context(&ctx);
            return stub_->Release(&ctx, req, resp);
          });
      break;
    case TaskOpKind::kComplete:
      r = Invoke<pb::CompleteRequest, pb::CompleteResponse>(
          op, [&](const pb::CompleteRequest& req, pb::CompleteResponse* resp) {
            grpc::ClientContext ctx;
            context(&ctx);
            return stub_->Complete(&ctx, req, resp);
          });
      break;
    case TaskOpKind::kFail:
      r = Invoke<pb::FailRequest, pb::FailResponse>(
          op, [&](const pb::FailRequest& req, pb::FailResponse* resp) {
            grpc::ClientContext ctx;
            context(&ctx);
            return stub_->Fail(&ctx, req, resp);
          });
      break;
  }
  absl::MutexLock lock(&mu_);
  ++stats_.ops_executed;
  return r;
}

}  // namespace cnet::federation
