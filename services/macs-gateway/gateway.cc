#include "services/macs-gateway/gateway.h"

#include <glog/logging.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "libs/crypto/crypto.h"
#include "libs/status/macros.h"
#include "services/macs-gateway/canonical.h"

namespace cnet::macs {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------
namespace {

constexpr int kMaxItems = 1000;
constexpr int kDefaultPage = 100;
constexpr int kMaxPage = 1000;
constexpr size_t kMaxIdBytes = 128;
// A page stops growing past this many bytes so that it stays under gRPC's
// default 4 MiB client receive limit (next_page_token continues).
constexpr size_t kMaxPageBytes = 3 * 1024 * 1024;

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  int64_t us = absl::ToUnixMicros(t);
  ts.set_seconds(us / 1000000 - (us % 1000000 < 0 ? 1 : 0));
  int64_t rem = us % 1000000;
  if (rem < 0) rem += 1000000;
  ts.set_nanos(static_cast<int32_t>(rem * 1000));
  return ts;
}
void SetTime(google::protobuf::Timestamp* out, int64_t us) {
  if (us != 0) *out = ToProto(FromMicros(us));
}
absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}
google::protobuf::Duration DurationProto(absl::Duration d) {
  google::protobuf::Duration out;
  int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return out;
}
absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

bool ValidAgentId(const std::string& s) {
  if (s.empty() || s.size() > kMaxIdBytes || !IsAlnum(s[0])) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return s != "broadcast";
}
bool ValidMessageId(const std::string& s) {
  if (s.empty() || s.size() > kMaxIdBytes) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-' && c != ':') return false;
  }
  return true;
}
bool ValidCapability(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}
bool ValidServiceSender(const std::string& s) {
  return absl::StartsWith(s, "svc:") && s.size() > 4 && s.size() <= kMaxIdBytes &&
         ValidCapability(s.substr(4));
}

std::string ReasonName(pb::RejectReason r) {
  std::string name = pb::RejectReason_Name(r);
  const std::string prefix = "REJECT_REASON_";
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

absl::Status WithDetail(absl::Status st, const pb::ErrorDetail& detail) {
  st.SetPayload(kErrorDetailPayload, absl::Cord(detail.SerializeAsString()));
  return st;
}

// An error with a reason (and optional resource) in its ErrorDetail.
absl::Status Error(absl::StatusCode code, const std::string& reason, const std::string& message,
                   const std::string& resource_type = "", const std::string& resource_id = "") {
  pb::ErrorDetail d;
  d.set_reason(reason);
  d.set_resource_type(resource_type);
  d.set_resource_id(resource_id);
  return WithDetail(absl::Status(code, message), d);
}

absl::Status Invalid(const std::string& field, const std::string& what,
                     const std::string& reason = "MALFORMED") {
  pb::ErrorDetail d;
  d.set_reason(reason);
  auto* v = d.add_field_violations();
  v->set_field(field);
  v->set_description(what);
  return WithDetail(absl::InvalidArgumentError(absl::StrCat(field, ": ", what)), d);
}

absl::StatusOr<int> PageSize(int32_t requested, const std::string& field = "page_size") {
  if (requested < 0 || requested > kMaxPage) {
    return Invalid(field, absl::StrCat("must be 0..", kMaxPage, " (got ", requested, ")"));
  }
  return requested == 0 ? kDefaultPage : requested;
}

// Page tokens: "<kind>|<filter fingerprint>|<cursor...>", web-safe base64.
std::string MakeToken(const std::string& kind, const std::string& fingerprint,
                      const std::vector<std::string>& cursor) {
  std::string raw = absl::StrCat(kind, "|", fingerprint);
  for (const std::string& c : cursor) absl::StrAppend(&raw, "|", c);
  return absl::WebSafeBase64Escape(raw);
}
absl::StatusOr<std::vector<std::string>> ParseToken(const std::string& token,
                                                    const std::string& kind,
                                                    const std::string& fingerprint, size_t n) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) {
    return Invalid("page_token", "cannot be decoded");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('|', n + 1));
  if (parts.size() != n + 2 || parts[0] != kind) {
    return Invalid("page_token", "cannot be decoded");
  }
  if (parts[1] != fingerprint) {
    return Invalid("page_token", "was issued for a different request (filters changed)");
  }
  return std::vector<std::string>(parts.begin() + 2, parts.end());
}
std::string Fingerprint(const std::string& what) {
  return crypto::Sha256Hex(what).substr(0, 12);
}

int EffectivePriority(int p) { return p == pb::PRIORITY_UNSPECIFIED ? pb::PRIORITY_NORMAL : p; }

uint32_t TypeMask(const google::protobuf::RepeatedField<int>& types) {
  uint32_t mask = 0;
  for (int t : types) mask |= 1u << t;
  return mask;
}

