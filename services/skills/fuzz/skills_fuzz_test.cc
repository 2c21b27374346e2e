// Bounded randomized drivers of the skill YAML and template fuzz targets,
// run by the test command (CNET_FUZZ_ITERATIONS raises the budget;
// tools/fuzz.sh runs them under libFuzzer + AddressSanitizer). Seeds: every
// skill of the shipped library. Plus one regression test per finding.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "services/skills/actions.h"
#include "services/skills/fuzz/skills_targets.h"
#include "services/skills/loader.h"
#include "services/skills/template.h"
#include "tests/fuzz/mutate.h"

namespace cnet::skills::fuzz {
namespace {

std::vector<std::string> LibrarySeeds() {
  std::vector<std::string> seeds;
  for (const auto& entry : std::filesystem::recursive_directory_iterator("skills")) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream s;
    s << in.rdbuf();
    seeds.push_back(s.str());
  }
  return seeds;
}

TEST(SkillsFuzzTest, SkillDocuments) {
  std::vector<std::string> seeds = LibrarySeeds();
  ASSERT_GE(seeds.size(), 5u);
  std::mt19937_64 rng(1127);
  int n = cnet::fuzz::Iterations(600);
  for (int i = 0; i < n; ++i) {
    const std::string& a = seeds[rng() % seeds.size()];
    const std::string& b = seeds[rng() % seeds.size()];
    FuzzSkillDocument(cnet::fuzz::Mutate(a, b, cnet::fuzz::SyntaxDictionary(), rng));
  }
  std::cout << "skill YAML fuzz driver: " << n << " inputs, 0 findings\n";
}

TEST(SkillsFuzzTest, Templates) {
  const std::vector<std::string> seeds = {
      "Hello {{ inputs.to }}!",
      "{{ steps.fetch.output.items[1] }}",
      "{{ len(inputs.list) > 2 and not inputs.flag or contains(inputs.list, 'two') }}",
      "steps.fetch.state == 'SUCCEEDED' && inputs.n >= 3",
      "{{ inputs.deep['a'].b.c[0][0][0] }} and {{ run.agent }}",
      "{{ (1 + 2) }} {{ 'it''s' }} {{ \"q\\\"\" }} {{ -9223372036854775808 }} {{ 1.5e308 }}",
  };
  std::mt19937_64 rng(1128);
  int n = cnet::fuzz::Iterations(20000);
  std::string all;
  for (const auto& s : seeds) all += s;
  for (int i = 0; i < n; ++i) {
    FuzzTemplate(cnet::fuzz::Mutate(seeds[rng() % seeds.size()], all,
                                    cnet::fuzz::SyntaxDictionary(), rng));
  }
  std::cout << "template fuzz driver: " << n << " inputs, 0 findings\n";
}

// F2: a reason quoted a 100 KiB value in full (and raw control bytes).
TEST(SkillsFuzzRegressionTest, IssueReasonsStayOneShortLine) {
  static const ActionRegistry actions{ActionEnv{}};
  std::string doc = "name: \"" + std::string(100000, '(') + "\\n\\tx\"\nversion: 1.0.0\n";
  auto parsed = ParseSkillFile(doc, "f2.yaml", "", actions.catalog());
  ASSERT_FALSE(parsed->issues.empty());
  for (const Issue& issue : parsed->issues) {
    EXPECT_LT(issue.reason.size(), 600u);
    EXPECT_EQ(issue.reason.find('\n'), std::string::npos) << issue.reason;
  }
  FuzzSkillDocument(doc);
}

// F3: deep nesting overflowed the stack in the expression parser (and a
// long and/or chain would have in evaluation and destruction).
TEST(SkillsFuzzRegressionTest, DeepExpressionsAreSyntaxErrors) {
  std::string chain = "1";
  for (int i = 0; i < 200000; ++i) chain += " or 1";
  std::string nots;
  for (int i = 0; i < 200000; ++i) nots += "not ";
  nots += "true";
  std::string calls;
  for (int i = 0; i < 100000; ++i) calls += "len(";
  for (const std::string& text :
       {std::string(500000, '(') + "1", chain, nots, calls, "{{ " + chain + " }}"}) {
    Expression e;
    SyntaxError error;
    EXPECT_FALSE(ParseCondition(text, &e, &error));
    EXPECT_NE(error.message.find("nested deeper than 64 levels"), std::string::npos)
        << error.message;
    FuzzTemplate(text);
  }
  // 64 levels still work.
  std::string ok = std::string(60, '(') + "inputs.n" + std::string(60, ')') + " == 3";
  Expression e;
  SyntaxError error;
  ASSERT_TRUE(ParseCondition(ok, &e, &error)) << error.message;
}

}  // namespace
}  // namespace cnet::skills::fuzz
