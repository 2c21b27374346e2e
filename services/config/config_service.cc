#include "services/config/config_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/auth.h"
#include "libs/status/grpc_status.h"
#include "libs/stream/hub_writer.h"

namespace cnet::configsvc {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

namespace {

constexpr size_t kMaxDocumentBytes = 1 << 20;
constexpr size_t kMaxValueBytes = 64 << 10;

pb::Layer ToProto(config::Layer layer) {
  switch (layer) {
    case config::Layer::kDefault: return pb::LAYER_DEFAULT;
    case config::Layer::kExampleFile: return pb::LAYER_EXAMPLE_FILE;
    case config::Layer::kProjectFile: return pb::LAYER_PROJECT_FILE;
    case config::Layer::kUserFile: return pb::LAYER_USER_FILE;
    case config::Layer::kEnvironment: return pb::LAYER_ENVIRONMENT;
    case config::Layer::kRuntimeOverride: return pb::LAYER_RUNTIME_OVERRIDE;
  }
  return pb::LAYER_UNSPECIFIED;
}

pb::ConfigValueType ToProto(const config::KeySpec& spec) {
  if (!spec.allowed.empty()) return pb::CONFIG_VALUE_TYPE_ENUM;
  switch (spec.type) {
    case config::ValueType::kString:
      if (spec.format == config::Format::kPath) return pb::CONFIG_VALUE_TYPE_PATH;
      if (spec.format == config::Format::kUrl) return pb::CONFIG_VALUE_TYPE_URL;
      return pb::CONFIG_VALUE_TYPE_STRING;
    case config::ValueType::kInt: return pb::CONFIG_VALUE_TYPE_INT;
    case config::ValueType::kDouble: return pb::CONFIG_VALUE_TYPE_FLOAT;
    case config::ValueType::kBool: return pb::CONFIG_VALUE_TYPE_BOOL;
    case config::ValueType::kDuration: return pb::CONFIG_VALUE_TYPE_DURATION;
    case config::ValueType::kStringList: return pb::CONFIG_VALUE_TYPE_STRING_LIST;
  }
  return pb::CONFIG_VALUE_TYPE_UNSPECIFIED;
}

pb::ConfigEventCause ToProto(ChangeCause cause) {
  switch (cause) {
    case ChangeCause::kInitial: return pb::CONFIG_EVENT_CAUSE_INITIAL;
    case ChangeCause::kFileChanged: return pb::CONFIG_EVENT_CAUSE_FILE_CHANGED;
    case ChangeCause::kSignalReload: return pb::CONFIG_EVENT_CAUSE_SIGNAL_RELOAD;
    case ChangeCause::kRequestedReload: return pb::CONFIG_EVENT_CAUSE_RELOAD_REQUESTED;
    case ChangeCause::kOverrideSet: return pb::CONFIG_EVENT_CAUSE_OVERRIDE_SET;
    case ChangeCause::kOverrideDeleted: return pb::CONFIG_EVENT_CAUSE_OVERRIDE_DELETED;
  }
  return pb::CONFIG_EVENT_CAUSE_UNSPECIFIED;
}

// Secrets: the value is withheld; `redacted` tells whether one is set.
void SetValue(const config::KeySpec& spec, const std::string& rendered,
              std::string* value, bool* redacted) {
  if (spec.secret) {
    value->clear();
    *redacted = !rendered.empty();
  } else {
    *value = rendered;
    *redacted = false;
  }
}

void FillValue(const config::Config::Entry& e, pb::ConfigValue* out) {
  const config::KeySpec& spec = *e.spec;
  out->set_key(std::string(spec.key));
  bool redacted = false;
  SetValue(spec, e.rendered, out->mutable_value(), &redacted);
  out->set_redacted(redacted);
  out->set_type(ToProto(spec));
  out->set_secret(spec.secret);
  out->set_source(ToProto(e.source.layer));
  out->set_origin(e.source.layer == config::Layer::kDefault ? "default"
                  : e.source.layer == config::Layer::kRuntimeOverride ? "override"
                                                                      : e.source.origin);
  out->set_line(e.source.line);
  out->set_description(std::string(spec.description));
  if (!spec.secret) out->set_default_value(std::string(spec.default_value));
  for (auto a : spec.allowed) out->add_allowed_values(std::string(a));
  // Services read their configuration at start; only the config service
  // itself applies changes live.
  out->set_restart_required(true);
  out->set_overridable(true);
}

void FillIssue(const config::Issue& issue, pb::ConfigIssue* out) {
  out->set_layer(ToProto(issue.layer));
  out->set_origin(issue.origin);
  out->set_line(issue.line);
  out->set_column(issue.column);
  out->set_key(issue.key);
  out->set_reason(issue.reason);
  out->set_severity(pb::SEVERITY_ERROR);
}

void FillChange(const ValueChange& c, pb::ConfigChange* out) {
  const config::KeySpec* spec = config::FindKey(c.key);
  out->set_key(c.key);
  bool redacted_old = false, redacted_new = false;
  SetValue(*spec, c.old_value, out->mutable_old_value(), &redacted_old);
  SetValue(*spec, c.new_value, out->mutable_new_value(), &redacted_new);
  out->set_redacted(spec->secret);
  out->set_old_source(ToProto(c.old_source.layer));
  out->set_new_source(ToProto(c.new_source.layer));
  out->set_old_origin(c.old_source.origin);
  out->set_new_origin(c.new_source.origin);
  out->set_restart_required(true);
}

void FillEvent(const ConfigEvent& ev, int64_t revision, pb::ConfigEvent* out) {
  out->set_sequence(ev.sequence);
  *out->mutable_time() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(ev.time));
  out->set_cause(ToProto(ev.cause));
  for (const auto& c : ev.changes) FillChange(c, out->add_changes());
  for (const auto& i : ev.issues) FillIssue(i, out->add_issues());
  out->set_applied(ev.issues.empty());
  out->set_revision(revision);
}

// Whole-segment prefix match: "network" matches "network.x", not "networking.x".
bool MatchesPrefix(std::string_view key, const std::string& prefix) {
  if (prefix.empty()) return true;
  if (key.size() < prefix.size() || key.substr(0, prefix.size()) != prefix) return false;
  return key.size() == prefix.size() || key[prefix.size()] == '.';
}

grpc::Status CheckPrefix(const std::string& prefix) {
  if (prefix.size() > 256) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "key_prefix: longer than 256 bytes");
  }
  for (char c : prefix) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '.')) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("key_prefix \"", prefix,
                                       "\": only lower-case letters, digits, '_' and '.'"));
    }
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ConfigServiceImpl::GetConfig(grpc::ServerContext* ctx,
                                          const pb::GetConfigRequest* req,
                                          pb::GetConfigResponse* resp) {
  // Open rpc: no credential needed, and one this service cannot verify (an
  // agent token: the config service runs before, and without, the
  // registry) is not held against the caller.
  grpc::Status s = CheckPrefix(req->key_prefix());
  if (!s.ok()) return s;
  std::shared_ptr<const config::Config> current = core_->current();
  std::vector<const config::Config::Entry*> entries;
  for (const auto& e : current->entries()) {
    if (MatchesPrefix(e.spec->key, req->key_prefix())) entries.push_back(&e);
  }
  if (entries.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("key_prefix \"", req->key_prefix(), "\": no such key"));
  }
  std::sort(entries.begin(), entries.end(),
            [](auto* a, auto* b) { return a->spec->key < b->spec->key; });
  for (const auto* e : entries) FillValue(*e, resp->add_values());
  resp->set_revision(core_->last_sequence());
  return grpc::Status::OK;
}

