#include "services/registry/registry.h"

#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <queue>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "libs/crypto/crypto.h"
#include "libs/status/macros.h"
#include "services/registry/agent_card.h"
#include "services/registry/validation.h"

namespace cnet::registry {
namespace pb = claudenet::v1;
using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::TimeUtil;

namespace {

constexpr char kTokenPrefix[] = "cnt_";
// Error-rate windows: judged once this many messages + errors accumulated,
// or after this many heartbeat intervals, whichever comes first.
constexpr int64_t kMinRateSample = 10;
constexpr int kRateWindowIntervals = 10;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}
absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(t));
}
google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

std::string Seconds(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Seconds(d), "s");
}

absl::Status WithPayload(absl::Status status, const char* key, std::string value) {
  status.SetPayload(key, absl::Cord(value));
  return status;
}

absl::Status AgentNotFound(std::string_view id) {
  return WithPayload(
      absl::NotFoundError(absl::StrCat("agent ", Quote(id), ": not found")),
      kReasonPayload, "AGENT_NOT_FOUND");
}

pb::Principal ToPrincipal(const Actor* actor, std::string_view system_component) {
  pb::Principal p;
  if (actor == nullptr) {
    p.set_kind(pb::PRINCIPAL_KIND_SYSTEM);
    p.set_id(absl::StrCat("system:", std::string(system_component)));
    return p;
  }
  switch (actor->kind) {
    case Actor::Kind::kAgent:
      p.set_kind(pb::PRINCIPAL_KIND_AGENT);
      p.set_id(actor->id);
      break;
    case Actor::Kind::kService:
      p.set_kind(pb::PRINCIPAL_KIND_SERVICE);
      p.set_id("svc:service");
      p.set_on_behalf_of(actor->on_behalf_of);
      break;
    case Actor::Kind::kAdmin:
      p.set_kind(pb::PRINCIPAL_KIND_ADMIN);
      p.set_id("admin");
      break;
    case Actor::Kind::kAnonymous:
      p.set_kind(pb::PRINCIPAL_KIND_ANONYMOUS);
      break;
  }
  return p;
}

std::string LocalHostName() {
  char buffer[256] = {0};
  if (gethostname(buffer, sizeof(buffer) - 1) != 0 || buffer[0] == '\0') return "local";
  std::string name;
  for (char c : std::string(buffer)) {
    name += (absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-') ? c : '-';
  }
  return name.substr(0, 64);
}

bool IsLocalCaller(const Actor& actor, const std::string& agent_id) {
  return (actor.kind == Actor::Kind::kAgent && actor.id == agent_id) ||
         (actor.kind == Actor::Kind::kService && actor.on_behalf_of == agent_id);
}

// "The caller may act as `*agent_id`": the agent itself, a service on its
// behalf, or an admin naming it. Empty = the caller.
absl::Status ResolveActing(const Actor& actor, std::string* agent_id, std::string_view rpc) {
  switch (actor.kind) {
    case Actor::Kind::kAnonymous:
      return absl::UnauthenticatedError(
          absl::StrCat("authorization: ", std::string(rpc),
                       " needs the agent's token or the admin credential"));
    case Actor::Kind::kAdmin:
      if (agent_id->empty()) {
        return absl::InvalidArgumentError("agent_id: required when calling as admin");
      }
      return absl::OkStatus();
    case Actor::Kind::kService:
      if (actor.on_behalf_of.empty()) {
        return absl::PermissionDeniedError(absl::StrCat(
            std::string(rpc),
            ": a service credential must name the agent in claudenet-on-behalf-of"));
      }
      [[fallthrough]];
    case Actor::Kind::kAgent: {
      const std::string& acting =
          actor.kind == Actor::Kind::kAgent ? actor.id : actor.on_behalf_of;
      if (agent_id->empty()) {
        *agent_id = acting;
      } else if (*agent_id != acting) {
        return absl::PermissionDeniedError(absl::StrCat(
            "agent ", Quote(acting), " may not act for agent ", Quote(*agent_id)));
      }
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown caller kind");
}

int64_t Messages(const pb::AgentMetrics& m) { return m.messages_sent() + m.messages_received(); }
int64_t UptimeMs(const pb::AgentMetrics& m) {
  return m.uptime().seconds() * 1000 + m.uptime().nanos() / 1'000'000;
}

// Page tokens: web-safe base64 of "<filter hash>|<order>|<cursor>".
std::string EncodePageToken(const std::string& filter_hash, int order, const std::string& cursor) {
  std::string out;
  absl::WebSafeBase64Escape(absl::StrCat(filter_hash, "|", order, "|", cursor), &out);
  return out;
}

absl::Status BadPageToken(std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("page_token: ", std::string(why)));
}

absl::StatusOr<std::string> DecodePageToken(const std::string& token,
                                            const std::string& filter_hash, int order) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return BadPageToken("cannot be decoded");
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
  int token_order = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &token_order)) {
    return BadPageToken("cannot be decoded");
  }
  if (parts[0] != filter_hash || token_order != order) {
    return BadPageToken("was issued for different filters or ordering");
  }
  return parts[2];
}

std::string FilterHash(const google::protobuf::Message& request) {
  std::string bytes;
  request.SerializeToString(&bytes);
  return crypto::HexEncode(crypto::Sha256(bytes).substr(0, 8));
}

}  // namespace

// ---------------------------------------------------------------------------
// Internal state

namespace internal {
// What a heartbeat changes, kept apart from the record so that heartbeats
// never copy it; written in batches with the agent's presence row.
struct Presence {
  absl::Time last_seen;  // last heartbeat or registration (remote: reported)
  int32_t recovery_remaining = 0;
  // Error-rate window.
  bool have_baseline = false;
  int64_t base_errors = 0;
  int64_t base_messages = 0;
  absl::Time base_time;
  int64_t base_uptime_ms = 0;
  bool metrics_violation = false;
  std::string metrics_reason;
  pb::Health reported_health = pb::HEALTH_UNSPECIFIED;  // remote agents
  absl::Time last_rotation = absl::InfinitePast();
};

}  // namespace internal

struct Registry::Alive {
  absl::Mutex mu;
  Registry* self ABSL_GUARDED_BY(mu) = nullptr;
};

struct Registry::Entry {
  std::string id;  // never changes: indexes hold views of it
  uint32_t slot = 0;
  int64_t rowid = 0;
  pb::Agent agent;         // the record as returned (health_reason refreshed on read)
  std::string token_hash;  // raw SHA-256 of the token; empty for remote agents
  Presence p;
  std::vector<uint32_t> caps;  // interned, sorted
  uint32_t node = 0;
  absl::Time queued_deadline = absl::InfiniteFuture();
  bool dirty = false;
};

// What queries scan: compact, by slot.
struct Registry::Hot {
  int64_t last_seen_ns = 0;
  float load = 0;
  int32_t active_tasks = 0;
  int32_t capacity = 1;
  uint32_t node = 0;
  uint8_t health = 0;
  uint8_t status = 0;
  uint8_t kind = 0;
  bool remote = false;
};

struct Registry::CapIndex {
  std::string name;
  Posting posting;
};

struct Registry::NodeIndex {
  std::string name;
  Posting posting;
};

// The presence and status after a sign of life.
struct Registry::Plan {
  Presence p;
  bool metrics_set = false;
  pb::AgentStatus status = pb::AGENT_STATUS_UNSPECIFIED;
  std::string status_message;
  bool status_changed = false;  // status or its message
  pb::Health health = pb::HEALTH_UNSPECIFIED;
  std::string health_reason;
  bool health_changed = false;
};

struct Registry::ListQuery {
  bool empty = false;  // a filter names something no agent has
  const Posting* posting = nullptr;
  bool posting_is_exact = false;  // posting == the whole filter
  std::vector<uint32_t> caps_all;
  std::vector<uint32_t> caps_any;
  absl::flat_hash_set<uint32_t> nodes;
  uint32_t status_mask = 0;
  uint32_t health_mask = 0;
  uint32_t kind_mask = 0;
  pb::Locality locality = pb::LOCALITY_UNSPECIFIED;
  std::string name_prefix;
};

namespace {

// Applies a metrics report to the error-rate window of `p`.
void ApplyMetrics(const RegistryOptions& options, const pb::AgentMetrics& m, absl::Time now,
                  internal::Presence* p) {
  bool* have_baseline = &p->have_baseline;
  int64_t* base_errors = &p->base_errors;
  int64_t* base_messages = &p->base_messages;
  absl::Time* base_time = &p->base_time;
  int64_t* base_uptime_ms = &p->base_uptime_ms;
  bool* violation = &p->metrics_violation;
  std::string* reason = &p->metrics_reason;
  int64_t errors = m.errors();
  int64_t messages = Messages(m);
  int64_t uptime = UptimeMs(m);
  if (!*have_baseline) {
    *have_baseline = true;
    *base_errors = errors;
    *base_messages = messages;
    *base_time = now;
    *base_uptime_ms = uptime;
    return;
  }
  if (errors < *base_errors || messages < *base_messages || uptime < *base_uptime_ms) {
    // The agent restarted: its counters count from zero again.
    *base_errors = 0;
    *base_messages = 0;
    *base_uptime_ms = 0;
  }
  int64_t new_errors = errors - *base_errors;
  int64_t new_messages = messages - *base_messages;
  bool enough = new_errors + new_messages >= kMinRateSample ||
                now - *base_time >= kRateWindowIntervals * options.heartbeat_interval;
  if (!enough) return;
  double rate = new_errors == 0 ? 0.0
                                : static_cast<double>(new_errors) /
                                      static_cast<double>(std::max(new_errors, new_messages));
  *violation = rate > options.error_rate_warning;
  *reason = *violation ? absl::StrFormat("error rate %.0f%% > %.0f%% (%d errors, %d messages)",
                                         rate * 100, options.error_rate_warning * 100,
                                         new_errors, new_messages)
                       : "";
  *base_errors = errors;
  *base_messages = messages;
  *base_time = now;
  *base_uptime_ms = uptime;
}

void SetPublicKey(const pb::PublicKey& given, const pb::Agent& old, absl::Time now,
                  pb::Agent* out) {
  pb::PublicKey* key = out->mutable_public_key();
  key->set_algorithm(given.algorithm());
  key->set_key(given.key());
  key->set_key_id(crypto::HexEncode(crypto::Sha256(given.key()).substr(0, 8)));
  if (old.has_public_key() && old.public_key().key() == given.key() &&
      old.public_key().algorithm() == given.algorithm()) {
    *key->mutable_registered_at() = old.public_key().registered_at();
  } else {
    *key->mutable_registered_at() = ToProto(now);
  }
}

// The descriptive fields of a registration, onto `out` (status excluded).
void FillFromRegistration(const pb::RegisterRequest& r, const pb::Agent& old, absl::Time now,
                          pb::Agent* out) {
  out->set_name(r.name());
  out->clear_capabilities();
  for (std::string& c : NormalizeCapabilities(r.capabilities())) out->add_capabilities(c);
  out->set_surface(r.surface());
  out->set_location(r.location());
  out->set_version(r.version());
  *out->mutable_metadata() = r.metadata();
  *out->mutable_card() = r.card();
  out->set_status_message(r.status_message());
  if (r.has_public_key()) {
    SetPublicKey(r.public_key(), old, now, out);
  } else {
    out->clear_public_key();
  }
  out->set_max_concurrent_tasks(r.max_concurrent_tasks());
}

const std::vector<std::string>& MutableFields() {
  static const std::vector<std::string>* const fields = new std::vector<std::string>{
      "name",     "capabilities", "surface", "location",       "version",   "metadata",
      "card",     "status",       "status_message", "public_key", "max_concurrent_tasks"};
  return *fields;
}

bool SameField(const pb::Agent& a, const pb::Agent& b, const std::string& field) {
  if (field == "name") return a.name() == b.name();
  if (field == "capabilities") {
    return std::equal(a.capabilities().begin(), a.capabilities().end(),
                      b.capabilities().begin(), b.capabilities().end());
  }
  if (field == "surface") return a.surface() == b.surface();
  if (field == "location") return a.location() == b.location();
  if (field == "version") return a.version() == b.version();
  if (field == "metadata") {
    if (a.metadata_size() != b.metadata_size()) return false;
    for (const auto& [k, v] : a.metadata()) {
      auto it = b.metadata().find(k);
      if (it == b.metadata().end() || it->second != v) return false;
    }
    return true;
  }
  if (field == "card") return MessageDifferencer::Equals(a.card(), b.card());
  if (field == "status") return a.status() == b.status();
  if (field == "status_message") return a.status_message() == b.status_message();
  if (field == "public_key") {
    return a.has_public_key() == b.has_public_key() &&
           a.public_key().algorithm() == b.public_key().algorithm() &&
           a.public_key().key() == b.public_key().key();
  }
  if (field == "max_concurrent_tasks") return a.max_concurrent_tasks() == b.max_concurrent_tasks();
  return true;
}

std::vector<std::string> ChangedFields(const pb::Agent& before, const pb::Agent& after) {
  std::vector<std::string> changed;
  for (const std::string& f : MutableFields()) {
    if (!SameField(before, after, f)) changed.push_back(f);
  }
  return changed;
}

bool OnlyStatusFields(const std::vector<std::string>& changed) {
  return std::all_of(changed.begin(), changed.end(), [](const std::string& f) {
    return f == "status" || f == "status_message";
  });
}

std::string Lower(std::string s) {
  absl::AsciiStrToLower(&s);
  return s;
}

absl::Status Exhausted(std::string message, absl::Duration retry_after) {
  absl::Status s = absl::ResourceExhaustedError(std::move(message));
  s.SetPayload(kRetryAfterPayload,
               absl::Cord(absl::StrCat(std::max<int64_t>(
                   1, absl::ToInt64Milliseconds(retry_after)))));
  s.SetPayload(kReasonPayload, absl::Cord("RATE_LIMITED"));
  return s;
}

}  // namespace
// ---------------------------------------------------------------------------
// Options and filters

