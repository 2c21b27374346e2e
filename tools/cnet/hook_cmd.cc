// `cnet hook <event>`: Claude Code hooks, and `cnet hooks install`.
//
// Each hook reads the event JSON Claude Code writes on stdin (session_id,
// cwd, hook_event_name, tool_name, tool_input, ...) and answers on stdout
// in the shape Claude Code reads (hookSpecificOutput / systemMessage),
// always exiting 0: a hook never breaks the session. Calls have a short
// deadline (--deadline, default 1.5 s); when the suite is unreachable the
// hook allows and says so once (marker ~/.claude-network/hooks/suite-down,
// removed when the suite answers again).
//
// State under ~/.claude-network/hooks/:
//   sessions/<session_id>.json  agent id, workspace, root, base commit
//   sessions/<session_id>.pid   pid of the session's heartbeater
//   projects/<hash of root>.json  the agent id last used in a repository
//   suite-down                   the "suite unreachable" warning was given
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/crypto/crypto.h"
#include "libs/server/tls.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tools/cnet/agent_context.h"
#include "tools/cnet/agentx_cmds.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct HookFlags {
  std::string event;
  std::string as;
  std::string workspace;
  std::string session;
  double deadline_seconds = 1.5;
  bool release_on_stop = false;
  // hooks install
  std::string project;
  bool git = false;
  std::string command;  // "" = `cnet` when on PATH, else this binary's path
};

bool Unreachable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

std::string ReadAll(std::istream& in) {
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFileAtomic(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << text;
    if (!out.good()) return false;
  }
  ::chmod(tmp.c_str(), 0600);
  return ::rename(tmp.c_str(), path.c_str()) == 0;
}

json ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return json();
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

std::string SafeName(const std::string& s) {
  std::string out;
  for (char c : s) out += (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                           c == '_' || c == '.')
                              ? c
                              : '_';
  if (out.empty() || out[0] == '.') out = "_" + out;
  return out.substr(0, 128);
}

std::string Str(const json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return "";
}

class Hooks {
 public:
  Hooks(Globals* g, HookFlags* f) : g_(g), f_(f) {}

  const config::Config& config() { return g_->config(); }
  std::string home() { return g_->load_options().home_dir; }
  std::string dir() { return home() + "/.claude-network/hooks"; }
  std::string SessionPath(const std::string& id) {
    return dir() + "/sessions/" + SafeName(id) + ".json";
  }
  std::string PidPath(const std::string& id) {
    return dir() + "/sessions/" + SafeName(id) + ".pid";
  }
  std::string ProjectPath(const std::string& root) {
    return dir() + "/projects/" + crypto::Sha256Hex(root).substr(0, 16) + ".json";
  }
  absl::Duration deadline() { return absl::Milliseconds(f_->deadline_seconds * 1000); }

  // --- output --------------------------------------------------------------
  void Emit(const json& out) {
    std::cout << (out.is_null() ? json::object() : out).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    std::cout.flush();
  }

  // Warns once per outage: returns the message the first time, "" after.
  std::string SuiteDown(const std::string& detail) {
    std::string marker = dir() + "/suite-down";
    if (fs::exists(marker)) return "";
    WriteFileAtomic(marker, absl::StrCat(absl::FormatTime(absl::Now()), " ", detail, "\n"));
    return absl::StrCat(
        "Claude Network is unreachable (", detail,
        "): edits are not checked against path reservations and messages are not "
        "surfaced until it is back (`cnet up`). This warning is shown once.");
  }
  void SuiteUp() {
    std::error_code ec;
    fs::remove(dir() + "/suite-down", ec);
  }

  // --- identity --------------------------------------------------------------
  // The agent of this session: the session file, else --as / CNET_AGENT_ID /
  // the global --agent (or CNET_AGENT) / agent.id / the repository's last
  // agent / the only saved identity.
  absl::StatusOr<SavedAgent> SessionAgent(const std::string& session_id,
                                          const std::string& root) {
    if (!session_id.empty()) {
      json s = ReadJsonFile(SessionPath(session_id));
      std::string id = Str(s, "agent_id");
      if (!id.empty()) return LoadSavedAgent(home(), id);
    }
    return ChooseAgent(root);
  }

