// Adapter tests over a real channel (server on 127.0.0.1, port 0): the main
// flows, long-poll Claim, Watch, reservations, credentials, and every bad
// input of the issue with its status code, its ErrorDetail reason, and
// nothing stored.
#include "services/tasks/tasks_service.h"

#include <stdlib.h>

#include <map>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/common.pb.h"
#include "services/tasks/in_memory.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks {
namespace {

namespace pb = ::claudenet::v1;

// Agent tokens of the test, standing in for the registry's authenticator.
class TestTokens final : public auth::Authenticator {
 public:
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override {
    static const std::map<std::string, std::string> kTokens = {
        {"tok-a1", "a1"}, {"tok-a2", "a2"}, {"tok-boss", "boss"}, {"tok-rev", "rev"},
        {"tok-go", "gopher"}};
    auto it = kTokens.find(std::string(credential));
    if (it == kTokens.end()) return absl::UnauthenticatedError("authorization: unknown token");
    return auth::Principal{auth::Kind::kAgent, it->second, ""};
  }
};

std::chrono::system_clock::time_point Deadline(int seconds = 30) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

class TasksServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/tasksvcXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    Store::Options so;
    so.path = dir_ + "/tasks.db";
    store_ = std::move(*Store::Open(so));
    for (const char* a : {"a1", "a2", "rev"}) {
      AgentInfo info;
      info.id = a;
      info.capabilities = {"py"};
      info.max_concurrent_tasks = 10;
      directory_.Put(info);
    }
    AgentInfo go;
    go.id = "gopher";
    go.capabilities = {"go"};
    directory_.Put(go);
    BoardOptions o;
    o.background = false;
    o.push_assignment = false;
    o.sweep_interval = absl::ZeroDuration();
    board_ = std::move(*Board::Open(o, store_.get(), &clock_, &directory_, &notifier_));
    impl_ = std::make_unique<TaskServiceImpl>(board_.get());
    ServerOptions options;
    options.name = "tasks";
    options.services = {impl_.get()};
    options.health_names = {"claudenet.v1.TaskService"};
    options.interceptors.push_back(auth::MakeAuthInterceptorFactory(
        std::make_shared<auth::StaticAuthenticator>("admin-cred", "svc-cred",
                                                    std::make_shared<TestTokens>())));
    auto server = GrpcServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = MakeChannel(server_->address());
    stub_ = pb::TaskService::NewStub(channel_);
  }

  void TearDown() override {
    board_->Shutdown();
    server_->Shutdown(absl::Seconds(5));
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& credential = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(Deadline());
    if (!credential.empty()) auth::SetBearer(ctx.get(), credential);
    return ctx;
  }

  static std::string Reason(const grpc::ClientContext& ctx) {
    auto md = ctx.GetServerTrailingMetadata();
    auto it = md.find("claudenet-error-bin");
    if (it == md.end()) return "";
    pb::ErrorDetail d;
    d.ParseFromString(std::string(it->second.data(), it->second.size()));
    return d.reason();
  }

  pb::Task Create(const std::string& title, const std::string& token = "tok-boss") {
    pb::CreateTaskRequest req;
    req.set_title(title);
    req.add_required_capabilities("py");
    pb::CreateTaskResponse resp;
    auto ctx = Ctx(token);
    grpc::Status s = stub_->CreateTask(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.task();
  }

  int64_t Count() {
    pb::ListTasksResponse resp;
    auto ctx = Ctx("tok-boss");
    EXPECT_TRUE(stub_->ListTasks(ctx.get(), pb::ListTasksRequest(), &resp).ok());
    return resp.total_size();
  }

  pb::Task Get(const std::string& id) {
    pb::GetTaskRequest req;
    req.set_task_id(id);
    pb::GetTaskResponse resp;
    auto ctx = Ctx("tok-boss");
    EXPECT_TRUE(stub_->GetTask(ctx.get(), req, &resp).ok());
    return resp.task();
  }

  pb::ClaimResponse Claim(const std::string& token, const std::string& task_id = "") {
    pb::ClaimRequest req;
    req.set_task_id(task_id);
    pb::ClaimResponse resp;
    auto ctx = Ctx(token);
    grpc::Status s = stub_->Claim(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // Asserts a CreateTask is refused with `code` and stores nothing.
  void CreateRefused(const pb::CreateTaskRequest& req, grpc::StatusCode code,
                     const std::string& reason = "") {
    int64_t before = Count();
    pb::CreateTaskResponse resp;
    auto ctx = Ctx("tok-boss");
    grpc::Status s = stub_->CreateTask(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_FALSE(s.error_message().empty());
    if (!reason.empty()) EXPECT_EQ(Reason(*ctx), reason) << s.error_message();
    EXPECT_EQ(Count(), before);
  }

  std::string dir_;
  SimulatedClock clock_;
  InMemoryDirectory directory_;
  RecordingNotifier notifier_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Board> board_;
  std::unique_ptr<TaskServiceImpl> impl_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::TaskService::Stub> stub_;
};

TEST_F(TasksServiceTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("claudenet.v1.TaskService");
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(TasksServiceTest, CreateClaimProgressCompleteHistory) {
  pb::Task t = Create("ship it");
  EXPECT_EQ(t.state(), pb::TASK_STATE_QUEUED);
  pb::ClaimResponse claim = Claim("tok-a1");
  ASSERT_EQ(claim.task().id(), t.id());
  EXPECT_EQ(claim.lease().holder(), "a1");

  pb::ProgressRequest p;
  p.set_task_id(t.id());
  p.set_lease_id(claim.lease().lease_id());
  p.set_lease_epoch(claim.lease().epoch());
  p.set_percent(50);
  p.set_note("halfway");
  pb::ProgressResponse pr;
  ASSERT_TRUE(stub_->Progress(Ctx("tok-a1").get(), p, &pr).ok());
  EXPECT_TRUE(pr.lease_valid());
  EXPECT_EQ(pr.task_state(), pb::TASK_STATE_RUNNING);

  pb::CompleteRequest c;
  c.set_task_id(t.id());
  c.set_lease_id(claim.lease().lease_id());
  c.set_lease_epoch(claim.lease().epoch());
  c.mutable_result()->set_summary("done");
  pb::CompleteResponse cr;
  ASSERT_TRUE(stub_->Complete(Ctx("tok-a1").get(), c, &cr).ok());
  EXPECT_EQ(cr.task().state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(cr.task().result().submitted_by(), "a1");

  pb::GetHistoryRequest h;
  h.set_task_id(t.id());
  pb::GetHistoryResponse hr;
  ASSERT_TRUE(stub_->GetHistory(Ctx("tok-a2").get(), h, &hr).ok());
  ASSERT_EQ(hr.transitions_size(), 5);
  EXPECT_EQ(hr.transitions(4).to_state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(hr.transitions(4).actor().id(), "a1");

  pb::ExplainTaskRequest e;
  e.set_task_id(t.id());
  pb::ExplainTaskResponse er;
  ASSERT_TRUE(stub_->ExplainTask(Ctx("tok-a2").get(), e, &er).ok());
  EXPECT_EQ(er.reasons(0).kind(), pb::BLOCKING_REASON_KIND_TERMINAL);

  pb::GetTaskStatsResponse sr;
  ASSERT_TRUE(stub_->GetStats(Ctx("tok-a2").get(), pb::GetTaskStatsRequest(), &sr).ok());
  EXPECT_EQ(sr.completed(), 1);
}

TEST_F(TasksServiceTest, CredentialsAreRequiredAndAgentsActOnlyAsThemselves) {
  pb::CreateTaskRequest req;
  req.set_title("x");
  pb::CreateTaskResponse resp;
  auto none = Ctx();
  EXPECT_EQ(stub_->CreateTask(none.get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto bad = Ctx("tok-forged");
  EXPECT_EQ(stub_->CreateTask(bad.get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Count(), 0);
  pb::ClaimRequest claim;
  claim.set_agent_id("a2");
  pb::ClaimResponse cr;
  EXPECT_EQ(stub_->Claim(Ctx("tok-a1").get(), claim, &cr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto anon = Ctx();
  EXPECT_EQ(stub_->Claim(anon.get(), pb::ClaimRequest(), &cr).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A service may act on behalf of an agent.
  pb::Task t = Create("for a2");
  auto svc = Ctx("svc-cred");
  svc->AddMetadata("claudenet-on-behalf-of", "a2");
  pb::ClaimRequest mine;
  ASSERT_TRUE(stub_->Claim(svc.get(), mine, &cr).ok());
  EXPECT_EQ(cr.task().assignee(), "a2");
}

TEST_F(TasksServiceTest, BadCreateInputs) {
  pb::Task existing = Create("existing");
  pb::CreateTaskRequest r;
  r.set_title("");
  CreateRefused(r, grpc::StatusCode::INVALID_ARGUMENT);
  r.set_title("ok");
  (*r.mutable_payload()->mutable_fields())["x"].set_string_value(std::string(300 * 1024, 'x'));
  CreateRefused(r, grpc::StatusCode::INVALID_ARGUMENT);
  r.clear_payload();
  r.add_required_capabilities("Not Valid");
  CreateRefused(r, grpc::StatusCode::INVALID_ARGUMENT);
  r.clear_required_capabilities();
  r.set_priority(static_cast<pb::Priority>(9));
  CreateRefused(r, grpc::StatusCode::INVALID_ARGUMENT);
  r.set_priority(pb::PRIORITY_HIGH);
  r.add_dependencies("task-00000000000000000000000000");
  CreateRefused(r, grpc::StatusCode::NOT_FOUND, "UNKNOWN_DEPENDENCY");
  r.clear_dependencies();
  r.set_parent_id("task-00000000000000000000000000");
  CreateRefused(r, grpc::StatusCode::NOT_FOUND, "UNKNOWN_PARENT");
}

TEST_F(TasksServiceTest, SelfDependencyAndCycleOnUpdate) {
  pb::Task x = Create("x");
  pb::CreateTaskRequest cr;
  cr.set_title("a");
  cr.add_dependencies(x.id());
  pb::CreateTaskResponse a;
  ASSERT_TRUE(stub_->CreateTask(Ctx("tok-boss").get(), cr, &a).ok());
  cr.set_title("b");
  cr.set_dependencies(0, a.task().id());
  pb::CreateTaskResponse b;
  ASSERT_TRUE(stub_->CreateTask(Ctx("tok-boss").get(), cr, &b).ok());

  pb::UpdateTaskRequest u;
  u.mutable_task()->set_id(a.task().id());
  u.mutable_task()->add_dependencies(a.task().id());
  u.mutable_update_mask()->add_paths("dependencies");
  pb::UpdateTaskResponse ur;
  EXPECT_EQ(stub_->UpdateTask(Ctx("tok-boss").get(), u, &ur).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  u.mutable_task()->set_dependencies(0, b.task().id());
  auto ctx = Ctx("tok-boss");
  grpc::Status s = stub_->UpdateTask(ctx.get(), u, &ur);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(*ctx), "DEPENDENCY_CYCLE");
  EXPECT_NE(s.error_message().find(" -> "), std::string::npos) << s.error_message();
  EXPECT_EQ(Get(a.task().id()).dependencies(0), x.id());
}

TEST_F(TasksServiceTest, ClaimWithoutTheCapabilities) {
  pb::Task t = Create("python only");
  pb::ClaimRequest req;
  req.set_task_id(t.id());
  pb::ClaimResponse resp;
  auto ctx = Ctx("tok-go");
  grpc::Status s = stub_->Claim(ctx.get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(*ctx), "MISSING_CAPABILITY");
  EXPECT_EQ(Get(t.id()).state(), pb::TASK_STATE_QUEUED);
}

TEST_F(TasksServiceTest, ProgressAndCompleteByANonOwnerOrWithAStaleLease) {
  pb::Task t = Create("contested");
  pb::ClaimResponse first = Claim("tok-a1");
  clock_.Advance(absl::Seconds(61));  // a1's lease lapses
  pb::ClaimResponse second = Claim("tok-a2", t.id());
  ASSERT_EQ(second.lease().epoch(), 2);
  pb::StartRequest st;
  st.set_task_id(t.id());
  st.set_lease_id(second.lease().lease_id());
  st.set_lease_epoch(second.lease().epoch());
  pb::StartResponse started;
  ASSERT_TRUE(stub_->Start(Ctx("tok-a2").get(), st, &started).ok());
  const pb::Task before = Get(t.id());

  pb::CompleteRequest c;
  c.set_task_id(t.id());
  c.set_lease_id(second.lease().lease_id());
  c.set_lease_epoch(second.lease().epoch());
  pb::CompleteResponse cr;
  auto other = Ctx("tok-rev");  // never held it
  EXPECT_EQ(stub_->Complete(other.get(), c, &cr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  c.set_lease_id(first.lease().lease_id());
  c.set_lease_epoch(first.lease().epoch());
  auto stale = Ctx("tok-a1");
  EXPECT_EQ(stub_->Complete(stale.get(), c, &cr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(*stale), "LEASE_STALE");

  pb::ProgressRequest p;
  p.set_task_id(t.id());
  p.set_lease_id(second.lease().lease_id());
  p.set_lease_epoch(second.lease().epoch());
  p.set_percent(10);
  pb::ProgressResponse pr;
  EXPECT_EQ(stub_->Progress(Ctx("tok-rev").get(), p, &pr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  p.set_lease_id(first.lease().lease_id());
  p.set_lease_epoch(first.lease().epoch());
  ASSERT_TRUE(stub_->Progress(Ctx("tok-a1").get(), p, &pr).ok());
  EXPECT_FALSE(pr.lease_valid());
  EXPECT_EQ(pr.lease_loss_reason(), pb::LEASE_LOSS_REASON_SUPERSEDED);
  p.set_percent(150);
  EXPECT_EQ(stub_->Progress(Ctx("tok-a1").get(), p, &pr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Get(t.id()).SerializeAsString(), before.SerializeAsString());
}

TEST_F(TasksServiceTest, ReviewByTheOwnerWhenADifferentReviewerIsRequired) {
  pb::CreateTaskRequest req;
  req.set_title("reviewed");
  req.add_required_capabilities("py");
  req.mutable_review()->set_required(true);
  pb::CreateTaskResponse created;
  ASSERT_TRUE(stub_->CreateTask(Ctx("tok-boss").get(), req, &created).ok());
  pb::ClaimResponse claim = Claim("tok-a1");
  pb::CompleteRequest c;
  c.set_task_id(claim.task().id());
  c.set_lease_id(claim.lease().lease_id());
  c.set_lease_epoch(claim.lease().epoch());
  c.mutable_result()->set_commit_sha(std::string(40, 'a'));
  pb::StartRequest st;
  st.set_task_id(claim.task().id());
  st.set_lease_id(claim.lease().lease_id());
  st.set_lease_epoch(claim.lease().epoch());
  pb::StartResponse sr;
  ASSERT_TRUE(stub_->Start(Ctx("tok-a1").get(), st, &sr).ok());
  pb::CompleteResponse cr;
  ASSERT_TRUE(stub_->Complete(Ctx("tok-a1").get(), c, &cr).ok());
  ASSERT_EQ(cr.task().state(), pb::TASK_STATE_REVIEWING);

  pb::ReviewRequest r;
  r.set_task_id(claim.task().id());
  r.set_verdict(pb::REVIEW_VERDICT_APPROVE);
  r.set_reviewed_commit_sha(std::string(40, 'a'));
  pb::ReviewResponse rr;
  auto own = Ctx("tok-a1");
  EXPECT_EQ(stub_->Review(own.get(), r, &rr).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(*own), "REVIEWER_CONFLICT");
  EXPECT_EQ(Get(claim.task().id()).state(), pb::TASK_STATE_REVIEWING);
  ASSERT_TRUE(stub_->Review(Ctx("tok-rev").get(), r, &rr).ok());
  EXPECT_EQ(rr.task().state(), pb::TASK_STATE_COMPLETED);
}

TEST_F(TasksServiceTest, LongPollClaimReturnsWhenATaskArrives) {
  pb::ClaimResponse got;
  grpc::Status status;
  std::thread waiter([&] {
    pb::ClaimRequest req;
    *req.mutable_wait() = ToProtoDuration(absl::Seconds(60));
    auto ctx = Ctx("tok-a1");
    status = stub_->Claim(ctx.get(), req, &got);
  });
  // Wait until the claim is parked on the board (an event, not a delay).
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (board_->waiting_claims() == 0 && absl::Now() < give_up) std::this_thread::yield();
  ASSERT_EQ(board_->waiting_claims(), 1u);
  pb::Task t = Create("arrives later");
  waiter.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.task().id(), t.id());
  EXPECT_EQ(Get(t.id()).assignee(), "a1");

  // Nothing arrives: an empty answer once the wait ends.
  pb::ClaimResponse empty;
  std::thread idle([&] {
    pb::ClaimRequest req;
    *req.mutable_wait() = ToProtoDuration(absl::Seconds(10));
    req.set_disable_steal(true);
    auto ctx = Ctx("tok-a2");
    status = stub_->Claim(ctx.get(), req, &empty);
  });
  give_up = absl::Now() + absl::Seconds(20);
  while (board_->waiting_claims() == 0 && absl::Now() < give_up) std::this_thread::yield();
  clock_.Advance(absl::Seconds(10));
  idle.join();
  ASSERT_TRUE(status.ok());
  EXPECT_FALSE(empty.has_task());
}

TEST_F(TasksServiceTest, WatchStreamsSnapshotThenLiveEventsAndResumes) {
  pb::Task before = Create("before");
  pb::WatchTasksRequest req;
  req.set_send_snapshot(true);
  auto ctx = Ctx("tok-a2");
  auto stream = stub_->Watch(ctx.get(), req);
  pb::TaskEvent ev;
  ASSERT_TRUE(stream->Read(&ev));
  EXPECT_EQ(ev.type(), pb::TASK_EVENT_TYPE_SNAPSHOT);
  EXPECT_EQ(ev.task().id(), before.id());
  ASSERT_TRUE(stream->Read(&ev));
  ASSERT_EQ(ev.type(), pb::TASK_EVENT_TYPE_SNAPSHOT_END);
  int64_t snapshot_seq = ev.sequence();
  pb::Task after = Create("after");
  ASSERT_TRUE(stream->Read(&ev));
  EXPECT_EQ(ev.type(), pb::TASK_EVENT_TYPE_CREATED);
  EXPECT_EQ(ev.task().id(), after.id());
  EXPECT_EQ(ev.sequence(), snapshot_seq + 1);
  ASSERT_TRUE(stream->Read(&ev));
  EXPECT_EQ(ev.type(), pb::TASK_EVENT_TYPE_TRANSITION);
  EXPECT_EQ(ev.transition().to_state(), pb::TASK_STATE_QUEUED);
  ctx->TryCancel();
  while (stream->Read(&ev)) {
  }
  stream->Finish();

  // Resume after the snapshot point: the two events of "after" again.
  pb::WatchTasksRequest resume;
  resume.set_from_sequence(snapshot_seq);
  resume.add_task_ids(after.id());
  auto ctx2 = Ctx("tok-a2");
  auto again = stub_->Watch(ctx2.get(), resume);
  ASSERT_TRUE(again->Read(&ev));
  EXPECT_EQ(ev.sequence(), snapshot_seq + 1);
  ASSERT_TRUE(again->Read(&ev));
  EXPECT_EQ(ev.sequence(), snapshot_seq + 2);
  ctx2->TryCancel();
  while (again->Read(&ev)) {
  }
  again->Finish();

  pb::WatchTasksRequest future;
  future.set_from_sequence(board_->last_sequence() + 100);
  auto ctx3 = Ctx("tok-a2");
  auto bad = stub_->Watch(ctx3.get(), future);
  EXPECT_FALSE(bad->Read(&ev));
  EXPECT_EQ(bad->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(TasksServiceTest, ReservationsOverTheWire) {
  pb::ReserveRequest req;
  req.set_workspace("github.com/org/repo");
  req.add_patterns("src/**");
  pb::ReserveResponse resp;
  ASSERT_TRUE(stub_->Reserve(Ctx("tok-a1").get(), req, &resp).ok());
  ASSERT_EQ(resp.results(0).outcome(), pb::PATH_OUTCOME_OK);

  // A conflicting exclusive reservation: FAILED_PRECONDITION, the holder in
  // the message and every conflict in the ErrorDetail.
  pb::ReserveRequest other = req;
  other.set_patterns(0, "src/main.cc");
  auto ctx = Ctx("tok-a2");
  grpc::Status s = stub_->Reserve(ctx.get(), other, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("a1"), std::string::npos) << s.error_message();
  auto md = ctx->GetServerTrailingMetadata();
  auto it = md.find("claudenet-error-bin");
  ASSERT_NE(it, md.end());
  pb::ErrorDetail detail;
  ASSERT_TRUE(detail.ParseFromString(std::string(it->second.data(), it->second.size())));
  EXPECT_EQ(detail.reason(), "RESERVATION_CONFLICT");
  ASSERT_EQ(detail.conflicts_size(), 1);
  EXPECT_EQ(detail.conflicts(0).holder(), "a1");

  // Acting for another agent, or force-releasing without admin: refused.
  pb::ReserveRequest as_other = other;
  as_other.set_agent_id("a1");
  EXPECT_EQ(stub_->Reserve(Ctx("tok-a2").get(), as_other, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  pb::ForceReleaseRequest force;
  force.set_holder("a1");
  force.set_reason("cleanup");
  pb::ForceReleaseResponse fr;
  EXPECT_EQ(stub_->ForceRelease(Ctx("tok-a2").get(), force, &fr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  pb::CheckPathsRequest check;
  check.set_workspace("github.com/org/repo");
  check.add_paths("src/main.cc");
  pb::CheckPathsResponse cr;
  ASSERT_TRUE(stub_->CheckPaths(Ctx("tok-a2").get(), check, &cr).ok());
  EXPECT_FALSE(cr.allowed());
  EXPECT_EQ(cr.results(0).verdict(), pb::PATH_VERDICT_RESERVED_BY_OTHER);

  ASSERT_TRUE(stub_->ForceRelease(Ctx("admin-cred").get(), force, &fr).ok());
  EXPECT_EQ(fr.released_count(), 1);
  pb::ListReservationsResponse lr;
  ASSERT_TRUE(stub_->ListReservations(Ctx("tok-a2").get(), pb::ListReservationsRequest(), &lr).ok());
  EXPECT_EQ(lr.reservations_size(), 0);
}

}  // namespace
}  // namespace cnet::tasks
