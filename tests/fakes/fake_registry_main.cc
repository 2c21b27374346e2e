// The fake registry as a process, for tests that run the real gateway
// binary (tests/macs/*.py). Agents come from --agents:
//   --agents "alice:tok-alice:python,rust;bob:tok-bob;zed:tok-zed::node-b"
// (id:token:capabilities:node; node empty = local). The service credential
// is --service-credential; the chosen port is written to --port-file.
#include <fstream>
#include <iostream>

#include "absl/strings/str_split.h"
#include "libs/server/bootstrap.h"
#include "libs/server/server.h"
#include "tests/fakes/fake_registry.h"

int main(int argc, char** argv) {
  cnet::BlockShutdownSignals();
  std::string agents, credential, port_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--agents") agents = argv[i + 1];
    if (flag == "--service-credential") credential = argv[i + 1];
    if (flag == "--port-file") port_file = argv[i + 1];
  }
  cnet::fakes::FakeRegistry registry(credential);
  for (absl::string_view spec : absl::StrSplit(agents, ';', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(spec, ':');
    f.resize(4);
    claudenet::v1::Agent a;
    a.set_id(f[0]);
    a.set_health(claudenet::v1::HEALTH_HEALTHY);
    for (absl::string_view c : absl::StrSplit(f[2], ',', absl::SkipEmpty())) {
      a.add_capabilities(std::string(c));
    }
    a.set_node(f[3]);
    a.set_remote(!f[3].empty());
    registry.Put(a, f[1]);
  }
  cnet::ServerOptions options;
  options.name = "fake-registry";
  options.services = {&registry};
  auto server = cnet::GrpcServer::Start(std::move(options));
  if (!server.ok()) {
    std::cerr << server.status().message() << std::endl;
    return 2;
  }
  if (!port_file.empty()) {
    cnet::WriteFileAtomically(port_file, std::to_string((*server)->port())).IgnoreError();
  }
  cnet::WaitForSignal();
  registry.Shutdown();
  (*server)->Shutdown(absl::Seconds(1));
  return 0;
}