absl::Status ValidateTypes(const google::protobuf::RepeatedField<int>& types,
                           const std::string& field) {
  for (int i = 0; i < types.size(); ++i) {
    if (!pb::MessageType_IsValid(types[i])) {
      return Invalid(absl::StrCat(field, "[", i, "]"), absl::StrCat("unknown type ", types[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// A message on its way to the store, and what its commit must apply.
struct Gateway::Accepted {
  std::shared_ptr<pb::Message> msg;
  std::vector<AgentInfo> recipients;  // by id
  std::string scope;                  // the sender (counters)
  bool dedupe = false;
  DedupeRecord dedupe_record;
  int64_t ack_deadline_us = 0;
  bool escalation = false;  // an escalation message made by the gateway
  int64_t escalated_rowid = 0;
  bool remote_origin = false;
  // Filled by PersistAccepted:
  int64_t rowid = 0;
  pb::SendResponse response;
  struct Local {
    std::string agent;
    int64_t seq = 0;
    int state = 0;
    bool reserved = false;
  };
  std::vector<Local> locals;
  int64_t remote_copies = 0;
};

void Gateway::Rate::Add(int64_t second, int64_t n) {
  if (second - last_second >= 60) {
    buckets.fill(0);
  } else {
    for (int64_t s = last_second + 1; s <= second; ++s) buckets[s % 60] = 0;
  }
  if (second > last_second) last_second = second;
  if (second > last_second - 60) buckets[((second % 60) + 60) % 60] += n;
}

double Gateway::Rate::PerSecond(int64_t now_second) const {
  int64_t sum = 0;
  for (int64_t s = now_second - 59; s <= now_second; ++s) {
    if (s > last_second || s <= last_second - 60) continue;
    sum += buckets[((s % 60) + 60) % 60];
  }
  return static_cast<double>(sum) / 60.0;
}

// ---------------------------------------------------------------------------
// Construction and recovery
// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options, Clock* clock,
                                                         AgentDirectory* directory) {
  if (options.signing_enabled && options.shared_secret.empty()) {
    return absl::FailedPreconditionError(
        "security.shared_secret: required while security.use_message_signing is true");
  }
  CNET_ASSIGN_OR_RETURN(std::unique_ptr<MessageStore> store, MessageStore::Open(options.db_path, options.fsync));
  std::unique_ptr<Gateway> g(new Gateway(std::move(options), clock, directory, std::move(store)));
  CNET_RETURN_IF_ERROR(g->Load());
  return g;
}

Gateway::Gateway(GatewayOptions options, Clock* clock, AgentDirectory* directory,
                 std::unique_ptr<MessageStore> store)
    : options_(std::move(options)),
      clock_(clock),
      directory_(directory),
      store_(std::move(store)),
      ids_(clock) {}

Gateway::~Gateway() {
  Shutdown();
  // Wait for a timer callback that is running right now, and stop later ones.
  absl::MutexLock lock(&life_->mu);
  life_->alive = false;
}

std::function<void()> Gateway::Guarded(std::function<void()> fn) {
  std::shared_ptr<Life> life = life_;
  return [life, fn = std::move(fn)] {
    absl::ReaderMutexLock lock(&life->mu);
    if (life->alive) fn();
  };
}

absl::Status Gateway::Load() {
  const absl::Time now = clock_->Now();
  CNET_ASSIGN_OR_RETURN(auto seqs, store_->LoadInboxSeqs());
  CNET_ASSIGN_OR_RETURN(auto dead, store_->LoadDeadLetterCounts());
  CNET_ASSIGN_OR_RETURN(auto pending, store_->LoadPending());
  CNET_ASSIGN_OR_RETURN(auto counters, store_->LoadCounters());
  CNET_ASSIGN_OR_RETURN(auto dedupe, store_->LoadDedupe(ToMicros(now)));
  CNET_ASSIGN_OR_RETURN(auto escalations, store_->LoadUnescalated());
  CNET_ASSIGN_OR_RETURN(int64_t outbox, store_->OutboxDepth());
  {
    absl::MutexLock lock(&stats_mu_);
    for (const auto& [scope, names] : counters) {
      Counters& c = counters_[scope];
      for (const auto& [name, value] : names) {
        if (absl::StartsWith(name, "rejected.")) {
          pb::RejectReason r;
          if (pb::RejectReason_Parse(absl::StrCat("REJECT_REASON_", name.substr(9)), &r)) {
            c.rejected[r] = value;
          }
          continue;
        }
        int idx;
        if (absl::SimpleAtoi(name, &idx) && idx >= 0 && idx < kNumCounters) c.v[idx] = value;
      }
    }
  }
  {
    absl::MutexLock lock(&dedupe_mu_);
    for (DedupeRecord& r : dedupe) {
      std::string key = absl::StrCat(r.sender, std::string(1, '\0'), r.id);
      dedupe_[key] = DedupeEntry{r.content_hash, FromMicros(r.expires_us), true};
      dedupe_order_.emplace_back(FromMicros(r.expires_us), key);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    outbox_depth_ = outbox;
    last_prune_ = now;
    for (const auto& [agent, seq] : seqs) InboxLocked(agent).last_seq = seq;
    for (const auto& [agent, n] : dead) InboxLocked(agent).dead_letters = n;
    for (StoredEntry& s : pending) {
      Entry e;
      e.seq = s.row.seq;
      e.msg = s.message;
      e.priority = s.row.priority;
      e.type = s.row.type;
      // A copy that was with a subscriber when the gateway stopped is
      // handed over again (the attempt count is kept).
      e.state = s.row.state;
      e.attempts = s.row.attempts;
      e.received_at = FromMicros(s.row.received_us);
      e.expires_at = FromMicros(s.row.expires_us);
      if (s.row.last_delivered_us != 0) e.delivered_at = FromMicros(s.row.last_delivered_us);
      if (s.row.read_us != 0) e.read_at = FromMicros(s.row.read_us);
      Inbox& inbox = InboxLocked(s.row.recipient);
      AddEntryLocked(s.row.recipient, inbox, std::move(e));
    }
    ArmExpiryLocked();
    maintenance_timer_ = clock_->RunAfter(options_.counter_flush_interval,
                                          Guarded([this] { OnMaintenanceTimer(); }));
  }
  if (options_.background_checkpoint) {
    CNET_RETURN_IF_ERROR(store_->StartCheckpointer(absl::Milliseconds(200)));
  }
  writer_ = std::make_unique<GroupCommitWriter>(store_->db(), options_.max_batch, nullptr);
  for (const MessageRow& m : escalations) ArmEscalation(m.rowid, FromMicros(m.ack_deadline_us));
  LOG(INFO) << "macs store loaded: " << pending.size() << " pending copies, " << dedupe.size()
            << " dedupe records, " << outbox << " outbox copies";
  return absl::OkStatus();
}

void Gateway::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, s] : subscribers_) s.sink->End(absl::OkStatus());
    subscribers_.clear();
    for (auto& [agent, inbox] : inboxes_) {
      inbox.subscribers.clear();
      for (auto& [seq, e] : inbox.entries) {
        if (e.timer != 0) clock_->Cancel(e.timer);
        e.timer = 0;
      }
    }
    if (expiry_timer_ != 0) clock_->Cancel(expiry_timer_);
    if (maintenance_timer_ != 0) clock_->Cancel(maintenance_timer_);
    for (Clock::TimerId t : escalation_timers_) clock_->Cancel(t);
    escalation_timers_.clear();
  }
  if (writer_) {
    writer_->Submit(GroupCommitWriter::Job{[this](sqlite::Database* db) { return FlushCounters(db); },
                                           nullptr});
    writer_->Stop();
  }
  store_->StopCheckpointer();
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

void Gateway::Bump(const std::string& scope, Counter c, int64_t n) {
  absl::MutexLock lock(&stats_mu_);
  BumpLocked(scope, c, n);
}

void Gateway::BumpLocked(const std::string& scope, Counter c, int64_t n) {
  const std::string name = absl::StrCat(static_cast<int>(c));
  int64_t second = absl::ToUnixSeconds(clock_->Now());
  for (const std::string* s : {&scope, static_cast<const std::string*>(nullptr)}) {
    Counters& k = counters_[s == nullptr ? std::string() : *s];
    k.v[c] += n;
    k.dirty.insert(name);
    if (c == kSent) k.sent_rate.Add(second, n);
    if (c == kDelivered || c == kRedelivered) k.delivered_rate.Add(second, n);
    if (scope.empty()) break;
  }
}

void Gateway::CountRejection(pb::RejectReason reason) {
  Reject("", reason, absl::OkStatus()).IgnoreError();
}

absl::Status Gateway::Reject(const std::string& scope, pb::RejectReason reason,
                             absl::Status status) {
  absl::MutexLock lock(&stats_mu_);
  BumpLocked(scope, kRejected, 1);
  const std::string name = absl::StrCat("rejected.", ReasonName(reason));
  for (const std::string& s : {scope, std::string()}) {
    Counters& k = counters_[s];
    k.rejected[reason]++;
    k.dirty.insert(name);
    if (scope.empty()) break;
  }
  return status;
}

absl::Status Gateway::FlushCounters(sqlite::Database*) {
  std::vector<std::tuple<std::string, std::string, int64_t>> rows;
  {
    absl::MutexLock lock(&stats_mu_);
    for (auto& [scope, c] : counters_) {
      for (const std::string& name : c.dirty) {
        if (absl::StartsWith(name, "rejected.")) {
          pb::RejectReason r;
          if (pb::RejectReason_Parse(absl::StrCat("REJECT_REASON_", name.substr(9)), &r)) {
            rows.emplace_back(scope, name, c.rejected[r]);
          }
          continue;
        }
        int idx = 0;
        if (absl::SimpleAtoi(name, &idx)) rows.emplace_back(scope, name, c.v[idx]);
      }
      c.dirty.clear();
    }
  }
  for (const auto& [scope, name, value] : rows) {
    CNET_RETURN_IF_ERROR(store_->SaveCounter(scope, name, value));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Send
// ---------------------------------------------------------------------------

void Gateway::Send(const Caller& caller, const pb::SendRequest& request, SendDone done) {
  SendInternal(caller, request, nullptr, pb::TRANSPORT_LOCAL, std::move(done));
}

absl::StatusOr<pb::SendResponse> Gateway::SendAndWait(const Caller& caller,
                                                      const pb::SendRequest& request) {
  absl::Notification finished;
  absl::StatusOr<pb::SendResponse> result;
  Send(caller, request, [&](absl::StatusOr<pb::SendResponse> r) {
    result = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

absl::StatusOr<pb::SendResponse> Gateway::AcceptRemote(const pb::Message& message,
                                                       pb::Transport transport,
                                                       const std::string& from_node) {
  pb::SendRequest request;
  *request.mutable_message() = message;
  Caller nobody;
  absl::Notification finished;
  absl::StatusOr<pb::SendResponse> result;
  SendInternal(nobody, request, &from_node, transport, [&](absl::StatusOr<pb::SendResponse> r) {
    result = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

void Gateway::AcceptRemoteAsync(const pb::Message& message, pb::Transport transport,
                                const std::string& from_node, SendDone done) {
  pb::SendRequest request;
  *request.mutable_message() = message;
  Caller nobody;
  SendInternal(nobody, request, &from_node, transport, std::move(done));
}

absl::StatusOr<std::string> Gateway::SigningKey(const std::string& sender) const {
  auto it = options_.agent_keys.find(sender);
  if (it != options_.agent_keys.end()) return it->second;
  return options_.shared_secret;
}

absl::Status Gateway::TakeToken(const std::string& sender) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&limiter_mu_);
  auto [it, inserted] = buckets_.try_emplace(sender);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = static_cast<double>(options_.rate_burst);
    b.last = now;
  }
  if (now > b.last) {
    b.tokens = std::min<double>(static_cast<double>(options_.rate_burst),
                                b.tokens + absl::ToDoubleSeconds(now - b.last) *
                                               options_.rate_per_sec);
    b.last = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return absl::OkStatus();
  }
  absl::Duration wait = absl::Seconds((1.0 - b.tokens) / options_.rate_per_sec);
  wait = absl::Ceil(wait, absl::Milliseconds(1));
  pb::ErrorDetail d;
  d.set_reason("RATE_LIMITED");
  d.set_resource_type("agent");
  d.set_resource_id(sender);
  *d.mutable_retry_delay() = DurationProto(wait);
  return WithDetail(
      absl::ResourceExhaustedError(absl::StrCat(
          "sender \"", sender, "\": rate limit of ", options_.rate_per_sec,
          " messages/s (burst ", options_.rate_burst, ") exceeded; retry in ",
          absl::ToInt64Milliseconds(wait), " ms")),
      d);
}

void Gateway::SendInternal(const Caller& caller, const pb::SendRequest& request,
                           const std::string* remote_node, pb::Transport transport,
                           SendDone done) {
  const pb::Message& in = request.message();
  const bool remote = remote_node != nullptr;
  const absl::Time now = clock_->Now();

  // 1. Who sends: the authenticated principal, never the message's claim.
  std::string sender;
  pb::PrincipalKind sender_kind = pb::PRINCIPAL_KIND_AGENT;
  if (remote) {
    sender = in.sender();
    if (!ValidAgentId(sender)) {
      done(Reject("", pb::REJECT_REASON_UNKNOWN_SENDER,
                  Invalid("message.sender", "a federated message needs its sender's agent id")));
      return;
    }
  } else {
    switch (caller.kind) {
      case Caller::Kind::kAnonymous:
        done(Reject("", pb::REJECT_REASON_UNAUTHENTICATED,
                    Error(absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED",
                          "authorization: Send needs an agent token (\"Bearer <token>\")")));
        return;
      case Caller::Kind::kAdmin:
        done(Reject("", pb::REJECT_REASON_SENDER_MISMATCH,
                    Error(absl::StatusCode::kPermissionDenied, "SENDER_MISMATCH",
                          "the admin credential cannot send messages; use an agent token")));
        return;
      case Caller::Kind::kAgent:
        sender = caller.id;
        break;
      case Caller::Kind::kService:
        if (!caller.on_behalf_of.empty()) {
          sender = caller.on_behalf_of;
        } else if (ValidServiceSender(in.sender())) {
          sender = in.sender();
          sender_kind = pb::PRINCIPAL_KIND_SERVICE;
        } else if (!in.sender().empty()) {
          // Naming an agent without claudenet-on-behalf-of is acting as
          // another principal: PERMISSION_DENIED, as everywhere else.
          done(Reject("", pb::REJECT_REASON_SENDER_MISMATCH,
                      Error(absl::StatusCode::kPermissionDenied, "SENDER_MISMATCH",
                            absl::StrCat("message.sender \"", in.sender(),
                                         "\": a service credential sends as \"svc:<service>\" "
                                         "or names the agent in claudenet-on-behalf-of"),
                            "agent", in.sender())));
          return;
        } else {
          done(Reject("", pb::REJECT_REASON_MALFORMED,
                      Invalid("message.sender",
                              "a service credential sends as \"svc:<service>\" or names the "
                              "agent in claudenet-on-behalf-of")));
          return;
        }
        break;
    }
    if (!in.sender().empty() && in.sender() != sender) {
      done(Reject(sender, pb::REJECT_REASON_SENDER_MISMATCH,
                  Error(absl::StatusCode::kPermissionDenied, "SENDER_MISMATCH",
                        absl::StrCat("message.sender \"", in.sender(),
                                     "\": the caller is authenticated as \"", sender,
                                     "\"; nobody may send as someone else"),
                        "agent", in.sender())));
      return;
    }
  }
  auto reject = [&](pb::RejectReason reason, absl::Status st) {
    done(Reject(sender, reason, std::move(st)));
  };

  // 2. Shape and sizes.
  if (!request.has_message()) {
    reject(pb::REJECT_REASON_MALFORMED, Invalid("message", "required"));
    return;
  }
  if (!in.id().empty() && !ValidMessageId(in.id())) {
    reject(pb::REJECT_REASON_MALFORMED,
           Invalid("message.id", "must be 1..128 bytes of [A-Za-z0-9._:-]"));
    return;
  }
  const std::string& to = in.recipient();
  std::string capability;
  if (to.empty()) {
    reject(pb::REJECT_REASON_MALFORMED, Invalid("message.recipient", "required"));
    return;
  }
  if (absl::StartsWith(to, "cap:")) {
    capability = to.substr(4);
    if (!ValidCapability(capability)) {
      reject(pb::REJECT_REASON_MALFORMED,
             Invalid("message.recipient", absl::StrCat("\"", to,
                                                       "\": capability must match "
                                                       "[a-z0-9._-]{1,64}")));
      return;
    }
  } else if (to != "broadcast" && !ValidAgentId(to)) {
    reject(pb::REJECT_REASON_MALFORMED,
           Invalid("message.recipient",
                   absl::StrCat("\"", to,
                                "\": must be an agent id ([A-Za-z0-9._-], 1..128 bytes), "
                                "\"broadcast\" or \"cap:<capability>\"")));
    return;
  }
  if (!pb::MessageType_IsValid(in.type())) {
    reject(pb::REJECT_REASON_MALFORMED,
           Invalid("message.type", absl::StrCat("unknown type ", in.type())));
    return;
  }
  if (in.priority() < 0 || in.priority() > 5) {
    reject(pb::REJECT_REASON_MALFORMED,
           Invalid("message.priority", absl::StrCat("priority out of range (", in.priority(),
                                                    "; must be 0..5)")));
    return;
  }
  if (static_cast<int64_t>(in.subject().size()) > options_.max_subject_bytes) {
    reject(pb::REJECT_REASON_OVERSIZE,
           Invalid("message.subject",
                   absl::StrCat("longer than ", options_.max_subject_bytes, " bytes (",
                                in.subject().size(), ")"),
                   "OVERSIZE"));
    return;
  }
  for (const auto* f : {&in.correlation_id(), &in.reply_to()}) {
    if (f->size() > kMaxIdBytes) {
      reject(pb::REJECT_REASON_MALFORMED,
             Invalid(f == &in.reply_to() ? "message.reply_to" : "message.correlation_id",
                     absl::StrCat("longer than 128 bytes (", f->size(), ")")));
      return;
    }
  }
  if (in.has_ttl()) {
    absl::Duration ttl = FromProto(in.ttl());
    if (in.ttl().nanos() != 0 || ttl < absl::Seconds(1) || ttl > options_.max_ttl) {
      reject(pb::REJECT_REASON_MALFORMED,
             Invalid("message.ttl",
                     absl::StrCat("must be whole seconds in 1s..",
                                  absl::FormatDuration(options_.max_ttl), " (got ",
                                  absl::FormatDuration(ttl), ")")));
      return;
    }
  }
  if (in.has_created_at() &&
      (in.created_at().seconds() < -62135596800LL || in.created_at().seconds() > 253402300799LL ||
       in.created_at().nanos() < 0 || in.created_at().nanos() > 999999999)) {
    reject(pb::REJECT_REASON_MALFORMED, Invalid("message.created_at", "not a valid timestamp"));
    return;
  }
  if (!in.origin_node().empty() && in.origin_node() != (remote ? *remote_node : options_.node)) {
    reject(pb::REJECT_REASON_MALFORMED,
           Invalid("message.origin_node",
                   absl::StrCat("\"", in.origin_node(), "\" is not the accepting node \"",
                                remote ? *remote_node : options_.node, "\"")));
    return;
  }
  if (request.has_ack_deadline()) {
    absl::Duration d = FromProto(request.ack_deadline());
    if (d < absl::Seconds(1) || d > absl::Hours(24 * 7)) {
      reject(pb::REJECT_REASON_MALFORMED,
             Invalid("ack_deadline", absl::StrCat("must be 1s..7 days (got ",
                                                  absl::FormatDuration(d), ")")));
      return;
    }
  }
  absl::StatusOr<std::string> payload_json = CanonicalJson(in.payload());
  if (!payload_json.ok()) {
    reject(pb::REJECT_REASON_MALFORMED,
           Invalid("message.payload", std::string(payload_json.status().message())));
    return;
  }
  const int64_t content_bytes =
      static_cast<int64_t>(in.body().size() + (in.has_payload() ? payload_json->size() : 0));
  if (content_bytes > options_.max_message_bytes) {
    reject(pb::REJECT_REASON_OVERSIZE,
           Invalid("message.body",
                   absl::StrCat("body + payload is ", content_bytes, " bytes; the limit is ",
                                options_.max_message_bytes),
                   "OVERSIZE"));
    return;
  }

  // 3. Signature over the canonical bytes (sender = the stamped sender).
  pb::Message signed_view = in;
  signed_view.set_sender(sender);
  if (signed_view.has_created_at()) signed_view.mutable_created_at()->set_nanos(0);
  absl::StatusOr<std::string> canonical = CanonicalBytes(signed_view, *payload_json);
  if (!canonical.ok()) {
    reject(pb::REJECT_REASON_MALFORMED, Invalid("message", std::string(canonical.status().message())));
    return;
  }
  pb::SignatureState hmac_state = pb::SIGNATURE_STATE_DISABLED;
  const bool internal_service = sender_kind == pb::PRINCIPAL_KIND_SERVICE;
  if (options_.signing_enabled) {
    if (in.id().empty() || !in.has_created_at()) {
      reject(pb::REJECT_REASON_MALFORMED,
             Invalid(in.id().empty() ? "message.id" : "message.created_at",
                     "required while message signing is enabled (it is signed and drives replay "
                     "protection)"));
      return;
    }
    if (in.signature().empty()) {
      reject(pb::REJECT_REASON_SIGNATURE_MISSING,
             Error(absl::StatusCode::kUnauthenticated, "SIGNATURE_MISSING",
                   absl::StrCat("message \"", in.id(),
                                "\": signature required (HMAC-SHA256 over CNET-MSG-V1)"),
                   "message", in.id()));
      return;
    }
    absl::StatusOr<std::string> key = SigningKey(sender);
    if (!key.ok() || !VerifyCanonical(*canonical, *key, in.signature())) {
      reject(pb::REJECT_REASON_SIGNATURE_INVALID,
             Error(absl::StatusCode::kUnauthenticated, "SIGNATURE_INVALID",
                   absl::StrCat("message \"", in.id(),
                                "\": signature does not match the canonical encoding "
                                "CNET-MSG-V1 signed as sender \"",
                                sender, "\""),
                   "message", in.id()));
      return;
    }
    hmac_state = pb::SIGNATURE_STATE_VERIFIED;
  }
  pb::SignatureState ed_state = pb::SIGNATURE_STATE_UNSIGNED;
  std::string spawned_by;
  if (!in.ed25519_signature().empty() || !in.signing_key_id().empty()) {
    absl::StatusOr<std::optional<AgentInfo>> who = directory_->Get(sender);
    if (!who.ok()) {
      done(who.status());
      return;
    }
    if (!who->has_value() || (*who)->public_key.empty() ||
        (*who)->key_id != in.signing_key_id()) {
      reject(pb::REJECT_REASON_KEY_UNKNOWN,
             Error(absl::StatusCode::kUnauthenticated, "KEY_UNKNOWN",
                   absl::StrCat("message.signing_key_id \"", in.signing_key_id(),
                                "\" is not the registered key of \"", sender, "\""),
                   "agent", sender));
      return;
    }
    if (!VerifyEd25519Hex((*who)->public_key, *canonical, in.ed25519_signature())) {
      reject(pb::REJECT_REASON_ED25519_INVALID,
             Error(absl::StatusCode::kUnauthenticated, "ED25519_INVALID",
                   absl::StrCat("message \"", in.id(), "\": Ed25519 signature does not verify"),
                   "message", in.id()));
      return;
    }
    ed_state = pb::SIGNATURE_STATE_VERIFIED;
  }
  // security.require_agent_signatures: an agent's (AI or HUMAN) message must
  // carry its own Ed25519 signature, locally and through federation. Callers
  // holding the service credential (svc: senders and sends on behalf of an
  // agent) are exempt: they cannot hold the agent's private key.
  if (options_.require_agent_signatures && ed_state != pb::SIGNATURE_STATE_VERIFIED &&
      (remote || caller.kind != Caller::Kind::kService)) {
    reject(pb::REJECT_REASON_ED25519_INVALID,
           Error(absl::StatusCode::kUnauthenticated, "ED25519_INVALID",
                 absl::StrCat("message.ed25519_signature: required and missing (sender \"",
                              sender, "\"; security.require_agent_signatures is true)"),
                 "message", in.id()));
    return;
  }
  // A human's approval: human_signature by the registered key of
  // human_principal_id, a principal of kind HUMAN. Only a verified one makes
  // provenance.human_origin true; a wrong one refuses the message.
  std::string human;
  if (!in.human_principal_id().empty() || !in.human_signature().empty()) {
    auto refuse = [&](const std::string& why) {
      reject(pb::REJECT_REASON_HUMAN_SIGNATURE_INVALID,
             Error(absl::StatusCode::kUnauthenticated, "HUMAN_SIGNATURE_INVALID",
                   absl::StrCat("message.human_signature: ", why), "agent",
                   in.human_principal_id()));
    };
    if (in.human_principal_id().empty() || in.human_signature().empty()) {
      refuse("human_principal_id and human_signature go together");
      return;
    }
    absl::StatusOr<std::optional<AgentInfo>> h = directory_->Get(in.human_principal_id());
    if (!h.ok()) {
      done(h.status());
      return;
    }
    if (!h->has_value() || !(*h)->human || (*h)->public_key.empty()) {
      refuse(absl::StrCat("\"", in.human_principal_id(),
                          "\" is not a registered human principal with a public key"));
      return;
    }
    if (!VerifyEd25519Hex((*h)->public_key, *canonical, in.human_signature())) {
      refuse(absl::StrCat("does not verify with the key of \"", in.human_principal_id(), "\""));
      return;
    }
    human = in.human_principal_id();
  }

  // 4. Dedupe on (sender, id): same content -> the original answer.
  const std::string content_hash = crypto::Sha256(*canonical);
  const std::string dedupe_key = absl::StrCat(sender, std::string(1, '\0'), in.id());
  auto check_dedupe = [&]() -> int {  // 0 new, 1 duplicate, 2 reused
    absl::MutexLock lock(&dedupe_mu_);
    auto it = dedupe_.find(dedupe_key);
    if (it == dedupe_.end() || it->second.expires <= now) return 0;
    return it->second.hash == content_hash ? 1 : 2;
  };
  if (!in.id().empty()) {
    int seen = check_dedupe();
    if (seen == 1) {
      SubmitDuplicate(sender, in.id(), std::move(done));
      return;
    }
    if (seen == 2) {
      reject(pb::REJECT_REASON_ID_REUSED,
             Error(absl::StatusCode::kAlreadyExists, "ID_REUSED",
                   absl::StrCat("message \"", in.id(), "\" from \"", sender,
                                "\" was already accepted with different content; use a new id"),
                   "message", in.id()));
      return;
    }
  }

  // 5. Freshness (local) or expiry (federated).
  absl::Time created = in.has_created_at() ? absl::FromUnixSeconds(in.created_at().seconds())
                                           : absl::FromUnixSeconds(absl::ToUnixSeconds(now));
  absl::Duration ttl = in.has_ttl() ? FromProto(in.ttl()) : options_.default_ttl;
  absl::Time expires = created + ttl;
  if (remote) {
    if (expires <= now) {
      reject(pb::REJECT_REASON_EXPIRED_ON_ARRIVAL,
             Error(absl::StatusCode::kInvalidArgument, "EXPIRED_ON_ARRIVAL",
                   absl::StrCat("message \"", in.id(), "\" expired at ",
                                absl::FormatTime(expires))));
      return;
    }
  } else if (in.has_created_at() && absl::AbsDuration(created - now) > options_.timestamp_window) {
    reject(pb::REJECT_REASON_TIMESTAMP_OUT_OF_WINDOW,
           Error(absl::StatusCode::kInvalidArgument, "TIMESTAMP_OUT_OF_WINDOW",
                 absl::StrCat("message.created_at ", CanonicalTime(in.created_at()),
                              " is outside the freshness window of +-",
                              absl::FormatDuration(options_.timestamp_window),
                              " around the gateway's time ",
                              CanonicalTime(ToProto(now))),
                 "message", in.id()));
    return;
  }

  // 6. Recipients, resolved now (fan-out at send time).
  std::vector<AgentInfo> recipients;
  if (remote) {
    absl::StatusOr<std::optional<AgentInfo>> s = directory_->Get(sender);
    if (!s.ok()) {
      done(s.status());
      return;
    }
    if (!s->has_value() || (*s)->node != *remote_node) {
      reject(pb::REJECT_REASON_UNKNOWN_SENDER,
             Error(absl::StatusCode::kPermissionDenied, "UNKNOWN_SENDER",
                   absl::StrCat("sender \"", sender, "\" is not an agent of node \"",
                                *remote_node, "\"")));
      return;
    }
    spawned_by = (*s)->spawned_by;
  }
  if (to == "broadcast" || !capability.empty()) {
    absl::StatusOr<std::vector<AgentInfo>> group = directory_->ListLive(capability);
    if (!group.ok()) {
      done(group.status());
      return;
    }
    for (AgentInfo& a : *group) {
      if (a.id == sender) continue;
      if (remote && (a.remote || (!a.node.empty() && a.node != options_.node))) continue;
      recipients.push_back(std::move(a));
    }
    if (!capability.empty() && recipients.empty()) {
      reject(pb::REJECT_REASON_UNKNOWN_RECIPIENT,
             Error(absl::StatusCode::kNotFound, "UNKNOWN_RECIPIENT",
                   absl::StrCat("message.recipient \"", to, "\": no live agent other than the sender has "
                                "capability \"",
                                capability, "\""),
                   "agent", to));
      return;
    }
  } else {
    absl::StatusOr<std::optional<AgentInfo>> a = directory_->Get(to);
    if (!a.ok()) {
      done(a.status());
      return;
    }
    if (!a->has_value()) {
      std::vector<std::string> close = directory_->Suggest(to, 5);
      pb::ErrorDetail d;
      d.set_reason("UNKNOWN_RECIPIENT");
      d.set_resource_type("agent");
      d.set_resource_id(to);
      for (const std::string& c : close) d.add_suggestions(c);
      std::string hint =
          close.empty() ? "" : absl::StrCat("; did you mean \"", absl::StrJoin(close, "\", \""), "\"?");
      reject(pb::REJECT_REASON_UNKNOWN_RECIPIENT,
             WithDetail(absl::NotFoundError(absl::StrCat("message.recipient \"", to,
                                                         "\": no such agent", hint)),
                        d));
      return;
    }
    recipients.push_back(std::move(**a));
  }
  std::sort(recipients.begin(), recipients.end(),
            [](const AgentInfo& a, const AgentInfo& b) { return a.id < b.id; });
  if (!remote && sender_kind == pb::PRINCIPAL_KIND_AGENT && spawned_by.empty()) {
    // Provenance: who spawned the sender (cheap: the directory is cached).
    absl::StatusOr<std::optional<AgentInfo>> s = directory_->Get(sender);
    if (s.ok() && s->has_value()) spawned_by = (*s)->spawned_by;
  }

  // 7. Rate limit (services are not limited: they are the suite itself).
  // A federated message was limited by its origin gateway already.
  if (!internal_service && !remote) {
    absl::Status limited = TakeToken(sender);
    if (!limited.ok()) {
      reject(pb::REJECT_REASON_RATE_LIMITED, std::move(limited));
      return;
    }
  }

  // 8. Reserve the id (a concurrent identical send becomes a duplicate).
  auto a = std::make_shared<Accepted>();
  if (!in.id().empty()) {
    int seen = 0;
    {
      absl::MutexLock lock(&dedupe_mu_);
      auto it = dedupe_.find(dedupe_key);
      if (it != dedupe_.end() && it->second.expires > now) {
        seen = it->second.hash == content_hash ? 1 : 2;
      } else {
        dedupe_[dedupe_key] = DedupeEntry{content_hash, now + options_.dedupe_window, false};
        dedupe_order_.emplace_back(now + options_.dedupe_window, dedupe_key);
      }
    }
    if (seen == 1) {
      SubmitDuplicate(sender, in.id(), std::move(done));
      return;
    }
    if (seen == 2) {
      reject(pb::REJECT_REASON_ID_REUSED,
             Error(absl::StatusCode::kAlreadyExists, "ID_REUSED",
                   absl::StrCat("message \"", in.id(), "\" from \"", sender,
                                "\" was already accepted with different content"),
                   "message", in.id()));
      return;
    }
    a->dedupe = true;
    a->dedupe_record = DedupeRecord{sender, in.id(), content_hash,
                                    ToMicros(now + options_.dedupe_window)};
  }

  // 9. The message as accepted.
  auto m = std::make_shared<pb::Message>(in);
  if (m->id().empty()) m->set_id(absl::AsciiStrToLower(ids_.Next("msg-")));
  m->set_sender(sender);
  *m->mutable_created_at() = ToProto(created);
  *m->mutable_accepted_at() = ToProto(now);
  *m->mutable_expires_at() = ToProto(expires);
  pb::Provenance* p = m->mutable_provenance();
  p->Clear();
  p->set_sender(sender);
  p->set_sender_kind(sender_kind);
  p->set_origin_node(remote ? *remote_node : options_.node);
  p->set_spawned_by(spawned_by);
  p->set_hmac(hmac_state);
  p->set_ed25519(ed_state);
  p->set_signing_key_id(ed_state == pb::SIGNATURE_STATE_VERIFIED ? in.signing_key_id() : "");
  p->set_human_origin(!human.empty());
  p->set_human_principal_id(human);
  p->set_transport(transport);
  if (remote) p->add_relay_path(*remote_node);
  p->add_relay_path(options_.node);
  a->msg = std::move(m);
  a->recipients = std::move(recipients);
  a->scope = sender;
  a->remote_origin = remote;
  if (request.has_ack_deadline()) {
    a->ack_deadline_us = ToMicros(now + FromProto(request.ack_deadline()));
  }
  writer_->Submit(GroupCommitWriter::Job{
      [this, a](sqlite::Database* db) { return PersistAccepted(a.get(), db); },
      [this, a, done = std::move(done)](const absl::Status& st) {
        if (!st.ok()) {
          UndoAccepted(a.get());
          done(st);
          return;
        }
        ApplyAccepted(a.get());
        done(std::move(a->response));
      }});
}

void Gateway::SubmitDuplicate(const std::string& sender, const std::string& id, SendDone done) {
  auto out = std::make_shared<pb::SendResponse>();
  writer_->Submit(GroupCommitWriter::Job{
      [this, sender, id, out](sqlite::Database*) -> absl::Status {
        CNET_ASSIGN_OR_RETURN(std::optional<std::string> blob, store_->DedupeResponse(sender, id));
        if (!blob.has_value() || !out->ParseFromString(*blob)) {
          return Error(absl::StatusCode::kAborted, "CONCURRENT_SEND",
                       absl::StrCat("message \"", id,
                                    "\": a concurrent send with the same id did not complete; "
                                    "retry"));
        }
        out->set_duplicate(true);
        return absl::OkStatus();
      },
      [this, sender, out, done = std::move(done)](const absl::Status& st) {
        if (!st.ok()) {
          done(st);
          return;
        }
        Bump(sender, kDuplicates);
        done(std::move(*out));
      }});
}

absl::Status Gateway::PersistAccepted(Accepted* a, sqlite::Database*) {
  const pb::Message& m = *a->msg;
  const int64_t accepted_us = ToMicros(FromProto(m.accepted_at()));
  const int64_t expires_us = ToMicros(FromProto(m.expires_at()));
  const bool expired = expires_us <= accepted_us;
  CNET_ASSIGN_OR_RETURN(a->rowid, store_->InsertMessage(m, a->ack_deadline_us));
  pb::SendResponse& r = a->response;
  r.set_message_id(m.id());
  r.set_sender(m.sender());
  *r.mutable_accepted_at() = m.accepted_at();
  *r.mutable_expires_at() = m.expires_at();
  r.set_recipient_count(static_cast<int64_t>(a->recipients.size()));
  for (const AgentInfo& to : a->recipients) {
    DeliveryRow row;
    row.recipient = to.id;
    row.msg_rowid = a->rowid;
    row.msg_id = m.id();
    row.sender = m.sender();
    row.node = to.node.empty() ? options_.node : to.node;
    row.remote = to.remote || (!to.node.empty() && to.node != options_.node);
    row.state = pb::DELIVERY_STATE_QUEUED;
    row.state_changed_us = accepted_us;
    row.received_us = accepted_us;
    row.priority = EffectivePriority(m.priority());
    row.type = m.type();
    row.expires_us = expires_us;
    if (row.remote) {
      CNET_ASSIGN_OR_RETURN(int64_t oid,
                            store_->InsertOutbox(a->rowid, to.id, row.node, accepted_us));
      row.seq = -oid;
      a->remote_copies++;
    } else {
      Accepted::Local local;
      local.agent = to.id;
      {
        absl::MutexLock lock(&mu_);
        Inbox& inbox = InboxLocked(to.id);
        local.seq = ++inbox.last_seq;
        bool full = static_cast<int64_t>(inbox.entries.size()) + inbox.reserved >=
                    options_.inbox_cap;
        if (expired) {
          local.state = pb::DELIVERY_STATE_EXPIRED;
        } else if (full) {
          local.state = pb::DELIVERY_STATE_DEAD_LETTERED;
        } else {
          local.state = pb::DELIVERY_STATE_QUEUED;
          local.reserved = true;
          inbox.reserved++;
        }
      }
      a->locals.push_back(local);
      row.seq = local.seq;
      row.state = local.state;
      if (local.state == pb::DELIVERY_STATE_DEAD_LETTERED) {
        row.dl_reason = pb::DEAD_LETTER_REASON_INBOX_FULL;
        row.dl_detail = absl::StrCat("inbox at cap ", options_.inbox_cap);
        row.dl_at_us = accepted_us;
      }
    }
    CNET_RETURN_IF_ERROR(store_->InsertDelivery(row));
    if (r.deliveries_size() < kMaxItems) {
      pb::RecipientDelivery* d = r.add_deliveries();
      d->set_agent_id(row.recipient);
      d->set_node(row.node);
      d->set_remote(row.remote);
      d->set_state(static_cast<pb::DeliveryState>(row.state));
      SetTime(d->mutable_state_changed_at(), row.state_changed_us);
      d->set_dead_letter_reason(static_cast<pb::DeadLetterReason>(row.dl_reason));
      d->set_inbox_sequence(row.remote ? 0 : row.seq);
    } else {
      r.set_deliveries_truncated(true);
    }
  }
  if (a->dedupe) {
    CNET_RETURN_IF_ERROR(store_->InsertDedupe(a->dedupe_record, a->rowid, r.SerializeAsString()));
  }
  if (a->escalation) {
    CNET_RETURN_IF_ERROR(store_->MarkEscalated(a->escalated_rowid));
  }
  return absl::OkStatus();
}

void Gateway::UndoAccepted(Accepted* a) {
  {
    absl::MutexLock lock(&mu_);
    for (const Accepted::Local& l : a->locals) {
      if (l.reserved) InboxLocked(l.agent).reserved--;
    }
  }
  a->locals.clear();
  if (a->dedupe) {
    absl::MutexLock lock(&dedupe_mu_);
    std::string key = absl::StrCat(a->dedupe_record.sender, std::string(1, '\0'),
                                   a->dedupe_record.id);
    auto it = dedupe_.find(key);
    if (it != dedupe_.end() && !it->second.committed) dedupe_.erase(it);
  }
}

void Gateway::ApplyAccepted(Accepted* a) {
  const pb::Message& m = *a->msg;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> touched;
    for (const Accepted::Local& l : a->locals) {
      Inbox& inbox = InboxLocked(l.agent);
      if (l.reserved) inbox.reserved--;
      if (l.state == pb::DELIVERY_STATE_DEAD_LETTERED) {
        inbox.dead_letters++;
        continue;
      }
      if (l.state == pb::DELIVERY_STATE_EXPIRED) continue;
      Entry e;
      e.seq = l.seq;
      e.msg = a->msg;
      e.priority = EffectivePriority(m.priority());
      e.type = m.type();
      e.state = pb::DELIVERY_STATE_QUEUED;
      e.received_at = FromProto(m.accepted_at());
      e.expires_at = FromProto(m.expires_at());
      AddEntryLocked(l.agent, inbox, std::move(e));
      touched.push_back(l.agent);
    }
    if (!touched.empty()) ArmExpiryLocked();
    for (const std::string& agent : touched) PumpLocked(agent, InboxLocked(agent));
    if (a->remote_copies > 0) outbox_depth_ += a->remote_copies;
  }
  {
    absl::MutexLock lock(&stats_mu_);
    BumpLocked(a->scope, a->escalation ? kEscalations : kSent, 1);
    if (a->remote_origin) BumpLocked(a->scope, kRemoteReceived, 1);
    if (a->remote_copies > 0) BumpLocked(a->scope, kRemoteSent, a->remote_copies);
    for (const Accepted::Local& l : a->locals) {
      if (l.state == pb::DELIVERY_STATE_DEAD_LETTERED) BumpLocked(l.agent, kDeadLettered, 1);
      if (l.state == pb::DELIVERY_STATE_EXPIRED) BumpLocked(l.agent, kExpired, 1);
    }
  }
  if (a->dedupe) {
    absl::MutexLock lock(&dedupe_mu_);
    auto it = dedupe_.find(
        absl::StrCat(a->dedupe_record.sender, std::string(1, '\0'), a->dedupe_record.id));
    if (it != dedupe_.end()) it->second.committed = true;
  }
  if (a->ack_deadline_us != 0) ArmEscalation(a->rowid, FromMicros(a->ack_deadline_us));
  if (a->remote_copies > 0) {
    absl::MutexLock lock(&federation_mu_);
    if (outbox_listener_) outbox_listener_();
  }
}

// ---------------------------------------------------------------------------
// Delivery engine
// ---------------------------------------------------------------------------

Gateway::Inbox& Gateway::InboxLocked(const std::string& agent) { return inboxes_[agent]; }

void Gateway::AddEntryLocked(const std::string& agent, Inbox& inbox, Entry entry) {
  const int64_t seq = entry.seq;
  inbox.order.emplace(-entry.priority, seq);
  inbox.ready.emplace(-entry.priority, seq);
  if (entry.state != pb::DELIVERY_STATE_READ) inbox.unread++;
  expiry_.emplace(entry.expires_at, agent, seq);
  inbox.entries[seq] = std::move(entry);
}

void Gateway::EndRoundLocked(Inbox& inbox, Entry& e) {
  if (e.in_round) inbox.ready.emplace(-e.priority, e.seq);
  for (uint64_t h : e.holders) {
    auto it = subscribers_.find(h);
    if (it != subscribers_.end()) it->second.in_flight--;
  }
  e.holders.clear();
  if (e.timer != 0) clock_->Cancel(e.timer);
  e.timer = 0;
  e.in_round = false;
}

void Gateway::RemoveEntryLocked(const std::string& agent, Inbox& inbox, int64_t seq) {
  auto it = inbox.entries.find(seq);
  if (it == inbox.entries.end()) return;
  Entry& e = it->second;
  EndRoundLocked(inbox, e);
  inbox.order.erase({-e.priority, seq});
  inbox.ready.erase({-e.priority, seq});
  expiry_.erase({e.expires_at, agent, seq});
  if (e.state != pb::DELIVERY_STATE_READ) inbox.unread--;
  inbox.entries.erase(it);
}

bool Gateway::MatchesLocked(const Subscriber& s, const Entry& e) const {
  if (s.type_mask != 0 && (s.type_mask & (1u << e.type)) == 0) return false;
  return e.priority >= s.min_priority;
}

void Gateway::PumpLocked(const std::string& agent, Inbox& inbox) {
  if (inbox.subscribers.empty() || inbox.entries.empty() || shut_down_) return;
  const absl::Time now = clock_->Now();
  std::vector<int64_t> expired;
  // Copies not in a round are in `ready` (in delivery order); a hand-over
  // starts a round and takes the copy out, so a subscriber with no filters
  // finds its next message at the front, whatever it already holds.
  if (inbox.mode == pb::SUBSCRIBE_MODE_COMPETING) {
    const size_t n = inbox.subscribers.size();
    for (auto it = inbox.ready.begin(); it != inbox.ready.end();) {
      Entry& e = inbox.entries[(it++)->second];  // advance first: hand-over erases
      if (e.expires_at <= now) {
        expired.push_back(e.seq);
        continue;
      }
      bool any_room = false;
      for (size_t k = 0; k < n; ++k) {
        Subscriber& s = subscribers_[inbox.subscribers[(inbox.next_rr + k) % n]];
        if (s.in_flight >= s.max_in_flight) continue;
        any_room = true;
        if (!MatchesLocked(s, e)) continue;
        HandOverLocked(agent, inbox, e, s, now);
        inbox.next_rr = (inbox.next_rr + k + 1) % n;
        break;
      }
      if (!any_room) break;
    }
  } else {
    for (uint64_t id : inbox.subscribers) {
      Subscriber& s = subscribers_[id];
      for (auto it = inbox.ready.begin();
           it != inbox.ready.end() && s.in_flight < s.max_in_flight;) {
        Entry& e = inbox.entries[(it++)->second];
        if (e.expires_at <= now) {
          expired.push_back(e.seq);
          continue;
        }
        if (MatchesLocked(s, e)) HandOverLocked(agent, inbox, e, s, now);
      }
      // FANOUT: copies already in a round for another subscriber.
      if (inbox.subscribers.size() < 2) continue;
      for (auto it = inbox.order.begin();
           it != inbox.order.end() && s.in_flight < s.max_in_flight; ++it) {
        Entry& e = inbox.entries[it->second];
        if (!e.in_round || e.expires_at <= now || !MatchesLocked(s, e)) continue;
        if (std::find(e.holders.begin(), e.holders.end(), s.id) != e.holders.end()) continue;
        HandOverLocked(agent, inbox, e, s, now);
      }
    }
  }
  if (!expired.empty()) {
    // The expiry timer will drop them; make it run now.
    if (expiry_timer_ != 0) clock_->Cancel(expiry_timer_);
    expiry_armed_at_ = now;
    expiry_timer_ = clock_->RunAt(now, Guarded([this] { OnExpiryTimer(); }));
  }
}

void Gateway::HandOverLocked(const std::string& agent, Inbox& inbox, Entry& e, Subscriber& s,
                             absl::Time now) {
  if (!e.in_round) {
    e.in_round = true;
    inbox.ready.erase({-e.priority, e.seq});
    e.attempts++;
    e.round_deadline = now + options_.ack_timeout;
    const int64_t seq = e.seq;
    const int attempt = e.attempts;
    e.timer = clock_->RunAt(e.round_deadline, Guarded([this, agent, seq, attempt] {
                              OnAckTimeout(agent, seq, attempt);
                            }));
    if (e.state == pb::DELIVERY_STATE_QUEUED) e.state = pb::DELIVERY_STATE_DELIVERED;
    Bump(agent, attempt == 1 ? kDelivered : kRedelivered);
    const int64_t now_us = ToMicros(now);
    writer_->Submit(GroupCommitWriter::Job{
        [this, agent, seq, attempt, now_us](sqlite::Database*) -> absl::Status {
          return store_->MarkDelivered(agent, seq, attempt, now_us).status();
        },
        nullptr});
  }
  e.delivered_at = now;
  e.holders.push_back(s.id);
  s.in_flight++;
  pb::SubscribeResponse frame;
  pb::InboxEntry* out = frame.mutable_delivery();
  *out->mutable_message() = *e.msg;
  out->set_inbox_sequence(e.seq);
  out->set_state(static_cast<pb::DeliveryState>(e.state));
  out->set_attempt(e.attempts);
  *out->mutable_received_at() = ToProto(e.received_at);
  *out->mutable_delivered_at() = ToProto(now);
  *out->mutable_ack_deadline() = ToProto(e.round_deadline);
  if (e.read_at != absl::InfinitePast()) *out->mutable_read_at() = ToProto(e.read_at);
  s.sink->Deliver(std::move(frame));
}

void Gateway::DeadLetterLocked(const std::string& agent, Inbox& inbox, int64_t seq,
                               pb::DeadLetterReason reason, const std::string& detail) {
  RemoveEntryLocked(agent, inbox, seq);
  const int64_t now_us = ToMicros(clock_->Now());
  auto changed = std::make_shared<bool>(false);
  writer_->Submit(GroupCommitWriter::Job{
      [this, agent, seq, now_us, reason, detail, changed](sqlite::Database*) -> absl::Status {
        CNET_ASSIGN_OR_RETURN(*changed,
                              store_->FinishPending(agent, seq, pb::DELIVERY_STATE_DEAD_LETTERED,
                                                    now_us, reason, detail));
        return absl::OkStatus();
      },
      [this, agent, changed](const absl::Status& st) {
        if (!st.ok() || !*changed) return;
        Bump(agent, kDeadLettered);
        absl::MutexLock lock(&mu_);
        InboxLocked(agent).dead_letters++;
      }});
}

void Gateway::OnAckTimeout(const std::string& agent, int64_t seq, int attempt) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  auto ib = inboxes_.find(agent);
  if (ib == inboxes_.end()) return;
  Inbox& inbox = ib->second;
  auto it = inbox.entries.find(seq);
  if (it == inbox.entries.end()) return;
  Entry& e = it->second;
  if (!e.in_round || e.attempts != attempt) return;
  e.timer = 0;
  EndRoundLocked(inbox, e);
  if (e.attempts >= options_.max_deliveries) {
    DeadLetterLocked(agent, inbox, seq, pb::DEAD_LETTER_REASON_MAX_DELIVERIES,
                     absl::StrCat("delivered ", e.attempts, " times without an ack"));
  }
  PumpLocked(agent, inbox);
}

void Gateway::ArmExpiryLocked() {
  if (shut_down_) return;
  absl::Time earliest =
      expiry_.empty() ? absl::InfiniteFuture() : std::get<0>(*expiry_.begin());
  if (earliest == expiry_armed_at_ && expiry_timer_ != 0) return;
  if (expiry_timer_ != 0) clock_->Cancel(expiry_timer_);
  expiry_timer_ = 0;
  expiry_armed_at_ = earliest;
  if (earliest == absl::InfiniteFuture()) return;
  expiry_timer_ = clock_->RunAt(earliest, Guarded([this] { OnExpiryTimer(); }));
}

void Gateway::OnExpiryTimer() {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  expiry_timer_ = 0;
  expiry_armed_at_ = absl::InfiniteFuture();
  const absl::Time now = clock_->Now();
  std::set<std::string> touched;
  while (!expiry_.empty() && std::get<0>(*expiry_.begin()) <= now) {
    auto [when, agent, seq] = *expiry_.begin();
    Inbox& inbox = InboxLocked(agent);
    RemoveEntryLocked(agent, inbox, seq);
    expiry_.erase({when, agent, seq});
    touched.insert(agent);
    const int64_t now_us = ToMicros(now);
    auto changed = std::make_shared<bool>(false);
    std::string a = agent;
    int64_t s = seq;
    writer_->Submit(GroupCommitWriter::Job{
        [this, a, s, now_us, changed](sqlite::Database*) -> absl::Status {
          CNET_ASSIGN_OR_RETURN(
              *changed, store_->FinishPending(a, s, pb::DELIVERY_STATE_EXPIRED, now_us));
          return absl::OkStatus();
        },
        [this, a, changed](const absl::Status& st) {
          if (st.ok() && *changed) Bump(a, kExpired);
        }});
  }
  for (const std::string& agent : touched) PumpLocked(agent, InboxLocked(agent));
  ArmExpiryLocked();
}

void Gateway::OnMaintenanceTimer() {
  bool prune = false;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    const absl::Time now = clock_->Now();
    if (now - last_prune_ >= options_.prune_interval) {
      prune = true;
      last_prune_ = now;
    }
    maintenance_timer_ = clock_->RunAfter(options_.counter_flush_interval,
                                          Guarded([this] { OnMaintenanceTimer(); }));
  }
  writer_->Submit(GroupCommitWriter::Job{
      [this](sqlite::Database* db) { return FlushCounters(db); }, nullptr});
  if (!prune) return;
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&dedupe_mu_);
    while (!dedupe_order_.empty() && dedupe_order_.front().first <= now) {
      auto it = dedupe_.find(dedupe_order_.front().second);
      if (it != dedupe_.end() && it->second.expires <= now) dedupe_.erase(it);
      dedupe_order_.pop_front();
    }
  }
  std::vector<std::pair<std::string, int64_t>> seqs;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [agent, inbox] : inboxes_) seqs.emplace_back(agent, inbox.last_seq);
  }
  writer_->Submit(GroupCommitWriter::Job{
      [this, seqs, now](sqlite::Database*) -> absl::Status {
        // Keep sequence high-water marks before copies are deleted, so that
        // sequences never go back.
        for (const auto& [agent, seq] : seqs) {
          CNET_RETURN_IF_ERROR(store_->SaveInboxSeq(agent, seq));
        }
        CNET_RETURN_IF_ERROR(store_->PruneDedupe(ToMicros(now)).status());
        return store_->PruneRetention(ToMicros(now - options_.retention)).status();
      },
      nullptr});
}

// ---------------------------------------------------------------------------
// Access rules
// ---------------------------------------------------------------------------

absl::StatusOr<std::string> Gateway::OwnerOnly(const Caller& caller,
                                               const std::string& agent_id) const {
  if (caller.kind == Caller::Kind::kAnonymous) {
    return Error(absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED",
                 "authorization: this call needs the inbox owner's token");
  }
  if (caller.kind == Caller::Kind::kAdmin) {
    return Error(absl::StatusCode::kPermissionDenied, "NOT_OWNER",
                 "only the inbox owner (or a service on its behalf) may consume or mark an "
                 "inbox; admin included");
  }
  std::string acting = caller.acting_agent();
  if (acting.empty()) {
    return Error(absl::StatusCode::kPermissionDenied, "NOT_OWNER",
                 "a service credential must name the agent in claudenet-on-behalf-of");
  }
  if (!agent_id.empty() && agent_id != acting) {
    return Error(absl::StatusCode::kPermissionDenied, "NOT_OWNER",
                 absl::StrCat("agent \"", acting, "\" may not use the inbox of \"", agent_id,
                              "\""),
                 "agent", agent_id);
  }
  return acting;
}

absl::StatusOr<std::string> Gateway::OwnerOrAdmin(const Caller& caller,
                                                  const std::string& agent_id) const {
  if (caller.kind == Caller::Kind::kAdmin) {
    if (agent_id.empty()) return Invalid("agent_id", "required when calling as admin");
    return agent_id;
  }
  return OwnerOnly(caller, agent_id);
}

absl::Status Gateway::RequireKnownAgent(const std::string& agent) {
  absl::StatusOr<std::optional<AgentInfo>> a = directory_->Get(agent);
  if (a.ok() && a->has_value()) return absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    if (inboxes_.count(agent) > 0) return absl::OkStatus();  // it had messages here
  }
  if (!a.ok()) return a.status();
  return Error(absl::StatusCode::kNotFound, "UNKNOWN_AGENT",
               absl::StrCat("agent \"", agent, "\": no such agent"), "agent", agent);
}

