// Agents and tasks across two nodes (issue 8 item 7): two complete nodes
// (registry, tasks, the gateway's federation components) sharing one
// database, on 127.0.0.1.
//   - an agent of each node is discoverable on the other (FindAgents by
//     capability, node set, remote = true); an agent leaving B disappears
//     from A;
//   - a task created on A that only B's agent can do is listed on B,
//     claimed, progressed and completed from B; A's board shows COMPLETED
//     with B's agent as owner;
//   - fencing across nodes: a lease superseded on A (release + re-claim)
//     and a lease expired on A (A's board clock advanced) are refused when B
//     uses them;
//   - a forged operation (an agent that is not the requesting node's) is
//     refused by the owner.
// Each test runs twice: over the in-memory store, and over the Firebase
// fake (real HTTP + SSE on 127.0.0.1) through libs/firebase.
#include <memory>

#include "gtest/gtest.h"
#include "services/macs-gateway/xnode/firebase_kv_store.h"
#include "services/macs-gateway/xnode/memory_kv_store.h"
#include "tests/fakes/firebase_fake.h"
#include "tests/federation/xnode/two_node_harness.h"

namespace cnet::xnode_test {
namespace {
namespace pb = ::claudenet::v1;
using federation::MemoryKvStore;

class TwoNodeTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "firebase") {
      ASSERT_TRUE(fake_.Start().ok());
      firebase::FirebaseOptions fo;
      fo.database_url = fake_.url();
      fo.timeout = absl::Seconds(5);
      firebase::StreamOptions so;
      so.firebase = fo;
      so.initial_backoff = absl::Milliseconds(50);
      so.max_backoff = absl::Seconds(1);
      fb_client_ = std::make_unique<firebase::FirebaseClient>(fo);
      kv_owned_ = std::make_unique<federation::FirebaseKvStore>(
          fb_client_.get(), so);
    } else {
      kv_owned_ = std::make_unique<MemoryKvStore>();
    }
    kv_ = kv_owned_.get();
    clock_a_ = std::make_unique<SimulatedClock>(absl::Now());
    clock_b_ = std::make_unique<SimulatedClock>(absl::Now());
    registry_clock_a_ = std::make_unique<SimulatedClock>(absl::Now());
    // Tests named *Push* run A's scheduler with push assignment.
    const bool push = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                          .find("Push") != std::string::npos;
    a_ = std::make_unique<TestNode>("node-a", TempDir("node-a"), kv_, clock_a_.get(),
                                    registry_clock_a_.get(), push);
    b_ = std::make_unique<TestNode>("node-b", TempDir("node-b"), kv_, clock_b_.get());
    ASSERT_TRUE(a_->Start().ok());
    ASSERT_TRUE(b_->Start().ok());
    waiter_ = std::make_unique<ChangeWaiter>(kv_);
  }
  void TearDown() override {
    waiter_.reset();
    a_.reset();
    b_.reset();
    kv_owned_.reset();
    fb_client_.reset();
    fake_.Stop();
  }

  // Registers `id` on `node` and waits until `other` discovers it with its
  // tasks directory (so the other board may hand it work).
  std::string AddAgent(TestNode& node, TestNode& other, const std::string& id,
                       const std::vector<std::string>& caps) {
    auto token = node.Register(id, caps);
    EXPECT_TRUE(token.ok()) << token.status();
    EXPECT_TRUE(waiter_->Until([&] {
      auto info = other.directory().GetAgent(id);
      return info.ok() && info->Available();
    })) << id << " never became available on " << other.name();
    return token.ok() ? *token : "";
  }

  // Every test call: the credential, and waits out a slow (re)connect on a
  // loaded machine instead of failing fast.
  static void Bearer(grpc::ClientContext* ctx, const std::string& token) {
    auth::SetBearer(ctx, token);
    ctx->set_wait_for_ready(true);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  pb::Task CreateOnA(const std::string& title, const std::string& cap) {
    pb::CreateTaskRequest req;
    req.set_title(title);
    req.add_required_capabilities(cap);
    pb::CreateTaskResponse resp;
    grpc::ClientContext ctx;
    Bearer(&ctx, kAdmin);
    grpc::Status st = a_->tasks().CreateTask(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.task();
  }

  // Waits until B lists the remote task in `state`.
  bool BSees(const std::string& token, const std::string& task_id, pb::TaskState state) {
    return waiter_->Until([&] {
      pb::GetTaskRequest req;
      req.set_task_id(task_id);
      pb::GetTaskResponse resp;
      grpc::ClientContext ctx;
      Bearer(&ctx, token);
      return b_->remote_tasks().GetRemoteTask(&ctx, req, &resp).ok() &&
             resp.task().state() == state;
    });
  }

  grpc::Status ClaimFromB(const std::string& token, const std::string& task_id,
                          pb::ClaimResponse* resp, absl::Duration lease = absl::ZeroDuration()) {
    pb::ClaimRequest req;
    req.set_task_id(task_id);
    if (lease > absl::ZeroDuration()) {
      req.mutable_lease_duration()->set_seconds(absl::ToInt64Seconds(lease));
    }
    grpc::ClientContext ctx;
    Bearer(&ctx, token);
    return b_->remote_tasks().Claim(&ctx, req, resp);
  }

  grpc::Status CompleteFromB(const std::string& token, const pb::Lease& lease,
                             const std::string& task_id, pb::CompleteResponse* resp) {
    pb::CompleteRequest req;
    req.set_task_id(task_id);
    req.set_lease_id(lease.lease_id());
    req.set_lease_epoch(lease.epoch());
    req.mutable_result()->set_stop_reason(pb::STOP_REASON_DONE);
    req.mutable_result()->set_summary("done on node-b");
    grpc::ClientContext ctx;
    Bearer(&ctx, token);
    return b_->remote_tasks().Complete(&ctx, req, resp);
  }

  pb::ProgressResponse ProgressFromB(const std::string& token, const pb::Lease& lease,
                                     const std::string& task_id, double percent) {
    pb::ProgressRequest req;
    req.set_task_id(task_id);
    req.set_lease_id(lease.lease_id());
    req.set_lease_epoch(lease.epoch());
    req.set_percent(percent);
    pb::ProgressResponse resp;
    grpc::ClientContext ctx;
    Bearer(&ctx, token);
    grpc::Status st = b_->remote_tasks().Progress(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  pb::Task GetOnA(const std::string& task_id) {
    pb::GetTaskRequest req;
    req.set_task_id(task_id);
    pb::GetTaskResponse resp;
    grpc::ClientContext ctx;
    Bearer(&ctx, kAdmin);
    EXPECT_TRUE(a_->tasks().GetTask(&ctx, req, &resp).ok());
    return resp.task();
  }

  fakes::FirebaseFake fake_;
  std::unique_ptr<firebase::FirebaseClient> fb_client_;
  std::unique_ptr<federation::KvStore> kv_owned_;
  federation::KvStore* kv_ = nullptr;
  std::unique_ptr<SimulatedClock> clock_a_, clock_b_, registry_clock_a_;
  std::unique_ptr<TestNode> a_, b_;
  std::unique_ptr<ChangeWaiter> waiter_;
};

TEST_P(TwoNodeTest, AgentsAreDiscoverableAcrossNodesAndLeavingRemovesThem) {
  AddAgent(*b_, *a_, "b-rust", {"rust"});
  AddAgent(*a_, *b_, "a-py", {"py"});

  // A finds B's agent by capability, node set, marked remote.
  auto found = a_->registry().FindAgents({"rust"});
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->agents_size(), 1);
  EXPECT_EQ(found->agents(0).id(), "b-rust");
  EXPECT_EQ(found->agents(0).node(), "node-b");
  EXPECT_TRUE(found->agents(0).remote());
  // And vice versa; locality filters work.
  pb::FindAgentsRequest remote_only;
  remote_only.add_capabilities("py");
  remote_only.set_locality(pb::LOCALITY_REMOTE);
  auto on_b = b_->registry().FindAgents(remote_only);
  ASSERT_TRUE(on_b.ok());
  ASSERT_EQ(on_b->agents_size(), 1);
  EXPECT_EQ(on_b->agents(0).node(), "node-a");
  pb::FindAgentsRequest local_only = remote_only;
  local_only.set_locality(pb::LOCALITY_LOCAL);
  EXPECT_EQ(b_->registry().FindAgents(local_only)->agents_size(), 0);

  // The agent leaves B: gone from A.
  ASSERT_TRUE(b_->Deregister("b-rust").ok());
  EXPECT_TRUE(waiter_->Until([&] {
    return a_->registry().GetAgent("b-rust").status().code() == absl::StatusCode::kNotFound;
  }));
  EXPECT_EQ(a_->registry().FindAgents({"rust"})->agents_size(), 0);
  EXPECT_EQ(b_->presence().stats().rejected, 0);
  EXPECT_EQ(a_->presence().stats().rejected, 0);
}

TEST_P(TwoNodeTest, AgentsOfASilentNodeGoDeadHere) {
  AddAgent(*b_, *a_, "b-rust", {"rust"});
  // B's gateway stops publishing (node down, or cut off from the database).
  b_->presence().Stop();
  // A's registry judges the mirrored agent by the age of its last
  // heartbeat, with the local thresholds: DEAD after critical_max.
  registry_clock_a_->Advance(absl::Seconds(120));
  auto agent = a_->registry().GetAgent("b-rust");
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->health(), pb::HEALTH_DEAD) << agent->health_reason();
  EXPECT_EQ(a_->registry().FindAgents({"rust"})->agents_size(), 0);
}

TEST_P(TwoNodeTest, TaskCreatedOnAIsDoneOnBWithLeasesAndFencing) {
  const std::string token = AddAgent(*b_, *a_, "b-rust", {"rust"});
  pb::Task task = CreateOnA("port the parser", "rust");
  ASSERT_EQ(task.state(), pb::TASK_STATE_QUEUED);
  ASSERT_EQ(task.origin_node(), "node-a");

  // Listed on B, with its owner.
  ASSERT_TRUE(BSees(token, task.id(), pb::TASK_STATE_QUEUED));
  {
    pb::ListTasksRequest req;
    req.set_capability("rust");
    req.add_states(pb::TASK_STATE_QUEUED);
    pb::ListTasksResponse resp;
    grpc::ClientContext ctx;
    Bearer(&ctx, token);
    ASSERT_TRUE(b_->remote_tasks().ListRemoteTasks(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.tasks_size(), 1);
    EXPECT_EQ(resp.tasks(0).origin_node(), "node-a");
  }

  // Claimed from B; A's board holds the lease for b-rust.
  pb::ClaimResponse first;
  grpc::Status st = ClaimFromB(token, task.id(), &first);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(first.task().assignee(), "b-rust");
  EXPECT_EQ(GetOnA(task.id()).state(), pb::TASK_STATE_ASSIGNED);
  EXPECT_TRUE(ProgressFromB(token, first.lease(), task.id(), 40).lease_valid());
  EXPECT_EQ(GetOnA(task.id()).state(), pb::TASK_STATE_RUNNING);

  // Released and claimed again: the first lease is superseded.
  {
    pb::ReleaseRequest req;
    req.set_task_id(task.id());
    req.set_lease_id(first.lease().lease_id());
    req.set_lease_epoch(first.lease().epoch());
    req.set_reason(pb::RELEASE_REASON_SHUTDOWN);
    pb::ReleaseResponse resp;
    grpc::ClientContext ctx;
    Bearer(&ctx, token);
    grpc::Status rs = b_->remote_tasks().Release(&ctx, req, &resp);
    ASSERT_TRUE(rs.ok()) << rs.error_message();
  }
  pb::ClaimResponse second;
  st = ClaimFromB(token, task.id(), &second);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_GT(second.lease().epoch(), first.lease().epoch());

  // The stale fencing token is refused by the owner and changes nothing.
  pb::CompleteResponse done;
  st = CompleteFromB(token, first.lease(), task.id(), &done);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_FALSE(ProgressFromB(token, first.lease(), task.id(), 90).lease_valid());
  EXPECT_EQ(GetOnA(task.id()).state(), pb::TASK_STATE_ASSIGNED);

  // The current lease completes it.
  EXPECT_TRUE(ProgressFromB(token, second.lease(), task.id(), 80).lease_valid());
  st = CompleteFromB(token, second.lease(), task.id(), &done);
  ASSERT_TRUE(st.ok()) << st.error_message();
  pb::Task on_a = GetOnA(task.id());
  EXPECT_EQ(on_a.state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(on_a.author(), "b-rust");  // the lease ended; the author stays
  EXPECT_EQ(on_a.result().submitted_by(), "b-rust");
  // The mirror catches up on B.
  EXPECT_TRUE(BSees(token, task.id(), pb::TASK_STATE_COMPLETED));
  EXPECT_EQ(*kv_->Get("tasks/available/" + task.id()), "null");
  EXPECT_EQ(*kv_->Get("tasks/assigned/" + task.id()), "null");
  EXPECT_NE(*kv_->Get("tasks/completed/" + task.id()), "null");
  // Ops and results were cleaned up.
  EXPECT_TRUE(waiter_->Until([&] {
    return *kv_->Get("task_ops") == "null" && *kv_->Get("task_results") == "null";
  }));
}

TEST_P(TwoNodeTest, PushAssignedToARemoteAgentIsWorkedFromItsNode) {
  const std::string token = AddAgent(*b_, *a_, "b-rust", {"rust"});
  pb::Task task = CreateOnA("pushed", "rust");
  // A's scheduler gave it to B's agent at creation.
  ASSERT_EQ(task.state(), pb::TASK_STATE_ASSIGNED);
  ASSERT_EQ(task.assignee(), "b-rust");
  ASSERT_TRUE(BSees(token, task.id(), pb::TASK_STATE_ASSIGNED));
  // B's agent finds it (assignee = itself) with its lease, and works on it.
  pb::ListTasksRequest lreq;
  lreq.set_assignee("b-rust");
  pb::ListTasksResponse listed;
  {
    grpc::ClientContext ctx;
    Bearer(&ctx, token);
    ASSERT_TRUE(b_->remote_tasks().ListRemoteTasks(&ctx, lreq, &listed).ok());
  }
  ASSERT_EQ(listed.tasks_size(), 1);
  const pb::Lease lease = listed.tasks(0).lease();
  EXPECT_TRUE(ProgressFromB(token, lease, task.id(), 50).lease_valid());
  pb::CompleteResponse done;
  grpc::Status st = CompleteFromB(token, lease, task.id(), &done);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(GetOnA(task.id()).state(), pb::TASK_STATE_COMPLETED);
}

TEST_P(TwoNodeTest, LeaseExpiryOnTheOwnerFencesTheRemoteHolder) {
  const std::string token = AddAgent(*b_, *a_, "b-rust", {"rust"});
  pb::Task task = CreateOnA("flaky job", "rust");
  ASSERT_TRUE(BSees(token, task.id(), pb::TASK_STATE_QUEUED));
  pb::ClaimResponse claim;
  grpc::Status st = ClaimFromB(token, task.id(), &claim, absl::Seconds(10));
  ASSERT_TRUE(st.ok()) << st.error_message();

  // The lease runs on the owner's clock: it expires there.
  clock_a_->Advance(absl::Seconds(11));
  pb::Task on_a = GetOnA(task.id());
  EXPECT_EQ(on_a.state(), pb::TASK_STATE_QUEUED);
  pb::CompleteResponse done;
  st = CompleteFromB(token, claim.lease(), task.id(), &done);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_FALSE(ProgressFromB(token, claim.lease(), task.id(), 10).lease_valid());
  EXPECT_EQ(GetOnA(task.id()).state(), pb::TASK_STATE_QUEUED);
  // B sees it back in the queue and may claim it again.
  ASSERT_TRUE(BSees(token, task.id(), pb::TASK_STATE_QUEUED));
  pb::ClaimResponse again;
  st = ClaimFromB(token, task.id(), &again);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_GT(again.lease().epoch(), claim.lease().epoch());
}

TEST_P(TwoNodeTest, BadRequestsAndForgedOpsAreRefused) {
  const std::string token = AddAgent(*b_, *a_, "b-rust", {"rust"});
  AddAgent(*a_, *b_, "a-py", {"py"});
  pb::Task task = CreateOnA("x", "rust");
  ASSERT_TRUE(BSees(token, task.id(), pb::TASK_STATE_QUEUED));

  // Unknown task, a task of this node, a long-poll, no credential.
  pb::ClaimResponse resp;
  EXPECT_EQ(ClaimFromB(token, "task-nope", &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  {
    pb::ClaimRequest req;
    req.set_task_id(task.id());
    req.mutable_wait()->set_seconds(5);
    grpc::ClientContext ctx;
    Bearer(&ctx, token);
    EXPECT_EQ(b_->remote_tasks().Claim(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    pb::ClaimRequest req;
    req.set_task_id(task.id());
    grpc::ClientContext ctx;
    EXPECT_EQ(b_->remote_tasks().Claim(&ctx, req, &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // Admin must name the agent; another agent may not act for b-rust.
  {
    pb::ClaimRequest req;
    req.set_task_id(task.id());
    grpc::ClientContext ctx;
    Bearer(&ctx, kAdmin);
    EXPECT_EQ(b_->remote_tasks().Claim(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    auto other = b_->Register("b-other", {"go"});
    ASSERT_TRUE(other.ok());
    pb::ClaimRequest req;
    req.set_task_id(task.id());
    req.set_agent_id("b-rust");
    grpc::ClientContext ctx;
    Bearer(&ctx, *other);
    EXPECT_EQ(b_->remote_tasks().Claim(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }

  // A forged op written straight into the database by a holder of the
  // network secret: node-b claims to act for a-py (an agent of node-a). The
  // owner refuses it.
  federation::TaskOp op;
  op.op_id = "op-forged";
  op.from_node = "node-b";
  op.agent_id = "a-py";
  op.task_id = task.id();
  op.kind = federation::TaskOpKind::kClaim;
  pb::ClaimRequest creq;
  creq.set_task_id(task.id());
  op.request = federation::MessageToValue(creq);
  ASSERT_TRUE(kv_->Put("task_ops/node-a/op-forged",
                      federation::ToJson(federation::TaskOpDocument(op, kNetSecret)))
                  .ok());
  ASSERT_TRUE(waiter_->Until([&] { return a_->mirror().stats().ops_refused == 1; }));
  EXPECT_EQ(GetOnA(task.id()).state(), pb::TASK_STATE_QUEUED);
  // Malformed op documents are dropped and counted.
  ASSERT_TRUE(kv_->Put("task_ops/node-a/op-bad", R"({"op_id":"op-bad","op":"explode"})").ok());
  ASSERT_TRUE(waiter_->Until([&] { return a_->mirror().stats().ops_malformed == 1; }));
  // An op signed with another secret (as b-rust, who could do the task) is
  // dropped unexecuted.
  op.op_id = "op-wrong-key";
  op.agent_id = "b-rust";
  ASSERT_TRUE(kv_->Put("task_ops/node-a/op-wrong-key",
                       federation::ToJson(federation::TaskOpDocument(op, "not-the-secret")))
                  .ok());
  ASSERT_TRUE(waiter_->Until([&] { return a_->mirror().stats().ops_malformed == 2; }));
  EXPECT_EQ(GetOnA(task.id()).state(), pb::TASK_STATE_QUEUED);
  EXPECT_EQ(a_->mirror().stats().ops_executed, 0);
  // An unsigned agent document (e.g. injected into the database) is not
  // mirrored.
  ASSERT_TRUE(kv_->Put("agents/c1", R"({"id":"c1","name":"c1","node":"node-c",)"
                                    R"("capabilities":["rust"],"status":"online"})")
                  .ok());
  // A malformed agent document does not disturb the others.
  ASSERT_TRUE(kv_->Put("agents/evil", R"({"id":"other","node":"node-c"})").ok());
  ASSERT_TRUE(waiter_->Until([&] { return a_->presence().stats().rejected >= 1; }));
  EXPECT_TRUE(a_->registry().GetAgent("b-rust").ok());
  EXPECT_EQ(a_->registry().GetAgent("evil").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(waiter_->Until([&] { return a_->presence().stats().rejected >= 2; }));
  EXPECT_EQ(a_->registry().GetAgent("c1").status().code(), absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Stores, TwoNodeTest, ::testing::Values("memory", "firebase"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cnet::xnode_test
