// What every cnet command group shares: global flags, the loaded
// configuration, credentials, call deadlines, error printing and the
// documented exit codes.
//
// Each group lives in its own unit and registers itself with
// Add<Group>Commands(app, globals); a command's callback stores its exit
// code in globals->exit_code.
#ifndef CNET_TOOLS_CNET_CLI_H_
#define CNET_TOOLS_CNET_CLI_H_

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "libs/config/loader.h"

namespace cnet::cli {

// Documented exit codes of cnet (README, `cnet --help`).
enum ExitCode {
  kExitOk = 0,
  kExitUsage = 1,        // bad flags or arguments, invalid input
  kExitNotFound = 2,     // the named agent/task/key/... does not exist
  kExitConflict = 3,     // already exists / failed precondition / conflict
  kExitDenied = 4,       // unauthenticated or permission denied
  kExitUnavailable = 5,  // service down, deadline exceeded, rate limited
  kExitInternal = 6,     // anything else
};

struct Globals {
  bool json = false;
  double timeout_seconds = 10;
  std::string project_dir;
  std::string data_dir;
  std::string token;  // --token, else CNET_TOKEN
  std::string agent;  // --agent, else CNET_AGENT: the acting saved identity
  // --registry-addr etc.: config key -> value, applied over every layer.
  std::map<std::string, std::string> overrides;
  int exit_code = kExitOk;

  // Loads the configuration layers once (exits with kExitUsage and a
  // one-line reason when they are invalid).
  const config::Config& config();
  config::LoadOptions load_options() const;

  // A client context with the call deadline, and the bearer credential
  // when one is given.
  std::unique_ptr<grpc::ClientContext> Context(const std::string& credential = "") const;

  // A channel to a service of the suite, with TLS when configured.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);

  // The admin credential: --token / CNET_ADMIN_TOKEN / security.admin_token
  // / <data_dir>/admin.token (readable only by the owner).
  std::string AdminCredential();

 private:
  std::optional<config::Config> config_;
};

int ExitCodeFor(grpc::StatusCode code);

// Prints "cnet: <what>: <message>" on stderr (or a JSON error object on
// stdout with --json) and returns the exit code for the status.
int ReportError(const Globals& g, const std::string& what, const grpc::Status& status);

void AddSuiteCommands(CLI::App* app, Globals* g);
void AddConfigCommands(CLI::App* app, Globals* g);
void AddCallCommands(CLI::App* app, Globals* g);
void AddSkillCommands(CLI::App* app, Globals* g);

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_CLI_H_
