#include "libs/config/schema.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cnet::config {
namespace {

// Debian's Abseil has its own string_view type (not std::string_view).
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }
std::string_view Std(absl::string_view s) { return {s.data(), s.size()}; }

std::string JoinViews(const std::vector<std::string_view>& views) {
  std::string joined;
  for (std::string_view view : views) {
    if (!joined.empty()) joined += ", ";
    joined += view;
  }
  return joined;
}

// Fluent construction of one table row, so the table below reads as a list.
class Row {
 public:
  Row(std::string_view key, ValueType type, std::string_view default_value,
      std::string_view description) {
    spec_.key = key;
    spec_.type = type;
    spec_.default_value = default_value;
    spec_.description = description;
  }
  Row& Secret() {
    spec_.secret = true;
    return *this;
  }
  Row& Required() {
    spec_.required = true;
    return *this;
  }
  Row& RequiredWhen(std::string_view bool_key) {
    spec_.required_when = bool_key;
    return *this;
  }
  Row& Fmt(Format format) {
    spec_.format = format;
    return *this;
  }
  Row& Min(double min) {
    spec_.min = min;
    return *this;
  }
  Row& Max(double max) {
    spec_.max = max;
    return *this;
  }
  Row& Range(double min, double max) { return Min(min).Max(max); }
  Row& Allowed(std::vector<std::string_view> values) {
    spec_.allowed = std::move(values);
    return *this;
  }
  Row& Env(std::vector<std::string_view> aliases) {
    spec_.env_aliases = std::move(aliases);
    return *this;
  }
  operator KeySpec() const { return spec_; }  // NOLINT: builder conversion

 private:
  KeySpec spec_;
};

Row Str(std::string_view k, std::string_view def, std::string_view desc) {
  return Row(k, ValueType::kString, def, desc);
}
Row Int(std::string_view k, std::string_view def, std::string_view desc) {
  return Row(k, ValueType::kInt, def, desc);
}
Row Dbl(std::string_view k, std::string_view def, std::string_view desc) {
  return Row(k, ValueType::kDouble, def, desc);
}
Row Bool(std::string_view k, std::string_view def, std::string_view desc) {
  return Row(k, ValueType::kBool, def, desc);
}
Row Dur(std::string_view k, std::string_view def, std::string_view desc) {
  return Row(k, ValueType::kDuration, def, desc);
}
Row List(std::string_view k, std::string_view def, std::string_view desc) {
  return Row(k, ValueType::kStringList, def, desc);
}

constexpr double kMinute = 60;
constexpr double kHour = 3600;
constexpr double kDay = 24 * kHour;
constexpr double kMiB = 1024 * 1024;

