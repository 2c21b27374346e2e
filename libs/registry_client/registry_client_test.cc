// The client library against a real registry server on port 0 (the
// registry's own adapter and core, in process).
#include "libs/registry_client/registry_client.h"

#include <stdlib.h>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/registry_client/registry_authenticator.h"
#include "libs/server/server.h"
#include "services/registry/registry_service.h"

namespace cnet::registry_client {
namespace {
namespace pb = claudenet::v1;
using registry::Actor;

constexpr char kAdmin[] = "admin-cred";
constexpr char kService[] = "svc-cred";

// Collects Watch events; waits for a count with a deadline.
class Events {
 public:
  void Add(const pb::AgentEvent& ev) {
    absl::MutexLock lock(&mu_);
    events_.push_back(ev);
  }
  // Waits until at least `n` events arrived (30 s at most).
  std::vector<pb::AgentEvent> WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<pb::AgentEvent> events_ ABSL_GUARDED_BY(mu_);
};

class RegistryClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/regclientXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    options_.local_node = "node-a";
    OpenCore();
    StartServer("127.0.0.1:0");
  }

  void TearDown() override {
    clients_.clear();
    StopServer();
    if (core_) core_->Shutdown();
  }

  void OpenCore() {
    auto store = registry::RegistryStore::Open(dir_ + "/registry.db");
    ASSERT_TRUE(store.ok());
    auto core = registry::Registry::Open(options_, std::move(*store), &core_clock_);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }

  void StartServer(const std::string& address) {
    impl_ = std::make_unique<registry::RegistryServiceImpl>(core_.get());
    ServerOptions o;
    o.name = "registry";
    o.listen_address = address;
    o.services = {impl_.get()};
    o.interceptors.push_back(
        auth::MakeAuthInterceptorFactory(std::make_shared<auth::StaticAuthenticator>(
            kAdmin, kService,
            std::make_shared<registry::RegistryTokenAuthenticator>(core_.get()))));
    auto server = GrpcServer::Start(std::move(o));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    address_ = server_->address();
  }

  // Ends Watch streams (as a real shutdown does) and stops listening.
  void StopServer() {
    if (!server_) return;
    server_->Shutdown(absl::Milliseconds(100));
    server_.reset();
    impl_.reset();
  }

  std::shared_ptr<RegistryClient> Client(const std::string& credential = kService,
                                         const std::string& address = "") {
    ClientOptions o;
    o.address = address.empty() ? address_ : address;
    o.credential = credential;
    o.deadline = absl::Seconds(2);
    o.reconnect_min = absl::Milliseconds(10);
    o.reconnect_max = absl::Milliseconds(100);
    auto client = std::make_shared<RegistryClient>(o);
    clients_.push_back(client);
    return client;
  }

  registry::Registry::Registration Register(const std::string& name,
                                            std::vector<std::string> caps = {}) {
    pb::RegisterRequest r;
    r.set_name(name);
    for (auto& c : caps) r.add_capabilities(c);
    auto result = core_->Register(Actor(), r);
    EXPECT_TRUE(result.ok()) << result.status();
    return *result;
  }

  std::string dir_;
  SimulatedClock core_clock_;
  registry::RegistryOptions options_;
  std::unique_ptr<registry::Registry> core_;
  std::unique_ptr<registry::RegistryServiceImpl> impl_;
  std::unique_ptr<GrpcServer> server_;
  std::string address_;
  std::vector<std::shared_ptr<RegistryClient>> clients_;
};

TEST_F(RegistryClientTest, TypedDiscoveryCalls) {
  auto a = Register("alpha", {"python", "review"});
  auto b = Register("beta", {"python"});
  for (int i = 0; i < 230; ++i) Register(absl::StrCat("filler-", i), {"go"});
  auto client = Client();

  absl::StatusOr<pb::Agent> got = client->GetAgent(a.agent.id());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name(), "alpha");
  EXPECT_EQ(client->GetAgent("nobody").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client->GetAgent("bad id").status().code(), absl::StatusCode::kInvalidArgument);

  auto found = client->FindAgents({"python", "review"});
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->agents_size(), 1);
  EXPECT_EQ(found->agents(0).id(), a.agent.id());
  EXPECT_EQ(client->FindAgents({"python"}, 1)->agents_size(), 1);

  pb::ListAgentsRequest list;
  list.add_capabilities_all("go");
  list.set_page_size(100);
  auto page = client->ListAgents(list);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->agents_size(), 100);
  EXPECT_EQ(page->total_size(), 230);
  list.set_page_size(0);
  auto all = client->ListAllAgents(list);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 230u);

  auto v = client->ValidateToken(b.token);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->valid());
  EXPECT_EQ(v->principal().id(), b.agent.id());
}

