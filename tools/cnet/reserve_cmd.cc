// `cnet reserve`, `cnet release`, `cnet reservations [list|check|renew|
// force-release|report-changed]`: path reservations on the tasks service,
// answered per path.
#include <google/protobuf/util/json_util.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/server/tls.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "tools/cnet/agent_context.h"
#include "tools/cnet/agentx_cmds.h"

namespace cnet::cli {
namespace pb = claudenet::v1;

namespace {

struct ReserveFlags {
  std::vector<std::string> patterns;
  std::vector<std::string> ids;
  std::vector<std::string> paths;
  std::string workspace;
  std::string as;
  std::string ttl;
  std::string reason;
  std::string task;
  std::string holder;
  std::string base = "HEAD";
  std::string path_filter;
  bool shared = false;
  bool partial = false;
  bool all = false;
  bool staged = false;
  bool mine = false;
  int page_size = 100;
};

nlohmann::json ToJsonValue(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return nlohmann::json::parse(out, nullptr, false);
}

bool ParseTtl(const std::string& text, google::protobuf::Duration* out) {
  if (text.empty()) return true;
  absl::Duration d;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return false;
  }
  out->set_seconds(absl::ToInt64Seconds(d));
  return true;
}

class ReservationCli {
 public:
  ReservationCli(Globals* g, ReserveFlags* f) : g_(g), f_(f) {}

  const config::Config& config() { return g_->config(); }
  std::string home() { return g_->load_options().home_dir; }
  absl::Duration deadline() { return absl::Milliseconds(g_->timeout_seconds * 1000); }

  std::unique_ptr<pb::TaskService::Stub> Stub() {
    return pb::TaskService::NewStub(MakeSuiteChannel(config(), "services.tasks_addr"));
  }

  // The acting agent's token: --token / CNET_TOKEN, else the saved identity.
  bool AgentCredential(std::string* credential, std::string* agent_id) {
    if (!g_->token.empty() && f_->as.empty()) {
      *credential = g_->token;
      return true;
    }
    absl::StatusOr<SavedAgent> agent = ResolveAgent(config(), home(), f_->as.empty() ? g_->agent : f_->as);
    if (!agent.ok()) {
      g_->exit_code = ReportError(*g_, "identity",
                                  grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                               std::string(agent.status().message())));
      return false;
    }
    *credential = agent->token;
    *agent_id = agent->id;
    return true;
  }

  // Reads: the agent's token if there is one, else the admin credential.
  std::string ReadCredential() {
    if (!g_->token.empty()) return g_->token;
    absl::StatusOr<SavedAgent> agent = ResolveAgent(config(), home(), f_->as.empty() ? g_->agent : f_->as);
    if (agent.ok()) return agent->token;
    return g_->AdminCredential();
  }

  std::string WorkspaceName() {
    char cwd[4096] = {0};
    if (::getcwd(cwd, sizeof(cwd) - 1) == nullptr) cwd[0] = '.';
    return DetectWorkspace(config(), cwd, f_->workspace).name;
  }