std::vector<KeySpec> BuildSchema() {
  return {
      // firebase: the Realtime Database that carries traffic between nodes.
      Bool("firebase.enabled", "false",
           "Federate with other nodes through Firebase Realtime Database."),
      Str("firebase.url", "",
          "Database URL, e.g. https://my-net-default-rtdb.firebaseio.com.")
          .Fmt(Format::kUrl)
          .RequiredWhen("firebase.enabled")
          .Env({"FIREBASE_URL", "CLAUDE_FIREBASE_URL"}),
      Str("firebase.project_id", "", "Firebase project id.")
          .Env({"FIREBASE_PROJECT_ID", "CLAUDE_FIREBASE_PROJECT_ID"}),
      Str("firebase.api_key", "", "Firebase web API key.")
          .Secret()
          .Env({"FIREBASE_API_KEY", "CLAUDE_FIREBASE_API_KEY"}),
      Str("firebase.auth", "",
          "Database secret or ID token sent as auth= on every request.")
          .Secret()
          .Env({"FIREBASE_AUTH"}),
      Dur("firebase.timeout", "10s", "Deadline of one Firebase request.")
          .Range(0.1, 10 * kMinute)
          .Env({"CLAUDE_MESSAGE_TIMEOUT"}),
      Int("firebase.max_retries", "3",
          "Retries of a failed Firebase request before it is queued offline.")
          .Range(0, 100)
          .Env({"CLAUDE_MESSAGE_RETRY"}),
      Dur("firebase.stream_reconnect_max", "60s",
          "Longest wait between reconnects of the streaming listener.")
          .Range(1, kHour),

      // github: the fallback medium when Firebase stays down.
      Bool("github.enabled", "false",
           "Carry remote messages through GitHub Issues when Firebase fails."),
      Str("github.repo", "", "Repository holding the message issues, owner/name.")
          .Fmt(Format::kRepo)
          .RequiredWhen("github.enabled")
          .Env({"GITHUB_REPO", "CLAUDE_GITHUB_REPO"}),
      Str("github.token", "", "GitHub token with issues read/write access.")
          .Secret()
          .RequiredWhen("github.enabled")
          .Env({"GITHUB_TOKEN", "CLAUDE_GITHUB_TOKEN"}),
      Str("github.api_url", "https://api.github.com", "GitHub REST API base URL.")
          .Fmt(Format::kUrl)
          .Required(),
      List("github.labels", "claude-network",
           "Labels marking this network's issues."),
      Dur("github.poll_interval", "30s", "Interval between issue polls.")
          .Range(1, kHour),
      Dur("github.fallback_after", "5m",
          "How long Firebase must keep failing before GitHub takes over.")
          .Range(1, kDay),

      // agent: the identity of the local agent (used by cnet).
      Str("agent.id", "", "Agent id; empty = generated at registration.")
          .Env({"CLAUDE_AGENT_ID"}),
      Str("agent.name", "", "Human-readable agent name; empty = the hostname.")
          .Env({"CLAUDE_AGENT_NAME"}),
      List("agent.capabilities", "",
           "Capabilities the agent offers, each [a-z0-9._-]{1,64}.")
          .Fmt(Format::kName)
          .Env({"CLAUDE_AGENT_CAPABILITIES"}),
      Str("agent.surface", "desktop", "Where the agent runs.")
          .Required()
          .Allowed({"desktop", "laptop", "server", "cloud", "cli", "web",
                    "mobile"})
          .Env({"CLAUDE_AGENT_SURFACE"}),
      Str("agent.location", "", "Free-form location, e.g. a city or a rack.")
          .Env({"CLAUDE_AGENT_LOCATION"}),

      // network: presence and measured health.
      Str("network.node_id", "", "This computer's node id; empty = hostname."),
      Dur("network.heartbeat_interval", "15s",
          "How often agents send a heartbeat.")
          .Range(1, kHour)
          .Env({"CLAUDE_AGENT_HEARTBEAT"}),
      Dur("network.presence_update_interval", "15s",
          "How often presence is mirrored to Firebase.")
          .Range(1, kHour),
      Dur("network.health.healthy_max", "30s",
          "Heartbeat age up to which an agent is HEALTHY.")
          .Range(1, kDay),
      Dur("network.health.warning_max", "60s",
          "Heartbeat age up to which an agent is WARNING.")
          .Range(1, kDay),
      Dur("network.health.critical_max", "90s",
          "Heartbeat age up to which an agent is CRITICAL; DEAD after.")
          .Range(1, kDay),
      Int("network.health.recovery_heartbeats", "2",
          "On-time heartbeats a CRITICAL/DEAD agent needs to be HEALTHY again.")
          .Range(1, 100),
      Dbl("network.health.error_rate_warning", "0.1",
          "Error rate (0..1) above which a HEALTHY agent is WARNING.")
          .Range(0, 1),
      Dur("network.dead_retention", "24h",
          "How long DEAD agents stay listed before they are pruned.")
          .Range(0, 365 * kDay),
      Dur("network.restart_grace", "60s",
          "Grace after a registry restart before missed heartbeats count.")
          .Range(0, kDay),
      Int("network.event_retention", "10000",
          "Registry events kept for Watch resume (events).")
          .Range(0, 10000000),

      // registry: agent registration, tokens and the event stream.
      Bool("registry.open_registration", "true",
           "Anyone may register a new agent id; false = admin or service "
           "credential only."),
      Str("registry.public_base_url", "",
          "Base URL of agent cards without their own url (<base>/agents/<id>); "
          "empty = claudenet://<node>/agents/<id>.")
          .Fmt(Format::kUrl),
      Int("registry.default_agent_concurrency", "1",
          "Tasks an agent may hold at once when it does not set "
          "max_concurrent_tasks.")
          .Range(1, 1000),
      Int("registry.max_agents", "1000000",
          "Most agents (local and remote) the registry holds.")
          .Range(1, 100000000),
      Dur("registry.token_cache_ttl", "30s",
          "How long other services may cache a token validation.")
          .Range(0, kHour),
      Dur("registry.flush_interval", "1s",
          "Heartbeat data (last seen, metrics) is persisted in batches this "
          "often.")
          .Range(0.01, kMinute),
      Dur("registry.rotate_min_interval", "10s",
          "Shortest time between two token rotations of one agent.")
          .Range(0, kHour),
      Int("registry.watch_buffer", "4096",
          "Events buffered per Watch stream before it must resynchronize.")
          .Range(16, 1000000),
      Int("registry.max_watchers_per_caller", "64",
          "Watch streams one credential may hold open at once.")
          .Range(1, 100000),

      // security: signing, replay protection, credentials and TLS.
      Bool("security.use_message_signing", "true",
           "Sign messages with HMAC-SHA256 and verify them on receipt.")
          .Env({"CLAUDE_ENABLE_SIGNING"}),
      Str("security.shared_secret", "", "Network-wide HMAC key for messages.")
          .Secret()
          .Env({"CLAUDE_SHARED_SECRET"}),
      Str("security.admin_token", "",
          "Credential for admin operations; empty = <data_dir>/admin.token, "
          "created on first use (0600).")
          .Secret(),
      Str("security.service_credential", "",
          "Credential the services use to call each other; empty = "
          "<data_dir>/service.token, created on first use (0600).")
          .Secret(),
      Dur("security.timestamp_window", "5m",
          "Accepted clock skew of a message timestamp (+/-).")
          .Range(1, kDay),
      Dur("security.dedupe_window", "24h",
          "How long message ids are remembered to reject replays.")
          .Range(kMinute, 30 * kDay),
      Bool("security.tls.enabled", "false", "Serve gRPC over TLS."),
      Str("security.tls.cert_file", "", "PEM certificate chain of the service.")
          .Fmt(Format::kPath)
          .RequiredWhen("security.tls.enabled"),
      Str("security.tls.key_file", "", "PEM private key of the service.")
          .Fmt(Format::kPath)
          .RequiredWhen("security.tls.enabled"),
      Str("security.tls.ca_file", "", "PEM CA bundle to verify peers.")
          .Fmt(Format::kPath)
          .RequiredWhen("security.tls.require_client_cert"),
      Bool("security.tls.require_client_cert", "false",
           "Require and verify client certificates (mutual TLS)."),
      Bool("security.allow_insecure", "false",
           "Allow plaintext on a non-loopback bind address."),
      Bool("security.require_agent_signatures", "false",
           "Refuse agent messages without a valid Ed25519 signature by the "
           "sender's registered key (service-credential senders exempt)."),

      // services: where the suite listens and keeps its files.
      Str("services.data_dir", "~/.claude-network/data",
          "Directory of the services' databases and runtime overrides.")
          .Fmt(Format::kPath)
          .Required()
          .Env({"CLAUDE_DATA_DIR"}),
      Str("services.log_dir", "~/.claude-network/logs",
          "Directory of the services' log files.")
          .Fmt(Format::kPath)
          .Required(),
      Str("services.bind_host", "127.0.0.1", "Host the services listen on.")
          .Required(),
      Str("services.registry_addr", "127.0.0.1:7101", "Registry address.")
          .Fmt(Format::kHostPort)
          .Required(),
      Str("services.macs_addr", "127.0.0.1:7102", "MACS gateway address.")
          .Fmt(Format::kHostPort)
          .Required(),
      Str("services.tasks_addr", "127.0.0.1:7103", "Tasks service address.")
          .Fmt(Format::kHostPort)
          .Required(),
      Str("services.skills_addr", "127.0.0.1:7104", "Skills service address.")
          .Fmt(Format::kHostPort)
          .Required(),
      Str("services.config_addr", "127.0.0.1:7105", "Config service address.")
          .Fmt(Format::kHostPort)
          .Required(),
      Bool("services.metrics_enabled", "true",
           "Serve Prometheus metrics over HTTP."),
      Int("services.registry_metrics_port", "9101", "Registry metrics port.")
          .Range(0, 65535),
      Int("services.macs_metrics_port", "9102", "MACS gateway metrics port.")
          .Range(0, 65535),
      Int("services.tasks_metrics_port", "9103", "Tasks metrics port.")
          .Range(0, 65535),
      Int("services.skills_metrics_port", "9104", "Skills metrics port.")
          .Range(0, 65535),
      Int("services.config_metrics_port", "9105", "Config metrics port.")
          .Range(0, 65535),
      Dur("services.drain_timeout", "5s",
          "How long shutdown waits for in-flight calls.")
          .Range(0, 5 * kMinute),

      // limits: protection against overload and oversize input.
      Dbl("limits.rate_limit_per_sec", "100",
          "Messages per second each sender may send (token bucket rate).")
          .Range(0.001, 1e6),
      Int("limits.rate_limit_burst", "200", "Token bucket size (messages).")
          .Range(1, 1000000),
      Int("limits.max_subject_bytes", "256", "Largest message subject (bytes).")
          .Range(1, 65536),
      Int("limits.max_message_bytes", "262144",
          "Largest body + payload of a message (bytes).")
          .Range(1, 64 * kMiB),
      Int("limits.inbox_cap", "10000", "Most messages held in one inbox.")
          .Range(1, 10000000),
      Dur("limits.ack_timeout", "30s",
          "Time after which an unacknowledged message is redelivered.")
          .Range(1, kDay),
      Int("limits.max_deliveries", "5",
          "Deliveries before a message is dead-lettered.")
          .Range(1, 1000),
      Int("limits.max_page_size", "1000", "Largest page a List call returns.")
          .Range(1, 100000),
      Int("limits.max_capabilities", "64", "Most capabilities per agent.")
          .Range(1, 1024),
      Dur("limits.lease_duration", "60s", "Lease of an assigned/running task.")
          .Range(1, kDay),
      Int("limits.max_streams_per_caller", "256",
          "Streaming calls (Subscribe, Watch, WatchRun, ...) one caller may have open on one "
          "service at once; anonymous callers count per peer address.")
          .Range(1, 1000000),
      Int("limits.max_skill_runs", "50", "Skill runs executing at once.")
          .Range(1, 10000),

      Dur("limits.default_message_ttl", "24h",
          "Time to live of a message that sets none.")
          .Range(1, 365 * kDay),
      Dur("limits.max_message_ttl", "168h",
          "Longest time to live a message may ask for.")
          .Range(1, 365 * kDay),

      // macs: the messaging gateway's own knobs.
      Int("macs.max_subscribers_per_agent", "8",
          "Open Subscribe streams one agent may have at once.")
          .Range(1, 1000),
      Dur("macs.retention", "168h",
          "How long acknowledged and expired copies stay visible after they end.")
          .Range(kMinute, 365 * kDay),
      Bool("macs.fsync", "true",
           "Fsync every commit (power-loss safe); false survives kill -9 only."),
      Int("macs.group_commit_max_batch", "1024",
          "Most operations that share one transaction and fsync.")
          .Range(1, 100000),
      List("macs.agent_hmac_keys", "",
           "Per-agent HMAC keys as agent_id=key; other agents use security.shared_secret.")
          .Secret(),

      // tasks: the task board's scheduling knobs.
      Dur("tasks.aging_interval", "60s",
          "Waiting time that lifts a queued task by one priority step.")
          .Range(1, kDay),
      Int("tasks.steal_threshold", "2",
          "Assigned-not-running tasks an agent must exceed to be stolen from.")
          .Range(1, 1000),
      Int("tasks.default_max_attempts", "3",
          "Attempts of a task that does not set its own.")
          .Range(1, 100),
      Bool("tasks.push_assignment", "true",
           "The scheduler assigns eligible tasks to capable agents (else pull only)."),
      Dur("tasks.sweep_interval", "5s",
          "Period of the scheduler sweep: push retries and no-eligible-agent alerts.")
          .Range(0.1, kHour),
      Dur("tasks.review_reopen_window", "24h",
          "How long after approval the author may resubmit a new commit for review.")
          .Range(0, 30 * kDay),
      Dur("tasks.restart_grace", "30s",
          "Extra time given at start to leases that lapsed while the service was down.")
          .Range(0, kHour),
      Int("tasks.event_retention", "100000",
          "Board events kept for Watch resume.")
          .Range(1000, 100000000),
      Int("tasks.max_watchers", "256", "Watch streams open at once.")
          .Range(1, 100000),
      Int("tasks.max_watchers_per_caller", "16",
          "Watch streams one caller (agent, or a service on its behalf) may hold open.")
          .Range(1, 100000),
      Dbl("tasks.create_rate_per_agent", "50",
          "Tasks one agent may create per second on average (0 = unlimited); admin exempt.")
          .Range(0, 1000000),
      Int("tasks.create_burst_per_agent", "500",
          "Tasks one agent may create at once before tasks.create_rate_per_agent applies.")
          .Range(1, 1000000),
      Dur("tasks.reservation_ttl", "15m",
          "Default TTL of a path reservation (renewed like a lease).")
          .Range(10, kDay),
      Dur("tasks.reservation_warning", "2m",
          "How long before expiry a holder gets RESERVATION_EXPIRING_SOON; 0 = never.")
          .Range(0, kHour),
      Int("tasks.max_reservations_per_agent", "1000",
          "Path reservations one agent may hold.")
          .Range(1, 1000000),
      Dur("tasks.changed_paths_ttl", "1h",
          "How long a changed-paths report counts for overlap detection.")
          .Range(kMinute, 7 * kDay),
      Bool("tasks.sync_full", "false",
           "fsync every commit (survives power loss); default survives process crashes."),

      // skills: the skill library and its sandbox.
      Str("skills.library_dir", "skills",
          "Directory of skill YAML files; relative to the working directory.")
          .Fmt(Format::kPath)
          .Required(),
      List("skills.shell_allowlist", "",
           "Commands the shell action may run; empty = shell disabled."),
      Dur("skills.shell_timeout", "30s", "Deadline of one shell step.")
          .Range(0.001, kHour),
      Int("skills.step_output_cap", "65536",
          "Largest output kept from one step (bytes).")
          .Range(0, 64 * kMiB),
      Dur("skills.default_step_timeout", "30s",
          "Per-attempt limit of an action step that sets no timeout.")
          .Range(0.001, kDay),
      Dur("skills.default_run_timeout", "10m",
          "Limit of a run when RunSkill gives none (requests may ask 1s..24h).")
          .Range(1, kDay),
      Int("skills.max_runs_per_agent", "25",
          "Skill runs one agent may have in flight at once.")
          .Range(1, 10000),
      Int("skills.worker_threads", "8",
          "Threads that execute steps (parallel groups share them).")
          .Range(1, 256),
      Int("skills.blocking_threads", "32",
          "Threads for actions that wait on I/O (calls to other services, shell).")
          .Range(1, 1024),
      Bool("skills.watch_library", "true",
           "Reload the skill library when its files change (inotify)."),

      // offline: retry of outgoing remote traffic while Firebase is down.
      Dur("offline.backoff_base", "1s", "First retry delay.")
          .Range(0.001, kHour),
      Dbl("offline.backoff_factor", "2", "Growth of the delay per retry.")
          .Range(1, 10),
      Dur("offline.backoff_max", "60s", "Longest retry delay.")
          .Range(0.001, kDay),

      // federation: the message path between nodes (macs-gateway).
      Dur("federation.poll_interval", "1s",
          "How often the gateway re-reads its Firebase inbox and receipts (the stream "
          "wakes it sooner).")
          .Range(0.01, kHour),
      Int("federation.batch_max_messages", "500",
          "Most envelopes in one Firebase multi-path write or read.")
          .Range(1, 10000),
      Int("federation.batch_max_bytes", "4194304",
          "Most bytes in one Firebase multi-path write.")
          .Range(1024, 256 * kMiB),
      Dur("federation.hold_timeout", "60s",
          "How long an arriving message waits for its predecessor (possibly still in a "
          "GitHub issue) before it is delivered anyway.")
          .Range(0, kHour),
      Str("federation.import_offline_queue", "",
          "A seed offline-queue.json to import into the outbox at start (renamed to "
          "*.imported after); empty = none."),
      Dur("federation.remote_task_timeout", "30s",
          "How long an operation on a task owned by another node (RemoteTaskService: "
          "claim, progress, complete, ...) waits for the owner's answer through Firebase.")
          .Range(1, kHour),

      // log: what the services log and how.
      Str("log.level", "INFO", "Least severe level that is logged.")
          .Required()
          .Allowed({"DEBUG", "INFO", "WARNING", "ERROR"})
          .Env({"CLAUDE_LOG_LEVEL"}),
      Bool("log.json", "true", "One JSON object per log line."),
  };
}

