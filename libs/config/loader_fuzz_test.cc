// Hostile-input driver for the YAML configuration loader: a bounded number
// of deterministic random mutations of valid documents (byte flips, YAML
// punctuation, truncation, duplication, deep nesting, huge fields), each fed
// to ValidateDocument. Invariants: it never crashes or throws; every issue
// names the document and a key or a position; the valid seed stays valid.
// CNET_FUZZ_ITERATIONS raises the budget for longer runs.
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "libs/config/loader.h"

namespace cnet::config {
namespace {

std::string ReadExample() {
  std::ifstream in("config.example.yaml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Mutate(std::string doc, std::mt19937_64& rng) {
  static const std::vector<std::string> kTokens = {
      ":", "- ", "[", "]", "{", "}", "\n", "  ", "\t", "&a ", "*a", "!!binary ", "? ", "|",
      ">", "#", "'", "\"", ",", "~", "null", "1e999", "-0", "0x1F", "\xff\xfe", "%YAML 1.2\n",
      "---\n", "...\n", "<<: *a\n", "\\u0000"};
  std::uniform_int_distribution<int> op(0, 6);
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds && !doc.empty(); ++r) {
    size_t pos = rng() % (doc.size() + 1);
    switch (op(rng)) {
      case 0:  // flip a byte
        if (pos < doc.size()) doc[pos] = static_cast<char>(rng());
        break;
      case 1:  // insert a YAML token
        doc.insert(pos, kTokens[rng() % kTokens.size()]);
        break;
      case 2:  // truncate
        doc.resize(pos);
        break;
      case 3: {  // duplicate a slice
        size_t len = rng() % 200;
        doc.insert(pos, doc.substr(pos, len));
        break;
      }
      case 4:  // deep flow nesting
        doc.insert(pos, std::string(1 + rng() % 2000, rng() % 2 ? '[' : '{'));
        break;
      case 5:  // huge scalar
        doc.insert(pos, std::string(1 + rng() % 100000, 'x'));
        break;
      case 6: {  // delete a slice
        size_t len = rng() % 100;
        if (pos < doc.size()) doc.erase(pos, len);
        break;
      }
    }
  }
  return doc;
}

TEST(ConfigFuzzTest, MutatedDocumentsNeverCrashAndIssuesAreLocated) {
  const std::string seed = ReadExample();
  ASSERT_FALSE(seed.empty());
  ASSERT_TRUE(ValidateDocument(seed, "seed.yaml").empty());
  int iterations = 2000;
  if (const char* env = std::getenv("CNET_FUZZ_ITERATIONS")) iterations = std::atoi(env);
  std::mt19937_64 rng(20261126);
  int with_issues = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string doc = Mutate(seed, rng);
    std::vector<Issue> issues;
    ASSERT_NO_THROW(issues = ValidateDocument(doc, "fuzz.yaml")) << "iteration " << i;
    if (!issues.empty()) ++with_issues;
    for (const Issue& issue : issues) {
      EXPECT_EQ(issue.origin, "fuzz.yaml");
      EXPECT_FALSE(issue.reason.empty());
      EXPECT_TRUE(!issue.key.empty() || issue.line > 0) << issue.ToString();
      EXPECT_LT(issue.ToString().size(), 4096u) << "issue text should stay one short line";
    }
  }
  // The driver really exercises the error paths.
  EXPECT_GT(with_issues, iterations / 4);
  std::cout << "config fuzz: " << iterations << " documents, " << with_issues
            << " with issues, 0 crashes\n";
}

TEST(ConfigFuzzTest, DeepNestingIsRejectedWithAPosition) {
  for (const std::string& doc :
       {"network: " + std::string(100000, '['), "network: " + std::string(100000, '{')}) {
    std::vector<Issue> issues = ValidateDocument(doc, "deep.yaml");
    ASSERT_FALSE(issues.empty());
    EXPECT_NE(issues[0].reason.find("invalid YAML"), std::string::npos) << issues[0].ToString();
  }
  std::string block = "network:\n";
  for (int i = 0; i < 5000; ++i) block += std::string(i + 1, ' ') + "-\n";
  std::vector<Issue> issues = ValidateDocument(block, "deep.yaml");
  ASSERT_FALSE(issues.empty());
  EXPECT_NE(issues[0].reason.find("nested deeper than"), std::string::npos) << issues[0].ToString();
}

}  // namespace
}  // namespace cnet::config
