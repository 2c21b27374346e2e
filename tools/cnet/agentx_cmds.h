// The agent-experience command groups of cnet (issue 13):
//
//   cnet reserve / release / reservations ...  path reservations (reserve_cmd.cc)
//   cnet hook <event>, cnet hooks install      Claude Code hooks (hook_cmd.cc)
//   cnet mcp                                   MCP server over stdio (mcp_cmd.cc)
//   cnet agent card ID, cnet agent cards       A2A agent cards (card_cmd.cc)
//
// Each registers itself on the app; callbacks store the exit code in
// globals->exit_code.
#ifndef CNET_TOOLS_CNET_AGENTX_CMDS_H_
#define CNET_TOOLS_CNET_AGENTX_CMDS_H_

#include <CLI/CLI.hpp>

#include "tools/cnet/cli.h"

namespace cnet::cli {

void AddReservationCommands(CLI::App* app, Globals* g);
void AddHookCommands(CLI::App* app, Globals* g);
void AddMcpCommand(CLI::App* app, Globals* g);
// Adds `card` and `cards` under the existing `agent` group (call after the
// AgentCommands are constructed). AgentCardParsed() tells main that one of
// them ran (its exit code is in globals->exit_code).
void AddCardCommands(CLI::App* app, Globals* g);
bool AgentCardParsed();

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_AGENTX_CMDS_H_
