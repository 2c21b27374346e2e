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
// snapshot per node listed whenever the stream is (re)opened. A node with no
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
    int64_t sync_errors = 0;     // SyncRemoteAgents calls that failed
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
  void SyncFromCache(const std::set<std::string>& touched);

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

  std::unique_ptr<Worker> worker_;
  std::unique_ptr<CoalescingWriter> writer_;
  std::unique_ptr<registry_client::WatchSubscription> watch_;
  std::unique_ptr<KvSubscription> stream_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_PRESENCE_H_
