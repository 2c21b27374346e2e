// The engine with a SimulatedClock and an inline executor: every wait is a
// clock timer, so each test moves time explicitly and observes the exact
// event order, with no sleeping.
#include "services/skills/engine.h"

#include "gtest/gtest.h"
#include "services/skills/testing/test_bed.h"

namespace cnet::skills {
namespace {

using testing::RunWaiter;
using testing::TestBed;

const StepRecord* FindStep(const std::vector<StepRecord>& steps, const std::string& path) {
  for (const StepRecord& s : steps) {
    if (s.path == path) return &s;
    if (const StepRecord* c = FindStep(s.children, path)) return c;
  }
  return nullptr;
}

std::vector<RunEvent> Events(TestBed& bed, const std::string& run_id) {
  auto src = bed.engine().Watch(run_id);
  EXPECT_TRUE(src.ok()) << src.status();
  return src.ok() ? src->backlog(0) : std::vector<RunEvent>{};
}

// "TYPE path" for each event, e.g. "STEP_STARTED a".
std::vector<std::string> Trace(const std::vector<RunEvent>& events) {
  static const char* kNames[] = {"",           "RUN_STARTED",  "STEP_STARTED",
                                 "STEP_OUTPUT", "STEP_RETRIED", "STEP_FAILED",
                                 "STEP_SKIPPED", "STEP_FINISHED", "RUN_FINISHED"};
  std::vector<std::string> out;
  for (const RunEvent& e : events) {
    std::string line = kNames[static_cast<int>(e.type)];
    if (!e.step_path.empty()) line += " " + e.step_path;
    out.push_back(line);
  }
  return out;
}

class EngineTest : public ::testing::Test {
 protected:
  SimulatedClock clock_;
  TestBed bed_{&clock_};
  const absl::Time t0_ = clock_.Now();
};

TEST_F(EngineTest, RunsStepsInOrderAndReturnsDeclaredOutputs) {
  bed_.Write("core/greet.yaml", R"(name: greet
version: 1.0.0
description: Says hello.
inputs:
  who: {type: string, default: world}
  times: {type: int, default: 2}
outputs:
  line: "{{ steps.say.output.message }}"
  times: {value: "{{ inputs.times }}", type: int}
steps:
  - id: say
    action: log
    args: {message: "hello {{ inputs.who }}"}
  - id: check
    action: assert
    args: {that: "{{ inputs.times == 2 }}", message: times must be 2}
)");
  bed_.Reload();
  auto run = bed_.RunToEnd(bed_.Request("greet"));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state, RunState::kSucceeded);
  EXPECT_EQ(run->skill_version, "1.0.0");
  // Defaults were applied before the first step.
  EXPECT_EQ(run->inputs, Json::parse(R"({"who": "world", "times": 2})"));
  EXPECT_EQ(run->outputs, Json::parse(R"({"line": "hello world", "times": 2})"));
  ASSERT_EQ(run->steps.size(), 2u);
  EXPECT_EQ(run->steps[0].state, StepState::kSucceeded);
  EXPECT_EQ(run->steps[0].resolved_args, Json::parse(R"({"message": "hello world"})"));
  EXPECT_EQ(Trace(Events(bed_, run->run_id)),
            (std::vector<std::string>{"RUN_STARTED", "STEP_STARTED say", "STEP_OUTPUT say",
                                      "STEP_FINISHED say", "STEP_STARTED check",
                                      "STEP_FINISHED check", "RUN_FINISHED"}));
}

TEST_F(EngineTest, CompositionThreeLevelsDeepPassesOutputsUp) {
  bed_.Write("meta/top.yaml", R"(name: top
version: 1.0.0
description: Level 1.
inputs:
  n: {type: int, required: true}
outputs:
  result: "{{ steps.call_mid.output.doubled }}"
steps:
  - id: call_mid
    skill: mid
    version: "^1"
    inputs: {n: "{{ inputs.n }}"}
)");
  bed_.Write("meta/mid.yaml", R"(name: mid
version: 1.2.0
description: Level 2.
inputs:
  n: {type: int, required: true}
outputs:
  doubled: {value: "{{ steps.call_leaf.output.text }}", type: string}
steps:
  - id: call_leaf
    skill: leaf
    inputs: {text: "n={{ inputs.n }}"}
)");
  bed_.Write("core/data/leaf.yaml", R"(name: leaf
version: 0.1.0
description: Level 3.
inputs:
  text: string
outputs:
  text: "{{ steps.echo.output.message }}!"
steps:
  - id: echo
    action: log
    args: {message: "{{ inputs.text }}"}
)");
  ReloadReport report = bed_.Reload();
  EXPECT_EQ(report.loaded, 3);
  auto lib = bed_.library().Current();
  EXPECT_EQ(lib->Find("top")->composes, std::vector<std::string>{"mid@1.2.0"});

  auto run = bed_.RunToEnd(bed_.Request("top", Json{{"n", 21}}));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->state, RunState::kSucceeded) << run->error->message;
  EXPECT_EQ(run->outputs, Json::parse(R"({"result": "n=21!"})"));
  const StepRecord* mid = FindStep(run->steps, "call_mid");
  ASSERT_NE(mid, nullptr);
  EXPECT_EQ(mid->kind, StepKind::kSkill);
  EXPECT_EQ(mid->target, "mid@1.2.0");
  EXPECT_EQ(mid->output, Json::parse(R"({"doubled": "n=21!"})"));
  const StepRecord* leaf = FindStep(run->steps, "call_mid/call_leaf");
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(leaf->target, "leaf@0.1.0");
  EXPECT_EQ(leaf->resolved_args, Json::parse(R"({"text": "n=21"})"));
  const StepRecord* echo = FindStep(run->steps, "call_mid/call_leaf/echo");
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->state, StepState::kSucceeded);
  EXPECT_EQ(echo->output["message"], "n=21");
}