  absl::StatusOr<SavedAgent> ChooseAgent(const std::string& root) {
    std::string as = f_->as;
    for (const char* name : {"CNET_AGENT_ID", "CNET_AGENT"}) {
      const char* env = std::getenv(name);
      if (as.empty() && env != nullptr) as = env;
    }
    if (as.empty()) as = g_->agent;  // the global --agent
    if (as.empty()) as = config().GetString("agent.id");
    if (as.empty() && !root.empty()) as = Str(ReadJsonFile(ProjectPath(root)), "agent_id");
    if (!as.empty()) return LoadSavedAgent(home(), as);
    return ResolveAgent(config(), home(), "");
  }

  Workspace WorkspaceFor(const json& in, const std::string& session_id) {
    json s = ReadJsonFile(SessionPath(session_id));
    if (!Str(s, "workspace").empty() && f_->workspace.empty()) {
      Workspace ws;
      ws.name = Str(s, "workspace");
      ws.root = Str(s, "root");
      return ws;
    }
    std::string cwd = Str(in, "cwd");
    if (cwd.empty()) {
      char buf[4096] = {0};
      if (::getcwd(buf, sizeof(buf) - 1) != nullptr) cwd = buf;
    }
    return DetectWorkspace(config(), cwd, f_->workspace);
  }

