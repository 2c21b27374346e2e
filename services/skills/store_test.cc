// The store: runs survive a restart, runs cut off by a crash are closed as
// FAILED on the next start, the data store keeps its keys.
#include "services/skills/store.h"

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace cnet::skills {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/storeXXXXXX";
    path_ = std::string(mkdtemp(tmpl.data())) + "/skills.db";
  }
  std::unique_ptr<Store> Open() {
    auto s = Store::Open(path_, &clock_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string path_;
  SimulatedClock clock_;
};

TEST_F(StoreTest, ARunCutOffByACrashIsClosedAsFailedAtTheNextStart) {
  {
    auto store = Open();
    RunRecord run;
    run.run_id = "run-1";
    run.skill_name = "s";
    run.skill_version = "1.0.0";
    run.state = RunState::kRunning;
    run.caller = CallerInfo{1, "alice", ""};
    run.created_at = run.started_at = clock_.Now();
    run.event_count = 2;
    store->SaveRun(run);
    RunEvent e1, e2;
    e1.run_id = e2.run_id = "run-1";
    e1.sequence = 1;
    e2.sequence = 2;
    e2.type = EventType::kStepStarted;
    store->AppendEvents({e1, e2});
    store->Flush();
    // No FinishRun: the process "dies" here.
  }
  clock_.Advance(absl::Minutes(1));
  auto store = Open();
  auto fixed = store->FailInterruptedRuns(clock_.Now());
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(*fixed, 1);
  auto run = store->GetRun("run-1", true);
  ASSERT_TRUE(run.ok() && run->has_value());
  EXPECT_EQ((*run)->state, RunState::kFailed);
  EXPECT_EQ((*run)->error->code, "UNAVAILABLE");
  EXPECT_EQ((*run)->finished_at, clock_.Now());
  auto events = store->GetEvents("run-1", 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[2].type, EventType::kRunFinished);
  EXPECT_EQ((*events)[2].sequence, 3);
  EXPECT_EQ(*store->FailInterruptedRuns(clock_.Now()), 0);
}

TEST_F(StoreTest, DataKeysSurviveReopening) {
  {
    auto store = Open();
    EXPECT_TRUE(*store->DataPut("shared", "k1", Json{{"a", 1}}, "alice"));
    EXPECT_FALSE(*store->DataPut("shared", "k1", Json{{"a", 2}}, "bob"));
    EXPECT_TRUE(*store->DataPut("shared", "k2", Json("x"), "bob"));
    EXPECT_TRUE(*store->DataPut("agent/alice", "k1", Json(true), "alice"));
  }
  auto store = Open();
  EXPECT_EQ(**store->DataGet("shared", "k1"), Json::parse(R"({"a": 2})"));
  EXPECT_EQ(*store->DataList("shared", "k", 10), (std::vector<std::string>{"k1", "k2"}));
  EXPECT_EQ(*store->DataList("shared", "k", 1), std::vector<std::string>{"k1"});
  EXPECT_TRUE(*store->DataDelete("shared", "k1"));
  EXPECT_FALSE(*store->DataDelete("shared", "k1"));
  EXPECT_FALSE(store->DataGet("shared", "k1")->has_value());
  EXPECT_EQ(**store->DataGet("agent/alice", "k1"), Json(true));
}

TEST_F(StoreTest, CallbacksRunAfterTheirWriteCommitted) {
  auto store = Open();
  RunRecord run;
  run.run_id = "run-2";
  run.skill_name = "s";
  run.state = RunState::kSucceeded;
  absl::Notification committed;
  bool visible = false;
  store->SaveRun(run, [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    // A second connection already sees it.
    auto got = store->GetRun("run-2", false);
    visible = got.ok() && got->has_value();
    committed.Notify();
  });
  committed.WaitForNotification();
  EXPECT_TRUE(visible);
}

}  // namespace
}  // namespace cnet::skills