// ---------------------------------------------------------------------------
// Subscribe
// ---------------------------------------------------------------------------

absl::StatusOr<uint64_t> Gateway::Subscribe(const Caller& caller, const pb::SubscribeRequest& req,
                                            DeliverySink* sink) {
  CNET_ASSIGN_OR_RETURN(std::string agent, OwnerOnly(caller, req.agent_id()));
  if (req.max_in_flight() < 0 || req.max_in_flight() > kMaxItems) {
    return Invalid("max_in_flight",
                   absl::StrCat("must be 0..1000 (got ", req.max_in_flight(), ")"));
  }
  if (!pb::SubscribeMode_IsValid(req.mode())) {
    return Invalid("mode", absl::StrCat("unknown mode ", req.mode()));
  }
  CNET_RETURN_IF_ERROR(ValidateTypes(req.types(), "types"));
  if (req.min_priority() < 0 || req.min_priority() > 5) {
    return Invalid("min_priority", "priority out of range");
  }
  CNET_RETURN_IF_ERROR(RequireKnownAgent(agent));
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::UnavailableError("the gateway is shutting down");
  Inbox& inbox = InboxLocked(agent);
  if (static_cast<int>(inbox.subscribers.size()) >= options_.max_subscribers_per_agent) {
    return Error(absl::StatusCode::kResourceExhausted, "TOO_MANY_SUBSCRIBERS",
                 absl::StrCat("agent \"", agent, "\" already has ", inbox.subscribers.size(),
                              " open subscribers (limit ", options_.max_subscribers_per_agent,
                              "); close one or retry after 1s"),
                 "agent", agent);
  }
  if (inbox.subscribers.empty()) {
    inbox.mode = req.mode() == pb::SUBSCRIBE_MODE_UNSPECIFIED ? pb::SUBSCRIBE_MODE_FANOUT
                                                              : req.mode();
  } else if (req.mode() != pb::SUBSCRIBE_MODE_UNSPECIFIED && req.mode() != inbox.mode) {
    return Error(absl::StatusCode::kFailedPrecondition, "MODE_CONFLICT",
                 absl::StrCat("agent \"", agent, "\": its open subscribers use ",
                              pb::SubscribeMode_Name(static_cast<pb::SubscribeMode>(inbox.mode)),
                              "; close them or subscribe with that mode"),
                 "agent", agent);
  }
  Subscriber s;
  s.id = next_subscriber_++;
  s.agent = agent;
  s.sink = sink;
  s.max_in_flight = req.max_in_flight() == 0 ? 100 : req.max_in_flight();
  s.type_mask = TypeMask(req.types());
  s.min_priority = req.min_priority();
  const uint64_t id = s.id;
  const int others = static_cast<int>(inbox.subscribers.size());
  subscribers_[id] = s;
  inbox.subscribers.push_back(id);

  pb::SubscribeResponse ready;
  pb::SubscriptionReady* r = ready.mutable_ready();
  r->set_subscriber_id(absl::StrCat("sub-", agent, "-", id));
  r->set_mode(static_cast<pb::SubscribeMode>(inbox.mode));
  const absl::Time now = clock_->Now();
  int64_t pending = 0, unread = 0;
  for (const auto& [seq, e] : inbox.entries) {
    if (e.expires_at <= now) continue;
    pending++;
    if (e.state != pb::DELIVERY_STATE_READ) unread++;
  }
  r->set_pending_count(pending);
  r->set_unread_count(unread);
  *r->mutable_ack_timeout() = DurationProto(options_.ack_timeout);
  r->set_other_subscribers(others);
  sink->Deliver(std::move(ready));
  PumpLocked(agent, inbox);
  return id;
}

