// The macs-gateway binary. Its rpcs are filled in by the macs-gateway issue; until
// then the server answers UNIMPLEMENTED for each of them while serving
// health and reflection like every binary of the suite.
#include "libs/server/bootstrap.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"

int main(int argc, char** argv) {
  cnet::BlockShutdownSignals();
  cnet::Boot boot = cnet::BootOrExit(argc, argv, "macs-gateway", "services.macs_addr");
  claudenet::v1::MacsGateway::Service unimplemented;
  cnet::ServerOptions options;
  options.services = {&unimplemented};
  options.health_names = {"claudenet.v1.MacsGateway"};
  return cnet::ServeUntilSignal(boot, std::move(options));
}
