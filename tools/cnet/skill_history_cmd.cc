// `cnet skill history` and `cnet skill stats`: past runs and per-skill
// metrics from the skills service (added to the `skill` group of
// skill_cmd.cc).
//
//   history [NAME]   runs, newest first (--state, --caller, --limit);
//                    --run ID shows one run with its steps
//   stats [NAME]     runs, success rate, duration percentiles, in flight
#include <google/protobuf/util/time_util.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/claudenet/v1/skills.grpc.pb.h"
#include "tools/cnet/common.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

namespace {

struct HistoryFlags {
  std::string name;
  std::string run_id;
  std::vector<std::string> states;
  std::string caller;
  int limit = 20;
  double window_hours = 0;
};

std::unique_ptr<pb::SkillService::Stub> Stub(Globals* g) {
  return pb::SkillService::NewStub(g->Channel(g->config().GetString("services.skills_addr")));
}

std::string Millis(const google::protobuf::Duration& d) {
  return absl::StrFormat("%.0fms", d.seconds() * 1e3 + d.nanos() / 1e6);
}

int History(Globals* g, const HistoryFlags& f) {
  auto stub = Stub(g);
  std::string token = ReaderCredential(g);
  if (!f.run_id.empty()) {
    pb::GetRunRequest req;
    req.set_run_id(f.run_id);
    pb::GetRunResponse resp;
    grpc::Status s = stub->GetRun(g->Context(token).get(), req, &resp);
    if (!s.ok()) return ReportError(*g, "skill history --run " + f.run_id, s);
    if (g->json) {
      std::cout << ProtoJson(resp) << "\n";
      return kExitOk;
    }
    const pb::SkillRun& r = resp.run();
    std::cout << r.run_id() << " " << r.skill_name() << "@" << r.skill_version() << " "
              << ShortName(r.state(), pb::RunState_descriptor()) << " in " << Millis(r.duration())
              << " by " << r.caller().id() << "\n";
    if (!r.error().message().empty()) {
      std::cout << "error: " << r.error().code() << ": " << r.error().message() << "\n";
    }
    std::cout << "inputs:  " << ProtoJson(r.inputs()) << "\noutputs: " << ProtoJson(r.outputs())
              << "\n";
    for (const auto& step : r.steps()) {
      std::cout << "  step " << step.path() << " (" << step.target() << "): "
                << ShortName(step.state(), pb::StepState_descriptor()) << "\n";
    }
    return kExitOk;
  }
  if (f.limit < 1 || f.limit > 1000) return ReportUsage(*g, "skill history", "--limit: 1..1000");
  pb::ListRunsRequest req;
  req.set_page_size(f.limit);
  req.set_skill_name(f.name);
  req.set_caller(f.caller);
  for (const auto& st : f.states) {
    int value = 0;
    if (!ParseEnum(st, pb::RunState_descriptor(), &value)) {
      return ReportUsage(*g, "skill history",
                         "--state: queued, running, succeeded, failed or cancelled");
    }
    req.add_states(static_cast<pb::RunState>(value));
  }
  pb::ListRunsResponse resp;
  grpc::Status s = stub->ListRuns(g->Context(token).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "skill history", s);
  if (g->json) {
    std::cout << ProtoJson(resp) << "\n";
    return kExitOk;
  }
  for (const auto& r : resp.runs()) {
    std::cout << absl::StrFormat("%-30s %-24s %-10s %8s  %s  %s\n", r.run_id(), r.skill_name(),
                                 ShortName(r.state(), pb::RunState_descriptor()),
                                 Millis(r.duration()), Ago(r.created_at()), r.caller().id());
  }
  std::cout << resp.runs_size() << " run(s)\n";
  return kExitOk;
}

int Stats(Globals* g, const HistoryFlags& f) {
  pb::GetSkillStatsRequest req;
  req.set_skill_name(f.name);
  req.set_page_size(1000);
  if (f.window_hours > 0) {
    req.mutable_window()->set_seconds(static_cast<int64_t>(f.window_hours * 3600));
  }
  pb::GetSkillStatsResponse resp;
  grpc::Status s = Stub(g)->GetSkillStats(g->Context(ReaderCredential(g)).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "skill stats", s);
  if (g->json) {
    std::cout << ProtoJson(resp) << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("%-24s %6s %6s %6s %8s %9s %9s %9s\n", "SKILL", "RUNS", "OK",
                               "FAILED", "SUCCESS", "P50", "P95", "IN FLIGHT");
  auto line = [](const pb::SkillStats& st, const std::string& name) {
    std::cout << absl::StrFormat("%-24s %6d %6d %6d %7.0f%% %9s %9s %9d\n", name, st.runs(),
                                 st.succeeded(), st.failed(), st.success_rate() * 100,
                                 Millis(st.duration().p50()), Millis(st.duration().p95()),
                                 st.in_flight());
  };
  for (const auto& st : resp.stats()) line(st, st.skill_name());
  if (f.name.empty()) line(resp.totals(), "(all)");
  return kExitOk;
}

}  // namespace

void AddSkillHistoryCommands(CLI::App* app, Globals* g) {
  auto f = std::make_shared<HistoryFlags>();
  CLI::App* group = app->get_subcommand("skill");
  auto* history = group->add_subcommand("history", "past runs, newest first (or one run)");
  history->add_option("name", f->name, "only runs of this skill");
  history->add_option("--run", f->run_id, "show this run with its steps");
  history->add_option("--state", f->states, "queued, running, succeeded, failed, cancelled");
  history->add_option("--caller", f->caller, "only runs by this agent");
  history->add_option("--limit", f->limit, "at most this many (1..1000)")->capture_default_str();
  history->footer("Example: cnet skill history network_onboarding --state failed");
  history->callback([g, f] { g->exit_code = History(g, *f); });

  auto* stats = group->add_subcommand("stats", "runs, success rate and durations per skill");
  stats->add_option("name", f->name, "only this skill");
  stats->add_option("--window", f->window_hours, "only the last N hours");
  stats->footer("Example: cnet skill stats --window 24");
  stats->callback([g, f] { g->exit_code = Stats(g, *f); });
}

}  // namespace cnet::cli
