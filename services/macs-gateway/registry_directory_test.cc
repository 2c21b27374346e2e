// The registry link against a registry speaking the real proto (the fake in
// tests/fakes), over a real channel.
#include "services/macs-gateway/registry_directory.h"

#include "gtest/gtest.h"
#include "libs/server/server.h"
#include "tests/fakes/fake_registry.h"

namespace cnet::macs {
namespace {
namespace pb = claudenet::v1;

pb::Agent MakeAgent(const std::string& id, std::vector<std::string> caps,
                    pb::Health health = pb::HEALTH_HEALTHY) {
  pb::Agent a;
  a.set_id(id);
  for (const auto& c : caps) a.add_capabilities(c);
  a.set_health(health);
  return a;
}

class RegistryDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.Put(MakeAgent("alice", {"python"}), "tok-alice");
    registry_.Put(MakeAgent("bob", {}), "tok-bob");
    registry_.Put(MakeAgent("ghost", {"python"}, pb::HEALTH_DEAD), "");
    ServerOptions so;
    so.services = {&registry_};
    auto server = GrpcServer::Start(std::move(so));
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
    channel_ = MakeChannel(server_->address());
  }
  void TearDown() override {
    registry_.Shutdown();
    server_->Shutdown(absl::Seconds(2));
  }

  fakes::FakeRegistry registry_{"svc-cred"};
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(RegistryDirectoryTest, AnswersDirectlyBeforeTheMirrorIsInSync) {
  RegistryAgentDirectory dir(channel_, "svc-cred");
  auto alice = dir.Get("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_TRUE(alice->has_value());
  EXPECT_EQ((*alice)->capabilities, std::vector<std::string>{"python"});
  auto nobody = dir.Get("nobody");
  ASSERT_TRUE(nobody.ok());
  EXPECT_FALSE(nobody->has_value());
  auto live = dir.ListLive("python");
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);  // ghost is DEAD
  EXPECT_EQ((*live)[0].id, "alice");
  EXPECT_EQ(dir.Suggest("alcie", 3), std::vector<std::string>{"alice"});
}

TEST_F(RegistryDirectoryTest, MirrorFollowsWatchEvents) {
  RegistryAgentDirectory dir(channel_, "svc-cred");
  absl::Mutex mu;
  std::vector<std::string> changes;
  dir.OnChange([&](const std::string& id, pb::AgentEventType) {
    absl::MutexLock lock(&mu);
    changes.push_back(id);
  });
  dir.Start();
  ASSERT_TRUE(dir.WaitSynced(absl::Seconds(10)));
  EXPECT_EQ(dir.ListLive("")->size(), 2u);
  registry_.Put(MakeAgent("carol", {"python"}), "tok-carol");
  registry_.Remove("bob");
  {
    absl::MutexLock lock(&mu);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return changes.size() >= 2; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(10)));
  }
  EXPECT_TRUE(dir.synced());
  EXPECT_TRUE(dir.Get("carol")->has_value());
  EXPECT_FALSE(dir.Get("bob")->has_value());
  EXPECT_EQ(dir.ListLive("python")->size(), 2u);
  // A dropped stream is re-established with a fresh snapshot.
  registry_.DropWatchers();
  ASSERT_TRUE(dir.WaitSynced(absl::Seconds(10)));
  dir.Stop();
}

TEST_F(RegistryDirectoryTest, UnreachableRegistryIsUnavailableNotUnknown) {
  RegistryAgentDirectory dir(MakeChannel("127.0.0.1:1"), "svc-cred", absl::Milliseconds(300));
  auto a = dir.Get("alice");
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(dir.ListLive("").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(RegistryDirectoryTest, TokensAreValidatedOnceAndInvalidatedByEvents) {
  RegistryTokenAuthenticator tokens(channel_, "svc-cred", RealClock::Default());
  auto p = tokens.Authenticate("tok-alice");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, auth::Kind::kAgent);
  EXPECT_EQ(p->id, "alice");
  ASSERT_TRUE(tokens.Authenticate("tok-alice").ok());
  EXPECT_EQ(registry_.validate_calls(), 1);
  EXPECT_EQ(tokens.Authenticate("tok-nobody").status().code(),
            absl::StatusCode::kUnauthenticated);
  registry_.Remove("alice");
  tokens.Invalidate("alice");
  EXPECT_EQ(tokens.Authenticate("tok-alice").status().code(),
            absl::StatusCode::kUnauthenticated);
  RegistryTokenAuthenticator down(MakeChannel("127.0.0.1:1"), "svc-cred", RealClock::Default(),
                                  absl::Milliseconds(300));
  EXPECT_EQ(down.Authenticate("tok-bob").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cnet::macs
