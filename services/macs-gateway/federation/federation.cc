#include "services/macs-gateway/federation/federation.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "nlohmann/json.hpp"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "libs/logging/logging.h"
#include "services/macs-gateway/canonical.h"
#include "services/macs-gateway/gateway.h"

namespace cnet::macs::federation {
namespace {

namespace pb = ::claudenet::v1;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kFence[] = "```json\n";

std::string JsonQuote(const std::string& s) { return absl::StrCat("\"", JsonEscape(s), "\""); }

std::string OneLine(absl::string_view s) {
  std::string out(s.substr(0, 300));
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

std::string Seq20(int64_t seq) { return absl::StrFormat("%020d", seq); }

absl::StatusOr<Struct> ParseObject(const std::string& text) {
  Struct s;
  google::protobuf::util::JsonParseOptions opts;
  auto st = google::protobuf::util::JsonStringToMessage(text, &s, opts);
  if (!st.ok()) return absl::InvalidArgumentError(OneLine(std::string(st.message())));
  return s;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

const Value* Field(const Struct& s, const char* name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}
std::string StringField(const Struct& s, const char* name) {
  const Value* v = Field(s, name);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
}
// A non-negative integral number field, -1 when absent or not one.
int64_t IntField(const Struct& s, const char* name) {
  const Value* v = Field(s, name);
  if (v == nullptr || v->kind_case() != Value::kNumberValue) return -1;
  double d = v->number_value();
  if (!(d >= 0) || d > 9007199254740992.0 || std::floor(d) != d) return -1;
  return static_cast<int64_t>(d);
}

bool ValidNode(const std::string& n) {
  if (n.empty() || n.size() > 128) return false;
  for (unsigned char c : n) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool Transient(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kAborted ||
         code == absl::StatusCode::kInternal || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted || code == absl::StatusCode::kUnknown;
}

std::string RejectReasonOf(const absl::Status& st) {
  auto payload = st.GetPayload(kErrorDetailPayload);
  if (payload.has_value()) {
    pb::ErrorDetail d;
    if (d.ParseFromString(std::string(*payload)) && !d.reason().empty()) return d.reason();
  }
  return absl::StatusCodeToString(st.code());
}

}  // namespace

struct Federation::Envelope {
  std::string dest;
  int64_t msg_rowid = 0;
  int64_t seq = 0;
  int64_t prev = 0;
  std::vector<int64_t> outbox_ids;
  std::vector<std::string> recipients;
  std::shared_ptr<const pb::Message> message;
  std::string json;

  void Render(const std::string& origin) {
    std::vector<std::string> quoted;
    for (const std::string& r : recipients) quoted.push_back(JsonQuote(r));
    json = absl::StrCat("{\"v\":1,\"origin\":", JsonQuote(origin), ",\"dest\":", JsonQuote(dest),
                        ",\"seq\":", seq, ",\"prev\":", prev, ",\"recipients\":[",
                        absl::StrJoin(quoted, ","), "],\"message\":", ToJson(*message), "}");
  }
};

Federation::Federation(FederationOptions options, Clock* clock, Gateway* gateway,
                       RealtimeDb* db, IssueTracker* issues)
    : options_(std::move(options)), clock_(clock), gateway_(gateway), db_(db), issues_(issues) {
  absl::MutexLock lock(&mu_);
  rng_.seed(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device()());
}

Federation::~Federation() { Stop(); }

pb::FederationState Federation::state() {
  absl::MutexLock lock(&mu_);
  return StateLocked(clock_->Now());
}

pb::FederationState Federation::StateLocked(absl::Time now) {
  if (db_ == nullptr) {
    // GitHub alone (no Firebase) carries everything.
    return issues_ == nullptr ? pb::FEDERATION_STATE_DISABLED : pb::FEDERATION_STATE_FALLBACK;
  }
  if (firebase_.failing_since == absl::InfinitePast()) return pb::FEDERATION_STATE_CONNECTED;
  if (issues_ != nullptr && now - firebase_.failing_since >= options_.fallback_after) {
    return pb::FEDERATION_STATE_FALLBACK;
  }
  return pb::FEDERATION_STATE_QUEUED;
}

void Federation::AddTickHook(std::string name, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  hooks_.emplace_back(std::move(name), std::move(fn));
}

void Federation::Nudge() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void Federation::ReportFirebase(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  Report(firebase_, status, clock_->Now());
}

void Federation::SetStreamConnected(bool connected) {
  absl::MutexLock lock(&mu_);
  stream_connected_ = connected;
}

bool Federation::FirebaseDue(absl::Time now) { return firebase_.next_try <= now; }

void Federation::Report(Medium& m, const absl::Status& st, absl::Time now) {
  if (st.ok()) {
    if (m.failing_since != absl::InfinitePast()) {
      LOG(INFO) << "federation: " << (&m == &firebase_ ? "Firebase" : "GitHub")
                << " recovered after " << absl::FormatDuration(now - m.failing_since);
    }
    m.failing_since = absl::InfinitePast();
    m.failures = 0;
    m.next_try = absl::InfinitePast();
    m.last_success = now;
    return;
  }
  if (m.failing_since == absl::InfinitePast()) m.failing_since = now;
  m.failures++;
  m.last_error = OneLine(st.ToString());
  double cap = absl::ToDoubleSeconds(options_.backoff_base) *
               std::pow(options_.backoff_factor, std::min(m.failures - 1, 60));
  cap = std::min(cap, absl::ToDoubleSeconds(options_.backoff_max));
  std::uniform_real_distribution<double> jitter(0, cap);
  m.next_try = now + absl::Seconds(jitter(rng_));
  // A server-given wait (GitHub retry-after / rate-limit reset) wins.
  for (const char* key : {"type.claudenet/github.retry_after_ms"}) {
    auto p = st.GetPayload(key);
    int64_t ms = 0;
    if (p.has_value() && absl::SimpleAtoi(std::string(*p), &ms) && ms > 0) {
      m.next_try = std::max(m.next_try, now + absl::Milliseconds(ms));
    }
  }
  if (&m == &firebase_) {
    counters_.firebase_failures++;
  } else {
    counters_.github_failures++;
  }
  LOG_EVERY_N(WARNING, 20) << "federation: " << (&m == &firebase_ ? "Firebase" : "GitHub")
                           << " failing (" << m.failures << " in a row): " << m.last_error;
}

// ---------------------------------------------------------------------------
// Outgoing
// ---------------------------------------------------------------------------

absl::StatusOr<int64_t> Federation::PumpOnce() {
  int64_t handed = 0;
  for (int round = 0; round < 1000; round++) {
    absl::StatusOr<std::vector<OutboxRow>> peeked =
        gateway_->PeekOutbox(std::max(1, options_.batch_max_messages));
    if (!peeked.ok()) return peeked.status();
    const std::vector<OutboxRow>& rows = *peeked;
    const absl::Time now = clock_->Now();
    bool use_firebase = false;
    bool use_github = false;
    {
      absl::MutexLock lock(&mu_);
      queue_oldest_ = rows.empty() ? absl::InfiniteFuture() : FromMicros(rows.front().created_us);
      if (rows.empty()) break;
      const pb::FederationState st = StateLocked(now);
      if (st == pb::FEDERATION_STATE_DISABLED) break;
      if (st == pb::FEDERATION_STATE_FALLBACK) {
        use_github = github_.next_try <= now;
      } else {
        use_firebase = FirebaseDue(now);
      }
    }
    if (!use_firebase && !use_github) break;

    // Group the copies: one envelope per (message, destination node).
    std::vector<Envelope> envs;
    std::map<std::pair<int64_t, std::string>, size_t> index;
    for (const OutboxRow& r : rows) {
      auto key = std::make_pair(r.msg_rowid, r.node);
      auto it = index.find(key);
      if (it == index.end()) {
        index[key] = envs.size();
        Envelope e;
        e.dest = r.node;
        e.msg_rowid = r.msg_rowid;
        e.seq = r.id;
        e.message = r.message;
        envs.push_back(std::move(e));
        it = index.find(key);
      }
      Envelope& e = envs[it->second];
      e.outbox_ids.push_back(r.id);
      e.recipients.push_back(r.recipient);
    }
    std::map<std::string, int64_t> chain;
    {
      absl::MutexLock lock(&mu_);
      chain = last_sent_;
    }
    int64_t bytes = 0;
    size_t take = 0;
    const int64_t byte_cap = use_github ? options_.github_max_body_bytes : options_.batch_max_bytes;
    for (; take < envs.size(); take++) {
      Envelope& e = envs[take];
      e.prev = chain[e.dest];
      e.Render(options_.node);
      if (take > 0 && bytes + static_cast<int64_t>(e.json.size()) > byte_cap) break;
      bytes += static_cast<int64_t>(e.json.size()) + 64;
      chain[e.dest] = e.seq;
    }
    envs.resize(take);

    absl::Status sent;
    if (use_firebase) {
      std::map<std::string, std::string> writes;
      for (const Envelope& e : envs) {
        writes[absl::StrCat("messages/", EscapeKey(e.dest), "/", EscapeKey(options_.node), "-",
                            Seq20(e.seq))] = e.json;
      }
      sent = db_->Update(writes);
      absl::MutexLock lock(&mu_);
      Report(firebase_, sent, clock_->Now());
      if (sent.ok()) counters_.envelopes_sent_firebase += static_cast<int64_t>(envs.size());
    } else {
      // One issue per destination node of this batch, in order.
      std::map<std::string, std::vector<const Envelope*>> by_dest;
      for (const Envelope& e : envs) by_dest[e.dest].push_back(&e);
      std::vector<Envelope> done;
      for (const auto& [dest, list] : by_dest) {
        std::vector<std::string> parts;
        for (const Envelope* e : list) parts.push_back(e->json);
        std::string body = absl::StrCat(
            "Messages from node `", options_.node, "` to node `", dest,
            "` carried by the Claude Network federation fallback (Firebase unavailable). "
            "The receiving gateway validates, delivers, comments and closes this issue.\n\n",
            kFence, "{\"envelopes\":[", absl::StrJoin(parts, ","), "]}\n```\n");
        std::vector<std::string> labels = options_.github_labels;
        labels.push_back(absl::StrCat("cnet-to:", dest).substr(0, 50));
        std::string title = absl::StrCat("cnet ", options_.node, " -> ", dest, ": ", list.size(),
                                         " message(s), seq ", list.front()->seq, "..",
                                         list.back()->seq);
        absl::StatusOr<int64_t> n = issues_->Create(title, body, labels);
        {
          absl::MutexLock lock(&mu_);
          Report(github_, n.status(), clock_->Now());
          if (n.ok()) {
            counters_.issues_created++;
            counters_.envelopes_sent_github += static_cast<int64_t>(list.size());
          }
        }
        if (!n.ok()) {
          sent = n.status();
          break;
        }
        for (const Envelope* e : list) done.push_back(*e);
      }
      if (!sent.ok()) envs = std::move(done);
    }
    if (envs.empty()) {
      if (!sent.ok()) break;
      continue;
    }
    if (use_firebase && !sent.ok()) break;
    std::vector<int64_t> ids;
    for (const Envelope& e : envs) ids.insert(ids.end(), e.outbox_ids.begin(), e.outbox_ids.end());
    absl::Status marked = gateway_->MarkForwarded(ids);
    if (!marked.ok()) return marked;  // re-sent later with the same keys: deduped
    {
      absl::MutexLock lock(&mu_);
      for (const Envelope& e : envs) last_sent_[e.dest] = e.seq;
    }
    handed += static_cast<int64_t>(ids.size());
    if (!sent.ok()) break;
  }
  return handed;
}

// ---------------------------------------------------------------------------
// Incoming
// ---------------------------------------------------------------------------

void Federation::CountReject(const std::string& reason, const std::string& detail) {
  absl::MutexLock lock(&mu_);
  counters_.rejected++;
  counters_.rejected_by_reason[reason]++;
  LOG_EVERY_N(WARNING, 1) << "federation: rejected a remote message (" << reason
                          << "): " << OneLine(detail);
}

Federation::Outcome Federation::Prepare(const std::string& text, const std::string& firebase_key,
                                        std::map<std::string, std::string>* writes,
                                        const std::map<std::string, int64_t>& planned,
                                        Pending* p) {
  const absl::Time now = clock_->Now();
  p->key = firebase_key;
  auto ack = [&] {
    if (!firebase_key.empty()) {
      (*writes)[absl::StrCat("messages/", EscapeKey(options_.node), "/", firebase_key)] = "null";
    }
  };
  if (static_cast<int64_t>(text.size()) > options_.max_envelope_bytes) {
    CountReject("OVERSIZE", absl::StrCat("envelope ", firebase_key, " is ", text.size(),
                                         " bytes; the limit is ", options_.max_envelope_bytes));
    ack();
    return Outcome::kDone;
  }
  std::string why;
  pb::Message& msg = p->msg;
  std::string& origin = p->origin;
  int64_t& seq = p->seq;
  int64_t prev = -1;
  // nlohmann for the envelope (fast), protobuf JSON once for the message.
  nlohmann::json env = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto str = [&](const char* k) {
    auto it = env.find(k);
    return it != env.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* k) -> int64_t {
    auto it = env.find(k);
    if (it == env.end() || !it->is_number_integer()) return -1;
    if (it->is_number_unsigned()) {
      uint64_t u = it->get<uint64_t>();
      return u > (uint64_t{1} << 53) ? -1 : static_cast<int64_t>(u);
    }
    int64_t v = it->get<int64_t>();
    return v < 0 ? -1 : v;
  };
  if (env.is_discarded() || !env.is_object()) {
    why = "envelope is not a JSON object";
  } else {
    origin = str("origin");
    seq = num("seq");
    prev = num("prev");
    auto m = env.find("message");
    if (num("v") != 1) {
      why = "envelope.v must be 1";
    } else if (!ValidNode(origin) || origin == options_.node) {
      why = absl::StrCat("envelope.origin \"", OneLine(origin), "\" is not another node");
    } else if (str("dest") != options_.node) {
      why = absl::StrCat("envelope.dest \"", OneLine(str("dest")), "\" is not this node");
    } else if (seq <= 0 || prev < 0) {
      why = "envelope.seq / envelope.prev must be integers (seq > 0)";
    } else if (m == env.end() || !m->is_object()) {
      why = "envelope.message must be an object";
    } else {
      google::protobuf::util::JsonParseOptions opts;
      opts.ignore_unknown_fields = true;
      auto st = google::protobuf::util::JsonStringToMessage(m->dump(), &msg, opts);
      if (!st.ok()) why = absl::StrCat("envelope.message: ", OneLine(std::string(st.message())));
    }
  }
  if (!why.empty()) {
    CountReject("MALFORMED", why);
    ack();
    return Outcome::kDone;
  }
  const std::string hold_key = absl::StrCat(origin, "-", seq);
  {
    absl::MutexLock lock(&mu_);
    last_seen_[origin] = now;
    auto la = last_applied_.find(origin);
    int64_t applied = la == last_applied_.end() ? -1 : la->second;
    auto pl = planned.find(origin);
    if (pl != planned.end()) applied = std::max(applied, pl->second);
    // Wait for the predecessor unless it was applied, or it can only come
    // through the other medium and has been waited for long enough.
    bool missing = prev > 0 && seq > applied && prev > applied;
    if (missing && applied < 0 && issues_ == nullptr) missing = false;  // single medium
    if (missing) {
      auto [it, fresh] = held_since_.emplace(hold_key, now);
      if (now - it->second < options_.hold_timeout) return Outcome::kWait;
      LOG(WARNING) << "federation: envelope " << hold_key << " waited "
                   << absl::FormatDuration(now - it->second) << " for its predecessor " << prev
                   << "; applying it";
    }
  }
  return Outcome::kAccept;
}

Federation::Outcome Federation::Finish(Pending& p, pb::Transport transport,
                                       std::map<std::string, std::string>* writes) {
  const absl::Time now = clock_->Now();
  const std::string& firebase_key = p.key;
  const pb::Message& msg = p.msg;
  const std::string& origin = p.origin;
  const int64_t seq = p.seq;
  const std::string hold_key = absl::StrCat(origin, "-", seq);
  const absl::StatusOr<pb::SendResponse>& r = p.result;
  (void)transport;
  auto ack = [&] {
    if (!firebase_key.empty()) {
      (*writes)[absl::StrCat("messages/", EscapeKey(options_.node), "/", firebase_key)] = "null";
    }
  };
  if (!r.ok() && Transient(r.status().code())) {
    absl::MutexLock lock(&mu_);
    LOG_EVERY_N(WARNING, 20) << "federation: remote message " << msg.id() << " from " << origin
                             << " will be retried: " << r.status();
    return Outcome::kWait;
  }
  std::string receipt;
  const std::string at = absl::StrCat(absl::ToUnixMillis(now));
  if (r.ok()) {
    std::vector<std::string> ids;
    for (const pb::RecipientDelivery& d : r->deliveries()) ids.push_back(JsonQuote(d.agent_id()));
    receipt = absl::StrCat("{\"message_id\":", JsonQuote(msg.id()), ",\"sender\":",
                           JsonQuote(msg.sender()), ",\"node\":", JsonQuote(options_.node),
                           ",\"state\":\"DELIVERED\",\"recipients\":[", absl::StrJoin(ids, ","),
                           "],\"seq\":", seq, ",\"at\":", at, "}");
    absl::MutexLock lock(&mu_);
    if (r->duplicate()) {
      counters_.duplicates++;
    } else {
      counters_.accepted++;
    }
  } else {
    const std::string reason = RejectReasonOf(r.status());
    CountReject(reason, absl::StrCat("message \"", msg.id(), "\" from node \"", origin,
                                     "\": ", r.status().message()));
    receipt = absl::StrCat("{\"message_id\":", JsonQuote(msg.id()), ",\"sender\":",
                           JsonQuote(msg.sender()), ",\"node\":", JsonQuote(options_.node),
                           ",\"state\":\"REJECTED\",\"reason\":",
                           JsonQuote(absl::StrCat(reason, ": ", OneLine(r.status().message()))),
                           ",\"seq\":", seq, ",\"at\":", at, "}");
  }
  const std::string receipt_path = absl::StrCat("receipts/", EscapeKey(origin), "/",
                                                EscapeKey(options_.node), "-", Seq20(seq));
  {
    absl::MutexLock lock(&mu_);
    int64_t& la = last_applied_[origin];
    la = std::max(la, seq);
    held_since_.erase(hold_key);
    if (firebase_key.empty()) pending_receipts_[receipt_path] = receipt;
  }
  if (!firebase_key.empty()) {
    (*writes)[receipt_path] = receipt;
    ack();
  }
  return Outcome::kDone;
}

Federation::Outcome Federation::Accept(const std::string& text, pb::Transport transport,
                                       const std::string& firebase_key,
                                       std::map<std::string, std::string>* writes,
                                       std::string* origin_out) {
  Pending p;
  Outcome o = Prepare(text, firebase_key, writes, {}, &p);
  if (origin_out != nullptr) *origin_out = p.origin;
  if (o != Outcome::kAccept) return o;
  p.result = gateway_->AcceptRemote(p.msg, transport, p.origin);
  return Finish(p, transport, writes);
}

absl::Status Federation::FlushPendingReceipts() {
  std::map<std::string, std::string> writes;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [k, v] : pending_receipts_) {
      writes[k] = v;
      if (writes.size() >= 500) break;
    }
  }
  if (writes.empty()) return absl::OkStatus();
  absl::Status st = db_->Update(writes);
  absl::MutexLock lock(&mu_);
  Report(firebase_, st, clock_->Now());
  if (st.ok()) {
    for (const auto& [k, v] : writes) pending_receipts_.erase(k);
  }
  return st;
}

absl::Status Federation::ApplyReceipts() {
  const std::string base = absl::StrCat("receipts/", EscapeKey(options_.node));
  for (int round = 0; round < 100; round++) {
    absl::StatusOr<std::map<std::string, std::string>> children =
        db_->Children(base, std::max(1, options_.batch_max_messages));
    {
      absl::MutexLock lock(&mu_);
      Report(firebase_, children.status(), clock_->Now());
    }
    if (!children.ok()) return children.status();
    if (children->empty()) return absl::OkStatus();
    std::map<std::string, std::string> writes;
    for (const auto& [key, text] : *children) {
      absl::StatusOr<Struct> r = ParseObject(text);
      if (r.ok()) {
        const std::string state = StringField(*r, "state");
        const std::string node = StringField(*r, "node");
        if (ValidNode(node) && (state == "DELIVERED" || state == "REJECTED")) {
          absl::StatusOr<int64_t> n = gateway_->ApplyRemoteReceipt(
              StringField(*r, "sender"), StringField(*r, "message_id"), node,
              state == "DELIVERED", StringField(*r, "reason"));
          if (!n.ok()) return n.status();  // receipt stays; retried
          absl::MutexLock lock(&mu_);
          counters_.receipts_applied++;
          last_seen_[node] = clock_->Now();
        } else {
          LOG(WARNING) << "federation: ignoring malformed receipt " << key;
        }
      } else {
        LOG(WARNING) << "federation: ignoring malformed receipt " << key << ": " << r.status();
      }
      writes[absl::StrCat(base, "/", key)] = "null";
    }
    absl::Status st = db_->Update(writes);
    {
      absl::MutexLock lock(&mu_);
      Report(firebase_, st, clock_->Now());
    }
    if (!st.ok()) return st;
    if (static_cast<int>(children->size()) < options_.batch_max_messages) break;
  }
  return absl::OkStatus();
}

absl::Status Federation::PollFirebaseOnce() {
  if (db_ == nullptr) return absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    if (!FirebaseDue(clock_->Now())) return absl::OkStatus();
    firebase_last_poll_ = clock_->Now();
  }
  absl::Status flushed = FlushPendingReceipts();
  if (!flushed.ok()) return flushed;
  const std::string base = absl::StrCat("messages/", EscapeKey(options_.node));
  for (int round = 0; round < 1000; round++) {
    absl::StatusOr<std::map<std::string, std::string>> children =
        db_->Children(base, std::max(1, options_.batch_max_messages));
    {
      absl::MutexLock lock(&mu_);
      Report(firebase_, children.status(), clock_->Now());
    }
    if (!children.ok()) return children.status();
    // Envelopes are prepared in key order, then accepted concurrently (the
    // group-commit writer batches them; inbox order = submission order),
    // then finished in order.
    std::map<std::string, std::string> writes;
    std::set<std::string> blocked;
    std::map<std::string, int64_t> planned;
    std::vector<std::unique_ptr<Pending>> batch;
    for (const auto& [key, text] : *children) {
      // The origin is the key up to its last '-' (escaped node name).
      const std::string key_origin = key.substr(0, key.rfind('-'));
      if (blocked.count(key_origin) > 0) continue;
      auto p = std::make_unique<Pending>();
      Outcome o = Prepare(text, key, &writes, planned, p.get());
      if (o == Outcome::kWait) blocked.insert(key_origin);
      if (o != Outcome::kAccept) continue;
      int64_t& pl = planned[p->origin];
      pl = std::max(pl, p->seq);
      batch.push_back(std::move(p));
    }
    absl::BlockingCounter pending(static_cast<int>(batch.size()));
    for (auto& p : batch) {
      Pending* raw = p.get();
      gateway_->AcceptRemoteAsync(raw->msg, pb::TRANSPORT_FIREBASE, raw->origin,
                                  [raw, &pending](absl::StatusOr<pb::SendResponse> r) {
                                    raw->result = std::move(r);
                                    pending.DecrementCount();
                                  });
    }
    pending.Wait();
    for (auto& p : batch) {
      if (blocked.count(p->origin) > 0) continue;  // after a transient failure: next pass
      if (Finish(*p, pb::TRANSPORT_FIREBASE, &writes) == Outcome::kWait) blocked.insert(p->origin);
    }
    if (writes.empty()) break;
    absl::Status st = db_->Update(writes);
    {
      absl::MutexLock lock(&mu_);
      Report(firebase_, st, clock_->Now());
    }
    if (!st.ok()) return st;
    if (static_cast<int>(children->size()) < options_.batch_max_messages) break;
  }
  return ApplyReceipts();
}

absl::Status Federation::PollGitHubOnce() {
  if (issues_ == nullptr) return absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    if (github_.next_try > clock_->Now()) return absl::OkStatus();
    github_last_poll_ = clock_->Now();
  }
  std::vector<std::string> labels = options_.github_labels;
  labels.push_back(absl::StrCat("cnet-to:", options_.node).substr(0, 50));
  absl::StatusOr<std::vector<Issue>> list = issues_->ListOpen(labels);
  {
    absl::MutexLock lock(&mu_);
    Report(github_, list.status(), clock_->Now());
  }
  if (!list.ok()) return list.status();
  std::set<std::string> blocked;
  for (const Issue& issue : *list) {
    size_t start = issue.body.find(kFence);
    size_t end = start == std::string::npos
                     ? std::string::npos
                     : issue.body.find("\n```", start + sizeof(kFence) - 1);
    std::string why;
    std::vector<std::string> texts;
    if (end == std::string::npos) {
      why = "no ```json fenced block in the issue body";
    } else {
      absl::StatusOr<Struct> doc =
          ParseObject(issue.body.substr(start + sizeof(kFence) - 1,
                                        end - (start + sizeof(kFence) - 1)));
      const Value* envs = doc.ok() ? Field(*doc, "envelopes") : nullptr;
      if (!doc.ok()) {
        why = absl::StrCat("fenced block is not a JSON object: ", doc.status().message());
      } else if (envs == nullptr || envs->kind_case() != Value::kListValue) {
        why = "fenced block has no \"envelopes\" list";
      } else {
        for (const Value& v : envs->list_value().values()) {
          texts.push_back(v.kind_case() == Value::kStructValue ? ToJson(v.struct_value())
                                                               : std::string("[]"));
        }
      }
    }
    if (!why.empty()) {
      CountReject("MALFORMED", absl::StrCat("GitHub issue #", issue.number, ": ", why));
      absl::Status st = issues_->CommentAndClose(
          issue.number, absl::StrCat("Rejected by node `", options_.node, "`: ", why));
      absl::MutexLock lock(&mu_);
      Report(github_, st, clock_->Now());
      continue;
    }
    bool complete = true;
    int64_t before_accepted, before_rejected, before_dup;
    {
      absl::MutexLock lock(&mu_);
      before_accepted = counters_.accepted;
      before_rejected = counters_.rejected;
      before_dup = counters_.duplicates;
    }
    for (const std::string& text : texts) {
      std::string origin;
      if (Accept(text, pb::TRANSPORT_GITHUB, "", nullptr, &origin) == Outcome::kWait) {
        complete = false;
        blocked.insert(origin);
        break;
      }
    }
    if (!complete) continue;  // the issue stays open; its rest is retried
    std::string summary;
    {
      absl::MutexLock lock(&mu_);
      summary = absl::StrCat("Delivered by node `", options_.node, "`: ",
                             counters_.accepted - before_accepted, " accepted, ",
                             counters_.duplicates - before_dup, " duplicate(s), ",
                             counters_.rejected - before_rejected, " rejected.");
    }
    absl::Status st = issues_->CommentAndClose(issue.number, summary);
    absl::MutexLock lock(&mu_);
    Report(github_, st, clock_->Now());
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

void Federation::TickOnce() {
  absl::MutexLock step(&step_mu_);
  absl::StatusOr<int64_t> pumped = PumpOnce();
  if (!pumped.ok()) {
    LOG_EVERY_N(WARNING, 20) << "federation: outbox: " << pumped.status();
  }
  (void)PollFirebaseOnce();
  bool github_due = false;
  {
    absl::MutexLock lock(&mu_);
    github_due = issues_ != nullptr &&
                 clock_->Now() - github_last_poll_ >= options_.github_poll_interval;
  }
  if (github_due) (void)PollGitHubOnce();
  std::vector<std::pair<std::string, std::function<void()>>> hooks;
  {
    absl::MutexLock lock(&mu_);
    hooks = hooks_;
  }
  for (auto& [name, fn] : hooks) fn();
}

void Federation::ScheduleLocked(absl::Time when) {
  if (timer_ != 0 && timer_at_ <= when) return;
  if (timer_ != 0) clock_->Cancel(timer_);
  timer_at_ = when;
  timer_ = clock_->RunAt(when, [this, life = life_] {
    absl::MutexLock alive(&life->mu);
    if (!life->alive) return;
    absl::MutexLock lock(&mu_);
    timer_ = 0;
    timer_at_ = absl::InfiniteFuture();
    wake_ = true;
  });
}

void Federation::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stop_) return;
  started_ = true;
  wake_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Federation::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Federation* f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(f->mu_) { return f->wake_ || f->stop_; },
          this));
      if (stop_) return;
      wake_ = false;
    }
    TickOnce();
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    absl::Time next = now + options_.poll_interval;
    if (firebase_.next_try > now) next = std::min(next, firebase_.next_try);
    if (issues_ != nullptr) {
      next = std::min(next, std::max(now, github_last_poll_ + options_.github_poll_interval));
      if (github_.next_try > now) next = std::min(next, github_.next_try);
    }
    ScheduleLocked(next);
  }
}

