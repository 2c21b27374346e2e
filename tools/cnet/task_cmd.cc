// `cnet task ...`: the task board, as an agent (or as the local admin for
// creating, reading and cancelling).
//
//   create TITLE       caps, priority, deps, tags, payload (flag/file/stdin),
//                      review policy, assignment
//   list               filtered by state, assignee, creator, capability, tag
//   show ID            one task (--explain: why it is not running / done)
//   claim [ID]         pull the best eligible task (or that one); --wait S
//                      long-polls; exit 2 when there is none. A task the
//                      scheduler already pushed to the caller (ASSIGNED,
//                      not started) counts as claimed ("pushed": true).
//   progress ID PCT    report progress (starts an ASSIGNED task), renews the
//                      lease; exit 3 when the lease is lost
//   complete ID        submit the result (summary, payload from flag/file/
//                      stdin, commit); starts an ASSIGNED task first
//   fail ID REASON     report failure (--retryable requeues)
//   review ID          --approve | --reject (--requeue), pinned to the
//                      submitted commit (default: the one on the task)
//   cancel ID          with --cascade and --reason
//   history ID         every transition
//   watch              follow the board's event stream (JSON Lines with --json)
//
// Holder calls (progress, complete, fail) take the lease id and epoch from
// the task itself: the caller must be the lease holder.
//
// Tasks owned by other nodes (federation): `list` also shows the remote
// tasks the MACS gateway's RemoteTaskService mirrors (skipped silently when
// the gateway does not answer); show, claim ID, progress, complete and fail
// fall back to RemoteTaskService when the local tasks service answers
// NOT_FOUND for the id. --remote goes straight to the gateway, --local-only
// never asks it.
#include <google/protobuf/util/time_util.h>

#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "proto/claudenet/v1/remote_tasks.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tools/cnet/common.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

namespace {

struct TaskFlags {
  std::string id;
  std::string title;
  std::string description, description_file;
  std::vector<std::string> caps;
  std::string priority;
  std::vector<std::string> deps;
  std::vector<std::string> tags;
  std::string payload, payload_file;
  std::string parent;
  int max_attempts = 0;
  bool review = false;
  std::string reviewer;
  std::string reviewer_cap;
  int approvals = 0;
  std::string assign_to;
  std::string idempotency_key;
  std::string workspace;
  // list
  std::vector<std::string> states;
  std::string assignee;
  std::string creator;
  std::string cap;
  int limit = 100;
  bool all = false;
  std::string order;
  // show
  bool explain = false;
  // claim
  double wait_seconds = 0;
  double lease_seconds = 0;
  // progress
  double percent = 0;
  std::string note;
  std::string checkpoint;
  // complete / fail
  std::string summary;
  std::string result, result_file;
  std::string commit;
  std::string reason;
  bool retryable = false;
  // review
  bool approve = false;
  bool reject = false;
  bool requeue = false;
  // cancel
  std::string cascade;
  // watch
  std::vector<std::string> task_ids;
  bool snapshot = false;
  int count = 0;
  double for_seconds = 0;
  int64_t from_sequence = 0;
  std::string agent_filter;
  // federation: tasks owned by other nodes (RemoteTaskService on the gateway)
  bool remote = false;
  bool local_only = false;
};

std::unique_ptr<pb::TaskService::Stub> Stub(Globals* g) {
  return pb::TaskService::NewStub(g->Channel(g->config().GetString("services.tasks_addr")));
}

// The task board of this node, or (remote()) the tasks of other nodes
// through the MACS gateway's RemoteTaskService: the holder calls have the
// same messages on both.
class Board {
 public:
  Board(Globals* g, bool remote) : g_(g), remote_(remote) {}
  bool remote() const { return remote_; }
  void UseRemote() { remote_ = true; }
  grpc::Status GetTask(grpc::ClientContext* c, const pb::GetTaskRequest& q,
                       pb::GetTaskResponse* r) {
    return remote_ ? R()->GetRemoteTask(c, q, r) : L()->GetTask(c, q, r);
  }
  grpc::Status ListTasks(grpc::ClientContext* c, const pb::ListTasksRequest& q,
                         pb::ListTasksResponse* r) {
    return remote_ ? R()->ListRemoteTasks(c, q, r) : L()->ListTasks(c, q, r);
  }
  grpc::Status Claim(grpc::ClientContext* c, const pb::ClaimRequest& q, pb::ClaimResponse* r) {
    return remote_ ? R()->Claim(c, q, r) : L()->Claim(c, q, r);
  }
  grpc::Status Start(grpc::ClientContext* c, const pb::StartRequest& q, pb::StartResponse* r) {
    return remote_ ? R()->Start(c, q, r) : L()->Start(c, q, r);
  }
  grpc::Status Progress(grpc::ClientContext* c, const pb::ProgressRequest& q,
                        pb::ProgressResponse* r) {
    return remote_ ? R()->Progress(c, q, r) : L()->Progress(c, q, r);
  }
  grpc::Status Complete(grpc::ClientContext* c, const pb::CompleteRequest& q,
                        pb::CompleteResponse* r) {
    return remote_ ? R()->Complete(c, q, r) : L()->Complete(c, q, r);
  }
  grpc::Status Fail(grpc::ClientContext* c, const pb::FailRequest& q, pb::FailResponse* r) {
    return remote_ ? R()->Fail(c, q, r) : L()->Fail(c, q, r);
  }

