// Registry core: changes (registration, updates, tokens, heartbeats,
// federation), measured health and its timers, persistence and events.
// Queries are in registry_queries.cc.
#include "services/registry/registry.h"

#include <google/protobuf/util/message_differencer.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "libs/crypto/crypto.h"
#include "libs/status/macros.h"
#include "services/registry/registry_internal.h"
#include "services/registry/validation.h"

namespace cnet::registry {
namespace pb = claudenet::v1;
using google::protobuf::util::MessageDifferencer;
using internal::AgentNotFound;
using internal::FromProto;
using internal::ToProto;

namespace {

constexpr char kTokenPrefix[] = "cnt_";
// Error-rate windows: judged once this many messages + errors accumulated,
// or after this many heartbeat intervals, whichever comes first.
constexpr int64_t kMinRateSample = 10;
constexpr int kRateWindowIntervals = 10;

std::string Seconds(absl::Duration d) { return absl::StrCat(absl::ToInt64Seconds(d), "s"); }

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

// Applies a metrics report to `p`: the numbers and the error-rate window.
void ApplyMetrics(const RegistryOptions& options, const pb::AgentMetrics& m, absl::Time now,
                  internal::Presence* p) {
  p->has_metrics = true;
  p->metrics = internal::MetricsFromProto(m);
  int64_t errors = m.errors();
  int64_t messages = m.messages_sent() + m.messages_received();
  int64_t uptime = m.uptime().seconds() * 1000 + m.uptime().nanos() / 1'000'000;
  if (!p->have_baseline) {
    p->have_baseline = true;
    p->base_errors = errors;
    p->base_messages = messages;
    p->base_time = now;
    p->base_uptime_ms = uptime;
    return;
  }
  if (errors < p->base_errors || messages < p->base_messages || uptime < p->base_uptime_ms) {
    // The agent restarted: its counters count from zero again.
    p->base_errors = 0;
    p->base_messages = 0;
    p->base_uptime_ms = 0;
  }
  int64_t new_errors = errors - p->base_errors;
  int64_t new_messages = messages - p->base_messages;
  bool enough = new_errors + new_messages >= kMinRateSample ||
                now - p->base_time >= kRateWindowIntervals * options.heartbeat_interval;
  if (!enough) return;
  double rate = new_errors == 0 ? 0.0
                                : static_cast<double>(new_errors) /
                                      static_cast<double>(std::max(new_errors, new_messages));
  p->metrics_violation = rate > options.error_rate_warning;
  p->metrics_reason =
      p->metrics_violation
          ? absl::StrFormat("error rate %.0f%% > %.0f%% (%d errors, %d messages)", rate * 100,
                            options.error_rate_warning * 100, new_errors, new_messages)
          : "";
  p->base_errors = errors;
  p->base_messages = messages;
  p->base_time = now;
  p->base_uptime_ms = uptime;
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
  if (r.has_card()) {
    *out->mutable_card() = r.card();
  } else {
    out->clear_card();
  }
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
      "name", "capabilities",   "surface",    "location",           "version", "metadata",
      "card", "status",         "status_message", "public_key", "max_concurrent_tasks"};
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

bool Contains(const std::vector<std::string>& v, const char* s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string Lower(std::string s) {
  absl::AsciiStrToLower(&s);
  return s;
}

absl::Status Exhausted(std::string message, absl::Duration retry_after) {
  if (message.find("retry") == std::string::npos) {
    absl::StrAppend(&message, "; retry after ",
                    std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(retry_after,
                                                                         absl::Seconds(1)))),
                    "s");
  }
  absl::Status s = absl::ResourceExhaustedError(std::move(message));
  s.SetPayload(kRetryAfterPayload,
               absl::Cord(absl::StrCat(
                   std::max<int64_t>(1, absl::ToInt64Milliseconds(retry_after)))));
  s.SetPayload(kReasonPayload, absl::Cord("RATE_LIMITED"));
  return s;
}

absl::Status ShuttingDown() { return absl::UnavailableError("the registry is shutting down"); }

// The stored record: the agent with its times (heartbeat data lives in the
// presence row).
std::string SerializeRecord(const internal::Version& v) {
  pb::Agent record = v.agent;
  auto set = [](absl::Time t, google::protobuf::Timestamp* out) {
    if (t != absl::InfinitePast() && t != absl::InfiniteFuture()) *out = ToProto(t);
  };
  set(v.t.registered, record.mutable_registered_at());
  set(v.t.updated, record.mutable_updated_at());
  set(v.t.status_changed, record.mutable_status_changed_at());
  if (v.t.health_changed != absl::InfinitePast()) {
    set(v.t.health_changed, record.mutable_health_changed_at());
  }
  if (v.t.prune_at != absl::InfiniteFuture()) set(v.t.prune_at, record.mutable_prune_at());
  return record.SerializeAsString();
}

// Moves the times out of a stored record into `v`.
void ParseTimes(internal::Version* v) {
  pb::Agent& a = v->agent;
  auto take = [](bool has, const google::protobuf::Timestamp& ts, absl::Time unset) {
    return has ? FromProto(ts) : unset;
  };
  v->t.registered = take(a.has_registered_at(), a.registered_at(), absl::InfinitePast());
  v->t.updated = take(a.has_updated_at(), a.updated_at(), absl::InfinitePast());
  v->t.status_changed = take(a.has_status_changed_at(), a.status_changed_at(), absl::InfinitePast());
  v->t.health_changed = take(a.has_health_changed_at(), a.health_changed_at(), absl::InfinitePast());
  v->t.prune_at = take(a.has_prune_at(), a.prune_at(), absl::InfiniteFuture());
  a.clear_registered_at();
  a.clear_updated_at();
  a.clear_status_changed_at();
  a.clear_health_changed_at();
  a.clear_prune_at();
  a.clear_last_heartbeat();
  a.clear_metrics();
  a.clear_health_reason();
  a.clear_heartbeat_interval();
}

}  // namespace

