// The production adapters against in-process fakes over real channels: the
// registry directory (Watch mirror, FindAgents, DEAD feed) and the MACS
// notifier (what it sends, which failures it retries).
#include <thread>

#include "gtest/gtest.h"
#include "libs/registry_client/registry_client.h"
#include "libs/server/server.h"
#include "services/tasks/macs_notifier.h"
#include "services/tasks/registry_directory.h"
#include "tests/fakes/registry_fake.h"

namespace cnet::tasks {
namespace {

namespace pb = ::claudenet::v1;

template <typename Pred>
bool WaitFor(Pred pred) {
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (!pred()) {
    if (absl::Now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

class RegistryAdaptersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pb::Agent a;
    a.set_id("worker");
    a.add_capabilities("py");
    a.add_capabilities("go");
    a.set_max_concurrent_tasks(3);
    registry_.PutAgent(a, "tok-worker");
    ServerOptions o;
    o.name = "registry-fake";
    o.services = {&registry_};
    server_ = std::move(*GrpcServer::Start(std::move(o)));
    client_ = Client(server_->address());
  }

  static std::shared_ptr<registry_client::RegistryClient> Client(const std::string& address) {
    registry_client::ClientOptions options;
    options.address = address;
    options.credential = "svc";
    options.deadline = absl::Milliseconds(500);
    return std::make_shared<registry_client::RegistryClient>(options);
  }
  void TearDown() override { server_->Shutdown(absl::Seconds(1)); }

  fakes::RegistryFake registry_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<registry_client::RegistryClient> client_;
};

TEST_F(RegistryAdaptersTest, DirectoryMirrorsAgentsAndReportsDeath) {
  RegistryDirectory dir(client_);
  std::vector<AgentChange> changes;
  absl::Mutex mu;
  dir.SetListener([&](const AgentChange& c) {
    absl::MutexLock lock(&mu);
    changes.push_back(c);
  });
  dir.Start();
  ASSERT_TRUE(WaitFor([&] { return dir.synced(); }));
  auto a = dir.GetAgent("worker");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->capabilities, (std::vector<std::string>{"go", "py"}));
  EXPECT_EQ(a->max_concurrent_tasks, 3);
  EXPECT_TRUE(absl::IsNotFound(dir.GetAgent("nobody").status()));
  auto found = dir.FindAgents({"py"}, 10);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ(found->at(0).id, "worker");
  EXPECT_TRUE(dir.FindAgents({"rust"}, 10)->empty());

  registry_.SetHealth("worker", pb::HEALTH_DEAD);
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mu);
    return !changes.empty() && changes.back().kind == AgentChange::Kind::kGone;
  }));
  EXPECT_EQ(dir.GetAgent("worker")->health, pb::HEALTH_DEAD);
  dir.Stop();
}

TEST_F(RegistryAdaptersTest, DirectoryIsUnavailableNotWrongWhenTheRegistryIsDown) {
  RegistryDirectory dir(Client("127.0.0.1:9"));
  EXPECT_EQ(dir.FindAgents({"py"}, 10).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(dir.GetAgent("worker").status().code(), absl::StatusCode::kUnavailable);
}

// Records Send calls; answers with a configurable status.
class GatewayFake final : public pb::MacsGateway::Service {
 public:
  grpc::Status Send(grpc::ServerContext*, const pb::SendRequest* req,
                    pb::SendResponse* resp) override {
    absl::MutexLock lock(&mu_);
    sent_.push_back(req->message());
    resp->set_message_id(req->message().id());
    return answer_;
  }
  void Answer(grpc::Status s) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(s);
  }
  std::vector<pb::Message> sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }

 private:
  absl::Mutex mu_;
  grpc::Status answer_ = grpc::Status::OK;
  std::vector<pb::Message> sent_;
};

TEST(MacsNotifierTest, SendsATaskMessageAndRetriesOnlyWhatMaySucceedLater) {
  GatewayFake gateway;
  ServerOptions o;
  o.name = "gateway-fake";
  o.services = {&gateway};
  auto server = std::move(*GrpcServer::Start(std::move(o)));
  MacsNotifier notifier(MakeChannel(server->address()), "svc", "shared-secret");
  Notice n;
  n.id = "ntc-1";
  n.recipient = "worker";
  n.task_id = "task-01abc";
  n.kind = "assigned";
  n.subject = "you got task task-01abc";
  n.body = "details";
  n.urgent = true;
  ASSERT_TRUE(notifier.Send(n).ok());
  auto sent = gateway.sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].id(), "ntc-1");
  EXPECT_EQ(sent[0].sender(), "svc:tasks");
  EXPECT_EQ(sent[0].signature().size(), 64u);  // signed with the shared secret
  EXPECT_EQ(sent[0].recipient(), "worker");
  EXPECT_EQ(sent[0].type(), pb::MESSAGE_TYPE_TASK);
  EXPECT_EQ(sent[0].priority(), pb::PRIORITY_HIGH);
  EXPECT_EQ(sent[0].payload().fields().at("task_id").string_value(), "task-01abc");
  gateway.Answer(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "slow down"));
  EXPECT_FALSE(notifier.Send(n).ok());  // retry later
  gateway.Answer(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown recipient"));
  EXPECT_TRUE(notifier.Send(n).ok());  // never deliverable: dropped
  MacsNotifier down(MakeChannel("127.0.0.1:9"), "svc", "", absl::Milliseconds(300));
  EXPECT_FALSE(down.Send(n).ok());
  server->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace cnet::tasks