  // --- events ----------------------------------------------------------------
  int SessionStart(const json& in) {
    const std::string session_id = Str(in, "session_id");
    Workspace ws = WorkspaceFor(in, session_id);
    auto registry = pb::RegistryService::NewStub(
        MakeSuiteChannel(config(), "services.registry_addr"));
    absl::StatusOr<SavedAgent> agent = ChooseAgent(ws.root);

    // Join (no identity yet) or rejoin (refreshes the record, marks it alive).
    pb::RegisterRequest reg;
    std::string credential;
    if (agent.ok()) {
      reg.set_agent_id(agent->id);
      credential = agent->token;
      pb::GetAgentRequest get;
      get.set_agent_id(agent->id);
      pb::GetAgentResponse got;
      grpc::Status s = registry->GetAgent(CallContext(deadline(), credential).get(), get, &got);
      if (Unreachable(s)) return Down("SessionStart", s);
      if (!s.ok()) {  // deregistered or token revoked: join afresh
        reg.clear_agent_id();
        credential.clear();
        agent = absl::NotFoundError("saved identity no longer valid");
      } else {
        // Keep what the agent registered with; only refresh liveness.
        reg.set_name(got.agent().name());
        *reg.mutable_capabilities() = got.agent().capabilities();
        reg.set_surface(got.agent().surface());
        reg.set_location(got.agent().location());
        reg.set_version(got.agent().version());
        reg.set_kind(got.agent().kind());
        // Keep the registered Ed25519 key (a Register without one clears it,
        // and the agent's signed messages would then be refused).
        if (got.agent().has_public_key()) {
          reg.mutable_public_key()->set_algorithm(got.agent().public_key().algorithm());
          reg.mutable_public_key()->set_key(got.agent().public_key().key());
        }
        *reg.mutable_card() = got.agent().card();
      }
    }
    if (reg.name().empty()) {
      std::string name = config().GetString("agent.name");
      if (name.empty()) {
        name = absl::StrCat("claude-code-", fs::path(ws.root).filename().string());
      }
      reg.set_name(name.substr(0, 128));
      for (const std::string& c : config().GetStringList("agent.capabilities")) {
        reg.add_capabilities(c);
      }
      if (reg.capabilities().empty()) reg.add_capabilities("claude-code");
      reg.set_kind(pb::AGENT_KIND_AI);
    }
    reg.set_status(pb::AGENT_STATUS_ONLINE);
    pb::RegisterResponse joined;
    grpc::Status s = registry->Register(CallContext(deadline(), credential).get(), reg, &joined);
    if (Unreachable(s)) return Down("SessionStart", s);
    if (!s.ok()) {
      Emit({{"systemMessage", absl::StrCat("cnet: could not join Claude Network: ",
                                           s.error_message())}});
      return kExitOk;
    }
    SuiteUp();
    SavedAgent me;
    me.id = joined.agent().id();
    me.token = agent.ok() ? agent->token : "";
    if (!joined.token().empty()) {
      me.token = joined.token();
      std::string path;
      (void)WriteSavedAgent(home(), config().GetString("services.registry_addr"),
                            joined.agent(), joined.token(), /*ed25519_seed=*/"", &path);
    }
    // Remember the session and the repository's agent.
    std::string base;
    if (std::optional<std::string> head = RunCapture({"git", "-C", ws.root, "rev-parse", "HEAD"})) {
      base = std::string(absl::StripAsciiWhitespace(*head));
    }
    json session = {{"session_id", session_id}, {"agent_id", me.id},
                    {"workspace", ws.name},     {"root", ws.root},
                    {"base_ref", base},         {"cwd", Str(in, "cwd")},
                    {"started_at", absl::FormatTime(absl::Now())}};
    if (!session_id.empty()) WriteFileAtomic(SessionPath(session_id), session.dump(2) + "\n");
    if (!ws.root.empty()) {
      WriteFileAtomic(ProjectPath(ws.root), json{{"agent_id", me.id}, {"root", ws.root}}.dump());
    }
    bool heartbeating = !session_id.empty() && StartHeartbeater(session_id);

    // Context for the model: who it is, inbox, tasks, reservations.
    std::vector<std::string> lines;
    lines.push_back(absl::StrCat("You are agent ", me.id, " (", joined.agent().name(),
                                 ") on Claude Network, node ", joined.agent().node(),
                                 ", workspace ", ws.name, ".",
                                 heartbeating ? " Heartbeats run in the background." : ""));
    auto macs = pb::MacsGateway::NewStub(MakeSuiteChannel(config(), "services.macs_addr"));
    pb::FetchInboxRequest inbox_req;
    inbox_req.set_filter(pb::INBOX_FILTER_UNREAD);
    inbox_req.set_page_size(1);
    pb::FetchInboxResponse inbox;
    if (macs->FetchInbox(CallContext(deadline(), me.token).get(), inbox_req, &inbox).ok()) {
      lines.push_back(absl::StrCat("Inbox: ", inbox.unread_count(), " unread (",
                                   inbox.urgent_unread_count(),
                                   " urgent); read with `cnet msg inbox`."));
    }
    auto tasks = pb::TaskService::NewStub(MakeSuiteChannel(config(), "services.tasks_addr"));
    pb::ListTasksRequest list;
    list.set_assignee(me.id);
    list.set_page_size(10);
    for (pb::TaskState st : {pb::TASK_STATE_ASSIGNED, pb::TASK_STATE_RUNNING,
                             pb::TASK_STATE_INPUT_REQUIRED}) {
      list.add_states(st);
    }
    pb::ListTasksResponse assigned;
    if (tasks->ListTasks(CallContext(deadline(), me.token).get(), list, &assigned).ok()) {
      if (assigned.tasks().empty()) {
        lines.push_back("Tasks assigned to you: none.");
      } else {
        lines.push_back(absl::StrCat("Tasks assigned to you (", assigned.total_size(), "):"));
        for (const pb::Task& t : assigned.tasks()) {
          std::string state = pb::TaskState_Name(t.state());
          lines.push_back(absl::StrCat("  - ", t.id(), " [", state.substr(11), "] ", t.title()));
        }
      }
    }
    pb::ListReservationsRequest rl;
    rl.set_holder(me.id);
    rl.set_workspace(ws.name);
    pb::ListReservationsResponse held;
    if (tasks->ListReservations(CallContext(deadline(), me.token).get(), rl, &held).ok() &&
        !held.reservations().empty()) {
      lines.push_back("Your path reservations here:");
      for (const auto& r : held.reservations()) {
        lines.push_back("  - " + DescribeReservation(r));
      }
    }
    lines.push_back(
        "Before editing shared areas reserve them: `cnet reserve 'src/dir/**' --reason ...` "
        "(edits to paths another agent reserved exclusively are blocked).");
    Emit({{"hookSpecificOutput",
           {{"hookEventName", "SessionStart"}, {"additionalContext", absl::StrJoin(lines, "\n")}}}});
    return kExitOk;
  }

