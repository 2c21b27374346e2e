#include "services/skills/skills_service.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/auth.h"
#include "libs/crypto/crypto.h"
#include "libs/status/grpc_status.h"
#include "libs/stream/hub_writer.h"
#include "proto/claudenet/v1/common.pb.h"
#include "services/skills/json_proto.h"

namespace cnet::skills {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultPage = 100;
constexpr int kMaxPage = 1000;

// --- errors ------------------------------------------------------------------

// The grpc status for `s`, with ErrorDetail (reason, resource, retry delay)
// in the `claudenet-error-bin` trailer and, for RESOURCE_EXHAUSTED,
// `claudenet-retry-after-ms`.
grpc::Status Fail(grpc::ServerContextBase* ctx, const absl::Status& s,
                  const std::string& resource_type = "", const std::string& resource_id = "") {
  pb::ErrorDetail detail;
  if (auto reason = s.GetPayload(kReasonPayload)) detail.set_reason(std::string(*reason));
  int64_t retry_ms = -1;
  if (auto retry = s.GetPayload(kRetryAfterPayload)) {
    if (!absl::SimpleAtoi(std::string(*retry), &retry_ms)) retry_ms = -1;
  }
  if (s.code() == absl::StatusCode::kResourceExhausted && retry_ms < 0) retry_ms = 1000;
  if (retry_ms >= 0) {
    *detail.mutable_retry_delay() = TimeUtil::MillisecondsToDuration(retry_ms);
    ctx->AddTrailingMetadata("claudenet-retry-after-ms", std::to_string(retry_ms));
  }
  detail.set_resource_type(resource_type);
  detail.set_resource_id(resource_id);
  if (s.code() == absl::StatusCode::kInvalidArgument) {
    auto* v = detail.add_field_violations();
    std::string msg(s.message());
    size_t colon = msg.find(": ");
    v->set_field(colon == std::string::npos ? "" : msg.substr(0, colon));
    v->set_description(colon == std::string::npos ? msg : msg.substr(colon + 2));
  }
  ctx->AddTrailingMetadata("claudenet-error-bin", detail.SerializeAsString());
  return ToGrpcStatus(s);
}

grpc::Status Invalid(grpc::ServerContextBase* ctx, const std::string& message) {
  return Fail(ctx, absl::InvalidArgumentError(message));
}

absl::StatusOr<int> PageSize(int32_t page_size) {
  if (page_size < 0 || page_size > kMaxPage) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be 0..", kMaxPage, ", got ", page_size));
  }
  return page_size == 0 ? kDefaultPage : page_size;
}

// Opaque cursor: base64url of {"h": hash of the filters, "k": last key}.
std::string MakeToken(const std::string& filter_hash, const Json& key) {
  std::string text = Dump(Json{{"h", filter_hash}, {"k", key}});
  return absl::WebSafeBase64Escape(text);
}

absl::StatusOr<Json> ReadToken(const std::string& token, const std::string& filter_hash) {
  if (token.empty()) return Json();
  std::string text;
  Json j;
  if (!absl::WebSafeBase64Unescape(token, &text) ||
      (j = Json::parse(text, nullptr, false)).is_discarded() || !j.is_object() ||
      !j.contains("h") || !j.contains("k")) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  if (j["h"] != filter_hash) {
    return absl::InvalidArgumentError("page_token: issued for a request with other filters");
  }
  return j["k"];
}

std::string Hash(const std::string& text) { return crypto::Sha256Hex(text).substr(0, 16); }

// --- conversions ---------------------------------------------------------------

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return ts;
  int64_t us = absl::ToUnixMicros(t);
  return TimeUtil::MicrosecondsToTimestamp(us);
}

google::protobuf::Duration Dur(absl::Duration d) {
  return TimeUtil::MicrosecondsToDuration(absl::ToInt64Microseconds(d));
}

