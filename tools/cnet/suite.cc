#include "tools/cnet/suite.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "libs/logging/logging.h"
#include "libs/server/server.h"
#include "libs/server/tls.h"

namespace cnet::cli {
namespace fs = std::filesystem;

const std::vector<ServiceInfo>& Services() {
  static const auto* services = new std::vector<ServiceInfo>{
      {"config", "services.config_addr", "claudenet.v1.ConfigService"},
      {"registry", "services.registry_addr", "claudenet.v1.RegistryService"},
      {"macs-gateway", "services.macs_addr", "claudenet.v1.MacsGateway"},
      {"tasks", "services.tasks_addr", "claudenet.v1.TaskService"},
      {"skills", "services.skills_addr", "claudenet.v1.SkillService"},
  };
  return *services;
}

std::string CheckHealth(const std::string& address, const std::string& service,
                        absl::Duration timeout,
                        std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(address, credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return "UNKNOWN_SERVICE";
    return "UNAVAILABLE";
  }
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}

namespace {

std::string RunDir(const config::Config& c) {
  return c.GetString("services.data_dir") + "/run";
}
std::string PidFile(const config::Config& c, const std::string& name) {
  return RunDir(c) + "/" + name + ".pid";
}

// The pid in the file if that process is alive and is our binary; else 0.
pid_t LivePid(const config::Config& c, const std::string& name) {
  std::ifstream in(PidFile(c, name));
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
  std::string argv0;
  std::getline(cmd, argv0, '\0');
  if (fs::path(argv0).filename() != name) return 0;  // pid reused by another program
  return pid;
}

std::string FindBinDir(const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  fs::path dir = self.parent_path();
  // Installed layout: all binaries side by side.
  if (fs::exists(dir / "registry")) return dir.string();
  // Bazel layout: bazel-bin/tools/cnet/cnet and bazel-bin/services/<n>/<n>.
  fs::path bazel_bin = dir.parent_path().parent_path();
  if (fs::exists(bazel_bin / "services")) return (bazel_bin / "services").string();
  return dir.string();
}

std::string BinaryPath(const std::string& bin_dir, const std::string& name) {
  fs::path flat = fs::path(bin_dir) / name;
  if (fs::exists(flat) && !fs::is_directory(flat)) return flat.string();
  return (fs::path(bin_dir) / name / name).string();
}

std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

pid_t Spawn(const std::string& binary, const std::vector<std::string>& args,
            const std::string& out_file) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setsid();
  int fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0640);
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Signals blocked by the parent would be inherited: unblock them.
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_UNBLOCK, &all, nullptr);
  execv(binary.c_str(), argv.data());
  dprintf(2, "cannot execute %s: %s\n", binary.c_str(), strerror(errno));
  _exit(127);
}

// TLS client credentials when the suite is configured for TLS; a broken
// TLS configuration falls back to plaintext, which then fails visibly.
std::shared_ptr<grpc::ChannelCredentials> ClientCredentials(const config::Config& c) {
  auto creds = ChannelCredentialsFromConfig(c);
  return creds.ok() ? *creds : grpc::InsecureChannelCredentials();
}

bool Exited(pid_t pid, int* status) {
  return waitpid(pid, status, WNOHANG) == pid;
}

void Progress(bool tty, const std::string& text) {
  if (tty) std::cerr << "\r\033[K" << text << std::flush;
}

}  // namespace

