// The gateway core directly (no gRPC): federation seam, Ed25519, services
// as senders, subscriber hand-over rules, counters across restarts, and the
// group-commit writer.
#include "services/macs-gateway/gateway.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/crypto/crypto.h"
#include "services/macs-gateway/canonical.h"

namespace cnet::macs {
namespace {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

constexpr char kSecret[] = "core-secret";

class RecordingSink final : public DeliverySink {
 public:
  void Deliver(pb::SubscribeResponse frame) override { frames.push_back(std::move(frame)); }
  void End(const absl::Status& status) override {
    ended = true;
    end_status = status;
  }
  std::vector<std::string> DeliveredIds() const {
    std::vector<std::string> ids;
    for (const auto& f : frames) {
      if (f.has_delivery()) ids.push_back(f.delivery().message().id());
    }
    return ids;
  }
  std::vector<pb::SubscribeResponse> frames;
  bool ended = false;
  absl::Status end_status;
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/gwXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    for (const char* id : {"alice", "bob", "carol"}) directory_.Put(AgentInfo{id});
    AgentInfo remote{"rita"};
    remote.node = "node-b";
    remote.remote = true;
    directory_.Put(remote);
    options_.db_path = dir_ + "/macs.db";
    options_.node = "node-a";
    options_.shared_secret = kSecret;
    Open();
  }
  void Open() {
    auto g = Gateway::Create(options_, &clock_, &directory_);
    ASSERT_TRUE(g.ok()) << g.status();
    gw_ = std::move(*g);
  }
  void Reopen() {
    gw_.reset();
    Open();
  }

  pb::Message Msg(const std::string& from, const std::string& to, const std::string& id) {
    pb::Message m;
    m.set_id(id);
    m.set_sender(from);
    m.set_recipient(to);
    m.set_body("body of " + id);
    *m.mutable_created_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(clock_.Now()));
    m.set_signature(*SignMessage(m, kSecret));
    return m;
  }
  absl::StatusOr<pb::SendResponse> Send(const Caller& c, const pb::Message& m) {
    pb::SendRequest req;
    *req.mutable_message() = m;
    return gw_->SendAndWait(c, req);
  }

  std::string dir_;
  SimulatedClock clock_{absl::FromUnixSeconds(1'760'000'000)};
  InMemoryAgentDirectory directory_;
  GatewayOptions options_;
  std::unique_ptr<Gateway> gw_;
};

TEST_F(GatewayTest, FederatedMessagesPassTheSameChecks) {
  pb::Message m = Msg("rita", "bob", "fed-1");
  m.set_origin_node("node-b");
  m.set_signature(*SignMessage(m, kSecret));
  auto ok = gw_->AcceptRemote(m, pb::TRANSPORT_FIREBASE, "node-b");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->deliveries(0).agent_id(), "bob");
  // The same message again is a duplicate; tampered, it is refused.
  EXPECT_TRUE(gw_->AcceptRemote(m, pb::TRANSPORT_FIREBASE, "node-b")->duplicate());
  pb::Message tampered = m;
  tampered.set_body("changed");
  EXPECT_EQ(gw_->AcceptRemote(tampered, pb::TRANSPORT_FIREBASE, "node-b").status().code(),
            absl::StatusCode::kUnauthenticated);
  // A sender that is not an agent of that node.
  pb::Message spoof = Msg("alice", "bob", "fed-2");
  spoof.set_origin_node("node-b");
  spoof.set_signature(*SignMessage(spoof, kSecret));
  EXPECT_EQ(gw_->AcceptRemote(spoof, pb::TRANSPORT_FIREBASE, "node-b").status().code(),
            absl::StatusCode::kPermissionDenied);
  // Old but unexpired is fine for federation (the offline queue may hold a
  // message for hours); expired is refused.
  pb::Message old = Msg("rita", "bob", "fed-3");
  *old.mutable_created_at() =
      TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(clock_.Now() - absl::Hours(2)));
  old.set_signature(*SignMessage(old, kSecret));
  EXPECT_TRUE(gw_->AcceptRemote(old, pb::TRANSPORT_GITHUB, "node-b").ok());
  old.set_id("fed-4");
  old.mutable_ttl()->set_seconds(60);
  old.set_signature(*SignMessage(old, kSecret));
  EXPECT_EQ(gw_->AcceptRemote(old, pb::TRANSPORT_GITHUB, "node-b").status().code(),
            absl::StatusCode::kInvalidArgument);
  pb::FetchInboxRequest f;
  auto inbox = gw_->FetchInbox(Caller::Agent("bob"), f);
  ASSERT_EQ(inbox->entries_size(), 2);
  const pb::Provenance& p = inbox->entries(0).message().provenance();
  EXPECT_EQ(p.transport(), pb::TRANSPORT_FIREBASE);
  EXPECT_EQ(p.origin_node(), "node-b");
  ASSERT_EQ(p.relay_path_size(), 2);
  EXPECT_EQ(p.relay_path(1), "node-a");
  pb::GetStatsRequest s;
  EXPECT_EQ(gw_->GetStats(Caller::Admin(), s)->totals().remote_received(), 2);
}

