// The MACS gateway's own SQLite tables and the statements on them.
//
// Tables (schema in store.cc, migration 1):
//   messages    one row per accepted message: the Message as accepted
//               (serialized, output fields filled), and the columns queries
//               need (sender, id, correlation_id, accepted time, escalation).
//   deliveries  one row per (recipient, inbox sequence): the recipient's copy
//               and its state QUEUED/DELIVERED/READ/ACKED/EXPIRED/
//               DEAD_LETTERED, attempts, timestamps, dead-letter reason.
//               A copy for an agent on another node has no inbox here: its
//               row uses the negated outbox id as sequence (never shown;
//               inbox_sequence is 0 on the wire).
//   dedupe      (sender, message id) -> content hash and the original
//               SendResponse, kept for the dedupe window.
//   outbox      copies for agents on other nodes, waiting for the
//               federation to carry them (the federation seam).
//   counters    cumulative counters per scope ("" = the gateway, else an
//               agent id), flushed once per group-commit batch.
//   inbox_seq   the highest inbox sequence handed out per agent, so that
//               sequences never go back even after retention pruning.
//
// Every method runs on the group-commit writer thread (or before the writer
// starts); the Database is not shared with anything else.
#ifndef CNET_SERVICES_MACS_GATEWAY_STORE_H_
#define CNET_SERVICES_MACS_GATEWAY_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/sqlite/database.h"
#include "proto/claudenet/v1/macs.pb.h"

namespace cnet::macs {

// Microseconds since the Unix epoch: how times are stored (0 = unset).
int64_t ToMicros(absl::Time t);
absl::Time FromMicros(int64_t us);

// One recipient's copy of a message, as stored.
struct DeliveryRow {
  std::string recipient;
  int64_t seq = 0;  // inbox sequence (local); -outbox id for remote copies
  int64_t msg_rowid = 0;
  std::string msg_id;
  std::string sender;
  std::string node;
  bool remote = false;
  int state = 0;  // claudenet.v1.DeliveryState
  int64_t state_changed_us = 0;
  int attempts = 0;
  int dl_reason = 0;  // claudenet.v1.DeadLetterReason
  std::string dl_detail;
  int64_t dl_at_us = 0;
  int64_t received_us = 0;
  int64_t first_delivered_us = 0;
  int64_t last_delivered_us = 0;
  int64_t read_us = 0;
  int64_t acked_us = 0;
  int priority = 0;  // effective (UNSPECIFIED stored as NORMAL)
  int type = 0;
  int64_t expires_us = 0;
};

// A delivery row with its message.
struct StoredEntry {
  DeliveryRow row;
  std::shared_ptr<const claudenet::v1::Message> message;
};

struct MessageRow {
  int64_t rowid = 0;
  std::shared_ptr<const claudenet::v1::Message> message;
  int64_t ack_deadline_us = 0;
  bool escalated = false;
};

struct DedupeRecord {
  std::string sender;
  std::string id;
  std::string content_hash;  // raw SHA-256
  int64_t expires_us = 0;
};

struct OutboxRow {
  int64_t id = 0;
  int64_t msg_rowid = 0;
  std::string recipient;
  std::string node;
  int64_t created_us = 0;
  std::shared_ptr<const claudenet::v1::Message> message;
};

// Pending states: the copy is still in the inbox and may be delivered.
inline bool IsPendingState(int state) {
  return state == claudenet::v1::DELIVERY_STATE_QUEUED ||
         state == claudenet::v1::DELIVERY_STATE_DELIVERED ||
         state == claudenet::v1::DELIVERY_STATE_READ;
}

class MessageStore {
 public:
  // Opens (creating) the database at `path`. With `fsync` (the default),
  // synchronous=FULL: a committed batch survives power loss, not only
  // kill -9. Without it, synchronous=NORMAL: a commit survives the process
  // being killed but not the machine losing power.
  static absl::StatusOr<std::unique_ptr<MessageStore>> Open(const std::string& path,
                                                            bool fsync = true);

  ~MessageStore();

  sqlite::Database* db() { return db_.get(); }

  // Moves WAL checkpoints off the commit path: a second connection copies
  // committed pages into the database file every `interval` (PASSIVE: never
  // blocks the writer), and the writer's own automatic checkpoint is raised
  // to a backstop of 64 MiB of WAL. Without it every ~4 MiB of WAL one
  // commit pays for a checkpoint and its fsync (a latency spike).
  absl::Status StartCheckpointer(absl::Duration interval);
  void StopCheckpointer();

