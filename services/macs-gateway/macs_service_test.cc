// The MACS gateway over real channels (server on port 0), with a simulated
// clock for everything time-driven (ack timeouts, ttl, rate refill).
#include "services/macs-gateway/macs_service.h"

#include <google/protobuf/util/time_util.h>

#include <map>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "services/macs-gateway/canonical.h"

namespace cnet::macs {
namespace {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

constexpr char kSecret[] = "test-shared-secret";

// Agent tokens "tok-<id>" -> agent <id>: what the registry does for real.
class FakeTokens final : public auth::Authenticator {
 public:
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override {
    if (absl::StartsWith(absl::string_view(credential.data(), credential.size()), "tok-")) {
      return auth::Principal{auth::Kind::kAgent, std::string(credential.substr(4)), ""};
    }
    return absl::UnauthenticatedError("authorization: unknown agent token");
  }
};

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(30);
}

class MacsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/macsXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    AgentInfo alice{"alice"};
    AgentInfo bob{"bob"};
    AgentInfo carol{"carol"};
    carol.capabilities = {"python"};
    AgentInfo dave{"dave"};
    dave.capabilities = {"python"};
    dave.health = pb::HEALTH_DEAD;
    AgentInfo erin{"erin"};
    erin.capabilities = {"python", "rust"};
    AgentInfo remote{"zed"};
    remote.node = "node-b";
    remote.remote = true;
    for (const AgentInfo& a : {alice, bob, carol, dave, erin, remote}) directory_.Put(a);
    options_.db_path = dir_ + "/macs.db";
    options_.node = "node-a";
    options_.shared_secret = kSecret;
    options_.max_deliveries = 3;
    options_.rate_per_sec = 1000;
    options_.rate_burst = 1000;
    Start();
  }

  void TearDown() override { Stop(); }

  void Start() {
    auto g = Gateway::Create(options_, &clock_, &directory_);
    ASSERT_TRUE(g.ok()) << g.status();
    gateway_ = std::move(*g);
    impl_ = std::make_unique<MacsServiceImpl>(gateway_.get(), &clock_);
    ServerOptions so;
    so.name = "macs-gateway";
    so.services = {impl_.get()};
    so.interceptors.push_back(auth::MakeAuthInterceptorFactory(
        std::make_shared<auth::StaticAuthenticator>("admin-cred", "svc-cred",
                                                    std::make_shared<FakeTokens>())));
    auto server = GrpcServer::Start(std::move(so));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = pb::MacsGateway::NewStub(MakeChannel(server_->address()));
  }

  void Stop() {
    if (impl_) impl_->Shutdown();
    if (gateway_) gateway_->Shutdown();
    if (server_) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    impl_.reset();
    gateway_.reset();
  }

  void Restart() {
    Stop();
    Start();
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& credential) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(Deadline());
    if (!credential.empty()) auth::SetBearer(ctx.get(), credential);
    return ctx;
  }

  // A signed message from `from` to `to`.
  pb::Message Msg(const std::string& from, const std::string& to, const std::string& id,
                  const std::string& body = "hello") {
    pb::Message m;
    m.set_id(id);
    m.set_sender(from);
    m.set_recipient(to);
    m.set_type(pb::MESSAGE_TYPE_DIRECT);
    m.set_subject("subject " + id);
    m.set_body(body);
    *m.mutable_created_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(clock_.Now()));
    return m;
  }
  pb::Message Sign(pb::Message m) {
    m.set_signature(*SignMessage(m, kSecret));
    return m;
  }

  grpc::Status Send(const std::string& from, const pb::Message& m, pb::SendResponse* out,
                    grpc::ClientContext* ctx = nullptr) {
    pb::SendRequest req;
    *req.mutable_message() = m;
    pb::SendResponse resp;
    auto own = Ctx("tok-" + from);
    grpc::Status st = stub_->Send(ctx ? ctx : own.get(), req, out ? out : &resp);
    return st;
  }
  pb::SendResponse SendOk(const std::string& from, const pb::Message& m) {
    pb::SendResponse resp;
    grpc::Status st = Send(from, Sign(m), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  pb::FetchInboxResponse Fetch(const std::string& agent,
                               pb::InboxFilter filter = pb::INBOX_FILTER_UNACKED) {
    pb::FetchInboxRequest req;
    req.set_filter(filter);
    pb::FetchInboxResponse resp;
    grpc::Status st = stub_->FetchInbox(Ctx("tok-" + agent).get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  pb::GetMessageStatusResponse Status(const std::string& sender, const std::string& id) {
    pb::GetMessageStatusRequest req;
    req.set_message_id(id);
    pb::GetMessageStatusResponse resp;
    grpc::Status st = stub_->GetMessageStatus(Ctx("tok-" + sender).get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  pb::MessageCounters Stats(const std::string& agent = "") {
    pb::GetStatsRequest req;
    req.set_agent_id(agent);
    pb::GetStatsResponse resp;
    grpc::Status st = stub_->GetStats(Ctx("admin-cred").get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.totals();
  }

  int64_t RejectedFor(pb::RejectReason reason) {
    pb::MessageCounters c = Stats();
    for (const auto& r : c.rejected_by_reason()) {
      if (r.reason() == reason) return r.count();
    }
    return 0;
  }

  pb::ErrorDetail DetailOf(const grpc::ClientContext& ctx) {
    pb::ErrorDetail d;
    auto& md = ctx.GetServerTrailingMetadata();
    auto it = md.find("claudenet-error-bin");
    if (it != md.end()) d.ParseFromString(std::string(it->second.data(), it->second.size()));
    return d;
  }

  struct Sub {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<pb::SubscribeResponse>> reader;
    pb::SubscriptionReady ready;
    pb::InboxEntry Next() {
      pb::SubscribeResponse r;
      EXPECT_TRUE(reader->Read(&r));
      EXPECT_TRUE(r.has_delivery());
      return r.delivery();
    }
  };
  Sub Subscribe(const std::string& agent, pb::SubscribeMode mode = pb::SUBSCRIBE_MODE_UNSPECIFIED,
                int max_in_flight = 0) {
    Sub s;
    s.ctx = Ctx("tok-" + agent);
    pb::SubscribeRequest req;
    req.set_mode(mode);
    req.set_max_in_flight(max_in_flight);
    s.reader = stub_->Subscribe(s.ctx.get(), req);
    pb::SubscribeResponse first;
    EXPECT_TRUE(s.reader->Read(&first));
    EXPECT_TRUE(first.has_ready());
    s.ready = first.ready();
    return s;
  }

  pb::AckResponse Ack(const std::string& agent, std::vector<int64_t> seqs) {
    pb::AckRequest req;
    for (int64_t s : seqs) req.add_inbox_sequences(s);
    pb::AckResponse resp;
    grpc::Status st = stub_->Ack(Ctx("tok-" + agent).get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  std::string dir_;
  SimulatedClock clock_{absl::FromUnixSeconds(1'750'000'000)};
  InMemoryAgentDirectory directory_;
  GatewayOptions options_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<MacsServiceImpl> impl_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<pb::MacsGateway::Stub> stub_;
};

TEST_F(MacsServiceTest, DirectMessageIsPersistedQueuedAndVisibleToTheSender) {
  pb::SendResponse r = SendOk("alice", Msg("alice", "bob", "m-1"));
  EXPECT_EQ(r.message_id(), "m-1");
  EXPECT_EQ(r.sender(), "alice");
  EXPECT_FALSE(r.duplicate());
  ASSERT_EQ(r.recipient_count(), 1);
  ASSERT_EQ(r.deliveries_size(), 1);
  EXPECT_EQ(r.deliveries(0).agent_id(), "bob");
  EXPECT_EQ(r.deliveries(0).state(), pb::DELIVERY_STATE_QUEUED);
  EXPECT_EQ(r.deliveries(0).inbox_sequence(), 1);

  pb::FetchInboxResponse inbox = Fetch("bob");
  ASSERT_EQ(inbox.entries_size(), 1);
  const pb::Message& got = inbox.entries(0).message();
  EXPECT_EQ(got.body(), "hello");
  EXPECT_EQ(got.provenance().sender(), "alice");
  EXPECT_EQ(got.provenance().hmac(), pb::SIGNATURE_STATE_VERIFIED);
  EXPECT_EQ(got.provenance().origin_node(), "node-a");
  EXPECT_EQ(inbox.pending_count(), 1);
  EXPECT_EQ(inbox.unread_count(), 1);
  EXPECT_EQ(inbox.latest_sequence(), 1);
  // Peeking changes nothing.
  EXPECT_EQ(Fetch("bob").entries_size(), 1);
  EXPECT_EQ(Fetch("alice").entries_size(), 0);

  pb::GetMessageStatusResponse st = Status("alice", "m-1");
  ASSERT_EQ(st.recipients_size(), 1);
  EXPECT_EQ(st.recipients(0).state(), pb::DELIVERY_STATE_QUEUED);
  EXPECT_EQ(Stats().sent(), 1);
  EXPECT_EQ(Stats("alice").sent(), 1);
}

TEST_F(MacsServiceTest, BroadcastFansOutToEveryLiveAgentButTheSender) {
  pb::SendResponse r = SendOk("alice", Msg("alice", "broadcast", "b-1"));
  std::vector<std::string> to;
  for (const auto& d : r.deliveries()) to.push_back(d.agent_id());
  // dave is DEAD; zed lives on node-b and goes to the outbox.
  EXPECT_EQ(to, (std::vector<std::string>{"bob", "carol", "erin", "zed"}));
  EXPECT_EQ(r.recipient_count(), 4);
  EXPECT_TRUE(r.deliveries(3).remote());
  EXPECT_EQ(r.deliveries(3).node(), "node-b");
  EXPECT_EQ(r.deliveries(3).inbox_sequence(), 0);
  for (const std::string& a : {"bob", "carol", "erin"}) EXPECT_EQ(Fetch(a).entries_size(), 1) << a;
  EXPECT_EQ(Fetch("alice").entries_size(), 0);
  auto outbox = gateway_->PeekOutbox(10);
  ASSERT_TRUE(outbox.ok());
  ASSERT_EQ(outbox->size(), 1u);
  EXPECT_EQ((*outbox)[0].recipient, "zed");
  EXPECT_EQ((*outbox)[0].message->id(), "b-1");
  pb::GetStatsRequest sreq;
  pb::GetStatsResponse sresp;
  ASSERT_TRUE(stub_->GetStats(Ctx("tok-bob").get(), sreq, &sresp).ok());
  EXPECT_EQ(sresp.federation().outbox_depth(), 1);
  EXPECT_EQ(sresp.totals().remote_sent(), 1);
  ASSERT_TRUE(gateway_->MarkForwarded({(*outbox)[0].id}).ok());
  pb::GetMessageStatusResponse st = Status("alice", "b-1");
  EXPECT_EQ(st.recipients(3).state(), pb::DELIVERY_STATE_FORWARDED);
}

TEST_F(MacsServiceTest, CapabilityGroupReachesMatchingLiveAgentsOnly) {
  pb::SendResponse r = SendOk("alice", Msg("alice", "cap:python", "c-1"));
  ASSERT_EQ(r.deliveries_size(), 2);
  EXPECT_EQ(r.deliveries(0).agent_id(), "carol");
  EXPECT_EQ(r.deliveries(1).agent_id(), "erin");
  r = SendOk("alice", Msg("alice", "cap:rust", "c-2"));
  ASSERT_EQ(r.deliveries_size(), 1);
  EXPECT_EQ(r.deliveries(0).agent_id(), "erin");
  // The sender is never its own recipient: a group of only the sender is
  // empty, NOT_FOUND rather than a message nobody receives.
  pb::SendResponse none;
  EXPECT_EQ(Send("erin", Sign(Msg("erin", "cap:rust", "c-3")), &none).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(MacsServiceTest, SubscribeDeliversByPriorityThenAge) {
  struct P {
    const char* id;
    pb::Priority p;
  };
  for (P x : {P{"low", pb::PRIORITY_LOW}, P{"n1", pb::PRIORITY_UNSPECIFIED},
              P{"high", pb::PRIORITY_HIGH}, P{"n2", pb::PRIORITY_NORMAL},
              P{"emerg", pb::PRIORITY_EMERGENCY}}) {
    pb::Message m = Msg("alice", "bob", x.id);
    m.set_priority(x.p);
    SendOk("alice", m);
  }
  Sub sub = Subscribe("bob");
  EXPECT_EQ(sub.ready.pending_count(), 5);
  EXPECT_EQ(sub.ready.unread_count(), 5);
  EXPECT_EQ(sub.ready.mode(), pb::SUBSCRIBE_MODE_FANOUT);
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) order.push_back(sub.Next().message().id());
  EXPECT_EQ(order, (std::vector<std::string>{"emerg", "high", "n1", "n2", "low"}));
  // Arrivals while subscribed flow too.
  SendOk("alice", Msg("alice", "bob", "later"));
  pb::InboxEntry e = sub.Next();
  EXPECT_EQ(e.message().id(), "later");
  EXPECT_EQ(e.attempt(), 1);
  EXPECT_EQ(e.inbox_sequence(), 6);
  sub.ctx->TryCancel();
}

TEST_F(MacsServiceTest, AckStopsRedeliveryAndIsSafeToRepeat) {
  SendOk("alice", Msg("alice", "bob", "a-1"));
  SendOk("alice", Msg("alice", "bob", "a-2"));
  Sub sub = Subscribe("bob");
  pb::InboxEntry first = sub.Next();
  pb::InboxEntry second = sub.Next();
  EXPECT_EQ(Status("alice", "a-1").recipients(0).state(), pb::DELIVERY_STATE_DELIVERED);

  pb::AckResponse ack = Ack("bob", {first.inbox_sequence()});
  ASSERT_EQ(ack.results_size(), 1);
  EXPECT_EQ(ack.results(0).outcome(), pb::ITEM_OUTCOME_OK);
  EXPECT_EQ(ack.results(0).message_id(), "a-1");
  EXPECT_EQ(Ack("bob", {first.inbox_sequence()}).results(0).outcome(),
            pb::ITEM_OUTCOME_ALREADY_DONE);
  EXPECT_EQ(Ack("bob", {999}).results(0).outcome(), pb::ITEM_OUTCOME_NOT_FOUND);
  // By message id.
  pb::AckRequest by_id;
  by_id.add_message_ids("a-2");
  pb::AckResponse r2;
  ASSERT_TRUE(stub_->Ack(Ctx("tok-bob").get(), by_id, &r2).ok());
  EXPECT_EQ(r2.results(0).outcome(), pb::ITEM_OUTCOME_OK);
  EXPECT_EQ(r2.results(0).inbox_sequence(), second.inbox_sequence());

  pb::GetMessageStatusResponse st = Status("alice", "a-1");
  EXPECT_EQ(st.recipients(0).state(), pb::DELIVERY_STATE_ACKED);
  EXPECT_TRUE(st.recipients(0).has_acked_at());
  // Acknowledged messages are never redelivered and leave the pending counts.
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(Fetch("bob").pending_count(), 0);
  EXPECT_EQ(Fetch("bob", pb::INBOX_FILTER_ALL).entries_size(), 2);
  EXPECT_EQ(Stats("bob").acked(), 2);
  EXPECT_EQ(Stats("bob").redelivered(), 0);
  SendOk("alice", Msg("alice", "bob", "a-3"));
  EXPECT_EQ(sub.Next().message().id(), "a-3");
  sub.ctx->TryCancel();
}

TEST_F(MacsServiceTest, UnackedMessageIsRedeliveredAfterTheAckTimeout) {
  SendOk("alice", Msg("alice", "bob", "r-1"));
  Sub sub = Subscribe("bob");
  pb::InboxEntry e1 = sub.Next();
  EXPECT_EQ(e1.attempt(), 1);
  EXPECT_EQ(TimeUtil::TimestampToSeconds(e1.ack_deadline()),
            absl::ToUnixSeconds(clock_.Now() + absl::Seconds(30)));
  clock_.Advance(absl::Seconds(29));
  // Not yet: a new message arrives first.
  SendOk("alice", Msg("alice", "bob", "r-2"));
  EXPECT_EQ(sub.Next().message().id(), "r-2");
  clock_.Advance(absl::Seconds(1));
  pb::InboxEntry again = sub.Next();
  EXPECT_EQ(again.message().id(), "r-1");
  EXPECT_EQ(again.attempt(), 2);
  EXPECT_EQ(again.inbox_sequence(), e1.inbox_sequence());
  EXPECT_EQ(Stats("bob").redelivered(), 1);
  EXPECT_EQ(Status("alice", "r-1").recipients(0).attempts(), 2);
  sub.ctx->TryCancel();
}

TEST_F(MacsServiceTest, MaxDeliveriesDeadLettersAndRequeueBringsItBack) {
  SendOk("alice", Msg("alice", "bob", "d-1"));
  Sub sub = Subscribe("bob");
  for (int attempt = 1; attempt <= 3; ++attempt) {
    EXPECT_EQ(sub.Next().attempt(), attempt);
    clock_.Advance(absl::Seconds(30));
  }
  pb::ListDeadLettersRequest lreq;
  pb::ListDeadLettersResponse dead;
  ASSERT_TRUE(stub_->ListDeadLetters(Ctx("tok-bob").get(), lreq, &dead).ok());
  ASSERT_EQ(dead.dead_letters_size(), 1);
  EXPECT_EQ(dead.dead_letters(0).reason(), pb::DEAD_LETTER_REASON_MAX_DELIVERIES);
  EXPECT_EQ(dead.dead_letters(0).entry().message().id(), "d-1");
  EXPECT_EQ(Status("alice", "d-1").recipients(0).state(), pb::DELIVERY_STATE_DEAD_LETTERED);
  EXPECT_EQ(Fetch("bob").pending_count(), 0);
  EXPECT_EQ(Stats("bob").dead_lettered(), 1);
  EXPECT_EQ(Stats("bob").dead_letters(), 1);
  // Admin sees every inbox; another agent sees none of bob's.
  lreq.set_agent_id("*");
  ASSERT_TRUE(stub_->ListDeadLetters(Ctx("admin-cred").get(), lreq, &dead).ok());
  EXPECT_EQ(dead.dead_letters_size(), 1);
  EXPECT_EQ(stub_->ListDeadLetters(Ctx("tok-bob").get(), lreq, &dead).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  lreq.set_agent_id("bob");
  EXPECT_EQ(stub_->ListDeadLetters(Ctx("tok-alice").get(), lreq, &dead).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  pb::RequeueDeadLetterRequest rq;
  rq.add_inbox_sequences(1);
  pb::RequeueDeadLetterResponse rr;
  ASSERT_TRUE(stub_->RequeueDeadLetter(Ctx("tok-bob").get(), rq, &rr).ok());
  EXPECT_EQ(rr.results(0).outcome(), pb::ITEM_OUTCOME_OK);
  pb::InboxEntry back = sub.Next();
  EXPECT_EQ(back.message().id(), "d-1");
  EXPECT_EQ(back.attempt(), 1);
  ASSERT_TRUE(stub_->RequeueDeadLetter(Ctx("tok-bob").get(), rq, &rr).ok());
  EXPECT_EQ(rr.results(0).outcome(), pb::ITEM_OUTCOME_ALREADY_DONE);
  EXPECT_EQ(Stats("bob").dead_letters(), 0);
  sub.ctx->TryCancel();
}

TEST_F(MacsServiceTest, ExpiredMessagesAreDroppedAndCounted) {
  pb::Message m = Msg("alice", "bob", "t-1");
  m.mutable_ttl()->set_seconds(10);
  pb::SendResponse r = SendOk("alice", m);
  EXPECT_EQ(TimeUtil::TimestampToSeconds(r.expires_at()),
            absl::ToUnixSeconds(clock_.Now()) + 10);
  SendOk("alice", Msg("alice", "bob", "t-2"));
  clock_.Advance(absl::Seconds(11));
  pb::FetchInboxResponse inbox = Fetch("bob");
  ASSERT_EQ(inbox.entries_size(), 1);
  EXPECT_EQ(inbox.entries(0).message().id(), "t-2");
  EXPECT_EQ(inbox.pending_count(), 1);
  EXPECT_EQ(Status("alice", "t-1").recipients(0).state(), pb::DELIVERY_STATE_EXPIRED);
  EXPECT_EQ(Stats("bob").expired(), 1);
  Sub sub = Subscribe("bob");
  EXPECT_EQ(sub.Next().message().id(), "t-2");
  pb::AckRequest ack;
  ack.add_message_ids("t-1");
  pb::AckResponse ar;
  ASSERT_TRUE(stub_->Ack(Ctx("tok-bob").get(), ack, &ar).ok());
  EXPECT_EQ(ar.results(0).outcome(), pb::ITEM_OUTCOME_EXPIRED);
  sub.ctx->TryCancel();
}

TEST_F(MacsServiceTest, DedupeReturnsTheOriginalAckAndRejectsReusedIds) {
  pb::Message m = Sign(Msg("alice", "bob", "dup-1"));
  pb::SendResponse first, second;
  ASSERT_TRUE(Send("alice", m, &first).ok());
  ASSERT_TRUE(Send("alice", m, &second).ok());
  EXPECT_TRUE(second.duplicate());
  EXPECT_FALSE(first.duplicate());
  EXPECT_EQ(TimeUtil::TimestampToNanoseconds(second.accepted_at()),
            TimeUtil::TimestampToNanoseconds(first.accepted_at()));
  EXPECT_EQ(second.deliveries(0).inbox_sequence(), first.deliveries(0).inbox_sequence());
  EXPECT_EQ(Fetch("bob").entries_size(), 1);
  EXPECT_EQ(Stats().duplicates(), 1);

  pb::Message changed = Sign(Msg("alice", "bob", "dup-1", "another body"));
  auto ctx = Ctx("tok-alice");
  pb::SendResponse r;
  grpc::Status st = Send("alice", changed, &r, ctx.get());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(DetailOf(*ctx).reason(), "ID_REUSED");
  EXPECT_EQ(Fetch("bob").entries_size(), 1);
  // Ids are per sender: bob may use the same id.
  SendOk("bob", Msg("bob", "alice", "dup-1"));
  // The dedupe record survives a restart.
  Restart();
  ASSERT_TRUE(Send("alice", m, &second).ok());
  EXPECT_TRUE(second.duplicate());
  EXPECT_EQ(Send("alice", changed, &r).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Fetch("bob").entries_size(), 1);
}

TEST_F(MacsServiceTest, RateLimitIsPerSenderWithARetryDelay) {
  Stop();
  options_.rate_per_sec = 2;
  options_.rate_burst = 3;
  Start();
  for (int i = 0; i < 3; ++i) SendOk("alice", Msg("alice", "bob", absl::StrCat("rl-", i)));
  auto ctx = Ctx("tok-alice");
  pb::SendResponse r;
  grpc::Status st = Send("alice", Sign(Msg("alice", "bob", "rl-3")), &r, ctx.get());
  ASSERT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  pb::ErrorDetail d = DetailOf(*ctx);
  EXPECT_EQ(d.reason(), "RATE_LIMITED");
  EXPECT_EQ(TimeUtil::DurationToMilliseconds(d.retry_delay()), 500);
  auto retry = ctx->GetServerTrailingMetadata().find("claudenet-retry-after-ms");
  ASSERT_NE(retry, ctx->GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(retry->second.data(), retry->second.size()), "500");
  EXPECT_EQ(Fetch("bob").entries_size(), 3);
  EXPECT_EQ(RejectedFor(pb::REJECT_REASON_RATE_LIMITED), 1);
  // Another sender has its own bucket; time refills alice's.
  SendOk("carol", Msg("carol", "bob", "rl-c"));
  clock_.Advance(absl::Milliseconds(500));
  SendOk("alice", Msg("alice", "bob", "rl-3"));
}

TEST_F(MacsServiceTest, EveryBadInputHasItsCodeStoresNothingAndIsCounted) {
  struct Case {
    std::string name;
    std::string credential;
    pb::Message message;
    bool sign;
    grpc::StatusCode code;
    pb::RejectReason reason;
  };
  pb::Message stale = Msg("alice", "bob", "x-stale");
  *stale.mutable_created_at() =
      TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(clock_.Now() - absl::Minutes(6)));
  pb::Message no_recipient = Msg("alice", "", "x-norcpt");
  pb::Message long_subject = Msg("alice", "bob", "x-subj");
  long_subject.set_subject(std::string(257, 's'));
  pb::Message big = Msg("alice", "bob", "x-big", std::string(256 * 1024 + 1, 'b'));
  pb::Message bad_sig = Msg("alice", "bob", "x-badsig");
  bad_sig.set_signature(std::string(64, '0'));
  pb::Message no_sig = Msg("alice", "bob", "x-nosig");
  pb::Message as_bob = Msg("bob", "carol", "x-asbob");
  pb::Message unknown = Msg("alice", "bobb", "x-unknown");
  pb::Message no_id = Msg("alice", "bob", "");
  pb::Message bad_prio = Msg("alice", "bob", "x-prio");
  bad_prio.set_priority(static_cast<pb::Priority>(9));
  pb::Message bad_ttl = Msg("alice", "bob", "x-ttl");
  bad_ttl.mutable_ttl()->set_nanos(5);
  pb::Message nan = Msg("alice", "bob", "x-nan");
  (*nan.mutable_payload()->mutable_fields())["x"].set_number_value(std::nan(""));
  pb::Message empty_cap = Msg("alice", "cap:cobol", "x-cap");
  pb::Message bad_rcpt = Msg("alice", "svc:tasks", "x-svc");

  std::vector<Case> cases = {
      {"no credential", "", Msg("alice", "bob", "x-anon"), true,
       grpc::StatusCode::UNAUTHENTICATED, pb::REJECT_REASON_UNAUTHENTICATED},
      {"bad credential", "nope", Msg("alice", "bob", "x-nope"), true,
       grpc::StatusCode::UNAUTHENTICATED, pb::REJECT_REASON_UNAUTHENTICATED},
      {"missing recipient", "tok-alice", no_recipient, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_MALFORMED},
      {"svc recipient", "tok-alice", bad_rcpt, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_MALFORMED},
      {"missing id", "tok-alice", no_id, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_MALFORMED},
      {"priority", "tok-alice", bad_prio, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_MALFORMED},
      {"ttl nanos", "tok-alice", bad_ttl, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_MALFORMED},
      {"NaN payload", "tok-alice", nan, false, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_MALFORMED},
      {"subject", "tok-alice", long_subject, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_OVERSIZE},
      {"body", "tok-alice", big, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_OVERSIZE},
      {"bad signature", "tok-alice", bad_sig, false, grpc::StatusCode::UNAUTHENTICATED,
       pb::REJECT_REASON_SIGNATURE_INVALID},
      {"no signature", "tok-alice", no_sig, false, grpc::StatusCode::UNAUTHENTICATED,
       pb::REJECT_REASON_SIGNATURE_MISSING},
      {"stale timestamp", "tok-alice", stale, true, grpc::StatusCode::INVALID_ARGUMENT,
       pb::REJECT_REASON_TIMESTAMP_OUT_OF_WINDOW},
      {"as another agent", "tok-alice", as_bob, true, grpc::StatusCode::PERMISSION_DENIED,
       pb::REJECT_REASON_SENDER_MISMATCH},
      {"admin sends", "admin-cred", Msg("alice", "bob", "x-admin"), true,
       grpc::StatusCode::PERMISSION_DENIED, pb::REJECT_REASON_SENDER_MISMATCH},
      {"unknown recipient", "tok-alice", unknown, true, grpc::StatusCode::NOT_FOUND,
       pb::REJECT_REASON_UNKNOWN_RECIPIENT},
      {"empty group", "tok-alice", empty_cap, true, grpc::StatusCode::NOT_FOUND,
       pb::REJECT_REASON_UNKNOWN_RECIPIENT},
  };
  for (const Case& c : cases) {
    int64_t before = RejectedFor(c.reason);
    auto ctx = Ctx(c.credential);
    pb::SendResponse r;
    grpc::Status st = Send("alice", c.sign ? Sign(c.message) : c.message, &r, ctx.get());
    EXPECT_EQ(st.error_code(), c.code) << c.name << ": " << st.error_message();
    EXPECT_FALSE(st.error_message().empty()) << c.name;
    EXPECT_EQ(RejectedFor(c.reason), before + 1) << c.name;
    if (c.name == "unknown recipient") {
      pb::ErrorDetail d = DetailOf(*ctx);
      EXPECT_EQ(d.reason(), "UNKNOWN_RECIPIENT");
      ASSERT_GE(d.suggestions_size(), 1);
      EXPECT_EQ(d.suggestions(0), "bob");
      EXPECT_NE(st.error_message().find("did you mean \"bob\""), std::string::npos);
    }
    if (c.name == "subject") {
      EXPECT_EQ(st.error_message(), "message.subject: longer than 256 bytes (257)");
      EXPECT_EQ(DetailOf(*ctx).field_violations(0).field(), "message.subject");
    }
  }
  // Nothing was stored anywhere.
  for (const std::string& a : {"bob", "carol"}) {
    pb::FetchInboxResponse inbox = Fetch(a, pb::INBOX_FILTER_ALL);
    EXPECT_EQ(inbox.entries_size(), 0) << a;
    EXPECT_EQ(inbox.latest_sequence(), 0) << a;
  }
  EXPECT_EQ(Stats().sent(), 0);
  EXPECT_GE(Stats().rejected(), static_cast<int64_t>(cases.size()));
  pb::GetMessageStatusRequest sreq;
  sreq.set_message_id("x-stale");
  pb::GetMessageStatusResponse sresp;
  EXPECT_EQ(stub_->GetMessageStatus(Ctx("tok-alice").get(), sreq, &sresp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(MacsServiceTest, NobodyTouchesAnotherAgentsInbox) {
  SendOk("alice", Msg("alice", "bob", "p-1"));
  pb::AckRequest ack;
  ack.set_agent_id("bob");
  ack.add_inbox_sequences(1);
  pb::AckResponse ar;
  auto ctx = Ctx("tok-carol");
  EXPECT_EQ(stub_->Ack(ctx.get(), ack, &ar).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Carol acking "her" sequence 1 finds nothing: it is bob's.
  ack.clear_agent_id();
  ASSERT_TRUE(stub_->Ack(Ctx("tok-carol").get(), ack, &ar).ok());
  EXPECT_EQ(ar.results(0).outcome(), pb::ITEM_OUTCOME_NOT_FOUND);
  EXPECT_EQ(Status("alice", "p-1").recipients(0).state(), pb::DELIVERY_STATE_QUEUED);
  // Admin may not consume an inbox but may peek at it.
  ack.set_agent_id("bob");
  EXPECT_EQ(stub_->Ack(Ctx("admin-cred").get(), ack, &ar).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  pb::FetchInboxRequest f;
  f.set_agent_id("bob");
  pb::FetchInboxResponse fr;
  ASSERT_TRUE(stub_->FetchInbox(Ctx("admin-cred").get(), f, &fr).ok());
  EXPECT_EQ(fr.entries_size(), 1);
  EXPECT_EQ(stub_->FetchInbox(Ctx("tok-alice").get(), f, &fr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A service on bob's behalf may.
  auto svc = Ctx("svc-cred");
  svc->AddMetadata("claudenet-on-behalf-of", "bob");
  ASSERT_TRUE(stub_->Ack(svc.get(), ack, &ar).ok());
  EXPECT_EQ(ar.results(0).outcome(), pb::ITEM_OUTCOME_OK);
  // Another sender's status is hidden.
  pb::GetMessageStatusRequest sreq;
  sreq.set_message_id("p-1");
  sreq.set_sender("alice");
  pb::GetMessageStatusResponse sr;
  EXPECT_EQ(stub_->GetMessageStatus(Ctx("tok-bob").get(), sreq, &sr).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(stub_->GetMessageStatus(Ctx("admin-cred").get(), sreq, &sr).ok());
  // Bad Ack requests.
  pb::AckRequest none;
  EXPECT_EQ(stub_->Ack(Ctx("tok-bob").get(), none, &ar).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  pb::SubscribeRequest sub;
  sub.set_agent_id("bob");
  auto sctx = Ctx("tok-alice");
  auto reader = stub_->Subscribe(sctx.get(), sub);
  pb::SubscribeResponse frame;
  EXPECT_FALSE(reader->Read(&frame));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(MacsServiceTest, FullInboxDeadLettersTheOverflowAndTellsTheSender) {
  Stop();
  options_.inbox_cap = 2;
  Start();
  SendOk("alice", Msg("alice", "bob", "f-1"));
  SendOk("alice", Msg("alice", "bob", "f-2"));
  pb::SendResponse r = SendOk("alice", Msg("alice", "bob", "f-3"));
  ASSERT_EQ(r.deliveries_size(), 1);
  EXPECT_EQ(r.deliveries(0).state(), pb::DELIVERY_STATE_DEAD_LETTERED);
  EXPECT_EQ(r.deliveries(0).dead_letter_reason(), pb::DEAD_LETTER_REASON_INBOX_FULL);
  pb::ListDeadLettersRequest lreq;
  pb::ListDeadLettersResponse dead;
  ASSERT_TRUE(stub_->ListDeadLetters(Ctx("tok-bob").get(), lreq, &dead).ok());
  ASSERT_EQ(dead.dead_letters_size(), 1);
  EXPECT_EQ(dead.dead_letters(0).detail(), "inbox at cap 2");
  pb::RequeueDeadLetterRequest rq;
  rq.add_inbox_sequences(3);
  pb::RequeueDeadLetterResponse rr;
  EXPECT_EQ(stub_->RequeueDeadLetter(Ctx("tok-bob").get(), rq, &rr).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  Ack("bob", {1});
  ASSERT_TRUE(stub_->RequeueDeadLetter(Ctx("tok-bob").get(), rq, &rr).ok());
  EXPECT_EQ(rr.results(0).outcome(), pb::ITEM_OUTCOME_OK);
  EXPECT_EQ(Fetch("bob").entries_size(), 2);
}

TEST_F(MacsServiceTest, SeveralSubscribersFanOutOrCompete) {
  SendOk("alice", Msg("alice", "bob", "s-1"));
  Sub one = Subscribe("bob");
  Sub two = Subscribe("bob");
  EXPECT_EQ(two.ready.other_subscribers(), 1);
  EXPECT_EQ(one.Next().message().id(), "s-1");
  EXPECT_EQ(two.Next().message().id(), "s-1");
  // One ack acknowledges for all; the other never sees it again.
  Ack("bob", {1});
  SendOk("alice", Msg("alice", "bob", "s-2"));
  EXPECT_EQ(one.Next().message().id(), "s-2");
  EXPECT_EQ(two.Next().message().id(), "s-2");
  // Mode conflict while FANOUT subscribers are open.
  auto cctx = Ctx("tok-bob");
  pb::SubscribeRequest creq;
  creq.set_mode(pb::SUBSCRIBE_MODE_COMPETING);
  auto creader = stub_->Subscribe(cctx.get(), creq);
  pb::SubscribeResponse frame;
  EXPECT_FALSE(creader->Read(&frame));
  EXPECT_EQ(creader->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  one.ctx->TryCancel();
  two.ctx->TryCancel();

  // COMPETING: each message to one subscriber.
  SendOk("alice", Msg("alice", "carol", "w-1"));
  SendOk("alice", Msg("alice", "carol", "w-2"));
  Sub a = Subscribe("carol", pb::SUBSCRIBE_MODE_COMPETING, 1);
  Sub b = Subscribe("carol", pb::SUBSCRIBE_MODE_UNSPECIFIED, 1);
  EXPECT_EQ(b.ready.mode(), pb::SUBSCRIBE_MODE_COMPETING);
  std::set<std::string> got = {a.Next().message().id(), b.Next().message().id()};
  EXPECT_EQ(got, (std::set<std::string>{"w-1", "w-2"}));
  a.ctx->TryCancel();
  b.ctx->TryCancel();
}

TEST_F(MacsServiceTest, ThreadsAndReadState) {
  SendOk("alice", Msg("alice", "bob", "q-1"));
  pb::Message reply = Msg("bob", "alice", "q-2");
  reply.set_correlation_id("q-1");
  reply.set_reply_to("q-1");
  reply.set_type(pb::MESSAGE_TYPE_RESPONSE);
  SendOk("bob", reply);
  pb::Message other = Msg("carol", "erin", "q-3");
  other.set_correlation_id("q-1");
  SendOk("carol", other);
  pb::GetThreadRequest req;
  req.set_correlation_id("q-1");
  pb::GetThreadResponse resp;
  ASSERT_TRUE(stub_->GetThread(Ctx("tok-alice").get(), req, &resp).ok());
  ASSERT_EQ(resp.messages_size(), 2);
  EXPECT_EQ(resp.messages(0).id(), "q-1");
  EXPECT_EQ(resp.messages(1).id(), "q-2");
  ASSERT_TRUE(stub_->GetThread(Ctx("admin-cred").get(), req, &resp).ok());
  EXPECT_EQ(resp.messages_size(), 3);
  req.set_page_size(2);
  ASSERT_TRUE(stub_->GetThread(Ctx("admin-cred").get(), req, &resp).ok());
  ASSERT_EQ(resp.messages_size(), 2);
  ASSERT_FALSE(resp.next_page_token().empty());
  req.set_page_token(resp.next_page_token());
  ASSERT_TRUE(stub_->GetThread(Ctx("admin-cred").get(), req, &resp).ok());
  ASSERT_EQ(resp.messages_size(), 1);
  EXPECT_EQ(resp.messages(0).id(), "q-3");
  req.set_correlation_id("q-other");
  EXPECT_EQ(stub_->GetThread(Ctx("admin-cred").get(), req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // token bound to another thread

  pb::MarkReadRequest mr;
  mr.add_message_ids("q-1");
  pb::MarkReadResponse mresp;
  ASSERT_TRUE(stub_->MarkRead(Ctx("tok-bob").get(), mr, &mresp).ok());
  EXPECT_EQ(mresp.results(0).outcome(), pb::ITEM_OUTCOME_OK);
  ASSERT_TRUE(stub_->MarkRead(Ctx("tok-bob").get(), mr, &mresp).ok());
  EXPECT_EQ(mresp.results(0).outcome(), pb::ITEM_OUTCOME_ALREADY_DONE);
  EXPECT_EQ(Status("alice", "q-1").recipients(0).state(), pb::DELIVERY_STATE_READ);
  pb::FetchInboxResponse inbox = Fetch("bob", pb::INBOX_FILTER_UNREAD);
  EXPECT_EQ(inbox.entries_size(), 0);
  EXPECT_EQ(inbox.unread_count(), 0);
  EXPECT_EQ(inbox.pending_count(), 1);
}

TEST_F(MacsServiceTest, FetchInboxPaginatesWithACursor) {
  for (int i = 0; i < 5; ++i) SendOk("alice", Msg("alice", "bob", absl::StrCat("pg-", i)));
  pb::FetchInboxRequest req;
  req.set_page_size(2);
  std::vector<std::string> ids;
  for (;;) {
    pb::FetchInboxResponse resp;
    ASSERT_TRUE(stub_->FetchInbox(Ctx("tok-bob").get(), req, &resp).ok());
    for (const auto& e : resp.entries()) ids.push_back(e.message().id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"pg-0", "pg-1", "pg-2", "pg-3", "pg-4"}));
  pb::FetchInboxRequest since;
  since.set_since_sequence(3);
  pb::FetchInboxResponse resp;
  ASSERT_TRUE(stub_->FetchInbox(Ctx("tok-bob").get(), since, &resp).ok());
  EXPECT_EQ(resp.entries_size(), 2);
  since.set_page_size(1001);
  EXPECT_EQ(stub_->FetchInbox(Ctx("tok-bob").get(), since, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  since.set_page_size(0);
  since.set_page_token("garbage!");
  EXPECT_EQ(stub_->FetchInbox(Ctx("tok-bob").get(), since, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(MacsServiceTest, PendingMessagesSurviveARestart) {
  SendOk("alice", Msg("alice", "bob", "k-1"));
  {
    Sub sub = Subscribe("bob");
    EXPECT_EQ(sub.Next().attempt(), 1);
    sub.ctx->TryCancel();
  }
  SendOk("alice", Msg("alice", "bob", "k-2"));
  Restart();
  Sub sub = Subscribe("bob");
  EXPECT_EQ(sub.ready.pending_count(), 2);
  pb::InboxEntry e = sub.Next();
  EXPECT_EQ(e.message().id(), "k-1");
  EXPECT_EQ(e.attempt(), 2);
  EXPECT_EQ(sub.Next().message().id(), "k-2");
  EXPECT_EQ(Stats().sent(), 2);
  SendOk("alice", Msg("alice", "bob", "k-3"));
  EXPECT_EQ(sub.Next().inbox_sequence(), 3);
  sub.ctx->TryCancel();
}

TEST_F(MacsServiceTest, AckDeadlineEscalatesToTheSender) {
  pb::SendRequest req;
  *req.mutable_message() = Sign(Msg("alice", "bob", "e-1"));
  req.mutable_ack_deadline()->set_seconds(60);
  pb::SendResponse resp;
  ASSERT_TRUE(stub_->Send(Ctx("tok-alice").get(), req, &resp).ok());
  clock_.Advance(absl::Seconds(61));
  pb::FetchInboxResponse inbox = Fetch("alice");
  ASSERT_EQ(inbox.entries_size(), 1);
  const pb::Message& esc = inbox.entries(0).message();
  EXPECT_EQ(esc.type(), pb::MESSAGE_TYPE_ESCALATION);
  EXPECT_EQ(esc.sender(), "svc:macs");
  EXPECT_EQ(esc.correlation_id(), "e-1");
  EXPECT_EQ(esc.payload().fields().at("message_id").string_value(), "e-1");
  EXPECT_TRUE(Status("alice", "e-1").escalated());
  EXPECT_EQ(Stats().escalations(), 1);
}

TEST_F(MacsServiceTest, SigningDisabledIsVisibleNeverSilent) {
  Stop();
  options_.signing_enabled = false;
  Start();
  pb::Message m;
  m.set_recipient("bob");
  m.set_body("no id, no time, no signature");
  pb::SendResponse r;
  ASSERT_TRUE(Send("alice", m, &r).ok());
  EXPECT_TRUE(absl::StartsWith(r.message_id(), "msg-"));
  pb::FetchInboxResponse inbox = Fetch("bob");
  ASSERT_EQ(inbox.entries_size(), 1);
  EXPECT_EQ(inbox.entries(0).message().provenance().hmac(), pb::SIGNATURE_STATE_DISABLED);
}

TEST_F(MacsServiceTest, WatchStatsStreamsFrames) {
  SendOk("alice", Msg("alice", "bob", "ws-1"));
  auto ctx = Ctx("tok-bob");
  pb::WatchStatsRequest req;
  auto reader = stub_->WatchStats(ctx.get(), req);
  pb::GetStatsResponse frame;
  ASSERT_TRUE(reader->Read(&frame));
  EXPECT_EQ(frame.totals().sent(), 1);
  SendOk("alice", Msg("alice", "bob", "ws-2"));
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(reader->Read(&frame));
  EXPECT_EQ(frame.totals().sent(), 2);
  ctx->TryCancel();
  req.mutable_interval()->set_seconds(0);
  req.mutable_interval()->set_nanos(1000);
  auto bad_ctx = Ctx("tok-bob");
  auto bad = stub_->WatchStats(bad_ctx.get(), req);
  EXPECT_FALSE(bad->Read(&frame));
  EXPECT_EQ(bad->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace cnet::macs
