// The parsed model of a skill: what the loader builds from one YAML file
// and the engine runs. Plain data, immutable once loaded (runs in flight
// keep the definition they started with by holding a shared pointer to the
// library snapshot that owns it). The YAML format is documented in
// docs/skills.md.
#ifndef CNET_SERVICES_SKILLS_SKILL_H_
#define CNET_SERVICES_SKILLS_SKILL_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "services/skills/semver.h"
#include "services/skills/template.h"
#include "services/skills/value.h"

namespace cnet::skills {

// 1-based position in a YAML file (0 when unknown).
struct SourcePos {
  int line = 0;
  int column = 0;
};

// Mirrors IssueCode in skills.proto (same numbers).
enum class IssueCode {
  kYamlSyntax = 1,
  kSchema = 2,
  kWrongType = 3,
  kUnknownAction = 4,
  kUnknownReference = 5,
  kExpressionSyntax = 6,
  kDuplicateName = 7,
  kMissingSkill = 8,
  kCompositionCycle = 9,
  kVersionConflict = 10,
  kLimitExceeded = 11,
};

enum class Severity { kError = 1, kWarning = 2 };

struct Issue {
  std::string file;  // relative to the library root, or the submitted name
  int line = 0;
  int column = 0;
  Severity severity = Severity::kError;
  IssueCode code = IssueCode::kSchema;
  std::string reason;  // one line
  std::string path;    // within the document, e.g. "steps[2].args.to"

  // "file:line:column: reason" (warnings: "file:line:column: warning: reason").
  std::string ToString() const;
};

enum class StepKind { kAction = 1, kSkill = 2, kParallel = 3, kSequence = 4 };
enum class OnError { kFail = 1, kContinue = 2 };

struct RetryPolicy {
  int max_attempts = 1;  // 1..10
  absl::Duration initial_backoff = absl::Seconds(1);
  double multiplier = 2.0;  // 1..10
  absl::Duration max_backoff = absl::Seconds(60);

  // Wait before attempt `next_attempt` (2, 3, ...).
  absl::Duration BackoffBefore(int next_attempt) const;
};

struct Step {
  std::string id;
  StepKind kind = StepKind::kAction;
  SourcePos pos;
  std::string yaml_path;  // "steps[1].parallel[0]"
  std::string description;

  // kAction: the action and its (templated) arguments.
  std::string action;
  CompiledValue args;

  // kSkill: the composed skill, the accepted versions and its inputs.
  std::string skill;
  std::string version_text;  // as written; empty = any
  VersionRange version_range;
  CompiledValue skill_inputs;
  SourcePos skill_pos;                       // of the `skill:` value
  SourcePos version_pos;                     // of the `version:` value
  std::map<std::string, SourcePos> input_pos;  // of each key under `inputs:`

  // kParallel / kSequence.
  std::vector<Step> children;

  std::string when_text;
  Expression when;  // empty() = always
  std::optional<absl::Duration> timeout;
  RetryPolicy retry;
  OnError on_error = OnError::kFail;
};

struct InputDef {
  std::string name;
  ValueType type = ValueType::kString;
  bool required = false;
  bool has_default = false;
  Json default_value;
  std::string description;
  std::vector<Json> allowed;
  SourcePos pos;
};

struct OutputDef {
  std::string name;
  ValueType type = ValueType::kAny;
  std::string description;
  std::string value_text;
  Template value;
  SourcePos pos;
};

struct SkillDef {
  std::string name;
  std::string version_text;
  Semver version;
  std::string description;
  std::string category;
  std::vector<InputDef> inputs;
  std::vector<std::string> capabilities;
  std::vector<OutputDef> outputs;
  std::vector<Step> steps;
  std::vector<std::string> tags;
  SourcePos name_pos;
  SourcePos version_pos;

  std::string Key() const { return name + "@" + version.ToString(); }
  const InputDef* FindInput(const std::string& input) const {
    for (const InputDef& i : inputs) {
      if (i.name == input) return &i;
    }
    return nullptr;
  }
  const OutputDef* FindOutput(const std::string& output) const {
    for (const OutputDef& o : outputs) {
      if (o.name == output) return &o;
    }
    return nullptr;
  }
};

// Checks caller-given inputs against the declared ones and applies
// defaults: INVALID_ARGUMENT naming the input for a missing required input,
// an unknown input, a value of the wrong type or one not in `allowed`.
// `what` prefixes messages (e.g. `input` or `step "notify": input`).
absl::StatusOr<Json> CheckInputs(const SkillDef& def, const Json& given,
                                 const std::string& what);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_SKILL_H_
