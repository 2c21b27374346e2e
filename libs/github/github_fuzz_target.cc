// libFuzzer entry point for the GitHub response parsers (build with clang
// -fsanitize=fuzzer; see tools/fuzz.sh). The first byte selects the parser.
#include <cstddef>
#include <cstdint>

#include "libs/github/github_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  absl::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    (void)cnet::github::ParseIssuesPage(in);
  } else {
    (void)cnet::github::ParseLinkHeader(in);
  }
  return 0;
}
