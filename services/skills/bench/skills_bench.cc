// Throughput and engine overhead of the skills service, end to end over
// gRPC: a server on port 0 (real adapter, auth interceptor, engine, SQLite
// store in a temporary directory, wall clock, thread pools as in
// production) runs a trivial skill (N `log` steps) for C clients calling
// RunSkill SYNC in a loop, each as its own agent. MACS/Registry/Tasks are
// the in-memory stand-ins; the trivial skill does not call them.
//
//   bazel run -c opt //services/skills/bench:skills_bench --
//       --parallel=50 --seconds=10 --steps=1   (one line)
//
// Prints runs/s, client latency percentiles, and the engine's per-step
// overhead (step wall time beyond the action's own time, from
// GetSkillStats) and run duration percentiles.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "services/skills/engine.h"
#include "services/skills/skills_service.h"
#include "services/skills/testing/fake_network.h"

namespace cnet::skills {
namespace {

class TokenAuthenticator final : public auth::Authenticator {
 public:
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override {
    std::string c(credential);
    if (c.rfind("tok-", 0) == 0) return auth::Principal{auth::Kind::kAgent, c.substr(4), ""};
    return absl::UnauthenticatedError("unknown credential");
  }
};

int64_t Flag(int argc, char** argv, const std::string& name, int64_t def) {
  std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    int64_t v;
    if (a.rfind(prefix, 0) == 0 && absl::SimpleAtoi(a.substr(prefix.size()), &v)) return v;
  }
  return def;
}

double Ms(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) * 1e3 + d.nanos() / 1e6;
}

int Main(int argc, char** argv) {
  // absl's lock-order graph costs every Mutex acquisition and destruction;
  // the engine creates a few mutexes per step. Tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const int parallel = static_cast<int>(Flag(argc, argv, "parallel", 50));
  const int seconds = static_cast<int>(Flag(argc, argv, "seconds", 10));
  const int steps = static_cast<int>(Flag(argc, argv, "steps", 1));
  const int workers = static_cast<int>(Flag(argc, argv, "worker_threads", 8));

  std::string tmpl = std::filesystem::temp_directory_path().string() + "/skills-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  std::filesystem::create_directories(dir + "/skills/core");
  {
    std::ofstream f(dir + "/skills/core/trivial.yaml");
    f << "name: trivial\nversion: 1.0.0\ndescription: N log steps.\nsteps:\n";
    for (int i = 0; i < steps; ++i) {
      f << "  - id: s" << i << "\n    action: log\n    args: {message: \"step " << i
        << " of {{ run.id }}\"}\n";
    }
  }

  Clock* clock = RealClock::Default();
  testing::FakeNetwork net(clock);
  ProcSystemProbe probe;
  auto store = Store::Open(dir + "/skills.db", clock);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  ActionEnv env;
  env.messaging = &net;
  env.registry = &net;
  env.tasks = &net;
  env.data = store->get();
  env.system = &probe;
  ActionRegistry actions(env);
  LibraryManager library(dir + "/skills", &actions.catalog(), clock);
  if (!library.Reload().ok() || library.Current()->valid_count() != 1) {
    std::fprintf(stderr, "library did not load\n");
    return 1;
  }
  ThreadPool pool(workers), blocking(32);
  EngineOptions options;
  options.max_runs = parallel + 8;
  options.max_runs_per_agent = 8;
  Engine engine(&library, &actions, store->get(), clock, &pool, &blocking, options);
  SkillServiceImpl impl(&engine, &library, clock);
  ServerOptions server_options;
  server_options.name = "skills-bench";
  server_options.services = {&impl};
  server_options.interceptors.push_back(auth::MakeAuthInterceptorFactory(
      std::make_shared<auth::StaticAuthenticator>("admin", "svc",
                                                  std::make_shared<TokenAuthenticator>())));
  auto server = GrpcServer::Start(std::move(server_options));
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  auto channel = MakeChannel((*server)->address());
  auto stub = pb::SkillService::NewStub(channel);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> failures{0};
  std::vector<std::vector<double>> latencies(parallel);
  std::vector<std::thread> clients;
  absl::Time started = absl::Now();
  for (int c = 0; c < parallel; ++c) {
    clients.emplace_back([&, c] {
      std::string token = absl::StrCat("tok-agent-", c);
      pb::RunSkillRequest req;
      req.set_name("trivial");
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        auth::SetBearer(&ctx, token);
        pb::RunSkillResponse resp;
        absl::Time t0 = absl::Now();
        grpc::Status s = stub->RunSkill(&ctx, req, &resp);
        double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
        if (!s.ok() || resp.run().state() != pb::RUN_STATE_SUCCEEDED) {
          if (failures.fetch_add(1) < 3) {
            std::fprintf(stderr, "run failed: %s %s\n", s.error_message().c_str(),
                         resp.run().error().message().c_str());
          }
          continue;
        }
        latencies[c].push_back(ms);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));  // the measuring window
  stop.store(true);
  for (auto& t : clients) t.join();
  double elapsed = absl::ToDoubleSeconds(absl::Now() - started);

  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double q) {
    if (all.empty()) return 0.0;
    size_t i = static_cast<size_t>(q * static_cast<double>(all.size()));
    return all[std::min(all.size() - 1, i)];
  };
  store->get()->Flush();
  grpc::ClientContext ctx;
  auth::SetBearer(&ctx, "tok-reader");
  pb::GetSkillStatsRequest stats_req;
  stats_req.set_skill_name("trivial");
  pb::GetSkillStatsResponse stats;
  grpc::Status s = stub->GetSkillStats(&ctx, stats_req, &stats);

  std::printf("skills bench: %d clients in parallel, RunSkill SYNC over gRPC, %d-step trivial "
              "skill (log), %d worker threads, %.1f s\n",
              parallel, steps, workers, elapsed);
  std::printf("  runs:                  %zu succeeded, %lld failed\n", all.size(),
              static_cast<long long>(failures.load()));
  std::printf("  throughput:            %.0f runs/s (%.0f steps/s)\n",
              static_cast<double>(all.size()) / elapsed,
              static_cast<double>(all.size()) * steps / elapsed);
  std::printf("  client latency:        p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", pct(0.50),
              pct(0.99), all.empty() ? 0.0 : all.back());
  if (s.ok() && stats.stats_size() == 1) {
    const pb::SkillStats& st = stats.stats(0);
    std::printf("  run duration (engine): p50 %.3f ms  p99 %.3f ms  (%lld runs)\n",
                Ms(st.duration().p50()), Ms(st.duration().p99()),
                static_cast<long long>(st.duration().count()));
    std::printf("  run overhead per step: p50 %.3f ms  p99 %.3f ms  (run duration / steps; the "
                "log action's own time is microseconds)\n",
                Ms(st.duration().p50()) / steps, Ms(st.duration().p99()) / steps);
    std::printf("  per-step overhead:     p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%lld steps; "
                "step wall time beyond the action's own time)\n",
                Ms(st.step_overhead().p50()), Ms(st.step_overhead().p99()),
                Ms(st.step_overhead().max()),
                static_cast<long long>(st.step_overhead().count()));
  } else {
    std::printf("  stats unavailable: %s\n", s.error_message().c_str());
  }
  (*server)->Shutdown(absl::Seconds(5));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace cnet::skills

int main(int argc, char** argv) { return cnet::skills::Main(argc, argv); }
