// `cnet agent card ID` (one agent's A2A card, as the registry renders it)
// and `cnet agent cards` (the discovery document: every card of the
// network as one JSON document).
#include <iostream>
#include <nlohmann/json.hpp>

#include "libs/server/tls.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "tools/cnet/agent_context.h"
#include "tools/cnet/agentx_cmds.h"

namespace cnet::cli {
namespace pb = claudenet::v1;

namespace {

struct CardFlags {
  std::string id;
  std::string as;
  std::vector<std::string> capabilities;
  bool include_dead = false;
  bool parsed = false;
};

CardFlags* Flags() {
  static CardFlags flags;
  return &flags;
}

std::string Credential(Globals* g) {
  if (!g->token.empty()) return g->token;
  absl::StatusOr<SavedAgent> me =
      ResolveAgent(g->config(), g->load_options().home_dir,
                   Flags()->as.empty() ? g->agent : Flags()->as);
  if (me.ok()) return me->token;
  return g->AdminCredential();
}

int Card(Globals* g) {
  auto stub = pb::RegistryService::NewStub(MakeSuiteChannel(g->config(), "services.registry_addr"));
  pb::GetAgentCardRequest req;
  req.set_agent_id(Flags()->id);
  pb::GetAgentCardResponse resp;
  grpc::Status s = stub->GetAgentCard(
      CallContext(absl::Milliseconds(g->timeout_seconds * 1000), Credential(g)).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "agent card", s);
  nlohmann::json card = nlohmann::json::parse(resp.json(), nullptr, false);
  // The card is JSON either way; --json and plain both print it (pretty
  // without --json).
  std::cout << (g->json ? card.dump() : card.dump(2)) << "\n";
  return kExitOk;
}

int Cards(Globals* g) {
  auto stub = pb::RegistryService::NewStub(MakeSuiteChannel(g->config(), "services.registry_addr"));
  pb::ListAgentCardsRequest req;
  req.set_page_size(1000);
  req.set_include_dead(Flags()->include_dead);
  for (const std::string& c : Flags()->capabilities) req.add_capabilities_all(c);
  std::string credential = Credential(g);
  nlohmann::json agents = nlohmann::json::array();
  for (;;) {
    pb::ListAgentCardsResponse page;
    grpc::Status s = stub->ListAgentCards(
        CallContext(absl::Milliseconds(g->timeout_seconds * 1000), credential).get(), req, &page);
    if (!s.ok()) return ReportError(*g, "agent cards", s);
    for (const pb::GetAgentCardResponse& c : page.cards()) {
      nlohmann::json card = nlohmann::json::parse(c.json(), nullptr, false);
      agents.push_back({{"agentId", c.agent_id()}, {"card", card}});
    }
    if (page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  nlohmann::json doc = {{"network", "claude-network"},
                        {"node", NodeName(g->config())},
                        {"agents", agents}};
  std::cout << (g->json ? doc.dump() : doc.dump(2)) << "\n";
  return kExitOk;
}

}  // namespace

bool AgentCardParsed() { return Flags()->parsed; }

void AddCardCommands(CLI::App* app, Globals* g) {
  CLI::App* agent = app->get_subcommand("agent");
  CardFlags* f = Flags();
  CLI::App* card = agent->add_subcommand("card", "print an agent's A2A agent card (JSON)");
  card->add_option("id", f->id, "agent id")->required();
  card->add_option("--as", f->as, "act as this saved identity");
  card->footer("Example: cnet agent card agent-01j... > agent.json");
  card->callback([g, f] {
    f->parsed = true;
    g->exit_code = Card(g);
  });
  CLI::App* cards = agent->add_subcommand(
      "cards", "the discovery document: every agent's A2A card as one JSON document");
  cards->add_option("--capability,-c", f->capabilities, "only agents with ALL of these");
  cards->add_flag("--include-dead", f->include_dead, "include DEAD agents");
  cards->add_option("--as", f->as, "act as this saved identity");
  cards->callback([g, f] {
    f->parsed = true;
    g->exit_code = Cards(g);
  });
}

}  // namespace cnet::cli
