// The registry core: who is on the network, how healthy each agent is, and
// what changed. Plain C++ over the API's message types (no gRPC types):
// the gRPC adapter (registry_service.h) converts credentials and statuses,
// everything else happens here.
//
// It owns
//  - the agents, in memory, indexed by id, capability and node (kept
//    consistent with the store under one lock), so discovery over 100,000
//    agents takes well under a millisecond or two;
//  - agent tokens, as SHA-256 hashes only (the token is returned once);
//  - measured health: a state machine per agent driven by heartbeats and by
//    timers on the injected Clock, so a health change happens at the
//    instant its threshold is crossed, not when someone looks;
//  - the event log (sequence numbers, retained tail for resume) and the hub
//    that fans events out to Watch streams.
//
// Durability: registration, updates, deregistration, rotations, status and
// health changes are written to SQLite before they are acknowledged or
// published (write, then apply). Heartbeat data (last seen, metrics, the
// recovery counter) stays in memory and is written in batches every
// flush_interval and at Shutdown(). After a restart, `restart_grace` keeps
// every agent at its stored health until agents had time to heartbeat.
//
// Health rules (thresholds from config network.health.*):
//  - by heartbeat age: HEALTHY while age <= healthy_max, WARNING while
//    <= warning_max, CRITICAL while <= critical_max, DEAD after;
//  - hysteresis: once CRITICAL or DEAD, an agent is at best WARNING until
//    `recovery_heartbeats` consecutive on-time heartbeats arrived (a
//    heartbeat is on time when it comes at most healthy_max after the
//    previous one; the late heartbeat that ends an outage does not count);
//  - metrics: when the error rate (new errors / new messages+errors, judged
//    once at least 10 have accumulated or 10 heartbeat intervals passed)
//    exceeds error_rate_warning, HEALTHY becomes WARNING;
//  - what the agent says (status BUSY, load, active tasks) never affects
//    health;
//  - DEAD agents are pruned after dead_retention; humans are not measured.
//
// Locking: `write_mu_` orders every store write and is taken before `mu_`,
// which guards memory. Queries take `mu_` shared; a heartbeat that changes
// nothing observable takes `mu_` exclusively for about a microsecond and
// never touches the disk.
#ifndef CNET_SERVICES_REGISTRY_REGISTRY_H_
#define CNET_SERVICES_REGISTRY_REGISTRY_H_

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/config/loader.h"
#include "libs/ids/ids.h"
#include "libs/stream/event_hub.h"
#include "proto/claudenet/v1/registry.pb.h"
#include "services/registry/store.h"

namespace cnet::registry {

// Payloads the core attaches to some errors (absl::Status::SetPayload);
// the adapter turns them into the `claudenet-error-bin` ErrorDetail and the
// `claudenet-retry-after-ms` trailer.
inline constexpr char kReasonPayload[] = "claudenet.dev/reason";
inline constexpr char kRetryAfterPayload[] = "claudenet.dev/retry_after_ms";

namespace internal {
// Defined in registry_internal.h.
struct Presence;  // heartbeat data and health state machine of one agent
struct Version;   // everything about one agent that a change replaces
struct Rank;      // per-slot ranking data of FindAgents
}  // namespace internal

// Who performs a call, as the adapter authenticated it.
struct Actor {
  enum class Kind { kAnonymous, kAgent, kService, kAdmin };
  Kind kind = Kind::kAnonymous;
  std::string id;            // agent id, "admin", "svc"
  std::string on_behalf_of;  // service calls acting for an agent

