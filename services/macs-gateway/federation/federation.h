// Message federation of the MACS gateway: copies for agents on other nodes
// travel from the gateway's persisted outbox (= the offline queue) through
// Firebase Realtime Database, or GitHub Issues when Firebase keeps failing,
// into the remote gateway's inbox; delivery receipts travel back.
//
// This header is also the seam for the other federation components of the
// gateway binary (agents presence, tasks across nodes): they share the
// Federation object, which owns the media clients and the mode state.
//
//   Federation* fed = ...;              // created in main.cc
//   fed->node();                        // this node's name (network.node_id)
//   fed->db();                          // the shared RealtimeDb (nullptr when
//                                       // firebase.enabled is false)
//   fed->state();                       // CONNECTED / QUEUED / FALLBACK / DISABLED
//   fed->AddTickHook("presence", fn);   // fn() runs on the federation thread
//                                       // every tick (>= every poll_interval,
//                                       // sooner after Nudge())
//   fed->Nudge();                       // wake the federation thread now
//   fed->ReportFirebase(status);        // feed a Firebase call's outcome into
//                                       // the state machine (so failures seen
//                                       // by any component count)
// A component that wants push notifications opens its own stream on a path
// (e.g. /agents) with the shared client and calls Nudge() or its own logic
// from the stream callback; the message path itself does not depend on the
// stream (it re-reads its subtree in key order every tick, which is also the
// resync after a reconnect).
//
// Firebase layout used here (docs/federation.md has the JSON schemas):
//   /messages/{dest_node}/{origin_node}-{seq:020}  one envelope: a message
//        for agents of dest_node, written by origin_node; seq = the origin's
//        outbox id (increasing), prev = the seq of the previous envelope from
//        origin to dest (0 = none known). Deleted by dest_node once accepted
//        (or rejected), together with the receipt write (one atomic update).
//   /receipts/{origin_node}/{dest_node}-{seq:020}  {message_id, sender, node,
//        state: DELIVERED|REJECTED, reason, recipients, at}; the origin sets
//        its copies DELIVERED (or DEAD_LETTERED, REMOTE_UNDELIVERABLE) and
//        deletes the receipt.
//
// State machine (GetStats.federation.state):
//   DISABLED   firebase.enabled is false (no federation; the outbox grows).
//   CONNECTED  the last Firebase call succeeded.
//   QUEUED     Firebase failing for less than github.fallback_after (or no
//              GitHub configured): remote traffic stays in the outbox,
//              retried with exponential backoff and full jitter
//              (offline.backoff_base * factor^n, capped at backoff_max).
//   FALLBACK   Firebase failing for github.fallback_after or longer and
//              GitHub configured: the outbox drains through GitHub issues
//              (one issue per batch and destination node); Firebase is still
//              probed on the backoff schedule; its first success returns to
//              CONNECTED and traffic moves back.
//
// Ordering per sender -> recipient (stronger: per origin node -> dest node):
// envelopes are written in outbox order; the receiver applies Firebase
// children in key order, GitHub issues oldest first, each envelope only
// after its `prev` was applied (held for at most hold_timeout, then applied
// anyway). Dedupe: the gateway's (sender, id) dedupe makes a message that
// arrives twice (both media, or re-sent after a crash between the write
// and MarkForwarded) be delivered once.
//
// Threads: Start() runs a federation thread woken by timers on the
// injected Clock (never sleeps); tests leave it stopped and call the *Once
// steps directly with a SimulatedClock.
#ifndef CNET_SERVICES_MACS_GATEWAY_FEDERATION_FEDERATION_H_
#define CNET_SERVICES_MACS_GATEWAY_FEDERATION_FEDERATION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "proto/claudenet/v1/macs.pb.h"
#include "services/macs-gateway/federation/media.h"

namespace cnet::macs {
class Gateway;
}