int Up(const SuiteOptions& o) {
  const config::Config& c = o.config;
  std::vector<std::string> running;
  for (const auto& s : Services()) {
    if (pid_t pid = LivePid(c, s.name)) running.push_back(absl::StrCat(s.name, " (pid ", pid, ")"));
  }
  if (!running.empty()) {
    std::cerr << "cnet up: already running: " << absl::StrJoin(running, ", ")
              << "; run `cnet down` first\n";
    return kExitConflict;
  }
  std::string bin_dir = FindBinDir(o.bin_dir);
  std::string log_dir = c.GetString("services.log_dir");
  std::error_code ec;
  fs::create_directories(RunDir(c), ec);
  fs::create_directories(log_dir, ec);
  if (ec) {
    std::cerr << "cnet up: cannot create " << log_dir << ": " << ec.message() << "\n";
    return kExitInternal;
  }
  absl::Time start = absl::Now();
  std::map<std::string, pid_t> pids;
  for (const auto& s : Services()) {
    std::string binary = BinaryPath(bin_dir, s.name);
    if (!fs::exists(binary)) {
      std::cerr << "cnet up: binary not found: " << binary
                << " (build with: bazel build //services/...)\n";
      for (auto& [n, p] : pids) kill(p, SIGTERM);
      return kExitNotFound;
    }
    std::vector<std::string> args = {
        "--log-file", absl::StrCat(log_dir, "/", s.name, ".log"),
        "--listen", c.GetString(s.address_key),
        "--data-dir", c.GetString("services.data_dir")};
    if (!o.project_dir.empty()) {
      args.push_back("--project-dir");
      args.push_back(o.project_dir);
    }
    pid_t pid = Spawn(binary, args, absl::StrCat(log_dir, "/", s.name, ".out"));
    if (pid < 0) {
      std::cerr << "cnet up: fork failed: " << std::strerror(errno) << "\n";
      return kExitInternal;
    }
    pids[s.name] = pid;
    std::ofstream(PidFile(c, s.name)) << pid << "\n";
  }
  bool tty = isatty(2) && !o.json && !o.quiet;
  std::shared_ptr<grpc::ChannelCredentials> creds = ClientCredentials(c);
  std::map<std::string, bool> serving;
  absl::Time deadline = start + o.timeout;
  while (serving.size() < Services().size()) {
    for (const auto& s : Services()) {
      if (serving.count(s.name)) continue;
      int status = 0;
      if (Exited(pids[s.name], &status)) {
        Progress(tty, "");
        std::string why = LastLine(absl::StrCat(log_dir, "/", s.name, ".out"));
        std::cerr << "cnet up: " << s.name << " exited with status "
                  << (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status))
                  << (why.empty() ? "" : ": ") << why << "\n";
        for (auto& [n, p] : pids) {
          if (n != s.name) kill(p, SIGTERM);
          std::remove(PidFile(c, n).c_str());
        }
        return kExitUnavailable;
      }
      if (CheckHealth(c.GetString(s.address_key), "", absl::Milliseconds(500), creds) ==
          "SERVING") {
        serving[s.name] = true;
      }
    }
    Progress(tty, absl::StrCat("starting: ", serving.size(), "/", Services().size(),
                               " services SERVING"));
    if (serving.size() == Services().size()) break;
    if (absl::Now() > deadline) {
      Progress(tty, "");
      std::cerr << "cnet up: not every service became SERVING within "
                << absl::FormatDuration(o.timeout) << "; see " << log_dir << "\n";
      return kExitUnavailable;
    }
    // Poll the health endpoints of children we just started: there is no
    // event to wait on across processes; the interval bounds start-up lag.
    absl::SleepFor(absl::Milliseconds(50));
  }
  Progress(tty, "");
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  if (o.quiet) return kExitOk;
  if (o.json) {
    std::cout << "{\"ok\":true,\"seconds\":" << secs << ",\"services\":[";
    bool first = true;
    for (const auto& s : Services()) {
      std::cout << (first ? "" : ",") << "{\"name\":\"" << s.name << "\",\"pid\":"
                << pids[s.name] << ",\"address\":\"" << c.GetString(s.address_key)
                << "\",\"health\":\"SERVING\"}";
      first = false;
    }
    std::cout << "]}\n";
  } else {
    for (const auto& s : Services()) {
      std::cout << "  " << s.name << std::string(14 - s.name.size(), ' ')
                << c.GetString(s.address_key) << "  pid " << pids[s.name]
                << "  SERVING\n";
    }
    std::cout << "Claude Network is up (" << absl::StrFormat("%.2f", secs)
              << " s); data in " << c.GetString("services.data_dir") << ", logs in "
              << log_dir << "\n";
  }
  return kExitOk;
}

