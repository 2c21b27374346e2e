// Agents and tasks across nodes with the real binaries: two complete nodes
// (registry, tasks and macs-gateway processes each; separate data dirs and
// ports) federated through the Firebase fake (HTTP + SSE on 127.0.0.1).
// Checks the wiring of services/macs-gateway/xnode in main.cc: presence both
// ways, a task created on A done from B through B's RemoteTaskService (A's
// board shows COMPLETED by B's agent), a stale lease refused, and an agent
// leaving B disappearing from A. The second test does the same work with
// the built `cnet` binary on node B (task list / claim / progress /
// complete falling back to RemoteTaskService).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/remote_tasks.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tests/fakes/firebase_fake.h"
#include "tests/testing/child_process.h"

namespace {
namespace pb = claudenet::v1;

constexpr char kAdmin[] = "xnode-e2e-admin";
constexpr char kService[] = "xnode-e2e-service";
constexpr char kSecret[] = "xnode-e2e-shared-secret";
constexpr char kDbSecret[] = "xnode-e2e-db-secret";

using cnet::testing::FreePort;
using cnet::testing::Runfile;
using Child = cnet::testing::ChildProcess;

void Prepare(grpc::ClientContext* ctx, const std::string& credential) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx->set_wait_for_ready(true);  // the process may still be starting
  if (!credential.empty()) cnet::auth::SetBearer(ctx, credential);
}

// Re-checks `done` at most every 50 ms (and as soon as it holds), with a
// 45 s bound: the steps happen in other processes, so there is no event to
// wait on in-process; no test step sleeps a fixed time.
class Waiter {
 public:
  bool Until(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(45);
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&never_), absl::Milliseconds(50));
    }
    return done();
  }

 private:
  absl::Mutex mu_;
  bool never_ = false;
};

struct Node {
  std::string name, root, registry_addr, tasks_addr, macs_addr;
  std::vector<std::string> env;
  std::vector<std::unique_ptr<Child>> procs;
  std::unique_ptr<pb::RegistryService::Stub> registry;
  std::unique_ptr<pb::TaskService::Stub> tasks;
  std::unique_ptr<pb::RemoteTaskService::Stub> remote;
};

