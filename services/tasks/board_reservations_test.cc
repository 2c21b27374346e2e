// Path reservations on the board (simulated clock): exclusive and shared
// conflicts over globs, per-pattern answers, TTL expiry and the warning
// before it, expiry when the holder goes DEAD, check, release, force
// release, changed-path overlaps, bad inputs, events and restart.
#include "services/tasks/board_test_util.h"

namespace cnet::tasks {
namespace {

using testing::BoardFixture;

class ReservationsTest : public BoardFixture {
 protected:
  void SetUp() override {
    BoardFixture::SetUp();
    for (const char* a : {"a1", "a2", "a3"}) AddAgent(a);
    sub_ = board_->hub()->Subscribe(10000, [] {});
  }

  absl::StatusOr<pb::ReserveResponse> Reserve(const std::string& agent,
                                              std::vector<std::string> patterns,
                                              pb::ReservationMode mode = pb::RESERVATION_MODE_EXCLUSIVE,
                                              bool partial = false,
                                              absl::Duration ttl = absl::Minutes(15)) {
    pb::ReserveRequest r;
    r.set_workspace("github.com/org/repo");
    for (auto& p : patterns) r.add_patterns(p);
    r.set_mode(mode);
    r.set_allow_partial(partial);
    r.set_reason("refactoring");
    *r.mutable_ttl() = ToProtoDuration(ttl);
    return board_->Reserve(Agent(agent), r);
  }

  pb::CheckPathsResponse Check(const std::string& agent, std::vector<std::string> paths) {
    pb::CheckPathsRequest r;
    r.set_workspace("github.com/org/repo");
    for (auto& p : paths) r.add_paths(p);
    auto resp = board_->CheckPaths(Agent(agent), r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : pb::CheckPathsResponse();
  }

  int Live() {
    auto r = board_->ListReservations(pb::ListReservationsRequest());
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->reservations_size() : -1;
  }

  std::vector<pb::TaskEvent> Events(pb::TaskEventType type) {
    BoardEventPtr ev;
    while (sub_->Pop(&ev)) seen_.push_back(ev->event);
    std::vector<pb::TaskEvent> out;
    for (const auto& e : seen_) {
      if (e.type() == type) out.push_back(e);
    }
    return out;
  }

  std::shared_ptr<EventHub<BoardEventPtr>::Subscriber> sub_;
  std::vector<pb::TaskEvent> seen_;
};

TEST_F(ReservationsTest, ExclusiveConflictsNameTheHolderAndStoreNothing) {
  auto first = Reserve("a1", {"src/**"});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->results(0).outcome(), pb::PATH_OUTCOME_OK);
  const std::string id = first->results(0).reservation_id();
  EXPECT_EQ(Events(pb::TASK_EVENT_TYPE_RESERVATION_GRANTED).size(), 1u);