  static Actor Agent(std::string id) { return Actor{Kind::kAgent, std::move(id), ""}; }
  static Actor Admin() { return Actor{Kind::kAdmin, "admin", ""}; }
  static Actor Service() { return Actor{Kind::kService, "svc", ""}; }
};

struct RegistryOptions {
  std::string local_node = "local";
  absl::Duration heartbeat_interval = absl::Seconds(15);
  absl::Duration healthy_max = absl::Seconds(30);
  absl::Duration warning_max = absl::Seconds(60);
  absl::Duration critical_max = absl::Seconds(90);
  int recovery_heartbeats = 2;
  double error_rate_warning = 0.1;
  absl::Duration dead_retention = absl::Hours(24);
  absl::Duration restart_grace = absl::Seconds(60);
  int64_t event_retention = 10000;
  absl::Duration flush_interval = absl::Seconds(1);
  absl::Duration token_cache_ttl = absl::Seconds(30);
  absl::Duration rotate_min_interval = absl::Seconds(10);
  absl::Duration checkpoint_interval = absl::Seconds(30);
  int max_capabilities = 64;
  int64_t max_agents = 1'000'000;
  int default_agent_concurrency = 1;
  bool open_registration = true;
  std::string public_base_url;
  size_t watch_buffer = 4096;
  int max_watchers_per_caller = 64;
  // Revoked token hashes remembered to explain rejections.
  int64_t revoked_tokens_kept = 100'000;
  // Agents whose health is re-judged per timer round (bounds lock hold time).
  int timer_batch = 2000;

  // From the effective configuration; local_node = network.node_id, else
  // the host name.
  static RegistryOptions FromConfig(const config::Config& config);
};

// A registry event as published on the hub: shared, immutable.
using EventPtr = std::shared_ptr<const claudenet::v1::AgentEvent>;

// Which events a Watch stream passes (agent ids, capabilities, nodes, types).
class WatchFilter {
 public:
  static absl::StatusOr<WatchFilter> Create(const claudenet::v1::WatchAgentsRequest& request);
  // SNAPSHOT_END, CHECKPOINT and RESYNC_REQUIRED always pass.
  bool Matches(const claudenet::v1::AgentEvent& event) const;
  bool MatchesAgent(const claudenet::v1::Agent& agent) const;
  // True when some events may be filtered out (then CHECKPOINTs are useful).
  bool filtered() const;

 private:
  absl::flat_hash_set<std::string> agent_ids_;
  absl::flat_hash_set<std::string> capabilities_;
  absl::flat_hash_set<std::string> nodes_;
  absl::flat_hash_set<int> types_;
};

class Registry {
 public:
  // Loads the store's agents and event tail. When agents were loaded, the
  // restart grace period starts now.
  static absl::StatusOr<std::unique_ptr<Registry>> Open(RegistryOptions options,
                                                        std::unique_ptr<RegistryStore> store,
                                                        Clock* clock);
  // Stops the timers. Does NOT write pending heartbeat data (that is what a
  // crash does); call Shutdown() for a clean stop.
  ~Registry();

  // Writes pending heartbeat data, stops the timers and closes the hub (Watch
  // streams end with OK). Idempotent.
  void Shutdown();

  struct Registration {
    claudenet::v1::Agent agent;
    std::string token;  // empty when no token was issued
    bool created = false;
  };
  absl::StatusOr<Registration> Register(const Actor& actor,
                                        const claudenet::v1::RegisterRequest& request);
  absl::StatusOr<claudenet::v1::Agent> UpdateAgent(
      const Actor& actor, const claudenet::v1::UpdateAgentRequest& request);
  absl::StatusOr<claudenet::v1::Agent> Deregister(const Actor& actor, std::string agent_id,
                                                  const std::string& reason);
  struct Rotation {
    std::string token;
    absl::Time rotated_at;
  };
  absl::StatusOr<Rotation> RotateToken(const Actor& actor, std::string agent_id);
  absl::StatusOr<claudenet::v1::HeartbeatResponse> Heartbeat(
      const Actor& actor, const claudenet::v1::HeartbeatRequest& request);

  absl::StatusOr<claudenet::v1::Agent> GetAgent(const std::string& agent_id) const;
  absl::StatusOr<claudenet::v1::ListAgentsResponse> ListAgents(
      const claudenet::v1::ListAgentsRequest& request) const;
  absl::StatusOr<claudenet::v1::FindAgentsResponse> FindAgents(
      const claudenet::v1::FindAgentsRequest& request) const;
  absl::StatusOr<claudenet::v1::GetNetworkStatusResponse> GetNetworkStatus(
      const claudenet::v1::GetNetworkStatusRequest& request) const;
  absl::StatusOr<claudenet::v1::GetAgentCardResponse> GetAgentCard(
      const std::string& agent_id) const;
  absl::StatusOr<claudenet::v1::ListAgentCardsResponse> ListAgentCards(
      const claudenet::v1::ListAgentCardsRequest& request) const;
  absl::StatusOr<claudenet::v1::SyncRemoteAgentsResponse> SyncRemoteAgents(
      const Actor& actor, const claudenet::v1::SyncRemoteAgentsRequest& request);