RegistryOptions RegistryOptions::FromConfig(const config::Config& c) {
  RegistryOptions o;
  o.local_node = c.GetString("network.node_id");
  if (o.local_node.empty()) o.local_node = LocalHostName();
  o.heartbeat_interval = c.GetDuration("network.heartbeat_interval");
  o.healthy_max = c.GetDuration("network.health.healthy_max");
  o.warning_max = c.GetDuration("network.health.warning_max");
  o.critical_max = c.GetDuration("network.health.critical_max");
  o.recovery_heartbeats = static_cast<int>(c.GetInt("network.health.recovery_heartbeats"));
  o.error_rate_warning = c.GetDouble("network.health.error_rate_warning");
  o.dead_retention = c.GetDuration("network.dead_retention");
  o.restart_grace = c.GetDuration("network.restart_grace");
  o.event_retention = c.GetInt("network.event_retention");
  o.max_capabilities = static_cast<int>(c.GetInt("limits.max_capabilities"));
  o.open_registration = c.GetBool("registry.open_registration");
  o.public_base_url = c.GetString("registry.public_base_url");
  o.default_agent_concurrency = static_cast<int>(c.GetInt("registry.default_agent_concurrency"));
  o.max_agents = c.GetInt("registry.max_agents");
  o.token_cache_ttl = c.GetDuration("registry.token_cache_ttl");
  o.flush_interval = c.GetDuration("registry.flush_interval");
  o.rotate_min_interval = c.GetDuration("registry.rotate_min_interval");
  o.watch_buffer = static_cast<size_t>(c.GetInt("registry.watch_buffer"));
  o.max_watchers_per_caller = static_cast<int>(c.GetInt("registry.max_watchers_per_caller"));
  return o;
}

absl::StatusOr<WatchFilter> WatchFilter::Create(const pb::WatchAgentsRequest& r) {
  if (r.from_sequence() < 0) {
    return Invalid("from_sequence", absl::StrCat("negative (", r.from_sequence(), ")"));
  }
  if (r.agent_ids_size() > kMaxIdList) {
    return Invalid("agent_ids", absl::StrCat(r.agent_ids_size(), " ids, at most 1000"));
  }
  WatchFilter f;
  for (int i = 0; i < r.agent_ids_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckAgentId(absl::StrCat("agent_ids[", i, "]"), r.agent_ids(i)));
    f.agent_ids_.insert(r.agent_ids(i));
  }
  CNET_RETURN_IF_ERROR(CheckCapabilities("capabilities_any", r.capabilities_any(), kMaxIdList));
  f.capabilities_.insert(r.capabilities_any().begin(), r.capabilities_any().end());
  if (r.nodes_size() > kMaxIdList) {
    return Invalid("nodes", absl::StrCat(r.nodes_size(), " nodes, at most 1000"));
  }
  for (int i = 0; i < r.nodes_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckNodeName(absl::StrCat("nodes[", i, "]"), r.nodes(i)));
    f.nodes_.insert(r.nodes(i));
  }
  for (int i = 0; i < r.event_types_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckEventType(absl::StrCat("event_types[", i, "]"), r.event_types(i)));
    f.types_.insert(r.event_types(i));
  }
  return f;
}

bool WatchFilter::filtered() const {
  return !agent_ids_.empty() || !capabilities_.empty() || !nodes_.empty() || !types_.empty();
}

bool WatchFilter::MatchesAgent(const pb::Agent& agent) const {
  if (!agent_ids_.empty() && !agent_ids_.contains(agent.id())) return false;
  if (!nodes_.empty() && !nodes_.contains(agent.node())) return false;
  if (!capabilities_.empty()) {
    bool any = false;
    for (const std::string& c : agent.capabilities()) any = any || capabilities_.contains(c);
    if (!any) return false;
  }
  return true;
}

bool WatchFilter::Matches(const pb::AgentEvent& event) const {
  switch (event.type()) {
    case pb::AGENT_EVENT_TYPE_SNAPSHOT_END:
    case pb::AGENT_EVENT_TYPE_CHECKPOINT:
    case pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED:
      return true;
    case pb::AGENT_EVENT_TYPE_SNAPSHOT:
      return MatchesAgent(event.agent());
    default:
      if (!types_.empty() && !types_.contains(event.type())) return false;
      return MatchesAgent(event.agent());
  }
}

// ---------------------------------------------------------------------------
// Construction, loading, shutdown

