// Core tests of the registry on a simulated clock: health thresholds in both
// directions, hysteresis, metrics rule, busy agents, pruning, restart grace,
// token rules, discovery and the event log. No test sleeps.
#include "services/registry/registry.h"

#include <google/protobuf/util/time_util.h>
#include <stdlib.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "gtest/gtest.h"
#include "libs/crypto/crypto.h"

namespace cnet::registry {
namespace {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

absl::Time T(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(ts));
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(::testing::TempDir()) + "/registryXXXXXX";
    dir_ = mkdtemp(tmpl.data());
    options_.local_node = "node-a";
    Open();
  }

  void TearDown() override {
    if (registry_) {
      registry_->hub()->Unsubscribe(events_);
      registry_->Shutdown();
    }
  }

  std::string DbPath() const { return dir_ + "/registry.db"; }

  void Open() {
    auto store = RegistryStore::Open(DbPath());
    ASSERT_TRUE(store.ok()) << store.status();
    auto registry = Registry::Open(options_, std::move(*store), &clock_);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = std::move(*registry);
    events_ = registry_->hub()->Subscribe(1 << 20, [] {});
  }

  // A crash: the registry is dropped without Shutdown(), so heartbeat data
  // not yet flushed is lost, exactly as with kill -9.
  void Crash() {
    registry_->hub()->Unsubscribe(events_);
    registry_.reset();
  }

  struct Registered {
    std::string id;
    std::string token;
  };

  Registered Register(const std::string& name, std::vector<std::string> caps = {},
                      const std::string& id = "") {
    pb::RegisterRequest r;
    r.set_agent_id(id);
    r.set_name(name);
    for (auto& c : caps) r.add_capabilities(c);
    auto result = registry_->Register(Actor(), r);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return {};
    return {result->agent.id(), result->token};
  }

  absl::StatusOr<pb::HeartbeatResponse> Beat(const std::string& id,
                                             pb::AgentStatus status = pb::AGENT_STATUS_UNSPECIFIED,
                                             const pb::AgentMetrics* metrics = nullptr) {
    pb::HeartbeatRequest r;
    r.set_agent_id(id);
    r.set_status(status);
    if (metrics != nullptr) *r.mutable_metrics() = *metrics;
    return registry_->Heartbeat(Actor::Agent(id), r);
  }

  pb::Agent Get(const std::string& id) {
    auto agent = registry_->GetAgent(id);
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? *agent : pb::Agent();
  }

  pb::Health HealthOf(const std::string& id) { return Get(id).health(); }

  std::vector<pb::AgentEvent> Drain() {
    std::vector<pb::AgentEvent> out;
    EventPtr ev;
    while (events_->Pop(&ev)) out.push_back(*ev);
    return out;
  }

  std::vector<pb::AgentEvent> DrainOfType(pb::AgentEventType type) {
    std::vector<pb::AgentEvent> out;
    for (auto& ev : Drain()) {
      if (ev.type() == type) out.push_back(ev);
    }
    return out;
  }

  std::string dir_;
  SimulatedClock clock_;
  RegistryOptions options_;
  std::unique_ptr<Registry> registry_;
  std::shared_ptr<EventHub<EventPtr>::Subscriber> events_;
};

// --- health thresholds -----------------------------------------------------

TEST_F(RegistryTest, HealthCrossesEachThresholdWhenTheTimePassesWithAnEventAtTheCrossing) {
  absl::Time t0 = clock_.Now();
  Registered a = Register("alpha");
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_HEALTHY);
  Drain();

  // "HEALTHY while the last heartbeat is at most 30 s old."
  clock_.AdvanceTo(t0 + absl::Seconds(30));
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_HEALTHY);
  EXPECT_TRUE(DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED).empty());

  clock_.AdvanceTo(t0 + absl::Seconds(45));
  auto changes = DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].previous_health(), pb::HEALTH_HEALTHY);
  EXPECT_EQ(changes[0].agent().health(), pb::HEALTH_WARNING);
  // Emitted by the timer at the crossing, not at the next query (t0 + 45s).
  EXPECT_EQ(T(changes[0].time()), t0 + absl::Seconds(30) + absl::Nanoseconds(1));
  EXPECT_EQ(changes[0].actor().kind(), pb::PRINCIPAL_KIND_SYSTEM);
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_WARNING);

  clock_.AdvanceTo(t0 + absl::Seconds(60));
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_WARNING);
  clock_.AdvanceTo(t0 + absl::Seconds(75));
  changes = DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].agent().health(), pb::HEALTH_CRITICAL);
  EXPECT_EQ(T(changes[0].time()), t0 + absl::Seconds(60) + absl::Nanoseconds(1));

  clock_.AdvanceTo(t0 + absl::Seconds(90));
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_CRITICAL);
  clock_.AdvanceTo(t0 + absl::Seconds(120));
  changes = DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].agent().health(), pb::HEALTH_DEAD);
  absl::Time dead_at = t0 + absl::Seconds(90) + absl::Nanoseconds(1);
  EXPECT_EQ(T(changes[0].time()), dead_at);
  pb::Agent dead = Get(a.id);
  EXPECT_EQ(T(dead.prune_at()), dead_at + absl::Hours(24));
  EXPECT_EQ(T(dead.health_changed_at()), dead_at);
  EXPECT_NE(dead.health_reason().find("no heartbeat"), std::string::npos) << dead.health_reason();
}

TEST_F(RegistryTest, ThresholdsComeFromOptions) {
  Crash();
  options_.healthy_max = absl::Seconds(5);
  options_.warning_max = absl::Seconds(6);
  options_.critical_max = absl::Seconds(7);
  options_.heartbeat_interval = absl::Seconds(2);
  Open();
  Registered a = Register("alpha");
  clock_.Advance(absl::Seconds(5) + absl::Milliseconds(500));
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_WARNING);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_CRITICAL);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_DEAD);
}

TEST_F(RegistryTest, WarningReturnsToHealthyOnTheNextHeartbeat) {
  Registered a = Register("alpha");
  clock_.Advance(absl::Seconds(45));
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_WARNING);
  Drain();
  auto beat = Beat(a.id);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->health(), pb::HEALTH_HEALTHY);
  auto changes = DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].previous_health(), pb::HEALTH_WARNING);
  EXPECT_EQ(changes[0].agent().health(), pb::HEALTH_HEALTHY);
  EXPECT_EQ(T(changes[0].time()), clock_.Now());
  EXPECT_EQ(beat->next_heartbeat_in().seconds(), 15);
}

