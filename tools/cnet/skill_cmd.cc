// `cnet skill ...`: the skill library and runs, through the skills service.
//
//   validate FILE...  check skill files as the service would (exit 1 when
//                     one is invalid); --library also resolves composed
//                     skills against the loaded library
//   list              the library's skills (--all: invalid files too)
//   show NAME         one skill: its file, validity, issues and YAML
//   run NAME          run as an agent: --input key=value (JSON or text),
//                     --inputs '{...}', --async for the run id only;
//                     exit 3 when the run FAILED or was CANCELLED
//
// Credentials: `run` acts as an agent: --token / CNET_TOKEN, else the
// identity saved by `cnet agent join` (--as ID, or the only one). The
// other commands accept any credential, and fall back to the local admin
// credential.
#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/claudenet/v1/skills.grpc.pb.h"
#include "tools/cnet/cli.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
namespace fs = std::filesystem;

namespace {

struct SkillFlags {
  std::vector<std::string> files;
  bool library = false;
  std::string category;
  std::string name_prefix;
  bool all = false;
  std::string name;
  std::string version;
  std::vector<std::string> inputs;
  std::string inputs_json;
  bool async = false;
  double run_timeout_seconds = 0;
  std::string as;
};

// The token of a saved identity (~/.claude-network/agents/<id>.json): the
// one named, else the only one.
std::string SavedToken(const std::string& home, const std::string& as) {
  std::string dir = home + "/.claude-network/agents";
  std::string id = as;
  if (id.empty()) {
    std::vector<std::string> ids;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".json") ids.push_back(e.path().stem().string());
    }
    if (ids.size() != 1) return "";
    id = ids[0];
  }
  std::ifstream in(dir + "/" + id + ".json");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("token") || !j["token"].is_string()) return "";
  return j["token"].get<std::string>();
}

std::string AgentToken(Globals* g, const std::string& as) {
  if (!g->token.empty()) return g->token;
  return SavedToken(g->load_options().home_dir, as.empty() ? g->agent : as);
}

std::string AnyToken(Globals* g, const std::string& as) {
  std::string t = AgentToken(g, as);
  return t.empty() ? g->AdminCredential() : t;
}

std::unique_ptr<pb::SkillService::Stub> Stub(Globals* g) {
  return pb::SkillService::NewStub(g->Channel(g->config().GetString("services.skills_addr")));
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

std::string IssueLine(const pb::ValidationIssue& i) {
  return absl::StrCat(i.file(), ":", i.line(), ":", i.column(), ": ",
                      i.severity() == pb::SEVERITY_WARNING ? "warning: " : "", i.reason());
}

int Validate(Globals* g, const SkillFlags& f) {
  auto stub = Stub(g);
  std::string token = AnyToken(g, f.as);
  bool all_valid = true;
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& file : f.files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      return ReportError(*g, "skill validate",
                         grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      absl::StrCat(file, ": cannot read")));
    }
    std::stringstream buf;
    buf << in.rdbuf();
    pb::ValidateSkillRequest req;
    req.set_yaml_document(buf.str());
    req.set_file_name(file);
    req.set_check_library(f.library);
    pb::ValidateSkillResponse resp;
    grpc::Status s = stub->ValidateSkill(g->Context(token).get(), req, &resp);
    if (!s.ok()) return ReportError(*g, "skill validate " + file, s);
    all_valid = all_valid && resp.valid();
    if (g->json) {
      results.push_back(nlohmann::json::parse(ToJson(resp)));
      results.back()["file"] = file;
    } else {
      for (const auto& i : resp.issues()) std::cout << IssueLine(i) << "\n";
      std::cout << file << ": " << (resp.valid() ? "valid" : "invalid") << "\n";
    }
  }
  if (g->json) std::cout << nlohmann::json{{"results", results}, {"valid", all_valid}}.dump() << "\n";
  return all_valid ? kExitOk : kExitUsage;
}