TEST_F(EngineTest, CompositionCycleIsRejectedAndTheSkillsDoNotRun) {
  bed_.Write("meta/a.yaml", R"(name: a
version: 1.0.0
description: A.
steps:
  - id: to_b
    skill: b
)");
  bed_.Write("meta/b.yaml", R"(name: b
version: 1.0.0
description: B.
steps:
  - id: to_a
    skill: a
)");
  bed_.Write("meta/c.yaml", R"(name: c
version: 1.0.0
description: C composes a cycle.
steps:
  - id: to_a
    skill: a
)");
  ReloadReport report = bed_.Reload();
  EXPECT_EQ(report.loaded, 0);
  EXPECT_EQ(report.invalid, 3);
  auto lib = bed_.library().Current();
  const auto& a = lib->FindFile("meta/a.yaml")->issues;
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].ToString(),
            "meta/a.yaml:6:12: composition cycle: a@1.0.0 -> b@1.0.0 -> a@1.0.0");
  EXPECT_EQ(a[0].code, IssueCode::kCompositionCycle);
  EXPECT_EQ(lib->FindFile("meta/c.yaml")->issues[0].ToString(),
            "meta/c.yaml:6:12: composed skill \"a\" is invalid (a@1.0.0 in meta/a.yaml)");
  auto run = bed_.engine().Start(bed_.Request("a"), nullptr, nullptr);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(run.status().message(),
            "skill \"a@1.0.0\" is invalid: meta/a.yaml:6:12: composition cycle: a@1.0.0 -> "
            "b@1.0.0 -> a@1.0.0");
}