Registry::Registry(RegistryOptions options, std::unique_ptr<RegistryStore> store, Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      ids_(clock),
      alive_(std::make_shared<Alive>()),
      boot_time_(clock->Now()),
      store_(std::move(store)) {
  absl::MutexLock lock(&alive_->mu);
  alive_->self = this;
}

absl::StatusOr<std::unique_ptr<Registry>> Registry::Open(RegistryOptions options,
                                                         std::unique_ptr<RegistryStore> store,
                                                         Clock* clock) {
  if (options.local_node.empty()) options.local_node = LocalHostName();
  std::unique_ptr<Registry> registry(new Registry(std::move(options), std::move(store), clock));
  CNET_RETURN_IF_ERROR(registry->Load());
  return registry;
}

absl::Status Registry::Load() {
  absl::MutexLock write_lock(&write_mu_);
  CNET_ASSIGN_OR_RETURN(std::vector<AgentRow> rows, store_->LoadAgents());
  CNET_ASSIGN_OR_RETURN(std::vector<std::string> events,
                        store_->LoadEvents(std::max<int64_t>(options_.event_retention, 0)));
  CNET_ASSIGN_OR_RETURN(int64_t last_sequence, store_->LastSequence());
  CNET_ASSIGN_OR_RETURN(std::vector<RevokedToken> revoked,
                        store_->LoadRevoked(options_.revoked_tokens_kept));
  absl::MutexLock lock(&mu_);
  for (AgentRow& row : rows) {
    auto e = std::make_unique<Entry>();
    e->id = row.id;
    e->rowid = row.rowid;
    if (!e->agent.ParseFromString(row.record)) {
      return absl::DataLossError(absl::StrCat("registry store: record of agent ", Quote(row.id),
                                              " cannot be parsed"));
    }
    const PresenceRow& r = row.presence;
    Presence& p = e->p;
    e->token_hash = row.token_hash;
    p.last_seen = absl::FromUnixNanos(r.last_seen_ns);
    if (!r.metrics.empty()) e->agent.mutable_metrics()->ParseFromString(r.metrics);
    *e->agent.mutable_last_heartbeat() = ToProto(p.last_seen);
    *e->agent.mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
    p.recovery_remaining = r.recovery_remaining;
    p.have_baseline = r.have_baseline;
    p.base_errors = r.base_errors;
    p.base_messages = r.base_messages;
    p.base_time = absl::FromUnixNanos(r.base_time_ns);
    p.base_uptime_ms = r.base_uptime_ms;
    p.metrics_violation = r.metrics_violation;
    p.metrics_reason = r.metrics_reason;
    p.reported_health = static_cast<pb::Health>(r.reported_health);
    p.last_rotation =
        r.last_rotation_ns == 0 ? absl::InfinitePast() : absl::FromUnixNanos(r.last_rotation_ns);
    e->slot = AllocateSlot();
    Entry* raw = e.get();
    entries_[raw->slot] = std::move(e);
    IndexLocked(raw);
  }
  for (const std::string& bytes : events) {
    auto event = std::make_shared<pb::AgentEvent>();
    if (!event->ParseFromString(bytes)) {
      return absl::DataLossError("registry store: an event of the log cannot be parsed");
    }
    tail_.push_back(std::move(event));
  }
  sequence_ = last_sequence;
  trimmed_up_to_ = tail_.empty() ? sequence_ : tail_.front()->sequence() - 1;
  checkpoint_sequence_ = sequence_;
  for (RevokedToken& t : revoked) {
    revoked_order_.push_back(t.token_hash);
    revoked_[t.token_hash] = Revoked{t.agent_id, static_cast<pb::TokenInvalidReason>(t.reason)};
  }
  if (!rows.empty() && options_.restart_grace > absl::ZeroDuration()) {
    grace_until_ = boot_time_ + options_.restart_grace;
  }
  for (auto& e : entries_) {
    if (e) ScheduleLocked(e.get());
  }
  flush_timer_ = clock_->RunAfter(options_.flush_interval, [alive = alive_] {
    absl::MutexLock l(&alive->mu);
    if (alive->self != nullptr) alive->self->OnFlushTimer();
  });
  checkpoint_timer_ = clock_->RunAfter(options_.checkpoint_interval, [alive = alive_] {
    absl::MutexLock l(&alive->mu);
    if (alive->self != nullptr) alive->self->OnCheckpointTimer();
  });
  ArmTimerLocked();
  LOG(INFO) << "registry: loaded " << rows.size() << " agents, " << tail_.size()
            << " retained events, sequence " << sequence_ << ", node " << options_.local_node;
  return absl::OkStatus();
}

Registry::~Registry() {
  {
    absl::MutexLock l(&alive_->mu);
    alive_->self = nullptr;
  }
  absl::MutexLock lock(&mu_);
  timers_stopped_ = true;
  if (health_timer_ != 0) clock_->Cancel(health_timer_);
  if (flush_timer_ != 0) clock_->Cancel(flush_timer_);
  if (checkpoint_timer_ != 0) clock_->Cancel(checkpoint_timer_);
}

void Registry::Shutdown() {
  {
    absl::MutexLock write_lock(&write_mu_);
    if (shut_down_) return;
    absl::Status s = FlushLocked();
    if (!s.ok()) LOG(ERROR) << "registry: final flush failed: " << s.message();
    shut_down_ = true;
    absl::MutexLock lock(&mu_);
    timers_stopped_ = true;
    if (health_timer_ != 0) clock_->Cancel(health_timer_);
    if (flush_timer_ != 0) clock_->Cancel(flush_timer_);
    if (checkpoint_timer_ != 0) clock_->Cancel(checkpoint_timer_);
    health_timer_ = flush_timer_ = checkpoint_timer_ = 0;
  }
  hub_.Close();
}

// ---------------------------------------------------------------------------
// Memory and indexes

Registry::Entry* Registry::FindLocked(std::string_view id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : entries_[it->second].get();
}

uint32_t Registry::AllocateSlot() {
  if (!free_slots_.empty()) {
    uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  entries_.emplace_back();
  hot_.emplace_back();
  return static_cast<uint32_t>(entries_.size() - 1);
}

uint32_t Registry::InternCapability(const std::string& name) {
  auto [it, inserted] = cap_ids_.try_emplace(name, static_cast<uint32_t>(caps_.size()));
  if (inserted) {
    caps_.emplace_back();
    caps_.back().name = name;
  }
  return it->second;
}

uint32_t Registry::InternNode(const std::string& name) {
  auto [it, inserted] = node_ids_.try_emplace(name, static_cast<uint32_t>(nodes_.size()));
  if (inserted) {
    nodes_.emplace_back();
    nodes_.back().name = name;
  }
  return it->second;
}

void Registry::IndexLocked(Entry* e) {
  IdKey key(e->id, e->slot);
  by_id_[e->id] = e->slot;
  all_.insert(key);
  e->caps.clear();
  for (const std::string& c : e->agent.capabilities()) {
    uint32_t cap = InternCapability(c);
    e->caps.push_back(cap);
    caps_[cap].posting.insert(key);
  }
  std::sort(e->caps.begin(), e->caps.end());
  e->node = InternNode(e->agent.node());
  nodes_[e->node].posting.insert(key);
  if (!e->token_hash.empty()) by_token_[e->token_hash] = e->slot;
  SyncHotLocked(*e);
}

void Registry::UnindexLocked(Entry* e) {
  IdKey key(e->id, e->slot);
  for (uint32_t cap : e->caps) caps_[cap].posting.erase(key);
  e->caps.clear();
  nodes_[e->node].posting.erase(key);
  if (!e->token_hash.empty()) {
    auto it = by_token_.find(e->token_hash);
    if (it != by_token_.end() && it->second == e->slot) by_token_.erase(it);
  }
  all_.erase(key);
  by_id_.erase(e->id);
}

void Registry::SyncHotLocked(const Entry& e) {
  Hot& h = hot_[e.slot];
  const pb::Agent& a = e.agent;
  h.last_seen_ns = absl::ToUnixNanos(e.p.last_seen);
  h.load = static_cast<float>(a.metrics().load());
  h.active_tasks = a.metrics().active_tasks();
  h.capacity = a.max_concurrent_tasks() > 0 ? a.max_concurrent_tasks()
                                            : options_.default_agent_concurrency;
  h.node = e.node;
  h.health = static_cast<uint8_t>(a.health());
  h.status = static_cast<uint8_t>(a.status());
  h.kind = static_cast<uint8_t>(a.kind());
  h.remote = a.remote();
}

void Registry::RemoveLocked(Entry* e) {
  UnindexLocked(e);
  if (e->queued_deadline != absl::InfiniteFuture()) {
    deadlines_.erase({e->queued_deadline, e->slot});
  }
  uint32_t slot = e->slot;
  hot_[slot] = Hot();
  entries_[slot].reset();
  free_slots_.push_back(slot);
}

void Registry::MarkDirtyLocked(Entry* e) {
  if (e->dirty) return;
  e->dirty = true;
  dirty_.push_back(e->slot);
}

pb::Agent Registry::ViewLocked(const Entry& e, absl::Time now) const {
  pb::Agent view = e.agent;
  auto [health, reason] = Judge(e.agent, e.p, now);
  if (health == view.health() && !reason.empty()) view.set_health_reason(reason);
  return view;
}

// ---------------------------------------------------------------------------
// Health

pb::Health Registry::AgeHealth(absl::Duration age) const {
  if (age <= options_.healthy_max) return pb::HEALTH_HEALTHY;
  if (age <= options_.warning_max) return pb::HEALTH_WARNING;
  if (age <= options_.critical_max) return pb::HEALTH_CRITICAL;
  return pb::HEALTH_DEAD;
}

std::pair<pb::Health, std::string> Registry::Judge(const pb::Agent& agent, const Presence& p,
                                                   absl::Time now) const {
  if (agent.kind() == pb::AGENT_KIND_HUMAN) return {pb::HEALTH_UNSPECIFIED, ""};
  if (now < grace_until_ && p.last_seen < boot_time_) {
    return {agent.health(),
            absl::StrCat("registry restarted: health is judged again from ",
                         absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", grace_until_,
                                          absl::UTCTimeZone()))};
  }
  absl::Duration age = std::max(now - p.last_seen, absl::ZeroDuration());
  pb::Health band = AgeHealth(age);
  std::string ago = absl::StrCat("last heartbeat ", Seconds(age), " ago");
  if (agent.remote()) {
    pb::Health reported =
        p.reported_health == pb::HEALTH_UNSPECIFIED ? pb::HEALTH_HEALTHY : p.reported_health;
    if (reported > band) {
      return {reported, absl::StrCat("reported ", pb::Health_Name(reported), " by node ",
                                     agent.node(), "; ", ago)};
    }
  }
  switch (band) {
    case pb::HEALTH_HEALTHY:
      if (p.recovery_remaining > 0) {
        return {pb::HEALTH_WARNING,
                absl::StrCat("recovering: ", options_.recovery_heartbeats - p.recovery_remaining,
                             " of ", options_.recovery_heartbeats, " on-time heartbeats")};
      }
      if (p.metrics_violation) return {pb::HEALTH_WARNING, p.metrics_reason};
      return {pb::HEALTH_HEALTHY, ago};
    case pb::HEALTH_WARNING:
      return {pb::HEALTH_WARNING, absl::StrCat(ago, " (> ", Seconds(options_.healthy_max), ")")};
    case pb::HEALTH_CRITICAL:
      return {pb::HEALTH_CRITICAL,
              absl::StrCat(ago, " (> ", Seconds(options_.warning_max), ")")};
    default:
      return {pb::HEALTH_DEAD, absl::StrCat("no heartbeat for ", Seconds(age), " (> ",
                                            Seconds(options_.critical_max), ")")};
  }
}

absl::Time Registry::NextDeadline(const pb::Agent& agent, const Presence& p,
                                  absl::Time now) const {
  if (agent.kind() == pb::AGENT_KIND_HUMAN) return absl::InfiniteFuture();
  if (agent.health() == pb::HEALTH_DEAD) {
    return agent.has_prune_at() ? FromProto(agent.prune_at()) : absl::InfiniteFuture();
  }
  // The next threshold the heartbeat age crosses. The threshold itself still
  // counts as the better health ("HEALTHY while at most 30 s old"), so the
  // change happens one nanosecond after it.
  absl::Time deadline = now;
  for (absl::Duration t : {options_.healthy_max, options_.warning_max, options_.critical_max}) {
    absl::Time at = p.last_seen + t + absl::Nanoseconds(1);
    if (at > now) {
      deadline = at;
      break;
    }
  }
  if (p.last_seen < boot_time_) deadline = std::max(deadline, grace_until_);
  return deadline;
}

void Registry::ScheduleLocked(Entry* e) {
  absl::Time deadline = NextDeadline(e->agent, e->p, clock_->Now());
  if (deadline == e->queued_deadline) return;
  // A queued deadline earlier than needed is kept: it fires, finds nothing
  // to change and queues the real one. This keeps heartbeats free of
  // ordered-set updates.
  if (e->queued_deadline != absl::InfiniteFuture()) {
    if (e->queued_deadline < deadline) return;
    deadlines_.erase({e->queued_deadline, e->slot});
  }
  e->queued_deadline = deadline;
  if (deadline == absl::InfiniteFuture()) return;
  deadlines_.insert({deadline, e->slot});
  if (deadline < health_timer_at_) ArmTimerLocked();
}

void Registry::ArmTimerLocked() {
  if (timers_stopped_) return;
  absl::Time earliest = deadlines_.empty() ? absl::InfiniteFuture() : deadlines_.begin()->first;
  if (earliest == health_timer_at_ && health_timer_ != 0) return;
  if (health_timer_ != 0) clock_->Cancel(health_timer_);
  health_timer_ = 0;
  health_timer_at_ = earliest;
  if (earliest == absl::InfiniteFuture()) return;
  uint64_t generation = ++health_timer_generation_;
  health_timer_ = clock_->RunAt(earliest, [alive = alive_, generation] {
    absl::MutexLock l(&alive->mu);
    if (alive->self != nullptr) alive->self->OnHealthTimer(generation);
  });
}

void Registry::OnHealthTimer(uint64_t generation) {
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  if (generation != health_timer_generation_ || timers_stopped_) return;
  health_timer_ = 0;
  health_timer_at_ = absl::InfiniteFuture();
  absl::Time now = clock_->Now();
  std::vector<Entry*> due;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now &&
         static_cast<int>(due.size()) < options_.timer_batch) {
    auto [when, slot] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    Entry* e = entries_[slot].get();
    if (e == nullptr || e->queued_deadline != when) continue;
    e->queued_deadline = absl::InfiniteFuture();
    due.push_back(e);
  }
  struct Change {
    Entry* e;
    pb::Agent agent;
    int32_t recovery_remaining;
    bool prune;
  };
  std::vector<Change> changes;
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  for (Entry* e : due) {
    if (e->agent.health() == pb::HEALTH_DEAD && e->agent.has_prune_at() &&
        now >= FromProto(e->agent.prune_at())) {
      batch.deletes.push_back(e->rowid);
      if (!e->token_hash.empty()) {
        batch.revoked.push_back({e->token_hash, e->id, pb::TOKEN_INVALID_REASON_AGENT_REMOVED,
                                 absl::ToUnixNanos(now)});
      }
      events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_PRUNED, ViewLocked(*e, now), now, nullptr,
                                 absl::StrCat("retention of ", Seconds(options_.dead_retention),
                                              " after DEAD expired")));
      changes.push_back({e, pb::Agent(), 0, true});
      continue;
    }
    auto [health, reason] = Judge(e->agent, e->p, now);
    if (health == e->agent.health()) {
      ScheduleLocked(e);
      if (e->queued_deadline <= now) {  // defensive: never spin on one agent
        deadlines_.erase({e->queued_deadline, e->slot});
        e->queued_deadline = now + absl::Seconds(1);
        deadlines_.insert({e->queued_deadline, e->slot});
      }
      continue;
    }
    Change change{e, e->agent, e->p.recovery_remaining, false};
    pb::Agent& next = change.agent;
    pb::Health previous = next.health();
    next.set_health(health);
    next.set_health_reason(reason);
    *next.mutable_health_changed_at() = ToProto(now);
    if (health >= pb::HEALTH_CRITICAL && !next.remote()) {
      change.recovery_remaining = options_.recovery_heartbeats;
    }
    if (health == pb::HEALTH_DEAD) {
      *next.mutable_prune_at() = ToProto(now + options_.dead_retention);
    } else {
      next.clear_prune_at();
    }
    Presence p = e->p;
    p.recovery_remaining = change.recovery_remaining;
    batch.upserts.push_back(RowOf(*e, next, e->token_hash, p));
    pb::AgentEvent event =
        MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, next, now, nullptr, reason);
    event.set_previous_health(previous);
    events.push_back(std::move(event));
    changes.push_back(std::move(change));
  }
  if (!changes.empty()) {
    std::vector<EventPtr> published;
    absl::Status s = CommitLocked(&batch, &events, &published);
    if (!s.ok()) {
      LOG(ERROR) << "registry: cannot store health changes, retrying in 1s: " << s.message();
      for (Change& c : changes) {
        c.e->queued_deadline = now + absl::Seconds(1);
        deadlines_.insert({c.e->queued_deadline, c.e->slot});
      }
      ArmTimerLocked();
      return;
    }
    for (Change& c : changes) {
      if (c.prune) {
        RemoveLocked(c.e);
        continue;
      }
      c.e->agent = std::move(c.agent);
      c.e->p.recovery_remaining = c.recovery_remaining;
      SyncHotLocked(*c.e);
      ScheduleLocked(c.e);
    }
    PublishLocked(published);
  }
  ArmTimerLocked();
}

void Registry::OnFlushTimer() {
  absl::Status s = Flush();
  if (!s.ok()) LOG(ERROR) << "registry: flushing heartbeat data failed: " << s.message();
  absl::MutexLock lock(&mu_);
  if (timers_stopped_) return;
  flush_timer_ = clock_->RunAfter(options_.flush_interval, [alive = alive_] {
    absl::MutexLock l(&alive->mu);
    if (alive->self != nullptr) alive->self->OnFlushTimer();
  });
}

void Registry::OnCheckpointTimer() {
  absl::MutexLock lock(&mu_);
  if (timers_stopped_) return;
  if (sequence_ != checkpoint_sequence_) {
    checkpoint_sequence_ = sequence_;
    auto ev = std::make_shared<pb::AgentEvent>();
    ev->set_sequence(sequence_);
    ev->set_type(pb::AGENT_EVENT_TYPE_CHECKPOINT);
    *ev->mutable_time() = ToProto(clock_->Now());
    hub_.Publish(ev);
  }
  checkpoint_timer_ = clock_->RunAfter(options_.checkpoint_interval, [alive = alive_] {
    absl::MutexLock l(&alive->mu);
    if (alive->self != nullptr) alive->self->OnCheckpointTimer();
  });
}

// ---------------------------------------------------------------------------
// Events and writes

pb::AgentEvent Registry::MakeEvent(pb::AgentEventType type, const pb::Agent& agent,
                                   absl::Time now, const Actor* actor,
                                   std::string reason) const {
  pb::AgentEvent ev;
  ev.set_type(type);
  *ev.mutable_time() = ToProto(now);
  *ev.mutable_agent() = agent;
  ev.set_reason(std::move(reason));
  const char* component = type == pb::AGENT_EVENT_TYPE_PRUNED ? "retention" : "health-timer";
  *ev.mutable_actor() = ToPrincipal(actor, component);
  return ev;
}

AgentRow Registry::RowOf(const Entry& e, const pb::Agent& agent, const std::string& token_hash,
                         const Presence& p) const {
  AgentRow row;
  row.rowid = e.rowid;
  row.id = e.id;
  row.token_hash = token_hash;
  pb::Agent record = agent;
  record.clear_last_heartbeat();
  record.clear_metrics();
  record.SerializeToString(&row.record);
  row.presence = PresenceOf(e.rowid, agent, p);
  return row;
}

