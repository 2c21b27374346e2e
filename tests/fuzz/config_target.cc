#include <string>
#include <vector>

#include "libs/config/loader.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/targets.h"

namespace cnet::fuzz {

void FuzzConfigDocument(std::string_view data) {
  std::vector<config::Issue> issues;
  try {
    issues = config::ValidateDocument(std::string(data), "fuzz.yaml");
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("ValidateDocument threw: ") + e.what());
  }
  for (const config::Issue& issue : issues) {
    FUZZ_CHECK(issue.origin == "fuzz.yaml", issue.ToString());
    FUZZ_CHECK(!issue.reason.empty(), issue.ToString());
    FUZZ_CHECK(!issue.key.empty() || issue.line > 0, issue.ToString());
    FUZZ_CHECK(issue.ToString().size() < 4096, issue.ToString().substr(0, 300));
    for (char c : issue.ToString()) {
      FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20, "control byte in: " + issue.ToString());
    }
  }
}

}  // namespace cnet::fuzz
