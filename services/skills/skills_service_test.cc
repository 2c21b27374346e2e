// Adapter tests over a real channel: the skills server on port 0 with the
// shared auth interceptor, a thread-pool engine, and in-memory MACS /
// Registry / Tasks. Time is simulated, so a run that sleeps stays in flight
// until the test advances the clock.
#include "services/skills/skills_service.h"

#include <google/protobuf/util/time_util.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "services/skills/json_proto.h"
#include "services/skills/testing/test_bed.h"

namespace cnet::skills {
namespace {

using testing::TestBed;
using testing::TestBedOptions;

// Agent tokens of the test: "tok-<agent>".
class TokenAuthenticator final : public auth::Authenticator {
 public:
  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override {
    std::string c(credential);
    if (c.rfind("tok-", 0) == 0) return auth::Principal{auth::Kind::kAgent, c.substr(4), ""};
    return absl::UnauthenticatedError("authorization: unknown credential");
  }
};

TestBedOptions Threads() {
  TestBedOptions o;
  o.inline_executor = false;
  o.engine.max_runs = 3;
  o.engine.max_runs_per_agent = 3;
  return o;
}

class SkillServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bed_.Write("core/echo.yaml", R"(name: echo
version: 1.0.0
description: Echoes its input.
inputs:
  text: {type: string, required: true}
  times: {type: int, default: 1}
outputs:
  said: "{{ steps.say.output.message }}"
steps:
  - id: say
    action: log
    args: {message: "{{ inputs.text }} x{{ inputs.times }}"}
)");
    bed_.Write("core/nap.yaml", R"(name: nap
version: 1.0.0
description: Sleeps an hour (simulated).
steps:
  - id: nap
    action: sleep
    args: {duration: 1h}
    timeout: 2h
)");
    bed_.Write("domain/ops/run_ls.yaml", R"(name: run_ls
version: 1.0.0
description: Lists a directory with a shell command.
steps:
  - id: ls
    action: shell
    args: {command: ls, args: ["/"]}
)");
    bed_.Write("core/data/broken.yaml", "name: broken\nversion: 1.0.0\ndescription: x\n");
    bed_.Reload();
    for (const char* agent : {"alice", "bob", "carol", "dave"}) bed_.net().AddAgent(agent, {});
    impl_ = std::make_unique<SkillServiceImpl>(&bed_.engine(), &bed_.library(), &clock_);
    ServerOptions options;
    options.name = "skills";
    options.services = {impl_.get()};
    options.health_names = {"claudenet.v1.SkillService"};
    options.interceptors.push_back(auth::MakeAuthInterceptorFactory(
        std::make_shared<auth::StaticAuthenticator>("admin-cred", "svc-cred",
                                                    std::make_shared<TokenAuthenticator>())));
    auto server = GrpcServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = MakeChannel(server_->address());
    stub_ = pb::SkillService::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& credential = "tok-alice") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!credential.empty()) auth::SetBearer(ctx.get(), credential);
    return ctx;
  }

  pb::RunSkillRequest Run(const std::string& name, Json inputs = Json::object(),
                          pb::RunMode mode = pb::RUN_MODE_SYNC) {
    pb::RunSkillRequest req;
    req.set_name(name);
    ToProtoStruct(inputs, req.mutable_inputs());
    req.set_mode(mode);
    return req;
  }

  // Reads a run's stream to its end.
  std::vector<pb::RunEvent> Watch(const std::string& run_id, int64_t from = 0,
                                  grpc::Status* end = nullptr) {
    auto ctx = Ctx();
    pb::WatchRunRequest req;
    req.set_run_id(run_id);
    req.set_from_sequence(from);
    auto reader = stub_->WatchRun(ctx.get(), req);
    std::vector<pb::RunEvent> events;
    pb::RunEvent e;
    while (reader->Read(&e)) events.push_back(e);
    grpc::Status s = reader->Finish();
    if (end != nullptr) *end = s;
    return events;
  }

  static pb::ErrorDetail Detail(const grpc::ClientContext& ctx) {
    pb::ErrorDetail d;
    auto it = ctx.GetServerTrailingMetadata().find("claudenet-error-bin");
    if (it != ctx.GetServerTrailingMetadata().end()) {
      d.ParseFromString(std::string(it->second.data(), it->second.size()));
    }
    return d;
  }

  SimulatedClock clock_;
  TestBed bed_{&clock_, Threads()};
  std::unique_ptr<SkillServiceImpl> impl_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::SkillService::Stub> stub_;
};