namespace cnet::macs::federation {

struct FederationOptions {
  std::string node;  // this node (network.node_id)
  // Backoff of Firebase (and GitHub) calls after a failure: full jitter,
  // delay = uniform(0, min(backoff_max, backoff_base * factor^failures)).
  absl::Duration backoff_base = absl::Seconds(1);   // offline.backoff_base
  double backoff_factor = 2;                        // offline.backoff_factor
  absl::Duration backoff_max = absl::Seconds(60);   // offline.backoff_max
  absl::Duration fallback_after = absl::Minutes(5); // github.fallback_after
  absl::Duration poll_interval = absl::Seconds(1);  // federation.poll_interval
  absl::Duration github_poll_interval = absl::Seconds(30);  // github.poll_interval
  // One Firebase multi-path update carries at most this many envelopes and
  // bytes (Firebase limits one write to 256 MB and recommends far less).
  int batch_max_messages = 500;           // federation.batch_max_messages
  int64_t batch_max_bytes = 4 << 20;      // federation.batch_max_bytes
  // One GitHub issue body (GitHub's limit is 65536 characters).
  int64_t github_max_body_bytes = 60000;
  // An envelope larger than this is rejected by the receiver (OVERSIZE).
  int64_t max_envelope_bytes = 1 << 20;
  // How long the receiver holds an envelope whose predecessor has not
  // arrived (e.g. it is still in a GitHub issue not yet polled).
  absl::Duration hold_timeout = absl::Seconds(60);  // federation.hold_timeout
  std::vector<std::string> github_labels = {"claude-network"};  // github.labels
  uint64_t jitter_seed = 0;  // 0 = random
};

// Counters of the message path (also in GetStats via FillStatus).
struct FederationCounters {
  int64_t envelopes_sent_firebase = 0;
  int64_t envelopes_sent_github = 0;
  int64_t issues_created = 0;
  int64_t accepted = 0;           // remote envelopes delivered into inboxes
  int64_t duplicates = 0;         // remote envelopes already delivered
  int64_t rejected = 0;           // remote envelopes refused (never delivered)
  std::map<std::string, int64_t> rejected_by_reason;
  int64_t receipts_applied = 0;
  int64_t firebase_failures = 0;
  int64_t github_failures = 0;
};

class Federation {
 public:
  // `db` and/or `issues` may be null (medium not configured). Neither is
  // owned unless passed through set_owned_*.
  Federation(FederationOptions options, Clock* clock, Gateway* gateway, RealtimeDb* db,
             IssueTracker* issues);
  ~Federation();
  Federation(const Federation&) = delete;
  Federation& operator=(const Federation&) = delete;

  // --- the seam for other components ---
  const std::string& node() const { return options_.node; }
  RealtimeDb* db() const { return db_; }
  IssueTracker* issues() const { return issues_; }
  claudenet::v1::FederationState state();
  void AddTickHook(std::string name, std::function<void()> fn);
  void Nudge();
  void ReportFirebase(const absl::Status& status);
  // The Firebase stream's state (GetStats.federation.firebase_stream_connected).
  void SetStreamConnected(bool connected);
  // Keep clients alive as long as the federation (main.cc).
  void AdoptDb(std::shared_ptr<void> owner) { owned_.push_back(std::move(owner)); }

  // --- driver ---
  void Start();
  void Stop();  // idempotent; the destructor calls it

  // --- steps (the thread runs these; tests call them directly) ---
  // Sends outbox batches through the current medium until the outbox is
  // empty, a call fails, or the medium is backing off. Returns the number
  // of outbox copies handed over.
  absl::StatusOr<int64_t> PumpOnce();
  // Reads /messages/{node} and /receipts/{node} once (if not backing off).
  absl::Status PollFirebaseOnce();
  // Lists the open issues for this node once (if GitHub is configured).
  absl::Status PollGitHubOnce();
  // All of the above, then the tick hooks.
  void TickOnce();