  int PreToolUse(const json& in) {
    const std::string tool = Str(in, "tool_name");
    static const std::set<std::string> kWriters = {"Edit", "Write", "MultiEdit", "NotebookEdit"};
    if (!kWriters.count(tool)) {
      Emit(json::object());
      return kExitOk;
    }
    const json& input = in.contains("tool_input") ? in["tool_input"] : json::object();
    std::string file = Str(input, "file_path");
    if (file.empty()) file = Str(input, "notebook_path");
    const std::string session_id = Str(in, "session_id");
    Workspace ws = WorkspaceFor(in, session_id);
    std::string cwd = Str(in, "cwd").empty() ? ws.root : Str(in, "cwd");
    std::optional<std::string> rel =
        file.empty() ? std::nullopt : RelativeTo(ws.root, cwd, file);
    absl::StatusOr<SavedAgent> me = SessionAgent(session_id, ws.root);
    if (!me.ok()) {
      Emit(json::object());  // not on the network: nothing to guard
      return kExitOk;
    }
    json specific = {{"hookEventName", "PreToolUse"}};
    absl::Time until = absl::Now() + deadline();
    auto left = [&] { return std::max(until - absl::Now(), absl::Milliseconds(100)); };
    if (rel) {
      auto tasks = pb::TaskService::NewStub(MakeSuiteChannel(config(), "services.tasks_addr"));
      pb::CheckPathsRequest req;
      req.set_workspace(ws.name);
      req.add_paths(*rel);
      pb::CheckPathsResponse resp;
      grpc::Status s = tasks->CheckPaths(CallContext(left(), me->token).get(), req, &resp);
      if (Unreachable(s)) return Down("PreToolUse", s);
      if (s.ok()) {
        SuiteUp();
        if (!resp.allowed()) {
          std::vector<std::string> holders;
          for (const pb::PathCheck& c : resp.results()) {
            for (const pb::Reservation& r : c.reservations()) {
              if (r.mode() == pb::RESERVATION_MODE_SHARED) continue;
              holders.push_back(DescribeReservation(r));
            }
          }
          specific["permissionDecision"] = "deny";
          specific["permissionDecisionReason"] = absl::StrCat(
              "Claude Network: ", *rel, " is reserved exclusively by another agent: ",
              absl::StrJoin(holders, "; "),
              ". Do not edit it: message the holder (`cnet msg send <holder> ...`), wait for the "
              "reservation to expire, or work on other files.");
        }
      }
    }
    // Urgent unread messages go to the model before the edit, once each.
    auto macs = pb::MacsGateway::NewStub(MakeSuiteChannel(config(), "services.macs_addr"));
    pb::FetchInboxRequest inbox_req;
    inbox_req.set_filter(pb::INBOX_FILTER_UNREAD);
    inbox_req.set_min_priority(pb::PRIORITY_CRITICAL);
    inbox_req.set_order(pb::INBOX_ORDER_PRIORITY);
    inbox_req.set_page_size(5);
    pb::FetchInboxResponse inbox;
    grpc::Status s = macs->FetchInbox(CallContext(left(), me->token).get(), inbox_req, &inbox);
    if (s.ok() && !inbox.entries().empty()) {
      std::vector<std::string> lines = {absl::StrCat(
          "Urgent Claude Network messages for you (", inbox.urgent_unread_count(), "):")};
      pb::MarkReadRequest mark;
      for (const pb::InboxEntry& e : inbox.entries()) {
        const pb::Message& m = e.message();
        std::string body = m.body().substr(0, 500);
        std::string priority = pb::Priority_Name(m.priority());
        lines.push_back(absl::StrCat("- [", priority.substr(9), "] from ", m.sender(), " (",
                                     m.id(), "): ", m.subject(), body.empty() ? "" : " - ",
                                     body));
        mark.add_inbox_sequences(e.inbox_sequence());
      }
      lines.push_back("Reply with `cnet msg send`; acknowledge with `cnet msg ack`.");
      specific["additionalContext"] = absl::StrJoin(lines, "\n");
      pb::MarkReadResponse marked;
      (void)macs->MarkRead(CallContext(left(), me->token).get(), mark, &marked);
    }
    json out = json::object();
    if (specific.size() > 1) out["hookSpecificOutput"] = specific;
    Emit(out);
    return kExitOk;
  }