struct Index {
  std::unordered_map<std::string_view, int> by_key;
  std::unordered_set<std::string> sections;
};

const Index& GetIndex() {
  static const Index* const index = [] {
    auto* built = new Index;
    const std::vector<KeySpec>& schema = Schema();
    for (size_t i = 0; i < schema.size(); ++i) {
      std::string_view key = schema[i].key;
      built->by_key.emplace(key, static_cast<int>(i));
      for (size_t dot = key.find('.'); dot != std::string_view::npos;
           dot = key.find('.', dot + 1)) {
        built->sections.emplace(key.substr(0, dot));
      }
    }
    return built;
  }();
  return *index;
}

// Levenshtein distance, case-insensitive.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      bool same = absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string_view LastSegment(std::string_view key) {
  size_t dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

std::string_view Parent(std::string_view key) {
  size_t dot = key.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : key.substr(0, dot);
}

absl::Status Invalid(std::string_view reason) {
  return absl::InvalidArgumentError(Sv(reason));
}

// `got "text"`, or a neutral phrase for secrets so they never reach a log.
std::string Got(const KeySpec& spec, std::string_view text) {
  if (spec.secret) return "got an invalid value";
  // Echo at most 80 bytes: a hostile value must not make a huge message.
  constexpr size_t kMaxEcho = 80;
  if (text.size() > kMaxEcho) {
    return absl::StrCat("got \"", absl::CEscape(Sv(text.substr(0, kMaxEcho))), "\"... (",
                        text.size(), " bytes)");
  }
  return absl::StrCat("got \"", absl::CEscape(Sv(text)), "\"");
}

