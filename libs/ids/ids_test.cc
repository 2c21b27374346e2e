#include "libs/ids/ids.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cnet {
namespace {

TEST(IdGeneratorTest, IdsAreUniqueAndSortedWithinOneMillisecond) {
  SimulatedClock clock(absl::FromUnixMillis(1'700'000'000'123));
  IdGenerator gen(&clock);
  std::vector<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.push_back(gen.Next());
  std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size());
  for (size_t i = 1; i < ids.size(); ++i) ASSERT_LT(ids[i - 1], ids[i]);
}

TEST(IdGeneratorTest, LaterTimeSortsLaterAndTimestampDecodes) {
  SimulatedClock clock(absl::FromUnixMillis(1'700'000'000'000));
  IdGenerator gen(&clock);
  std::string a = gen.Next("t-");
  clock.Advance(absl::Milliseconds(1));
  std::string b = gen.Next("t-");
  EXPECT_EQ(a.substr(0, 2), "t-");
  EXPECT_EQ(a.size(), 28u);
  EXPECT_LT(a, b);
  absl::Time ts;
  ASSERT_TRUE(IdTimestamp(b.substr(2), &ts));
  EXPECT_EQ(ts, absl::FromUnixMillis(1'700'000'000'001));
}

TEST(IdTimestampTest, RejectsMalformed) {
  absl::Time ts;
  EXPECT_FALSE(IdTimestamp("short", &ts));
  EXPECT_FALSE(IdTimestamp("01HF3Z6W8QK2R1T5V7XBCDEFGU", &ts));  // U invalid
}

}  // namespace
}  // namespace cnet
