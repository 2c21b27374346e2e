// Benchmark of the tasks service, end to end over loopback gRPC against an
// in-process server (the real adapter, board and SQLite store in a temp
// directory, durable before every acknowledgement):
//
//   1. push:  create -> ASSIGNED latency. One task at a time is created with
//             CreateTask; the time until a Watch stream shows its
//             QUEUED -> ASSIGNED transition (pushed by the scheduler to the
//             least loaded of 16 agents) is one sample.
//   2. pull:  claims per second with 16 agents (one channel and thread each)
//             claiming from 100,000 queued tasks; then the same with each
//             claim followed by Start and Complete.
//
// The registry is either the in-memory directory (default) or, with
// --remote_registry, a registry fake reached over loopback gRPC through the
// production adapter (a FindAgents rpc per push).
//
//   bazel run -c opt //services/tasks/bench:tasks_bench -- [--tasks=100000]
//       [--agents=16] [--push_samples=2000] [--remote_registry]
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/server/server.h"
#include "services/tasks/board.h"
#include "services/tasks/in_memory.h"
#include "services/tasks/registry_directory.h"
#include "services/tasks/store.h"
#include "services/tasks/tasks_service.h"
#include "tests/fakes/registry_fake.h"

namespace cnet::tasks {
namespace {

namespace pb = ::claudenet::v1;

struct Flags {
  int tasks = 100000;
  int agents = 16;
  int push_samples = 2000;
  bool remote_registry = false;
  std::string phases = "push,pull,cycle,inproc";
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name, int* out) {
      std::string prefix = absl::StrCat("--", name, "=");
      if (absl::StartsWith(a, prefix)) {
        (void)absl::SimpleAtoi(a.substr(prefix.size()), out);
        return true;
      }
      return false;
    };
    if (value("tasks", &f.tasks) || value("agents", &f.agents) ||
        value("push_samples", &f.push_samples)) {
      continue;
    }
    if (absl::StartsWith(a, "--phases=")) {
      f.phases = a.substr(9);
      continue;
    }
    if (a == "--remote_registry") {
      f.remote_registry = true;
      continue;
    }
    std::fprintf(stderr, "unknown flag %s\n", a.c_str());
    std::exit(2);
  }
  return f;
}

std::string AgentId(int i) { return absl::StrCat("agent-", i); }

// Agent tokens "tok-agent-N" -> agent-N.
class BenchTokens final : public auth::Authenticator {
 public:
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override {
    std::string c(credential);
    if (!absl::StartsWith(c, "tok-")) return absl::UnauthenticatedError("unknown token");
    return auth::Principal{auth::Kind::kAgent, c.substr(4), ""};
  }
};

std::chrono::system_clock::time_point Deadline(int seconds = 30) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// One complete service instance: store, board, adapter, server.
struct Instance {
  std::string dir;
  std::unique_ptr<Store> store;
  InMemoryDirectory memory_directory;
  fakes::RegistryFake registry;
  std::unique_ptr<GrpcServer> registry_server;
  std::unique_ptr<RegistryDirectory> remote_directory;
  RecordingNotifier notifier;
  std::unique_ptr<Board> board;
  std::unique_ptr<TaskServiceImpl> impl;
  std::unique_ptr<GrpcServer> server;

  Instance(const Flags& flags, bool push, int agent_limit) {
    std::string tmpl = "/tmp/tasks-benchXXXXXX";
    dir = mkdtemp(tmpl.data());
    Store::Options so;
    so.path = dir + "/tasks.db";
    so.background_checkpoint = true;
    store = std::move(*Store::Open(so));
    AgentDirectory* directory = &memory_directory;
    for (int i = 0; i < flags.agents; ++i) {
      AgentInfo a;
      a.id = AgentId(i);
      a.capabilities = {"py"};
      a.max_concurrent_tasks = agent_limit;
      memory_directory.Put(a);
      pb::Agent pa;
      pa.set_id(a.id);
      pa.add_capabilities("py");
      pa.set_max_concurrent_tasks(agent_limit);
      registry.PutAgent(pa, "tok-" + a.id);
    }
    if (flags.remote_registry) {
      ServerOptions ro;
      ro.name = "registry-fake";
      ro.services = {&registry};
      registry_server = std::move(*GrpcServer::Start(std::move(ro)));
      registry_client::ClientOptions co;
      co.address = registry_server->address();
      co.credential = "svc";
      remote_directory = std::make_unique<RegistryDirectory>(
          std::make_shared<registry_client::RegistryClient>(co));
      remote_directory->Start();
      directory = remote_directory.get();
    }
    BoardOptions o;
    o.background = true;
    o.push_assignment = push;
    o.default_agent_concurrency = agent_limit;
    board = std::move(*Board::Open(o, store.get(), RealClock::Default(), directory, &notifier));
    TaskServiceImpl::Options so2;
    so2.watch_queue = 1 << 20;
    impl = std::make_unique<TaskServiceImpl>(board.get(), so2);
    ServerOptions options;
    options.name = "tasks";
    options.services = {impl.get()};
    options.interceptors.push_back(auth::MakeAuthInterceptorFactory(
        std::make_shared<auth::StaticAuthenticator>("admin", "svc",
                                                    std::make_shared<BenchTokens>())));
    server = std::move(*GrpcServer::Start(std::move(options)));
  }

