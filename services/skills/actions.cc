#include "services/skills/actions.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/skills/action_args.h"
#include "services/skills/service_actions.h"
#include "services/skills/shell.h"
#include "services/skills/template.h"

namespace cnet::skills {
namespace {

// Runs `fn` on the blocking executor and finishes the call with its result.
void Blocking(const std::shared_ptr<ActionCall>& call, std::function<absl::StatusOr<Json>()> fn) {
  call->blocking()->Post([call, fn = std::move(fn)] {
    if (call->cancelled()) return;
    call->Finish(fn());
  });
}

// An action given by a blocking function of (arguments, call): the shape of
// every service-backed action.
class FnAction final : public Action {
 public:
  using Fn = std::function<absl::StatusOr<Json>(const Json& args, ActionCall& call)>;
  explicit FnAction(Fn fn) : fn_(std::move(fn)) {}
  void Start(const Json& args, std::shared_ptr<ActionCall> call) override {
    Fn fn = fn_;
    Blocking(call, [fn, args, call]() { return fn(args, *call); });
  }

 private:
  Fn fn_;
};

class LogAction final : public Action {
 public:
  void Start(const Json& a, std::shared_ptr<ActionCall> call) override {
    Args args(a, "log");
    std::string message = args.Str("message");
    std::string level = args.Str("level", "info");
    if (args.ok() && level != "info" && level != "warning" && level != "error") {
      args.Fail(absl::StrCat(args.Label("level"), ": \"", level,
                             "\" is not one of info, warning, error"));
    }
    if (!args.ok()) return call->Finish(args.status());
    Json out{{"message", message}, {"level", level}};
    call->Output(out, message);
    call->Finish(out);
  }
};

class AssertAction final : public Action {
 public:
  void Start(const Json& a, std::shared_ptr<ActionCall> call) override {
    Args args(a, "assert");
    const Json* that = args.Raw("that");
    std::string message = args.Str("message", "assertion failed");
    if (that != nullptr && !that->is_boolean()) {
      args.Fail(absl::StrCat(args.Label("that"), ": expected a bool, got ", TypeOf(*that), " ",
                             Describe(*that)));
    }
    if (!args.ok()) return call->Finish(args.status());
    if (that == nullptr || !that->get<bool>()) {
      return call->Finish(absl::FailedPreconditionError(absl::StrCat("assert: ", message)));
    }
    call->Finish(Json{{"ok", true}});
  }
};

class SleepAction final : public Action {
 public:
  void Start(const Json& a, std::shared_ptr<ActionCall> call) override {
    Args args(a, "sleep");
    auto d = args.Dur("duration");
    if (args.ok() && !d) args.Fail(absl::StrCat(args.Label("duration"), ": required"));
    if (!args.ok()) return call->Finish(args.status());
    Clock* clock = call->clock();
    Json out{{"slept_ms", absl::ToInt64Milliseconds(*d)}};
    absl::Time until = clock->Now() + *d;
    Clock::TimerId id = clock->RunAt(until, [call, out] { call->Finish(out); });
    call->OnCancel([clock, id] { clock->Cancel(id); });
    // Emitted once the timer is set: a watcher knows the wait has begun.
    call->Output(Json{{"until", absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", until,
                                                 absl::UTCTimeZone())}},
                 absl::StrCat("sleeping ", absl::FormatDuration(*d)));
  }
};

// Polls another action until `until` holds over its output.
class WaitForAction final : public Action {
 public:
  explicit WaitForAction(const ActionRegistry* registry) : registry_(registry) {}

  void Start(const Json& a, std::shared_ptr<ActionCall> call) override {
    Args args(a, "wait_for");
    std::string name = args.Str("action");
    Json inner_args = args.Map("args");
    std::string until_text = args.Str("until");
    auto interval = args.Dur("interval");
    if (!args.ok()) return call->Finish(args.status());
    Action* inner = registry_->Find(name);
    if (inner == nullptr || name == "wait_for") {
      return call->Finish(absl::InvalidArgumentError(
          absl::StrCat(args.Label("action"), ": unknown action \"", name, "\"")));
    }
    auto state = std::make_shared<Poll>();
    state->outer = call;
    state->inner = inner;
    state->args = std::move(inner_args);
    state->interval = std::max(interval.value_or(absl::Seconds(5)), absl::Milliseconds(10));
    SyntaxError err;
    if (!ParseCondition(until_text, &state->until, &err)) {
      return call->Finish(
          absl::InvalidArgumentError(absl::StrCat(args.Label("until"), ": ", err.message)));
    }
    call->OnCancel([state] {
      std::lock_guard<std::mutex> lock(state->mu);
      state->stopped = true;
      if (state->timer != 0) state->outer->clock()->Cancel(state->timer);
    });
    Next(state);
  }