  // Stop (end of each turn) and SessionEnd.
  int Finish(const json& in, bool session_end) {
    const std::string session_id = Str(in, "session_id");
    Workspace ws = WorkspaceFor(in, session_id);
    absl::StatusOr<SavedAgent> me = SessionAgent(session_id, ws.root);
    json out = json::object();
    if (me.ok()) {
      absl::Time until = absl::Now() + deadline();
      auto left = [&] { return std::max(until - absl::Now(), absl::Milliseconds(100)); };
      auto registry = pb::RegistryService::NewStub(
          MakeSuiteChannel(config(), "services.registry_addr"));
      pb::HeartbeatRequest hb;
      hb.set_status(session_end ? pb::AGENT_STATUS_OFFLINE : pb::AGENT_STATUS_AWAY);
      std::string reason = Str(in, "reason");
      hb.set_status_message(session_end
                                ? absl::StrCat("session ended", reason.empty() ? "" : ": ", reason)
                                : "idle: turn finished, waiting for the user");
      pb::HeartbeatResponse hr;
      grpc::Status s = registry->Heartbeat(CallContext(left(), me->token).get(), hb, &hr);
      if (Unreachable(s)) {
        std::string warning = SuiteDown(s.error_message());
        if (!warning.empty()) out["systemMessage"] = warning;
      } else {
        SuiteUp();
        auto tasks = pb::TaskService::NewStub(MakeSuiteChannel(config(), "services.tasks_addr"));
        if (session_end || f_->release_on_stop) {
          pb::ReleaseReservationRequest rel;
          rel.set_all(true);
          rel.set_workspace(ws.name);
          pb::ReleaseReservationResponse released;
          grpc::Status rs =
              tasks->ReleaseReservation(CallContext(left(), me->token).get(), rel, &released);
          if (rs.ok() && released.released_count() > 0 && !session_end) {
            out["systemMessage"] = absl::StrCat("cnet: released ", released.released_count(),
                                                " path reservations in ", ws.name);
          }
        }
        if (session_end) {
          pb::ReportChangedPathsRequest clear;  // an empty report clears ours
          clear.set_workspace(ws.name);
          pb::ReportChangedPathsResponse cleared;
          (void)tasks->ReportChangedPaths(CallContext(left(), me->token).get(), clear, &cleared);
        }
      }
    }
    if (session_end && !session_id.empty()) {
      StopHeartbeater(session_id);
      std::error_code ec;
      fs::remove(SessionPath(session_id), ec);
    }
    Emit(out);
    return kExitOk;
  }

  int Down(const std::string& event, const grpc::Status& s) {
    json out = json::object();
    std::string warning = SuiteDown(s.error_message());
    if (!warning.empty()) out["systemMessage"] = warning;
    if (event == "SessionStart" && !warning.empty()) {
      out["hookSpecificOutput"] = {{"hookEventName", "SessionStart"},
                                   {"additionalContext", warning}};
    }
    Emit(out);
    return kExitOk;
  }

  // --- heartbeater -------------------------------------------------------------
  bool StartHeartbeater(const std::string& session_id) {
    StopHeartbeater(session_id);  // a resumed session restarts it
    std::vector<std::string> argv = {"/proc/self/exe"};
    if (!g_->project_dir.empty()) {
      argv.push_back("--project-dir");
      argv.push_back(g_->project_dir);
    }
    if (!g_->data_dir.empty()) {
      argv.push_back("--data-dir");
      argv.push_back(g_->data_dir);
    }
    argv.insert(argv.end(), {"hook", "heartbeat-loop", "--session", session_id});
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    char exe[4096] = {0};
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return false;
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::setsid();
      if (::fork() != 0) ::_exit(0);  // the grandchild is adopted by init
      int devnull = ::open("/dev/null", O_RDWR);
      for (int fd = 0; fd < 3; ++fd) ::dup2(devnull, fd);
      for (int fd = 3; fd < 1024; ++fd) ::close(fd);
      ::execv(exe, args.data());
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return true;
  }

  void StopHeartbeater(const std::string& session_id) {
    std::ifstream in(PidPath(session_id));
    long pid = 0;
    if (in >> pid && pid > 1) {
      // Only our own heartbeater: its command line names the session.
      std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
      std::string text = ReadAll(cmd);
      if (absl::StrContains(text, "heartbeat-loop") && absl::StrContains(text, session_id)) {
        ::kill(static_cast<pid_t>(pid), SIGTERM);
      }
    }
    std::error_code ec;
    fs::remove(PidPath(session_id), ec);
  }