namespace internal {

absl::Status AgentNotFound(std::string_view id) {
  absl::Status s = absl::NotFoundError(absl::StrCat("agent ", Quote(id), ": not found"));
  s.SetPayload(kReasonPayload, absl::Cord("AGENT_NOT_FOUND"));
  return s;
}

Metrics MetricsFromProto(const pb::AgentMetrics& m) {
  Metrics out;
  out.messages_sent = m.messages_sent();
  out.messages_received = m.messages_received();
  out.errors = m.errors();
  out.uptime_ns = m.uptime().seconds() * 1'000'000'000LL + m.uptime().nanos();
  out.load = m.load();
  out.active_tasks = m.active_tasks();
  if (!m.custom().empty()) {
    for (const auto& [k, v] : m.custom()) out.custom.emplace_back(k, v);
    std::sort(out.custom.begin(), out.custom.end());
  }
  return out;
}

void MetricsToProto(const Metrics& m, pb::AgentMetrics* out) {
  out->set_messages_sent(m.messages_sent);
  out->set_messages_received(m.messages_received);
  out->set_errors(m.errors);
  *out->mutable_uptime() = ToProto(absl::Nanoseconds(m.uptime_ns));
  out->set_load(m.load);
  out->set_active_tasks(m.active_tasks);
  for (const auto& [k, v] : m.custom) (*out->mutable_custom())[k] = v;
}

}  // namespace internal

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
  all_ = std::make_unique<Posting>();
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
    Version& v = e->v;
    if (!v.agent.ParseFromString(row.record)) {
      return absl::DataLossError(absl::StrCat("registry store: record of agent ", Quote(row.id),
                                              " cannot be parsed"));
    }
    ParseTimes(&v);
    if (row.token_hash.size() == v.token.size()) {
      v.has_token = true;
      std::copy(row.token_hash.begin(), row.token_hash.end(), v.token.begin());
    }
    const PresenceRow& r = row.presence;
    Presence& p = v.p;
    p.last_seen = absl::FromUnixNanos(r.last_seen_ns);
    if (!r.metrics.empty()) {
      pb::AgentMetrics m;
      if (m.ParseFromString(r.metrics)) {
        p.has_metrics = true;
        p.metrics = internal::MetricsFromProto(m);
      }
    }
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
  flags_.push_back(0);
  rank_.emplace_back();
  node_of_.push_back(0);
  cap_bits_.push_back(0);
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
  all_->Insert(key);
  e->caps.clear();
  flags_[e->slot] = 0;  // SyncHotLocked counts the agent's health in
  cap_bits_[e->slot] = 0;
  for (const std::string& c : e->v.agent.capabilities()) {
    uint32_t cap = InternCapability(c);
    e->caps.push_back(cap);
    caps_[cap].posting.Insert(key);
    if (cap < 64) cap_bits_[e->slot] |= uint64_t{1} << cap;
  }
  std::sort(e->caps.begin(), e->caps.end());
  e->caps.shrink_to_fit();
  e->node = InternNode(e->v.agent.node());
  nodes_[e->node].posting.Insert(key);
  if (e->v.has_token) by_token_[e->v.token] = e->slot;
  SyncHotLocked(*e);
}

void Registry::UnindexLocked(Entry* e) {
  IdKey key(e->id, e->slot);
  bool healthy = internal::HealthOf(flags_[e->slot]) == pb::HEALTH_HEALTHY;
  for (uint32_t cap : e->caps) {
    caps_[cap].posting.Erase(key);
    caps_[cap].healthy -= healthy;
  }
  e->caps.clear();
  flags_[e->slot] = 0;
  cap_bits_[e->slot] = 0;
  nodes_[e->node].posting.Erase(key);
  if (e->v.has_token) {
    auto it = by_token_.find(e->v.token);
    if (it != by_token_.end() && it->second == e->slot) by_token_.erase(it);
  }
  all_->Erase(key);
  by_id_.erase(e->id);
}

void Registry::SyncHotLocked(const Entry& e) {
  const pb::Agent& a = e.v.agent;
  const uint8_t flags = internal::FlagsOf(a);
  int was = internal::HealthOf(flags_[e.slot]) == pb::HEALTH_HEALTHY;
  int is = internal::HealthOf(flags) == pb::HEALTH_HEALTHY;
  if (was != is) {
    for (uint32_t cap : e.caps) caps_[cap].healthy += is - was;
  }
  flags_[e.slot] = flags;
  internal::Rank& r = rank_[e.slot];
  r.last_seen_ns = absl::ToUnixNanos(e.v.p.last_seen);
  r.load = static_cast<float>(e.v.p.metrics.load);
  r.active_tasks = static_cast<uint16_t>(std::clamp(e.v.p.metrics.active_tasks, 0, 65535));
  r.capacity = static_cast<uint16_t>(
      a.max_concurrent_tasks() > 0 ? a.max_concurrent_tasks() : options_.default_agent_concurrency);
  node_of_[e.slot] = e.node;
}

void Registry::RemoveLocked(Entry* e) {
  UnindexLocked(e);
  if (e->queued_deadline != absl::InfiniteFuture()) {
    deadlines_.erase({e->queued_deadline, e->slot});
  }
  uint32_t slot = e->slot;
  flags_[slot] = 0;
  rank_[slot] = internal::Rank();
  entries_[slot].reset();
  free_slots_.push_back(slot);
}

void Registry::ReplaceLocked(Entry* e, Version next) {
  bool reindex = !SameField(e->v.agent, next.agent, "capabilities") ||
                 e->v.has_token != next.has_token || e->v.token != next.token;
  if (reindex) UnindexLocked(e);
  e->v = std::move(next);
  if (reindex) {
    IndexLocked(e);
  } else {
    SyncHotLocked(*e);
  }
  ScheduleLocked(e);
}

void Registry::MarkDirtyLocked(Entry* e) {
  if (e->dirty) return;
  e->dirty = true;
  dirty_.push_back(e->slot);
}