void Gateway::Unsubscribe(uint64_t subscription_id) {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(subscription_id);
  if (it == subscribers_.end()) return;
  const std::string agent = it->second.agent;
  Inbox& inbox = InboxLocked(agent);
  inbox.subscribers.erase(
      std::remove(inbox.subscribers.begin(), inbox.subscribers.end(), subscription_id),
      inbox.subscribers.end());
  subscribers_.erase(it);
  // Copies this subscriber held: when nobody else holds them, the round is
  // over now (the attempt counts) rather than at the ack timeout, so that a
  // reconnecting shell gets them at once.
  std::vector<int64_t> dead;
  for (auto& [seq, e] : inbox.entries) {
    auto h = std::find(e.holders.begin(), e.holders.end(), subscription_id);
    if (h == e.holders.end()) continue;
    e.holders.erase(h);
    if (e.holders.empty() && e.in_round) {
      EndRoundLocked(inbox, e);
      if (e.attempts >= options_.max_deliveries) dead.push_back(seq);
    }
  }
  for (int64_t seq : dead) {
    DeadLetterLocked(agent, inbox, seq, pb::DEAD_LETTER_REASON_MAX_DELIVERIES,
                     absl::StrCat("delivered ", options_.max_deliveries,
                                  " times without an ack"));
  }
  if (inbox.subscribers.empty()) inbox.mode = pb::SUBSCRIBE_MODE_UNSPECIFIED;
  inbox.next_rr = 0;
  PumpLocked(agent, inbox);
}