std::string FormatDouble(double value) {
  for (int precision = 6; precision <= 17; ++precision) {
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    double back = 0;
    if (absl::SimpleAtod(buffer, &back) && back == value) return buffer;
  }
  return absl::StrCat(value);
}

// Renders a bound in the key's own unit, e.g. "1s" or "65535".
std::string FormatBound(const KeySpec& spec, double bound) {
  if (spec.type == ValueType::kDuration) {
    return absl::FormatDuration(absl::Milliseconds(std::llround(bound * 1000)));
  }
  if (spec.type == ValueType::kInt) {
    return absl::StrCat(static_cast<int64_t>(bound));
  }
  return FormatDouble(bound);
}

absl::Status CheckBounds(const KeySpec& spec, double value,
                         std::string_view rendered) {
  bool low = spec.min.has_value() && value < *spec.min;
  bool high = spec.max.has_value() && value > *spec.max;
  if (!low && !high) return absl::OkStatus();
  if (spec.min.has_value() && spec.max.has_value()) {
    return Invalid(absl::StrCat("must be between ", FormatBound(spec, *spec.min),
                                " and ", FormatBound(spec, *spec.max), ", got ",
                                Sv(rendered)));
  }
  if (low) {
    return Invalid(absl::StrCat("must be at least ", FormatBound(spec, *spec.min),
                                ", got ", Sv(rendered)));
  }
  return Invalid(absl::StrCat("must be at most ", FormatBound(spec, *spec.max),
                              ", got ", Sv(rendered)));
}