pb::Agent Registry::View(const Version& v, absl::Time now) const {
  pb::Agent a = v.agent;
  auto set = [](absl::Time t, google::protobuf::Timestamp* out) {
    if (t != absl::InfinitePast() && t != absl::InfiniteFuture()) *out = ToProto(t);
  };
  set(v.t.registered, a.mutable_registered_at());
  set(v.t.updated, a.mutable_updated_at());
  set(v.t.status_changed, a.mutable_status_changed_at());
  if (v.t.health_changed != absl::InfinitePast()) {
    set(v.t.health_changed, a.mutable_health_changed_at());
  }
  if (v.t.prune_at != absl::InfiniteFuture()) set(v.t.prune_at, a.mutable_prune_at());
  *a.mutable_last_heartbeat() = ToProto(v.p.last_seen);
  *a.mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
  if (v.p.has_metrics) internal::MetricsToProto(v.p.metrics, a.mutable_metrics());
  a.set_health_reason(Judge(v, now).second);
  return a;
}

pb::Agent Registry::ViewLocked(const Entry& e, absl::Time now) const { return View(e.v, now); }

// ---------------------------------------------------------------------------
// Health

pb::Health Registry::AgeHealth(absl::Duration age) const {
  if (age <= options_.healthy_max) return pb::HEALTH_HEALTHY;
  if (age <= options_.warning_max) return pb::HEALTH_WARNING;
  if (age <= options_.critical_max) return pb::HEALTH_CRITICAL;
  return pb::HEALTH_DEAD;
}

std::pair<pb::Health, std::string> Registry::Judge(const Version& v, absl::Time now) const {
  return Judge(v.agent, v.p, now);
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

absl::Time Registry::NextDeadline(const Version& v, absl::Time now) const {
  if (v.agent.kind() == pb::AGENT_KIND_HUMAN) return absl::InfiniteFuture();
  if (v.agent.health() == pb::HEALTH_DEAD) return v.t.prune_at;
  // The next threshold the heartbeat age crosses. The threshold itself still
  // counts as the better health ("HEALTHY while at most 30 s old"), so the
  // change happens one nanosecond after it.
  absl::Time deadline = now;
  for (absl::Duration t : {options_.healthy_max, options_.warning_max, options_.critical_max}) {
    absl::Time at = v.p.last_seen + t + absl::Nanoseconds(1);
    if (at > now) {
      deadline = at;
      break;
    }
  }
  if (v.p.last_seen < boot_time_) deadline = std::max(deadline, grace_until_);
  return deadline;
}

void Registry::SetHealth(pb::Health health, absl::Time now, Version* v) const {
  if (health == v->agent.health()) return;
  v->agent.set_health(health);
  v->t.health_changed = now;
  if (health >= pb::HEALTH_CRITICAL && !v->agent.remote()) {
    v->p.recovery_remaining = options_.recovery_heartbeats;
  }
  if (health != pb::HEALTH_DEAD) {
    v->t.prune_at = absl::InfiniteFuture();
  } else if (v->t.prune_at == absl::InfiniteFuture()) {
    v->t.prune_at = now + options_.dead_retention;
  }
}

void Registry::ScheduleLocked(Entry* e) {
  absl::Time deadline = NextDeadline(e->v, clock_->Now());
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
  struct Change {
    Entry* e;
    Version next;
    bool prune;
  };
  std::vector<Change> changes;
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  int64_t last_sequence = 0;
  absl::Time now;
  {
    absl::MutexLock lock(&mu_);
    if (generation != health_timer_generation_ || timers_stopped_) return;
    health_timer_ = 0;
    health_timer_at_ = absl::InfiniteFuture();
    now = clock_->Now();
    last_sequence = sequence_;
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
    for (Entry* e : due) {
      if (e->v.agent.health() == pb::HEALTH_DEAD && now >= e->v.t.prune_at) {
        batch.deletes.push_back(e->rowid);
        if (e->v.has_token) {
          batch.revoked.push_back({std::string(e->v.token.data(), e->v.token.size()), e->id,
                                   pb::TOKEN_INVALID_REASON_AGENT_REMOVED,
                                   absl::ToUnixNanos(now)});
        }
        events.push_back(MakeEvent(
            pb::AGENT_EVENT_TYPE_PRUNED, e->v, now, nullptr,
            absl::StrCat("retention of ", Seconds(options_.dead_retention), " after DEAD expired")));
        e->pending = true;
        changes.push_back({e, Version(), true});
        continue;
      }
      auto [health, reason] = Judge(e->v, now);
      if (health == e->v.agent.health()) {
        ScheduleLocked(e);
        if (e->queued_deadline <= now) {  // defensive: never spin on one agent
          deadlines_.erase({e->queued_deadline, e->slot});
          e->queued_deadline = now + absl::Seconds(1);
          deadlines_.insert({e->queued_deadline, e->slot});
        }
        continue;
      }
      Change change{e, e->v, false};
      pb::Health previous = change.next.agent.health();
      SetHealth(health, now, &change.next);
      batch.upserts.push_back(RowOf(*e, change.next));
      pb::AgentEvent event =
          MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, change.next, now, nullptr, reason);
      event.set_previous_health(previous);
      events.push_back(std::move(event));
      e->pending = true;
      changes.push_back(std::move(change));
    }
    if (changes.empty()) {
      ArmTimerLocked();
      return;
    }
  }
  absl::Status written = WriteLocked(last_sequence, &batch, &events);
  absl::MutexLock lock(&mu_);
  for (Change& c : changes) c.e->pending = false;
  if (!written.ok()) {
    LOG(ERROR) << "registry: cannot store health changes, retrying in 1s: " << written.message();
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
    } else {
      c.e->dirty = false;
      ReplaceLocked(c.e, std::move(c.next));
    }
  }
  PublishLocked(batch, &events);
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

pb::AgentEvent Registry::MakeEvent(pb::AgentEventType type, const Version& v, absl::Time now,
                                   const Actor* actor, std::string reason) const {
  pb::AgentEvent ev;
  ev.set_type(type);
  *ev.mutable_time() = ToProto(now);
  *ev.mutable_agent() = View(v, now);
  ev.set_reason(std::move(reason));
  const char* component = type == pb::AGENT_EVENT_TYPE_PRUNED ? "retention" : "health-timer";
  *ev.mutable_actor() = ToPrincipal(actor, component);
  return ev;
}