TEST_F(SkillServiceTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("claudenet.v1.SkillService");
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(SkillServiceTest, RunSkillSyncReturnsTheFinishedRunAttributedToTheCaller) {
  pb::RunSkillResponse resp;
  auto ctx = Ctx("tok-bob");
  grpc::Status s = stub_->RunSkill(ctx.get(), Run("echo", Json{{"text", "hi"}}), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const pb::SkillRun& run = resp.run();
  EXPECT_EQ(run.state(), pb::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run.caller().id(), "bob");
  EXPECT_EQ(run.caller().kind(), pb::PRINCIPAL_KIND_AGENT);
  EXPECT_EQ(run.outputs().fields().at("said").string_value(), "hi x1");
  EXPECT_EQ(run.inputs().fields().at("times").number_value(), 1);
  ASSERT_EQ(run.steps_size(), 1);
  EXPECT_EQ(run.steps(0).state(), pb::STEP_STATE_SUCCEEDED);
  EXPECT_EQ(run.steps(0).target(), "log");
  EXPECT_TRUE(run.run_id().rfind("run-", 0) == 0);

  // A service acting on an agent's behalf: the run is that agent's.
  auto svc = Ctx("svc-cred");
  svc->AddMetadata("claudenet-on-behalf-of", "carol");
  pb::RunSkillResponse by_service;
  ASSERT_TRUE(stub_->RunSkill(svc.get(), Run("echo", Json{{"text", "x"}}), &by_service).ok());
  EXPECT_EQ(by_service.run().caller().on_behalf_of(), "carol");
  pb::ListRunsRequest list;
  list.set_caller("bob");
  pb::ListRunsResponse runs;
  ASSERT_TRUE(stub_->ListRuns(Ctx().get(), list, &runs).ok());
  ASSERT_EQ(runs.runs_size(), 1);
  EXPECT_EQ(runs.runs(0).run_id(), run.run_id());
}

TEST_F(SkillServiceTest, AsyncRunThenWatchStreamsEveryEventInOrder) {
  pb::RunSkillResponse resp;
  pb::RunSkillRequest req = Run("nap", Json::object(), pb::RUN_MODE_ASYNC);
  req.mutable_timeout()->set_seconds(2 * 3600);
  ASSERT_TRUE(stub_->RunSkill(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.run().state(), pb::RUN_STATE_RUNNING);
  EXPECT_EQ(resp.run().timeout().seconds(), 2 * 3600);
  EXPECT_EQ(resp.run().mode(), pb::RUN_MODE_ASYNC);
  std::string id = resp.run().run_id();
  // Follow it live. The sleep announces itself (STEP_OUTPUT) once its timer
  // is set; then the hour passes and the stream ends after RUN_FINISHED.
  auto ctx = Ctx();
  pb::WatchRunRequest watch;
  watch.set_run_id(id);
  auto reader = stub_->WatchRun(ctx.get(), watch);
  std::vector<pb::RunEvent> events;
  pb::RunEvent e;
  while (reader->Read(&e)) {
    events.push_back(e);
    if (e.type() == pb::RUN_EVENT_TYPE_STEP_OUTPUT) clock_.Advance(absl::Hours(1));
  }
  grpc::Status end = reader->Finish();
  EXPECT_TRUE(end.ok()) << end.error_message();
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type(), pb::RUN_EVENT_TYPE_RUN_STARTED);
  EXPECT_EQ(events[1].type(), pb::RUN_EVENT_TYPE_STEP_STARTED);
  EXPECT_EQ(events[2].type(), pb::RUN_EVENT_TYPE_STEP_OUTPUT);
  EXPECT_EQ(events[2].message(), "sleeping 1h");
  EXPECT_EQ(events[3].type(), pb::RUN_EVENT_TYPE_STEP_FINISHED);
  EXPECT_EQ(events[4].type(), pb::RUN_EVENT_TYPE_RUN_FINISHED);
  EXPECT_EQ(events[4].run_state(), pb::RUN_STATE_SUCCEEDED);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(events[i].sequence(), i + 1);
  // Watching a finished run replays it; resuming skips what was seen.
  EXPECT_EQ(Watch(id).size(), 5u);
  std::vector<pb::RunEvent> rest = Watch(id, 3);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].sequence(), 4);
  pb::GetRunRequest get;
  get.set_run_id(id);
  pb::GetRunResponse got;
  ASSERT_TRUE(stub_->GetRun(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.run().state(), pb::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(got.run().duration().seconds(), 3600);
  EXPECT_EQ(got.run().event_count(), 5);
}

TEST_F(SkillServiceTest, BadInputsGetTheRightCodeAndNameTheInput) {
  struct Case {
    pb::RunSkillRequest req;
    grpc::StatusCode code;
    std::string message;
    std::string reason;
  };
  pb::RunSkillRequest bad_timeout = Run("echo", Json{{"text", "a"}});
  bad_timeout.mutable_timeout()->set_nanos(5000);
  std::vector<Case> cases = {
      {Run("nope"), grpc::StatusCode::NOT_FOUND, "skill \"nope\" not found", "SKILL_NOT_FOUND"},
      {Run("echo"), grpc::StatusCode::INVALID_ARGUMENT,
       "input \"text\": required (string) but not given", ""},
      {Run("echo", Json{{"text", "a"}, {"times", "two"}}), grpc::StatusCode::INVALID_ARGUMENT,
       "input \"times\": expected int, got string \"two\"", ""},
      {Run("run_ls"), grpc::StatusCode::PERMISSION_DENIED,
       "skill \"run_ls@1.0.0\" uses action \"shell\" (step \"ls\" of run_ls@1.0.0), which is "
       "disabled: config skills.shell_allowlist is empty",
       "ACTION_DISABLED"},
      {Run("broken"), grpc::StatusCode::FAILED_PRECONDITION,
       "skill \"broken@1.0.0\" is invalid: core/data/broken.yaml:1:1: missing required key "
       "\"steps\"",
       "SKILL_INVALID"},
      {Run(""), grpc::StatusCode::INVALID_ARGUMENT, "name: required", ""},
      {bad_timeout, grpc::StatusCode::INVALID_ARGUMENT, "timeout: must be 1s..24h, got 5us", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    auto ctx = Ctx();
    pb::RunSkillResponse resp;
    grpc::Status s = stub_->RunSkill(ctx.get(), c.req, &resp);
    EXPECT_EQ(s.error_code(), c.code);
    EXPECT_EQ(s.error_message(), c.message);
    EXPECT_EQ(Detail(*ctx).reason(), c.reason);
  }
  // Nothing was stored by any of them.
  bed_.store().Flush();
  pb::ListRunsResponse runs;
  ASSERT_TRUE(stub_->ListRuns(Ctx().get(), pb::ListRunsRequest(), &runs).ok());
  EXPECT_EQ(runs.runs_size(), 0);
}

TEST_F(SkillServiceTest, ConcurrencyLimitIsResourceExhaustedWithRetryDelay) {
  for (const char* agent : {"tok-alice", "tok-bob", "tok-carol"}) {
    pb::RunSkillResponse resp;
    ASSERT_TRUE(
        stub_->RunSkill(Ctx(agent).get(), Run("nap", Json::object(), pb::RUN_MODE_ASYNC), &resp)
            .ok());
  }
  auto ctx = Ctx("tok-dave");
  pb::RunSkillResponse resp;
  grpc::Status s = stub_->RunSkill(ctx.get(), Run("echo", Json{{"text", "x"}}), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "runs in flight: 3 of 3 (config limits.max_skill_runs); retry in 1s");
  auto retry = ctx->GetServerTrailingMetadata().find("claudenet-retry-after-ms");
  ASSERT_NE(retry, ctx->GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(retry->second.data(), retry->second.size()), "1000");
  pb::ErrorDetail detail = Detail(*ctx);
  EXPECT_EQ(detail.reason(), "TOO_MANY_RUNS");
  EXPECT_EQ(detail.retry_delay().seconds(), 1);
}

TEST_F(SkillServiceTest, CredentialsAreChecked) {
  pb::RunSkillResponse resp;
  EXPECT_EQ(stub_->RunSkill(Ctx("").get(), Run("echo", Json{{"text", "x"}}), &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stub_->RunSkill(Ctx("bogus").get(), Run("echo", Json{{"text", "x"}}), &resp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status admin = stub_->RunSkill(Ctx("admin-cred").get(), Run("echo", Json{{"text", "x"}}),
                                       &resp);
  EXPECT_EQ(admin.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  pb::ReloadSkillsResponse reload;
  EXPECT_EQ(stub_->Reload(Ctx().get(), pb::ReloadSkillsRequest(), &reload).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(stub_->Reload(Ctx("admin-cred").get(), pb::ReloadSkillsRequest(), &reload).ok());
  EXPECT_EQ(reload.loaded(), 3);
  EXPECT_EQ(reload.invalid(), 1);
  EXPECT_EQ(reload.issues(0).file(), "core/data/broken.yaml");
}

TEST_F(SkillServiceTest, CancelRunOnlyByItsCallerOrAdmin) {
  pb::RunSkillResponse started;
  ASSERT_TRUE(
      stub_->RunSkill(Ctx().get(), Run("nap", Json::object(), pb::RUN_MODE_ASYNC), &started).ok());
  pb::CancelRunRequest req;
  req.set_run_id(started.run().run_id());
  req.set_reason("changed my mind");
  pb::CancelRunResponse resp;
  grpc::Status denied = stub_->CancelRun(Ctx("tok-bob").get(), req, &resp);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(stub_->CancelRun(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.run().state(), pb::RUN_STATE_CANCELLED);
  EXPECT_EQ(resp.run().error().message(), "run cancelled by alice: changed my mind");
  // The async run may not have started its step yet when the cancel lands:
  // the step is then SKIPPED, else CANCELLED mid-run (the engine tests cover
  // that case deterministically); it never runs to completion.
  EXPECT_TRUE(resp.run().steps(0).state() == pb::STEP_STATE_CANCELLED ||
              resp.run().steps(0).state() == pb::STEP_STATE_SKIPPED)
      << resp.run().steps(0).ShortDebugString();
  EXPECT_EQ(stub_->CancelRun(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  req.set_run_id("run-unknown");
  EXPECT_EQ(stub_->CancelRun(Ctx("admin-cred").get(), req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(SkillServiceTest, ASyncCallThatGoesAwayCancelsItsRun) {
  auto ctx = Ctx();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  pb::RunSkillResponse resp;
  grpc::Status s = stub_->RunSkill(ctx.get(), Run("nap"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  pb::ListRunsRequest list;
  list.set_skill_name("nap");
  pb::ListRunsResponse runs;
  ASSERT_TRUE(stub_->ListRuns(Ctx().get(), list, &runs).ok());
  ASSERT_EQ(runs.runs_size(), 1);
  // The run's stream ends with it: CANCELLED because its caller left.
  std::vector<pb::RunEvent> events = Watch(runs.runs(0).run_id());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), pb::RUN_EVENT_TYPE_RUN_FINISHED);
  EXPECT_EQ(events.back().run_state(), pb::RUN_STATE_CANCELLED);
  EXPECT_EQ(events.back().error().message(),
            "RunSkill call cancelled by the client (or its deadline passed)");
}

TEST_F(SkillServiceTest, ListAndGetSkillsWithPaginationAndFilters) {
  pb::ListSkillsRequest req;
  req.set_page_size(2);
  pb::ListSkillsResponse page1;
  ASSERT_TRUE(stub_->ListSkills(Ctx().get(), req, &page1).ok());
  EXPECT_EQ(page1.total_size(), 3);
  EXPECT_EQ(page1.invalid_files(), 1);
  ASSERT_EQ(page1.skills_size(), 2);
  EXPECT_EQ(page1.skills(0).name(), "echo");
  EXPECT_EQ(page1.skills(1).name(), "nap");
  req.set_page_token(page1.next_page_token());
  pb::ListSkillsResponse page2;
  ASSERT_TRUE(stub_->ListSkills(Ctx().get(), req, &page2).ok());
  ASSERT_EQ(page2.skills_size(), 1);
  EXPECT_EQ(page2.skills(0).name(), "run_ls");
  EXPECT_EQ(page2.next_page_token(), "");
  // The token is bound to the filters.
  req.set_category_prefix("core");
  pb::ListSkillsResponse other;
  grpc::Status mismatch = stub_->ListSkills(Ctx().get(), req, &other);
  EXPECT_EQ(mismatch.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(mismatch.error_message(), "page_token: issued for a request with other filters");
  pb::ListSkillsRequest filtered;
  filtered.set_category_prefix("core/data");
  filtered.set_include_invalid(true);
  ASSERT_TRUE(stub_->ListSkills(Ctx().get(), filtered, &other).ok());
  ASSERT_EQ(other.skills_size(), 1);
  EXPECT_EQ(other.skills(0).file(), "core/data/broken.yaml");
  EXPECT_FALSE(other.skills(0).valid());
  EXPECT_EQ(other.skills(0).error_count(), 1);
  pb::ListSkillsRequest too_big;
  too_big.set_page_size(1001);
  EXPECT_EQ(stub_->ListSkills(Ctx().get(), too_big, &other).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  pb::GetSkillRequest get;
  get.set_name("echo");
  pb::GetSkillResponse skill;
  ASSERT_TRUE(stub_->GetSkill(Ctx().get(), get, &skill).ok());
  EXPECT_TRUE(skill.skill().valid());
  EXPECT_EQ(skill.skill().file(), "core/echo.yaml");
  const pb::SkillDefinition& def = skill.skill().definition();
  EXPECT_EQ(def.inputs(0).name(), "text");
  EXPECT_EQ(def.inputs(0).type(), pb::SKILL_VALUE_TYPE_STRING);
  EXPECT_TRUE(def.inputs(0).required());
  EXPECT_EQ(def.inputs(1).default_value().number_value(), 1);
  EXPECT_EQ(def.steps(0).action().action(), "log");
  EXPECT_EQ(def.steps(0).line(), 10);
  EXPECT_EQ(def.steps(0).column(), 5);
  EXPECT_EQ(skill.skill().source_sha256().size(), 64u);
  get.set_name("broken");
  ASSERT_TRUE(stub_->GetSkill(Ctx().get(), get, &skill).ok());
  EXPECT_FALSE(skill.skill().valid());
  EXPECT_EQ(skill.skill().issues(0).code(), pb::ISSUE_CODE_SCHEMA);
  get.set_name("echo");
  get.set_version("9.9");
  EXPECT_EQ(stub_->GetSkill(Ctx().get(), get, &skill).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  get.set_version("9.9.9");
  EXPECT_EQ(stub_->GetSkill(Ctx().get(), get, &skill).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(SkillServiceTest, ValidateSkillReportsIssuesWithoutChangingTheLibrary) {
  pb::ValidateSkillRequest req;
  req.set_yaml_document(
      "name: v\nversion: 1.0.0\ndescription: d\nsteps:\n  - id: s\n    action: lgo\n");
  req.set_file_name("mine/v.yaml");
  pb::ValidateSkillResponse resp;
  ASSERT_TRUE(stub_->ValidateSkill(Ctx().get(), req, &resp).ok());
  EXPECT_FALSE(resp.valid());
  ASSERT_EQ(resp.issues_size(), 1);
  EXPECT_EQ(resp.issues(0).file(), "mine/v.yaml");
  EXPECT_EQ(resp.issues(0).line(), 6);
  EXPECT_EQ(resp.issues(0).column(), 13);
  EXPECT_EQ(resp.issues(0).code(), pb::ISSUE_CODE_UNKNOWN_ACTION);
  EXPECT_EQ(resp.issues(0).reason(), "unknown action \"lgo\" (did you mean \"log\"?)");
  EXPECT_EQ(resp.issues(0).severity(), pb::SEVERITY_ERROR);
  EXPECT_EQ(resp.definition().name(), "v");
  req.set_yaml_document("");
  grpc::Status empty = stub_->ValidateSkill(Ctx().get(), req, &resp);
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(empty.error_message(), "yaml_document: empty");
  pb::GetSkillRequest get;
  get.set_name("v");
  pb::GetSkillResponse skill;
  EXPECT_EQ(stub_->GetSkill(Ctx().get(), get, &skill).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SkillServiceTest, ListRunsPagesNewestFirstAndStatsSummarise) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    pb::RunSkillResponse resp;
    ASSERT_TRUE(
        stub_->RunSkill(Ctx().get(), Run("echo", Json{{"text", std::to_string(i)}}), &resp).ok());
    ids.push_back(resp.run().run_id());
  }
  pb::ListRunsRequest req;
  req.set_page_size(2);
  pb::ListRunsResponse page1, page2;
  ASSERT_TRUE(stub_->ListRuns(Ctx().get(), req, &page1).ok());
  ASSERT_EQ(page1.runs_size(), 2);
  EXPECT_EQ(page1.runs(0).run_id(), ids[2]);
  EXPECT_EQ(page1.runs(1).run_id(), ids[1]);
  EXPECT_EQ(page1.runs(0).steps_size(), 0);
  req.set_page_token(page1.next_page_token());
  ASSERT_TRUE(stub_->ListRuns(Ctx().get(), req, &page2).ok());
  ASSERT_EQ(page2.runs_size(), 1);
  EXPECT_EQ(page2.runs(0).run_id(), ids[0]);
  EXPECT_TRUE(page2.next_page_token().empty());
  pb::ListRunsRequest bad;
  *bad.mutable_started_after() = google::protobuf::util::TimeUtil::SecondsToTimestamp(20);
  *bad.mutable_started_before() = google::protobuf::util::TimeUtil::SecondsToTimestamp(10);
  EXPECT_EQ(stub_->ListRuns(Ctx().get(), bad, &page2).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  pb::GetSkillStatsRequest stats_req;
  stats_req.set_skill_name("echo");
  pb::GetSkillStatsResponse stats;
  ASSERT_TRUE(stub_->GetSkillStats(Ctx().get(), stats_req, &stats).ok());
  ASSERT_EQ(stats.stats_size(), 1);
  EXPECT_EQ(stats.stats(0).runs(), 3);
  EXPECT_EQ(stats.stats(0).success_rate(), 1.0);
  EXPECT_EQ(stats.stats(0).duration().count(), 3);
  EXPECT_EQ(stats.stats(0).step_overhead().count(), 3);
  EXPECT_EQ(stats.totals().runs(), 3);
  stats_req.set_skill_name("nap");
  EXPECT_EQ(stub_->GetSkillStats(Ctx().get(), stats_req, &stats).error_code(),
            grpc::StatusCode::NOT_FOUND);
  stats_req.clear_skill_name();
  stats_req.mutable_window()->set_seconds(30);
  EXPECT_EQ(stub_->GetSkillStats(Ctx().get(), stats_req, &stats).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SkillServiceTest, WatchRunBadRequests) {
  grpc::Status end;
  EXPECT_TRUE(Watch("run-nope", 0, &end).empty());
  EXPECT_EQ(end.error_code(), grpc::StatusCode::NOT_FOUND);
  Watch("run-nope", -1, &end);
  EXPECT_EQ(end.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(end.error_message(), "from_sequence: must be >= 0, got -1");
}

}  // namespace
}  // namespace cnet::skills