void Federation::Stop() {
  {
    absl::MutexLock lock(&life_->mu);
    life_->alive = false;  // a timer callback running now finishes first
  }
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  if (timer_ != 0) {
    clock_->Cancel(timer_);
    timer_ = 0;
  }
}

// ---------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------

FederationCounters Federation::counters() {
  absl::MutexLock lock(&mu_);
  return counters_;
}

absl::Time Federation::next_retry_at() {
  absl::MutexLock lock(&mu_);
  return firebase_.next_try;
}

void Federation::FillStatus(pb::FederationStatus* f) {
  using google::protobuf::util::TimeUtil;
  auto ts = [](absl::Time t, google::protobuf::Timestamp* out) {
    *out = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
  };
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  f->set_state(StateLocked(now));
  f->set_firebase_stream_connected(stream_connected_);
  if (firebase_.last_success != absl::InfinitePast()) {
    ts(firebase_.last_success, f->mutable_firebase_last_success());
  }
  if (firebase_.failing_since != absl::InfinitePast()) {
    ts(firebase_.failing_since, f->mutable_firebase_failing_since());
    f->set_firebase_last_error(firebase_.last_error);
  }
  f->set_github_configured(issues_ != nullptr);
  if (github_last_poll_ != absl::InfinitePast()) ts(github_last_poll_, f->mutable_github_last_poll());
  f->set_github_rate_limit_remaining(-1);
  if (github_.failing_since != absl::InfinitePast()) f->set_github_last_error(github_.last_error);
  f->set_offline_queue_depth(f->outbox_depth());
  if (f->outbox_depth() > 0 && queue_oldest_ != absl::InfiniteFuture()) {
    *f->mutable_offline_queue_oldest_age() =
        TimeUtil::MicrosecondsToDuration(absl::ToInt64Microseconds(now - queue_oldest_));
  }
  for (const auto& [node, seen] : last_seen_) {
    pb::RemoteNode* n = f->add_remote_nodes();
    n->set_node(node);
    ts(seen, n->mutable_last_seen());
  }
  if (firebase_.next_try > now) ts(firebase_.next_try, f->mutable_next_retry_at());
}

