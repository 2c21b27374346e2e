// The skills binary: loads the skill library, runs skills for agents and
// keeps their history. Built-in actions reach MACS, the Registry and Tasks
// over gRPC as the calling agent (service credential + on-behalf-of).
#include <glog/logging.h>

#include <filesystem>
#include <iostream>

#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/server/bootstrap.h"
#include "services/skills/engine.h"
#include "services/skills/grpc_backends.h"
#include "services/skills/skills_service.h"
#include "services/skills/store.h"

namespace {

int Fatal(const absl::Status& s) {
  LOG(ERROR) << s.message();
  std::cerr << "skills: " << s.message() << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cnet::skills;  // NOLINT: one binary's wiring
  cnet::BlockShutdownSignals();
  cnet::Boot boot = cnet::BootOrExit(argc, argv, "skills", "services.skills_addr");
  const cnet::config::Config& cfg = boot.config;
  cnet::Clock* clock = cnet::RealClock::Default();

  auto admin = cnet::auth::AdminToken(cfg.GetString("security.admin_token"), boot.data_dir);
  if (!admin.ok()) return Fatal(admin.status());
  auto service = cnet::auth::ServiceCredential(cfg.GetString("security.service_credential"),
                                               boot.data_dir);
  if (!service.ok()) return Fatal(service.status());
  auto store = Store::Open(boot.data_dir + "/skills.db", clock);
  if (!store.ok()) return Fatal(store.status());

  BackendOptions backend_options;
  backend_options.registry_address = cfg.GetString("services.registry_addr");
  backend_options.macs_address = cfg.GetString("services.macs_addr");
  backend_options.tasks_address = cfg.GetString("services.tasks_addr");
  backend_options.service_credential = *service;
  backend_options.sign_messages = cfg.GetBool("security.use_message_signing");
  backend_options.shared_secret = cfg.GetString("security.shared_secret");
  GrpcBackends backends(backend_options, clock);
  ProcSystemProbe probe;

  ActionEnv env;
  env.messaging = &backends;
  env.registry = &backends;
  env.tasks = &backends;
  env.data = store->get();
  env.system = &probe;
  env.shell_allowlist = cfg.GetStringList("skills.shell_allowlist");
  env.shell_output_cap = static_cast<size_t>(cfg.GetInt("skills.step_output_cap"));
  ActionRegistry actions(env);

  // A relative library path is relative to the project directory (where
  // config.yaml is read; the working directory by default).
  std::filesystem::path root = cfg.GetString("skills.library_dir");
  if (root.is_relative() && !boot.load_options.project_dir.empty()) {
    root = std::filesystem::path(boot.load_options.project_dir) / root;
  }
  LibraryManager library(root.string(), &actions.catalog(), clock);
  auto report = library.Reload();
  if (report.ok()) {
    LOG(INFO) << "skill library " << root.string() << ": " << report->loaded << " skills, "
              << report->invalid << " invalid files";
    for (const Issue& i : report->issues) LOG(WARNING) << "skill file: " << i.ToString();
  } else {
    // The service still starts: Reload (or the file watch) picks the
    // library up once it exists.
    LOG(WARNING) << report.status().message();
  }
  if (cfg.GetBool("skills.watch_library")) {
    absl::Status watching = library.StartWatching([](const absl::StatusOr<ReloadReport>& r) {
      if (!r.ok()) {
        LOG(WARNING) << "skill library reload: " << r.status().message();
        return;
      }
      LOG(INFO) << "skill library reloaded: " << r->loaded << " skills, " << r->invalid
                << " invalid files";
      for (const Issue& i : r->issues) LOG(WARNING) << "skill file: " << i.ToString();
    });
    if (!watching.ok()) LOG(WARNING) << "not watching the skill library: " << watching.message();
  }

  ThreadPool pool(static_cast<int>(cfg.GetInt("skills.worker_threads")), "skills-steps");
  ThreadPool blocking(static_cast<int>(cfg.GetInt("skills.blocking_threads")), "skills-io");
  EngineOptions options;
  options.max_runs = static_cast<int>(cfg.GetInt("limits.max_skill_runs"));
  options.max_runs_per_agent = static_cast<int>(cfg.GetInt("skills.max_runs_per_agent"));
  options.default_step_timeout = cfg.GetDuration("skills.default_step_timeout");
  options.shell_timeout = cfg.GetDuration("skills.shell_timeout");
  options.default_run_timeout = cfg.GetDuration("skills.default_run_timeout");
  options.output_cap = static_cast<size_t>(cfg.GetInt("skills.step_output_cap"));
  Engine engine(&library, &actions, store->get(), clock, &pool, &blocking, options,
                [&backends](const std::string& agent) { return backends.Capabilities(agent); });
  auto recovered = engine.Recover();
  if (!recovered.ok()) return Fatal(recovered.status());
  if (*recovered > 0) LOG(WARNING) << *recovered << " runs interrupted by a restart marked FAILED";

  SkillServiceImpl impl(&engine, &library, clock);
  cnet::ServerOptions server;
  server.services = {&impl};
  server.health_names = {"claudenet.v1.SkillService"};
  server.interceptors.push_back(cnet::auth::MakeAuthInterceptorFactory(
      std::make_shared<cnet::auth::StaticAuthenticator>(
          *admin, *service,
          std::make_shared<RegistryTokenAuthenticator>(backends.registry(), *service, clock))));
  cnet::ServeHooks hooks;
  hooks.on_reload = [&library] {
    auto r = library.Reload();
    if (!r.ok()) LOG(WARNING) << "skill library reload: " << r.status().message();
  };
  return cnet::ServeUntilSignal(boot, std::move(server), hooks);
}
