// The record of a skill run: its state, per-step records and event log, as
// the engine keeps them in memory and the store persists them. Plain data;
// numbers of the enums match skills.proto so the adapter converts 1:1.
#ifndef CNET_SERVICES_SKILLS_RUN_H_
#define CNET_SERVICES_SKILLS_RUN_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/skills/skill.h"
#include "services/skills/value.h"

namespace cnet::skills {

enum class RunState { kQueued = 1, kRunning = 2, kSucceeded = 3, kFailed = 4, kCancelled = 5 };
enum class StepState {
  kPending = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kSkipped = 5,
  kCancelled = 6
};
enum class RunMode { kSync = 1, kAsync = 2 };
enum class EventType {
  kRunStarted = 1,
  kStepStarted = 2,
  kStepOutput = 3,
  kStepRetried = 4,
  kStepFailed = 5,
  kStepSkipped = 6,
  kStepFinished = 7,
  kRunFinished = 8
};

std::string RunStateName(RunState s);    // "SUCCEEDED"
std::string StepStateName(StepState s);  // "SKIPPED"
bool IsTerminal(RunState s);

struct RunError {
  std::string code;  // gRPC code name, e.g. "DEADLINE_EXCEEDED"
  std::string message;
  std::string step_path;  // empty for run-level errors

  static RunError From(const absl::Status& status, std::string step_path = "");
  // The status this error describes (code by name; UNKNOWN if unknown).
  absl::Status ToStatus() const;
};

// Who started a run (mirrors claudenet.v1.Principal; kind is its number).
struct CallerInfo {
  int kind = 0;
  std::string id;
  std::string on_behalf_of;
  // The agent the run acts as.
  std::string agent() const { return on_behalf_of.empty() ? id : on_behalf_of; }
};

struct StepRecord {
  std::string step_id;
  std::string path;
  StepKind kind = StepKind::kAction;
  std::string target;  // action name, or composed skill name@version
  StepState state = StepState::kPending;
  int attempts = 0;
  absl::Time started_at = absl::InfinitePast();  // InfinitePast = unset
  absl::Time finished_at = absl::InfinitePast();
  Json resolved_args;  // null when not resolved
  Json output;         // null when none
  bool truncated = false;
  std::optional<RunError> error;
  std::string skip_reason;
  std::vector<StepRecord> children;
};

struct RunRecord {
  std::string run_id;
  std::string skill_name;
  std::string skill_version;
  RunState state = RunState::kQueued;
  RunMode mode = RunMode::kSync;
  Json inputs = Json::object();
  Json outputs = Json::object();
  std::optional<RunError> error;
  CallerInfo caller;
  absl::Time created_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  absl::Duration timeout = absl::ZeroDuration();
  std::vector<StepRecord> steps;
  int64_t event_count = 0;
  std::string idempotency_key;
  std::string request_hash;  // of (skill, version, inputs) for idempotency
};

struct RunEvent {
  std::string run_id;
  int64_t sequence = 0;
  EventType type = EventType::kRunStarted;
  absl::Time time = absl::InfinitePast();
  std::string step_id;
  std::string step_path;
  int attempt = 0;
  bool has_output = false;
  Json output;
  std::optional<RunError> error;
  RunState run_state = RunState::kQueued;
  std::optional<absl::Duration> retry_in;
  absl::Time started_at = absl::InfinitePast();
  std::optional<absl::Duration> duration;
  std::string message;
};

// JSON forms for the store (stable: they are what the database holds).
Json ErrorToJson(const std::optional<RunError>& e);
std::optional<RunError> ErrorFromJson(const Json& j);
Json StepsToJson(const std::vector<StepRecord>& steps);
std::vector<StepRecord> StepsFromJson(const Json& j);
Json EventToJson(const RunEvent& e);
RunEvent EventFromJson(const std::string& run_id, const Json& j);

// Microseconds since the epoch; 0 for InfinitePast.
int64_t ToMicros(absl::Time t);
absl::Time FromMicros(int64_t us);

// `value` cut to `cap` bytes of compact JSON: unchanged when it fits, else
// a string holding the first bytes of its JSON text (cut on a UTF-8
// boundary). *truncated tells which.
Json CapValue(const Json& value, size_t cap, bool* truncated);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_RUN_H_
