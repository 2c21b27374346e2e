// Two complete nodes in one process for the agents/tasks federation tests
// and bench: per node a registry (core + gRPC server), a tasks service
// (board + gRPC server, its registry directory), and the gateway-side
// components of services/macs-gateway/xnode (presence mirror, task mirror +
// op executor, remote task cache + RemoteTaskService on its own server),
// all on 127.0.0.1 port 0, sharing one KvStore (the "database").
#ifndef CNET_TESTS_FEDERATION_XNODE_TWO_NODE_HARNESS_H_
#define CNET_TESTS_FEDERATION_XNODE_TWO_NODE_HARNESS_H_

#include <stdlib.h>

#include <memory>
#include <string>

#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/registry_client/registry_authenticator.h"
#include "libs/registry_client/registry_client.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/remote_tasks.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "services/macs-gateway/xnode/kv_store.h"
#include "services/macs-gateway/xnode/presence.h"
#include "services/macs-gateway/xnode/remote_tasks.h"
#include "services/macs-gateway/xnode/task_mirror.h"
#include "services/registry/registry.h"
#include "services/registry/registry_service.h"
#include "services/registry/store.h"
#include "services/tasks/board.h"
#include "services/tasks/in_memory.h"
#include "services/tasks/registry_directory.h"
#include "services/tasks/store.h"
#include "services/tasks/tasks_service.h"

namespace cnet::xnode_test {

inline constexpr char kAdmin[] = "admin-cred";
inline constexpr char kService[] = "svc-cred";
// The network's shared secret: federation documents are signed with it.
inline constexpr char kNetSecret[] = "net-secret";

class TestNode {
 public:
  // `dir` must exist. The board runs on `tasks_clock` (a SimulatedClock in
  // the lease tests); everything else on the real clock.
  TestNode(std::string name, std::string dir, federation::KvStore* kv, Clock* tasks_clock,
           Clock* registry_clock = RealClock::Default(), bool push_assignment = false)
      : name_(std::move(name)), dir_(std::move(dir)), kv_(kv), tasks_clock_(tasks_clock),
        registry_clock_(registry_clock), push_(push_assignment) {}
  ~TestNode() { Stop(); }

