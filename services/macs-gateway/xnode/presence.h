// Presence across nodes.
//
// Outbound: the local registry's agents (node = this node) are written to
// /agents/{id} (documents.h) on every registry Watch event and, in full,
// every `update_interval` (config network.presence_update_interval): the
// periodic pass carries fresh last_heartbeat and metrics (heartbeats are not
// registry events) and deletes this node's documents whose agent no longer
// exists here. Deregistered and pruned agents are deleted at once.
//
// Inbound: a stream on /agents keeps a cache; the agents of other nodes go
// into the local registry with SyncRemoteAgents (origin_node = their node):
// upserts as documents change, removals as documents disappear, and a full
// snapshot per node listed whenever the stream is (re)opened. A failed
// SyncRemoteAgents (e.g. the registry channel still connecting when the
// gateway started first) is retried with backoff from the cache, since the
// stream delivers each change only once. A node with no
// document at all is never emptied wholesale (an empty or wiped database
// must not erase the network): its agents, like those of a node that stops
// publishing, are degraded by the local registry by the age of their
// last_heartbeat (HEALTHY -> ... -> DEAD, then pruned).
// Malformed or oversize documents, documents whose id differs from their
// key, and documents without a node are rejected and logged, never synced.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_PRESENCE_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_PRESENCE_H_

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "libs/clock/clock.h"
#include "libs/registry_client/registry_client.h"
#include "services/macs-gateway/xnode/coalescing_writer.h"
#include "services/macs-gateway/xnode/json_tree.h"
#include "services/macs-gateway/xnode/kv_store.h"
#include "services/macs-gateway/xnode/worker.h"

namespace cnet::federation {

struct PresenceOptions {
  std::string node;  // this node (network.node_id)
  absl::Duration update_interval = absl::Seconds(15);
  // The network's shared secret: documents are signed with it and others'
  // documents verified (documents.h); empty = signing disabled.
  std::string secret;
  Clock* clock = RealClock::Default();
  // First delay before a failed SyncRemoteAgents is retried (doubles per
  // failure, at most update_interval).
  absl::Duration sync_retry_delay = absl::Milliseconds(200);
};

class PresenceMirror {
 public:
  struct Stats {
    int64_t published = 0;       // document writes on registry events (coalesced)
    int64_t deleted = 0;         // stale documents deleted by the periodic pass
    int64_t synced = 0;          // remote agents upserted into the registry
    int64_t removed = 0;         // remote agents removed from the registry
    int64_t rejected = 0;        // documents refused (malformed, conflicts)
    int64_t write_errors = 0;    // database writes that failed (retried by the next pass)
    int64_t sync_errors = 0;     // SyncRemoteAgents calls that failed (retried)
    int64_t sync_retries = 0;    // retry passes run after failed calls
    int64_t kv_events = 0;       // stream events applied
  };

  PresenceMirror(PresenceOptions options, KvStore* kv,
                 std::shared_ptr<registry_client::RegistryClient> registry);
  ~PresenceMirror();

  void Start();
  void Stop();

  // One full outbound pass now (what the timer does); waits for it.
  absl::Status PublishAll();
  Stats stats() const;

 private:
  void OnRegistryEvent(const claudenet::v1::AgentEvent& event);
  void OnKvEvent(const KvEvent& event);
  void ScheduleTick();
  absl::Status PublishAllNow();
  // Pushes the cached documents of `touched` ("*": all) to the registry.
  // A failed SyncRemoteAgents call is retried (RetrySync) after a backoff
  // from `retry_delay` up to update_interval: the stream delivers each
  // change once, so nothing else would resend it until the document
  // changes again (the publisher's next periodic pass).
  void SyncFromCache(const std::set<std::string>& touched);
  void RetrySync();
  void ScheduleRetryLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PresenceOptions options_;
  KvStore* const kv_;
  const std::shared_ptr<registry_client::RegistryClient> registry_;

  mutable absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  Clock::TimerId timer_ ABSL_GUARDED_BY(mu_) = 0;
  // The /agents cache (stream thread only, and PublishAllNow under mu_).
  JsonTree cache_ ABSL_GUARDED_BY(mu_);
  // Remote agents synced into the registry: id -> node.
  std::map<std::string, std::string> remote_ ABSL_GUARDED_BY(mu_);
  // Serializes SyncFromCache (stream thread and retries on the worker), so
  // an older state of an agent is never sent after a newer one.
  absl::Mutex sync_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // Agents whose last sync failed ("*": a full pass), and the retry timer.
  std::set<std::string> retry_ ABSL_GUARDED_BY(mu_);
  Clock::TimerId retry_timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration retry_delay_ ABSL_GUARDED_BY(mu_);
  // Between a stream reset and its whole-value put the cache is empty:
  // partial syncs then would remove agents (the full pass follows anyway).
  bool resyncing_ ABSL_GUARDED_BY(mu_) = false;

  std::unique_ptr<Worker> worker_;
  std::unique_ptr<CoalescingWriter> writer_;
  std::unique_ptr<registry_client::WatchSubscription> watch_;
  std::unique_ptr<KvSubscription> stream_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_PRESENCE_H_