TEST_F(GatewayTest, Ed25519SignaturesAreCheckedAgainstTheRegisteredKey) {
  std::string seed(32, '\x07');
  AgentInfo alice{"alice"};
  alice.public_key = Ed25519PublicKey(seed);
  alice.key_id = crypto::Sha256Hex(alice.public_key).substr(0, 16);
  directory_.Put(alice);
  pb::Message m = Msg("alice", "bob", "ed-1");
  m.set_signing_key_id(alice.key_id);
  m.set_ed25519_signature(SignEd25519Hex(seed, *CanonicalBytes(m)));
  auto r = Send(Caller::Agent("alice"), m);
  ASSERT_TRUE(r.ok()) << r.status();
  pb::Message bad = Msg("alice", "bob", "ed-2");
  bad.set_signing_key_id(alice.key_id);
  bad.set_ed25519_signature(SignEd25519Hex(std::string(32, '\x08'), *CanonicalBytes(bad)));
  EXPECT_EQ(Send(Caller::Agent("alice"), bad).status().code(),
            absl::StatusCode::kUnauthenticated);
  pb::Message unknown_key = Msg("alice", "bob", "ed-3");
  unknown_key.set_signing_key_id("0000000000000000");
  unknown_key.set_ed25519_signature(m.ed25519_signature());
  EXPECT_EQ(Send(Caller::Agent("alice"), unknown_key).status().code(),
            absl::StatusCode::kUnauthenticated);
  pb::FetchInboxRequest f;
  auto inbox = gw_->FetchInbox(Caller::Agent("bob"), f);
  ASSERT_EQ(inbox->entries_size(), 1);
  EXPECT_EQ(inbox->entries(0).message().provenance().ed25519(), pb::SIGNATURE_STATE_VERIFIED);
}