TEST_F(EngineTest, ParallelGroupStepsOverlapInTime) {
  bed_.Write("core/par.yaml", R"(name: par
version: 1.0.0
description: Two waits at once, then one more.
steps:
  - id: both
    parallel:
      - id: a
        action: sleep
        args: {duration: 10s}
      - id: b
        sequence:
          - id: b1
            action: sleep
            args: {duration: 4s}
          - id: b2
            action: sleep
            args: {duration: 4s}
  - id: after
    action: sleep
    args: {duration: 1s}
)");
  bed_.Reload();
  RunWaiter waiter;
  auto started = bed_.Start(bed_.Request("par"), &waiter);
  ASSERT_TRUE(started.ok()) << started.status();
  clock_.Advance(absl::Seconds(4));
  clock_.Advance(absl::Seconds(4));
  clock_.Advance(absl::Seconds(2));
  clock_.Advance(absl::Seconds(1));
  RunRecord run = waiter.Wait();
  ASSERT_EQ(run.state, RunState::kSucceeded);
  std::map<std::string, std::pair<absl::Time, absl::Time>> span;
  for (const RunEvent& e : Events(bed_, run.run_id)) {
    if (e.type == EventType::kStepStarted) span[e.step_path].first = e.time;
    if (e.type == EventType::kStepFinished) span[e.step_path].second = e.time;
  }
  // a and b ran at once: each started before the other ended.
  EXPECT_EQ(span["both/a"].first, t0_);
  EXPECT_EQ(span["both/b"].first, t0_);
  EXPECT_LT(span["both/a"].first, span["both/b"].second);
  EXPECT_LT(span["both/b"].first, span["both/a"].second);
  EXPECT_EQ(span["both/a"].second, t0_ + absl::Seconds(10));
  EXPECT_EQ(span["both/b/b2"].first, t0_ + absl::Seconds(4));
  EXPECT_EQ(span["both/b"].second, t0_ + absl::Seconds(8));
  // The group waited for all: the next step started when the slowest ended.
  EXPECT_EQ(span["both"].second, t0_ + absl::Seconds(10));
  EXPECT_EQ(span["after"].first, t0_ + absl::Seconds(10));
  EXPECT_EQ(run.finished_at, t0_ + absl::Seconds(11));
}

TEST_F(EngineTest, RetryWithBackoffThenSuccess) {
  bed_.net().AddAgent("bob");
  bed_.net().FailNext("Send", 2, absl::UnavailableError("macs: connection refused"));
  bed_.Write("core/send.yaml", R"(name: send
version: 1.0.0
description: Send with retries.
steps:
  - id: send
    action: messaging.send
    args: {to: bob, subject: hi}
    retry: {attempts: 3, backoff: 1s, multiplier: 3}
)");
  bed_.Reload();
  RunWaiter waiter;
  auto started = bed_.Start(bed_.Request("send"), &waiter);
  ASSERT_TRUE(started.ok());
  EXPECT_FALSE(waiter.done());
  clock_.Advance(absl::Seconds(1));  // attempt 2 fails too
  EXPECT_FALSE(waiter.done());
  clock_.Advance(absl::Seconds(3));  // backoff x3; attempt 3 succeeds
  RunRecord run = waiter.Wait();
  ASSERT_EQ(run.state, RunState::kSucceeded);
  EXPECT_EQ(run.steps[0].attempts, 3);
  EXPECT_EQ(run.steps[0].output["recipient_count"], 1);
  std::vector<RunEvent> events = Events(bed_, run.run_id);
  EXPECT_EQ(Trace(events),
            (std::vector<std::string>{"RUN_STARTED", "STEP_STARTED send", "STEP_RETRIED send",
                                      "STEP_STARTED send", "STEP_RETRIED send",
                                      "STEP_STARTED send", "STEP_FINISHED send",
                                      "RUN_FINISHED"}));
  EXPECT_EQ(*events[2].retry_in, absl::Seconds(1));
  EXPECT_EQ(events[2].error->code, "UNAVAILABLE");
  EXPECT_EQ(*events[4].retry_in, absl::Seconds(3));
  EXPECT_EQ(events[5].attempt, 3);
  EXPECT_EQ(events[5].time, t0_ + absl::Seconds(4));
  EXPECT_EQ(bed_.net().Inbox("bob").size(), 1u);
}

TEST_F(EngineTest, StepTimeoutIsDeadlineExceededAndFailsTheRun) {
  bed_.Write("core/slow.yaml", R"(name: slow
version: 1.0.0
description: Too slow.
steps:
  - id: wait
    action: sleep
    args: {duration: 1m}
    timeout: 5s
  - id: never
    action: log
    args: {message: unreachable}
)");
  bed_.Reload();
  RunWaiter waiter;
  ASSERT_TRUE(bed_.Start(bed_.Request("slow"), &waiter).ok());
  clock_.Advance(absl::Seconds(5));
  RunRecord run = waiter.Wait();
  EXPECT_EQ(run.state, RunState::kFailed);
  ASSERT_TRUE(run.error.has_value());
  EXPECT_EQ(run.error->code, "DEADLINE_EXCEEDED");
  EXPECT_EQ(run.error->step_path, "wait");
  EXPECT_EQ(run.error->message, "step \"wait\" timed out after 5s");
  EXPECT_EQ(run.steps[0].state, StepState::kFailed);
  EXPECT_EQ(run.steps[0].error->code, "DEADLINE_EXCEEDED");
  EXPECT_EQ(run.steps[0].finished_at, t0_ + absl::Seconds(5));
  EXPECT_EQ(run.steps[1].state, StepState::kSkipped);
  EXPECT_EQ(run.steps[1].skip_reason, "not run: step \"wait\" failed");
  // The sleep's own timer was cancelled with the attempt.
  EXPECT_EQ(clock_.PendingTimers(), 0u);
}

