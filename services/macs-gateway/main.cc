// The macs-gateway binary: messaging between agents of this node, durable
// inboxes, and the outbox where the federation picks up remote copies.
#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/server/bootstrap.h"
#include "libs/server/tls.h"
#include "services/macs-gateway/federation/runtime.h"
#include "services/macs-gateway/xnode/xnode_runtime.h"
#include "services/macs-gateway/gateway.h"
#include "services/macs-gateway/macs_service.h"
#include "libs/registry_client/registry_authenticator.h"
#include "libs/registry_client/registry_client.h"
#include "services/macs-gateway/registry_directory.h"

namespace {

int Fail(const std::string& what) {
  LOG(ERROR) << what;
  std::cerr << "macs-gateway: " << what << std::endl;
  return 2;
}

std::string NodeId(const std::string& configured) {
  if (!configured.empty()) return configured;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "local";
  return host;
}

}  // namespace

int main(int argc, char** argv) {
  cnet::BlockShutdownSignals();
  // Debian's Abseil is built with the Mutex deadlock detector on: a graph
  // update per lock, measurable on the Send path. The lock order is fixed
  // by design (gateway.h).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  cnet::Boot boot = cnet::BootOrExit(argc, argv, "macs-gateway", "services.macs_addr");
  const cnet::config::Config& cfg = boot.config;

  auto admin = cnet::auth::AdminToken(cfg.GetString("security.admin_token"), boot.data_dir);
  auto service = cnet::auth::ServiceCredential(cfg.GetString("security.service_credential"),
                                               boot.data_dir);
  if (!admin.ok()) return Fail(std::string(admin.status().message()));
  if (!service.ok()) return Fail(std::string(service.status().message()));

  cnet::macs::GatewayOptions options;
  options.db_path = boot.data_dir + "/macs.db";
  options.fsync = cfg.GetBool("macs.fsync");
  if (!options.fsync) {
    LOG(WARNING) << "macs.fsync is false: acknowledged messages survive a crash of the "
                    "process but not a power loss";
  }
  options.node = NodeId(cfg.GetString("network.node_id"));
  options.signing_enabled = cfg.GetBool("security.use_message_signing");
  options.require_agent_signatures = cfg.GetBool("security.require_agent_signatures");
  options.shared_secret = cfg.GetString("security.shared_secret");
  if (options.signing_enabled && options.shared_secret.empty()) {
    // Single-node default: a local secret in the data directory, like the
    // admin token; local clients (cnet) read it from there. A network of
    // several nodes must configure the same security.shared_secret on all.
    auto local = cnet::auth::LoadOrCreateSecret(boot.data_dir + "/message.secret");
    if (!local.ok()) return Fail(std::string(local.status().message()));
    options.shared_secret = *local;
    LOG(WARNING) << "security.shared_secret is not set: signing with the local secret in "
                 << boot.data_dir << "/message.secret (this node only)";
  }
  if (!options.signing_enabled) {
    LOG(WARNING) << "security.use_message_signing is false: messages are NOT verified; every "
                    "accepted message is marked hmac=SIGNATURE_STATE_DISABLED";
  }
  for (const std::string& entry : cfg.GetStringList("macs.agent_hmac_keys")) {
    std::vector<std::string> kv = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty() || kv[1].empty()) {
      return Fail("macs.agent_hmac_keys: each entry must be agent_id=key");
    }
    options.agent_keys[kv[0]] = kv[1];
  }
  options.timestamp_window = cfg.GetDuration("security.timestamp_window");
  options.dedupe_window = cfg.GetDuration("security.dedupe_window");
  options.max_subject_bytes = cfg.GetInt("limits.max_subject_bytes");
  options.max_message_bytes = cfg.GetInt("limits.max_message_bytes");
  options.default_ttl = cfg.GetDuration("limits.default_message_ttl");
  options.max_ttl = cfg.GetDuration("limits.max_message_ttl");
  options.rate_per_sec = cfg.GetDouble("limits.rate_limit_per_sec");
  options.rate_burst = cfg.GetInt("limits.rate_limit_burst");
  options.inbox_cap = cfg.GetInt("limits.inbox_cap");
  options.ack_timeout = cfg.GetDuration("limits.ack_timeout");
  options.max_deliveries = static_cast<int>(cfg.GetInt("limits.max_deliveries"));
  options.max_subscribers_per_agent =
      static_cast<int>(cfg.GetInt("macs.max_subscribers_per_agent"));
  options.retention = cfg.GetDuration("macs.retention");
  options.max_batch = static_cast<size_t>(cfg.GetInt("macs.group_commit_max_batch"));

  // The registry: who exists (mirrored by Watch) and whose token is whose.
  cnet::registry_client::ClientOptions registry_options;
  registry_options.address = cfg.GetString("services.registry_addr");
  registry_options.channel = cnet::MakeSuiteChannel(cfg, "services.registry_addr");
  registry_options.credential = *service;
  registry_options.deadline = absl::Seconds(3);
  auto registry = std::make_shared<cnet::registry_client::RegistryClient>(registry_options);
  cnet::macs::RegistryAgentDirectory directory(registry);
  directory.Start();
  auto tokens = std::make_shared<cnet::registry_client::RegistryAuthenticator>(registry);

  auto gateway =
      cnet::macs::Gateway::Create(options, cnet::RealClock::Default(), &directory);
  if (!gateway.ok()) return Fail(std::string(gateway.status().message()));
  // Federation: Firebase / offline queue / GitHub fallback (docs/federation.md).
  auto federation = cnet::macs::federation::FederationRuntime::Create(
      cfg, options.node, gateway->get(), cnet::RealClock::Default());
  if (!federation.ok()) return Fail(std::string(federation.status().message()));
  (*federation)->Start(options.shared_secret);
  // Agents and tasks across nodes (presence, task mirror, RemoteTaskService;
  // docs/federation-agents-tasks.md), over the same Firebase client.
  auto xnode = cnet::federation::XnodeRuntime::Create(
      cfg, options.node, (*federation)->firebase(), registry, *service,
      options.signing_enabled ? options.shared_secret : std::string());
  xnode->Start();
  cnet::macs::MacsServiceImpl impl(gateway->get(), cnet::RealClock::Default());

  cnet::ServerOptions server;
  server.services = {&impl, xnode->service()};
  server.health_names = {"claudenet.v1.MacsGateway"};
  server.max_receive_message_bytes = static_cast<int>(
      std::max<int64_t>(4 << 20, 2 * options.max_message_bytes + (64 << 10)));
  server.interceptors.push_back(cnet::auth::MakeAuthInterceptorFactory(
      cnet::auth::InterceptorOptions{boot.config.GetInt("limits.max_streams_per_caller")},
      std::make_shared<cnet::auth::StaticAuthenticator>(*admin, *service, tokens)));
  cnet::ServeHooks hooks;
  hooks.on_shutdown = [&] {
    impl.Shutdown();
    xnode->Stop();
    (*federation)->Stop();
    (*gateway)->Shutdown();
    directory.Stop();
  };
  return cnet::ServeUntilSignal(boot, std::move(server), hooks);
}
