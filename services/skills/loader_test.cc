// Validation of skill files: one broken fixture per kind of error, each
// reported with its exact file:line:column and reason, while the valid
// files of the same library keep serving.
#include "services/skills/loader.h"

#include <filesystem>
#include <fstream>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "services/skills/actions.h"

namespace cnet::skills {
namespace {

constexpr char kBroken[] = "services/skills/testdata/broken";

class LoaderTest : public ::testing::Test {
 protected:
  LoaderTest() : actions_(ActionEnv{}) {}

  std::vector<std::string> IssuesOf(const Library& lib, const std::string& file) {
    auto f = lib.FindFile(file);
    EXPECT_NE(f, nullptr) << file;
    std::vector<std::string> out;
    if (f != nullptr) {
      for (const Issue& i : f->issues) out.push_back(i.ToString());
    }
    return out;
  }

  IssueCode FirstCode(const Library& lib, const std::string& file) {
    return lib.FindFile(file)->issues.at(0).code;
  }

  std::string TempDir() {
    std::string tmpl = std::string(::testing::TempDir()) + "/libXXXXXX";
    return mkdtemp(tmpl.data());
  }

  SimulatedClock clock_;
  ActionRegistry actions_;
};

TEST_F(LoaderTest, EachBrokenFixtureIsReportedAtItsExactPosition) {
  LibraryManager manager(kBroken, &actions_.catalog(), &clock_);
  auto report = manager.Reload();
  ASSERT_TRUE(report.ok()) << report.status();
  auto lib = manager.Current();
  struct Case {
    std::string file;
    IssueCode code;
    std::vector<std::string> issues;
  };
  const std::vector<Case> cases = {
      {"yaml_syntax.yaml", IssueCode::kYamlSyntax,
       {"yaml_syntax.yaml:8:1: YAML syntax: end of map flow not found"}},
      {"schema_missing_key.yaml", IssueCode::kSchema,
       {"schema_missing_key.yaml:1:1: missing required key \"steps\""}},
      {"schema_unknown_key.yaml", IssueCode::kSchema,
       {"schema_unknown_key.yaml:5:5: action \"log\" needs argument \"message\"",
        "schema_unknown_key.yaml:7:5: unknown key \"argz\" in step (did you mean \"args\"?)"}},
      {"wrong_type.yaml", IssueCode::kWrongType,
       {"wrong_type.yaml:8:14: timeout: expected a duration such as \"500ms\", \"10s\" or "
        "\"2m\", got int 10"}},
      {"unknown_action.yaml", IssueCode::kUnknownAction,
       {"unknown_action.yaml:6:13: unknown action \"mesaging.send\" (did you mean "
        "\"messaging.send\"?)"}},
      {"unknown_input_reference.yaml", IssueCode::kUnknownReference,
       {"unknown_input_reference.yaml:9:20: unknown input \"too\" in \"inputs.too\" (did you "
        "mean \"to\"?)"}},
      {"unknown_step_reference.yaml", IssueCode::kUnknownReference,
       {"unknown_step_reference.yaml:8:20: step \"second\" has not finished when "
        "\"steps.second.output.message\" is read (it runs later, in the same parallel group, "
        "or is this step)"}},
      {"unknown_output_reference.yaml", IssueCode::kUnknownReference,
       {"unknown_output_reference.yaml:5:13: skill \"helper@2.0.0\" (step \"call\") has no "
        "output \"text\"; outputs: said"}},
      {"expression_syntax.yaml", IssueCode::kExpressionSyntax,
       {"expression_syntax.yaml:8:25: expected a value after \">\", found end of expression"}},
      {"duplicate_step_id.yaml", IssueCode::kDuplicateName,
       {"duplicate_step_id.yaml:8:5: duplicate step id \"say\" (first at line 5)"}},
      {"duplicate_name_b.yaml", IssueCode::kDuplicateName,
       {"duplicate_name_b.yaml:2:7: duplicate skill \"duplicate_name@1.0.0\": already defined "
        "in duplicate_name_a.yaml:1:7"}},
      {"missing_skill.yaml", IssueCode::kMissingSkill,
       {"missing_skill.yaml:6:12: composed skill \"no_such_skill\" does not exist"}},
      {"cycle_a.yaml", IssueCode::kCompositionCycle,
       {"cycle_a.yaml:6:12: composition cycle: cycle_a@1.0.0 -> cycle_b@1.0.0 -> "
        "cycle_a@1.0.0"}},
      {"cycle_b.yaml", IssueCode::kCompositionCycle,
       {"cycle_b.yaml:6:12: composition cycle: cycle_a@1.0.0 -> cycle_b@1.0.0 -> "
        "cycle_a@1.0.0"}},
      {"version_not_semver.yaml", IssueCode::kVersionConflict,
       {"version_not_semver.yaml:2:10: version \"1.0\" is not a semantic version "
        "MAJOR.MINOR.PATCH (e.g. 1.0.0)"}},
      {"version_conflict.yaml", IssueCode::kVersionConflict,
       {"version_conflict.yaml:10:14: steps \"old\" and \"new\" need incompatible versions of "
        "\"helper\": \"^1\" and \">=2.0\" (a skill uses one version of each skill it "
        "composes)"}},
      {"limit_exceeded.yaml", IssueCode::kLimitExceeded,
       {"limit_exceeded.yaml:22:37: step \"l9\": groups nest deeper than 8 levels"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    EXPECT_EQ(IssuesOf(*lib, c.file), c.issues);
    EXPECT_FALSE(lib->FindFile(c.file)->valid);
    EXPECT_EQ(FirstCode(*lib, c.file), c.code);
  }
  // Every file of the directory is one of the cases or one of the valid ones.
  EXPECT_EQ(lib->files().size(), cases.size() + 3);
  EXPECT_EQ(report->invalid, static_cast<int64_t>(cases.size()));
  // The valid files keep serving.
  EXPECT_EQ(report->loaded, 3);
  EXPECT_TRUE(lib->FindFile("duplicate_name_a.yaml")->valid);
  auto v1 = VersionRange::Parse("^1");
  ASSERT_NE(lib->Find("helper", &*v1), nullptr);
  EXPECT_EQ(lib->Find("helper", &*v1)->def().Key(), "helper@1.4.0");
  EXPECT_EQ(lib->Find("helper")->def().Key(), "helper@2.0.0");
  EXPECT_EQ(lib->Find("cycle_a"), nullptr);
}

TEST_F(LoaderTest, ValidateChecksASubmittedDocumentAloneOrAgainstTheLibrary) {
  LibraryManager manager(kBroken, &actions_.catalog(), &clock_);
  ASSERT_TRUE(manager.Reload().ok());
  const std::string doc = R"(name: uses_helper
version: 0.1.0
description: Composes helper 3.x, which does not exist.
inputs:
  unused: {type: string, default: x}
steps:
  - id: call
    skill: helper
    version: "^3"
)";
  ValidationResult alone = manager.Validate(doc, "local/uses_helper.yaml", false);
  EXPECT_TRUE(alone.valid);
  ASSERT_EQ(alone.issues.size(), 1u);
  EXPECT_EQ(alone.issues[0].ToString(),
            "local/uses_helper.yaml:5:3: warning: input \"unused\" is never used");
  ValidationResult with_lib = manager.Validate(doc, "local/uses_helper.yaml", true);
  EXPECT_FALSE(with_lib.valid);
  ASSERT_EQ(with_lib.issues.size(), 2u);
  EXPECT_EQ(with_lib.issues[1].ToString(),
            "local/uses_helper.yaml:8:12: no version of \"helper\" matches \"^3\" (available: "
            "1.4.0, 2.0.0)");
  EXPECT_EQ(with_lib.issues[1].code, IssueCode::kMissingSkill);
  // A document with the name and version of a library skill is a duplicate.
  ValidationResult dup = manager.Validate(
      "name: helper\nversion: 2.0.0\ndescription: d\nsteps:\n  - id: s\n    action: log\n"
      "    args: {message: m}\n",
      "mine.yaml", true);
  EXPECT_FALSE(dup.valid);
  EXPECT_EQ(dup.issues[0].code, IssueCode::kDuplicateName);
  // The library itself did not change.
  EXPECT_EQ(manager.Current()->valid_count(), 3);
}

TEST_F(LoaderTest, TemplatePositionsInQuotedAndPlainScalars) {
  auto parsed = ParseSkillFile(R"(name: pos
version: 1.0.0
description: Positions.
inputs:
  a: string
steps:
  - id: s
    action: log
    args:
      message: 'x {{ inputs.b }}'
      level: "{{ inputs.a"
)",
                               "pos.yaml", "", actions_.catalog());
  std::vector<std::string> issues;
  for (const Issue& i : parsed->issues) issues.push_back(i.ToString());
  EXPECT_EQ(issues, (std::vector<std::string>{
                        "pos.yaml:5:3: warning: input \"a\" is never used",
                        "pos.yaml:10:22: unknown input \"b\" in \"inputs.b\" (did you mean "
                        "\"a\"?)",
                        "pos.yaml:11:15: unterminated \"{{\" (missing \"}}\")"}));
}

TEST_F(LoaderTest, ReloadReportsChangesAndKeepsTheLibraryWhenTheRootIsGone) {
  std::string dir = TempDir();
  auto write = [&](const std::string& rel, const std::string& body) {
    std::filesystem::create_directories(std::filesystem::path(dir + "/" + rel).parent_path());
    std::ofstream(dir + "/" + rel) << body;
  };
  auto skill = [](const std::string& name, const std::string& msg) {
    return "name: " + name + "\nversion: 1.0.0\ndescription: d\nsteps:\n  - id: s\n"
           "    action: log\n    args: {message: " + msg + "}\n";
  };
  write("core/data/one.yaml", skill("one", "a"));
  write("core/data/two.yaml", skill("two", "a"));
  LibraryManager manager(dir, &actions_.catalog(), &clock_);
  auto first = manager.Reload();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->added, (std::vector<std::string>{"one@1.0.0", "two@1.0.0"}));
  EXPECT_EQ(manager.Current()->Find("one")->def().category, "core/data");
  write("core/data/one.yaml", skill("one", "b"));
  std::filesystem::remove(dir + "/core/data/two.yaml");
  write("domain/three.yaml", skill("three", "a"));
  write("domain/bad.yaml", "name: [\n");
  auto second = manager.Reload();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->added, std::vector<std::string>{"three@1.0.0"});
  EXPECT_EQ(second->removed, std::vector<std::string>{"two@1.0.0"});
  EXPECT_EQ(second->changed, std::vector<std::string>{"one@1.0.0"});
  EXPECT_EQ(second->loaded, 2);
  EXPECT_EQ(second->invalid, 1);
  ASSERT_EQ(second->issues.size(), 1u);
  EXPECT_EQ(second->issues[0].file, "domain/bad.yaml");