  // Who a token belongs to. Unknown or revoked tokens are valid = false with
  // the reason; INVALID_ARGUMENT only for an empty or oversize token.
  absl::StatusOr<claudenet::v1::ValidateTokenResponse> ValidateToken(
      std::string_view token) const;
  // The agent id of a valid token, or UNAUTHENTICATED (for the interceptor).
  absl::StatusOr<std::string> AuthenticateToken(std::string_view token) const;

  // Watch: the initial batch of a stream (a snapshot, or events replayed
  // after from_sequence) and the sequence it covers; live events from the
  // hub with a greater sequence follow. Subscribe to hub() BEFORE calling.
  struct WatchStart {
    std::vector<EventPtr> initial;
    int64_t covered_sequence = 0;
    bool resync_required = false;  // from_sequence is no longer retained
  };
  absl::StatusOr<WatchStart> StartWatch(const claudenet::v1::WatchAgentsRequest& request,
                                        const WatchFilter& filter) const;
  EventHub<EventPtr>* hub() { return &hub_; }

  // Persists pending heartbeat data now (also runs every flush_interval).
  absl::Status Flush();

  int64_t current_sequence() const;
  size_t agent_count() const;
  absl::Time grace_until() const { return grace_until_; }
  const RegistryOptions& options() const { return options_; }
  Clock* clock() const { return clock_; }

 private:
  using Presence = internal::Presence;
  using Version = internal::Version;
  struct Entry;
  struct CapIndex;
  struct NodeIndex;
  struct Alive;
  struct Plan;
  struct ListQuery;
  // An id and its slot: postings are ordered by id (stable pagination).
  using IdKey = std::pair<std::string_view, uint32_t>;
  class Posting;
  using TokenHash = std::array<char, 32>;

  Registry(RegistryOptions options, std::unique_ptr<RegistryStore> store, Clock* clock);
  absl::Status Load();