class XnodeE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cnet::fakes::FirebaseFake::Options fo;
    fo.secret = kDbSecret;
    fake_ = std::make_unique<cnet::fakes::FirebaseFake>(fo);
    ASSERT_TRUE(fake_->Start().ok());
    waiter_ = std::make_unique<Waiter>();
    // A port picked free can be taken by a parallel test before the child
    // binds it: a child that exits while starting means new ports, again.
    for (int attempt = 0; attempt < 3; ++attempt) {
      const absl::Time started = absl::Now();
      StartNodes();
      bool serving = AllServing();
      std::cerr << "nodes " << (serving ? "serving" : "failed to start") << " after "
                << absl::FormatDuration(absl::Now() - started) << "\n";
      if (serving) return;
      StopNodes();
    }
    FAIL() << "the two nodes did not start (see the logs under TEST_TMPDIR)";
  }

  // Every process listens (a TCP connect succeeds), or one exited.
  bool AllServing() {
    auto listening = [](const std::string& addr) {
      int port = std::stoi(addr.substr(addr.rfind(':') + 1));
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      sa.sin_port = htons(static_cast<uint16_t>(port));
      bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
      close(fd);
      return ok;
    };
    bool exited = false;
    bool up = waiter_->Until([&] {
      for (Node* n : {&a_, &b_}) {
        for (auto& p : n->procs) exited = exited || p->Exited();
      }
      if (exited) return true;
      for (Node* n : {&a_, &b_}) {
        for (const std::string* addr : {&n->registry_addr, &n->tasks_addr, &n->macs_addr}) {
          if (!listening(*addr)) return false;
        }
      }
      return true;
    });
    return up && !exited;
  }

  void StopNodes() {
    for (Node* n : {&b_, &a_}) {
      for (auto& p : n->procs) p->Signal();
    }
    for (Node* n : {&b_, &a_}) n->procs.clear();
  }

  void StartNodes() {
    for (Node* n : {&a_, &b_}) {
      n->name = n == &a_ ? "node-a" : "node-b";
      std::string t = absl::StrCat(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp",
                                   "/xnodee2eXXXXXX");
      n->root = mkdtemp(t.data());
      n->registry_addr = absl::StrCat("127.0.0.1:", FreePort());
      n->tasks_addr = absl::StrCat("127.0.0.1:", FreePort());
      n->macs_addr = absl::StrCat("127.0.0.1:", FreePort());
      n->env = {
          "HOME=" + n->root,
          "PATH=/usr/bin:/bin",
          "CNET_NETWORK__NODE_ID=" + n->name,
          "CNET_SERVICES__METRICS_ENABLED=false",
          "CNET_SERVICES__REGISTRY_ADDR=" + n->registry_addr,
          "CNET_SERVICES__TASKS_ADDR=" + n->tasks_addr,
          "CNET_SERVICES__MACS_ADDR=" + n->macs_addr,
          std::string("CNET_SECURITY__ADMIN_TOKEN=") + kAdmin,
          std::string("CNET_SECURITY__SERVICE_CREDENTIAL=") + kService,
          std::string("CNET_SECURITY__SHARED_SECRET=") + kSecret,
          "CNET_TASKS__PUSH_ASSIGNMENT=false",
          "CNET_FIREBASE__ENABLED=true",
          "CNET_FIREBASE__URL=" + fake_->url(),
          std::string("CNET_FIREBASE__AUTH=") + kDbSecret,
          "CNET_FIREBASE__TIMEOUT=5s",
          "CNET_FEDERATION__POLL_INTERVAL=100ms",
          "CNET_MACS__FSYNC=false",
          "CNET_SERVICES__DRAIN_TIMEOUT=1s",
      };
      const std::vector<std::string>& env = n->env;
      auto start = [&](const std::string& bin, const std::string& addr, const std::string& tag) {
        n->procs.push_back(std::make_unique<Child>(
            Runfile(bin),
            std::vector<std::string>{"--listen", addr, "--data-dir", n->root + "/" + tag,
                                     "--project-dir", n->root, "--log-file",
                                     n->root + "/" + tag + ".log"},
            env));
      };
      start("services/registry/registry", n->registry_addr, "registry");
      start("services/tasks/tasks", n->tasks_addr, "tasks");
      start("services/macs-gateway/macs-gateway", n->macs_addr, "macs");
      n->registry = pb::RegistryService::NewStub(cnet::MakeChannel(n->registry_addr));
      n->tasks = pb::TaskService::NewStub(cnet::MakeChannel(n->tasks_addr));
      n->remote = pb::RemoteTaskService::NewStub(cnet::MakeChannel(n->macs_addr));
    }
  }
  void TearDown() override {
    // Graceful stop of all six processes at once, then reap them.
    StopNodes();
    fake_->Stop();
  }

  std::string Register(Node& n, const std::string& id, const std::string& cap) {
    pb::RegisterRequest req;
    req.set_agent_id(id);
    req.set_name(id);
    req.add_capabilities(cap);
    pb::RegisterResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    grpc::Status st = n.registry->Register(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.token();
  }

  // The remote agent as `n`'s registry sees it (NOT_FOUND when absent).
  grpc::Status GetAgent(Node& n, const std::string& id, pb::Agent* out) {
    pb::GetAgentRequest req;
    req.set_agent_id(id);
    pb::GetAgentResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    grpc::Status st = n.registry->GetAgent(&ctx, req, &resp);
    *out = resp.agent();
    return st;
  }

  // Runs the built `cnet` with node `n`'s environment (plus `extra`);
  // returns its exit code, stdout in *out.
  int Cnet(Node& n, const std::vector<std::string>& extra, const std::string& args,
           std::string* out) {
    std::string cmd = "env -i";
    for (const auto& e : n.env) cmd += " '" + e + "'";
    for (const auto& e : extra) cmd += " '" + e + "'";
    cmd += " " + Runfile("tools/cnet/cnet") + " --timeout 20 " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return -1;
    out->clear();
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, got);
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  Node a_, b_;
  std::unique_ptr<cnet::fakes::FirebaseFake> fake_;
  std::unique_ptr<Waiter> waiter_;
};

