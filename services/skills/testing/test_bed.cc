#include "services/skills/testing/test_bed.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace cnet::skills::testing {

Engine::Finished RunWaiter::Callback() {
  return [this](absl::Status durable, const RunRecord& rec) {
    EXPECT_TRUE(durable.ok()) << durable;
    {
      absl::MutexLock lock(&mu_);
      rec_ = rec;
    }
    done_.Notify();
  };
}

RunRecord RunWaiter::Wait() {
  // The bound only turns a hang into a failure; runs end in milliseconds.
  EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(20)))
      << "the run did not finish";
  absl::MutexLock lock(&mu_);
  return rec_;
}

TestBed::TestBed(Clock* clock, TestBedOptions options)
    : clock_(clock), options_(std::move(options)), net_(clock) {
  std::string tmpl = std::string(::testing::TempDir()) + "/skillsXXXXXX";
  dir_ = mkdtemp(tmpl.data());
  std::filesystem::create_directories(root());
  if (!options_.library_source.empty()) {
    std::filesystem::copy(options_.library_source, root(),
                          std::filesystem::copy_options::recursive |
                              std::filesystem::copy_options::overwrite_existing);
  }
  if (options_.inline_executor) {
    pool_ = std::make_unique<InlineExecutor>();
    blocking_ = std::make_unique<InlineExecutor>();
  } else {
    pool_ = std::make_unique<ThreadPool>(4);
    blocking_ = std::make_unique<ThreadPool>(8);
  }
  Open();
}

TestBed::~TestBed() {
  engine_.reset();
  library_.reset();
  actions_.reset();
  store_.reset();
  pool_.reset();
  blocking_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void TestBed::Open() {
  auto store = Store::Open(dir_ + "/skills.db", clock_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  ActionEnv env;
  env.messaging = &net_;
  env.registry = &net_;
  env.tasks = &net_;
  env.data = store_.get();
  env.system = &probe_;
  env.shell_allowlist = options_.shell_allowlist;
  actions_ = std::make_unique<ActionRegistry>(env);
  library_ = std::make_unique<LibraryManager>(root(), &actions_->catalog(), clock_);
  auto report = library_->Reload();
  ASSERT_TRUE(report.ok()) << report.status();
  FakeNetwork* net = &net_;
  engine_ = std::make_unique<Engine>(
      library_.get(), actions_.get(), store_.get(), clock_, pool_.get(), blocking_.get(),
      options_.engine,
      [net](const std::string& agent) -> absl::StatusOr<std::vector<std::string>> {
        return net->Capabilities(agent);
      });
  auto recovered = engine_->Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status();
}

void TestBed::Write(const std::string& rel, const std::string& text) {
  std::filesystem::path p = std::filesystem::path(root()) / rel;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

ReloadReport TestBed::Reload() {
  auto report = library_->Reload();
  EXPECT_TRUE(report.ok()) << report.status();
  return report.ok() ? *report : ReloadReport{};
}

RunRequest TestBed::Request(const std::string& skill, Json inputs, const std::string& agent) {
  if (net_.Capabilities(agent).empty()) {
    net_.AddAgent(agent, {"messaging", "observation", "data", "tasks", "onboarding"});
  }
  RunRequest req;
  req.skill_name = skill;
  req.inputs = std::move(inputs);
  req.caller.kind = 1;
  req.caller.id = agent;
  return req;
}

absl::StatusOr<RunRecord> TestBed::Start(const RunRequest& req, RunWaiter* waiter) {
  return engine_->Start(req, nullptr, waiter->Callback());
}

absl::StatusOr<RunRecord> TestBed::RunToEnd(const RunRequest& req) {
  RunWaiter waiter;
  auto started = Start(req, &waiter);
  if (!started.ok()) return started.status();
  return waiter.Wait();
}

void TestBed::Restart() {
  engine_.reset();
  library_.reset();
  actions_.reset();
  store_.reset();
  Open();
}

}  // namespace cnet::skills::testing