AgentRow Registry::RowOf(const Entry& e, const Version& v) const {
  AgentRow row;
  row.rowid = e.rowid;
  row.id = e.id;
  if (v.has_token) row.token_hash.assign(v.token.data(), v.token.size());
  row.record = SerializeRecord(v);
  row.presence = PresenceOf(e.rowid, v.p);
  return row;
}

PresenceRow Registry::PresenceOf(int64_t rowid, const Presence& p) const {
  PresenceRow r;
  r.rowid = rowid;
  r.last_seen_ns = absl::ToUnixNanos(p.last_seen);
  if (p.has_metrics) {
    pb::AgentMetrics m;
    internal::MetricsToProto(p.metrics, &m);
    m.SerializeToString(&r.metrics);
  }
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

absl::Status Registry::WriteLocked(int64_t last_sequence, WriteBatch* batch,
                                   std::vector<pb::AgentEvent>* events) {
  if (shut_down_) return ShuttingDown();
  for (pb::AgentEvent& ev : *events) {
    ev.set_sequence(++last_sequence);
    batch->events.emplace_back(last_sequence, ev.SerializeAsString());
  }
  CNET_RETURN_IF_ERROR(store_->Apply(batch));
  // Rows this write replaced or removed must not be overwritten by an older
  // copy still waiting in a chunked flush.
  if (!flush_queue_.empty()) {
    for (const AgentRow& row : batch->upserts) flush_queue_.erase(row.rowid);
    for (int64_t rowid : batch->deletes) flush_queue_.erase(rowid);
  }
  return absl::OkStatus();
}

void Registry::PublishLocked(const WriteBatch& batch, std::vector<pb::AgentEvent>* events) {
  std::vector<EventPtr> published;
  published.reserve(events->size());
  for (pb::AgentEvent& ev : *events) {
    sequence_ = ev.sequence();
    auto ptr = std::make_shared<const pb::AgentEvent>(std::move(ev));
    tail_.push_back(ptr);
    published.push_back(std::move(ptr));
  }
  while (static_cast<int64_t>(tail_.size()) > options_.event_retention && !tail_.empty()) {
    tail_.pop_front();
  }
  for (const RevokedToken& t : batch.revoked) {
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
  for (const EventPtr& ev : published) hub_.Publish(ev);
}

absl::Status Registry::Flush() {
  write_mu_.Lock();
  absl::Status s = absl::OkStatus();
  if (!shut_down_) {
    CollectDirtyLocked();
    // In chunks, releasing the write lock in between: an acknowledged write
    // waits for one chunk at most, and drops its agent's row from the rest
    // (its own row is newer).
    while (s.ok() && !flush_queue_.empty()) {
      s = FlushChunkLocked(kFlushChunk);
      write_mu_.Unlock();
      write_mu_.Lock();
    }
    if (s.ok() && !shut_down_) s = TrimLocked();
  }
  write_mu_.Unlock();
  return s;
}

absl::Status Registry::FlushLocked() {
  CollectDirtyLocked();
  absl::Status s = absl::OkStatus();
  while (s.ok() && !flush_queue_.empty()) s = FlushChunkLocked(flush_queue_.size());
  if (s.ok()) s = TrimLocked();
  return s;
}

void Registry::CollectDirtyLocked() {
  absl::MutexLock lock(&mu_);
  for (uint32_t slot : dirty_) {
    Entry* e = entries_[slot].get();
    if (e == nullptr || !e->dirty) continue;
    e->dirty = false;
    flush_queue_[e->rowid] = PresenceOf(e->rowid, e->v.p);
  }
  dirty_.clear();
}

absl::Status Registry::FlushChunkLocked(size_t max_rows) {
  std::vector<PresenceRow> rows;
  rows.reserve(std::min(max_rows, flush_queue_.size()));
  // (btree erase invalidates iterators: always take the first.)
  while (!flush_queue_.empty() && rows.size() < max_rows) {
    auto first = flush_queue_.begin();
    rows.push_back(std::move(first->second));
    flush_queue_.erase(first);
  }
  // Written with mu_ released: heartbeats and queries go on meanwhile.
  absl::Status s = store_->WritePresence(rows);
  if (!s.ok()) {
    // Not written: the agents stay dirty and are collected again.
    absl::MutexLock lock(&mu_);
    for (Entry* e : DirtyEntriesLocked(rows)) MarkDirtyLocked(e);
  }
  return s;
}

std::vector<Registry::Entry*> Registry::DirtyEntriesLocked(const std::vector<PresenceRow>& rows) {
  absl::flat_hash_set<int64_t> rowids;
  for (const PresenceRow& r : rows) rowids.insert(r.rowid);
  std::vector<Entry*> out;
  for (auto& e : entries_) {
    if (e && rowids.contains(e->rowid)) out.push_back(e.get());
  }
  return out;
}

absl::Status Registry::TrimLocked() {
  int64_t trim_to;
  {
    absl::MutexLock lock(&mu_);
    trim_to = sequence_ - std::max<int64_t>(options_.event_retention, 1);
  }
  // Trimming costs a scan: do it in steps of 1000 events.
  if (trim_to - trimmed_up_to_ >= 1000) {
    CNET_RETURN_IF_ERROR(store_->Trim(trim_to, options_.revoked_tokens_kept));
    trimmed_up_to_ = trim_to;
  }
  return absl::OkStatus();
}

std::string Registry::NewToken(TokenHash* hash) const {
  std::string token = absl::StrCat(kTokenPrefix, crypto::HexEncode(crypto::RandomBytes(32)));
  std::string digest = crypto::Sha256(token);
  std::copy(digest.begin(), digest.end(), hash->begin());
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
  if (shut_down_) return ShuttingDown();
  const absl::Time now = clock_->Now();
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  Registration result;
  std::unique_ptr<Entry> fresh;
  Entry* e = nullptr;
  Version next;
  int64_t last_sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    last_sequence = sequence_;
    const std::string id = r.agent_id().empty() ? Lower(ids_.Next("agent-")) : r.agent_id();
    e = FindLocked(id);
    if (e == nullptr) {
      bool privileged = actor.kind == Actor::Kind::kAdmin || actor.kind == Actor::Kind::kService;
      if (!options_.open_registration && !privileged) {
        return absl::PermissionDeniedError(
            "registration is closed (registry.open_registration is false): new agents need "
            "the admin or service credential");
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
      fresh = std::make_unique<Entry>();
      fresh->id = id;
      pb::Agent& a = next.agent;
      a.set_id(id);
      a.set_kind(kind);
      a.set_node(options_.local_node);
      FillFromRegistration(r, pb::Agent(), now, &a);
      a.set_status(r.status() == pb::AGENT_STATUS_UNSPECIFIED ? pb::AGENT_STATUS_ONLINE
                                                               : r.status());
      a.set_spawned_by(r.spawned_by());
      a.set_revision(1);
      next.t.registered = next.t.updated = next.t.status_changed = now;
      next.t.health_changed = absl::InfinitePast();
      next.p.last_seen = now;
      if (r.has_metrics()) ApplyMetrics(options_, r.metrics(), now, &next.p);
      if (kind == pb::AGENT_KIND_AI) {
        a.set_health(pb::HEALTH_HEALTHY);
        next.t.health_changed = now;
      }
      result.token = NewToken(&next.token);
      next.has_token = true;
      result.created = true;
      batch.upserts.push_back(RowOf(*fresh, next));
      events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_REGISTERED, next, now, &actor, "registered"));
    } else {
      // Re-registration of an existing id.
      if (e->v.agent.remote()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "agent ", Quote(id), ": exists as a remote agent of node \"", e->v.agent.node(),
            "\""));
      }
      const bool as_admin = actor.kind == Actor::Kind::kAdmin;
      if (!as_admin && !IsLocalCaller(actor, id)) {
        return absl::PermissionDeniedError(absl::StrCat(
            "agent ", Quote(id),
            actor.kind == Actor::Kind::kAnonymous
                ? ": already registered; re-registering needs its token"
                : ": already registered; only its own token or the admin may re-register it"));
      }
      if (kind != e->v.agent.kind()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "kind: agent ", Quote(id), " is ", pb::AgentKind_Name(e->v.agent.kind()),
            "; changing it needs Deregister first"));
      }
      if (e->v.agent.node() != options_.local_node) {
        return absl::FailedPreconditionError(absl::StrCat(
            "node: agent ", Quote(id), " lives on node \"", e->v.agent.node(),
            "\"; moving it needs Deregister first"));
      }
      if (!r.spawned_by().empty() && r.spawned_by() != e->v.agent.spawned_by()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "spawned_by: agent ", Quote(id), " was registered with spawned_by ",
            Quote(e->v.agent.spawned_by()), "; it cannot change"));
      }
      // Re-registration is also a sign of life.
      pb::HeartbeatRequest beat;
      if (r.has_metrics()) *beat.mutable_metrics() = r.metrics();
      Plan plan = PlanHeartbeatLocked(*e, beat, now);
      next = e->v;
      next.p = plan.p;
      FillFromRegistration(r, e->v.agent, now, &next.agent);
      if (r.status() != pb::AGENT_STATUS_UNSPECIFIED) next.agent.set_status(r.status());
      const pb::Agent& before = e->v.agent;
      std::vector<std::string> changed = ChangedFields(before, next.agent);
      if (!changed.empty()) {
        next.agent.set_revision(before.revision() + 1);
        if (!OnlyStatusFields(changed)) next.t.updated = now;
      }
      if (next.agent.status() != before.status()) next.t.status_changed = now;
      auto [health, reason] = Judge(next, now);
      SetHealth(health, now, &next);
      if (as_admin) {
        result.token = NewToken(&next.token);
        next.has_token = true;
        next.p.last_rotation = now;
        if (e->v.has_token) {
          batch.revoked.push_back({std::string(e->v.token.data(), e->v.token.size()), id,
                                   pb::TOKEN_INVALID_REASON_ROTATED, absl::ToUnixNanos(now)});
        }
      }
      batch.upserts.push_back(RowOf(*e, next));
      if (!changed.empty() && !OnlyStatusFields(changed)) {
        pb::AgentEvent ev =
            MakeEvent(pb::AGENT_EVENT_TYPE_UPDATED, next, now, &actor, "re-registered");
        for (const std::string& f : changed) ev.add_changed_fields(f);
        events.push_back(std::move(ev));
      }
      if (Contains(changed, "status") || Contains(changed, "status_message")) {
        pb::AgentEvent ev =
            MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor, "re-registered");
        ev.set_previous_status(before.status());
        events.push_back(std::move(ev));
      }
      if (health != before.health()) {
        pb::AgentEvent ev =
            MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, next, now, &actor, reason);
        ev.set_previous_health(before.health());
        events.push_back(std::move(ev));
      }
      if (as_admin) {
        events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_TOKEN_ROTATED, next, now, &actor,
                                   "new token issued by admin re-registration"));
      }
      e->pending = true;
    }
  }
  absl::Status written = WriteLocked(last_sequence, &batch, &events);
  absl::MutexLock lock(&mu_);
  if (e != nullptr) e->pending = false;
  if (!written.ok()) return written;
  if (e == nullptr) {
    e = fresh.get();
    e->rowid = batch.upserts[0].rowid;
    e->v = std::move(next);
    e->slot = AllocateSlot();
    entries_[e->slot] = std::move(fresh);
    IndexLocked(e);
    ScheduleLocked(e);
  } else {
    e->dirty = false;  // written in full
    ReplaceLocked(e, std::move(next));
  }
  PublishLocked(batch, &events);
  result.agent = ViewLocked(*e, now);
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
  if (shut_down_) return ShuttingDown();
  const absl::Time now = clock_->Now();
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  Entry* e = nullptr;
  Version next;
  int64_t last_sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    last_sequence = sequence_;
    e = FindLocked(id);
    if (e == nullptr) return AgentNotFound(id);
    if (e->v.agent.remote()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "agent ", Quote(id), ": a remote agent of node \"", e->v.agent.node(),
          "\" is updated by its own node"));
    }
    if (r.expected_revision() != 0 && r.expected_revision() != e->v.agent.revision()) {
      absl::Status s = absl::FailedPreconditionError(
          absl::StrCat("expected_revision: agent ", Quote(id), " is at revision ",
                       e->v.agent.revision(), ", not ", r.expected_revision()));
      s.SetPayload(kReasonPayload, absl::Cord("REVISION_MISMATCH"));
      return s;
    }
    next = e->v;
    pb::Agent& a = next.agent;
    for (const std::string& path : paths) {
      if (path == "name") a.set_name(in.name());
      if (path == "capabilities") {
        a.clear_capabilities();
        for (std::string& c : NormalizeCapabilities(in.capabilities())) a.add_capabilities(c);
      }
      if (path == "surface") a.set_surface(in.surface());
      if (path == "location") a.set_location(in.location());
      if (path == "version") a.set_version(in.version());
      if (path == "metadata") *a.mutable_metadata() = in.metadata();
      if (path == "card") *a.mutable_card() = in.card();
      if (path == "status") a.set_status(in.status());
      if (path == "status_message") a.set_status_message(in.status_message());
      if (path == "public_key") {
        if (in.has_public_key()) {
          SetPublicKey(in.public_key(), e->v.agent, now, &a);
        } else {
          a.clear_public_key();
        }
      }
      if (path == "max_concurrent_tasks") a.set_max_concurrent_tasks(in.max_concurrent_tasks());
    }
    std::vector<std::string> changed = ChangedFields(e->v.agent, a);
    if (changed.empty()) return ViewLocked(*e, now);
    a.set_revision(a.revision() + 1);
    if (!OnlyStatusFields(changed)) next.t.updated = now;
    if (a.status() != e->v.agent.status()) next.t.status_changed = now;
    batch.upserts.push_back(RowOf(*e, next));
    if (!OnlyStatusFields(changed)) {
      pb::AgentEvent ev = MakeEvent(pb::AGENT_EVENT_TYPE_UPDATED, next, now, &actor, "updated");
      for (const std::string& f : changed) ev.add_changed_fields(f);
      events.push_back(std::move(ev));
    }
    if (Contains(changed, "status") || Contains(changed, "status_message")) {
      pb::AgentEvent ev =
          MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor, "status updated");
      ev.set_previous_status(e->v.agent.status());
      events.push_back(std::move(ev));
    }
    e->pending = true;
  }
  absl::Status written = WriteLocked(last_sequence, &batch, &events);
  absl::MutexLock lock(&mu_);
  e->pending = false;
  if (!written.ok()) return written;
  e->dirty = false;
  ReplaceLocked(e, std::move(next));
  PublishLocked(batch, &events);
  return ViewLocked(*e, now);
}

