#include "libs/limits/limits.h"

#include "gtest/gtest.h"

namespace cnet::limits {
namespace {

TEST(RateLimiterTest, BurstThenRatePerKey) {
  SimulatedClock clock;
  RateLimiter limiter(&clock, /*per_sec=*/2, /*burst=*/3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  absl::Duration wait = limiter.Take("a");
  EXPECT_GT(wait, absl::ZeroDuration());
  EXPECT_LE(wait, absl::Milliseconds(500));
  EXPECT_EQ(limiter.Take("b"), absl::ZeroDuration());  // keys are independent
  clock.Advance(wait);
  EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("a"), absl::ZeroDuration());
  clock.Advance(absl::Hours(1));  // refills to the burst, never beyond
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take("a"), absl::ZeroDuration());
  EXPECT_GT(limiter.Take("a"), absl::ZeroDuration());
}

TEST(RateLimiterTest, DisabledAndBoundedInMemory) {
  SimulatedClock clock;
  RateLimiter off(&clock, 0, 1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(off.Take("a"), absl::ZeroDuration());
  RateLimiter small(&clock, 1, 1, /*max_keys=*/2);
  EXPECT_EQ(small.Take("a"), absl::ZeroDuration());
  EXPECT_EQ(small.Take("b"), absl::ZeroDuration());
  // Both keys are busy: a third is refused, not remembered.
  EXPECT_GT(small.Take("c"), absl::ZeroDuration());
  clock.Advance(absl::Seconds(1));  // a and b refilled: forgotten on demand
  EXPECT_EQ(small.Take("c"), absl::ZeroDuration());
}

TEST(StreamSlotsTest, AtMostNPerKeyReleasedOnDestruction) {
  StreamSlots slots(2);
  auto a1 = slots.Acquire("a");
  auto a2 = slots.Acquire("a");
  ASSERT_NE(a1, nullptr);
  ASSERT_NE(a2, nullptr);
  EXPECT_EQ(slots.Acquire("a"), nullptr);
  EXPECT_NE(slots.Acquire("b"), nullptr);
  EXPECT_EQ(slots.open("a"), 2);
  a1.reset();
  EXPECT_EQ(slots.open("a"), 1);
  EXPECT_NE(slots.Acquire("a"), nullptr);
}

TEST(RetryAfterTest, RoundsUp) {
  EXPECT_EQ(RetryAfterText(absl::Milliseconds(1)), "retry after 1s");
  EXPECT_EQ(RetryAfterText(absl::Milliseconds(2100)), "retry after 3s");
  EXPECT_EQ(RetryAfterMs(absl::Microseconds(1)), 1);
  EXPECT_EQ(RetryAfterMs(absl::Milliseconds(1500)), 1500);
}

}  // namespace
}  // namespace cnet::limits
