// Typed reading of an action's rendered arguments, shared by the built-in
// actions. The first problem is kept and reported as INVALID_ARGUMENT
// naming the argument and the action.
#ifndef CNET_SERVICES_SKILLS_ACTION_ARGS_H_
#define CNET_SERVICES_SKILLS_ACTION_ARGS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "services/skills/value.h"

namespace cnet::skills {

class Args {
 public:
  Args(const Json& args, std::string action) : args_(args), action_(std::move(action)) {}

  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  const Json* Raw(const std::string& name) const {
    auto it = args_.find(name);
    return it == args_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string Str(const std::string& name, std::string def = "") {
    const Json* v = Raw(name);
    if (v == nullptr) return def;
    if (!v->is_string()) {
      Bad(name, "a string", *v);
      return def;
    }
    return v->get<std::string>();
  }
  std::string RequiredStr(const std::string& name) {
    std::string s = Str(name);
    if (ok() && s.empty()) Fail(absl::StrCat(Label(name), ": must not be empty"));
    return s;
  }
  int64_t Int(const std::string& name, int64_t def = 0) {
    const Json* v = Raw(name);
    if (v == nullptr) return def;
    if (!Conforms(*v, ValueType::kInt)) {
      Bad(name, "an int", *v);
      return def;
    }
    return v->get<int64_t>();
  }
  int64_t IntIn(const std::string& name, int64_t def, int64_t lo, int64_t hi) {
    int64_t v = Int(name, def);
    if (ok() && (v < lo || v > hi)) {
      Fail(absl::StrCat(Label(name), ": must be ", lo, "..", hi, ", got ", v));
    }
    return v;
  }
  double Num(const std::string& name, double def = 0) {
    const Json* v = Raw(name);
    if (v == nullptr) return def;
    if (!v->is_number()) {
      Bad(name, "a number", *v);
      return def;
    }
    return v->get<double>();
  }
  bool Bool(const std::string& name, bool def = false) {
    const Json* v = Raw(name);
    if (v == nullptr) return def;
    if (!v->is_boolean()) {
      Bad(name, "a bool", *v);
      return def;
    }
    return v->get<bool>();
  }
  std::vector<std::string> StrList(const std::string& name) {
    std::vector<std::string> out;
    const Json* v = Raw(name);
    if (v == nullptr) return out;
    if (!v->is_array()) {
      Bad(name, "a list of strings", *v);
      return out;
    }
    for (const Json& e : *v) {
      if (!e.is_string()) {
        Bad(name, "a list of strings", *v);
        return {};
      }
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  Json Map(const std::string& name) {
    const Json* v = Raw(name);
    if (v == nullptr) return Json::object();
    if (!v->is_object()) {
      Bad(name, "a map", *v);
      return Json::object();
    }
    return *v;
  }
  std::optional<absl::Duration> Dur(const std::string& name) {
    const Json* v = Raw(name);
    if (v == nullptr) return std::nullopt;
    absl::Duration d;
    if (!v->is_string() || !absl::ParseDuration(v->get<std::string>(), &d) ||
        d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
      Bad(name, "a duration such as \"10s\"", *v);
      return std::nullopt;
    }
    return d;
  }
  // A protobuf enum value by its short name, case-insensitive ("high" for
  // PRIORITY_HIGH).
  template <typename E>
  E Enum(const std::string& name, const std::string& prefix,
         bool (*parse)(const std::string&, E*), const std::vector<std::string>& allowed,
         E def) {
    std::string s = Str(name);
    if (!ok() || s.empty()) return def;
    E e;
    if (!parse(prefix + absl::AsciiStrToUpper(s), &e)) {
      Fail(absl::StrCat(Label(name), ": \"", s, "\" is not one of ",
                        absl::StrJoin(allowed, ", ")));
      return def;
    }
    return e;
  }
  void Fail(std::string message) {
    if (status_.ok()) status_ = absl::InvalidArgumentError(std::move(message));
  }
  std::string Label(const std::string& name) const {
    return absl::StrCat("argument \"", name, "\" of ", action_);
  }

 private:
  void Bad(const std::string& name, const char* want, const Json& got) {
    Fail(absl::StrCat(Label(name), ": expected ", want, ", got ", TypeOf(got), " ",
                      Describe(got)));
  }
  const Json& args_;
  std::string action_;
  absl::Status status_;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_ACTION_ARGS_H_
