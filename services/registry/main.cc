// The registry binary: agents, tokens, heartbeats, measured health,
// discovery and the agent event stream of this node.
#include <glog/logging.h>

#include <iostream>
#include <memory>

#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/metrics/metrics.h"
#include "libs/server/bootstrap.h"
#include "services/registry/registry.h"
#include "services/registry/registry_service.h"
#include "services/registry/store.h"

namespace {

int Fatal(const absl::Status& s) {
  LOG(ERROR) << s.message();
  std::cerr << "registry: " << s.message() << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  cnet::BlockShutdownSignals();
  cnet::Boot boot = cnet::BootOrExit(argc, argv, "registry", "services.registry_addr");

  auto admin = cnet::auth::AdminToken(boot.config.GetString("security.admin_token"),
                                      boot.data_dir);
  if (!admin.ok()) return Fatal(admin.status());
  auto service = cnet::auth::ServiceCredential(
      boot.config.GetString("security.service_credential"), boot.data_dir);
  if (!service.ok()) return Fatal(service.status());
  auto store = cnet::registry::RegistryStore::Open(boot.data_dir + "/registry.db");
  if (!store.ok()) return Fatal(store.status());
  auto registry = cnet::registry::Registry::Open(
      cnet::registry::RegistryOptions::FromConfig(boot.config), std::move(*store),
      cnet::RealClock::Default());
  if (!registry.ok()) return Fatal(registry.status());

  cnet::registry::Registry* core = registry->get();
  auto* metrics = cnet::metrics::Registry::Default();
  metrics->Gauge("cnet_registry_agents", "Registered agents by measured health.", [core] {
    std::vector<std::pair<cnet::metrics::Labels, double>> out;
    claudenet::v1::GetNetworkStatusRequest req;
    req.set_capability_limit(1);
    auto status = core->GetNetworkStatus(req);
    if (!status.ok()) return out;
    for (const auto& h : status->by_health()) {
      out.push_back({{{"health", claudenet::v1::Health_Name(h.health())}},
                     static_cast<double>(h.count())});
    }
    return out;
  });
  metrics->Gauge("cnet_registry_event_sequence", "Sequence of the latest registry event.",
                 [core] {
                   return std::vector<std::pair<cnet::metrics::Labels, double>>{
                       {{}, static_cast<double>(core->current_sequence())}};
                 });
  metrics->Gauge("cnet_registry_watchers", "Open Watch streams.", [core] {
    return std::vector<std::pair<cnet::metrics::Labels, double>>{
        {{}, static_cast<double>(core->hub()->subscriber_count())}};
  });

  cnet::registry::RegistryServiceImpl impl(core);
  cnet::ServerOptions options;
  options.services = {&impl};
  options.health_names = {"claudenet.v1.RegistryService"};
  options.interceptors.push_back(cnet::auth::MakeAuthInterceptorFactory(
      cnet::auth::InterceptorOptions{boot.config.GetInt("limits.max_streams_per_caller")},
      std::make_shared<cnet::auth::StaticAuthenticator>(
          *admin, *service,
          std::make_shared<cnet::registry::RegistryTokenAuthenticator>(registry->get()))));
  cnet::ServeHooks hooks;
  // Watch streams end cleanly before the listener drains.
  hooks.on_shutdown = [&] { (*registry)->hub()->Close(); };
  int status = cnet::ServeUntilSignal(boot, std::move(options), hooks);
  // After the drain: the last heartbeat data reaches the disk.
  (*registry)->Shutdown();
  return status;
}