PresenceRow Registry::PresenceOf(int64_t rowid, const pb::Agent& agent, const Presence& p) const {
  PresenceRow r;
  r.rowid = rowid;
  r.last_seen_ns = absl::ToUnixNanos(p.last_seen);
  if (agent.has_metrics()) agent.metrics().SerializeToString(&r.metrics);
  r.recovery_remaining = p.recovery_remaining;
  r.have_baseline = p.have_baseline;
  r.base_errors = p.base_errors;
  r.base_messages = p.base_messages;
  r.base_time_ns = p.have_baseline ? absl::ToUnixNanos(p.base_time) : 0;
  r.base_uptime_ms = p.base_uptime_ms;
  r.metrics_violation = p.metrics_violation;
  r.metrics_reason = p.metrics_reason;
  r.reported_health = p.reported_health;
  r.last_rotation_ns =
      p.last_rotation == absl::InfinitePast() ? 0 : absl::ToUnixNanos(p.last_rotation);
  return r;
}

absl::Status Registry::CommitLocked(WriteBatch* batch, std::vector<pb::AgentEvent>* events,
                                    std::vector<EventPtr>* published) {
  if (shut_down_) return absl::UnavailableError("registry is shutting down");
  int64_t sequence = sequence_;
  for (pb::AgentEvent& ev : *events) {
    ev.set_sequence(++sequence);
    batch->events.emplace_back(sequence, ev.SerializeAsString());
  }
  CNET_RETURN_IF_ERROR(store_->Apply(batch));
  sequence_ = sequence;
  for (pb::AgentEvent& ev : *events) {
    auto ptr = std::make_shared<const pb::AgentEvent>(std::move(ev));
    tail_.push_back(ptr);
    published->push_back(std::move(ptr));
  }
  while (static_cast<int64_t>(tail_.size()) > options_.event_retention && !tail_.empty()) {
    tail_.pop_front();
  }
  for (const RevokedToken& t : batch->revoked) {
    if (revoked_
            .insert_or_assign(t.token_hash,
                              Revoked{t.agent_id, static_cast<pb::TokenInvalidReason>(t.reason)})
            .second) {
      revoked_order_.push_back(t.token_hash);
    }
  }
  while (static_cast<int64_t>(revoked_order_.size()) > options_.revoked_tokens_kept) {
    revoked_.erase(revoked_order_.front());
    revoked_order_.pop_front();
  }
  return absl::OkStatus();
}

void Registry::PublishLocked(const std::vector<EventPtr>& events) {
  for (const EventPtr& ev : events) hub_.Publish(ev);
}

absl::Status Registry::Flush() {
  absl::MutexLock write_lock(&write_mu_);
  if (shut_down_) return absl::OkStatus();
  return FlushLocked();
}

absl::Status Registry::FlushLocked() {
  std::vector<PresenceRow> rows;
  std::vector<uint32_t> slots;
  int64_t trim_to = 0;
  {
    absl::MutexLock lock(&mu_);
    rows.reserve(dirty_.size());
    for (uint32_t slot : dirty_) {
      Entry* e = entries_[slot].get();
      if (e == nullptr || !e->dirty) continue;
      e->dirty = false;
      rows.push_back(PresenceOf(e->rowid, e->agent, e->p));
      slots.push_back(slot);
    }
    dirty_.clear();
    trim_to = sequence_ - std::max<int64_t>(options_.event_retention, 1);
  }
  // Written with mu_ released: heartbeats go on meanwhile. write_mu_ keeps
  // acknowledged writes ordered after this batch.
  absl::Status s = store_->WritePresence(rows);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    for (uint32_t slot : slots) {
      if (Entry* e = entries_[slot].get()) MarkDirtyLocked(e);
    }
    return s;
  }
  // Trimming costs a scan: do it in steps of 1000 events.
  if (trim_to - trimmed_up_to_ >= 1000) {
    CNET_RETURN_IF_ERROR(store_->Trim(trim_to, options_.revoked_tokens_kept));
    trimmed_up_to_ = trim_to;
  }
  return absl::OkStatus();
}

std::string Registry::NewToken(std::string* hash) const {
  std::string token = absl::StrCat(kTokenPrefix, crypto::HexEncode(crypto::RandomBytes(32)));
  *hash = crypto::Sha256(token);
  return token;
}

int64_t Registry::current_sequence() const {
  absl::ReaderMutexLock lock(&mu_);
  return sequence_;
}

size_t Registry::agent_count() const {
  absl::ReaderMutexLock lock(&mu_);
  return by_id_.size();
}

// ---------------------------------------------------------------------------
// Registration and changes

absl::StatusOr<Registry::Registration> Registry::Register(const Actor& actor,
                                                          const pb::RegisterRequest& r) {
  CNET_RETURN_IF_ERROR(CheckRegisterRequest(r, options_.max_capabilities));
  if (!r.node().empty() && r.node() != options_.local_node) {
    return Invalid("node", r.node(),
                   absl::StrCat("not the local node \"", options_.local_node,
                                "\" (agents of other nodes come through SyncRemoteAgents)"));
  }
  const pb::AgentKind kind = r.kind() == pb::AGENT_KIND_UNSPECIFIED ? pb::AGENT_KIND_AI : r.kind();
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  const std::string id = r.agent_id().empty() ? Lower(ids_.Next("agent-")) : r.agent_id();
  Entry* existing = FindLocked(id);
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  std::vector<EventPtr> published;
  Registration result;

  if (existing == nullptr) {
    bool privileged = actor.kind == Actor::Kind::kAdmin || actor.kind == Actor::Kind::kService;
    if (!options_.open_registration && !privileged) {
      return absl::PermissionDeniedError(
          "registration is closed (registry.open_registration is false): new agents need the "
          "admin or service credential");
    }
    if (!r.spawned_by().empty() &&
        !(actor.kind == Actor::Kind::kAgent && actor.id == r.spawned_by())) {
      return absl::PermissionDeniedError(
          absl::StrCat("spawned_by ", Quote(r.spawned_by()),
                       ": the call must carry the token of the spawning agent"));
    }
    if (static_cast<int64_t>(by_id_.size()) >= options_.max_agents) {
      return Exhausted(absl::StrCat("the registry holds its maximum of ", options_.max_agents,
                                    " agents (registry.max_agents)"),
                       absl::Minutes(1));
    }
    auto e = std::make_unique<Entry>();
    e->id = id;
    pb::Agent& a = e->agent;
    a.set_id(id);
    a.set_kind(kind);
    a.set_node(options_.local_node);
    FillFromRegistration(r, pb::Agent(), now, &a);
    a.set_status(r.status() == pb::AGENT_STATUS_UNSPECIFIED ? pb::AGENT_STATUS_ONLINE
                                                             : r.status());
    a.set_spawned_by(r.spawned_by());
    a.set_revision(1);
    *a.mutable_registered_at() = ToProto(now);
    *a.mutable_updated_at() = ToProto(now);
    *a.mutable_status_changed_at() = ToProto(now);
    *a.mutable_last_heartbeat() = ToProto(now);
    *a.mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
    e->p.last_seen = now;
    if (r.has_metrics()) {
      *a.mutable_metrics() = r.metrics();
      ApplyMetrics(options_, r.metrics(), now, &e->p);
    }
    if (kind == pb::AGENT_KIND_AI) {
      a.set_health(pb::HEALTH_HEALTHY);
      a.set_health_reason("registered");
      *a.mutable_health_changed_at() = ToProto(now);
    }
    result.token = NewToken(&e->token_hash);
    result.created = true;
    batch.upserts.push_back(RowOf(*e, a, e->token_hash, e->p));
    events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_REGISTERED, a, now, &actor, "registered"));
    CNET_RETURN_IF_ERROR(CommitLocked(&batch, &events, &published));
    e->rowid = batch.upserts[0].rowid;
    e->slot = AllocateSlot();
    Entry* raw = e.get();
    entries_[raw->slot] = std::move(e);
    IndexLocked(raw);
    ScheduleLocked(raw);
    PublishLocked(published);
    result.agent = ViewLocked(*raw, now);
    return result;
  }

  // Re-registration of an existing id.
  Entry* e = existing;
  if (e->agent.remote()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "agent ", Quote(id), ": exists as a remote agent of node \"", e->agent.node(), "\""));
  }
  const bool as_admin = actor.kind == Actor::Kind::kAdmin;
  if (!as_admin && !IsLocalCaller(actor, id)) {
    if (actor.kind == Actor::Kind::kAnonymous) {
      return absl::PermissionDeniedError(absl::StrCat(
          "agent ", Quote(id), ": already registered; re-registering needs its token"));
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "agent ", Quote(id), ": already registered; only its own token or the admin may "
        "re-register it"));
  }
  if (kind != e->agent.kind()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kind: agent ", Quote(id), " is ", pb::AgentKind_Name(e->agent.kind()),
        "; changing it needs Deregister first"));
  }
  if (e->agent.node() != options_.local_node) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node: agent ", Quote(id), " lives on node \"", e->agent.node(),
        "\"; moving it needs Deregister first"));
  }
  if (!r.spawned_by().empty() && r.spawned_by() != e->agent.spawned_by()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spawned_by: agent ", Quote(id), " was registered with spawned_by ",
        Quote(e->agent.spawned_by()), "; it cannot change"));
  }
  pb::Agent next = e->agent;
  FillFromRegistration(r, e->agent, now, &next);
  if (r.status() != pb::AGENT_STATUS_UNSPECIFIED) next.set_status(r.status());
  // Re-registration is also a sign of life.
  pb::HeartbeatRequest beat;
  if (r.has_metrics()) *beat.mutable_metrics() = r.metrics();
  Plan plan = PlanHeartbeatLocked(*e, beat, now);
  std::vector<std::string> changed = ChangedFields(e->agent, next);
  if (!changed.empty()) {
    next.set_revision(next.revision() + 1);
    if (!OnlyStatusFields(changed)) *next.mutable_updated_at() = ToProto(now);
  }
  bool status_changed = next.status() != e->agent.status() ||
                        next.status_message() != e->agent.status_message();
  if (next.status() != e->agent.status()) *next.mutable_status_changed_at() = ToProto(now);
  *next.mutable_last_heartbeat() = ToProto(now);
  if (plan.metrics_set) *next.mutable_metrics() = r.metrics();
  Presence p = plan.p;
  // Health after the sign of life (the plan judged it with the old record).
  auto [health, reason] = Judge(next, p, now);
  pb::Health previous_health = e->agent.health();
  if (health != previous_health) {
    next.set_health(health);
    next.set_health_reason(reason);
    *next.mutable_health_changed_at() = ToProto(now);
    next.clear_prune_at();
  }
  std::string token_hash = e->token_hash;
  if (as_admin) {
    result.token = NewToken(&token_hash);
    p.last_rotation = now;
    if (!e->token_hash.empty()) {
      batch.revoked.push_back(
          {e->token_hash, id, pb::TOKEN_INVALID_REASON_ROTATED, absl::ToUnixNanos(now)});
    }
  }
  batch.upserts.push_back(RowOf(*e, next, token_hash, p));
  if (!changed.empty()) {
    pb::AgentEvent ev = MakeEvent(pb::AGENT_EVENT_TYPE_UPDATED, next, now, &actor,
                                  "re-registered");
    for (const std::string& f : changed) ev.add_changed_fields(f);
    events.push_back(std::move(ev));
  }
  if (status_changed) {
    pb::AgentEvent ev = MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor,
                                  "re-registered");
    ev.set_previous_status(e->agent.status());
    events.push_back(std::move(ev));
  }
  if (health != previous_health) {
    pb::AgentEvent ev = MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, next, now, &actor, reason);
    ev.set_previous_health(previous_health);
    events.push_back(std::move(ev));
  }
  if (as_admin) {
    events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_TOKEN_ROTATED, next, now, &actor,
                               "new token issued by admin re-registration"));
  }
  CNET_RETURN_IF_ERROR(CommitLocked(&batch, &events, &published));
  bool reindex = !SameField(e->agent, next, "capabilities") || token_hash != e->token_hash;
  if (reindex) UnindexLocked(e);
  e->agent = std::move(next);
  e->token_hash = token_hash;
  e->p = p;
  e->dirty = false;  // just written in full
  if (reindex) {
    IndexLocked(e);
  } else {
    SyncHotLocked(*e);
  }
  ScheduleLocked(e);
  PublishLocked(published);
  result.agent = ViewLocked(*e, now);
  result.created = false;
  return result;
}