int Down(const SuiteOptions& o) {
  const config::Config& c = o.config;
  std::map<std::string, pid_t> pids;
  for (const auto& s : Services()) {
    if (pid_t pid = LivePid(c, s.name)) {
      pids[s.name] = pid;
      kill(pid, SIGTERM);
    } else {
      std::remove(PidFile(c, s.name).c_str());
    }
  }
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (auto& [name, pid] : pids) {
    while (kill(pid, 0) == 0 && absl::Now() < deadline) {
      // Not our child (started by an earlier `cnet up`): no wait() to block on.
      waitpid(pid, nullptr, WNOHANG);
      absl::SleepFor(absl::Milliseconds(20));
    }
    if (kill(pid, 0) == 0) {
      std::cerr << "cnet down: " << name << " (pid " << pid
                << ") did not stop in time; killing it\n";
      kill(pid, SIGKILL);
    }
    std::remove(PidFile(c, name).c_str());
  }
  if (o.quiet) return kExitOk;
  if (o.json) {
    std::cout << "{\"ok\":true,\"stopped\":" << pids.size() << "}\n";
  } else {
    std::cout << (pids.empty() ? "nothing was running\n"
                               : absl::StrCat("stopped ", pids.size(), " service(s)\n"));
  }
  return kExitOk;
}

namespace {

// Seconds since the pid file was written (by `cnet up`); -1 when unknown.
int64_t UptimeSeconds(const config::Config& c, const std::string& name) {
  struct stat st;
  if (::stat(PidFile(c, name).c_str(), &st) != 0) return -1;
  return std::max<int64_t>(0, absl::ToUnixSeconds(absl::Now()) - st.st_mtime);
}

std::string UptimeText(int64_t secs) {
  if (secs < 0) return "-";
  if (secs < 120) return absl::StrCat(secs, "s");
  if (secs < 7200) return absl::StrCat(secs / 60, "m");
  if (secs < 172800) return absl::StrCat(secs / 3600, "h");
  return absl::StrCat(secs / 86400, "d");
}

std::string FederationName(claudenet::v1::FederationState s) {
  std::string name = claudenet::v1::FederationState_Name(s);
  return name.substr(std::string("FEDERATION_STATE_").size());
}

}  // namespace

