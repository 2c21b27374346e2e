// The expression language and version ranges, as docs/skills.md defines them.
#include "services/skills/template.h"

#include "gtest/gtest.h"
#include "services/skills/semver.h"

namespace cnet::skills {
namespace {

class TemplateTest : public ::testing::Test {
 protected:
  TemplateTest() {
    inputs_ = Json::parse(R"({"to": "bob", "count": 3, "ratio": 0.5, "dry_run": false,
                              "tags": ["a", "b"], "meta": {"k": "v"}})");
    steps_ = Json::parse(R"({"fetch": {"state": "SUCCEEDED", "output": {"count": 2,
                              "messages": [{"id": "m1"}]}},
                             "skipped": {"state": "SKIPPED", "output": null}})");
    run_ = Json::parse(R"({"id": "run-1", "agent": "alice", "skill": "s", "version": "1.0.0"})");
    scope_.inputs = &inputs_;
    scope_.steps = &steps_;
    scope_.run = &run_;
  }

  Json Eval(const std::string& text) {
    Expression e;
    SyntaxError err;
    EXPECT_TRUE(Expression::Parse(text, 0, &e, &err)) << text << ": " << err.message;
    auto v = e.Evaluate(scope_);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : Json();
  }

  SyntaxError ParseError(const std::string& tmpl) {
    Template t;
    SyntaxError err;
    EXPECT_FALSE(Template::Parse(tmpl, &t, &err)) << tmpl;
    return err;
  }

  std::string EvalError(const std::string& text) {
    Expression e;
    SyntaxError err;
    EXPECT_TRUE(Expression::Parse(text, 0, &e, &err)) << err.message;
    auto v = e.Evaluate(scope_);
    EXPECT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(v.status().message());
  }

  Json inputs_, steps_, run_;
  EvalScope scope_;
};

TEST_F(TemplateTest, ReferencesReadInputsStepsAndRun) {
  EXPECT_EQ(Eval("inputs.to"), "bob");
  EXPECT_EQ(Eval("inputs.tags[1]"), "b");
  EXPECT_EQ(Eval("inputs.tags[-1]"), "b");
  EXPECT_EQ(Eval("inputs.meta['k']"), "v");
  EXPECT_EQ(Eval("steps.fetch.output.count"), 2);
  EXPECT_EQ(Eval("steps.fetch.output.messages[0].id"), "m1");
  EXPECT_EQ(Eval("steps.fetch.state"), "SUCCEEDED");
  EXPECT_EQ(Eval("run.agent"), "alice");
  // Missing keys, out-of-range indexes and fields of null read as null.
  EXPECT_TRUE(Eval("inputs.tags[5]").is_null());
  EXPECT_TRUE(Eval("steps.skipped.output.count").is_null());
}

TEST_F(TemplateTest, ComparisonsAndBooleanOperators) {
  EXPECT_EQ(Eval("inputs.count > 2"), true);
  EXPECT_EQ(Eval("inputs.count == 3.0"), true);
  EXPECT_EQ(Eval("inputs.ratio < 1"), true);
  EXPECT_EQ(Eval("inputs.to == 'bob' and not inputs.dry_run"), true);
  EXPECT_EQ(Eval("inputs.dry_run || steps.fetch.output.count >= 2"), true);
  EXPECT_EQ(Eval("!(inputs.count != 3)"), true);
  EXPECT_EQ(Eval("'abc' < 'abd'"), true);
  EXPECT_EQ(Eval("steps.skipped.output == null"), true);
  // null counts as false in boolean positions.
  EXPECT_EQ(Eval("steps.skipped.output.ok or true"), true);
  EXPECT_EQ(Eval("len(inputs.tags) == 2 and contains(inputs.tags, 'a')"), true);
  EXPECT_EQ(Eval("contains(inputs.to, 'o')"), true);
  EXPECT_EQ(Eval("len('héllo')"), 5);
}

TEST_F(TemplateTest, WholeExpressionKeepsTypeAndTextInterpolates) {
  Template t;
  SyntaxError err;
  ASSERT_TRUE(Template::Parse("  {{ inputs.count }} ", &t, &err));
  EXPECT_EQ(*t.Render(scope_), 3);
  ASSERT_TRUE(Template::Parse("to {{ inputs.to }}: {{ inputs.count }} {{ inputs.tags }}{{ "
                              "steps.skipped.output }}",
                              &t, &err));
  EXPECT_EQ(*t.Render(scope_), "to bob: 3 [\"a\",\"b\"]");
  ASSERT_TRUE(Template::Parse("no braces {here}", &t, &err));
  EXPECT_FALSE(t.has_expressions());
  EXPECT_EQ(*t.Render(scope_), "no braces {here}");
  ASSERT_TRUE(Template::Parse("{{ '}}' }}", &t, &err));
  EXPECT_EQ(*t.Render(scope_), "}}");
}

