// The federation message path between two in-process nodes over in-memory
// media on a SimulatedClock: delivery both ways, broadcast, receipts,
// outage -> offline queue -> flush in order, GitHub fallback and return,
// dedupe across media, forged and malformed input, the seed queue import.
#include "services/macs-gateway/federation/federation.h"

#include <fstream>
#include <iostream>
#include <set>

#include "absl/strings/str_replace.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "services/macs-gateway/federation/testing.h"

namespace cnet::macs::federation {
namespace {
namespace pb = claudenet::v1;
using namespace ::cnet::macs::federation::testing;  // NOLINT

class FederationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Node* n : {&a_, &b_}) {
      n->name = n == &a_ ? "A" : "B";
      n->dir = TempDir("fed");
      AddAgents(n, {"A", "B"});
      n->options.db_path = n->dir + "/macs.db";
      n->options.node = n->name;
      n->options.shared_secret = kSecret;
      n->options.fsync = false;
      // Sinks never ack: no redelivery within a test.
      n->options.ack_timeout = absl::Hours(12);
    }
    Open(&a_);
    Open(&b_);
  }
  void TearDown() override {
    for (Node* n : {&a_, &b_}) {
      n->federation.reset();
      n->gateway.reset();
    }
  }
  void Open(Node* n) {
    ASSERT_TRUE(OpenGateway(n, &clock_).ok());
    FederationOptions o;
    o.node = n->name;
    o.backoff_base = absl::Milliseconds(100);
    o.backoff_max = absl::Seconds(2);
    o.fallback_after = absl::Seconds(30);
    o.github_poll_interval = absl::Seconds(5);
    o.hold_timeout = absl::Seconds(20);
    o.batch_max_messages = 50;
    o.jitter_seed = 7;
    n->federation = std::make_unique<Federation>(o, &clock_, n->gateway.get(), &db_,
                                                 with_github_ ? &issues_ : nullptr);
    Federation* f = n->federation.get();
    n->gateway->SetFederationStatusSource([f](pb::FederationStatus* s) { f->FillStatus(s); });
    for (int i = 1; i <= 2; i++) {
      ASSERT_TRUE(Subscribe(n, absl::StrCat(absl::AsciiStrToLower(n->name), i)).ok());
    }
  }
  // Ticks both nodes, moving time forward, until `done` or 400 rounds.
  bool Until(const std::function<bool()>& done, absl::Duration step = absl::Milliseconds(500)) {
    for (int i = 0; i < 400; i++) {
      if (done()) return true;
      a_.federation->TickOnce();
      b_.federation->TickOnce();
      if (done()) return true;
      clock_.Advance(step);
    }
    return done();
  }
  pb::Message Msg(const std::string& from, const std::string& to, const std::string& id) {
    return Signed(from, to, id, clock_.Now());
  }
  pb::FederationStatus Stats(Node* n) {
    auto r = n->gateway->GetStats(Caller::Admin(), pb::GetStatsRequest());
    EXPECT_TRUE(r.ok()) << r.status();
    return r->federation();
  }
  pb::DeliveryState StateOf(Node* n, const std::string& sender, const std::string& id,
                            const std::string& recipient) {
    pb::GetMessageStatusRequest req;
    req.set_message_id(id);
    req.set_sender(sender);
    auto r = n->gateway->GetMessageStatus(Caller::Admin(), req);
    if (!r.ok()) return pb::DELIVERY_STATE_UNSPECIFIED;
    for (const auto& d : r->recipients()) {
      if (d.agent_id() == recipient) return d.state();
    }
    return pb::DELIVERY_STATE_UNSPECIFIED;
  }
  std::vector<std::string> Got(Node* n, const std::string& agent) {
    return n->sinks[agent]->ids();
  }

  bool with_github_ = true;
  SimulatedClock clock_{absl::FromUnixSeconds(1'760'000'000)};
  MemoryRealtimeDb db_;
  MemoryIssueTracker issues_;
  Node a_, b_;
};

TEST_F(FederationTest, DirectBothWaysWithDeliveredReceipts) {
  ASSERT_TRUE(Send(&a_, Msg("a1", "b1", "m-ab")).ok());
  ASSERT_TRUE(Send(&b_, Msg("b2", "a2", "m-ba")).ok());
  EXPECT_EQ(StateOf(&a_, "a1", "m-ab", "b1"), pb::DELIVERY_STATE_QUEUED);
  ASSERT_TRUE(Until([&] {
    return Got(&b_, "b1").size() == 1 && Got(&a_, "a2").size() == 1 &&
           StateOf(&a_, "a1", "m-ab", "b1") == pb::DELIVERY_STATE_DELIVERED &&
           StateOf(&b_, "b2", "m-ba", "a2") == pb::DELIVERY_STATE_DELIVERED;
  }));
  EXPECT_EQ(Got(&b_, "b1"), std::vector<std::string>{"m-ab"});
  EXPECT_EQ(Got(&a_, "a2"), std::vector<std::string>{"m-ba"});
  EXPECT_EQ(b_.sinks["b1"]->transports()[0], pb::TRANSPORT_FIREBASE);
  // Acked in Firebase, receipts consumed: nothing left behind.
  EXPECT_EQ(db_.Count("messages/"), 0u);
  EXPECT_EQ(db_.Count("receipts/"), 0u);
  EXPECT_EQ(Stats(&a_).state(), pb::FEDERATION_STATE_CONNECTED);
  EXPECT_EQ(Stats(&a_).offline_queue_depth(), 0);
}

TEST_F(FederationTest, BroadcastReachesEveryNodeOnce) {
  ASSERT_TRUE(Send(&a_, Msg("a1", "broadcast", "bc-1")).ok());
  ASSERT_TRUE(Send(&a_, Msg("a1", "cap:all", "cap-1")).ok());
  ASSERT_TRUE(Until([&] {
    return Got(&b_, "b1").size() == 2 && Got(&b_, "b2").size() == 2 &&
           StateOf(&a_, "a1", "bc-1", "b2") == pb::DELIVERY_STATE_DELIVERED &&
           StateOf(&a_, "a1", "cap-1", "b1") == pb::DELIVERY_STATE_DELIVERED;
  }));
  // A few more ticks change nothing: delivered once.
  for (int i = 0; i < 5; i++) {
    a_.federation->TickOnce();
    b_.federation->TickOnce();
  }
  EXPECT_EQ(Got(&b_, "b1"), (std::vector<std::string>{"bc-1", "cap-1"}));
  EXPECT_EQ(Got(&b_, "b2"), (std::vector<std::string>{"bc-1", "cap-1"}));
  EXPECT_EQ(Got(&a_, "a2"), (std::vector<std::string>{"bc-1", "cap-1"}));
  EXPECT_TRUE(Got(&a_, "a1").empty());
  // One envelope per message and node, not per recipient.
  EXPECT_EQ(a_.federation->counters().envelopes_sent_firebase, 2);
}

TEST_F(FederationTest, OutageQueuesThenFlushesInOrderExactlyOnce) {
  std::vector<std::string> from_a1, from_a2;
  db_.SetDown(true);
  for (int i = 0; i < 120; i++) {
    std::string id = absl::StrCat("q-", i);
    const std::string sender = i % 2 == 0 ? "a1" : "a2";
    ASSERT_TRUE(Send(&a_, Msg(sender, "b1", id)).ok());
    (i % 2 == 0 ? from_a1 : from_a2).push_back(id);
    if (i % 10 == 0) {
      a_.federation->TickOnce();
      b_.federation->TickOnce();
      clock_.Advance(absl::Milliseconds(300));
    }
  }
  pb::FederationStatus s = Stats(&a_);
  EXPECT_EQ(s.state(), pb::FEDERATION_STATE_QUEUED);
  EXPECT_EQ(s.offline_queue_depth(), 120);
  EXPECT_GT(s.offline_queue_oldest_age().seconds(), 0);
  EXPECT_FALSE(s.firebase_last_error().empty());
  EXPECT_EQ(StateOf(&a_, "a1", "q-0", "b1"), pb::DELIVERY_STATE_QUEUED);
  EXPECT_TRUE(Got(&b_, "b1").empty());
  db_.SetDown(false);
  ASSERT_TRUE(Until([&] { return Got(&b_, "b1").size() >= 120 && db_.Count("receipts/") == 0; }));
  std::vector<std::string> got = Got(&b_, "b1");
  std::set<std::string> unique(got.begin(), got.end());
  int64_t lost = 120 - static_cast<int64_t>(unique.size());
  int64_t dup = static_cast<int64_t>(got.size() - unique.size());
  std::cout << "outage: sent=120 delivered=" << got.size() << " lost=" << lost
            << " duplicates=" << dup << std::endl;
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(dup, 0);
  // Per-sender order.
  std::vector<std::string> g1, g2;
  for (const std::string& id : got) {
    (std::find(from_a1.begin(), from_a1.end(), id) != from_a1.end() ? g1 : g2).push_back(id);
  }
  EXPECT_EQ(g1, from_a1);
  EXPECT_EQ(g2, from_a2);
  EXPECT_EQ(Stats(&a_).offline_queue_depth(), 0);
  EXPECT_EQ(Stats(&a_).state(), pb::FEDERATION_STATE_CONNECTED);
  EXPECT_EQ(StateOf(&a_, "a2", "q-119", "b1"), pb::DELIVERY_STATE_DELIVERED);
}

TEST_F(FederationTest, LongOutageFallsBackToGitHubAndReturns) {
  std::vector<std::string> sent;
  auto send = [&](int i) {
    std::string id = absl::StrCat("g-", i);
    ASSERT_TRUE(Send(&a_, Msg("a1", "b1", id)).ok());
    sent.push_back(id);
  };
  db_.SetDown(true);
  for (int i = 0; i < 10; i++) send(i);
  ASSERT_TRUE(Until([&] { return Stats(&a_).state() == pb::FEDERATION_STATE_FALLBACK; },
                    absl::Seconds(2)));
  for (int i = 10; i < 20; i++) send(i);
  ASSERT_TRUE(Until([&] { return Got(&b_, "b1").size() >= 20 && issues_.open_count() == 0; },
                    absl::Seconds(1)));
  EXPECT_GE(issues_.created(), 1);
  EXPECT_EQ(b_.sinks["b1"]->transports()[0], pb::TRANSPORT_GITHUB);
  EXPECT_EQ(StateOf(&a_, "a1", "g-0", "b1"), pb::DELIVERY_STATE_FORWARDED);
  EXPECT_NE(issues_.comments(1).at(0).find("Delivered by node `B`"), std::string::npos);
  // Firebase comes back: traffic (and the receipts kept by B) return to it.
  db_.SetDown(false);
  ASSERT_TRUE(Until([&] { return Stats(&a_).state() == pb::FEDERATION_STATE_CONNECTED; }));
  const int64_t issues_before = issues_.created();
  for (int i = 20; i < 30; i++) send(i);
  ASSERT_TRUE(Until([&] {
    return Got(&b_, "b1").size() >= 30 &&
           StateOf(&a_, "a1", "g-29", "b1") == pb::DELIVERY_STATE_DELIVERED &&
           StateOf(&a_, "a1", "g-0", "b1") == pb::DELIVERY_STATE_DELIVERED;
  }));
  EXPECT_EQ(issues_.created(), issues_before);
  EXPECT_EQ(b_.sinks["b1"]->transports().back(), pb::TRANSPORT_FIREBASE);
  std::vector<std::string> got = Got(&b_, "b1");
  std::set<std::string> unique(got.begin(), got.end());
  std::cout << "fallback: sent=30 delivered=" << got.size()
            << " lost=" << 30 - static_cast<int64_t>(unique.size())
            << " duplicates=" << got.size() - unique.size() << std::endl;
  EXPECT_EQ(got, sent);  // exactly once, in order
}

TEST_F(FederationTest, WritesThatLookFailedAreDeliveredOnceAcrossBothMedia) {
  // The database applies every write but the replies are lost: A keeps
  // re-sending the same envelopes, then (after fallback_after) also sends
  // them through GitHub. B delivers each message once.
  db_.LoseReplies(true);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(Send(&a_, Msg("a1", "b1", absl::StrCat("d-", i))).ok());
  ASSERT_TRUE(Until([&] { return Stats(&a_).state() == pb::FEDERATION_STATE_FALLBACK; },
                    absl::Seconds(2)));
  ASSERT_TRUE(Until([&] { return issues_.created() >= 1 && issues_.open_count() == 0; }));
  db_.LoseReplies(false);
  ASSERT_TRUE(Until([&] {
    return db_.Count("messages/") == 0 && db_.Count("receipts/") == 0 &&
           StateOf(&a_, "a1", "d-4", "b1") == pb::DELIVERY_STATE_DELIVERED;
  }));
  EXPECT_EQ(Got(&b_, "b1"), (std::vector<std::string>{"d-0", "d-1", "d-2", "d-3", "d-4"}));
  EXPECT_GE(b_.federation->counters().duplicates, 5);
}

TEST_F(FederationTest, BadInputIsRejectedCountedAndNeverDelivered) {
  // a1 has an Ed25519 key registered (B's directory mirrors it).
  const std::string seed_a1(32, '\x01'), seed_a2(32, '\x02');
  AgentInfo a1;
  a1.id = "a1";
  a1.node = "A";
  a1.remote = true;
  a1.public_key = Ed25519PublicKey(seed_a1);
  a1.key_id = "k-a1";
  b_.directory.Put(a1);
  auto envelope = [&](const pb::Message& m, int64_t seq) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(m, &json);
    return absl::StrCat("{\"v\":1,\"origin\":\"A\",\"dest\":\"B\",\"seq\":", seq,
                        ",\"prev\":0,\"recipients\":[\"b1\"],\"message\":", json, "}");
  };
  auto with_ed = [&](pb::Message m, const std::string& seed) {
    m.set_signing_key_id("k-a1");
    std::string canonical = *CanonicalBytes(m);
    m.set_ed25519_signature(SignEd25519Hex(seed, canonical));
    return m;
  };
  std::map<std::string, std::string> w;
  // 1. Valid HMAC, Ed25519 by another agent's key (forged).
  w["messages/B/A-00000000000000000001"] = envelope(with_ed(Msg("a1", "b1", "forged-1"), seed_a2), 1);
  // 2. Valid HMAC, garbage Ed25519 signature.
  pb::Message bad_ed = Msg("a1", "b1", "forged-2");
  bad_ed.set_signing_key_id("k-a1");
  bad_ed.set_ed25519_signature(std::string(128, 'a'));
  w["messages/B/A-00000000000000000002"] = envelope(bad_ed, 2);
  // 3. Unsigned, 4. wrong HMAC.
  pb::Message unsigned_m = Msg("a1", "b1", "unsigned-1");
  unsigned_m.clear_signature();
  w["messages/B/A-00000000000000000003"] = envelope(unsigned_m, 3);
  pb::Message wrong = Msg("a1", "b1", "wrong-hmac");
  wrong.set_body("tampered");
  w["messages/B/A-00000000000000000004"] = envelope(wrong, 4);
  // 5. Unknown agent, 6. an agent of another node claiming to be from A.
  w["messages/B/A-00000000000000000005"] = envelope(Msg("zed", "b1", "unknown-1"), 5);
  w["messages/B/A-00000000000000000006"] = envelope(Msg("b2", "b1", "spoof-1"), 6);
  // 7. Malformed JSON, 8. not an envelope, 9. oversize, 10. loop to itself.
  w["messages/B/A-00000000000000000007"] = "{\"v\":1,\"origin\":";
  w["messages/B/A-00000000000000000008"] = "{\"hello\":\"world\"}";
  w["messages/B/A-00000000000000000009"] =
      absl::StrCat("{\"v\":1,\"pad\":\"", std::string(2 << 20, 'x'), "\"}");
  w["messages/B/B-00000000000000000001"] = absl::StrReplaceAll(
      envelope(Msg("b2", "b1", "loop-1"), 1), {{"\"origin\":\"A\"", "\"origin\":\"B\""}});
  // ... and one good message, signed with the right key, after them.
  w["messages/B/A-00000000000000000010"] = envelope(with_ed(Msg("a1", "b1", "good-1"), seed_a1), 10);
  ASSERT_TRUE(db_.Update(w).ok());
  ASSERT_TRUE(b_.federation->PollFirebaseOnce().ok());
  EXPECT_EQ(Got(&b_, "b1"), std::vector<std::string>{"good-1"});
  EXPECT_EQ(db_.Count("messages/B/"), 0u);  // all consumed (acked or rejected)
  FederationCounters c = b_.federation->counters();
  EXPECT_EQ(c.accepted, 1);
  EXPECT_EQ(c.rejected, 10);
  EXPECT_EQ(c.rejected_by_reason["MALFORMED"], 3);  // incl. the loop
  EXPECT_EQ(c.rejected_by_reason["OVERSIZE"], 1);
  EXPECT_EQ(c.rejected_by_reason["ED25519_INVALID"], 2);
  EXPECT_EQ(c.rejected_by_reason["SIGNATURE_MISSING"], 1);
  EXPECT_EQ(c.rejected_by_reason["SIGNATURE_INVALID"], 1);
  EXPECT_EQ(c.rejected_by_reason["UNKNOWN_SENDER"], 2);
  // Parseable rejections are reported back to the origin.
  EXPECT_EQ(db_.Count("receipts/A/"), 1u + 6u);
  // A malformed GitHub issue is closed with the reason, never delivered.
  ASSERT_TRUE(issues_.Create("junk", "no block here", {"claude-network", "cnet-to:B"}).ok());
  ASSERT_TRUE(b_.federation->PollGitHubOnce().ok());
  EXPECT_EQ(issues_.open_count(), 0);
  EXPECT_NE(issues_.comments(1).at(0).find("Rejected"), std::string::npos);
  EXPECT_EQ(Got(&b_, "b1"), std::vector<std::string>{"good-1"});
}