// ---------------------------------------------------------------------------
// Ack and MarkRead
// ---------------------------------------------------------------------------
namespace {

absl::Status ValidateItems(int n_seqs, const google::protobuf::RepeatedPtrField<std::string>& ids) {
  const int n = n_seqs + ids.size();
  if (n == 0) return Invalid("inbox_sequences", "no items given (1..1000 in all)");
  if (n > kMaxItems) {
    return Invalid("inbox_sequences", absl::StrCat("too many items (", n, "; at most 1000)"));
  }
  for (int i = 0; i < ids.size(); ++i) {
    if (!ValidMessageId(ids[i])) {
      return Invalid(absl::StrCat("message_ids[", i, "]"),
                     "must be 1..128 bytes of [A-Za-z0-9._:-]");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<pb::AckResponse> Gateway::Ack(const Caller& caller, const pb::AckRequest& req) {
  CNET_ASSIGN_OR_RETURN(std::string agent, OwnerOnly(caller, req.agent_id()));
  CNET_RETURN_IF_ERROR(ValidateItems(req.inbox_sequences_size(), req.message_ids()));
  const int64_t now_us = ToMicros(clock_->Now());
  pb::AckResponse resp;
  std::vector<std::pair<int64_t, bool>> acked;  // seq, was dead-lettered
  auto item = [&](int64_t seq, const std::string& id) -> absl::Status {
    pb::ItemResult* r = resp.add_results();
    r->set_inbox_sequence(seq);
    r->set_message_id(id);
    std::optional<DeliveryRow> row;
    if (!id.empty()) {
      CNET_ASSIGN_OR_RETURN(std::vector<DeliveryRow> rows,
                            store_->DeliveriesByMessageId(agent, id));
      if (rows.size() > 1) {
        r->set_outcome(pb::ITEM_OUTCOME_AMBIGUOUS);
        return absl::OkStatus();
      }
      if (rows.size() == 1) row = rows[0];
    } else if (seq > 0) {
      CNET_ASSIGN_OR_RETURN(row, store_->GetDelivery(agent, seq));
    }
    if (!row.has_value() || row->remote) {
      r->set_outcome(pb::ITEM_OUTCOME_NOT_FOUND);
      return absl::OkStatus();
    }
    r->set_inbox_sequence(row->seq);
    r->set_message_id(row->msg_id);
    if (row->state == pb::DELIVERY_STATE_ACKED) {
      r->set_outcome(pb::ITEM_OUTCOME_ALREADY_DONE);
    } else if (row->state == pb::DELIVERY_STATE_EXPIRED ||
               (IsPendingState(row->state) && row->expires_us <= now_us)) {
      r->set_outcome(pb::ITEM_OUTCOME_EXPIRED);
    } else {
      // Pending, or dead-lettered: the agent did process it after all.
      const bool was_dead = row->state == pb::DELIVERY_STATE_DEAD_LETTERED;
      row->state = pb::DELIVERY_STATE_ACKED;
      row->state_changed_us = now_us;
      row->acked_us = now_us;
      CNET_RETURN_IF_ERROR(store_->UpdateDelivery(*row));
      acked.emplace_back(row->seq, was_dead);
      r->set_outcome(pb::ITEM_OUTCOME_OK);
    }
    return absl::OkStatus();
  };
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    for (int64_t seq : req.inbox_sequences()) CNET_RETURN_IF_ERROR(item(seq, ""));
    for (const std::string& id : req.message_ids()) CNET_RETURN_IF_ERROR(item(0, id));
    return absl::OkStatus();
  }));
  if (!acked.empty()) {
    {
      absl::MutexLock lock(&mu_);
      Inbox& inbox = InboxLocked(agent);
      for (const auto& [seq, was_dead] : acked) {
        RemoveEntryLocked(agent, inbox, seq);
        if (was_dead) inbox.dead_letters--;
      }
      ArmExpiryLocked();
      PumpLocked(agent, inbox);
    }
    Bump(agent, kAcked, static_cast<int64_t>(acked.size()));
  }
  return resp;
}

absl::StatusOr<pb::MarkReadResponse> Gateway::MarkRead(const Caller& caller,
                                                       const pb::MarkReadRequest& req) {
  CNET_ASSIGN_OR_RETURN(std::string agent, OwnerOnly(caller, req.agent_id()));
  CNET_RETURN_IF_ERROR(ValidateItems(req.inbox_sequences_size(), req.message_ids()));
  const int64_t now_us = ToMicros(clock_->Now());
  pb::MarkReadResponse resp;
  std::vector<int64_t> read;
  auto item = [&](int64_t seq, const std::string& id) -> absl::Status {
    pb::ItemResult* r = resp.add_results();
    r->set_inbox_sequence(seq);
    r->set_message_id(id);
    std::optional<DeliveryRow> row;
    if (!id.empty()) {
      CNET_ASSIGN_OR_RETURN(std::vector<DeliveryRow> rows,
                            store_->DeliveriesByMessageId(agent, id));
      if (rows.size() > 1) {
        r->set_outcome(pb::ITEM_OUTCOME_AMBIGUOUS);
        return absl::OkStatus();
      }
      if (rows.size() == 1) row = rows[0];
    } else if (seq > 0) {
      CNET_ASSIGN_OR_RETURN(row, store_->GetDelivery(agent, seq));
    }
    if (!row.has_value() || row->remote) {
      r->set_outcome(pb::ITEM_OUTCOME_NOT_FOUND);
      return absl::OkStatus();
    }
    r->set_inbox_sequence(row->seq);
    r->set_message_id(row->msg_id);
    if (row->state == pb::DELIVERY_STATE_EXPIRED ||
        (IsPendingState(row->state) && row->expires_us <= now_us)) {
      r->set_outcome(pb::ITEM_OUTCOME_EXPIRED);
    } else if (row->read_us != 0 || row->state == pb::DELIVERY_STATE_ACKED) {
      r->set_outcome(pb::ITEM_OUTCOME_ALREADY_DONE);
    } else {
      row->read_us = now_us;
      if (row->state == pb::DELIVERY_STATE_QUEUED || row->state == pb::DELIVERY_STATE_DELIVERED) {
        row->state = pb::DELIVERY_STATE_READ;
        row->state_changed_us = now_us;
        read.push_back(row->seq);
      }
      CNET_RETURN_IF_ERROR(store_->UpdateDelivery(*row));
      r->set_outcome(pb::ITEM_OUTCOME_OK);
    }
    return absl::OkStatus();
  };
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    for (int64_t seq : req.inbox_sequences()) CNET_RETURN_IF_ERROR(item(seq, ""));
    for (const std::string& id : req.message_ids()) CNET_RETURN_IF_ERROR(item(0, id));
    return absl::OkStatus();
  }));
  if (!read.empty()) {
    {
      absl::MutexLock lock(&mu_);
      Inbox& inbox = InboxLocked(agent);
      const absl::Time now = FromMicros(now_us);
      for (int64_t seq : read) {
        auto it = inbox.entries.find(seq);
        if (it == inbox.entries.end() || it->second.state == pb::DELIVERY_STATE_READ) continue;
        it->second.state = pb::DELIVERY_STATE_READ;
        it->second.read_at = now;
        inbox.unread--;
      }
    }
    Bump(agent, kRead, static_cast<int64_t>(read.size()));
  }
  return resp;
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

