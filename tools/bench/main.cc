// bench: how fast Claude Network is on this machine, next to the machine's
// own gRPC limit. Starts its own suite on free ports and a temporary data
// directory, runs bounded workloads, prints one table and writes a JSON
// file with every figure, the machine, the commit and the parameters.
//
//   bazel run //tools/bench -- --quick            (under 60 s; the smoke test)
//   bazel run //tools/bench -- --out /tmp/b.json  (full run, for README figures)
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "libs/logging/logging.h"
#include "tools/bench/report.h"
#include "tools/bench/suite_runner.h"
#include "tools/bench/workloads.h"

int main(int argc, char** argv) {
  CLI::App app{"Claude Network benchmark"};
  cnet::bench::Params params;
  std::string out = "bench-results.json";
  app.add_flag("--quick", params.quick, "reduced counts; finishes in under 60 s");
  app.add_option("--out", out, "JSON results file")->capture_default_str();
  std::string log_file = "/dev/null";
  app.add_option("--log-file", log_file, "where the tool's own log goes; - for stderr");
  CLI11_PARSE(app, argc, argv);
  cnet::InitLogging(argv[0], "bench", log_file == "-" ? "" : log_file).IgnoreError();

  cnet::bench::Report report;
  report.SetParameter("mode", params.quick ? "quick" : "full");
  cnet::bench::RunBaseline(params, &report);

  cnet::bench::SuiteRunner suite;
  absl::Duration startup;
  // The benchmark creates 100k tasks from one agent as fast as it can: lift
  // the per-agent creation rate limit (tasks.create_rate_per_agent) it
  // would otherwise measure.
  absl::Status started = suite.Start(&startup, {{"CNET_TASKS__CREATE_RATE_PER_AGENT", "0"}});
  if (!started.ok()) {
    std::cerr << "bench: " << started.message() << "\n";
    report.Missing("suite", "cnet up -> all SERVING", std::string(started.message()));
  } else {
    cnet::bench::RunSuite(params, &suite, startup, &report);
  }
  cnet::bench::RunServiceWorkloads(params, &suite, started.ok(), &report);
  suite.Stop();

  report.PrintTable();
  std::ofstream(out) << report.Json();
  std::cout << "results written to " << out << "\n";
  return started.ok() ? 0 : 1;
}
