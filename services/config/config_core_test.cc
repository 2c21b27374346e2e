#include "services/config/config_core.h"

#include <sys/stat.h>

#include <fstream>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace cnet::configsvc {
namespace {

class ConfigCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/cfgXXXXXX";
    root_ = mkdtemp(tmpl.data());
    options_.project_dir = root_ + "/project";
    options_.home_dir = root_ + "/home";
    mkdir(options_.project_dir.c_str(), 0755);
    mkdir(options_.home_dir.c_str(), 0755);
    mkdir((options_.home_dir + "/.claude-network").c_str(), 0755);
    options_.env["CNET_SERVICES__DATA_DIR"] = root_ + "/data";
  }

  void WriteProject(const std::string& text) {
    std::ofstream(options_.project_dir + "/config.yaml.tmp") << text;
    std::rename((options_.project_dir + "/config.yaml.tmp").c_str(),
                (options_.project_dir + "/config.yaml").c_str());
  }

  std::unique_ptr<ConfigCore> MakeCore() {
    auto core = ConfigCore::Create(options_, &clock_);
    EXPECT_TRUE(core.ok()) << core.status();
    return core.ok() ? std::move(*core) : nullptr;
  }

  std::string root_;
  config::LoadOptions options_;
  SimulatedClock clock_;
};

TEST_F(ConfigCoreTest, InvalidLayersRefuseToStartWithTheFirstIssue) {
  WriteProject("network:\n  heartbeat_interval: fast\n");
  auto core = ConfigCore::Create(options_, &clock_);
  ASSERT_FALSE(core.ok());
  EXPECT_EQ(core.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(core.status().message().find("config.yaml:2"), std::string::npos)
      << core.status();
  EXPECT_NE(core.status().message().find("network.heartbeat_interval"), std::string::npos);
}

TEST_F(ConfigCoreTest, ReloadPublishesChangedValuesWithSources) {
  auto core = MakeCore();
  auto sub = core->hub()->Subscribe(10, nullptr);
  WriteProject("network:\n  heartbeat_interval: 20s\n");
  ConfigEvent ev = core->Reload(ChangeCause::kRequestedReload);
  EXPECT_EQ(ev.sequence, 1);
  ASSERT_EQ(ev.changes.size(), 1u);
  EXPECT_EQ(ev.changes[0].key, "network.heartbeat_interval");
  EXPECT_EQ(ev.changes[0].old_value, "15s");
  EXPECT_EQ(ev.changes[0].new_value, "20s");
  EXPECT_EQ(ev.changes[0].old_source.layer, config::Layer::kDefault);
  EXPECT_EQ(ev.changes[0].new_source.layer, config::Layer::kProjectFile);
  EXPECT_EQ(ev.changes[0].new_source.line, 2);
  EXPECT_EQ(core->current()->GetDuration("network.heartbeat_interval"), absl::Seconds(20));
  ConfigEvent got;
  ASSERT_TRUE(sub->Pop(&got));
  EXPECT_EQ(got.sequence, 1);
  // Reloading unchanged files publishes nothing.
  EXPECT_EQ(core->Reload(ChangeCause::kRequestedReload).sequence, 0);
  EXPECT_FALSE(sub->Pop(&got));
}

TEST_F(ConfigCoreTest, InvalidReloadKeepsThePreviousConfigAndReportsIssues) {
  WriteProject("network:\n  heartbeat_interval: 20s\n");
  auto core = MakeCore();
  WriteProject("network: [broken\n");
  ConfigEvent ev = core->Reload(ChangeCause::kSignalReload);
  EXPECT_GT(ev.sequence, 0);
  EXPECT_TRUE(ev.changes.empty());
  ASSERT_FALSE(ev.issues.empty());
  EXPECT_NE(ev.issues[0].origin.find("config.yaml"), std::string::npos);
  EXPECT_GT(ev.issues[0].line, 0);
  EXPECT_EQ(core->current()->GetDuration("network.heartbeat_interval"), absl::Seconds(20));
}

TEST_F(ConfigCoreTest, FileChangeArrivesAsAnEventWithoutAnyCall) {
  auto core = MakeCore();
  absl::Mutex mu;
  int notified = 0;
  auto sub = core->hub()->Subscribe(10, [&] {
    absl::MutexLock lock(&mu);
    ++notified;
  });
  ASSERT_TRUE(core->WatchFiles().ok());
  WriteProject("limits:\n  inbox_cap: 77\n");
  {
    absl::MutexLock lock(&mu);
    auto arrived = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return notified > 0; };
    // Waits on the event; the bound only guards against a hang.
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(60)));
  }
  ConfigEvent ev;
  ASSERT_TRUE(sub->Pop(&ev));
  EXPECT_EQ(ev.cause, ChangeCause::kFileChanged);
  ASSERT_EQ(ev.changes.size(), 1u);
  EXPECT_EQ(ev.changes[0].key, "limits.inbox_cap");
  EXPECT_EQ(ev.changes[0].new_value, "77");
}

TEST_F(ConfigCoreTest, OverridesPersistAcrossRestartsAndWinOverEnvironment) {
  options_.env["CNET_LIMITS__INBOX_CAP"] = "50";
  {
    auto core = MakeCore();
    auto entry = core->SetOverride("limits.inbox_cap", "500");
    ASSERT_TRUE(entry.ok()) << entry.status();
    EXPECT_EQ(entry->rendered, "500");
    EXPECT_EQ(entry->source.layer, config::Layer::kRuntimeOverride);
  }
  struct stat st;
  ASSERT_EQ(stat((root_ + "/data/config-overrides.yaml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto restarted = MakeCore();
  EXPECT_EQ(restarted->current()->GetInt("limits.inbox_cap"), 500);
  auto listed = restarted->ListOverrides();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->at("limits.inbox_cap"), "500");
  ASSERT_TRUE(restarted->DeleteOverride("limits.inbox_cap").ok());
  EXPECT_EQ(restarted->current()->GetInt("limits.inbox_cap"), 50);
  EXPECT_EQ(restarted->DeleteOverride("limits.inbox_cap").code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ConfigCoreTest, BadOverridesAreRefusedAndWriteNothing) {
  auto core = MakeCore();
  EXPECT_EQ(core->SetOverride("limits.no_such_key", "1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core->SetOverride("limits.inbox_cap", "lots").status().code(),
            absl::StatusCode::kInvalidArgument);
  // Valid alone, but breaks the ordering healthy_max < warning_max.
  auto s = core->SetOverride("network.health.healthy_max", "2h");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("healthy_max"), std::string::npos) << s.status();
  struct stat st;
  EXPECT_NE(stat((root_ + "/data/config-overrides.yaml").c_str(), &st), 0);
  EXPECT_EQ(core->current()->GetDuration("network.health.healthy_max"), absl::Seconds(30));
}

TEST_F(ConfigCoreTest, SecretOverridesAreRedactedInListsAndEvents) {
  auto core = MakeCore();
  auto sub = core->hub()->Subscribe(10, nullptr);
  auto entry = core->SetOverride("security.shared_secret", "hunter2-very-secret");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->rendered, "***");
  EXPECT_EQ(core->ListOverrides()->at("security.shared_secret"), "***");
  ConfigEvent ev;
  ASSERT_TRUE(sub->Pop(&ev));
  ASSERT_EQ(ev.changes.size(), 1u);
  EXPECT_EQ(ev.changes[0].new_value, "***");
  EXPECT_EQ(core->current()->GetString("security.shared_secret"), "hunter2-very-secret");
}

}  // namespace
}  // namespace cnet::configsvc