 private:
  pb::TaskService::Stub* L() {
    if (!local_) local_ = Stub(g_);
    return local_.get();
  }
  pb::RemoteTaskService::Stub* R() {
    if (!remote_stub_) {
      remote_stub_ = pb::RemoteTaskService::NewStub(
          g_->Channel(g_->config().GetString("services.macs_addr")));
    }
    return remote_stub_.get();
  }
  Globals* g_;
  bool remote_;
  std::unique_ptr<pb::TaskService::Stub> local_;
  std::unique_ptr<pb::RemoteTaskService::Stub> remote_stub_;
};

bool IsNotFound(const grpc::Status& s) { return s.error_code() == grpc::StatusCode::NOT_FOUND; }

std::string StateName(int s) { return ShortName(s, pb::TaskState_descriptor()); }

void PrintTaskLine(const pb::Task& t) {
  std::cout << absl::StrFormat("%-31s %-15s %-8s %-24s %s\n", t.id(), StateName(t.state()),
                               ShortName(t.priority(), pb::Priority_descriptor()),
                               t.assignee().empty() ? "-" : t.assignee(),
                               t.title().substr(0, 60));
}

void PrintTask(const pb::Task& t) {
  std::cout << "id:           " << t.id() << "\n"
            << "title:        " << t.title() << "\n"
            << "state:        " << StateName(t.state())
            << (t.blocked() ? " (blocked: " + t.blocked_reason() + ")" : "") << "\n"
            << "priority:     " << ShortName(t.priority(), pb::Priority_descriptor()) << "\n";
  if (!t.description().empty()) std::cout << "description:  " << t.description() << "\n";
  if (t.required_capabilities_size() > 0) {
    std::cout << "capabilities: " << absl::StrJoin(t.required_capabilities(), ", ") << "\n";
  }
  if (t.dependencies_size() > 0) {
    std::cout << "depends on:   " << absl::StrJoin(t.dependencies(), ", ") << "\n";
  }
  if (t.tags_size() > 0) std::cout << "tags:         " << absl::StrJoin(t.tags(), ", ") << "\n";
  std::cout << "creator:      " << t.creator().id() << "\n";
  if (!t.assignee().empty()) {
    std::cout << "assignee:     " << t.assignee() << " (attempt " << t.attempt() << ")\n";
  }
  if (t.has_progress()) {
    std::cout << "progress:     " << t.progress().percent() << "%"
              << (t.progress().note().empty() ? "" : " " + t.progress().note()) << " ("
              << Ago(t.progress().reported_at()) << ")\n";
  }
  if (t.review().required()) {
    std::cout << "review:       required" << (t.review().reviewer_agent_id().empty()
                                                  ? ""
                                                  : " by " + t.review().reviewer_agent_id())
              << "\n";
  }
  for (const auto& r : t.reviews()) {
    std::cout << "  verdict:    " << r.reviewer() << " "
              << ShortName(r.verdict(), pb::ReviewVerdict_descriptor())
              << (r.note().empty() ? "" : ": " + r.note()) << (r.superseded() ? " (superseded)" : "")
              << "\n";
  }
  if (t.has_result()) {
    std::cout << "result:       " << t.result().summary()
              << (t.result().commit_sha().empty() ? "" : " @ " + t.result().commit_sha()) << "\n";
    if (t.result().payload().fields_size() > 0) {
      std::cout << "result data:  " << ProtoJson(t.result().payload()) << "\n";
    }
  }
  if (t.payload().fields_size() > 0) std::cout << "payload:      " << ProtoJson(t.payload()) << "\n";
  if (!t.terminal_reason().empty()) std::cout << "reason:       " << t.terminal_reason() << "\n";
  std::cout << "created:      " << TimeUtil::ToString(t.created_at()) << " ("
            << Ago(t.created_at()) << ")\n"
            << "updated:      " << Ago(t.updated_at()) << "\n";
}

// The caller's lease on the task: FAILED_PRECONDITION when another agent
// (or nobody) holds it.
// Reads the task; when this node does not know it (NOT_FOUND) and remote
// tasks are allowed, switches `board` to RemoteTaskService and reads it there.
absl::StatusOr<pb::Task> HeldTask(Globals* g, Board* board, const Identity& who,
                                  const std::string& id, bool local_only = false) {
  pb::GetTaskRequest req;
  req.set_task_id(id);
  pb::GetTaskResponse resp;
  grpc::Status s = board->GetTask(g->Context(who.token).get(), req, &resp);
  if (IsNotFound(s) && !board->remote() && !local_only) {
    board->UseRemote();
    pb::GetTaskResponse remote;
    grpc::Status rs = board->GetTask(g->Context(who.token).get(), req, &remote);
    if (rs.ok()) return remote.task();
    // Neither knows it: report the local answer.
  }
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  return resp.task();
}

absl::Status NeedHolder(const pb::Task& t, const Identity& who) {
  if (t.lease().lease_id().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        t.id(), " is ", StateName(t.state()), " and has no lease: claim it first"));
  }
  if (!who.id.empty() && t.lease().holder() != who.id) {
    return absl::FailedPreconditionError(
        absl::StrCat(t.id(), " is held by ", t.lease().holder(), ", not ", who.id));
  }
  return absl::OkStatus();
}