  int Usage(const std::string& what, const std::string& message) {
    return ReportError(*g_, what, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message));
  }

  // Prints per-item results; exit 3 when any item is not OK.
  int PrintResults(const google::protobuf::RepeatedPtrField<pb::PathResult>& results,
                   const google::protobuf::Message& response) {
    bool all_ok = true;
    for (const auto& r : results) all_ok = all_ok && r.outcome() == pb::PATH_OUTCOME_OK;
    if (g_->json) {
      nlohmann::json out = ToJsonValue(response);
      out["ok"] = all_ok;
      std::cout << out.dump() << "\n";
    } else {
      for (const auto& r : results) std::cout << DescribePathResult(r) << "\n";
    }
    return all_ok ? kExitOk : kExitConflict;
  }

  int Reserve() {
    std::string credential, agent_id;
    if (!AgentCredential(&credential, &agent_id)) return g_->exit_code;
    pb::ReserveRequest req;
    req.set_workspace(WorkspaceName());
    for (const std::string& p : f_->patterns) req.add_patterns(p);
    req.set_mode(f_->shared ? pb::RESERVATION_MODE_SHARED : pb::RESERVATION_MODE_EXCLUSIVE);
    if (!f_->ttl.empty() && !ParseTtl(f_->ttl, req.mutable_ttl())) {
      return Usage("reserve", "--ttl: seconds or a duration like 15m");
    }
    req.set_reason(f_->reason);
    req.set_task_id(f_->task);
    req.set_allow_partial(f_->partial);
    pb::ReserveResponse resp;
    grpc::Status s = Stub()->Reserve(CallContext(deadline(), credential).get(), req, &resp);
    if (!s.ok()) return ReportError(*g_, "reserve", s);
    return PrintResults(resp.results(), resp);
  }

  int Release() {
    std::string credential, agent_id;
    if (!AgentCredential(&credential, &agent_id)) return g_->exit_code;
    pb::ReleaseReservationRequest req;
    if (!f_->patterns.empty() || f_->all || !f_->workspace.empty()) {
      req.set_workspace(WorkspaceName());
    }
    for (const std::string& p : f_->patterns) req.add_patterns(p);
    for (const std::string& id : f_->ids) req.add_reservation_ids(id);
    req.set_all(f_->all);
    req.set_task_id(f_->task);
    pb::ReleaseReservationResponse resp;
    grpc::Status s =
        Stub()->ReleaseReservation(CallContext(deadline(), credential).get(), req, &resp);
    if (!s.ok()) return ReportError(*g_, "release", s);
    if (!g_->json && resp.results().empty()) std::cout << "nothing to release\n";
    return PrintResults(resp.results(), resp);
  }

  int Renew() {
    std::string credential, agent_id;
    if (!AgentCredential(&credential, &agent_id)) return g_->exit_code;
    pb::RenewReservationRequest req;
    if (!f_->patterns.empty()) req.set_workspace(WorkspaceName());
    for (const std::string& p : f_->patterns) req.add_patterns(p);
    for (const std::string& id : f_->ids) req.add_reservation_ids(id);
    if (!f_->ttl.empty() && !ParseTtl(f_->ttl, req.mutable_ttl())) {
      return Usage("reservations renew", "--ttl: seconds or a duration like 15m");
    }
    pb::RenewReservationResponse resp;
    grpc::Status s =
        Stub()->RenewReservation(CallContext(deadline(), credential).get(), req, &resp);
    if (!s.ok()) return ReportError(*g_, "reservations renew", s);
    return PrintResults(resp.results(), resp);
  }

  int ForceRelease() {
    pb::ForceReleaseRequest req;
    for (const std::string& id : f_->ids) req.add_reservation_ids(id);
    req.set_holder(f_->holder);
    if (!f_->workspace.empty()) req.set_workspace(f_->workspace);
    req.set_reason(f_->reason);
    pb::ForceReleaseResponse resp;
    grpc::Status s = Stub()->ForceRelease(
        CallContext(deadline(), g_->AdminCredential()).get(), req, &resp);
    if (!s.ok()) return ReportError(*g_, "reservations force-release", s);
    return PrintResults(resp.results(), resp);
  }

  int List() {
    pb::ListReservationsRequest req;
    req.set_page_size(f_->page_size);
    if (!f_->workspace.empty()) req.set_workspace(f_->workspace);
    req.set_holder(f_->holder);
    req.set_task_id(f_->task);
    req.set_path(f_->path_filter);
    if (f_->mine) {
      std::string credential, agent_id;
      if (!AgentCredential(&credential, &agent_id)) return g_->exit_code;
      req.set_holder(agent_id);
    }
    std::string credential = ReadCredential();
    std::vector<pb::Reservation> all;
    for (;;) {
      pb::ListReservationsResponse page;
      grpc::Status s =
          Stub()->ListReservations(CallContext(deadline(), credential).get(), req, &page);
      if (!s.ok()) return ReportError(*g_, "reservations", s);
      for (auto& r : *page.mutable_reservations()) all.push_back(std::move(r));
      if (page.next_page_token().empty()) break;
      req.set_page_token(page.next_page_token());
    }
    if (g_->json) {
      nlohmann::json items = nlohmann::json::array();
      for (const auto& r : all) items.push_back(ToJsonValue(r));
      std::cout << nlohmann::json{{"ok", true}, {"reservations", items}}.dump() << "\n";
    } else {
      for (const auto& r : all) std::cout << DescribeReservation(r) << "\n";
      std::cout << all.size() << " reservations\n";
    }
    return kExitOk;
  }

  int Check() {
    std::vector<std::string> paths = f_->paths;
    if (f_->staged) {
      std::optional<std::string> text;
      char cwd[4096] = {0};
      if (::getcwd(cwd, sizeof(cwd) - 1) != nullptr) {
        text = RunCapture({"git", "-C", cwd, "diff", "--cached", "--name-only", "-z"});
      }
      if (!text) return Usage("reservations check", "--staged: not in a git repository");
      for (absl::string_view p : absl::StrSplit(*text, '\0', absl::SkipEmpty())) {
        paths.push_back(std::string(p));
      }
    }
    if (paths.empty()) {
      if (!g_->json) std::cout << "no paths to check\n";
      if (g_->json) std::cout << "{\"ok\":true,\"allowed\":true,\"results\":[]}\n";
      return kExitOk;
    }
    // As the acting agent; without one (a person committing), as the local
    // admin, for whom every exclusive reservation belongs to someone else.
    std::string credential = ReadCredential();
    pb::CheckPathsRequest req;
    req.set_workspace(WorkspaceName());
    for (const std::string& p : paths) req.add_paths(p);
    pb::CheckPathsResponse resp;
    grpc::Status s = Stub()->CheckPaths(CallContext(deadline(), credential).get(), req, &resp);
    if (!s.ok()) return ReportError(*g_, "reservations check", s);
    if (g_->json) {
      nlohmann::json out = ToJsonValue(resp);
      out["ok"] = resp.allowed();
      out["allowed"] = resp.allowed();
      std::cout << out.dump() << "\n";
    } else {
      for (const pb::PathCheck& c : resp.results()) {
        if (c.allowed() && c.reservations().empty()) continue;
        std::string verdict = pb::PathVerdict_Name(c.verdict());
        if (verdict.rfind("PATH_VERDICT_", 0) == 0) verdict = verdict.substr(13);
        std::cout << (c.allowed() ? "ok      " : "BLOCKED ") << c.path() << " (" << verdict
                  << ")";
        for (const pb::Reservation& r : c.reservations()) {
          std::cout << "\n    " << DescribeReservation(r);
        }
        std::cout << "\n";
      }
      std::cout << (resp.allowed() ? "all paths allowed" : "some paths are reserved by others")
                << " (" << resp.results_size() << " checked in " << req.workspace() << ")\n";
    }
    return resp.allowed() ? kExitOk : kExitConflict;
  }

  int ReportChanged() {
    std::vector<std::string> paths = f_->paths;
    if (paths.empty()) {
      char cwd[4096] = {0};
      std::optional<std::string> text;
      if (::getcwd(cwd, sizeof(cwd) - 1) != nullptr) {
        text = RunCapture({"git", "-C", cwd, "diff", "--name-only", "-z", f_->base});
      }
      if (!text) return Usage("reservations report-changed", "git diff failed (--base?)");
      for (absl::string_view p : absl::StrSplit(*text, '\0', absl::SkipEmpty())) {
        paths.push_back(std::string(p));
      }
    }
    std::string credential, agent_id;
    if (!AgentCredential(&credential, &agent_id)) return g_->exit_code;
    pb::ReportChangedPathsRequest req;
    req.set_workspace(WorkspaceName());
    req.set_base_ref(f_->base);
    req.set_task_id(f_->task);
    for (const std::string& p : paths) req.add_paths(p);
    pb::ReportChangedPathsResponse resp;
    grpc::Status s =
        Stub()->ReportChangedPaths(CallContext(deadline(), credential).get(), req, &resp);
    if (!s.ok()) return ReportError(*g_, "reservations report-changed", s);
    if (g_->json) {
      nlohmann::json out = ToJsonValue(resp);
      out["ok"] = true;
      out["reported"] = paths.size();
      std::cout << out.dump() << "\n";
    } else {
      std::cout << "reported " << paths.size() << " changed paths in " << req.workspace()
                << "\n";
      for (const auto& o : resp.overlaps()) {
        std::cout << "OVERLAP with " << o.other_agent_id() << ": " << o.path_count()
                  << " paths, e.g. " << (o.paths().empty() ? "" : o.paths(0)) << "\n";
      }
      for (const auto& c : resp.reserved_by_others()) {
        std::cout << "RESERVED " << c.path();
        if (!c.reservations().empty()) {
          std::cout << " by " << DescribeReservation(c.reservations(0));
        }
        std::cout << "\n";
      }
    }
    return kExitOk;
  }

 private:
  Globals* g_;
  ReserveFlags* f_;
};

}  // namespace

