// `cnet monitor`: the network at a glance, live.
//
//   agents      health (coloured on a terminal), status, last heartbeat age
//   tasks       counts per state, the top queued tasks, recently changed
//   messages    rates and gauges from the gateway's statistics
//   federation  the gateway's federation state and offline queue
//
// Live mode follows three streams and redraws when one of them says
// something changed: registry Watch (agent events, starting with a
// snapshot), tasks Watch (board events, starting with a snapshot) and MACS
// WatchStats (one frame every 2 s). Heartbeats are not agent events, so the
// agent list is also re-read every 10 s for the heartbeat ages; nothing else
// is polled. A stream that breaks is reconnected with backoff and its part
// of the view says so.
//
// --once prints one snapshot from unary calls (text, or one JSON object with
// --json; shape in docs/cli.md) and exits 0, or 5 when a service could not
// be read (the snapshot then names it under "errors").
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tools/cnet/common.h"

namespace cnet::cli {
namespace pb = claudenet::v1;

namespace {

constexpr int kTopQueued = 5;
constexpr int kRecent = 8;

struct MonitorFlags {
  bool once = false;
  double for_seconds = 0;
  bool no_color = false;
};

// What the view shows, however it was obtained.
struct Snapshot {
  std::vector<pb::Agent> agents;
  std::map<int, int64_t> task_counts;  // TaskState -> count
  std::vector<pb::Task> top_queued;
  std::vector<pb::Task> recent;
  bool have_macs = false;
  pb::GetStatsResponse macs;
  std::map<std::string, std::string> errors;  // source -> one line
};

bool Terminal(int state) {
  return state == pb::TASK_STATE_COMPLETED || state == pb::TASK_STATE_FAILED ||
         state == pb::TASK_STATE_CANCELLED;
}

bool After(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.seconds() != b.seconds() ? a.seconds() > b.seconds() : a.nanos() > b.nanos();
}

std::string Seconds(double s) { return absl::StrFormat("%.0f", s); }

nlohmann::json SnapshotJson(const Snapshot& s) {
  nlohmann::json agents = nlohmann::json::array();
  std::map<std::string, int> by_health;
  for (const auto& a : s.agents) {
    std::string health = ShortName(a.health(), pb::Health_descriptor());
    ++by_health[health];
    agents.push_back({{"id", a.id()},
                      {"name", a.name()},
                      {"node", a.node()},
                      {"remote", a.remote()},
                      {"health", health},
                      {"status", ShortName(a.status(), pb::AgentStatus_descriptor())},
                      {"last_heartbeat_age_s", AgeSeconds(a.last_heartbeat())},
                      {"capabilities", std::vector<std::string>(a.capabilities().begin(),
                                                                a.capabilities().end())}});
  }
  nlohmann::json counts = nlohmann::json::object();
  for (int st = pb::TASK_STATE_CREATED; st <= pb::TASK_STATE_CANCELLED; ++st) {
    auto it = s.task_counts.find(st);
    counts[ShortName(st, pb::TaskState_descriptor())] = it == s.task_counts.end() ? 0 : it->second;
  }
  auto task_item = [](const pb::Task& t) {
    return nlohmann::json{{"id", t.id()},
                          {"title", t.title()},
                          {"state", ShortName(t.state(), pb::TaskState_descriptor())},
                          {"priority", ShortName(t.priority(), pb::Priority_descriptor())},
                          {"assignee", t.assignee()},
                          {"age_s", AgeSeconds(t.created_at())}};
  };
  nlohmann::json top = nlohmann::json::array();
  for (const auto& t : s.top_queued) top.push_back(task_item(t));
  nlohmann::json recent = nlohmann::json::array();
  for (const auto& t : s.recent) recent.push_back(task_item(t));
  nlohmann::json out = {
      {"agents", agents},
      {"agent_health", by_health},
      {"tasks", {{"counts", counts}, {"top_queued", top}, {"recent", recent}}},
  };
  if (s.have_macs) {
    const pb::MessageCounters& c = s.macs.totals();
    out["messages"] = {{"sent", c.sent()},
                       {"delivered", c.delivered()},
                       {"acked", c.acked()},
                       {"pending", c.pending()},
                       {"unread", c.unread()},
                       {"dead_letters", c.dead_letters()},
                       {"sent_per_second", c.sent_per_second()},
                       {"delivered_per_second", c.delivered_per_second()}};
    const pb::FederationStatus& f = s.macs.federation();
    out["federation"] = {
        {"state", ShortName(f.state(), pb::FederationState_descriptor())},
        {"firebase_stream_connected", f.firebase_stream_connected()},
        {"firebase_last_error", f.firebase_last_error()},
        {"github_configured", f.github_configured()},
        {"offline_queue_depth", f.offline_queue_depth()},
        {"offline_queue_oldest_age_s",
         f.has_offline_queue_oldest_age()
             ? nlohmann::json(static_cast<double>(f.offline_queue_oldest_age().seconds()))
             : nlohmann::json(nullptr)},
        {"remote_nodes", f.remote_nodes_size()}};
  } else {
    out["messages"] = nullptr;
    out["federation"] = nullptr;
  }
  out["errors"] = s.errors;
  return out;
}

std::string Render(const Snapshot& s, bool color) {
  auto paint = [color](const std::string& text, const char* code) {
    return color ? absl::StrCat("\033[", code, "m", text, "\033[0m") : text;
  };
  auto health_color = [](int h) {
    switch (h) {
      case pb::HEALTH_HEALTHY: return "32";
      case pb::HEALTH_WARNING: return "33";
      case pb::HEALTH_CRITICAL: return "31";
      default: return "90";
    }
  };
  std::string out;
  absl::StrAppend(&out, paint("Claude Network", "1"), "  ",
                  absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::Now(), absl::UTCTimeZone()),
                  "\n\n");
  std::map<int, int> by_health;
  for (const auto& a : s.agents) ++by_health[a.health()];
  absl::StrAppend(&out, paint("AGENTS", "1"), " ", s.agents.size());
  for (const auto& [h, n] : by_health) {
    absl::StrAppend(&out, "  ", paint(absl::StrCat(n, " ", ShortName(h, pb::Health_descriptor())),
                                      health_color(h)));
  }
  absl::StrAppend(&out, "\n");
  for (const auto& a : s.agents) {
    absl::StrAppend(
        &out, "  ",
        paint(absl::StrFormat("%-8s", ShortName(a.health(), pb::Health_descriptor())),
              health_color(a.health())),
        absl::StrFormat(" %-16s %-32s %-8s %-9s %s%s\n", a.name().substr(0, 16), a.id(),
                        ShortName(a.status(), pb::AgentStatus_descriptor()),
                        Ago(a.last_heartbeat()), absl::StrJoin(a.capabilities(), ","),
                        a.remote() ? " @" + a.node() : ""));
  }
  absl::StrAppend(&out, "\n", paint("TASKS", "1"));
  for (int st = pb::TASK_STATE_CREATED; st <= pb::TASK_STATE_CANCELLED; ++st) {
    auto it = s.task_counts.find(st);
    int64_t n = it == s.task_counts.end() ? 0 : it->second;
    std::string name = absl::AsciiStrToLower(ShortName(st, pb::TaskState_descriptor()));
    absl::StrAppend(&out, "  ", name, " ", n);
  }
  absl::StrAppend(&out, "\n");
  if (!s.top_queued.empty()) absl::StrAppend(&out, "  top queued:\n");
  for (const auto& t : s.top_queued) {
    absl::StrAppend(&out, absl::StrFormat("    %-31s %-8s %6ss  %s\n", t.id(),
                                          ShortName(t.priority(), pb::Priority_descriptor()),
                                          Seconds(AgeSeconds(t.created_at())), t.title()));
  }
  if (!s.recent.empty()) absl::StrAppend(&out, "  recently changed:\n");
  for (const auto& t : s.recent) {
    absl::StrAppend(&out, absl::StrFormat("    %-31s %-14s %-10s %s\n", t.id(),
                                          ShortName(t.state(), pb::TaskState_descriptor()),
                                          Ago(t.updated_at()), t.title()));
  }
  absl::StrAppend(&out, "\n", paint("MESSAGES", "1"));
  if (s.have_macs) {
    const pb::MessageCounters& c = s.macs.totals();
    absl::StrAppend(&out, absl::StrFormat(
                              "  %.1f/s sent  %.1f/s delivered  %d pending (%d unread)  %d dead "
                              "letters  %d sent in total\n",
                              c.sent_per_second(), c.delivered_per_second(), c.pending(),
                              c.unread(), c.dead_letters(), c.sent()));
    const pb::FederationStatus& f = s.macs.federation();
    std::string state = ShortName(f.state(), pb::FederationState_descriptor());
    absl::StrAppend(
        &out, paint("FEDERATION", "1"), "  ",
        paint(state, f.state() == pb::FEDERATION_STATE_CONNECTED  ? "32"
                     : f.state() == pb::FEDERATION_STATE_QUEUED   ? "33"
                     : f.state() == pb::FEDERATION_STATE_FALLBACK ? "31"
                                                                  : "90"),
        "  offline queue ", f.offline_queue_depth(),
        f.has_offline_queue_oldest_age()
            ? absl::StrCat(" (oldest ", f.offline_queue_oldest_age().seconds(), "s)")
            : "",
        "  ", f.remote_nodes_size(), " remote node(s)",
        f.firebase_last_error().empty() ? "" : "  last error: " + f.firebase_last_error(), "\n");
  } else {
    absl::StrAppend(&out, "  -\n");
  }
  for (const auto& [source, error] : s.errors) {
    absl::StrAppend(&out, paint(absl::StrCat("! ", source, ": ", error), "31"), "\n");
  }
  return out;
}

class Sources {
 public:
  explicit Sources(Globals* g) : g_(g), token_(ReaderCredential(g)) {
    registry_ = pb::RegistryService::NewStub(
        g->Channel(g->config().GetString("services.registry_addr")));
    tasks_ = pb::TaskService::NewStub(g->Channel(g->config().GetString("services.tasks_addr")));
    macs_ = pb::MacsGateway::NewStub(g->Channel(g->config().GetString("services.macs_addr")));
  }

