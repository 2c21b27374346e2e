// The registry link against the real registry (its core and adapter in
// process, on port 0), through //libs/registry_client.
#include "services/macs-gateway/registry_directory.h"

#include "gtest/gtest.h"
#include "libs/registry_client/registry_authenticator.h"
#include "libs/server/server.h"
#include "services/registry/registry_service.h"

namespace cnet::macs {
namespace {
namespace pb = claudenet::v1;

class RegistryDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/regdirXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    registry::RegistryOptions options;
    options.local_node = "node-a";
    auto store = registry::RegistryStore::Open(dir_ + "/registry.db");
    ASSERT_TRUE(store.ok());
    auto core = registry::Registry::Open(options, std::move(*store), &clock_);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    impl_ = std::make_unique<registry::RegistryServiceImpl>(core_.get());
    ServerOptions so;
    so.services = {impl_.get()};
    so.interceptors.push_back(auth::MakeAuthInterceptorFactory(
        std::make_shared<auth::StaticAuthenticator>(
            "admin-cred", "svc-cred",
            std::make_shared<registry::RegistryTokenAuthenticator>(core_.get()))));
    auto server = GrpcServer::Start(std::move(so));
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_->Shutdown(absl::Milliseconds(200));
    core_->Shutdown();
  }

  std::shared_ptr<registry_client::RegistryClient> Client(const std::string& address = "") {
    registry_client::ClientOptions o;
    o.address = address.empty() ? server_->address() : address;
    o.credential = "svc-cred";
    o.deadline = absl::Milliseconds(500);
    o.reconnect_min = absl::Milliseconds(10);
    o.reconnect_max = absl::Milliseconds(100);
    return std::make_shared<registry_client::RegistryClient>(o);
  }

  registry::Registry::Registration Register(const std::string& id, std::vector<std::string> caps) {
    pb::RegisterRequest r;
    r.set_agent_id(id);
    r.set_name(id);
    for (auto& c : caps) r.add_capabilities(c);
    auto result = core_->Register(registry::Actor(), r);
    EXPECT_TRUE(result.ok()) << result.status();
    return *result;
  }

  std::string dir_;
  SimulatedClock clock_;
  std::unique_ptr<registry::Registry> core_;
  std::unique_ptr<registry::RegistryServiceImpl> impl_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(RegistryDirectoryTest, AnswersDirectlyBeforeTheMirrorIsInSync) {
  Register("alice", {"python"});
  Register("bob", {});
  RegistryAgentDirectory dir(Client());
  auto alice = dir.Get("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_TRUE(alice->has_value());
  EXPECT_EQ((*alice)->capabilities, std::vector<std::string>{"python"});
  EXPECT_EQ((*alice)->node, "node-a");
  auto nobody = dir.Get("nobody");
  ASSERT_TRUE(nobody.ok());
  EXPECT_FALSE(nobody->has_value());
  auto live = dir.ListLive("python");
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].id, "alice");
  EXPECT_EQ(dir.Suggest("alcie", 3), std::vector<std::string>{"alice"});
}

TEST_F(RegistryDirectoryTest, MirrorFollowsTheRegistry) {
  Register("alice", {"python"});
  Register("bob", {});
  RegistryAgentDirectory dir(Client());
  dir.Start();
  ASSERT_TRUE(dir.WaitSynced(absl::Seconds(10)));
  EXPECT_EQ(dir.ListLive("")->size(), 2u);
  Register("carol", {"python"});
  ASSERT_TRUE(core_->Deregister(registry::Actor::Admin(), "bob", "test").ok());
  // The deregistration is the latest event: once it is applied, both are.
  ASSERT_TRUE(dir.watch()->WaitForSequence(core_->current_sequence(), absl::Seconds(10)));
  EXPECT_TRUE(dir.Get("carol")->has_value());
  EXPECT_FALSE(dir.Get("bob")->has_value());
  EXPECT_EQ(dir.ListLive("python")->size(), 2u);
  dir.Stop();
}

TEST_F(RegistryDirectoryTest, UnreachableRegistryIsUnavailableNotUnknown) {
  RegistryAgentDirectory dir(Client("127.0.0.1:1"));
  EXPECT_EQ(dir.Get("alice").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(dir.ListLive("").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(RegistryDirectoryTest, AgentTokensAuthenticateThroughTheRegistry) {
  auto reg = Register("alice", {});
  registry_client::RegistryAuthenticator tokens(Client());
  auto p = tokens.Authenticate(reg.token);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, auth::Kind::kAgent);
  EXPECT_EQ(p->id, "alice");
  EXPECT_EQ(tokens.Authenticate("not-a-token").status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace cnet::macs
