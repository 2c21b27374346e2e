#include "libs/macs_client/macs_client.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "libs/auth/auth.h"
#include "libs/crypto/crypto.h"
#include "libs/status/grpc_status.h"
#include "services/macs-gateway/canonical.h"

namespace cnet::macs_client {
namespace pb = claudenet::v1;

namespace {

Clock* ClockOf(const ClientOptions& o) { return o.clock ? o.clock : RealClock::Default(); }

uint64_t Seed(uint64_t configured) {
  if (configured != 0) return configured;
  std::string r = crypto::RandomBytes(8);
  uint64_t s = 0;
  for (char c : r) s = (s << 8) | static_cast<unsigned char>(c);
  return s;
}

absl::Duration RetryAfter(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find("claudenet-retry-after-ms");
  int64_t ms = 0;
  if (it != md.end() &&
      absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms)) {
    return absl::Milliseconds(ms);
  }
  return absl::ZeroDuration();
}

}  // namespace

Subscription::~Subscription() {
  if (!finished_) {
    Cancel();
    Finish().IgnoreError();
  }
}

bool Subscription::Next(pb::InboxEntry* entry) {
  pb::SubscribeResponse frame;
  while (reader_->Read(&frame)) {
    if (frame.has_delivery()) {
      *entry = std::move(*frame.mutable_delivery());
      return true;
    }
  }
  return false;
}

void Subscription::Cancel() { ctx_->TryCancel(); }

absl::Status Subscription::Finish() {
  if (finished_) return absl::OkStatus();
  finished_ = true;
  return FromGrpcStatus(reader_->Finish());
}

MacsClient::MacsClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : stub_(pb::MacsGateway::NewStub(channel)),
      options_(std::move(options)),
      ids_(ClockOf(options_)),
      rng_(Seed(options_.jitter_seed)) {
  if (!options_.sleep) options_.sleep = [](absl::Duration d) { absl::SleepFor(d); };
}

std::unique_ptr<grpc::ClientContext> MacsClient::Ctx() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(options_.deadline)));
  if (!options_.token.empty()) auth::SetBearer(ctx.get(), options_.token);
  return ctx;
}

bool MacsClient::Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

absl::Duration MacsClient::Backoff(int retry, absl::Duration server_hint) {
  double factor = std::pow(2.0, std::min(retry - 1, 30));
  absl::Duration base = std::min(options_.initial_backoff * factor, options_.max_backoff);
  double u;
  {
    absl::MutexLock lock(&mu_);
    u = std::uniform_real_distribution<double>(0.5, 1.0)(rng_);
  }
  return std::max(base * u, server_hint);
}

