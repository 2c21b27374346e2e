// Workloads against the running suite. A workload whose service is not
// implemented yet reports its figures as unavailable with the reason.
#include "tools/bench/workloads.h"

namespace cnet::bench {
namespace {

void MissingAll(Report* report, const std::string& workload,
                const std::vector<std::string>& names, const std::string& why) {
  for (const auto& n : names) report->Missing(workload, n, why);
}

}  // namespace

void RunServiceWorkloads(const Params& p, SuiteRunner* suite, bool suite_up, Report* report) {
  std::string why = suite_up ? "workload not implemented yet" : "suite did not start";
  if (suite_up) {
    RunRegistry(p, suite, report);
  } else {
    MissingAll(report, "registry",
               {"register 100k agents", "heartbeats/s", "FindAgents p50", "FindAgents p99",
                "ListAgents by capability p50", "ListAgents by capability p99",
                "registry RSS with 100k agents"},
               why);
  }
  if (suite_up) {
    RunMacs(p, suite, report);
  } else {
    MissingAll(report, "macs",
               {"durable sends/s (1 sender)", "durable sends/s (16 senders)",
                "durable sends/s (64 senders)", "send->deliver p50 @1000/s",
                "send->deliver p95 @1000/s", "send->deliver p99 @1000/s",
                "broadcast fan-out to 100 agents"},
               why);
  }
  if (suite_up) {
    RunTasks(p, suite, report);
  } else {
    MissingAll(report, "tasks",
               {"create->ASSIGNED p50", "create->ASSIGNED p99",
                "claims/s (16 agents, 100k queued)"},
               why);
  }
  if (suite_up) {
    RunSkills(p, suite, report);
  } else {
    MissingAll(report, "skills", {"trivial skill runs/s", "per-step overhead p99 (50 parallel)"},
               why);
  }
}

}  // namespace cnet::bench