bool IsNameChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' ||
         c == '_' || c == '-';
}

bool IsRepoChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
}

absl::Status CheckFormat(const KeySpec& spec, std::string_view text) {
  if (text.empty()) return absl::OkStatus();
  switch (spec.format) {
    case Format::kNone:
    case Format::kPath:
      return absl::OkStatus();
    case Format::kUrl: {
      bool https = absl::StartsWith(Sv(text), "https://") && text.size() > 8;
      bool local = false;
      for (std::string_view prefix : {"http://127.0.0.1", "http://localhost"}) {
        if (absl::StartsWith(Sv(text), Sv(prefix))) {
          std::string_view rest = text.substr(prefix.size());
          local = rest.empty() || rest[0] == ':' || rest[0] == '/';
        }
      }
      if (https || local) return absl::OkStatus();
      return Invalid(absl::StrCat(
          "expected an https:// URL (http:// only for 127.0.0.1 or "
          "localhost), ",
          Got(spec, text)));
    }
    case Format::kHostPort: {
      if (absl::StartsWith(Sv(text), "unix:") && text.size() > 5) {
        return absl::OkStatus();
      }
      size_t colon = text.rfind(':');
      int port = -1;
      if (colon != std::string_view::npos && colon > 0 &&
          colon + 1 < text.size() &&
          std::all_of(text.begin() + colon + 1, text.end(),
                      [](char c) { return absl::ascii_isdigit(c); }) &&
          absl::SimpleAtoi(Sv(text.substr(colon + 1)), &port) && port <= 65535) {
        return absl::OkStatus();
      }
      return Invalid(absl::StrCat("expected host:port with port 0..65535, ",
                                  Got(spec, text)));
    }
    case Format::kRepo: {
      std::vector<absl::string_view> parts = absl::StrSplit(Sv(text), '/');
      bool ok = parts.size() == 2;
      for (absl::string_view part : parts) {
        ok = ok && !part.empty() &&
             std::all_of(part.begin(), part.end(), IsRepoChar);
      }
      if (ok) return absl::OkStatus();
      return Invalid(
          absl::StrCat("expected a repository as owner/name, ", Got(spec, text)));
    }
    case Format::kName: {
      if (text.size() <= 64 && std::all_of(text.begin(), text.end(), IsNameChar)) {
        return absl::OkStatus();
      }
      return Invalid(absl::StrCat("expected a name of 1 to 64 characters in "
                                  "[a-z0-9._-], ",
                                  Got(spec, text)));
    }
  }
  return absl::OkStatus();
}

