#include "libs/server/bootstrap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <glog/logging.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/logging/logging.h"
#include "libs/metrics/metrics.h"
#include "libs/server/tls.h"

namespace cnet {
namespace {

[[noreturn]] void Die(const std::string& name, const std::string& reason) {
  std::cerr << name << ": " << reason << std::endl;
  std::exit(2);
}

}  // namespace

void WarnAboutExposedSecrets(const config::Config& config) {
  for (const config::Config::Entry& e : config.entries()) {
    if (!e.spec->secret || !e.is_set) continue;
    config::Layer layer = e.source.layer;
    if (layer == config::Layer::kDefault || layer == config::Layer::kEnvironment) continue;
    struct stat st;
    if (::stat(e.source.origin.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
      LOG(WARNING) << e.source.origin << " sets secret " << e.spec->key
                   << " but is readable by other users (mode "
                   << absl::StrFormat("%04o", st.st_mode & 07777) << "); chmod 600 it";
    }
  }
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view content) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  bool ok = ::write(fd, content.data(), content.size()) ==
                static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

Boot BootOrExit(int argc, char** argv, std::string_view name,
                std::string_view address_key) {
  Boot boot;
  boot.name = std::string(name);
  boot.address_key = std::string(address_key);
  std::string listen, data_dir, log_file, project_dir;
  CLI::App app{absl::StrCat("Claude Network ", boot.name, " service")};
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0 = any free port)");
  app.add_option("--data-dir", data_dir, "data directory (overrides services.data_dir)");
  app.add_option("--log-file", log_file, "JSON log file; - for stderr");
  app.add_option("--project-dir", project_dir,
                 "directory holding config.yaml and config.example.yaml");
  app.add_option("--port-file", boot.port_file, "write the bound port to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::exit(app.exit(e));
  } catch (const CLI::ParseError& e) {
    Die(boot.name, e.what());
  }

  boot.load_options = config::LoadOptions::FromProcess();
  if (!project_dir.empty()) boot.load_options.project_dir = project_dir;
  std::string address_env = config::GenericEnvName(address_key);
  if (!listen.empty()) boot.load_options.env[address_env] = listen;
  if (!data_dir.empty()) {
    boot.load_options.env[config::GenericEnvName("services.data_dir")] = data_dir;
  }

  absl::StatusOr<config::Config> loaded = config::Load(boot.load_options);
  if (!loaded.ok()) {
    Die(boot.name, absl::StrCat("invalid configuration: ", loaded.status().message()));
  }
  boot.config = *std::move(loaded);
  boot.listen_address = boot.config.GetString(address_key);
  boot.data_dir = boot.config.GetString("services.data_dir");

  std::error_code ec;
  std::filesystem::create_directories(boot.data_dir, ec);
  if (ec) {
    Die(boot.name, absl::StrCat("cannot create data directory ", boot.data_dir, ": ",
                           ec.message()));
  }
  if (log_file.empty()) {
    log_file = absl::StrCat(boot.config.GetString("services.log_dir"), "/", boot.name, ".log");
  }
  absl::Status logging = InitLogging(argv[0], name, log_file == "-" ? "" : log_file);
  if (!logging.ok()) Die(boot.name, std::string(logging.message()));
  LOG(INFO) << boot.name << " starting; data dir " << boot.data_dir;
  WarnAboutExposedSecrets(boot.config);
  return boot;
}

int ServeUntilSignal(const Boot& boot, ServerOptions options, const ServeHooks& hooks) {
  options.name = boot.name;
  options.listen_address = boot.listen_address;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentialsFromConfig(boot.config, boot.listen_address);
  if (!credentials.ok()) Die(boot.name, std::string(credentials.status().message()));
  options.credentials = *credentials;
  std::unique_ptr<metrics::HttpEndpoint> metrics_endpoint;
  if (boot.config.GetBool("services.metrics_enabled")) {
    options.interceptors.push_back(metrics::MakeRpcMetricsInterceptorFactory());
    std::string key = boot.address_key.substr(0, boot.address_key.rfind("_addr")) + "_metrics_port";
    auto endpoint = metrics::HttpEndpoint::Start(boot.config.GetString("services.bind_host"),
                                                 static_cast<int>(boot.config.GetInt(key)),
                                                 metrics::Registry::Default());
    if (!endpoint.ok()) Die(boot.name, std::string(endpoint.status().message()));
    metrics_endpoint = *std::move(endpoint);
    LOG(INFO) << "metrics on http://" << boot.config.GetString("services.bind_host") << ":"
              << metrics_endpoint->port() << "/metrics";
  }
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(std::move(options));
  if (!server.ok()) {
    LOG(ERROR) << server.status().message();
    Die(boot.name, std::string(server.status().message()));
  }
  if (!boot.port_file.empty()) {
    absl::Status s = WriteFileAtomically(boot.port_file, std::to_string((*server)->port()));
    if (s.ok() && metrics_endpoint) {
      s = WriteFileAtomically(boot.port_file + ".metrics",
                              std::to_string(metrics_endpoint->port()));
    }
    if (!s.ok()) Die(boot.name, std::string(s.message()));
  }
  for (;;) {
    int sig = WaitForSignal();
    if (sig == SIGHUP) {
      LOG(INFO) << "SIGHUP received";
      if (hooks.on_reload) hooks.on_reload();
      continue;
    }
    LOG(INFO) << "signal " << sig << " received; shutting down";
    break;
  }
  if (hooks.on_shutdown) hooks.on_shutdown();
  (*server)->Shutdown(boot.config.GetDuration("services.drain_timeout"));
  LOG(INFO) << boot.name << " stopped";
  return 0;
}

}  // namespace cnet
