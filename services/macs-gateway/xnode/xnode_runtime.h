// Agents and tasks across nodes inside the macs-gateway binary, built from
// the configuration: with Firebase configured (the shared FirebaseClient of
// the message federation, federation/runtime.h), the presence mirror, the
// task mirror + remote op executor and the remote task cache run over it;
// without it, RemoteTaskService still answers (no remote tasks: lists are
// empty, operations NOT_FOUND).
//
// main.cc:
//   auto xnode = cnet::federation::XnodeRuntime::Create(cfg, node,
//       fed_runtime->firebase(), registry, *service, signing_secret);
//   server.services.push_back(xnode->service());
//   xnode->Start();  ...  hooks.on_shutdown: xnode->Stop();
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_XNODE_RUNTIME_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_XNODE_RUNTIME_H_

#include <memory>
#include <string>

#include "libs/config/loader.h"
#include "libs/firebase/firebase_client.h"
#include "libs/registry_client/registry_client.h"
#include "services/macs-gateway/xnode/kv_store.h"
#include "services/macs-gateway/xnode/presence.h"
#include "services/macs-gateway/xnode/remote_tasks.h"
#include "services/macs-gateway/xnode/task_mirror.h"

namespace cnet::federation {

class XnodeRuntime {
 public:
  // `firebase` may be null (federation through Firebase disabled).
  static std::unique_ptr<XnodeRuntime> Create(
      const config::Config& cfg, const std::string& node, firebase::FirebaseClient* firebase,
      std::shared_ptr<registry_client::RegistryClient> registry,
      const std::string& service_credential, const std::string& signing_secret);
  ~XnodeRuntime();

  void Start();
  void Stop();  // idempotent
  grpc::Service* service() { return service_.get(); }
  bool enabled() const { return presence_ != nullptr; }

 private:
  XnodeRuntime() = default;
  std::unique_ptr<KvStore> kv_;
  std::unique_ptr<PresenceMirror> presence_;
  std::unique_ptr<TaskMirror> mirror_;
  std::unique_ptr<RemoteTasks> remote_;
  std::unique_ptr<RemoteTaskServiceImpl> service_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_XNODE_RUNTIME_H_