  ~Instance() {
    if (remote_directory) remote_directory->Stop();
    board->Shutdown();
    server->Shutdown(absl::Seconds(2));
    if (registry_server) registry_server->Shutdown(absl::Seconds(1));
    std::string cmd = "rm -rf " + dir;
    (void)std::system(cmd.c_str());
  }
};

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void PushLatency(const Flags& flags) {
  Instance inst(flags, /*push=*/true, /*agent_limit=*/1000000);
  auto channel = MakeChannel(inst.server->address());
  auto stub = pb::TaskService::NewStub(channel);

  // Watch for ASSIGNED transitions.
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, absl::Time> assigned_at;
  grpc::ClientContext wctx;
  auth::SetBearer(&wctx, "admin");
  pb::WatchTasksRequest wreq;
  wreq.add_event_types(pb::TASK_EVENT_TYPE_TRANSITION);
  auto stream = stub->Watch(&wctx, wreq);
  std::thread reader([&] {
    pb::TaskEvent ev;
    while (stream->Read(&ev)) {
      if (ev.transition().to_state() != pb::TASK_STATE_ASSIGNED) continue;
      absl::Time now = absl::Now();
      std::lock_guard<std::mutex> lock(mu);
      assigned_at[ev.task().id()] = now;
      cv.notify_all();
    }
  });

  std::vector<double> to_assigned_ms, create_rpc_ms;
  std::map<std::string, int> per_agent;
  for (int i = 0; i < flags.push_samples; ++i) {
    pb::CreateTaskRequest req;
    req.set_title(absl::StrCat("push ", i));
    req.add_required_capabilities("py");
    pb::CreateTaskResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    auth::SetBearer(&ctx, "admin");
    absl::Time t0 = absl::Now();
    grpc::Status s = stub->CreateTask(&ctx, req, &resp);
    absl::Time t1 = absl::Now();
    if (!s.ok()) {
      std::fprintf(stderr, "CreateTask: %s\n", s.error_message().c_str());
      std::exit(1);
    }
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_until(lock, Deadline(10), [&] { return assigned_at.count(resp.task().id()); })) {
      std::fprintf(stderr, "task %s was not pushed within 10 s\n", resp.task().id().c_str());
      std::exit(1);
    }
    to_assigned_ms.push_back(absl::ToDoubleMilliseconds(assigned_at[resp.task().id()] - t0));
    create_rpc_ms.push_back(absl::ToDoubleMilliseconds(t1 - t0));
  }
  wctx.TryCancel();
  reader.join();
  auto assigned = inst.board->List([] {
    pb::ListTasksRequest r;
    r.add_states(pb::TASK_STATE_ASSIGNED);
    r.set_page_size(1000);
    return r;
  }());
  std::printf("push: %d tasks created one at a time, %d agents, registry %s\n",
              flags.push_samples, flags.agents,
              flags.remote_registry ? "fake over gRPC (FindAgents rpc per push)" : "in-memory");
  std::printf("  create->ASSIGNED (seen on Watch): p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
              Pct(to_assigned_ms, 0.5), Pct(to_assigned_ms, 0.99), Pct(to_assigned_ms, 1.0));
  std::printf("  CreateTask rpc:                   p50 %.3f ms  p99 %.3f ms\n",
              Pct(create_rpc_ms, 0.5), Pct(create_rpc_ms, 0.99));
  std::printf("  ASSIGNED now: %lld\n",
              static_cast<long long>(assigned.ok() ? assigned->total_size() : -1));
}