absl::StatusOr<pb::Agent> Registry::Deregister(const Actor& actor, std::string agent_id,
                                               const std::string& reason) {
  CNET_RETURN_IF_ERROR(CheckText("reason", reason, kMaxReasonBytes));
  CNET_RETURN_IF_ERROR(ResolveActing(actor, &agent_id, "Deregister"));
  CNET_RETURN_IF_ERROR(CheckAgentId("agent_id", agent_id));
  absl::MutexLock write_lock(&write_mu_);
  if (shut_down_) return ShuttingDown();
  const absl::Time now = clock_->Now();
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  Entry* e = nullptr;
  pb::Agent last;
  int64_t last_sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    last_sequence = sequence_;
    e = FindLocked(agent_id);
    if (e == nullptr) return AgentNotFound(agent_id);
    last = ViewLocked(*e, now);
    batch.deletes.push_back(e->rowid);
    if (e->v.has_token) {
      batch.revoked.push_back({std::string(e->v.token.data(), e->v.token.size()), agent_id,
                               pb::TOKEN_INVALID_REASON_AGENT_REMOVED, absl::ToUnixNanos(now)});
    }
    events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_DEREGISTERED, e->v, now, &actor,
                               reason.empty() ? "deregistered" : reason));
    e->pending = true;
  }
  absl::Status written = WriteLocked(last_sequence, &batch, &events);
  absl::MutexLock lock(&mu_);
  e->pending = false;
  if (!written.ok()) return written;
  RemoveLocked(e);
  PublishLocked(batch, &events);
  return last;
}