absl::Status MacsClient::Prepare(pb::Message* m) {
  if (m->id().empty()) m->set_id(absl::AsciiStrToLower(ids_.Next("msg-")));
  if (m->sender().empty()) m->set_sender(options_.agent_id);
  if (!m->has_created_at()) {
    m->mutable_created_at()->set_seconds(absl::ToUnixSeconds(ClockOf(options_)->Now()));
  }
  m->mutable_created_at()->set_nanos(0);
  if (!options_.signing_key.empty()) {
    absl::StatusOr<std::string> sig = macs::SignMessage(*m, options_.signing_key);
    if (!sig.ok()) return sig.status();
    m->set_signature(*sig);
  }
  if (!options_.ed25519_seed.empty() && !options_.ed25519_key_id.empty()) {
    absl::StatusOr<std::string> canonical = macs::CanonicalBytes(*m);
    if (!canonical.ok()) return canonical.status();
    std::string sig = macs::SignEd25519Hex(options_.ed25519_seed, *canonical);
    if (sig.empty()) {
      return absl::InvalidArgumentError("ed25519_seed: not a 32-byte Ed25519 seed");
    }
    m->set_ed25519_signature(sig);
    m->set_signing_key_id(options_.ed25519_key_id);
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::SendResponse> MacsClient::Send(pb::Message message,
                                                  std::optional<absl::Duration> ack_deadline) {
  pb::SendRequest req;
  absl::Status prepared = Prepare(&message);
  if (!prepared.ok()) return prepared;
  *req.mutable_message() = std::move(message);
  if (ack_deadline.has_value()) {
    req.mutable_ack_deadline()->set_seconds(absl::ToInt64Seconds(*ack_deadline));
  }
  grpc::Status last;
  for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
    auto ctx = Ctx();
    pb::SendResponse resp;
    last = stub_->Send(ctx.get(), req, &resp);
    if (last.ok()) return resp;
    if (!Retryable(last.error_code()) || attempt == options_.max_attempts) break;
    options_.sleep(Backoff(attempt, RetryAfter(*ctx)));
  }
  return FromGrpcStatus(last);
}

absl::StatusOr<pb::SendResponse> MacsClient::SendText(const std::string& recipient,
                                                      const std::string& subject,
                                                      const std::string& body) {
  pb::Message m;
  m.set_recipient(recipient);
  m.set_type(pb::MESSAGE_TYPE_DIRECT);
  m.set_subject(subject);
  m.set_body(body);
  return Send(std::move(m));
}

absl::StatusOr<std::unique_ptr<Subscription>> MacsClient::Subscribe(
    const pb::SubscribeRequest& request) {
  auto sub = std::unique_ptr<Subscription>(new Subscription());
  sub->ctx_ = std::make_unique<grpc::ClientContext>();  // no deadline: a long stream
  if (!options_.token.empty()) auth::SetBearer(sub->ctx_.get(), options_.token);
  sub->reader_ = stub_->Subscribe(sub->ctx_.get(), request);
  pb::SubscribeResponse first;
  if (!sub->reader_->Read(&first) || !first.has_ready()) {
    sub->finished_ = true;
    absl::Status st = FromGrpcStatus(sub->reader_->Finish());
    return st.ok() ? absl::UnavailableError("subscribe: stream ended before it was ready") : st;
  }
  sub->ready_ = first.ready();
  return sub;
}

template <typename Req, typename Resp>
absl::StatusOr<Resp> MacsClient::Unary(
    grpc::Status (pb::MacsGateway::Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
    const Req& req) {
  grpc::Status last;
  for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
    auto ctx = Ctx();
    Resp resp;
    last = (stub_.get()->*method)(ctx.get(), req, &resp);
    if (last.ok()) return resp;
    // Ack, MarkRead and the reads are all safe to repeat.
    if (!Retryable(last.error_code()) || attempt == options_.max_attempts) break;
    options_.sleep(Backoff(attempt, RetryAfter(*ctx)));
  }
  return FromGrpcStatus(last);
}

absl::StatusOr<pb::AckResponse> MacsClient::Ack(const std::vector<int64_t>& seqs) {
  pb::AckRequest req;
  for (int64_t s : seqs) req.add_inbox_sequences(s);
  return Unary(&pb::MacsGateway::Stub::Ack, req);
}

absl::StatusOr<pb::MarkReadResponse> MacsClient::MarkRead(const std::vector<int64_t>& seqs) {
  pb::MarkReadRequest req;
  for (int64_t s : seqs) req.add_inbox_sequences(s);
  return Unary(&pb::MacsGateway::Stub::MarkRead, req);
}

absl::StatusOr<pb::FetchInboxResponse> MacsClient::FetchInbox(const pb::FetchInboxRequest& req) {
  return Unary(&pb::MacsGateway::Stub::FetchInbox, req);
}

absl::StatusOr<pb::GetMessageStatusResponse> MacsClient::GetMessageStatus(
    const std::string& message_id) {
  pb::GetMessageStatusRequest req;
  req.set_message_id(message_id);
  return Unary(&pb::MacsGateway::Stub::GetMessageStatus, req);
}

}  // namespace cnet::macs_client