TEST_F(EngineTest, WhenFalseSkipsTheStep) {
  bed_.Write("core/cond.yaml", R"(name: cond
version: 1.0.0
description: Conditional.
inputs:
  dry_run: {type: bool, default: true}
steps:
  - id: first
    action: log
    args: {message: always}
  - id: act
    when: not inputs.dry_run and steps.first.state == 'SUCCEEDED'
    action: log
    args: {message: acting}
  - id: report
    when: "{{ steps.act.state == 'SKIPPED' }}"
    action: log
    args: {message: "act output: {{ steps.act.output }}"}
)");
  bed_.Reload();
  auto run = bed_.RunToEnd(bed_.Request("cond"));
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->state, RunState::kSucceeded);
  EXPECT_EQ(run->steps[1].state, StepState::kSkipped);
  EXPECT_EQ(run->steps[1].skip_reason,
            "when: not inputs.dry_run and steps.first.state == 'SUCCEEDED' was false");
  EXPECT_EQ(run->steps[1].attempts, 0);
  EXPECT_EQ(run->steps[2].state, StepState::kSucceeded);
  EXPECT_EQ(run->steps[2].output["message"], "act output: ");
  auto trace = Trace(Events(bed_, run->run_id));
  EXPECT_EQ(trace[4], "STEP_SKIPPED act");

  auto wet = bed_.RunToEnd(bed_.Request("cond", Json{{"dry_run", false}}));
  ASSERT_TRUE(wet.ok());
  EXPECT_EQ(wet->steps[1].state, StepState::kSucceeded);
  EXPECT_EQ(wet->steps[2].state, StepState::kSkipped);
}

TEST_F(EngineTest, OnErrorContinueRecordsTheFailureAndGoesOn) {
  bed_.Write("core/cont.yaml", R"(name: cont
version: 1.0.0
description: Keeps going.
outputs:
  seen: "{{ steps.fetch.output }}"
  fetch_state: "{{ steps.fetch.state }}"
steps:
  - id: fetch
    action: data.retrieve
    args: {key: missing, required: true}
    on_error: continue
  - id: after
    action: log
    args: {message: "count={{ steps.fetch.output.value }}"}
)");
  bed_.Reload();
  auto run = bed_.RunToEnd(bed_.Request("cont"));
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->state, RunState::kSucceeded);
  EXPECT_EQ(run->steps[0].state, StepState::kFailed);
  EXPECT_EQ(run->steps[0].error->code, "NOT_FOUND");
  EXPECT_EQ(run->steps[0].error->message,
            "data.retrieve: no key \"missing\" in namespace \"agent/alice\"");
  EXPECT_EQ(run->steps[1].state, StepState::kSucceeded);
  EXPECT_EQ(run->steps[1].output["message"], "count=");
  EXPECT_EQ(run->outputs, Json::parse(R"({"seen": null, "fetch_state": "FAILED"})"));
}

