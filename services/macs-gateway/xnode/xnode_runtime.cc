#include "services/macs-gateway/xnode/xnode_runtime.h"

#include <glog/logging.h>

#include "libs/server/tls.h"
#include "services/macs-gateway/xnode/firebase_kv_store.h"
#include "services/macs-gateway/xnode/memory_kv_store.h"

namespace cnet::federation {

std::unique_ptr<XnodeRuntime> XnodeRuntime::Create(
    const config::Config& cfg, const std::string& node, firebase::FirebaseClient* firebase,
    std::shared_ptr<registry_client::RegistryClient> registry,
    const std::string& service_credential, const std::string& signing_secret) {
  std::unique_ptr<XnodeRuntime> rt(new XnodeRuntime());
  RemoteTasksOptions ro;
  ro.node = node;
  ro.op_timeout = cfg.GetDuration("federation.remote_task_timeout");
  ro.secret = signing_secret;
  if (firebase == nullptr) {
    rt->kv_ = std::make_unique<MemoryKvStore>();  // empty: no remote tasks
  } else {
    firebase::StreamOptions so;
    so.firebase = firebase->options();
    so.max_backoff = cfg.GetDuration("firebase.stream_reconnect_max");
    rt->kv_ = std::make_unique<FirebaseKvStore>(firebase, so);
    PresenceOptions po;
    po.node = node;
    po.update_interval = cfg.GetDuration("network.presence_update_interval");
    po.secret = signing_secret;
    rt->presence_ = std::make_unique<PresenceMirror>(po, rt->kv_.get(), registry);
    TaskMirrorOptions mo;
    mo.node = node;
    mo.tasks_channel = MakeSuiteChannel(cfg, "services.tasks_addr");
    mo.service_credential = service_credential;
    mo.secret = signing_secret;
    rt->mirror_ = std::make_unique<TaskMirror>(mo, rt->kv_.get(), registry);
  }
  rt->remote_ = std::make_unique<RemoteTasks>(ro, rt->kv_.get());
  rt->service_ = std::make_unique<RemoteTaskServiceImpl>(rt->remote_.get());
  return rt;
}

XnodeRuntime::~XnodeRuntime() { Stop(); }

void XnodeRuntime::Start() {
  if (presence_) presence_->Start();
  if (mirror_) mirror_->Start();
  remote_->Start();
  LOG(INFO) << "xnode: agents and tasks across nodes "
            << (enabled() ? "running over Firebase" : "disabled (firebase.enabled is false)");
}

void XnodeRuntime::Stop() {
  if (presence_) presence_->Stop();
  if (mirror_) mirror_->Stop();
  if (remote_) remote_->Stop();
}

}  // namespace cnet::federation