absl::StatusOr<pb::Agent> Registry::UpdateAgent(const Actor& actor,
                                                const pb::UpdateAgentRequest& r) {
  std::string id = r.agent().id();
  CNET_RETURN_IF_ERROR(ResolveActing(actor, &id, "UpdateAgent"));
  CNET_RETURN_IF_ERROR(CheckAgentId("agent.id", id));
  if (r.update_mask().paths_size() == 0) {
    return Invalid("update_mask", "empty; name the fields to change");
  }
  const pb::Agent& in = r.agent();
  std::set<std::string> paths;
  for (int i = 0; i < r.update_mask().paths_size(); ++i) {
    const std::string& path = r.update_mask().paths(i);
    std::string field = absl::StrCat("update_mask.paths[", i, "]");
    const auto& allowed = MutableFields();
    if (std::find(allowed.begin(), allowed.end(), path) == allowed.end()) {
      return Invalid(field, path,
                     "unknown or read-only field (allowed: name, capabilities, surface, "
                     "location, version, metadata, card, status, status_message, public_key, "
                     "max_concurrent_tasks)");
    }
    paths.insert(path);
    absl::Status s;
    if (path == "name") s = CheckText("agent.name", in.name(), kMaxNameBytes, true);
    if (path == "capabilities") {
      s = CheckCapabilities("agent.capabilities", in.capabilities(), options_.max_capabilities);
    }
    if (path == "surface") s = CheckSurface("agent.surface", in.surface());
    if (path == "location") s = CheckText("agent.location", in.location(), kMaxLocationBytes);
    if (path == "version") s = CheckText("agent.version", in.version(), kMaxVersionBytes);
    if (path == "metadata") s = CheckMetadata("agent.metadata", in.metadata());
    if (path == "card") s = CheckCard("agent.card", in.card());
    if (path == "status") {
      s = CheckStatus("agent.status", in.status());
      if (s.ok() && in.status() == pb::AGENT_STATUS_UNSPECIFIED) {
        s = Invalid("agent.status", "AGENT_STATUS_UNSPECIFIED is not a status to set");
      }
    }
    if (path == "status_message") {
      s = CheckText("agent.status_message", in.status_message(), kMaxStatusMessageBytes);
    }
    if (path == "public_key" && in.has_public_key()) {
      s = CheckPublicKey("agent.public_key", in.public_key());
    }
    if (path == "max_concurrent_tasks" &&
        (in.max_concurrent_tasks() < 0 || in.max_concurrent_tasks() > 1000)) {
      s = Invalid("agent.max_concurrent_tasks",
                  absl::StrCat("must be within 0..1000 (", in.max_concurrent_tasks(), ")"));
    }
    CNET_RETURN_IF_ERROR(s);
  }
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Entry* e = FindLocked(id);
  if (e == nullptr) return AgentNotFound(id);
  if (e->agent.remote()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "agent ", Quote(id), ": a remote agent of node \"", e->agent.node(),
        "\" is updated by its own node"));
  }
  if (r.expected_revision() != 0 && r.expected_revision() != e->agent.revision()) {
    return WithPayload(absl::FailedPreconditionError(absl::StrCat(
                           "expected_revision: agent ", Quote(id), " is at revision ",
                           e->agent.revision(), ", not ", r.expected_revision())),
                       kReasonPayload, "REVISION_MISMATCH");
  }
  pb::Agent next = e->agent;
  for (const std::string& path : paths) {
    if (path == "name") next.set_name(in.name());
    if (path == "capabilities") {
      next.clear_capabilities();
      for (std::string& c : NormalizeCapabilities(in.capabilities())) next.add_capabilities(c);
    }
    if (path == "surface") next.set_surface(in.surface());
    if (path == "location") next.set_location(in.location());
    if (path == "version") next.set_version(in.version());
    if (path == "metadata") *next.mutable_metadata() = in.metadata();
    if (path == "card") *next.mutable_card() = in.card();
    if (path == "status") next.set_status(in.status());
    if (path == "status_message") next.set_status_message(in.status_message());
    if (path == "public_key") {
      if (in.has_public_key()) {
        SetPublicKey(in.public_key(), e->agent, now, &next);
      } else {
        next.clear_public_key();
      }
    }
    if (path == "max_concurrent_tasks") next.set_max_concurrent_tasks(in.max_concurrent_tasks());
  }
  std::vector<std::string> changed = ChangedFields(e->agent, next);
  if (changed.empty()) return ViewLocked(*e, now);
  next.set_revision(next.revision() + 1);
  bool status_changed = std::find(changed.begin(), changed.end(), "status") != changed.end() ||
                        std::find(changed.begin(), changed.end(), "status_message") !=
                            changed.end();
  if (!OnlyStatusFields(changed)) *next.mutable_updated_at() = ToProto(now);
  if (next.status() != e->agent.status()) *next.mutable_status_changed_at() = ToProto(now);
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  std::vector<EventPtr> published;
  batch.upserts.push_back(RowOf(*e, next, e->token_hash, e->p));
  if (!OnlyStatusFields(changed)) {
    pb::AgentEvent ev = MakeEvent(pb::AGENT_EVENT_TYPE_UPDATED, next, now, &actor, "updated");
    for (const std::string& f : changed) ev.add_changed_fields(f);
    events.push_back(std::move(ev));
  }
  if (status_changed) {
    pb::AgentEvent ev =
        MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor, "status updated");
    ev.set_previous_status(e->agent.status());
    events.push_back(std::move(ev));
  }
  CNET_RETURN_IF_ERROR(CommitLocked(&batch, &events, &published));
  bool reindex = !SameField(e->agent, next, "capabilities");
  if (reindex) UnindexLocked(e);
  e->agent = std::move(next);
  e->dirty = false;
  if (reindex) {
    IndexLocked(e);
  } else {
    SyncHotLocked(*e);
  }
  PublishLocked(published);
  return ViewLocked(*e, now);
}

absl::StatusOr<pb::Agent> Registry::Deregister(const Actor& actor, std::string agent_id,
                                               const std::string& reason) {
  CNET_RETURN_IF_ERROR(CheckText("reason", reason, kMaxReasonBytes));
  CNET_RETURN_IF_ERROR(ResolveActing(actor, &agent_id, "Deregister"));
  CNET_RETURN_IF_ERROR(CheckAgentId("agent_id", agent_id));
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Entry* e = FindLocked(agent_id);
  if (e == nullptr) return AgentNotFound(agent_id);
  pb::Agent last = ViewLocked(*e, now);
  WriteBatch batch;
  batch.deletes.push_back(e->rowid);
  if (!e->token_hash.empty()) {
    batch.revoked.push_back(
        {e->token_hash, agent_id, pb::TOKEN_INVALID_REASON_AGENT_REMOVED, absl::ToUnixNanos(now)});
  }
  std::vector<pb::AgentEvent> events;
  events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_DEREGISTERED, last, now, &actor,
                             reason.empty() ? "deregistered" : reason));
  std::vector<EventPtr> published;
  CNET_RETURN_IF_ERROR(CommitLocked(&batch, &events, &published));
  RemoveLocked(e);
  PublishLocked(published);
  return last;
}

absl::StatusOr<Registry::Rotation> Registry::RotateToken(const Actor& actor,
                                                         std::string agent_id) {
  CNET_RETURN_IF_ERROR(ResolveActing(actor, &agent_id, "RotateToken"));
  CNET_RETURN_IF_ERROR(CheckAgentId("agent_id", agent_id));
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Entry* e = FindLocked(agent_id);
  if (e == nullptr) return AgentNotFound(agent_id);
  if (e->agent.remote()) {
    return absl::FailedPreconditionError(
        absl::StrCat("agent ", Quote(agent_id), ": remote agents have no token on this node"));
  }
  absl::Duration since = now - e->p.last_rotation;
  if (since < options_.rotate_min_interval) {
    return Exhausted(absl::StrCat("agent ", Quote(agent_id), ": token rotated ",
                                  absl::FormatDuration(since), " ago; at most one rotation per ",
                                  absl::FormatDuration(options_.rotate_min_interval)),
                     options_.rotate_min_interval - since);
  }
  Rotation rotation;
  std::string hash;
  rotation.token = NewToken(&hash);
  rotation.rotated_at = now;
  Presence p = e->p;
  p.last_rotation = now;
  WriteBatch batch;
  batch.upserts.push_back(RowOf(*e, e->agent, hash, p));
  if (!e->token_hash.empty()) {
    batch.revoked.push_back(
        {e->token_hash, agent_id, pb::TOKEN_INVALID_REASON_ROTATED, absl::ToUnixNanos(now)});
  }
  std::vector<pb::AgentEvent> events;
  events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_TOKEN_ROTATED, ViewLocked(*e, now), now, &actor,
                             "token rotated"));
  std::vector<EventPtr> published;
  CNET_RETURN_IF_ERROR(CommitLocked(&batch, &events, &published));
  if (!e->token_hash.empty()) by_token_.erase(e->token_hash);
  e->token_hash = hash;
  by_token_[hash] = e->slot;
  e->p = p;
  e->dirty = false;
  PublishLocked(published);
  return rotation;
}

// ---------------------------------------------------------------------------
// Heartbeats

Registry::Plan Registry::PlanHeartbeatLocked(const Entry& e, const pb::HeartbeatRequest& r,
                                             absl::Time now) const {
  Plan plan;
  plan.p = e.p;
  Presence& p = plan.p;
  const pb::Agent& a = e.agent;
  bool in_grace = now < grace_until_ && p.last_seen < boot_time_;
  bool on_time = in_grace || now - p.last_seen <= options_.healthy_max;
  if (!a.remote() && a.kind() == pb::AGENT_KIND_AI) {
    if (a.health() >= pb::HEALTH_CRITICAL) {
      p.recovery_remaining = std::max(p.recovery_remaining, options_.recovery_heartbeats);
    }
    if (p.recovery_remaining > 0) {
      p.recovery_remaining = on_time ? p.recovery_remaining - 1 : options_.recovery_heartbeats;
    }
  }
  p.last_seen = std::max(p.last_seen, now);
  if (r.has_metrics()) {
    plan.metrics_set = true;
    ApplyMetrics(options_, r.metrics(), now, &p);
  }
  plan.status = r.status() == pb::AGENT_STATUS_UNSPECIFIED ? a.status() : r.status();
  plan.status_message = r.status_message().empty() ? a.status_message() : r.status_message();
  plan.status_changed = plan.status != a.status() || plan.status_message != a.status_message();
  auto [health, reason] = Judge(a, p, now);
  plan.health = health;
  plan.health_reason = std::move(reason);
  plan.health_changed = health != a.health();
  return plan;
}

absl::StatusOr<pb::HeartbeatResponse> Registry::Heartbeat(const Actor& actor,
                                                          const pb::HeartbeatRequest& r) {
  if (actor.kind == Actor::Kind::kAnonymous) {
    return absl::UnauthenticatedError("authorization: Heartbeat needs the agent's own token");
  }
  if (actor.kind != Actor::Kind::kAgent) {
    return absl::PermissionDeniedError(
        "Heartbeat needs the agent's own token (nobody heartbeats for another agent)");
  }
  std::string agent_id = r.agent_id().empty() ? actor.id : r.agent_id();
  if (agent_id != actor.id) {
    return absl::PermissionDeniedError(absl::StrCat(
        "agent ", Quote(actor.id), " may not heartbeat for agent ", Quote(agent_id)));
  }
  CNET_RETURN_IF_ERROR(CheckStatus("status", r.status()));
  CNET_RETURN_IF_ERROR(CheckText("status_message", r.status_message(), kMaxStatusMessageBytes));
  if (r.has_metrics()) CNET_RETURN_IF_ERROR(CheckMetrics("metrics", r.metrics()));
  {
    // Fast path: nothing but heartbeat data changes, which is written later
    // in a batch.
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    Entry* e = FindLocked(agent_id);
    if (e == nullptr) return AgentNotFound(agent_id);
    Plan plan = PlanHeartbeatLocked(*e, r, now);
    if (!plan.status_changed && !plan.health_changed) {
      e->p = std::move(plan.p);
      if (plan.metrics_set) *e->agent.mutable_metrics() = r.metrics();
      *e->agent.mutable_last_heartbeat() = ToProto(now);
      Hot& h = hot_[e->slot];
      h.last_seen_ns = absl::ToUnixNanos(e->p.last_seen);
      h.load = static_cast<float>(e->agent.metrics().load());
      h.active_tasks = e->agent.metrics().active_tasks();
      MarkDirtyLocked(e);
      pb::HeartbeatResponse response;
      response.set_health(e->agent.health());
      response.set_health_reason(plan.health_reason);
      *response.mutable_next_heartbeat_in() = ToProto(options_.heartbeat_interval);
      *response.mutable_server_time() = ToProto(now);
      return response;
    }
  }
  return HeartbeatSlowPath(actor, agent_id, r);
}