int List(Globals* g, const SkillFlags& f) {
  auto stub = Stub(g);
  std::string token = AnyToken(g, f.as);
  pb::ListSkillsRequest req;
  req.set_category_prefix(f.category);
  req.set_name_prefix(f.name_prefix);
  req.set_include_invalid(f.all);
  req.set_page_size(1000);
  nlohmann::json skills = nlohmann::json::array();
  for (;;) {
    pb::ListSkillsResponse resp;
    grpc::Status s = stub->ListSkills(g->Context(token).get(), req, &resp);
    if (!s.ok()) return ReportError(*g, "skill list", s);
    for (const auto& sk : resp.skills()) {
      if (g->json) {
        skills.push_back(nlohmann::json::parse(ToJson(sk)));
      } else {
        std::cout << absl::StrFormat("%-24s %-8s %-20s %s%s\n", sk.name(), sk.version(),
                                     sk.category(), sk.valid() ? "" : "[INVALID] ",
                                     sk.valid() ? sk.description() : sk.file());
      }
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (g->json) std::cout << nlohmann::json{{"skills", skills}}.dump() << "\n";
  return kExitOk;
}

int Show(Globals* g, const SkillFlags& f) {
  auto stub = Stub(g);
  pb::GetSkillRequest req;
  req.set_name(f.name);
  req.set_version(f.version);
  pb::GetSkillResponse resp;
  grpc::Status s = stub->GetSkill(g->Context(AnyToken(g, f.as)).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "skill show " + f.name, s);
  if (g->json) {
    std::cout << ToJson(resp) << "\n";
    return kExitOk;
  }
  const pb::Skill& sk = resp.skill();
  std::cout << "# " << sk.file() << " (" << (sk.valid() ? "valid" : "INVALID") << ")\n";
  for (const auto& i : sk.issues()) std::cout << "# " << IssueLine(i) << "\n";
  std::cout << sk.source_yaml();
  return kExitOk;
}

int Run(Globals* g, const SkillFlags& f) {
  std::string token = AgentToken(g, f.as);
  if (token.empty()) {
    return ReportError(*g, "skill run",
                       grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                    "runs act as an agent: give --token, or `cnet agent join` "
                                    "first (then --as ID when several identities are saved)"));
  }
  pb::RunSkillRequest req;
  req.set_name(f.name);
  req.set_version(f.version);
  req.set_mode(f.async ? pb::RUN_MODE_ASYNC : pb::RUN_MODE_SYNC);
  nlohmann::json inputs = nlohmann::json::object();
  if (!f.inputs_json.empty()) {
    inputs = nlohmann::json::parse(f.inputs_json, nullptr, false);
    if (!inputs.is_object()) {
      return ReportError(*g, "skill run",
                         grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      "--inputs: expected a JSON object"));
    }
  }
  for (const std::string& kv : f.inputs) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return ReportError(*g, "skill run",
                         grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                      absl::StrCat("--input \"", kv, "\": expected key=value")));
    }
    // A value that parses as JSON keeps its type (3, true, [..]); else text.
    nlohmann::json v = nlohmann::json::parse(kv.substr(eq + 1), nullptr, false);
    inputs[kv.substr(0, eq)] = v.is_discarded() ? nlohmann::json(kv.substr(eq + 1)) : v;
  }
  if (!google::protobuf::util::JsonStringToMessage(inputs.dump(), req.mutable_inputs()).ok()) {
    return ReportError(*g, "skill run",
                       grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad inputs"));
  }
  double run_seconds = f.run_timeout_seconds > 0 ? f.run_timeout_seconds : 600;
  if (f.run_timeout_seconds > 0) {
    req.mutable_timeout()->set_seconds(static_cast<int64_t>(f.run_timeout_seconds));
  }
  // A SYNC call lasts as long as the run may.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(
                       1000 * (f.async ? g->timeout_seconds : run_seconds + g->timeout_seconds))));
  pb::RunSkillResponse resp;
  grpc::Status s = Stub(g)->RunSkill(&ctx, req, &resp);
  if (!s.ok()) return ReportError(*g, "skill run " + f.name, s);
  const pb::SkillRun& run = resp.run();
  bool failed = run.state() == pb::RUN_STATE_FAILED || run.state() == pb::RUN_STATE_CANCELLED;
  if (g->json) {
    std::cout << ToJson(run) << "\n";
  } else if (f.async) {
    std::cout << run.run_id() << "\n";
  } else {
    std::cout << "run " << run.run_id() << " " << pb::RunState_Name(run.state()).substr(10)
              << " in " << run.duration().seconds() << "."
              << absl::StrFormat("%03d", run.duration().nanos() / 1000000) << "s\n";
    if (failed) {
      std::cout << run.error().code() << ": " << run.error().message()
                << (run.error().step_path().empty() ? "" : " (step " + run.error().step_path() + ")")
                << "\n";
    } else {
      std::cout << ToJson(run.outputs()) << "\n";
    }
  }
  return failed ? kExitConflict : kExitOk;
}

}  // namespace

void AddSkillCommands(CLI::App* app, Globals* g) {
  auto f = std::make_shared<SkillFlags>();
  auto* group = app->add_subcommand("skill", "validate, list, show and run skills");
  group->require_subcommand(1);

  auto* validate = group->add_subcommand("validate", "check skill files as the service would");
  validate->add_option("files", f->files, "YAML files")->required();
  validate->add_flag("--library", f->library, "also resolve composed skills against the library");
  validate->footer("Example: cnet skill validate skills/meta/my_workflow.yaml --library");
  validate->callback([g, f] { g->exit_code = Validate(g, *f); });

  auto* list = group->add_subcommand("list", "the library's skills");
  list->add_option("--category", f->category, "only this category or below (e.g. core/data)");
  list->add_option("--name", f->name_prefix, "only names starting with this");
  list->add_flag("--all", f->all, "also invalid files");
  list->callback([g, f] { g->exit_code = List(g, *f); });

  auto* show = group->add_subcommand("show", "one skill: file, validity, issues, YAML");
  show->add_option("name", f->name, "skill name")->required();
  show->add_option("--version", f->version, "exact version (default: highest valid)");
  show->callback([g, f] { g->exit_code = Show(g, *f); });

  auto* run = group->add_subcommand("run", "run a skill as an agent");
  run->add_option("name", f->name, "skill name")->required();
  run->add_option("--version", f->version, "version or range, e.g. ^1.2");
  run->add_option("--input,-i", f->inputs, "key=value (value as JSON when it parses)");
  run->add_option("--inputs", f->inputs_json, "all inputs as one JSON object");
  run->add_flag("--async", f->async, "print the run id and return at once");
  run->add_option("--run-timeout", f->run_timeout_seconds, "run limit, seconds (1..86400)");
  run->add_option("--as", f->as, "saved identity to run as (see cnet agent join)");
  run->footer("Example: cnet skill run send_message -i to=bob -i body='tests pass'");
  run->callback([g, f] { g->exit_code = Run(g, *f); });
}

}  // namespace cnet::cli
