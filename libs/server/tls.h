// Transport security from configuration, for every listener and every
// client of the suite.
//
//   security.tls.enabled             serve TLS with tls.cert_file/key_file
//   security.tls.require_client_cert mutual TLS: clients must present a
//                                    certificate signed by tls.ca_file
//   security.allow_insecure          allow plaintext on a non-loopback address
//
// Plaintext is the default only on loopback: binding another address
// without TLS is refused unless allow_insecure is set (then a warning is
// logged). Clients verify servers against tls.ca_file (system roots when
// empty) and present cert_file/key_file when they have them.
#ifndef CNET_LIBS_SERVER_TLS_H_
#define CNET_LIBS_SERVER_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "libs/config/loader.h"

namespace cnet {

// Server credentials for a listener on `listen_address`. FAILED_PRECONDITION
// naming the file when a PEM file cannot be read, or naming the address
// when plaintext would be exposed off loopback without allow_insecure.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromConfig(
    const config::Config& config, const std::string& listen_address);

// Credentials for calling another service of the suite.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromConfig(
    const config::Config& config);

// A channel to the service at config key `address_key` (e.g.
// "services.registry_addr"), with TLS when configured. A broken TLS client
// configuration is logged and the channel then fails every call visibly.
std::shared_ptr<grpc::Channel> MakeSuiteChannel(const config::Config& config,
                                                const std::string& address_key);

// True for 127.0.0.0/8, ::1, localhost and unix: addresses.
bool IsLoopback(const std::string& address);

}  // namespace cnet

#endif  // CNET_LIBS_SERVER_TLS_H_