int PrintTaskResult(Globals* g, const pb::Task& t, const std::string& verb) {
  if (g->json) {
    PrintJson({{"task", ProtoJsonValue(t)}});
  } else {
    std::cout << t.id() << " " << verb << ": " << StateName(t.state()) << "\n";
  }
  return kExitOk;
}

int Create(Globals* g, const TaskFlags& f) {
  const std::string what = "task create";
  pb::CreateTaskRequest req;
  req.set_title(f.title);
  absl::StatusOr<std::string> description =
      ReadInput(f.description, f.description_file, "--description");
  if (!description.ok()) return ReportAbsl(*g, what, description.status());
  req.set_description(*description);
  for (const auto& c : f.caps) req.add_required_capabilities(c);
  for (const auto& d : f.deps) req.add_dependencies(d);
  for (const auto& t : f.tags) req.add_tags(t);
  int value = 0;
  if (!f.priority.empty()) {
    if (!ParseEnum(f.priority, pb::Priority_descriptor(), &value)) {
      return ReportUsage(*g, what, "--priority: low, normal, high or critical");
    }
    req.set_priority(static_cast<pb::Priority>(value));
  }
  absl::StatusOr<std::string> payload = ReadInput(f.payload, f.payload_file, "--payload");
  if (!payload.ok()) return ReportAbsl(*g, what, payload.status());
  if (!payload->empty()) {
    absl::Status s = ParseStruct(*payload, "--payload", req.mutable_payload());
    if (!s.ok()) return ReportAbsl(*g, what, s);
  }
  req.set_parent_id(f.parent);
  req.set_max_attempts(f.max_attempts);
  if (f.review || !f.reviewer.empty() || !f.reviewer_cap.empty() || f.approvals > 0) {
    req.mutable_review()->set_required(true);
    req.mutable_review()->set_reviewer_agent_id(f.reviewer);
    req.mutable_review()->set_reviewer_capability(f.reviewer_cap);
    req.mutable_review()->set_required_approvals(f.approvals);
  }
  req.set_assign_to(f.assign_to);
  req.set_idempotency_key(f.idempotency_key);
  req.set_workspace(f.workspace);
  pb::CreateTaskResponse resp;
  grpc::Status s = Stub(g)->CreateTask(g->Context(ReaderCredential(g)).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, what, s);
  if (g->json) {
    PrintJson({{"created", resp.created()}, {"task", ProtoJsonValue(resp.task())}});
  } else {
    std::cout << resp.task().id() << (resp.created() ? " created: " : " exists: ")
              << StateName(resp.task().state()) << "\n";
  }
  return kExitOk;
}

int List(Globals* g, const TaskFlags& f) {
  pb::ListTasksRequest req;
  if (f.limit < 1 || f.limit > 1000) return ReportUsage(*g, "task list", "--limit: 1..1000");
  req.set_page_size(f.limit);
  for (const auto& s : f.states) {
    int value = 0;
    if (!ParseEnum(s, pb::TaskState_descriptor(), &value)) {
      return ReportUsage(*g, "task list",
                         "--state: created, queued, assigned, running, input_required, "
                         "reviewing, completed, failed or cancelled");
    }
    req.add_states(static_cast<pb::TaskState>(value));
  }
  req.set_assignee(f.assignee);
  req.set_creator(f.creator);
  req.set_capability(f.cap);
  for (const auto& t : f.tags) req.add_tags(t);
  if (!f.order.empty()) {
    int value = 0;
    if (!ParseEnum(f.order, pb::TaskOrder_descriptor(), &value)) {
      return ReportUsage(*g, "task list", "--order: created, created_desc, queue, updated_desc");
    }
    req.set_order_by(static_cast<pb::TaskOrder>(value));
  }
  if (f.remote && f.local_only) {
    return ReportUsage(*g, "task list", "--remote and --local-only exclude each other");
  }
  std::string token = ReaderCredential(g);
  std::vector<pb::Task> tasks;
  int64_t total = 0;
  int64_t remote_total = 0;
  // This node's board (unless --remote), then the tasks of other nodes from
  // the gateway (unless --local-only; skipped when it does not offer them).
  for (bool remote : {false, true}) {
    if (remote ? f.local_only : f.remote) continue;
    Board board(g, remote);
    pb::ListTasksRequest q = req;
    if (remote) q.clear_order_by();  // the gateway lists by id
    for (;;) {
      pb::ListTasksResponse page;
      grpc::Status s = board.ListTasks(g->Context(token).get(), q, &page);
      if (!s.ok() && remote && !f.remote) {
        if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
            s.error_code() != grpc::StatusCode::UNIMPLEMENTED && !g->json) {
          std::cerr << "cnet task list: remote tasks skipped: " << s.error_message() << "\n";
        }
        break;
      }
      if (!s.ok()) return ReportError(*g, remote ? "task list --remote" : "task list", s);
      (remote ? remote_total : total) = page.total_size();
      for (auto& t : *page.mutable_tasks()) tasks.push_back(std::move(t));
      if (!f.all || page.next_page_token().empty()) break;
      q.set_page_token(page.next_page_token());
    }
  }
  total += remote_total;
  if (g->json) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& t : tasks) items.push_back(ProtoJsonValue(t));
    PrintJson({{"total", total}, {"remote_total", remote_total}, {"tasks", items}});
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-31s %-15s %-8s %-24s %s\n", "ID", "STATE", "PRIORITY",
                               "ASSIGNEE", "TITLE");
  for (const auto& t : tasks) PrintTaskLine(t);
  std::cout << tasks.size() << " of " << total << " tasks\n";
  return kExitOk;
}

