#include "tools/cnet/agent.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libs/auth/auth.h"
#include "libs/crypto/crypto.h"
#include "libs/registry_client/registry_client.h"
#include "libs/server/tls.h"
#include "services/macs-gateway/canonical.h"
#include "tools/cnet/agent_context.h"
#include "tools/cnet/suite.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

namespace {

// Saved identities (~/.claude-network/agents/<id>.json, mode 0600) are read
// and written by agent_context.h, the one place that knows the file format.
using Identity = SavedAgent;

int ExitFor(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitUsage;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return kExitConflict;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitDenied;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kExitUnavailable;
    default:
      return kExitInternal;
  }
}

int Fail(const std::string& command, const grpc::Status& s, bool json) {
  if (json) {
    nlohmann::json out = {{"ok", false},
                          {"code", s.error_code()},
                          {"error", s.error_message()}};
    std::cout << out.dump() << "\n";
  } else {
    std::cerr << "cnet agent " << command << ": " << s.error_message() << "\n";
  }
  return ExitFor(s);
}

int Usage(const std::string& command, const std::string& message, bool json) {
  return Fail(command, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message), json);
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

bool ParseStatus(const std::string& text, pb::AgentStatus* out) {
  std::string upper = absl::AsciiStrToUpper(text);
  return pb::AgentStatus_Parse("AGENT_STATUS_" + upper, out) &&
         *out != pb::AGENT_STATUS_UNSPECIFIED;
}

bool ParseHealth(const std::string& text, pb::Health* out) {
  std::string upper = absl::AsciiStrToUpper(text);
  return pb::Health_Parse("HEALTH_" + upper, out) && *out != pb::HEALTH_UNSPECIFIED;
}

pb::Surface ParseSurface(const std::string& text) {
  std::string s = absl::AsciiStrToLower(text);
  if (s == "desktop") return pb::SURFACE_DESKTOP;
  if (s == "laptop") return pb::SURFACE_LAPTOP;
  if (s == "server") return pb::SURFACE_SERVER;
  if (s == "cloud") return pb::SURFACE_CLOUD;
  return pb::SURFACE_UNSPECIFIED;  // the seed's cli/web/mobile have no equivalent
}

std::string Short(int value, const google::protobuf::EnumDescriptor* d, const std::string& prefix) {
  std::string name = d->FindValueByNumber(value) ? d->FindValueByNumber(value)->name() : "?";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return name == "UNSPECIFIED" ? "-" : name;
}

std::string Ago(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  int64_t secs = (absl::Now() - absl::FromUnixSeconds(t.seconds())) / absl::Seconds(1);
  if (secs < 0) secs = 0;
  if (secs < 120) return absl::StrCat(secs, "s ago");
  if (secs < 7200) return absl::StrCat(secs / 60, "m ago");
  return absl::StrCat(secs / 3600, "h ago");
}

void PrintAgent(const pb::Agent& a) {
  std::cout << "id:             " << a.id() << "\n"
            << "name:           " << a.name() << "\n"
            << "kind:           " << Short(a.kind(), pb::AgentKind_descriptor(), "AGENT_KIND_")
            << "\n"
            << "node:           " << a.node() << (a.remote() ? " (remote)" : "") << "\n"
            << "capabilities:   " << absl::StrJoin(a.capabilities(), ", ") << "\n"
            << "status:         "
            << Short(a.status(), pb::AgentStatus_descriptor(), "AGENT_STATUS_")
            << (a.status_message().empty() ? "" : " (" + a.status_message() + ")") << "\n"
            << "health:         " << Short(a.health(), pb::Health_descriptor(), "HEALTH_")
            << (a.health_reason().empty() ? "" : " (" + a.health_reason() + ")") << "\n"
            << "last heartbeat: " << Ago(a.last_heartbeat()) << "\n"
            << "registered:     " << TimeUtil::ToString(a.registered_at()) << "\n";
  if (!a.version().empty()) std::cout << "version:        " << a.version() << "\n";
  if (!a.location().empty()) std::cout << "location:       " << a.location() << "\n";
  if (a.has_metrics()) {
    std::cout << "metrics:        " << a.metrics().messages_sent() << " sent, "
              << a.metrics().messages_received() << " received, " << a.metrics().errors()
              << " errors, load " << a.metrics().load() << ", " << a.metrics().active_tasks()
              << " active tasks\n";
  }
}