TEST_F(FederationTest, ImportsTheSeedOfflineQueue) {
  const std::string path = a_.dir + "/offline-queue.json";
  {
    std::ofstream f(path);
    f << R"([{"id":"seed-1","from":"a1","to":"b1","type":"direct","subject":"hi","content":"one"},
            {"message":{"message_id":"seed-2","sender":"a2","recipient":"b2","body":"two",
                        "data":{"k":1}},"retries":3},
            {"no":"sender"}])";
  }
  db_.SetDown(true);
  auto n = a_.federation->ImportOfflineQueue(path, kSecret);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(Stats(&a_).offline_queue_depth(), 2);
  // Importing again changes nothing (duplicates by id).
  EXPECT_EQ(*a_.federation->ImportOfflineQueue(path, kSecret), 2);
  EXPECT_EQ(Stats(&a_).offline_queue_depth(), 2);
  db_.SetDown(false);
  ASSERT_TRUE(Until([&] { return Got(&b_, "b1").size() == 1 && Got(&b_, "b2").size() == 1; }));
  EXPECT_EQ(Got(&b_, "b2"), std::vector<std::string>{"seed-2"});
}

TEST_F(FederationTest, BackoffHasFullJitterUnderTheCap) {
  db_.SetDown(true);
  ASSERT_TRUE(Send(&a_, Msg("a1", "b1", "bo-1")).ok());
  for (int i = 0; i < 12; i++) {
    a_.federation->ReportFirebase(absl::UnavailableError("down"));
    absl::Duration wait = a_.federation->next_retry_at() - clock_.Now();
    const double cap = std::min(2.0, 0.1 * std::pow(2.0, i + 0));
    EXPECT_GE(wait, absl::ZeroDuration());
    EXPECT_LE(absl::ToDoubleSeconds(wait), cap + 1e-9) << i;
  }
  EXPECT_EQ(Stats(&a_).state(), pb::FEDERATION_STATE_QUEUED);
  EXPECT_GT(Stats(&a_).next_retry_at().seconds(), 0);
}

TEST(FederationDisabledTest, NoMediaMeansDisabledAndTheOutboxKeeps) {
  SimulatedClock clock;
  Node a;
  a.name = "A";
  a.dir = TempDir("fedoff");
  AddAgents(&a, {"A", "B"});
  a.options.db_path = a.dir + "/macs.db";
  a.options.node = "A";
  a.options.shared_secret = kSecret;
  ASSERT_TRUE(OpenGateway(&a, &clock).ok());
  FederationOptions o;
  o.node = "A";
  Federation f(o, &clock, a.gateway.get(), nullptr, nullptr);
  ASSERT_TRUE(Send(&a, Signed("a1", "b1", "x", clock.Now())).ok());
  EXPECT_EQ(*f.PumpOnce(), 0);
  EXPECT_EQ(f.state(), pb::FEDERATION_STATE_DISABLED);
}

}  // namespace
}  // namespace cnet::macs::federation
