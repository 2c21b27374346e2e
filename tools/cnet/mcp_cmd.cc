// `cnet mcp`: serves the MCP tools of mcp_server.h on stdin/stdout as one
// agent (--as / CNET_AGENT_ID / agent.id / the only saved identity, or a
// bare --token with --as naming its agent).
#include <cstdio>
#include <iostream>

#include "libs/server/tls.h"
#include "tools/cnet/agent_context.h"
#include "tools/cnet/agentx_cmds.h"
#include "tools/cnet/mcp_server.h"

namespace cnet::cli {

namespace {
struct McpFlags {
  std::string as;
  std::string workspace;
  size_t max_line = 1 << 20;
};
}  // namespace

void AddMcpCommand(CLI::App* app, Globals* g) {
  auto* f = new McpFlags();
  CLI::App* mcp = app->add_subcommand(
      "mcp", "MCP server over stdio (JSON-RPC 2.0, one message per line) for Claude Code");
  mcp->add_option("--as", f->as, "act as this saved identity");
  mcp->add_option("--workspace,-w", f->workspace,
                  "workspace of reserve/release (default: the git repository of the cwd)");
  mcp->add_option("--max-line", f->max_line, "largest accepted request line, bytes")
      ->capture_default_str();
  mcp->footer("Register with Claude Code: claude mcp add cnet -- cnet mcp");
  mcp->callback([g, f] {
    const config::Config& config = g->config();
    if (f->as.empty()) f->as = g->agent;  // the global --agent / CNET_AGENT
    McpOptions o;
    absl::StatusOr<SavedAgent> me = ResolveAgent(config, g->load_options().home_dir, f->as);
    if (me.ok()) {
      o.agent_id = me->id;
      o.token = me->token;
      o.ed25519_seed = me->ed25519_seed;
      o.ed25519_key_id = me->key_id;
    } else {
      o.identity_error = std::string(me.status().message());
    }
    if (!g->token.empty() && (!me.ok() || me->token != g->token)) {
      o.ed25519_seed.clear();  // a different credential: not this identity's key
      o.ed25519_key_id.clear();
    }
    if (!g->token.empty()) {
      o.token = g->token;
      if (!f->as.empty()) o.agent_id = f->as;
    }
    char cwd[4096] = {0};
    if (::getcwd(cwd, sizeof(cwd) - 1) == nullptr) cwd[0] = '.';
    o.workspace = DetectWorkspace(config, cwd, f->workspace).name;
    o.signing_key = SigningKey(config);
    o.deadline = absl::Milliseconds(g->timeout_seconds * 1000);
    o.max_line_bytes = f->max_line;
    o.registry = MakeSuiteChannel(config, "services.registry_addr");
    o.macs = MakeSuiteChannel(config, "services.macs_addr");
    o.tasks = MakeSuiteChannel(config, "services.tasks_addr");
    std::cerr << "cnet mcp: serving as " << (o.agent_id.empty() ? "(no identity)" : o.agent_id)
              << " in workspace " << o.workspace << "\n";
    McpServer server(std::move(o));
    server.Serve(stdin, stdout);
    g->exit_code = kExitOk;
  });
}

}  // namespace cnet::cli