  grpc::Status ListAgents(std::vector<pb::Agent>* out) {
    pb::ListAgentsRequest req;
    req.set_page_size(1000);
    out->clear();
    for (;;) {
      pb::ListAgentsResponse page;
      grpc::Status s = registry_->ListAgents(g_->Context(token_).get(), req, &page);
      if (!s.ok()) return s;
      for (auto& a : *page.mutable_agents()) out->push_back(std::move(a));
      if (page.next_page_token().empty()) return s;
      req.set_page_token(page.next_page_token());
    }
  }

  grpc::Status ListTasks(pb::TaskState state, pb::TaskOrder order, int limit,
                         std::vector<pb::Task>* out) {
    pb::ListTasksRequest req;
    req.set_page_size(limit);
    if (state != pb::TASK_STATE_UNSPECIFIED) req.add_states(state);
    req.set_order_by(order);
    pb::ListTasksResponse resp;
    grpc::Status s = tasks_->ListTasks(g_->Context(token_).get(), req, &resp);
    out->assign(resp.tasks().begin(), resp.tasks().end());
    return s;
  }

  // One snapshot from unary calls (--once).
  Snapshot Once() {
    Snapshot snap;
    grpc::Status s = ListAgents(&snap.agents);
    if (!s.ok()) snap.errors["registry"] = s.error_message();
    pb::GetTaskStatsRequest sreq;
    pb::GetTaskStatsResponse stats;
    s = tasks_->GetStats(g_->Context(token_).get(), sreq, &stats);
    if (s.ok()) {
      for (const auto& c : stats.by_state()) snap.task_counts[c.state()] = c.count();
      s = ListTasks(pb::TASK_STATE_QUEUED, pb::TASK_ORDER_QUEUE, kTopQueued, &snap.top_queued);
    }
    if (s.ok()) {
      s = ListTasks(pb::TASK_STATE_UNSPECIFIED, pb::TASK_ORDER_UPDATED_DESC, kRecent, &snap.recent);
    }
    if (!s.ok()) snap.errors["tasks"] = s.error_message();
    pb::GetStatsRequest mreq;
    s = macs_->GetStats(g_->Context(token_).get(), mreq, &snap.macs);
    snap.have_macs = s.ok();
    if (!s.ok()) snap.errors["macs"] = s.error_message();
    return snap;
  }