  absl::Status Start() {
    // --- registry
    registry::RegistryOptions ro;
    ro.local_node = name_;
    auto rstore = registry::RegistryStore::Open(dir_ + "/registry.db");
    if (!rstore.ok()) return rstore.status();
    auto core = registry::Registry::Open(ro, std::move(*rstore), registry_clock_);
    if (!core.ok()) return core.status();
    registry_ = std::move(*core);
    registry_impl_ = std::make_unique<registry::RegistryServiceImpl>(registry_.get());
    {
      ServerOptions o;
      o.name = "registry-" + name_;
      o.listen_address = "127.0.0.1:0";
      o.services = {registry_impl_.get()};
      o.interceptors.push_back(
          auth::MakeAuthInterceptorFactory(std::make_shared<auth::StaticAuthenticator>(
              kAdmin, kService,
              std::make_shared<registry::RegistryTokenAuthenticator>(registry_.get()))));
      auto s = GrpcServer::Start(std::move(o));
      if (!s.ok()) return s.status();
      registry_server_ = std::move(*s);
    }
    registry_client_ = Client(registry_server_->address(), kService);
    auto registry_channel = MakeChannel(registry_server_->address());
    registry_stub_ = claudenet::v1::RegistryService::NewStub(registry_channel);

    // --- tasks
    tasks::Store::Options so;
    so.path = dir_ + "/tasks.db";
    auto tstore = tasks::Store::Open(so);
    if (!tstore.ok()) return tstore.status();
    tasks_store_ = std::move(*tstore);
    directory_ = std::make_unique<tasks::RegistryDirectory>(registry_client_);
    tasks::BoardOptions bo;
    bo.node = name_;
    bo.push_assignment = push_;
    bo.background = false;
    bo.sweep_interval = absl::ZeroDuration();
    auto board = tasks::Board::Open(bo, tasks_store_.get(), tasks_clock_, directory_.get(),
                                    &notifier_);
    if (!board.ok()) return board.status();
    board_ = std::move(*board);
    directory_->Start();
    tasks_impl_ = std::make_unique<tasks::TaskServiceImpl>(board_.get());
    {
      ServerOptions o;
      o.name = "tasks-" + name_;
      o.listen_address = "127.0.0.1:0";
      o.services = {tasks_impl_.get()};
      o.interceptors.push_back(
          auth::MakeAuthInterceptorFactory(std::make_shared<auth::StaticAuthenticator>(
              kAdmin, kService,
              std::make_shared<registry_client::RegistryAuthenticator>(registry_client_))));
      auto s = GrpcServer::Start(std::move(o));
      if (!s.ok()) return s.status();
      tasks_server_ = std::move(*s);
    }
    auto tasks_channel = MakeChannel(tasks_server_->address());
    tasks_stub_ = claudenet::v1::TaskService::NewStub(tasks_channel);

    // --- gateway-side components
    federation::PresenceOptions po;
    po.node = name_;
    po.secret = kNetSecret;
    presence_ = std::make_unique<federation::PresenceMirror>(po, kv_, registry_client_);
    federation::TaskMirrorOptions mo;
    mo.node = name_;
    mo.tasks_channel = MakeChannel(tasks_server_->address());
    mo.service_credential = kService;
    mo.secret = kNetSecret;
    mirror_ = std::make_unique<federation::TaskMirror>(mo, kv_, registry_client_);
    federation::RemoteTasksOptions rto;
    rto.node = name_;
    rto.op_timeout = absl::Seconds(20);
    rto.secret = kNetSecret;
    remote_ = std::make_unique<federation::RemoteTasks>(rto, kv_);
    remote_impl_ = std::make_unique<federation::RemoteTaskServiceImpl>(remote_.get());
    {
      ServerOptions o;
      o.name = "gateway-" + name_;
      o.listen_address = "127.0.0.1:0";
      o.services = {remote_impl_.get()};
      o.interceptors.push_back(
          auth::MakeAuthInterceptorFactory(std::make_shared<auth::StaticAuthenticator>(
              kAdmin, kService,
              std::make_shared<registry_client::RegistryAuthenticator>(registry_client_))));
      auto s = GrpcServer::Start(std::move(o));
      if (!s.ok()) return s.status();
      gateway_server_ = std::move(*s);
    }
    auto gateway_channel = MakeChannel(gateway_server_->address());
    remote_stub_ = claudenet::v1::RemoteTaskService::NewStub(gateway_channel);
    // Connect the test's channels now (a loaded machine may take seconds to
    // finish an HTTP/2 handshake; calls made later then never see it).
    for (const auto& ch : {registry_channel, tasks_channel, gateway_channel}) {
      if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
        return absl::UnavailableError("test channel did not connect");
      }
    }
    presence_->Start();
    mirror_->Start();
    remote_->Start();
    return absl::OkStatus();
  }

  void Stop() {
    if (presence_) presence_->Stop();
    if (mirror_) mirror_->Stop();
    if (remote_) remote_->Stop();
    if (gateway_server_) gateway_server_->Shutdown(absl::Seconds(1));
    if (directory_) directory_->Stop();
    if (board_) board_->Shutdown();
    if (tasks_server_) tasks_server_->Shutdown(absl::Seconds(1));
    if (registry_) registry_->Shutdown();
    if (registry_server_) registry_server_->Shutdown(absl::Seconds(1));
    presence_.reset();
    mirror_.reset();
    remote_.reset();
    gateway_server_.reset();
    directory_.reset();
  }