TEST_F(RegistryClientTest, CallsFailWithUnavailableWhenTheRegistryIsDown) {
  std::string address = address_;
  StopServer();
  auto client = Client(kService, address);
  absl::Time start = absl::Now();
  auto got = client->GetAgent("anyone");
  EXPECT_TRUE(got.status().code() == absl::StatusCode::kUnavailable ||
              got.status().code() == absl::StatusCode::kDeadlineExceeded)
      << got.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));  // bounded by the deadline
}

TEST_F(RegistryClientTest, WatchDeliversInOrderAndResumesAfterTheRegistryRestarts) {
  auto client = Client();
  Events events;
  pb::WatchAgentsRequest request;
  request.set_send_snapshot(true);
  auto watch = client->Watch(request, [&events](const pb::AgentEvent& ev) { events.Add(ev); });
  ASSERT_EQ(events.WaitFor(1).size(), 1u);  // SNAPSHOT_END of an empty registry
  auto a = Register("alpha");
  auto seen = events.WaitFor(2);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].type(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END);
  EXPECT_EQ(seen[1].type(), pb::AGENT_EVENT_TYPE_REGISTERED);
  EXPECT_EQ(seen[1].sequence(), 1);

  // The registry's listener goes away; an event happens meanwhile.
  std::string address = address_;
  StopServer();
  auto b = Register("beta");
  StartServer(address);  // same port
  seen = events.WaitFor(3);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].type(), pb::AGENT_EVENT_TYPE_REGISTERED);
  EXPECT_EQ(seen[2].agent().id(), b.agent.id());
  EXPECT_EQ(seen[2].sequence(), 2);
  EXPECT_GE(watch->connections(), 2);
  // No snapshot again: it resumed after sequence 1.
  auto c = Register("gamma");
  seen = events.WaitFor(4);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[3].sequence(), 3);
  EXPECT_TRUE(watch->WaitForSequence(3, absl::Seconds(30)));
  watch->Stop();
}

TEST_F(RegistryClientTest, LiveWatchResumesEvenBeforeItsFirstEvent) {
  Register("before");  // sequence 1, not delivered to a live watch
  auto client = Client();
  Events events;
  auto watch = client->Watch(pb::WatchAgentsRequest(),
                             [&events](const pb::AgentEvent& ev) { events.Add(ev); });
  std::string address = address_;
  // Wait until the subscription knows the current sequence.
  ASSERT_TRUE(watch->WaitForSequence(1, absl::Seconds(30)));
  StopServer();
  auto b = Register("while-down");
  StartServer(address);
  auto seen = events.WaitFor(1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].agent().id(), b.agent.id());
}

TEST_F(RegistryClientTest, WatchResynchronizesWithASnapshotWhenItFellBehind) {
  StopServer();
  core_->Shutdown();
  core_.reset();
  options_.event_retention = 2;
  OpenCore();
  StartServer("127.0.0.1:0");
  auto first = Register("first");
  auto client = Client();
  Events events;
  pb::WatchAgentsRequest request;
  request.set_from_sequence(1);
  auto watch = client->Watch(request, [&events](const pb::AgentEvent& ev) { events.Add(ev); });
  std::string address = address_;
  auto second = Register("second");
  ASSERT_EQ(events.WaitFor(1).size(), 1u);  // sequence 2
  StopServer();
  for (int i = 0; i < 5; ++i) Register(absl::StrCat("missed-", i));  // beyond retention
  StartServer(address);
  // RESYNC_REQUIRED, then a snapshot of all 7 agents and its end.
  auto seen = events.WaitFor(1 + 1 + 7 + 1);
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen[1].type(), pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED);
  for (int i = 2; i < 9; ++i) EXPECT_EQ(seen[i].type(), pb::AGENT_EVENT_TYPE_SNAPSHOT) << i;
  EXPECT_EQ(seen[9].type(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END);
  EXPECT_EQ(seen[9].sequence(), 7);
  EXPECT_TRUE(watch->WaitForSequence(7, absl::Seconds(30)));
}

