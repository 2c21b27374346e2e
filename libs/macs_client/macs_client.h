// C++ client of the MACS gateway, for cnet and the skills service.
//
// Send() fills what the sender must fill (id: msg-<ulid> when empty,
// sender, created_at: now in whole seconds), signs the CNET-MSG-V1
// encoding with the shared secret (or the agent's own key), and sends with a
// deadline per attempt, retrying UNAVAILABLE, RESOURCE_EXHAUSTED and
// DEADLINE_EXCEEDED with exponential backoff and jitter. Retrying is safe
// because the message keeps its id and signed content across attempts: the
// gateway answers a repeat with the original acknowledgement
// (duplicate = true) and delivers nothing twice. A RESOURCE_EXHAUSTED's
// `claudenet-retry-after-ms` is honoured (never retried sooner).
//
// Subscribe() wraps the inbox stream: Next() blocks for the next delivery,
// Ack() acknowledges what was processed.
#ifndef CNET_LIBS_MACS_CLIENT_MACS_CLIENT_H_
#define CNET_LIBS_MACS_CLIENT_MACS_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/ids/ids.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"

namespace cnet::macs_client {

struct ClientOptions {
  std::string agent_id;       // who sends (the token's agent)
  std::string token;          // agent token, sent as "Bearer <token>"
  std::string signing_key;    // HMAC key (shared secret); empty = do not sign
  // The agent's own Ed25519 key: raw 32-byte seed and the registry's key id
  // (PublicKey.key_id). When both are set every message also carries
  // ed25519_signature + signing_key_id over the same CNET-MSG-V1 bytes.
  std::string ed25519_seed;
  std::string ed25519_key_id;
  absl::Duration deadline = absl::Seconds(5);  // per attempt
  int max_attempts = 6;
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(5);
  Clock* clock = nullptr;  // default RealClock::Default()
  // How to wait between attempts; default absl::SleepFor. Tests record.
  std::function<void(absl::Duration)> sleep;
  uint64_t jitter_seed = 0;  // 0 = random
};

class Subscription {
 public:
  ~Subscription();
  // The stream's first frame.
  const claudenet::v1::SubscriptionReady& ready() const { return ready_; }
  // Blocks for the next delivery; false when the stream ended (see Finish).
  bool Next(claudenet::v1::InboxEntry* entry);
  // Ends the stream from this side.
  void Cancel();
  // The stream's final status (after Next returned false).
  absl::Status Finish();

 private:
  friend class MacsClient;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReader<claudenet::v1::SubscribeResponse>> reader_;
  claudenet::v1::SubscriptionReady ready_;
  bool finished_ = false;
};

class MacsClient {
 public:
  MacsClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  // Fills, signs and sends `message` (see above). `ack_deadline` asks for an
  // escalation message if not every recipient ACKs in time.
  absl::StatusOr<claudenet::v1::SendResponse> Send(
      claudenet::v1::Message message, std::optional<absl::Duration> ack_deadline = std::nullopt);
  // Convenience: a DIRECT message with a subject and a body.
  absl::StatusOr<claudenet::v1::SendResponse> SendText(const std::string& recipient,
                                                       const std::string& subject,
                                                       const std::string& body);

  // Fills and signs without sending (what Send does first).
  absl::Status Prepare(claudenet::v1::Message* message);

  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(
      const claudenet::v1::SubscribeRequest& request = {});
  absl::StatusOr<claudenet::v1::AckResponse> Ack(const std::vector<int64_t>& inbox_sequences);
  absl::StatusOr<claudenet::v1::MarkReadResponse> MarkRead(
      const std::vector<int64_t>& inbox_sequences);
  absl::StatusOr<claudenet::v1::FetchInboxResponse> FetchInbox(
      const claudenet::v1::FetchInboxRequest& request);
  absl::StatusOr<claudenet::v1::GetMessageStatusResponse> GetMessageStatus(
      const std::string& message_id);

  // The wait before retry number `retry` (1-based): exponential from
  // initial_backoff, capped at max_backoff, with jitter in [base/2, base],
  // and never less than `server_hint`.
  absl::Duration Backoff(int retry, absl::Duration server_hint);

  // Codes worth retrying (the request may not have been processed, or the
  // server asked to come back later).
  static bool Retryable(grpc::StatusCode code);

 private:
  std::unique_ptr<grpc::ClientContext> Ctx() const;
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Unary(
      grpc::Status (claudenet::v1::MacsGateway::Stub::*method)(grpc::ClientContext*, const Req&,
                                                               Resp*),
      const Req& req);

  std::unique_ptr<claudenet::v1::MacsGateway::Stub> stub_;
  ClientOptions options_;
  IdGenerator ids_;
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cnet::macs_client

#endif  // CNET_LIBS_MACS_CLIENT_MACS_CLIENT_H_