// security.require_agent_signatures: off, an unsigned agent message is
// accepted (ed25519 UNSIGNED); on, it is refused locally and through
// federation (UNAUTHENTICATED, ED25519_INVALID, nothing stored) while a
// validly signed one is accepted and service-credential senders are exempt.
TEST_F(GatewayTest, RequireAgentSignaturesRefusesUnsignedAgentMessages) {
  std::string seed(32, '\x31');
  AgentInfo alice{"alice"};
  alice.public_key = Ed25519PublicKey(seed);
  alice.key_id = crypto::Sha256Hex(alice.public_key).substr(0, 16);
  directory_.Put(alice);
  AgentInfo rita{"rita"};
  rita.node = "node-b";
  rita.remote = true;
  rita.public_key = Ed25519PublicKey(std::string(32, '\x32'));
  rita.key_id = crypto::Sha256Hex(rita.public_key).substr(0, 16);
  directory_.Put(rita);
  auto signed_msg = [&](const std::string& id) {
    pb::Message m = Msg("alice", "bob", id);
    m.set_signing_key_id(alice.key_id);
    m.set_ed25519_signature(SignEd25519Hex(seed, *CanonicalBytes(m)));
    return m;
  };
  pb::FetchInboxRequest f;
  auto inbox_size = [&]() { return gw_->FetchInbox(Caller::Agent("bob"), f)->entries_size(); };

  // Off (the default): unsigned is accepted.
  ASSERT_FALSE(options_.require_agent_signatures);
  ASSERT_TRUE(Send(Caller::Agent("alice"), Msg("alice", "bob", "off-1")).ok());
  ASSERT_TRUE(Send(Caller::Agent("alice"), signed_msg("off-2")).ok());
  ASSERT_EQ(inbox_size(), 2);
  EXPECT_EQ(gw_->FetchInbox(Caller::Agent("bob"), f)->entries(0).message().provenance().ed25519(),
            pb::SIGNATURE_STATE_UNSIGNED);

  options_.require_agent_signatures = true;
  Reopen();
  auto unsigned_local = Send(Caller::Agent("alice"), Msg("alice", "bob", "on-1"));
  EXPECT_EQ(unsigned_local.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(unsigned_local.status().message())
                .find("message.ed25519_signature: required and missing"),
            std::string::npos)
      << unsigned_local.status();
  pb::Message remote = Msg("rita", "bob", "on-fed-1");
  remote.set_origin_node("node-b");
  remote.set_signature(*SignMessage(remote, kSecret));
  auto unsigned_remote = gw_->AcceptRemote(remote, pb::TRANSPORT_FIREBASE, "node-b");
  EXPECT_EQ(unsigned_remote.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(unsigned_remote.status().message()).find("required and missing"),
            std::string::npos)
      << unsigned_remote.status();
  EXPECT_EQ(inbox_size(), 2);  // nothing refused was stored
  pb::GetStatsRequest st;
  auto stats = gw_->GetStats(Caller::Admin(), st);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->totals().remote_received(), 0);

  // Signed: accepted, provenance says VERIFIED. Federated and signed: too.
  auto ok = Send(Caller::Agent("alice"), signed_msg("on-2"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  pb::Message remote_signed = Msg("rita", "bob", "on-fed-2");
  remote_signed.set_origin_node("node-b");
  remote_signed.set_signing_key_id(rita.key_id);
  remote_signed.set_ed25519_signature(
      SignEd25519Hex(std::string(32, '\x32'), *CanonicalBytes(remote_signed)));
  remote_signed.set_signature(*SignMessage(remote_signed, kSecret));
  auto fed_ok = gw_->AcceptRemote(remote_signed, pb::TRANSPORT_FIREBASE, "node-b");
  ASSERT_TRUE(fed_ok.ok()) << fed_ok.status();
  // A service-credential sender is exempt.
  ASSERT_TRUE(Send(Caller::Service(), Msg("svc:tasks", "bob", "on-svc-1")).ok());
  auto inbox = gw_->FetchInbox(Caller::Agent("bob"), f);
  ASSERT_EQ(inbox->entries_size(), 5);
  EXPECT_EQ(inbox->entries(2).message().id(), "on-2");
  EXPECT_EQ(inbox->entries(2).message().provenance().ed25519(), pb::SIGNATURE_STATE_VERIFIED);
  EXPECT_EQ(inbox->entries(3).message().provenance().ed25519(), pb::SIGNATURE_STATE_VERIFIED);
}

TEST_F(GatewayTest, ServicesSendAsSvcOrOnBehalfOfAnAgent) {
  pb::Message n = Msg("svc:tasks", "bob", "task-note-1");
  auto r = Send(Caller::Service(), n);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sender(), "svc:tasks");
  pb::Message anonymous = Msg("", "bob", "task-note-2");
  EXPECT_EQ(Send(Caller::Service(), anonymous).status().code(),
            absl::StatusCode::kInvalidArgument);
  pb::Message behalf = Msg("carol", "bob", "behalf-1");
  EXPECT_EQ(Send(Caller::Service("carol"), behalf)->sender(), "carol");
  pb::FetchInboxRequest f;
  auto inbox = gw_->FetchInbox(Caller::Agent("bob"), f);
  ASSERT_EQ(inbox->entries_size(), 2);
  EXPECT_EQ(inbox->entries(0).message().provenance().sender_kind(), pb::PRINCIPAL_KIND_SERVICE);
}