TEST_F(RegistryClientTest, AuthenticatorCachesValidTokensAndTellsBadFromDown) {
  auto a = Register("alpha");
  SimulatedClock cache_clock;
  RegistryAuthenticator::Options o;
  o.clock = &cache_clock;
  o.watch_invalidations = false;
  RegistryAuthenticator auth(Client(), o);

  auto p = auth.Authenticate(a.token);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, auth::Kind::kAgent);
  EXPECT_EQ(p->id, a.agent.id());
  EXPECT_TRUE(auth.Authenticate(a.token).ok());
  EXPECT_EQ(auth.validations(), 1);  // the second answer came from the cache

  auto bad = auth.Authenticate("cnt_no-such-token");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authenticate(std::string(600, 'x')).status().code(),
            absl::StatusCode::kUnauthenticated);

  // Registry down: cached answers still hold, new tokens are UNAVAILABLE
  // (not UNAUTHENTICATED: the caller did nothing wrong).
  auto b = Register("beta");
  StopServer();
  EXPECT_TRUE(auth.Authenticate(a.token).ok());
  auto down = auth.Authenticate(b.token);
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();

  // Expired answers are asked again.
  cache_clock.Advance(absl::Seconds(31));
  EXPECT_EQ(auth.Authenticate(a.token).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(RegistryClientTest, AuthenticatorWithAWrongServiceCredentialIsAnInternalError) {
  auto a = Register("alpha");
  RegistryAuthenticator::Options o;
  o.watch_invalidations = false;
  RegistryAuthenticator with_agent_token(Client(a.token), o);
  EXPECT_EQ(with_agent_token.Authenticate(a.token).status().code(), absl::StatusCode::kInternal);
}

TEST_F(RegistryClientTest, AuthenticatorDropsRotatedAndDeregisteredTokensAtOnce) {
  auto a = Register("alpha");
  auto b = Register("beta");
  auto client = Client();
  RegistryAuthenticator auth(client);
  ASSERT_TRUE(auth.Authenticate(a.token).ok());
  ASSERT_TRUE(auth.Authenticate(b.token).ok());
  ASSERT_EQ(auth.cached(), 2u);
  // The watch is live once it knows where "now" is.
  ASSERT_TRUE(auth.watch()->WaitForSequence(core_->current_sequence(), absl::Seconds(30)));

  ASSERT_TRUE(core_->RotateToken(Actor::Agent(a.agent.id()), "").ok());
  ASSERT_TRUE(core_->Deregister(Actor::Agent(b.agent.id()), "", "bye").ok());
  // Wait until the authenticator's watch handled both events.
  ASSERT_TRUE(auth.watch()->WaitForSequence(core_->current_sequence(), absl::Seconds(30)));
  EXPECT_EQ(auth.cached(), 0u);
  auto rotated = auth.Authenticate(a.token);
  EXPECT_EQ(rotated.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(rotated.status().message()).find("rotated"), std::string::npos);
  auto removed = auth.Authenticate(b.token);
  EXPECT_EQ(removed.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(removed.status().message()).find("deregistered"), std::string::npos);
}

TEST_F(RegistryClientTest, AuthenticatorServesTheSharedInterceptor) {
  // A second "service" protected by the interceptor with this authenticator:
  // here simply another registry adapter over the same core.
  auto a = Register("alpha");
  auto tokens = std::make_shared<RegistryAuthenticator>(Client());
  registry::RegistryServiceImpl other(core_.get());
  ServerOptions o;
  o.name = "other";
  o.services = {&other};
  o.interceptors.push_back(auth::MakeAuthInterceptorFactory(
      std::make_shared<auth::StaticAuthenticator>(kAdmin, kService, tokens)));
  auto server = GrpcServer::Start(std::move(o));
  ASSERT_TRUE(server.ok());
  auto as_agent = Client(a.token, (*server)->address());
  EXPECT_TRUE(as_agent->GetAgent(a.agent.id()).ok());
  auto stranger = Client("cnt_forged", (*server)->address());
  EXPECT_EQ(stranger->GetAgent(a.agent.id()).status().code(),
            absl::StatusCode::kUnauthenticated);
  (*server)->Shutdown(absl::Milliseconds(100));
}

}  // namespace
}  // namespace cnet::registry_client