int Show(Globals* g, const TaskFlags& f) {
  auto stub = Stub(g);
  std::string token = ReaderCredential(g);
  pb::GetTaskRequest req;
  req.set_task_id(f.id);
  pb::GetTaskResponse resp;
  Board board(g, f.remote);
  grpc::Status s = board.GetTask(g->Context(token).get(), req, &resp);
  if (IsNotFound(s) && !f.remote && !f.local_only) {
    // Owned by another node? Ask the gateway's RemoteTaskService.
    board.UseRemote();
    pb::GetTaskResponse remote;
    grpc::Status rs = board.GetTask(g->Context(token).get(), req, &remote);
    if (rs.ok()) {
      resp = std::move(remote);
      s = rs;
    }
  }
  if (!s.ok()) return ReportError(*g, "task show " + f.id, s);
  pb::ExplainTaskResponse explain;
  if (f.explain && board.remote()) {
    return ReportUsage(*g, "task show --explain " + f.id,
                       "--explain: not available for a task owned by another node (" +
                           resp.task().origin_node() + ")");
  }
  if (f.explain) {
    pb::ExplainTaskRequest ereq;
    ereq.set_task_id(f.id);
    s = stub->ExplainTask(g->Context(token).get(), ereq, &explain);
    if (!s.ok()) return ReportError(*g, "task show --explain " + f.id, s);
  }
  if (g->json) {
    nlohmann::json out = {{"task", ProtoJsonValue(resp.task())}};
    if (f.explain) out["explain"] = ProtoJsonValue(explain);
    PrintJson(out);
    return kExitOk;
  }
  PrintTask(resp.task());
  if (f.explain) {
    std::cout << "explain:      " << explain.summary() << "\n";
    for (const auto& r : explain.reasons()) {
      std::cout << "  - " << ShortName(r.kind(), pb::BlockingReasonKind_descriptor())
                << (r.detail().empty() ? "" : ": " + r.detail()) << "\n";
    }
  }
  return kExitOk;
}

int Claim(Globals* g, const TaskFlags& f) {
  const std::string what = "task claim";
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, what, who.status());
  if (f.wait_seconds < 0 || f.wait_seconds > 300) {
    return ReportUsage(*g, what, "--wait: 0..300 seconds");
  }
  pb::ClaimRequest req;
  req.set_agent_id(who->id);
  req.set_task_id(f.id);
  for (const auto& c : f.caps) req.add_capabilities(c);
  for (const auto& t : f.tags) req.add_tags(t);
  req.set_workspace(f.workspace);
  if (f.wait_seconds > 0) {
    req.mutable_wait()->set_seconds(static_cast<int64_t>(f.wait_seconds));
    req.mutable_wait()->set_nanos(
        static_cast<int32_t>((f.wait_seconds - static_cast<int64_t>(f.wait_seconds)) * 1e9));
  }
  if (f.lease_seconds > 0) req.mutable_lease_duration()->set_seconds(
      static_cast<int64_t>(f.lease_seconds));
  // The long poll lasts up to --wait: the deadline covers it.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + who->token);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(
                       static_cast<int64_t>(1000 * (f.wait_seconds + g->timeout_seconds))));
  pb::ClaimResponse resp;
  Board board(g, f.remote);
  Board* stub = &board;
  if (f.remote && (f.id.empty() || f.wait_seconds > 0)) {
    return ReportUsage(*g, what, "--remote: name the task id, and no --wait");
  }
  grpc::Status s = stub->Claim(&ctx, req, &resp);
  if (IsNotFound(s) && !f.id.empty() && !f.remote && !f.local_only) {
    // Not a task of this node: claim it from its owner through the gateway
    // (a remote claim does not long-poll).
    board.UseRemote();
    req.clear_wait();
    grpc::ClientContext rctx;
    rctx.AddMetadata("authorization", "Bearer " + who->token);
    rctx.set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(1000 * g->timeout_seconds)));
    pb::ClaimResponse remote;
    grpc::Status rs = board.Claim(&rctx, req, &remote);
    if (!IsNotFound(rs)) {
      s = rs;
      resp = std::move(remote);
    }
  }
  bool pushed = false;
  if (!board.remote() && (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION || (s.ok() && !resp.has_task())) &&
      f.caps.empty() && f.tags.empty() && f.workspace.empty()) {
    // The scheduler may already have pushed a task to us (push assignment):
    // that is our claim. Oldest first.
    pb::ListTasksRequest list;
    list.set_assignee(who->id);
    list.add_states(pb::TASK_STATE_ASSIGNED);
    list.set_order_by(pb::TASK_ORDER_CREATED);
    list.set_page_size(100);
    pb::ListTasksResponse mine;
    if (stub->ListTasks(g->Context(who->token).get(), list, &mine).ok()) {
      for (const pb::Task& t : mine.tasks()) {
        if (!f.id.empty() && t.id() != f.id) continue;
        *resp.mutable_task() = t;
        *resp.mutable_lease() = t.lease();
        pushed = true;
        s = grpc::Status::OK;
        break;
      }
    }
  }
  if (!s.ok()) return ReportError(*g, what, s);
  if (!resp.has_task() || resp.task().id().empty()) {
    if (g->json) {
      PrintJson({{"task", nullptr}});
    } else {
      std::cerr << "cnet task claim: no eligible task"
                << (f.wait_seconds > 0 ? " within the wait" : "") << "\n";
    }
    return kExitNotFound;
  }
  if (g->json) {
    nlohmann::json out = {{"task", ProtoJsonValue(resp.task())},
                          {"lease", ProtoJsonValue(resp.lease())}};
    if (!resp.stolen_from().empty()) out["stolen_from"] = resp.stolen_from();
    out["pushed"] = pushed;
    PrintJson(out);
  } else {
    std::cout << (pushed ? "assigned to you by the scheduler: " : "claimed ") << resp.task().id() << " (" << resp.task().title() << "), lease epoch "
              << resp.lease().epoch() << " until " << TimeUtil::ToString(resp.lease().expires_at())
              << (resp.stolen_from().empty() ? "" : ", stolen from " + resp.stolen_from()) << "\n";
  }
  return kExitOk;
}

