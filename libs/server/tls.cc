#include "libs/server/tls.h"

#include <glog/logging.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/server/server.h"

namespace cnet {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& key, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat(key, ": cannot read \"", path, "\""));
  }
  std::stringstream s;
  s << in.rdbuf();
  if (s.str().find("-----BEGIN ") == std::string::npos) {
    return absl::FailedPreconditionError(
        absl::StrCat(key, ": \"", path, "\" is not a PEM file"));
  }
  return s.str();
}

std::string Host(const std::string& address) {
  if (absl::StartsWith(address, "unix:")) return "unix";
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace

bool IsLoopback(const std::string& address) {
  std::string host = Host(address);
  return host == "unix" || host == "localhost" || host == "::1" ||
         absl::StartsWith(host, "127.");
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromConfig(
    const config::Config& config, const std::string& listen_address) {
  if (!config.GetBool("security.tls.enabled")) {
    if (!IsLoopback(listen_address)) {
      if (!config.GetBool("security.allow_insecure")) {
        return absl::FailedPreconditionError(absl::StrCat(
            "refusing plaintext gRPC on non-loopback address ", listen_address,
            ": enable security.tls or set security.allow_insecure"));
      }
      LOG(WARNING) << "serving PLAINTEXT gRPC on " << listen_address
                   << " (security.allow_insecure is set)";
    }
    return grpc::InsecureServerCredentials();
  }
  auto cert = ReadPem("security.tls.cert_file", config.GetString("security.tls.cert_file"));
  if (!cert.ok()) return cert.status();
  auto key = ReadPem("security.tls.key_file", config.GetString("security.tls.key_file"));
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(
      config.GetBool("security.tls.require_client_cert")
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (config.GetBool("security.tls.require_client_cert")) {
    auto ca = ReadPem("security.tls.ca_file", config.GetString("security.tls.ca_file"));
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromConfig(
    const config::Config& config) {
  if (!config.GetBool("security.tls.enabled")) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  if (!config.GetString("security.tls.ca_file").empty()) {
    auto ca = ReadPem("security.tls.ca_file", config.GetString("security.tls.ca_file"));
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  if (!config.GetString("security.tls.cert_file").empty() &&
      !config.GetString("security.tls.key_file").empty()) {
    auto cert = ReadPem("security.tls.cert_file", config.GetString("security.tls.cert_file"));
    if (!cert.ok()) return cert.status();
    auto key = ReadPem("security.tls.key_file", config.GetString("security.tls.key_file"));
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> MakeSuiteChannel(const config::Config& config,
                                                const std::string& address_key) {
  auto creds = ChannelCredentialsFromConfig(config);
  if (!creds.ok()) {
    LOG(ERROR) << "client TLS for " << address_key << ": " << creds.status().message();
    // Fail closed: TLS credentials with no trust roots never connect.
    grpc::SslCredentialsOptions none;
    none.pem_root_certs = "invalid";
    return MakeChannel(config.GetString(address_key), grpc::SslCredentials(none));
  }
  return MakeChannel(config.GetString(address_key), *creds);
}

}  // namespace cnet
