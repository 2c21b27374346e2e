// Server bootstrap shared by the five binaries: one gRPC listener with the
// standard grpc.health.v1 service and server reflection (so grpcurl works),
// the chosen port reported (port 0 allowed), and graceful shutdown on
// SIGINT/SIGTERM: health flips to NOT_SERVING, new calls are refused and
// in-flight calls get a drain deadline before being cancelled.
#ifndef CNET_LIBS_SERVER_SERVER_H_
#define CNET_LIBS_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cnet {

struct ServerOptions {
  // Binary name for logs, e.g. "registry".
  std::string name;
  // host:port; port 0 picks a free port (see GrpcServer::port()).
  std::string listen_address = "127.0.0.1:0";
  // Services to register; not owned, must outlive the server.
  std::vector<grpc::Service*> services;
  // Fully qualified names ("claudenet.v1.ConfigService") reported SERVING
  // by the health service, in addition to the overall "" entry.
  std::vector<std::string> health_names;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  // Largest accepted request, bytes: a bigger one is RESOURCE_EXHAUSTED
  // before any handler (or allocation for it) runs.
  int max_receive_message_bytes = 4 * 1024 * 1024;
  // Concurrent calls one client connection may have open (HTTP/2
  // SETTINGS_MAX_CONCURRENT_STREAMS): a peer past it waits for a slot
  // instead of making the server hold unbounded call state. Per-agent
  // stream limits (Subscribe, Watch) sit on top of this.
  int max_concurrent_streams_per_connection = 1000;
  // Credentials; plaintext when null.
  std::shared_ptr<grpc::ServerCredentials> credentials;
};

class GrpcServer {
 public:
  // Builds, binds and starts the server, then marks it SERVING.
  // FAILED_PRECONDITION naming the address when it cannot bind.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(ServerOptions options);
  ~GrpcServer();

  int port() const { return port_; }
  // host:port actually bound (port resolved when 0 was asked).
  const std::string& address() const { return address_; }
  grpc::Server* grpc_server() { return server_.get(); }

  // NOT_SERVING on health, then stop accepting and wait up to `drain` for
  // in-flight calls (streams are cancelled at the deadline). Idempotent.
  void Shutdown(absl::Duration drain);

 private:
  GrpcServer() = default;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::string> health_names_;
  std::string address_;
  int port_ = 0;
  bool shut_down_ = false;
};

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread
// it creates afterwards. Call first thing in main(), before any thread.
void BlockShutdownSignals();

// Waits for SIGINT, SIGTERM or SIGHUP (blocked earlier) and returns it.
int WaitForSignal();

// Channel to a server of the suite with keep-alive settings suited to long
// streams; plaintext unless credentials are given.
std::shared_ptr<grpc::Channel> MakeChannel(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

}  // namespace cnet

#endif  // CNET_LIBS_SERVER_SERVER_H_