int Progress(Globals* g, const TaskFlags& f) {
  const std::string what = "task progress " + f.id;
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, what, who.status());
  Board board(g, f.remote);
  Board* stub = &board;
  absl::StatusOr<pb::Task> t = HeldTask(g, stub, *who, f.id, f.local_only);
  if (!t.ok()) return ReportAbsl(*g, what, t.status());
  if (absl::Status held = NeedHolder(*t, *who); !held.ok()) return ReportAbsl(*g, what, held);
  pb::ProgressRequest req;
  req.set_task_id(f.id);
  req.set_lease_id(t->lease().lease_id());
  req.set_lease_epoch(t->lease().epoch());
  req.set_percent(f.percent);
  req.set_note(f.note);
  if (!f.checkpoint.empty()) {
    absl::Status s = ParseStruct(f.checkpoint, "--checkpoint", req.mutable_checkpoint());
    if (!s.ok()) return ReportAbsl(*g, what, s);
  }
  pb::ProgressResponse resp;
  grpc::Status s = stub->Progress(g->Context(who->token).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, what, s);
  if (g->json) {
    std::cout << ProtoJson(resp) << "\n";
  } else if (resp.lease_valid()) {
    std::cout << f.id << ": " << f.percent << "% (" << StateName(resp.task_state()) << ")"
              << (resp.cancel_requested() ? "; CANCEL REQUESTED: stop and release" : "") << "\n";
  }
  if (!resp.lease_valid()) {
    if (!g->json) {
      std::cerr << "cnet " << what << ": lease lost ("
                << ShortName(resp.lease_loss_reason(), pb::LeaseLossReason_descriptor())
                << "): stop working on it\n";
    }
    return kExitConflict;
  }
  return kExitOk;
}

int Complete(Globals* g, const TaskFlags& f) {
  const std::string what = "task complete " + f.id;
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, what, who.status());
  Board board(g, f.remote);
  Board* stub = &board;
  absl::StatusOr<pb::Task> t = HeldTask(g, stub, *who, f.id, f.local_only);
  if (!t.ok()) return ReportAbsl(*g, what, t.status());
  pb::CompleteRequest req;
  req.set_task_id(f.id);
  // A resubmission (REVIEWING / COMPLETED) needs no lease.
  bool resubmit =
      t->state() == pb::TASK_STATE_REVIEWING || t->state() == pb::TASK_STATE_COMPLETED;
  if (!resubmit) {
    if (absl::Status held = NeedHolder(*t, *who); !held.ok()) return ReportAbsl(*g, what, held);
    req.set_lease_id(t->lease().lease_id());
    req.set_lease_epoch(t->lease().epoch());
    if (t->state() == pb::TASK_STATE_ASSIGNED) {
      pb::StartRequest start;
      start.set_task_id(f.id);
      start.set_lease_id(t->lease().lease_id());
      start.set_lease_epoch(t->lease().epoch());
      pb::StartResponse started;
      grpc::Status s = stub->Start(g->Context(who->token).get(), start, &started);
      if (!s.ok()) return ReportError(*g, what + " (start)", s);
      req.set_lease_epoch(started.lease().epoch());
    }
  }
  pb::TaskResult* result = req.mutable_result();
  result->set_stop_reason(pb::STOP_REASON_DONE);
  result->set_summary(f.summary);
  result->set_commit_sha(f.commit);
  absl::StatusOr<std::string> payload = ReadInput(f.result, f.result_file, "--result");
  if (!payload.ok()) return ReportAbsl(*g, what, payload.status());
  if (!payload->empty()) {
    absl::Status s = ParseStruct(*payload, "--result", result->mutable_payload());
    if (!s.ok()) return ReportAbsl(*g, what, s);
  }
  pb::CompleteResponse resp;
  grpc::Status s = stub->Complete(g->Context(who->token).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, what, s);
  return PrintTaskResult(g, resp.task(), "submitted");
}

int Fail(Globals* g, const TaskFlags& f) {
  const std::string what = "task fail " + f.id;
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, what, who.status());
  Board board(g, f.remote);
  Board* stub = &board;
  absl::StatusOr<pb::Task> t = HeldTask(g, stub, *who, f.id, f.local_only);
  if (!t.ok()) return ReportAbsl(*g, what, t.status());
  if (absl::Status held = NeedHolder(*t, *who); !held.ok()) return ReportAbsl(*g, what, held);
  pb::FailRequest req;
  req.set_task_id(f.id);
  req.set_lease_id(t->lease().lease_id());
  req.set_lease_epoch(t->lease().epoch());
  req.set_reason(f.reason);
  req.set_retryable(f.retryable);
  pb::FailResponse resp;
  grpc::Status s = stub->Fail(g->Context(who->token).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, what, s);
  return PrintTaskResult(g, resp.task(), "failed");
}

