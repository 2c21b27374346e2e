#include "services/skills/skill.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cnet::skills {

std::string Issue::ToString() const {
  return absl::StrCat(file, ":", line, ":", column, ": ",
                      severity == Severity::kWarning ? "warning: " : "", reason);
}

absl::Duration RetryPolicy::BackoffBefore(int next_attempt) const {
  double factor = std::pow(multiplier, std::max(0, next_attempt - 2));
  absl::Duration d = initial_backoff * factor;
  return std::min(d, max_backoff);
}

absl::StatusOr<Json> CheckInputs(const SkillDef& def, const Json& given,
                                 const std::string& what) {
  if (!given.is_null() && !given.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, "s: expected a map of input names to values, got ", TypeOf(given)));
  }
  Json out = Json::object();
  if (given.is_object()) {
    for (auto it = given.begin(); it != given.end(); ++it) {
      if (def.FindInput(it.key()) == nullptr) {
        std::vector<std::string> names;
        for (const InputDef& i : def.inputs) names.push_back(i.name);
        return absl::InvalidArgumentError(absl::StrCat(
            what, " \"", it.key(), "\": not an input of skill \"", def.name, "\"",
            names.empty() ? " (it takes none)"
                          : absl::StrCat(" (inputs: ", absl::StrJoin(names, ", "), ")")));
      }
    }
  }
  for (const InputDef& in : def.inputs) {
    const Json* value = nullptr;
    if (given.is_object()) {
      auto it = given.find(in.name);
      if (it != given.end() && !it->is_null()) value = &*it;
    }
    if (value == nullptr) {
      if (in.required) {
        return absl::InvalidArgumentError(absl::StrCat(what, " \"", in.name, "\": required (",
                                                       TypeName(in.type), ") but not given"));
      }
      out[in.name] = in.has_default ? in.default_value : Json(nullptr);
      continue;
    }
    if (!Conforms(*value, in.type)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " \"", in.name, "\": expected ",
                                                     TypeName(in.type), ", got ",
                                                     TypeOf(*value), " ", Describe(*value)));
    }
    Json v = CoerceTo(*value, in.type);
    if (!in.allowed.empty() &&
        std::find(in.allowed.begin(), in.allowed.end(), v) == in.allowed.end()) {
      std::vector<std::string> shown;
      for (const Json& a : in.allowed) shown.push_back(Describe(a));
      return absl::InvalidArgumentError(absl::StrCat(what, " \"", in.name, "\": ", Describe(v),
                                                     " is not one of ",
                                                     absl::StrJoin(shown, ", ")));
    }
    out[in.name] = std::move(v);
  }
  return out;
}

}  // namespace cnet::skills
