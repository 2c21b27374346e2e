// Tasks workload over gRPC against the started suite: create->ASSIGNED
// latency with push assignment (seen on the tasks Watch stream), and pull
// claims/s by 16 agents from a large queue.
#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tools/bench/load.h"
#include "tools/bench/workloads.h"

namespace cnet::bench {
namespace pb = claudenet::v1;

namespace {

struct Agent {
  std::string id, token;
};

absl::StatusOr<Agent> Register(pb::RegistryService::Stub* stub, const std::string& name,
                               const std::string& capability) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  pb::RegisterRequest req;
  req.set_name(name);
  req.add_capabilities(capability);
  req.set_max_concurrent_tasks(1000);
  pb::RegisterResponse resp;
  grpc::Status s = stub->Register(&ctx, req, &resp);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return Agent{resp.agent().id(), resp.token()};
}

void Auth(grpc::ClientContext* ctx, const std::string& token) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace

void RunTasks(const Params& p, SuiteRunner* suite, Report* report) {
  const std::vector<std::string> names = {"create->ASSIGNED p50", "create->ASSIGNED p99",
                                          "claims/s (16 agents, 100k queued)"};
  auto registry = pb::RegistryService::NewStub(MakeChannel(suite->address("registry")));
  auto channel = MakeChannel(suite->address("tasks"));
  auto tasks = pb::TaskService::NewStub(channel);
  auto creator = Register(registry.get(), "bench-creator", "bench-create");
  auto worker = Register(registry.get(), "bench-pushed", "bench-push");
  if (!creator.ok() || !worker.ok()) {
    for (const auto& n : names) report->Missing("tasks", n, "could not register agents");
    return;
  }

  // Push: watch transitions, create tasks one by one, time each until its
  // ASSIGNED transition arrives.
  const int pushes = p.quick ? 200 : 1000;
  absl::Mutex mu;
  std::map<std::string, absl::Time> assigned_at;
  grpc::ClientContext watch_ctx;
  watch_ctx.AddMetadata("authorization", "Bearer " + creator->token);
  pb::WatchTasksRequest watch_req;
  watch_req.add_event_types(pb::TASK_EVENT_TYPE_TRANSITION);
  auto watch = tasks->Watch(&watch_ctx, watch_req);
  std::thread reader([&] {
    pb::TaskEvent ev;
    while (watch->Read(&ev)) {
      if (ev.task().state() == pb::TASK_STATE_ASSIGNED) {
        absl::MutexLock lock(&mu);
        assigned_at.emplace(ev.task().id(), absl::Now());
      }
    }
  });
  Samples push;
  for (int i = 0; i < pushes; ++i) {
    grpc::ClientContext ctx;
    Auth(&ctx, creator->token);
    pb::CreateTaskRequest req;
    req.set_title(absl::StrCat("push ", i));
    req.add_required_capabilities("bench-push");
    pb::CreateTaskResponse resp;
    absl::Time t0 = absl::Now();
    if (!tasks->CreateTask(&ctx, req, &resp).ok()) continue;
    absl::MutexLock lock(&mu);
    auto seen = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return assigned_at.count(resp.task().id()) > 0;
    };
    if (mu.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(10))) {
      push.Add(assigned_at[resp.task().id()] - t0);
    }
  }
  watch_ctx.TryCancel();
  reader.join();
  for (auto [i, pct] : std::vector<std::pair<int, double>>{{0, 50}, {1, 99}}) {
    if (push.size() == 0) {
      report->Missing("tasks", names[i], "no task reached ASSIGNED");
      continue;
    }
    Figure f{"tasks", names[i], push.PercentileMicros(pct) / 1000.0, "ms", false};
    f.seed = "50-200 ms";
    if (pct == 99) {
      f.goal = "< 5 ms";
      f.goal_value = 5;
    }
    report->Add(f);
  }

  // Pull, on a second suite with push assignment off (else the scheduler
  // hands the queue out before anyone claims): fill the queue, then 16
  // agents claim in closed loops.
  SuiteRunner pull_suite;
  absl::Duration ignored;
  absl::Status started = pull_suite.Start(&ignored, {{"CNET_TASKS__PUSH_ASSIGNMENT", "false"}});
  if (!started.ok()) {
    report->Missing("tasks", names[2], std::string(started.message()));
    return;
  }
  registry = pb::RegistryService::NewStub(MakeChannel(pull_suite.address("registry")));
  channel = MakeChannel(pull_suite.address("tasks"));
  tasks = pb::TaskService::NewStub(channel);
  creator = Register(registry.get(), "bench-creator", "bench-create");
  if (!creator.ok()) {
    report->Missing("tasks", names[2], "could not register agents");
    return;
  }
  const int queued = p.quick ? 2000 : 100000;
  LoadResult fill = RunClosedLoop(16, queued, absl::ZeroDuration(), [&](int64_t i, auto done) {
    struct Call {
      grpc::ClientContext ctx;
      pb::CreateTaskRequest req;
      pb::CreateTaskResponse resp;
    };
    auto* call = new Call();
    Auth(&call->ctx, creator->token);
    call->req.set_title(absl::StrCat("pull ", i));
    call->req.add_required_capabilities("bench-pull");
    tasks->async()->CreateTask(&call->ctx, &call->req, &call->resp,
                               [call, done](grpc::Status s) {
                                 delete call;
                                 done(s.ok());
                               });
  });
  std::vector<Agent> pullers;
  for (int a = 0; a < 16; ++a) {
    auto agent = Register(registry.get(), absl::StrCat("bench-puller-", a), "bench-pull");
    if (agent.ok()) pullers.push_back(*agent);
  }
  std::atomic<int64_t> claims{0}, empty{0};
  absl::Mutex last_mu;
  absl::Time last_claim = absl::Now();
  absl::Time end = absl::Now() + (p.quick ? absl::Seconds(2) : absl::Seconds(5));
  absl::Time t0 = absl::Now();
  std::vector<std::thread> threads;
  for (const Agent& agent : pullers) {
    threads.emplace_back([&, agent] {
      auto stub = pb::TaskService::NewStub(channel);
      while (absl::Now() < end) {
        grpc::ClientContext ctx;
        Auth(&ctx, agent.token);
        pb::ClaimRequest req;
        req.set_agent_id(agent.id);
        req.set_disable_steal(true);
        pb::ClaimResponse resp;
        if (stub->Claim(&ctx, req, &resp).ok() && resp.has_task()) {
          claims.fetch_add(1);
          absl::MutexLock lock(&last_mu);
          last_claim = std::max(last_claim, absl::Now());
        } else if (empty.fetch_add(1) > 64) {
          break;  // the queue is drained
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  // The rate while there was work: up to the last successful claim.
  Figure f{"tasks", names[2], claims.load() / absl::ToDoubleSeconds(last_claim - t0), "claims/s",
           true};
  f.goal = ">= 5,000";
  f.goal_value = 5000;
  f.note = absl::StrCat(fill.ok, " queued (", fill.rate() > 0 ? static_cast<int>(fill.rate()) : 0,
                        " creates/s), ", pullers.size(), " agents, ", empty.load(),
                        " empty answers; push assignment off");
  report->Add(f);
}

}  // namespace cnet::bench