absl::StatusOr<pb::HeartbeatResponse> Registry::HeartbeatSlowPath(const Actor& actor,
                                                                  const std::string& agent_id,
                                                                  const pb::HeartbeatRequest& r) {
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Entry* e = FindLocked(agent_id);
  if (e == nullptr) return AgentNotFound(agent_id);
  Plan plan = PlanHeartbeatLocked(*e, r, now);
  pb::Agent next = e->agent;
  if (plan.metrics_set) *next.mutable_metrics() = r.metrics();
  *next.mutable_last_heartbeat() = ToProto(now);
  std::vector<pb::AgentEvent> events;
  if (plan.status_changed) {
    if (plan.status != next.status()) *next.mutable_status_changed_at() = ToProto(now);
    next.set_status(plan.status);
    next.set_status_message(plan.status_message);
    next.set_revision(next.revision() + 1);
  }
  if (plan.health_changed) {
    next.set_health(plan.health);
    next.set_health_reason(plan.health_reason);
    *next.mutable_health_changed_at() = ToProto(now);
    next.clear_prune_at();
  }
  if (plan.status_changed) {
    pb::AgentEvent ev =
        MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor, "heartbeat");
    ev.set_previous_status(e->agent.status());
    events.push_back(std::move(ev));
  }
  if (plan.health_changed) {
    pb::AgentEvent ev =
        MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, next, now, &actor, plan.health_reason);
    ev.set_previous_health(e->agent.health());
    events.push_back(std::move(ev));
  }
  WriteBatch batch;
  std::vector<EventPtr> published;
  if (!events.empty()) {
    batch.upserts.push_back(RowOf(*e, next, e->token_hash, plan.p));
    CNET_RETURN_IF_ERROR(CommitLocked(&batch, &events, &published));
    e->dirty = false;
  } else {
    MarkDirtyLocked(e);
  }
  e->agent = std::move(next);
  e->p = std::move(plan.p);
  SyncHotLocked(*e);
  ScheduleLocked(e);
  PublishLocked(published);
  pb::HeartbeatResponse response;
  response.set_health(e->agent.health());
  response.set_health_reason(plan.health_reason);
  *response.mutable_next_heartbeat_in() = ToProto(options_.heartbeat_interval);
  *response.mutable_server_time() = ToProto(now);
  return response;
}

// ---------------------------------------------------------------------------
// Queries

absl::StatusOr<pb::Agent> Registry::GetAgent(const std::string& agent_id) const {
  CNET_RETURN_IF_ERROR(CheckAgentId("agent_id", agent_id));
  absl::ReaderMutexLock lock(&mu_);
  Entry* e = FindLocked(agent_id);
  if (e == nullptr) return AgentNotFound(agent_id);
  return ViewLocked(*e, clock_->Now());
}

absl::StatusOr<Registry::ListQuery> Registry::ResolveListLocked(
    const pb::ListAgentsRequest& r) const {
  ListQuery q;
  for (const std::string& c : r.capabilities_all()) {
    auto it = cap_ids_.find(c);
    if (it == cap_ids_.end()) {
      q.empty = true;
      return q;
    }
    q.caps_all.push_back(it->second);
  }
  std::sort(q.caps_all.begin(), q.caps_all.end());
  q.caps_all.erase(std::unique(q.caps_all.begin(), q.caps_all.end()), q.caps_all.end());
  for (const std::string& c : r.capabilities_any()) {
    auto it = cap_ids_.find(c);
    if (it != cap_ids_.end()) q.caps_any.push_back(it->second);
  }
  if (!r.capabilities_any().empty() && q.caps_any.empty()) {
    q.empty = true;
    return q;
  }
  for (const std::string& n : r.nodes()) {
    auto it = node_ids_.find(n);
    if (it != node_ids_.end()) q.nodes.insert(it->second);
  }
  if (!r.nodes().empty() && q.nodes.empty()) {
    q.empty = true;
    return q;
  }
  for (int s : r.statuses()) q.status_mask |= 1u << s;
  for (int h : r.healths()) q.health_mask |= 1u << h;
  for (int k : r.kinds()) q.kind_mask |= 1u << k;
  q.locality = r.locality();
  q.name_prefix = r.name_prefix();
  // The smallest posting list that every match is in.
  q.posting = &all_;
  for (uint32_t c : q.caps_all) {
    if (caps_[c].posting.size() < q.posting->size()) q.posting = &caps_[c].posting;
  }
  if (q.caps_all.empty() && q.caps_any.size() == 1) q.posting = &caps_[q.caps_any[0]].posting;
  if (q.posting == &all_ && q.nodes.size() == 1) {
    q.posting = &nodes_[*q.nodes.begin()].posting;
  }
  size_t filters = q.caps_all.size() + q.caps_any.size() + q.nodes.size() +
                   (q.status_mask != 0) + (q.health_mask != 0) + (q.kind_mask != 0) +
                   (q.locality != pb::LOCALITY_UNSPECIFIED) + !q.name_prefix.empty();
  q.posting_is_exact = filters == 0 || (filters == 1 && q.posting != &all_);
  return q;
}

bool Registry::MatchesLocked(const ListQuery& q, uint32_t slot) const {
  const Hot& h = hot_[slot];
  if (q.status_mask != 0 && !(q.status_mask & (1u << h.status))) return false;
  if (q.health_mask != 0 && !(q.health_mask & (1u << h.health))) return false;
  if (q.kind_mask != 0 && !(q.kind_mask & (1u << h.kind))) return false;
  if (q.locality == pb::LOCALITY_LOCAL && h.remote) return false;
  if (q.locality == pb::LOCALITY_REMOTE && !h.remote) return false;
  if (!q.nodes.empty() && !q.nodes.contains(h.node)) return false;
  if (q.caps_all.size() > 1 || (q.caps_all.size() == 1 && q.posting != &caps_[q.caps_all[0]].posting) ||
      !q.caps_any.empty() || !q.name_prefix.empty()) {
    const Entry& e = *entries_[slot];
    for (uint32_t c : q.caps_all) {
      if (!std::binary_search(e.caps.begin(), e.caps.end(), c)) return false;
    }
    if (!q.caps_any.empty()) {
      bool any = false;
      for (uint32_t c : q.caps_any) {
        any = any || std::binary_search(e.caps.begin(), e.caps.end(), c);
      }
      if (!any) return false;
    }
    if (!q.name_prefix.empty() && !absl::StartsWith(e.agent.name(), q.name_prefix)) return false;
  }
  return true;
}

namespace {

absl::Status CheckListRequest(const pb::ListAgentsRequest& r) {
  if (r.page_size() < 0 || r.page_size() > kMaxPageSize) {
    return Invalid("page_size", absl::StrCat(r.page_size(), " is outside 0..1000"));
  }
  CNET_RETURN_IF_ERROR(CheckCapabilities("capabilities_all", r.capabilities_all(),
                                         kMaxFilterValues));
  CNET_RETURN_IF_ERROR(CheckCapabilities("capabilities_any", r.capabilities_any(),
                                         kMaxFilterValues));
  for (int i = 0; i < r.statuses_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckStatus(absl::StrCat("statuses[", i, "]"), r.statuses(i)));
  }
  for (int i = 0; i < r.healths_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckHealth(absl::StrCat("healths[", i, "]"), r.healths(i)));
  }
  if (r.nodes_size() > kMaxIdList) {
    return Invalid("nodes", absl::StrCat(r.nodes_size(), " nodes, at most 1000"));
  }
  for (int i = 0; i < r.nodes_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckNodeName(absl::StrCat("nodes[", i, "]"), r.nodes(i)));
  }
  CNET_RETURN_IF_ERROR(CheckText("name_prefix", r.name_prefix(), kMaxNameBytes));
  CNET_RETURN_IF_ERROR(CheckLocality("locality", r.locality()));
  for (int i = 0; i < r.kinds_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckKind(absl::StrCat("kinds[", i, "]"), r.kinds(i)));
  }
  if (r.order_by() < 0 || r.order_by() > pb::AgentOrder_MAX) {
    return Invalid("order_by", absl::StrCat("unknown ordering ", r.order_by()));
  }
  return absl::OkStatus();
}

// Cursor of the name and last-heartbeat orderings: "<number>:<id>", where
// number is the name's length (the name follows) or the heartbeat's Unix ns.
struct SortKey {
  std::string_view text;  // name ordering
  int64_t number = 0;     // last-heartbeat ordering (negated: most recent first)
  std::string_view id;
};

}  // namespace

absl::StatusOr<pb::ListAgentsResponse> Registry::ListAgents(const pb::ListAgentsRequest& r) const {
  CNET_RETURN_IF_ERROR(CheckListRequest(r));
  absl::ReaderMutexLock lock(&mu_);
  return ListLocked(r, clock_->Now());
}

absl::StatusOr<pb::ListAgentsResponse> Registry::ListLocked(const pb::ListAgentsRequest& r,
                                                            absl::Time now) const {
  pb::ListAgentsRequest canonical = r;
  canonical.clear_page_size();
  canonical.clear_page_token();
  const int order = r.order_by() == pb::AGENT_ORDER_UNSPECIFIED ? pb::AGENT_ORDER_ID
                                                                : r.order_by();
  canonical.set_order_by(static_cast<pb::AgentOrder>(order));
  const std::string filter_hash = FilterHash(canonical);
  std::string cursor;
  bool has_cursor = !r.page_token().empty();
  if (has_cursor) {
    CNET_ASSIGN_OR_RETURN(cursor, DecodePageToken(r.page_token(), filter_hash, order));
  }
  const size_t page_size = r.page_size() == 0 ? kDefaultPageSize : r.page_size();
  // The cursor's sort key.
  SortKey after;
  std::string cursor_text;
  if (has_cursor && order != pb::AGENT_ORDER_ID) {
    size_t colon = cursor.find(':');
    int64_t number = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(cursor.substr(0, colon), &number)) {
      return BadPageToken("cannot be decoded");
    }
    std::string rest = cursor.substr(colon + 1);
    if (order == pb::AGENT_ORDER_NAME) {
      if (number < 0 || static_cast<size_t>(number) > rest.size()) {
        return BadPageToken("cannot be decoded");
      }
      cursor_text = rest.substr(0, number);
      cursor = rest.substr(number);
    } else {
      after.number = number;
      cursor = rest;
    }
    after.text = cursor_text;
  }
  after.id = cursor;

  pb::ListAgentsResponse response;
  CNET_ASSIGN_OR_RETURN(ListQuery q, ResolveListLocked(r));
  if (q.empty) return response;
  std::vector<uint32_t> page;
  bool more = false;
  int64_t total = 0;
  if (order == pb::AGENT_ORDER_ID) {
    if (q.posting_is_exact) {
      total = static_cast<int64_t>(q.posting->size());
      auto it = has_cursor ? q.posting->upper_bound(IdKey(cursor, UINT32_MAX)) : q.posting->begin();
      for (; it != q.posting->end(); ++it) {
        if (page.size() == page_size) {
          more = true;
          break;
        }
        page.push_back(it->second);
      }
    } else {
      for (const IdKey& key : *q.posting) {
        if (!MatchesLocked(q, key.second)) continue;
        ++total;
        if (has_cursor && key.first <= std::string_view(cursor)) continue;
        if (page.size() == page_size) {
          more = true;
          continue;
        }
        page.push_back(key.second);
      }
    }
  } else {
    struct Candidate {
      SortKey key;
      uint32_t slot;
    };
    auto less = [order](const SortKey& a, const SortKey& b) {
      if (order == pb::AGENT_ORDER_NAME) {
        if (a.text != b.text) return a.text < b.text;
      } else if (a.number != b.number) {
        return a.number > b.number;  // most recent first
      }
      return a.id < b.id;
    };
    std::vector<Candidate> candidates;
    for (const IdKey& key : *q.posting) {
      if (!q.posting_is_exact && !MatchesLocked(q, key.second)) continue;
      ++total;
      SortKey k;
      k.id = key.first;
      if (order == pb::AGENT_ORDER_NAME) {
        k.text = entries_[key.second]->agent.name();
      } else {
        k.number = hot_[key.second].last_seen_ns;
      }
      if (has_cursor && !less(after, k)) continue;
      candidates.push_back({k, key.second});
    }
    size_t take = std::min(candidates.size(), page_size + 1);
    std::partial_sort(candidates.begin(), candidates.begin() + take, candidates.end(),
                      [&less](const Candidate& a, const Candidate& b) { return less(a.key, b.key); });
    more = candidates.size() > page_size;
    for (size_t i = 0; i < std::min(candidates.size(), page_size); ++i) {
      page.push_back(candidates[i].slot);
    }
  }
  response.set_total_size(total);
  for (uint32_t slot : page) *response.add_agents() = ViewLocked(*entries_[slot], now);
  if (more && !page.empty()) {
    const Entry& last = *entries_[page.back()];
    std::string next;
    if (order == pb::AGENT_ORDER_ID) {
      next = last.id;
    } else if (order == pb::AGENT_ORDER_NAME) {
      next = absl::StrCat(last.agent.name().size(), ":", last.agent.name(), last.id);
    } else {
      next = absl::StrCat(hot_[last.slot].last_seen_ns, ":", last.id);
    }
    response.set_next_page_token(EncodePageToken(filter_hash, order, next));
  }
  return response;
}

