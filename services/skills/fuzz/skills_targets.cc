#include "services/skills/fuzz/skills_targets.h"

#include <string>

#include "services/skills/actions.h"
#include "services/skills/loader.h"
#include "services/skills/template.h"
#include "tests/fuzz/check.h"

namespace cnet::skills::fuzz {

void FuzzSkillDocument(std::string_view data) {
  static const ActionRegistry* actions = new ActionRegistry(ActionEnv{});
  const std::string source(data);
  std::shared_ptr<const ParsedFile> first, second;
  try {
    first = ParseSkillFile(source, "fuzz/skill.yaml", "fuzz", actions->catalog());
    second = ParseSkillFile(source, "fuzz/skill.yaml", "fuzz", actions->catalog());
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("ParseSkillFile threw: ") + e.what());
  }
  FUZZ_CHECK(first != nullptr, "null result");
  int lines = 1;
  for (char c : source) lines += c == '\n';
  for (const Issue& issue : first->issues) {
    FUZZ_CHECK(issue.file == "fuzz/skill.yaml", issue.ToString());
    FUZZ_CHECK(!issue.reason.empty(), issue.ToString());
    FUZZ_CHECK(issue.reason.find('\n') == std::string::npos, issue.ToString());
    FUZZ_CHECK(issue.line >= 0 && issue.line <= lines + 1, issue.ToString());
    FUZZ_CHECK(issue.column >= 0, issue.ToString());
    FUZZ_CHECK(issue.ToString().size() < 8192, issue.ToString().substr(0, 300));
  }
  FUZZ_CHECK(first->issues.size() == second->issues.size(), "nondeterministic issues");
  for (size_t i = 0; i < first->issues.size(); ++i) {
    FUZZ_CHECK(first->issues[i].ToString() == second->issues[i].ToString(),
               "nondeterministic issue text");
  }
  if (!first->HasErrors()) {
    FUZZ_CHECK(first->has_definition, "valid file without a definition");
    FUZZ_CHECK(!first->def.name.empty(), "valid skill without a name");
  }
}

void FuzzTemplate(std::string_view data) {
  static const Json* inputs = new Json(Json::parse(
      R"({"to":"bob","n":3,"list":[1,"two",{"three":3.0}],"flag":true,"nothing":null,
          "deep":{"a":{"b":{"c":[[[1]]]}}}})"));
  static const Json* steps = new Json(Json::parse(
      R"({"fetch":{"state":"SUCCEEDED","output":{"count":2,"items":["x","y"]}}})"));
  static const Json* run = new Json(Json::parse(R"({"id":"run-1","agent":"alice"})"));
  EvalScope scope;
  scope.inputs = inputs;
  scope.steps = steps;
  scope.run = run;
  scope.output = inputs;
  const int size = static_cast<int>(data.size());

  Template t;
  SyntaxError error;
  if (Template::Parse(data, &t, &error)) {
    for (const Reference& r : t.references()) {
      FUZZ_CHECK(r.offset >= 0 && r.offset <= size, r.text);
    }
    (void)t.Render(scope);
  } else {
    FUZZ_CHECK(error.offset >= 0 && error.offset <= size,
               std::to_string(error.offset) + ": " + error.message);
    FUZZ_CHECK(!error.message.empty(), "empty syntax error");
  }
  Expression e;
  SyntaxError cond_error;
  if (ParseCondition(data, &e, &cond_error)) {
    (void)e.EvaluateCondition(scope);
    (void)e.Evaluate(scope);
  } else {
    FUZZ_CHECK(cond_error.offset >= 0 && cond_error.offset <= size,
               std::to_string(cond_error.offset) + ": " + cond_error.message);
  }
  Expression x;
  SyntaxError x_error;
  if (Expression::Parse(data, 7, &x, &x_error)) {
    for (const Reference& r : x.references()) {
      FUZZ_CHECK(r.offset >= 7 && r.offset <= size + 7, r.text);
    }
    (void)x.Evaluate(scope);
  } else {
    FUZZ_CHECK(x_error.offset >= 7 && x_error.offset <= size + 7,
               std::to_string(x_error.offset) + ": " + x_error.message);
  }
}

}  // namespace cnet::skills::fuzz