std::unique_ptr<registry_client::RegistryClient> Client(const config::Config& config,
                                                        const std::string& credential,
                                                        absl::Duration timeout) {
  registry_client::ClientOptions o;
  o.address = config.GetString("services.registry_addr");
  o.channel = MakeSuiteChannel(config, "services.registry_addr");  // TLS when configured
  o.credential = credential;
  o.deadline = timeout;
  return std::make_unique<registry_client::RegistryClient>(o);
}

}  // namespace

AgentCommands::AgentCommands(CLI::App* app) {
  group_ = app->add_subcommand("agent", "join the network as an agent, list and inspect agents");
  group_->require_subcommand(1);
  join_ = group_->add_subcommand("join", "register an agent (or rejoin with a saved identity)");
  join_->add_option("--id", f_.id, "agent id (default: agent.id, else generated)");
  join_->add_option("--name", f_.name, "display name (default: agent.name, else the host name)");
  join_->add_option("--capability,-c", f_.capabilities,
                    "a capability [a-z0-9._-]{1,64}; repeat (default: agent.capabilities)");
  join_->add_option("--surface", f_.surface, "desktop, laptop, server or cloud");
  join_->add_option("--location", f_.location, "free-form location");
  join_->add_option("--version", f_.version, "the agent's software version");
  join_->add_option("--kind", f_.kind, "ai or human")->capture_default_str();
  join_->add_option("--status", f_.status, "online, busy, away or offline");
  join_->add_option("--description", f_.description, "what the agent is for (agent card)");
  join_->footer("Example: cnet agent join --name reviewer -c python -c review");

  list_ = group_->add_subcommand("list", "list agents, filtered");
  list_->add_option("--capability,-c", f_.capabilities, "must have ALL of these; repeat");
  list_->add_option("--any", f_.any, "must have at least one of these; repeat");
  list_->add_option("--status", f_.statuses, "online, busy, away, offline; repeat");
  list_->add_option("--health", f_.healths, "healthy, warning, critical, dead; repeat");
  list_->add_option("--node", f_.nodes, "node name; repeat");
  list_->add_option("--name-prefix", f_.name_prefix, "name starts with this");
  list_->add_option("--page-size", f_.page_size, "agents per page (1..1000)")
      ->capture_default_str();
  list_->add_flag("--all", f_.all, "every page, not only the first");
  list_->add_option("--as", f_.as, "act as this saved identity");
  list_->footer("Example: cnet agent list -c python --health healthy");

  show_ = group_->add_subcommand("show", "show one agent");
  show_->add_option("id", f_.target, "agent id")->required();
  show_->add_option("--as", f_.as, "act as this saved identity");
  show_->footer("Example: cnet agent show agent-01j...");

  heartbeat_ = group_->add_subcommand("heartbeat", "send one heartbeat of a saved identity");
  heartbeat_->add_option("--as", f_.as, "the saved identity (default: the only one)");
  heartbeat_->add_option("--status", f_.status, "online, busy, away or offline");
  heartbeat_->add_option("--message", f_.message, "status text");
  heartbeat_->footer("Example: cnet agent heartbeat --status busy --message 'reviewing PR 12'");

  leave_ = group_->add_subcommand("leave", "deregister a saved identity and forget it");
  leave_->add_option("--as", f_.as, "the saved identity (default: the only one)");
  leave_->add_option("--reason", f_.reason, "why (recorded in the DEREGISTERED event)");
  leave_->footer("Example: cnet agent leave --reason 'session over'");
}

bool AgentCommands::parsed() const { return group_->parsed(); }

