#include "services/registry/agent_card.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cnet::registry {
namespace pb = claudenet::v1;

namespace {

void DefaultModes(const google::protobuf::RepeatedPtrField<std::string>& given,
                  google::protobuf::RepeatedPtrField<std::string>* out) {
  if (given.empty()) {
    out->Add("text/plain");
    out->Add("application/json");
  } else {
    *out = given;
  }
}

}  // namespace

pb::GetAgentCardResponse RenderAgentCard(const pb::Agent& agent,
                                         const std::string& public_base_url) {
  const pb::AgentCardInfo& info = agent.card();
  pb::GetAgentCardResponse response;
  response.set_agent_id(agent.id());
  pb::AgentCard* card = response.mutable_card();
  card->set_name(agent.name());
  card->set_description(info.description().empty()
                            ? absl::StrCat("Claude Network agent ", agent.name(), " on node ",
                                           agent.node())
                            : info.description());
  if (!info.url().empty()) {
    card->set_url(info.url());
  } else if (!public_base_url.empty()) {
    std::string base = public_base_url;
    while (absl::EndsWith(base, "/")) base.pop_back();
    card->set_url(absl::StrCat(base, "/agents/", agent.id()));
  } else {
    card->set_url(absl::StrCat("claudenet://", agent.node(), "/agents/", agent.id()));
  }
  card->set_version(agent.version().empty() ? "0.0.0" : agent.version());
  card->set_protocol_version(kA2aProtocolVersion);
  if (!info.provider_organization().empty() || !info.provider_url().empty()) {
    card->mutable_provider()->set_organization(info.provider_organization());
    card->mutable_provider()->set_url(info.provider_url());
  }
  card->set_documentation_url(info.documentation_url());
  card->set_icon_url(info.icon_url());
  card->mutable_capabilities()->set_streaming(info.supports_streaming());
  card->mutable_capabilities()->set_push_notifications(info.supports_push_notifications());
  card->mutable_capabilities()->set_state_transition_history(true);
  DefaultModes(info.default_input_modes(), card->mutable_default_input_modes());
  DefaultModes(info.default_output_modes(), card->mutable_default_output_modes());
  if (info.skills_size() > 0) {
    *card->mutable_skills() = info.skills();
    for (pb::AgentSkill& skill : *card->mutable_skills()) {
      if (skill.tags().empty()) skill.add_tags(skill.id());
    }
  } else {
    for (const std::string& capability : agent.capabilities()) {
      pb::AgentSkill* skill = card->add_skills();
      skill->set_id(capability);
      skill->set_name(capability);
      skill->set_description(absl::StrCat("Offers the capability ", capability, "."));
      skill->add_tags(capability);
    }
  }
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = false;  // camelCase, as A2A spells its keys
  // Fails only on invalid UTF-8, which proto3 parsing already rejects.
  (void)google::protobuf::util::MessageToJsonString(*card, response.mutable_json(), options);
  // proto3 JSON leaves out empty lists, but A2A requires `skills` even when
  // the agent has no capability and no declared skill: add it as [].
  std::string& json = *response.mutable_json();
  if (card->skills().empty() && !json.empty() && json.back() == '}') {
    json.insert(json.size() - 1, json.size() > 2 ? ",\"skills\":[]" : "\"skills\":[]");
  }
  return response;
}

}  // namespace cnet::registry