TEST_F(GatewayTest, AGoneSubscribersCopiesGoToTheNextOneAtOnce) {
  ASSERT_TRUE(Send(Caller::Agent("alice"), Msg("alice", "bob", "h-1")).ok());
  RecordingSink a, b;
  pb::SubscribeRequest req;
  req.set_mode(pb::SUBSCRIBE_MODE_COMPETING);
  auto ida = gw_->Subscribe(Caller::Agent("bob"), req, &a);
  ASSERT_TRUE(ida.ok());
  EXPECT_EQ(a.DeliveredIds(), std::vector<std::string>{"h-1"});
  auto idb = gw_->Subscribe(Caller::Agent("bob"), req, &b);
  ASSERT_TRUE(idb.ok());
  EXPECT_TRUE(b.DeliveredIds().empty());
  gw_->Unsubscribe(*ida);
  ASSERT_EQ(b.DeliveredIds(), std::vector<std::string>{"h-1"});
  EXPECT_EQ(b.frames.back().delivery().attempt(), 2);
  gw_->Unsubscribe(*idb);
}

TEST_F(GatewayTest, SubscriberLimitAndShutdownEndStreamsCleanly) {
  options_.max_subscribers_per_agent = 2;
  Reopen();
  RecordingSink s1, s2, s3;
  pb::SubscribeRequest req;
  ASSERT_TRUE(gw_->Subscribe(Caller::Agent("bob"), req, &s1).ok());
  ASSERT_TRUE(gw_->Subscribe(Caller::Agent("bob"), req, &s2).ok());
  EXPECT_EQ(gw_->Subscribe(Caller::Agent("bob"), req, &s3).status().code(),
            absl::StatusCode::kResourceExhausted);
  req.set_max_in_flight(1001);
  EXPECT_EQ(gw_->Subscribe(Caller::Agent("carol"), req, &s3).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.set_max_in_flight(0);
  req.set_agent_id("nobody");
  EXPECT_EQ(gw_->Subscribe(Caller::Service("nobody"), req, &s3).status().code(),
            absl::StatusCode::kNotFound);
  gw_->Shutdown();
  EXPECT_TRUE(s1.ended && s1.end_status.ok());
  EXPECT_TRUE(s2.ended && s2.end_status.ok());
}

TEST_F(GatewayTest, CountersAndSequencesSurviveRestart) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Send(Caller::Agent("alice"), Msg("alice", "bob", absl::StrCat("c-", i))).ok());
  }
  pb::Message bad = Msg("alice", "bob", "c-bad");
  bad.set_signature(std::string(64, 'f'));
  EXPECT_FALSE(Send(Caller::Agent("alice"), bad).ok());
  Reopen();
  pb::GetStatsRequest s;
  s.set_include_per_agent(true);
  auto stats = gw_->GetStats(Caller::Admin(), s);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->totals().sent(), 3);
  EXPECT_EQ(stats->totals().rejected(), 1);
  EXPECT_EQ(stats->totals().pending(), 3);
  ASSERT_EQ(stats->totals().rejected_by_reason_size(), 1);
  EXPECT_EQ(stats->totals().rejected_by_reason(0).reason(), pb::REJECT_REASON_SIGNATURE_INVALID);
  ASSERT_EQ(stats->per_agent_size(), 2);  // alice (sent), bob (inbox)
  EXPECT_EQ(stats->per_agent(0).agent_id(), "alice");
  EXPECT_EQ(stats->per_agent(0).counters().sent(), 3);
  EXPECT_EQ(stats->per_agent(1).counters().pending(), 3);
  auto r = Send(Caller::Agent("alice"), Msg("alice", "bob", "c-3"));
  EXPECT_EQ(r->deliveries(0).inbox_sequence(), 4);
}