grpc::Status ConfigServiceImpl::ValidateConfig(grpc::ServerContext* ctx,
                                               const pb::ValidateConfigRequest* req,
                                               pb::ValidateConfigResponse* resp) {
  // Open rpc: no credential needed, and one this service cannot verify (an
  // agent token: the config service runs before, and without, the
  // registry) is not held against the caller.
  if (req->yaml_document().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "yaml_document: empty");
  }
  if (req->yaml_document().size() > kMaxDocumentBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("yaml_document: ", req->yaml_document().size(),
                                     " bytes, over the 1 MiB limit"));
  }
  if (req->name().size() > 1024) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name: longer than 1024 bytes");
  }
  std::string name = req->name().empty() ? "<submitted>" : req->name();
  std::vector<config::Issue> issues = config::ValidateDocument(req->yaml_document(), name);
  for (const auto& i : issues) FillIssue(i, resp->add_issues());
  resp->set_valid(issues.empty());
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<pb::ConfigEvent>* ConfigServiceImpl::WatchConfig(
    grpc::CallbackServerContext* ctx, const pb::WatchConfigRequest* req) {
  using Writer = HubWriter<ConfigEvent, pb::ConfigEvent>;
  grpc::Status s = CheckPrefix(req->key_prefix());
  // Open rpc: any credential, or none (see GetConfig); but the per-caller
  // stream limit of the interceptor applies.
  if (auto caller = auth::Caller(ctx);
      !caller.ok() && caller.status().code() == absl::StatusCode::kResourceExhausted) {
    s = ToGrpcStatus(caller.status());
  }
  if (!s.ok()) return FailedWriter<pb::ConfigEvent>(s);
  std::string prefix = req->key_prefix();
  bool send_initial = req->send_initial();
  ConfigCore* core = core_;
  Writer::Options options;
  auto first_sequence = std::make_shared<int64_t>(0);
  options.convert = [prefix, core, first_sequence](const ConfigEvent& ev,
                                                   pb::ConfigEvent* out) {
    if (ev.sequence <= *first_sequence) return false;  // already in the initial event
    ConfigEvent filtered = ev;
    filtered.changes.clear();
    for (const auto& c : ev.changes) {
      if (MatchesPrefix(c.key, prefix)) filtered.changes.push_back(c);
    }
    if (filtered.changes.empty() && filtered.issues.empty()) return false;
    FillEvent(filtered, ev.sequence, out);
    return true;
  };
  return Writer::Start(core_->hub(), std::move(options),
                       [core, prefix, send_initial, first_sequence] {
                         std::vector<pb::ConfigEvent> initial;
                         *first_sequence = core->last_sequence();
                         if (!send_initial) return initial;
                         pb::ConfigEvent ev;
                         ev.set_sequence(*first_sequence);
                         ev.set_cause(pb::CONFIG_EVENT_CAUSE_INITIAL);
                         ev.set_applied(true);
                         ev.set_revision(*first_sequence);
                         *ev.mutable_time() = TimeUtil::GetCurrentTime();
                         for (const auto& e : core->current()->entries()) {
                           if (!MatchesPrefix(e.spec->key, prefix)) continue;
                           ValueChange c{std::string(e.spec->key), "", e.rendered,
                                         config::Source{}, e.source};
                           FillChange(c, ev.add_changes());
                         }
                         initial.push_back(std::move(ev));
                         return initial;
                       });
}

