// The benchmark's workloads. Each adds its figures to the report, marking a
// figure unavailable (with the reason) rather than failing the whole run.
#ifndef CNET_TOOLS_BENCH_WORKLOADS_H_
#define CNET_TOOLS_BENCH_WORKLOADS_H_

#include "tools/bench/report.h"
#include "tools/bench/suite_runner.h"

namespace cnet::bench {

struct Params {
  bool quick = false;
};

// Trivial gRPC round trips on loopback in this process: the machine's limit.
void RunBaseline(const Params& p, Report* report);
// `cnet up` to all-SERVING time and idle RSS per service.
void RunSuite(const Params& p, SuiteRunner* suite, absl::Duration startup, Report* report);

// Each service's workload over gRPC against the started suite.
void RunRegistry(const Params& p, SuiteRunner* suite, Report* report);
void RunMacs(const Params& p, SuiteRunner* suite, Report* report);
void RunTasks(const Params& p, SuiteRunner* suite, Report* report);
void RunSkills(const Params& p, SuiteRunner* suite, Report* report);

// The registry, macs, tasks and skills workloads against the started suite.
void RunServiceWorkloads(const Params& p, SuiteRunner* suite, bool suite_up, Report* report);

}  // namespace cnet::bench

#endif  // CNET_TOOLS_BENCH_WORKLOADS_H_