TEST_F(RegistryTest, HysteresisCriticalNeedsConsecutiveOnTimeHeartbeats) {
  Registered a = Register("alpha");
  clock_.Advance(absl::Seconds(70));
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_CRITICAL);
  Drain();

  // The late heartbeat that ends the outage does not count as on time.
  auto beat = Beat(a.id);
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->health(), pb::HEALTH_WARNING);
  EXPECT_NE(beat->health_reason().find("recovering: 0 of 2"), std::string::npos)
      << beat->health_reason();
  clock_.Advance(absl::Seconds(15));
  beat = Beat(a.id);
  EXPECT_EQ(beat->health(), pb::HEALTH_WARNING);
  EXPECT_NE(beat->health_reason().find("recovering: 1 of 2"), std::string::npos);
  clock_.Advance(absl::Seconds(15));
  beat = Beat(a.id);
  EXPECT_EQ(beat->health(), pb::HEALTH_HEALTHY);

  std::vector<pb::Health> seen;
  for (auto& ev : DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED)) {
    seen.push_back(ev.agent().health());
  }
  EXPECT_EQ(seen, (std::vector<pb::Health>{pb::HEALTH_WARNING, pb::HEALTH_HEALTHY}));
}

TEST_F(RegistryTest, HysteresisLateHeartbeatRestartsTheCount) {
  Registered a = Register("alpha");
  clock_.Advance(absl::Seconds(70));
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_CRITICAL);
  ASSERT_TRUE(Beat(a.id).ok());  // ends the outage
  clock_.Advance(absl::Seconds(15));
  ASSERT_EQ(Beat(a.id)->health(), pb::HEALTH_WARNING);  // 1 of 2
  clock_.Advance(absl::Seconds(40));                     // late: more than 30 s
  auto beat = Beat(a.id);
  EXPECT_EQ(beat->health(), pb::HEALTH_WARNING);
  EXPECT_NE(beat->health_reason().find("recovering: 0 of 2"), std::string::npos)
      << beat->health_reason();
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(Beat(a.id)->health(), pb::HEALTH_WARNING);
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(Beat(a.id)->health(), pb::HEALTH_HEALTHY);
}

TEST_F(RegistryTest, DeadAgentRecoversThroughHysteresisAndLosesItsPruneTime) {
  Registered a = Register("alpha");
  clock_.Advance(absl::Minutes(5));
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_DEAD);
  ASSERT_TRUE(Get(a.id).has_prune_at());
  EXPECT_EQ(Beat(a.id)->health(), pb::HEALTH_WARNING);
  EXPECT_FALSE(Get(a.id).has_prune_at());
  for (int i = 0; i < 2; ++i) {
    clock_.Advance(absl::Seconds(15));
    ASSERT_TRUE(Beat(a.id).ok());
  }
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_HEALTHY);
  // Heartbeating past the old prune time: not pruned.
  for (int i = 0; i < 24 * 180 + 10; ++i) {
    clock_.Advance(absl::Seconds(20));
    ASSERT_TRUE(Beat(a.id).ok());
  }
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_HEALTHY);
}

TEST_F(RegistryTest, RecoveryCountComesFromOptions) {
  Crash();
  options_.recovery_heartbeats = 4;
  Open();
  Registered a = Register("alpha");
  clock_.Advance(absl::Seconds(70));
  ASSERT_TRUE(Beat(a.id).ok());
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Seconds(10));
    EXPECT_EQ(Beat(a.id)->health(), pb::HEALTH_WARNING) << i;
  }
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(Beat(a.id)->health(), pb::HEALTH_HEALTHY);
}

TEST_F(RegistryTest, BusyAgentWithOnTimeHeartbeatsStaysHealthy) {
  Registered a = Register("worker", {"python"});
  Drain();
  pb::AgentMetrics m;
  m.set_load(900);          // hugely overloaded by its own account
  m.set_active_tasks(9999);
  for (int i = 0; i < 40; ++i) {  // 10 minutes of heartbeats every 15 s
    auto beat = Beat(a.id, pb::AGENT_STATUS_BUSY, &m);
    ASSERT_TRUE(beat.ok()) << beat.status();
    EXPECT_EQ(beat->health(), pb::HEALTH_HEALTHY) << i;
    clock_.Advance(absl::Seconds(15));
  }
  pb::Agent agent = Get(a.id);
  EXPECT_EQ(agent.status(), pb::AGENT_STATUS_BUSY);
  EXPECT_EQ(agent.health(), pb::HEALTH_HEALTHY);
  EXPECT_TRUE(DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED).empty());
}

TEST_F(RegistryTest, HeartbeatsJustInsideTheThresholdKeepHealthyForever) {
  Registered a = Register("alpha");
  Drain();
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(absl::Seconds(30));  // exactly at the threshold
    ASSERT_EQ(Beat(a.id)->health(), pb::HEALTH_HEALTHY);
  }
  EXPECT_TRUE(DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED).empty());
}

TEST_F(RegistryTest, MetricsRuleDegradesHealthyToWarningAndRecovers) {
  Registered a = Register("alpha");
  pb::AgentMetrics m;
  m.set_messages_sent(100);
  ASSERT_EQ(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m)->health(), pb::HEALTH_HEALTHY);
  Drain();
  clock_.Advance(absl::Seconds(15));
  m.set_messages_sent(110);
  m.set_errors(5);  // 5 errors for 10 messages: 50% > 10%
  auto beat = Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m);
  EXPECT_EQ(beat->health(), pb::HEALTH_WARNING);
  EXPECT_NE(beat->health_reason().find("error rate 50% > 10%"), std::string::npos)
      << beat->health_reason();
  auto changes = DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].agent().health(), pb::HEALTH_WARNING);
  EXPECT_EQ(T(changes[0].time()), clock_.Now());

  // A heartbeat without metrics keeps the verdict.
  clock_.Advance(absl::Seconds(15));
  EXPECT_EQ(Beat(a.id)->health(), pb::HEALTH_WARNING);
  // 100 more messages without errors: back to HEALTHY.
  clock_.Advance(absl::Seconds(15));
  m.set_messages_sent(210);
  EXPECT_EQ(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m)->health(), pb::HEALTH_HEALTHY);
}

