#include "libs/macs_client/macs_client.h"

#include <map>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "services/macs-gateway/canonical.h"
#include "services/macs-gateway/directory.h"
#include "services/macs-gateway/gateway.h"
#include "services/macs-gateway/macs_service.h"

namespace cnet::macs_client {
namespace {
namespace pb = claudenet::v1;

// A gateway that fails the first Sends in a scripted way.
class FlakyGateway final : public pb::MacsGateway::Service {
 public:
  grpc::Status Send(grpc::ServerContext* ctx, const pb::SendRequest* req,
                    pb::SendResponse* resp) override {
    absl::MutexLock lock(&mu_);
    requests.push_back(*req);
    switch (requests.size()) {
      case 1:
      case 2:
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "try again");
      case 3:
        ctx->AddTrailingMetadata("claudenet-retry-after-ms", "700");
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "rate limited");
      default:
        resp->set_message_id(req->message().id());
        return grpc::Status::OK;
    }
  }
  absl::Mutex mu_;
  std::vector<pb::SendRequest> requests;
};

TEST(MacsClientTest, RetriesWithBackoffJitterAndTheServerHintKeepingTheSameMessage) {
  FlakyGateway flaky;
  ServerOptions so;
  so.services = {&flaky};
  auto server = GrpcServer::Start(std::move(so));
  ASSERT_TRUE(server.ok());
  std::vector<absl::Duration> sleeps;
  ClientOptions o;
  o.agent_id = "alice";
  o.token = "tok-alice";
  o.signing_key = "k";
  o.initial_backoff = absl::Milliseconds(40);
  o.sleep = [&](absl::Duration d) { sleeps.push_back(d); };
  o.jitter_seed = 7;
  MacsClient client(MakeChannel((*server)->address()), o);
  auto r = client.SendText("bob", "hi", "there");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(flaky.requests.size(), 4u);
  for (const auto& req : flaky.requests) {
    EXPECT_EQ(req.message().id(), flaky.requests[0].message().id());
    EXPECT_EQ(req.message().signature(), flaky.requests[0].message().signature());
    EXPECT_EQ(req.message().created_at().seconds(),
              flaky.requests[0].message().created_at().seconds());
  }
  const pb::Message& m = flaky.requests[0].message();
  EXPECT_TRUE(absl::StartsWith(m.id(), "msg-"));
  EXPECT_EQ(m.sender(), "alice");
  EXPECT_EQ(m.signature(), *macs::SignMessage(m, "k"));
  ASSERT_EQ(sleeps.size(), 3u);
  EXPECT_GE(sleeps[0], absl::Milliseconds(20));
  EXPECT_LE(sleeps[0], absl::Milliseconds(40));
  EXPECT_GE(sleeps[1], absl::Milliseconds(40));
  EXPECT_LE(sleeps[1], absl::Milliseconds(80));
  EXPECT_GE(sleeps[2], absl::Milliseconds(700));
  (*server)->Shutdown(absl::Seconds(1));
}

// With the agent's Ed25519 seed + key id, every message carries an Ed25519
// signature of the same CNET-MSG-V1 bytes the HMAC covers; without them,
// none; a malformed seed is refused before anything is sent.
TEST(MacsClientTest, SignsWithTheAgentsEd25519KeyWhenGivenOne) {
  const std::string seed(32, '\x41');
  ClientOptions o;
  o.agent_id = "alice";
  o.signing_key = "k";
  o.ed25519_seed = seed;
  o.ed25519_key_id = "0123456789abcdef";
  MacsClient client(MakeChannel("127.0.0.1:1"), o);
  pb::Message m;
  m.set_recipient("bob");
  m.set_body("hello");
  ASSERT_TRUE(client.Prepare(&m).ok());
  EXPECT_EQ(m.signing_key_id(), "0123456789abcdef");
  EXPECT_EQ(m.signature(), *macs::SignMessage(m, "k"));
  EXPECT_TRUE(macs::VerifyEd25519Hex(macs::Ed25519PublicKey(seed), *macs::CanonicalBytes(m),
                                     m.ed25519_signature()));
  pb::Message tampered = m;
  tampered.set_body("hello!");
  EXPECT_FALSE(macs::VerifyEd25519Hex(macs::Ed25519PublicKey(seed),
                                      *macs::CanonicalBytes(tampered), m.ed25519_signature()));

  ClientOptions plain = o;
  plain.ed25519_seed.clear();
  MacsClient unsigned_client(MakeChannel("127.0.0.1:1"), plain);
  pb::Message n;
  n.set_recipient("bob");
  ASSERT_TRUE(unsigned_client.Prepare(&n).ok());
  EXPECT_TRUE(n.ed25519_signature().empty());
  EXPECT_TRUE(n.signing_key_id().empty());

  ClientOptions bad = o;
  bad.ed25519_seed = "short";
  MacsClient bad_client(MakeChannel("127.0.0.1:1"), bad);
  pb::Message b;
  b.set_recipient("bob");
  absl::Status st = bad_client.Prepare(&b);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(st.message(), "ed25519_seed")) << st;
}

