// Built-in actions that do not go through other services: shell (allow-
// list, exit codes, output caps, timeout kills), the /proc probe, the data
// store's namespaces, wait_for's condition.
#include "services/skills/actions.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "services/skills/testing/test_bed.h"

namespace cnet::skills {
namespace {

using testing::RunWaiter;
using testing::TestBed;
using testing::TestBedOptions;

TestBedOptions Shell(bool threads = false) {
  TestBedOptions o;
  o.shell_allowlist = {"echo", "sh"};
  o.inline_executor = !threads;
  return o;
}

TEST(ShellActionTest, RunsAllowListedCommandsAndReportsExitCodes) {
  SimulatedClock clock;
  TestBed bed(&clock, Shell());
  bed.Write("domain/ops/sh.yaml", R"(name: sh
version: 1.0.0
description: Runs a command.
inputs:
  script: {type: string, required: true}
  check: {type: bool, default: true}
outputs:
  out: "{{ steps.run.output.stdout }}"
  code: "{{ steps.run.output.exit_code }}"
steps:
  - id: run
    action: shell
    args: {command: sh, args: ["-c", "{{ inputs.script }}"], stdin: "from stdin", check: "{{ inputs.check }}"}
)");
  bed.Write("domain/ops/env.yaml", R"(name: env_leak
version: 1.0.0
description: Prints the environment the command sees.
outputs:
  out: "{{ steps.run.output.stdout }}"
steps:
  - id: run
    action: shell
    args: {command: sh, args: ["-c", "env | sort"]}
)");
  bed.Write("domain/ops/rm.yaml", R"(name: rm
version: 1.0.0
description: A command that is not allow-listed.
steps:
  - id: run
    action: shell
    args: {command: rm, args: ["-rf", "/tmp/x"]}
)");
  bed.Reload();
  auto ok = bed.RunToEnd(bed.Request("sh", Json{{"script", "cat; echo; echo $((6*7))"}}));
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->state, RunState::kSucceeded);
  EXPECT_EQ(ok->outputs["out"], "from stdin\n42\n");
  EXPECT_EQ(ok->outputs["code"], 0);

  auto failed = bed.RunToEnd(bed.Request("sh", Json{{"script", "echo boom >&2; exit 3"}}));
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, RunState::kFailed);
  EXPECT_EQ(failed->error->code, "FAILED_PRECONDITION");
  EXPECT_EQ(failed->error->message, "shell: \"sh\" exited with code 3: boom");
  auto unchecked =
      bed.RunToEnd(bed.Request("sh", Json{{"script", "exit 3"}, {"check", false}}));
  ASSERT_TRUE(unchecked.ok());
  EXPECT_EQ(unchecked->state, RunState::kSucceeded);
  EXPECT_EQ(unchecked->outputs["code"], 3);

  // The child sees PATH and LANG only: none of the service's secrets.
  auto env = bed.RunToEnd(bed.Request("env_leak"));
  ASSERT_TRUE(env.ok());
  std::string out = env->outputs["out"];
  EXPECT_NE(out.find("PATH=/usr/local/bin:/usr/bin:/bin"), std::string::npos);
  EXPECT_EQ(out.find("CNET_"), std::string::npos);
  EXPECT_EQ(out.find("HOME="), std::string::npos);

  auto denied = bed.engine().Start(bed.Request("rm"), nullptr, nullptr);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.status().message(),
            "skill \"rm@1.0.0\", step \"run\" of rm@1.0.0: command \"rm\" is not in config "
            "skills.shell_allowlist");
}

TEST(ShellActionTest, OutputIsCappedAndATimeoutKillsTheCommand) {
  SimulatedClock clock;
  TestBedOptions options = Shell(/*threads=*/true);
  options.engine.shell_timeout = absl::Seconds(5);
  TestBed bed(&clock, options);
  bed.Write("domain/ops/big.yaml", R"(name: big
version: 1.0.0
description: Prints 200000 bytes.
outputs:
  size: "{{ len(steps.run.output.stdout) }}"
  truncated: "{{ steps.run.output.truncated }}"
steps:
  - id: run
    action: shell
    args: {command: sh, args: ["-c", "head -c 200000 /dev/zero | tr '\\0' x"]}
)");
  bed.Write("domain/ops/hang.yaml", R"(name: hang
version: 1.0.0
description: Never ends by itself.
steps:
  - id: run
    action: shell
    args: {command: sh, args: ["-c", "sleep 600"]}
    timeout: 1m
)");
  bed.Reload();
  auto big = bed.RunToEnd(bed.Request("big"));
  ASSERT_TRUE(big.ok());
  ASSERT_EQ(big->state, RunState::kSucceeded) << big->error->message;
  EXPECT_EQ(big->outputs["size"], 64 * 1024);
  EXPECT_EQ(big->outputs["truncated"], true);

  RunWaiter waiter;
  auto started = bed.Start(bed.Request("hang"), &waiter);
  ASSERT_TRUE(started.ok());
  // The command announces itself once it runs; then its (shell) timeout
  // passes on the clock: the smaller of the step's 1m and shell_timeout 5s.
  auto src = bed.engine().Watch(started->run_id);
  ASSERT_TRUE(src.ok());
  struct Follower {
    absl::Mutex mu;
    bool running ABSL_GUARDED_BY(mu) = false;
    std::shared_ptr<EventHub<RunEvent>::Subscriber> sub ABSL_GUARDED_BY(mu);
    void Saw(const RunEvent& e) {
      absl::MutexLock lock(&mu);
      running = running || e.type == EventType::kStepOutput;
    }
    void Drain() {
      std::shared_ptr<EventHub<RunEvent>::Subscriber> s;
      {
        absl::MutexLock lock(&mu);
        s = sub;
      }
      RunEvent e;
      while (s != nullptr && s->Pop(&e)) Saw(e);
    }
  } follower;
  auto sub = src->hub->Subscribe(64, [&follower] { follower.Drain(); });
  {
    absl::MutexLock lock(&follower.mu);
    follower.sub = sub;
  }
  follower.Drain();
  for (const RunEvent& e : src->backlog(0)) follower.Saw(e);
  {
    absl::MutexLock lock(&follower.mu);
    auto running = [&follower]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(follower.mu) {
      return follower.running;
    };
    ASSERT_TRUE(follower.mu.AwaitWithTimeout(absl::Condition(&running), absl::Seconds(20)));
  }
  src->hub->Unsubscribe(sub);
  clock.Advance(absl::Seconds(5));
  RunRecord run = waiter.Wait();
  EXPECT_EQ(run.state, RunState::kFailed);
  EXPECT_EQ(run.error->code, "DEADLINE_EXCEEDED");
  EXPECT_EQ(run.error->message, "step \"run\" timed out after 5s");
}

