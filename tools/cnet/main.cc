// cnet: the command line of Claude Network, for people and agents.
// This file wires the global flags and the command groups; each group
// lives in its own unit (suite.cc, config_cmd.cc, ...).
#include <CLI/CLI.hpp>

#include "tools/cnet/agent.h"
#include "tools/cnet/agentx_cmds.h"
#include "tools/cnet/cli.h"
#include "tools/cnet/common.h"

int main(int argc, char** argv) {
  cnet::cli::Globals g;
  CLI::App app{"cnet - the command line of Claude Network"};
  app.require_subcommand(1);
  app.add_flag("--json", g.json, "print one JSON object on stdout, nothing else");
  app.add_option("--timeout", g.timeout_seconds, "deadline of each call, seconds")
      ->capture_default_str();
  app.add_option("--project-dir", g.project_dir,
                 "directory with config.yaml / config.example.yaml (default: cwd)");
  app.add_option("--data-dir", g.data_dir, "data directory (overrides services.data_dir)");
  app.add_option("--token", g.token, "credential for calls that need one")
      ->envname("CNET_TOKEN");
  for (const char* service : {"config", "registry", "macs", "tasks", "skills"}) {
    std::string key = std::string("services.") + service + "_addr";
    app.add_option(std::string("--") + service + "-addr", g.overrides[key],
                   "host:port of the " + std::string(service) + " service (default: " + key + ")");
  }
  app.add_option("--agent", g.agent, "the acting agent (a saved identity, see `cnet agent join`)")
      ->envname("CNET_AGENT");
  // Usage errors: one line on stderr, like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("cnet: ") + e.what() + " (see --help)\n";
  });
  app.footer(
      "Exit codes: 0 ok, 1 usage or invalid input, 2 not found, 3 conflict or\n"
      "precondition, 4 unauthenticated or denied, 5 unavailable, 6 internal.");
  cnet::cli::AddSuiteCommands(&app, &g);
  cnet::cli::AddConfigCommands(&app, &g);
  cnet::cli::AddCallCommands(&app, &g);
  cnet::cli::AddSkillCommands(&app, &g);
  cnet::cli::AgentCommands agent(&app);
  cnet::cli::AddReservationCommands(&app, &g);
  cnet::cli::AddHookCommands(&app, &g);
  cnet::cli::AddCardCommands(&app, &g);
  cnet::cli::AddMcpCommand(&app, &g);
  cnet::cli::AddMsgCommands(&app, &g);
  cnet::cli::AddTaskCommands(&app, &g);
  cnet::cli::AddMonitorCommands(&app, &g);
  cnet::cli::AddSkillHistoryCommands(&app, &g);
  CLI::App* agent_run = cnet::cli::AddAgentRunCommand(&app, &g);
  cnet::cli::AddHelpExamples(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : cnet::cli::kExitUsage;
  }
  if (cnet::cli::AgentCardParsed()) return g.exit_code;
  if (agent.parsed() && !agent_run->parsed()) {
    agent.set_default_identity(g.agent);
    return agent.Run(g.config(), g.load_options().home_dir, absl::Seconds(g.timeout_seconds),
                     g.json);
  }
  return g.exit_code;
}
