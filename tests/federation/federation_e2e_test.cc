// Two complete nodes (registry + macs-gateway binaries each, separate data
// dirs and ports) federated through the Firebase fake (HTTP on 127.0.0.1):
// A <-> B both ways with delivered receipts, broadcast across nodes, an
// outage during traffic (queue, recovery, exactly once, in order), and a
// gateway killed with SIGKILL while its offline queue is not empty.
#include <arpa/inet.h>
#include <google/protobuf/util/time_util.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "services/macs-gateway/canonical.h"
#include "google/protobuf/util/json_util.h"
#include "tests/fakes/firebase_fake.h"
#include "tests/fakes/github_fake.h"
#include "tests/testing/child_process.h"

namespace {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

constexpr char kAdmin[] = "fed-e2e-admin";
constexpr char kService[] = "fed-e2e-service";
constexpr char kSecret[] = "fed-e2e-shared-secret";
constexpr char kDbSecret[] = "fed-e2e-db-secret";

using cnet::testing::FreePort;
using cnet::testing::Runfile;
using Process = cnet::testing::ChildProcess;

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& credential) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ctx->set_wait_for_ready(true);  // waits for the process to listen
  if (!credential.empty()) cnet::auth::SetBearer(ctx.get(), credential);
  return ctx;
}