  // Runs until the session file disappears (SessionEnd) or SIGTERM:
  // heartbeats at the registry's interval, reports the changed paths
  // (git diff --name-only <base>) and renews this agent's reservations in
  // the workspace that are about to lapse.
  int HeartbeatLoop() {
    const std::string session_id = f_->session;
    if (session_id.empty()) return kExitUsage;
    WriteFileAtomic(PidPath(session_id), absl::StrCat(::getpid(), "\n"));
    std::signal(SIGTERM, [](int) { std::_Exit(0); });
    std::signal(SIGHUP, SIG_IGN);
    auto registry = pb::RegistryService::NewStub(
        MakeSuiteChannel(config(), "services.registry_addr"));
    auto tasks = pb::TaskService::NewStub(MakeSuiteChannel(config(), "services.tasks_addr"));
    std::string last_report;
    int failures = 0;  // consecutive unanswered heartbeats
    for (;;) {
      json s = ReadJsonFile(SessionPath(session_id));
      if (!s.is_object()) break;
      absl::StatusOr<SavedAgent> me = LoadSavedAgent(home(), Str(s, "agent_id"));
      if (!me.ok()) break;
      absl::Duration interval = absl::Seconds(15);
      pb::HeartbeatRequest hb;
      pb::HeartbeatResponse hr;
      grpc::Status st = registry->Heartbeat(CallContext(absl::Seconds(5), me->token).get(), hb, &hr);
      if (st.ok() && hr.next_heartbeat_in().seconds() > 0) {
        interval = absl::Seconds(hr.next_heartbeat_in().seconds());
      }
      if (st.error_code() == grpc::StatusCode::NOT_FOUND ||
          st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
        break;  // deregistered: nothing left to keep alive
      }
      failures = st.ok() ? 0 : failures + 1;
      if (failures >= 60) break;  // ~15 min without the registry: give up
      std::string root = Str(s, "root");
      std::string ws = Str(s, "workspace");
      std::string base = Str(s, "base_ref");
      if (st.ok() && !root.empty() && !base.empty()) {
        if (std::optional<std::string> diff =
                RunCapture({"git", "-C", root, "diff", "--name-only", "-z", base})) {
          if (*diff != last_report) {
            pb::ReportChangedPathsRequest rep;
            rep.set_workspace(ws);
            rep.set_base_ref(base);
            for (absl::string_view p : absl::StrSplit(*diff, '\0', absl::SkipEmpty())) {
              if (rep.paths_size() < 10000) rep.add_paths(std::string(p));
            }
            pb::ReportChangedPathsResponse rr;
            if (tasks->ReportChangedPaths(CallContext(absl::Seconds(5), me->token).get(), rep, &rr)
                    .ok()) {
              last_report = *diff;
            }
          }
        }
      }
      if (st.ok()) {
        pb::ListReservationsRequest lr;
        lr.set_holder(me->id);
        lr.set_workspace(ws);
        lr.set_page_size(1000);
        pb::ListReservationsResponse held;
        if (tasks->ListReservations(CallContext(absl::Seconds(5), me->token).get(), lr, &held)
                .ok()) {
          pb::RenewReservationRequest renew;
          absl::Time soon = absl::Now() + 3 * interval;
          for (const pb::Reservation& r : held.reservations()) {
            if (absl::FromUnixSeconds(r.expires_at().seconds()) < soon &&
                renew.reservation_ids_size() < 100) {
              renew.add_reservation_ids(r.id());
            }
          }
          if (!renew.reservation_ids().empty()) {
            pb::RenewReservationResponse renewed;
            (void)tasks->RenewReservation(CallContext(absl::Seconds(5), me->token).get(), renew,
                                          &renewed);
          }
        }
      }
      // Wait for the next beat, checking each second that the session lives.
      for (absl::Duration waited; waited < interval; waited += absl::Seconds(1)) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        if (!fs::exists(SessionPath(session_id))) break;
      }
    }
    std::error_code ec;
    fs::remove(PidPath(session_id), ec);
    return kExitOk;
  }

  int Run() {
    std::string event = absl::AsciiStrToLower(f_->event);
    event.erase(std::remove(event.begin(), event.end(), '-'), event.end());
    event.erase(std::remove(event.begin(), event.end(), '_'), event.end());
    if (event == "heartbeatloop") return HeartbeatLoop();
    std::string text = ReadAll(std::cin);
    json in = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (in.is_discarded() || !in.is_object()) {
      std::cerr << "cnet hook: stdin is not a JSON object\n";
      Emit(json::object());
      return kExitOk;  // never break the session
    }
    if (event.empty()) {
      event = absl::AsciiStrToLower(Str(in, "hook_event_name"));
    }
    try {
      if (event == "sessionstart") return SessionStart(in);
      if (event == "pretooluse") return PreToolUse(in);
      if (event == "stop") return Finish(in, false);
      if (event == "subagentstop") {  // the session goes on: nothing to report
        Emit(json::object());
        return kExitOk;
      }
      if (event == "sessionend") return Finish(in, true);
    } catch (const std::exception& e) {
      std::cerr << "cnet hook: " << e.what() << "\n";
      Emit(json::object());
      return kExitOk;
    }
    std::cerr << "cnet hook: unknown event '" << f_->event
              << "' (session-start, pre-tool-use, stop, session-end)\n";
    Emit(json::object());
    return kExitOk;
  }

  // --- hooks install -----------------------------------------------------------
  // Adds one entry per event to <project>/.claude/settings.json unless an
  // entry running the same command is already there; keeps everything else.
  // How the hooks invoke cnet: --command, else `cnet` when PATH finds an
  // executable of that name, else the absolute path of this binary (a
  // bazel-bin build), so the installed hooks never fail with "not found".
  std::string CnetCommand() {
    if (!f_->command.empty()) return f_->command;
    const char* path = std::getenv("PATH");
    for (absl::string_view dir : absl::StrSplit(path ? path : "", ':', absl::SkipEmpty())) {
      std::string candidate = absl::StrCat(dir, "/cnet");
      if (::access(candidate.c_str(), X_OK) == 0) return "cnet";
    }
    char exe[4096] = {0};
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    return n > 0 ? std::string(exe, static_cast<size_t>(n)) : "cnet";
  }

  int Install() {
    f_->command = CnetCommand();
    std::string project = f_->project;
    if (project.empty()) {
      char buf[4096] = {0};
      if (::getcwd(buf, sizeof(buf) - 1) != nullptr) project = buf;
    }
    std::string path = project + "/.claude/settings.json";
    json settings = json::object();
    if (fs::exists(path)) {
      std::ifstream in(path);
      settings = json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (settings.is_discarded() || !settings.is_object()) {
        return ReportError(*g_, "hooks install",
                           grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        path + ": not a JSON object; not changed"));
      }
    }
    if (!settings.contains("hooks")) settings["hooks"] = json::object();
    if (!settings["hooks"].is_object()) {
      return ReportError(*g_, "hooks install",
                         grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      path + ": \"hooks\" is not an object; not changed"));
    }
    struct Entry {
      const char* event;
      const char* matcher;  // nullptr: no matcher
      const char* arg;
    };
    const Entry entries[] = {
        {"SessionStart", nullptr, "session-start"},
        {"PreToolUse", "Edit|Write|MultiEdit|NotebookEdit", "pre-tool-use"},
        {"Stop", nullptr, "stop"},
        {"SessionEnd", nullptr, "session-end"},
    };
    int added = 0;
    for (const Entry& e : entries) {
      std::string command = absl::StrCat(f_->command, " hook ", e.arg);
      json& list = settings["hooks"][e.event];
      if (list.is_null()) list = json::array();
      if (!list.is_array()) {
        return ReportError(*g_, "hooks install",
                           grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                        absl::StrCat(path, ": hooks.", e.event,
                                                     " is not a list; not changed")));
      }
      bool present = false;
      for (const json& group : list) {
        if (!group.is_object() || !group.contains("hooks") || !group["hooks"].is_array()) continue;
        for (const json& h : group["hooks"]) {
          if (Str(h, "command") == command) present = true;
        }
      }
      if (present) continue;
      json group = {{"hooks", json::array({{{"type", "command"},
                                             {"command", command},
                                             {"timeout", 10}}})}};
      if (e.matcher != nullptr) group["matcher"] = e.matcher;
      list.push_back(group);
      ++added;
    }
    if (added > 0 && !WriteFileAtomic(path, settings.dump(2) + "\n")) {
      return ReportError(*g_, "hooks install",
                         grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      "cannot write " + path));
    }
    if (added > 0) ::chmod(path.c_str(), 0644);
    std::string git_hook;
    if (f_->git) {
      int rc = InstallGitHook(project, &git_hook);
      if (rc != kExitOk) return rc;
    }
    if (g_->json) {
      std::cout << json{{"ok", true}, {"settings", path}, {"added", added},
                        {"git_hook", git_hook}}.dump()
                << "\n";
    } else {
      std::cout << (added > 0 ? absl::StrCat("added ", added, " hook entries to ", path)
                              : absl::StrCat("hooks already installed in ", path))
                << "\n";
      if (!git_hook.empty()) std::cout << "pre-commit hook: " << git_hook << "\n";
    }
    return kExitOk;
  }

  // Writes <git dir>/hooks/pre-commit (refusing to replace a different
  // existing hook), which runs `cnet reservations check --staged`.
  int InstallGitHook(const std::string& project, std::string* out_path) {
    std::optional<std::string> hooks_dir =
        RunCapture({"git", "-C", project, "rev-parse", "--git-path", "hooks"});
    if (!hooks_dir) {
      return ReportError(*g_, "hooks install --git",
                         grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      project + " is not in a git repository"));
    }
    fs::path dir(std::string(absl::StripAsciiWhitespace(*hooks_dir)));
    if (dir.is_relative()) dir = fs::path(project) / dir;
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::string path = (dir / "pre-commit").string();
    std::string script = PreCommitScript(f_->command);
    if (fs::exists(path)) {
      std::ifstream in(path);
      std::string existing = ReadAll(in);
      if (!absl::StrContains(existing, "cnet-pre-commit")) {
        return ReportError(
            *g_, "hooks install --git",
            grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                         path + " exists and is not cnet's; call tools/pre-commit from it"));
      }
    }
    if (!WriteFileAtomic(path, script)) {
      return ReportError(*g_, "hooks install --git",
                         grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      "cannot write " + path));
    }
    ::chmod(path.c_str(), 0755);
    *out_path = path;
    return kExitOk;
  }

  static std::string PreCommitScript(const std::string& cnet) {
    return absl::StrCat(
        "#!/bin/sh\n"
        "# cnet-pre-commit: refuses a commit touching paths another agent reserved\n"
        "# exclusively on Claude Network (installed by `cnet hooks install --git`;\n"
        "# same as tools/pre-commit). Bypass: git commit --no-verify.\n"
        "CNET=\"${CNET:-",
        cnet,
        "}\"\n"
        "\"$CNET\" --timeout 3 reservations check --staged\n"
        "rc=$?\n"
        "case $rc in\n"
        "  0) exit 0 ;;\n"
        "  3) echo \"pre-commit: staged paths are reserved by another agent (see above)\" >&2; exit 1 ;;\n"
        "  *) echo \"pre-commit: could not check reservations (cnet exit $rc); committing anyway\" >&2; exit 0 ;;\n"
        "esac\n");
  }

 private:
  Globals* g_;
  HookFlags* f_;
};

}  // namespace