TEST_F(XnodeE2eTest, AgentsBothWaysAndATaskFromADoneOnB) {
  const absl::Time t0 = absl::Now();
  auto phase = [&](const char* what) {
    std::cerr << absl::StrCat("[", absl::FormatDuration(absl::Now() - t0), "] ", what) << "\n";
  };
  const std::string b1 = Register(b_, "b1", "rust");
  Register(a_, "a1", "py");
  pb::Agent seen;
  ASSERT_TRUE(waiter_->Until([&] { return GetAgent(a_, "b1", &seen).ok(); }))
      << "b1 never reached node-a";
  EXPECT_TRUE(seen.remote());
  EXPECT_EQ(seen.node(), "node-b");
  ASSERT_TRUE(waiter_->Until([&] { return GetAgent(b_, "a1", &seen).ok(); }))
      << "a1 never reached node-b";
  EXPECT_EQ(seen.node(), "node-a");
  phase("agents visible both ways");
  {
    pb::FindAgentsRequest req;
    req.add_capabilities("rust");
    pb::FindAgentsResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    ASSERT_TRUE(a_.registry->FindAgents(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.agents_size(), 1);
    EXPECT_EQ(resp.agents(0).id(), "b1");
  }

  // A task on A that only b1 can do.
  pb::CreateTaskRequest creq;
  creq.set_title("port the parser to rust");
  creq.add_required_capabilities("rust");
  pb::CreateTaskResponse created;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    grpc::Status st = a_.tasks->CreateTask(&ctx, creq, &created);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  const std::string id = created.task().id();
  ASSERT_TRUE(waiter_->Until([&] {
    pb::GetTaskRequest req;
    req.set_task_id(id);
    pb::GetTaskResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, b1);
    return b_.remote->GetRemoteTask(&ctx, req, &resp).ok() &&
           resp.task().state() == pb::TASK_STATE_QUEUED;
  })) << "task never listed on node-b";
  phase("task listed on node-b");

  // Claimed from B (A's board may need a moment to see b1 HEALTHY).
  pb::ClaimResponse claim;
  ASSERT_TRUE(waiter_->Until([&] {
    pb::ClaimRequest req;
    req.set_task_id(id);
    grpc::ClientContext ctx;
    Prepare(&ctx, b1);
    return b_.remote->Claim(&ctx, req, &claim).ok();
  })) << "claim from node-b never succeeded";
  phase("claimed from node-b");
  EXPECT_EQ(claim.task().assignee(), "b1");
  {
    pb::ProgressRequest req;
    req.set_task_id(id);
    req.set_lease_id(claim.lease().lease_id());
    req.set_lease_epoch(claim.lease().epoch());
    req.set_percent(50);
    pb::ProgressResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, b1);
    grpc::Status st = b_.remote->Progress(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(resp.lease_valid());
  }
  auto complete = [&](int64_t epoch) {
    pb::CompleteRequest req;
    req.set_task_id(id);
    req.set_lease_id(claim.lease().lease_id());
    req.set_lease_epoch(epoch);
    req.mutable_result()->set_stop_reason(pb::STOP_REASON_DONE);
    req.mutable_result()->set_summary("done on node-b");
    pb::CompleteResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, b1);
    return b_.remote->Complete(&ctx, req, &resp);
  };
  // A wrong fencing epoch is refused by the owner.
  EXPECT_EQ(complete(claim.lease().epoch() - 1).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status st = complete(claim.lease().epoch());
  ASSERT_TRUE(st.ok()) << st.error_message();

  // A's board: COMPLETED by b1.
  pb::GetTaskRequest greq;
  greq.set_task_id(id);
  pb::GetTaskResponse got;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    ASSERT_TRUE(a_.tasks->GetTask(&ctx, greq, &got).ok());
  }
  EXPECT_EQ(got.task().state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(got.task().author(), "b1");
  EXPECT_EQ(got.task().origin_node(), "node-a");

  phase("completed from node-b");
  // b1 leaves B: gone from A.
  {
    pb::DeregisterRequest req;
    req.set_agent_id("b1");
    pb::DeregisterResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    ASSERT_TRUE(b_.registry->Deregister(&ctx, req, &resp).ok());
  }
  EXPECT_TRUE(waiter_->Until([&] {
    return GetAgent(a_, "b1", &seen).error_code() == grpc::StatusCode::NOT_FOUND;
  }));
  phase("b1 gone from node-a");
}