  std::filesystem::remove_all(dir);
  auto gone = manager.Reload();
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(gone.status().message(),
            "skill library root \"" + dir + "\" is not a readable directory");
  EXPECT_NE(manager.Current()->Find("three"), nullptr);
}

TEST_F(LoaderTest, ReloadsByItselfWhenAFileChanges) {
  std::string dir = TempDir();
  std::filesystem::create_directories(dir + "/core/data");
  LibraryManager manager(dir, &actions_.catalog(), &clock_);
  ASSERT_TRUE(manager.Reload().ok());
  absl::Mutex mu;
  std::vector<std::string> added;
  ASSERT_TRUE(manager
                  .StartWatching([&](const absl::StatusOr<ReloadReport>& r) {
                    if (!r.ok()) return;
                    absl::MutexLock lock(&mu);
                    added.insert(added.end(), r->added.begin(), r->added.end());
                  })
                  .ok());
  std::ofstream(dir + "/core/data/fresh.yaml")
      << "name: fresh\nversion: 1.0.0\ndescription: d\nsteps:\n  - id: s\n    action: log\n"
         "    args: {message: m}\n";
  // Also a file in a directory created after watching started.
  std::filesystem::create_directories(dir + "/domain/new");
  std::ofstream(dir + "/domain/new/later.yaml")
      << "name: later\nversion: 1.0.0\ndescription: d\nsteps:\n  - id: s\n    action: log\n"
         "    args: {message: m}\n";
  absl::MutexLock lock(&mu);
  auto both = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return std::count(added.begin(), added.end(), "fresh@1.0.0") > 0 &&
           std::count(added.begin(), added.end(), "later@1.0.0") > 0;
  };
  // Waits on the watcher's reload events; the bound only turns a hang into
  // a failure.
  EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&both), absl::Seconds(60)));
}

TEST_F(LoaderTest, LimitsAndEmptyDocuments) {
  auto empty = ParseSkillFile("", "e.yaml", "", actions_.catalog());
  EXPECT_EQ(empty->issues.at(0).ToString(),
            "e.yaml:1:1: empty document: a skill needs name, version, description and steps");
  auto list = ParseSkillFile("- a\n- b\n", "l.yaml", "", actions_.catalog());
  EXPECT_EQ(list->issues.at(0).ToString(),
            "l.yaml:1:1: a skill is a map of fields (name, version, steps, ...), got list");
  std::string big(kMaxDocumentBytes + 1, '#');
  auto huge = ParseSkillFile(big, "big.yaml", "", actions_.catalog());
  EXPECT_EQ(huge->issues.at(0).code, IssueCode::kLimitExceeded);
}

}  // namespace
}  // namespace cnet::skills
