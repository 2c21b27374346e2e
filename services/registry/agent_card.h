// Renders an agent record as an A2A (Agent2Agent) AgentCard: the typed
// message and the JSON document other A2A tooling reads. Every field A2A
// requires is filled, with the fallbacks documented in registry.proto.
#ifndef CNET_SERVICES_REGISTRY_AGENT_CARD_H_
#define CNET_SERVICES_REGISTRY_AGENT_CARD_H_

#include <string>

#include "proto/claudenet/v1/registry.pb.h"

namespace cnet::registry {

// The A2A protocol version the rendered cards follow.
inline constexpr char kA2aProtocolVersion[] = "0.2.5";

// `public_base_url` (config registry.public_base_url) is the base of the
// card url of agents that gave none; empty = claudenet://<node>/agents/<id>.
claudenet::v1::GetAgentCardResponse RenderAgentCard(const claudenet::v1::Agent& agent,
                                                    const std::string& public_base_url);

}  // namespace cnet::registry

#endif  // CNET_SERVICES_REGISTRY_AGENT_CARD_H_
