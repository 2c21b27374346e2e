// cnet: the command line of Claude Network, for people and agents.
// This file wires subcommands; each group lives in its own unit.
#include <iostream>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "libs/config/loader.h"
#include "tools/cnet/agent.h"
#include "tools/cnet/suite.h"

namespace {

using cnet::cli::kExitUsage;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cnet - the command line of Claude Network"};
  app.require_subcommand(1);
  bool json = false;
  double timeout_s = 10;
  std::string project_dir, data_dir;
  app.add_flag("--json", json, "print one JSON object on stdout, nothing else");
  app.add_option("--timeout", timeout_s, "deadline of each call, seconds")->capture_default_str();
  app.add_option("--project-dir", project_dir,
                 "directory with config.yaml / config.example.yaml (default: cwd)");
  app.add_option("--data-dir", data_dir, "data directory (overrides services.data_dir)");

  auto* up = app.add_subcommand("up", "start the five services and wait until all are SERVING");
  std::string bin_dir;
  double up_timeout_s = 60;
  up->add_option("--bin-dir", bin_dir, "directory of the service binaries (default: found)");
  up->add_option("--wait", up_timeout_s, "seconds to wait for SERVING")->capture_default_str();
  up->footer("Example: cnet up");
  auto* down = app.add_subcommand("down", "stop the services started by `cnet up`");
  down->footer("Example: cnet down");
  auto* status = app.add_subcommand("status", "show each service's pid, address and health");
  status->footer("Example: cnet status --json");
  auto* health = app.add_subcommand("health", "exit 0 only if ADDRESS answers SERVING");
  std::string address, service;
  health->add_option("--addr", address, "host:port")->required();
  health->add_option("--service", service, "fully qualified service name (default: server)");
  health->footer("Example: cnet health --addr 127.0.0.1:7101");
  cnet::cli::AgentCommands agent(&app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  absl::Duration timeout = absl::Seconds(timeout_s);

  if (health->parsed()) return cnet::cli::Health(address, service, timeout, json);

  cnet::config::LoadOptions load = cnet::config::LoadOptions::FromProcess();
  if (!project_dir.empty()) load.project_dir = project_dir;
  if (!data_dir.empty()) load.env[cnet::config::GenericEnvName("services.data_dir")] = data_dir;
  absl::StatusOr<cnet::config::Config> config = cnet::config::Load(load);
  if (!config.ok()) {
    std::cerr << "cnet: invalid configuration: " << config.status().message() << "\n";
    return cnet::cli::kExitUsage;
  }
  cnet::cli::SuiteOptions options{*config, bin_dir, load.project_dir,
                                  absl::Seconds(up_timeout_s), json};
  if (agent.parsed()) return agent.Run(*config, load.home_dir, timeout, json);
  if (up->parsed()) return cnet::cli::Up(options);
  if (down->parsed()) return cnet::cli::Down(options);
  if (status->parsed()) return cnet::cli::Status(options);
  return kExitUsage;
}
