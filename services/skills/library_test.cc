// The shipped library (skills/ at the repository root): every skill
// validates without a single issue, and runs against in-memory stand-ins
// of MACS, the Registry and Tasks (testing/fake_network.h), exercising the
// same requests the real services receive.
#include "gtest/gtest.h"
#include "services/skills/testing/test_bed.h"

namespace cnet::skills {
namespace {

using testing::RunWaiter;
using testing::TestBed;
using testing::TestBedOptions;

TestBedOptions ShippedLibrary() {
  TestBedOptions o;
  o.library_source = "skills";
  return o;
}

class LibraryTest : public ::testing::Test {
 protected:
  LibraryTest() {
    bed_.net().AddAgent("alice", {"python"});
    bed_.net().AddAgent("bob", {"review"});
    bed_.net().AddAgent("carol", {"review", "python"});
  }

  RunRecord Run(const std::string& skill, Json inputs) {
    auto run = bed_.RunToEnd(bed_.Request(skill, std::move(inputs)));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return RunRecord{};
    EXPECT_EQ(run->state, RunState::kSucceeded)
        << skill << ": " << (run->error ? run->error->message : "");
    return *run;
  }

  SimulatedClock clock_;
  TestBed bed_{&clock_, ShippedLibrary()};
};

TEST_F(LibraryTest, EveryShippedSkillValidatesWithoutIssues) {
  auto lib = bed_.library().Current();
  std::vector<std::string> names;
  for (const auto& f : lib->files()) {
    SCOPED_TRACE(f->file());
    EXPECT_TRUE(f->valid);
    for (const Issue& i : f->issues) ADD_FAILURE() << i.ToString();
    names.push_back(f->def().name);
    // Documented: a description and one for every input and output.
    EXPECT_FALSE(f->def().description.empty());
    for (const InputDef& in : f->def().inputs) EXPECT_FALSE(in.description.empty()) << in.name;
    for (const OutputDef& o : f->def().outputs) EXPECT_FALSE(o.description.empty()) << o.name;
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{
                       "basic_scan", "broadcast", "data_delete", "data_retrieve", "data_store",
                       "delegate_and_announce", "network_onboarding", "network_status", "ping",
                       "receive_message", "request_review", "send_message", "system_health"}));
  EXPECT_EQ(lib->Find("send_message")->def().category, "core/communication");
  EXPECT_EQ(lib->Find("request_review")->def().category, "domain/engineering");
  EXPECT_EQ(lib->Find("delegate_and_announce")->composes,
            (std::vector<std::string>{"broadcast@1.0.0", "data_store@1.0.0"}));
}

TEST_F(LibraryTest, SendMessage) {
  RunRecord run = Run("send_message", Json{{"to", "bob"}, {"subject", "hi"}, {"body", "tests pass"},
                                           {"priority", "high"}});
  EXPECT_EQ(run.outputs["recipient_count"], 1);
  auto inbox = bed_.net().Inbox("bob");
  ASSERT_EQ(inbox.size(), 1u);
  EXPECT_EQ(inbox[0].message().sender(), "alice");
  EXPECT_EQ(inbox[0].message().body(), "tests pass");
  EXPECT_EQ(inbox[0].message().priority(), pb::PRIORITY_HIGH);
  // The id is stable per run and step, so a retried send is a duplicate.
  EXPECT_EQ(run.outputs["message_id"], run.run_id + ":send");
  // An unknown recipient fails after the step's three attempts.
  RunWaiter waiter;
  ASSERT_TRUE(
      bed_.Start(bed_.Request("send_message", Json{{"to", "nobody"}, {"body", "x"}}), &waiter)
          .ok());
  clock_.Advance(absl::Milliseconds(500));
  clock_.Advance(absl::Seconds(1));
  RunRecord bad = waiter.Wait();
  EXPECT_EQ(bad.state, RunState::kFailed);
  EXPECT_EQ(bad.error->code, "NOT_FOUND");
  EXPECT_EQ(bad.error->message, "unknown recipient \"nobody\"");
  EXPECT_EQ(bad.steps[0].attempts, 3);
}

TEST_F(LibraryTest, Broadcast) {
  RunRecord run = Run("broadcast", Json{{"subject", "release 1.2 is out"}});
  EXPECT_EQ(run.outputs["recipient_count"], 2);
  RunRecord group = Run("broadcast", Json{{"subject", "review day"}, {"capability", "review"}});
  EXPECT_EQ(group.outputs["recipient_count"], 2);
  EXPECT_EQ(bed_.net().Inbox("bob").size(), 2u);
  EXPECT_EQ(bed_.net().Inbox("bob")[1].message().recipient(), "cap:review");
}

TEST_F(LibraryTest, ReceiveMessageReadsAndAcknowledges) {
  CallContext bob;
  bob.agent_id = "bob";
  for (const char* body : {"one", "two"}) {
    pb::SendRequest req;
    req.mutable_message()->set_recipient("alice");
    req.mutable_message()->set_body(body);
    pb::SendResponse resp;
    ASSERT_TRUE(bed_.net().Send(bob, req, &resp).ok());
  }
  RunRecord run = Run("receive_message", Json::object());
  EXPECT_EQ(run.outputs["count"], 2);
  EXPECT_EQ(run.outputs["acknowledged"], 2);
  EXPECT_EQ(run.outputs["messages"][1]["body"], "two");
  EXPECT_EQ(run.outputs["messages"][0]["sender"], "bob");
  RunRecord again = Run("receive_message", Json::object());
  EXPECT_EQ(again.outputs["count"], 0);
  EXPECT_TRUE(again.outputs["acknowledged"].is_null());
  EXPECT_EQ(again.steps[1].state, StepState::kSkipped);
}

TEST_F(LibraryTest, SystemHealthReadsProc) {
  RunRecord run = Run("system_health", Json::object());
  const Json& out = run.outputs;
  EXPECT_TRUE(out["status"] == "ok" || out["status"] == "warning" || out["status"] == "critical");
  EXPECT_GE(out["cpu_count"].get<int64_t>(), 1);
  EXPECT_GT(out["uptime_seconds"].get<int64_t>(), 0);
  EXPECT_GT(out["memory_used_percent"].get<double>(), 0.0);
  EXPECT_GE(out["disk_used_percent"].get<double>(), 0.0);
}

TEST_F(LibraryTest, Ping) {
  RunRecord run = Run("ping", Json{{"message", "hello"}});
  EXPECT_EQ(run.outputs["echo"], "hello");
  EXPECT_EQ(run.outputs["agent"], "alice");
  EXPECT_EQ(run.outputs["run_id"], run.run_id);
}

TEST_F(LibraryTest, NetworkStatusAndBasicScan) {
  RunRecord status = Run("network_status", Json::object());
  EXPECT_EQ(status.outputs["total_agents"], 3);
  EXPECT_EQ(status.outputs["healthy_agents"], 3);
  EXPECT_EQ(status.outputs["summary"], "3 of 3 agents healthy on 1 node(s)");

  CallContext bob;
  bob.agent_id = "bob";
  pb::CreateTaskRequest task;
  task.set_title("port the parser");
  pb::CreateTaskResponse created;
  ASSERT_TRUE(bed_.net().CreateTask(bob, task, &created).ok());
  RunRecord scan = Run("basic_scan", Json::object());
  EXPECT_EQ(scan.outputs["agents"], 3);
  EXPECT_EQ(scan.outputs["unread_messages"], 0);
  ASSERT_EQ(scan.outputs["queued_tasks"].size(), 1u);
  EXPECT_EQ(scan.outputs["queued_tasks"][0]["title"], "port the parser");
  // The four probes ran as one parallel group.
  EXPECT_EQ(scan.steps[0].kind, StepKind::kParallel);
  EXPECT_EQ(scan.steps[0].children.size(), 4u);
}

TEST_F(LibraryTest, DataStoreRetrieveDelete) {
  RunRecord put = Run("data_store", Json{{"key", "notes/today"}, {"value", {{"done", 3}}}});
  EXPECT_EQ(put.outputs["created"], true);
  EXPECT_EQ(put.outputs["namespace"], "agent/alice");
  RunRecord get = Run("data_retrieve", Json{{"key", "notes/today"}});
  EXPECT_EQ(get.outputs["found"], true);
  EXPECT_EQ(get.outputs["value"], Json::parse(R"({"done": 3})"));
  // Another agent cannot read alice's private namespace.
  auto peek = bed_.RunToEnd(bed_.Request(
      "data_retrieve", Json{{"key", "notes/today"}, {"namespace", "agent/alice"}}, "bob"));
  ASSERT_TRUE(peek.ok());
  EXPECT_EQ(peek->state, RunState::kFailed);
  EXPECT_EQ(peek->error->code, "PERMISSION_DENIED");
  RunRecord del = Run("data_delete", Json{{"key", "notes/today"}});
  EXPECT_EQ(del.outputs["deleted"], true);
  RunRecord gone = Run("data_retrieve", Json{{"key", "notes/today"}});
  EXPECT_EQ(gone.outputs["found"], false);
  EXPECT_TRUE(gone.outputs["value"].is_null());
}

TEST_F(LibraryTest, NetworkOnboardingWalksANewAgentIn) {
  CallContext bob;
  bob.agent_id = "bob";
  pb::CreateTaskRequest task;
  task.set_title("triage flaky test");
  pb::CreateTaskResponse created;
  ASSERT_TRUE(bed_.net().CreateTask(bob, task, &created).ok());
  auto run = bed_.RunToEnd(bed_.Request(
      "network_onboarding", Json{{"name", "Dave"}, {"capabilities", {"rust", "review"}}}, "dave"));
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->state, RunState::kSucceeded) << run->error->message;
  EXPECT_EQ(run->outputs["agent_id"], "dave");
  EXPECT_EQ(run->outputs["health"], "HEALTHY");
  EXPECT_EQ(run->outputs["heartbeat_interval_s"], 15);
  EXPECT_EQ(run->outputs["announced_to"], 3);
  EXPECT_EQ(run->outputs["queued_tasks"][0]["title"], "triage flaky test");
  EXPECT_EQ(run->outputs["agents_on_network"], 4);
  EXPECT_EQ(bed_.net().Capabilities("dave"), (std::vector<std::string>{"review", "rust"}));
  EXPECT_EQ(bed_.net().Inbox("carol").back().message().subject(), "dave joined the network");
  // Every call acted as the agent running the skill.
  for (const std::string& call : bed_.net().Calls()) {
    if (call.rfind("CreateTask", 0) != 0) {
      EXPECT_EQ(call.substr(call.find(' ') + 1), "dave");
    }
  }
}