// Polls `done` until true or 30 s pass (real processes: real time).
bool WaitFor(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

struct Node {
  std::string name;
  std::string root;
  std::string registry_addr;
  std::string macs_addr;
  std::unique_ptr<Process> registry;
  std::unique_ptr<Process> gateway;
  std::unique_ptr<pb::RegistryService::Stub> reg;
  std::unique_ptr<pb::MacsGateway::Stub> macs;
  std::map<std::string, std::string> tokens;
  std::vector<std::string> env;

  void StartGateway() {
    gateway = std::make_unique<Process>(
        Runfile("services/macs-gateway/macs-gateway"),
        std::vector<std::string>{"--listen", macs_addr, "--data-dir", root + "/data",
                                 "--project-dir", root, "--log-file", root + "/macs.log"},
        env);
  }
};

class FederationE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cnet::fakes::FirebaseFake::Options fo;
    fo.secret = kDbSecret;
    fake_ = std::make_unique<cnet::fakes::FirebaseFake>(fo);
    ASSERT_TRUE(fake_->Start().ok());
    github_ = std::make_unique<cnet::fakes::GitHubFake>();
    ASSERT_TRUE(github_->Start().ok());
    for (Node* n : {&a_, &b_}) {
      n->name = n == &a_ ? "node-a" : "node-b";
      char tmpl[] = "/tmp/fede2eXXXXXX";
      const char* base = getenv("TEST_TMPDIR");
      std::string t = absl::StrCat(base != nullptr ? base : "/tmp", "/fede2eXXXXXX");
      n->root = mkdtemp(t.data());
      (void)tmpl;
      n->registry_addr = absl::StrCat("127.0.0.1:", FreePort());
      n->macs_addr = absl::StrCat("127.0.0.1:", FreePort());
      std::vector<std::string> common = {
          "HOME=" + n->root,
          "PATH=/usr/bin:/bin",
          "CNET_NETWORK__NODE_ID=" + n->name,
          "CNET_SERVICES__METRICS_ENABLED=false",
          "CNET_SERVICES__REGISTRY_ADDR=" + n->registry_addr,
          "CNET_SERVICES__MACS_ADDR=" + n->macs_addr,
          std::string("CNET_SECURITY__ADMIN_TOKEN=") + kAdmin,
          std::string("CNET_SECURITY__SERVICE_CREDENTIAL=") + kService,
          std::string("CNET_SECURITY__SHARED_SECRET=") + kSecret,
      };
      n->registry = std::make_unique<Process>(
          Runfile("services/registry/registry"),
          std::vector<std::string>{"--listen", n->registry_addr, "--data-dir",
                                   n->root + "/registry", "--project-dir", n->root,
                                   "--log-file", n->root + "/registry.log"},
          common);
      n->env = common;
      for (const std::string& e :
           {std::string("CNET_FIREBASE__ENABLED=true"), "CNET_FIREBASE__URL=" + fake_->url(),
            std::string("CNET_FIREBASE__AUTH=") + kDbSecret,
            std::string("CNET_FIREBASE__MAX_RETRIES=0"), std::string("CNET_FIREBASE__TIMEOUT=2s"),
            std::string("CNET_OFFLINE__BACKOFF_BASE=50ms"),
            std::string("CNET_OFFLINE__BACKOFF_MAX=400ms"),
            std::string("CNET_FEDERATION__POLL_INTERVAL=100ms"),
            std::string("CNET_MACS__FSYNC=false")}) {
        n->env.push_back(e);
      }
      if (with_github_) {
        for (const std::string& e :
             {std::string("CNET_GITHUB__ENABLED=true"), "CNET_GITHUB__API_URL=" + github_->url(),
              std::string("CNET_GITHUB__REPO=acme/net"),
              std::string("CNET_GITHUB__TOKEN=gh-test-token"),
              std::string("CNET_GITHUB__FALLBACK_AFTER=1s"),
              std::string("CNET_GITHUB__POLL_INTERVAL=1s")}) {
          n->env.push_back(e);
        }
      }
      n->StartGateway();
      n->reg = pb::RegistryService::NewStub(cnet::MakeChannel(n->registry_addr));
      n->macs = pb::MacsGateway::NewStub(cnet::MakeChannel(n->macs_addr));
    }
    // Agents: a1, a2 on A; b1, b2 on B; each mirrored into the other registry.
    for (Node* n : {&a_, &b_}) {
      Node* other = n == &a_ ? &b_ : &a_;
      pb::SyncRemoteAgentsRequest sync;
      sync.set_origin_node(n->name);
      for (int i = 1; i <= 2; i++) {
        const std::string id = absl::StrCat(n == &a_ ? "a" : "b", i);
        pb::RegisterRequest req;
        req.set_agent_id(id);
        req.set_name(id);
        req.add_capabilities("all");
        pb::RegisterResponse resp;
        grpc::Status st = n->reg->Register(Ctx(kAdmin).get(), req, &resp);
        ASSERT_TRUE(st.ok()) << st.error_message();
        n->tokens[id] = resp.token();
        pb::Agent* a = sync.add_agents();
        *a = resp.agent();
        a->set_node(n->name);
      }
      pb::SyncRemoteAgentsResponse sr;
      grpc::Status st = other->reg->SyncRemoteAgents(Ctx(kService).get(), sync, &sr);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_EQ(sr.upserted(), 2) << sr.DebugString();
    }
  }
  void TearDown() override {
    // Graceful stop of all four processes at once.
    for (Node* n : {&a_, &b_}) {
      n->gateway->Signal(SIGTERM);
      n->registry->Signal(SIGTERM);
    }
    for (Node* n : {&a_, &b_}) {
      n->gateway->Wait();
      n->registry->Wait();
    }
    fake_->Stop();
    github_->Stop();
  }

  grpc::Status Send(Node* n, const std::string& from, const std::string& to,
                    const std::string& id, pb::SendResponse* out = nullptr) {
    pb::SendRequest req;
    pb::Message* m = req.mutable_message();
    m->set_id(id);
    m->set_sender(from);
    m->set_recipient(to);
    m->set_body("body of " + id);
    *m->mutable_created_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(absl::Now()));
    m->set_signature(*cnet::macs::SignMessage(*m, kSecret));
    pb::SendResponse resp;
    grpc::Status st = n->macs->Send(Ctx(n->tokens[from]).get(), req, &resp);
    // A client retries an unavailable gateway (e.g. just restarted) with the
    // same id: at most once by the gateway's dedupe.
    for (int i = 0; i < 50 && st.error_code() == grpc::StatusCode::UNAVAILABLE; i++) {
      absl::SleepFor(absl::Milliseconds(100));
      st = n->macs->Send(Ctx(n->tokens[from]).get(), req, &resp);
    }
    if (out != nullptr) *out = resp;
    return st;
  }
  // Message ids in `agent`'s inbox on `n` (all, by sequence).
  std::vector<std::string> Inbox(Node* n, const std::string& agent) {
    pb::FetchInboxRequest req;
    req.set_filter(pb::INBOX_FILTER_ALL);
    req.set_order(pb::INBOX_ORDER_SEQUENCE);
    req.set_page_size(1000);
    pb::FetchInboxResponse resp;
    std::vector<std::string> ids;
    if (!n->macs->FetchInbox(Ctx(n->tokens[agent]).get(), req, &resp).ok()) return ids;
    for (const auto& e : resp.entries()) ids.push_back(e.message().id());
    return ids;
  }
  pb::DeliveryState StateOf(Node* n, const std::string& sender, const std::string& id,
                            const std::string& recipient) {
    pb::GetMessageStatusRequest req;
    req.set_message_id(id);
    pb::GetMessageStatusResponse resp;
    if (!n->macs->GetMessageStatus(Ctx(n->tokens[sender]).get(), req, &resp).ok()) {
      return pb::DELIVERY_STATE_UNSPECIFIED;
    }
    for (const auto& d : resp.recipients()) {
      if (d.agent_id() == recipient) return d.state();
    }
    return pb::DELIVERY_STATE_UNSPECIFIED;
  }
  pb::FederationStatus Fed(Node* n) {
    pb::GetStatsResponse resp;
    (void)n->macs->GetStats(Ctx(kAdmin).get(), pb::GetStatsRequest(), &resp);
    return resp.federation();
  }

  std::unique_ptr<cnet::fakes::FirebaseFake> fake_;
  std::unique_ptr<cnet::fakes::GitHubFake> github_;
  bool with_github_ = false;
  Node a_, b_;
};