  // --- writes (inside a group-commit batch) ---
  absl::StatusOr<int64_t> InsertMessage(const claudenet::v1::Message& message,
                                        int64_t ack_deadline_us);
  absl::Status InsertDelivery(const DeliveryRow& row);
  absl::Status InsertDedupe(const DedupeRecord& record, int64_t msg_rowid,
                            const std::string& response_blob);
  absl::StatusOr<int64_t> InsertOutbox(int64_t msg_rowid, const std::string& recipient,
                                       const std::string& node, int64_t created_us);
  absl::Status DeleteOutbox(int64_t id);
  // The recipient of outbox row `id`, nullopt when it is gone.
  absl::StatusOr<std::optional<std::string>> OutboxRecipient(int64_t id);

  // Hand-over recorded: QUEUED becomes DELIVERED (READ stays READ).
  // Returns false when the copy is no longer pending.
  absl::StatusOr<bool> MarkDelivered(const std::string& recipient, int64_t seq, int attempts,
                                     int64_t now_us);
  // Moves a pending copy (only) to a terminal state or DEAD_LETTERED.
  // Returns whether a row changed.
  absl::StatusOr<bool> FinishPending(const std::string& recipient, int64_t seq, int new_state,
                                     int64_t now_us, int dl_reason = 0,
                                     const std::string& dl_detail = "");
  // Unconditional update of the mutable columns of a row (state, attempts,
  // timestamps, dead-letter fields, expiry).
  absl::Status UpdateDelivery(const DeliveryRow& row);
  absl::Status MarkEscalated(int64_t msg_rowid);
  absl::Status SaveInboxSeq(const std::string& agent, int64_t last_seq);
  absl::Status SaveCounter(const std::string& scope, const std::string& name, int64_t value);

  // --- reads ---
  absl::StatusOr<std::optional<std::string>> DedupeResponse(const std::string& sender,
                                                            const std::string& id);
  absl::StatusOr<std::optional<DeliveryRow>> GetDelivery(const std::string& recipient,
                                                         int64_t seq);
  absl::StatusOr<std::vector<DeliveryRow>> DeliveriesByMessageId(const std::string& recipient,
                                                                 const std::string& msg_id);
  absl::StatusOr<std::shared_ptr<const claudenet::v1::Message>> GetMessage(int64_t rowid);
  // The latest message (sender, id).
  absl::StatusOr<std::optional<MessageRow>> FindMessage(const std::string& sender,
                                                        const std::string& id);
  absl::StatusOr<MessageRow> GetMessageRow(int64_t rowid);
  absl::StatusOr<std::vector<DeliveryRow>> DeliveriesOfMessage(int64_t msg_rowid,
                                                               const std::string& after_recipient,
                                                               int limit);
  absl::StatusOr<std::map<int, int64_t>> StateCountsOfMessage(int64_t msg_rowid);

  // Inbox page. `where` is a SQL condition on deliveries d (built by the
  // gateway from the request's filter, with ? placeholders bound from
  // `binds`), `order` an ORDER BY clause.
  struct Query {
    std::string where;
    std::vector<std::string> text_binds;  // bound first, in order
    std::vector<int64_t> int_binds;       // bound after the text binds
    std::string order;
    int limit = 100;
  };
  absl::StatusOr<std::vector<StoredEntry>> QueryDeliveries(const Query& query);
  absl::StatusOr<std::vector<std::shared_ptr<const claudenet::v1::Message>>> QueryThread(
      const std::string& correlation_id, const std::string& visible_to,
      int64_t after_accepted_us, const std::string& after_id, int64_t after_rowid, int limit,
      std::vector<int64_t>* rowids);

  // --- recovery at start ---
  absl::StatusOr<std::vector<StoredEntry>> LoadPending();
  absl::StatusOr<std::map<std::string, int64_t>> LoadInboxSeqs();
  absl::StatusOr<std::map<std::string, int64_t>> LoadDeadLetterCounts();
  // scope -> name -> value
  absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>> LoadCounters();
  absl::StatusOr<std::vector<DedupeRecord>> LoadDedupe(int64_t now_us);
  absl::StatusOr<std::vector<MessageRow>> LoadUnescalated();
  absl::StatusOr<int64_t> OutboxDepth();
  absl::StatusOr<std::vector<OutboxRow>> PeekOutbox(int limit);

  // --- pruning ---
  absl::StatusOr<int64_t> PruneDedupe(int64_t now_us);
  // Deletes ACKED/EXPIRED copies older than the cutoff and older messages
  // no longer referenced by any copy or outbox row (a dedupe record keeps
  // its own copy of the original response, not the message).
  absl::StatusOr<int64_t> PruneRetention(int64_t cutoff_us);

 private:
  explicit MessageStore(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}
  absl::StatusOr<sqlite::Statement*> Cached(const std::string& sql);

  std::unique_ptr<sqlite::Database> db_;
  std::unique_ptr<sqlite::Database> checkpoint_db_;
  absl::Mutex checkpoint_mu_;
  bool checkpoint_stop_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  std::thread checkpointer_;
};

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_STORE_H_