grpc::Status ConfigServiceImpl::SetOverride(grpc::ServerContext* ctx,
                                            const pb::SetOverrideRequest* req,
                                            pb::SetOverrideResponse* resp) {
  if (auto caller = auth::RequireAdmin(ctx); !caller.ok()) return ToGrpcStatus(caller.status());
  if (req->value().size() > kMaxValueBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("value: over the 64 KiB limit for key \"", req->key(), "\""));
  }
  if (config::FindKey(req->key()) != nullptr) {
    FillValue(core_->current()->entry(req->key()), resp->mutable_previous());
  }
  absl::StatusOr<config::Config::Entry> entry = core_->SetOverride(req->key(), req->value());
  if (!entry.ok()) return ToGrpcStatus(entry.status());
  FillValue(*entry, resp->mutable_value());
  return grpc::Status::OK;
}

grpc::Status ConfigServiceImpl::DeleteOverride(grpc::ServerContext* ctx,
                                               const pb::DeleteOverrideRequest* req,
                                               pb::DeleteOverrideResponse* resp) {
  if (auto caller = auth::RequireAdmin(ctx); !caller.ok()) return ToGrpcStatus(caller.status());
  if (config::FindKey(req->key()) == nullptr) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("key \"", req->key(), "\": unknown key"));
  }
  absl::Status s = core_->DeleteOverride(req->key());
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return ToGrpcStatus(s);
  resp->set_existed(s.ok());
  FillValue(core_->current()->entry(req->key()), resp->mutable_value());
  return grpc::Status::OK;
}

grpc::Status ConfigServiceImpl::ListOverrides(grpc::ServerContext* ctx,
                                              const pb::ListOverridesRequest* req,
                                              pb::ListOverridesResponse* resp) {
  // Open rpc: no credential needed, and one this service cannot verify (an
  // agent token: the config service runs before, and without, the
  // registry) is not held against the caller.
  if (req->page_size() < 0 || req->page_size() > 1000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("page_size: ", req->page_size(), " is outside 0..1000"));
  }
  // The page token is the last key of the previous page.
  const std::string& after = req->page_token();
  if (!after.empty() && config::FindKey(after) == nullptr) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: not a token of this rpc");
  }
  absl::StatusOr<std::map<std::string, std::string>> all = core_->ListOverrides();
  if (!all.ok()) return ToGrpcStatus(all.status());
  int limit = req->page_size() == 0 ? 100 : req->page_size();
  for (auto it = all->upper_bound(after); it != all->end(); ++it) {
    if (resp->overrides_size() == limit) {
      resp->set_next_page_token(resp->overrides(limit - 1).key());
      break;
    }
    pb::ConfigOverride* o = resp->add_overrides();
    o->set_key(it->first);
    const config::KeySpec* spec = config::FindKey(it->first);
    bool secret = spec != nullptr && spec->secret;
    o->set_value(secret ? "" : it->second);
    o->set_redacted(secret && !it->second.empty());
  }
  return grpc::Status::OK;
}

grpc::Status ConfigServiceImpl::Reload(grpc::ServerContext* ctx,
                                       const pb::ReloadConfigRequest*,
                                       pb::ReloadConfigResponse* resp) {
  if (auto caller = auth::RequireAdmin(ctx); !caller.ok()) return ToGrpcStatus(caller.status());
  ConfigEvent ev = core_->Reload(ChangeCause::kRequestedReload);
  resp->set_applied(ev.issues.empty());
  resp->set_revision(core_->last_sequence());
  for (const auto& c : ev.changes) FillChange(c, resp->add_changes());
  for (const auto& i : ev.issues) FillIssue(i, resp->add_issues());
  return grpc::Status::OK;
}

}  // namespace cnet::configsvc