int Status(const SuiteOptions& o) {
  const config::Config& c = o.config;
  int serving = 0;
  std::vector<std::string> json_items;
  for (const auto& s : Services()) {
    pid_t pid = LivePid(c, s.name);
    std::string address = c.GetString(s.address_key);
    std::string health = CheckHealth(address, "", absl::Seconds(2), ClientCredentials(c));
    int64_t uptime = pid ? UptimeSeconds(c, s.name) : -1;
    if (health == "SERVING") ++serving;
    if (o.json) {
      json_items.push_back(absl::StrCat("{\"name\":\"", s.name, "\",\"pid\":", pid,
                                        ",\"address\":\"", address, "\",\"health\":\"",
                                        health, "\",\"uptime_s\":", uptime, "}"));
    } else {
      std::cout << "  " << s.name << std::string(14 - s.name.size(), ' ') << address
                << "  " << (pid ? absl::StrCat("pid ", pid) : std::string("not running"))
                << "  " << health << (pid ? "  up " + UptimeText(uptime) : "") << "\n";
    }
  }
  // The gateway's federation state (Firebase connected / queued / GitHub
  // fallback, offline queue).
  std::string federation_json = "null";
  {
    auto stub = claudenet::v1::MacsGateway::NewStub(
        MakeChannel(c.GetString("services.macs_addr"), ClientCredentials(c)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (!o.credential.empty()) ctx.AddMetadata("authorization", "Bearer " + o.credential);
    claudenet::v1::GetStatsRequest req;
    claudenet::v1::GetStatsResponse resp;
    grpc::Status st = stub->GetStats(&ctx, req, &resp);
    const auto& f = resp.federation();
    std::string oldest = f.has_offline_queue_oldest_age()
                             ? absl::StrCat(f.offline_queue_oldest_age().seconds())
                             : "null";
    if (st.ok()) {
      federation_json = absl::StrCat(
          "{\"state\":\"", FederationName(f.state()), "\",\"firebase_stream_connected\":",
          f.firebase_stream_connected() ? "true" : "false", ",\"offline_queue_depth\":",
          f.offline_queue_depth(), ",\"offline_queue_oldest_age_s\":", oldest,
          ",\"outbox_depth\":", f.outbox_depth(), ",\"remote_nodes\":", f.remote_nodes_size(),
          ",\"firebase_last_error\":\"", JsonEscape(f.firebase_last_error()), "\"}");
    }
    if (!o.json) {
      std::cout << "  federation    ";
      if (st.ok()) {
        std::cout << FederationName(f.state()) << ", offline queue " << f.offline_queue_depth()
                  << (f.has_offline_queue_oldest_age()
                          ? absl::StrCat(" (oldest ", oldest, "s)")
                          : std::string())
                  << ", " << f.remote_nodes_size() << " remote node(s)"
                  << (f.firebase_last_error().empty() ? ""
                                                      : "; last error: " + f.firebase_last_error())
                  << "\n";
      } else {
        std::cout << "unknown (" << st.error_message() << ")\n";
      }
    }
  }
  if (o.json) {
    std::cout << "{\"services\":[" << absl::StrJoin(json_items, ",")
              << "],\"federation\":" << federation_json << "}\n";
  }
  return serving == static_cast<int>(Services().size()) ? kExitOk : kExitUnavailable;
}

int Health(const std::string& address, const std::string& service,
           absl::Duration timeout, bool json,
           std::shared_ptr<grpc::ChannelCredentials> credentials) {
  std::string health = CheckHealth(address, service, timeout, credentials);
  if (json) {
    std::cout << "{\"address\":\"" << JsonEscape(address) << "\",\"health\":\"" << health
              << "\"}\n";
  } else {
    std::cout << health << "\n";
  }
  return health == "SERVING" ? kExitOk : kExitUnavailable;
}

void AddSuiteCommands(CLI::App* app, Globals* g) {
  struct UpFlags {
    std::string bin_dir;
    double wait_seconds = 60;
  };
  auto flags = std::make_shared<UpFlags>();
  auto options = [g, flags] {
    return SuiteOptions{g->config(), flags->bin_dir, g->load_options().project_dir,
                        absl::Seconds(flags->wait_seconds), g->json};
  };
  auto* up = app->add_subcommand("up", "start the five services and wait until all are SERVING");
  up->add_option("--bin-dir", flags->bin_dir, "directory of the service binaries (default: found)");
  up->add_option("--wait", flags->wait_seconds, "seconds to wait for SERVING")
      ->capture_default_str();
  up->footer("Example: cnet up");
  up->callback([g, options] { g->exit_code = Up(options()); });

  auto* down = app->add_subcommand("down", "stop the services started by `cnet up`");
  down->footer("Example: cnet down");
  down->callback([g, options] { g->exit_code = Down(options()); });

  auto* status = app->add_subcommand(
      "status", "show each service's health, pid, address, uptime, and federation state");
  status->footer("Example: cnet status --json");
  status->callback([g, options] {
    SuiteOptions o = options();
    o.credential = g->AdminCredential();
    g->exit_code = Status(o);
  });

  auto health_flags = std::make_shared<std::pair<std::string, std::string>>();
  auto* health = app->add_subcommand("health", "exit 0 only if ADDRESS answers SERVING");
  health->add_option("--addr", health_flags->first, "host:port")->required();
  health->add_option("--service", health_flags->second,
                     "fully qualified service name (default: the whole server)");
  health->footer("Example: cnet health --addr 127.0.0.1:7101");
  health->callback([g, health_flags] {
    g->exit_code = Health(health_flags->first, health_flags->second,
                          absl::Seconds(g->timeout_seconds), g->json,
                          ClientCredentials(g->config()));
  });
}

}  // namespace cnet::cli