// `cnet task` on node B works on a task owned by node A: list shows it,
// claim ID / progress / complete fall back to B's RemoteTaskService.
TEST_F(XnodeE2eTest, CnetOnBListsClaimsAndCompletesATaskOfA) {
  const std::string b1 = Register(b_, "b1", "rust");
  pb::Agent seen;
  ASSERT_TRUE(waiter_->Until([&] { return GetAgent(a_, "b1", &seen).ok(); }))
      << "b1 never reached node-a";
  pb::CreateTaskRequest creq;
  creq.set_title("cnet from node-b");
  creq.add_required_capabilities("rust");
  pb::CreateTaskResponse created;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    grpc::Status st = a_.tasks->CreateTask(&ctx, creq, &created);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  const std::string id = created.task().id();
  const std::vector<std::string> as_b1 = {"CNET_TOKEN=" + b1, "CNET_AGENT=b1"};
  std::string out;
  // Listed on B (default: local board plus the gateway's remote tasks).
  ASSERT_TRUE(waiter_->Until([&] {
    return Cnet(b_, as_b1, "--json task list", &out) == 0 &&
           out.find(id) != std::string::npos;
  })) << "task never listed by cnet on node-b: " << out;
  EXPECT_NE(out.find("\"remote_total\""), std::string::npos) << out;
  // --local-only: B's own board does not have it.
  ASSERT_EQ(Cnet(b_, as_b1, "--json task list --local-only", &out), 0) << out;
  EXPECT_EQ(out.find(id), std::string::npos) << out;
  // show falls back to the remote copy.
  ASSERT_EQ(Cnet(b_, as_b1, "--json task show " + id, &out), 0) << out;
  EXPECT_NE(out.find("node-a"), std::string::npos) << out;
  // claim ID: B's tasks service answers NOT_FOUND, the gateway claims it on A
  // (A's board may need a moment to see b1 HEALTHY).
  ASSERT_TRUE(waiter_->Until([&] {
    return Cnet(b_, as_b1, "--json task claim " + id, &out) == 0;
  })) << "claim from node-b never succeeded: " << out;
  // progress needs the lease in the mirrored copy: retried until it is there.
  ASSERT_TRUE(waiter_->Until([&] {
    return Cnet(b_, as_b1, "--json task progress " + id + " 50 halfway", &out) == 0;
  })) << "progress from node-b never succeeded: " << out;
  ASSERT_EQ(Cnet(b_, as_b1, "--json task complete " + id + " -m 'done by cnet on node-b'", &out),
            0)
      << out;

  // A's board: COMPLETED by b1.
  pb::GetTaskRequest greq;
  greq.set_task_id(id);
  pb::GetTaskResponse got;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    ASSERT_TRUE(a_.tasks->GetTask(&ctx, greq, &got).ok());
  }
  EXPECT_EQ(got.task().state(), pb::TASK_STATE_COMPLETED);
  EXPECT_EQ(got.task().author(), "b1");
  EXPECT_EQ(got.task().result().summary(), "done by cnet on node-b");
}

}  // namespace