  const std::string& token() const { return token_; }
  pb::RegistryService::Stub* registry() { return registry_.get(); }
  pb::TaskService::Stub* tasks() { return tasks_.get(); }
  pb::MacsGateway::Stub* macs() { return macs_.get(); }

 private:
  Globals* g_;
  std::string token_;
  std::unique_ptr<pb::RegistryService::Stub> registry_;
  std::unique_ptr<pb::TaskService::Stub> tasks_;
  std::unique_ptr<pb::MacsGateway::Stub> macs_;
};

// Live view: state kept from the streams, redrawn when it changes.
class LiveMonitor {
 public:
  LiveMonitor(Globals* g, const MonitorFlags& f) : g_(g), f_(f), sources_(g) {}

  int Run() {
    color_ = !f_.no_color && isatty(1);
    StopSignal stop([this] { Stop(); });
    std::vector<std::thread> threads;
    threads.emplace_back([this] { AgentStream(); });
    threads.emplace_back([this] { AgentAges(); });
    threads.emplace_back([this] { TaskStream(); });
    threads.emplace_back([this] { StatsStream(); });
    absl::Time end = f_.for_seconds > 0 ? absl::Now() + absl::Seconds(f_.for_seconds)
                                        : absl::InfiniteFuture();
    absl::MutexLock l(&mu_);
    while (!stopping_) {
      // Wake on a change, or every 5 s for the ages; at most 5 redraws/s.
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](LiveMonitor* m) { return m->dirty_ || m->stopping_; }, this),
                            std::min(end, absl::Now() + absl::Seconds(5)));
      if (absl::Now() >= end) stopping_ = true;
      if (stopping_) break;
      dirty_ = false;
      std::string screen = Render(Build(), color_);
      mu_.Unlock();
      std::cout << (isatty(1) ? "\033[H\033[2J" : "\n") << screen << std::flush;
      absl::SleepFor(absl::Milliseconds(200));
      mu_.Lock();
    }
    for (grpc::ClientContext* c : contexts_) c->TryCancel();
    mu_.Unlock();
    stop.Stop();
    for (auto& t : threads) t.join();
    mu_.Lock();
    return kExitOk;
  }

 private:
  void Stop() {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    for (grpc::ClientContext* c : contexts_) c->TryCancel();
  }

  bool Stopping() {
    absl::MutexLock l(&mu_);
    return stopping_;
  }

  // Waits before reconnecting; false when stopping.
  bool Pause(absl::Duration d) {
    absl::MutexLock l(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
    return !stopping_;
  }

  // Registers a stream's context so that Stop() can cancel it.
  bool Track(grpc::ClientContext* ctx) {
    absl::MutexLock l(&mu_);
    if (stopping_) return false;
    contexts_.push_back(ctx);
    return true;
  }
  void Untrack(grpc::ClientContext* ctx) {
    absl::MutexLock l(&mu_);
    contexts_.erase(std::remove(contexts_.begin(), contexts_.end(), ctx), contexts_.end());
  }

  void Changed(const std::string& source, const std::string& error) {
    absl::MutexLock l(&mu_);
    if (error.empty()) {
      errors_.erase(source);
    } else {
      errors_[source] = error;
    }
    dirty_ = true;
  }

  void AgentStream() {
    while (!Stopping()) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + sources_.token());
      if (!Track(&ctx)) return;
      pb::WatchAgentsRequest req;
      req.set_send_snapshot(true);
      auto reader = sources_.registry()->Watch(&ctx, req);
      pb::AgentEvent e;
      std::map<std::string, pb::Agent> fresh;
      bool in_snapshot = true;
      while (reader->Read(&e)) {
        absl::MutexLock l(&mu_);
        std::map<std::string, pb::Agent>& target = in_snapshot ? fresh : agents_;
        switch (e.type()) {
          case pb::AGENT_EVENT_TYPE_SNAPSHOT_END:
            agents_ = std::move(fresh);
            in_snapshot = false;
            break;
          case pb::AGENT_EVENT_TYPE_DEREGISTERED:
          case pb::AGENT_EVENT_TYPE_PRUNED:
            target.erase(e.agent().id());
            break;
          case pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED:
            ctx.TryCancel();
            break;
          default:
            if (!e.agent().id().empty()) target[e.agent().id()] = e.agent();
        }
        if (!in_snapshot) dirty_ = true;
      }
      grpc::Status s = reader->Finish();
      Untrack(&ctx);
      if (Stopping()) return;
      Changed("registry", s.ok() ? "resynchronising" : s.error_message());
      if (!Pause(absl::Seconds(2))) return;
    }
  }

  // Heartbeats are not events: re-read the agents for their ages.
  void AgentAges() {
    while (Pause(absl::Seconds(10))) {
      std::vector<pb::Agent> list;
      if (!sources_.ListAgents(&list).ok()) continue;
      absl::MutexLock l(&mu_);
      for (auto& a : list) agents_[a.id()] = std::move(a);
      dirty_ = true;
    }
  }

  void TaskStream() {
    while (!Stopping()) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + sources_.token());
      if (!Track(&ctx)) return;
      pb::WatchTasksRequest req;
      req.set_send_snapshot(true);
      auto reader = sources_.tasks()->Watch(&ctx, req);
      pb::TaskEvent e;
      std::map<std::string, pb::Task> fresh;
      bool in_snapshot = true;
      while (reader->Read(&e)) {
        absl::MutexLock l(&mu_);
        if (e.type() == pb::TASK_EVENT_TYPE_SNAPSHOT_END) {
          // The snapshot holds live tasks only: terminal counts come from
          // the board's statistics, plus the tasks seen ending after them.
          pb::GetTaskStatsRequest sreq;
          pb::GetTaskStatsResponse stats;
          mu_.Unlock();
          grpc::Status st = sources_.tasks()->GetStats(g_->Context(sources_.token()).get(), sreq,
                                                      &stats);
          mu_.Lock();
          terminal_base_.clear();
          if (st.ok()) {
            for (const auto& c : stats.by_state()) {
              if (Terminal(c.state())) terminal_base_[c.state()] = c.count();
            }
            terminal_base_time_ = stats.time();
          }
          tasks_ = std::move(fresh);
          in_snapshot = false;
          errors_.erase("tasks");
          dirty_ = true;
          continue;
        }
        if (e.type() == pb::TASK_EVENT_TYPE_RESYNC_REQUIRED) {
          ctx.TryCancel();
          continue;
        }
        if (!e.has_task() || e.task().id().empty()) continue;
        (in_snapshot ? fresh : tasks_)[e.task().id()] = e.task();
        if (!in_snapshot) dirty_ = true;
      }
      grpc::Status s = reader->Finish();
      Untrack(&ctx);
      if (Stopping()) return;
      Changed("tasks", s.ok() ? "resynchronising" : s.error_message());
      if (!Pause(absl::Seconds(2))) return;
    }
  }

  void StatsStream() {
    while (!Stopping()) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + sources_.token());
      if (!Track(&ctx)) return;
      pb::WatchStatsRequest req;
      req.mutable_interval()->set_seconds(2);
      auto reader = sources_.macs()->WatchStats(&ctx, req);
      pb::GetStatsResponse frame;
      while (reader->Read(&frame)) {
        absl::MutexLock l(&mu_);
        macs_ = frame;
        have_macs_ = true;
        errors_.erase("macs");
        dirty_ = true;
      }
      grpc::Status s = reader->Finish();
      Untrack(&ctx);
      if (Stopping()) return;
      Changed("macs", s.error_message());
      if (!Pause(absl::Seconds(2))) return;
    }
  }

  Snapshot Build() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Snapshot s;
    for (const auto& [id, a] : agents_) s.agents.push_back(a);
    std::vector<const pb::Task*> queued, all;
    s.task_counts.insert(terminal_base_.begin(), terminal_base_.end());
    for (const auto& [id, t] : tasks_) {
      // Terminal tasks already counted by the statistics are not counted again.
      if (Terminal(t.state()) && !After(t.state_changed_at(), terminal_base_time_)) continue;
      ++s.task_counts[t.state()];
      if (t.state() == pb::TASK_STATE_QUEUED) queued.push_back(&t);
      all.push_back(&t);
    }
    std::sort(queued.begin(), queued.end(), [](const pb::Task* a, const pb::Task* b) {
      if (a->priority() != b->priority()) return a->priority() > b->priority();
      return a->created_at().seconds() < b->created_at().seconds();
    });
    for (size_t i = 0; i < queued.size() && i < kTopQueued; ++i) s.top_queued.push_back(*queued[i]);
    std::sort(all.begin(), all.end(), [](const pb::Task* a, const pb::Task* b) {
      if (a->updated_at().seconds() != b->updated_at().seconds()) {
        return a->updated_at().seconds() > b->updated_at().seconds();
      }
      return a->updated_at().nanos() > b->updated_at().nanos();
    });
    for (size_t i = 0; i < all.size() && i < kRecent; ++i) s.recent.push_back(*all[i]);
    s.have_macs = have_macs_;
    s.macs = macs_;
    s.errors = errors_;
    return s;
  }

  Globals* g_;
  MonitorFlags f_;
  Sources sources_;
  bool color_ = false;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;  // first draw: first data, or 5 s
  std::vector<grpc::ClientContext*> contexts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, pb::Agent> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, pb::Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::map<int, int64_t> terminal_base_ ABSL_GUARDED_BY(mu_);
  google::protobuf::Timestamp terminal_base_time_ ABSL_GUARDED_BY(mu_);
  pb::GetStatsResponse macs_ ABSL_GUARDED_BY(mu_);
  bool have_macs_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::string> errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void AddMonitorCommands(CLI::App* app, Globals* g) {
  auto f = std::make_shared<MonitorFlags>();
  auto* monitor = app->add_subcommand(
      "monitor", "live view of agents, tasks, messages and federation (--once: a snapshot)");
  monitor->add_flag("--once", f->once, "print one snapshot and exit (text, or JSON with --json)");
  monitor->add_option("--for", f->for_seconds, "live mode: stop after this many seconds");
  monitor->add_flag("--no-color", f->no_color, "no colours even on a terminal");
  monitor->footer("Example: cnet monitor            (Ctrl-C to stop)\n"
                  "         cnet --json monitor --once");
  monitor->callback([g, f] {
    if (f->once || g->json) {
      Sources sources(g);
      Snapshot snap = sources.Once();
      if (g->json) {
        PrintJson(SnapshotJson(snap));
      } else {
        std::cout << Render(snap, !f->no_color && isatty(1));
      }
      g->exit_code = snap.errors.empty() ? kExitOk : kExitUnavailable;
      if (!snap.errors.empty() && !g->json) {
        std::cerr << "cnet monitor: could not read " << snap.errors.begin()->first << ": "
                  << snap.errors.begin()->second << "\n";
      }
      return;
    }
    LiveMonitor live(g, *f);
    g->exit_code = live.Run();
  });
}

}  // namespace cnet::cli