TEST_F(RegistryTest, MetricsRuleDoesNotJudgeTinySamplesAndReadsACounterResetAsARestart) {
  Registered a = Register("alpha");
  pb::AgentMetrics m;
  m.set_messages_sent(50);
  m.set_errors(1);
  *m.mutable_uptime() = TimeUtil::SecondsToDuration(600);
  ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m).ok());
  clock_.Advance(absl::Seconds(15));
  m.set_messages_sent(51);
  m.set_errors(2);  // 1 error in 2 events: too small a sample to judge
  EXPECT_EQ(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m)->health(), pb::HEALTH_HEALTHY);
  // The agent restarted: counters and uptime went down. Not an error burst.
  clock_.Advance(absl::Seconds(15));
  m.set_messages_sent(20);
  m.set_errors(0);
  *m.mutable_uptime() = TimeUtil::SecondsToDuration(10);
  EXPECT_EQ(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m)->health(), pb::HEALTH_HEALTHY);
}

TEST_F(RegistryTest, MetricsRuleThresholdComesFromOptions) {
  Crash();
  options_.error_rate_warning = 0.6;
  Open();
  Registered a = Register("alpha");
  pb::AgentMetrics m;
  ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m).ok());
  m.set_messages_sent(10);
  m.set_errors(5);  // 50% is under 60%
  EXPECT_EQ(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m)->health(), pb::HEALTH_HEALTHY);
}

TEST_F(RegistryTest, HumansAreNotMeasuredNorPruned) {
  pb::RegisterRequest r;
  r.set_name("Ada");
  r.set_kind(pb::AGENT_KIND_HUMAN);
  auto human = registry_->Register(Actor(), r);
  ASSERT_TRUE(human.ok());
  EXPECT_EQ(human->agent.health(), pb::HEALTH_UNSPECIFIED);
  clock_.Advance(absl::Hours(48));
  pb::Agent agent = Get(human->agent.id());
  EXPECT_EQ(agent.health(), pb::HEALTH_UNSPECIFIED);
  pb::FindAgentsRequest find;
  EXPECT_EQ(registry_->FindAgents(find)->agents_size(), 0);
}

// --- retention and pruning ------------------------------------------------------

TEST_F(RegistryTest, DeadAgentsArePrunedAfterRetention) {
  Registered a = Register("alpha");
  Registered b = Register("beta");
  clock_.Advance(absl::Seconds(100));
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_DEAD);
  absl::Time prune_at = T(Get(a.id).prune_at());
  Drain();
  // b keeps heartbeating; a stays silent.
  while (clock_.Now() + absl::Seconds(15) < prune_at) {
    clock_.Advance(absl::Seconds(15));
    ASSERT_TRUE(Beat(b.id).ok());
  }
  EXPECT_TRUE(registry_->GetAgent(a.id).ok());
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_DEAD);  // still listed as DEAD
  clock_.AdvanceTo(prune_at + absl::Seconds(1));
  auto pruned = DrainOfType(pb::AGENT_EVENT_TYPE_PRUNED);
  ASSERT_EQ(pruned.size(), 1u);
  EXPECT_EQ(pruned[0].agent().id(), a.id);
  EXPECT_EQ(T(pruned[0].time()), prune_at);
  EXPECT_EQ(registry_->GetAgent(a.id).status().code(), absl::StatusCode::kNotFound);
  auto v = registry_->ValidateToken(a.token);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->valid());
  EXPECT_EQ(v->invalid_reason(), pb::TOKEN_INVALID_REASON_AGENT_REMOVED);
  // A pruned agent must register again.
  EXPECT_EQ(Beat(a.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->agent_count(), 1u);
  // Gone from the store too.
  Crash();
  Open();
  EXPECT_EQ(registry_->GetAgent(a.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry_->GetAgent(b.id).ok());
}

TEST_F(RegistryTest, RetentionComesFromOptions) {
  Crash();
  options_.dead_retention = absl::Minutes(10);
  Open();
  Registered a = Register("alpha");
  clock_.Advance(absl::Seconds(91) + absl::Minutes(9));
  EXPECT_TRUE(registry_->GetAgent(a.id).ok());
  clock_.Advance(absl::Minutes(1));
  EXPECT_FALSE(registry_->GetAgent(a.id).ok());
}

// --- restart ---------------------------------------------------------------------

TEST_F(RegistryTest, RestartKeepsAgentsTokensAndHealthWithGrace) {
  Registered a = Register("alpha", {"python"});
  Registered b = Register("beta", {"go"});
  Registered c = Register("gamma");
  clock_.Advance(absl::Seconds(70));  // c goes CRITICAL
  ASSERT_TRUE(Beat(a.id).ok());
  ASSERT_TRUE(Beat(b.id).ok());
  ASSERT_EQ(HealthOf(c.id), pb::HEALTH_CRITICAL);
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_WARNING);  // recovering after CRITICAL
  for (int i = 0; i < 2; ++i) {
    clock_.Advance(absl::Seconds(10));
    ASSERT_TRUE(Beat(a.id).ok());
    ASSERT_TRUE(Beat(b.id).ok());
  }
  ASSERT_EQ(HealthOf(a.id), pb::HEALTH_HEALTHY);
  ASSERT_TRUE(registry_->Flush().ok());
  int64_t sequence = registry_->current_sequence();

  // Crash, and stay down for five minutes.
  Crash();
  clock_.Advance(absl::Minutes(5));
  Open();

  EXPECT_EQ(registry_->agent_count(), 3u);
  EXPECT_EQ(registry_->current_sequence(), sequence);
  for (const Registered& r : {a, b, c}) {
    auto who = registry_->AuthenticateToken(r.token);
    ASSERT_TRUE(who.ok()) << who.status();
    EXPECT_EQ(*who, r.id);
  }
  // Health as it was: nobody is declared DEAD by the restart itself.
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_HEALTHY);
  EXPECT_EQ(HealthOf(b.id), pb::HEALTH_HEALTHY);
  EXPECT_EQ(HealthOf(c.id), pb::HEALTH_CRITICAL);
  EXPECT_EQ(registry_->grace_until(), clock_.Now() + absl::Seconds(60));
  auto status = registry_->GetNetworkStatus(pb::GetNetworkStatusRequest());
  EXPECT_EQ(T(status->grace_until()), registry_->grace_until());
  EXPECT_EQ(Get(a.id).capabilities(0), "python");

  // a heartbeats during the grace period; b does not.
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(Beat(a.id)->health(), pb::HEALTH_HEALTHY);
  clock_.Advance(absl::Seconds(39));
  EXPECT_EQ(HealthOf(b.id), pb::HEALTH_HEALTHY);
  ASSERT_TRUE(Beat(a.id).ok());
  Drain();
  // Grace over: b's silence (since before the crash) now counts.
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(HealthOf(b.id), pb::HEALTH_DEAD);
  EXPECT_EQ(HealthOf(c.id), pb::HEALTH_DEAD);
  EXPECT_EQ(HealthOf(a.id), pb::HEALTH_HEALTHY);
  auto changes = DrainOfType(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED);
  ASSERT_EQ(changes.size(), 2u);
  for (auto& ev : changes) EXPECT_EQ(T(ev.time()), registry_->grace_until());
}

