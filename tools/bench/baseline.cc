// Baseline: grpc.health.v1 Check against a server in this process — the
// cheapest unary rpc gRPC can serve — sequential (latency) and with many
// calls in flight through the callback API (throughput).
#include <atomic>

#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/server/server.h"
#include "tools/bench/workloads.h"

namespace cnet::bench {

void RunBaseline(const Params& p, Report* report) {
  ServerOptions options;
  options.name = "bench-baseline";
  auto server = GrpcServer::Start(std::move(options));
  if (!server.ok()) {
    report->Missing("baseline", "unary", std::string(server.status().message()));
    return;
  }
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel((*server)->address()));
  grpc::health::v1::HealthCheckRequest req;

  const int pings = p.quick ? 2000 : 20000;
  Samples lat;
  for (int i = 0; i < pings; ++i) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse resp;
    absl::Time t0 = absl::Now();
    stub->Check(&ctx, req, &resp);
    lat.Add(absl::Now() - t0);
  }
  report->Add({"baseline", "unary ping-pong p50", lat.PercentileMicros(50), "us", false});
  report->Add({"baseline", "unary ping-pong p99", lat.PercentileMicros(99), "us", false});

  // Throughput: keep `inflight` calls outstanding for a fixed time.
  const int inflight = 64;
  const absl::Duration span = p.quick ? absl::Seconds(2) : absl::Seconds(5);
  absl::Mutex mu;
  int outstanding = 0;
  std::atomic<int64_t> done{0};
  absl::Time end = absl::Now() + span;
  std::function<void()> issue;
  struct Call {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse resp;
  };
  issue = [&] {
    auto* call = new Call();
    stub->async()->Check(&call->ctx, &req, &call->resp, [&, call](grpc::Status) {
      delete call;
      done.fetch_add(1, std::memory_order_relaxed);
      if (absl::Now() < end) {
        issue();
      } else {
        absl::MutexLock lock(&mu);
        --outstanding;
      }
    });
  };
  absl::Time t0 = absl::Now();
  {
    absl::MutexLock lock(&mu);
    outstanding = inflight;
  }
  for (int i = 0; i < inflight; ++i) issue();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* n) { return *n == 0; }, &outstanding));
  }
  double rate = done.load() / absl::ToDoubleSeconds(absl::Now() - t0);
  report->Add({"baseline", "max unary req/s (64 in flight)", rate, "req/s", true});
  report->SetBaselineRate(rate);
  (*server)->Shutdown(absl::Seconds(1));
}

void RunSuite(const Params&, SuiteRunner* suite, absl::Duration startup, Report* report) {
  Figure start{"suite", "cnet up -> all SERVING", absl::ToDoubleSeconds(startup), "s", false};
  start.goal = "< 2 s";
  start.goal_value = 2;
  report->Add(start);
  for (const char* name : {"config", "registry", "macs-gateway", "tasks", "skills"}) {
    Figure rss{"suite", std::string("idle RSS ") + name, RssMiB(suite->pid(name)), "MiB", false};
    rss.goal = "< 50 MiB";
    rss.goal_value = 50;
    report->Add(rss);
  }
}

}  // namespace cnet::bench