 private:
  struct Poll {
    std::mutex mu;
    std::shared_ptr<ActionCall> outer;
    Action* inner = nullptr;
    Json args;
    Expression until;
    absl::Duration interval;
    int polls = 0;
    bool stopped = false;
    Clock::TimerId timer = 0;
  };

  // The polled action's view of the outer call: same identity, deadline and
  // cancellation; its result comes back to the poll loop.
  class InnerCall final : public ActionCall {
   public:
    InnerCall(std::shared_ptr<Poll> poll, std::function<void(absl::StatusOr<Json>)> done)
        : poll_(std::move(poll)), done_(std::move(done)) {}
    const std::string& agent_id() const override { return poll_->outer->agent_id(); }
    const std::string& run_id() const override { return poll_->outer->run_id(); }
    const std::string& step_path() const override { return poll_->outer->step_path(); }
    absl::Time deadline() const override { return poll_->outer->deadline(); }
    Clock* clock() const override { return poll_->outer->clock(); }
    Executor* blocking() const override { return poll_->outer->blocking(); }
    void Output(const Json& v, const std::string& m) override { poll_->outer->Output(v, m); }
    void OnCancel(std::function<void()> fn) override { poll_->outer->OnCancel(std::move(fn)); }
    bool cancelled() const override { return poll_->outer->cancelled(); }
    void Finish(absl::StatusOr<Json> result) override {
      std::function<void(absl::StatusOr<Json>)> done;
      {
        std::lock_guard<std::mutex> lock(mu_);
        done.swap(done_);
      }
      if (done) done(std::move(result));
    }

   private:
    std::shared_ptr<Poll> poll_;
    std::mutex mu_;
    std::function<void(absl::StatusOr<Json>)> done_;
  };

  static void Next(const std::shared_ptr<Poll>& state) {
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->stopped) return;
      state->timer = 0;
      ++state->polls;
    }
    auto inner_call = std::make_shared<InnerCall>(state, [state](absl::StatusOr<Json> r) {
      if (!r.ok()) return state->outer->Finish(r.status());
      EvalScope scope;
      scope.output = &*r;
      auto done = state->until.EvaluateCondition(scope);
      if (!done.ok()) return state->outer->Finish(done.status());
      if (*done) return state->outer->Finish(std::move(*r));
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->stopped) return;
      state->outer->Output(*r, absl::StrCat("poll ", state->polls, ": \"", state->until.text(),
                                            "\" is false; next poll in ",
                                            absl::FormatDuration(state->interval)));
      state->timer = state->outer->clock()->RunAfter(state->interval, [state] { Next(state); });
    });
    state->inner->Start(state->args, inner_call);
  }

  const ActionRegistry* registry_;
};

class ShellAction final : public Action {
 public:
  ShellAction(std::vector<std::string> allowlist, size_t cap)
      : allowlist_(std::move(allowlist)), cap_(cap) {}

