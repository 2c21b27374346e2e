// The MACS gateway core: everything between "a caller hands over a message"
// and "the recipient acknowledged it", with no gRPC types (protobuf messages
// of claudenet.v1 are used as plain data).
//
// What it owns
//   * Send: authentication result -> sender stamping, validation with the
//     configured sizes, HMAC (and optional Ed25519) verification, the
//     freshness window, dedupe on (sender, id) for the dedupe window, a
//     per-sender token bucket, recipient resolution through AgentDirectory
//     (agent id, `broadcast`, `cap:<name>`: fan-out at send time to every
//     matching non-DEAD agent but the sender), persistence through group
//     commit, and only then the acknowledgement.
//   * Inboxes: per agent, ordered by priority then sequence; at-least-once
//     delivery to Subscribe streams with an ack timeout driven by timers on
//     the injected Clock, redelivery, dead letters after max deliveries,
//     ttl expiry, an inbox cap (overflow dead-lettered, the sender told),
//     requeue; per-recipient delivery state for senders; threads; counters.
//   * The federation seam: a copy for an agent on another node goes to the
//     persisted outbox instead of an inbox; AcceptRemote() runs a message
//     from another node through the same validation and signature checks.
//
// Invariants
//   * A Send completes OK only after its batch committed with
//     synchronous=FULL: acknowledged means on disk.
//   * A rejected Send changes nothing stored (only counters).
//   * States move QUEUED -> DELIVERED -> READ -> ACKED, or to EXPIRED /
//     DEAD_LETTERED; never backwards except RequeueDeadLetter.
//   * Every pending copy is in memory (inboxes_) and on disk; terminal
//     transitions are decided by guarded UPDATEs in the writer, so a racing
//     Ack and ack-timeout never both win.
//
// Threads and locks
//   * Database: only the GroupCommitWriter thread (store.h); commit
//     callbacks (replies, copies entering inboxes) run in order on its
//     completion thread.
//   * mu_: inboxes, subscribers, timers' bookkeeping. Held briefly; never
//     across a directory lookup. Lock order: mu_ -> sink's own lock ->
//     writer queue lock; stats_mu_, dedupe_mu_ and limiter_mu_ are leaves.
//   * DeliverySink::Deliver is called with mu_ held and must only queue.
#ifndef CNET_SERVICES_MACS_GATEWAY_GATEWAY_H_
#define CNET_SERVICES_MACS_GATEWAY_GATEWAY_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/ids/ids.h"
#include "proto/claudenet/v1/macs.pb.h"
#include "services/macs-gateway/directory.h"
#include "services/macs-gateway/group_commit.h"
#include "services/macs-gateway/store.h"

namespace cnet::macs {

struct GatewayOptions {
  std::string db_path;      // SQLite file
  // synchronous=FULL (fsync per commit: power-loss safe). false = NORMAL
  // (kill -9 safe only); config macs.fsync.
  bool fsync = true;
  std::string node = "local";  // this node's id (network.node_id)
  bool signing_enabled = true;
  // security.require_agent_signatures: refuse agent messages without a valid
  // Ed25519 signature (service-credential senders exempt).
  bool require_agent_signatures = false;
  std::string shared_secret;
  std::map<std::string, std::string> agent_keys;  // per-agent HMAC keys
  absl::Duration timestamp_window = absl::Minutes(5);
  absl::Duration dedupe_window = absl::Hours(24);
  int64_t max_subject_bytes = 256;
  int64_t max_message_bytes = 256 * 1024;
  absl::Duration default_ttl = absl::Hours(24);
  absl::Duration max_ttl = absl::Hours(24 * 7);
  double rate_per_sec = 100;
  int64_t rate_burst = 200;
  int64_t inbox_cap = 10000;
  absl::Duration ack_timeout = absl::Seconds(30);
  int max_deliveries = 5;
  int max_subscribers_per_agent = 8;
  absl::Duration retention = absl::Hours(24 * 7);
  size_t max_batch = 1024;
  // Cumulative counters are written to the store this often (and at
  // shutdown); a kill -9 can lose the increments of the last interval.
  absl::Duration counter_flush_interval = absl::Seconds(1);
  absl::Duration prune_interval = absl::Hours(1);
  // Checkpoint the WAL from a background connection (store.h).
  bool background_checkpoint = true;
};

// The authenticated caller, as the adapter got it from libs/auth.
struct Caller {
  enum class Kind { kAnonymous, kAgent, kService, kAdmin };
  Kind kind = Kind::kAnonymous;
  std::string id;
  std::string on_behalf_of;
  std::string acting_agent() const {
    return kind == Kind::kAgent ? id : (kind == Kind::kService ? on_behalf_of : "");
  }
  static Caller Agent(std::string id) { return Caller{Kind::kAgent, std::move(id), ""}; }
  static Caller Admin() { return Caller{Kind::kAdmin, "admin", ""}; }
  static Caller Service(std::string behalf = "") {
    return Caller{Kind::kService, "svc", std::move(behalf)};
  }
};

// Where a Subscribe stream's frames go (the adapter's stream reactor).
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  // Called with the gateway's lock held: queue the frame, never block or
  // call back into the gateway. At most max_in_flight deliveries (plus the
  // ready frame) are outstanding, so the queue is bounded.
  virtual void Deliver(claudenet::v1::SubscribeResponse frame) = 0;
  // The subscription is over (server shutdown: OK). Lock held, called once,
  // and the gateway forgets the sink.
  virtual void End(const absl::Status& status) = 0;
};