// ---------------------------------------------------------------------------
// Seed offline queue import
// ---------------------------------------------------------------------------

absl::StatusOr<int> Federation::ImportOfflineQueue(const std::string& path,
                                                   const std::string& secret) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  // Accept a top-level array by wrapping it.
  std::string trimmed(absl::StripAsciiWhitespace(text));
  if (!trimmed.empty() && trimmed[0] == '[') trimmed = absl::StrCat("{\"messages\":", trimmed, "}");
  absl::StatusOr<Struct> doc = ParseObject(trimmed);
  if (!doc.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a JSON array or object: ", doc.status().message()));
  }
  const Value* list = Field(*doc, "messages");
  if (list == nullptr) list = Field(*doc, "queue");
  if (list == nullptr || list->kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected an array, or an object with a \"messages\" or \"queue\" array"));
  }
  int imported = 0;
  int index = 0;
  for (const Value& v : list->list_value().values()) {
    const int i = index++;
    if (v.kind_case() != Value::kStructValue) {
      LOG(WARNING) << path << ": entry " << i << " is not an object; skipped";
      continue;
    }
    const Struct* e = &v.struct_value();
    if (const Value* inner = Field(*e, "message");
        inner != nullptr && inner->kind_case() == Value::kStructValue) {
      e = &inner->struct_value();
    }
    auto first = [&](std::initializer_list<const char*> names) {
      for (const char* n : names) {
        std::string s = StringField(*e, n);
        if (!s.empty()) return s;
      }
      return std::string();
    };
    pb::Message m;
    m.set_id(first({"id", "message_id"}));
    m.set_sender(first({"sender", "from", "from_agent", "sender_id"}));
    m.set_recipient(first({"recipient", "to", "to_agent", "recipient_id"}));
    m.set_subject(first({"subject", "title"}));
    m.set_body(first({"body", "content", "text"}));
    std::string type = absl::AsciiStrToUpper(first({"type", "message_type"}));
    pb::MessageType t;
    if (!type.empty() && pb::MessageType_Parse(absl::StrCat("MESSAGE_TYPE_", type), &t)) {
      m.set_type(t);
    }
    const Value* payload = Field(*e, "payload");
    if (payload == nullptr) payload = Field(*e, "data");
    if (payload != nullptr && payload->kind_case() == Value::kStructValue) {
      *m.mutable_payload() = payload->struct_value();
    }
    if (m.id().empty()) m.set_id(absl::StrCat("seed-import-", i));
    if (m.sender().empty() || m.recipient().empty()) {
      LOG(WARNING) << path << ": entry " << i << " has no sender or recipient; skipped";
      continue;
    }
    *m.mutable_created_at() = google::protobuf::util::TimeUtil::SecondsToTimestamp(
        absl::ToUnixSeconds(clock_->Now()));
    if (!secret.empty()) {
      absl::StatusOr<std::string> sig = SignMessage(m, secret);
      if (!sig.ok()) {
        LOG(WARNING) << path << ": entry " << i << ": " << sig.status();
        continue;
      }
      m.set_signature(*sig);
    }
    pb::SendRequest req;
    *req.mutable_message() = m;
    absl::StatusOr<pb::SendResponse> r = gateway_->SendAndWait(Caller::Service(m.sender()), req);
    if (!r.ok()) {
      LOG(WARNING) << path << ": entry " << i << " (" << m.id() << ") not imported: " << r.status();
      continue;
    }
    imported++;
  }
  return imported;
}

}  // namespace cnet::macs::federation
