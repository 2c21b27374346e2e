// Shared fixture for the board's core tests: a board over a temp-dir store,
// a SimulatedClock, an in-memory directory and a recording notifier, with
// everything inline (no background threads), plus shorthands for the common
// moves.
#ifndef CNET_SERVICES_TASKS_BOARD_TEST_UTIL_H_
#define CNET_SERVICES_TASKS_BOARD_TEST_UTIL_H_

#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "services/tasks/board.h"
#include "services/tasks/in_memory.h"
#include "services/tasks/store.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks::testing {

inline std::string kSha1() { return std::string(40, 'a'); }
inline std::string kSha2() { return std::string(40, 'b'); }
inline std::string kSha3() { return std::string(40, 'c'); }

struct Held {
  pb::Task task;
  std::string lease_id;
  int64_t epoch = 0;
};

class BoardFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/boardXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    OpenBoard();
  }

  void TearDown() override {
    board_.reset();
    store_.reset();
  }

  virtual BoardOptions Options() {
    BoardOptions o;
    o.background = false;
    o.push_assignment = false;
    o.sweep_interval = absl::ZeroDuration();
    o.steal_threshold = 2;
    return o;
  }

  void OpenBoard() {
    board_.reset();
    store_.reset();
    Store::Options so;
    so.path = dir_ + "/tasks.db";
    auto store = Store::Open(so);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto board = Board::Open(Options(), store_.get(), &clock_, &directory_, &notifier_);
    ASSERT_TRUE(board.ok()) << board.status();
    board_ = std::move(*board);
  }

  void AddAgent(const std::string& id, std::vector<std::string> caps = {"py"}, int limit = 10) {
    AgentInfo a;
    a.id = id;
    a.capabilities = std::move(caps);
    a.max_concurrent_tasks = limit;
    directory_.Put(a);
  }

  static Actor Agent(const std::string& id) { return Actor::Agent(id); }

  pb::Task Create(const std::string& title = "t", std::vector<std::string> caps = {"py"},
                  std::vector<std::string> deps = {}, const Actor& creator = Actor::Agent("boss")) {
    pb::CreateTaskRequest req;
    req.set_title(title);
    for (auto& c : caps) req.add_required_capabilities(c);
    for (auto& d : deps) req.add_dependencies(d);
    auto r = board_->Create(creator, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->task : pb::Task();
  }

  pb::Task CreateWith(pb::CreateTaskRequest req, const Actor& creator = Actor::Agent("boss")) {
    if (req.title().empty()) req.set_title("t");
    auto r = board_->Create(creator, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->task : pb::Task();
  }

  pb::Task Get(const std::string& id) {
    auto t = board_->Get(id);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : pb::Task();
  }

  Held Claim(const std::string& agent, const std::string& task_id = "") {
    pb::ClaimRequest req;
    req.set_task_id(task_id);
    req.set_disable_steal(true);
    auto r = board_->Claim(Agent(agent), req);
    EXPECT_TRUE(r.ok()) << r.status();
    Held h;
    if (r.ok() && r->has_task()) {
      h.task = r->task();
      h.lease_id = r->lease().lease_id();
      h.epoch = r->lease().epoch();
    }
    return h;
  }

  absl::Status Start(const std::string& agent, const Held& h) {
    pb::StartRequest req;
    req.set_task_id(h.task.id());
    req.set_lease_id(h.lease_id);
    req.set_lease_epoch(h.epoch);
    return board_->Start(Agent(agent), req).status();
  }

  absl::StatusOr<pb::CompleteResponse> Complete(const std::string& agent, const Held& h,
                                                const std::string& sha = "") {
    pb::CompleteRequest req;
    req.set_task_id(h.task.id());
    req.set_lease_id(h.lease_id);
    req.set_lease_epoch(h.epoch);
    if (!sha.empty()) req.mutable_result()->set_commit_sha(sha);
    return board_->Complete(Agent(agent), req);
  }

  absl::StatusOr<pb::ProgressResponse> Progress(const std::string& agent, const Held& h,
                                                double percent = 10) {
    pb::ProgressRequest req;
    req.set_task_id(h.task.id());
    req.set_lease_id(h.lease_id);
    req.set_lease_epoch(h.epoch);
    req.set_percent(percent);
    return board_->Progress(Agent(agent), req);
  }

  absl::StatusOr<pb::RenewLeaseResponse> Renew(const std::string& agent, const Held& h) {
    pb::RenewLeaseRequest req;
    req.set_task_id(h.task.id());
    req.set_lease_id(h.lease_id);
    req.set_lease_epoch(h.epoch);
    return board_->RenewLease(Agent(agent), req);
  }

  // Claim, start and complete in one go.
  void RunToCompletion(const std::string& agent, const std::string& task_id,
                       const std::string& sha = "") {
    Held h = Claim(agent, task_id);
    ASSERT_EQ(h.task.id(), task_id);
    ASSERT_TRUE(Start(agent, h).ok());
    auto c = Complete(agent, h, sha);
    ASSERT_TRUE(c.ok()) << c.status();
  }

  std::vector<pb::TaskTransition> History(const std::string& id) {
    pb::GetHistoryRequest req;
    req.set_task_id(id);
    req.set_page_size(1000);
    auto r = board_->History(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::vector<pb::TaskTransition>(r->transitions().begin(),
                                                    r->transitions().end())
                  : std::vector<pb::TaskTransition>{};
  }

  std::string dir_;
  SimulatedClock clock_;
  InMemoryDirectory directory_;
  RecordingNotifier notifier_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Board> board_;
};

}  // namespace cnet::tasks::testing

#endif  // CNET_SERVICES_TASKS_BOARD_TEST_UTIL_H_