class FederationGitHubE2eTest : public FederationE2eTest {
 protected:
  FederationGitHubE2eTest() { with_github_ = true; }
};

TEST_F(FederationE2eTest, BothWaysBroadcastAndReceipts) {
  const absl::Time start = absl::Now();
  ASSERT_TRUE(Send(&a_, "a1", "b1", "e2e-ab").ok());
  ASSERT_TRUE(Send(&b_, "b2", "a2", "e2e-ba").ok());
  ASSERT_TRUE(Send(&a_, "a1", "broadcast", "e2e-bc").ok());
  ASSERT_TRUE(WaitFor([&] {
    return Inbox(&b_, "b1").size() == 2 && Inbox(&a_, "a2").size() == 2 &&
           Inbox(&b_, "b2").size() == 1;
  }));
  EXPECT_EQ(Inbox(&b_, "b1"), (std::vector<std::string>{"e2e-ab", "e2e-bc"}));
  EXPECT_EQ(Inbox(&b_, "b2"), (std::vector<std::string>{"e2e-bc"}));
  // Different senders: no order between them.
  std::vector<std::string> a2 = Inbox(&a_, "a2");
  EXPECT_EQ(std::set<std::string>(a2.begin(), a2.end()),
            (std::set<std::string>{"e2e-ba", "e2e-bc"}));
  ASSERT_TRUE(WaitFor([&] {
    return StateOf(&a_, "a1", "e2e-ab", "b1") == pb::DELIVERY_STATE_DELIVERED &&
           StateOf(&b_, "b2", "e2e-ba", "a2") == pb::DELIVERY_STATE_DELIVERED &&
           StateOf(&a_, "a1", "e2e-bc", "b2") == pb::DELIVERY_STATE_DELIVERED;
  }));
  EXPECT_EQ(Fed(&a_).state(), pb::FEDERATION_STATE_CONNECTED);
  std::cout << "both ways + broadcast + receipts in " << absl::FormatDuration(absl::Now() - start)
            << std::endl;
}