  void Start(const Json& a, std::shared_ptr<ActionCall> call) override {
    Args args(a, "shell");
    std::string command = args.Str("command");
    std::vector<std::string> argv = args.StrList("args");
    std::string stdin_text = args.Str("stdin");
    std::string cwd = args.Str("cwd");
    bool check = args.Bool("check", true);
    if (!args.ok()) return call->Finish(args.status());
    if (std::find(allowlist_.begin(), allowlist_.end(), command) == allowlist_.end()) {
      return call->Finish(absl::PermissionDeniedError(absl::StrCat(
          "shell: command \"", command, "\" is not in config skills.shell_allowlist",
          allowlist_.empty() ? " (the shell action is disabled)"
                             : " (" + absl::StrJoin(allowlist_, ", ") + ")")));
    }
    argv.insert(argv.begin(), command);
    size_t cap = cap_;
    Blocking(call, [call, argv, stdin_text, cwd, check, cap]() -> absl::StatusOr<Json> {
      auto result = RunCommand(
          argv, stdin_text, cwd, cap,
          [call](std::function<void()> fn) { call->OnCancel(std::move(fn)); },
          [call, &argv](int pid) {
            call->Output(Json{{"pid", pid}}, absl::StrCat("started ", argv[0], " (pid ", pid, ")"));
          });
      if (!result.ok()) return result.status();
      Json out{{"exit_code", result->exit_code},
               {"stdout", result->stdout_text},
               {"stderr", result->stderr_text},
               {"truncated", result->truncated}};
      if (check && result->exit_code != 0) {
        std::string err(absl::StripAsciiWhitespace(result->stderr_text));
        if (err.size() > 200) err = "..." + err.substr(err.size() - 200);
        call->Output(out, absl::StrCat("exit code ", result->exit_code));
        return absl::FailedPreconditionError(absl::StrCat("shell: \"", argv[0],
                                                          "\" exited with code ",
                                                          result->exit_code,
                                                          err.empty() ? "" : ": " + err));
      }
      return out;
    });
  }

 private:
  std::vector<std::string> allowlist_;
  size_t cap_;
};

ArgSpec Arg(std::string name, ValueType type, bool required, std::string description,
            bool duration = false) {
  ArgSpec a;
  a.name = std::move(name);
  a.type = type;
  a.required = required;
  a.description = std::move(description);
  a.duration = duration;
  return a;
}

ActionSpec Spec(std::string name, std::string description, std::vector<ArgSpec> args,
                std::vector<std::string> outputs) {
  ActionSpec s;
  s.name = std::move(name);
  s.description = std::move(description);
  s.args = std::move(args);
  s.outputs = std::move(outputs);
  return s;
}

std::unique_ptr<Action> Fn(FnAction::Fn f) { return std::make_unique<FnAction>(std::move(f)); }

}  // namespace

CallContext ActionCall::Context() {
  CallContext ctx;
  ctx.agent_id = agent_id();
  ctx.deadline = deadline();
  ctx.on_cancel = [this](std::function<void()> fn) { OnCancel(std::move(fn)); };
  return ctx;
}