TEST_F(EngineTest, CancelMidRunInterruptsTheRunningStep) {
  bed_.Write("core/long.yaml", R"(name: long
version: 1.0.0
description: Long.
steps:
  - id: first
    action: log
    args: {message: started}
  - id: wait
    action: sleep
    args: {duration: 1h}
    timeout: 2h
  - id: never
    action: log
    args: {message: unreachable}
)");
  bed_.Reload();
  RunWaiter waiter;
  auto started = bed_.Start(bed_.Request("long"), &waiter);
  ASSERT_TRUE(started.ok());
  clock_.Advance(absl::Minutes(5));
  CallerInfo other{1, "mallory", ""};
  auto denied = bed_.engine().Cancel(started->run_id, other, false, "");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  CallerInfo alice{1, "alice", ""};
  auto cancelled = bed_.engine().Cancel(started->run_id, alice, false, "no longer needed");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, RunState::kCancelled);
  EXPECT_EQ(cancelled->error->code, "CANCELLED");
  EXPECT_EQ(cancelled->error->message, "run cancelled by alice: no longer needed");
  EXPECT_EQ(cancelled->finished_at, t0_ + absl::Minutes(5));
  EXPECT_EQ(cancelled->steps[0].state, StepState::kSucceeded);
  EXPECT_EQ(cancelled->steps[1].state, StepState::kCancelled);
  EXPECT_EQ(cancelled->steps[2].state, StepState::kSkipped);
  // Every timer of the run (sleep, step timeout, run timeout) is gone.
  EXPECT_EQ(clock_.PendingTimers(), 0u);
  EXPECT_EQ(waiter.Wait().state, RunState::kCancelled);
  auto again = bed_.engine().Cancel(started->run_id, alice, false, "");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(again.status().message(),
            "run \"" + started->run_id + "\" already finished (CANCELLED)");
  auto trace = Trace(Events(bed_, started->run_id));
  EXPECT_EQ(trace.back(), "RUN_FINISHED");
  EXPECT_EQ(trace[trace.size() - 2], "STEP_FAILED wait");
}

TEST_F(EngineTest, ParallelFailureCancelsSiblingsAndRunTimeoutFailsTheRun) {
  bed_.Write("core/fan.yaml", R"(name: fan
version: 1.0.0
description: One fails fast.
steps:
  - id: group
    parallel:
      - id: slow
        action: sleep
        args: {duration: 1m}
      - id: bad
        action: assert
        args: {that: false, message: broken}
)");
  bed_.Write("core/forever.yaml", R"(name: forever
version: 1.0.0
description: Outlives its run timeout.
steps:
  - id: wait
    action: sleep
    args: {duration: 10h}
    timeout: 11h
)");
  bed_.Reload();
  auto run = bed_.RunToEnd(bed_.Request("fan"));
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state, RunState::kFailed);
  EXPECT_EQ(run->error->code, "FAILED_PRECONDITION");
  EXPECT_EQ(run->error->step_path, "group/bad");
  EXPECT_EQ(run->error->message, "assert: broken");
  EXPECT_EQ(FindStep(run->steps, "group/slow")->state, StepState::kCancelled);
  EXPECT_EQ(FindStep(run->steps, "group/slow")->error->message,
            "cancelled: step \"bad\" of the same parallel group failed");

  RunRequest req = bed_.Request("forever");
  req.timeout = absl::Minutes(5);
  RunWaiter waiter;
  ASSERT_TRUE(bed_.Start(req, &waiter).ok());
  clock_.Advance(absl::Minutes(5));
  RunRecord timed = waiter.Wait();
  EXPECT_EQ(timed.state, RunState::kFailed);
  EXPECT_EQ(timed.error->code, "DEADLINE_EXCEEDED");
  EXPECT_EQ(timed.error->message, "the run timed out after 5m");
  EXPECT_EQ(timed.error->step_path, "");
  EXPECT_EQ(timed.steps[0].state, StepState::kCancelled);
}

TEST_F(EngineTest, InputsAreCheckedBeforeAnythingIsStored) {
  bed_.Write("core/typed.yaml", R"(name: typed
version: 1.0.0
description: Typed inputs.
inputs:
  to: {type: string, required: true}
  count: {type: int, default: 1}
  level: {type: string, default: low, allowed: [low, high]}
  ratio: {type: float, default: 0.5}
steps:
  - id: s
    action: log
    args: {message: "{{ inputs.to }} {{ inputs.count }} {{ inputs.level }} {{ inputs.ratio }}"}
)");
  bed_.Reload();
  auto expect = [&](Json inputs, const std::string& message) {
    auto r = bed_.engine().Start(bed_.Request("typed", inputs), nullptr, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), message);
  };
  expect(Json::object(), "input \"to\": required (string) but not given");
  expect(Json{{"to", "bob"}, {"count", "3"}}, "input \"count\": expected int, got string \"3\"");
  expect(Json{{"to", "bob"}, {"count", 1.5}}, "input \"count\": expected int, got float 1.5");
  expect(Json{{"to", "bob"}, {"level", "mid"}},
         "input \"level\": \"mid\" is not one of \"low\", \"high\"");
  expect(Json{{"to", "bob"}, {"cuont", 2}},
         "input \"cuont\": not an input of skill \"typed\" (inputs: to, count, level, ratio)");
  bed_.store().Flush();
  auto listed = bed_.engine().ListRuns(Store::RunFilter{});
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  // An int is accepted for a float.
  auto ok = bed_.RunToEnd(bed_.Request("typed", Json{{"to", "bob"}, {"ratio", 2}}));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->inputs["ratio"], 2.0);
  EXPECT_TRUE(ok->inputs["ratio"].is_number_float());
}