std::string ExpandHome(std::string_view text, std::string_view home_dir) {
  if (home_dir.empty()) return std::string(text);
  if (text == "~") return std::string(home_dir);
  if (absl::StartsWith(Sv(text), "~/")) {
    return absl::StrCat(absl::StripSuffix(Sv(home_dir), "/"), Sv(text.substr(1)));
  }
  return std::string(text);
}

absl::StatusOr<ParsedValue> ParseString(const KeySpec& spec,
                                        std::string_view text,
                                        std::string_view home_dir) {
  std::string value(text);
  if (!spec.allowed.empty()) {
    auto match = std::find_if(spec.allowed.begin(), spec.allowed.end(),
                              [&](std::string_view allowed) {
                                return absl::EqualsIgnoreCase(Sv(allowed), Sv(text));
                              });
    if (match == spec.allowed.end()) {
      return Invalid(absl::StrCat("must be one of ",
                                  JoinViews(spec.allowed), "; ",
                                  Got(spec, text)));
    }
    value = std::string(*match);
  }
  if (spec.required && value.empty()) return Invalid("must not be empty");
  absl::Status format = CheckFormat(spec, value);
  if (!format.ok()) return format;
  if (spec.format == Format::kPath) value = ExpandHome(value, home_dir);
  return ParsedValue{value, value};
}

