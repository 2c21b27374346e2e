// PresenceMirror against a scripted registry (gRPC on 127.0.0.1:0) and the
// in-memory database: what happens when pushing a remote agent into the
// local registry fails. The stream delivers each change once, so a failed
// SyncRemoteAgents must be retried by the mirror itself; before, the agent
// only arrived with the publisher's next periodic pass (15 s by default).
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/registry_client/registry_client.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "services/macs-gateway/xnode/documents.h"
#include "services/macs-gateway/xnode/json_tree.h"
#include "services/macs-gateway/xnode/memory_kv_store.h"
#include "services/macs-gateway/xnode/presence.h"

namespace cnet::federation {
namespace {
namespace pb = ::claudenet::v1;

// Lists no local agent, never streams (Watch fails: the watch retries by
// itself), and fails the first `failures` SyncRemoteAgents calls with
// UNAVAILABLE (what a registry channel still connecting answers); records
// the calls that succeed.
class ScriptedRegistry final : public pb::RegistryService::Service {
 public:
  explicit ScriptedRegistry(int failures) : failures_(failures) {}

  grpc::Status ListAgents(grpc::ServerContext*, const pb::ListAgentsRequest*,
                          pb::ListAgentsResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status Watch(grpc::ServerContext*, const pb::WatchAgentsRequest*,
                     grpc::ServerWriter<pb::AgentEvent>*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not scripted");
  }
  grpc::Status SyncRemoteAgents(grpc::ServerContext*, const pb::SyncRemoteAgentsRequest* req,
                                pb::SyncRemoteAgentsResponse* resp) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (failures_ > 0) {
      --failures_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "scripted: registry not reachable");
    }
    accepted_.push_back(*req);
    resp->set_upserted(req->agents_size());
    resp->set_removed(req->removed_agent_ids_size());
    return grpc::Status::OK;
  }

  void FailNext() {
    absl::MutexLock lock(&mu_);
    ++failures_;
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // Waits (up to `timeout`) for `n` calls in all.
  bool WaitCalls(int n, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  // Waits (up to `timeout`) for an accepted call that upserts `id`
  // (removes it when `removed`) and returns it.
  bool WaitAccepted(const std::string& id, bool removed, absl::Duration timeout,
                    pb::SyncRemoteAgentsRequest* out) const {
    absl::MutexLock lock(&mu_);
    const pb::SyncRemoteAgentsRequest* found = nullptr;
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& r : accepted_) {
        if (removed) {
          for (const auto& x : r.removed_agent_ids()) {
            if (x == id) found = &r;
          }
        } else {
          for (const auto& a : r.agents()) {
            if (a.id() == id) found = &r;
          }
        }
      }
      return found != nullptr;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&seen), timeout)) return false;
    if (out != nullptr) *out = *found;
    return true;
  }

 private:
  mutable absl::Mutex mu_;
  int failures_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<pb::SyncRemoteAgentsRequest> accepted_ ABSL_GUARDED_BY(mu_);
};

class PresenceRetryTest : public ::testing::Test {
 protected:
  void StartWith(int failures) {
    registry_ = std::make_unique<ScriptedRegistry>(failures);
    ServerOptions o;
    o.name = "scripted-registry";
    o.listen_address = "127.0.0.1:0";
    o.services = {registry_.get()};
    auto server = GrpcServer::Start(std::move(o));
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(*server);
    registry_client::ClientOptions co;
    co.address = server_->address();
    co.credential = "svc";
    co.deadline = absl::Seconds(10);
    client_ = std::make_shared<registry_client::RegistryClient>(co);
    PresenceOptions po;
    po.node = "node-a";
    po.update_interval = absl::Hours(1);  // the periodic pass never runs here
    po.sync_retry_delay = absl::Milliseconds(200);
    po.clock = &clock_;
    mirror_ = std::make_unique<PresenceMirror>(po, &kv_, client_);
    mirror_->Start();
  }
  void TearDown() override {
    if (mirror_) mirror_->Stop();
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  // A document of node-b's agent `id`, as node-b publishes it.
  std::string RemoteDoc(const std::string& id) {
    pb::Agent a;
    a.set_id(id);
    a.set_name(id);
    a.set_node("node-b");
    a.add_capabilities("rust");
    return ToJson(AgentDocument(a, clock_.Now()));
  }

  // Advances the mirror's clock in retry-sized steps until the registry
  // accepted a call for `id` (an event), within a real-time bound; no
  // fixed sleep. The simulated time stays far below update_interval.
  bool AdvanceUntilAccepted(const std::string& id, bool removed) {
    for (int i = 0; i < 100; ++i) {
      if (registry_->WaitAccepted(id, removed, absl::Milliseconds(50), nullptr)) return true;
      clock_.Advance(absl::Milliseconds(200));
    }
    return registry_->WaitAccepted(id, removed, absl::Milliseconds(50), nullptr);
  }

  SimulatedClock clock_;
  MemoryKvStore kv_;
  std::unique_ptr<ScriptedRegistry> registry_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<registry_client::RegistryClient> client_;
  std::unique_ptr<PresenceMirror> mirror_;
};

TEST_F(PresenceRetryTest, RemoteAgentWhoseSyncFailedIsRetriedWithoutAnotherChange) {
  StartWith(/*failures=*/1);
  ASSERT_TRUE(kv_.Put("agents/b1", RemoteDoc("b1")).ok());
  ASSERT_TRUE(registry_->WaitCalls(1, absl::Seconds(10)));  // the failed one
  ASSERT_TRUE(AdvanceUntilAccepted("b1", /*removed=*/false))
      << "b1 was never synced after its first SyncRemoteAgents failed";
  pb::SyncRemoteAgentsRequest req;
  ASSERT_TRUE(registry_->WaitAccepted("b1", false, absl::ZeroDuration(), &req));
  EXPECT_EQ(req.origin_node(), "node-b");
  EXPECT_GE(mirror_->stats().sync_errors, 1);  // recorded before the retry was scheduled
}

TEST_F(PresenceRetryTest, RemovalWhoseSyncFailedIsRetried) {
  StartWith(/*failures=*/0);
  ASSERT_TRUE(kv_.Put("agents/b1", RemoteDoc("b1")).ok());
  ASSERT_TRUE(registry_->WaitAccepted("b1", false, absl::Seconds(10), nullptr));
  const int before = registry_->calls();
  registry_->FailNext();  // the removal's call fails once
  ASSERT_TRUE(kv_.Put("agents/b1", "null").ok());
  ASSERT_TRUE(registry_->WaitCalls(before + 1, absl::Seconds(10)));
  ASSERT_TRUE(AdvanceUntilAccepted("b1", /*removed=*/true))
      << "b1's removal was never synced after it failed once";
}

}  // namespace
}  // namespace cnet::federation