TEST_F(EngineTest, UnknownSkillAndConcurrencyLimit) {
  auto missing = bed_.engine().Start(bed_.Request("nope"), nullptr, nullptr);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "skill \"nope\" not found");
  bed_.Write("core/nap.yaml", R"(name: nap
version: 1.0.0
description: Naps.
steps:
  - id: nap
    action: sleep
    args: {duration: 1m}
)");
  bed_.Reload();
  auto bad_range = bed_.engine().Start(
      [&] {
        RunRequest r = bed_.Request("nap");
        r.version = "^2";
        return r;
      }(),
      nullptr, nullptr);
  EXPECT_EQ(bad_range.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(bad_range.status().message(),
            "no version of skill \"nap\" matches \"^2\" (available: 1.0.0)");
}

TEST_F(EngineTest, HistoryAndStatsAfterRuns) {
  bed_.Write("core/timed.yaml", R"(name: timed
version: 1.0.0
description: Takes `secs` seconds, fails when asked.
inputs:
  secs: {type: int, required: true}
  fail: {type: bool, default: false}
steps:
  - id: nap
    action: sleep
    args: {duration: "{{ inputs.secs }}s"}
  - id: verdict
    action: assert
    args: {that: "{{ not inputs.fail }}", message: asked to fail}
)");
  bed_.Reload();
  std::vector<std::string> ids;
  for (int secs : {1, 2, 3, 4}) {
    RunWaiter waiter;
    auto started = bed_.Start(bed_.Request("timed", Json{{"secs", secs}, {"fail", secs == 4}}),
                              &waiter);
    ASSERT_TRUE(started.ok());
    clock_.Advance(absl::Seconds(secs));
    waiter.Wait();
    ids.push_back(started->run_id);
  }
  auto runs = bed_.engine().ListRuns(Store::RunFilter{});
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 4u);
  EXPECT_EQ((*runs)[0].run_id, ids[3]);  // newest first
  EXPECT_EQ((*runs)[0].state, RunState::kFailed);
  EXPECT_TRUE((*runs)[0].steps.empty());
  Store::RunFilter failed;
  failed.states = {RunState::kFailed};
  EXPECT_EQ(bed_.engine().ListRuns(failed)->size(), 1u);

  auto one = bed_.engine().GetRun(ids[1], true);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->inputs, Json::parse(R"({"secs": 2, "fail": false})"));
  EXPECT_EQ(one->steps[0].started_at, one->started_at);
  EXPECT_EQ(one->steps[0].finished_at - one->steps[0].started_at, absl::Seconds(2));
  EXPECT_EQ(one->steps[0].resolved_args, Json::parse(R"({"duration": "2s"})"));

  SkillStats totals;
  auto stats = bed_.engine().Stats("timed", std::nullopt, &totals);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 1u);
  const SkillStats& s = (*stats)[0];
  EXPECT_EQ(s.runs, 4);
  EXPECT_EQ(s.succeeded, 3);
  EXPECT_EQ(s.failed, 1);
  EXPECT_DOUBLE_EQ(s.success_rate, 0.75);
  EXPECT_EQ(s.duration.count, 4);
  EXPECT_EQ(s.duration.p50, absl::Seconds(2));
  EXPECT_EQ(s.duration.p95, absl::Seconds(4));
  EXPECT_EQ(s.duration.p99, absl::Seconds(4));
  EXPECT_EQ(s.duration.max, absl::Seconds(4));
  EXPECT_EQ(s.duration.mean, absl::Milliseconds(2500));
  // Each action step gives one overhead sample; simulated time has none.
  EXPECT_EQ(s.step_overhead.count, 8);
  EXPECT_EQ(s.step_overhead.max, absl::ZeroDuration());
  EXPECT_EQ(totals.runs, 4);
  EXPECT_EQ(bed_.engine().Stats("never", std::nullopt, nullptr).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(EngineTest, RestartKeepsHistoryEventsAndData) {
  bed_.Write("core/keep.yaml", R"(name: keep
version: 1.0.0
description: Stores a value.
steps:
  - id: put
    action: data.store
    args: {key: k, value: {n: 1}}
)");
  bed_.Reload();
  auto run = bed_.RunToEnd(bed_.Request("keep"));
  ASSERT_TRUE(run.ok());
  std::vector<std::string> before = Trace(Events(bed_, run->run_id));
  bed_.Restart();
  auto again = bed_.engine().GetRun(run->run_id, true);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->state, RunState::kSucceeded);
  EXPECT_EQ(again->steps[0].output["created"], true);
  EXPECT_EQ(again->event_count, static_cast<int64_t>(before.size()));
  EXPECT_EQ(Trace(Events(bed_, run->run_id)), before);
  auto stats = bed_.engine().Stats("keep", std::nullopt, nullptr);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].runs, 1);
  auto value = bed_.store().DataGet("agent/alice", "k");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(**value, Json::parse(R"({"n": 1})"));
}

