// Bounded randomized drivers of the config and canonical-message fuzz
// targets, run by the test command: deterministic mutations of seed inputs
// (CNET_FUZZ_ITERATIONS raises the budget; tools/fuzz.sh runs the same
// targets under libFuzzer + AddressSanitizer for as long as asked).
// Plus one regression test per finding.
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "libs/config/loader.h"
#include "services/macs-gateway/canonical.h"
#include "tests/fuzz/mutate.h"
#include "tests/fuzz/targets.h"

namespace cnet::fuzz {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(FuzzDriverTest, ConfigDocuments) {
  const std::string seed = ReadFile("config.example.yaml");
  ASSERT_FALSE(seed.empty());
  const std::string small = "network:\n  node_id: a\nlimits:\n  inbox_cap: 5\n";
  std::mt19937_64 rng(1126);
  int n = Iterations(1000);
  for (int i = 0; i < n; ++i) {
    FuzzConfigDocument(Mutate(i % 3 ? small : seed, seed, SyntaxDictionary(), rng));
  }
  std::cout << "config fuzz driver: " << n << " inputs, 0 findings\n";
}

TEST(FuzzDriverTest, CanonicalMessages) {
  claudenet::v1::Message m;
  m.set_id("msg-1");
  m.set_sender("alice");
  m.set_recipient("bob");
  m.set_subject("hi");
  m.set_body("hello\n");
  (*m.mutable_payload()->mutable_fields())["n"].set_number_value(1.5);
  m.mutable_created_at()->set_seconds(1700000000);
  const std::string proto_seed = m.SerializeAsString();
  const std::string text_seed =
      "msg-1|alice|bob|subject|body|conv|msg-0|{\"a\":[1,2.5e-7,\"\\u00e9\"],\"b\":{\"c\":null}}|"
      "x|2026";
  std::mt19937_64 rng(2611);
  int n = Iterations(20000);
  for (int i = 0; i < n; ++i) {
    FuzzCanonicalMessage(Mutate(i % 2 ? proto_seed : text_seed, text_seed,
                                SyntaxDictionary(), rng));
  }
  std::cout << "canonical fuzz driver: " << n << " inputs, 0 findings\n";
}

// F1: yaml-cpp quotes the offending byte ("unknown escape character: "
// followed by the raw byte: a control character, a newline in a flow
// context), which made a config issue two lines or unprintable.
TEST(FuzzRegressionTest, YamlErrorsQuotingInputStayOneLine) {
  const std::string doc = "network: {node_id: \"a\\\x01" "b\"}\n";
  std::vector<config::Issue> issues = config::ValidateDocument(doc, "f1.yaml");
  ASSERT_FALSE(issues.empty());
  for (char c : issues[0].ToString()) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20) << issues[0].ToString();
  }
  FuzzConfigDocument(doc);
}

// F4: an unknown key is shown as written, control bytes and all, and a
// 100 KiB key made a 100 KiB issue line.
TEST(FuzzRegressionTest, UnknownKeysAreShownPrintableAndBounded) {
  for (const std::string& key : {std::string("\"ne\\x1btwork\""), std::string(100000, 'k')}) {
    std::vector<config::Issue> issues = config::ValidateDocument(key + ": 1\n", "f4.yaml");
    ASSERT_FALSE(issues.empty());
    std::string text = issues[0].ToString();
    EXPECT_LT(text.size(), 1200u);
    for (char c : text) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << text;
    FuzzConfigDocument(key + ": 1\n");
  }
}

}  // namespace
}  // namespace cnet::fuzz