absl::Duration FromDur(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Time FromTs(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

pb::SkillValueType TypeProto(ValueType t) {
  switch (t) {
    case ValueType::kString: return pb::SKILL_VALUE_TYPE_STRING;
    case ValueType::kInt: return pb::SKILL_VALUE_TYPE_INT;
    case ValueType::kFloat: return pb::SKILL_VALUE_TYPE_FLOAT;
    case ValueType::kBool: return pb::SKILL_VALUE_TYPE_BOOL;
    case ValueType::kList: return pb::SKILL_VALUE_TYPE_LIST;
    case ValueType::kMap: return pb::SKILL_VALUE_TYPE_MAP;
    case ValueType::kAny: return pb::SKILL_VALUE_TYPE_UNSPECIFIED;
  }
  return pb::SKILL_VALUE_TYPE_UNSPECIFIED;
}

void StepProto(const Step& s, const LoadedSkill* owner, const Library* lib, pb::SkillStep* out) {
  out->set_id(s.id);
  out->set_description(s.description);
  out->set_line(s.pos.line);
  out->set_column(s.pos.column);
  out->set_when(s.when_text);
  if (s.timeout) *out->mutable_timeout() = Dur(*s.timeout);
  if (s.retry.max_attempts > 1) {
    pb::RetryPolicy* r = out->mutable_retry();
    r->set_max_attempts(s.retry.max_attempts);
    *r->mutable_initial_backoff() = Dur(s.retry.initial_backoff);
    r->set_multiplier(s.retry.multiplier);
    *r->mutable_max_backoff() = Dur(s.retry.max_backoff);
  }
  out->set_on_error(s.on_error == OnError::kContinue ? pb::ON_ERROR_CONTINUE : pb::ON_ERROR_FAIL);
  switch (s.kind) {
    case StepKind::kAction:
      out->mutable_action()->set_action(s.action);
      ToProtoStruct(s.args.source(), out->mutable_action()->mutable_args());
      break;
    case StepKind::kSkill:
      out->mutable_skill()->set_skill(s.skill);
      out->mutable_skill()->set_version_range(s.version_text);
      ToProtoStruct(s.skill_inputs.source(), out->mutable_skill()->mutable_inputs());
      break;
    case StepKind::kParallel:
      for (const Step& c : s.children) StepProto(c, owner, lib, out->mutable_parallel()->add_steps());
      break;
    case StepKind::kSequence:
      for (const Step& c : s.children) StepProto(c, owner, lib, out->mutable_sequence()->add_steps());
      break;
  }
}

void DefinitionProto(const SkillDef& d, pb::SkillDefinition* out) {
  out->set_name(d.name);
  out->set_version(d.version_text);
  out->set_description(d.description);
  out->set_category(d.category);
  for (const InputDef& in : d.inputs) {
    pb::SkillInput* i = out->add_inputs();
    i->set_name(in.name);
    i->set_type(TypeProto(in.type));
    i->set_required(in.required);
    if (in.has_default) ToProtoValue(in.default_value, i->mutable_default_value());
    i->set_description(in.description);
    for (const Json& a : in.allowed) ToProtoValue(a, i->add_allowed_values());
  }
  for (const std::string& c : d.capabilities) out->add_required_capabilities(c);
  for (const OutputDef& o : d.outputs) {
    pb::SkillOutput* p = out->add_outputs();
    p->set_name(o.name);
    p->set_type(TypeProto(o.type));
    p->set_description(o.description);
    p->set_value(o.value_text);
  }
  for (const Step& s : d.steps) StepProto(s, nullptr, nullptr, out->add_steps());
  for (const std::string& t : d.tags) out->add_tags(t);
}

void IssueProto(const Issue& i, pb::ValidationIssue* out) {
  out->set_file(i.file);
  out->set_line(i.line);
  out->set_column(i.column);
  out->set_severity(i.severity == Severity::kWarning ? pb::SEVERITY_WARNING : pb::SEVERITY_ERROR);
  out->set_code(static_cast<pb::IssueCode>(static_cast<int>(i.code)));
  out->set_reason(i.reason);
  out->set_path(i.path);
}

void SkillProto(const LoadedSkill& s, pb::Skill* out) {
  if (s.parsed->has_definition || !s.def().name.empty()) {
    DefinitionProto(s.def(), out->mutable_definition());
  }
  out->set_file(s.file());
  out->set_source_yaml(s.parsed->source);
  out->set_valid(s.valid);
  for (const Issue& i : s.issues) IssueProto(i, out->add_issues());
  out->set_source_sha256(s.parsed->sha256);
  *out->mutable_loaded_at() = Ts(s.loaded_at);
  *out->mutable_modified_at() = Ts(s.parsed->modified_at);
  for (const std::string& c : s.composes) out->add_composes(c);
}

void ErrorProto(const std::optional<RunError>& e, pb::RunError* out) {
  out->set_code(e->code);
  out->set_message(e->message);
  out->set_step_path(e->step_path);
}

void StepRecordProto(const StepRecord& r, pb::StepRecord* out) {
  out->set_step_id(r.step_id);
  out->set_path(r.path);
  out->set_kind(static_cast<pb::StepKind>(static_cast<int>(r.kind)));
  out->set_target(r.target);
  out->set_state(static_cast<pb::StepState>(static_cast<int>(r.state)));
  out->set_attempts(r.attempts);
  if (r.started_at != absl::InfinitePast()) *out->mutable_started_at() = Ts(r.started_at);
  if (r.finished_at != absl::InfinitePast()) {
    *out->mutable_finished_at() = Ts(r.finished_at);
    if (r.started_at != absl::InfinitePast()) {
      *out->mutable_duration() = Dur(r.finished_at - r.started_at);
    }
  }
  if (r.resolved_args.is_object()) ToProtoStruct(r.resolved_args, out->mutable_resolved_args());
  if (!r.output.is_null()) ToProtoValue(r.output, out->mutable_output());
  out->set_truncated(r.truncated);
  if (r.error) ErrorProto(r.error, out->mutable_error());
  out->set_skip_reason(r.skip_reason);
  for (const StepRecord& c : r.children) StepRecordProto(c, out->add_children());
}

void PrincipalProto(const CallerInfo& c, pb::Principal* out) {
  out->set_kind(static_cast<pb::PrincipalKind>(c.kind));
  out->set_id(c.id);
  out->set_on_behalf_of(c.on_behalf_of);
}

void RunProto(const RunRecord& r, bool with_steps, pb::SkillRun* out) {
  out->set_run_id(r.run_id);
  out->set_skill_name(r.skill_name);
  out->set_skill_version(r.skill_version);
  out->set_state(static_cast<pb::RunState>(static_cast<int>(r.state)));
  out->set_mode(r.mode == RunMode::kAsync ? pb::RUN_MODE_ASYNC : pb::RUN_MODE_SYNC);
  ToProtoStruct(r.inputs, out->mutable_inputs());
  ToProtoStruct(r.outputs, out->mutable_outputs());
  if (r.error) ErrorProto(r.error, out->mutable_error());
  PrincipalProto(r.caller, out->mutable_caller());
  *out->mutable_created_at() = Ts(r.created_at);
  if (r.started_at != absl::InfinitePast()) *out->mutable_started_at() = Ts(r.started_at);
  if (r.finished_at != absl::InfinitePast()) {
    *out->mutable_finished_at() = Ts(r.finished_at);
    *out->mutable_duration() = Dur(r.finished_at - r.started_at);
  }
  *out->mutable_timeout() = Dur(r.timeout);
  if (with_steps) {
    for (const StepRecord& s : r.steps) StepRecordProto(s, out->add_steps());
  }
  out->set_event_count(r.event_count);
  out->set_idempotency_key(r.idempotency_key);
}

bool EventProto(const RunEvent& e, pb::RunEvent* out) {
  out->set_run_id(e.run_id);
  out->set_sequence(e.sequence);
  out->set_type(static_cast<pb::RunEventType>(static_cast<int>(e.type)));
  *out->mutable_time() = Ts(e.time);
  out->set_step_id(e.step_id);
  out->set_step_path(e.step_path);
  out->set_attempt(e.attempt);
  if (e.has_output) ToProtoValue(e.output, out->mutable_output());
  if (e.error) ErrorProto(e.error, out->mutable_error());
  if (e.type == EventType::kRunFinished) {
    out->set_run_state(static_cast<pb::RunState>(static_cast<int>(e.run_state)));
  }
  if (e.retry_in) *out->mutable_retry_in() = Dur(*e.retry_in);
  if (e.started_at != absl::InfinitePast()) *out->mutable_started_at() = Ts(e.started_at);
  if (e.duration) *out->mutable_duration() = Dur(*e.duration);
  out->set_message(e.message);
  return true;
}

void DurationStatsProto(const DurationSummary& d, pb::DurationStats* out) {
  out->set_count(d.count);
  if (d.count == 0) return;
  *out->mutable_mean() = Dur(d.mean);
  *out->mutable_p50() = Dur(d.p50);
  *out->mutable_p95() = Dur(d.p95);
  *out->mutable_p99() = Dur(d.p99);
  *out->mutable_max() = Dur(d.max);
}

void StatsProto(const SkillStats& s, pb::SkillStats* out) {
  out->set_skill_name(s.skill_name);
  out->set_runs(s.runs);
  out->set_succeeded(s.succeeded);
  out->set_failed(s.failed);
  out->set_cancelled(s.cancelled);
  out->set_success_rate(s.success_rate);
  DurationStatsProto(s.duration, out->mutable_duration());
  DurationStatsProto(s.step_overhead, out->mutable_step_overhead());
  out->set_in_flight(s.in_flight);
  if (s.last_run_at != absl::InfinitePast()) *out->mutable_last_run_at() = Ts(s.last_run_at);
}

CallerInfo CallerOf(const auth::Principal& p) {
  CallerInfo c;
  switch (p.kind) {
    case auth::Kind::kAgent: c.kind = pb::PRINCIPAL_KIND_AGENT; break;
    case auth::Kind::kService: c.kind = pb::PRINCIPAL_KIND_SERVICE; break;
    case auth::Kind::kAdmin: c.kind = pb::PRINCIPAL_KIND_ADMIN; break;
    case auth::Kind::kAnonymous: c.kind = pb::PRINCIPAL_KIND_ANONYMOUS; break;
  }
  c.id = p.id;
  if (p.kind == auth::Kind::kService) c.on_behalf_of = p.on_behalf_of;
  return c;
}

bool ValidCategoryPrefix(const std::string& s) {
  if (s.size() > 256 || (!s.empty() && (s[0] == '/' || s.back() == '/'))) return false;
  if (s.find("..") != std::string::npos) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '/' ||
          c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

grpc::Status SkillServiceImpl::ListSkills(grpc::ServerContext* ctx,
                                          const pb::ListSkillsRequest* req,
                                          pb::ListSkillsResponse* resp) {
  if (auto caller = auth::RequireAuthenticated(ctx); !caller.ok()) {
    return Fail(ctx, caller.status());
  }
  auto page = PageSize(req->page_size());
  if (!page.ok()) return Fail(ctx, page.status());
  if (!ValidCategoryPrefix(req->category_prefix())) {
    return Invalid(ctx, absl::StrCat("category_prefix: \"", req->category_prefix(),
                                     "\" is not a category path such as core/data"));
  }
  if (req->name_prefix().size() > 64) return Invalid(ctx, "name_prefix: longer than 64 bytes");
  if (req->capability().size() > 64) return Invalid(ctx, "capability: longer than 64 bytes");
  std::string filters = Hash(absl::StrCat(req->category_prefix(), "\n", req->name_prefix(), "\n",
                                          req->capability(), "\n", req->include_invalid(), "\n",
                                          req->latest_only()));
  auto after = ReadToken(req->page_token(), filters);
  if (!after.ok()) return Fail(ctx, after.status());

  auto lib = library_->Current();
  using Key = std::tuple<std::string, std::string, Semver, std::string>;
  std::vector<std::pair<Key, std::shared_ptr<const LoadedSkill>>> rows;
  for (const auto& f : lib->files()) {
    if (!f->valid && !req->include_invalid()) continue;
    const SkillDef& d = f->def();
    const std::string& cat = d.category;
    if (!req->category_prefix().empty() && cat != req->category_prefix() &&
        cat.rfind(req->category_prefix() + "/", 0) != 0) {
      continue;
    }
    if (d.name.rfind(req->name_prefix(), 0) != 0) continue;
    if (!req->capability().empty() &&
        std::find(d.capabilities.begin(), d.capabilities.end(), req->capability()) ==
            d.capabilities.end()) {
      continue;
    }
    if (req->latest_only() && f->valid && lib->Find(d.name) != f) continue;
    rows.emplace_back(Key{cat, d.name, d.version, f->file()}, f);
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  resp->set_total_size(static_cast<int64_t>(rows.size()));
  resp->set_invalid_files(lib->invalid_count());
  size_t start = 0;
  if (!after->is_null()) {
    Key last{(*after)[0], (*after)[1], Semver{}, (*after)[3]};
    Semver::Parse((*after)[2].get<std::string>(), &std::get<2>(last));
    while (start < rows.size() && !(last < rows[start].first)) ++start;
  }
  size_t end = std::min(rows.size(), start + static_cast<size_t>(*page));
  for (size_t i = start; i < end; ++i) {
    const auto& f = rows[i].second;
    pb::SkillSummary* s = resp->add_skills();
    s->set_name(f->def().name);
    s->set_version(f->def().version_text);
    s->set_description(f->def().description);
    s->set_category(f->def().category);
    s->set_file(f->file());
    s->set_valid(f->valid);
    s->set_error_count(f->error_count());
    for (const std::string& c : f->def().capabilities) s->add_required_capabilities(c);
    for (const std::string& t : f->def().tags) s->add_tags(t);
  }
  if (end < rows.size()) {
    const Key& k = rows[end - 1].first;
    resp->set_next_page_token(MakeToken(
        filters, Json::array({std::get<0>(k), std::get<1>(k), std::get<2>(k).ToString(),
                              std::get<3>(k)})));
  }
  return grpc::Status::OK;
}

grpc::Status SkillServiceImpl::GetSkill(grpc::ServerContext* ctx, const pb::GetSkillRequest* req,
                                        pb::GetSkillResponse* resp) {
  if (auto caller = auth::RequireAuthenticated(ctx); !caller.ok()) {
    return Fail(ctx, caller.status());
  }
  auto lib = library_->Current();
  if (!req->file().empty()) {
    auto f = lib->FindFile(req->file());
    if (f == nullptr) {
      return Fail(ctx, absl::NotFoundError(absl::StrCat("file \"", req->file(),
                                                         "\" is not in the skill library")),
                  "skill", req->file());
    }
    SkillProto(*f, resp->mutable_skill());
    return grpc::Status::OK;
  }
  if (req->name().empty()) return Invalid(ctx, "name: required (or give file)");
  Semver version;
  if (!req->version().empty() && !Semver::Parse(req->version(), &version)) {
    return Invalid(ctx, absl::StrCat("version: \"", req->version(),
                                     "\" is not a version MAJOR.MINOR.PATCH"));
  }
  std::shared_ptr<const LoadedSkill> found =
      req->version().empty() ? lib->Find(req->name()) : lib->FindExact(req->name(), version);
  if (found == nullptr) {
    // No valid one: the invalid file declaring it, highest version first.
    for (const auto& f : lib->AllVersions(req->name())) {
      if (!req->version().empty() && f->def().version != version) continue;
      if (found == nullptr || found->def().version < f->def().version) found = f;
    }
  }
  if (found == nullptr) {
    std::string what = req->version().empty() ? req->name() : req->name() + "@" + req->version();
    return Fail(ctx, absl::NotFoundError(absl::StrCat("skill \"", what, "\" not found")), "skill",
                what);
  }
  SkillProto(*found, resp->mutable_skill());
  return grpc::Status::OK;
}

grpc::Status SkillServiceImpl::ValidateSkill(grpc::ServerContext* ctx,
                                             const pb::ValidateSkillRequest* req,
                                             pb::ValidateSkillResponse* resp) {
  if (auto caller = auth::RequireAuthenticated(ctx); !caller.ok()) {
    return Fail(ctx, caller.status());
  }
  if (req->yaml_document().empty()) return Invalid(ctx, "yaml_document: empty");
  if (req->yaml_document().size() > kMaxDocumentBytes) {
    return Invalid(ctx, absl::StrCat("yaml_document: ", req->yaml_document().size(),
                                     " bytes; the limit is 1 MiB"));
  }
  if (req->file_name().size() > 1024) return Invalid(ctx, "file_name: longer than 1024 bytes");
  std::string name = req->file_name().empty() ? "<input>" : req->file_name();
  ValidationResult result = library_->Validate(req->yaml_document(), name, req->check_library());
  resp->set_valid(result.valid);
  for (const Issue& i : result.issues) IssueProto(i, resp->add_issues());
  if (result.parsed->has_definition || !result.parsed->def.name.empty()) {
    DefinitionProto(result.parsed->def, resp->mutable_definition());
  }
  return grpc::Status::OK;
}

grpc::Status SkillServiceImpl::Reload(grpc::ServerContext* ctx, const pb::ReloadSkillsRequest*,
                                      pb::ReloadSkillsResponse* resp) {
  if (auto caller = auth::RequireAdmin(ctx); !caller.ok()) return Fail(ctx, caller.status());
  auto report = library_->Reload();
  if (!report.ok()) return Fail(ctx, report.status());
  resp->set_loaded(report->loaded);
  resp->set_invalid(report->invalid);
  for (const auto& s : report->added) resp->add_added(s);
  for (const auto& s : report->removed) resp->add_removed(s);
  for (const auto& s : report->changed) resp->add_changed(s);
  for (const Issue& i : report->issues) IssueProto(i, resp->add_issues());
  *resp->mutable_duration() = Dur(report->duration);
  return grpc::Status::OK;
}

namespace {

// One RunSkill call. SYNC answers when the run is committed finished;
// ASYNC when it is committed accepted. A SYNC run is bound to the call: if
// the client goes away (or its deadline passes), the run is cancelled.
class RunReactor final : public grpc::ServerUnaryReactor {
 public:
  RunReactor(Engine* engine, grpc::CallbackServerContext* ctx, pb::RunSkillResponse* resp,
             bool sync)
      : engine_(engine), ctx_(ctx), resp_(resp), sync_(sync) {}

  void Begin(const RunRequest& req) {
    auto self = this;
    Engine::Accepted accepted = nullptr;
    Engine::Finished finished = nullptr;
    auto answer = [self](absl::Status durable, const RunRecord& rec) {
      if (!durable.ok()) {
        self->Answer(Fail(self->ctx_,
                          absl::UnavailableError(absl::StrCat(
                              "run ", rec.run_id, " could not be recorded: ", durable.message())),
                          "run", rec.run_id));
        return;
      }
      RunProto(rec, true, self->resp_->mutable_run());
      self->Answer(grpc::Status::OK);
    };
    if (sync_) {
      finished = answer;
    } else {
      accepted = answer;
    }
    auto started = engine_->Start(req, accepted, finished);
    if (!started.ok()) {
      Answer(Fail(ctx_, started.status(), "skill", req.skill_name));
      return;
    }
    bool abandon = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      run_id_ = started->run_id;
      abandon = cancelled_ && sync_;
    }
    if (abandon) engine_->Abandon(run_id_, "RunSkill call cancelled by the client");
  }

  void OnCancel() override {
    std::string run_id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      run_id = run_id_;
    }
    if (sync_ && !run_id.empty()) {
      engine_->Abandon(run_id, "RunSkill call cancelled by the client (or its deadline passed)");
    }
  }

  void OnDone() override { delete this; }

 private:
  void Answer(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (answered_) return;
      answered_ = true;
    }
    Finish(status);
  }

  Engine* engine_;
  grpc::CallbackServerContext* ctx_;
  pb::RunSkillResponse* resp_;
  const bool sync_;
  std::mutex mu_;
  std::string run_id_;
  bool cancelled_ = false;
  bool answered_ = false;
};

}  // namespace

grpc::ServerUnaryReactor* SkillServiceImpl::RunSkill(grpc::CallbackServerContext* ctx,
                                                     const pb::RunSkillRequest* req,
                                                     pb::RunSkillResponse* resp) {
  auto reject = [ctx](const grpc::Status& s) {
    auto* r = ctx->DefaultReactor();
    r->Finish(s);
    return r;
  };
  auto caller = auth::RequireAuthenticated(ctx);
  if (!caller.ok()) return reject(Fail(ctx, caller.status()));
  if (caller->acting_agent().empty()) {
    return reject(Fail(ctx, absl::PermissionDeniedError(
                                "RunSkill needs an agent token (or the service credential with "
                                "claudenet-on-behalf-of); runs act as an agent")));
  }
  if (req->name().empty()) return reject(Invalid(ctx, "name: required"));
  if (!pb::RunMode_IsValid(req->mode())) {
    return reject(Invalid(ctx, absl::StrCat("mode: unknown value ", req->mode())));
  }
  RunRequest run;
  run.skill_name = req->name();
  run.version = req->version();
  run.inputs = FromProtoStruct(req->inputs());
  run.mode = req->mode() == pb::RUN_MODE_ASYNC ? RunMode::kAsync : RunMode::kSync;
  if (req->has_timeout()) run.timeout = FromDur(req->timeout());
  run.idempotency_key = req->idempotency_key();
  run.caller = CallerOf(*caller);
  auto* reactor = new RunReactor(engine_, ctx, resp, run.mode == RunMode::kSync);
  reactor->Begin(run);
  return reactor;
}

grpc::ServerWriteReactor<pb::RunEvent>* SkillServiceImpl::WatchRun(
    grpc::CallbackServerContext* ctx, const pb::WatchRunRequest* req) {
  using Writer = HubWriter<RunEvent, pb::RunEvent>;
  if (auto caller = auth::RequireAuthenticated(ctx); !caller.ok()) {
    return FailedWriter<pb::RunEvent>(Fail(ctx, caller.status()));
  }
  if (req->run_id().empty()) return FailedWriter<pb::RunEvent>(Invalid(ctx, "run_id: required"));
  if (req->from_sequence() < 0) {
    return FailedWriter<pb::RunEvent>(
        Invalid(ctx, absl::StrCat("from_sequence: must be >= 0, got ", req->from_sequence())));
  }
  auto src = engine_->Watch(req->run_id());
  if (!src.ok()) return FailedWriter<pb::RunEvent>(Fail(ctx, src.status(), "run", req->run_id()));
  // Events published between subscribing and reading the backlog arrive
  // twice: the sequence number drops the second copy.
  auto last = std::make_shared<std::atomic<int64_t>>(req->from_sequence());
  Writer::Options options;
  options.queue_capacity = 4096;
  std::shared_ptr<EventHub<RunEvent>> hub = src->hub;  // kept alive by the writer
  options.convert = [hub, last](const RunEvent& e, pb::RunEvent* out) {
    if (e.sequence <= last->load()) return false;
    last->store(e.sequence);
    return EventProto(e, out);
  };
  options.overflow_status =
      grpc::Status(grpc::StatusCode::ABORTED,
                   "watcher fell too far behind; watch again with from_sequence = the last "
                   "sequence received");
  auto backlog = src->backlog;
  int64_t from = req->from_sequence();
  return Writer::Start(hub.get(), std::move(options), [backlog, from, last]() {
    std::vector<pb::RunEvent> out;
    for (const RunEvent& e : backlog(from)) {
      pb::RunEvent p;
      EventProto(e, &p);
      out.push_back(std::move(p));
      last->store(std::max(last->load(), e.sequence));
    }
    return out;
  });
}

grpc::Status SkillServiceImpl::CancelRun(grpc::ServerContext* ctx, const pb::CancelRunRequest* req,
                                         pb::CancelRunResponse* resp) {
  auto caller = auth::RequireAuthenticated(ctx);
  if (!caller.ok()) return Fail(ctx, caller.status());
  if (req->run_id().empty()) return Invalid(ctx, "run_id: required");
  bool admin = caller->kind == auth::Kind::kAdmin;
  if (!admin && caller->acting_agent().empty()) {
    return Fail(ctx, absl::PermissionDeniedError(
                         "CancelRun needs the token of the agent that started the run, or admin"));
  }
  auto run = engine_->Cancel(req->run_id(), CallerOf(*caller), admin, req->reason());
  if (!run.ok()) return Fail(ctx, run.status(), "run", req->run_id());
  RunProto(*run, true, resp->mutable_run());
  return grpc::Status::OK;
}

grpc::Status SkillServiceImpl::GetRun(grpc::ServerContext* ctx, const pb::GetRunRequest* req,
                                      pb::GetRunResponse* resp) {
  if (auto caller = auth::RequireAuthenticated(ctx); !caller.ok()) {
    return Fail(ctx, caller.status());
  }
  if (req->run_id().empty()) return Invalid(ctx, "run_id: required");
  auto run = engine_->GetRun(req->run_id(), !req->omit_steps());
  if (!run.ok()) return Fail(ctx, run.status(), "run", req->run_id());
  RunProto(*run, !req->omit_steps(), resp->mutable_run());
  return grpc::Status::OK;
}

grpc::Status SkillServiceImpl::ListRuns(grpc::ServerContext* ctx, const pb::ListRunsRequest* req,
                                        pb::ListRunsResponse* resp) {
  if (auto caller = auth::RequireAuthenticated(ctx); !caller.ok()) {
    return Fail(ctx, caller.status());
  }
  auto page = PageSize(req->page_size());
  if (!page.ok()) return Fail(ctx, page.status());
  Store::RunFilter filter;
  filter.skill_name = req->skill_name();
  filter.caller = req->caller();
  std::string states;
  for (int s : req->states()) {
    if (!pb::RunState_IsValid(s) || s == pb::RUN_STATE_UNSPECIFIED) {
      return Invalid(ctx, absl::StrCat("states: unknown run state ", s));
    }
    filter.states.push_back(static_cast<RunState>(s));
    absl::StrAppend(&states, s, ",");
  }
  if (req->has_started_after()) filter.created_after = FromTs(req->started_after());
  if (req->has_started_before()) filter.created_before = FromTs(req->started_before());
  if (req->has_started_after() && req->has_started_before() &&
      filter.created_after > filter.created_before) {
    return Invalid(ctx, "started_after: after started_before");
  }
  std::string hash = Hash(absl::StrCat(req->skill_name(), "\n", req->caller(), "\n", states, "\n",
                                       req->started_after().SerializeAsString(), "\n",
                                       req->started_before().SerializeAsString()));
  auto after = ReadToken(req->page_token(), hash);
  if (!after.ok()) return Fail(ctx, after.status());
  if (after->is_string()) filter.before_run_id = after->get<std::string>();
  filter.limit = *page + 1;
  auto runs = engine_->ListRuns(filter);
  if (!runs.ok()) return Fail(ctx, runs.status());
  size_t n = std::min(runs->size(), static_cast<size_t>(*page));
  for (size_t i = 0; i < n; ++i) RunProto((*runs)[i], false, resp->add_runs());
  if (runs->size() > n) resp->set_next_page_token(MakeToken(hash, (*runs)[n - 1].run_id));
  return grpc::Status::OK;
}

grpc::Status SkillServiceImpl::GetSkillStats(grpc::ServerContext* ctx,
                                             const pb::GetSkillStatsRequest* req,
                                             pb::GetSkillStatsResponse* resp) {
  if (auto caller = auth::RequireAuthenticated(ctx); !caller.ok()) {
    return Fail(ctx, caller.status());
  }
  auto page = PageSize(req->page_size());
  if (!page.ok()) return Fail(ctx, page.status());
  std::optional<absl::Duration> window;
  if (req->has_window()) {
    window = FromDur(req->window());
    if (*window < absl::Minutes(1) || *window > absl::Hours(24 * 365)) {
      return Invalid(ctx, absl::StrCat("window: must be 1m..365 days, got ",
                                       absl::FormatDuration(*window)));
    }
  }
  std::string hash = Hash(absl::StrCat(req->skill_name(), "\n", req->window().SerializeAsString()));
  auto after = ReadToken(req->page_token(), hash);
  if (!after.ok()) return Fail(ctx, after.status());
  SkillStats totals;
  auto stats = engine_->Stats(req->skill_name(), window, &totals);
  if (!stats.ok()) return Fail(ctx, stats.status(), "skill", req->skill_name());
  size_t start = 0;
  if (after->is_string()) {
    while (start < stats->size() && (*stats)[start].skill_name <= after->get<std::string>()) {
      ++start;
    }
  }
  size_t end = std::min(stats->size(), start + static_cast<size_t>(*page));
  for (size_t i = start; i < end; ++i) StatsProto((*stats)[i], resp->add_stats());
  if (end < stats->size()) {
    resp->set_next_page_token(MakeToken(hash, (*stats)[end - 1].skill_name));
  }
  StatsProto(totals, resp->mutable_totals());
  return grpc::Status::OK;
}

}  // namespace cnet::skills