int Review(Globals* g, const TaskFlags& f) {
  const std::string what = "task review " + f.id;
  if (f.approve == f.reject) return ReportUsage(*g, what, "give exactly one of --approve, --reject");
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  std::string token = who.ok() ? who->token : g->AdminCredential();
  auto stub = Stub(g);
  pb::ReviewRequest req;
  req.set_task_id(f.id);
  req.set_verdict(f.approve ? pb::REVIEW_VERDICT_APPROVE : pb::REVIEW_VERDICT_REJECT);
  if (f.reject) req.set_reject_mode(f.requeue ? pb::REJECT_MODE_REQUEUE : pb::REJECT_MODE_FAIL);
  req.set_note(f.note);
  std::string sha = f.commit;
  if (sha.empty()) {
    // Review what is submitted now (the service still refuses a stale SHA).
    Identity reader;
    reader.token = token;
    Board local(g, false);
    absl::StatusOr<pb::Task> t = HeldTask(g, &local, reader, f.id, /*local_only=*/true);
    if (!t.ok()) return ReportAbsl(*g, what, t.status());
    sha = t->result().commit_sha();
  }
  req.set_reviewed_commit_sha(sha);
  pb::ReviewResponse resp;
  grpc::Status s = stub->Review(g->Context(token).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, what, s);
  return PrintTaskResult(g, resp.task(), f.approve ? "approved" : "rejected");
}

int Cancel(Globals* g, const TaskFlags& f) {
  const std::string what = "task cancel " + f.id;
  pb::CancelRequest req;
  req.set_task_id(f.id);
  req.set_reason(f.reason);
  if (!f.cascade.empty()) {
    if (f.cascade == "none") {
      req.set_cascade(pb::CANCEL_CASCADE_NONE);
    } else if (f.cascade == "subtasks") {
      req.set_cascade(pb::CANCEL_CASCADE_SUBTASKS);
    } else if (f.cascade == "all") {
      req.set_cascade(pb::CANCEL_CASCADE_SUBTASKS_AND_DEPENDENTS);
    } else {
      return ReportUsage(*g, what, "--cascade: none, subtasks or all");
    }
  }
  pb::CancelResponse resp;
  grpc::Status s = Stub(g)->Cancel(g->Context(ReaderCredential(g)).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, what, s);
  if (g->json) {
    std::cout << ProtoJson(resp) << "\n";
    return kExitOk;
  }
  std::cout << f.id << ": " << StateName(resp.task().state())
            << (resp.task().cancel_requested() && resp.task().state() != pb::TASK_STATE_CANCELLED
                    ? " (cancel requested, grace period running)"
                    : "")
            << "\n";
  for (const auto& id : resp.cascaded_task_ids()) std::cout << "  also cancelled " << id << "\n";
  return kExitOk;
}

int History(Globals* g, const TaskFlags& f) {
  auto stub = Stub(g);
  std::string token = ReaderCredential(g);
  pb::GetHistoryRequest req;
  req.set_task_id(f.id);
  req.set_page_size(1000);
  std::vector<pb::TaskTransition> all;
  for (;;) {
    pb::GetHistoryResponse resp;
    grpc::Status s = stub->GetHistory(g->Context(token).get(), req, &resp);
    if (!s.ok()) return ReportError(*g, "task history " + f.id, s);
    for (auto& t : *resp.mutable_transitions()) all.push_back(std::move(t));
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (g->json) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& t : all) items.push_back(ProtoJsonValue(t));
    PrintJson({{"task_id", f.id}, {"transitions", items}});
    return kExitOk;
  }
  for (const auto& t : all) {
    std::cout << TimeUtil::ToString(t.time()).substr(0, 19) << "  " << absl::StrFormat("%-14s", StateName(t.from_state()))
              << " -> " << absl::StrFormat("%-14s", StateName(t.to_state())) << " by "
              << (t.actor().id().empty() ? ShortName(t.actor().kind(), pb::PrincipalKind_descriptor())
                                         : t.actor().id())
              << (t.reason().empty() ? "" : ": " + t.reason()) << "\n";
  }
  return kExitOk;
}

std::string EventLine(const pb::TaskEvent& e) {
  std::string type = ShortName(e.type(), pb::TaskEventType_descriptor());
  std::string line = absl::StrCat("#", e.sequence(), " ", type);
  if (e.has_transition()) {
    absl::StrAppend(&line, " ", e.task().id(), " ", StateName(e.transition().from_state()),
                    " -> ", StateName(e.transition().to_state()));
    if (!e.transition().reason().empty()) absl::StrAppend(&line, " (", e.transition().reason(), ")");
  } else if (e.has_task()) {
    absl::StrAppend(&line, " ", e.task().id(), " ", StateName(e.task().state()), " ",
                    e.task().title());
    if (e.type() == pb::TASK_EVENT_TYPE_PROGRESS) {
      absl::StrAppend(&line, " ", e.task().progress().percent(), "% ", e.task().progress().note());
    }
  } else if (e.has_reservation()) {
    absl::StrAppend(&line, " ", e.reservation().holder(), " ", e.reservation().workspace(), ":",
                    e.reservation().pattern());
  }
  return line;
}

