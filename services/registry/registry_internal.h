// Internal types of the registry core, shared by registry.cc (changes,
// health, persistence) and registry_queries.cc (discovery). Not part of the
// core's interface.
#ifndef CNET_SERVICES_REGISTRY_REGISTRY_INTERNAL_H_
#define CNET_SERVICES_REGISTRY_REGISTRY_INTERNAL_H_

#include <google/protobuf/util/time_util.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "services/registry/registry.h"

namespace cnet::registry {
namespace internal {

// Self-reported metrics, kept as plain numbers (a heartbeat copies a few
// words instead of a message).
struct Metrics {
  int64_t messages_sent = 0;
  int64_t messages_received = 0;
  int64_t errors = 0;
  int64_t uptime_ns = 0;
  double load = 0;
  int32_t active_tasks = 0;
  std::vector<std::pair<std::string, double>> custom;
};

struct Presence {
  absl::Time last_seen;  // last heartbeat or registration (remote: reported)
  bool has_metrics = false;
  Metrics metrics;
  // Hysteresis: on-time heartbeats still needed to be HEALTHY again.
  int32_t recovery_remaining = 0;
  // Error-rate window.
  bool have_baseline = false;
  int64_t base_errors = 0;
  int64_t base_messages = 0;
  absl::Time base_time;
  int64_t base_uptime_ms = 0;
  bool metrics_violation = false;
  std::string metrics_reason;
  claudenet::v1::Health reported_health = claudenet::v1::HEALTH_UNSPECIFIED;  // remote agents
  absl::Time last_rotation = absl::InfinitePast();
};

// Times kept outside the message (each Timestamp would be its own heap
// object, for 100,000 agents).
struct Times {
  absl::Time registered;
  absl::Time updated;
  absl::Time status_changed;
  absl::Time health_changed;
  absl::Time prune_at = absl::InfiniteFuture();  // set while DEAD
};

// Everything about one agent that a change replaces as a whole. `agent`
// holds the descriptive fields, status, health and revision; timestamps,
// metrics, last heartbeat and health reason are filled in by View().
struct Version {
  claudenet::v1::Agent agent;
  Times t;
  Presence p;
  bool has_token = false;
  std::array<char, 32> token{};  // SHA-256 of the token
};

// What FindAgents ranks by, per slot (16 bytes).
struct Rank {
  int64_t last_seen_ns = 0;
  float load = 0;
  uint16_t active_tasks = 0;
  uint16_t capacity = 1;
};

// Per-slot flags byte: health (bits 0-2), status (bits 3-5), human, remote.
inline constexpr uint8_t kHumanBit = 1 << 6;
inline constexpr uint8_t kRemoteBit = 1 << 7;
inline uint8_t FlagsOf(const claudenet::v1::Agent& a) {
  return static_cast<uint8_t>((a.health() & 7) | ((a.status() & 7) << 3) |
                              (a.kind() == claudenet::v1::AGENT_KIND_HUMAN ? kHumanBit : 0) |
                              (a.remote() ? kRemoteBit : 0));
}
inline int HealthOf(uint8_t flags) { return flags & 7; }
inline int StatusOf(uint8_t flags) { return (flags >> 3) & 7; }

inline google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}
inline absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(t));
}
inline google::protobuf::Duration ToProto(absl::Duration d) {
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

// NOT_FOUND naming the agent (reason AGENT_NOT_FOUND).
absl::Status AgentNotFound(std::string_view id);

Metrics MetricsFromProto(const claudenet::v1::AgentMetrics& m);
void MetricsToProto(const Metrics& m, claudenet::v1::AgentMetrics* out);

}  // namespace internal

struct Registry::Alive {
  absl::Mutex mu;
  Registry* self ABSL_GUARDED_BY(mu) = nullptr;
};

struct Registry::Entry {
  std::string id;  // never changes: indexes hold views of it
  uint32_t slot = 0;
  int64_t rowid = 0;
  Version v;
  std::vector<uint32_t> caps;  // interned, sorted
  uint32_t node = 0;
  absl::Time queued_deadline = absl::InfiniteFuture();
  bool dirty = false;    // heartbeat data not yet written
  bool pending = false;  // a write about this agent is in flight
};

// The agents having one capability (or on one node, or all of them),
// ordered by id. Inserts and cursor seeks use the btree; scans use a flat
// array of slots in the same order, rebuilt on the first scan after a
// change (scans by far outnumber registrations).
class Registry::Posting {
 public:
  void Insert(const IdKey& key) {
    ordered_.insert(key);
    scan_valid_ = false;
  }
  void Erase(const IdKey& key) {
    ordered_.erase(key);
    scan_valid_ = false;
  }
  size_t size() const { return ordered_.size(); }
  bool empty() const { return ordered_.empty(); }
  const absl::btree_set<IdKey>& ordered() const { return ordered_; }

  // Slots in id order. Callers hold the registry's lock (shared is enough):
  // changes need it exclusively, so the array stays valid while they scan.
  const std::vector<uint32_t>& Scan() const {
    absl::MutexLock lock(&scan_mu_);
    if (!scan_valid_) {
      scan_.clear();
      scan_.reserve(ordered_.size());
      for (const IdKey& key : ordered_) scan_.push_back(key.second);
      scan_valid_ = true;
    }
    return scan_;
  }

 private:
  absl::btree_set<IdKey> ordered_;
  // Readers that find the array stale rebuild it under this mutex.
  mutable absl::Mutex scan_mu_;
  mutable std::vector<uint32_t> scan_;
  mutable bool scan_valid_ = false;
};

struct Registry::CapIndex {
  std::string name;
  Posting posting;
  int64_t healthy = 0;  // agents of the posting that are HEALTHY
};

struct Registry::NodeIndex {
  std::string name;
  Posting posting;
};

// The presence and status after a sign of life.
struct Registry::Plan {
  Presence p;
  claudenet::v1::AgentStatus status = claudenet::v1::AGENT_STATUS_UNSPECIFIED;
  std::string status_message;
  bool status_changed = false;  // status or its message
  claudenet::v1::Health health = claudenet::v1::HEALTH_UNSPECIFIED;
  std::string health_reason;
  bool health_changed = false;
};

struct Registry::ListQuery {
  bool empty = false;  // a filter names something no agent has
  const Posting* posting = nullptr;
  bool posting_is_exact = false;  // posting == the whole filter
  bool check_caps = false;        // caps must be checked
  uint64_t all_bits = 0;          // caps_all with an id < 64, as bits
  uint64_t any_bits = 0;          // caps_any as bits, when all have an id < 64
  bool caps_on_entry = false;     // some capability needs the entry's list
  std::vector<uint32_t> caps_all;
  std::vector<uint32_t> caps_any;
  absl::flat_hash_set<uint32_t> nodes;
  uint32_t status_mask = 0;
  uint32_t health_mask = 0;
  bool want_ai = true;
  bool want_human = true;
  claudenet::v1::Locality locality = claudenet::v1::LOCALITY_UNSPECIFIED;
  std::string name_prefix;
};

}  // namespace cnet::registry

#endif  // CNET_SERVICES_REGISTRY_REGISTRY_INTERNAL_H_