pb::InboxEntry Gateway::EntryFromRow(const DeliveryRow& row,
                                     const std::shared_ptr<const pb::Message>& m) {
  pb::InboxEntry e;
  *e.mutable_message() = *m;
  e.set_inbox_sequence(row.seq);
  e.set_state(static_cast<pb::DeliveryState>(row.state));
  e.set_attempt(row.attempts);
  SetTime(e.mutable_received_at(), row.received_us);
  SetTime(e.mutable_delivered_at(), row.last_delivered_us);
  SetTime(e.mutable_read_at(), row.read_us);
  SetTime(e.mutable_acked_at(), row.acked_us);
  return e;
}

absl::StatusOr<pb::FetchInboxResponse> Gateway::FetchInbox(const Caller& caller,
                                                           const pb::FetchInboxRequest& req) {
  CNET_ASSIGN_OR_RETURN(std::string agent, OwnerOrAdmin(caller, req.agent_id()));
  CNET_ASSIGN_OR_RETURN(int page, PageSize(req.page_size()));
  if (req.since_sequence() < 0) return Invalid("since_sequence", "must be >= 0");
  if (!pb::InboxFilter_IsValid(req.filter())) return Invalid("filter", "unknown filter");
  if (!pb::InboxOrder_IsValid(req.order())) return Invalid("order", "unknown order");
  CNET_RETURN_IF_ERROR(ValidateTypes(req.types(), "types"));
  if (req.min_priority() < 0 || req.min_priority() > 5) {
    return Invalid("min_priority", "priority out of range");
  }
  CNET_RETURN_IF_ERROR(RequireKnownAgent(agent));
  const int filter = req.filter() == pb::INBOX_FILTER_UNSPECIFIED ? pb::INBOX_FILTER_UNREAD
                                                                  : req.filter();
  const bool by_priority = req.order() == pb::INBOX_ORDER_PRIORITY;
  const uint32_t mask = TypeMask(req.types());
  const std::string fp = Fingerprint(absl::StrCat(agent, "/", filter, "/", req.since_sequence(),
                                                  "/", mask, "/", req.min_priority(), "/",
                                                  by_priority));
  int64_t cursor_priority = 0, cursor_seq = 0;
  bool has_cursor = false;
  if (!req.page_token().empty()) {
    CNET_ASSIGN_OR_RETURN(auto c, ParseToken(req.page_token(), "inbox", fp, 2));
    if (!absl::SimpleAtoi(c[0], &cursor_priority) || !absl::SimpleAtoi(c[1], &cursor_seq)) {
      return Invalid("page_token", "cannot be decoded");
    }
    has_cursor = true;
  }
  const absl::Time now = clock_->Now();
  MessageStore::Query q;
  q.where = "d.recipient = ? AND d.seq > ? AND ((1 << d.type) & ?) != 0 AND d.priority >= ?";
  q.text_binds = {agent};
  q.int_binds = {req.since_sequence(), mask == 0 ? int64_t{0xFFFFFFFF} : int64_t{mask},
                 std::max<int64_t>(req.min_priority(), 0), ToMicros(now)};
  if (filter == pb::INBOX_FILTER_UNREAD) {
    absl::StrAppend(&q.where, " AND d.state IN (1, 3) AND d.expires_us > ?");
  } else if (filter == pb::INBOX_FILTER_UNACKED) {
    absl::StrAppend(&q.where, " AND d.state IN (1, 3, 4) AND d.expires_us > ?");
  } else {
    absl::StrAppend(&q.where, " AND (d.state = 5 OR (d.state IN (1, 3, 4) AND d.expires_us > ?))");
  }
  if (has_cursor) {
    if (by_priority) {
      absl::StrAppend(&q.where, " AND (-d.priority, d.seq) > (?, ?)");
      q.int_binds.push_back(-cursor_priority);
    } else {
      absl::StrAppend(&q.where, " AND d.seq > ?");
    }
    q.int_binds.push_back(cursor_seq);
  }
  q.order = by_priority ? "d.priority DESC, d.seq" : "d.seq";
  q.limit = page + 1;
  pb::FetchInboxResponse resp;
  std::vector<StoredEntry> rows;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(rows, store_->QueryDeliveries(q));
    return absl::OkStatus();
  }));
  size_t bytes = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const StoredEntry& s = rows[i];
    if (static_cast<int>(i) >= page || (i > 0 && bytes > kMaxPageBytes)) {
      const StoredEntry& last = rows[i - 1];
      resp.set_next_page_token(MakeToken(
          "inbox", fp, {absl::StrCat(last.row.priority), absl::StrCat(last.row.seq)}));
      break;
    }
    *resp.add_entries() = EntryFromRow(s.row, s.message);
    bytes += resp.entries(resp.entries_size() - 1).ByteSizeLong();
  }
  absl::MutexLock lock(&mu_);
  Inbox& inbox = InboxLocked(agent);
  int64_t pending = 0, unread = 0, urgent = 0;
  for (const auto& [seq, e] : inbox.entries) {
    if (e.expires_at <= now) continue;
    pending++;
    if (e.state != pb::DELIVERY_STATE_READ) {
      unread++;
      if (e.priority >= pb::PRIORITY_CRITICAL) urgent++;
    }
  }
  resp.set_pending_count(pending);
  resp.set_unread_count(unread);
  resp.set_urgent_unread_count(urgent);
  resp.set_latest_sequence(inbox.last_seq);
  return resp;
}