absl::StatusOr<Json> ProcSystemProbe::HostHealth(const std::string& disk_path) {
  auto read = [this](const std::string& file) -> absl::StatusOr<std::string> {
    std::ifstream in(proc_ + "/" + file);
    if (!in) {
      return absl::UnavailableError(absl::StrCat("system.health: cannot read ", proc_, "/", file));
    }
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
  };
  auto loadavg = read("loadavg");
  if (!loadavg.ok()) return loadavg.status();
  std::vector<std::string> load = absl::StrSplit(*loadavg, ' ', absl::SkipEmpty());
  double l1 = 0, l5 = 0, l15 = 0;
  if (load.size() < 3 || !absl::SimpleAtod(load[0], &l1) || !absl::SimpleAtod(load[1], &l5) ||
      !absl::SimpleAtod(load[2], &l15)) {
    return absl::UnavailableError(absl::StrCat("system.health: malformed ", proc_, "/loadavg"));
  }
  auto meminfo = read("meminfo");
  if (!meminfo.ok()) return meminfo.status();
  int64_t total_kb = 0, avail_kb = 0;
  for (absl::string_view line : absl::StrSplit(*meminfo, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 2) continue;
    if (f[0] == "MemTotal:" && !absl::SimpleAtoi(f[1], &total_kb)) total_kb = 0;
    if (f[0] == "MemAvailable:" && !absl::SimpleAtoi(f[1], &avail_kb)) avail_kb = 0;
  }
  auto uptime = read("uptime");
  if (!uptime.ok()) return uptime.status();
  double up = 0;
  std::vector<std::string> u = absl::StrSplit(*uptime, ' ', absl::SkipEmpty());
  if (u.empty() || !absl::SimpleAtod(u[0], &up)) {
    return absl::UnavailableError(absl::StrCat("system.health: malformed ", proc_, "/uptime"));
  }
  int64_t cpus = 0;
  if (auto cpuinfo = read("cpuinfo"); cpuinfo.ok()) {
    for (absl::string_view line : absl::StrSplit(*cpuinfo, '\n')) {
      if (absl::StartsWith(line, "processor")) ++cpus;
    }
  }
  if (cpus == 0) cpus = std::max<int64_t>(1, ::sysconf(_SC_NPROCESSORS_ONLN));
  struct statvfs vfs;
  if (::statvfs(disk_path.c_str(), &vfs) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("argument \"disk_path\" of system.health: cannot stat \"", disk_path, "\""));
  }
  int64_t disk_total = static_cast<int64_t>(vfs.f_blocks) * static_cast<int64_t>(vfs.f_frsize);
  int64_t disk_free = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
  auto pct = [](double used, double total) {
    return total <= 0 ? 0.0 : std::round(1000.0 * used / total) / 10.0;
  };
  double mem_used = pct(static_cast<double>(total_kb - avail_kb), static_cast<double>(total_kb));
  double disk_used =
      pct(static_cast<double>(disk_total - disk_free), static_cast<double>(disk_total));
  double load_per_cpu = l1 / static_cast<double>(cpus);
  std::string status = "ok";
  std::vector<std::string> reasons;
  auto judge = [&](double v, double warn, double crit, const std::string& what) {
    if (v >= crit) {
      status = "critical";
      reasons.push_back(what);
    } else if (v >= warn) {
      if (status == "ok") status = "warning";
      reasons.push_back(what);
    }
  };
  judge(mem_used, 90, 97, absl::StrCat("memory ", mem_used, "% used"));
  judge(disk_used, 90, 97, absl::StrCat("disk ", disk_used, "% used"));
  judge(load_per_cpu, 2, 4, absl::StrCat("load ", l1, " on ", cpus, " cpus"));
  return Json{{"status", status},
              {"reasons", reasons},
              {"load1", l1},
              {"load5", l5},
              {"load15", l15},
              {"cpu_count", cpus},
              {"memory_total_bytes", total_kb * 1024},
              {"memory_available_bytes", avail_kb * 1024},
              {"memory_used_percent", mem_used},
              {"disk_path", disk_path},
              {"disk_total_bytes", disk_total},
              {"disk_free_bytes", disk_free},
              {"disk_used_percent", disk_used},
              {"uptime_seconds", static_cast<int64_t>(up)}};
}