absl::StatusOr<Registry::Rotation> Registry::RotateToken(const Actor& actor,
                                                         std::string agent_id) {
  CNET_RETURN_IF_ERROR(ResolveActing(actor, &agent_id, "RotateToken"));
  CNET_RETURN_IF_ERROR(CheckAgentId("agent_id", agent_id));
  absl::MutexLock write_lock(&write_mu_);
  if (shut_down_) return ShuttingDown();
  const absl::Time now = clock_->Now();
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  Entry* e = nullptr;
  Version next;
  Rotation rotation;
  int64_t last_sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    last_sequence = sequence_;
    e = FindLocked(agent_id);
    if (e == nullptr) return AgentNotFound(agent_id);
    if (e->v.agent.remote()) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent ", Quote(agent_id), ": remote agents have no token on this node"));
    }
    absl::Duration since = now - e->v.p.last_rotation;
    if (since < options_.rotate_min_interval) {
      return Exhausted(absl::StrCat("agent ", Quote(agent_id), ": token rotated ",
                                    absl::FormatDuration(since),
                                    " ago; at most one rotation per ",
                                    absl::FormatDuration(options_.rotate_min_interval)),
                       options_.rotate_min_interval - since);
    }
    next = e->v;
    rotation.token = NewToken(&next.token);
    next.has_token = true;
    rotation.rotated_at = now;
    next.p.last_rotation = now;
    batch.upserts.push_back(RowOf(*e, next));
    if (e->v.has_token) {
      batch.revoked.push_back({std::string(e->v.token.data(), e->v.token.size()), agent_id,
                               pb::TOKEN_INVALID_REASON_ROTATED, absl::ToUnixNanos(now)});
    }
    events.push_back(
        MakeEvent(pb::AGENT_EVENT_TYPE_TOKEN_ROTATED, next, now, &actor, "token rotated"));
    e->pending = true;
  }
  absl::Status written = WriteLocked(last_sequence, &batch, &events);
  absl::MutexLock lock(&mu_);
  e->pending = false;
  if (!written.ok()) return written;
  e->dirty = false;
  ReplaceLocked(e, std::move(next));
  PublishLocked(batch, &events);
  return rotation;
}

