#include "tools/cnet/cli.h"

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/logging/logging.h"
#include "libs/server/server.h"
#include "libs/server/tls.h"

namespace cnet::cli {

config::LoadOptions Globals::load_options() const {
  config::LoadOptions load = config::LoadOptions::FromProcess();
  if (!project_dir.empty()) load.project_dir = project_dir;
  if (!data_dir.empty()) load.env[config::GenericEnvName("services.data_dir")] = data_dir;
  for (const auto& [key, value] : overrides) {
    if (!value.empty()) load.env[config::GenericEnvName(key)] = value;
  }
  return load;
}

const config::Config& Globals::config() {
  if (!config_) {
    absl::StatusOr<config::Config> loaded = config::Load(load_options());
    if (!loaded.ok()) {
      std::cerr << "cnet: invalid configuration: " << loaded.status().message() << "\n";
      std::exit(kExitUsage);
    }
    config_ = *std::move(loaded);
  }
  return *config_;
}

std::unique_ptr<grpc::ClientContext> Globals::Context(const std::string& credential) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  if (!credential.empty()) ctx->AddMetadata("authorization", "Bearer " + credential);
  return ctx;
}

std::shared_ptr<grpc::Channel> Globals::Channel(const std::string& address) {
  auto creds = ChannelCredentialsFromConfig(config());
  if (!creds.ok()) {
    std::cerr << "cnet: " << creds.status().message() << "\n";
    std::exit(kExitUsage);
  }
  return MakeChannel(address, *creds);
}

std::string Globals::AdminCredential() {
  if (!token.empty()) return token;
  if (const char* env = std::getenv("CNET_ADMIN_TOKEN"); env && *env) return env;
  std::string configured = config().GetString("security.admin_token");
  if (!configured.empty()) return configured;
  std::ifstream in(config().GetString("services.data_dir") + "/admin.token");
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return kExitUsage;
    case grpc::StatusCode::NOT_FOUND: return kExitNotFound;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED: return kExitConflict;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED: return kExitDenied;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return kExitUnavailable;
    default: return kExitInternal;
  }
}

int ReportError(const Globals& g, const std::string& what, const grpc::Status& status) {
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    message = absl::StrCat("service unavailable (is the suite running? `cnet up`): ", message);
  }
  if (g.json) {
    std::cout << "{\"error\":{\"code\":" << static_cast<int>(status.error_code())
              << ",\"what\":\"" << JsonEscape(what) << "\",\"message\":\""
              << JsonEscape(message) << "\"}}\n";
  } else {
    std::cerr << "cnet: " << what << ": " << message << "\n";
  }
  return ExitCodeFor(status.error_code());
}

}  // namespace cnet::cli
