// The tasks binary: the task board of this node.
#include <glog/logging.h>
#include <unistd.h>

#include <iostream>

#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/registry_client/registry_authenticator.h"
#include "libs/registry_client/registry_client.h"
#include "libs/server/bootstrap.h"
#include "libs/server/tls.h"
#include "services/tasks/board.h"
#include "services/tasks/macs_notifier.h"
#include "services/tasks/registry_directory.h"
#include "services/tasks/store.h"
#include "services/tasks/tasks_service.h"

namespace {

int Fatal(const absl::Status& s) {
  LOG(ERROR) << s.message();
  std::cerr << "tasks: " << s.message() << std::endl;
  return 2;
}

std::string NodeName(const cnet::config::Config& config) {
  std::string node = config.GetString("network.node_id");
  if (!node.empty()) return node;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') return host;
  return "local";
}

}  // namespace

int main(int argc, char** argv) {
  cnet::BlockShutdownSignals();
  // Debian's Abseil records lock order on every lock for deadlock reports,
  // a debugging aid that costs measurable time on the claim path.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  cnet::Boot boot = cnet::BootOrExit(argc, argv, "tasks", "services.tasks_addr");
  const cnet::config::Config& config = boot.config;

  auto admin = cnet::auth::AdminToken(config.GetString("security.admin_token"), boot.data_dir);
  auto service =
      cnet::auth::ServiceCredential(config.GetString("security.service_credential"), boot.data_dir);
  if (!admin.ok()) return Fatal(admin.status());
  if (!service.ok()) return Fatal(service.status());

  cnet::tasks::Store::Options store_options;
  store_options.path = boot.data_dir + "/tasks.db";
  store_options.synchronous_full = config.GetBool("tasks.sync_full");
  store_options.event_retention = config.GetInt("tasks.event_retention");
  store_options.background_checkpoint = true;
  auto store = cnet::tasks::Store::Open(store_options);
  if (!store.ok()) return Fatal(store.status());

  // Other services, through their client libraries; the board keeps working
  // while they are down (see registry_directory.h, macs_notifier.h).
  cnet::registry_client::ClientOptions registry_options;
  registry_options.address = config.GetString("services.registry_addr");
  registry_options.channel = cnet::MakeSuiteChannel(config, "services.registry_addr");
  registry_options.credential = *service;
  registry_options.deadline = absl::Seconds(2);
  auto registry = std::make_shared<cnet::registry_client::RegistryClient>(registry_options);
  cnet::tasks::RegistryDirectory directory(registry);
  // Notices are signed like any message: with the network's shared secret,
  // or on a single node with the gateway's local secret file.
  std::string signing_key;
  if (config.GetBool("security.use_message_signing")) {
    signing_key = config.GetString("security.shared_secret");
    if (signing_key.empty()) {
      auto local = cnet::auth::LoadOrCreateSecret(boot.data_dir + "/message.secret");
      if (!local.ok()) return Fatal(local.status());
      signing_key = *local;
    }
  }
  cnet::tasks::MacsNotifier notifier(cnet::MakeSuiteChannel(config, "services.macs_addr"),
                                     *service, signing_key);

  cnet::tasks::BoardOptions options;
  options.default_lease = config.GetDuration("limits.lease_duration");
  options.aging_interval = config.GetDuration("tasks.aging_interval");
  options.steal_threshold = static_cast<int>(config.GetInt("tasks.steal_threshold"));
  options.default_max_attempts = static_cast<int>(config.GetInt("tasks.default_max_attempts"));
  // One default for the whole node: the registry's (its FindAgents ranks by it).
  options.default_agent_concurrency =
      static_cast<int>(config.GetInt("registry.default_agent_concurrency"));
  options.review_reopen_window = config.GetDuration("tasks.review_reopen_window");
  options.push_assignment = config.GetBool("tasks.push_assignment");
  options.sweep_interval = config.GetDuration("tasks.sweep_interval");
  options.restart_grace = config.GetDuration("tasks.restart_grace");
  options.reservation_ttl = config.GetDuration("tasks.reservation_ttl");
  options.reservation_warning = config.GetDuration("tasks.reservation_warning");
  options.max_reservations_per_agent =
      static_cast<int>(config.GetInt("tasks.max_reservations_per_agent"));
  options.changed_paths_ttl = config.GetDuration("tasks.changed_paths_ttl");
  options.node = NodeName(config);
  options.background = true;
  // The lease bounds of the API; the configured default must lie within.
  options.default_lease =
      std::min(std::max(options.default_lease, options.min_lease), options.max_lease);

  auto board = cnet::tasks::Board::Open(options, store->get(), cnet::RealClock::Default(),
                                        &directory, &notifier);
  if (!board.ok()) return Fatal(board.status());
  directory.Start();

  cnet::tasks::TaskServiceImpl::Options service_options;
  service_options.max_watchers = static_cast<size_t>(config.GetInt("tasks.max_watchers"));
  service_options.max_watchers_per_caller = config.GetInt("tasks.max_watchers_per_caller");
  service_options.create_rate_per_agent = config.GetDouble("tasks.create_rate_per_agent");
  service_options.create_burst_per_agent =
      static_cast<double>(config.GetInt("tasks.create_burst_per_agent"));
  cnet::tasks::TaskServiceImpl impl(board->get(), service_options);
  cnet::ServerOptions server_options;
  server_options.services = {&impl};
  server_options.health_names = {"claudenet.v1.TaskService"};
  server_options.interceptors.push_back(cnet::auth::MakeAuthInterceptorFactory(
      cnet::auth::InterceptorOptions{boot.config.GetInt("limits.max_streams_per_caller")},
      std::make_shared<cnet::auth::StaticAuthenticator>(
          *admin, *service,
          std::make_shared<cnet::registry_client::RegistryAuthenticator>(registry))));
  cnet::ServeHooks hooks;
  hooks.on_shutdown = [&] {
    directory.Stop();
    (*board)->Shutdown();
  };
  int rc = cnet::ServeUntilSignal(boot, std::move(server_options), hooks);
  directory.Stop();
  (*board)->Shutdown();
  return rc;
}
