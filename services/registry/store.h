// The registry's own SQLite tables: agents (the record and the hash of the
// agent's token, never the token), presence (last seen, metrics and the
// health state machine, written in batches), the retained tail of the event
// log, and revoked token hashes (so a validation can say why a token is no
// longer valid).
//
// One write connection, not thread-safe: the registry serializes every call
// (see Registry's write lock). Each Apply() is one transaction: either all
// of it is stored or none of it. synchronous=NORMAL in WAL mode: a committed
// transaction survives kill -9 of the process (not a power loss; see
// docs/registry.md).
#ifndef CNET_SERVICES_REGISTRY_STORE_H_
#define CNET_SERVICES_REGISTRY_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/sqlite/database.h"
#include "proto/claudenet/v1/registry.pb.h"

namespace cnet::registry {

// What changes with every heartbeat, plus the health state machine: written
// in batches (and together with every acknowledged write of the agent).
struct PresenceRow {
  int64_t rowid = 0;              // the agent's row
  int64_t last_seen_ns = 0;       // Unix nanoseconds
  std::string metrics;            // serialized AgentMetrics; empty = none yet
  int32_t recovery_remaining = 0; // on-time heartbeats still needed to be HEALTHY
  bool have_baseline = false;     // error-rate window start known
  int64_t base_errors = 0;
  int64_t base_messages = 0;
  int64_t base_time_ns = 0;
  int64_t base_uptime_ms = 0;
  bool metrics_violation = false;
  std::string metrics_reason;
  int32_t reported_health = 0;    // remote agents: health reported by the origin
  int64_t last_rotation_ns = 0;
};

// One agent as stored.
struct AgentRow {
  int64_t rowid = 0;       // 0 on insert; Apply() fills it in
  std::string id;
  std::string token_hash;  // raw SHA-256 of the token; empty for remote agents
  // Serialized claudenet.v1.Agent without heartbeat data (last_heartbeat and
  // metrics live in PresenceRow).
  std::string record;
  PresenceRow presence;
};

struct RevokedToken {
  std::string token_hash;
  std::string agent_id;
  int32_t reason = 0;  // claudenet.v1.TokenInvalidReason
  int64_t revoked_ns = 0;
};

// Everything one acknowledged change writes, in one transaction.
struct WriteBatch {
  std::vector<AgentRow> upserts;   // rowid 0 = insert, else replace that row
  std::vector<int64_t> deletes;    // rowids
  std::vector<RevokedToken> revoked;
  std::vector<std::pair<int64_t, std::string>> events;  // sequence, serialized AgentEvent
  bool empty() const {
    return upserts.empty() && deletes.empty() && revoked.empty() && events.empty();
  }
};

class RegistryStore {
 public:
  // Opens (creating) the database at `path` (":memory:" for tests) and
  // applies the migrations.
  static absl::StatusOr<std::unique_ptr<RegistryStore>> Open(const std::string& path);

  // Every agent with its presence.
  absl::StatusOr<std::vector<AgentRow>> LoadAgents();
  // The newest `limit` events, oldest first.
  absl::StatusOr<std::vector<std::string>> LoadEvents(int64_t limit);
  // The highest sequence ever written (0 when none).
  absl::StatusOr<int64_t> LastSequence();
  // Revoked token hashes, newest last, at most `limit`.
  absl::StatusOr<std::vector<RevokedToken>> LoadRevoked(int64_t limit);

  // Applies the batch in one transaction; on success fills the rowids of
  // inserted rows (upserts[i].rowid and upserts[i].presence.rowid).
  absl::Status Apply(WriteBatch* batch);

  // Batched heartbeat data: updates the presence rows that still exist.
  absl::Status WritePresence(const std::vector<PresenceRow>& rows);

  // Drops events with sequence <= `up_to` (but never the newest one, which
  // remembers the sequence) and revoked tokens beyond the newest `keep`.
  absl::Status Trim(int64_t up_to_sequence, int64_t keep_revoked);

  sqlite::Database* db() { return db_.get(); }

 private:
  explicit RegistryStore(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}
  absl::Status UpsertPresence(const PresenceRow& row, bool insert);

  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace cnet::registry

#endif  // CNET_SERVICES_REGISTRY_STORE_H_