namespace {

pb::RecipientDelivery ToRecipient(const DeliveryRow& row) {
  pb::RecipientDelivery d;
  d.set_agent_id(row.recipient);
  d.set_node(row.node);
  d.set_remote(row.remote);
  d.set_state(static_cast<pb::DeliveryState>(row.state));
  SetTime(d.mutable_state_changed_at(), row.state_changed_us);
  d.set_attempts(row.attempts);
  d.set_dead_letter_reason(static_cast<pb::DeadLetterReason>(row.dl_reason));
  SetTime(d.mutable_first_delivered_at(), row.first_delivered_us);
  SetTime(d.mutable_read_at(), row.read_us);
  SetTime(d.mutable_acked_at(), row.acked_us);
  d.set_inbox_sequence(row.remote ? 0 : row.seq);
  return d;
}

}  // namespace

absl::StatusOr<pb::GetMessageStatusResponse> Gateway::GetMessageStatus(
    const Caller& caller, const pb::GetMessageStatusRequest& req) {
  if (caller.kind == Caller::Kind::kAnonymous) {
    return Error(absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED",
                 "authorization: this call needs a credential");
  }
  if (req.message_id().empty()) return Invalid("message_id", "required");
  if (!ValidMessageId(req.message_id())) {
    return Invalid("message_id", "must be 1..128 bytes of [A-Za-z0-9._:-]");
  }
  CNET_ASSIGN_OR_RETURN(int page, PageSize(req.page_size()));
  std::string sender = req.sender();
  std::string self = caller.acting_agent();
  // A service credential without on-behalf-of sees its own `svc:<name>`
  // messages only, never an agent's.
  if (caller.kind == Caller::Kind::kService && self.empty() && ValidServiceSender(sender)) {
    self = sender;
  }
  if (sender.empty()) {
    if (self.empty()) return Invalid("sender", "required when calling as admin");
    sender = self;
  } else if (sender != self && caller.kind != Caller::Kind::kAdmin) {
    return Error(absl::StatusCode::kPermissionDenied, "NOT_SENDER",
                 absl::StrCat("only \"", sender, "\" (or admin) may see the status of its messages"),
                 "message", req.message_id());
  }
  const std::string fp = Fingerprint(absl::StrCat(sender, "/", req.message_id()));
  std::string after;
  if (!req.page_token().empty()) {
    CNET_ASSIGN_OR_RETURN(auto c, ParseToken(req.page_token(), "status", fp, 1));
    after = c[0];
  }
  pb::GetMessageStatusResponse resp;
  bool found = false;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(std::optional<MessageRow> m,
                          store_->FindMessage(sender, req.message_id()));
    if (!m.has_value()) return absl::OkStatus();
    found = true;
    *resp.mutable_message() = *m->message;
    SetTime(resp.mutable_ack_deadline(), m->ack_deadline_us);
    resp.set_escalated(m->escalated);
    CNET_ASSIGN_OR_RETURN(auto counts, store_->StateCountsOfMessage(m->rowid));
    for (const auto& [state, n] : counts) {
      pb::DeliveryStateCount* c = resp.add_counts();
      c->set_state(static_cast<pb::DeliveryState>(state));
      c->set_count(n);
    }
    CNET_ASSIGN_OR_RETURN(auto rows, store_->DeliveriesOfMessage(m->rowid, after, page + 1));
    for (size_t i = 0; i < rows.size() && static_cast<int>(i) < page; ++i) {
      *resp.add_recipients() = ToRecipient(rows[i]);
    }
    if (static_cast<int>(rows.size()) > page) {
      resp.set_next_page_token(MakeToken("status", fp, {rows[page - 1].recipient}));
    }
    return absl::OkStatus();
  }));
  if (!found) {
    return Error(absl::StatusCode::kNotFound, "UNKNOWN_MESSAGE",
                 absl::StrCat("message \"", req.message_id(), "\" from \"", sender,
                              "\": not found"),
                 "message", req.message_id());
  }
  return resp;
}

absl::StatusOr<pb::ListDeadLettersResponse> Gateway::ListDeadLetters(
    const Caller& caller, const pb::ListDeadLettersRequest& req) {
  std::string agent;
  if (req.agent_id() == "*") {
    if (caller.kind != Caller::Kind::kAdmin) {
      return Error(absl::StatusCode::kPermissionDenied, "NOT_ADMIN",
                   "agent_id \"*\" (every inbox) needs the admin credential");
    }
    agent = "*";
  } else {
    CNET_ASSIGN_OR_RETURN(agent, OwnerOrAdmin(caller, req.agent_id()));
    CNET_RETURN_IF_ERROR(RequireKnownAgent(agent));
  }
  CNET_ASSIGN_OR_RETURN(int page, PageSize(req.page_size()));
  uint32_t reasons = 0;
  for (int i = 0; i < req.reasons_size(); ++i) {
    if (!pb::DeadLetterReason_IsValid(req.reasons(i)) || req.reasons(i) == 0) {
      return Invalid(absl::StrCat("reasons[", i, "]"), "unknown reason");
    }
    reasons |= 1u << req.reasons(i);
  }
  const std::string fp = Fingerprint(absl::StrCat(agent, "/", reasons));
  MessageStore::Query q;
  q.where = "d.state = 7 AND (? = '*' OR d.recipient = ?) AND ((1 << d.dl_reason) & ?) != 0";
  q.text_binds = {agent, agent};
  q.int_binds = {reasons == 0 ? int64_t{0xFFFFFFFF} : int64_t{reasons}};
  if (!req.page_token().empty()) {
    CNET_ASSIGN_OR_RETURN(auto c, ParseToken(req.page_token(), "dead", fp, 3));
    int64_t at = 0, seq = 0;
    if (!absl::SimpleAtoi(c[0], &at) || !absl::SimpleAtoi(c[2], &seq)) {
      return Invalid("page_token", "cannot be decoded");
    }
    // Numbered parameters: text binds (?1..?3) come before int binds (?4..).
    q.text_binds.push_back(c[1]);
    q.where = "d.state = 7 AND (?1 = '*' OR d.recipient = ?2) AND (-d.dl_at_us, d.recipient, "
              "-d.seq) > (?5, ?3, ?6) AND ((1 << d.dl_reason) & ?4) != 0";
    q.int_binds.push_back(-at);
    q.int_binds.push_back(-seq);
  }
  q.order = "d.dl_at_us DESC, d.recipient, d.seq DESC";
  q.limit = page + 1;
  std::vector<StoredEntry> rows;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(rows, store_->QueryDeliveries(q));
    return absl::OkStatus();
  }));
  pb::ListDeadLettersResponse resp;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (static_cast<int>(i) >= page) {
      const DeliveryRow& last = rows[i - 1].row;
      resp.set_next_page_token(MakeToken(
          "dead", fp, {absl::StrCat(last.dl_at_us), last.recipient, absl::StrCat(last.seq)}));
      break;
    }
    pb::DeadLetter* d = resp.add_dead_letters();
    *d->mutable_entry() = EntryFromRow(rows[i].row, rows[i].message);
    d->set_recipient(rows[i].row.recipient);
    d->set_reason(static_cast<pb::DeadLetterReason>(rows[i].row.dl_reason));
    SetTime(d->mutable_dead_lettered_at(), rows[i].row.dl_at_us);
    d->set_detail(rows[i].row.dl_detail);
  }
  return resp;
}

absl::StatusOr<pb::RequeueDeadLetterResponse> Gateway::RequeueDeadLetter(
    const Caller& caller, const pb::RequeueDeadLetterRequest& req) {
  CNET_ASSIGN_OR_RETURN(std::string agent, OwnerOrAdmin(caller, req.agent_id()));
  if (req.inbox_sequences_size() == 0) return Invalid("inbox_sequences", "no items given");
  if (req.inbox_sequences_size() > kMaxItems) {
    return Invalid("inbox_sequences", "too many items (at most 1000)");
  }
  absl::Duration extend = absl::ZeroDuration();
  if (req.has_extend_ttl()) {
    extend = FromProto(req.extend_ttl());
    if (extend < absl::Seconds(1) || extend > options_.max_ttl) {
      return Invalid("extend_ttl", absl::StrCat("must be 1s..", absl::FormatDuration(options_.max_ttl)));
    }
  }
  CNET_RETURN_IF_ERROR(RequireKnownAgent(agent));
  const absl::Time now = clock_->Now();
  const int64_t now_us = ToMicros(now);
  pb::RequeueDeadLetterResponse resp;
  std::vector<StoredEntry> requeued;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    int64_t room;
    {
      absl::MutexLock lock(&mu_);
      Inbox& inbox = InboxLocked(agent);
      room = options_.inbox_cap - static_cast<int64_t>(inbox.entries.size()) - inbox.reserved;
    }
    for (int64_t seq : req.inbox_sequences()) {
      pb::ItemResult* r = resp.add_results();
      r->set_inbox_sequence(seq);
      std::optional<DeliveryRow> row;
      if (seq > 0) {
        CNET_ASSIGN_OR_RETURN(row, store_->GetDelivery(agent, seq));
      }
      if (!row.has_value() || row->remote) {
        r->set_outcome(pb::ITEM_OUTCOME_NOT_FOUND);
        continue;
      }
      r->set_message_id(row->msg_id);
      if (IsPendingState(row->state)) {
        r->set_outcome(pb::ITEM_OUTCOME_ALREADY_DONE);
        continue;
      }
      if (row->state != pb::DELIVERY_STATE_DEAD_LETTERED) {
        r->set_outcome(row->state == pb::DELIVERY_STATE_EXPIRED ? pb::ITEM_OUTCOME_EXPIRED
                                                                : pb::ITEM_OUTCOME_NOT_FOUND);
        continue;
      }
      if (extend > absl::ZeroDuration()) {
        row->expires_us = ToMicros(now + extend);
      } else if (row->expires_us <= now_us) {
        r->set_outcome(pb::ITEM_OUTCOME_EXPIRED);
        continue;
      }
      if (room <= 0) {
        requeued.clear();
        return Error(absl::StatusCode::kResourceExhausted, "INBOX_FULL",
                     absl::StrCat("agent \"", agent, "\": the inbox is at its cap of ",
                                  options_.inbox_cap, "; acknowledge messages first"),
                     "agent", agent);
      }
      room--;
      row->state = pb::DELIVERY_STATE_QUEUED;
      row->state_changed_us = now_us;
      row->attempts = 0;
      row->dl_reason = 0;
      row->dl_detail.clear();
      row->dl_at_us = 0;
      CNET_RETURN_IF_ERROR(store_->UpdateDelivery(*row));
      StoredEntry s;
      s.row = *row;
      CNET_ASSIGN_OR_RETURN(s.message, store_->GetMessage(row->msg_rowid));
      requeued.push_back(std::move(s));
      r->set_outcome(pb::ITEM_OUTCOME_OK);
    }
    return absl::OkStatus();
  }));
  if (!requeued.empty()) {
    absl::MutexLock lock(&mu_);
    Inbox& inbox = InboxLocked(agent);
    for (StoredEntry& s : requeued) {
      inbox.dead_letters--;
      Entry e;
      e.seq = s.row.seq;
      e.msg = s.message;
      e.priority = s.row.priority;
      e.type = s.row.type;
      e.state = pb::DELIVERY_STATE_QUEUED;
      e.received_at = FromMicros(s.row.received_us);
      e.expires_at = FromMicros(s.row.expires_us);
      if (s.row.read_us != 0) e.read_at = FromMicros(s.row.read_us);
      AddEntryLocked(agent, inbox, std::move(e));
    }
    ArmExpiryLocked();
    PumpLocked(agent, inbox);
  }
  return resp;
}

absl::StatusOr<pb::GetThreadResponse> Gateway::GetThread(const Caller& caller,
                                                         const pb::GetThreadRequest& req) {
  if (caller.kind == Caller::Kind::kAnonymous) {
    return Error(absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED",
                 "authorization: this call needs a credential");
  }
  if (req.correlation_id().empty()) return Invalid("correlation_id", "required");
  if (req.correlation_id().size() > kMaxIdBytes) {
    return Invalid("correlation_id", "longer than 128 bytes");
  }
  CNET_ASSIGN_OR_RETURN(int page, PageSize(req.page_size()));
  // Agents see what they sent or received; admin and services see all.
  const std::string visible_to =
      caller.kind == Caller::Kind::kAgent ? caller.id : caller.acting_agent();
  const std::string fp = Fingerprint(absl::StrCat(req.correlation_id(), "/", visible_to));
  int64_t after_us = -1, after_rowid = 0;
  std::string after_id;
  if (!req.page_token().empty()) {
    CNET_ASSIGN_OR_RETURN(auto c, ParseToken(req.page_token(), "thread", fp, 3));
    if (!absl::SimpleAtoi(c[0], &after_us) || !absl::SimpleAtoi(c[2], &after_rowid)) {
      return Invalid("page_token", "cannot be decoded");
    }
    after_id = c[1];
  }
  std::vector<std::shared_ptr<const pb::Message>> msgs;
  std::vector<int64_t> rowids;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(msgs, store_->QueryThread(req.correlation_id(), visible_to, after_us,
                                                    after_id, after_rowid, page + 1, &rowids));
    return absl::OkStatus();
  }));
  pb::GetThreadResponse resp;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (static_cast<int>(i) >= page) {
      const pb::Message& last = *msgs[i - 1];
      resp.set_next_page_token(MakeToken(
          "thread", fp,
          {absl::StrCat(ToMicros(FromProto(last.accepted_at()))), last.id(),
           absl::StrCat(rowids[i - 1])}));
      break;
    }
    *resp.add_messages() = *msgs[i];
  }
  return resp;
}