TEST_F(RegistryTest, CrashLosesOnlyHeartbeatDataNotYetFlushed) {
  Registered a = Register("alpha");
  pb::AgentMetrics m;
  m.set_messages_sent(7);
  clock_.Advance(absl::Milliseconds(100));
  ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m).ok());
  Crash();  // before the 1 s flush
  Open();
  pb::Agent agent = Get(a.id);
  EXPECT_EQ(agent.name(), "alpha");  // registration was durable before the reply
  EXPECT_EQ(agent.metrics().messages_sent(), 0);

  m.set_messages_sent(9);
  ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m).ok());
  clock_.Advance(absl::Seconds(1));  // the flush timer writes the batch
  absl::Time beat_time = clock_.Now() - absl::Seconds(1);
  Crash();
  Open();
  agent = Get(a.id);
  EXPECT_EQ(agent.metrics().messages_sent(), 9);
  EXPECT_EQ(T(agent.last_heartbeat()), beat_time);
}

TEST_F(RegistryTest, ChunkedFlushWritesEveryDirtyAgent) {
  std::vector<Registered> agents;
  for (int i = 0; i < 4500; ++i) agents.push_back(Register(absl::StrCat("a", i)));
  pb::AgentMetrics m;
  m.set_messages_received(42);
  clock_.Advance(absl::Milliseconds(10));
  for (const Registered& a : agents) {
    ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m).ok());
  }
  ASSERT_TRUE(registry_->Flush().ok());  // in chunks of at most 2000
  Crash();
  Open();
  for (int i = 0; i < 4500; i += 499) {
    EXPECT_EQ(Get(agents[i].id).metrics().messages_received(), 42) << i;
  }
}

TEST_F(RegistryTest, StatusChangesAreDurableBeforeTheReply) {
  Registered a = Register("alpha");
  ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_BUSY).ok());
  auto changes = DrainOfType(pb::AGENT_EVENT_TYPE_STATUS_CHANGED);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].previous_status(), pb::AGENT_STATUS_ONLINE);
  EXPECT_EQ(changes[0].agent().status(), pb::AGENT_STATUS_BUSY);
  Crash();
  Open();
  EXPECT_EQ(Get(a.id).status(), pb::AGENT_STATUS_BUSY);
}

