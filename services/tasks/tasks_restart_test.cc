// Crash safety of the real binary: agents claim, report progress and
// complete tasks while a creator adds more; the process is killed with
// SIGKILL in the middle; after a restart on the same data directory every
// acknowledged creation and transition is there, and the leases that were
// held are still valid for their holders (then used to finish the work).
//
// The registry is an in-process fake (tests/fakes) reached over gRPC, so the
// binary's real registry adapters (token validation, directory) are used.
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tests/fakes/registry_fake.h"

extern char** environ;

namespace cnet::tasks {
namespace {

namespace pb = ::claudenet::v1;

constexpr int kWorkers = 4;

std::chrono::system_clock::time_point Deadline(int seconds = 10) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// The tasks binary as a child process.
class TasksProcess {
 public:
  TasksProcess(std::string dir, std::string registry_addr)
      : dir_(std::move(dir)), registry_(std::move(registry_addr)) {}
  ~TasksProcess() { Stop(SIGKILL); }

  // Starts the binary and waits until it has bound its port.
  std::string Start() {
    std::string port_file = dir_ + "/port";
    unlink(port_file.c_str());
    std::string bin = std::string(getenv("TEST_SRCDIR")) + "/claudenet/services/tasks/tasks";
    std::vector<std::string> args = {bin,           "--listen",   "127.0.0.1:0",
                                     "--data-dir",  dir_ + "/data", "--log-file",
                                     dir_ + "/tasks.log", "--port-file", port_file,
                                     "--project-dir", dir_};
    std::vector<std::string> env = {
        "HOME=" + dir_,
        "PATH=/usr/bin:/bin",
        "CNET_SERVICES__REGISTRY_ADDR=" + registry_,
        "CNET_SERVICES__MACS_ADDR=127.0.0.1:9",
        "CNET_SECURITY__ADMIN_TOKEN=admin-cred",
        "CNET_SECURITY__SERVICE_CREDENTIAL=svc-cred",
        "CNET_SECURITY__SHARED_SECRET=test-secret",
        "CNET_TASKS__PUSH_ASSIGNMENT=false",
        "CNET_SERVICES__METRICS_ENABLED=false",
    };
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, bin.c_str(), nullptr, nullptr, argv.data(), envp.data()), 0);
    // Wait for the port file (the binary writes it atomically once bound).
    for (int i = 0; i < 2000; ++i) {
      std::ifstream in(port_file);
      std::string port;
      if (in && std::getline(in, port) && !port.empty()) return "127.0.0.1:" + port;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        ADD_FAILURE() << "tasks exited early, status " << status;
        return "";
      }
      usleep(10 * 1000);
    }
    ADD_FAILURE() << "tasks did not bind within 20 s";
    return "";
  }

  void Stop(int signal) {
    if (pid_ == 0) return;
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }

 private:
  std::string dir_;
  std::string registry_;
  pid_t pid_ = 0;
};

struct Ack {
  std::string task_id;
  std::string agent;
  std::string lease_id;
  int64_t epoch = 0;
  pb::TaskState state = pb::TASK_STATE_UNSPECIFIED;  // acknowledged state
};

