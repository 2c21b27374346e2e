// Two (or more) in-process nodes wired to shared in-memory media: each node
// is a Gateway with its own data directory and directory of agents (remote
// agents carry their node), plus a Federation. Tests and the bench drive
// the federation steps directly (TickOnce) on a SimulatedClock.
#ifndef CNET_SERVICES_MACS_GATEWAY_FEDERATION_TESTING_H_
#define CNET_SERVICES_MACS_GATEWAY_FEDERATION_TESTING_H_

#include <google/protobuf/util/time_util.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "libs/status/macros.h"
#include "services/macs-gateway/canonical.h"
#include "services/macs-gateway/federation/federation.h"
#include "services/macs-gateway/federation/memory_media.h"
#include "services/macs-gateway/gateway.h"

namespace cnet::macs::federation::testing {

inline constexpr char kSecret[] = "federation-test-secret";

// Records the messages handed to one agent's subscription (thread-safe).
class Sink final : public DeliverySink {
 public:
  void Deliver(claudenet::v1::SubscribeResponse frame) override {
    absl::MutexLock lock(&mu_);
    if (frame.has_delivery()) {
      ids_.push_back(frame.delivery().message().id());
      transports_.push_back(frame.delivery().message().provenance().transport());
    }
  }
  void End(const absl::Status&) override {}
  std::vector<std::string> ids() {
    absl::MutexLock lock(&mu_);
    return ids_;
  }
  std::vector<int> transports() {
    absl::MutexLock lock(&mu_);
    return transports_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> ids_;
  std::vector<int> transports_;
};

struct Node {
  std::string name;
  std::string dir;
  InMemoryAgentDirectory directory;
  GatewayOptions options;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<Federation> federation;
  std::map<std::string, std::unique_ptr<Sink>> sinks;
};

inline std::string TempDir(const std::string& prefix) {
  const char* base = getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/", prefix, "XXXXXX");
  return mkdtemp(tmpl.data());
}

// Agents: every node N has agents "<n>1", "<n>2" (lower-case node name);
// the others are registered as remote agents of their node.
inline void AddAgents(Node* node, const std::vector<std::string>& nodes) {
  for (const std::string& n : nodes) {
    for (int i = 1; i <= 2; i++) {
      AgentInfo a;
      a.id = absl::StrCat(absl::AsciiStrToLower(n), i);
      a.capabilities = {"all"};
      if (n != node->name) {
        a.node = n;
        a.remote = true;
      }
      node->directory.Put(a);
    }
  }
}

inline absl::Status OpenGateway(Node* node, Clock* clock) {
  CNET_ASSIGN_OR_RETURN(node->gateway, Gateway::Create(node->options, clock, &node->directory));
  return absl::OkStatus();
}

inline absl::Status Subscribe(Node* node, const std::string& agent) {
  auto sink = std::make_unique<Sink>();
  claudenet::v1::SubscribeRequest req;
  req.set_max_in_flight(1000);
  CNET_ASSIGN_OR_RETURN(uint64_t id,
                        node->gateway->Subscribe(Caller::Agent(agent), req, sink.get()));
  (void)id;
  node->sinks[agent] = std::move(sink);
  return absl::OkStatus();
}

inline claudenet::v1::Message Signed(const std::string& from, const std::string& to,
                                     const std::string& id, absl::Time now) {
  claudenet::v1::Message m;
  m.set_id(id);
  m.set_sender(from);
  m.set_recipient(to);
  m.set_subject("s");
  m.set_body("body of " + id);
  *m.mutable_created_at() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(now));
  m.set_signature(*SignMessage(m, kSecret));
  return m;
}

inline absl::StatusOr<claudenet::v1::SendResponse> Send(Node* node,
                                                       const claudenet::v1::Message& m) {
  claudenet::v1::SendRequest req;
  *req.mutable_message() = m;
  return node->gateway->SendAndWait(Caller::Agent(m.sender()), req);
}

}  // namespace cnet::macs::federation::testing

#endif  // CNET_SERVICES_MACS_GATEWAY_FEDERATION_TESTING_H_
