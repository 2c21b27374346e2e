// The small expression language of skills: templated strings in step
// arguments and outputs (`"Hello {{ inputs.name }}"`) and `when:`
// conditions (`steps.scan.output.count > 0 and not inputs.dry_run`).
//
// Grammar (docs/skills.md has the full definition and every error):
//   or       := and  (("or"  | "||") and)*
//   and      := not  (("and" | "&&") not)*
//   not      := ("not" | "!") not | compare
//   compare  := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
//   operand  := literal | reference | call | "(" or ")"
//   literal  := integer | float | 'string' | "string" | true | false | null
//   reference:= name ("." name | "[" integer "]" | "[" string "]")*
//   call     := ("len" | "contains") "(" or ("," or)* ")"
// References start at one of four roots: `inputs.<name>`,
// `steps.<id>.output...` / `steps.<id>.state`, `run.id|agent|skill|version`
// and, inside `wait_for`'s `until`, `output...`.
//
// A template is text with `{{ expression }}` parts. When the whole string is
// one expression (spaces around allowed) the result keeps its type (an int
// stays an int); otherwise each part is rendered into the text (strings as
// they are, null as "", everything else as compact JSON).
//
// Parsing happens once, when a skill is loaded; syntax errors carry the
// byte offset in the source text so the loader can point at the exact
// column. Evaluation errors (comparing a string with an int, reading a
// field of a number, ...) are INVALID_ARGUMENT naming the expression.
#ifndef CNET_SERVICES_SKILLS_TEMPLATE_H_
#define CNET_SERVICES_SKILLS_TEMPLATE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/skills/value.h"

namespace cnet::skills {

// One path segment of a reference: `.name`, `[3]` or `["key"]`.
struct PathSegment {
  bool is_index = false;
  std::string key;
  int64_t index = 0;
};

// A reference found in an expression (for validation).
struct Reference {
  std::string root;                // "inputs", "steps", "run", "output", or what was written
  std::vector<PathSegment> path;   // segments after the root
  int offset = 0;                  // byte offset of the reference in the parsed text
  std::string text;                // as written, e.g. "steps.fetch.output.count"
};

struct SyntaxError {
  int offset = 0;       // byte offset in the parsed text
  std::string message;  // one line
};

// What an expression can read. Each pointer may be null (reads give null).
// `steps` maps step id -> {"state": "SUCCEEDED", "output": ...}.
struct EvalScope {
  const Json* inputs = nullptr;
  const Json* steps = nullptr;
  const Json* run = nullptr;
  const Json* output = nullptr;
};

class Expression {
 public:
  struct Node;
  Expression() = default;

  // Parses `text` (without braces). `base_offset` is added to the offsets
  // of references and errors. False and *error on a syntax error.
  static bool Parse(std::string_view text, int base_offset, Expression* out,
                    SyntaxError* error);

  absl::StatusOr<Json> Evaluate(const EvalScope& scope) const;
  // Evaluates as a condition: true, false, or null (= false); any other
  // value is INVALID_ARGUMENT.
  absl::StatusOr<bool> EvaluateCondition(const EvalScope& scope) const;

  const std::vector<Reference>& references() const { return refs_; }
  const std::string& text() const { return text_; }
  bool empty() const { return root_ == nullptr; }

 private:
  std::shared_ptr<const Node> root_;
  std::vector<Reference> refs_;
  std::string text_;
};

class Template {
 public:
  Template() = default;

  // Parses a string that may contain `{{ ... }}` parts.
  static bool Parse(std::string_view text, Template* out, SyntaxError* error);

  // True when the text has at least one `{{ }}` part.
  bool has_expressions() const { return !exprs_.empty(); }
  const std::string& text() const { return text_; }
  // Every reference of every part (offsets relative to the text).
  std::vector<Reference> references() const;

  absl::StatusOr<Json> Render(const EvalScope& scope) const;

 private:
  struct Part {
    bool is_expr = false;
    std::string literal;
    size_t expr_index = 0;
  };
  std::string text_;
  std::vector<Part> parts_;
  std::vector<Expression> exprs_;
  bool whole_ = false;  // the text is exactly one expression
};

// A `when:` condition as written: a bare expression, or one wrapped in
// `{{ }}`. `base_offset` as in Expression::Parse.
bool ParseCondition(std::string_view text, Expression* out, SyntaxError* error);

// A JSON value whose strings may be templates (step arguments, composed
// skill inputs), compiled once.
class CompiledValue {
 public:
  CompiledValue() = default;
  // Compiles every string of `value`. On a syntax error returns false with
  // the error and the JSON pointer-like path of the bad string ("to",
  // "recipients[2]").
  static bool Compile(const Json& value, CompiledValue* out, SyntaxError* error,
                      std::string* error_path);

  bool has_templates() const { return has_templates_; }
  absl::StatusOr<Json> Render(const EvalScope& scope) const;
  // Every reference with the path of the string holding it.
  void CollectReferences(std::vector<std::pair<std::string, Reference>>* out,
                         const std::string& prefix = "") const;
  const Json& source() const { return source_; }

 private:
  Json source_;
  bool has_templates_ = false;
  std::shared_ptr<const Template> tmpl_;              // string leaf with {{ }}
  std::vector<std::pair<std::string, CompiledValue>> map_;
  std::vector<CompiledValue> list_;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_TEMPLATE_H_