TEST_F(GatewayTest, RetentionPruningKeepsSequencesMonotonic) {
  options_.retention = absl::Hours(1);
  options_.prune_interval = absl::Minutes(10);
  Reopen();
  auto r = Send(Caller::Agent("alice"), Msg("alice", "bob", "old-1"));
  ASSERT_TRUE(r.ok());
  pb::AckRequest ack;
  ack.add_inbox_sequences(1);
  ASSERT_TRUE(gw_->Ack(Caller::Agent("bob"), ack).ok());
  clock_.Advance(absl::Hours(2));
  pb::FetchInboxRequest all;
  all.set_filter(pb::INBOX_FILTER_ALL);
  EXPECT_EQ(gw_->FetchInbox(Caller::Agent("bob"), all)->entries_size(), 0);
  Reopen();
  auto next = Send(Caller::Agent("alice"), Msg("alice", "bob", "new-1"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->deliveries(0).inbox_sequence(), 2);
}

TEST(GroupCommitTest, JobsShareBatchesAndAFailingJobRollsBackOnlyItself) {
  std::string tmpl = std::string(::testing::TempDir()) + "/gcXXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  auto store = MessageStore::Open(dir + "/gc.db");
  ASSERT_TRUE(store.ok());
  sqlite::Database* db = (*store)->db();
  ASSERT_TRUE(db->Exec("CREATE TABLE t(v INTEGER)").ok());
  GroupCommitWriter writer(db, 1000, nullptr);
  absl::Mutex mu;
  int done = 0;
  std::vector<absl::Status> results(200);
  for (int i = 0; i < 200; ++i) {
    writer.Submit(GroupCommitWriter::Job{
        [i](sqlite::Database* db) -> absl::Status {
          absl::Status st = db->Exec(absl::StrCat("INSERT INTO t VALUES(", i, ")"));
          if (!st.ok()) return st;
          if (i % 10 == 0) return absl::InvalidArgumentError("job refuses");
          return absl::OkStatus();
        },
        [&, i](const absl::Status& st) {
          absl::MutexLock lock(&mu);
          results[i] = st;
          done++;
        }});
  }
  absl::Status last = writer.RunAndWait([](sqlite::Database*) { return absl::OkStatus(); });
  ASSERT_TRUE(last.ok());
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(done, 200);
  }
  for (int i = 0; i < 200; ++i) EXPECT_EQ(results[i].ok(), i % 10 != 0) << i;
  int64_t rows = 0;
  ASSERT_TRUE(writer
                  .RunAndWait([&](sqlite::Database* db) -> absl::Status {
                    auto st = db->Prepare("SELECT COUNT(*) FROM t");
                    if (!st.ok()) return st.status();
                    auto row = st->Step();
                    rows = st->ColumnInt(0);
                    return row.status();
                  })
                  .ok());
  EXPECT_EQ(rows, 180);
  GroupCommitWriter::Stats stats = writer.stats();
  EXPECT_LT(stats.batches, stats.jobs);  // batched, not one commit per job
  writer.Stop();
  absl::Status after;
  writer.Submit(GroupCommitWriter::Job{nullptr, [&](const absl::Status& st) { after = st; }});
  EXPECT_EQ(after.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cnet::macs

namespace cnet::macs {
namespace {

// Provenance a receiver can trust: spawned_by from the registry record, and
// human_origin only when a HUMAN principal's registered key signed the exact
// message; a forged, misattributed or half-given approval refuses the
// message, locally and when it arrives through federation.
TEST_F(GatewayTest, ProvenanceRecordsTheSpawnerAndAVerifiedHumanApproval) {
  AgentInfo child{"child"};
  child.spawned_by = "alice";
  directory_.Put(child);
  std::string human_seed(32, '\x21');
  AgentInfo hana{"hana"};
  hana.human = true;
  hana.public_key = Ed25519PublicKey(human_seed);
  directory_.Put(hana);
  AgentInfo robot{"robot"};  // an agent with a key, but not a human
  robot.public_key = Ed25519PublicKey(std::string(32, '\x22'));
  directory_.Put(robot);

  pb::Message m = Msg("child", "bob", "prov-1");
  m.set_human_principal_id("hana");
  m.set_human_signature(SignEd25519Hex(human_seed, *CanonicalBytes(m)));
  ASSERT_TRUE(Send(Caller::Agent("child"), m).ok());
  pb::Message plain = Msg("child", "bob", "prov-2");
  ASSERT_TRUE(Send(Caller::Agent("child"), plain).ok());

  auto expect_refused = [&](pb::Message bad, const std::string& why) {
    auto r = Send(Caller::Agent("child"), bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << why;
    EXPECT_NE(std::string(r.status().message()).find("human_signature"), std::string::npos)
        << r.status();
  };
  pb::Message forged = Msg("child", "bob", "prov-3");
  forged.set_human_principal_id("hana");
  forged.set_human_signature(SignEd25519Hex(std::string(32, '\x23'), *CanonicalBytes(forged)));
  expect_refused(forged, "signed by another key");
  pb::Message replayed = Msg("child", "bob", "prov-4");  // hana's signature of prov-1
  replayed.set_human_principal_id("hana");
  replayed.set_human_signature(m.human_signature());
  expect_refused(replayed, "signature of another message");
  pb::Message not_human = Msg("child", "bob", "prov-5");
  not_human.set_human_principal_id("robot");
  not_human.set_human_signature(
      SignEd25519Hex(std::string(32, '\x22'), *CanonicalBytes(not_human)));
  expect_refused(not_human, "an agent is not a human");
  pb::Message half = Msg("child", "bob", "prov-6");
  half.set_human_principal_id("hana");
  expect_refused(half, "principal without signature");

  pb::FetchInboxRequest f;
  auto inbox = gw_->FetchInbox(Caller::Agent("bob"), f);
  ASSERT_TRUE(inbox.ok());
  ASSERT_EQ(inbox->entries_size(), 2);  // nothing refused was stored
  const pb::Provenance& p1 = inbox->entries(0).message().provenance();
  EXPECT_EQ(p1.sender(), "child");
  EXPECT_EQ(p1.spawned_by(), "alice");
  EXPECT_TRUE(p1.human_origin());
  EXPECT_EQ(p1.human_principal_id(), "hana");
  const pb::Provenance& p2 = inbox->entries(1).message().provenance();
  EXPECT_EQ(p2.spawned_by(), "alice");
  EXPECT_FALSE(p2.human_origin());
  EXPECT_EQ(p2.human_principal_id(), "");

  // Through federation: the same checks at the receiving gateway.
  pb::Message remote = Msg("rita", "bob", "prov-fed-1");
  remote.set_origin_node("node-b");
  remote.set_signature(*SignMessage(remote, kSecret));
  remote.set_human_principal_id("hana");
  remote.set_human_signature(SignEd25519Hex(std::string(32, '\x23'), *CanonicalBytes(remote)));
  EXPECT_EQ(gw_->AcceptRemote(remote, pb::TRANSPORT_FIREBASE, "node-b").status().code(),
            absl::StatusCode::kUnauthenticated);
  remote.set_human_signature(SignEd25519Hex(human_seed, *CanonicalBytes(remote)));
  ASSERT_TRUE(gw_->AcceptRemote(remote, pb::TRANSPORT_FIREBASE, "node-b").ok());
  inbox = gw_->FetchInbox(Caller::Agent("bob"), f);
  ASSERT_EQ(inbox->entries_size(), 3);
  EXPECT_TRUE(inbox->entries(2).message().provenance().human_origin());
}

}  // namespace
}  // namespace cnet::macs