absl::StatusOr<pb::FindAgentsResponse> Registry::FindAgents(const pb::FindAgentsRequest& r) const {
  CNET_RETURN_IF_ERROR(CheckCapabilities("capabilities", r.capabilities(), kMaxFilterValues));
  if (r.limit() < 0 || r.limit() > kMaxPageSize) {
    return Invalid("limit", absl::StrCat(r.limit(), " is outside 0..1000"));
  }
  if (r.exclude_agent_ids_size() > kMaxIdList) {
    return Invalid("exclude_agent_ids",
                   absl::StrCat(r.exclude_agent_ids_size(), " ids, at most 1000"));
  }
  for (int i = 0; i < r.exclude_agent_ids_size(); ++i) {
    CNET_RETURN_IF_ERROR(
        CheckAgentId(absl::StrCat("exclude_agent_ids[", i, "]"), r.exclude_agent_ids(i)));
  }
  CNET_RETURN_IF_ERROR(CheckLocality("locality", r.locality()));
  uint32_t status_mask = 0;
  for (int i = 0; i < r.statuses_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckStatus(absl::StrCat("statuses[", i, "]"), r.statuses(i)));
    status_mask |= 1u << r.statuses(i);
  }
  if (status_mask == 0) {
    status_mask = (1u << pb::AGENT_STATUS_ONLINE) | (1u << pb::AGENT_STATUS_BUSY);
  }
  const size_t limit = r.limit() == 0 ? 10 : r.limit();

  absl::ReaderMutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  pb::FindAgentsResponse response;
  std::vector<uint32_t> caps;
  const Posting* posting = &all_;
  for (const std::string& c : r.capabilities()) {
    auto it = cap_ids_.find(c);
    if (it == cap_ids_.end()) return response;
    caps.push_back(it->second);
    if (caps_[it->second].posting.size() < posting->size()) posting = &caps_[it->second].posting;
  }
  std::sort(caps.begin(), caps.end());
  caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
  absl::flat_hash_set<uint32_t> excluded;
  for (const std::string& id : r.exclude_agent_ids()) {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) excluded.insert(it->second);
  }
  struct Candidate {
    double utilisation;
    float load;
    int64_t last_seen_ns;
    std::string_view id;
    uint32_t slot;
  };
  auto better = [](const Candidate& a, const Candidate& b) {
    if (a.utilisation != b.utilisation) return a.utilisation < b.utilisation;
    if (a.load != b.load) return a.load < b.load;
    if (a.last_seen_ns != b.last_seen_ns) return a.last_seen_ns > b.last_seen_ns;
    return a.id < b.id;
  };
  // A max-heap of the best `limit` so far: its top is the worst kept.
  std::vector<Candidate> heap;
  heap.reserve(limit + 1);
  int64_t total = 0;
  for (const IdKey& key : *posting) {
    const Hot& h = hot_[key.second];
    if (h.kind != pb::AGENT_KIND_AI || h.health != pb::HEALTH_HEALTHY) continue;
    if (!(status_mask & (1u << h.status))) continue;
    if (r.locality() == pb::LOCALITY_LOCAL && h.remote) continue;
    if (r.locality() == pb::LOCALITY_REMOTE && !h.remote) continue;
    if (r.only_with_capacity() && h.active_tasks >= h.capacity) continue;
    if (!excluded.empty() && excluded.contains(key.second)) continue;
    if (caps.size() > 1) {
      const std::vector<uint32_t>& have = entries_[key.second]->caps;
      if (!std::includes(have.begin(), have.end(), caps.begin(), caps.end())) continue;
    }
    ++total;
    Candidate c{static_cast<double>(h.active_tasks) / std::max(h.capacity, 1), h.load,
                h.last_seen_ns, key.first, key.second};
    if (heap.size() < limit) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(c, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);
  for (const Candidate& c : heap) *response.add_agents() = ViewLocked(*entries_[c.slot], now);
  response.set_total_matching(total);
  return response;
}

absl::StatusOr<pb::GetNetworkStatusResponse> Registry::GetNetworkStatus(
    const pb::GetNetworkStatusRequest& r) const {
  if (!r.node().empty()) CNET_RETURN_IF_ERROR(CheckNodeName("node", r.node()));
  if (r.capability_limit() < 0 || r.capability_limit() > 1000) {
    return Invalid("capability_limit", absl::StrCat(r.capability_limit(), " is outside 0..1000"));
  }
  const size_t cap_limit = r.capability_limit() == 0 ? 100 : r.capability_limit();
  absl::ReaderMutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  pb::GetNetworkStatusResponse response;
  response.set_local_node(options_.local_node);
  response.set_current_sequence(sequence_);
  *response.mutable_server_time() = ToProto(now);
  if (grace_until_ > now) *response.mutable_grace_until() = ToProto(grace_until_);
  const Posting* posting = &all_;
  int64_t only_node = -1;
  if (!r.node().empty()) {
    auto it = node_ids_.find(r.node());
    if (it == node_ids_.end()) return response;
    only_node = it->second;
    posting = &nodes_[it->second].posting;
  }
  int64_t by_health[pb::Health_ARRAYSIZE] = {0};
  int64_t by_status[pb::AgentStatus_ARRAYSIZE] = {0};
  struct NodeCount {
    int64_t total = 0;
    int64_t by_health[pb::Health_ARRAYSIZE] = {0};
    int64_t last_ns = 0;
  };
  std::vector<NodeCount> node_counts(nodes_.size());
  int64_t oldest_ns = INT64_MAX;
  std::string_view oldest_id;
  for (const IdKey& key : *posting) {
    const Hot& h = hot_[key.second];
    response.set_total_agents(response.total_agents() + 1);
    if (h.remote) {
      response.set_remote_agents(response.remote_agents() + 1);
    } else {
      response.set_local_agents(response.local_agents() + 1);
    }
    ++by_health[h.health];
    ++by_status[h.status];
    NodeCount& n = node_counts[h.node];
    ++n.total;
    ++n.by_health[h.health];
    n.last_ns = std::max(n.last_ns, h.last_seen_ns);
    if (h.kind == pb::AGENT_KIND_AI && h.health != pb::HEALTH_DEAD &&
        (h.last_seen_ns < oldest_ns || (h.last_seen_ns == oldest_ns && key.first < oldest_id))) {
      oldest_ns = h.last_seen_ns;
      oldest_id = key.first;
    }
  }
  for (int i = 0; i < pb::Health_ARRAYSIZE; ++i) {
    if (by_health[i] == 0) continue;
    pb::HealthCount* c = response.add_by_health();
    c->set_health(static_cast<pb::Health>(i));
    c->set_count(by_health[i]);
  }
  for (int i = 0; i < pb::AgentStatus_ARRAYSIZE; ++i) {
    if (by_status[i] == 0) continue;
    pb::StatusCount* c = response.add_by_status();
    c->set_status(static_cast<pb::AgentStatus>(i));
    c->set_count(by_status[i]);
  }
  std::vector<uint32_t> node_order;
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    if (node_counts[i].total > 0) node_order.push_back(i);
  }
  std::sort(node_order.begin(), node_order.end(),
            [this](uint32_t a, uint32_t b) { return nodes_[a].name < nodes_[b].name; });
  for (uint32_t i : node_order) {
    pb::NodeSummary* n = response.add_by_node();
    n->set_node(nodes_[i].name);
    n->set_local(nodes_[i].name == options_.local_node);
    n->set_total(node_counts[i].total);
    for (int h = 0; h < pb::Health_ARRAYSIZE; ++h) {
      if (node_counts[i].by_health[h] == 0) continue;
      pb::HealthCount* c = n->add_by_health();
      c->set_health(static_cast<pb::Health>(h));
      c->set_count(node_counts[i].by_health[h]);
    }
    *n->mutable_last_heartbeat() = ToProto(absl::FromUnixNanos(node_counts[i].last_ns));
  }
  struct CapCount {
    const std::string* name;
    int64_t total;
    int64_t healthy;
  };
  std::vector<CapCount> cap_counts;
  for (const CapIndex& c : caps_) {
    if (c.posting.empty()) continue;
    CapCount count{&c.name, 0, 0};
    for (const IdKey& key : c.posting) {
      const Hot& h = hot_[key.second];
      if (only_node >= 0 && h.node != only_node) continue;
      ++count.total;
      if (h.health == pb::HEALTH_HEALTHY) ++count.healthy;
    }
    if (count.total > 0) cap_counts.push_back(count);
  }
  std::sort(cap_counts.begin(), cap_counts.end(), [](const CapCount& a, const CapCount& b) {
    if (a.total != b.total) return a.total > b.total;
    return *a.name < *b.name;
  });
  for (size_t i = 0; i < std::min(cap_counts.size(), cap_limit); ++i) {
    pb::CapabilityCount* c = response.add_by_capability();
    c->set_capability(*cap_counts[i].name);
    c->set_total(cap_counts[i].total);
    c->set_healthy(cap_counts[i].healthy);
  }
  if (!oldest_id.empty()) {
    response.set_oldest_heartbeat_agent_id(std::string(oldest_id));
    *response.mutable_oldest_heartbeat() = ToProto(absl::FromUnixNanos(oldest_ns));
  }
  return response;
}

absl::StatusOr<pb::GetAgentCardResponse> Registry::GetAgentCard(
    const std::string& agent_id) const {
  CNET_ASSIGN_OR_RETURN(pb::Agent agent, GetAgent(agent_id));
  return RenderAgentCard(agent, options_.public_base_url);
}

absl::StatusOr<pb::ListAgentCardsResponse> Registry::ListAgentCards(
    const pb::ListAgentCardsRequest& r) const {
  if (r.page_size() < 0 || r.page_size() > kMaxPageSize) {
    return Invalid("page_size", absl::StrCat(r.page_size(), " is outside 0..1000"));
  }
  CNET_RETURN_IF_ERROR(
      CheckCapabilities("capabilities_all", r.capabilities_all(), kMaxFilterValues));
  CNET_RETURN_IF_ERROR(CheckLocality("locality", r.locality()));
  pb::ListAgentsRequest list;
  list.set_page_size(r.page_size());
  list.set_page_token(r.page_token());
  *list.mutable_capabilities_all() = r.capabilities_all();
  list.set_locality(r.locality());
  list.set_order_by(pb::AGENT_ORDER_ID);
  if (!r.include_dead()) {
    for (pb::Health h : {pb::HEALTH_UNSPECIFIED, pb::HEALTH_HEALTHY, pb::HEALTH_WARNING,
                         pb::HEALTH_CRITICAL}) {
      list.add_healths(h);
    }
  }
  pb::ListAgentsResponse agents;
  {
    absl::ReaderMutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(agents, ListLocked(list, clock_->Now()));
  }
  pb::ListAgentCardsResponse response;
  for (const pb::Agent& a : agents.agents()) {
    *response.add_cards() = RenderAgentCard(a, options_.public_base_url);
  }
  response.set_next_page_token(agents.next_page_token());
  return response;
}

absl::StatusOr<pb::ValidateTokenResponse> Registry::ValidateToken(std::string_view token) const {
  if (token.empty()) return Invalid("token", "empty");
  if (token.size() > kMaxTokenBytes) {
    return Invalid("token", absl::StrCat("longer than 512 bytes (", token.size(), ")"));
  }
  std::string hash = crypto::Sha256(token);
  pb::ValidateTokenResponse response;
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_token_.find(hash);
  if (it != by_token_.end()) {
    const Entry& e = *entries_[it->second];
    response.set_valid(true);
    pb::Principal* p = response.mutable_principal();
    p->set_kind(e.agent.kind() == pb::AGENT_KIND_HUMAN ? pb::PRINCIPAL_KIND_HUMAN
                                                       : pb::PRINCIPAL_KIND_AGENT);
    p->set_id(e.id);
    p->set_node(e.agent.node());
    *response.mutable_cache_for() = ToProto(options_.token_cache_ttl);
    response.set_agent_revision(e.agent.revision());
    return response;
  }
  auto revoked = revoked_.find(hash);
  response.set_invalid_reason(revoked == revoked_.end() ? pb::TOKEN_INVALID_REASON_UNKNOWN
                                                        : revoked->second.reason);
  return response;
}