TEST(MacsClientTest, BackoffGrowsToTheCapAndNeverRetriesBadInput) {
  ClientOptions o;
  o.initial_backoff = absl::Milliseconds(100);
  o.max_backoff = absl::Seconds(1);
  o.sleep = [](absl::Duration) { FAIL() << "no retry expected"; };
  MacsClient client(MakeChannel("127.0.0.1:1"), o);
  for (int i = 1; i < 12; ++i) {
    absl::Duration d = client.Backoff(i, absl::ZeroDuration());
    EXPECT_LE(d, absl::Seconds(1));
    EXPECT_GE(d, std::min(absl::Milliseconds(50) * (1 << (i - 1)), absl::Milliseconds(500)));
  }
  EXPECT_FALSE(MacsClient::Retryable(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_FALSE(MacsClient::Retryable(grpc::StatusCode::ALREADY_EXISTS));
  EXPECT_TRUE(MacsClient::Retryable(grpc::StatusCode::UNAVAILABLE));
}

class Tokens final : public auth::Authenticator {
 public:
  absl::StatusOr<auth::Principal> Authenticate(std::string_view c) override {
    return auth::Principal{auth::Kind::kAgent, std::string(c.substr(4)), ""};
  }
};

TEST(MacsClientTest, SendSubscribeAckAgainstTheGateway) {
  std::string tmpl = std::string(::testing::TempDir()) + "/mcXXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  macs::InMemoryAgentDirectory directory;
  directory.Put(macs::AgentInfo{"alice"});
  directory.Put(macs::AgentInfo{"bob"});
  macs::GatewayOptions go;
  go.db_path = dir + "/macs.db";
  go.shared_secret = "net-secret";
  auto gateway = macs::Gateway::Create(go, RealClock::Default(), &directory);
  ASSERT_TRUE(gateway.ok());
  macs::MacsServiceImpl impl(gateway->get(), RealClock::Default());
  ServerOptions so;
  so.services = {&impl};
  so.interceptors.push_back(auth::MakeAuthInterceptorFactory(
      std::make_shared<auth::StaticAuthenticator>("a", "s", std::make_shared<Tokens>())));
  auto server = GrpcServer::Start(std::move(so));
  ASSERT_TRUE(server.ok());
  auto channel = MakeChannel((*server)->address());

  ClientOptions alice_o;
  alice_o.agent_id = "alice";
  alice_o.token = "tok-alice";
  alice_o.signing_key = "net-secret";
  MacsClient alice(channel, alice_o);
  ClientOptions bob_o = alice_o;
  bob_o.agent_id = "bob";
  bob_o.token = "tok-bob";
  MacsClient bob(channel, bob_o);

  auto sent = alice.SendText("bob", "build", "green");
  ASSERT_TRUE(sent.ok()) << sent.status();
  auto sub = bob.Subscribe();
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ((*sub)->ready().pending_count(), 1);
  pb::InboxEntry e;
  ASSERT_TRUE((*sub)->Next(&e));
  EXPECT_EQ(e.message().body(), "green");
  auto ack = bob.Ack({e.inbox_sequence()});
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->results(0).outcome(), pb::ITEM_OUTCOME_OK);
  auto status = alice.GetMessageStatus(sent->message_id());
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->recipients(0).state(), pb::DELIVERY_STATE_ACKED);
  // A bad signature is not retried: it is final.
  ClientOptions wrong = alice_o;
  wrong.signing_key = "wrong";
  wrong.sleep = [](absl::Duration) { ADD_FAILURE() << "retried a final error"; };
  EXPECT_EQ(MacsClient(channel, wrong).SendText("bob", "x", "y").status().code(),
            absl::StatusCode::kUnauthenticated);
  (*sub)->Cancel();
  impl.Shutdown();
  (*gateway)->Shutdown();
  (*server)->Shutdown(absl::Seconds(2));
}

}  // namespace
}  // namespace cnet::macs_client
