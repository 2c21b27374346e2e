// Skills workload over gRPC against the started suite: a trivial skill (one
// `log` step) run SYNC by 50 agents at once, each with its own token:
// completed runs per second, and the engine's per-step overhead (a step's
// wall time beyond its action's own time) as the skills service measures
// it (GetSkillStats).
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/skills.grpc.pb.h"
#include "tools/bench/load.h"
#include "tools/bench/workloads.h"

namespace cnet::bench {
namespace pb = claudenet::v1;

namespace {

constexpr int kParallel = 50;

constexpr char kTrivialSkill[] = R"(name: bench_trivial
version: 1.0.0
description: One log step (the skills benchmark's trivial skill).
steps:
  - id: say
    action: log
    args: {message: "{{ run.id }}"}
)";

void Deadline(grpc::ClientContext* ctx, const std::string& token) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace

void RunSkills(const Params& p, SuiteRunner* suite, Report* report) {
  const std::vector<std::string> names = {"trivial skill runs/s",
                                          "per-step overhead p99 (50 parallel)"};
  auto missing = [&](const std::string& why) {
    for (const auto& n : names) report->Missing("skills", n, why);
  };
  // The suite's library lives in its project directory, which the suite
  // starts without: write the skill there and ask for a reload.
  std::filesystem::path dir =
      std::filesystem::path(suite->data_dir()).parent_path() / "skills" / "core" / "bench";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "bench_trivial.yaml") << kTrivialSkill;
  auto skills = pb::SkillService::NewStub(MakeChannel(suite->address("skills")));
  {
    grpc::ClientContext ctx;
    Deadline(&ctx, suite->admin_token());
    pb::ReloadSkillsResponse resp;
    grpc::Status s = skills->Reload(&ctx, pb::ReloadSkillsRequest(), &resp);
    if (!s.ok()) return missing("Reload failed: " + s.error_message());
  }
  auto registry = pb::RegistryService::NewStub(MakeChannel(suite->address("registry")));
  std::vector<std::string> tokens;
  for (int i = 0; i < kParallel; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    pb::RegisterRequest req;
    req.set_name(absl::StrCat("bench-skills-", i));
    pb::RegisterResponse resp;
    grpc::Status s = registry->Register(&ctx, req, &resp);
    if (!s.ok()) return missing("could not register agents: " + s.error_message());
    tokens.push_back(resp.token());
  }

  struct Call {
    grpc::ClientContext ctx;
    pb::RunSkillRequest req;
    pb::RunSkillResponse resp;
  };
  LoadResult r = RunClosedLoop(
      kParallel, 0, p.quick ? absl::Seconds(3) : absl::Seconds(15),
      [&](int64_t i, std::function<void(bool)> done) {
        auto call = std::make_shared<Call>();
        Deadline(&call->ctx, tokens[static_cast<size_t>(i % kParallel)]);
        call->req.set_name("bench_trivial");
        skills->async()->RunSkill(&call->ctx, &call->req, &call->resp,
                                  [call, done](grpc::Status s) {
                                    done(s.ok() &&
                                         call->resp.run().state() == pb::RUN_STATE_SUCCEEDED);
                                  });
      });
  if (r.ok == 0) return missing(absl::StrCat("no run succeeded (", r.failed, " failed)"));
  Figure runs{"skills", names[0], r.rate(), "runs/s"};
  runs.seed = "50 parallel executions";
  runs.goal = ">= 1,000";
  runs.goal_value = 1000;
  runs.note = absl::StrCat(kParallel, " agents in parallel, RunSkill SYNC, ", r.failed,
                           " failed; client p99 ",
                           static_cast<int>(r.latency.PercentileMicros(99) / 1000), " ms");
  report->Add(runs);

  grpc::ClientContext ctx;
  Deadline(&ctx, tokens[0]);
  pb::GetSkillStatsRequest req;
  req.set_skill_name("bench_trivial");
  pb::GetSkillStatsResponse stats;
  grpc::Status s = skills->GetSkillStats(&ctx, req, &stats);
  if (!s.ok() || stats.stats_size() != 1) {
    report->Missing("skills", names[1], "GetSkillStats failed: " + s.error_message());
    return;
  }
  const pb::DurationStats& o = stats.stats(0).step_overhead();
  const pb::DurationStats& d = stats.stats(0).duration();
  auto us = [](const google::protobuf::Duration& x) {
    return static_cast<double>(x.seconds()) * 1e6 + x.nanos() / 1e3;
  };
  Figure overhead{"skills", names[1], us(o.p99()), "us", false};
  overhead.goal = "< 1 ms";
  overhead.goal_value = 1000;
  overhead.note = absl::StrCat(o.count(), " steps; run duration p50 ",
                               static_cast<int>(us(d.p50())), " us, p99 ",
                               static_cast<int>(us(d.p99())), " us");
  report->Add(overhead);
}

}  // namespace cnet::bench