// The error detail travels as a payload of the absl::Status under this
// key (the serialized claudenet.v1.ErrorDetail); the adapter turns it into
// the `claudenet-error-bin` and `claudenet-retry-after-ms` trailers.
inline constexpr char kErrorDetailPayload[] = "type.googleapis.com/claudenet.v1.ErrorDetail";

class Gateway {
 public:
  using SendDone = std::function<void(absl::StatusOr<claudenet::v1::SendResponse>)>;

  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options, Clock* clock,
                                                         AgentDirectory* directory);
  ~Gateway();

  // Send; `done` runs exactly once, on the calling thread for a rejection or
  // on the writer thread after the commit.
  void Send(const Caller& caller, const claudenet::v1::SendRequest& request, SendDone done);
  absl::StatusOr<claudenet::v1::SendResponse> SendAndWait(
      const Caller& caller, const claudenet::v1::SendRequest& request);

  // A message from another node (federation): the same validation and
  // signature checks as Send, expiry instead of freshness, and the sender
  // must be an agent of `from_node`. Local recipients only.
  absl::StatusOr<claudenet::v1::SendResponse> AcceptRemote(const claudenet::v1::Message& message,
                                                           claudenet::v1::Transport transport,
                                                           const std::string& from_node);

  // AcceptRemote with a callback (runs exactly once, on the calling thread
  // for a rejection or on the writer thread after the commit); successive
  // calls keep their order in the inboxes.
  void AcceptRemoteAsync(const claudenet::v1::Message& message, claudenet::v1::Transport transport,
                         const std::string& from_node, SendDone done);

  // Opens a subscription; returns its id for Unsubscribe. The ready frame
  // and the first deliveries reach the sink before this returns.
  absl::StatusOr<uint64_t> Subscribe(const Caller& caller,
                                     const claudenet::v1::SubscribeRequest& request,
                                     DeliverySink* sink);
  // Closes a subscription (stream ended); a no-op if already closed. After
  // it returns the sink is never called again.
  void Unsubscribe(uint64_t subscription_id);

  absl::StatusOr<claudenet::v1::AckResponse> Ack(const Caller& caller,
                                                 const claudenet::v1::AckRequest& request);
  absl::StatusOr<claudenet::v1::MarkReadResponse> MarkRead(
      const Caller& caller, const claudenet::v1::MarkReadRequest& request);
  absl::StatusOr<claudenet::v1::FetchInboxResponse> FetchInbox(
      const Caller& caller, const claudenet::v1::FetchInboxRequest& request);
  absl::StatusOr<claudenet::v1::GetMessageStatusResponse> GetMessageStatus(
      const Caller& caller, const claudenet::v1::GetMessageStatusRequest& request);
  absl::StatusOr<claudenet::v1::ListDeadLettersResponse> ListDeadLetters(
      const Caller& caller, const claudenet::v1::ListDeadLettersRequest& request);
  absl::StatusOr<claudenet::v1::RequeueDeadLetterResponse> RequeueDeadLetter(
      const Caller& caller, const claudenet::v1::RequeueDeadLetterRequest& request);
  absl::StatusOr<claudenet::v1::GetThreadResponse> GetThread(
      const Caller& caller, const claudenet::v1::GetThreadRequest& request);
  absl::StatusOr<claudenet::v1::GetStatsResponse> GetStats(
      const Caller& caller, const claudenet::v1::GetStatsRequest& request);

  // The federation seam: copies waiting for another node, oldest first, and
  // the hand-off once a medium carried them (state FORWARDED).
  absl::StatusOr<std::vector<OutboxRow>> PeekOutbox(int limit);
  // Ids already gone are skipped (a re-send after a crash).
  absl::Status MarkForwarded(const std::vector<int64_t>& outbox_ids);
  // A delivery receipt from `node` for message (sender, id): the copies for
  // agents of `node` still QUEUED or FORWARDED become DELIVERED (accepted
  // into the remote inbox) or, when !delivered, DEAD_LETTERED with
  // REMOTE_UNDELIVERABLE and `detail`. Returns the copies changed.
  absl::StatusOr<int64_t> ApplyRemoteReceipt(const std::string& sender,
                                             const std::string& message_id,
                                             const std::string& node, bool delivered,
                                             const std::string& detail);
  // GetStats/WatchStats ask `fill` for the federation fields (after the
  // outbox depth is set). Called without the gateway's locks held.
  void SetFederationStatusSource(std::function<void(claudenet::v1::FederationStatus*)> fill);
  // Called (on the writer's completion thread, no gateway lock held) after
  // copies entered the outbox: the federation wakes up and sends them now
  // instead of at its next poll. Must be quick.
  void SetOutboxListener(std::function<void()> fn);

  // Counts a Send refused before it reached the core (bad credential).
  void CountRejection(claudenet::v1::RejectReason reason);

  // Ends every subscription with OK, writes the counters, stops the
  // writer. Idempotent; the destructor calls it.
  void Shutdown();

  const GatewayOptions& options() const { return options_; }
  GroupCommitWriter::Stats writer_stats() const { return writer_->stats(); }

 private:
  struct Entry {
    int64_t seq = 0;
    std::shared_ptr<const claudenet::v1::Message> msg;
    int priority = 0;  // effective
    int type = 0;
    int state = 0;
    int attempts = 0;
    absl::Time received_at;
    absl::Time expires_at;
    absl::Time delivered_at = absl::InfinitePast();
    absl::Time read_at = absl::InfinitePast();
    bool in_round = false;
    absl::Time round_deadline;
    Clock::TimerId timer = 0;
    std::vector<uint64_t> holders;  // subscribers holding it this round
  };
  struct Subscriber {
    uint64_t id = 0;
    std::string agent;
    DeliverySink* sink = nullptr;
    int max_in_flight = 100;
    uint32_t type_mask = 0;  // 0 = all
    int min_priority = 0;
    int in_flight = 0;
  };
  struct Inbox {
    int64_t last_seq = 0;
    int64_t reserved = 0;  // copies being committed
    std::map<int64_t, Entry> entries;
    std::set<std::pair<int, int64_t>> order;  // (-priority, seq), every entry
    std::set<std::pair<int, int64_t>> ready;  // those not in a delivery round
    std::vector<uint64_t> subscribers;
    int mode = 0;  // SubscribeMode of the open subscribers
    size_t next_rr = 0;
    int64_t dead_letters = 0;
    int64_t unread = 0;
  };
  enum Counter {
    kSent,
    kDelivered,
    kRedelivered,
    kRead,
    kAcked,
    kExpired,
    kDeadLettered,
    kDuplicates,
    kRejected,
    kEscalations,
    kRemoteSent,
    kRemoteReceived,
    kNumCounters
  };
  struct Rate {
    std::array<int64_t, 60> buckets{};
    int64_t last_second = 0;
    void Add(int64_t second, int64_t n);
    double PerSecond(int64_t now_second) const;
  };
  struct Counters {
    std::array<int64_t, kNumCounters> v{};
    std::map<int, int64_t> rejected;
    std::set<std::string> dirty;
    Rate sent_rate;
    Rate delivered_rate;
  };
  struct DedupeEntry {
    std::string hash;
    absl::Time expires;
    bool committed = false;
  };
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };
  struct Accepted;  // a message on its way to the store (gateway.cc)
  struct Life {
    absl::Mutex mu;
    bool alive ABSL_GUARDED_BY(mu) = true;
  };

  Gateway(GatewayOptions options, Clock* clock, AgentDirectory* directory,
          std::unique_ptr<MessageStore> store);
  absl::Status Load();

  // Send pipeline.
  void SendInternal(const Caller& caller, const claudenet::v1::SendRequest& request,
                    const std::string* remote_node, claudenet::v1::Transport transport,
                    SendDone done);
  void SubmitDuplicate(const std::string& sender, const std::string& id, SendDone done);
  absl::Status PersistAccepted(Accepted* a, sqlite::Database* db);
  void ApplyAccepted(Accepted* a);
  void UndoAccepted(Accepted* a);
  absl::Status Reject(const std::string& scope, claudenet::v1::RejectReason reason,
                      absl::Status status);
  absl::StatusOr<std::string> SigningKey(const std::string& sender) const;
  absl::Status TakeToken(const std::string& sender);

  // Delivery engine (mu_ held).
  Inbox& InboxLocked(const std::string& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddEntryLocked(const std::string& agent, Inbox& inbox, Entry entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveEntryLocked(const std::string& agent, Inbox& inbox, int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked(const std::string& agent, Inbox& inbox) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool MatchesLocked(const Subscriber& s, const Entry& e) const;
  void HandOverLocked(const std::string& agent, Inbox& inbox, Entry& e, Subscriber& s,
                      absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndRoundLocked(Inbox& inbox, Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeadLetterLocked(const std::string& agent, Inbox& inbox, int64_t seq,
                        claudenet::v1::DeadLetterReason reason, const std::string& detail)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnAckTimeout(const std::string& agent, int64_t seq, int attempt);
  void OnExpiryTimer();
  void ArmExpiryLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnEscalationDue(int64_t msg_rowid);
  void ArmEscalation(int64_t msg_rowid, absl::Time when);
  void OnMaintenanceTimer();
  std::function<void()> Guarded(std::function<void()> fn);

  // Access rules.
  absl::StatusOr<std::string> OwnerOnly(const Caller& caller, const std::string& agent_id) const;
  absl::StatusOr<std::string> OwnerOrAdmin(const Caller& caller,
                                           const std::string& agent_id) const;
  absl::Status RequireKnownAgent(const std::string& agent);

  // Counters.
  void Bump(const std::string& scope, Counter c, int64_t n = 1);
  void BumpLocked(const std::string& scope, Counter c, int64_t n)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stats_mu_);
  absl::Status FlushCounters(sqlite::Database* db);
  void FillCounters(const std::string& scope, claudenet::v1::MessageCounters* out);

  claudenet::v1::InboxEntry EntryFromRow(const DeliveryRow& row,
                                         const std::shared_ptr<const claudenet::v1::Message>& m);

  const GatewayOptions options_;
  Clock* const clock_;
  AgentDirectory* const directory_;
  std::unique_ptr<MessageStore> store_;
  std::unique_ptr<GroupCommitWriter> writer_;
  IdGenerator ids_;
  std::shared_ptr<Life> life_ = std::make_shared<Life>();

  absl::Mutex mu_;
  std::map<std::string, Inbox> inboxes_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_subscriber_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<std::tuple<absl::Time, std::string, int64_t>> expiry_ ABSL_GUARDED_BY(mu_);
  Clock::TimerId expiry_timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time expiry_armed_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::set<Clock::TimerId> escalation_timers_ ABSL_GUARDED_BY(mu_);
  Clock::TimerId maintenance_timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_prune_ ABSL_GUARDED_BY(mu_);
  int64_t outbox_depth_ ABSL_GUARDED_BY(mu_) = 0;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex stats_mu_;
  std::map<std::string, Counters> counters_ ABSL_GUARDED_BY(stats_mu_);

  absl::Mutex dedupe_mu_;
  std::unordered_map<std::string, DedupeEntry> dedupe_ ABSL_GUARDED_BY(dedupe_mu_);
  std::deque<std::pair<absl::Time, std::string>> dedupe_order_ ABSL_GUARDED_BY(dedupe_mu_);

  absl::Mutex limiter_mu_;
  std::unordered_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(limiter_mu_);

  absl::Mutex federation_mu_;  // leaf
  std::function<void(claudenet::v1::FederationStatus*)> federation_status_
      ABSL_GUARDED_BY(federation_mu_);
  std::function<void()> outbox_listener_ ABSL_GUARDED_BY(federation_mu_);
};

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_GATEWAY_H_
