// What the loader must know about the built-in actions to validate a skill:
// their names, arguments (type, required) and output fields, and whether
// the configuration enables them. Implementations live in actions.h.
#ifndef CNET_SERVICES_SKILLS_ACTION_SPEC_H_
#define CNET_SERVICES_SKILLS_ACTION_SPEC_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/skills/value.h"

namespace cnet::skills {

struct ArgSpec {
  std::string name;
  ValueType type = ValueType::kAny;
  bool required = false;
  // A string holding a duration such as "500ms", "10s", "2m".
  bool duration = false;
  std::string description;
};

struct ActionSpec {
  std::string name;         // e.g. "messaging.send"
  std::string description;  // one line, for docs and GetSkill
  std::vector<ArgSpec> args;
  // Top-level fields of the output map (references to others are errors).
  std::vector<std::string> outputs;
  // False when configuration disables it (e.g. shell without an allow-list).
  bool enabled = true;
  std::string disabled_reason;
  // Checked by RunSkill on the arguments written as literals (no template),
  // e.g. a shell command that is not allow-listed; null = nothing to check.
  std::function<absl::Status(const Json& literal_args)> check_literal_args;

  const ArgSpec* FindArg(const std::string& arg) const {
    for (const ArgSpec& a : args) {
      if (a.name == arg) return &a;
    }
    return nullptr;
  }
  bool HasOutput(const std::string& field) const {
    for (const std::string& o : outputs) {
      if (o == field) return true;
    }
    return false;
  }
};

class ActionCatalog {
 public:
  void Add(ActionSpec spec) {
    std::string name = spec.name;
    specs_[name] = std::move(spec);
  }
  const ActionSpec* Find(const std::string& name) const {
    auto it = specs_.find(name);
    return it == specs_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    for (const auto& [n, s] : specs_) names.push_back(n);
    return names;
  }
  const std::map<std::string, ActionSpec>& specs() const { return specs_; }

 private:
  std::map<std::string, ActionSpec> specs_;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_ACTION_SPEC_H_
