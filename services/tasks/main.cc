// The tasks binary. Its rpcs are filled in by the tasks issue; until
// then the server answers UNIMPLEMENTED for each of them while serving
// health and reflection like every binary of the suite.
#include "libs/server/bootstrap.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"

int main(int argc, char** argv) {
  cnet::BlockShutdownSignals();
  cnet::Boot boot = cnet::BootOrExit(argc, argv, "tasks", "services.tasks_addr");
  claudenet::v1::TaskService::Service unimplemented;
  cnet::ServerOptions options;
  options.services = {&unimplemented};
  options.health_names = {"claudenet.v1.TaskService"};
  return cnet::ServeUntilSignal(boot, std::move(options));
}
