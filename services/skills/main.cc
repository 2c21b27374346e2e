// The skills binary: loads the skill library, runs skills for agents and
// keeps their history. Built-in actions reach MACS, the Registry and Tasks
// over gRPC as the calling agent (service credential + on-behalf-of).
#include <glog/logging.h>

#include <filesystem>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/metrics/metrics.h"
#include "libs/registry_client/registry_authenticator.h"
#include "libs/registry_client/registry_client.h"
#include "libs/server/bootstrap.h"
#include "libs/server/tls.h"
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

void LogReload(const absl::StatusOr<cnet::skills::ReloadReport>& r) {
  if (!r.ok()) {
    LOG(WARNING) << "skill library: " << r.status().message();
    return;
  }
  LOG(INFO) << "skill library: " << r->loaded << " skills, " << r->invalid << " invalid files";
  for (const cnet::skills::Issue& i : r->issues) LOG(WARNING) << "skill file: " << i.ToString();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cnet::skills;  // NOLINT: one binary's wiring
  cnet::BlockShutdownSignals();
  // Debian's Abseil records lock order on every Mutex acquisition (a
  // debugging aid); the engine takes a few locks per step.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
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

  // The registry: agent tokens of our callers, and their capabilities.
  cnet::registry_client::ClientOptions registry_options;
  registry_options.address = cfg.GetString("services.registry_addr");
  registry_options.channel = cnet::MakeSuiteChannel(cfg, "services.registry_addr");
  registry_options.credential = *service;
  registry_options.deadline = absl::Seconds(5);
  auto registry = std::make_shared<cnet::registry_client::RegistryClient>(registry_options);

  // Messages are signed like any sender's: with the network's shared
  // secret, or on a single node with the gateway's local secret file.
  BackendOptions backend_options;
  backend_options.registry = registry_options.channel;
  backend_options.macs = cnet::MakeSuiteChannel(cfg, "services.macs_addr");
  backend_options.tasks = cnet::MakeSuiteChannel(cfg, "services.tasks_addr");
  backend_options.service_credential = *service;
  if (cfg.GetBool("security.use_message_signing")) {
    backend_options.sign_messages = true;
    backend_options.shared_secret = cfg.GetString("security.shared_secret");
    if (backend_options.shared_secret.empty()) {
      auto local = cnet::auth::LoadOrCreateSecret(boot.data_dir + "/message.secret");
      if (!local.ok()) return Fatal(local.status());
      backend_options.shared_secret = *local;
    }
  }
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
  // A missing root is logged, not fatal: Reload (or the watch) picks the
  // library up once it exists.
  LogReload(library.Reload());
  if (cfg.GetBool("skills.watch_library")) {
    absl::Status watching = library.StartWatching(LogReload);
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
                [registry](const std::string& agent) -> absl::StatusOr<std::vector<std::string>> {
                  auto a = registry->GetAgent(agent);
                  if (!a.ok()) return a.status();
                  return std::vector<std::string>(a->capabilities().begin(),
                                                  a->capabilities().end());
                });
  auto recovered = engine.Recover();
  if (!recovered.ok()) return Fatal(recovered.status());
  if (*recovered > 0) LOG(WARNING) << *recovered << " runs interrupted by a restart marked FAILED";

  auto* metrics = cnet::metrics::Registry::Default();
  metrics->Gauge("cnet_skills_runs_in_flight", "Skill runs executing now.",
                 [&engine] { return std::vector<std::pair<cnet::metrics::Labels, double>>{
                                 {{}, static_cast<double>(engine.in_flight())}}; });
  metrics->Gauge("cnet_skills_library_files", "Skill files in the library by validity.",
                 [&library] {
                   auto lib = library.Current();
                   return std::vector<std::pair<cnet::metrics::Labels, double>>{
                       {{{"valid", "true"}}, static_cast<double>(lib->valid_count())},
                       {{{"valid", "false"}}, static_cast<double>(lib->invalid_count())}};
                 });

  SkillServiceImpl impl(&engine, &library, clock);
  cnet::ServerOptions server;
  server.services = {&impl};
  server.health_names = {"claudenet.v1.SkillService"};
  server.interceptors.push_back(cnet::auth::MakeAuthInterceptorFactory(
      cnet::auth::InterceptorOptions{boot.config.GetInt("limits.max_streams_per_caller")},
      std::make_shared<cnet::auth::StaticAuthenticator>(
          *admin, *service,
          std::make_shared<cnet::registry_client::RegistryAuthenticator>(registry))));
  cnet::ServeHooks hooks;
  hooks.on_reload = [&library] { LogReload(library.Reload()); };
  hooks.on_shutdown = [&engine] { engine.CancelAll("the skills service is shutting down"); };
  return cnet::ServeUntilSignal(boot, std::move(server), hooks);
}