absl::StatusOr<std::string> Registry::AuthenticateToken(std::string_view token) const {
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return absl::UnauthenticatedError("authorization: malformed credential");
  }
  std::string hash = crypto::Sha256(token);
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_token_.find(hash);
  if (it != by_token_.end()) return entries_[it->second]->id;
  auto revoked = revoked_.find(hash);
  if (revoked != revoked_.end()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "authorization: the token of agent ", Quote(revoked->second.agent_id), " was ",
        revoked->second.reason == pb::TOKEN_INVALID_REASON_ROTATED ? "rotated"
                                                                   : "revoked (agent removed)"));
  }
  return absl::UnauthenticatedError("authorization: unknown credential");
}

absl::StatusOr<Registry::WatchStart> Registry::StartWatch(const pb::WatchAgentsRequest& r,
                                                          const WatchFilter& filter) const {
  absl::ReaderMutexLock lock(&mu_);
  WatchStart start;
  start.covered_sequence = sequence_;
  const absl::Time now = clock_->Now();
  if (r.send_snapshot()) {
    auto add = [&](const Entry& e) {
      if (!filter.MatchesAgent(e.agent)) return;
      auto ev = std::make_shared<pb::AgentEvent>();
      ev->set_sequence(sequence_);
      ev->set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT);
      *ev->mutable_time() = ToProto(now);
      *ev->mutable_agent() = ViewLocked(e, now);
      start.initial.push_back(std::move(ev));
    };
    if (r.agent_ids_size() > 0) {
      std::vector<std::string> ids(r.agent_ids().begin(), r.agent_ids().end());
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      for (const std::string& id : ids) {
        if (Entry* e = FindLocked(id)) add(*e);
      }
    } else {
      for (const IdKey& key : all_) add(*entries_[key.second]);
    }
    auto end = std::make_shared<pb::AgentEvent>();
    end->set_sequence(sequence_);
    end->set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT_END);
    *end->mutable_time() = ToProto(now);
    start.initial.push_back(std::move(end));
    return start;
  }
  const int64_t from = r.from_sequence();
  if (from < 0) return Invalid("from_sequence", absl::StrCat("negative (", from, ")"));
  if (from > sequence_) {
    return Invalid("from_sequence",
                   absl::StrCat(from, " is beyond the current sequence ", sequence_));
  }
  if (from == 0 || from == sequence_) return start;
  if (tail_.empty() || tail_.front()->sequence() > from + 1) {
    start.resync_required = true;
    return start;
  }
  for (const EventPtr& ev : tail_) {
    if (ev->sequence() > from && filter.Matches(*ev)) start.initial.push_back(ev);
  }
  return start;
}

// ---------------------------------------------------------------------------
// Federation

absl::StatusOr<pb::SyncRemoteAgentsResponse> Registry::SyncRemoteAgents(
    const Actor& actor, const pb::SyncRemoteAgentsRequest& r) {
  if (actor.kind == Actor::Kind::kAnonymous) {
    return absl::UnauthenticatedError(
        "authorization: SyncRemoteAgents needs the service credential");
  }
  if (actor.kind != Actor::Kind::kService) {
    return absl::PermissionDeniedError("SyncRemoteAgents needs the service credential");
  }
  if (r.origin_node().empty()) return Invalid("origin_node", "empty");
  CNET_RETURN_IF_ERROR(CheckNodeName("origin_node", r.origin_node()));
  if (r.origin_node() == options_.local_node) {
    return Invalid("origin_node", r.origin_node(), "is the local node");
  }
  if (r.agents_size() > kMaxIdList) {
    return Invalid("agents", absl::StrCat(r.agents_size(), " agents, at most 1000 per call"));
  }
  if (r.removed_agent_ids_size() > kMaxIdList) {
    return Invalid("removed_agent_ids",
                   absl::StrCat(r.removed_agent_ids_size(), " ids, at most 1000 per call"));
  }
  for (int i = 0; i < r.removed_agent_ids_size(); ++i) {
    CNET_RETURN_IF_ERROR(
        CheckAgentId(absl::StrCat("removed_agent_ids[", i, "]"), r.removed_agent_ids(i)));
  }
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  pb::SyncRemoteAgentsResponse response;
  CNET_RETURN_IF_ERROR(SyncRemoteLocked(actor, r, &response));
  return response;
}

absl::Status Registry::SyncRemoteLocked(const Actor& actor, const pb::SyncRemoteAgentsRequest& r,
                                        pb::SyncRemoteAgentsResponse* response) {
  const absl::Time now = clock_->Now();
  const std::string& origin = r.origin_node();
  struct Op {
    Entry* existing = nullptr;          // update or remove
    std::unique_ptr<Entry> fresh;       // insert
    pb::Agent next;
    Presence p;
    bool remove = false;
    int upsert_index = -1;
  };
  std::vector<Op> ops;
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  absl::flat_hash_set<std::string> listed;
  int64_t agents_after = static_cast<int64_t>(by_id_.size());
  auto reject = [response](const std::string& id, std::string reason) {
    pb::RemoteAgentRejection* rej = response->add_rejected();
    rej->set_agent_id(id);
    rej->set_reason(std::move(reason));
  };
  for (int i = 0; i < r.agents_size(); ++i) {
    const pb::Agent& a = r.agents(i);
    pb::RegisterRequest as_request;
    as_request.set_agent_id(a.id());
    as_request.set_name(a.name());
    as_request.set_kind(a.kind());
    *as_request.mutable_capabilities() = a.capabilities();
    as_request.set_surface(a.surface());
    as_request.set_location(a.location());
    as_request.set_version(a.version());
    *as_request.mutable_metadata() = a.metadata();
    *as_request.mutable_card() = a.card();
    as_request.set_status(a.status());
    as_request.set_status_message(a.status_message());
    if (a.has_public_key()) *as_request.mutable_public_key() = a.public_key();
    as_request.set_spawned_by(a.spawned_by());
    as_request.set_max_concurrent_tasks(a.max_concurrent_tasks());
    if (a.has_metrics()) *as_request.mutable_metrics() = a.metrics();
    absl::Status valid = a.id().empty() ? Invalid("id", "empty")
                                        : CheckRegisterRequest(as_request, options_.max_capabilities);
    if (valid.ok()) valid = CheckHealth("health", a.health());
    if (!valid.ok()) {
      reject(a.id(), std::string(valid.message()));
      continue;
    }
    if (!a.node().empty() && a.node() != origin) {
      reject(a.id(), absl::StrCat("node \"", a.node(), "\" differs from origin_node \"", origin,
                                  "\""));
      continue;
    }
    if (!listed.insert(a.id()).second) {
      reject(a.id(), "listed twice in this call");
      continue;
    }
    Entry* e = FindLocked(a.id());
    if (e != nullptr && !e->agent.remote()) {
      reject(a.id(), "id exists as a local agent");
      continue;
    }
    if (e != nullptr && e->agent.node() != origin) {
      reject(a.id(), absl::StrCat("id exists as a remote agent of node \"", e->agent.node(),
                                  "\""));
      continue;
    }
    if (e == nullptr && agents_after >= options_.max_agents) {
      reject(a.id(), "the registry holds its maximum number of agents");
      continue;
    }
    Op op;
    op.existing = e;
    pb::Agent& next = op.next;
    if (e != nullptr) {
      next = e->agent;
      op.p = e->p;
    } else {
      ++agents_after;
      next.set_id(a.id());
      next.set_kind(a.kind() == pb::AGENT_KIND_UNSPECIFIED ? pb::AGENT_KIND_AI : a.kind());
      next.set_node(origin);
      next.set_remote(true);
      next.set_spawned_by(a.spawned_by());
      next.set_revision(0);
      *next.mutable_registered_at() = a.has_registered_at() ? a.registered_at() : ToProto(now);
      *next.mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
      next.set_health(pb::HEALTH_UNSPECIFIED);
    }
    pb::Agent before = next;
    FillFromRegistration(as_request, before, now, &next);
    next.set_status(a.status() == pb::AGENT_STATUS_UNSPECIFIED ? pb::AGENT_STATUS_ONLINE
                                                                : a.status());
    if (a.has_metrics()) *next.mutable_metrics() = a.metrics();
    absl::Time last = a.has_last_heartbeat() ? std::min(FromProto(a.last_heartbeat()), now) : now;
    op.p.last_seen = std::max(op.p.last_seen, last);
    *next.mutable_last_heartbeat() = ToProto(op.p.last_seen);
    op.p.reported_health = a.health();
    std::vector<std::string> changed = ChangedFields(before, next);
    bool status_changed = e != nullptr && (before.status() != next.status() ||
                                           before.status_message() != next.status_message());
    if (e == nullptr || !changed.empty()) {
      next.set_revision(next.revision() + 1);
      *next.mutable_updated_at() = ToProto(now);
    }
    if (e == nullptr || before.status() != next.status()) {
      *next.mutable_status_changed_at() = ToProto(now);
    }
    auto [health, reason] = Judge(next, op.p, now);
    pb::Health previous_health = before.health();
    bool health_changed = e != nullptr && health != previous_health;
    if (health != next.health()) *next.mutable_health_changed_at() = ToProto(now);
    next.set_health(health);
    next.set_health_reason(reason);
    if (health == pb::HEALTH_DEAD) {
      if (!next.has_prune_at()) *next.mutable_prune_at() = ToProto(now + options_.dead_retention);
    } else {
      next.clear_prune_at();
    }
    std::string reason_text = absl::StrCat("mirrored from node ", origin);
    if (e == nullptr) {
      events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_REGISTERED, next, now, &actor, reason_text));
    } else {
      if (!changed.empty() && !OnlyStatusFields(changed)) {
        pb::AgentEvent ev = MakeEvent(pb::AGENT_EVENT_TYPE_UPDATED, next, now, &actor, reason_text);
        for (const std::string& f : changed) ev.add_changed_fields(f);
        events.push_back(std::move(ev));
      }
      if (status_changed) {
        pb::AgentEvent ev =
            MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor, reason_text);
        ev.set_previous_status(before.status());
        events.push_back(std::move(ev));
      }
      if (health_changed) {
        pb::AgentEvent ev = MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, next, now, &actor,
                                      reason);
        ev.set_previous_health(previous_health);
        events.push_back(std::move(ev));
      }
    }
    if (e == nullptr) {
      op.fresh = std::make_unique<Entry>();
      op.fresh->id = a.id();
    }
    const Entry& row_of = e != nullptr ? *e : *op.fresh;
    op.upsert_index = static_cast<int>(batch.upserts.size());
    batch.upserts.push_back(RowOf(row_of, next, "", op.p));
    ops.push_back(std::move(op));
    response->set_upserted(response->upserted() + 1);
  }
  // Removals: listed as gone, or (full snapshot) not listed.
  absl::flat_hash_set<std::string> removing;
  auto remove = [&](Entry* e, const std::string& why) {
    if (!removing.insert(e->id).second) return;
    Op op;
    op.existing = e;
    op.remove = true;
    batch.deletes.push_back(e->rowid);
    events.push_back(
        MakeEvent(pb::AGENT_EVENT_TYPE_DEREGISTERED, ViewLocked(*e, now), now, &actor, why));
    ops.push_back(std::move(op));
    response->set_removed(response->removed() + 1);
  };
  for (const std::string& id : r.removed_agent_ids()) {
    Entry* e = FindLocked(id);
    if (e == nullptr || !e->agent.remote() || e->agent.node() != origin || listed.contains(id)) {
      continue;
    }
    remove(e, absl::StrCat("removed on node ", origin));
  }
  if (r.full_snapshot()) {
    auto it = node_ids_.find(origin);
    if (it != node_ids_.end()) {
      std::vector<Entry*> gone;
      for (const IdKey& key : nodes_[it->second].posting) {
        Entry* e = entries_[key.second].get();
        if (e->agent.remote() && !listed.contains(e->id)) gone.push_back(e);
      }
      for (Entry* e : gone) remove(e, absl::StrCat("no longer listed by node ", origin));
    }
  }
  if (ops.empty()) return absl::OkStatus();
  std::vector<EventPtr> published;
  CNET_RETURN_IF_ERROR(CommitLocked(&batch, &events, &published));
  for (Op& op : ops) {
    if (op.remove) {
      RemoveLocked(op.existing);
      continue;
    }
    Entry* e = op.existing;
    if (e == nullptr) {
      e = op.fresh.get();
      e->rowid = batch.upserts[op.upsert_index].rowid;
      e->agent = std::move(op.next);
      e->p = std::move(op.p);
      e->slot = AllocateSlot();
      entries_[e->slot] = std::move(op.fresh);
      IndexLocked(e);
    } else {
      bool reindex = !SameField(e->agent, op.next, "capabilities");
      if (reindex) UnindexLocked(e);
      e->agent = std::move(op.next);
      e->p = std::move(op.p);
      e->dirty = false;
      if (reindex) {
        IndexLocked(e);
      } else {
        SyncHotLocked(*e);
      }
    }
    ScheduleLocked(e);
  }
  PublishLocked(published);
  return absl::OkStatus();
}

}  // namespace cnet::registry