int AgentCommands::Run(const config::Config& config, const std::string& home,
                       absl::Duration timeout, bool json) {
  const std::string registry = config.GetString("services.registry_addr");
  // The identity acting for heartbeat / leave (and optionally reads).
  auto acting = [&](bool required, Identity* out, std::string* error) -> bool {
    std::string id = f_.as.empty() ? default_as_ : f_.as;
    if (id.empty()) {
      std::vector<std::string> saved = SavedAgentIds(home);
      if (saved.size() == 1) {
        id = saved[0];
      } else if (!config.GetString("agent.id").empty()) {
        id = config.GetString("agent.id");
      } else if (required) {
        *error = saved.empty() ? "no saved identity: run `cnet agent join` first"
                               : "several saved identities: choose one with --as ID";
        return false;
      } else {
        return false;
      }
    }
    absl::StatusOr<Identity> identity = LoadSavedAgent(home, id);
    if (!identity.ok()) {
      if (required) *error = std::string(identity.status().message());
      return false;
    }
    *out = *identity;
    return true;
  };
  // Reads: an identity if there is one, else the local admin credential.
  auto reader_credential = [&]() -> std::string {
    Identity identity;
    std::string ignored;
    if (acting(false, &identity, &ignored)) return identity.token;
    absl::StatusOr<std::string> admin = auth::AdminToken(
        config.GetString("security.admin_token"), config.GetString("services.data_dir"));
    return admin.ok() ? *admin : "";
  };

  if (join_->parsed()) {
    pb::RegisterRequest req;
    req.set_agent_id(f_.id.empty() ? config.GetString("agent.id") : f_.id);
    std::string name = f_.name.empty() ? config.GetString("agent.name") : f_.name;
    if (name.empty()) {
      char host[256] = {0};
      gethostname(host, sizeof(host) - 1);
      name = host;
    }
    req.set_name(name);
    std::vector<std::string> caps =
        f_.capabilities.empty() ? config.GetStringList("agent.capabilities") : f_.capabilities;
    for (const std::string& c : caps) req.add_capabilities(c);
    req.set_surface(ParseSurface(f_.surface.empty() ? config.GetString("agent.surface")
                                                    : f_.surface));
    req.set_location(f_.location.empty() ? config.GetString("agent.location") : f_.location);
    req.set_version(f_.version);
    std::string kind = absl::AsciiStrToLower(f_.kind);
    if (kind != "ai" && kind != "human") return Usage("join", "--kind: ai or human", json);
    req.set_kind(kind == "human" ? pb::AGENT_KIND_HUMAN : pb::AGENT_KIND_AI);
    if (!f_.status.empty()) {
      pb::AgentStatus status;
      if (!ParseStatus(f_.status, &status)) {
        return Usage("join", "--status: online, busy, away or offline", json);
      }
      req.set_status(status);
    }
    if (!f_.description.empty()) req.mutable_card()->set_description(f_.description);
    // Rejoin with a saved identity: its token proves it is us.
    std::string credential;
    std::string seed;
    if (!req.agent_id().empty()) {
      absl::StatusOr<Identity> saved = LoadSavedAgent(home, req.agent_id());
      if (saved.ok()) {
        credential = saved->token;
        seed = saved->ed25519_seed;  // keep the registered key across rejoins
      }
    }
    // The agent's own Ed25519 key: the registry keeps the public half, the
    // seed stays in the identity file (0600) and signs every message.
    if (seed.empty()) seed = crypto::RandomBytes(32);
    const std::string public_key = macs::Ed25519PublicKey(seed);
    if (public_key.size() != 32) {
      return Fail("join", grpc::Status(grpc::StatusCode::INTERNAL, "cannot derive an Ed25519 key"),
                  json);
    }
    req.mutable_public_key()->set_algorithm(pb::KEY_ALGORITHM_ED25519);
    req.mutable_public_key()->set_key(public_key);
    auto client = Client(config, credential, timeout);
    pb::RegisterResponse resp;
    grpc::Status s = client->stub()->Register(client->NewContext().get(), req, &resp);
    if (!s.ok()) return Fail("join", s, json);
    std::string path = AgentsDir(home) + "/" + resp.agent().id() + ".json";
    const std::string token = resp.token().empty() ? credential : resp.token();
    if (!token.empty()) {
      absl::Status saved = WriteSavedAgent(home, registry, resp.agent(), token, seed, &path);
      if (!saved.ok()) {
        return Fail("join",
                    grpc::Status(grpc::StatusCode::INTERNAL,
                                 absl::StrCat(std::string(saved.message()),
                                              " (the agent is registered; its token is lost: "
                                              "ask the admin to re-register it)")),
                    json);
      }
    }
    if (json) {
      std::cout << "{\"ok\":true,\"created\":" << (resp.created() ? "true" : "false")
                << ",\"identity_file\":" << nlohmann::json(path).dump()
                << ",\"agent\":" << ToJson(resp.agent()) << "}\n";
    } else {
      std::cout << (resp.created() ? "joined as " : "rejoined as ") << resp.agent().id()
                << " on node " << resp.agent().node() << "\nidentity: " << path << "\n";
    }
    return kExitOk;
  }

  if (list_->parsed()) {
    if (f_.page_size < 1 || f_.page_size > 1000) {
      return Usage("list", "--page-size: 1..1000", json);
    }
    pb::ListAgentsRequest req;
    req.set_page_size(f_.page_size);
    for (const std::string& c : f_.capabilities) req.add_capabilities_all(c);
    for (const std::string& c : f_.any) req.add_capabilities_any(c);
    for (const std::string& n : f_.nodes) req.add_nodes(n);
    req.set_name_prefix(f_.name_prefix);
    for (const std::string& text : f_.statuses) {
      pb::AgentStatus status;
      if (!ParseStatus(text, &status)) {
        return Usage("list", "--status: online, busy, away or offline", json);
      }
      req.add_statuses(status);
    }
    for (const std::string& text : f_.healths) {
      pb::Health health;
      if (!ParseHealth(text, &health)) {
        return Usage("list", "--health: healthy, warning, critical or dead", json);
      }
      req.add_healths(health);
    }
    auto client = Client(config, reader_credential(), timeout);
    std::vector<pb::Agent> agents;
    int64_t total = 0;
    for (;;) {
      pb::ListAgentsResponse page;
      grpc::Status s = client->stub()->ListAgents(client->NewContext().get(), req, &page);
      if (!s.ok()) return Fail("list", s, json);
      total = page.total_size();
      for (auto& a : *page.mutable_agents()) agents.push_back(std::move(a));
      if (!f_.all || page.next_page_token().empty()) break;
      req.set_page_token(page.next_page_token());
    }
    if (json) {
      std::vector<std::string> items;
      for (const auto& a : agents) items.push_back(ToJson(a));
      std::cout << "{\"ok\":true,\"total\":" << total << ",\"agents\":["
                << absl::StrJoin(items, ",") << "]}\n";
      return kExitOk;
    }
    std::cout << absl::StrFormat("%-34s %-20s %-9s %-8s %-12s %-10s %s\n", "ID", "NAME", "HEALTH",
                                 "STATUS", "NODE", "HEARTBEAT", "CAPABILITIES");
    for (const auto& a : agents) {
      std::cout << absl::StrFormat(
          "%-34s %-20s %-9s %-8s %-12s %-10s %s\n", a.id(), a.name().substr(0, 20),
          Short(a.health(), pb::Health_descriptor(), "HEALTH_"),
          Short(a.status(), pb::AgentStatus_descriptor(), "AGENT_STATUS_"), a.node(),
          Ago(a.last_heartbeat()), absl::StrJoin(a.capabilities(), ","));
    }
    std::cout << agents.size() << " of " << total << " agents\n";
    return kExitOk;
  }

  if (show_->parsed()) {
    auto client = Client(config, reader_credential(), timeout);
    pb::GetAgentRequest req;
    req.set_agent_id(f_.target);
    pb::GetAgentResponse resp;
    grpc::Status s = client->stub()->GetAgent(client->NewContext().get(), req, &resp);
    if (!s.ok()) return Fail("show", s, json);
    if (json) {
      std::cout << "{\"ok\":true,\"agent\":" << ToJson(resp.agent()) << "}\n";
    } else {
      PrintAgent(resp.agent());
    }
    return kExitOk;
  }

  if (heartbeat_->parsed() || leave_->parsed()) {
    const std::string command = heartbeat_->parsed() ? "heartbeat" : "leave";
    Identity identity;
    std::string error;
    if (!acting(true, &identity, &error)) return Usage(command, error, json);
    auto client = Client(config, identity.token, timeout);
    if (heartbeat_->parsed()) {
      pb::HeartbeatRequest req;
      if (!f_.status.empty()) {
        pb::AgentStatus status;
        if (!ParseStatus(f_.status, &status)) {
          return Usage(command, "--status: online, busy, away or offline", json);
        }
        req.set_status(status);
      }
      req.set_status_message(f_.message);
      pb::HeartbeatResponse resp;
      grpc::Status s = client->stub()->Heartbeat(client->NewContext().get(), req, &resp);
      if (!s.ok()) return Fail(command, s, json);
      if (json) {
        std::cout << "{\"ok\":true,\"agent_id\":" << nlohmann::json(identity.id).dump()
                  << ",\"heartbeat\":" << ToJson(resp) << "}\n";
      } else {
        std::cout << identity.id << ": "
                  << Short(resp.health(), pb::Health_descriptor(), "HEALTH_") << " ("
                  << resp.health_reason() << "); next heartbeat in "
                  << resp.next_heartbeat_in().seconds() << "s\n";
      }
      return kExitOk;
    }
    pb::DeregisterRequest req;
    req.set_reason(f_.reason);
    pb::DeregisterResponse resp;
    grpc::Status s = client->stub()->Deregister(client->NewContext().get(), req, &resp);
    if (!s.ok()) return Fail(command, s, json);
    ::unlink(identity.path.c_str());
    if (json) {
      std::cout << "{\"ok\":true,\"agent\":" << ToJson(resp.agent()) << "}\n";
    } else {
      std::cout << "left: " << identity.id << " (identity " << identity.path << " removed)\n";
    }
    return kExitOk;
  }
  return kExitUsage;
}

}  // namespace cnet::cli
