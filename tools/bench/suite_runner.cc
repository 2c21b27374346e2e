#include "tools/bench/suite_runner.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tools/cnet/suite.h"
#include "tests/testing/child_process.h"

namespace cnet::bench {
namespace {

using cnet::testing::FreePort;

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return std::string(absl::StripAsciiWhitespace(s));
}

}  // namespace

SuiteRunner::~SuiteRunner() { Stop(); }

absl::Status SuiteRunner::Start(absl::Duration* startup,
                                const std::map<std::string, std::string>& extra_env) {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/cnet-bench-XXXXXX";
  root_ = mkdtemp(tmpl.data());
  data_dir_ = root_ + "/data";
  config::LoadOptions load;
  load.home_dir = root_;
  load.env["CNET_SERVICES__DATA_DIR"] = data_dir_;
  load.env["CNET_SERVICES__LOG_DIR"] = root_ + "/logs";
  for (const auto& s : cli::Services()) {
    load.env[config::GenericEnvName(s.address_key)] = absl::StrCat("127.0.0.1:", FreePort());
    std::string metrics_key = s.address_key.substr(0, s.address_key.rfind("_addr")) + "_metrics_port";
    load.env[config::GenericEnvName(metrics_key)] = std::to_string(FreePort());
  }
  for (const auto& [k, v] : extra_env) load.env[k] = v;
  absl::StatusOr<config::Config> c = config::Load(load);
  if (!c.ok()) return c.status();
  config_ = *c;
  // Children inherit the addresses and directories through the environment.
  for (const auto& [k, v] : load.env) setenv(k.c_str(), v.c_str(), 1);
  cli::SuiteOptions options{*config_, "", root_, absl::Seconds(60), /*json=*/false};
  options.quiet = true;
  absl::Time t0 = absl::Now();
  int rc = cli::Up(options);
  *startup = absl::Now() - t0;
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("starting the suite failed (exit ", rc,
                                               "); logs in ", root_, "/logs"));
  }
  running_ = true;
  return absl::OkStatus();
}

void SuiteRunner::Stop() {
  if (!running_) return;
  cli::SuiteOptions options{*config_, "", root_, absl::Seconds(60), false};
  options.quiet = true;
  cli::Down(options);
  running_ = false;
  std::error_code ec;
  if (std::getenv("CNET_BENCH_KEEP") == nullptr) std::filesystem::remove_all(root_, ec);
}

std::string SuiteRunner::address(const std::string& name) const {
  for (const auto& s : cli::Services()) {
    if (s.name == name) return config_->GetString(s.address_key);
  }
  return "";
}

int SuiteRunner::pid(const std::string& name) const {
  std::ifstream in(data_dir_ + "/run/" + name + ".pid");
  int pid = 0;
  in >> pid;
  return pid;
}

std::string SuiteRunner::admin_token() const { return ReadTrimmed(data_dir_ + "/admin.token"); }

std::string SuiteRunner::service_credential() const {
  return ReadTrimmed(data_dir_ + "/service.token");
}

}  // namespace cnet::bench
