// `cnet agent ...`: joining the network as an agent and looking at who is
// on it, through the registry.
//
//   join       register (or rejoin with a saved identity); saves id + token
//              to ~/.claude-network/agents/<id>.json (mode 0600)
//   list       agents, filtered (capability, status, health, node, name)
//   show ID    one agent
//   heartbeat  one heartbeat of a saved identity (status, message)
//   leave      deregister a saved identity and delete its file
//
// Which identity acts: --as ID, else the only saved identity, else
// agent.id from the configuration. Reads without an identity use the local
// admin credential (<data_dir>/admin.token), as the suite's owner.
// Exit codes are those of suite.h: 0 ok, 1 usage or invalid input,
// 2 not found, 3 conflict, 4 denied, 5 unavailable, 6 internal.
#ifndef CNET_TOOLS_CNET_AGENT_H_
#define CNET_TOOLS_CNET_AGENT_H_

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/config/loader.h"

namespace cnet::cli {

struct AgentFlags {
  // join
  std::string id;
  std::string name;
  std::vector<std::string> capabilities;
  std::string surface;
  std::string location;
  std::string version;
  std::string kind = "ai";
  std::string description;
  // list
  std::vector<std::string> any;
  std::vector<std::string> statuses;
  std::vector<std::string> healths;
  std::vector<std::string> nodes;
  std::string name_prefix;
  int page_size = 100;
  bool all = false;
  // heartbeat / join
  std::string status;
  std::string message;
  // leave
  std::string reason;
  // show
  std::string target;
  // acting identity
  std::string as;
};

// The subcommands, registered on `app`; Run() dispatches the parsed one.
class AgentCommands {
 public:
  explicit AgentCommands(CLI::App* app);
  bool parsed() const;
  // The identity used when a command has no --as (the global --agent /
  // CNET_AGENT).
  void set_default_identity(const std::string& id) { default_as_ = id; }
  int Run(const config::Config& config, const std::string& home_dir, absl::Duration timeout,
          bool json);

 private:
  AgentFlags f_;
  std::string default_as_;
  CLI::App* group_;
  CLI::App* join_;
  CLI::App* list_;
  CLI::App* show_;
  CLI::App* heartbeat_;
  CLI::App* leave_;
};

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_AGENT_H_