TEST_F(RegistryTest, TokensAreStoredOnlyAsHashes) {
  Registered a = Register("alpha");
  ASSERT_EQ(a.token.rfind("cnt_", 0), 0u);
  EXPECT_EQ(a.token.size(), 4u + 64u);  // 256 random bits
  ASSERT_TRUE(registry_->Flush().ok());
  Crash();
  std::string bytes;
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(DbPath() + suffix, std::ios::binary);
    bytes += std::string(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_EQ(bytes.find(a.token), std::string::npos);
  EXPECT_EQ(bytes.find(a.token.substr(4)), std::string::npos);
  EXPECT_NE(bytes.find(crypto::Sha256(a.token)), std::string::npos);
  Open();
}

// --- tokens and who may do what --------------------------------------------------

TEST_F(RegistryTest, AnAgentCannotActForAnother) {
  Registered a = Register("alpha");
  Registered b = Register("beta");
  pb::HeartbeatRequest beat;
  beat.set_agent_id(b.id);
  EXPECT_EQ(registry_->Heartbeat(Actor::Agent(a.id), beat).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_->Heartbeat(Actor::Admin(), beat).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_->Heartbeat(Actor(), beat).status().code(),
            absl::StatusCode::kUnauthenticated);
  pb::UpdateAgentRequest update;
  update.mutable_agent()->set_id(b.id);
  update.mutable_agent()->set_name("stolen");
  update.mutable_update_mask()->add_paths("name");
  EXPECT_EQ(registry_->UpdateAgent(Actor::Agent(a.id), update).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_->Deregister(Actor::Agent(a.id), b.id, "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_->RotateToken(Actor::Agent(a.id), b.id).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Get(b.id).name(), "beta");
  // The admin may update and deregister anyone.
  EXPECT_TRUE(registry_->UpdateAgent(Actor::Admin(), update).ok());
  EXPECT_TRUE(registry_->Deregister(Actor::Admin(), b.id, "cleanup").ok());
}

TEST_F(RegistryTest, ReRegistrationNeedsTheTokenAndAdminIssuesANewOne) {
  Registered a = Register("alpha", {}, "my-agent");
  pb::RegisterRequest r;
  r.set_agent_id("my-agent");
  r.set_name("alpha-2");
  EXPECT_EQ(registry_->Register(Actor(), r).status().code(), absl::StatusCode::kPermissionDenied);
  Registered b = Register("beta");
  EXPECT_EQ(registry_->Register(Actor::Agent(b.id), r).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Get("my-agent").name(), "alpha");

  Drain();
  auto again = registry_->Register(Actor::Agent("my-agent"), r);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_TRUE(again->token.empty());  // keeps its token
  EXPECT_EQ(again->agent.name(), "alpha-2");
  EXPECT_EQ(again->agent.revision(), 2);
  auto updated = DrainOfType(pb::AGENT_EVENT_TYPE_UPDATED);
  ASSERT_EQ(updated.size(), 1u);
  EXPECT_EQ(std::vector<std::string>(updated[0].changed_fields().begin(),
                                     updated[0].changed_fields().end()),
            std::vector<std::string>{"name"});
  EXPECT_TRUE(registry_->AuthenticateToken(a.token).ok());

  auto recovered = registry_->Register(Actor::Admin(), r);
  ASSERT_TRUE(recovered.ok());
  EXPECT_FALSE(recovered->token.empty());
  auto old = registry_->ValidateToken(a.token);
  EXPECT_FALSE(old->valid());
  EXPECT_EQ(old->invalid_reason(), pb::TOKEN_INVALID_REASON_ROTATED);
  EXPECT_EQ(*registry_->AuthenticateToken(recovered->token), "my-agent");
  EXPECT_EQ(DrainOfType(pb::AGENT_EVENT_TYPE_TOKEN_ROTATED).size(), 1u);
}

TEST_F(RegistryTest, ReRegistrationCannotChangeKindOrSpawnedBy) {
  Registered parent = Register("parent");
  pb::RegisterRequest child;
  child.set_agent_id("child-1");
  child.set_name("child");
  child.set_spawned_by(parent.id);
  // Claiming a parent needs the parent's token.
  EXPECT_EQ(registry_->Register(Actor(), child).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto created = registry_->Register(Actor::Agent(parent.id), child);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->agent.spawned_by(), parent.id);
  pb::RegisterRequest again = child;
  again.set_kind(pb::AGENT_KIND_HUMAN);
  EXPECT_EQ(registry_->Register(Actor::Agent("child-1"), again).status().code(),
            absl::StatusCode::kFailedPrecondition);
  again = child;
  again.set_spawned_by("someone-else");
  EXPECT_EQ(registry_->Register(Actor::Agent("child-1"), again).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RegistryTest, RotateTokenRevokesTheOldTokenAndIsRateLimited) {
  Registered a = Register("alpha");
  auto rotated = registry_->RotateToken(Actor::Agent(a.id), "");
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_NE(rotated->token, a.token);
  EXPECT_EQ(registry_->AuthenticateToken(a.token).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(*registry_->AuthenticateToken(rotated->token), a.id);
  auto again = registry_->RotateToken(Actor::Agent(a.id), "");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(again.status().GetPayload(kRetryAfterPayload).has_value());
  clock_.Advance(absl::Seconds(10));
  EXPECT_TRUE(registry_->RotateToken(Actor::Agent(a.id), "").ok());
}

TEST_F(RegistryTest, ClosedRegistrationNeedsAdminOrService) {
  Crash();
  options_.open_registration = false;
  Open();
  pb::RegisterRequest r;
  r.set_name("alpha");
  EXPECT_EQ(registry_->Register(Actor(), r).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(registry_->Register(Actor::Service(), r).ok());
  EXPECT_TRUE(registry_->Register(Actor::Admin(), r).ok());
}

TEST_F(RegistryTest, ValidateTokenTellsUnknownFromValid) {
  Registered a = Register("alpha");
  auto v = registry_->ValidateToken(a.token);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->valid());
  EXPECT_EQ(v->principal().id(), a.id);
  EXPECT_EQ(v->principal().kind(), pb::PRINCIPAL_KIND_AGENT);
  EXPECT_EQ(v->principal().node(), "node-a");
  EXPECT_EQ(v->cache_for().seconds(), 30);
  v = registry_->ValidateToken("cnt_not-a-token");
  EXPECT_FALSE(v->valid());
  EXPECT_EQ(v->invalid_reason(), pb::TOKEN_INVALID_REASON_UNKNOWN);
  EXPECT_EQ(registry_->ValidateToken("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->ValidateToken(std::string(513, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- discovery --------------------------------------------------------------------

TEST_F(RegistryTest, FindAgentsReturnsHealthyCapableAgentsLeastLoadedFirst) {
  Registered a = Register("a", {"python", "review"});
  Registered b = Register("b", {"python"});
  Registered c = Register("c", {"python", "review"});
  Registered d = Register("d", {"python", "review"});
  Registered e = Register("e", {"python", "review"});
  pb::AgentMetrics m;
  m.set_active_tasks(1);
  ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_UNSPECIFIED, &m).ok());  // full (1 of 1)
  m.set_active_tasks(0);
  m.set_load(0.5);
  ASSERT_TRUE(Beat(c.id, pb::AGENT_STATUS_UNSPECIFIED, &m).ok());
  m.set_load(0.1);
  ASSERT_TRUE(Beat(d.id, pb::AGENT_STATUS_AWAY, &m).ok());  // not offered work
  ASSERT_TRUE(Beat(e.id, pb::AGENT_STATUS_BUSY, &m).ok());

  pb::FindAgentsRequest find;
  find.add_capabilities("review");
  find.add_capabilities("python");
  auto found = registry_->FindAgents(find);
  ASSERT_TRUE(found.ok());
  std::vector<std::string> ids;
  for (auto& agent : found->agents()) ids.push_back(agent.id());
  EXPECT_EQ(ids, (std::vector<std::string>{e.id, c.id, a.id}));
  EXPECT_EQ(found->total_matching(), 3);

  find.set_only_with_capacity(true);
  find.add_exclude_agent_ids(e.id);
  found = registry_->FindAgents(find);
  ids.clear();
  for (auto& agent : found->agents()) ids.push_back(agent.id());
  EXPECT_EQ(ids, (std::vector<std::string>{c.id}));

  find.Clear();
  find.add_capabilities("python");
  find.add_statuses(pb::AGENT_STATUS_AWAY);
  found = registry_->FindAgents(find);
  ASSERT_EQ(found->agents_size(), 1);
  EXPECT_EQ(found->agents(0).id(), d.id);

  // Not HEALTHY: not offered.
  clock_.Advance(absl::Seconds(31));
  find.Clear();
  find.add_capabilities("python");
  EXPECT_EQ(registry_->FindAgents(find)->agents_size(), 0);
  find.set_limit(1001);
  EXPECT_EQ(registry_->FindAgents(find).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, ListAgentsFiltersAndPagesInAStableOrder) {
  for (int i = 0; i < 25; ++i) {
    std::vector<std::string> caps = {"python"};
    if (i % 2 == 0) caps.push_back("review");
    if (i % 5 == 0) caps.push_back("go");
    Register(absl::StrCat(i % 3 == 0 ? "alpha-" : "beta-", i), caps,
             absl::StrCat("agent-", 100 + i));
  }
  pb::ListAgentsRequest list;
  list.add_capabilities_all("python");
  list.add_capabilities_all("review");
  list.set_page_size(5);
  std::vector<std::string> ids;
  for (;;) {
    auto page = registry_->ListAgents(list);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->total_size(), 13);
    for (auto& a : page->agents()) ids.push_back(a.id());
    if (page->next_page_token().empty()) break;
    list.set_page_token(page->next_page_token());
  }
  ASSERT_EQ(ids.size(), 13u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(ids.front(), "agent-100");

  // The page token is bound to the filters.
  pb::ListAgentsRequest other;
  other.add_capabilities_all("go");
  other.set_page_token(list.page_token());
  EXPECT_EQ(registry_->ListAgents(other).status().code(), absl::StatusCode::kInvalidArgument);
  other.set_page_token("!!garbage!!");
  EXPECT_EQ(registry_->ListAgents(other).status().code(), absl::StatusCode::kInvalidArgument);

  pb::ListAgentsRequest any;
  any.add_capabilities_any("go");
  any.add_capabilities_any("review");
  any.set_name_prefix("alpha-");
  auto page = registry_->ListAgents(any);
  ASSERT_TRUE(page.ok());
  // alpha-: i in {0,3,6,...,24}; go or review: even or multiple of 5.
  EXPECT_EQ(page->total_size(), 6);  // 0, 6, 12, 15, 18, 24

  pb::ListAgentsRequest by_name;
  by_name.set_order_by(pb::AGENT_ORDER_NAME);
  by_name.set_page_size(10);
  std::vector<std::string> names;
  for (;;) {
    auto p = registry_->ListAgents(by_name);
    ASSERT_TRUE(p.ok()) << p.status();
    for (auto& a : p->agents()) names.push_back(a.name());
    if (p->next_page_token().empty()) break;
    by_name.set_page_token(p->next_page_token());
  }
  EXPECT_EQ(names.size(), 25u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  pb::ListAgentsRequest statuses;
  statuses.add_statuses(pb::AGENT_STATUS_BUSY);
  EXPECT_EQ(registry_->ListAgents(statuses)->total_size(), 0);
  ASSERT_TRUE(Beat("agent-101", pb::AGENT_STATUS_BUSY).ok());
  EXPECT_EQ(registry_->ListAgents(statuses)->total_size(), 1);
  pb::ListAgentsRequest nodes;
  nodes.add_nodes("node-a");
  EXPECT_EQ(registry_->ListAgents(nodes)->total_size(), 25);
  nodes.set_nodes(0, "elsewhere");
  EXPECT_EQ(registry_->ListAgents(nodes)->total_size(), 0);

  // Most recent heartbeat first.
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Beat("agent-107").ok());
  pb::ListAgentsRequest recent;
  recent.set_order_by(pb::AGENT_ORDER_LAST_HEARTBEAT);
  recent.set_page_size(2);
  auto first = registry_->ListAgents(recent);
  EXPECT_EQ(first->agents(0).id(), "agent-107");
  EXPECT_EQ(first->agents(1).id(), "agent-100");  // ties by id
}

TEST_F(RegistryTest, HealthFilterFollowsTimers) {
  Registered a = Register("alpha");
  Registered b = Register("beta");
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(Beat(b.id).ok());
  clock_.Advance(absl::Seconds(15));
  pb::ListAgentsRequest list;
  list.add_healths(pb::HEALTH_WARNING);
  auto page = registry_->ListAgents(list);
  ASSERT_EQ(page->agents_size(), 1);
  EXPECT_EQ(page->agents(0).id(), a.id);
}

TEST_F(RegistryTest, NetworkStatusCountsByHealthStatusNodeAndCapability) {
  Registered a = Register("a", {"python", "review"});
  Registered b = Register("b", {"python"});
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(Beat(b.id, pb::AGENT_STATUS_BUSY).ok());
  clock_.Advance(absl::Seconds(15));  // a: WARNING
  auto status = registry_->GetNetworkStatus(pb::GetNetworkStatusRequest());
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->total_agents(), 2);
  EXPECT_EQ(status->local_agents(), 2);
  EXPECT_EQ(status->local_node(), "node-a");
  ASSERT_EQ(status->by_health_size(), 2);
  EXPECT_EQ(status->by_health(0).health(), pb::HEALTH_HEALTHY);
  EXPECT_EQ(status->by_health(1).health(), pb::HEALTH_WARNING);
  ASSERT_EQ(status->by_status_size(), 2);
  ASSERT_EQ(status->by_node_size(), 1);
  EXPECT_EQ(status->by_node(0).total(), 2);
  EXPECT_TRUE(status->by_node(0).local());
  ASSERT_EQ(status->by_capability_size(), 2);
  EXPECT_EQ(status->by_capability(0).capability(), "python");
  EXPECT_EQ(status->by_capability(0).total(), 2);
  EXPECT_EQ(status->by_capability(0).healthy(), 1);
  EXPECT_EQ(status->oldest_heartbeat_agent_id(), a.id);
  EXPECT_FALSE(status->has_grace_until());
  pb::GetNetworkStatusRequest bad;
  bad.set_capability_limit(-1);
  EXPECT_EQ(registry_->GetNetworkStatus(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, IncrementalCapabilityCountsMatchAScan) {
  // Whole-network capability counts are kept incrementally; per-node counts
  // are scanned. With one node both must agree after any mix of changes.
  std::vector<Registered> agents;
  for (int i = 0; i < 30; ++i) {
    std::vector<std::string> caps = {absl::StrCat("c", i % 4)};
    if (i % 3 == 0) caps.push_back("shared");
    agents.push_back(Register(absl::StrCat("a", i), caps));
  }
  auto compare = [&](const char* when) {
    pb::GetNetworkStatusRequest all;
    all.set_capability_limit(1000);
    pb::GetNetworkStatusRequest scanned = all;
    scanned.set_node("node-a");
    auto a = registry_->GetNetworkStatus(all);
    auto b = registry_->GetNetworkStatus(scanned);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->by_capability_size(), b->by_capability_size()) << when;
    for (int i = 0; i < a->by_capability_size(); ++i) {
      EXPECT_EQ(a->by_capability(i).DebugString(), b->by_capability(i).DebugString()) << when;
    }
  };
  compare("registered");
  clock_.Advance(absl::Seconds(20));
  for (int i = 0; i < 30; i += 2) ASSERT_TRUE(Beat(agents[i].id).ok());
  clock_.Advance(absl::Seconds(15));  // odd ones WARNING
  compare("half warning");
  pb::UpdateAgentRequest u;
  u.mutable_agent()->add_capabilities("shared");
  u.mutable_update_mask()->add_paths("capabilities");
  ASSERT_TRUE(registry_->UpdateAgent(Actor::Agent(agents[1].id), u).ok());
  ASSERT_TRUE(registry_->Deregister(Actor::Agent(agents[2].id), "", "").ok());
  clock_.Advance(absl::Seconds(100));  // everyone DEAD
  compare("dead");
  ASSERT_TRUE(Beat(agents[4].id).ok());
  compare("one back");
}

TEST_F(RegistryTest, UpdateAgentByMaskEmitsTheRightEvent) {
  Registered a = Register("alpha", {"python"});
  Drain();
  pb::UpdateAgentRequest u;
  u.mutable_agent()->add_capabilities("go");
  u.mutable_agent()->add_capabilities("go");
  u.mutable_update_mask()->add_paths("capabilities");
  auto agent = registry_->UpdateAgent(Actor::Agent(a.id), u);
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(std::vector<std::string>(agent->capabilities().begin(), agent->capabilities().end()),
            std::vector<std::string>{"go"});
  auto ev = Drain();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type(), pb::AGENT_EVENT_TYPE_UPDATED);
  pb::ListAgentsRequest list;
  list.add_capabilities_all("python");
  EXPECT_EQ(registry_->ListAgents(list)->total_size(), 0);  // index follows

  pb::UpdateAgentRequest s;
  s.mutable_agent()->set_status(pb::AGENT_STATUS_AWAY);
  s.mutable_update_mask()->add_paths("status");
  ASSERT_TRUE(registry_->UpdateAgent(Actor::Agent(a.id), s).ok());
  ev = Drain();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type(), pb::AGENT_EVENT_TYPE_STATUS_CHANGED);
  EXPECT_EQ(ev[0].previous_status(), pb::AGENT_STATUS_ONLINE);

  s.set_expected_revision(1);
  auto stale = registry_->UpdateAgent(Actor::Agent(a.id), s);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(*stale.status().GetPayload(kReasonPayload)), "REVISION_MISMATCH");
}

// --- events -----------------------------------------------------------------------

TEST_F(RegistryTest, EventsHaveIncreasingSequencesAndCanBeReplayed) {
  Registered a = Register("alpha");
  ASSERT_TRUE(Beat(a.id, pb::AGENT_STATUS_BUSY).ok());
  ASSERT_TRUE(registry_->Deregister(Actor::Agent(a.id), "", "done").ok());
  auto events = Drain();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type(), pb::AGENT_EVENT_TYPE_REGISTERED);
  EXPECT_EQ(events[1].type(), pb::AGENT_EVENT_TYPE_STATUS_CHANGED);
  EXPECT_EQ(events[2].type(), pb::AGENT_EVENT_TYPE_DEREGISTERED);
  EXPECT_EQ(events[2].reason(), "done");
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].sequence(), int64_t(i) + 1);

  pb::WatchAgentsRequest w;
  w.set_from_sequence(1);
  auto filter = WatchFilter::Create(w);
  auto start = registry_->StartWatch(w, *filter);
  ASSERT_TRUE(start.ok());
  ASSERT_EQ(start->initial.size(), 2u);
  EXPECT_EQ(start->initial[0]->sequence(), 2);
  EXPECT_EQ(start->covered_sequence, 3);

  w.set_from_sequence(4);
  EXPECT_EQ(registry_->StartWatch(w, *filter).status().code(),
            absl::StatusCode::kInvalidArgument);

  // The log survives a restart.
  Crash();
  Open();
  w.set_from_sequence(1);
  start = registry_->StartWatch(w, *filter);
  ASSERT_EQ(start->initial.size(), 2u);
  Registered b = Register("beta");
  EXPECT_EQ(DrainOfType(pb::AGENT_EVENT_TYPE_REGISTERED)[0].sequence(), 4);
}

TEST_F(RegistryTest, ResumeFromASequenceNoLongerRetainedNeedsResync) {
  Crash();
  options_.event_retention = 3;
  Open();
  for (int i = 0; i < 5; ++i) Register(absl::StrCat("a", i));
  pb::WatchAgentsRequest w;
  auto filter = WatchFilter::Create(w);
  w.set_from_sequence(1);
  auto start = registry_->StartWatch(w, *filter);
  ASSERT_TRUE(start.ok());
  EXPECT_TRUE(start->resync_required);
  w.set_from_sequence(2);
  start = registry_->StartWatch(w, *filter);
  EXPECT_FALSE(start->resync_required);
  EXPECT_EQ(start->initial.size(), 3u);
}

TEST_F(RegistryTest, SnapshotListsMatchingAgentsThenEnds) {
  Register("a", {"python"});
  Register("b", {"go"});
  pb::WatchAgentsRequest w;
  w.set_send_snapshot(true);
  w.add_capabilities_any("go");
  auto filter = WatchFilter::Create(w);
  auto start = registry_->StartWatch(w, *filter);
  ASSERT_EQ(start->initial.size(), 2u);
  EXPECT_EQ(start->initial[0]->type(), pb::AGENT_EVENT_TYPE_SNAPSHOT);
  EXPECT_EQ(start->initial[0]->agent().name(), "b");
  EXPECT_EQ(start->initial[0]->sequence(), 2);
  EXPECT_EQ(start->initial[1]->type(), pb::AGENT_EVENT_TYPE_SNAPSHOT_END);
}

TEST_F(RegistryTest, CheckpointsAreSentWhenTheSequenceMoved) {
  pb::RegisterRequest human;  // not measured: no health events move the sequence
  human.set_name("Ada");
  human.set_kind(pb::AGENT_KIND_HUMAN);
  ASSERT_TRUE(registry_->Register(Actor(), human).ok());
  Drain();
  clock_.Advance(absl::Seconds(30));
  auto cps = DrainOfType(pb::AGENT_EVENT_TYPE_CHECKPOINT);
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_EQ(cps[0].sequence(), 1);
  clock_.Advance(absl::Seconds(30));  // nothing new: no checkpoint
  EXPECT_TRUE(DrainOfType(pb::AGENT_EVENT_TYPE_CHECKPOINT).empty());
}

// --- federation -------------------------------------------------------------------

TEST_F(RegistryTest, RemoteAgentsAreMirroredAndDegradedByAge) {
  Registered local = Register("local-agent");
  pb::SyncRemoteAgentsRequest sync;
  sync.set_origin_node("node-b");
  pb::Agent* r1 = sync.add_agents();
  r1->set_id("remote-1");
  r1->set_name("far away");
  r1->add_capabilities("python");
  r1->set_health(pb::HEALTH_HEALTHY);
  *r1->mutable_last_heartbeat() = TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(clock_.Now() - absl::Seconds(10)));
  pb::Agent* clash = sync.add_agents();
  *clash = *r1;
  clash->set_id(local.id);
  pb::Agent* wrong_node = sync.add_agents();
  *wrong_node = *r1;
  wrong_node->set_id("remote-2");
  wrong_node->set_node("node-c");
  EXPECT_EQ(registry_->SyncRemoteAgents(Actor::Agent(local.id), sync).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto result = registry_->SyncRemoteAgents(Actor::Service(), sync);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->upserted(), 1);
  ASSERT_EQ(result->rejected_size(), 2);
  EXPECT_EQ(result->rejected(0).agent_id(), local.id);
  EXPECT_EQ(result->rejected(0).reason(), "id exists as a local agent");
  EXPECT_EQ(Get(local.id).remote(), false);

  pb::Agent remote = Get("remote-1");
  EXPECT_TRUE(remote.remote());
  EXPECT_EQ(remote.node(), "node-b");
  EXPECT_EQ(remote.health(), pb::HEALTH_HEALTHY);
  pb::FindAgentsRequest find;
  find.add_capabilities("python");
  find.set_locality(pb::LOCALITY_REMOTE);
  EXPECT_EQ(registry_->FindAgents(find)->agents_size(), 1);
  clock_.Advance(absl::Seconds(21));  // 31 s since its last heartbeat
  EXPECT_EQ(HealthOf("remote-1"), pb::HEALTH_WARNING);

  pb::SyncRemoteAgentsRequest full;
  full.set_origin_node("node-b");
  full.set_full_snapshot(true);
  result = registry_->SyncRemoteAgents(Actor::Service(), full);
  EXPECT_EQ(result->removed(), 1);
  EXPECT_FALSE(registry_->GetAgent("remote-1").ok());
  EXPECT_TRUE(registry_->GetAgent(local.id).ok());

  sync.set_origin_node("node-a");
  EXPECT_EQ(registry_->SyncRemoteAgents(Actor::Service(), sync).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, AgentCardFallsBackToCapabilities) {
  Registered a = Register("alpha", {"python", "review"});
  auto card = registry_->GetAgentCard(a.id);
  ASSERT_TRUE(card.ok());
  EXPECT_EQ(card->card().name(), "alpha");
  EXPECT_EQ(card->card().description(), "Claude Network agent alpha on node node-a");
  EXPECT_EQ(card->card().url(), absl::StrCat("claudenet://node-a/agents/", a.id));
  EXPECT_EQ(card->card().version(), "0.0.0");
  ASSERT_EQ(card->card().skills_size(), 2);
  EXPECT_EQ(card->card().skills(0).id(), "python");
  EXPECT_NE(card->json().find("\"defaultInputModes\":[\"text/plain\",\"application/json\"]"),
            std::string::npos)
      << card->json();
  EXPECT_NE(card->json().find("\"protocolVersion\":\"0.2.5\""), std::string::npos);
  clock_.Advance(absl::Minutes(2));  // DEAD: left out of the discovery document
  EXPECT_EQ(registry_->ListAgentCards(pb::ListAgentCardsRequest())->cards_size(), 0);
  pb::ListAgentCardsRequest all;
  all.set_include_dead(true);
  EXPECT_EQ(registry_->ListAgentCards(all)->cards_size(), 1);
}

// The A2A AgentCard's required fields, checked on the JSON document as an
// A2A client reads it, including for an agent with no capability at all.
TEST_F(RegistryTest, AgentCardJsonHasEveryA2aRequiredField) {
  for (const std::vector<std::string>& caps :
       {std::vector<std::string>{"python"}, std::vector<std::string>{}}) {
    Registered a = Register(caps.empty() ? "bare" : "with-caps", caps);
    auto card = registry_->GetAgentCard(a.id);
    ASSERT_TRUE(card.ok());
    const std::string& json = card->json();
    for (const char* key : {"\"name\":", "\"description\":", "\"url\":", "\"version\":",
                            "\"capabilities\":{", "\"defaultInputModes\":[",
                            "\"defaultOutputModes\":[", "\"skills\":["}) {
      EXPECT_NE(json.find(key), std::string::npos) << key << " missing in " << json;
    }
    if (caps.empty()) {
      EXPECT_NE(json.find("\"skills\":[]"), std::string::npos) << json;
    } else {
      EXPECT_NE(json.find("\"skills\":[{\"id\":\"python\",\"name\":\"python\",\"description\":"),
                std::string::npos)
          << json;
      EXPECT_NE(json.find("\"tags\":[\"python\"]"), std::string::npos) << json;
    }
  }
}

}  // namespace
}  // namespace cnet::registry