// ---------------------------------------------------------------------------
// Heartbeats

Registry::Plan Registry::PlanHeartbeatLocked(const Entry& e, const pb::HeartbeatRequest& r,
                                             absl::Time now) const {
  Plan plan;
  plan.p = e.v.p;
  Presence& p = plan.p;
  const pb::Agent& a = e.v.agent;
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
  if (r.has_metrics()) ApplyMetrics(options_, r.metrics(), now, &p);
  plan.status = r.status() == pb::AGENT_STATUS_UNSPECIFIED ? a.status() : r.status();
  plan.status_message = r.status_message().empty() ? a.status_message() : r.status_message();
  plan.status_changed = plan.status != a.status() || plan.status_message != a.status_message();
  // Judged on the planned presence; the record's own fields are unchanged.
  auto [health, reason] = Judge(a, p, now);
  plan.health = health;
  plan.health_reason = std::move(reason);
  plan.health_changed = plan.health != a.health();
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
    // Fast path: only heartbeat data changes; it is written later in a batch.
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    Entry* e = FindLocked(agent_id);
    if (e == nullptr) return AgentNotFound(agent_id);
    if (!e->pending) {
      Plan plan = PlanHeartbeatLocked(*e, r, now);
      if (!plan.status_changed && !plan.health_changed) {
        e->v.p = std::move(plan.p);
        internal::Rank& rank = rank_[e->slot];
        rank.last_seen_ns = absl::ToUnixNanos(e->v.p.last_seen);
        rank.load = static_cast<float>(e->v.p.metrics.load);
        rank.active_tasks =
            static_cast<uint16_t>(std::clamp(e->v.p.metrics.active_tasks, 0, 65535));
        MarkDirtyLocked(e);
        pb::HeartbeatResponse response;
        response.set_health(e->v.agent.health());
        response.set_health_reason(std::move(plan.health_reason));
        *response.mutable_next_heartbeat_in() = ToProto(options_.heartbeat_interval);
        *response.mutable_server_time() = ToProto(now);
        return response;
      }
    }
  }
  return HeartbeatSlowPath(actor, agent_id, r);
}

