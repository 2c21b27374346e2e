// Bounded randomized driver (#12) for the GitHub response parsers:
// deterministic mutations of real-shaped issue pages and Link headers
// (byte flips, JSON/Link punctuation, truncation, duplication, deep nesting,
// huge strings). Invariants: never crashes; a parsed page's issues have a
// positive number and a state; Link URLs are non-empty and contain no '>'.
// CNET_FUZZ_ITERATIONS sets the budget (default 10000).
#include <cstdlib>
#include <random>

#include "gtest/gtest.h"
#include "libs/github/github_client.h"

namespace cnet::github {
namespace {

int Iterations() {
  const char* env = std::getenv("CNET_FUZZ_ITERATIONS");
  int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 10000;
}

const char* kPage = R"([
 {"id": 1, "number": 12, "title": "msg m-1", "body": "```json\n{\"id\":\"m-1\"}\n```",
  "state": "open", "labels": [{"id": 5, "name": "claudenet"}, {"name": "to:node-b"}],
  "created_at": "2026-11-26T10:00:00Z", "updated_at": "2026-11-26T10:00:01Z"},
 {"number": 13, "title": "a PR", "body": null, "state": "open", "labels": [],
  "pull_request": {"url": "https://api.github.com/repos/o/r/pulls/13"}}
])";

const char* kLink =
    "<https://api.github.com/repositories/9/issues?state=open&labels=a,b&per_page=2&page=2>; "
    "rel=\"next\", <https://api.github.com/repositories/9/issues?page=7>; rel=\"last\"";

std::string Mutate(std::string s, std::mt19937_64& rng) {
  static const std::vector<std::string> kTokens = {
      "{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "-1", "1e400", "\"number\":",
      "\"labels\":", "\"pull_request\":", "<", ">", ";", "rel=", "rel=\"next\"", " ", "\x00",
      "\xff\xfe", "\\u0000", "\"name\":1"};
  int rounds = 1 + static_cast<int>(rng() % 5);
  for (int r = 0; r < rounds; ++r) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 7) {
      case 0:
        if (pos < s.size()) s[pos] = static_cast<char>(rng());
        break;
      case 1:
        s.insert(pos, kTokens[rng() % kTokens.size()]);
        break;
      case 2:
        s.resize(pos);
        break;
      case 3:
        s.insert(pos, s.substr(pos, rng() % 400));
        break;
      case 4:
        s.insert(pos, std::string(1 + rng() % 5000, rng() % 2 ? '[' : '{'));
        break;
      case 5:
        s.insert(pos, std::string(1 + rng() % 20000, 'x'));
        break;
      case 6:
        if (pos < s.size()) s.erase(pos, rng() % 60);
        break;
    }
  }
  return s;
}

TEST(GitHubFuzzTest, MutatedPagesAndLinksNeverCrash) {
  std::mt19937_64 rng(8126);
  const int n = Iterations();
  int pages_ok = 0, pages_rejected = 0, links_found = 0;
  for (int it = 0; it < n; ++it) {
    auto page = ParseIssuesPage(Mutate(kPage, rng));
    if (page.ok()) {
      ++pages_ok;
      for (const auto& i : *page) {
        ASSERT_GT(i.number, 0);
      }
    } else {
      ++pages_rejected;
      ASSERT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument);
    }
    auto links = ParseLinkHeader(Mutate(kLink, rng));
    for (const auto& [rel, url] : links) {
      ASSERT_FALSE(rel.empty());
      ASSERT_FALSE(url.empty());
      ASSERT_EQ(url.find('>'), std::string::npos);
      ++links_found;
    }
  }
  std::printf("github fuzz: %d iterations, %d pages parsed, %d rejected, %d links\n", n, pages_ok,
              pages_rejected, links_found);
}

}  // namespace
}  // namespace cnet::github
