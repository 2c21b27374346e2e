#include "services/skills/run.h"

#include "absl/strings/str_cat.h"

namespace cnet::skills {
namespace {

const char* const kCodeNames[] = {"OK",
                                  "CANCELLED",
                                  "UNKNOWN",
                                  "INVALID_ARGUMENT",
                                  "DEADLINE_EXCEEDED",
                                  "NOT_FOUND",
                                  "ALREADY_EXISTS",
                                  "PERMISSION_DENIED",
                                  "RESOURCE_EXHAUSTED",
                                  "FAILED_PRECONDITION",
                                  "ABORTED",
                                  "OUT_OF_RANGE",
                                  "UNIMPLEMENTED",
                                  "INTERNAL",
                                  "UNAVAILABLE",
                                  "DATA_LOSS",
                                  "UNAUTHENTICATED"};

std::string CodeName(absl::StatusCode code) {
  int c = static_cast<int>(code);
  if (c >= 0 && c < static_cast<int>(sizeof(kCodeNames) / sizeof(kCodeNames[0]))) {
    return kCodeNames[c];
  }
  return "UNKNOWN";
}

Json DurationJson(const std::optional<absl::Duration>& d) {
  return d ? Json(absl::ToInt64Microseconds(*d)) : Json(nullptr);
}
std::optional<absl::Duration> DurationFrom(const Json& j) {
  if (!j.is_number()) return std::nullopt;
  return absl::Microseconds(j.get<int64_t>());
}

}  // namespace

std::string RunStateName(RunState s) {
  switch (s) {
    case RunState::kQueued: return "QUEUED";
    case RunState::kRunning: return "RUNNING";
    case RunState::kSucceeded: return "SUCCEEDED";
    case RunState::kFailed: return "FAILED";
    case RunState::kCancelled: return "CANCELLED";
  }
  return "UNSPECIFIED";
}

std::string StepStateName(StepState s) {
  switch (s) {
    case StepState::kPending: return "PENDING";
    case StepState::kRunning: return "RUNNING";
    case StepState::kSucceeded: return "SUCCEEDED";
    case StepState::kFailed: return "FAILED";
    case StepState::kSkipped: return "SKIPPED";
    case StepState::kCancelled: return "CANCELLED";
  }
  return "UNSPECIFIED";
}

bool IsTerminal(RunState s) {
  return s == RunState::kSucceeded || s == RunState::kFailed || s == RunState::kCancelled;
}

RunError RunError::From(const absl::Status& status, std::string step_path) {
  RunError e;
  e.code = CodeName(status.code());
  e.message = std::string(status.message());
  e.step_path = std::move(step_path);
  return e;
}

absl::Status RunError::ToStatus() const {
  for (int c = 1; c < static_cast<int>(sizeof(kCodeNames) / sizeof(kCodeNames[0])); ++c) {
    if (code == kCodeNames[c]) return absl::Status(static_cast<absl::StatusCode>(c), message);
  }
  return absl::UnknownError(message);
}

int64_t ToMicros(absl::Time t) {
  if (t == absl::InfinitePast()) return 0;
  return absl::ToUnixMicros(t);
}

absl::Time FromMicros(int64_t us) {
  return us == 0 ? absl::InfinitePast() : absl::FromUnixMicros(us);
}

Json ErrorToJson(const std::optional<RunError>& e) {
  if (!e) return nullptr;
  return Json{{"code", e->code}, {"message", e->message}, {"step_path", e->step_path}};
}

std::optional<RunError> ErrorFromJson(const Json& j) {
  if (!j.is_object()) return std::nullopt;
  RunError e;
  e.code = j.value("code", "");
  e.message = j.value("message", "");
  e.step_path = j.value("step_path", "");
  return e;
}

Json StepsToJson(const std::vector<StepRecord>& steps) {
  Json out = Json::array();
  for (const StepRecord& s : steps) {
    out.push_back(Json{{"id", s.step_id},
                       {"path", s.path},
                       {"kind", static_cast<int>(s.kind)},
                       {"target", s.target},
                       {"state", static_cast<int>(s.state)},
                       {"attempts", s.attempts},
                       {"started_us", ToMicros(s.started_at)},
                       {"finished_us", ToMicros(s.finished_at)},
                       {"args", s.resolved_args},
                       {"output", s.output},
                       {"truncated", s.truncated},
                       {"error", ErrorToJson(s.error)},
                       {"skip_reason", s.skip_reason},
                       {"children", StepsToJson(s.children)}});
  }
  return out;
}

std::vector<StepRecord> StepsFromJson(const Json& j) {
  std::vector<StepRecord> out;
  if (!j.is_array()) return out;
  for (const Json& s : j) {
    StepRecord r;
    r.step_id = s.value("id", "");
    r.path = s.value("path", "");
    r.kind = static_cast<StepKind>(s.value("kind", 1));
    r.target = s.value("target", "");
    r.state = static_cast<StepState>(s.value("state", 1));
    r.attempts = s.value("attempts", 0);
    r.started_at = FromMicros(s.value("started_us", int64_t{0}));
    r.finished_at = FromMicros(s.value("finished_us", int64_t{0}));
    r.resolved_args = s.value("args", Json());
    r.output = s.value("output", Json());
    r.truncated = s.value("truncated", false);
    r.error = ErrorFromJson(s.value("error", Json()));
    r.skip_reason = s.value("skip_reason", "");
    r.children = StepsFromJson(s.value("children", Json::array()));
    out.push_back(std::move(r));
  }
  return out;
}

Json EventToJson(const RunEvent& e) {
  Json j{{"seq", e.sequence},
         {"type", static_cast<int>(e.type)},
         {"time_us", ToMicros(e.time)},
         {"step_id", e.step_id},
         {"step_path", e.step_path},
         {"attempt", e.attempt},
         {"run_state", static_cast<int>(e.run_state)},
         {"started_us", ToMicros(e.started_at)},
         {"retry_in_us", DurationJson(e.retry_in)},
         {"duration_us", DurationJson(e.duration)},
         {"message", e.message},
         {"error", ErrorToJson(e.error)}};
  if (e.has_output) j["output"] = e.output;
  return j;
}

RunEvent EventFromJson(const std::string& run_id, const Json& j) {
  RunEvent e;
  e.run_id = run_id;
  e.sequence = j.value("seq", int64_t{0});
  e.type = static_cast<EventType>(j.value("type", 1));
  e.time = FromMicros(j.value("time_us", int64_t{0}));
  e.step_id = j.value("step_id", "");
  e.step_path = j.value("step_path", "");
  e.attempt = j.value("attempt", 0);
  e.run_state = static_cast<RunState>(j.value("run_state", 1));
  e.started_at = FromMicros(j.value("started_us", int64_t{0}));
  e.retry_in = DurationFrom(j.value("retry_in_us", Json()));
  e.duration = DurationFrom(j.value("duration_us", Json()));
  e.message = j.value("message", "");
  e.error = ErrorFromJson(j.value("error", Json()));
  if (j.contains("output")) {
    e.has_output = true;
    e.output = j["output"];
  }
  return e;
}

Json CapValue(const Json& value, size_t cap, bool* truncated) {
  *truncated = false;
  if (value.is_null() || value.is_boolean() || value.is_number()) return value;
  std::string text = Dump(value);
  if (text.size() <= cap) return value;
  *truncated = true;
  size_t cut = cap;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return Json(text.substr(0, cut));
}

}  // namespace cnet::skills