TEST_F(EngineTest, IdempotencyKeyReturnsTheSameRun) {
  bed_.Write("core/once.yaml", R"(name: once
version: 1.0.0
description: Once.
inputs:
  x: {type: int, default: 0}
steps:
  - id: s
    action: log
    args: {message: "x={{ inputs.x }}"}
)");
  bed_.Reload();
  RunRequest req = bed_.Request("once", Json{{"x", 1}});
  req.idempotency_key = "k1";
  auto first = bed_.RunToEnd(req);
  ASSERT_TRUE(first.ok());
  bool existing = false;
  RunWaiter waiter;
  auto second = bed_.engine().Start(req, nullptr, waiter.Callback(), &existing);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(existing);
  EXPECT_EQ(second->run_id, first->run_id);
  EXPECT_EQ(waiter.Wait().state, RunState::kSucceeded);
  req.inputs = Json{{"x", 2}};
  auto conflict = bed_.engine().Start(req, nullptr, nullptr);
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(EngineLimitsTest, ConcurrencyLimitIsResourceExhausted) {
  SimulatedClock clock;
  testing::TestBedOptions options;
  options.engine.max_runs = 2;
  options.engine.max_runs_per_agent = 1;
  TestBed bed(&clock, options);
  bed.Write("core/nap.yaml", R"(name: nap
version: 1.0.0
description: Naps.
steps:
  - id: nap
    action: sleep
    args: {duration: 1m}
    timeout: 2m
)");
  bed.Reload();
  RunWaiter w1, w2;
  ASSERT_TRUE(bed.Start(bed.Request("nap", Json::object(), "a1"), &w1).ok());
  auto per_agent = bed.engine().Start(bed.Request("nap", Json::object(), "a1"), nullptr, nullptr);
  EXPECT_EQ(per_agent.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(per_agent.status().message(),
            "agent \"a1\" has 1 runs in flight, the limit is 1 (config "
            "skills.max_runs_per_agent); retry in 1s");
  ASSERT_TRUE(bed.Start(bed.Request("nap", Json::object(), "a2"), &w2).ok());
  auto global = bed.engine().Start(bed.Request("nap", Json::object(), "a3"), nullptr, nullptr);
  EXPECT_EQ(global.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(global.status().message(),
            "runs in flight: 2 of 2 (config limits.max_skill_runs); retry in 1s");
  EXPECT_TRUE(global.status().GetPayload(kRetryAfterPayload).has_value());
  clock.Advance(absl::Minutes(1));
  w1.Wait();
  w2.Wait();
  // Slots are free again once the runs are recorded.
  RunWaiter w3;
  EXPECT_TRUE(bed.Start(bed.Request("nap", Json::object(), "a3"), &w3).ok());
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(w3.Wait().state, RunState::kSucceeded);
}

}  // namespace
}  // namespace cnet::skills