  auto clash = Reserve("a2", {"docs/**", "src/main.cc"});
  ASSERT_EQ(clash.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(clash.status()), "RESERVATION_CONFLICT");
  std::string msg(clash.status().message());
  EXPECT_NE(msg.find("a1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("src/**"), std::string::npos) << msg;
  EXPECT_NE(msg.find("until"), std::string::npos) << msg;
  EXPECT_EQ(Live(), 1);  // all-or-nothing: docs/** was not reserved either

  auto partial = Reserve("a2", {"docs/**", "src/main.cc"}, pb::RESERVATION_MODE_EXCLUSIVE, true);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->results(0).outcome(), pb::PATH_OUTCOME_OK);
  EXPECT_EQ(partial->results(1).outcome(), pb::PATH_OUTCOME_CONFLICT);
  ASSERT_EQ(partial->results(1).conflicts_size(), 1);
  EXPECT_EQ(partial->results(1).conflicts(0).holder(), "a1");
  EXPECT_EQ(partial->results(1).conflicts(0).resource_id(), id);
  EXPECT_EQ(partial->results(1).conflicts(0).held(), "src/**");
  EXPECT_EQ(Live(), 2);

  // An agent's own reservations never conflict with each other.
  EXPECT_TRUE(Reserve("a1", {"src/a.cc"}).ok());
  // Reserving the same pattern again renews it.
  clock_.Advance(absl::Minutes(1));
  auto again = Reserve("a1", {"src/**"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->results(0).reservation_id(), id);
  EXPECT_EQ(FromProto(again->results(0).expires_at()), clock_.Now() + absl::Minutes(15));
  EXPECT_EQ(Events(pb::TASK_EVENT_TYPE_RESERVATION_RENEWED).size(), 1u);
}

TEST_F(ReservationsTest, SharedReservationsCoexistAndExcludeExclusiveOnes) {
  ASSERT_TRUE(Reserve("a1", {"lib/**"}, pb::RESERVATION_MODE_SHARED).ok());
  ASSERT_TRUE(Reserve("a2", {"lib/a.cc"}, pb::RESERVATION_MODE_SHARED).ok());
  auto excl = Reserve("a3", {"lib/b.cc"});
  EXPECT_EQ(excl.status().code(), absl::StatusCode::kFailedPrecondition);
  auto c = Check("a3", {"lib/a.cc", "lib/z.cc", "other.txt"});
  EXPECT_TRUE(c.allowed());
  EXPECT_EQ(c.results(0).verdict(), pb::PATH_VERDICT_SHARED_WITH_OTHERS);
  EXPECT_EQ(c.results(0).reservations_size(), 2);
  EXPECT_EQ(c.results(2).verdict(), pb::PATH_VERDICT_FREE);
  ASSERT_TRUE(Reserve("a3", {"bin/**"}).ok());
  c = Check("a1", {"bin/tool", "lib/a.cc"});
  EXPECT_FALSE(c.allowed());
  EXPECT_EQ(c.results(0).verdict(), pb::PATH_VERDICT_RESERVED_BY_OTHER);
  EXPECT_EQ(c.results(0).reservations(0).holder(), "a3");
  // Its own shared reservation covers it; a2's shared one is listed.
  EXPECT_EQ(c.results(1).verdict(), pb::PATH_VERDICT_HELD_BY_AGENT);
  ASSERT_EQ(c.results(1).reservations_size(), 1);
  EXPECT_EQ(c.results(1).reservations(0).holder(), "a2");
  EXPECT_EQ(Check("a3", {"bin/tool"}).results(0).verdict(), pb::PATH_VERDICT_HELD_BY_AGENT);
}

TEST_F(ReservationsTest, TtlExpiryWarnsFirstAndAnswersExpiredAfterwards) {
  auto r = Reserve("a1", {"src/**"}, pb::RESERVATION_MODE_EXCLUSIVE, false, absl::Minutes(10));
  ASSERT_TRUE(r.ok());
  const std::string id = r->results(0).reservation_id();
  clock_.Advance(absl::Minutes(8));
  auto soon = Events(pb::TASK_EVENT_TYPE_RESERVATION_EXPIRING_SOON);
  ASSERT_EQ(soon.size(), 1u);
  EXPECT_EQ(soon[0].reservation().holder(), "a1");
  EXPECT_EQ(Check("a2", {"src/x"}).results(0).verdict(), pb::PATH_VERDICT_RESERVED_BY_OTHER);
  clock_.Advance(absl::Minutes(2));
  EXPECT_EQ(Events(pb::TASK_EVENT_TYPE_RESERVATION_EXPIRED).size(), 1u);
  EXPECT_EQ(Check("a2", {"src/x"}).results(0).verdict(), pb::PATH_VERDICT_FREE);
  pb::RenewReservationRequest renew;
  renew.set_workspace("github.com/org/repo");
  renew.add_patterns("src/**");
  renew.add_reservation_ids(id);
  renew.add_reservation_ids("res-nothing");
  auto rr = board_->RenewReservation(Agent("a1"), renew);
  ASSERT_TRUE(rr.ok());
  EXPECT_EQ(rr->results(0).outcome(), pb::PATH_OUTCOME_EXPIRED);
  EXPECT_EQ(rr->results(1).outcome(), pb::PATH_OUTCOME_EXPIRED);
  EXPECT_EQ(rr->results(2).outcome(), pb::PATH_OUTCOME_NOT_FOUND);
}

TEST_F(ReservationsTest, RenewalKeepsItAliveAndOthersGetNotOwner) {
  auto r = Reserve("a1", {"src/**"}, pb::RESERVATION_MODE_EXCLUSIVE, false, absl::Minutes(10));
  ASSERT_TRUE(r.ok());
  pb::RenewReservationRequest renew;
  renew.add_reservation_ids(r->results(0).reservation_id());
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Minutes(7));
    auto ok = board_->RenewReservation(Agent("a1"), renew);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->results(0).outcome(), pb::PATH_OUTCOME_OK);
  }
  EXPECT_EQ(Live(), 1);
  auto other = board_->RenewReservation(Agent("a2"), renew);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->results(0).outcome(), pb::PATH_OUTCOME_NOT_OWNER);
}

TEST_F(ReservationsTest, HolderDeadReleasesItsReservations) {
  ASSERT_TRUE(Reserve("a1", {"src/**", "docs/**"}).ok());
  ASSERT_TRUE(Reserve("a2", {"tests/**"}).ok());
  directory_.SetHealth("a1", pb::HEALTH_DEAD);
  EXPECT_EQ(Live(), 1);
  EXPECT_EQ(Events(pb::TASK_EVENT_TYPE_RESERVATION_EXPIRED).size(), 2u);
  EXPECT_TRUE(Reserve("a3", {"src/main.cc"}).ok());
}

TEST_F(ReservationsTest, ReleaseAnswersPerItemAndIsSafeToRepeat) {
  auto r = Reserve("a1", {"src/**", "docs/**"});
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(Reserve("a2", {"tests/**"}).ok());
  pb::ReleaseReservationRequest rel;
  rel.set_workspace("github.com/org/repo");
  rel.add_patterns("src/**");
  rel.add_patterns("tests/**");
  auto first = board_->ReleaseReservation(Agent("a1"), rel);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->results(0).outcome(), pb::PATH_OUTCOME_OK);
  EXPECT_EQ(first->results(1).outcome(), pb::PATH_OUTCOME_NOT_OWNER);
  EXPECT_EQ(first->released_count(), 1);
  auto again = board_->ReleaseReservation(Agent("a1"), rel);
  EXPECT_EQ(again->results(0).outcome(), pb::PATH_OUTCOME_NOT_FOUND);
  pb::ReleaseReservationRequest all;
  all.set_all(true);
  auto everything = board_->ReleaseReservation(Agent("a1"), all);
  EXPECT_EQ(everything->released_count(), 1);
  EXPECT_EQ(Live(), 1);
  EXPECT_EQ(board_->ReleaseReservation(Agent("a1"), pb::ReleaseReservationRequest())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ReservationsTest, ForceReleaseIsForAdminsAndTellsTheHolder) {
  ASSERT_TRUE(Reserve("a1", {"src/**"}).ok());
  pb::ForceReleaseRequest f;
  f.set_holder("a1");
  f.set_reason("a1 left for the day");
  EXPECT_EQ(board_->ForceRelease(Agent("a2"), f).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto r = board_->ForceRelease(Actor::Admin(), f);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->released_count(), 1);
  EXPECT_EQ(Live(), 0);
  EXPECT_EQ(notifier_.Count("a1", "reservation_released"), 1);
}

TEST_F(ReservationsTest, OverlappingChangedPathsRaiseAConflictForBoth) {
  pb::ReportChangedPathsRequest r1;
  r1.set_workspace("github.com/org/repo");
  r1.set_base_ref("main");
  r1.add_paths("src/a.cc");
  r1.add_paths("src/b.cc");
  auto first = board_->ReportChangedPaths(Agent("a1"), r1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->overlaps_size(), 0);
  ASSERT_TRUE(Reserve("a1", {"src/b.cc"}).ok());
  pb::ReportChangedPathsRequest r2 = r1;
  r2.clear_paths();
  r2.add_paths("src/b.cc");
  r2.add_paths("src/c.cc");
  auto second = board_->ReportChangedPaths(Agent("a2"), r2);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->overlaps_size(), 1);
  EXPECT_EQ(second->overlaps(0).other_agent_id(), "a1");
  EXPECT_EQ(second->overlaps(0).paths(0), "src/b.cc");
  EXPECT_EQ(second->overlaps(0).other_base_ref(), "main");
  ASSERT_EQ(second->reserved_by_others_size(), 1);
  EXPECT_EQ(second->reserved_by_others(0).path(), "src/b.cc");
  auto conflicts = Events(pb::TASK_EVENT_TYPE_CHANGED_PATHS_CONFLICT);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].changed_paths_conflict().agent_id(), "a2");
  EXPECT_EQ(conflicts[0].changed_paths_conflict().other_agent_id(), "a1");
  EXPECT_EQ(notifier_.Count("a1", "changed_paths_conflict"), 1);
  // A watcher of either agent sees it.
  pb::WatchTasksRequest w;
  w.set_agent_id("a1");
  BoardEvent be;
  be.event = conflicts[0];
  EXPECT_TRUE(Board::WatchMatches(w, be));
  // Reports lapse.
  clock_.Advance(absl::Hours(1));
  auto later = board_->ReportChangedPaths(Agent("a3"), r2);
  EXPECT_EQ(later->overlaps_size(), 0);
}

TEST_F(ReservationsTest, BadInputsAreRefusedAndStoreNothing) {
  auto code = [&](const std::string& agent, std::vector<std::string> patterns,
                  absl::Duration ttl = absl::Minutes(15)) {
    return Reserve(agent, std::move(patterns), pb::RESERVATION_MODE_EXCLUSIVE, false, ttl)
        .status()
        .code();
  };
  EXPECT_EQ(code("a1", {"src/**", "src/a.cc"}), absl::StatusCode::kInvalidArgument);  // overlap
  EXPECT_EQ(code("a1", {"/abs/path"}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code("a1", {"a//b"}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code("a1", {"x"}, absl::Seconds(5)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code("a1", {"x"}, absl::Hours(25)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code("a1", {}), absl::StatusCode::kInvalidArgument);
  pb::ReserveRequest other;
  other.set_agent_id("a2");
  other.set_workspace("w");
  other.add_patterns("x");
  EXPECT_EQ(board_->Reserve(Agent("a1"), other).status().code(),
            absl::StatusCode::kPermissionDenied);
  pb::ReserveRequest no_ws;
  no_ws.add_patterns("x");
  EXPECT_EQ(board_->Reserve(Agent("a1"), no_ws).status().code(),
            absl::StatusCode::kInvalidArgument);
  pb::ReserveRequest task;
  task.set_workspace("w");
  task.add_patterns("x");
  task.set_task_id("task-00000000000000000000000000");
  EXPECT_EQ(board_->Reserve(Agent("a1"), task).status().code(), absl::StatusCode::kNotFound);
  pb::CheckPathsRequest glob_path;
  glob_path.set_workspace("w");
  glob_path.add_paths("dir/");
  EXPECT_EQ(board_->CheckPaths(Agent("a1"), glob_path).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Live(), 0);
  EXPECT_TRUE(Events(pb::TASK_EVENT_TYPE_RESERVATION_GRANTED).empty());
}

TEST_F(ReservationsTest, ReservationsSurviveARestartAndStillExpire) {
  auto r = Reserve("a1", {"src/**"}, pb::RESERVATION_MODE_EXCLUSIVE, false, absl::Minutes(10));
  ASSERT_TRUE(r.ok());
  OpenBoard();
  EXPECT_EQ(Live(), 1);
  EXPECT_EQ(Check("a2", {"src/x"}).results(0).verdict(), pb::PATH_VERDICT_RESERVED_BY_OTHER);
  pb::WatchTasksRequest snap;
  snap.set_send_snapshot(true);
  bool resync = false;
  auto initial = board_->WatchInitial(snap, &resync);
  bool has_reservation = false;
  for (const auto& ev : initial) has_reservation |= ev.has_reservation();
  EXPECT_TRUE(has_reservation);
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(Live(), 0);
}

TEST_F(ReservationsTest, ListFiltersByPathAndPages) {
  ASSERT_TRUE(Reserve("a1", {"src/**"}).ok());
  ASSERT_TRUE(Reserve("a2", {"docs/*.md"}).ok());
  ASSERT_TRUE(Reserve("a3", {"tests/**"}).ok());
  pb::ListReservationsRequest by_path;
  by_path.set_path("docs/readme.md");
  auto r = board_->ListReservations(by_path);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->reservations_size(), 1);
  EXPECT_EQ(r->reservations(0).holder(), "a2");
  pb::ListReservationsRequest paged;
  paged.set_page_size(2);
  auto p1 = board_->ListReservations(paged);
  ASSERT_EQ(p1->reservations_size(), 2);
  EXPECT_EQ(p1->reservations(0).pattern(), "docs/*.md");  // ordered by workspace, pattern
  paged.set_page_token(p1->next_page_token());
  auto p2 = board_->ListReservations(paged);
  ASSERT_EQ(p2->reservations_size(), 1);
  EXPECT_EQ(p2->reservations(0).pattern(), "tests/**");
  EXPECT_TRUE(p2->next_page_token().empty());
}

}  // namespace
}  // namespace cnet::tasks