void AddHookCommands(CLI::App* app, Globals* g) {
  auto* f = new HookFlags();
  auto* hooks = new Hooks(g, f);
  CLI::App* hook = app->add_subcommand(
      "hook", "Claude Code hook: reads the event JSON on stdin, answers on stdout");
  hook->add_option("event", f->event,
                   "session-start, pre-tool-use, stop, session-end (default: hook_event_name)");
  hook->add_option("--as", f->as, "act as this saved identity");
  hook->add_option("--workspace,-w", f->workspace, "workspace name (default: from the git repo)");
  hook->add_option("--deadline", f->deadline_seconds, "seconds per hook (calls share it)")
      ->capture_default_str();
  hook->add_flag("--release-on-stop", f->release_on_stop,
                 "Stop also releases this agent's reservations in the workspace");
  hook->add_option("--session", f->session, "(heartbeat-loop) the session id");
  hook->footer(
      "Installed by `cnet hooks install`. Outputs: SessionStart additionalContext; "
      "PreToolUse permissionDecision deny for reserved paths; systemMessage when the "
      "suite is down (once).");
  hook->callback([g, hooks] { g->exit_code = hooks->Run(); });

  CLI::App* install_group = app->add_subcommand("hooks", "manage Claude Code hooks");
  install_group->require_subcommand(1);
  CLI::App* install = install_group->add_subcommand(
      "install", "merge cnet's hook entries into <project>/.claude/settings.json");
  install->add_option("--project", f->project, "project directory (default: cwd)");
  install->add_flag("--git", f->git, "also install the git pre-commit reservation check");
  install->add_option("--command", f->command,
                      "how hooks invoke cnet (default: cnet if on PATH, else this binary)");
  install->callback([g, hooks] { g->exit_code = hooks->Install(); });
}

}  // namespace cnet::cli