absl::StatusOr<ParsedValue> ParseInt(const KeySpec& spec,
                                     std::string_view text) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(Sv(text), &value)) {
    return Invalid(absl::StrCat("expected an integer, ", Got(spec, text)));
  }
  std::string canonical = absl::StrCat(value);
  absl::Status bounds = CheckBounds(spec, static_cast<double>(value), canonical);
  if (!bounds.ok()) return bounds;
  return ParsedValue{value, canonical};
}

absl::StatusOr<ParsedValue> ParseDouble(const KeySpec& spec,
                                        std::string_view text) {
  double value = 0;
  if (!absl::SimpleAtod(Sv(text), &value) || !std::isfinite(value)) {
    return Invalid(absl::StrCat("expected a number, ", Got(spec, text)));
  }
  std::string canonical = FormatDouble(value);
  absl::Status bounds = CheckBounds(spec, value, canonical);
  if (!bounds.ok()) return bounds;
  return ParsedValue{value, canonical};
}

absl::StatusOr<ParsedValue> ParseBool(const KeySpec& spec,
                                      std::string_view text) {
  for (std::string_view yes : {"true", "yes", "1"}) {
    if (absl::EqualsIgnoreCase(Sv(text), Sv(yes))) return ParsedValue{true, "true"};
  }
  for (std::string_view no : {"false", "no", "0"}) {
    if (absl::EqualsIgnoreCase(Sv(text), Sv(no))) return ParsedValue{false, "false"};
  }
  return Invalid(
      absl::StrCat("expected true/false/yes/no/1/0, ", Got(spec, text)));
}

absl::StatusOr<ParsedValue> ParseDuration(const KeySpec& spec,
                                          std::string_view text) {
  absl::Duration value;
  double seconds = 0;
  bool ok = false;
  if (absl::SimpleAtod(Sv(text), &seconds)) {
    // A bare number means seconds, as the seed writes `timeout: 30`.
    ok = std::isfinite(seconds);
    if (ok) value = absl::Milliseconds(std::llround(seconds * 1000));
  } else {
    ok = absl::ParseDuration(std::string(text), &value) &&
         value != absl::InfiniteDuration() &&
         value != -absl::InfiniteDuration();
  }
  if (!ok) {
    return Invalid(absl::StrCat("expected a duration like \"15s\", ",
                                Got(spec, text)));
  }
  if (value < absl::ZeroDuration()) {
    return Invalid(absl::StrCat("must not be negative, ", Got(spec, text)));
  }
  std::string canonical = absl::FormatDuration(value);
  absl::Status bounds =
      CheckBounds(spec, absl::ToDoubleSeconds(value), canonical);
  if (!bounds.ok()) return bounds;
  return ParsedValue{value, canonical};
}

}  // namespace

std::string_view ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kString:
      return "string";
    case ValueType::kInt:
      return "integer";
    case ValueType::kDouble:
      return "number";
    case ValueType::kBool:
      return "bool";
    case ValueType::kDuration:
      return "duration";
    case ValueType::kStringList:
      return "list";
  }
  return "unknown";
}

const std::vector<KeySpec>& Schema() {
  static const std::vector<KeySpec>* const schema =
      new std::vector<KeySpec>(BuildSchema());
  return *schema;
}

const std::vector<Ordering>& Orderings() {
  static const std::vector<Ordering>* const orderings =
      new std::vector<Ordering>{
          {"network.heartbeat_interval", "network.health.healthy_max", true},
          {"network.health.healthy_max", "network.health.warning_max", true},
          {"network.health.warning_max", "network.health.critical_max", true},
          {"offline.backoff_base", "offline.backoff_max", false},
          {"limits.default_message_ttl", "limits.max_message_ttl", false},
      };
  return *orderings;
}

int KeyIndex(std::string_view key) {
  const auto& by_key = GetIndex().by_key;
  auto it = by_key.find(key);
  return it == by_key.end() ? -1 : it->second;
}