TEST_F(TemplateTest, SyntaxErrorsPointAtTheOffset) {
  SyntaxError e = ParseError("hi {{ inputs.to ");
  EXPECT_EQ(e.offset, 3);
  EXPECT_EQ(e.message, "unterminated \"{{\" (missing \"}}\")");
  e = ParseError("{{ inputs. }}");
  EXPECT_EQ(e.offset, 11);
  EXPECT_EQ(e.message, "expected a name after \".\" in \"inputs.\", found end of expression");
  e = ParseError("{{ inputs.a == }}");
  EXPECT_EQ(e.offset, 15);
  EXPECT_EQ(e.message, "expected a value after \"==\", found end of expression");
  e = ParseError("{{ 'abc }}");
  EXPECT_EQ(e.message, "unterminated string literal inside \"{{ }}\"");
  e = ParseError("{{ inputs.a inputs.b }}");
  EXPECT_EQ(e.offset, 12);
  EXPECT_EQ(e.message, "unexpected \"inputs\" after a complete expression");
  e = ParseError("{{ 1 < 2 < 3 }}");
  EXPECT_EQ(e.message, "comparisons do not chain: \"<\" after \"<\" (use \"and\")");
  e = ParseError("{{ a = 1 }}");
  EXPECT_EQ(e.message, "\"=\" is not an operator (compare with \"==\")");
  e = ParseError("{{ }}");
  EXPECT_EQ(e.offset, 0);
  EXPECT_EQ(e.message, "empty expression");
  e = ParseError("{{ size(inputs.tags) }}");
  EXPECT_EQ(e.message, "unknown function \"size\" (functions: len, contains)");
}

TEST_F(TemplateTest, EvaluationErrorsNameTheExpression) {
  EXPECT_EQ(EvalError("inputs.to < 3"),
            "expression \"inputs.to < 3\": cannot order string \"bob\" and int 3 with \"<\"");
  EXPECT_EQ(EvalError("inputs.count.x"),
            "expression \"inputs.count.x\": cannot read field \"x\" of inputs.count (int)");
  EXPECT_EQ(EvalError("not inputs.to"),
            "expression \"not inputs.to\": \"not\" needs a bool, got string \"bob\"");
  Expression e;
  SyntaxError err;
  ASSERT_TRUE(ParseCondition("{{ inputs.count }}", &e, &err));
  auto c = e.EvaluateCondition(scope_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "expression \"inputs.count\": a condition needs a bool, got int 3");
}

TEST_F(TemplateTest, ReferencesAreListedWithOffsets) {
  Template t;
  SyntaxError err;
  ASSERT_TRUE(Template::Parse("x {{ inputs.a }} {{ steps.s.output.f == inputs.b }}", &t, &err));
  auto refs = t.references();
  ASSERT_EQ(refs.size(), 3u);
  EXPECT_EQ(refs[0].text, "inputs.a");
  EXPECT_EQ(refs[0].offset, 5);
  EXPECT_EQ(refs[1].text, "steps.s.output.f");
  EXPECT_EQ(refs[1].offset, 20);
  EXPECT_EQ(refs[2].offset, 40);
}

TEST_F(TemplateTest, CompiledValuesRenderNestedTemplates) {
  CompiledValue c;
  SyntaxError err;
  std::string path;
  ASSERT_TRUE(CompiledValue::Compile(
      Json::parse(R"({"to": "{{ inputs.to }}", "n": 1, "list": ["x", "{{ inputs.count }}"]})"),
      &c, &err, &path));
  EXPECT_EQ(*c.Render(scope_), Json::parse(R"({"to": "bob", "n": 1, "list": ["x", 3]})"));
  ASSERT_FALSE(CompiledValue::Compile(Json::parse(R"({"a": {"b": ["ok", "{{ x"]}})"), &c, &err,
                                      &path));
  EXPECT_EQ(path, "a.b[1]");
}

TEST(SemverTest, ParsesVersionsAndRanges) {
  Semver v;
  EXPECT_TRUE(Semver::Parse("1.2.3", &v));
  EXPECT_FALSE(Semver::Parse("1.2", &v));
  EXPECT_FALSE(Semver::Parse("01.2.3", &v));
  EXPECT_FALSE(Semver::Parse("1.2.3-beta", &v));
  auto matches = [](const std::string& range, const std::string& version) {
    auto r = VersionRange::Parse(range);
    EXPECT_TRUE(r.ok()) << r.status();
    Semver s;
    EXPECT_TRUE(Semver::Parse(version, &s));
    return r->Matches(s);
  };
  EXPECT_TRUE(matches("^1.2", "1.9.0"));
  EXPECT_FALSE(matches("^1.2", "2.0.0"));
  EXPECT_FALSE(matches("^1.2", "1.1.9"));
  EXPECT_TRUE(matches("^0.2.3", "0.2.9"));
  EXPECT_FALSE(matches("^0.2.3", "0.3.0"));
  EXPECT_TRUE(matches("~1.2", "1.2.7"));
  EXPECT_FALSE(matches("~1.2", "1.3.0"));
  EXPECT_TRUE(matches(">=1.0 <2.0", "1.5.0"));
  EXPECT_TRUE(matches(">= 1.0, < 2.0", "1.0.0"));
  EXPECT_FALSE(matches(">1.2", "1.2.5"));
  EXPECT_TRUE(matches("1.2", "1.2.5"));
  EXPECT_TRUE(matches("1.2.3", "1.2.3"));
  EXPECT_FALSE(matches("1.2.3", "1.2.4"));
  EXPECT_TRUE(matches("*", "7.0.0"));
  EXPECT_TRUE(matches("", "7.0.0"));
  EXPECT_TRUE(VersionRange::Parse(">=2 <1")->Unsatisfiable());
  EXPECT_FALSE(VersionRange::Parse("^1")->Unsatisfiable());
  EXPECT_EQ(VersionRange::Parse("1.x").status().message(),
            "version range \"1.x\": \"1.x\" is not a version comparator (expected e.g. 1.2.3, "
            "^1.2, ~1.2, >=1.0 <2.0)");
}

}  // namespace
}  // namespace cnet::skills