ActionRegistry::ActionRegistry(const ActionEnv& env) {
  using V = ValueType;
  MessagingBackend* m = env.messaging;
  RegistryBackend* r = env.registry;
  TaskBackend* t = env.tasks;
  DataStore* d = env.data;
  SystemProbe* sys = env.system;

  Register(Spec("messaging.send", "Send a message to one agent (or a cap:<capability> group).",
                {Arg("to", V::kString, true, "Recipient agent id, or cap:<capability>."),
                 Arg("subject", V::kString, false, "Subject, at most 256 bytes."),
                 Arg("body", V::kString, false, "Text body."),
                 Arg("type", V::kString, false, "Message type (default direct)."),
                 Arg("priority", V::kString, false, "low|normal|high|critical|emergency."),
                 Arg("payload", V::kMap, false, "Structured payload."),
                 Arg("correlation_id", V::kString, false, "Thread id."),
                 Arg("reply_to", V::kString, false, "Id of the message this answers."),
                 Arg("ttl", V::kString, false, "Time to live, e.g. 1h.", true),
                 Arg("id", V::kString, false, "Message id (default: derived from run and step, "
                                              "so retries are deduplicated).")},
                {"message_id", "recipient_count", "duplicate"}),
           Fn([m](const Json& a, ActionCall& c) { return MessagingSend(m, a, c, false); }));
  Register(Spec("messaging.broadcast", "Send a message to every agent (or a capability group).",
                {Arg("subject", V::kString, false, "Subject."),
                 Arg("body", V::kString, false, "Text body."),
                 Arg("capability", V::kString, false, "Only agents with this capability."),
                 Arg("type", V::kString, false, "Message type (default broadcast)."),
                 Arg("priority", V::kString, false, "low|normal|high|critical|emergency."),
                 Arg("payload", V::kMap, false, "Structured payload."),
                 Arg("ttl", V::kString, false, "Time to live.", true),
                 Arg("id", V::kString, false, "Message id (default: derived from run and step).")},
                {"message_id", "recipient_count", "duplicate"}),
           Fn([m](const Json& a, ActionCall& c) { return MessagingSend(m, a, c, true); }));
  Register(Spec("messaging.fetch_inbox", "Peek at the caller's inbox (never consumes).",
                {Arg("filter", V::kString, false, "unread (default), unacked or all."),
                 Arg("since_sequence", V::kInt, false, "Only entries after this sequence."),
                 Arg("limit", V::kInt, false, "At most this many (1..1000, default 100)."),
                 Arg("types", V::kList, false, "Only these message types."),
                 Arg("min_priority", V::kString, false, "Only at least this priority."),
                 Arg("order", V::kString, false, "sequence (default) or priority.")},
                {"messages", "count", "unread_count", "pending_count", "latest_sequence",
                 "urgent_unread_count"}),
           Fn([m](const Json& a, ActionCall& c) { return MessagingFetch(m, a, c); }));
  Register(Spec("messaging.ack", "Acknowledge inbox entries (processed).",
                {Arg("inbox_sequences", V::kList, false, "Entries by inbox sequence."),
                 Arg("message_ids", V::kList, false, "Entries by message id."),
                 Arg("entries", V::kList, false,
                     "Messages as messaging.fetch_inbox returns them (their inbox_sequence).")},
                {"acked", "results"}),
           Fn([m](const Json& a, ActionCall& c) { return MessagingAck(m, a, c); }));

  Register(Spec("registry.list_agents", "List agents, filtered.",
                {Arg("capabilities", V::kList, false, "Agents having all of these."),
                 Arg("status", V::kString, false, "online|busy|away|offline."),
                 Arg("health", V::kString, false, "healthy|warning|critical|dead."),
                 Arg("node", V::kString, false, "Only agents of this node."),
                 Arg("limit", V::kInt, false, "At most this many (1..1000, default 100).")},
                {"agents", "count", "total"}),
           Fn([r](const Json& a, ActionCall& c) { return RegistryList(r, a, c); }));
  Register(Spec("registry.agent_health", "One agent's health and status (default: the caller).",
                {Arg("agent", V::kString, false, "Agent id (default: the caller).")},
                {"agent_id", "id", "name", "kind", "capabilities", "status", "health",
                 "health_reason", "node", "last_heartbeat", "heartbeat_interval_s"}),
           Fn([r](const Json& a, ActionCall& c) { return RegistryHealth(r, a, c); }));
  Register(Spec("registry.network_status", "Counts of agents by health, status and node.",
                {Arg("node", V::kString, false, "Only this node.")},
                {"total_agents", "local_agents", "remote_agents", "healthy_agents", "by_health",
                 "by_status", "nodes", "oldest_heartbeat_agent_id", "local_node"}),
           Fn([r](const Json& a, ActionCall& c) { return RegistryNetwork(r, a, c); }));
  Register(Spec("registry.register",
                "(Re-)register the caller: name, capabilities, status text.",
                {Arg("name", V::kString, false, "Display name (default: the agent id)."),
                 Arg("capabilities", V::kList, false, "Capabilities."),
                 Arg("status_message", V::kString, false, "Status text."),
                 Arg("status", V::kString, false, "online|busy|away|offline."),
                 Arg("location", V::kString, false, "Location."),
                 Arg("version", V::kString, false, "Software version.")},
                {"agent_id", "created", "capabilities", "node"}),
           Fn([r](const Json& a, ActionCall& c) { return RegistryRegister(r, a, c); }));
  Register(Spec("tasks.create", "Create a task on the board.",
                {Arg("title", V::kString, true, "Title, 1..256 bytes."),
                 Arg("description", V::kString, false, "Description."),
                 Arg("capabilities", V::kList, false, "Required capabilities."),
                 Arg("priority", V::kString, false, "low|normal|high|critical|emergency."),
                 Arg("payload", V::kMap, false, "Input for the agent."),
                 Arg("tags", V::kList, false, "Tags."),
                 Arg("dependencies", V::kList, false, "Task ids that must complete first."),
                 Arg("assign_to", V::kString, false, "Only this agent may take it."),
                 Arg("idempotency_key", V::kString, false, "Creator-scoped idempotency key."),
                 Arg("max_attempts", V::kInt, false, "Attempts allowed (0 = default)."),
                 Arg("workspace", V::kString, false, "Repository the task works in.")},
                {"task_id", "state", "created"}),
           Fn([t](const Json& a, ActionCall& c) { return TasksCreate(t, a, c); }));
  Register(Spec("tasks.get", "One task, with its result once done.",
                {Arg("task_id", V::kString, true, "Task id.")},
                {"task_id", "title", "state", "priority", "assignee", "created_at", "terminal",
                 "progress_percent", "result_summary", "result_payload", "terminal_reason"}),
           Fn([t](const Json& a, ActionCall& c) { return TasksGet(t, a, c); }));
  Register(Spec("tasks.claim", "Claim the best task the caller can do (or a given one).",
                {Arg("task_id", V::kString, false, "A specific task."),
                 Arg("capabilities", V::kList, false, "Only tasks within these."),
                 Arg("tags", V::kList, false, "Only tasks with all these tags."),
                 Arg("wait", V::kString, false, "Long-poll up to this long.", true),
                 Arg("lease", V::kString, false, "Lease length.", true)},
                {"claimed", "task_id", "title", "description", "payload", "lease_id",
                 "lease_epoch"}),
           Fn([t](const Json& a, ActionCall& c) { return TasksClaim(t, a, c); }));
  Register(Spec("tasks.progress", "Report progress on a claimed task (renews the lease).",
                {Arg("task_id", V::kString, true, "Task id."),
                 Arg("lease_id", V::kString, true, "Lease id from tasks.claim."),
                 Arg("lease_epoch", V::kInt, true, "Lease epoch from tasks.claim."),
                 Arg("percent", V::kFloat, false, "0..100."),
                 Arg("note", V::kString, false, "Note.")},
                {"lease_valid", "cancel_requested", "state"}),
           Fn([t](const Json& a, ActionCall& c) { return TasksProgress(t, a, c); }));
  Register(Spec("tasks.complete", "Submit the result of a claimed task.",
                {Arg("task_id", V::kString, true, "Task id."),
                 Arg("lease_id", V::kString, false, "Lease id from tasks.claim."),
                 Arg("lease_epoch", V::kInt, false, "Lease epoch from tasks.claim."),
                 Arg("summary", V::kString, false, "Human-readable summary."),
                 Arg("payload", V::kMap, false, "Structured result.")},
                {"task_id", "state"}),
           Fn([t](const Json& a, ActionCall& c) { return TasksComplete(t, a, c); }));
  Register(Spec("tasks.list", "List tasks, filtered.",
                {Arg("states", V::kList, false, "Only these states."),
                 Arg("assignee", V::kString, false, "Current lease holder."),
                 Arg("creator", V::kString, false, "Creator id."),
                 Arg("capability", V::kString, false, "Requires this capability."),
                 Arg("tags", V::kList, false, "Has all these tags."),
                 Arg("limit", V::kInt, false, "At most this many (1..1000, default 100).")},
                {"tasks", "count", "total"}),
           Fn([t](const Json& a, ActionCall& c) { return TasksList(t, a, c); }));

  Register(Spec("data.store", "Store a value under a key (namespaced, persisted).",
                {Arg("key", V::kString, true, "Key, 1..256 bytes."),
                 Arg("value", V::kAny, true, "Any JSON value, at most 256 KiB."),
                 Arg("namespace", V::kString, false, "Default agent/<caller> (private).")},
                {"namespace", "key", "created", "size_bytes"}),
           Fn([d](const Json& a, ActionCall& c) { return DataStoreAction(d, a, c); }));
  Register(Spec("data.retrieve", "Read the value of a key.",
                {Arg("key", V::kString, true, "Key."),
                 Arg("namespace", V::kString, false, "Default agent/<caller>."),
                 Arg("default", V::kAny, false, "Value when the key is absent."),
                 Arg("required", V::kBool, false, "Fail with NOT_FOUND when absent.")},
                {"namespace", "key", "found", "value"}),
           Fn([d](const Json& a, ActionCall& c) { return DataRetrieve(d, a, c); }));
  Register(Spec("data.delete", "Delete a key.",
                {Arg("key", V::kString, true, "Key."),
                 Arg("namespace", V::kString, false, "Default agent/<caller>.")},
                {"namespace", "key", "deleted"}),
           Fn([d](const Json& a, ActionCall& c) { return DataDeleteAction(d, a, c); }));
  Register(Spec("data.list", "List keys of a namespace.",
                {Arg("namespace", V::kString, false, "Default agent/<caller>."),
                 Arg("prefix", V::kString, false, "Only keys starting with this."),
                 Arg("limit", V::kInt, false, "At most this many (1..1000, default 100).")},
                {"namespace", "keys", "count"}),
           Fn([d](const Json& a, ActionCall& c) { return DataListAction(d, a, c); }));

  Register(Spec("system.health", "Host load, memory, disk and uptime from /proc.",
                {Arg("disk_path", V::kString, false, "Filesystem to measure (default /).")},
                {"status", "reasons", "load1", "load5", "load15", "cpu_count",
                 "memory_total_bytes", "memory_available_bytes", "memory_used_percent",
                 "disk_path", "disk_total_bytes", "disk_free_bytes", "disk_used_percent",
                 "uptime_seconds"}),
           Fn([sys](const Json& a, ActionCall&) -> absl::StatusOr<Json> {
             if (sys == nullptr) {
               return absl::FailedPreconditionError("system probe is not configured");
             }
             Args args(a, "system.health");
             std::string path = args.Str("disk_path", "/");
             if (!args.ok()) return args.status();
             return sys->HostHealth(path);
           }));

  Register(Spec("log", "Record a line in the run's events.",
                {Arg("message", V::kString, true, "The line."),
                 Arg("level", V::kString, false, "info (default), warning or error.")},
                {"message", "level"}),
           std::make_unique<LogAction>());
  Register(Spec("assert", "Fail the step (FAILED_PRECONDITION) unless `that` is true.",
                {Arg("that", V::kBool, true, "The condition (usually a template)."),
                 Arg("message", V::kString, false, "Why it must hold.")},
                {"ok"}),
           std::make_unique<AssertAction>());
  Register(Spec("sleep", "Wait (on the service clock).",
                {Arg("duration", V::kString, true, "How long, e.g. 2s.", true)}, {"slept_ms"}),
           std::make_unique<SleepAction>());
  Register(Spec("wait_for", "Poll another action until a condition on its output holds.",
                {Arg("action", V::kString, true, "The action to poll."),
                 Arg("args", V::kMap, false, "Its arguments."),
                 Arg("until", V::kString, true, "Condition over `output`."),
                 Arg("interval", V::kString, false, "Between polls (default 5s).", true)},
                {}),
           std::make_unique<WaitForAction>(this));
  ActionSpec shell = Spec("shell", "Run an allow-listed local command (no shell).",
                          {Arg("command", V::kString, true, "Program, as in the allow-list."),
                           Arg("args", V::kList, false, "Arguments."),
                           Arg("stdin", V::kString, false, "Standard input."),
                           Arg("cwd", V::kString, false, "Working directory."),
                           Arg("check", V::kBool, false, "Fail on a non-zero exit (default).")},
                          {"exit_code", "stdout", "stderr", "truncated"});
  if (env.shell_allowlist.empty()) {
    shell.enabled = false;
    shell.disabled_reason = "config skills.shell_allowlist is empty";
  }
  shell.check_literal_args = [allow = env.shell_allowlist](const Json& args) -> absl::Status {
    auto it = args.find("command");
    if (it == args.end() || !it->is_string()) return absl::OkStatus();
    const std::string& command = it->get_ref<const std::string&>();
    if (command.find("{{") != std::string::npos ||
        std::find(allow.begin(), allow.end(), command) != allow.end()) {
      return absl::OkStatus();
    }
    return absl::PermissionDeniedError(
        absl::StrCat("command \"", command, "\" is not in config skills.shell_allowlist"));
  };
  Register(std::move(shell),
           std::make_unique<ShellAction>(env.shell_allowlist, env.shell_output_cap));
}

Action* ActionRegistry::Find(const std::string& name) const {
  auto it = actions_.find(name);
  return it == actions_.end() ? nullptr : it->second.get();
}

void ActionRegistry::Register(ActionSpec spec, std::unique_ptr<Action> action) {
  actions_[spec.name] = std::move(action);
  catalog_.Add(std::move(spec));
}

}  // namespace cnet::skills
