#include "libs/stream/event_hub.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace cnet {
namespace {

TEST(EventHubTest, EverySubscriberGetsEveryItemInOrder) {
  EventHub<int> hub;
  int wakes_a = 0;
  auto a = hub.Subscribe(10, [&] { ++wakes_a; });
  auto b = hub.Subscribe(10, nullptr);
  for (int i = 0; i < 5; ++i) hub.Publish(i);
  EXPECT_EQ(wakes_a, 5);
  for (auto* sub : {a.get(), b.get()}) {
    int v;
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(sub->Pop(&v));
      EXPECT_EQ(v, i);
    }
    EXPECT_FALSE(sub->Pop(&v));
  }
}

TEST(EventHubTest, SlowSubscriberOverflowsWithoutAffectingOthers) {
  EventHub<int> hub;
  auto slow = hub.Subscribe(3, nullptr);
  auto fast = hub.Subscribe(100, nullptr);
  for (int i = 0; i < 10; ++i) hub.Publish(i);
  EXPECT_TRUE(slow->overflowed());
  EXPECT_EQ(slow->pending(), 3u);
  EXPECT_FALSE(fast->overflowed());
  EXPECT_EQ(fast->pending(), 10u);
}

TEST(EventHubTest, UnsubscribedReaderIsNeverNotifiedAgain) {
  EventHub<int> hub;
  int wakes = 0;
  auto sub = hub.Subscribe(10, [&] { ++wakes; });
  hub.Publish(1);
  hub.Unsubscribe(sub);
  hub.Publish(2);
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(hub.subscriber_count(), 0u);
}

TEST(EventHubTest, CloseWakesSubscribersAndMarksThemClosed) {
  EventHub<int> hub;
  int wakes = 0;
  auto sub = hub.Subscribe(10, [&] { ++wakes; });
  hub.Close();
  EXPECT_EQ(wakes, 1);
  EXPECT_TRUE(sub->closed());
  auto late = hub.Subscribe(10, nullptr);
  EXPECT_TRUE(late->closed());
}

TEST(EventHubTest, ConcurrentPublishersLoseNothing) {
  EventHub<int> hub;
  auto sub = hub.Subscribe(100000, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&hub, t] {
      for (int i = 0; i < 1000; ++i) hub.Publish(t * 1000 + i);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(sub->pending(), 4000u);
  // Per-publisher order is kept.
  std::vector<int> last(4, -1);
  int v;
  while (sub->Pop(&v)) {
    int t = v / 1000;
    EXPECT_GT(v, last[t]);
    last[t] = v;
  }
}

}  // namespace
}  // namespace cnet