TEST_F(FederationE2eTest, OutageThenKillDashNineThenRecoveryLosesNothing) {
  // Steady traffic A -> B; the database refuses connections part-way.
  std::vector<std::string> sent;
  int n = 0;
  auto send = [&](Node* node, int count) {
    for (int i = 0; i < count; i++, n++) {
      std::string id = absl::StrCat("o-", n);
      grpc::Status st = Send(node, n % 2 == 0 ? "a1" : "a2", "b1", id);
      ASSERT_TRUE(st.ok()) << st.error_message();
      sent.push_back(id);
    }
  };
  send(&a_, 10);
  ASSERT_TRUE(fake_->SetRefuseConnections(true).ok());
  send(&a_, 30);
  ASSERT_TRUE(WaitFor([&] {
    pb::FederationStatus f = Fed(&a_);
    return f.state() == pb::FEDERATION_STATE_QUEUED && f.offline_queue_depth() > 0;
  }));
  // The gateway dies (SIGKILL) with a non-empty offline queue and restarts.
  const int64_t depth_before = Fed(&a_).offline_queue_depth();
  std::cout << "offline queue depth at kill -9: " << depth_before << std::endl;
  EXPECT_GT(depth_before, 0);
  a_.gateway->Kill(SIGKILL);
  a_.StartGateway();
  send(&a_, 10);
  ASSERT_TRUE(fake_->SetRefuseConnections(false).ok());
  ASSERT_TRUE(WaitFor([&] { return Inbox(&b_, "b1").size() >= sent.size(); }));
  std::vector<std::string> got = Inbox(&b_, "b1");
  std::set<std::string> unique(got.begin(), got.end());
  int64_t lost = 0;
  for (const std::string& id : sent) lost += unique.count(id) == 0 ? 1 : 0;
  std::cout << "outage+kill: sent=" << sent.size() << " delivered=" << got.size()
            << " lost=" << lost << " duplicates=" << got.size() - unique.size() << std::endl;
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(got.size(), unique.size());
  // Per-sender order.
  for (const std::string& sender_parity : {"0", "1"}) {
    std::vector<std::string> want, have;
    for (const std::string& id : sent) {
      if ((std::stoi(id.substr(2)) % 2) == std::stoi(sender_parity)) want.push_back(id);
    }
    for (const std::string& id : got) {
      if ((std::stoi(id.substr(2)) % 2) == std::stoi(sender_parity)) have.push_back(id);
    }
    EXPECT_EQ(have, want);
  }
  ASSERT_TRUE(WaitFor([&] {
    pb::FederationStatus f = Fed(&a_);
    return f.state() == pb::FEDERATION_STATE_CONNECTED && f.offline_queue_depth() == 0;
  }));
}