TEST(SystemProbeTest, ReadsLoadMemoryDiskAndUptimeFromProc) {
  std::string tmpl = std::string(::testing::TempDir()) + "/procXXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  std::ofstream(dir + "/loadavg") << "3.50 2.00 1.00 2/300 4000\n";
  std::ofstream(dir + "/meminfo") << "MemTotal:       1000000 kB\nMemFree: 10 kB\n"
                                     "MemAvailable:     40000 kB\n";
  std::ofstream(dir + "/uptime") << "12345.67 999.00\n";
  std::ofstream(dir + "/cpuinfo") << "processor : 0\nmodel : x\n\nprocessor : 1\n";
  ProcSystemProbe probe(dir);
  auto h = probe.HostHealth("/");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*h)["load1"], 3.5);
  EXPECT_EQ((*h)["cpu_count"], 2);
  EXPECT_EQ((*h)["memory_total_bytes"], 1024000000);
  EXPECT_EQ((*h)["memory_used_percent"], 96.0);
  EXPECT_EQ((*h)["uptime_seconds"], 12345);
  EXPECT_EQ((*h)["status"], "warning");
  EXPECT_EQ((*h)["reasons"][0], "memory 96% used");
  EXPECT_EQ(probe.HostHealth("/no/such/dir").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::filesystem::remove(dir + "/loadavg");
  EXPECT_EQ(probe.HostHealth("/").status().code(), absl::StatusCode::kUnavailable);
}

TEST(DataActionTest, NamespacesKeysAndListing) {
  SimulatedClock clock;
  TestBed bed(&clock);
  bed.Write("core/data/kv.yaml", R"(name: kv
version: 1.0.0
description: Puts three keys and lists them.
inputs:
  ns: {type: string, default: shared}
outputs:
  keys: "{{ steps.list.output.keys }}"
  again: "{{ steps.replace.output.created }}"
steps:
  - id: put
    parallel:
      - id: a
        action: data.store
        args: {namespace: "{{ inputs.ns }}", key: "team/a", value: 1}
      - id: b
        action: data.store
        args: {namespace: "{{ inputs.ns }}", key: "team/b", value: [1, 2]}
      - id: c
        action: data.store
        args: {namespace: "{{ inputs.ns }}", key: "other", value: "x"}
  - id: replace
    action: data.store
    args: {namespace: "{{ inputs.ns }}", key: "team/a", value: 2}
  - id: list
    action: data.list
    args: {namespace: "{{ inputs.ns }}", prefix: "team/"}
)");
  bed.Reload();
  auto run = bed.RunToEnd(bed.Request("kv"));
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->state, RunState::kSucceeded) << run->error->message;
  EXPECT_EQ(run->outputs["keys"], Json::parse(R"(["team/a", "team/b"])"));
  EXPECT_EQ(run->outputs["again"], false);
  auto bad = bed.RunToEnd(bed.Request("kv", Json{{"ns", "no spaces allowed"}}));
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->state, RunState::kFailed);
  EXPECT_EQ(bad->error->code, "INVALID_ARGUMENT");
  EXPECT_EQ(bad->error->message,
            "argument \"namespace\" of data.store: \"no spaces allowed\" must match "
            "[A-Za-z0-9._/:-]{1,128}");
  auto other = bed.RunToEnd(bed.Request("kv", Json{{"ns", "agent/bob"}}));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->error->code, "PERMISSION_DENIED");
}

TEST(WaitForActionTest, AConditionThatIsNotABoolFailsTheStep) {
  SimulatedClock clock;
  TestBed bed(&clock);
  bed.net().AddAgent("alice");
  bed.Write("core/w.yaml", R"(name: w
version: 1.0.0
description: Polls with a bad condition.
steps:
  - id: poll
    action: wait_for
    args:
      action: registry.agent_health
      until: output.health
)");
  bed.Reload();
  auto run = bed.RunToEnd(bed.Request("w"));
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state, RunState::kFailed);
  EXPECT_EQ(run->error->message,
            "expression \"output.health\": a condition needs a bool, got string \"HEALTHY\"");
}

}  // namespace
}  // namespace cnet::skills
