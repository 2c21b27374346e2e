// Adapter tests over a real channel: the registry server on port 0 with the
// shared auth interceptor, a simulated clock for the core.
#include "services/registry/registry_service.h"

#include <google/protobuf/util/time_util.h>
#include <stdlib.h>

#include <cmath>
#include <limits>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"

namespace cnet::registry {
namespace {
namespace pb = claudenet::v1;

constexpr char kAdmin[] = "admin-credential";
constexpr char kService[] = "service-credential";

std::chrono::system_clock::time_point Deadline(int seconds = 30) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

class RegistryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/regsvcXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    options_.local_node = "node-a";
    Start();
  }

  void TearDown() override { Stop(); }

  void Start() {
    auto store = RegistryStore::Open(dir_ + "/registry.db");
    ASSERT_TRUE(store.ok()) << store.status();
    auto registry = Registry::Open(options_, std::move(*store), &clock_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = std::move(*registry);
    impl_ = std::make_unique<RegistryServiceImpl>(registry_.get());
    ServerOptions server_options;
    server_options.name = "registry";
    server_options.services = {impl_.get()};
    server_options.health_names = {"claudenet.v1.RegistryService"};
    server_options.interceptors.push_back(
        auth::MakeAuthInterceptorFactory(std::make_shared<auth::StaticAuthenticator>(
            kAdmin, kService, std::make_shared<RegistryTokenAuthenticator>(registry_.get()))));
    auto server = GrpcServer::Start(std::move(server_options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = MakeChannel(server_->address());
    stub_ = pb::RegistryService::NewStub(channel_);
  }

  void Stop() {
    if (registry_) registry_->hub()->Close();
    if (server_) server_->Shutdown(absl::Seconds(5));
    if (registry_) registry_->Shutdown();
    server_.reset();
    impl_.reset();
    registry_.reset();
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& credential = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(Deadline());
    if (!credential.empty()) auth::SetBearer(ctx.get(), credential);
    return ctx;
  }

  struct Agent {
    std::string id;
    std::string token;
  };

  Agent Register(const std::string& name, std::vector<std::string> caps = {},
                 const std::string& id = "") {
    pb::RegisterRequest req;
    req.set_agent_id(id);
    req.set_name(name);
    for (auto& c : caps) req.add_capabilities(c);
    pb::RegisterResponse resp;
    grpc::Status s = stub_->Register(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.agent().id(), resp.token()};
  }

  grpc::Status Beat(const std::string& credential, const pb::HeartbeatRequest& req,
                    pb::HeartbeatResponse* resp = nullptr) {
    pb::HeartbeatResponse ignored;
    return stub_->Heartbeat(Ctx(credential).get(), req, resp ? resp : &ignored);
  }

  // Everything a failed call must leave alone.
  struct Snapshot {
    size_t agents;
    int64_t sequence;
    std::string records;
  };
  Snapshot Take() {
    Snapshot s{registry_->agent_count(), registry_->current_sequence(), ""};
    pb::ListAgentsRequest list;
    list.set_page_size(1000);
    auto page = registry_->ListAgents(list);
    for (auto a : page->agents()) {
      a.clear_health_reason();
      s.records += a.SerializeAsString();
    }
    return s;
  }
  void ExpectUnchanged(const Snapshot& before) {
    Snapshot after = Take();
    EXPECT_EQ(after.agents, before.agents);
    EXPECT_EQ(after.sequence, before.sequence);
    EXPECT_TRUE(after.records == before.records) << "stored agents changed";
  }

  // Reads events until one of `type` (or the stream ends).
  static bool ReadUntil(grpc::ClientReader<pb::AgentEvent>* reader, pb::AgentEventType type,
                        pb::AgentEvent* out) {
    while (reader->Read(out)) {
      if (out->type() == type) return true;
    }
    return false;
  }

  std::string dir_;
  SimulatedClock clock_;
  RegistryOptions options_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<RegistryServiceImpl> impl_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::RegistryService::Stub> stub_;
};

// Expects `status` to have `code` and a message mentioning `needle`.
#define EXPECT_RPC_ERROR(status, code, needle)                                     \
  do {                                                                             \
    grpc::Status s_ = (status);                                                    \
    EXPECT_EQ(s_.error_code(), grpc::StatusCode::code) << s_.error_message();      \
    EXPECT_NE(s_.error_message().find(needle), std::string::npos)                  \
        << "message \"" << s_.error_message() << "\" does not mention " << needle; \
  } while (false)

TEST_F(RegistryServiceTest, ServesHealth) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("claudenet.v1.RegistryService");
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(RegistryServiceTest, RegisterHeartbeatListAndWatchSeeEventsInOrder) {
  pb::WatchAgentsRequest watch;
  watch.set_send_snapshot(true);
  auto watch_ctx = Ctx(kService);
  auto reader = stub_->Watch(watch_ctx.get(), watch);
  pb::AgentEvent ev;
  bool got_end = ReadUntil(reader.get(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END, &ev);
  if (!got_end) {
    grpc::Status st = reader->Finish();
    FAIL() << st.error_code() << " " << st.error_message();
  }
  EXPECT_EQ(ev.sequence(), 0);

  Agent a = Register("alpha", {"python", "review"});
  Agent b = Register("beta", {"go"});
  ASSERT_FALSE(a.token.empty());
  pb::HeartbeatRequest beat;
  beat.set_status(pb::AGENT_STATUS_BUSY);
  beat.mutable_metrics()->set_active_tasks(1);
  pb::HeartbeatResponse beat_resp;
  ASSERT_TRUE(Beat(a.token, beat, &beat_resp).ok());
  EXPECT_EQ(beat_resp.health(), pb::HEALTH_HEALTHY);
  EXPECT_EQ(beat_resp.next_heartbeat_in().seconds(), 15);

  pb::ListAgentsRequest list;
  list.add_capabilities_all("python");
  pb::ListAgentsResponse listed;
  ASSERT_TRUE(stub_->ListAgents(Ctx(b.token).get(), list, &listed).ok());
  ASSERT_EQ(listed.agents_size(), 1);
  EXPECT_EQ(listed.agents(0).id(), a.id);
  EXPECT_EQ(listed.agents(0).status(), pb::AGENT_STATUS_BUSY);
  EXPECT_EQ(listed.agents(0).metrics().active_tasks(), 1);

  pb::FindAgentsRequest find;
  find.add_capabilities("python");
  pb::FindAgentsResponse found;
  ASSERT_TRUE(stub_->FindAgents(Ctx(b.token).get(), find, &found).ok());
  ASSERT_EQ(found.agents_size(), 1);

  pb::DeregisterRequest leave;
  leave.set_reason("done for today");
  pb::DeregisterResponse left;
  ASSERT_TRUE(stub_->Deregister(Ctx(b.token).get(), leave, &left).ok());
  EXPECT_EQ(left.agent().id(), b.id);

  std::vector<std::pair<pb::AgentEventType, std::string>> seen;
  int64_t last_sequence = 0;
  while (seen.size() < 4 && reader->Read(&ev)) {
    EXPECT_GT(ev.sequence(), last_sequence);
    last_sequence = ev.sequence();
    seen.emplace_back(ev.type(), ev.agent().id());
  }
  std::vector<std::pair<pb::AgentEventType, std::string>> expected = {
      {pb::AGENT_EVENT_TYPE_REGISTERED, a.id},
      {pb::AGENT_EVENT_TYPE_REGISTERED, b.id},
      {pb::AGENT_EVENT_TYPE_STATUS_CHANGED, a.id},
      {pb::AGENT_EVENT_TYPE_DEREGISTERED, b.id}};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(ev.reason(), "done for today");
  watch_ctx->TryCancel();
  reader->Finish();
}

TEST_F(RegistryServiceTest, WatchResumesAfterASequenceNumberWithFilters) {
  Agent a = Register("alpha", {"python"});
  Agent b = Register("beta", {"go"});
  Agent c = Register("gamma", {"python"});
  pb::WatchAgentsRequest watch;
  watch.set_from_sequence(1);
  watch.add_capabilities_any("python");
  auto ctx = Ctx(a.token);
  auto reader = stub_->Watch(ctx.get(), watch);
  pb::AgentEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.sequence(), 3);  // 2 (beta) is filtered out
  EXPECT_EQ(ev.agent().id(), c.id);
  // Then live events.
  Register("delta", {"python"});
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.sequence(), 4);
  EXPECT_EQ(ev.type(), pb::AGENT_EVENT_TYPE_REGISTERED);
  ctx->TryCancel();
  reader->Finish();
}

TEST_F(RegistryServiceTest, WatchEventTypeFilterAndHealthEventsFromTimers) {
  Agent a = Register("alpha");
  pb::WatchAgentsRequest watch;
  watch.set_send_snapshot(true);
  watch.add_event_types(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  auto ctx = Ctx(a.token);
  auto reader = stub_->Watch(ctx.get(), watch);
  pb::AgentEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.type(), pb::AGENT_EVENT_TYPE_SNAPSHOT);
  ASSERT_TRUE(ReadUntil(reader.get(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END, &ev));
  Register("beta");                    // REGISTERED: filtered out
  clock_.Advance(absl::Seconds(31));   // both WARNING
  // The filtered stream first learns that nothing matched up to 2.
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.type(), pb::AGENT_EVENT_TYPE_CHECKPOINT);
  EXPECT_EQ(ev.sequence(), 2);
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.type(), pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  EXPECT_EQ(ev.agent().health(), pb::HEALTH_WARNING);
  EXPECT_EQ(ev.previous_health(), pb::HEALTH_HEALTHY);
  ctx->TryCancel();
  reader->Finish();
}

TEST_F(RegistryServiceTest, WatchFromAnUnretainedSequenceAsksForResync) {
  Stop();
  options_.event_retention = 2;
  Start();
  Agent a = Register("a");
  for (int i = 0; i < 4; ++i) Register(absl::StrCat("n", i));
  pb::WatchAgentsRequest watch;
  watch.set_from_sequence(1);
  auto ctx = Ctx(a.token);
  auto reader = stub_->Watch(ctx.get(), watch);
  pb::AgentEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.type(), pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED);
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_TRUE(reader->Finish().ok());

  watch.set_from_sequence(99);
  auto ctx2 = Ctx(a.token);
  auto reader2 = stub_->Watch(ctx2.get(), watch);
  EXPECT_FALSE(reader2->Read(&ev));
  EXPECT_RPC_ERROR(reader2->Finish(), INVALID_ARGUMENT, "from_sequence");
}

TEST_F(RegistryServiceTest, SlowWatcherIsToldToResyncAndTheRegistryDoesNotWait) {
  Stop();
  options_.watch_buffer = 16;
  Start();
  Agent a = Register("a");
  // A watcher whose transport window stays small (no BDP growth): once it
  // stops reading, the server's writes stall after 64 KiB whatever the
  // machine's speed, and the registry's 16-event buffer for it fills.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
  auto slow_channel =
      grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
  auto slow_stub = pb::RegistryService::NewStub(slow_channel);
  pb::WatchAgentsRequest watch;
  watch.set_send_snapshot(true);
  auto ctx = Ctx(a.token);
  auto reader = slow_stub->Watch(ctx.get(), watch);
  pb::AgentEvent ev;
  ASSERT_TRUE(ReadUntil(reader.get(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END, &ev));
  // The watcher stops reading; the registry goes on.
  pb::RegisterRequest big;
  (*big.mutable_metadata())["blob"] = std::string(1000, 'x');
  for (int i = 0; i < 14; ++i) {
    (*big.mutable_metadata())[absl::StrCat("k", i)] = std::string(1000, 'y');
  }
  for (int i = 0; i < 300; ++i) {
    big.set_name(absl::StrCat("agent ", i));
    ASSERT_TRUE(registry_->Register(Actor(), big).ok());
  }
  bool resync = ReadUntil(reader.get(), pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED, &ev);
  EXPECT_TRUE(resync);
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(RegistryServiceTest, TooManyWatchersPerCredential) {
  Stop();
  options_.max_watchers_per_caller = 2;
  Start();
  Agent a = Register("a");
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<pb::AgentEvent>>> readers;
  pb::WatchAgentsRequest watch;
  watch.set_send_snapshot(true);
  pb::AgentEvent ev;
  for (int i = 0; i < 2; ++i) {
    ctxs.push_back(Ctx(a.token));
    readers.push_back(stub_->Watch(ctxs.back().get(), watch));
    ASSERT_TRUE(ReadUntil(readers.back().get(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END, &ev));
  }
  auto ctx = Ctx(a.token);
  auto third = stub_->Watch(ctx.get(), watch);
  EXPECT_FALSE(third->Read(&ev));
  grpc::Status s = third->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  // Another credential is not affected.
  auto svc_ctx = Ctx(kService);
  auto other = stub_->Watch(svc_ctx.get(), watch);
  EXPECT_TRUE(ReadUntil(other.get(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END, &ev));
  svc_ctx->TryCancel();
  other->Finish();
  for (size_t i = 0; i < readers.size(); ++i) {
    ctxs[i]->TryCancel();
    readers[i]->Finish();
  }
}

TEST_F(RegistryServiceTest, TokenChecks) {
  Agent a = Register("alpha");
  Agent b = Register("beta");
  Snapshot before = Take();
  pb::HeartbeatRequest beat;
  EXPECT_RPC_ERROR(Beat("", beat), UNAUTHENTICATED, "token");
  EXPECT_RPC_ERROR(Beat("cnt_0000", beat), UNAUTHENTICATED, "unknown credential");
  beat.set_agent_id(b.id);
  EXPECT_RPC_ERROR(Beat(a.token, beat), PERMISSION_DENIED, b.id);
  EXPECT_RPC_ERROR(Beat(kAdmin, beat), PERMISSION_DENIED, "own token");

  pb::UpdateAgentRequest update;
  update.mutable_agent()->set_id(b.id);
  update.mutable_agent()->set_name("mine now");
  update.mutable_update_mask()->add_paths("name");
  pb::UpdateAgentResponse updated;
  EXPECT_RPC_ERROR(stub_->UpdateAgent(Ctx(a.token).get(), update, &updated), PERMISSION_DENIED,
                   b.id);
  EXPECT_RPC_ERROR(stub_->UpdateAgent(Ctx().get(), update, &updated), UNAUTHENTICATED,
                   "authorization");
  pb::DeregisterRequest leave;
  leave.set_agent_id(b.id);
  pb::DeregisterResponse left;
  EXPECT_RPC_ERROR(stub_->Deregister(Ctx(a.token).get(), leave, &left), PERMISSION_DENIED, b.id);
  EXPECT_RPC_ERROR(stub_->Deregister(Ctx().get(), leave, &left), UNAUTHENTICATED,
                   "authorization");
  pb::RotateTokenRequest rotate;
  rotate.set_agent_id(b.id);
  pb::RotateTokenResponse rotated;
  EXPECT_RPC_ERROR(stub_->RotateToken(Ctx(a.token).get(), rotate, &rotated), PERMISSION_DENIED,
                   b.id);
  pb::RegisterRequest steal;
  steal.set_agent_id(b.id);
  steal.set_name("stolen");
  pb::RegisterResponse stolen;
  EXPECT_RPC_ERROR(stub_->Register(Ctx(a.token).get(), steal, &stolen), PERMISSION_DENIED, b.id);
  EXPECT_RPC_ERROR(stub_->Register(Ctx().get(), steal, &stolen), PERMISSION_DENIED, b.id);
  EXPECT_RPC_ERROR(stub_->Register(Ctx("garbage").get(), steal, &stolen), UNAUTHENTICATED,
                   "credential");
  // Reads need a credential, any kind.
  pb::GetAgentRequest get;
  get.set_agent_id(b.id);
  pb::GetAgentResponse got;
  EXPECT_RPC_ERROR(stub_->GetAgent(Ctx().get(), get, &got), UNAUTHENTICATED, "credential");
  // ValidateToken is for services.
  pb::ValidateTokenRequest validate;
  validate.set_token(b.token);
  pb::ValidateTokenResponse valid;
  EXPECT_RPC_ERROR(stub_->ValidateToken(Ctx(a.token).get(), validate, &valid),
                   PERMISSION_DENIED, "service");
  EXPECT_RPC_ERROR(stub_->ValidateToken(Ctx().get(), validate, &valid), UNAUTHENTICATED,
                   "credential");
  pb::SyncRemoteAgentsRequest sync;
  sync.set_origin_node("node-b");
  pb::SyncRemoteAgentsResponse synced;
  EXPECT_RPC_ERROR(stub_->SyncRemoteAgents(Ctx(kAdmin).get(), sync, &synced), PERMISSION_DENIED,
                   "service credential");
  ExpectUnchanged(before);

  // The right credentials work.
  ASSERT_TRUE(stub_->ValidateToken(Ctx(kService).get(), validate, &valid).ok());
  EXPECT_TRUE(valid.valid());
  EXPECT_EQ(valid.principal().id(), b.id);
  beat.set_agent_id("");
  EXPECT_TRUE(Beat(b.token, beat).ok());
  ASSERT_TRUE(stub_->RotateToken(Ctx(b.token).get(), pb::RotateTokenRequest(), &rotated).ok());
  EXPECT_RPC_ERROR(Beat(b.token, beat), UNAUTHENTICATED, "rotated");
  EXPECT_TRUE(Beat(rotated.token(), beat).ok());
  ASSERT_TRUE(stub_->ValidateToken(Ctx(kService).get(), validate, &valid).ok());
  EXPECT_FALSE(valid.valid());
  EXPECT_EQ(valid.invalid_reason(), pb::TOKEN_INVALID_REASON_ROTATED);
  ASSERT_TRUE(stub_->Deregister(Ctx(kAdmin).get(), leave, &left).ok());
  EXPECT_RPC_ERROR(Beat(rotated.token(), beat), UNAUTHENTICATED, "revoked");
}

TEST_F(RegistryServiceTest, BadRegistrationsAreRejectedNamingTheFieldAndChangeNothing) {
  Agent a = Register("alpha", {}, "taken");
  Snapshot before = Take();
  struct Case {
    std::string what;
    std::function<void(pb::RegisterRequest*)> edit;
    grpc::StatusCode code;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"empty name", [](pb::RegisterRequest* r) { r->set_name(""); },
       grpc::StatusCode::INVALID_ARGUMENT, "name: empty"},
      {"overlong name", [](pb::RegisterRequest* r) { r->set_name(std::string(129, 'n')); },
       grpc::StatusCode::INVALID_ARGUMENT, "name: longer than 128 bytes"},
      {"bad id", [](pb::RegisterRequest* r) { r->set_agent_id("bad id!"); },
       grpc::StatusCode::INVALID_ARGUMENT, "agent_id \"bad id!\""},
      {"overlong id", [](pb::RegisterRequest* r) { r->set_agent_id(std::string(129, 'i')); },
       grpc::StatusCode::INVALID_ARGUMENT, "longer than 128 bytes"},
      {"reserved id", [](pb::RegisterRequest* r) { r->set_agent_id("svc:tasks"); },
       grpc::StatusCode::INVALID_ARGUMENT, "reserved"},
      {"broadcast", [](pb::RegisterRequest* r) { r->set_agent_id("broadcast"); },
       grpc::StatusCode::INVALID_ARGUMENT, "reserved"},
      {"65 capabilities",
       [](pb::RegisterRequest* r) {
         for (int i = 0; i < 65; ++i) r->add_capabilities(absl::StrCat("c", i));
       },
       grpc::StatusCode::INVALID_ARGUMENT, "capabilities: 65 capabilities, at most 64"},
      {"capability syntax", [](pb::RegisterRequest* r) {
         r->add_capabilities("python");
         r->add_capabilities("Py Thon");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "capabilities[1] \"Py Thon\": must match"},
      {"overlong capability",
       [](pb::RegisterRequest* r) { r->add_capabilities(std::string(65, 'c')); },
       grpc::StatusCode::INVALID_ARGUMENT, "capabilities[0]"},
      {"empty capability", [](pb::RegisterRequest* r) { r->add_capabilities(""); },
       grpc::StatusCode::INVALID_ARGUMENT, "capabilities[0]"},
      {"other node", [](pb::RegisterRequest* r) { r->set_node("node-z"); },
       grpc::StatusCode::INVALID_ARGUMENT, "node \"node-z\""},
      {"metadata key", [](pb::RegisterRequest* r) { (*r->mutable_metadata())["a b"] = "x"; },
       grpc::StatusCode::INVALID_ARGUMENT, "metadata[\"a b\"]"},
      {"metadata size",
       [](pb::RegisterRequest* r) {
         for (int i = 0; i < 20; ++i) {
           (*r->mutable_metadata())[absl::StrCat("k", i)] = std::string(1000, 'v');
         }
       },
       grpc::StatusCode::INVALID_ARGUMENT, "metadata: "},
      {"card url", [](pb::RegisterRequest* r) { r->mutable_card()->set_url("not a url"); },
       grpc::StatusCode::INVALID_ARGUMENT, "card.url"},
      {"skill without name", [](pb::RegisterRequest* r) {
         auto* s = r->mutable_card()->add_skills();
         s->set_id("x");
         s->set_description("d");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "card.skills[0].name: empty"},
      {"public key", [](pb::RegisterRequest* r) {
         r->mutable_public_key()->set_algorithm(pb::KEY_ALGORITHM_ED25519);
         r->mutable_public_key()->set_key("short");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "public_key.key"},
      {"status", [](pb::RegisterRequest* r) { r->set_status(static_cast<pb::AgentStatus>(9)); },
       grpc::StatusCode::INVALID_ARGUMENT, "status"},
      {"concurrency", [](pb::RegisterRequest* r) { r->set_max_concurrent_tasks(1001); },
       grpc::StatusCode::INVALID_ARGUMENT, "max_concurrent_tasks"},
      {"negative metric",
       [](pb::RegisterRequest* r) { r->mutable_metrics()->set_errors(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "metrics.errors"},
      {"existing id without its token", [](pb::RegisterRequest* r) { r->set_agent_id("taken"); },
       grpc::StatusCode::PERMISSION_DENIED, "taken"},
  };
  for (const Case& c : cases) {
    pb::RegisterRequest req;
    req.set_name("valid name");
    c.edit(&req);
    pb::RegisterResponse resp;
    auto ctx = Ctx();
    grpc::Status s = stub_->Register(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.needle), std::string::npos)
        << c.what << ": \"" << s.error_message() << "\" lacks \"" << c.needle << "\"";
    // Machine-readable details in the trailer.
    auto trailer = ctx->GetServerTrailingMetadata().find("claudenet-error-bin");
    ASSERT_NE(trailer, ctx->GetServerTrailingMetadata().end()) << c.what;
    pb::ErrorDetail detail;
    ASSERT_TRUE(detail.ParseFromArray(trailer->second.data(), trailer->second.size()));
    if (c.code == grpc::StatusCode::INVALID_ARGUMENT) {
      ASSERT_EQ(detail.field_violations_size(), 1) << c.what;
      const std::string& field = detail.field_violations(0).field();
      EXPECT_FALSE(field.empty()) << c.what;
      EXPECT_EQ(s.error_message().rfind(field, 0), 0u) << c.what << ": field " << field;
    }
  }
  ExpectUnchanged(before);
}

TEST_F(RegistryServiceTest, BadQueriesAndHeartbeatsAreRejectedAndChangeNothing) {
  Agent a = Register("alpha", {"python"});
  pb::HeartbeatRequest ok_beat;
  ASSERT_TRUE(Beat(a.token, ok_beat).ok());
  ASSERT_TRUE(registry_->Flush().ok());
  Snapshot before = Take();

  pb::ListAgentsResponse listed;
  pb::ListAgentsRequest list;
  list.set_page_size(-1);
  EXPECT_RPC_ERROR(stub_->ListAgents(Ctx(a.token).get(), list, &listed), INVALID_ARGUMENT,
                   "page_size: -1 is outside 0..1000");
  list.set_page_size(1001);
  EXPECT_RPC_ERROR(stub_->ListAgents(Ctx(a.token).get(), list, &listed), INVALID_ARGUMENT,
                   "page_size: 1001");
  list.set_page_size(10);
  list.set_page_token("not-a-token");
  EXPECT_RPC_ERROR(stub_->ListAgents(Ctx(a.token).get(), list, &listed), INVALID_ARGUMENT,
                   "page_token");
  list.clear_page_token();
  list.add_capabilities_all("Bad Cap");
  EXPECT_RPC_ERROR(stub_->ListAgents(Ctx(a.token).get(), list, &listed), INVALID_ARGUMENT,
                   "capabilities_all[0]");
  list.clear_capabilities_all();
  list.add_nodes("bad node");
  EXPECT_RPC_ERROR(stub_->ListAgents(Ctx(a.token).get(), list, &listed), INVALID_ARGUMENT,
                   "nodes[0]");

  pb::FindAgentsRequest find;
  pb::FindAgentsResponse found;
  find.set_limit(1001);
  EXPECT_RPC_ERROR(stub_->FindAgents(Ctx(a.token).get(), find, &found), INVALID_ARGUMENT,
                   "limit");
  find.set_limit(0);
  find.add_capabilities("UPPER");
  EXPECT_RPC_ERROR(stub_->FindAgents(Ctx(a.token).get(), find, &found), INVALID_ARGUMENT,
                   "capabilities[0] \"UPPER\"");

  pb::GetAgentRequest get;
  pb::GetAgentResponse got;
  get.set_agent_id("nobody");
  EXPECT_RPC_ERROR(stub_->GetAgent(Ctx(a.token).get(), get, &got), NOT_FOUND,
                   "agent \"nobody\": not found");
  get.set_agent_id("");
  EXPECT_RPC_ERROR(stub_->GetAgent(Ctx(a.token).get(), get, &got), INVALID_ARGUMENT,
                   "agent_id: empty");
  pb::DeregisterRequest leave;
  leave.set_agent_id("nobody");
  pb::DeregisterResponse left;
  EXPECT_RPC_ERROR(stub_->Deregister(Ctx(kAdmin).get(), leave, &left), NOT_FOUND, "nobody");
  pb::UpdateAgentRequest update;
  update.mutable_agent()->set_id("nobody");
  update.mutable_update_mask()->add_paths("name");
  update.mutable_agent()->set_name("x");
  pb::UpdateAgentResponse updated;
  EXPECT_RPC_ERROR(stub_->UpdateAgent(Ctx(kAdmin).get(), update, &updated), NOT_FOUND, "nobody");
  update.mutable_agent()->set_id(a.id);
  update.mutable_update_mask()->set_paths(0, "health");
  EXPECT_RPC_ERROR(stub_->UpdateAgent(Ctx(a.token).get(), update, &updated), INVALID_ARGUMENT,
                   "update_mask.paths[0] \"health\"");
  update.clear_update_mask();
  EXPECT_RPC_ERROR(stub_->UpdateAgent(Ctx(a.token).get(), update, &updated), INVALID_ARGUMENT,
                   "update_mask: empty");
  update.mutable_update_mask()->add_paths("name");
  update.mutable_agent()->set_name("");
  EXPECT_RPC_ERROR(stub_->UpdateAgent(Ctx(a.token).get(), update, &updated), INVALID_ARGUMENT,
                   "agent.name: empty");
  update.mutable_agent()->set_name("new name");
  update.set_expected_revision(7);
  EXPECT_RPC_ERROR(stub_->UpdateAgent(Ctx(a.token).get(), update, &updated), FAILED_PRECONDITION,
                   "expected_revision");

  pb::HeartbeatRequest beat;
  beat.mutable_metrics()->set_messages_sent(-5);
  EXPECT_RPC_ERROR(Beat(a.token, beat), INVALID_ARGUMENT, "metrics.messages_sent: negative");
  beat.Clear();
  beat.mutable_metrics()->set_load(std::nan(""));
  EXPECT_RPC_ERROR(Beat(a.token, beat), INVALID_ARGUMENT, "metrics.load");
  beat.mutable_metrics()->set_load(2000);
  EXPECT_RPC_ERROR(Beat(a.token, beat), INVALID_ARGUMENT, "metrics.load");
  beat.Clear();
  beat.set_status_message(std::string(257, 's'));
  EXPECT_RPC_ERROR(Beat(a.token, beat), INVALID_ARGUMENT, "status_message");

  pb::GetNetworkStatusRequest status;
  status.set_capability_limit(1001);
  pb::GetNetworkStatusResponse status_resp;
  EXPECT_RPC_ERROR(stub_->GetNetworkStatus(Ctx(a.token).get(), status, &status_resp),
                   INVALID_ARGUMENT, "capability_limit");
  pb::ValidateTokenRequest validate;
  pb::ValidateTokenResponse valid;
  EXPECT_RPC_ERROR(stub_->ValidateToken(Ctx(kService).get(), validate, &valid), INVALID_ARGUMENT,
                   "token: empty");
  pb::ListAgentCardsRequest cards;
  cards.set_page_size(5000);
  pb::ListAgentCardsResponse cards_resp;
  EXPECT_RPC_ERROR(stub_->ListAgentCards(Ctx(a.token).get(), cards, &cards_resp),
                   INVALID_ARGUMENT, "page_size");
  pb::WatchAgentsRequest watch;
  watch.set_from_sequence(-1);
  auto wctx = Ctx(a.token);
  auto reader = stub_->Watch(wctx.get(), watch);
  pb::AgentEvent ev;
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_RPC_ERROR(reader->Finish(), INVALID_ARGUMENT, "from_sequence");
  ExpectUnchanged(before);
}

TEST_F(RegistryServiceTest, RateLimitedRotationCarriesARetryDelay) {
  Agent a = Register("alpha");
  pb::RotateTokenResponse rotated;
  ASSERT_TRUE(stub_->RotateToken(Ctx(a.token).get(), pb::RotateTokenRequest(), &rotated).ok());
  auto ctx = Ctx(rotated.token());
  pb::RotateTokenResponse again;
  grpc::Status s = stub_->RotateToken(ctx.get(), pb::RotateTokenRequest(), &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto retry = ctx->GetServerTrailingMetadata().find("claudenet-retry-after-ms");
  ASSERT_NE(retry, ctx->GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(retry->second.data(), retry->second.size()), "10000");
  // The token from the first rotation still works.
  EXPECT_TRUE(Beat(rotated.token(), pb::HeartbeatRequest()).ok());
}

TEST_F(RegistryServiceTest, HeartbeatStreamAnswersEachBeatAndCanSignOff) {
  Agent a = Register("alpha");
  Agent b = Register("beta");
  {
    auto ctx = Ctx(a.token);
    auto stream = stub_->HeartbeatStream(ctx.get());
    pb::HeartbeatRequest beat;
    beat.set_offline_on_close(true);
    beat.set_status(pb::AGENT_STATUS_BUSY);
    for (int i = 0; i < 3; ++i) {
      beat.mutable_metrics()->set_messages_sent(i);
      ASSERT_TRUE(stream->Write(beat));
      pb::HeartbeatResponse resp;
      ASSERT_TRUE(stream->Read(&resp));
      EXPECT_EQ(resp.health(), pb::HEALTH_HEALTHY);
      EXPECT_EQ(resp.next_heartbeat_in().seconds(), 15);
    }
    ASSERT_TRUE(stream->WritesDone());
    EXPECT_TRUE(stream->Finish().ok());
  }
  pb::GetAgentRequest get;
  get.set_agent_id(a.id);
  pb::GetAgentResponse got;
  ASSERT_TRUE(stub_->GetAgent(Ctx(b.token).get(), get, &got).ok());
  EXPECT_EQ(got.agent().status(), pb::AGENT_STATUS_OFFLINE);
  EXPECT_EQ(got.agent().metrics().messages_sent(), 2);

  // Another agent's id on the stream ends it.
  auto ctx = Ctx(a.token);
  auto stream = stub_->HeartbeatStream(ctx.get());
  pb::HeartbeatRequest beat;
  beat.set_agent_id(b.id);
  ASSERT_TRUE(stream->Write(beat));
  pb::HeartbeatResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(RegistryServiceTest, AgentCardsAsA2aDocuments) {
  pb::RegisterRequest req;
  req.set_name("reviewer");
  req.set_version("1.2.0");
  req.add_capabilities("review");
  req.mutable_card()->set_description("Reviews pull requests.");
  req.mutable_card()->set_url("https://agents.example.com/reviewer");
  auto* skill = req.mutable_card()->add_skills();
  skill->set_id("review-pr");
  skill->set_name("Review a PR");
  skill->set_description("Reads a diff and comments.");
  pb::RegisterResponse registered;
  ASSERT_TRUE(stub_->Register(Ctx().get(), req, &registered).ok());
  pb::GetAgentCardRequest get;
  get.set_agent_id(registered.agent().id());
  pb::GetAgentCardResponse card;
  ASSERT_TRUE(stub_->GetAgentCard(Ctx(registered.token()).get(), get, &card).ok());
  EXPECT_EQ(card.card().url(), "https://agents.example.com/reviewer");
  EXPECT_EQ(card.card().skills(0).tags(0), "review-pr");
  EXPECT_NE(card.json().find("\"name\":\"reviewer\""), std::string::npos) << card.json();
  EXPECT_NE(card.json().find("\"stateTransitionHistory\":true"), std::string::npos);
  pb::ListAgentCardsResponse cards;
  ASSERT_TRUE(stub_->ListAgentCards(Ctx(registered.token()).get(), pb::ListAgentCardsRequest(),
                                    &cards)
                  .ok());
  ASSERT_EQ(cards.cards_size(), 1);
  EXPECT_EQ(cards.cards(0).json(), card.json());
}

TEST_F(RegistryServiceTest, NetworkStatusOverTheWire) {
  Agent a = Register("alpha", {"python"});
  pb::GetNetworkStatusResponse status;
  ASSERT_TRUE(
      stub_->GetNetworkStatus(Ctx(a.token).get(), pb::GetNetworkStatusRequest(), &status).ok());
  EXPECT_EQ(status.total_agents(), 1);
  EXPECT_EQ(status.local_node(), "node-a");
  EXPECT_EQ(status.current_sequence(), 1);
  ASSERT_EQ(status.by_capability_size(), 1);
}

}  // namespace
}  // namespace cnet::registry
