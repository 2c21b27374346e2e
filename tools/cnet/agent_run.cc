// `cnet agent run`: the long-running companion process of one agent.
//
//   * heartbeats every --interval (default network.heartbeat_interval,
//     15 s) with the agent's status (--status, --message);
//   * follows the agent's inbox (MACS Subscribe) and the task board (tasks
//     Watch, this agent's tasks), printing each incoming message and each
//     task assigned to the agent as it arrives (one line, or one JSON
//     object per line with --json);
//   * --exec CMD runs `/bin/sh -c CMD` per event with the event JSON on
//     stdin (and CNET_EVENT_KIND, CNET_AGENT in the environment); a message
//     is acknowledged once printed and, with --exec, once CMD exits 0 (else
//     the gateway redelivers it later);
//   * reconnects a stream that breaks, with backoff;
//   * on SIGINT / SIGTERM (or after --for seconds) stops the streams and
//     sends a last heartbeat with status offline (--exit-status).
//
// Event JSON: {"kind":"message","agent_id":..,"entry":<InboxEntry>} or
// {"kind":"task","agent_id":..,"event":<TaskEvent>}.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "libs/macs_client/macs_client.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tools/cnet/common.h"

namespace cnet::cli {
namespace pb = claudenet::v1;

namespace {

struct RunFlags {
  std::string as;
  std::string status = "online";
  std::string message;
  std::string exit_status = "offline";
  double interval_seconds = 0;
  std::string exec;
  double for_seconds = 0;
  bool no_tasks = false;
  bool no_messages = false;
};

// Runs `cmd` with `input` on stdin; returns its exit status (127 when it
// could not start).
int RunHook(const std::string& cmd, const std::string& input, const std::string& kind,
            const std::string& agent) {
  int fds[2];
  if (pipe(fds) != 0) return 127;
  pid_t pid = fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    dup2(fds[0], 0);
    close(fds[0]);
    close(fds[1]);
    setenv("CNET_EVENT_KIND", kind.c_str(), 1);
    setenv("CNET_AGENT", agent.c_str(), 1);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, nullptr);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[0]);
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = write(fds[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(fds[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class Companion {
 public:
  Companion(Globals* g, const RunFlags& f, Identity who) : g_(g), f_(f), who_(std::move(who)) {}

  int Run() {
    int value = 0;
    if (!ParseEnum(f_.status, pb::AgentStatus_descriptor(), &value)) {
      return ReportUsage(*g_, "agent run", "--status: online, busy, away or offline");
    }
    status_ = static_cast<pb::AgentStatus>(value);
    if (!ParseEnum(f_.exit_status, pb::AgentStatus_descriptor(), &value)) {
      return ReportUsage(*g_, "agent run", "--exit-status: online, busy, away or offline");
    }
    exit_status_ = static_cast<pb::AgentStatus>(value);
    interval_ = f_.interval_seconds > 0 ? absl::Seconds(f_.interval_seconds)
                                        : g_->config().GetDuration("network.heartbeat_interval");
    if (interval_ <= absl::ZeroDuration()) interval_ = absl::Seconds(15);
    registry_ = pb::RegistryService::NewStub(
        g_->Channel(g_->config().GetString("services.registry_addr")));
    tasks_ = pb::TaskService::NewStub(g_->Channel(g_->config().GetString("services.tasks_addr")));
    macs_client::ClientOptions o;
    o.agent_id = who_.id;
    o.token = who_.token;
    o.signing_key = SigningKey(g_);
    o.ed25519_seed = who_.ed25519_seed;
    o.ed25519_key_id = who_.key_id;
    o.deadline = absl::Seconds(g_->timeout_seconds);
    o.max_attempts = 3;
    macs_ = std::make_unique<macs_client::MacsClient>(
        g_->Channel(g_->config().GetString("services.macs_addr")), o);

    // The first heartbeat decides whether we can run at all.
    grpc::Status first = Heartbeat(status_);
    if (!first.ok()) return ReportError(*g_, "agent run: heartbeat", first);
    Log(absl::StrCat("running as ", who_.id, ": heartbeat every ",
                     absl::FormatDuration(interval_), "; Ctrl-C to stop"));

    StopSignal stop([this] { Shutdown(); });
    std::vector<std::thread> threads;
    threads.emplace_back([this] { HeartbeatLoop(); });
    if (!f_.no_messages) threads.emplace_back([this] { MessageLoop(); });
    if (!f_.no_tasks) threads.emplace_back([this] { TaskLoop(); });
    if (f_.for_seconds > 0) {
      threads.emplace_back([this, &stop] {
        if (!stopping_.WaitForNotificationWithTimeout(absl::Seconds(f_.for_seconds))) stop.Stop();
      });
    }
    stopping_.WaitForNotification();
    for (auto& t : threads) t.join();
    grpc::Status last = Heartbeat(exit_status_);
    Log(absl::StrCat("stopped", stop.signal() ? absl::StrCat(" on signal ", stop.signal()) : "",
                     "; status ", ShortName(exit_status_, pb::AgentStatus_descriptor()),
                     last.ok() ? "" : " (not recorded: " + last.error_message() + ")"));
    return kExitOk;
  }

 private:
  void Shutdown() {
    absl::MutexLock l(&mu_);
    if (stopping_.HasBeenNotified()) return;
    stopping_.Notify();
    if (subscription_) subscription_->Cancel();
    if (watch_ctx_) watch_ctx_->TryCancel();
  }

  grpc::Status Heartbeat(pb::AgentStatus status) {
    pb::HeartbeatRequest req;
    req.set_agent_id(who_.id);
    req.set_status(status);
    req.set_status_message(f_.message);
    pb::HeartbeatResponse resp;
    return registry_->Heartbeat(g_->Context(who_.token).get(), req, &resp);
  }

  void HeartbeatLoop() {
    while (!stopping_.WaitForNotificationWithTimeout(interval_)) {
      grpc::Status s = Heartbeat(status_);
      if (!s.ok()) Log("heartbeat failed: " + s.error_message());
    }
  }

  // Waits before reconnecting a stream; false when stopping.
  bool Backoff(int* failures) {
    absl::Duration wait = std::min(absl::Seconds(30), absl::Milliseconds(500) * (1 << std::min(*failures, 6)));
    ++*failures;
    return !stopping_.WaitForNotificationWithTimeout(wait);
  }

  void MessageLoop() {
    int failures = 0;
    while (!stopping_.HasBeenNotified()) {
      absl::StatusOr<std::unique_ptr<macs_client::Subscription>> sub = macs_->Subscribe();
      if (!sub.ok()) {
        Log("inbox stream: " + std::string(sub.status().message()) + "; retrying");
        if (!Backoff(&failures)) return;
        continue;
      }
      {
        absl::MutexLock l(&mu_);
        if (stopping_.HasBeenNotified()) return;
        subscription_ = sub->get();
      }
      failures = 0;
      pb::InboxEntry entry;
      while ((*sub)->Next(&entry)) {
        nlohmann::json event = {{"kind", "message"},
                                {"agent_id", who_.id},
                                {"entry", ProtoJsonValue(entry)}};
        const pb::Message& m = entry.message();
        std::string line = absl::StrCat(
            "message #", entry.inbox_sequence(), " from ", m.sender(), " (",
            ShortName(m.type(), pb::MessageType_descriptor()), ")",
            m.subject().empty() ? "" : " [" + m.subject() + "]", ": ", m.body());
        if (Emit(event, line, "message")) {
          absl::StatusOr<pb::AckResponse> acked = macs_->Ack({entry.inbox_sequence()});
          if (!acked.ok()) Log("ack failed: " + std::string(acked.status().message()));
        }
      }
      {
        absl::MutexLock l(&mu_);
        subscription_ = nullptr;
      }
      absl::Status end = (*sub)->Finish();
      if (stopping_.HasBeenNotified()) return;
      Log("inbox stream ended: " + std::string(end.message()) + "; reconnecting");
      if (!Backoff(&failures)) return;
    }
  }

  void TaskLoop() {
    int failures = 0;
    int64_t from = 0;
    while (!stopping_.HasBeenNotified()) {
      pb::WatchTasksRequest req;
      req.set_agent_id(who_.id);
      if (from > 0) {
        req.set_from_sequence(from);
      } else {
        req.set_send_snapshot(true);
      }
      auto ctx = std::make_unique<grpc::ClientContext>();
      ctx->AddMetadata("authorization", "Bearer " + who_.token);
      {
        absl::MutexLock l(&mu_);
        if (stopping_.HasBeenNotified()) return;
        watch_ctx_ = ctx.get();
      }
      auto reader = tasks_->Watch(ctx.get(), req);
      pb::TaskEvent e;
      bool resync = false;
      while (reader->Read(&e)) {
        failures = 0;
        if (e.sequence() > from && e.type() != pb::TASK_EVENT_TYPE_SNAPSHOT) from = e.sequence();
        if (e.type() == pb::TASK_EVENT_TYPE_RESYNC_REQUIRED) {
          resync = true;
          break;
        }
        if (!e.has_task() || e.task().assignee() != who_.id) continue;
        if (e.task().state() != pb::TASK_STATE_ASSIGNED && !e.task().cancel_requested()) continue;
        if (e.type() != pb::TASK_EVENT_TYPE_SNAPSHOT && e.type() != pb::TASK_EVENT_TYPE_TRANSITION &&
            e.type() != pb::TASK_EVENT_TYPE_UPDATED) {
          continue;
        }
        std::string what = e.task().state() == pb::TASK_STATE_ASSIGNED ? "assigned" : "cancel requested";
        nlohmann::json event = {{"kind", "task"}, {"agent_id", who_.id}, {"event", ProtoJsonValue(e)}};
        Emit(event, absl::StrCat("task ", what, ": ", e.task().id(), " ", e.task().title()),
             "task");
      }
      {
        absl::MutexLock l(&mu_);
        watch_ctx_ = nullptr;
      }
      if (resync) {
        ctx->TryCancel();
        from = 0;
      }
      grpc::Status s = reader->Finish();
      if (stopping_.HasBeenNotified()) return;
      if (!resync) Log("task stream ended: " + s.error_message() + "; reconnecting");
      if (!Backoff(&failures)) return;
    }
  }

  // Prints an event and runs the hook; true when it was handled (hook exit 0).
  bool Emit(const nlohmann::json& event, const std::string& line, const std::string& kind) {
    absl::MutexLock l(&out_mu_);
    if (g_->json) {
      std::cout << event.dump() << std::endl;
    } else {
      std::cout << line << std::endl;
    }
    if (f_.exec.empty()) return true;
    int rc = RunHook(f_.exec, event.dump() + "\n", kind, who_.id);
    if (rc != 0) Log(absl::StrCat("--exec exited ", rc, " for a ", kind, " event"));
    return rc == 0;
  }

  void Log(const std::string& text) {
    absl::MutexLock l(&out_mu_);
    std::cerr << "cnet agent run: " << text << std::endl;
  }

  Globals* g_;
  RunFlags f_;
  Identity who_;
  pb::AgentStatus status_ = pb::AGENT_STATUS_ONLINE;
  pb::AgentStatus exit_status_ = pb::AGENT_STATUS_OFFLINE;
  absl::Duration interval_;
  std::unique_ptr<pb::RegistryService::Stub> registry_;
  std::unique_ptr<pb::TaskService::Stub> tasks_;
  std::unique_ptr<macs_client::MacsClient> macs_;
  absl::Notification stopping_;
  absl::Mutex mu_;
  macs_client::Subscription* subscription_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Mutex out_mu_;
};

}  // namespace

CLI::App* AddAgentRunCommand(CLI::App* app, Globals* g) {
  auto f = std::make_shared<RunFlags>();
  CLI::App* agent = app->get_subcommand("agent");
  auto* run = agent->add_subcommand(
      "run", "run the agent's companion: heartbeats, incoming messages and tasks");
  run->add_option("--as", f->as, "the saved identity (default: --agent, else the only one)");
  run->add_option("--status", f->status, "status reported while running")->capture_default_str();
  run->add_option("--message", f->message, "status text");
  run->add_option("--exit-status", f->exit_status, "status set when stopping")
      ->capture_default_str();
  run->add_option("--interval", f->interval_seconds,
                  "seconds between heartbeats (default network.heartbeat_interval)");
  run->add_option("--exec", f->exec, "run this shell command per event, event JSON on stdin");
  run->add_option("--for", f->for_seconds, "stop after this many seconds");
  run->add_flag("--no-tasks", f->no_tasks, "do not follow the task board");
  run->add_flag("--no-messages", f->no_messages, "do not follow the inbox");
  run->footer(
      "Example: cnet agent run --exec 'jq -r .entry.message.body >> ~/inbox.log'\n"
      "With --json: one JSON object per line per event ({\"kind\":\"message\"|\"task\",...}).");
  run->callback([g, f] {
    absl::StatusOr<Identity> who = ResolveIdentity(g, f->as);
    if (!who.ok()) {
      g->exit_code = ReportAbsl(*g, "agent run", who.status());
      return;
    }
    if (who->id.empty()) {
      g->exit_code = ReportUsage(*g, "agent run", "--agent: the agent id is needed with --token");
      return;
    }
    Companion companion(g, *f, *who);
    g->exit_code = companion.Run();
  });
  return run;
}

}  // namespace cnet::cli