// ---------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------

void Gateway::FillCounters(const std::string& scope, pb::MessageCounters* out) {
  const absl::Time now = clock_->Now();
  const int64_t second = absl::ToUnixSeconds(now);
  {
    absl::MutexLock lock(&stats_mu_);
    auto it = counters_.find(scope);
    if (it != counters_.end()) {
      const Counters& c = it->second;
      out->set_sent(c.v[kSent]);
      out->set_delivered(c.v[kDelivered]);
      out->set_redelivered(c.v[kRedelivered]);
      out->set_read(c.v[kRead]);
      out->set_acked(c.v[kAcked]);
      out->set_expired(c.v[kExpired]);
      out->set_dead_lettered(c.v[kDeadLettered]);
      out->set_duplicates(c.v[kDuplicates]);
      out->set_rejected(c.v[kRejected]);
      out->set_escalations(c.v[kEscalations]);
      out->set_remote_sent(c.v[kRemoteSent]);
      out->set_remote_received(c.v[kRemoteReceived]);
      for (const auto& [reason, n] : c.rejected) {
        if (n == 0) continue;
        pb::RejectCount* rc = out->add_rejected_by_reason();
        rc->set_reason(static_cast<pb::RejectReason>(reason));
        rc->set_count(n);
      }
      out->set_sent_per_second(c.sent_rate.PerSecond(second));
      out->set_delivered_per_second(c.delivered_rate.PerSecond(second));
    }
  }
  absl::MutexLock lock(&mu_);
  int64_t pending = 0, unread = 0, dead = 0;
  absl::Time oldest = absl::InfiniteFuture();
  auto add = [&](const Inbox& inbox) {
    for (const auto& [seq, e] : inbox.entries) {
      if (e.expires_at <= now) continue;
      pending++;
      if (e.state != pb::DELIVERY_STATE_READ) unread++;
      oldest = std::min(oldest, e.received_at);
    }
    dead += inbox.dead_letters;
  };
  if (scope.empty()) {
    for (const auto& [agent, inbox] : inboxes_) add(inbox);
  } else {
    auto it = inboxes_.find(scope);
    if (it != inboxes_.end()) add(it->second);
  }
  out->set_pending(pending);
  out->set_unread(unread);
  out->set_dead_letters(dead);
  if (oldest != absl::InfiniteFuture()) {
    *out->mutable_oldest_pending_age() = DurationProto(now - oldest);
  }
}

absl::StatusOr<pb::GetStatsResponse> Gateway::GetStats(const Caller& caller,
                                                       const pb::GetStatsRequest& req) {
  if (caller.kind == Caller::Kind::kAnonymous) {
    return Error(absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED",
                 "authorization: this call needs a credential");
  }
  CNET_ASSIGN_OR_RETURN(int page, PageSize(req.page_size()));
  if (!req.agent_id().empty()) {
    bool known = false;
    {
      absl::MutexLock lock(&stats_mu_);
      known = counters_.count(req.agent_id()) > 0;
    }
    if (!known) CNET_RETURN_IF_ERROR(RequireKnownAgent(req.agent_id()));
  }
  pb::GetStatsResponse resp;
  FillCounters(req.agent_id(), resp.mutable_totals());
  if (req.include_per_agent()) {
    const std::string fp = Fingerprint("per_agent");
    std::string after;
    if (!req.page_token().empty()) {
      CNET_ASSIGN_OR_RETURN(auto c, ParseToken(req.page_token(), "stats", fp, 1));
      after = c[0];
    }
    std::set<std::string> agents;
    {
      absl::MutexLock lock(&stats_mu_);
      for (const auto& [scope, c] : counters_) {
        if (!scope.empty() && scope > after) agents.insert(scope);
      }
    }
    std::map<std::string, int> subs;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [agent, inbox] : inboxes_) {
        if (agent > after) agents.insert(agent);
        subs[agent] = static_cast<int>(inbox.subscribers.size());
      }
    }
    int n = 0;
    for (const std::string& agent : agents) {
      if (n == page) {
        resp.set_next_page_token(MakeToken("stats", fp, {resp.per_agent(n - 1).agent_id()}));
        break;
      }
      pb::AgentMessageStats* s = resp.add_per_agent();
      s->set_agent_id(agent);
      FillCounters(agent, s->mutable_counters());
      s->set_subscribers(subs[agent]);
      n++;
    }
  }
  pb::FederationStatus* f = resp.mutable_federation();
  f->set_state(pb::FEDERATION_STATE_DISABLED);
  {
    absl::MutexLock lock(&mu_);
    f->set_outbox_depth(outbox_depth_);
  }
  {
    absl::MutexLock lock(&federation_mu_);
    if (federation_status_) federation_status_(f);
  }
  *resp.mutable_time() = ToProto(clock_->Now());
  return resp;
}

// ---------------------------------------------------------------------------
// Escalation
// ---------------------------------------------------------------------------

void Gateway::ArmEscalation(int64_t msg_rowid, absl::Time when) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  auto id = std::make_shared<Clock::TimerId>(0);
  *id = clock_->RunAt(when, Guarded([this, msg_rowid, id] {
    {
      absl::MutexLock lock(&mu_);
      escalation_timers_.erase(*id);
    }
    OnEscalationDue(msg_rowid);
  }));
  escalation_timers_.insert(*id);
}

void Gateway::OnEscalationDue(int64_t msg_rowid) {
  auto a = std::make_shared<Accepted>();
  const absl::Time now = clock_->Now();
  writer_->Submit(GroupCommitWriter::Job{
      [this, a, msg_rowid, now](sqlite::Database* db) -> absl::Status {
        CNET_ASSIGN_OR_RETURN(MessageRow original, store_->GetMessageRow(msg_rowid));
        const pb::Message& om = *original.message;
        if (original.escalated || absl::StartsWith(om.sender(), "svc:")) return absl::OkStatus();
        CNET_ASSIGN_OR_RETURN(auto rows, store_->DeliveriesOfMessage(msg_rowid, "", kMaxItems));
        auto m = std::make_shared<pb::Message>();
        auto& fields = *m->mutable_payload()->mutable_fields();
        fields["message_id"].set_string_value(om.id());
        auto* list = fields["recipients"].mutable_list_value();
        for (const DeliveryRow& r : rows) {
          if (r.state == pb::DELIVERY_STATE_ACKED) continue;
          auto& rec = *list->add_values()->mutable_struct_value()->mutable_fields();
          rec["agent_id"].set_string_value(r.recipient);
          rec["state"].set_string_value(
              pb::DeliveryState_Name(static_cast<pb::DeliveryState>(r.state)));
        }
        if (list->values_size() == 0) {
          // Everybody acknowledged in time: nothing to escalate.
          return store_->MarkEscalated(msg_rowid);
        }
        m->set_id(absl::AsciiStrToLower(ids_.Next("esc-")));
        m->set_sender("svc:macs");
        m->set_recipient(om.sender());
        m->set_type(pb::MESSAGE_TYPE_ESCALATION);
        m->set_subject(absl::StrCat("no acknowledgement of \"", om.id(), "\" from ",
                                    list->values_size(), " recipient(s) by the ack deadline"));
        m->set_priority(pb::PRIORITY_HIGH);
        m->set_correlation_id(om.id());
        *m->mutable_created_at() = ToProto(absl::FromUnixSeconds(absl::ToUnixSeconds(now)));
        *m->mutable_accepted_at() = ToProto(now);
        *m->mutable_expires_at() = ToProto(FromProto(m->created_at()) + options_.default_ttl);
        m->set_origin_node(options_.node);
        if (!options_.shared_secret.empty()) {
          CNET_ASSIGN_OR_RETURN(std::string sig, SignMessage(*m, options_.shared_secret));
          m->set_signature(sig);
        }
        pb::Provenance* p = m->mutable_provenance();
        p->set_sender("svc:macs");
        p->set_sender_kind(pb::PRINCIPAL_KIND_SYSTEM);
        p->set_origin_node(options_.node);
        p->set_hmac(options_.shared_secret.empty() ? pb::SIGNATURE_STATE_UNSIGNED
                                                   : pb::SIGNATURE_STATE_VERIFIED);
        p->set_transport(pb::TRANSPORT_LOCAL);
        p->add_relay_path(options_.node);
        AgentInfo to;
        to.id = om.sender();
        a->msg = std::move(m);
        a->recipients.push_back(to);
        a->scope = "svc:macs";
        a->escalation = true;
        a->escalated_rowid = msg_rowid;
        return PersistAccepted(a.get(), db);
      },
      [this, a](const absl::Status& st) {
        if (!st.ok()) {
          LOG(WARNING) << "escalation failed: " << st.message();
          UndoAccepted(a.get());
          return;
        }
        if (a->msg) ApplyAccepted(a.get());
      }});
}

// ---------------------------------------------------------------------------
// Federation seam
// ---------------------------------------------------------------------------

absl::StatusOr<std::vector<OutboxRow>> Gateway::PeekOutbox(int limit) {
  std::vector<OutboxRow> rows;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(rows, store_->PeekOutbox(limit));
    return absl::OkStatus();
  }));
  return rows;
}

absl::Status Gateway::MarkForwarded(const std::vector<int64_t>& outbox_ids) {
  const int64_t now_us = ToMicros(clock_->Now());
  int64_t done = 0;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    for (int64_t id : outbox_ids) {
      CNET_ASSIGN_OR_RETURN(std::optional<std::string> recipient, store_->OutboxRecipient(id));
      if (!recipient.has_value()) continue;  // already forwarded
      CNET_ASSIGN_OR_RETURN(std::optional<DeliveryRow> row, store_->GetDelivery(*recipient, -id));
      if (row.has_value() && row->state == pb::DELIVERY_STATE_QUEUED) {
        row->state = pb::DELIVERY_STATE_FORWARDED;
        row->state_changed_us = now_us;
        CNET_RETURN_IF_ERROR(store_->UpdateDelivery(*row));
      }
      CNET_RETURN_IF_ERROR(store_->DeleteOutbox(id));
      done++;
    }
    return absl::OkStatus();
  }));
  absl::MutexLock lock(&mu_);
  outbox_depth_ -= done;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Gateway::ApplyRemoteReceipt(const std::string& sender,
                                                    const std::string& message_id,
                                                    const std::string& node, bool delivered,
                                                    const std::string& detail) {
  const int64_t now_us = ToMicros(clock_->Now());
  int64_t changed = 0;
  CNET_RETURN_IF_ERROR(writer_->RunAndWait([&](sqlite::Database*) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(std::optional<MessageRow> m, store_->FindMessage(sender, message_id));
    if (!m.has_value()) return absl::OkStatus();  // pruned, or never ours
    std::string after;
    for (;;) {
      CNET_ASSIGN_OR_RETURN(std::vector<DeliveryRow> rows,
                            store_->DeliveriesOfMessage(m->rowid, after, 1000));
      if (rows.empty()) break;
      after = rows.back().recipient;
      for (DeliveryRow& r : rows) {
        if (!r.remote || r.node != node) continue;
        if (r.state != pb::DELIVERY_STATE_QUEUED && r.state != pb::DELIVERY_STATE_FORWARDED) {
          continue;
        }
        r.state_changed_us = now_us;
        if (delivered) {
          r.state = pb::DELIVERY_STATE_DELIVERED;
          if (r.first_delivered_us == 0) r.first_delivered_us = now_us;
          r.last_delivered_us = now_us;
        } else {
          r.state = pb::DELIVERY_STATE_DEAD_LETTERED;
          r.dl_reason = pb::DEAD_LETTER_REASON_REMOTE_UNDELIVERABLE;
          r.dl_detail = detail.substr(0, 512);
          r.dl_at_us = now_us;
        }
        CNET_RETURN_IF_ERROR(store_->UpdateDelivery(r));
        changed++;
      }
      if (rows.size() < 1000) break;
    }
    return absl::OkStatus();
  }));
  return changed;
}

void Gateway::SetOutboxListener(std::function<void()> fn) {
  absl::MutexLock lock(&federation_mu_);
  outbox_listener_ = std::move(fn);
}

void Gateway::SetFederationStatusSource(std::function<void(pb::FederationStatus*)> fill) {
  absl::MutexLock lock(&federation_mu_);
  federation_status_ = std::move(fill);
}

}  // namespace cnet::macs