  // Imports the seed's offline queue file (see docs/federation.md for the
  // accepted shape): each entry is signed with `secret` and sent through
  // the gateway (so remote ones enter the outbox). Returns how many
  // entries were imported; entries already imported are duplicates (by id).
  absl::StatusOr<int> ImportOfflineQueue(const std::string& path, const std::string& secret);

  // GetStats.federation.
  void FillStatus(claudenet::v1::FederationStatus* out);
  FederationCounters counters();
  absl::Time next_retry_at();

 private:
  struct Envelope;
  struct Medium {
    absl::Time failing_since = absl::InfinitePast();  // InfinitePast = healthy
    int failures = 0;
    absl::Time next_try = absl::InfinitePast();
    absl::Time last_success = absl::InfinitePast();
    std::string last_error;
  };

  bool FirebaseDue(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Report(Medium& m, const absl::Status& st, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  claudenet::v1::FederationState StateLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Processes one envelope text; returns false when it must wait (hold or
  // transient error). Appends the ack/receipt writes.
  enum class Outcome { kDone, kWait, kAccept };
  struct Pending {
    std::string key;  // Firebase child key; empty for GitHub
    std::string origin;
    int64_t seq = -1;
    claudenet::v1::Message msg;
    absl::StatusOr<claudenet::v1::SendResponse> result = absl::UnknownError("not accepted");
  };
  // Parses and checks an envelope (size, shape, predecessor against
  // last_applied and `planned`); kAccept fills `p` for the gateway.
  Outcome Prepare(const std::string& text, const std::string& firebase_key,
                  std::map<std::string, std::string>* writes,
                  const std::map<std::string, int64_t>& planned, Pending* p);
  // Counts, receipts and acks the gateway's answer (kWait when transient).
  Outcome Finish(Pending& p, claudenet::v1::Transport transport,
                 std::map<std::string, std::string>* writes);
  Outcome Accept(const std::string& text, claudenet::v1::Transport transport,
                 const std::string& firebase_key, std::map<std::string, std::string>* writes,
                 std::string* origin);
  void CountReject(const std::string& reason, const std::string& detail);
  absl::Status ApplyReceipts();
  absl::Status FlushPendingReceipts();
  void Run();
  void ScheduleLocked(absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FederationOptions options_;
  Clock* const clock_;
  Gateway* const gateway_;
  RealtimeDb* const db_;
  IssueTracker* const issues_;
  std::vector<std::shared_ptr<void>> owned_;

  absl::Mutex step_mu_;  // serializes the steps (thread vs. direct calls)

  absl::Mutex mu_;
  Medium firebase_ ABSL_GUARDED_BY(mu_);
  Medium github_ ABSL_GUARDED_BY(mu_);
  absl::Time github_last_poll_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time firebase_last_poll_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  FederationCounters counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> last_sent_ ABSL_GUARDED_BY(mu_);     // dest node -> seq
  std::map<std::string, int64_t> last_applied_ ABSL_GUARDED_BY(mu_);  // origin -> seq
  std::map<std::string, absl::Time> held_since_ ABSL_GUARDED_BY(mu_); // origin-seq -> first hold
  std::map<std::string, absl::Time> last_seen_ ABSL_GUARDED_BY(mu_);  // remote node -> time
  // Receipts not yet written (envelopes that came through GitHub, or whose
  // receipt write failed): path -> JSON.
  std::map<std::string, std::string> pending_receipts_ ABSL_GUARDED_BY(mu_);
  int64_t queue_depth_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time queue_oldest_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::vector<std::pair<std::string, std::function<void()>>> hooks_ ABSL_GUARDED_BY(mu_);
  bool stream_connected_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  Clock::TimerId timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time timer_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;
  // Timer callbacks check this before touching the object (Stop clears it).
  struct Life {
    absl::Mutex mu;
    bool alive ABSL_GUARDED_BY(mu) = true;
  };
  std::shared_ptr<Life> life_ = std::make_shared<Life>();
};

}  // namespace cnet::macs::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_FEDERATION_FEDERATION_H_