TEST(TasksRestartTest, KillNineMidClaimsAndProgressLosesNothingAcknowledged) {
  std::string tmpl = std::string(::testing::TempDir()) + "/restartXXXXXX";
  std::string dir = mkdtemp(tmpl.data());

  fakes::RegistryFake registry;
  for (int w = 0; w < kWorkers; ++w) {
    pb::Agent a;
    a.set_id("w" + std::to_string(w));
    a.add_capabilities("py");
    a.set_max_concurrent_tasks(1000);
    registry.PutAgent(a, "tok-w" + std::to_string(w));
  }
  ServerOptions ro;
  ro.name = "registry-fake";
  ro.services = {&registry};
  auto registry_server = GrpcServer::Start(std::move(ro));
  ASSERT_TRUE(registry_server.ok());

  TasksProcess tasks(dir, (*registry_server)->address());
  std::string addr = tasks.Start();
  ASSERT_FALSE(addr.empty());
  auto stub = pb::TaskService::NewStub(MakeChannel(addr));

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> created;        // acknowledged creations
  std::map<std::string, Ack> acked;        // task -> last acknowledged transition
  int completions = 0;
  std::atomic<bool> stop{false};

  auto create = [&](const std::string& title) {
    pb::CreateTaskRequest req;
    req.set_title(title);
    req.add_required_capabilities("py");
    pb::CreateTaskResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auth::SetBearer(&ctx, "admin-cred");
    if (!stub->CreateTask(&ctx, req, &resp).ok()) return false;
    std::lock_guard<std::mutex> lock(mu);
    created.push_back(resp.task().id());
    return true;
  };
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(create("seed " + std::to_string(i)));

  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int i = 0; !stop && create("more " + std::to_string(i)); ++i) {
    }
  });
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      const std::string agent = "w" + std::to_string(w);
      const std::string token = "tok-" + agent;
      auto call_ctx = [&](grpc::ClientContext* ctx) {
        ctx->set_deadline(Deadline());
        auth::SetBearer(ctx, token);
      };
      while (!stop) {
        pb::ClaimResponse claim;
        {
          grpc::ClientContext ctx;
          call_ctx(&ctx);
          pb::ClaimRequest req;
          req.set_disable_steal(true);
          if (!stub->Claim(&ctx, req, &claim).ok()) return;
        }
        if (!claim.has_task()) continue;
        Ack ack{claim.task().id(), agent, claim.lease().lease_id(), claim.lease().epoch(),
                pb::TASK_STATE_ASSIGNED};
        {
          std::lock_guard<std::mutex> lock(mu);
          acked[ack.task_id] = ack;
        }
        pb::ProgressRequest p;
        p.set_task_id(ack.task_id);
        p.set_lease_id(ack.lease_id);
        p.set_lease_epoch(ack.epoch);
        p.set_percent(50);
        pb::ProgressResponse pr;
        {
          grpc::ClientContext ctx;
          call_ctx(&ctx);
          if (!stub->Progress(&ctx, p, &pr).ok()) return;
        }
        ASSERT_TRUE(pr.lease_valid());
        {
          std::lock_guard<std::mutex> lock(mu);
          acked[ack.task_id].state = pb::TASK_STATE_RUNNING;
        }
        // Every third task is left running at the kill.
        if (std::hash<std::string>()(ack.task_id) % 3 == 0) continue;
        pb::CompleteRequest c;
        c.set_task_id(ack.task_id);
        c.set_lease_id(ack.lease_id);
        c.set_lease_epoch(ack.epoch);
        pb::CompleteResponse cr;
        {
          grpc::ClientContext ctx;
          call_ctx(&ctx);
          if (!stub->Complete(&ctx, c, &cr).ok()) return;
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          acked[ack.task_id].state = pb::TASK_STATE_COMPLETED;
          ++completions;
        }
        cv.notify_all();
      }
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_until(lock, Deadline(60), [&] { return completions >= 60; }));
  }
  tasks.Stop(SIGKILL);  // in the middle of claims, progress and creations
  stop = true;
  for (auto& t : threads) t.join();

  addr = tasks.Start();
  ASSERT_FALSE(addr.empty());
  stub = pb::TaskService::NewStub(MakeChannel(addr));
  auto admin_get = [&](const std::string& id, pb::Task* out) {
    pb::GetTaskRequest req;
    req.set_task_id(id);
    pb::GetTaskResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auth::SetBearer(&ctx, "admin-cred");
    grpc::Status s = stub->GetTask(&ctx, req, &resp);
    *out = resp.task();
    return s;
  };
  auto history = [&](const std::string& id) {
    pb::GetHistoryRequest req;
    req.set_task_id(id);
    req.set_page_size(1000);
    pb::GetHistoryResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auth::SetBearer(&ctx, "admin-cred");
    EXPECT_TRUE(stub->GetHistory(&ctx, req, &resp).ok());
    return resp;
  };

  int lost = 0;
  for (const std::string& id : created) {
    pb::Task t;
    if (!admin_get(id, &t).ok()) {
      ++lost;
      ADD_FAILURE() << "acknowledged creation lost: " << id;
    }
  }
  int resumed = 0;
  for (const auto& [id, ack] : acked) {
    pb::Task t;
    ASSERT_TRUE(admin_get(id, &t).ok()) << id;
    pb::GetHistoryResponse h = history(id);
    bool claim_seen = false, start_seen = false;
    for (const auto& tr : h.transitions()) {
      if (tr.to_state() == pb::TASK_STATE_ASSIGNED && tr.lease_epoch() == ack.epoch &&
          tr.holder() == ack.agent) {
        claim_seen = true;
      }
      if (tr.to_state() == pb::TASK_STATE_RUNNING && tr.lease_epoch() == ack.epoch) {
        start_seen = true;
      }
    }
    if (!claim_seen) ++lost, ADD_FAILURE() << id << ": acknowledged claim lost";
    if (ack.state >= pb::TASK_STATE_RUNNING && !start_seen) {
      ++lost, ADD_FAILURE() << id << ": acknowledged progress lost";
    }
    if (ack.state == pb::TASK_STATE_COMPLETED) {
      if (t.state() != pb::TASK_STATE_COMPLETED) {
        ++lost, ADD_FAILURE() << id << ": acknowledged completion lost (" << t.state() << ")";
      }
      continue;
    }
    // Work in progress at the kill: the holder's lease was resumed.
    if (t.state() == pb::TASK_STATE_COMPLETED) continue;  // completed, ack lost in flight
    ASSERT_EQ(t.lease().lease_id(), ack.lease_id) << id;
    pb::RenewLeaseRequest r;
    r.set_task_id(id);
    r.set_lease_id(ack.lease_id);
    r.set_lease_epoch(ack.epoch);
    pb::RenewLeaseResponse rr;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auth::SetBearer(&ctx, "tok-" + ack.agent);
    ASSERT_TRUE(stub->RenewLease(&ctx, r, &rr).ok());
    EXPECT_TRUE(rr.lease_valid()) << id;
    pb::CompleteRequest c;
    c.set_task_id(id);
    c.set_lease_id(ack.lease_id);
    c.set_lease_epoch(ack.epoch);
    pb::CompleteResponse cr;
    grpc::ClientContext cctx;
    cctx.set_deadline(Deadline());
    auth::SetBearer(&cctx, "tok-" + ack.agent);
    if (t.state() == pb::TASK_STATE_ASSIGNED) {  // progress may have landed, unacknowledged
      pb::StartRequest s;
      s.set_task_id(id);
      s.set_lease_id(ack.lease_id);
      s.set_lease_epoch(ack.epoch);
      pb::StartResponse sr;
      grpc::ClientContext sctx;
      sctx.set_deadline(Deadline());
      auth::SetBearer(&sctx, "tok-" + ack.agent);
      ASSERT_TRUE(stub->Start(&sctx, s, &sr).ok()) << id;
    }
    grpc::Status done = stub->Complete(&cctx, c, &cr);
    ASSERT_TRUE(done.ok()) << id << ": " << done.error_message();
    EXPECT_EQ(cr.task().state(), pb::TASK_STATE_COMPLETED);
    ++resumed;
  }
  std::cout << "restart: " << created.size() << " acknowledged creations, " << acked.size()
            << " acknowledged claims, " << completions << " acknowledged completions, "
            << resumed << " leases resumed, " << lost << " lost" << std::endl;
  EXPECT_EQ(lost, 0);
  EXPECT_GT(resumed, 0);
  tasks.Stop(SIGTERM);
  (*registry_server)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace cnet::tasks
