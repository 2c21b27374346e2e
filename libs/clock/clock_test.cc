#include "libs/clock/clock.h"

#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace cnet {
namespace {

TEST(SimulatedClockTest, TimeMovesOnlyOnAdvance) {
  SimulatedClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Seconds(15));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(115));
}

TEST(SimulatedClockTest, TimersRunInOrderAtTheirDeadline) {
  SimulatedClock clock(absl::FromUnixSeconds(0));
  std::vector<std::pair<int, absl::Time>> fired;
  clock.RunAt(absl::FromUnixSeconds(30), [&] { fired.push_back({30, clock.Now()}); });
  clock.RunAt(absl::FromUnixSeconds(10), [&] { fired.push_back({10, clock.Now()}); });
  clock.RunAfter(absl::Seconds(20), [&] { fired.push_back({20, clock.Now()}); });
  clock.Advance(absl::Seconds(25));
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0].first, 10);
  EXPECT_EQ(fired[0].second, absl::FromUnixSeconds(10));
  EXPECT_EQ(fired[1].first, 20);
  EXPECT_EQ(fired[1].second, absl::FromUnixSeconds(20));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(25));
  EXPECT_EQ(clock.PendingTimers(), 1u);
  clock.Advance(absl::Seconds(5));
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[2].second, absl::FromUnixSeconds(30));
}

TEST(SimulatedClockTest, CallbackMayScheduleAnotherWithinTheSpan) {
  SimulatedClock clock(absl::FromUnixSeconds(0));
  std::vector<absl::Time> ticks;
  std::function<void()> tick = [&] {
    ticks.push_back(clock.Now());
    if (ticks.size() < 5) clock.RunAfter(absl::Seconds(15), tick);
  };
  clock.RunAfter(absl::Seconds(15), tick);
  clock.Advance(absl::Seconds(60));
  ASSERT_EQ(ticks.size(), 4u);
  EXPECT_EQ(ticks[3], absl::FromUnixSeconds(60));
}

TEST(SimulatedClockTest, CancelledTimerNeverRuns) {
  SimulatedClock clock;
  bool ran = false;
  Clock::TimerId id = clock.RunAfter(absl::Seconds(1), [&] { ran = true; });
  EXPECT_TRUE(clock.Cancel(id));
  EXPECT_FALSE(clock.Cancel(id));
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(ran);
}

TEST(RealClockTest, FiresATimerThatIsAlreadyDue) {
  RealClock clock;
  absl::Notification done;
  clock.RunAt(clock.Now() - absl::Seconds(1), [&] { done.Notify(); });
  // Waits on the event itself; the generous bound only guards a hang.
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST(RealClockTest, EarlierTimerAddedLaterWakesTheLoop) {
  RealClock clock;
  absl::Notification done;
  clock.RunAfter(absl::Hours(1), [] {});
  clock.RunAt(clock.Now(), [&] { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

}  // namespace
}  // namespace cnet