void AddReservationCommands(CLI::App* app, Globals* g) {
  auto* f = new ReserveFlags();  // lives as long as the app
  auto* cli = new ReservationCli(g, f);
  auto add_common = [f](CLI::App* c, bool identity) {
    c->add_option("--workspace,-w", f->workspace,
                  "workspace (default: $CNET_WORKSPACE, the git origin, or <node>:<repo root>)");
    if (identity) c->add_option("--as", f->as, "act as this saved identity");
  };

  CLI::App* reserve = app->add_subcommand(
      "reserve", "reserve paths or globs in this workspace (exclusive unless --shared)");
  reserve->add_option("patterns", f->patterns, "paths or globs, relative to the repository root")
      ->required();
  reserve->add_flag("--shared", f->shared, "shared: others may also hold shared reservations");
  reserve->add_option("--ttl", f->ttl, "lease, renewed by `reservations renew` (10s..24h)");
  reserve->add_option("--reason", f->reason, "why (shown to agents that conflict)");
  reserve->add_option("--task", f->task, "related task id");
  reserve->add_flag("--partial", f->partial, "reserve what is free, report the rest");
  add_common(reserve, true);
  reserve->footer("Example: cnet reserve 'src/net/**' --ttl 30m --reason 'refactor'");
  reserve->callback([g, cli] { g->exit_code = cli->Reserve(); });

  CLI::App* release = app->add_subcommand("release", "release reservations, answered per item");
  release->add_option("patterns", f->patterns, "exact patterns to release");
  release->add_option("--id", f->ids, "reservation id; repeat");
  release->add_flag("--all", f->all, "every reservation of this agent (in --workspace if given)");
  release->add_option("--task", f->task, "every reservation for this task");
  add_common(release, true);
  release->footer("Example: cnet release 'src/net/**'   or   cnet release --all");
  release->callback([g, cli] { g->exit_code = cli->Release(); });

  CLI::App* group = app->add_subcommand(
      "reservations", "list reservations; check, renew, force-release, report changed paths");
  group->require_subcommand(0, 1);
  group->add_option("--holder", f->holder, "only this holder");
  group->add_option("--task", f->task, "only for this task");
  group->add_option("--path", f->path_filter, "only reservations covering this path");
  group->add_flag("--mine", f->mine, "only the acting agent's");
  group->add_option("--page-size", f->page_size, "page size (1..1000)");
  add_common(group, true);

  CLI::App* check = group->add_subcommand(
      "check", "may this agent write these paths? exit 3 when one is reserved by another agent");
  check->add_option("paths", f->paths, "concrete paths relative to the repository root");
  check->add_flag("--staged", f->staged, "check the staged files (git diff --cached)");
  add_common(check, true);
  check->callback([g, cli] { g->exit_code = cli->Check(); });

  CLI::App* renew = group->add_subcommand("renew", "extend this agent's reservations");
  renew->add_option("patterns", f->patterns, "exact patterns");
  renew->add_option("--id", f->ids, "reservation id; repeat");
  renew->add_option("--ttl", f->ttl, "new TTL (default: each reservation's)");
  add_common(renew, true);
  renew->callback([g, cli] { g->exit_code = cli->Renew(); });

  CLI::App* force = group->add_subcommand("force-release", "admin: release anyone's reservations");
  force->add_option("--id", f->ids, "reservation id; repeat");
  force->add_option("--holder", f->holder, "every reservation of this holder");
  force->add_option("--reason", f->reason, "why (sent to the holder)")->required();
  add_common(force, false);
  force->callback([g, cli] { g->exit_code = cli->ForceRelease(); });

  CLI::App* report = group->add_subcommand(
      "report-changed", "report this agent's changed files (git diff --name-only BASE)");
  report->add_option("paths", f->paths, "changed paths (default: from git diff)");
  report->add_option("--base", f->base, "the base ref of the diff")->capture_default_str();
  report->add_option("--task", f->task, "related task id");
  add_common(report, true);
  report->callback([g, cli] { g->exit_code = cli->ReportChanged(); });

  group->callback([g, cli, check, renew, force, report] {
    if (check->parsed() || renew->parsed() || force->parsed() || report->parsed()) return;
    g->exit_code = cli->List();
  });
}

}  // namespace cnet::cli
