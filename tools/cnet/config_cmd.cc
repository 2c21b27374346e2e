// `cnet config show | validate FILE | set KEY VALUE | unset KEY`: the
// config service from the shell.
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/logging/logging.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/config.grpc.pb.h"
#include "tools/cnet/cli.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
namespace {

std::unique_ptr<pb::ConfigService::Stub> Stub(Globals* g) {
  return pb::ConfigService::NewStub(g->Channel(g->config().GetString("services.config_addr")));
}

std::string LayerText(pb::Layer layer) {
  std::string name = pb::Layer_Name(layer);
  return name.rfind("LAYER_", 0) == 0 ? name.substr(6) : name;
}

std::string ValueText(const pb::ConfigValue& v) {
  return v.redacted() ? "<redacted>" : v.value();
}

std::string SourceText(const pb::ConfigValue& v) {
  std::string s = LayerText(v.source());
  if (v.source() != pb::LAYER_DEFAULT && !v.origin().empty()) absl::StrAppend(&s, " ", v.origin());
  if (v.line() > 0) absl::StrAppend(&s, ":", v.line());
  return s;
}

std::string ValueJson(const pb::ConfigValue& v) {
  return absl::StrCat("{\"key\":\"", JsonEscape(v.key()), "\",\"value\":\"",
                      JsonEscape(v.value()), "\",\"redacted\":", v.redacted() ? "true" : "false",
                      ",\"layer\":\"", LayerText(v.source()), "\",\"origin\":\"",
                      JsonEscape(v.origin()), "\",\"line\":", v.line(), "}");
}

int Show(Globals* g, const std::string& prefix) {
  pb::GetConfigRequest req;
  req.set_key_prefix(prefix);
  pb::GetConfigResponse resp;
  grpc::Status s = Stub(g)->GetConfig(g->Context().get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "config show", s);
  if (g->json) {
    std::vector<std::string> items;
    for (const auto& v : resp.values()) items.push_back(ValueJson(v));
    std::cout << "{\"values\":[" << absl::StrJoin(items, ",") << "]}\n";
    return kExitOk;
  }
  size_t width = 0;
  for (const auto& v : resp.values()) width = std::max(width, v.key().size());
  for (const auto& v : resp.values()) {
    std::cout << v.key() << std::string(width + 2 - v.key().size(), ' ') << ValueText(v)
              << "    (" << SourceText(v) << ")\n";
  }
  return kExitOk;
}

int Validate(Globals* g, const std::string& file) {
  std::ifstream in(file);
  if (!in) {
    std::cerr << "cnet: config validate: cannot read " << file << "\n";
    return kExitNotFound;
  }
  std::stringstream text;
  text << in.rdbuf();
  pb::ValidateConfigRequest req;
  req.set_yaml_document(text.str());
  req.set_name(file);
  pb::ValidateConfigResponse resp;
  grpc::Status s = Stub(g)->ValidateConfig(g->Context().get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "config validate", s);
  std::vector<std::string> lines, items;
  for (const auto& i : resp.issues()) {
    std::string where = i.origin();
    if (i.line() > 0) absl::StrAppend(&where, ":", i.line(), ":", i.column());
    lines.push_back(absl::StrCat(where, ": ", i.key().empty() ? "" : i.key() + ": ", i.reason()));
    items.push_back(absl::StrCat("{\"origin\":\"", JsonEscape(i.origin()), "\",\"line\":",
                                 i.line(), ",\"column\":", i.column(), ",\"key\":\"",
                                 JsonEscape(i.key()), "\",\"reason\":\"", JsonEscape(i.reason()),
                                 "\"}"));
  }
  if (g->json) {
    std::cout << "{\"valid\":" << (resp.valid() ? "true" : "false") << ",\"issues\":["
              << absl::StrJoin(items, ",") << "]}\n";
  } else if (resp.valid()) {
    std::cout << file << ": valid\n";
  } else {
    for (const auto& l : lines) std::cerr << l << "\n";
  }
  return resp.valid() ? kExitOk : kExitUsage;
}

int Set(Globals* g, const std::string& key, const std::string& value) {
  pb::SetOverrideRequest req;
  req.set_key(key);
  req.set_value(value);
  pb::SetOverrideResponse resp;
  grpc::Status s = Stub(g)->SetOverride(g->Context(g->AdminCredential()).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "config set", s);
  if (g->json) {
    std::cout << ValueJson(resp.value()) << "\n";
  } else {
    std::cout << key << " = " << ValueText(resp.value()) << " (was "
              << ValueText(resp.previous()) << " from " << SourceText(resp.previous())
              << "); services read it at their next start\n";
  }
  return kExitOk;
}

int Unset(Globals* g, const std::string& key) {
  pb::DeleteOverrideRequest req;
  req.set_key(key);
  pb::DeleteOverrideResponse resp;
  grpc::Status s = Stub(g)->DeleteOverride(g->Context(g->AdminCredential()).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "config unset", s);
  if (g->json) {
    std::cout << "{\"existed\":" << (resp.existed() ? "true" : "false")
              << ",\"value\":" << ValueJson(resp.value()) << "}\n";
  } else {
    std::cout << key << " = " << ValueText(resp.value()) << " ("
              << SourceText(resp.value()) << ")"
              << (resp.existed() ? "" : "; there was no override") << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddConfigCommands(CLI::App* app, Globals* g) {
  auto* config = app->add_subcommand("config", "show, validate and override the configuration");
  config->require_subcommand(1);

  auto prefix = std::make_shared<std::string>();
  auto* show = config->add_subcommand("show", "effective values and the layer each came from");
  show->add_option("prefix", *prefix, "only keys under this dotted prefix");
  show->footer("Example: cnet config show network.health");
  show->callback([g, prefix] { g->exit_code = Show(g, *prefix); });

  auto file = std::make_shared<std::string>();
  auto* validate = config->add_subcommand("validate", "check a YAML file as a config layer");
  validate->add_option("file", *file, "YAML file")->required();
  validate->footer("Example: cnet config validate ./config.yaml");
  validate->callback([g, file] { g->exit_code = Validate(g, *file); });

  auto kv = std::make_shared<std::pair<std::string, std::string>>();
  auto* set = config->add_subcommand("set", "set a runtime override (admin; persisted)");
  set->add_option("key", kv->first, "dotted key")->required();
  set->add_option("value", kv->second, "value (lists comma-separated)")->required();
  set->footer("Example: cnet config set limits.inbox_cap 20000");
  set->callback([g, kv] { g->exit_code = Set(g, kv->first, kv->second); });

  auto key = std::make_shared<std::string>();
  auto* unset = config->add_subcommand("unset", "remove a runtime override (admin)");
  unset->add_option("key", *key, "dotted key")->required();
  unset->footer("Example: cnet config unset limits.inbox_cap");
  unset->callback([g, key] { g->exit_code = Unset(g, *key); });
}

}  // namespace cnet::cli
