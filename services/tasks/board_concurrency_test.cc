// Many agents claiming from one board at once: every task is handed out
// exactly once, and the store agrees with memory afterwards.
#include <thread>

#include "services/tasks/board_test_util.h"

namespace cnet::tasks {
namespace {

using testing::BoardFixture;

class ConcurrencyTest : public BoardFixture {};

TEST_F(ConcurrencyTest, EightAgentsClaimTwoThousandTasksEachExactlyOnce) {
  constexpr int kAgents = 8;
  constexpr int kTasks = 2000;
  for (int a = 0; a < kAgents; ++a) AddAgent(absl::StrCat("agent-", a), {"py"}, kTasks);
  std::set<std::string> created;
  for (int i = 0; i < kTasks; ++i) created.insert(Create(absl::StrCat("t", i)).id());
  ASSERT_EQ(created.size(), static_cast<size_t>(kTasks));

  std::vector<std::vector<std::string>> claimed(kAgents);
  std::vector<std::thread> threads;
  for (int a = 0; a < kAgents; ++a) {
    threads.emplace_back([&, a] {
      const std::string agent = absl::StrCat("agent-", a);
      pb::ClaimRequest req;
      req.set_disable_steal(true);
      while (true) {
        auto r = board_->Claim(Actor::Agent(agent), req);
        ASSERT_TRUE(r.ok()) << r.status();
        if (!r->has_task()) break;
        claimed[a].push_back(r->task().id());
        // Half of the agents also finish what they claim, so claims race
        // with other writes.
        if (a % 2 == 0) {
          pb::StartRequest s;
          s.set_task_id(r->task().id());
          s.set_lease_id(r->lease().lease_id());
          s.set_lease_epoch(r->lease().epoch());
          ASSERT_TRUE(board_->Start(Actor::Agent(agent), s).ok());
          pb::CompleteRequest c;
          c.set_task_id(r->task().id());
          c.set_lease_id(r->lease().lease_id());
          c.set_lease_epoch(r->lease().epoch());
          ASSERT_TRUE(board_->Complete(Actor::Agent(agent), c).ok());
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  std::map<std::string, int> times;
  for (int a = 0; a < kAgents; ++a) {
    for (const std::string& id : claimed[a]) {
      ++times[id];
      pb::Task t = Get(id);
      EXPECT_EQ(t.former_holders_size(), 1) << id;
      EXPECT_EQ(t.former_holders(0), absl::StrCat("agent-", a)) << id;
      EXPECT_EQ(t.lease().epoch() == 0 ? 1 : t.lease().epoch(), 1) << id;
    }
  }
  EXPECT_EQ(times.size(), static_cast<size_t>(kTasks));
  for (const auto& [id, n] : times) EXPECT_EQ(n, 1) << id << " was handed out " << n << " times";
  for (int a = 0; a < kAgents; ++a) EXPECT_GT(claimed[a].size(), 0u) << "agent-" << a;

  // What was acknowledged is on disk: reopen and compare.
  std::map<std::string, pb::TaskState> before;
  for (const std::string& id : created) before[id] = Get(id).state();
  OpenBoard();
  for (const std::string& id : created) EXPECT_EQ(Get(id).state(), before[id]) << id;
  for (const std::string& id : created) {
    auto h = History(id);
    EXPECT_GE(h.size(), 3u);
    EXPECT_EQ(h[2].to_state(), pb::TASK_STATE_ASSIGNED);
  }
}

}  // namespace
}  // namespace cnet::tasks