TEST_F(FederationGitHubE2eTest, LongOutageGoesThroughGitHubThenBackToFirebase) {
  std::vector<std::string> sent;
  auto send = [&](int from, int count) {
    for (int i = from; i < from + count; i++) {
      std::string id = absl::StrCat("gh-", i);
      grpc::Status st = Send(&a_, "a1", "b1", id);
      ASSERT_TRUE(st.ok()) << st.error_message();
      sent.push_back(id);
    }
  };
  ASSERT_TRUE(fake_->SetRefuseConnections(true).ok());
  send(0, 10);
  ASSERT_TRUE(WaitFor([&] { return Fed(&a_).state() == pb::FEDERATION_STATE_FALLBACK; }));
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return Inbox(&b_, "b1").size() >= 10; }));
  std::cout << "GitHub path: 10 messages delivered "
            << absl::FormatDuration(absl::Now() - t0) << " after FALLBACK" << std::endl;
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& i : github_->Issues()) {
      if (i.state != "closed" || i.comments.empty()) return false;
    }
    return !github_->Issues().empty();
  }));
  ASSERT_TRUE(fake_->SetRefuseConnections(false).ok());
  ASSERT_TRUE(WaitFor([&] { return Fed(&a_).state() == pb::FEDERATION_STATE_CONNECTED; }));
  const size_t issues = github_->Issues().size();
  send(10, 10);
  ASSERT_TRUE(WaitFor([&] {
    return Inbox(&b_, "b1").size() >= 20 &&
           StateOf(&a_, "a1", "gh-19", "b1") == pb::DELIVERY_STATE_DELIVERED;
  }));
  EXPECT_EQ(github_->Issues().size(), issues);  // traffic is back on Firebase
  std::vector<std::string> got = Inbox(&b_, "b1");
  std::set<std::string> unique(got.begin(), got.end());
  std::cout << "fallback: sent=" << sent.size() << " delivered=" << got.size()
            << " lost=" << sent.size() - unique.size()
            << " duplicates=" << got.size() - unique.size() << std::endl;
  EXPECT_EQ(got, sent);
  // Receipts of the GitHub-carried messages came back through Firebase.
  ASSERT_TRUE(WaitFor(
      [&] { return StateOf(&a_, "a1", "gh-0", "b1") == pb::DELIVERY_STATE_DELIVERED; }));
}

TEST_F(FederationE2eTest, ForgedRemoteMessagesAreRejectedNotDelivered) {
  // Valid HMAC (the shared secret leaked to node A's operator, say) but
  // claiming to be b2, an agent of B, from node A; and a tampered body.
  auto put = [&](const std::string& key, pb::Message m) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(m, &json);
    fake_->Set(absl::StrCat("messages/node-b/", key),
               nlohmann::json::parse(absl::StrCat(
                   R"({"v":1,"origin":"node-a","dest":"node-b","seq":900001,"prev":0,)",
                   R"("recipients":["b1"],"message":)", json, "}")));
  };
  pb::Message spoof;
  spoof.set_id("forged-1");
  spoof.set_sender("b2");
  spoof.set_recipient("b1");
  spoof.set_body("from b2, honest");
  *spoof.mutable_created_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(absl::Now()));
  spoof.set_signature(*cnet::macs::SignMessage(spoof, kSecret));
  put("node-a-00000000000000900001", spoof);
  pb::Message tampered = spoof;
  tampered.set_id("forged-2");
  tampered.set_sender("a1");
  tampered.set_signature(*cnet::macs::SignMessage(tampered, kSecret));
  tampered.set_body("changed after signing");
  put("node-a-00000000000000900002", tampered);
  ASSERT_TRUE(WaitFor([&] { return fake_->Get("messages/node-b").is_null(); }));
  ASSERT_TRUE(Send(&a_, "a1", "b1", "honest-1").ok());
  ASSERT_TRUE(WaitFor([&] { return Inbox(&b_, "b1").size() >= 1; }));
  EXPECT_EQ(Inbox(&b_, "b1"), std::vector<std::string>{"honest-1"});
  pb::GetStatsResponse stats;
  ASSERT_TRUE(b_.macs->GetStats(Ctx(kAdmin).get(), pb::GetStatsRequest(), &stats).ok());
  EXPECT_GE(stats.totals().rejected(), 2);
}

TEST_F(FederationE2eTest, MissingCredentialIsAStartUpErrorNamingTheKey) {
  std::vector<std::string> env;
  for (const std::string& e : a_.env) {
    if (e.rfind("CNET_FIREBASE__AUTH=", 0) != 0) env.push_back(e);
  }
  const std::string root = a_.root + "/nocred";
  std::string cmd = absl::StrCat("env -i");
  for (const std::string& e : env) cmd += " '" + e + "'";
  cmd += " " + Runfile("services/macs-gateway/macs-gateway") + " --listen 127.0.0.1:0" +
         " --data-dir " + root + " --project-dir " + root + " --log-file " + root +
         "/macs.log 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int status = pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("firebase.auth"), std::string::npos) << out;
}

}  // namespace