absl::StatusOr<pb::HeartbeatResponse> Registry::HeartbeatSlowPath(const Actor& actor,
                                                                  const std::string& agent_id,
                                                                  const pb::HeartbeatRequest& r) {
  absl::MutexLock write_lock(&write_mu_);
  const absl::Time now = clock_->Now();
  pb::HeartbeatResponse response;
  *response.mutable_next_heartbeat_in() = ToProto(options_.heartbeat_interval);
  *response.mutable_server_time() = ToProto(now);
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  Entry* e = nullptr;
  Version next;
  int64_t last_sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    last_sequence = sequence_;
    e = FindLocked(agent_id);
    if (e == nullptr) return AgentNotFound(agent_id);
    Plan plan = PlanHeartbeatLocked(*e, r, now);
    response.set_health(plan.health);
    response.set_health_reason(plan.health_reason);
    if ((!plan.status_changed && !plan.health_changed) || shut_down_) {
      // Nothing to write now (or no more writes): heartbeat data only.
      e->v.p = std::move(plan.p);
      SyncHotLocked(*e);
      MarkDirtyLocked(e);
      response.set_health(e->v.agent.health());
      return response;
    }
    next = e->v;
    next.p = std::move(plan.p);
    pb::Agent& a = next.agent;
    if (plan.status_changed) {
      if (plan.status != a.status()) next.t.status_changed = now;
      a.set_status(plan.status);
      a.set_status_message(plan.status_message);
      a.set_revision(a.revision() + 1);
      pb::AgentEvent ev =
          MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor, "heartbeat");
      ev.set_previous_status(e->v.agent.status());
      events.push_back(std::move(ev));
    }
    if (plan.health_changed) {
      SetHealth(plan.health, now, &next);
      pb::AgentEvent ev =
          MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, next, now, &actor, plan.health_reason);
      ev.set_previous_health(e->v.agent.health());
      events.push_back(std::move(ev));
    }
    batch.upserts.push_back(RowOf(*e, next));
    e->pending = true;
  }
  absl::Status written = WriteLocked(last_sequence, &batch, &events);
  absl::MutexLock lock(&mu_);
  e->pending = false;
  if (!written.ok()) return written;
  e->dirty = false;
  ReplaceLocked(e, std::move(next));
  PublishLocked(batch, &events);
  return response;
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
  const std::string& origin = r.origin_node();
  absl::MutexLock write_lock(&write_mu_);
  if (shut_down_) return ShuttingDown();
  const absl::Time now = clock_->Now();
  pb::SyncRemoteAgentsResponse response;
  struct Op {
    Entry* existing = nullptr;     // update or remove
    std::unique_ptr<Entry> fresh;  // insert
    Version next;
    bool remove = false;
    int upsert_index = -1;
  };
  std::vector<Op> ops;
  WriteBatch batch;
  std::vector<pb::AgentEvent> events;
  int64_t last_sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    last_sequence = sequence_;
    absl::flat_hash_set<std::string> listed;
    int64_t agents_after = static_cast<int64_t>(by_id_.size());
    auto reject = [&response](const std::string& id, std::string reason) {
      pb::RemoteAgentRejection* rej = response.add_rejected();
      rej->set_agent_id(id);
      rej->set_reason(std::move(reason));
    };
    const std::string reason_text = absl::StrCat("mirrored from node ", origin);
    for (const pb::Agent& a : r.agents()) {
      pb::RegisterRequest as_request;
      as_request.set_agent_id(a.id());
      as_request.set_name(a.name());
      as_request.set_kind(a.kind());
      *as_request.mutable_capabilities() = a.capabilities();
      as_request.set_surface(a.surface());
      as_request.set_location(a.location());
      as_request.set_version(a.version());
      *as_request.mutable_metadata() = a.metadata();
      if (a.has_card()) *as_request.mutable_card() = a.card();
      as_request.set_status(a.status());
      as_request.set_status_message(a.status_message());
      if (a.has_public_key()) *as_request.mutable_public_key() = a.public_key();
      as_request.set_spawned_by(a.spawned_by());
      as_request.set_max_concurrent_tasks(a.max_concurrent_tasks());
      if (a.has_metrics()) *as_request.mutable_metrics() = a.metrics();
      absl::Status valid = a.id().empty()
                               ? Invalid("id", "empty")
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
      if (e != nullptr && !e->v.agent.remote()) {
        reject(a.id(), "id exists as a local agent");
        continue;
      }
      if (e != nullptr && e->v.agent.node() != origin) {
        reject(a.id(),
               absl::StrCat("id exists as a remote agent of node \"", e->v.agent.node(), "\""));
        continue;
      }
      if (e == nullptr && agents_after >= options_.max_agents) {
        reject(a.id(), "the registry holds its maximum number of agents");
        continue;
      }
      Op op;
      op.existing = e;
      Version& next = op.next;
      if (e != nullptr) {
        next = e->v;
      } else {
        ++agents_after;
        next.agent.set_id(a.id());
        next.agent.set_kind(a.kind() == pb::AGENT_KIND_UNSPECIFIED ? pb::AGENT_KIND_AI
                                                                    : a.kind());
        next.agent.set_node(origin);
        next.agent.set_remote(true);
        next.agent.set_spawned_by(a.spawned_by());
        next.t.registered = a.has_registered_at() ? FromProto(a.registered_at()) : now;
        next.t.health_changed = absl::InfinitePast();
        op.fresh = std::make_unique<Entry>();
        op.fresh->id = a.id();
      }
      const pb::Agent before = next.agent;
      FillFromRegistration(as_request, before, now, &next.agent);
      next.agent.set_status(a.status() == pb::AGENT_STATUS_UNSPECIFIED ? pb::AGENT_STATUS_ONLINE
                                                                        : a.status());
      if (a.has_metrics()) {
        next.p.has_metrics = true;
        next.p.metrics = internal::MetricsFromProto(a.metrics());
      }
      absl::Time last =
          a.has_last_heartbeat() ? std::min(FromProto(a.last_heartbeat()), now) : now;
      next.p.last_seen = std::max(next.p.last_seen, last);
      next.p.reported_health = a.health();
      std::vector<std::string> changed = ChangedFields(before, next.agent);
      if (e == nullptr || !changed.empty()) {
        next.agent.set_revision(before.revision() + 1);
        next.t.updated = now;
      }
      if (e == nullptr || before.status() != next.agent.status()) next.t.status_changed = now;
      auto [health, reason] = Judge(next, now);
      SetHealth(health, now, &next);
      if (e == nullptr) {
        events.push_back(
            MakeEvent(pb::AGENT_EVENT_TYPE_REGISTERED, next, now, &actor, reason_text));
      } else {
        if (!changed.empty() && !OnlyStatusFields(changed)) {
          pb::AgentEvent ev =
              MakeEvent(pb::AGENT_EVENT_TYPE_UPDATED, next, now, &actor, reason_text);
          for (const std::string& f : changed) ev.add_changed_fields(f);
          events.push_back(std::move(ev));
        }
        if (Contains(changed, "status") || Contains(changed, "status_message")) {
          pb::AgentEvent ev =
              MakeEvent(pb::AGENT_EVENT_TYPE_STATUS_CHANGED, next, now, &actor, reason_text);
          ev.set_previous_status(before.status());
          events.push_back(std::move(ev));
        }
        if (health != before.health()) {
          pb::AgentEvent ev =
              MakeEvent(pb::AGENT_EVENT_TYPE_HEALTH_CHANGED, next, now, &actor, reason);
          ev.set_previous_health(before.health());
          events.push_back(std::move(ev));
        }
        e->pending = true;
      }
      op.upsert_index = static_cast<int>(batch.upserts.size());
      batch.upserts.push_back(RowOf(e != nullptr ? *e : *op.fresh, next));
      ops.push_back(std::move(op));
      response.set_upserted(response.upserted() + 1);
    }
    // Removals: listed as gone, or (full snapshot) not listed.
    absl::flat_hash_set<std::string> removing;
    auto remove = [&](Entry* e, const std::string& why) {
      if (!removing.insert(e->id).second) return;
      Op op;
      op.existing = e;
      op.remove = true;
      batch.deletes.push_back(e->rowid);
      events.push_back(MakeEvent(pb::AGENT_EVENT_TYPE_DEREGISTERED, e->v, now, &actor, why));
      e->pending = true;
      ops.push_back(std::move(op));
      response.set_removed(response.removed() + 1);
    };
    for (const std::string& id : r.removed_agent_ids()) {
      Entry* e = FindLocked(id);
      if (e == nullptr || !e->v.agent.remote() || e->v.agent.node() != origin ||
          listed.contains(id)) {
        continue;
      }
      remove(e, absl::StrCat("removed on node ", origin));
    }
    if (r.full_snapshot()) {
      auto it = node_ids_.find(origin);
      if (it != node_ids_.end()) {
        std::vector<Entry*> gone;
        for (const IdKey& key : nodes_[it->second].posting.ordered()) {
          Entry* e = entries_[key.second].get();
          if (e->v.agent.remote() && !listed.contains(e->id)) gone.push_back(e);
        }
        for (Entry* e : gone) remove(e, absl::StrCat("no longer listed by node ", origin));
      }
    }
    if (ops.empty()) return response;
  }
  absl::Status written = WriteLocked(last_sequence, &batch, &events);
  absl::MutexLock lock(&mu_);
  for (Op& op : ops) {
    if (op.existing != nullptr) op.existing->pending = false;
  }
  if (!written.ok()) return written;
  for (Op& op : ops) {
    if (op.remove) {
      RemoveLocked(op.existing);
    } else if (op.existing == nullptr) {
      Entry* e = op.fresh.get();
      e->rowid = batch.upserts[op.upsert_index].rowid;
      e->v = std::move(op.next);
      e->slot = AllocateSlot();
      entries_[e->slot] = std::move(op.fresh);
      IndexLocked(e);
      ScheduleLocked(e);
    } else {
      op.existing->dirty = false;
      ReplaceLocked(op.existing, std::move(op.next));
    }
  }
  PublishLocked(batch, &events);
  return response;
}

}  // namespace cnet::registry