int Watch(Globals* g, const TaskFlags& f) {
  pb::WatchTasksRequest req;
  req.set_from_sequence(f.from_sequence);
  req.set_send_snapshot(f.snapshot);
  for (const auto& id : f.task_ids) req.add_task_ids(id);
  for (const auto& s : f.states) {
    int value = 0;
    if (!ParseEnum(s, pb::TaskState_descriptor(), &value)) {
      return ReportUsage(*g, "task watch", "--state: a task state, e.g. queued");
    }
    req.add_states(static_cast<pb::TaskState>(value));
  }
  req.set_agent_id(f.agent_filter);
  for (const auto& t : f.tags) req.add_tags(t);
  auto stub = Stub(g);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + ReaderCredential(g));
  if (f.for_seconds > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(f.for_seconds * 1000)));
  }
  StopSignal stop([&ctx] { ctx.TryCancel(); });
  auto reader = stub->Watch(&ctx, req);
  pb::TaskEvent e;
  int seen = 0;
  while ((f.count == 0 || seen < f.count) && reader->Read(&e)) {
    if (e.type() == pb::TASK_EVENT_TYPE_CHECKPOINT) continue;
    ++seen;
    if (g->json) {
      std::cout << ProtoJson(e) << std::endl;  // JSON Lines: one object per event
    } else {
      std::cout << EventLine(e) << std::endl;
    }
    if (e.type() == pb::TASK_EVENT_TYPE_RESYNC_REQUIRED) {
      std::cerr << "cnet task watch: fell behind; restart with --snapshot\n";
      ctx.TryCancel();
      return kExitUnavailable;
    }
  }
  if (f.count > 0 && seen >= f.count) {
    ctx.TryCancel();
    reader->Finish();
    return kExitOk;
  }
  grpc::Status s = reader->Finish();
  if (stop.stopped() || (f.for_seconds > 0 && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)) {
    return kExitOk;
  }
  if (!s.ok()) return ReportError(*g, "task watch", s);
  return kExitOk;
}

}  // namespace

// --remote / --local-only of the commands that act on one task id.
static void AddRemoteFlags(CLI::App* cmd, const std::shared_ptr<TaskFlags>& f) {
  cmd->add_flag("--remote", f->remote, "a task owned by another node (RemoteTaskService)");
  cmd->add_flag("--local-only", f->local_only, "never fall back to RemoteTaskService");
}

