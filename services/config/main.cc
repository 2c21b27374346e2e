// The config service binary: serves this node's effective configuration.
#include <glog/logging.h>

#include <iostream>

#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/server/bootstrap.h"
#include "services/config/config_core.h"
#include "services/config/config_service.h"

int main(int argc, char** argv) {
  cnet::BlockShutdownSignals();
  cnet::Boot boot = cnet::BootOrExit(argc, argv, "config", "services.config_addr");

  auto core = cnet::configsvc::ConfigCore::Create(boot.load_options,
                                                  cnet::RealClock::Default());
  auto admin = cnet::auth::AdminToken(boot.config.GetString("security.admin_token"),
                                      boot.data_dir);
  auto service = cnet::auth::ServiceCredential(
      boot.config.GetString("security.service_credential"), boot.data_dir);
  for (const absl::Status& s : {core.status(), admin.status(), service.status()}) {
    if (!s.ok()) {
      LOG(ERROR) << s.message();
      std::cerr << "config: " << s.message() << std::endl;
      return 2;
    }
  }
  absl::Status watching = (*core)->WatchFiles();
  if (!watching.ok()) LOG(WARNING) << "not watching layer files: " << watching.message();

  cnet::configsvc::ConfigServiceImpl impl(core->get());
  cnet::ServerOptions options;
  options.services = {&impl};
  options.health_names = {"claudenet.v1.ConfigService"};
  options.interceptors.push_back(cnet::auth::MakeAuthInterceptorFactory(
      cnet::auth::InterceptorOptions{boot.config.GetInt("limits.max_streams_per_caller")},
      std::make_shared<cnet::auth::StaticAuthenticator>(*admin, *service)));
  cnet::ServeHooks hooks;
  hooks.on_reload = [&] { (*core)->Reload(cnet::configsvc::ChangeCause::kSignalReload); };
  hooks.on_shutdown = [&] { (*core)->hub()->Close(); };
  return cnet::ServeUntilSignal(boot, std::move(options), hooks);
}