const KeySpec* FindKey(std::string_view key) {
  int index = KeyIndex(key);
  return index < 0 ? nullptr : &Schema()[index];
}

bool IsSection(std::string_view prefix) {
  return GetIndex().sections.count(std::string(prefix)) > 0;
}

std::string SuggestKey(std::string_view unknown) {
  // The best of three measures wins: the whole dotted name (catches a
  // misspelled section), the last segment against siblings in the same
  // section (a misspelled key, whatever the section's length), and a
  // truncated last segment.
  std::vector<std::string_view> candidates;
  for (const KeySpec& spec : Schema()) candidates.push_back(spec.key);
  for (const std::string& section : GetIndex().sections) {
    candidates.push_back(section);
  }
  constexpr size_t kTooFar = std::numeric_limits<size_t>::max();
  std::string_view best;
  size_t best_distance = kTooFar;
  for (std::string_view candidate : candidates) {
    size_t whole = EditDistance(unknown, candidate);
    size_t distance =
        whole <= std::max<size_t>(2, candidate.size() / 5) ? whole : kTooFar;
    if (absl::EqualsIgnoreCase(Sv(Parent(unknown)), Sv(Parent(candidate)))) {
      std::string_view a = LastSegment(unknown);
      std::string_view b = LastSegment(candidate);
      size_t last = EditDistance(a, b);
      if (last <= std::max<size_t>(2, b.size() / 3)) {
        distance = std::min(distance, last);
      } else if (a.size() >= 3 && absl::StartsWithIgnoreCase(Sv(b), Sv(a))) {
        // A truncated name ("cert" for "cert_file") ranks after true typos.
        distance = std::min<size_t>(distance, 3);
      }
    }
    if (distance == kTooFar) continue;
    if (distance < best_distance ||
        (distance == best_distance && candidate < best)) {
      best = candidate;
      best_distance = distance;
    }
  }
  return std::string(best);
}

std::string GenericEnvName(std::string_view key) {
  return absl::StrCat("CNET_",
                      absl::AsciiStrToUpper(absl::StrReplaceAll(Sv(key), {{".", "__"}})));
}

absl::StatusOr<ParsedValue> ParseText(const KeySpec& spec,
                                      std::string_view text,
                                      std::string_view home_dir) {
  switch (spec.type) {
    case ValueType::kString:
      return ParseString(spec, text, home_dir);
    case ValueType::kInt:
      return ParseInt(spec, Std(absl::StripAsciiWhitespace(Sv(text))));
    case ValueType::kDouble:
      return ParseDouble(spec, Std(absl::StripAsciiWhitespace(Sv(text))));
    case ValueType::kBool:
      return ParseBool(spec, Std(absl::StripAsciiWhitespace(Sv(text))));
    case ValueType::kDuration:
      return ParseDuration(spec, Std(absl::StripAsciiWhitespace(Sv(text))));
    case ValueType::kStringList: {
      std::vector<std::string> items;
      for (absl::string_view item : absl::StrSplit(Sv(text), ',')) {
        item = absl::StripAsciiWhitespace(item);
        if (!item.empty()) items.emplace_back(item);
      }
      return ParseItems(spec, items, home_dir);
    }
  }
  return Invalid("unsupported type");
}

absl::StatusOr<ParsedValue> ParseItems(const KeySpec& spec,
                                       const std::vector<std::string>& items,
                                       std::string_view home_dir) {
  if (spec.type != ValueType::kStringList) {
    return Invalid(absl::StrCat("expected one ", Sv(ValueTypeName(spec.type)),
                                " value, got a list"));
  }
  std::vector<std::string> values;
  for (const std::string& item : items) {
    if (item.empty()) return Invalid("list items must not be empty");
    if (absl::StrContains(item, ',')) {
      return Invalid(absl::StrCat("list items must not contain ',', ",
                                  Got(spec, item)));
    }
    absl::Status format = CheckFormat(spec, item);
    if (!format.ok()) return format;
    values.push_back(spec.format == Format::kPath ? ExpandHome(item, home_dir)
                                                  : item);
  }
  if (spec.required && values.empty()) return Invalid("must not be empty");
  std::string canonical = absl::StrJoin(values, ",");
  return ParsedValue{std::move(values), std::move(canonical)};
}

double NumericValue(const Value& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) {
    return static_cast<double>(*i);
  }
  if (const auto* d = std::get_if<double>(&value)) return *d;
  if (const auto* duration = std::get_if<absl::Duration>(&value)) {
    return absl::ToDoubleSeconds(*duration);
  }
  return 0;
}

}  // namespace cnet::config
