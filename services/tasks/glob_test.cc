// The reservation glob language: parsing, matching concrete paths, and the
// exact overlap of two patterns.
#include "services/tasks/glob.h"

#include "gtest/gtest.h"

namespace cnet::tasks {
namespace {

Glob G(const std::string& p) {
  auto g = Glob::Parse(p, "pattern");
  EXPECT_TRUE(g.ok()) << p << ": " << g.status();
  return *g;
}

bool Match(const std::string& pattern, const std::string& path) {
  auto lit = Glob::Literal(path, "path");
  EXPECT_TRUE(lit.ok()) << path << ": " << lit.status();
  return G(pattern).Matches(*lit);
}

bool Overlap(const std::string& a, const std::string& b) {
  bool ab = G(a).Overlaps(G(b));
  EXPECT_EQ(ab, G(b).Overlaps(G(a))) << "overlap must be symmetric: " << a << " / " << b;
  return ab;
}

TEST(GlobTest, Matching) {
  EXPECT_TRUE(Match("src/main.cc", "src/main.cc"));
  EXPECT_FALSE(Match("src/main.cc", "src/main.h"));
  EXPECT_TRUE(Match("src/*.cc", "src/main.cc"));
  EXPECT_FALSE(Match("src/*.cc", "src/sub/main.cc"));  // * stays within a segment
  EXPECT_TRUE(Match("src/**/*.cc", "src/main.cc"));   // ** may be no segment
  EXPECT_TRUE(Match("src/**/*.cc", "src/a/b/c/main.cc"));
  EXPECT_TRUE(Match("src/", "src/a/b.txt"));          // trailing '/' = whole directory
  EXPECT_FALSE(Match("src/", "srcx/a"));
  EXPECT_TRUE(Match("?.md", "a.md"));
  EXPECT_FALSE(Match("?.md", "ab.md"));
  EXPECT_TRUE(Match("app/[id].tsx", "app/[id].tsx"));  // brackets are literal
  EXPECT_FALSE(Match("app/[id].tsx", "app/i.tsx"));
  EXPECT_TRUE(Match("a\\*b", "a*b"));                   // escaped star is literal
  EXPECT_FALSE(Match("a\\*b", "axb"));
  EXPECT_TRUE(Match("**", "anything/at/all"));
}

TEST(GlobTest, OverlapIsExact) {
  EXPECT_TRUE(Overlap("src/*.cc", "src/main.*"));       // src/main.cc
  EXPECT_FALSE(Overlap("src/*.cc", "src/*.h"));
  EXPECT_TRUE(Overlap("src/**", "src/a/b.cc"));
  EXPECT_TRUE(Overlap("**/test_*.py", "tests/**"));     // tests/test_x.py
  EXPECT_FALSE(Overlap("docs/**", "src/**"));
  EXPECT_TRUE(Overlap("a/*/c", "a/b/*"));               // a/b/c
  EXPECT_FALSE(Overlap("a/*/c", "a/b/d"));
  EXPECT_FALSE(Overlap("a/*", "a/*/b"));                // different depths
  EXPECT_TRUE(Overlap("a/**/b", "a/x/**"));             // a/x/b
  EXPECT_TRUE(Overlap("*a*", "*b*"));                   // ab
  EXPECT_FALSE(Overlap("a*", "b*"));
  EXPECT_FALSE(Overlap("?", "??"));
  EXPECT_TRUE(Overlap("src/", "src/x.cc"));
  EXPECT_TRUE(Overlap("src/", "src"));  // src/** with ** as no segment: the language says so
  EXPECT_TRUE(Overlap("**", "x"));
}

TEST(GlobTest, BadPatternsNameTheFieldAndTheFault) {
  for (const char* bad : {"", "/abs", "a//b", "a/./b", "../up", "trailing\\"}) {
    auto g = Glob::Parse(bad, "patterns[0]");
    ASSERT_FALSE(g.ok()) << bad;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(g.status().message()).find("patterns[0]"), std::string::npos);
  }
  EXPECT_FALSE(Glob::Parse(std::string(1025, 'a'), "p").ok());
  EXPECT_FALSE(Glob::Literal("dir/", "paths[0]").ok());
  EXPECT_TRUE(Glob::Parse(".github/workflows/*.yml", "p").ok());
}

}  // namespace
}  // namespace cnet::tasks