  // --- memory (mu_ held) ---
  Entry* FindLocked(std::string_view id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint32_t AllocateSlot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void IndexLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnindexLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncHotLocked(const Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replaces an entry's version (re-indexing what changed).
  void ReplaceLocked(Entry* e, Version next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t InternCapability(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t InternNode(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent as the API returns it.
  claudenet::v1::Agent View(const Version& v, absl::Time now) const;
  claudenet::v1::Agent ViewLocked(const Entry& e, absl::Time now) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  // --- health ---
  claudenet::v1::Health AgeHealth(absl::Duration age) const;
  // The health an agent has at `now` without a new heartbeat, and why.
  std::pair<claudenet::v1::Health, std::string> Judge(const Version& v, absl::Time now) const;
  std::pair<claudenet::v1::Health, std::string> Judge(const claudenet::v1::Agent& agent,
                                                      const Presence& p, absl::Time now) const;
  // When the judged health may next change without a heartbeat.
  absl::Time NextDeadline(const Version& v, absl::Time now) const;
  void ScheduleLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmTimerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnHealthTimer(uint64_t generation);
  void OnFlushTimer();
  void OnCheckpointTimer();
  // Sets health (and the times that go with it) on a planned version.
  void SetHealth(claudenet::v1::Health health, absl::Time now, Version* v) const;

  // --- events and writes ---
  // Writes are planned under mu_ (marking the entries `pending`), written
  // to the store holding only write_mu_, then applied and published under
  // mu_. Heartbeats and queries therefore never wait for the disk; a
  // heartbeat for a pending entry takes the slow path, which waits on
  // write_mu_ for the write in flight.
  claudenet::v1::AgentEvent MakeEvent(claudenet::v1::AgentEventType type, const Version& v,
                                      absl::Time now, const Actor* actor,
                                      std::string reason) const;
  AgentRow RowOf(const Entry& e, const Version& v) const;
  PresenceRow PresenceOf(int64_t rowid, const Presence& p) const;
  // Numbers `events` after `last_sequence` and writes them with `batch`.
  absl::Status WriteLocked(int64_t last_sequence, WriteBatch* batch,
                           std::vector<claudenet::v1::AgentEvent>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // After a successful write: the log tail, the sequence, revocations, and
  // the hub (in order).
  void PublishLocked(const WriteBatch& batch, std::vector<claudenet::v1::AgentEvent>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_);
  // All pending heartbeat data at once (shutdown).
  absl::Status FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void CollectDirtyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::Status FlushChunkLocked(size_t max_rows) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  std::vector<Entry*> DirtyEntriesLocked(const std::vector<PresenceRow>& rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  static constexpr size_t kFlushChunk = 2000;

  std::string NewToken(TokenHash* hash) const;

  // A sign of life (heartbeat, re-registration): the presence and status
  // after it, computed without changing anything.
  Plan PlanHeartbeatLocked(const Entry& e, const claudenet::v1::HeartbeatRequest& request,
                           absl::Time now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void MarkDirtyLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<claudenet::v1::HeartbeatResponse> HeartbeatSlowPath(
      const Actor& actor, const std::string& agent_id,
      const claudenet::v1::HeartbeatRequest& request);

  // Listing: a validated filter, resolved against the indexes.
  absl::StatusOr<ListQuery> ResolveListLocked(const claudenet::v1::ListAgentsRequest& request) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool MatchesLocked(const ListQuery& q, uint32_t slot) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::StatusOr<claudenet::v1::ListAgentsResponse> ListLocked(
      const claudenet::v1::ListAgentsRequest& request, absl::Time now) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const RegistryOptions options_;
  Clock* const clock_;
  mutable IdGenerator ids_;
  std::shared_ptr<Alive> alive_;
  EventHub<EventPtr> hub_;
  absl::Time boot_time_;
  absl::Time grace_until_ = absl::InfinitePast();

  // Orders store writes; taken before mu_.
  mutable absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<RegistryStore> store_ ABSL_GUARDED_BY(write_mu_);
  bool shut_down_ ABSL_GUARDED_BY(write_mu_) = false;
  int64_t trimmed_up_to_ ABSL_GUARDED_BY(write_mu_) = 0;
  // Heartbeat data collected for writing, by row; drained in chunks in rowid
  // order, so each chunk touches a contiguous range of table pages.
  absl::btree_map<int64_t, PresenceRow> flush_queue_ ABSL_GUARDED_BY(write_mu_);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);  // by slot
  // Compact per-slot data that queries scan (by slot): flags (health,
  // status, kind, remote: one byte), ranking data for FindAgents, node.
  std::vector<uint8_t> flags_ ABSL_GUARDED_BY(mu_);
  std::vector<internal::Rank> rank_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> node_of_ ABSL_GUARDED_BY(mu_);
  // Bit c set when the agent has interned capability c (c < 64): capability
  // checks without touching the entry.
  std::vector<uint64_t> cap_bits_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_slots_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string_view, uint32_t> by_id_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Posting> all_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> cap_ids_ ABSL_GUARDED_BY(mu_);
  std::deque<CapIndex> caps_ ABSL_GUARDED_BY(mu_);  // deque: elements never move
  absl::flat_hash_map<std::string, uint32_t> node_ids_ ABSL_GUARDED_BY(mu_);
  std::deque<NodeIndex> nodes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TokenHash, uint32_t> by_token_ ABSL_GUARDED_BY(mu_);  // -> slot
  struct Revoked {
    std::string agent_id;
    claudenet::v1::TokenInvalidReason reason;
  };
  absl::flat_hash_map<std::string, Revoked> revoked_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> revoked_order_ ABSL_GUARDED_BY(mu_);
  // Health deadlines: (time, slot). An entry may be earlier than the agent's
  // real deadline (heartbeats do not move it); it is then re-judged and
  // queued again. It is never later.
  absl::btree_set<std::pair<absl::Time, uint32_t>> deadlines_ ABSL_GUARDED_BY(mu_);
  Clock::TimerId health_timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time health_timer_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  uint64_t health_timer_generation_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimerId flush_timer_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimerId checkpoint_timer_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t checkpoint_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint32_t> dirty_ ABSL_GUARDED_BY(mu_);
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<EventPtr> tail_ ABSL_GUARDED_BY(mu_);
  bool timers_stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cnet::registry

#endif  // CNET_SERVICES_REGISTRY_REGISTRY_H_