  // Registers an AI agent; returns its token.
  absl::StatusOr<std::string> Register(const std::string& id,
                                       const std::vector<std::string>& caps) {
    claudenet::v1::RegisterRequest req;
    req.set_agent_id(id);
    req.set_name(id);
    for (const auto& c : caps) req.add_capabilities(c);
    claudenet::v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auth::SetBearer(&ctx, kAdmin);
    grpc::Status st = registry_stub_->Register(&ctx, req, &resp);
    if (!st.ok()) return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                                      st.error_message());
    return resp.token();
  }

  absl::Status Deregister(const std::string& id) {
    claudenet::v1::DeregisterRequest req;
    req.set_agent_id(id);
    claudenet::v1::DeregisterResponse resp;
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auth::SetBearer(&ctx, kAdmin);
    grpc::Status st = registry_stub_->Deregister(&ctx, req, &resp);
    return st.ok() ? absl::OkStatus()
                   : absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                                  st.error_message());
  }

  const std::string& name() const { return name_; }
  registry_client::RegistryClient& registry() { return *registry_client_; }
  tasks::RegistryDirectory& directory() { return *directory_; }
  tasks::Board& board() { return *board_; }
  claudenet::v1::TaskService::Stub& tasks() { return *tasks_stub_; }
  claudenet::v1::RemoteTaskService::Stub& remote_tasks() { return *remote_stub_; }
  federation::PresenceMirror& presence() { return *presence_; }
  federation::TaskMirror& mirror() { return *mirror_; }
  federation::RemoteTasks& remote() { return *remote_; }

  static std::shared_ptr<registry_client::RegistryClient> Client(const std::string& address,
                                                                 const std::string& cred) {
    registry_client::ClientOptions options;
    options.address = address;
    options.credential = cred;
    options.deadline = absl::Seconds(5);
    return std::make_shared<registry_client::RegistryClient>(options);
  }

 private:
  const std::string name_;
  const std::string dir_;
  federation::KvStore* const kv_;
  Clock* const tasks_clock_;
  Clock* const registry_clock_;
  const bool push_;

  std::unique_ptr<registry::Registry> registry_;
  std::unique_ptr<registry::RegistryServiceImpl> registry_impl_;
  std::unique_ptr<GrpcServer> registry_server_;
  std::shared_ptr<registry_client::RegistryClient> registry_client_;
  std::unique_ptr<claudenet::v1::RegistryService::Stub> registry_stub_;

  std::unique_ptr<tasks::Store> tasks_store_;
  std::unique_ptr<tasks::RegistryDirectory> directory_;
  tasks::RecordingNotifier notifier_;
  std::unique_ptr<tasks::Board> board_;
  std::unique_ptr<tasks::TaskServiceImpl> tasks_impl_;
  std::unique_ptr<GrpcServer> tasks_server_;
  std::unique_ptr<claudenet::v1::TaskService::Stub> tasks_stub_;

  std::unique_ptr<federation::PresenceMirror> presence_;
  std::unique_ptr<federation::TaskMirror> mirror_;
  std::unique_ptr<federation::RemoteTasks> remote_;
  std::unique_ptr<federation::RemoteTaskServiceImpl> remote_impl_;
  std::unique_ptr<GrpcServer> gateway_server_;
  std::unique_ptr<claudenet::v1::RemoteTaskService::Stub> remote_stub_;
};

// Wakes waiters whenever the database changes (a stream on the root), so
// tests wait on events; a bounded re-check also covers the asynchronous
// steps that follow a database change (registry sync, board commit).
class ChangeWaiter {
 public:
  explicit ChangeWaiter(federation::KvStore* kv)
      : sub_(kv->Listen("", [this](const federation::KvEvent&) {
          absl::MutexLock lock(&mu_);
          ++changes_;
        })) {}
  template <typename Pred>
  bool Until(Pred pred, absl::Duration timeout = absl::Seconds(30)) {
    absl::Time give_up = absl::Now() + timeout;
    for (;;) {
      int64_t seen;
      {
        absl::MutexLock lock(&mu_);
        seen = changes_;
      }
      if (pred()) return true;
      if (absl::Now() > give_up) return false;
      absl::MutexLock lock(&mu_);
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return changes_ != seen;
      };
      mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(20));
    }
  }

 private:
  absl::Mutex mu_;
  int64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<federation::KvSubscription> sub_;
};

inline std::string TempDir(const std::string& tag) {
  std::string tmpl = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" +
                     tag + "XXXXXX";
  return mkdtemp(tmpl.data());
}

}  // namespace cnet::xnode_test

#endif  // CNET_TESTS_FEDERATION_XNODE_TWO_NODE_HARNESS_H_
