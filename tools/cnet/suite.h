// `cnet up`, `cnet down`, `cnet status`, `cnet health`: starting, stopping
// and checking the five services of one node.
//
// up:    starts each binary detached (own session), stdout/stderr to
//        <log_dir>/<name>.out, JSON log to <log_dir>/<name>.log, pid file in
//        <data_dir>/run/<name>.pid; waits until every grpc.health.v1 check
//        is SERVING. If a child exits first, its last output line is shown and
//        the others are stopped. Refuses to start when any is running.
// down:  SIGTERM to every service, SIGKILL after the deadline; removes pid
//        files.
// status: per service: pid (alive or not), address, health, uptime (since
//        the pid file was written); and the gateway's federation state
//        (MACS GetStats: state, offline queue depth and oldest age).
// health: exit 0 only when the address answers SERVING (container checks).
#ifndef CNET_TOOLS_CNET_SUITE_H_
#define CNET_TOOLS_CNET_SUITE_H_

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "libs/config/loader.h"
#include "tools/cnet/cli.h"

namespace cnet::cli {

struct ServiceInfo {
  std::string name;         // binary and log name, e.g. "macs-gateway"
  std::string address_key;  // config key of its address
  std::string health_name;  // fully qualified gRPC service name
};

// The five services in start order.
const std::vector<ServiceInfo>& Services();

struct SuiteOptions {
  config::Config config;
  std::string bin_dir;      // where the service binaries are; "" = find
  std::string project_dir;  // passed to services as --project-dir
  absl::Duration timeout = absl::Seconds(60);
  bool json = false;
  bool quiet = false;  // print nothing on success (benchmarks)
  // `status`: any valid credential, to read the gateway's federation state.
  std::string credential;
};

int Up(const SuiteOptions& options);
int Down(const SuiteOptions& options);
int Status(const SuiteOptions& options);
// Checks one address (and optionally one service name).
int Health(const std::string& address, const std::string& service,
           absl::Duration timeout, bool json,
           std::shared_ptr<grpc::ChannelCredentials> credentials);

// Asks grpc.health.v1 at `address`; "SERVING", "NOT_SERVING",
// "UNAVAILABLE" (no answer), ...
std::string CheckHealth(const std::string& address, const std::string& service,
                        absl::Duration timeout,
                        std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_SUITE_H_