void AddTaskCommands(CLI::App* app, Globals* g) {
  auto f = std::make_shared<TaskFlags>();
  auto* group = app->add_subcommand("task", "the task board: create, claim, work, review");
  group->require_subcommand(1);
  group->footer("The acting agent: --agent ID / CNET_AGENT, or --token / CNET_TOKEN, else the\n"
                "only identity saved by `cnet agent join`; reads and create/cancel fall back to\n"
                "the local admin credential.");

  auto* create = group->add_subcommand("create", "create a task");
  create->add_option("title", f->title, "title, 1..256 bytes")->required();
  create->add_option("--description,-d", f->description, "description");
  create->add_option("--description-file", f->description_file, "description from a file, - stdin");
  create->add_option("--cap,-c", f->caps, "required capability; repeat (agent needs ALL)");
  create->add_option("--priority,-p", f->priority, "low, normal, high or critical");
  create->add_option("--dep", f->deps, "id of a task that must complete first; repeat");
  create->add_option("--tag", f->tags, "tag; repeat");
  create->add_option("--payload", f->payload, "input for the agent, a JSON object");
  create->add_option("--payload-file", f->payload_file, "payload from a file, - for stdin");
  create->add_option("--parent", f->parent, "parent task id (a subtask)");
  create->add_option("--max-attempts", f->max_attempts, "0..100 (0 = default)");
  create->add_flag("--review", f->review, "the result needs a reviewer's approval");
  create->add_option("--reviewer", f->reviewer, "the designated reviewer (implies --review)");
  create->add_option("--reviewer-cap", f->reviewer_cap, "reviewers need this capability");
  create->add_option("--approvals", f->approvals, "distinct approvals needed (1..5)");
  create->add_option("--assign-to", f->assign_to, "only this agent may take it");
  create->add_option("--idempotency-key", f->idempotency_key, "repeat-safe creation key");
  create->add_option("--workspace", f->workspace, "workspace (repository) of the task");
  create->footer("Example: cnet task create 'Fix flaky test' -c python -p high --dep task-01j... \\\n"
                 "           --payload-file spec.json --review");
  create->callback([g, f] { g->exit_code = Create(g, *f); });

  auto* list = group->add_subcommand("list", "list tasks, filtered");
  list->add_option("--state", f->states, "a state; repeat");
  list->add_option("--assignee", f->assignee, "assigned to this agent");
  list->add_option("--creator", f->creator, "created by this principal");
  list->add_option("--cap", f->cap, "requiring this capability");
  list->add_option("--tag", f->tags, "having this tag; repeat");
  list->add_option("--order", f->order, "created, created_desc, queue or updated_desc");
  list->add_option("--limit", f->limit, "tasks per page (1..1000)")->capture_default_str();
  list->add_flag("--all", f->all, "every page");
  list->add_flag("--remote", f->remote, "only tasks owned by other nodes (via the MACS gateway)");
  list->add_flag("--local-only", f->local_only, "only this node's tasks (do not ask the gateway)");
  list->footer("Example: cnet task list --state queued --order queue");
  list->callback([g, f] { g->exit_code = List(g, *f); });

  auto* show = group->add_subcommand("show", "show one task");
  show->add_option("id", f->id, "task id")->required();
  show->add_flag("--explain", f->explain, "also why it is not running (or not done)");
  show->footer("Example: cnet task show task-01j... --explain");
  AddRemoteFlags(show, f);
  show->callback([g, f] { g->exit_code = Show(g, *f); });

  auto* claim = group->add_subcommand("claim", "take the best eligible task (or the one named)");
  claim->add_option("id", f->id, "a specific task id");
  claim->add_option("--wait", f->wait_seconds, "long-poll up to this many seconds (0..300)");
  claim->add_option("--lease", f->lease_seconds, "lease length, seconds (10..3600)");
  claim->add_option("--cap", f->caps, "only tasks needing these of your capabilities");
  claim->add_option("--tag", f->tags, "only tasks with this tag");
  claim->add_option("--workspace", f->workspace, "only tasks of this workspace");
  claim->footer("Example: cnet task claim --wait 30 --json   (exit 2 when there is none)");
  AddRemoteFlags(claim, f);
  claim->callback([g, f] { g->exit_code = Claim(g, *f); });

  auto* progress = group->add_subcommand("progress", "report progress on a task you hold");
  progress->add_option("id", f->id, "task id")->required();
  progress->add_option("percent", f->percent, "0..100")->required();
  progress->add_option("note", f->note, "what is happening");
  progress->add_option("--checkpoint", f->checkpoint, "resume state for a later owner (JSON)");
  progress->footer("Example: cnet task progress task-01j... 40 'tests written'");
  AddRemoteFlags(progress, f);
  progress->callback([g, f] { g->exit_code = Progress(g, *f); });

  auto* complete = group->add_subcommand("complete", "submit the result of a task you hold");
  complete->add_option("id", f->id, "task id")->required();
  complete->add_option("--summary,-m", f->summary, "what was done");
  complete->add_option("--result", f->result, "result payload, a JSON object");
  complete->add_option("--result-file", f->result_file, "result from a file, - for stdin");
  complete->add_option("--commit", f->commit, "commit SHA of the work (40 or 64 hex)");
  complete->footer("Example: echo '{\"tests\":12}' | cnet task complete task-01j... -m done "
                   "--result-file -");
  AddRemoteFlags(complete, f);
  complete->callback([g, f] { g->exit_code = Complete(g, *f); });

  auto* fail = group->add_subcommand("fail", "report that a task you hold failed");
  fail->add_option("id", f->id, "task id")->required();
  fail->add_option("reason", f->reason, "why (one line)")->required();
  fail->add_flag("--retryable", f->retryable, "requeue it when attempts remain");
  fail->footer("Example: cnet task fail task-01j... 'upstream API down' --retryable");
  AddRemoteFlags(fail, f);
  fail->callback([g, f] { g->exit_code = Fail(g, *f); });

  auto* review = group->add_subcommand("review", "approve or reject a submitted result");
  review->add_option("id", f->id, "task id")->required();
  review->add_flag("--approve", f->approve, "approve");
  review->add_flag("--reject", f->reject, "reject");
  review->add_flag("--requeue", f->requeue, "with --reject: queue it again instead of failing");
  review->add_option("--note", f->note, "the reviewer's note");
  review->add_option("--commit", f->commit, "the reviewed commit (default: the submitted one)");
  review->footer("Example: cnet task review task-01j... --reject --requeue --note 'add a test'");
  review->callback([g, f] { g->exit_code = Review(g, *f); });

  auto* cancel = group->add_subcommand("cancel", "cancel a task");
  cancel->add_option("id", f->id, "task id")->required();
  cancel->add_option("--reason", f->reason, "why");
  cancel->add_option("--cascade", f->cascade, "none, subtasks or all (subtasks and dependents)");
  cancel->footer("Example: cnet task cancel task-01j... --reason 'not needed' --cascade all");
  cancel->callback([g, f] { g->exit_code = Cancel(g, *f); });

  auto* history = group->add_subcommand("history", "every transition of a task");
  history->add_option("id", f->id, "task id")->required();
  history->footer("Example: cnet task history task-01j...");
  history->callback([g, f] { g->exit_code = History(g, *f); });

  auto* watch = group->add_subcommand("watch", "follow board events as they happen");
  watch->add_option("--task", f->task_ids, "only this task; repeat");
  watch->add_option("--state", f->states, "only tasks in this state; repeat");
  watch->add_option("--assignee", f->agent_filter, "only tasks of this agent");
  watch->add_option("--tag", f->tags, "only tasks with this tag");
  watch->add_flag("--snapshot", f->snapshot, "start with the matching tasks as they are");
  watch->add_option("--from", f->from_sequence, "resume after this event sequence");
  watch->add_option("--count,-n", f->count, "stop after this many events");
  watch->add_option("--for", f->for_seconds, "stop after this many seconds");
  watch->footer("Example: cnet task watch --assignee agent-01j... --json   (JSON Lines)");
  watch->callback([g, f] { g->exit_code = Watch(g, *f); });
}

}  // namespace cnet::cli