void FillQueue(Instance& inst, int n) {
  absl::Time t0 = absl::Now();
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 8; ++w) {
    threads.emplace_back([&] {
      pb::CreateTaskRequest req;
      req.add_required_capabilities("py");
      while (true) {
        int i = next.fetch_add(1);
        if (i >= n) return;
        req.set_title(absl::StrCat("queued ", i));
        req.set_priority(static_cast<pb::Priority>(1 + i % 3));
        auto r = inst.board->Create(Actor::Admin(), req);
        if (!r.ok()) {
          std::fprintf(stderr, "Create: %s\n", std::string(r.status().message()).c_str());
          std::exit(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = absl::ToDoubleSeconds(absl::Now() - t0);
  auto j = inst.board->journal_stats();
  std::printf("  queued %d tasks in %.2f s (%.0f creates/s in-process, 8 threads; %.1f ops per "
              "commit)\n",
              n, secs, n / secs, j.commits ? static_cast<double>(j.operations) / j.commits : 0);
}

// The board alone: the same claims without gRPC, to show what the rpc layer
// costs on this machine.
void InProcessClaims(const Flags& flags) {
  Instance inst(flags, /*push=*/false, /*agent_limit=*/1000000);
  std::printf("in-process claims (no gRPC): %d agent threads, %d queued tasks\n", flags.agents,
              flags.tasks);
  FillQueue(inst, flags.tasks);
  auto before = inst.board->journal_stats();
  std::atomic<int64_t> claims{0};
  absl::Time t0 = absl::Now();
  std::vector<std::thread> threads;
  for (int a = 0; a < flags.agents; ++a) {
    threads.emplace_back([&, a] {
      Actor actor = Actor::Agent(AgentId(a));
      pb::ClaimRequest req;
      req.set_disable_steal(true);
      while (true) {
        auto r = inst.board->Claim(actor, req);
        if (!r.ok() || !r->has_task()) return;
        claims.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = absl::ToDoubleSeconds(absl::Now() - t0);
  auto after = inst.board->journal_stats();
  int64_t commits = after.commits - before.commits;
  int64_t ops = after.operations - before.operations;
  std::printf("  %lld claims in %.2f s: %.0f claims/s; %.1f operations per commit\n",
              static_cast<long long>(claims.load()), secs, claims.load() / secs,
              commits ? static_cast<double>(ops) / commits : 0);
}

void PullThroughput(const Flags& flags, bool finish) {
  Instance inst(flags, /*push=*/false, /*agent_limit=*/1000000);
  std::printf("pull%s: %d agents, %d queued tasks\n", finish ? " + start + complete" : "",
              flags.agents, flags.tasks);
  FillQueue(inst, flags.tasks);
  auto before = inst.board->journal_stats();
  std::atomic<int64_t> claims{0};
  std::vector<std::vector<double>> latencies(flags.agents);
  std::atomic<bool> failed{false};
  absl::Time t0 = absl::Now();
  std::vector<std::thread> threads;
  for (int a = 0; a < flags.agents; ++a) {
    threads.emplace_back([&, a] {
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", a);  // one connection per agent
      auto stub = pb::TaskService::NewStub(grpc::CreateCustomChannel(
          inst.server->address(), grpc::InsecureChannelCredentials(), args));
      const std::string token = "tok-" + AgentId(a);
      while (true) {
        pb::ClaimRequest req;
        req.set_disable_steal(true);
        pb::ClaimResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(Deadline());
        auth::SetBearer(&ctx, token);
        absl::Time c0 = absl::Now();
        grpc::Status s = stub->Claim(&ctx, req, &resp);
        latencies[a].push_back(absl::ToDoubleMilliseconds(absl::Now() - c0));
        if (!s.ok()) {
          std::fprintf(stderr, "Claim: %s\n", s.error_message().c_str());
          failed = true;
          return;
        }
        if (!resp.has_task()) return;
        claims.fetch_add(1);
        if (!finish) continue;
        pb::StartRequest st;
        st.set_task_id(resp.task().id());
        st.set_lease_id(resp.lease().lease_id());
        st.set_lease_epoch(resp.lease().epoch());
        pb::StartResponse sr;
        grpc::ClientContext sctx;
        sctx.set_deadline(Deadline());
        auth::SetBearer(&sctx, token);
        pb::CompleteRequest c;
        c.set_task_id(resp.task().id());
        c.set_lease_id(resp.lease().lease_id());
        c.set_lease_epoch(resp.lease().epoch());
        pb::CompleteResponse cr;
        grpc::ClientContext cctx;
        cctx.set_deadline(Deadline());
        auth::SetBearer(&cctx, token);
        if (!stub->Start(&sctx, st, &sr).ok() || !stub->Complete(&cctx, c, &cr).ok()) {
          failed = true;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = absl::ToDoubleSeconds(absl::Now() - t0);
  if (failed) std::exit(1);
  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  auto after = inst.board->journal_stats();
  int64_t commits = after.commits - before.commits;
  int64_t ops = after.operations - before.operations;
  std::printf("  %lld claims in %.2f s: %.0f claims/s%s\n", static_cast<long long>(claims.load()),
              secs, claims.load() / secs,
              finish ? absl::StrCat(" (", static_cast<int>(3 * claims.load() / secs),
                                    " rpcs/s incl. Start and Complete)")
                           .c_str()
                     : "");
  std::printf("  Claim rpc latency: p50 %.3f ms  p99 %.3f ms\n", Pct(all, 0.5), Pct(all, 0.99));
  std::printf("  group commit: %lld transactions for %lld operations (%.1f per commit)\n",
              static_cast<long long>(commits), static_cast<long long>(ops),
              commits ? static_cast<double>(ops) / commits : 0);
}

}  // namespace
}  // namespace cnet::tasks

int main(int argc, char** argv) {
  cnet::tasks::Flags flags = cnet::tasks::ParseFlags(argc, argv);
  std::printf("tasks bench: %u hardware threads\n", std::thread::hardware_concurrency());
  // Debian's Abseil tracks lock order for deadlock reports on every lock
  // (a debug aid); the service turns it off too.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto want = [&](const char* phase) { return absl::StrContains(flags.phases, phase); };
  if (want("push")) cnet::tasks::PushLatency(flags);
  if (want("pull")) cnet::tasks::PullThroughput(flags, /*finish=*/false);
  if (want("cycle")) cnet::tasks::PullThroughput(flags, /*finish=*/true);
  if (want("inproc")) cnet::tasks::InProcessClaims(flags);
  return 0;
}
