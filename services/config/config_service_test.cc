// Adapter tests over a real channel: the config server on port 0.
#include "services/config/config_service.h"

#include <sys/stat.h>

#include <fstream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"

namespace cnet::configsvc {
namespace {
namespace pb = claudenet::v1;

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(30);
}

class ConfigServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/cfgsvcXXXXXX";
    root_ = mkdtemp(tmpl.data());
    config::LoadOptions options;
    options.project_dir = root_;
    options.env["CNET_SERVICES__DATA_DIR"] = root_ + "/data";
    options.env["CNET_SECURITY__SHARED_SECRET"] = "s3cret-value";
    std::ofstream(root_ + "/config.yaml") << "network:\n  heartbeat_interval: 20s\n";
    auto core = ConfigCore::Create(options, &clock_);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    impl_ = std::make_unique<ConfigServiceImpl>(core_.get());
    ServerOptions server_options;
    server_options.name = "config";
    server_options.services = {impl_.get()};
    server_options.health_names = {"claudenet.v1.ConfigService"};
    server_options.interceptors.push_back(auth::MakeAuthInterceptorFactory(
        std::make_shared<auth::StaticAuthenticator>("admin-cred", "svc-cred")));
    auto server = GrpcServer::Start(std::move(server_options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = MakeChannel(server_->address());
    stub_ = pb::ConfigService::NewStub(channel_);
  }

  void TearDown() override {
    if (core_) core_->hub()->Close();
    if (server_) server_->Shutdown(absl::Seconds(5));
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& credential = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(Deadline());
    if (!credential.empty()) auth::SetBearer(ctx.get(), credential);
    return ctx;
  }

  std::string root_;
  SimulatedClock clock_;
  std::unique_ptr<ConfigCore> core_;
  std::unique_ptr<ConfigServiceImpl> impl_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::ConfigService::Stub> stub_;
};

TEST_F(ConfigServiceTest, HealthIsServingAndReflectionListsTheService) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest hreq;
  hreq.set_service("claudenet.v1.ConfigService");
  grpc::health::v1::HealthCheckResponse hresp;
  ASSERT_TRUE(health->Check(Ctx().get(), hreq, &hresp).ok());
  EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel_);
  auto ctx = Ctx();
  auto stream = reflection->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  bool found = false;
  for (const auto& s : resp.list_services_response().service()) {
    found |= s.name() == "claudenet.v1.ConfigService";
  }
  EXPECT_TRUE(found);
  // The service's file descriptor is served too (grpcurl describe).
  grpc::reflection::v1alpha::ServerReflectionRequest sym;
  sym.set_file_containing_symbol("claudenet.v1.ConfigService");
  ASSERT_TRUE(stream->Write(sym));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ConfigServiceTest, GetConfigReportsSourcesAndRedactsSecrets) {
  pb::GetConfigRequest req;
  pb::GetConfigResponse resp;
  ASSERT_TRUE(stub_->GetConfig(Ctx().get(), req, &resp).ok());
  std::map<std::string, pb::ConfigValue> by_key;
  for (const auto& v : resp.values()) by_key[v.key()] = v;
  const pb::ConfigValue& hb = by_key.at("network.heartbeat_interval");
  EXPECT_EQ(hb.value(), "20s");
  EXPECT_EQ(hb.source(), pb::LAYER_PROJECT_FILE);
  EXPECT_EQ(hb.origin(), root_ + "/config.yaml");
  EXPECT_EQ(hb.line(), 2);
  const pb::ConfigValue& secret = by_key.at("security.shared_secret");
  EXPECT_TRUE(secret.secret());
  EXPECT_TRUE(secret.redacted());
  EXPECT_EQ(secret.value(), "");
  EXPECT_EQ(secret.source(), pb::LAYER_ENVIRONMENT);
  EXPECT_EQ(by_key.at("services.registry_addr").source(), pb::LAYER_DEFAULT);
  for (const auto& v : resp.values()) {
    EXPECT_EQ(v.value().find("s3cret"), std::string::npos) << v.key();
  }

  req.set_key_prefix("network");
  resp.Clear();
  ASSERT_TRUE(stub_->GetConfig(Ctx().get(), req, &resp).ok());
  for (const auto& v : resp.values()) EXPECT_EQ(v.key().rfind("network.", 0), 0u);
  req.set_key_prefix("networ");
  EXPECT_EQ(stub_->GetConfig(Ctx().get(), req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  req.set_key_prefix("Bad Prefix");
  EXPECT_EQ(stub_->GetConfig(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ConfigServiceTest, ValidateConfigNamesLineAndKey) {
  pb::ValidateConfigRequest req;
  req.set_name("candidate.yaml");
  req.set_yaml_document("network:\n  heartbeat_interval: 20s\n  no_such_key: 1\n");
  pb::ValidateConfigResponse resp;
  ASSERT_TRUE(stub_->ValidateConfig(Ctx().get(), req, &resp).ok());
  EXPECT_FALSE(resp.valid());
  ASSERT_EQ(resp.issues_size(), 1);
  EXPECT_EQ(resp.issues(0).origin(), "candidate.yaml");
  EXPECT_EQ(resp.issues(0).line(), 3);
  EXPECT_EQ(resp.issues(0).key(), "network.no_such_key");
  req.set_yaml_document("");
  EXPECT_EQ(stub_->ValidateConfig(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ConfigServiceTest, OverridesNeedTheAdminCredential) {
  pb::SetOverrideRequest req;
  req.set_key("limits.inbox_cap");
  req.set_value("42");
  pb::SetOverrideResponse resp;
  EXPECT_EQ(stub_->SetOverride(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stub_->SetOverride(Ctx("wrong").get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stub_->SetOverride(Ctx("svc-cred").get(), req, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  struct stat st;
  EXPECT_NE(stat((root_ + "/data/config-overrides.yaml").c_str(), &st), 0);
  grpc::Status ok = stub_->SetOverride(Ctx("admin-cred").get(), req, &resp);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(resp.value().value(), "42");
  EXPECT_EQ(resp.value().source(), pb::LAYER_RUNTIME_OVERRIDE);
  EXPECT_EQ(resp.previous().source(), pb::LAYER_DEFAULT);

  req.set_value("not-a-number");
  grpc::Status bad = stub_->SetOverride(Ctx("admin-cred").get(), req, &resp);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("limits.inbox_cap"), std::string::npos);

  pb::ListOverridesRequest lreq;
  pb::ListOverridesResponse lresp;
  ASSERT_TRUE(stub_->ListOverrides(Ctx().get(), lreq, &lresp).ok());
  ASSERT_EQ(lresp.overrides_size(), 1);
  EXPECT_EQ(lresp.overrides(0).value(), "42");

  pb::DeleteOverrideRequest dreq;
  dreq.set_key("limits.inbox_cap");
  pb::DeleteOverrideResponse dresp;
  ASSERT_TRUE(stub_->DeleteOverride(Ctx("admin-cred").get(), dreq, &dresp).ok());
  EXPECT_TRUE(dresp.existed());
  ASSERT_TRUE(stub_->DeleteOverride(Ctx("admin-cred").get(), dreq, &dresp).ok());
  EXPECT_FALSE(dresp.existed());
}

TEST_F(ConfigServiceTest, WatchStreamsTheInitialSnapshotThenChanges) {
  auto ctx = Ctx();
  pb::WatchConfigRequest req;
  req.set_key_prefix("limits");
  req.set_send_initial(true);
  auto reader = stub_->WatchConfig(ctx.get(), req);
  pb::ConfigEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.cause(), pb::CONFIG_EVENT_CAUSE_INITIAL);
  EXPECT_GT(ev.changes_size(), 3);
  for (const auto& c : ev.changes()) EXPECT_EQ(c.key().rfind("limits.", 0), 0u);

  // A change outside the prefix is filtered; the next one arrives.
  ASSERT_TRUE(core_->SetOverride("network.heartbeat_interval", "25s").ok());
  ASSERT_TRUE(core_->SetOverride("limits.inbox_cap", "99").ok());
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.cause(), pb::CONFIG_EVENT_CAUSE_OVERRIDE_SET);
  ASSERT_EQ(ev.changes_size(), 1);
  EXPECT_EQ(ev.changes(0).key(), "limits.inbox_cap");
  EXPECT_EQ(ev.changes(0).new_value(), "99");
  EXPECT_EQ(ev.changes(0).new_source(), pb::LAYER_RUNTIME_OVERRIDE);

  // A layer file change arrives too (inotify), without any call.
  ASSERT_TRUE(core_->WatchFiles().ok());
  std::ofstream(root_ + "/config.yaml.new") << "limits:\n  max_page_size: 500\n";
  std::rename((root_ + "/config.yaml.new").c_str(), (root_ + "/config.yaml").c_str());
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.cause(), pb::CONFIG_EVENT_CAUSE_FILE_CHANGED);
  ASSERT_EQ(ev.changes_size(), 1);
  EXPECT_EQ(ev.changes(0).key(), "limits.max_page_size");
  EXPECT_EQ(ev.changes(0).new_value(), "500");

  // Shutdown ends the stream cleanly.
  core_->hub()->Close();
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_TRUE(reader->Finish().ok());
}

}  // namespace
}  // namespace cnet::configsvc
