// Registry workload over gRPC against the started suite: registration of
// many agents, sustained heartbeats, discovery latency, and the registry's
// RSS holding them.
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "tools/bench/load.h"
#include "tools/bench/workloads.h"

namespace cnet::bench {
namespace pb = claudenet::v1;

namespace {

constexpr int kCapabilityPool = 50;

std::string Capability(int i) { return absl::StrCat("cap-", i % kCapabilityPool); }

}  // namespace

void RunRegistry(const Params& p, SuiteRunner* suite, Report* report) {
  const int agents = p.quick ? 2000 : 100000;
  auto channel = MakeChannel(suite->address("registry"));
  auto stub = pb::RegistryService::NewStub(channel);
  std::vector<std::string> ids(agents), tokens(agents);

  struct RegisterCall {
    grpc::ClientContext ctx;
    pb::RegisterRequest req;
    pb::RegisterResponse resp;
  };
  LoadResult reg = RunClosedLoop(64, agents, absl::ZeroDuration(), [&](int64_t i, auto done) {
    auto* call = new RegisterCall();
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    call->req.set_agent_id(absl::StrCat("bench-agent-", i));
    call->req.set_name(absl::StrCat("bench agent ", i));
    for (int c = 0; c < 3; ++c) call->req.add_capabilities(Capability(i * 7 + c * 13));
    stub->async()->Register(&call->ctx, &call->req, &call->resp,
                            [&, call, i, done](grpc::Status s) {
                              if (s.ok()) {
                                ids[i] = call->resp.agent().id();
                                tokens[i] = call->resp.token();
                              }
                              delete call;
                              done(s.ok());
                            });
  });
  if (reg.ok == 0) {
    for (const char* name :
         {"register 100k agents", "heartbeats/s", "FindAgents p50", "FindAgents p99",
          "ListAgents by capability p50", "ListAgents by capability p99",
          "registry RSS with 100k agents"}) {
      report->Missing("registry", name, "every Register call failed");
    }
    return;
  }
  Figure regf{"registry", "register 100k agents", absl::ToDoubleSeconds(reg.elapsed), "s", false};
  if (p.quick) {
    regf.note = absl::StrCat("quick mode: ", agents, " agents, ", reg.failed, " failed");
  } else if (reg.failed) {
    regf.note = absl::StrCat(reg.failed, " failed");
  }
  report->Add(regf);

  struct HeartbeatCall {
    grpc::ClientContext ctx;
    pb::HeartbeatRequest req;
    pb::HeartbeatResponse resp;
  };
  LoadResult hb = RunClosedLoop(
      64, 0, p.quick ? absl::Seconds(2) : absl::Seconds(10), [&](int64_t i, auto done) {
        int a = static_cast<int>(i % agents);
        auto* call = new HeartbeatCall();
        call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        call->ctx.AddMetadata("authorization", "Bearer " + tokens[a]);
        call->req.set_agent_id(ids[a]);
        call->req.set_status(pb::AGENT_STATUS_ONLINE);
        call->req.mutable_metrics()->set_active_tasks(static_cast<int32_t>(i % 4));
        stub->async()->Heartbeat(&call->ctx, &call->req, &call->resp, [call, done](grpc::Status s) {
          delete call;
          done(s.ok());
        });
      });
  Figure hbf{"registry", "heartbeats/s", hb.rate(), "req/s", true};
  hbf.goal = ">= 50,000";
  hbf.goal_value = 50000;
  if (hb.failed) hbf.note = absl::StrCat(hb.failed, " failed");
  report->Add(hbf);

  const int queries = p.quick ? 300 : 2000;
  Samples find, list;
  std::mt19937 rng(7);
  for (int q = 0; q < queries; ++q) {
    std::string cap = Capability(static_cast<int>(rng() % kCapabilityPool));
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      ctx.AddMetadata("authorization", "Bearer " + tokens[0]);
      pb::FindAgentsRequest req;
      req.add_capabilities(cap);
      req.set_limit(10);
      pb::FindAgentsResponse resp;
      absl::Time t0 = absl::Now();
      if (stub->FindAgents(&ctx, req, &resp).ok()) find.Add(absl::Now() - t0);
    }
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      ctx.AddMetadata("authorization", "Bearer " + tokens[0]);
      pb::ListAgentsRequest req;
      req.add_capabilities_all(cap);
      req.set_page_size(100);
      pb::ListAgentsResponse resp;
      absl::Time t0 = absl::Now();
      if (stub->ListAgents(&ctx, req, &resp).ok()) list.Add(absl::Now() - t0);
    }
  }
  auto latency = [&](const char* name, const Samples& s, double pct) {
    Figure f{"registry", name, s.PercentileMicros(pct) / 1000.0, "ms", false};
    f.seed = "10-50 ms @1k";
    if (pct == 99) {
      f.goal = "< 2 ms";
      f.goal_value = 2;
    }
    if (p.quick) f.note = absl::StrCat("quick mode: over ", agents, " agents");
    if (s.size() == 0) {
      report->Missing("registry", name, "every query failed");
    } else {
      report->Add(f);
    }
  };
  latency("FindAgents p50", find, 50);
  latency("FindAgents p99", find, 99);
  latency("ListAgents by capability p50", list, 50);
  latency("ListAgents by capability p99", list, 99);
  Figure rss{"registry", "registry RSS with 100k agents", RssMiB(suite->pid("registry")), "MiB",
             false};
  rss.goal = "< 300 MiB";
  rss.goal_value = 300;
  if (p.quick) rss.note = absl::StrCat("quick mode: ", agents, " agents");
  report->Add(rss);
}

}  // namespace cnet::bench