TEST_F(LibraryTest, RequestReviewNotifiesReviewers) {
  RunRecord run = Run("request_review", Json{{"title", "Review PR 42"}, {"details", "retry logic"}});
  EXPECT_EQ(run.outputs["reviewers_available"], 2);
  EXPECT_EQ(run.outputs["notified"], 2);
  std::string task_id = run.outputs["task_id"];
  pb::Task task = bed_.net().Task(task_id);
  EXPECT_EQ(task.required_capabilities(0), "review");
  EXPECT_EQ(task.tags(0), "review");
  EXPECT_EQ(bed_.net().Inbox("bob").back().message().subject(), "Review requested: Review PR 42");
}

TEST_F(LibraryTest, DelegateAndAnnounceWaitsForTheTask) {
  RunRequest req = bed_.Request("delegate_and_announce",
                                Json{{"title", "benchmark the gateway"}, {"poll_interval", "30s"}});
  req.timeout = absl::Hours(1);
  RunWaiter waiter;
  auto started = bed_.Start(req, &waiter);
  ASSERT_TRUE(started.ok()) << started.status();
  auto live = bed_.engine().GetRun(started->run_id, true);
  ASSERT_TRUE(live.ok());
  std::string task_id = live->steps[0].output["task_id"];
  EXPECT_EQ(live->steps[1].state, StepState::kRunning);
  clock_.Advance(absl::Seconds(30));  // one more poll: still queued
  EXPECT_FALSE(waiter.done());
  bed_.net().CompleteTask(task_id, "p99 0.8 ms at 10k msg/s", Json{{"p99_ms", 0.8}});
  clock_.Advance(absl::Seconds(30));
  RunRecord run = waiter.Wait();
  ASSERT_EQ(run.state, RunState::kSucceeded) << run.error->message;
  EXPECT_EQ(run.outputs["state"], "COMPLETED");
  EXPECT_EQ(run.outputs["summary"], "p99 0.8 ms at 10k msg/s");
  EXPECT_EQ(run.outputs["announced_to"], 2);
  EXPECT_EQ(bed_.net().Inbox("bob").back().message().subject(),
            "Task COMPLETED: benchmark the gateway");
  auto recorded = bed_.store().DataGet("shared", "delegations/" + task_id);
  ASSERT_TRUE(recorded.ok());
  ASSERT_TRUE(recorded->has_value());
  EXPECT_EQ((**recorded)["result"]["p99_ms"], 0.8);
  EXPECT_EQ(run.steps[1].attempts, 1);
  EXPECT_EQ(run.steps[1].finished_at - run.steps[1].started_at, absl::Seconds(60));
  // The composed skills' steps are recorded under the composing steps.
  EXPECT_EQ(run.steps[3].children[0].path, "announce/announce");
}

}  // namespace
}  // namespace cnet::skills
