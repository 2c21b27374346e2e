#include "services/tasks/board.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "libs/crypto/crypto.h"
#include "libs/status/macros.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

namespace {

absl::string_view Sv(const std::string& s) { return {s.data(), s.size()}; }

// --- executors ---------------------------------------------------------------

class InlineExecutor final : public Executor {
 public:
  void Post(std::function<void()> fn) override { fn(); }
};

// One worker thread draining a queue; stops (dropping what is left) on
// destruction.
class ThreadExecutor final : public Executor {
 public:
  ThreadExecutor() : thread_([this] { Loop(); }) {}
  ~ThreadExecutor() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Post(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    while (true) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

// --- validation ----------------------------------------------------------------

bool IsLowerHex(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool ValidSha(const std::string& s) { return (s.size() == 40 || s.size() == 64) && IsLowerHex(s); }

std::string Quote(const std::string& s) {
  std::string shown = s.size() > 80 ? s.substr(0, 77) + "..." : s;
  return absl::StrCat("\"", absl::CHexEscape(shown), "\"");
}

absl::Status CheckBytes(const std::string& field, const std::string& value, size_t max,
                        bool required = false) {
  if (required && value.empty()) return InvalidArgument(absl::StrCat(field, ": required"));
  if (value.size() > max) {
    return InvalidArgument(
        absl::StrCat(field, ": longer than ", max, " bytes (", value.size(), ")"));
  }
  return absl::OkStatus();
}

// Size of a Struct as JSON; INVALID_ARGUMENT when it cannot be rendered
// (NaN or Infinity) or is larger than `max`.
absl::Status CheckStruct(const std::string& field, const google::protobuf::Struct& s,
                         size_t max) {
  size_t binary = s.ByteSizeLong();
  if (binary == 0) return absl::OkStatus();
  for (const auto& [key, value] : s.fields()) {
    (void)key;
    if (value.kind_case() == google::protobuf::Value::kNumberValue &&
        !std::isfinite(value.number_value())) {
      return InvalidArgument(absl::StrCat(field, ": numbers must be finite"));
    }
  }
  // JSON is at most ~6x the binary size (escapes); skip rendering when the
  // binary form is small enough that the JSON cannot exceed the limit.
  if (binary * 6 <= max) return absl::OkStatus();
  std::string json;
  auto st = google::protobuf::util::MessageToJsonString(s, &json);
  if (!st.ok()) {
    return InvalidArgument(absl::StrCat(field, ": cannot be rendered as JSON (",
                                        std::string(st.message()), ")"));
  }
  if (json.size() > max) {
    return InvalidArgument(
        absl::StrCat(field, ": larger than ", max, " bytes as JSON (", json.size(), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckCapabilities(const std::string& field,
                               const google::protobuf::RepeatedPtrField<std::string>& caps) {
  if (caps.size() > 64) {
    return InvalidArgument(absl::StrCat(field, ": more than 64 capabilities (", caps.size(), ")"));
  }
  for (int i = 0; i < caps.size(); ++i) {
    if (!ValidCapability(caps[i])) {
      return InvalidArgument(absl::StrCat(field, "[", i, "] ", Quote(caps[i]),
                                          ": must match [a-z0-9._-]{1,64}"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTags(const std::string& field,
                       const google::protobuf::RepeatedPtrField<std::string>& tags) {
  if (tags.size() > 32) {
    return InvalidArgument(absl::StrCat(field, ": more than 32 tags (", tags.size(), ")"));
  }
  for (int i = 0; i < tags.size(); ++i) {
    if (!ValidTag(tags[i])) {
      return InvalidArgument(
          absl::StrCat(field, "[", i, "] ", Quote(tags[i]), ": must match [a-z0-9._:-]{1,64}"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPriority(const std::string& field, int priority) {
  if (priority < 0 || priority > 5) {
    return InvalidArgument(
        absl::StrCat(field, ": priority out of range (", priority, "); must be 0..5"));
  }
  return absl::OkStatus();
}

absl::Status CheckMaxAttempts(const std::string& field, int max_attempts) {
  if (max_attempts < 0 || max_attempts > 100) {
    return InvalidArgument(absl::StrCat(field, ": ", max_attempts, " is outside 0..100"));
  }
  return absl::OkStatus();
}

absl::Status CheckReview(const std::string& field, const pb::ReviewPolicy& r) {
  if (!r.reviewer_agent_id().empty() && !ValidAgentId(r.reviewer_agent_id())) {
    return InvalidArgument(absl::StrCat(field, ".reviewer_agent_id ",
                                        Quote(r.reviewer_agent_id()), ": not a valid agent id"));
  }
  if (!r.reviewer_capability().empty() && !ValidCapability(r.reviewer_capability())) {
    return InvalidArgument(absl::StrCat(field, ".reviewer_capability ",
                                        Quote(r.reviewer_capability()),
                                        ": must match [a-z0-9._-]{1,64}"));
  }
  if (r.required_approvals() < 0 || r.required_approvals() > 5) {
    return InvalidArgument(absl::StrCat(field, ".required_approvals: ", r.required_approvals(),
                                        " is outside 0..5"));
  }
  if (!r.required() && (!r.reviewer_agent_id().empty() || !r.reviewer_capability().empty() ||
                        r.required_approvals() != 0)) {
    return InvalidArgument(
        absl::StrCat(field, ": reviewer fields are set but required is false"));
  }
  return absl::OkStatus();
}

absl::Status CheckAcceptance(const std::string& field, const pb::AcceptanceChecks& a) {
  for (int i = 0; i < a.required_evidence_size(); ++i) {
    int kind = a.required_evidence(i);
    if (kind <= pb::EVIDENCE_KIND_UNSPECIFIED || kind > pb::EVIDENCE_KIND_LINK) {
      return InvalidArgument(absl::StrCat(field, ".required_evidence[", i, "]: ", kind,
                                          " is not an evidence kind"));
    }
  }
  if (a.required_artifacts_size() > 32) {
    return InvalidArgument(absl::StrCat(field, ".required_artifacts: more than 32"));
  }
  for (int i = 0; i < a.required_artifacts_size(); ++i) {
    const std::string& name = a.required_artifacts(i);
    if (name.empty() || name.size() > 256) {
      return InvalidArgument(absl::StrCat(field, ".required_artifacts[", i,
                                          "]: must be 1..256 bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLeaseDuration(const std::string& field, const google::protobuf::Duration& d,
                                bool present, const BoardOptions& o) {
  if (!present) return absl::OkStatus();
  absl::Duration v = FromProtoDuration(d);
  if (v < o.min_lease || v > o.max_lease) {
    return InvalidArgument(absl::StrCat(field, ": ", absl::FormatDuration(v), " is outside ",
                                        absl::FormatDuration(o.min_lease), "..",
                                        absl::FormatDuration(o.max_lease)));
  }
  return absl::OkStatus();
}

absl::Status CheckEvidence(const std::string& field, const pb::EvidenceItem& ev) {
  CNET_RETURN_IF_ERROR(CheckBytes(field + ".description", ev.description(), 1024));
  switch (ev.detail_case()) {
    case pb::EvidenceItem::kCommand:
      CNET_RETURN_IF_ERROR(CheckBytes(field + ".command.command", ev.command().command(), 4096,
                                      /*required=*/true));
      CNET_RETURN_IF_ERROR(CheckBytes(field + ".command.working_directory",
                                      ev.command().working_directory(), 1024));
      return CheckBytes(field + ".command.output_excerpt", ev.command().output_excerpt(), 4096);
    case pb::EvidenceItem::kCommit:
      if (!ValidSha(ev.commit().sha())) {
        return InvalidArgument(absl::StrCat(field, ".commit.sha ", Quote(ev.commit().sha()),
                                            ": must be 40 or 64 lower-case hex characters"));
      }
      CNET_RETURN_IF_ERROR(CheckBytes(field + ".commit.repository", ev.commit().repository(), 256));
      return CheckBytes(field + ".commit.branch", ev.commit().branch(), 256);
    case pb::EvidenceItem::kArtifact:
      CNET_RETURN_IF_ERROR(
          CheckBytes(field + ".artifact.name", ev.artifact().name(), 256, /*required=*/true));
      CNET_RETURN_IF_ERROR(CheckBytes(field + ".artifact.uri", ev.artifact().uri(), 2048));
      if (ev.artifact().sha256().size() != 64 || !IsLowerHex(ev.artifact().sha256())) {
        return InvalidArgument(absl::StrCat(field, ".artifact.sha256 ",
                                            Quote(ev.artifact().sha256()),
                                            ": must be 64 lower-case hex characters"));
      }
      if (ev.artifact().size_bytes() < 0) {
        return InvalidArgument(absl::StrCat(field, ".artifact.size_bytes: negative"));
      }
      return CheckBytes(field + ".artifact.media_type", ev.artifact().media_type(), 128);
    case pb::EvidenceItem::kTestReport:
      if (ev.test_report().passed() < 0 || ev.test_report().failed() < 0 ||
          ev.test_report().skipped() < 0) {
        return InvalidArgument(absl::StrCat(field, ".test_report: counts must be >= 0"));
      }
      return CheckBytes(field + ".test_report.suite", ev.test_report().suite(), 1024);
    case pb::EvidenceItem::kLink:
      CNET_RETURN_IF_ERROR(CheckBytes(field + ".link.url", ev.link().url(), 2048, true));
      if (!absl::StrContains(Sv(ev.link().url()), "://")) {
        return InvalidArgument(absl::StrCat(field, ".link.url ", Quote(ev.link().url()),
                                            ": must be an absolute URL"));
      }
      return CheckBytes(field + ".link.title", ev.link().title(), 256);
    case pb::EvidenceItem::DETAIL_NOT_SET:
      break;
  }
  return InvalidArgument(absl::StrCat(field, ": one detail (command, commit, artifact, "
                                             "test_report, link) must be set"));
}

absl::Status CheckResult(const std::string& field, const pb::TaskResult& r, size_t max_payload) {
  CNET_RETURN_IF_ERROR(CheckBytes(field + ".summary", r.summary(), 16 * 1024));
  if (r.evidence_size() > 256) {
    return InvalidArgument(
        absl::StrCat(field, ".evidence: more than 256 items (", r.evidence_size(), ")"));
  }
  for (int i = 0; i < r.evidence_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckEvidence(absl::StrCat(field, ".evidence[", i, "]"), r.evidence(i)));
  }
  CNET_RETURN_IF_ERROR(CheckStruct(field + ".payload", r.payload(), max_payload));
  if (!r.commit_sha().empty() && !ValidSha(r.commit_sha())) {
    return InvalidArgument(absl::StrCat(field, ".commit_sha ", Quote(r.commit_sha()),
                                        ": must be 40 or 64 lower-case hex characters"));
  }
  return absl::OkStatus();
}

// The commit SHA a result is pinned to: commit_sha, else the one commit in
// the evidence.
std::string EffectiveSha(const pb::TaskResult& r) {
  if (!r.commit_sha().empty()) return r.commit_sha();
  std::string found;
  int commits = 0;
  for (const auto& ev : r.evidence()) {
    if (ev.has_commit()) {
      ++commits;
      found = ev.commit().sha();
    }
  }
  return commits == 1 ? found : "";
}

std::string LowerId(std::string id) {
  absl::AsciiStrToLower(&id);
  return id;
}

std::string CapsText(const std::vector<std::string>& caps) {
  return caps.empty() ? "(none)" : absl::StrJoin(caps, ",");
}

std::vector<std::string> SortedUnique(const google::protobuf::RepeatedPtrField<std::string>& v) {
  std::vector<std::string> out(v.begin(), v.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool HasAllTags(const pb::Task& t, const std::vector<std::string>& tags) {
  for (const std::string& tag : tags) {
    if (std::find(t.tags().begin(), t.tags().end(), tag) == t.tags().end()) return false;
  }
  return true;
}

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Page tokens: "<kind>:<filter hash>:<cursor>", base64 (web-safe).
std::string MakeToken(const std::string& kind, const std::string& filter_hash,
                      const std::string& cursor) {
  return absl::WebSafeBase64Escape(absl::StrCat(kind, ":", filter_hash, ":", cursor));
}

absl::Status ParseToken(const std::string& token, const std::string& kind,
                        const std::string& filter_hash, std::string* cursor) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(Sv(token), &raw)) {
    return InvalidArgument("page_token: cannot be decoded");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits(':', 2));
  if (parts.size() != 3 || parts[0] != kind) {
    return InvalidArgument("page_token: not a token of this rpc");
  }
  if (parts[1] != filter_hash) {
    return InvalidArgument("page_token: was issued for different filters or ordering");
  }
  *cursor = parts[2];
  return absl::OkStatus();
}

absl::Status CheckPageSize(int page_size) {
  if (page_size < 0 || page_size > 1000) {
    return InvalidArgument(absl::StrCat("page_size: ", page_size, " is outside 0..1000"));
  }
  return absl::OkStatus();
}

}  // namespace

// --- public validators ---------------------------------------------------------

bool ValidCapability(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

bool ValidTag(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == ':';
  });
}

bool ValidAgentId(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  if (!absl::ascii_isalnum(static_cast<unsigned char>(s[0]))) return false;
  if (s == "broadcast") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool ValidTaskId(const std::string& s) {
  if (s.size() != 5 + 26 || s.compare(0, 5, "task-") != 0) return false;
  return std::all_of(s.begin() + 5, s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
  });
}

// --- Actor ---------------------------------------------------------------------

Actor Actor::Agent(std::string agent_id) {
  Actor a;
  a.kind = pb::PRINCIPAL_KIND_AGENT;
  a.id = std::move(agent_id);
  return a;
}

Actor Actor::Admin() {
  Actor a;
  a.kind = pb::PRINCIPAL_KIND_ADMIN;
  a.id = "admin";
  return a;
}

Actor Actor::System(std::string component) {
  Actor a;
  a.kind = pb::PRINCIPAL_KIND_SYSTEM;
  a.id = absl::StrCat("system:", component);
  return a;
}

std::string Actor::agent() const {
  if (kind == pb::PRINCIPAL_KIND_AGENT || kind == pb::PRINCIPAL_KIND_HUMAN) return id;
  if (kind == pb::PRINCIPAL_KIND_SERVICE) return on_behalf_of;
  return "";
}

std::string Actor::principal_id() const {
  std::string a = agent();
  return a.empty() ? id : a;
}

pb::Principal Actor::ToProto() const {
  pb::Principal p;
  p.set_kind(kind);
  p.set_id(id);
  p.set_on_behalf_of(on_behalf_of);
  return p;
}

// --- construction, loading, shutdown --------------------------------------------

Board::Board(BoardOptions options, Store* store, Clock* clock, AgentDirectory* directory,
             Notifier* notifier)
    : options_(std::move(options)),
      store_(store),
      clock_(clock),
      directory_(directory),
      notifier_(notifier),
      ids_(clock) {}

absl::StatusOr<std::unique_ptr<Board>> Board::Open(BoardOptions options, Store* store,
                                                   Clock* clock, AgentDirectory* directory,
                                                   Notifier* notifier) {
  std::unique_ptr<Board> board(new Board(std::move(options), store, clock, directory, notifier));
  CNET_RETURN_IF_ERROR(board->Load());
  {
    absl::MutexLock lock(&board->commit_mu_);
    board->committer_running_ = true;
  }
  board->committer_ = std::thread([b = board.get()] { b->CommitLoop(); });
  board->committer_id_ = board->committer_.get_id();
  if (board->options_.background) {
    board->executor_ = std::make_unique<ThreadExecutor>();
    board->notice_thread_ = std::thread([b = board.get()] { b->NoticeLoop(); });
  } else {
    board->executor_ = std::make_unique<InlineExecutor>();
  }
  Board* raw = board.get();
  directory->SetListener([raw, life = raw->life_mu_, alive = raw->alive_](const AgentChange& c) {
    absl::ReaderMutexLock lock(life.get());
    if (!*alive) return;
    raw->OnAgentChange(c);
  });
  board->ArmSweep();
  return board;
}

Board::~Board() { Shutdown(); }

void Board::Shutdown() {
  std::list<Waiter> waiters;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    waiters.swap(waiters_);
  }
  for (Waiter& w : waiters) {
    clock_->Cancel(w.timer);
    w.done(pb::ClaimResponse());
  }
  executor_.reset();
  {
    absl::MutexLock lock(&outbox_mu_);
    outbox_stop_ = true;
    outbox_cv_.SignalAll();
  }
  if (notice_thread_.joinable()) notice_thread_.join();
  {
    absl::WriterMutexLock lock(life_mu_.get());
    *alive_ = false;
  }
  clock_->Cancel(sweep_timer_);
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, e] : tasks_) CancelTimers(e), clock_->Cancel(e.lease_timer);
    for (auto& [id, e] : reservations_) {
      clock_->Cancel(e.expiry_timer);
      clock_->Cancel(e.warning_timer);
    }
    for (auto& [key, report] : reports_) clock_->Cancel(report.timer);
  }
  Flush();
  {
    absl::MutexLock lock(&commit_mu_);
    committer_stop_ = true;
    commit_cv_.Signal();
  }
  if (committer_.joinable()) committer_.join();
  hub_.Close();
}

void Board::Guarded(const std::function<void()>& fn) {
  absl::ReaderMutexLock lock(life_mu_.get());
  if (!*alive_) return;
  fn();
}

absl::Status Board::Load() {
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  CNET_RETURN_IF_ERROR(store_->ForEachTask([&](TaskRow&& row) {
    Entry& e = tasks_[row.id];
    if (!e.task.ParseFromString(row.body)) {
      LOG(ERROR) << "tasks: cannot parse stored task " << row.id;
    }
    e.history_len = row.history_len;
    ++state_counts_[e.task.state()];
    if (e.task.state() == pb::TASK_STATE_FAILED &&
        e.task.terminal_cause() == pb::TERMINAL_CAUSE_ATTEMPTS_EXHAUSTED) {
      ++dead_work_;
    }
  }));
  CNET_RETURN_IF_ERROR(store_->ForEachLease([&](LeaseRow&& row) {
    auto it = tasks_.find(row.task_id);
    if (it == tasks_.end()) return;
    LeaseRecord r;
    r.epoch = row.epoch;
    r.lease_id = row.lease_id;
    r.holder = row.holder;
    r.acquired = FromMicros(row.acquired_us);
    r.ended = row.ended_us == 0 ? absl::InfiniteFuture() : FromMicros(row.ended_us);
    r.end_reason = row.end_reason;
    it->second.leases.push_back(std::move(r));
  }));
  Fx fx;  // collects nothing durable at load; newly eligible go to the sweep
  for (auto& [id, e] : tasks_) {
    const pb::Task& t = e.task;
    for (const std::string& dep : t.dependencies()) {
      if (Entry* d = Find(dep)) d->dependents.push_back(id);
    }
    if (!t.parent_id().empty()) {
      if (Entry* p = Find(t.parent_id())) p->children.push_back(id);
    }
    if (IsLeased(t.state()) && t.has_lease()) {
      AgentLoad& load = loads_[t.assignee()];
      load.held.insert(id);
      if (t.state() == pb::TASK_STATE_ASSIGNED) load.assigned.insert(id);
      absl::Time expires = FromProto(t.lease().expires_at());
      if (expires <= now) {
        // The holder could not renew while we were down.
        *e.task.mutable_lease()->mutable_expires_at() = ToProto(now + options_.restart_grace);
      }
      ArmLeaseTimer(e);
    }
    if (t.state() == pb::TASK_STATE_QUEUED) Enqueue(e, fx);
    if (!IsTerminal(t.state())) ArmDeadline(e);
    if (t.cancel_requested() && !IsTerminal(t.state())) {
      e.cancel_timer = clock_->RunAt(
          FromProto(t.cancel_at()),
          [this, id = id, life = life_mu_, alive = alive_] {
            absl::ReaderMutexLock l(life.get());
            if (*alive) OnCancelGrace(id);
          });
    }
  }
  CNET_RETURN_IF_ERROR(store_->ForEachIdempotencyKey([&](IdempotencyRow&& row) {
    idempotency_[{row.creator, row.key}] = {row.task_id, row.request_hash};
  }));
  {
    absl::MutexLock olock(&outbox_mu_);
    CNET_RETURN_IF_ERROR(store_->ForEachNotice([&](NoticeRow&& row) {
      Notice n;
      if (Notice::Parse(row.body, &n)) outbox_.push_back(std::move(n));
    }));
  }
  CNET_RETURN_IF_ERROR(store_->ForEachReservation([&](std::string&& body) {
    pb::Reservation r;
    if (!r.ParseFromString(body)) return;
    absl::StatusOr<Glob> glob = Glob::Parse(r.pattern(), "pattern");
    if (!glob.ok()) return;
    ResEntry& e = reservations_[r.id()];
    e.r = std::move(r);
    e.glob = std::move(*glob);
    res_by_workspace_[e.r.workspace()].insert(e.r.id());
    res_by_holder_[e.r.holder()].insert(e.r.id());
    ArmReservationTimers(e);  // one that lapsed while down expires at once
  }));
  CNET_ASSIGN_OR_RETURN(last_seq_, store_->MaxEventSequence());
  {
    absl::MutexLock rlock(&recent_mu_);
    published_seq_ = last_seq_;
    int64_t from = std::max<int64_t>(0, last_seq_ - static_cast<int64_t>(options_.recent_events));
    CNET_ASSIGN_OR_RETURN(std::vector<EventRow> rows,
                          store_->ReadEvents(from, static_cast<int>(options_.recent_events)));
    for (EventRow& row : rows) {
      auto ev = std::make_shared<BoardEvent>();
      if (ev->event.ParseFromString(row.body)) recent_.push_back(std::move(ev));
    }
  }
  // Statistics: replay the last 30 days of transitions.
  absl::flat_hash_map<std::string, absl::Time> queued_at, started_at;
  absl::flat_hash_map<std::string, std::string> holder_of;
  CNET_RETURN_IF_ERROR(store_->ForEachHistorySince(
      ToMicros(now - absl::Hours(24 * 30)), [&](HistoryRow&& h) {
        absl::Time at = FromMicros(h.time_us);
        auto from = static_cast<pb::TaskState>(h.from_state);
        auto to = static_cast<pb::TaskState>(h.to_state);
        if (to == pb::TASK_STATE_QUEUED) queued_at[h.task_id] = at;
        if (from == pb::TASK_STATE_QUEUED && to == pb::TASK_STATE_ASSIGNED) {
          auto q = queued_at.find(h.task_id);
          if (q != queued_at.end()) stats_.QueueWait(at, at - q->second, h.holder);
        }
        if (from == pb::TASK_STATE_ASSIGNED && to == pb::TASK_STATE_RUNNING &&
            !started_at.contains(h.task_id)) {
          started_at[h.task_id] = at;
        }
        if (from == pb::TASK_STATE_RUNNING &&
            (to == pb::TASK_STATE_COMPLETED || to == pb::TASK_STATE_REVIEWING)) {
          auto s = started_at.find(h.task_id);
          if (s != started_at.end()) stats_.RunTime(at, at - s->second, holder_of[h.task_id]);
        }
        if (to == pb::TASK_STATE_QUEUED || to == pb::TASK_STATE_ASSIGNED) {
          started_at.erase(h.task_id);
        }
        if (!h.holder.empty()) holder_of[h.task_id] = h.holder;
        if (IsTerminal(to) && from != pb::TASK_STATE_UNSPECIFIED) {
          stats_.Finished(at, to, holder_of[h.task_id]);
        }
      }));
  // Everything loaded is already durable.
  pending_ = WriteBatch();
  pending_events_.clear();
  return absl::OkStatus();
}

// --- journal ---------------------------------------------------------------------

Board::Entry* Board::Find(const std::string& id) {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : &it->second;
}

absl::StatusOr<Board::Entry*> Board::FindOr404(const std::string& id) {
  if (id.empty()) return InvalidArgument("task_id: required");
  if (!ValidTaskId(id)) {
    return InvalidArgument(absl::StrCat("task_id ", Quote(id), ": not a task id (task-<ulid>)"));
  }
  Entry* e = Find(id);
  if (e == nullptr) return NotFound(id, absl::StrCat(TaskRef(id), ": no such task"));
  return e;
}

void Board::Touch(Entry& e, Fx& fx) {
  fx.wrote = true;
  if (fx.dirty.insert(e.task.id()).second) {
    e.task.set_revision(e.task.revision() + 1);
  }
  *e.task.mutable_updated_at() = ToProto(clock_->Now());
}

int64_t Board::Emit(Entry* e, pb::TaskEventType type, const Actor& actor,
                    const pb::TaskTransition* transition, const std::string& prev_holder, Fx& fx) {
  int64_t seq = ++last_seq_;
  auto ev = std::make_shared<BoardEvent>();
  ev->previous_holder = prev_holder;
  pb::TaskEvent& out = ev->event;
  out.set_sequence(seq);
  out.set_type(type);
  *out.mutable_time() = ToProto(clock_->Now());
  if (e != nullptr) *out.mutable_task() = e->task;
  if (transition != nullptr) {
    *out.mutable_transition() = *transition;
    out.mutable_transition()->set_event_sequence(seq);
  }
  *out.mutable_actor() = actor.ToProto();
  EventRow row;
  row.sequence = seq;
  row.time_us = ToMicros(clock_->Now());
  row.task_id = e != nullptr ? e->task.id() : "";
  row.body = out.SerializeAsString();
  pending_.events.push_back(std::move(row));
  pending_events_.push_back(std::move(ev));
  fx.wrote = true;
  return seq;
}

void Board::EmitAlert(const std::vector<std::string>& caps, int64_t waiting,
                      absl::Duration oldest, Fx& fx) {
  int64_t seq = ++last_seq_;
  auto ev = std::make_shared<BoardEvent>();
  pb::TaskEvent& out = ev->event;
  out.set_sequence(seq);
  out.set_type(pb::TASK_EVENT_TYPE_NO_ELIGIBLE_AGENTS);
  *out.mutable_time() = ToProto(clock_->Now());
  for (const std::string& c : caps) out.mutable_alert()->add_capabilities(c);
  out.mutable_alert()->set_waiting_tasks(waiting);
  *out.mutable_alert()->mutable_oldest_wait() = ToProtoDuration(oldest);
  *out.mutable_actor() = Actor::System("scheduler").ToProto();
  EventRow row;
  row.sequence = seq;
  row.time_us = ToMicros(clock_->Now());
  row.body = out.SerializeAsString();
  pending_.events.push_back(std::move(row));
  pending_events_.push_back(std::move(ev));
  fx.wrote = true;
}

void Board::AddNotice(const std::string& recipient, const std::string& task_id,
                      const std::string& kind, const std::string& subject,
                      const std::string& body, bool urgent, Fx& fx) {
  if (recipient.empty() || !ValidAgentId(recipient)) return;  // services, admin: no inbox
  Notice n;
  n.id = LowerId(ids_.Next("ntc-"));
  n.recipient = recipient;
  n.task_id = task_id;
  n.kind = kind;
  n.subject = subject;
  n.body = body;
  n.urgent = urgent;
  n.created = clock_->Now();
  NoticeRow row;
  row.id = n.id;
  row.created_us = ToMicros(n.created);
  row.body = n.Serialize();
  pending_.notices.push_back(std::move(row));
  pending_notices_.push_back(std::move(n));
  fx.wrote = true;
}

void Board::Move(Entry& e, pb::TaskState to, Op op, const Actor& actor,
                 const std::string& reason, Fx& fx) {
  pb::Task& t = e.task;
  const pb::TaskState from = t.state();
  absl::Status legal = CheckMove(t.id(), from, to, op);
  if (!legal.ok()) {
    // Every caller checks first; reaching this is a bug, never a user error.
    LOG(DFATAL) << legal;
    return;
  }
  absl::Time now = clock_->Now();
  std::string prev_holder = e.leases.empty() ? "" : e.leases.back().holder;
  if (from == pb::TASK_STATE_QUEUED) Unindex(e);
  if (from == pb::TASK_STATE_ASSIGNED && to != pb::TASK_STATE_ASSIGNED && !prev_holder.empty()) {
    loads_[prev_holder].assigned.erase(t.id());
  }
  if (from != pb::TASK_STATE_UNSPECIFIED) --state_counts_[from];
  ++state_counts_[to];
  t.set_state(to);
  *t.mutable_state_changed_at() = ToProto(now);
  Touch(e, fx);

  if (to == pb::TASK_STATE_ASSIGNED && from != pb::TASK_STATE_ASSIGNED) {
    loads_[t.assignee()].assigned.insert(t.id());
  }
  if (from == pb::TASK_STATE_QUEUED && to == pb::TASK_STATE_ASSIGNED) {
    stats_.QueueWait(now, now - FromProto(t.queued_at()), t.assignee());
  }
  if (from == pb::TASK_STATE_ASSIGNED && to == pb::TASK_STATE_RUNNING && !t.has_started_at()) {
    *t.mutable_started_at() = ToProto(now);
  }
  if (from == pb::TASK_STATE_RUNNING &&
      (to == pb::TASK_STATE_COMPLETED || to == pb::TASK_STATE_REVIEWING) && t.has_started_at()) {
    stats_.RunTime(now, now - FromProto(t.started_at()), prev_holder);
  }
  if (to == pb::TASK_STATE_QUEUED) {
    *t.mutable_queued_at() = ToProto(now);
    t.clear_started_at();
    Enqueue(e, fx);
  }
  if (IsTerminal(to)) {
    *t.mutable_finished_at() = ToProto(now);
    std::string counted = IsLeased(from) ? prev_holder
                          : from == pb::TASK_STATE_REVIEWING ? t.author()
                                                             : std::string();
    stats_.Finished(now, to, counted);
    CancelTimers(e);
    t.set_cancel_requested(false);
    t.clear_cancel_at();
  }
  if (to == pb::TASK_STATE_REVIEWING) t.clear_finished_at();

  pb::TaskTransition tr;
  tr.set_index(++e.history_len);
  tr.set_from_state(from);
  tr.set_to_state(to);
  *tr.mutable_actor() = actor.ToProto();
  tr.set_reason(reason);
  *tr.mutable_time() = ToProto(now);
  tr.set_attempt(t.attempt());
  tr.set_lease_epoch(IsLeased(to) && t.has_lease() ? t.lease().epoch() : 0);
  tr.set_holder(t.assignee());
  int64_t seq = Emit(&e,
                     from == pb::TASK_STATE_UNSPECIFIED ? pb::TASK_EVENT_TYPE_CREATED
                                                        : pb::TASK_EVENT_TYPE_TRANSITION,
                     actor, &tr,
                     t.assignee() != prev_holder ? prev_holder : "", fx);
  HistoryRow h;
  h.task_id = t.id();
  h.index = tr.index();
  h.from_state = from;
  h.to_state = to;
  h.actor_kind = actor.kind;
  h.actor_id = actor.id;
  h.actor_on_behalf_of = actor.on_behalf_of;
  h.reason = reason;
  h.time_us = ToMicros(now);
  h.attempt = tr.attempt();
  h.lease_epoch = tr.lease_epoch();
  h.holder = tr.holder();
  h.event_sequence = seq;
  pending_.history.push_back(std::move(h));

  if (IsTerminal(to) || from == pb::TASK_STATE_COMPLETED) fx.check_dependents.push_back(t.id());
}

// --- leases --------------------------------------------------------------------------

void Board::GrantLease(Entry& e, const std::string& agent, absl::Duration duration, Fx& fx) {
  absl::Time now = clock_->Now();
  pb::Task& t = e.task;
  LeaseRecord r;
  r.epoch = (e.leases.empty() ? 0 : e.leases.back().epoch) + 1;
  r.lease_id = LowerId(ids_.Next("lease-"));
  r.holder = agent;
  r.acquired = now;
  pb::Lease* lease = t.mutable_lease();
  lease->Clear();
  lease->set_lease_id(r.lease_id);
  lease->set_epoch(r.epoch);
  lease->set_holder(agent);
  *lease->mutable_acquired_at() = ToProto(now);
  *lease->mutable_expires_at() = ToProto(now + duration);
  *lease->mutable_duration() = ToProtoDuration(duration);
  t.set_assignee(agent);
  if (!Contains(t.former_holders(), agent)) t.add_former_holders(agent);
  LeaseRow row;
  row.task_id = t.id();
  row.epoch = r.epoch;
  row.lease_id = r.lease_id;
  row.holder = agent;
  row.acquired_us = ToMicros(now);
  pending_.leases[{t.id(), r.epoch}] = row;
  e.leases.push_back(std::move(r));
  loads_[agent].held.insert(t.id());
  Touch(e, fx);
  ArmLeaseTimer(e);
}

void Board::RenewLeaseLocked(Entry& e, absl::Duration duration, Fx& fx) {
  pb::Lease* lease = e.task.mutable_lease();
  if (duration <= absl::ZeroDuration()) duration = FromProtoDuration(lease->duration());
  *lease->mutable_expires_at() = ToProto(clock_->Now() + duration);
  *lease->mutable_duration() = ToProtoDuration(duration);
  Touch(e, fx);
  ArmLeaseTimer(e);
}

std::string Board::EndLease(Entry& e, const std::string& reason, Fx& fx) {
  pb::Task& t = e.task;
  if (!t.has_lease()) return "";
  std::string holder = t.assignee();
  if (!e.leases.empty() && e.leases.back().ended == absl::InfiniteFuture()) {
    LeaseRecord& r = e.leases.back();
    r.ended = clock_->Now();
    r.end_reason = reason;
    LeaseRow row;
    row.task_id = t.id();
    row.epoch = r.epoch;
    row.lease_id = r.lease_id;
    row.holder = r.holder;
    row.acquired_us = ToMicros(r.acquired);
    row.ended_us = ToMicros(r.ended);
    row.end_reason = reason;
    pending_.leases[{t.id(), r.epoch}] = row;
  }
  auto it = loads_.find(holder);
  if (it != loads_.end()) {
    it->second.held.erase(t.id());
    if (it->second.held.empty() && it->second.assigned.empty()) loads_.erase(it);
  }
  t.clear_lease();
  t.clear_assignee();
  if (e.lease_timer != 0) {
    clock_->Cancel(e.lease_timer);
    e.lease_timer = 0;
    e.lease_timer_at = absl::InfiniteFuture();
  }
  Touch(e, fx);
  fx.freed_agents.insert(holder);
  return holder;
}

void Board::ArmLeaseTimer(Entry& e) {
  if (!e.task.has_lease()) return;
  absl::Time expires = FromProto(e.task.lease().expires_at());
  if (e.lease_timer != 0 && e.lease_timer_at <= expires) return;  // fires, then re-arms
  if (e.lease_timer != 0) clock_->Cancel(e.lease_timer);
  std::string id = e.task.id();
  int64_t epoch = e.task.lease().epoch();
  e.lease_timer_at = expires;
  e.lease_timer = clock_->RunAt(expires, [this, id, epoch, life = life_mu_, alive = alive_] {
    absl::ReaderMutexLock l(life.get());
    if (*alive) OnLeaseTimer(id, epoch);
  });
}

void Board::OnLeaseTimer(const std::string& id, int64_t epoch) {
  Fx fx;
  {
    absl::MutexLock lock(&mu_);
    Entry* e = Find(id);
    if (e == nullptr) return;
    e->lease_timer = 0;
    e->lease_timer_at = absl::InfiniteFuture();
    if (!IsLeased(e->task.state()) || !e->task.has_lease() || e->task.lease().epoch() != epoch) {
      return;
    }
    if (clock_->Now() < FromProto(e->task.lease().expires_at())) {
      ArmLeaseTimer(*e);
      return;
    }
    Requeue(*e, /*consume=*/true, Actor::System("lease-timer"),
            absl::StrCat("lease expired (holder ", e->task.assignee(), ", epoch ", epoch, ")"),
            fx);
    Settle(fx);
  }
  Finish(fx);
}

Board::LeaseCheck Board::CheckLease(const Entry& e, const Actor& actor,
                                    const std::string& lease_id, int64_t epoch) const {
  const std::string agent = actor.agent();
  const LeaseRecord* match = nullptr;
  for (auto it = e.leases.rbegin(); it != e.leases.rend(); ++it) {
    if (it->lease_id == lease_id && it->epoch == epoch) {
      match = &*it;
      break;
    }
  }
  if (match == nullptr) {
    bool held_before = std::any_of(e.leases.begin(), e.leases.end(),
                                   [&](const LeaseRecord& r) { return r.holder == agent; });
    if (held_before && !agent.empty()) return LeaseCheck::kStale;
    if (actor.admin() && !lease_id.empty()) return LeaseCheck::kStale;
    return LeaseCheck::kNeverHeld;
  }
  if (match->holder != agent && !actor.admin()) return LeaseCheck::kNeverHeld;
  bool current = IsLeased(e.task.state()) && e.task.has_lease() &&
                 e.task.lease().lease_id() == lease_id && e.task.lease().epoch() == epoch &&
                 clock_->Now() < FromProto(e.task.lease().expires_at());
  return current ? LeaseCheck::kCurrent : LeaseCheck::kStale;
}

pb::LeaseLossReason Board::LossReason(const Entry& e, const std::string& lease_id,
                                      int64_t epoch) const {
  const pb::Task& t = e.task;
  if (t.state() == pb::TASK_STATE_CANCELLED) return pb::LEASE_LOSS_REASON_CANCELLED;
  if (t.state() == pb::TASK_STATE_FAILED) return pb::LEASE_LOSS_REASON_FAILED;
  if (t.state() == pb::TASK_STATE_COMPLETED || t.state() == pb::TASK_STATE_REVIEWING) {
    return pb::LEASE_LOSS_REASON_FINISHED;
  }
  if (t.has_lease() && t.lease().epoch() > epoch) return pb::LEASE_LOSS_REASON_SUPERSEDED;
  for (const LeaseRecord& r : e.leases) {
    if (r.lease_id == lease_id && r.epoch == epoch && absl::StartsWith(Sv(r.end_reason), "stolen")) {
      return pb::LEASE_LOSS_REASON_SUPERSEDED;
    }
  }
  return pb::LEASE_LOSS_REASON_EXPIRED;
}

absl::Status Board::RequireHolder(const Entry& e, const Actor& actor, const std::string& lease_id,
                                  int64_t epoch) const {
  LeaseCheck c = CheckLease(e, actor, lease_id, epoch);
  if (c == LeaseCheck::kCurrent) return absl::OkStatus();
  const pb::Task& t = e.task;
  if (c == LeaseCheck::kStale) {
    std::string why;
    switch (LossReason(e, lease_id, epoch)) {
      case pb::LEASE_LOSS_REASON_SUPERSEDED:
        why = t.has_lease() ? absl::StrCat("superseded by epoch ", t.lease().epoch(), " held by ",
                                           t.assignee())
                            : "superseded";
        break;
      case pb::LEASE_LOSS_REASON_CANCELLED: why = "the task was cancelled"; break;
      case pb::LEASE_LOSS_REASON_FAILED: why = "the task failed"; break;
      case pb::LEASE_LOSS_REASON_FINISHED:
        why = absl::StrCat("the task is ", StateName(t.state()));
        break;
      default: why = "it expired"; break;
    }
    return Precondition(t.id(), "LEASE_STALE",
                        absl::StrCat(TaskRef(t.id()), ": lease ", Quote(lease_id), " epoch ", epoch,
                                     " is stale (", why, ")"));
  }
  return Denied(t.id(), "NOT_HOLDER",
                absl::StrCat(TaskRef(t.id()), ": ", actor.principal_id(),
                             " does not hold its lease"));
}

// --- queue ---------------------------------------------------------------------------

std::string Board::QueueName(const std::vector<std::string>& caps, const std::string& assign_to) {
  return absl::StrCat(absl::StrJoin(caps, ","), "|", assign_to);
}

int64_t Board::PriorityRank(const pb::Task& t) const {
  int p = t.priority();
  return p == pb::PRIORITY_UNSPECIFIED ? pb::PRIORITY_NORMAL : p;
}

void Board::Enqueue(Entry& e, Fx& fx) {
  absl::Time now = clock_->Now();
  pb::Task& t = e.task;
  if (t.has_not_before() && FromProto(t.not_before()) > now) {
    e.deferred = true;
    if (e.not_before_timer != 0) clock_->Cancel(e.not_before_timer);
    std::string id = t.id();
    e.not_before_timer = clock_->RunAt(FromProto(t.not_before()),
                                       [this, id, life = life_mu_, alive = alive_] {
                                         absl::ReaderMutexLock l(life.get());
                                         if (*alive) OnNotBefore(id);
                                       });
    return;
  }
  IndexEligible(e, fx);
}

void Board::IndexEligible(Entry& e, Fx& fx) {
  pb::Task& t = e.task;
  e.deferred = false;
  absl::Time since = FromProto(t.queued_at());
  if (t.has_not_before()) since = std::max(since, FromProto(t.not_before()));
  std::vector<std::string> caps(t.required_capabilities().begin(),
                                t.required_capabilities().end());
  e.queue_name = QueueName(caps, t.assign_to());
  e.key.since_us = ToMicros(since);
  e.key.virtual_us =
      e.key.since_us - PriorityRank(t) * absl::ToInt64Microseconds(options_.aging_interval);
  e.key.id = t.id();
  CapQueue& q = queues_[e.queue_name];
  if (q.items.empty()) {
    q.caps = caps;
    q.assign_to = t.assign_to();
  }
  q.items.insert(e.key);
  fx.newly_eligible.push_back(t.id());
}

void Board::Unindex(Entry& e) {
  if (e.not_before_timer != 0) {
    clock_->Cancel(e.not_before_timer);
    e.not_before_timer = 0;
  }
  e.deferred = false;
  if (e.queue_name.empty()) return;
  auto it = queues_.find(e.queue_name);
  if (it != queues_.end()) {
    it->second.items.erase(e.key);
    if (it->second.items.empty()) queues_.erase(it);
  }
  e.queue_name.clear();
}

void Board::OnNotBefore(const std::string& id) {
  Fx fx;
  {
    absl::MutexLock lock(&mu_);
    Entry* e = Find(id);
    if (e == nullptr) return;
    e->not_before_timer = 0;
    if (e->task.state() != pb::TASK_STATE_QUEUED || !e->deferred) return;
    if (clock_->Now() < FromProto(e->task.not_before())) {
      Enqueue(*e, fx);
      return;
    }
    IndexEligible(*e, fx);
    Settle(fx);
  }
  Finish(fx);
}

bool Board::Accepts(const Entry& e, const std::string& agent, const ClaimFilter& filter) const {
  const pb::Task& t = e.task;
  if (!t.assign_to().empty() && t.assign_to() != agent) return false;
  if (Contains(t.excluded_agents(), agent)) return false;
  if (!std::includes(filter.caps.begin(), filter.caps.end(), t.required_capabilities().begin(),
                     t.required_capabilities().end())) {
    return false;
  }
  if (!HasAllTags(t, filter.tags)) return false;
  if (!filter.workspace.empty() && t.workspace() != filter.workspace) return false;
  return true;
}

Board::Entry* Board::BestFor(const std::string& agent, const ClaimFilter& filter) {
  Entry* best = nullptr;
  for (auto& [name, q] : queues_) {
    if (!q.assign_to.empty() && q.assign_to != agent) continue;
    if (!std::includes(filter.caps.begin(), filter.caps.end(), q.caps.begin(), q.caps.end())) {
      continue;
    }
    if (best != nullptr && !(*q.items.begin() < best->key)) continue;
    for (const QueueKey& key : q.items) {
      if (best != nullptr && !(key < best->key)) break;
      Entry* e = Find(key.id);
      if (e != nullptr && Accepts(*e, agent, filter)) {
        best = e;
        break;
      }
    }
  }
  return best;
}

Board::Entry* Board::BestStealable(const std::string& agent, const ClaimFilter& filter,
                                   const std::string& from_agent) {
  Entry* best = nullptr;
  auto better = [&](const Entry* a, const Entry* b) {
    int64_t pa = PriorityRank(a->task), pb_ = PriorityRank(b->task);
    if (pa != pb_) return pa > pb_;
    return a->task.queued_at().seconds() < b->task.queued_at().seconds() ||
           (a->task.queued_at().seconds() == b->task.queued_at().seconds() &&
            a->task.id() < b->task.id());
  };
  for (auto& [victim, load] : loads_) {
    if (victim == agent) continue;
    if (!from_agent.empty() && victim != from_agent) continue;
    if (static_cast<int>(load.assigned.size()) <= options_.steal_threshold) continue;
    for (const std::string& id : load.assigned) {
      Entry* e = Find(id);
      if (e == nullptr || e->task.state() != pb::TASK_STATE_ASSIGNED) continue;
      if (!Accepts(*e, agent, filter)) continue;
      if (best == nullptr || better(e, best)) best = e;
    }
  }
  return best;
}

int Board::LimitOf(const AgentInfo& info) const {
  return info.max_concurrent_tasks > 0 ? info.max_concurrent_tasks
                                       : options_.default_agent_concurrency;
}

int Board::LoadOf(const std::string& agent) const {
  auto it = loads_.find(agent);
  return it == loads_.end() ? 0 : static_cast<int>(it->second.held.size());
}

void Board::Assign(Entry& e, const std::string& agent, absl::Duration lease, const Actor& actor,
                   const std::string& reason, Fx& fx) {
  pb::Task& t = e.task;
  t.set_attempt(t.attempts_used() + 1);
  GrantLease(e, agent, lease, fx);
  Move(e, pb::TASK_STATE_ASSIGNED, Op::kAssign, actor, reason, fx);
}

void Board::StealLocked(Entry& e, const std::string& agent, absl::Duration lease,
                        const Actor& actor, Fx& fx) {
  std::string victim = e.task.assignee();
  EndLease(e, absl::StrCat("stolen by ", agent), fx);
  loads_[victim].assigned.erase(e.task.id());
  if (loads_[victim].held.empty() && loads_[victim].assigned.empty()) loads_.erase(victim);
  GrantLease(e, agent, lease, fx);
  loads_[agent].assigned.insert(e.task.id());
  Move(e, pb::TASK_STATE_ASSIGNED, Op::kSteal, actor,
       absl::StrCat("stolen from ", victim, " (holds more than ", options_.steal_threshold,
                    " assigned tasks)"),
       fx);
  AddNotice(victim, e.task.id(), "lease_lost",
            absl::StrCat("task ", e.task.id(), " was reassigned"),
            absl::StrCat("Task ", e.task.id(), " (", e.task.title(), ") was taken over by ", agent,
                         " (work stealing) before you started it; do not work on it."),
            false, fx);
}

void Board::Requeue(Entry& e, bool consume, const Actor& actor, const std::string& reason,
                    Fx& fx) {
  pb::Task& t = e.task;
  if (t.cancel_requested()) {
    CancelTask(e, pb::TERMINAL_CAUSE_CANCELLED, actor,
               t.terminal_reason().empty() ? "cancelled" : t.terminal_reason(), fx);
    return;
  }
  if (consume) {
    t.set_attempts_used(t.attempts_used() + 1);
    if (t.attempts_used() >= t.max_attempts()) {
      FailTask(e, Op::kFail, pb::TERMINAL_CAUSE_ATTEMPTS_EXHAUSTED, actor,
               absl::StrCat("attempts exhausted (", t.attempts_used(), " of ", t.max_attempts(),
                            " used; last: ", reason, ")"),
               fx);
      return;
    }
  }
  EndLease(e, reason, fx);
  Move(e, pb::TASK_STATE_QUEUED, Op::kRequeue, actor, reason, fx);
}

void Board::FailTask(Entry& e, Op op, pb::TerminalCause cause, const Actor& actor,
                     const std::string& reason, Fx& fx) {
  pb::Task& t = e.task;
  std::string holder = EndLease(e, reason, fx);
  t.set_terminal_cause(cause);
  t.set_terminal_reason(reason);
  if (cause == pb::TERMINAL_CAUSE_ATTEMPTS_EXHAUSTED) ++dead_work_;
  Move(e, pb::TASK_STATE_FAILED, op, actor, reason, fx);
  std::string body = absl::StrCat("Task ", t.id(), " (", t.title(), ") FAILED: ", reason);
  if (!holder.empty() && holder != actor.agent()) {
    AddNotice(holder, t.id(), "lease_lost", absl::StrCat("task ", t.id(), " failed"), body, false,
              fx);
  }
  std::string creator = t.creator().kind() == pb::PRINCIPAL_KIND_SERVICE
                            ? t.creator().on_behalf_of()
                            : t.creator().id();
  if (creator != actor.agent() && creator != holder) {
    AddNotice(creator, t.id(), "failed", absl::StrCat("task ", t.id(), " failed"), body, false,
              fx);
  }
}

void Board::CancelTask(Entry& e, pb::TerminalCause cause, const Actor& actor,
                       const std::string& reason, Fx& fx) {
  pb::Task& t = e.task;
  std::string holder = EndLease(e, reason, fx);
  t.set_terminal_cause(cause);
  t.set_terminal_reason(reason);
  Move(e, pb::TASK_STATE_CANCELLED, Op::kCancel, actor, reason, fx);
  if (!holder.empty() && holder != actor.agent()) {
    AddNotice(holder, t.id(), "cancelled", absl::StrCat("task ", t.id(), " was cancelled"),
              absl::StrCat("Task ", t.id(), " (", t.title(), ") was cancelled: ", reason,
                           ". Stop working on it."),
              true, fx);
  }
}

void Board::CancelTimers(Entry& e) {
  for (Clock::TimerId* id : {&e.not_before_timer, &e.deadline_timer, &e.cancel_timer}) {
    if (*id != 0) {
      clock_->Cancel(*id);
      *id = 0;
    }
  }
}

void Board::ArmDeadline(Entry& e) {
  if (e.deadline_timer != 0) {
    clock_->Cancel(e.deadline_timer);
    e.deadline_timer = 0;
  }
  if (!e.task.has_deadline()) return;
  std::string id = e.task.id();
  e.deadline_timer = clock_->RunAt(FromProto(e.task.deadline()),
                                   [this, id, life = life_mu_, alive = alive_] {
                                     absl::ReaderMutexLock l(life.get());
                                     if (*alive) OnDeadline(id);
                                   });
}

void Board::OnDeadline(const std::string& id) {
  Fx fx;
  {
    absl::MutexLock lock(&mu_);
    Entry* e = Find(id);
    if (e == nullptr) return;
    e->deadline_timer = 0;
    if (IsTerminal(e->task.state()) || !e->task.has_deadline()) return;
    if (clock_->Now() < FromProto(e->task.deadline())) {
      ArmDeadline(*e);
      return;
    }
    FailTask(*e, Op::kDeadline, pb::TERMINAL_CAUSE_DEADLINE_EXCEEDED, Actor::System("deadline"),
             absl::StrCat("deadline passed (", absl::FormatTime(FromProto(e->task.deadline())),
                          ")"),
             fx);
    Settle(fx);
  }
  Finish(fx);
}

void Board::OnCancelGrace(const std::string& id) {
  Fx fx;
  {
    absl::MutexLock lock(&mu_);
    Entry* e = Find(id);
    if (e == nullptr) return;
    e->cancel_timer = 0;
    if (IsTerminal(e->task.state()) || !e->task.cancel_requested()) return;
    CancelTask(*e, pb::TERMINAL_CAUSE_CANCELLED, Actor::System("cancel-grace"),
               e->task.terminal_reason().empty() ? "cancelled after grace period"
                                                 : e->task.terminal_reason(),
               fx);
    Settle(fx);
  }
  Finish(fx);
}

// Dependents of tasks that reached a final state (or left COMPLETED) are
// re-evaluated; failures cascade down the graph. Then newly eligible tasks
// go to waiting claimers, the rest to the scheduler. Then the touched rows
// are sealed into the journal.
void Board::Settle(Fx& fx) {
  for (size_t i = 0; i < fx.check_dependents.size(); ++i) {
    Entry* dep = Find(fx.check_dependents[i]);
    if (dep == nullptr) continue;
    CascadeDependencyFailure(*dep, fx);
  }
  fx.check_dependents.clear();
  Dispatch(fx);
  for (const std::string& id : fx.dirty) {
    Entry* e = Find(id);
    if (e == nullptr) continue;
    const pb::Task& t = e->task;
    TaskRow row;
    row.id = t.id();
    row.state = t.state();
    row.creator = t.creator().id();
    row.parent_id = t.parent_id();
    row.assignee = t.assignee();
    row.created_us = ToMicros(FromProto(t.created_at()));
    row.updated_us = ToMicros(FromProto(t.updated_at()));
    row.history_len = e->history_len;
    row.body = t.SerializeAsString();
    pending_.tasks[id] = std::move(row);
  }
  fx.dirty.clear();
  if (fx.wrote) fx.ticket = ++appended_;
}

void Board::CascadeDependencyFailure(Entry& dep, Fx& fx) {
  for (const std::string& child_id : dep.dependents) {
    Entry* d = Find(child_id);
    if (d == nullptr || d->task.state() != pb::TASK_STATE_CREATED) continue;
    pb::Task& t = d->task;
    const Entry* failed = nullptr;
    bool all_done = true;
    for (const std::string& id : t.dependencies()) {
      const Entry* x = Find(id);
      if (x == nullptr) continue;
      if (x->task.state() == pb::TASK_STATE_FAILED || x->task.state() == pb::TASK_STATE_CANCELLED) {
        if (failed == nullptr) failed = x;
      }
      if (x->task.state() != pb::TASK_STATE_COMPLETED) all_done = false;
    }
    Actor system = Actor::System("dependencies");
    if (failed != nullptr) {
      std::string why = absl::StrCat("dependency ", failed->task.id(), " is ",
                                     StateName(failed->task.state()));
      if (t.on_dependency_failure() == pb::DEPENDENCY_FAILURE_POLICY_BLOCK) {
        if (!t.blocked() || t.blocked_reason() != why) {
          t.set_blocked(true);
          t.set_blocked_reason(why);
          Touch(*d, fx);
          Emit(d, pb::TASK_EVENT_TYPE_UPDATED, system, nullptr, "", fx);
        }
      } else {
        FailTask(*d, Op::kDependencyFailed, pb::TERMINAL_CAUSE_DEPENDENCY_FAILED, system, why, fx);
      }
    } else if (all_done && !t.blocked()) {
      Move(*d, pb::TASK_STATE_QUEUED, Op::kDependenciesMet, system, "dependencies completed", fx);
    }
  }
}

void Board::Dispatch(Fx& fx) {
  for (const std::string& id : fx.newly_eligible) {
    Entry* e = Find(id);
    if (e == nullptr || e->queue_name.empty()) continue;
    bool taken = false;
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (!Accepts(*e, it->agent, it->filter) || LoadOf(it->agent) >= it->limit) continue;
      Assign(*e, it->agent, it->lease, it->actor, "claimed (long-poll)", fx);
      stats_.Claimed(clock_->Now());
      pb::ClaimResponse resp;
      *resp.mutable_task() = e->task;
      *resp.mutable_lease() = e->task.lease();
      clock_->Cancel(it->timer);
      fx.completions.emplace_back(std::move(it->done), std::move(resp));
      waiters_.erase(it);
      taken = true;
      break;
    }
    if (!taken && options_.push_assignment) fx.push_ids.push_back(id);
  }
  fx.newly_eligible.clear();
}

// --- after the lock ----------------------------------------------------------------

void Board::WaitDurable(uint64_t ticket) {
  if (durable_.load() >= ticket) return;
  if (std::this_thread::get_id() == committer_id_) {
    // Work run after a commit (WhenDurable) that itself changed the board:
    // this thread is the committer, so it commits.
    while (durable_.load() < ticket) CommitOnce();
    return;
  }
  absl::MutexLock lock(&commit_mu_);
  if (ticket > wanted_) {
    wanted_ = ticket;
    commit_cv_.Signal();
  }
  while (durable_.load() < ticket) {
    if (!committer_running_) {
      CommitOnce();  // no committer (stopped): commit in this thread
      continue;
    }
    durable_cv_.Wait(&commit_mu_);
  }
}

void Board::CommitLoop() {
  absl::MutexLock lock(&commit_mu_);
  while (true) {
    while (!committer_stop_ && wanted_ <= durable_.load()) commit_cv_.Wait(&commit_mu_);
    if (committer_stop_ && wanted_ <= durable_.load()) break;
    commit_mu_.Unlock();
    CommitOnce();
    commit_mu_.Lock();
    durable_cv_.SignalAll();
    // Continuations of asynchronous callers whose changes are now durable.
    std::vector<std::function<void()>> ready;
    const uint64_t durable = durable_.load();
    while (!on_durable_.empty() && on_durable_.begin()->first <= durable) {
      ready.push_back(std::move(on_durable_.begin()->second));
      on_durable_.erase(on_durable_.begin());
    }
    if (!ready.empty()) {
      commit_mu_.Unlock();
      for (auto& fn : ready) fn();
      commit_mu_.Lock();
    }
  }
  committer_running_ = false;
  durable_cv_.SignalAll();
}

void Board::WhenDurable(uint64_t ticket, std::function<void()> fn) {
  {
    absl::MutexLock lock(&commit_mu_);
    if (durable_.load() < ticket && committer_running_) {
      on_durable_.emplace(ticket, std::move(fn));
      if (ticket > wanted_) {
        wanted_ = ticket;
        commit_cv_.Signal();
      }
      return;
    }
  }
  WaitDurable(ticket);
  fn();
}

void Board::FinishAsync(Fx fx, std::function<void()> then) {
  auto shared = std::make_shared<Fx>(std::move(fx));
  WhenDurable(shared->ticket, [this, shared, then = std::move(then)] {
    Finish(*shared);
    then();
  });
}

void Board::CommitOnce() {
  WriteBatch batch;
  std::vector<BoardEventPtr> events;
  std::vector<Notice> notices;
  uint64_t end;
  {
    absl::MutexLock lock(&mu_);
    std::swap(batch, pending_);
    events.swap(pending_events_);
    notices.swap(pending_notices_);
    end = appended_;
  }
  absl::Status s = store_->Apply(batch);
  commits_.fetch_add(1);
  operations_.fetch_add(static_cast<int64_t>(end - durable_.load()));
  if (!s.ok()) {
    // Fail-stop: memory is ahead of the disk; a restart reloads what is durable.
    LOG(FATAL) << "tasks: committing to the store failed: " << s;
  }
  if (!events.empty()) {
    absl::MutexLock lock(&recent_mu_);
    for (const BoardEventPtr& ev : events) recent_.push_back(ev);
    while (recent_.size() > options_.recent_events) recent_.pop_front();
    published_seq_ = events.back()->event.sequence();
  }
  for (const BoardEventPtr& ev : events) hub_.Publish(ev);
  if (!notices.empty()) {
    absl::MutexLock lock(&outbox_mu_);
    for (Notice& n : notices) outbox_.push_back(std::move(n));
    outbox_cv_.Signal();
  }
  durable_.store(end);
}

void Board::Finish(Fx& fx) {
  if (fx.ticket != 0) WaitDurable(fx.ticket);
  for (auto& [done, result] : fx.completions) done(std::move(result));
  fx.completions.clear();
  if (!options_.background) DrainNotices();
  if (options_.push_assignment && (!fx.push_ids.empty() || !fx.freed_agents.empty())) {
    SchedulePush(std::move(fx.push_ids), std::move(fx.freed_agents));
  }
  fx.push_ids.clear();
  fx.freed_agents.clear();
}

void Board::Flush() {
  uint64_t ticket;
  {
    absl::MutexLock lock(&mu_);
    ticket = appended_;
  }
  WaitDurable(ticket);
}

void Board::Post(std::function<void()> fn) {
  if (executor_) executor_->Post(std::move(fn));
}

void Board::SchedulePush(std::vector<std::string> ids, std::set<std::string> agents) {
  Post([this, ids = std::move(ids), agents = std::move(agents)] {
    if (!ids.empty()) PushTasks(ids);
    if (!agents.empty()) FillAgents(agents);
  });
}

int64_t Board::last_sequence() const {
  absl::MutexLock lock(&recent_mu_);
  return published_seq_;
}

size_t Board::waiting_claims() const {
  absl::MutexLock lock(&mu_);
  return waiters_.size();
}

size_t Board::pending_notices() const {
  absl::MutexLock lock(&outbox_mu_);
  return outbox_.size();
}

// --- CreateTask ------------------------------------------------------------------------

absl::StatusOr<Board::CreateResult> Board::Create(const Actor& actor,
                                                  const pb::CreateTaskRequest& req) {
  absl::Time now = clock_->Now();
  if (req.title().empty()) return InvalidArgument("title: must not be empty");
  CNET_RETURN_IF_ERROR(CheckBytes("title", req.title(), 256));
  CNET_RETURN_IF_ERROR(CheckBytes("description", req.description(), 64 * 1024));
  CNET_RETURN_IF_ERROR(CheckCapabilities("required_capabilities", req.required_capabilities()));
  CNET_RETURN_IF_ERROR(CheckPriority("priority", req.priority()));
  if (req.dependencies_size() > 100) {
    return InvalidArgument(
        absl::StrCat("dependencies: more than 100 (", req.dependencies_size(), ")"));
  }
  for (int i = 0; i < req.dependencies_size(); ++i) {
    const std::string& d = req.dependencies(i);
    if (!ValidTaskId(d)) {
      return InvalidArgument(
          absl::StrCat("dependencies[", i, "] ", Quote(d), ": not a task id (task-<ulid>)"));
    }
    for (int j = 0; j < i; ++j) {
      if (req.dependencies(j) == d) {
        return InvalidArgument(absl::StrCat("dependencies[", i, "] ", Quote(d), ": listed twice"));
      }
    }
  }
  CNET_RETURN_IF_ERROR(CheckStruct("payload", req.payload(), options_.max_payload_bytes));
  CNET_RETURN_IF_ERROR(CheckTags("tags", req.tags()));
  if (!req.parent_id().empty() && !ValidTaskId(req.parent_id())) {
    return InvalidArgument(
        absl::StrCat("parent_id ", Quote(req.parent_id()), ": not a task id (task-<ulid>)"));
  }
  if (req.has_deadline() && FromProto(req.deadline()) <= now) {
    return InvalidArgument(absl::StrCat("deadline: ", absl::FormatTime(FromProto(req.deadline())),
                                        " is not in the future"));
  }
  CNET_RETURN_IF_ERROR(CheckMaxAttempts("max_attempts", req.max_attempts()));
  CNET_RETURN_IF_ERROR(CheckReview("review", req.review()));
  CNET_RETURN_IF_ERROR(CheckAcceptance("acceptance", req.acceptance()));
  if (req.on_dependency_failure() < 0 || req.on_dependency_failure() > 2) {
    return InvalidArgument(absl::StrCat("on_dependency_failure: ", req.on_dependency_failure(),
                                        " is not a policy"));
  }
  CNET_RETURN_IF_ERROR(CheckBytes("idempotency_key", req.idempotency_key(), 128));
  CNET_RETURN_IF_ERROR(CheckBytes("workspace", req.workspace(), 256));
  std::vector<std::string> caps = SortedUnique(req.required_capabilities());
  if (!req.assign_to().empty()) {
    if (!ValidAgentId(req.assign_to())) {
      return InvalidArgument(
          absl::StrCat("assign_to ", Quote(req.assign_to()), ": not a valid agent id"));
    }
    absl::StatusOr<AgentInfo> agent = directory_->GetAgent(req.assign_to());
    if (absl::IsNotFound(agent.status())) {
      return TaskError(absl::StatusCode::kNotFound, "UNKNOWN_AGENT", "",
                       absl::StrCat("assign_to ", Quote(req.assign_to()), ": no such agent"));
    }
    if (!agent.ok()) return agent.status();
    for (const std::string& cap : caps) {
      if (!std::binary_search(agent->capabilities.begin(), agent->capabilities.end(), cap)) {
        return TaskError(absl::StatusCode::kFailedPrecondition, "MISSING_CAPABILITY", "",
                         absl::StrCat("assign_to ", Quote(req.assign_to()),
                                      ": the agent lacks required capability \"", cap, "\""));
      }
    }
  }
  // Push at creation, in the same commit: a task that is eligible at once
  // (no dependencies, no future not_before) is offered to the least loaded
  // capable agent right away. The directory is asked before taking the lock.
  std::vector<AgentInfo> candidates;
  if (options_.push_assignment && req.dependencies().empty() &&
      (!req.has_not_before() || FromProto(req.not_before()) <= now)) {
    if (!req.assign_to().empty()) {
      absl::StatusOr<AgentInfo> a = directory_->GetAgent(req.assign_to());
      if (a.ok() && a->Available() && a->HasAll(caps)) candidates.push_back(std::move(*a));
    } else {
      absl::StatusOr<std::vector<AgentInfo>> found = directory_->FindAgents(caps, 32);
      if (found.ok()) candidates = std::move(*found);
    }
  }
  std::string request_hash;
  if (!req.idempotency_key().empty()) {
    std::string bytes;
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    req.SerializeToCodedStream(&coded);
    coded.Trim();
    request_hash = crypto::Sha256Hex(bytes);
  }
  const std::string creator_id = actor.principal_id();

  Fx fx;
  CreateResult result;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return absl::UnavailableError("tasks service is shutting down");
    if (!req.idempotency_key().empty()) {
      auto it = idempotency_.find({creator_id, req.idempotency_key()});
      if (it != idempotency_.end()) {
        if (it->second.second != request_hash) {
          return TaskError(absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_KEY_REUSED",
                           it->second.first,
                           absl::StrCat("idempotency_key ", Quote(req.idempotency_key()),
                                        ": already used for ", TaskRef(it->second.first),
                                        " with a different request"));
        }
        Entry* existing = Find(it->second.first);
        if (existing != nullptr) {
          result.task = existing->task;
          result.created = false;
          return result;
        }
      }
    }
    const Entry* failed_dep = nullptr;
    bool all_done = true;
    for (const std::string& d : req.dependencies()) {
      const Entry* dep = Find(d);
      if (dep == nullptr) {
        return NotFound(d, absl::StrCat("dependencies: ", TaskRef(d), ": no such task"),
                        "UNKNOWN_DEPENDENCY");
      }
      pb::TaskState s = dep->task.state();
      if ((s == pb::TASK_STATE_FAILED || s == pb::TASK_STATE_CANCELLED) && failed_dep == nullptr) {
        failed_dep = dep;
      }
      if (s != pb::TASK_STATE_COMPLETED) all_done = false;
    }
    if (!req.parent_id().empty() && Find(req.parent_id()) == nullptr) {
      return NotFound(req.parent_id(),
                      absl::StrCat("parent_id: ", TaskRef(req.parent_id()), ": no such task"),
                      "UNKNOWN_PARENT");
    }
    bool block = req.on_dependency_failure() == pb::DEPENDENCY_FAILURE_POLICY_BLOCK;
    if (failed_dep != nullptr && !block) {
      return Precondition(failed_dep->task.id(), "DEPENDENCY_FAILED",
                          absl::StrCat("dependencies: ", TaskRef(failed_dep->task.id()), " is ",
                                       StateName(failed_dep->task.state()),
                                       " and on_dependency_failure is FAIL"));
    }

    std::string id = LowerId(ids_.Next("task-"));
    Entry& e = tasks_[id];
    pb::Task& t = e.task;
    t.set_id(id);
    t.set_title(req.title());
    t.set_description(req.description());
    t.set_priority(req.priority());
    for (const std::string& c : caps) t.add_required_capabilities(c);
    *t.mutable_dependencies() = req.dependencies();
    if (req.has_payload()) *t.mutable_payload() = req.payload();
    *t.mutable_tags() = req.tags();
    t.set_parent_id(req.parent_id());
    if (req.has_deadline()) *t.mutable_deadline() = req.deadline();
    t.set_max_attempts(req.max_attempts() > 0 ? req.max_attempts()
                                              : options_.default_max_attempts);
    if (req.has_review()) *t.mutable_review() = req.review();
    if (req.has_acceptance()) *t.mutable_acceptance() = req.acceptance();
    t.set_on_dependency_failure(req.on_dependency_failure());
    t.set_idempotency_key(req.idempotency_key());
    *t.mutable_creator() = actor.ToProto();
    *t.mutable_created_at() = ToProto(now);
    if (req.has_not_before()) *t.mutable_not_before() = req.not_before();
    t.set_assign_to(req.assign_to());
    t.set_workspace(req.workspace());
    t.set_origin_node(options_.node);
    if (failed_dep != nullptr) {
      t.set_blocked(true);
      t.set_blocked_reason(absl::StrCat("dependency ", failed_dep->task.id(), " is ",
                                        StateName(failed_dep->task.state())));
    }
    for (const std::string& d : req.dependencies()) Find(d)->dependents.push_back(id);
    if (!req.parent_id().empty()) Find(req.parent_id())->children.push_back(id);
    pending_.dependencies[id] =
        std::vector<std::string>(req.dependencies().begin(), req.dependencies().end());
    if (!req.idempotency_key().empty()) {
      idempotency_[{creator_id, req.idempotency_key()}] = {id, request_hash};
      IdempotencyRow row;
      row.creator = creator_id;
      row.key = req.idempotency_key();
      row.task_id = id;
      row.request_hash = request_hash;
      row.created_us = ToMicros(now);
      pending_.idempotency.push_back(std::move(row));
    }
    Move(e, pb::TASK_STATE_CREATED, Op::kCreate, actor, "created", fx);
    ArmDeadline(e);
    if (all_done && failed_dep == nullptr) {
      Move(e, pb::TASK_STATE_QUEUED, Op::kDependenciesMet, Actor::System("dependencies"),
           req.dependencies().empty() ? "no dependencies" : "dependencies completed", fx);
    }
    // Long-polling claimers first (Dispatch), then the pushed candidates.
    fx.check_dependents.clear();
    Dispatch(fx);
    if (!candidates.empty() && !e.queue_name.empty() && PushLocked(e, candidates, fx)) {
      fx.push_ids.erase(std::remove(fx.push_ids.begin(), fx.push_ids.end(), id),
                        fx.push_ids.end());
    }
    Settle(fx);
    result.task = e.task;
  }
  Finish(fx);
  return result;
}

absl::StatusOr<pb::Task> Board::Get(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(task_id));
  return e->task;
}

// --- Claim / Steal -------------------------------------------------------------------------

absl::Status Board::PrepareClaim(const Actor& actor, const pb::ClaimRequest& req,
                                 std::string* agent, AgentInfo* info, ClaimFilter* filter,
                                 absl::Duration* lease) {
  *agent = req.agent_id().empty() ? actor.agent() : req.agent_id();
  if (agent->empty()) return InvalidArgument("agent_id: required (the caller is not an agent)");
  if (!ValidAgentId(*agent)) {
    return InvalidArgument(absl::StrCat("agent_id ", Quote(*agent), ": not a valid agent id"));
  }
  if (*agent != actor.agent() && !actor.admin()) {
    return Denied("", "NOT_CALLER",
                  absl::StrCat("agent_id ", Quote(*agent), ": the caller is ",
                               actor.principal_id()));
  }
  if (req.has_wait()) {
    absl::Duration w = FromProtoDuration(req.wait());
    if (w < absl::ZeroDuration() || w > options_.max_claim_wait) {
      return InvalidArgument(absl::StrCat("wait: ", absl::FormatDuration(w), " is outside 0..",
                                          absl::FormatDuration(options_.max_claim_wait)));
    }
  }
  CNET_RETURN_IF_ERROR(
      CheckLeaseDuration("lease_duration", req.lease_duration(), req.has_lease_duration(), options_));
  CNET_RETURN_IF_ERROR(CheckCapabilities("capabilities", req.capabilities()));
  CNET_RETURN_IF_ERROR(CheckTags("tags", req.tags()));
  if (!req.task_id().empty() && !ValidTaskId(req.task_id())) {
    return InvalidArgument(
        absl::StrCat("task_id ", Quote(req.task_id()), ": not a task id (task-<ulid>)"));
  }
  absl::StatusOr<AgentInfo> found = directory_->GetAgent(*agent);
  if (absl::IsNotFound(found.status())) {
    return TaskError(absl::StatusCode::kFailedPrecondition, "AGENT_NOT_HEALTHY", "",
                     absl::StrCat("agent ", Quote(*agent), " is not registered"));
  }
  if (!found.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot look up agent ", Quote(*agent), ": ", found.status().message()));
  }
  *info = std::move(*found);
  if (info->health != pb::HEALTH_HEALTHY) {
    return TaskError(absl::StatusCode::kFailedPrecondition, "AGENT_NOT_HEALTHY", "",
                     absl::StrCat("agent ", Quote(*agent), " is ",
                                  pb::Health_Name(info->health).substr(7),
                                  ", only HEALTHY agents get work"));
  }
  filter->caps = info->capabilities;
  if (req.capabilities_size() > 0) {
    std::vector<std::string> subset = SortedUnique(req.capabilities());
    for (const std::string& c : subset) {
      if (!std::binary_search(info->capabilities.begin(), info->capabilities.end(), c)) {
        return InvalidArgument(absl::StrCat("capabilities: \"", c, "\" is not a capability of ",
                                            *agent));
      }
    }
    filter->caps = std::move(subset);
  }
  filter->tags.assign(req.tags().begin(), req.tags().end());
  filter->workspace = req.workspace();
  *lease = req.has_lease_duration() ? FromProtoDuration(req.lease_duration())
                                    : options_.default_lease;
  return absl::OkStatus();
}

absl::StatusOr<pb::ClaimResponse> Board::ClaimNow(const Actor& actor, const std::string& agent,
                                                  const AgentInfo& info,
                                                  const pb::ClaimRequest& req,
                                                  const ClaimFilter& filter, absl::Duration lease,
                                                  bool* found, Fx& fx) {
  *found = false;
  pb::ClaimResponse resp;
  int limit = LimitOf(info);
  Entry* e = nullptr;
  if (!req.task_id().empty()) {
    CNET_ASSIGN_OR_RETURN(e, FindOr404(req.task_id()));
    const pb::Task& t = e->task;
    if (t.state() != pb::TASK_STATE_QUEUED) {
      return Precondition(t.id(), "NOT_ELIGIBLE",
                          absl::StrCat(TaskRef(t.id()), ": cannot move from ",
                                       StateName(t.state()), " to ASSIGNED"));
    }
    if (e->deferred) {
      return Precondition(t.id(), "NOT_ELIGIBLE",
                          absl::StrCat(TaskRef(t.id()), ": not offered before ",
                                       absl::FormatTime(FromProto(t.not_before()))));
    }
    for (const std::string& c : t.required_capabilities()) {
      if (!std::binary_search(info.capabilities.begin(), info.capabilities.end(), c)) {
        return Precondition(t.id(), "MISSING_CAPABILITY",
                            absl::StrCat(TaskRef(t.id()), ": agent ", agent,
                                         " lacks required capability \"", c, "\""));
      }
    }
    if (!t.assign_to().empty() && t.assign_to() != agent) {
      return Precondition(t.id(), "NOT_ELIGIBLE",
                          absl::StrCat(TaskRef(t.id()), ": reserved for agent ", t.assign_to()));
    }
    if (Contains(t.excluded_agents(), agent)) {
      return Precondition(t.id(), "NOT_ELIGIBLE",
                          absl::StrCat(TaskRef(t.id()), ": agent ", agent,
                                       " released it as NOT_CAPABLE"));
    }
    if (!Accepts(*e, agent, filter)) {
      return Precondition(t.id(), "NOT_ELIGIBLE",
                          absl::StrCat(TaskRef(t.id()), ": does not match the claim's filters"));
    }
  }
  if (LoadOf(agent) >= limit) {
    return TaskError(absl::StatusCode::kFailedPrecondition, "AT_CAPACITY", req.task_id(),
                     absl::StrCat("agent ", agent, " holds ", LoadOf(agent),
                                  " tasks, its concurrency limit"));
  }
  if (e == nullptr) e = BestFor(agent, filter);
  if (e != nullptr) {
    Assign(*e, agent, lease, actor, "claimed", fx);
    stats_.Claimed(clock_->Now());
    *found = true;
  } else if (!req.disable_steal()) {
    e = BestStealable(agent, filter, "");
    if (e != nullptr) {
      resp.set_stolen_from(e->task.assignee());
      StealLocked(*e, agent, lease, actor, fx);
      *found = true;
    }
  }
  if (*found) {
    *resp.mutable_task() = e->task;
    *resp.mutable_lease() = e->task.lease();
  }
  return resp;
}

absl::StatusOr<pb::ClaimResponse> Board::Claim(const Actor& actor, const pb::ClaimRequest& req) {
  std::string agent;
  AgentInfo info;
  ClaimFilter filter;
  absl::Duration lease;
  CNET_RETURN_IF_ERROR(PrepareClaim(actor, req, &agent, &info, &filter, &lease));
  Fx fx;
  absl::StatusOr<pb::ClaimResponse> resp;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return absl::UnavailableError("tasks service is shutting down");
    bool found = false;
    resp = ClaimNow(actor, agent, info, req, filter, lease, &found, fx);
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

uint64_t Board::ClaimAsync(const Actor& actor, const pb::ClaimRequest& req, ClaimDone done) {
  std::string agent;
  AgentInfo info;
  ClaimFilter filter;
  absl::Duration lease;
  absl::Status prepared = PrepareClaim(actor, req, &agent, &info, &filter, &lease);
  if (!prepared.ok()) {
    done(prepared);
    return 0;
  }
  absl::Duration wait = req.has_wait() ? FromProtoDuration(req.wait()) : absl::ZeroDuration();
  Fx fx;
  absl::StatusOr<pb::ClaimResponse> resp;
  uint64_t waiter_id = 0;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) {
      resp = absl::UnavailableError("tasks service is shutting down");
    } else {
      bool found = false;
      resp = ClaimNow(actor, agent, info, req, filter, lease, &found, fx);
      if (resp.ok() && !found && wait > absl::ZeroDuration() && req.task_id().empty()) {
        Waiter w;
        w.id = waiter_id = next_waiter_++;
        w.actor = actor;
        w.agent = agent;
        w.filter = filter;
        w.limit = LimitOf(info);
        w.lease = lease;
        w.done = std::move(done);
        w.timer = clock_->RunAfter(wait, [this, id = w.id, life = life_mu_, alive = alive_] {
          absl::ReaderMutexLock l(life.get());
          if (*alive) OnWaitTimeout(id);
        });
        waiters_.push_back(std::move(w));
      }
      Settle(fx);
    }
  }
  if (waiter_id != 0) {
    FinishAsync(std::move(fx), [] {});
  } else {
    auto shared_done = std::make_shared<ClaimDone>(std::move(done));
    auto shared_resp = std::make_shared<absl::StatusOr<pb::ClaimResponse>>(std::move(resp));
    FinishAsync(std::move(fx), [shared_done, shared_resp] {
      (*shared_done)(std::move(*shared_resp));
    });
  }
  return waiter_id;
}

void Board::OnWaitTimeout(uint64_t waiter_id) {
  ClaimDone done;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->id == waiter_id) {
        done = std::move(it->done);
        waiters_.erase(it);
        break;
      }
    }
  }
  if (done) done(pb::ClaimResponse());
}

void Board::CancelClaim(uint64_t waiter_id) {
  ClaimDone done;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->id == waiter_id) {
        clock_->Cancel(it->timer);
        done = std::move(it->done);
        waiters_.erase(it);
        break;
      }
    }
  }
  if (done) done(absl::CancelledError("claim cancelled by the caller"));
}

absl::StatusOr<pb::StealResponse> Board::Steal(const Actor& actor, const pb::StealRequest& req) {
  std::string agent = req.agent_id().empty() ? actor.agent() : req.agent_id();
  if (agent.empty()) return InvalidArgument("agent_id: required (the caller is not an agent)");
  if (!ValidAgentId(agent)) {
    return InvalidArgument(absl::StrCat("agent_id ", Quote(agent), ": not a valid agent id"));
  }
  if (agent != actor.agent() && !actor.admin()) {
    return Denied("", "NOT_CALLER",
                  absl::StrCat("agent_id ", Quote(agent), ": the caller is ",
                               actor.principal_id()));
  }
  if (!req.task_id().empty() && !ValidTaskId(req.task_id())) {
    return InvalidArgument(
        absl::StrCat("task_id ", Quote(req.task_id()), ": not a task id (task-<ulid>)"));
  }
  if (!req.from_agent_id().empty() && !ValidAgentId(req.from_agent_id())) {
    return InvalidArgument(
        absl::StrCat("from_agent_id ", Quote(req.from_agent_id()), ": not a valid agent id"));
  }
  CNET_RETURN_IF_ERROR(
      CheckLeaseDuration("lease_duration", req.lease_duration(), req.has_lease_duration(), options_));
  absl::StatusOr<AgentInfo> info = directory_->GetAgent(agent);
  if (absl::IsNotFound(info.status())) {
    return TaskError(absl::StatusCode::kFailedPrecondition, "NOT_STEALABLE", req.task_id(),
                     absl::StrCat("agent ", Quote(agent), " is not registered"));
  }
  if (!info.ok()) return absl::UnavailableError(std::string(info.status().message()));
  if (info->health != pb::HEALTH_HEALTHY) {
    return TaskError(absl::StatusCode::kFailedPrecondition, "NOT_STEALABLE", req.task_id(),
                     absl::StrCat("agent ", Quote(agent), " is not HEALTHY"));
  }
  absl::Duration lease =
      req.has_lease_duration() ? FromProtoDuration(req.lease_duration()) : options_.default_lease;
  ClaimFilter filter;
  filter.caps = info->capabilities;
  Fx fx;
  pb::StealResponse resp;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return absl::UnavailableError("tasks service is shutting down");
    auto not_stealable = [&](const std::string& id, const std::string& why) {
      return Precondition(id, "NOT_STEALABLE", absl::StrCat(TaskRef(id), ": ", why));
    };
    Entry* e = nullptr;
    if (!req.task_id().empty()) {
      CNET_ASSIGN_OR_RETURN(e, FindOr404(req.task_id()));
      const pb::Task& t = e->task;
      if (t.state() != pb::TASK_STATE_ASSIGNED) {
        return not_stealable(t.id(), absl::StrCat("cannot move from ", StateName(t.state()),
                                                  " to ASSIGNED",
                                                  t.state() == pb::TASK_STATE_RUNNING
                                                      ? " (running work is never stolen)"
                                                      : ""));
      }
      if (t.assignee() == agent) return not_stealable(t.id(), "the caller already holds it");
      if (!req.from_agent_id().empty() && t.assignee() != req.from_agent_id()) {
        return not_stealable(t.id(), absl::StrCat("held by ", t.assignee(), ", not ",
                                                  req.from_agent_id()));
      }
      auto load = loads_.find(t.assignee());
      int assigned = load == loads_.end() ? 0 : static_cast<int>(load->second.assigned.size());
      if (assigned <= options_.steal_threshold) {
        return not_stealable(t.id(), absl::StrCat("holder ", t.assignee(), " has only ",
                                                  assigned, " assigned tasks (threshold ",
                                                  options_.steal_threshold, ")"));
      }
      for (const std::string& c : t.required_capabilities()) {
        if (!std::binary_search(filter.caps.begin(), filter.caps.end(), c)) {
          return not_stealable(t.id(), absl::StrCat("agent ", agent,
                                                    " lacks required capability \"", c, "\""));
        }
      }
      if (!Accepts(*e, agent, filter)) {
        return not_stealable(t.id(), absl::StrCat("not eligible for agent ", agent));
      }
    }
    if (LoadOf(agent) >= LimitOf(*info)) {
      return not_stealable(req.task_id(), absl::StrCat("agent ", agent, " is at capacity (",
                                                       LoadOf(agent), " tasks)"));
    }
    if (e == nullptr) {
      e = BestStealable(agent, filter, req.from_agent_id());
      if (e == nullptr) {
        return TaskError(absl::StatusCode::kNotFound, "NOT_STEALABLE", "",
                         absl::StrCat("no stealable task for agent ", agent));
      }
    }
    resp.set_stolen_from(e->task.assignee());
    StealLocked(*e, agent, lease, actor, fx);
    *resp.mutable_task() = e->task;
    *resp.mutable_lease() = e->task.lease();
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

// --- holder calls --------------------------------------------------------------------------

namespace {
std::string CreatorAgent(const pb::Task& t) {
  if (t.creator().kind() == pb::PRINCIPAL_KIND_SERVICE) return t.creator().on_behalf_of();
  return t.creator().id();
}
}  // namespace

absl::Status Board::Gate(const Entry& e, const Actor& actor, const std::string& lease_id,
                         int64_t epoch, pb::TaskState to, Op op) const {
  LeaseCheck c = CheckLease(e, actor, lease_id, epoch);
  if (c == LeaseCheck::kStale) return RequireHolder(e, actor, lease_id, epoch);
  CNET_RETURN_IF_ERROR(CheckMove(e.task.id(), e.task.state(), to, op));
  if (c == LeaseCheck::kNeverHeld) return RequireHolder(e, actor, lease_id, epoch);
  return absl::OkStatus();
}

void Board::ExpireDue(const std::string& task_id) {
  Fx fx;
  {
    absl::MutexLock lock(&mu_);
    Entry* e = Find(task_id);
    if (e == nullptr || !IsLeased(e->task.state()) || !e->task.has_lease()) return;
    if (clock_->Now() < FromProto(e->task.lease().expires_at())) return;
    Requeue(*e, /*consume=*/true, Actor::System("lease-timer"),
            absl::StrCat("lease expired (holder ", e->task.assignee(), ", epoch ",
                         e->task.lease().epoch(), ")"),
            fx);
    Settle(fx);
  }
  Finish(fx);
}

absl::StatusOr<pb::StartResponse> Board::Start(const Actor& actor, const pb::StartRequest& req) {
  ExpireDue(req.task_id());
  Fx fx;
  pb::StartResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    CNET_RETURN_IF_ERROR(Gate(*e, actor, req.lease_id(), req.lease_epoch(),
                              pb::TASK_STATE_RUNNING, Op::kStart));
    RenewLeaseLocked(*e, absl::ZeroDuration(), fx);
    Move(*e, pb::TASK_STATE_RUNNING, Op::kStart, actor, "started", fx);
    *resp.mutable_task() = e->task;
    *resp.mutable_lease() = e->task.lease();
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::ProgressResponse> Board::Progress(const Actor& actor,
                                                     const pb::ProgressRequest& req) {
  if (!std::isfinite(req.percent()) || req.percent() < 0 || req.percent() > 100) {
    return InvalidArgument(absl::StrCat("percent: ", req.percent(), " is outside 0..100"));
  }
  CNET_RETURN_IF_ERROR(CheckBytes("note", req.note(), 4096));
  CNET_RETURN_IF_ERROR(CheckStruct("checkpoint", req.checkpoint(), 256 * 1024));
  CNET_RETURN_IF_ERROR(
      CheckLeaseDuration("lease_duration", req.lease_duration(), req.has_lease_duration(), options_));
  ExpireDue(req.task_id());
  Fx fx;
  pb::ProgressResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    LeaseCheck c = CheckLease(*e, actor, req.lease_id(), req.lease_epoch());
    if (c == LeaseCheck::kNeverHeld) {
      return RequireHolder(*e, actor, req.lease_id(), req.lease_epoch());
    }
    resp.set_task_state(t.state());
    if (c == LeaseCheck::kStale) {
      resp.set_lease_valid(false);
      resp.set_lease_loss_reason(LossReason(*e, req.lease_id(), req.lease_epoch()));
      resp.set_cancel_requested(t.state() == pb::TASK_STATE_CANCELLED);
      return resp;
    }
    if (t.state() == pb::TASK_STATE_ASSIGNED) {
      Move(*e, pb::TASK_STATE_RUNNING, Op::kStart, actor, "started (first progress)", fx);
    }
    RenewLeaseLocked(*e, req.has_lease_duration() ? FromProtoDuration(req.lease_duration())
                                                  : absl::ZeroDuration(),
                     fx);
    pb::TaskProgress* p = t.mutable_progress();
    p->set_percent(req.percent());
    p->set_note(req.note());
    if (req.has_checkpoint()) *p->mutable_checkpoint() = req.checkpoint();
    *p->mutable_reported_at() = ToProto(clock_->Now());
    p->set_reported_by(actor.principal_id());
    p->set_lease_epoch(t.lease().epoch());
    Emit(e, pb::TASK_EVENT_TYPE_PROGRESS, actor, nullptr, "", fx);
    resp.set_lease_valid(true);
    resp.set_cancel_requested(t.cancel_requested());
    *resp.mutable_lease() = t.lease();
    resp.set_task_state(t.state());
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::RenewLeaseResponse> Board::RenewLease(const Actor& actor,
                                                         const pb::RenewLeaseRequest& req) {
  CNET_RETURN_IF_ERROR(
      CheckLeaseDuration("lease_duration", req.lease_duration(), req.has_lease_duration(), options_));
  ExpireDue(req.task_id());
  Fx fx;
  pb::RenewLeaseResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    LeaseCheck c = CheckLease(*e, actor, req.lease_id(), req.lease_epoch());
    if (c == LeaseCheck::kNeverHeld) {
      return RequireHolder(*e, actor, req.lease_id(), req.lease_epoch());
    }
    resp.set_task_state(t.state());
    if (c == LeaseCheck::kStale) {
      resp.set_lease_valid(false);
      resp.set_lease_loss_reason(LossReason(*e, req.lease_id(), req.lease_epoch()));
      resp.set_cancel_requested(t.state() == pb::TASK_STATE_CANCELLED);
      return resp;
    }
    RenewLeaseLocked(*e, req.has_lease_duration() ? FromProtoDuration(req.lease_duration())
                                                  : absl::ZeroDuration(),
                     fx);
    resp.set_lease_valid(true);
    resp.set_cancel_requested(t.cancel_requested());
    *resp.mutable_lease() = t.lease();
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::ReleaseResponse> Board::Release(const Actor& actor,
                                                   const pb::ReleaseRequest& req) {
  absl::Time now = clock_->Now();
  if (req.reason() == pb::RELEASE_REASON_UNSPECIFIED) return InvalidArgument("reason: required");
  if (req.reason() < 0 || req.reason() > pb::RELEASE_REASON_OTHER) {
    return InvalidArgument(absl::StrCat("reason: ", req.reason(), " is not a release reason"));
  }
  if (req.reason() == pb::RELEASE_REASON_RATE_LIMITED && !req.has_not_before()) {
    return InvalidArgument("not_before: required with reason RATE_LIMITED");
  }
  if (req.has_not_before()) {
    absl::Time nb = FromProto(req.not_before());
    if (nb < now) {
      return InvalidArgument(
          absl::StrCat("not_before: ", absl::FormatTime(nb), " is in the past"));
    }
    if (nb > now + absl::Hours(24)) {
      return InvalidArgument(
          absl::StrCat("not_before: ", absl::FormatTime(nb), " is more than 24 h ahead"));
    }
  }
  CNET_RETURN_IF_ERROR(CheckBytes("note", req.note(), 1024));
  CNET_RETURN_IF_ERROR(CheckStruct("checkpoint", req.checkpoint(), 256 * 1024));
  ExpireDue(req.task_id());
  Fx fx;
  pb::ReleaseResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    bool consume = req.reason() == pb::RELEASE_REASON_OTHER;
    bool exhausted = consume && t.attempts_used() + 1 >= t.max_attempts();
    CNET_RETURN_IF_ERROR(Gate(*e, actor, req.lease_id(), req.lease_epoch(),
                              exhausted ? pb::TASK_STATE_FAILED : pb::TASK_STATE_QUEUED,
                              exhausted ? Op::kFail : Op::kRequeue));
    std::string holder = t.assignee();
    if (req.has_checkpoint()) *t.mutable_progress()->mutable_checkpoint() = req.checkpoint();
    if (req.has_not_before()) *t.mutable_not_before() = req.not_before();
    if (req.reason() == pb::RELEASE_REASON_NOT_CAPABLE &&
        !Contains(t.excluded_agents(), holder)) {
      t.add_excluded_agents(holder);
    }
    std::string why = absl::StrCat(
        "released by ", holder, ": ", pb::ReleaseReason_Name(req.reason()).substr(15),
        req.has_not_before()
            ? absl::StrCat(" until ", absl::FormatTime(FromProto(req.not_before())))
            : "",
        req.note().empty() ? "" : absl::StrCat(" (", req.note(), ")"));
    stats_.Released(now, holder);
    Requeue(*e, consume, actor, why, fx);
    *resp.mutable_task() = e->task;
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::RequestInputResponse> Board::RequestInput(const Actor& actor,
                                                             const pb::RequestInputRequest& req) {
  CNET_RETURN_IF_ERROR(CheckBytes("question", req.question(), 16 * 1024, /*required=*/true));
  CNET_RETURN_IF_ERROR(CheckStruct("details", req.details(), 64 * 1024));
  if (!req.ask().empty()) {
    if (!ValidAgentId(req.ask())) {
      return InvalidArgument(absl::StrCat("ask ", Quote(req.ask()), ": not a valid agent id"));
    }
    absl::StatusOr<AgentInfo> asked = directory_->GetAgent(req.ask());
    if (absl::IsNotFound(asked.status())) {
      return TaskError(absl::StatusCode::kNotFound, "UNKNOWN_AGENT", req.task_id(),
                       absl::StrCat("ask ", Quote(req.ask()), ": no such agent"));
    }
    if (!asked.ok()) return absl::UnavailableError(std::string(asked.status().message()));
  }
  ExpireDue(req.task_id());
  Fx fx;
  pb::RequestInputResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    CNET_RETURN_IF_ERROR(Gate(*e, actor, req.lease_id(), req.lease_epoch(),
                              pb::TASK_STATE_INPUT_REQUIRED, Op::kRequestInput));
    std::string asked = req.ask().empty() ? CreatorAgent(t) : req.ask();
    pb::InputRequest* in = t.mutable_input_request();
    in->Clear();
    in->set_question(req.question());
    if (req.has_details()) *in->mutable_details() = req.details();
    in->set_asked_of(asked);
    in->set_asked_by(t.assignee());
    *in->mutable_asked_at() = ToProto(clock_->Now());
    Move(*e, pb::TASK_STATE_INPUT_REQUIRED, Op::kRequestInput, actor,
         absl::StrCat("input requested from ", asked), fx);
    AddNotice(asked, t.id(), "input_requested",
              absl::StrCat("question on task ", t.id()),
              absl::StrCat(t.assignee(), " asks about task ", t.id(), " (", t.title(),
                           "): ", req.question(), "\nAnswer with ProvideInput."),
              true, fx);
    *resp.mutable_task() = t;
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::ProvideInputResponse> Board::ProvideInput(const Actor& actor,
                                                             const pb::ProvideInputRequest& req) {
  CNET_RETURN_IF_ERROR(CheckBytes("answer", req.answer(), 64 * 1024));
  CNET_RETURN_IF_ERROR(CheckStruct("answer_payload", req.answer_payload(), 256 * 1024));
  if (req.answer().empty() && req.answer_payload().fields().empty()) {
    return InvalidArgument("answer: required (or answer_payload)");
  }
  Fx fx;
  pb::ProvideInputResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    CNET_RETURN_IF_ERROR(
        CheckMove(t.id(), t.state(), pb::TASK_STATE_RUNNING, Op::kProvideInput));
    const std::string who = actor.principal_id();
    if (!actor.admin() && who != CreatorAgent(t) && who != t.creator().id() &&
        actor.agent() != t.input_request().asked_of()) {
      return Denied(t.id(), "NOT_ASKED",
                    absl::StrCat(TaskRef(t.id()), ": ", who,
                                 " is neither the creator nor the asked agent (",
                                 t.input_request().asked_of(), ")"));
    }
    pb::InputRequest* in = t.mutable_input_request();
    in->set_answer(req.answer());
    if (req.has_answer_payload()) *in->mutable_answer_payload() = req.answer_payload();
    in->set_answered_by(who);
    *in->mutable_answered_at() = ToProto(clock_->Now());
    Move(*e, pb::TASK_STATE_RUNNING, Op::kProvideInput, actor,
         absl::StrCat("input provided by ", who), fx);
    AddNotice(t.assignee(), t.id(), "input_provided",
              absl::StrCat("answer on task ", t.id()),
              absl::StrCat(who, " answered your question on task ", t.id(), ": ", req.answer()),
              true, fx);
    *resp.mutable_task() = t;
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::Status Board::AcceptanceFailure(const Entry& e, const pb::TaskResult& result) const {
  const pb::AcceptanceChecks& a = e.task.acceptance();
  std::vector<std::string> missing;
  for (int kind : a.required_evidence()) {
    bool present = false;
    for (const auto& ev : result.evidence()) {
      if (static_cast<int>(ev.detail_case()) == kind) present = true;
    }
    if (!present) {
      missing.push_back(absl::StrCat(
          "evidence of kind ", pb::EvidenceKind_Name(static_cast<pb::EvidenceKind>(kind)).substr(14)));
    }
  }
  for (const std::string& name : a.required_artifacts()) {
    bool present = false;
    for (const auto& ev : result.evidence()) {
      if (ev.has_artifact() && ev.artifact().name() == name) present = true;
    }
    if (!present) missing.push_back(absl::StrCat("artifact \"", name, "\""));
  }
  if (a.require_success()) {
    for (const auto& ev : result.evidence()) {
      if (ev.has_command() && ev.command().exit_code() != 0) {
        missing.push_back(absl::StrCat("success of command \"", ev.command().command(),
                                       "\" (exit code ", ev.command().exit_code(), ")"));
      }
      if (ev.has_test_report() && ev.test_report().failed() != 0) {
        missing.push_back(absl::StrCat("a passing test report (", ev.test_report().suite(), ": ",
                                       ev.test_report().failed(), " failed)"));
      }
    }
  }
  if (missing.empty()) return absl::OkStatus();
  return Precondition(e.task.id(), "ACCEPTANCE_FAILED",
                      absl::StrCat(TaskRef(e.task.id()), ": acceptance checks not met: missing ",
                                   absl::StrJoin(missing, "; ")));
}

absl::StatusOr<pb::CompleteResponse> Board::Complete(const Actor& actor,
                                                     const pb::CompleteRequest& req) {
  const pb::TaskResult& in = req.result();
  if (in.stop_reason() != pb::STOP_REASON_UNSPECIFIED && in.stop_reason() != pb::STOP_REASON_DONE &&
      in.stop_reason() != pb::STOP_REASON_BUDGET_EXHAUSTED) {
    return InvalidArgument(absl::StrCat("result.stop_reason: ",
                                        pb::StopReason_Name(in.stop_reason()),
                                        " is not allowed for Complete (DONE or BUDGET_EXHAUSTED)"));
  }
  CNET_RETURN_IF_ERROR(CheckResult("result", in, options_.max_payload_bytes));
  ExpireDue(req.task_id());
  absl::Time now = clock_->Now();
  Fx fx;
  pb::CompleteResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    pb::TaskResult result = in;
    if (result.stop_reason() == pb::STOP_REASON_UNSPECIFIED) {
      result.set_stop_reason(pb::STOP_REASON_DONE);
    }
    result.set_commit_sha(EffectiveSha(in));
    *result.mutable_submitted_at() = ToProto(now);
    const bool resubmission =
        (t.state() == pb::TASK_STATE_REVIEWING || t.state() == pb::TASK_STATE_COMPLETED) &&
        req.lease_id().empty();
    if (resubmission) {
      const bool reopen = t.state() == pb::TASK_STATE_COMPLETED;
      const Op op = reopen ? Op::kReopen : Op::kResubmit;
      if (reopen) {
        bool approved = t.review().required() && !t.author().empty();
        if (!approved) {
          return Precondition(t.id(), "ILLEGAL_TRANSITION",
                              absl::StrCat(TaskRef(t.id()),
                                           ": cannot move from COMPLETED to REVIEWING (no "
                                           "review was required)"));
        }
        if (now > FromProto(t.finished_at()) + options_.review_reopen_window) {
          return Precondition(t.id(), "ILLEGAL_TRANSITION",
                              absl::StrCat(TaskRef(t.id()),
                                           ": cannot move from COMPLETED to REVIEWING (the "
                                           "reopen window of ",
                                           absl::FormatDuration(options_.review_reopen_window),
                                           " has passed)"));
        }
      }
      if (!actor.admin() && actor.agent() != t.author()) {
        return Denied(t.id(), "NOT_AUTHOR",
                      absl::StrCat(TaskRef(t.id()), ": only its author ", t.author(),
                                   " may resubmit"));
      }
      if (result.commit_sha().empty()) {
        return InvalidArgument(
            "result.commit_sha: a resubmission must name the new commit (40 or 64 hex)");
      }
      if (result.commit_sha() == t.result().commit_sha()) {
        return Precondition(t.id(), "SAME_COMMIT",
                            absl::StrCat(TaskRef(t.id()), ": commit ", result.commit_sha(),
                                         " was already submitted; resubmit with a new SHA"));
      }
      CNET_RETURN_IF_ERROR(AcceptanceFailure(*e, result));
      result.set_submitted_by(t.author());
      for (auto& r : *t.mutable_reviews()) r.set_superseded(true);
      *t.mutable_result() = std::move(result);
      Move(*e, pb::TASK_STATE_REVIEWING, op, actor,
           absl::StrCat("resubmitted with commit ", t.result().commit_sha()), fx);
    } else {
      const pb::TaskState to =
          t.review().required() ? pb::TASK_STATE_REVIEWING : pb::TASK_STATE_COMPLETED;
      CNET_RETURN_IF_ERROR(Gate(*e, actor, req.lease_id(), req.lease_epoch(), to, Op::kComplete));
      CNET_RETURN_IF_ERROR(AcceptanceFailure(*e, result));
      std::string holder = t.assignee();
      result.set_submitted_by(holder);
      *t.mutable_result() = std::move(result);
      t.set_author(holder);
      EndLease(*e, to == pb::TASK_STATE_REVIEWING ? "submitted for review" : "completed", fx);
      Move(*e, to, Op::kComplete, actor,
           to == pb::TASK_STATE_REVIEWING ? "submitted for review" : "completed", fx);
      if (to == pb::TASK_STATE_REVIEWING && !t.review().reviewer_agent_id().empty()) {
        AddNotice(t.review().reviewer_agent_id(), t.id(), "review_requested",
                  absl::StrCat("review task ", t.id()),
                  absl::StrCat("Task ", t.id(), " (", t.title(), ") awaits your review of commit ",
                               t.result().commit_sha()),
                  false, fx);
      }
      std::string creator = CreatorAgent(t);
      if (to == pb::TASK_STATE_COMPLETED && creator != holder) {
        AddNotice(creator, t.id(), "completed", absl::StrCat("task ", t.id(), " completed"),
                  absl::StrCat("Task ", t.id(), " (", t.title(), ") was completed by ", holder),
                  false, fx);
      }
    }
    *resp.mutable_task() = t;
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::FailResponse> Board::Fail(const Actor& actor, const pb::FailRequest& req) {
  CNET_RETURN_IF_ERROR(CheckBytes("reason", req.reason(), 1024, /*required=*/true));
  if (req.has_result()) {
    CNET_RETURN_IF_ERROR(CheckResult("result", req.result(), options_.max_payload_bytes));
  }
  ExpireDue(req.task_id());
  Fx fx;
  pb::FailResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    const bool retry = req.retryable() && t.attempts_used() + 1 < t.max_attempts();
    CNET_RETURN_IF_ERROR(Gate(*e, actor, req.lease_id(), req.lease_epoch(),
                              retry ? pb::TASK_STATE_QUEUED : pb::TASK_STATE_FAILED,
                              retry ? Op::kRequeue : Op::kFail));
    std::string holder = t.assignee();
    if (req.has_result()) {
      pb::TaskResult result = req.result();
      if (result.stop_reason() == pb::STOP_REASON_UNSPECIFIED) {
        result.set_stop_reason(pb::STOP_REASON_ERROR);
      }
      result.set_submitted_by(holder);
      *result.mutable_submitted_at() = ToProto(clock_->Now());
      *t.mutable_result() = std::move(result);
    }
    std::string why = absl::StrCat("failed by ", holder, ": ", req.reason());
    if (t.cancel_requested()) {
      // A cancellation was pending: the holder stopped; the task ends CANCELLED.
      CancelTask(*e, pb::TERMINAL_CAUSE_CANCELLED, actor,
                 t.terminal_reason().empty() ? "cancelled" : t.terminal_reason(), fx);
    } else if (retry) {
      Requeue(*e, /*consume=*/true, actor, why, fx);
    } else {
      t.set_attempts_used(t.attempts_used() + 1);
      FailTask(*e, Op::kFail,
               req.retryable() ? pb::TERMINAL_CAUSE_ATTEMPTS_EXHAUSTED
                               : pb::TERMINAL_CAUSE_AGENT_FAILED,
               actor,
               req.retryable() ? absl::StrCat("attempts exhausted (", t.attempts_used(), " of ",
                                              t.max_attempts(), " used; last: ", why, ")")
                               : why,
               fx);
    }
    *resp.mutable_task() = t;
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

// --- Review / Cancel / Update ------------------------------------------------------------------

absl::StatusOr<pb::ReviewResponse> Board::Review(const Actor& actor,
                                                 const pb::ReviewRequest& req) {
  if (req.verdict() != pb::REVIEW_VERDICT_APPROVE && req.verdict() != pb::REVIEW_VERDICT_REJECT) {
    return InvalidArgument("verdict: required (APPROVE or REJECT)");
  }
  if (req.reject_mode() < 0 || req.reject_mode() > pb::REJECT_MODE_REQUEUE) {
    return InvalidArgument(absl::StrCat("reject_mode: ", req.reject_mode(), " is not a mode"));
  }
  CNET_RETURN_IF_ERROR(CheckBytes("note", req.note(), 16 * 1024));
  if (!req.reviewed_commit_sha().empty() && !ValidSha(req.reviewed_commit_sha())) {
    return InvalidArgument(absl::StrCat("reviewed_commit_sha ", Quote(req.reviewed_commit_sha()),
                                        ": must be 40 or 64 lower-case hex characters"));
  }
  const std::string reviewer = actor.admin() ? "admin" : actor.agent();
  if (reviewer.empty()) {
    return Denied(req.task_id(), "NOT_REVIEWER", "review: the caller is not an agent");
  }
  // The reviewer capability, if the policy names one, comes from the registry.
  std::string needed_cap;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    needed_cap = e->task.review().reviewer_capability();
  }
  bool has_cap = true;
  if (!needed_cap.empty() && !actor.admin()) {
    absl::StatusOr<AgentInfo> info = directory_->GetAgent(reviewer);
    if (info.ok()) {
      has_cap = std::binary_search(info->capabilities.begin(), info->capabilities.end(),
                                   needed_cap);
    } else if (absl::IsNotFound(info.status())) {
      has_cap = false;
    } else {
      return absl::UnavailableError(std::string(info.status().message()));
    }
  }
  const bool approve = req.verdict() == pb::REVIEW_VERDICT_APPROVE;
  const bool requeue = !approve && req.reject_mode() == pb::REJECT_MODE_REQUEUE;
  Fx fx;
  pb::ReviewResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    bool exhausted = requeue && t.attempts_used() + 1 >= t.max_attempts();
    pb::TaskState to = approve ? pb::TASK_STATE_COMPLETED
                       : (requeue && !exhausted) ? pb::TASK_STATE_QUEUED
                                                 : pb::TASK_STATE_FAILED;
    Op op = approve ? Op::kApprove : Op::kReject;
    if (t.state() != pb::TASK_STATE_REVIEWING) {
      CNET_RETURN_IF_ERROR(CheckMove(t.id(), t.state(), to, op));
    }
    if (reviewer == t.author() || Contains(t.former_holders(), reviewer)) {
      return Denied(t.id(), "REVIEWER_CONFLICT",
                    absl::StrCat(TaskRef(t.id()), ": ", reviewer,
                                 reviewer == t.author() ? " is its author"
                                                        : " held its lease",
                                 " and cannot review it"));
    }
    if (!actor.admin() && !t.review().reviewer_agent_id().empty() &&
        reviewer != t.review().reviewer_agent_id()) {
      return Denied(t.id(), "NOT_REVIEWER",
                    absl::StrCat(TaskRef(t.id()), ": only ", t.review().reviewer_agent_id(),
                                 " may review it"));
    }
    if (!has_cap && t.review().reviewer_capability() == needed_cap) {
      return Denied(t.id(), "NOT_REVIEWER",
                    absl::StrCat(TaskRef(t.id()), ": reviewer ", reviewer,
                                 " lacks capability \"", needed_cap, "\""));
    }
    if (req.reviewed_commit_sha() != t.result().commit_sha()) {
      return Precondition(t.id(), "STALE_REVIEW",
                          absl::StrCat(TaskRef(t.id()), ": reviewed commit ",
                                       Quote(req.reviewed_commit_sha()),
                                       " is not the submitted one (",
                                       Quote(t.result().commit_sha()), ")"));
    }
    for (const pb::ReviewRecord& r : t.reviews()) {
      if (!r.superseded() && r.reviewer() == reviewer &&
          r.reviewed_commit_sha() == req.reviewed_commit_sha()) {
        return Precondition(t.id(), "ALREADY_REVIEWED",
                            absl::StrCat(TaskRef(t.id()), ": ", reviewer,
                                         " already gave a verdict on this commit"));
      }
    }
    pb::ReviewRecord* rec = t.add_reviews();
    rec->set_reviewer(reviewer);
    rec->set_verdict(req.verdict());
    if (!approve) {
      rec->set_reject_mode(requeue ? pb::REJECT_MODE_REQUEUE : pb::REJECT_MODE_FAIL);
    }
    rec->set_note(req.note());
    rec->set_reviewed_commit_sha(req.reviewed_commit_sha());
    *rec->mutable_time() = ToProto(clock_->Now());
    std::string note_head = req.note().substr(0, 200);
    if (approve) {
      int approvals = 0;
      for (const pb::ReviewRecord& r : t.reviews()) {
        if (!r.superseded() && r.verdict() == pb::REVIEW_VERDICT_APPROVE &&
            r.reviewed_commit_sha() == t.result().commit_sha()) {
          ++approvals;
        }
      }
      int needed = std::max(1, t.review().required_approvals());
      if (approvals >= needed) {
        Move(*e, pb::TASK_STATE_COMPLETED, Op::kApprove, actor,
             absl::StrCat("approved by ", reviewer, note_head.empty() ? "" : ": ", note_head), fx);
      } else {
        Touch(*e, fx);
        Emit(e, pb::TASK_EVENT_TYPE_UPDATED, actor, nullptr, "", fx);
      }
    } else {
      std::string why = absl::StrCat("rejected by ", reviewer, note_head.empty() ? "" : ": ",
                                     note_head);
      if (requeue) t.set_attempts_used(t.attempts_used() + 1);
      if (to == pb::TASK_STATE_QUEUED) {
        Move(*e, pb::TASK_STATE_QUEUED, Op::kReject, actor, why, fx);
      } else {
        t.set_terminal_cause(exhausted ? pb::TERMINAL_CAUSE_ATTEMPTS_EXHAUSTED
                                       : pb::TERMINAL_CAUSE_REVIEW_REJECTED);
        t.set_terminal_reason(exhausted ? absl::StrCat("attempts exhausted (last: ", why, ")")
                                        : why);
        if (exhausted) ++dead_work_;
        Move(*e, pb::TASK_STATE_FAILED, Op::kReject, actor, t.terminal_reason(), fx);
      }
      AddNotice(t.author(), t.id(), "rejected", absl::StrCat("task ", t.id(), " was rejected"),
                absl::StrCat("Your result for task ", t.id(), " (", t.title(), ", commit ",
                             t.result().commit_sha(), ") was rejected by ", reviewer, ": ",
                             req.note(), to == pb::TASK_STATE_QUEUED ? " (requeued)" : ""),
                true, fx);
    }
    *resp.mutable_task() = t;
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

bool Board::IsCreatorOrAncestorCreator(const Entry& e, const Actor& actor) const {
  const std::string who = actor.principal_id();
  const Entry* cur = &e;
  for (int depth = 0; cur != nullptr && depth < 1000; ++depth) {
    if (CreatorAgent(cur->task) == who || cur->task.creator().id() == who) return true;
    if (cur->task.parent_id().empty()) break;
    auto it = tasks_.find(cur->task.parent_id());
    cur = it == tasks_.end() ? nullptr : &it->second;
  }
  return false;
}

absl::StatusOr<pb::CancelResponse> Board::Cancel(const Actor& actor,
                                                 const pb::CancelRequest& req) {
  CNET_RETURN_IF_ERROR(CheckBytes("reason", req.reason(), 1024));
  if (req.cascade() < 0 || req.cascade() > pb::CANCEL_CASCADE_SUBTASKS_AND_DEPENDENTS) {
    return InvalidArgument(absl::StrCat("cascade: ", req.cascade(), " is not a cascade mode"));
  }
  absl::Duration grace = absl::ZeroDuration();
  if (req.has_grace()) {
    grace = FromProtoDuration(req.grace());
    if (grace < absl::ZeroDuration() || grace > absl::Hours(1)) {
      return InvalidArgument(
          absl::StrCat("grace: ", absl::FormatDuration(grace), " is outside 0..1h"));
    }
  }
  Fx fx;
  pb::CancelResponse resp;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(req.task_id()));
    pb::Task& t = e->task;
    CNET_RETURN_IF_ERROR(CheckMove(t.id(), t.state(), pb::TASK_STATE_CANCELLED, Op::kCancel));
    if (!actor.admin() && !IsCreatorOrAncestorCreator(*e, actor)) {
      return Denied(t.id(), "NOT_CREATOR",
                    absl::StrCat(TaskRef(t.id()), ": only its creator (", CreatorAgent(t),
                                 "), the creator of an ancestor, or admin may cancel it"));
    }
    std::string reason = req.reason().empty()
                             ? absl::StrCat("cancelled by ", actor.principal_id())
                             : req.reason();
    // Cascade targets first (computed before anything changes).
    std::vector<std::string> cascade;
    if (req.cascade() == pb::CANCEL_CASCADE_SUBTASKS ||
        req.cascade() == pb::CANCEL_CASCADE_SUBTASKS_AND_DEPENDENTS) {
      std::set<std::string> seen{t.id()};
      std::deque<std::string> todo{t.id()};
      while (!todo.empty()) {
        Entry* cur = Find(todo.front());
        todo.pop_front();
        if (cur == nullptr) continue;
        std::vector<std::string> next = cur->children;
        if (req.cascade() == pb::CANCEL_CASCADE_SUBTASKS_AND_DEPENDENTS) {
          next.insert(next.end(), cur->dependents.begin(), cur->dependents.end());
        }
        for (const std::string& id : next) {
          if (!seen.insert(id).second) continue;
          todo.push_back(id);
          Entry* x = Find(id);
          if (x != nullptr && !IsTerminal(x->task.state())) cascade.push_back(id);
        }
      }
    }
    if (grace > absl::ZeroDuration() && IsLeased(t.state())) {
      t.set_cancel_requested(true);
      *t.mutable_cancel_at() = ToProto(clock_->Now() + grace);
      t.set_terminal_reason(reason);
      if (e->cancel_timer != 0) clock_->Cancel(e->cancel_timer);
      e->cancel_timer = clock_->RunAfter(grace, [this, id = t.id(), life = life_mu_,
                                                 alive = alive_] {
        absl::ReaderMutexLock l(life.get());
        if (*alive) OnCancelGrace(id);
      });
      Touch(*e, fx);
      Emit(e, pb::TASK_EVENT_TYPE_UPDATED, actor, nullptr, "", fx);
      AddNotice(t.assignee(), t.id(), "cancel_requested",
                absl::StrCat("stop task ", t.id()),
                absl::StrCat("Task ", t.id(), " (", t.title(), ") is being cancelled: ", reason,
                             ". Stop within ", absl::FormatDuration(grace),
                             ", then Release or Fail it."),
                true, fx);
    } else {
      CancelTask(*e, pb::TERMINAL_CAUSE_CANCELLED, actor, reason, fx);
    }
    for (const std::string& id : cascade) {
      Entry* x = Find(id);
      if (x == nullptr || IsTerminal(x->task.state())) continue;
      CancelTask(*x, pb::TERMINAL_CAUSE_CANCELLED_BY_CASCADE, actor,
                 absl::StrCat("cascade from cancel of ", t.id(), ": ", reason), fx);
      resp.add_cascaded_task_ids(id);
    }
    *resp.mutable_task() = t;
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::Status Board::CheckNoCycle(const std::string& id, const std::vector<std::string>& deps) const {
  // Depth-first search from each new dependency along dependency edges; a
  // path back to `id` is a cycle: id -> dep -> ... -> id.
  for (const std::string& start : deps) {
    std::vector<std::string> path{id, start};
    std::set<std::string> visited;
    std::function<bool(const std::string&)> dfs = [&](const std::string& cur) -> bool {
      if (cur == id) return true;
      if (!visited.insert(cur).second) return false;
      auto it = tasks_.find(cur);
      if (it == tasks_.end()) return false;
      for (const std::string& next : it->second.task.dependencies()) {
        path.push_back(next);
        if (dfs(next)) return true;
        path.pop_back();
      }
      return false;
    };
    if (dfs(start)) {
      return Precondition(id, "DEPENDENCY_CYCLE",
                          absl::StrCat("dependencies: cycle ", absl::StrJoin(path, " -> ")));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::Task> Board::Update(const Actor& actor, const pb::UpdateTaskRequest& req) {
  static const std::set<std::string>* const kMutable = new std::set<std::string>{
      "title",   "description", "priority",   "required_capabilities", "dependencies",
      "payload", "tags",        "deadline",   "max_attempts",          "review",
      "acceptance", "on_dependency_failure", "not_before", "assign_to", "workspace"};
  const pb::Task& in = req.task();
  if (req.update_mask().paths_size() == 0) return InvalidArgument("update_mask: empty");
  std::set<std::string> paths;
  for (const std::string& p : req.update_mask().paths()) {
    if (!kMutable->count(p)) {
      return InvalidArgument(absl::StrCat("update_mask: ", Quote(p),
                                          " is unknown or read-only"));
    }
    paths.insert(p);
  }
  auto has = [&](const char* p) { return paths.count(p) > 0; };
  absl::Time now = clock_->Now();
  if (has("title")) {
    if (in.title().empty()) return InvalidArgument("task.title: must not be empty");
    CNET_RETURN_IF_ERROR(CheckBytes("task.title", in.title(), 256));
  }
  if (has("description")) {
    CNET_RETURN_IF_ERROR(CheckBytes("task.description", in.description(), 64 * 1024));
  }
  if (has("priority")) CNET_RETURN_IF_ERROR(CheckPriority("task.priority", in.priority()));
  if (has("required_capabilities")) {
    CNET_RETURN_IF_ERROR(
        CheckCapabilities("task.required_capabilities", in.required_capabilities()));
  }
  if (has("dependencies")) {
    if (in.dependencies_size() > 100) return InvalidArgument("task.dependencies: more than 100");
    for (int i = 0; i < in.dependencies_size(); ++i) {
      const std::string& d = in.dependencies(i);
      if (!ValidTaskId(d)) {
        return InvalidArgument(absl::StrCat("task.dependencies[", i, "] ", Quote(d),
                                            ": not a task id (task-<ulid>)"));
      }
      if (d == in.id()) {
        return InvalidArgument(absl::StrCat("task.dependencies[", i, "] ", Quote(d),
                                            ": a task cannot depend on itself"));
      }
      for (int j = 0; j < i; ++j) {
        if (in.dependencies(j) == d) {
          return InvalidArgument(
              absl::StrCat("task.dependencies[", i, "] ", Quote(d), ": listed twice"));
        }
      }
    }
  }
  if (has("payload")) {
    CNET_RETURN_IF_ERROR(CheckStruct("task.payload", in.payload(), options_.max_payload_bytes));
  }
  if (has("tags")) CNET_RETURN_IF_ERROR(CheckTags("task.tags", in.tags()));
  if (has("deadline") && in.has_deadline() && FromProto(in.deadline()) <= now) {
    return InvalidArgument("task.deadline: is not in the future");
  }
  if (has("max_attempts")) {
    CNET_RETURN_IF_ERROR(CheckMaxAttempts("task.max_attempts", in.max_attempts()));
  }
  if (has("review")) CNET_RETURN_IF_ERROR(CheckReview("task.review", in.review()));
  if (has("acceptance")) CNET_RETURN_IF_ERROR(CheckAcceptance("task.acceptance", in.acceptance()));
  if (has("on_dependency_failure") &&
      (in.on_dependency_failure() < 0 || in.on_dependency_failure() > 2)) {
    return InvalidArgument("task.on_dependency_failure: not a policy");
  }
  if (has("assign_to") && !in.assign_to().empty() && !ValidAgentId(in.assign_to())) {
    return InvalidArgument(
        absl::StrCat("task.assign_to ", Quote(in.assign_to()), ": not a valid agent id"));
  }
  if (has("workspace")) CNET_RETURN_IF_ERROR(CheckBytes("task.workspace", in.workspace(), 256));

  Fx fx;
  pb::Task out;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(in.id()));
    pb::Task& t = e->task;
    if (!actor.admin() && CreatorAgent(t) != actor.principal_id() &&
        t.creator().id() != actor.principal_id()) {
      return Denied(t.id(), "NOT_CREATOR",
                    absl::StrCat(TaskRef(t.id()), ": only its creator or admin may update it"));
    }
    if (IsTerminal(t.state())) {
      return Precondition(t.id(), "TERMINAL",
                          absl::StrCat(TaskRef(t.id()), ": is ", StateName(t.state()),
                                       " (terminal) and cannot be updated"));
    }
    if (req.expected_revision() != 0 && req.expected_revision() != t.revision()) {
      return Precondition(t.id(), "REVISION_MISMATCH",
                          absl::StrCat(TaskRef(t.id()), ": revision is ", t.revision(), ", not ",
                                       req.expected_revision()));
    }
    if (has("dependencies") && t.state() != pb::TASK_STATE_CREATED) {
      return Precondition(t.id(), "ILLEGAL_UPDATE",
                          absl::StrCat(TaskRef(t.id()), ": dependencies can change only in "
                                                        "CREATED, not ",
                                       StateName(t.state())));
    }
    if (has("required_capabilities") && t.state() != pb::TASK_STATE_CREATED &&
        t.state() != pb::TASK_STATE_QUEUED) {
      return Precondition(t.id(), "ILLEGAL_UPDATE",
                          absl::StrCat(TaskRef(t.id()), ": required_capabilities can change "
                                                        "only in CREATED or QUEUED, not ",
                                       StateName(t.state())));
    }
    int new_max = has("max_attempts") ? (in.max_attempts() > 0 ? in.max_attempts()
                                                               : options_.default_max_attempts)
                                      : t.max_attempts();
    if (new_max < t.attempts_used()) {
      return Precondition(t.id(), "ILLEGAL_UPDATE",
                          absl::StrCat(TaskRef(t.id()), ": max_attempts ", new_max,
                                       " is below the attempts already used (",
                                       t.attempts_used(), ")"));
    }
    std::vector<std::string> new_deps(in.dependencies().begin(), in.dependencies().end());
    pb::DependencyFailurePolicy policy =
        has("on_dependency_failure") ? in.on_dependency_failure() : t.on_dependency_failure();
    if (has("dependencies")) {
      for (const std::string& d : new_deps) {
        if (Find(d) == nullptr) {
          return NotFound(d, absl::StrCat("task.dependencies: ", TaskRef(d), ": no such task"),
                          "UNKNOWN_DEPENDENCY");
        }
      }
      CNET_RETURN_IF_ERROR(CheckNoCycle(t.id(), new_deps));
      if (policy != pb::DEPENDENCY_FAILURE_POLICY_BLOCK) {
        for (const std::string& d : new_deps) {
          const Entry* x = Find(d);
          if (x->task.state() == pb::TASK_STATE_FAILED ||
              x->task.state() == pb::TASK_STATE_CANCELLED) {
            return Precondition(d, "DEPENDENCY_FAILED",
                                absl::StrCat("task.dependencies: ", TaskRef(d), " is ",
                                             StateName(x->task.state()),
                                             " and on_dependency_failure is FAIL"));
          }
        }
      }
    }
    // Everything is valid: apply.
    const bool was_indexed = t.state() == pb::TASK_STATE_QUEUED;
    if (was_indexed) Unindex(*e);
    if (has("title")) t.set_title(in.title());
    if (has("description")) t.set_description(in.description());
    if (has("priority")) t.set_priority(in.priority());
    if (has("required_capabilities")) {
      t.clear_required_capabilities();
      for (const std::string& c : SortedUnique(in.required_capabilities())) {
        t.add_required_capabilities(c);
      }
    }
    if (has("payload")) *t.mutable_payload() = in.payload();
    if (has("tags")) *t.mutable_tags() = in.tags();
    if (has("deadline")) {
      if (in.has_deadline()) {
        *t.mutable_deadline() = in.deadline();
      } else {
        t.clear_deadline();
      }
      ArmDeadline(*e);
    }
    if (has("max_attempts")) t.set_max_attempts(new_max);
    if (has("review")) *t.mutable_review() = in.review();
    if (has("acceptance")) *t.mutable_acceptance() = in.acceptance();
    if (has("on_dependency_failure")) t.set_on_dependency_failure(policy);
    if (has("not_before")) {
      if (in.has_not_before()) {
        *t.mutable_not_before() = in.not_before();
      } else {
        t.clear_not_before();
      }
    }
    if (has("assign_to")) t.set_assign_to(in.assign_to());
    if (has("workspace")) t.set_workspace(in.workspace());
    if (has("dependencies")) {
      for (const std::string& old : t.dependencies()) {
        if (Entry* x = Find(old)) {
          auto& v = x->dependents;
          v.erase(std::remove(v.begin(), v.end(), t.id()), v.end());
        }
      }
      t.clear_dependencies();
      for (const std::string& d : new_deps) {
        t.add_dependencies(d);
        Find(d)->dependents.push_back(t.id());
      }
      pending_.dependencies[t.id()] = new_deps;
      t.set_blocked(false);
      t.clear_blocked_reason();
    }
    if (was_indexed) Enqueue(*e, fx);
    Touch(*e, fx);
    Emit(e, pb::TASK_EVENT_TYPE_UPDATED, actor, nullptr, "", fx);
    if (t.state() == pb::TASK_STATE_CREATED) {
      // Re-evaluate against the (possibly new) dependencies.
      const Entry* failed = nullptr;
      bool all_done = true;
      for (const std::string& d : t.dependencies()) {
        const Entry* x = Find(d);
        if (x == nullptr) continue;
        if ((x->task.state() == pb::TASK_STATE_FAILED ||
             x->task.state() == pb::TASK_STATE_CANCELLED) && failed == nullptr) {
          failed = x;
        }
        if (x->task.state() != pb::TASK_STATE_COMPLETED) all_done = false;
      }
      if (failed != nullptr) {
        t.set_blocked(true);
        t.set_blocked_reason(absl::StrCat("dependency ", failed->task.id(), " is ",
                                          StateName(failed->task.state())));
      } else if (all_done) {
        t.set_blocked(false);
        t.clear_blocked_reason();
        Move(*e, pb::TASK_STATE_QUEUED, Op::kDependenciesMet, Actor::System("dependencies"),
             "dependencies completed", fx);
      }
    }
    out = t;
    Settle(fx);
  }
  Finish(fx);
  return out;
}

// --- queries ---------------------------------------------------------------------------------

absl::StatusOr<pb::ExplainTaskResponse> Board::Explain(const std::string& task_id) {
  pb::ExplainTaskResponse resp;
  pb::Task t;
  bool deferred = false;
  int64_t ahead = 0;
  std::vector<std::pair<std::string, pb::TaskState>> deps;
  {
    absl::MutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(Entry * e, FindOr404(task_id));
    t = e->task;
    deferred = e->deferred;
    for (const std::string& d : t.dependencies()) {
      const Entry* x = Find(d);
      deps.emplace_back(d, x == nullptr ? pb::TASK_STATE_UNSPECIFIED : x->task.state());
    }
    if (!e->queue_name.empty()) {
      const CapQueue& q = queues_.at(e->queue_name);
      for (const QueueKey& k : q.items) {
        if (!(k < e->key)) break;
        ++ahead;
      }
    }
  }
  resp.set_task_id(t.id());
  resp.set_state(t.state());
  auto add = [&](pb::BlockingReasonKind kind, std::string detail) -> pb::BlockingReason* {
    pb::BlockingReason* r = resp.add_reasons();
    r->set_kind(kind);
    r->set_detail(std::move(detail));
    return r;
  };
  bool eligible = false;
  switch (t.state()) {
    case pb::TASK_STATE_CREATED:
      for (const auto& [id, state] : deps) {
        if (state == pb::TASK_STATE_COMPLETED) continue;
        bool failed = state == pb::TASK_STATE_FAILED || state == pb::TASK_STATE_CANCELLED;
        pb::BlockingReason* r =
            add(failed ? pb::BLOCKING_REASON_KIND_DEPENDENCY_FAILED
                       : pb::BLOCKING_REASON_KIND_UNMET_DEPENDENCY,
                failed ? absl::StrCat("dependency ", id, " is ", StateName(state),
                                      "; replace the dependencies (UpdateTask) or cancel")
                       : absl::StrCat("waiting for dependency ", id, " (", StateName(state), ")"));
        r->set_task_id(id);
        r->set_dependency_state(state);
      }
      break;
    case pb::TASK_STATE_QUEUED: {
      if (deferred) {
        pb::BlockingReason* r = add(pb::BLOCKING_REASON_KIND_NOT_BEFORE,
                                    absl::StrCat("not offered before ",
                                                 absl::FormatTime(FromProto(t.not_before()))));
        *r->mutable_until() = t.not_before();
      }
      std::vector<std::string> caps(t.required_capabilities().begin(),
                                    t.required_capabilities().end());
      bool registry_ok = true;
      bool cap_missing = false;
      for (const std::string& c : caps) {
        absl::StatusOr<std::vector<AgentInfo>> found = directory_->FindAgents({c}, 1);
        if (!found.ok()) {
          registry_ok = false;
          break;
        }
        if (found->empty()) {
          cap_missing = true;
          pb::BlockingReason* r =
              add(pb::BLOCKING_REASON_KIND_MISSING_CAPABILITY,
                  absl::StrCat("no HEALTHY agent has capability \"", c, "\""));
          r->set_capability(c);
        }
      }
      std::vector<AgentInfo> capable;
      if (registry_ok && !cap_missing) {
        absl::StatusOr<std::vector<AgentInfo>> found = directory_->FindAgents(caps, 1000);
        if (!found.ok()) {
          registry_ok = false;
        } else {
          capable = std::move(*found);
          if (capable.empty()) {
            pb::BlockingReason* r = add(pb::BLOCKING_REASON_KIND_MISSING_CAPABILITY,
                                        absl::StrCat("no HEALTHY agent has all of ",
                                                     CapsText(caps)));
            r->set_capability(absl::StrJoin(caps, ","));
            cap_missing = true;
          }
        }
      }
      if (!registry_ok) {
        resp.set_summary("the registry cannot be reached; agent availability is unknown. ");
      }
      if (!t.assign_to().empty() && registry_ok) {
        absl::StatusOr<AgentInfo> a = directory_->GetAgent(t.assign_to());
        bool available = a.ok() && a->Available();
        int load = 0;
        int limit = a.ok() ? LimitOf(*a) : 0;
        {
          absl::MutexLock lock(&mu_);
          load = LoadOf(t.assign_to());
        }
        if (!available || load >= limit) {
          pb::BlockingReason* r =
              add(pb::BLOCKING_REASON_KIND_ASSIGNED_AGENT_UNAVAILABLE,
                  absl::StrCat("only ", t.assign_to(), " may take it, and it is ",
                               !a.ok() ? "not registered"
                               : !available ? "not HEALTHY and ONLINE/BUSY"
                                            : "at its concurrency limit"));
          r->set_agent_id(t.assign_to());
        } else {
          eligible = !deferred;
        }
      } else if (registry_ok && !cap_missing) {
        int with_capacity = 0;
        {
          absl::MutexLock lock(&mu_);
          for (const AgentInfo& a : capable) {
            if (LoadOf(a.id) < LimitOf(a) && !Contains(t.excluded_agents(), a.id)) {
              ++with_capacity;
            }
          }
        }
        if (with_capacity == 0) {
          pb::BlockingReason* r =
              add(pb::BLOCKING_REASON_KIND_NO_AGENT_CAPACITY,
                  absl::StrCat(capable.size(), " capable HEALTHY agents, all at capacity or "
                                               "excluded"));
          r->set_count(static_cast<int64_t>(capable.size()));
        } else {
          eligible = !deferred;
        }
      }
      if (ahead > 0) {
        pb::BlockingReason* r = add(pb::BLOCKING_REASON_KIND_QUEUED_BEHIND,
                                    absl::StrCat(ahead, " eligible tasks rank ahead of it"));
        r->set_count(ahead);
      }
      break;
    }
    case pb::TASK_STATE_ASSIGNED:
    case pb::TASK_STATE_RUNNING:
    case pb::TASK_STATE_INPUT_REQUIRED: {
      if (t.state() == pb::TASK_STATE_INPUT_REQUIRED) {
        pb::BlockingReason* r = add(
            pb::BLOCKING_REASON_KIND_AWAITING_INPUT,
            absl::StrCat("waiting for ", t.input_request().asked_of(), " to answer: ",
                         t.input_request().question().substr(0, 200)));
        r->set_agent_id(t.input_request().asked_of());
      }
      pb::BlockingReason* r = add(
          pb::BLOCKING_REASON_KIND_LEASE_HELD,
          absl::StrCat("lease held by ", t.assignee(), " until ",
                       absl::FormatTime(FromProto(t.lease().expires_at())),
                       t.state() == pb::TASK_STATE_ASSIGNED ? " (not started yet)" : ""));
      r->set_agent_id(t.assignee());
      *r->mutable_until() = t.lease().expires_at();
      break;
    }
    case pb::TASK_STATE_REVIEWING: {
      std::string by = !t.review().reviewer_agent_id().empty()
                           ? t.review().reviewer_agent_id()
                           : !t.review().reviewer_capability().empty()
                                 ? absl::StrCat("an agent with capability \"",
                                                t.review().reviewer_capability(), "\"")
                                 : "any agent other than the author and former holders";
      pb::BlockingReason* r = add(pb::BLOCKING_REASON_KIND_AWAITING_REVIEW,
                                  absl::StrCat("waiting for a review of commit ",
                                               t.result().commit_sha(), " by ", by));
      r->set_agent_id(t.review().reviewer_agent_id());
      r->set_capability(t.review().reviewer_capability());
      break;
    }
    default: {
      pb::BlockingReason* r = add(
          pb::BLOCKING_REASON_KIND_TERMINAL,
          absl::StrCat("the task is ", StateName(t.state()),
                       t.terminal_reason().empty() ? "" : absl::StrCat(": ", t.terminal_reason())));
      r->set_task_id(t.id());
      break;
    }
  }
  resp.set_eligible(eligible);
  std::vector<std::string> lines;
  for (const auto& r : resp.reasons()) lines.push_back(r.detail());
  std::string summary = resp.summary();
  if (lines.empty()) {
    summary += eligible ? "eligible: the next capable agent gets it" : "no blocking reason";
  } else {
    summary += absl::StrJoin(lines, "; ");
  }
  resp.set_summary(summary);
  return resp;
}

absl::StatusOr<pb::ListTasksResponse> Board::List(const pb::ListTasksRequest& req) {
  CNET_RETURN_IF_ERROR(CheckPageSize(req.page_size()));
  for (int i = 0; i < req.states_size(); ++i) {
    if (req.states(i) <= pb::TASK_STATE_UNSPECIFIED || req.states(i) > pb::TASK_STATE_CANCELLED) {
      return InvalidArgument(absl::StrCat("states[", i, "]: ", req.states(i), " is not a state"));
    }
  }
  if (!req.assignee().empty() && !ValidAgentId(req.assignee())) {
    return InvalidArgument(absl::StrCat("assignee ", Quote(req.assignee()), ": not an agent id"));
  }
  if (!req.capability().empty() && !ValidCapability(req.capability())) {
    return InvalidArgument(absl::StrCat("capability ", Quote(req.capability()),
                                        ": must match [a-z0-9._-]{1,64}"));
  }
  CNET_RETURN_IF_ERROR(CheckTags("tags", req.tags()));
  if (!req.parent_id().empty() && !ValidTaskId(req.parent_id())) {
    return InvalidArgument(absl::StrCat("parent_id ", Quote(req.parent_id()), ": not a task id"));
  }
  if (req.root_only() && !req.parent_id().empty()) {
    return InvalidArgument("root_only: cannot be combined with parent_id");
  }
  if (req.has_created_after() && req.has_created_before() &&
      FromProto(req.created_after()) > FromProto(req.created_before())) {
    return InvalidArgument("created_after: is after created_before");
  }
  if (!req.awaiting_review_by().empty() && !ValidAgentId(req.awaiting_review_by())) {
    return InvalidArgument(absl::StrCat("awaiting_review_by ", Quote(req.awaiting_review_by()),
                                        ": not an agent id"));
  }
  if (req.order_by() < 0 || req.order_by() > pb::TASK_ORDER_UPDATED_DESC) {
    return InvalidArgument(absl::StrCat("order_by: ", req.order_by(), " is not an ordering"));
  }
  pb::ListTasksRequest filters = req;
  filters.clear_page_size();
  filters.clear_page_token();
  std::string filter_hash = crypto::Sha256Hex(filters.SerializeAsString()).substr(0, 16);
  std::string cursor;
  if (!req.page_token().empty()) {
    CNET_RETURN_IF_ERROR(ParseToken(req.page_token(), "tasks", filter_hash, &cursor));
  }
  std::vector<std::string> reviewer_caps;
  if (!req.awaiting_review_by().empty()) {
    absl::StatusOr<AgentInfo> a = directory_->GetAgent(req.awaiting_review_by());
    if (a.ok()) reviewer_caps = a->capabilities;
  }
  const int page = req.page_size() == 0 ? 100 : req.page_size();
  const pb::TaskOrder order =
      req.order_by() == pb::TASK_ORDER_UNSPECIFIED ? pb::TASK_ORDER_CREATED : req.order_by();
  std::vector<std::string> tags(req.tags().begin(), req.tags().end());

  absl::MutexLock lock(&mu_);
  auto matches = [&](const Entry& e) {
    const pb::Task& t = e.task;
    if (req.states_size() > 0 &&
        std::find(req.states().begin(), req.states().end(), t.state()) == req.states().end()) {
      return false;
    }
    if (!req.assignee().empty() && t.assignee() != req.assignee()) return false;
    if (!req.creator().empty() && t.creator().id() != req.creator() &&
        CreatorAgent(t) != req.creator()) {
      return false;
    }
    if (!req.capability().empty() && !Contains(t.required_capabilities(), req.capability())) {
      return false;
    }
    if (!HasAllTags(t, tags)) return false;
    if (!req.parent_id().empty() && t.parent_id() != req.parent_id()) return false;
    if (req.root_only() && !t.parent_id().empty()) return false;
    absl::Time created = FromProto(t.created_at());
    if (req.has_created_after() && created < FromProto(req.created_after())) return false;
    if (req.has_created_before() && created >= FromProto(req.created_before())) return false;
    if (!req.workspace().empty() && t.workspace() != req.workspace()) return false;
    if (req.blocked_only() && !t.blocked()) return false;
    if (!req.awaiting_review_by().empty()) {
      const std::string& r = req.awaiting_review_by();
      if (t.state() != pb::TASK_STATE_REVIEWING || r == t.author() ||
          Contains(t.former_holders(), r)) {
        return false;
      }
      if (!t.review().reviewer_agent_id().empty() && t.review().reviewer_agent_id() != r) {
        return false;
      }
      if (!t.review().reviewer_capability().empty() &&
          !std::binary_search(reviewer_caps.begin(), reviewer_caps.end(),
                              t.review().reviewer_capability())) {
        return false;
      }
    }
    return true;
  };
  // Sort keys (strings compare in the wanted order).
  auto key_of = [&](const Entry& e) -> std::string {
    switch (order) {
      case pb::TASK_ORDER_CREATED_DESC:
      case pb::TASK_ORDER_CREATED:
        return e.task.id();
      case pb::TASK_ORDER_UPDATED_DESC:
        return absl::StrCat(absl::StrFormat("%020d", ToMicros(FromProto(e.task.updated_at()))),
                            "/", e.task.id());
      case pb::TASK_ORDER_QUEUE:
      default: {
        // Eligible tasks in queue order first, then everything else by id.
        if (e.queue_name.empty()) return absl::StrCat("1/", e.task.id());
        return absl::StrCat("0/",
                            absl::StrFormat("%020d", e.key.virtual_us + (int64_t{1} << 62)), "/",
                            absl::StrFormat("%020d", e.key.since_us), "/", e.task.id());
      }
    }
  };
  const bool descending =
      order == pb::TASK_ORDER_CREATED_DESC || order == pb::TASK_ORDER_UPDATED_DESC;
  std::vector<std::pair<std::string, const Entry*>> rows;
  int64_t total = 0;
  for (const auto& [id, e] : tasks_) {
    if (!matches(e)) continue;
    ++total;
    std::string k = key_of(e);
    if (!cursor.empty() && (descending ? !(k < cursor) : !(cursor < k))) continue;
    rows.emplace_back(std::move(k), &e);
  }
  if (order != pb::TASK_ORDER_CREATED) {
    std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
      return descending ? b.first < a.first : a.first < b.first;
    });
  }
  pb::ListTasksResponse resp;
  resp.set_total_size(total);
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < page; ++i) {
    *resp.add_tasks() = rows[i].second->task;
  }
  if (static_cast<int>(rows.size()) > page) {
    resp.set_next_page_token(MakeToken("tasks", filter_hash, rows[page - 1].first));
  }
  return resp;
}

absl::StatusOr<pb::GetHistoryResponse> Board::History(const pb::GetHistoryRequest& req) {
  CNET_RETURN_IF_ERROR(CheckPageSize(req.page_size()));
  {
    absl::MutexLock lock(&mu_);
    CNET_RETURN_IF_ERROR(FindOr404(req.task_id()).status());
  }
  int64_t after = 0;
  if (!req.page_token().empty()) {
    std::string cursor;
    CNET_RETURN_IF_ERROR(ParseToken(req.page_token(), "history", req.task_id(), &cursor));
    if (!absl::SimpleAtoi(Sv(cursor), &after) || after < 0) {
      return InvalidArgument("page_token: cannot be decoded");
    }
  }
  Flush();
  const int page = req.page_size() == 0 ? 100 : req.page_size();
  CNET_ASSIGN_OR_RETURN(std::vector<HistoryRow> rows,
                        store_->ReadHistory(req.task_id(), after, page + 1));
  pb::GetHistoryResponse resp;
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < page; ++i) {
    const HistoryRow& h = rows[i];
    pb::TaskTransition* tr = resp.add_transitions();
    tr->set_index(h.index);
    tr->set_from_state(static_cast<pb::TaskState>(h.from_state));
    tr->set_to_state(static_cast<pb::TaskState>(h.to_state));
    tr->mutable_actor()->set_kind(static_cast<pb::PrincipalKind>(h.actor_kind));
    tr->mutable_actor()->set_id(h.actor_id);
    tr->mutable_actor()->set_on_behalf_of(h.actor_on_behalf_of);
    tr->set_reason(h.reason);
    *tr->mutable_time() = ToProto(FromMicros(h.time_us));
    tr->set_attempt(h.attempt);
    tr->set_lease_epoch(h.lease_epoch);
    tr->set_holder(h.holder);
    tr->set_event_sequence(h.event_sequence);
  }
  if (static_cast<int>(rows.size()) > page) {
    resp.set_next_page_token(
        MakeToken("history", req.task_id(), absl::StrCat(rows[page - 1].index)));
  }
  return resp;
}

absl::StatusOr<pb::GetTaskStatsResponse> Board::Stats(const pb::GetTaskStatsRequest& req) {
  absl::Duration window = absl::Hours(1);
  if (req.has_window()) {
    window = FromProtoDuration(req.window());
    if (window < absl::Minutes(1) || window > absl::Hours(24 * 30)) {
      return InvalidArgument(
          absl::StrCat("window: ", absl::FormatDuration(window), " is outside 1m..720h"));
    }
  }
  CNET_RETURN_IF_ERROR(CheckPageSize(req.page_size()));
  std::string after_agent;
  if (!req.page_token().empty()) {
    CNET_RETURN_IF_ERROR(ParseToken(req.page_token(), "stats", "agents", &after_agent));
  }
  const int page = req.page_size() == 0 ? 100 : req.page_size();
  absl::Time now = clock_->Now();
  pb::GetTaskStatsResponse resp;
  struct SetInfo {
    std::vector<std::string> caps;
    int64_t waiting = 0;
    int64_t oldest_since = 0;
  };
  std::map<std::string, SetInfo> sets;
  {
    absl::MutexLock lock(&mu_);
    for (int s = pb::TASK_STATE_CREATED; s <= pb::TASK_STATE_CANCELLED; ++s) {
      pb::TaskStateCount* c = resp.add_by_state();
      c->set_state(static_cast<pb::TaskState>(s));
      c->set_count(state_counts_[s]);
    }
    StatsRecorder::Window w = stats_.Compute(now, window);
    *resp.mutable_queue_wait() = w.queue_wait;
    *resp.mutable_run_time() = w.run_time;
    resp.set_completion_rate(w.completion_rate);
    resp.set_completed(w.completed);
    resp.set_failed(w.failed);
    resp.set_cancelled(w.cancelled);
    resp.set_dead_work(dead_work_);
    resp.set_claims_per_second(w.claims_per_second);
    int64_t oldest = 0;
    std::string oldest_id;
    for (const auto& [name, q] : queues_) {
      SetInfo& info = sets[absl::StrJoin(q.caps, ",")];
      info.caps = q.caps;
      info.waiting += static_cast<int64_t>(q.items.size());
      for (const QueueKey& k : q.items) {
        if (info.oldest_since == 0 || k.since_us < info.oldest_since) info.oldest_since = k.since_us;
        if (oldest_id.empty() || k.since_us < oldest) {
          oldest = k.since_us;
          oldest_id = k.id;
        }
      }
    }
    if (!oldest_id.empty()) {
      *resp.mutable_oldest_eligible_age() = ToProtoDuration(now - FromMicros(oldest));
      resp.set_oldest_eligible_task_id(oldest_id);
    }
    if (req.include_per_agent()) {
      std::set<std::string> agents;
      for (const auto& [a, l] : loads_) agents.insert(a);
      for (const auto& [a, p] : w.per_agent) agents.insert(a);
      int n = 0;
      for (auto it = agents.upper_bound(after_agent); it != agents.end(); ++it) {
        if (n == page) {
          resp.set_next_page_token(MakeToken("stats", "agents", resp.per_agent().rbegin()->agent_id()));
          break;
        }
        pb::AgentTaskStats* a = resp.add_per_agent();
        a->set_agent_id(*it);
        auto l = loads_.find(*it);
        if (l != loads_.end()) {
          a->set_assigned(static_cast<int64_t>(l->second.assigned.size()));
          a->set_running(static_cast<int64_t>(l->second.held.size() - l->second.assigned.size()));
        }
        auto p = w.per_agent.find(*it);
        if (p != w.per_agent.end()) {
          a->set_completed(p->second.completed);
          a->set_failed(p->second.failed);
          a->set_released(p->second.released);
          *a->mutable_run_time() = p->second.run_time;
        }
        ++n;
      }
    }
  }
  std::vector<pb::CapabilitySetStats> cap_stats;
  for (auto& [key, info] : sets) {
    pb::CapabilitySetStats s;
    for (const std::string& c : info.caps) s.add_capabilities(c);
    s.set_waiting_tasks(info.waiting);
    if (info.oldest_since != 0) {
      *s.mutable_oldest_wait() = ToProtoDuration(now - FromMicros(info.oldest_since));
    }
    absl::StatusOr<std::vector<AgentInfo>> found = directory_->FindAgents(info.caps, 1000);
    if (found.ok()) {
      s.set_eligible_agents(static_cast<int64_t>(found->size()));
      int64_t with_capacity = 0;
      absl::MutexLock lock(&mu_);
      for (const AgentInfo& a : *found) {
        if (LoadOf(a.id) < LimitOf(a)) ++with_capacity;
      }
      s.set_agents_with_capacity(with_capacity);
    }
    cap_stats.push_back(std::move(s));
  }
  std::stable_sort(cap_stats.begin(), cap_stats.end(), [](const auto& a, const auto& b) {
    return a.waiting_tasks() > b.waiting_tasks();
  });
  for (auto& s : cap_stats) *resp.add_capability_sets() = std::move(s);
  *resp.mutable_window() = ToProtoDuration(window);
  *resp.mutable_time() = ToProto(now);
  return resp;
}

// --- Watch ---------------------------------------------------------------------------------------

absl::Status Board::ValidateWatch(const pb::WatchTasksRequest& req) {
  if (req.from_sequence() < 0) {
    return InvalidArgument(absl::StrCat("from_sequence: ", req.from_sequence(), " is negative"));
  }
  if (!req.send_snapshot() && req.from_sequence() > last_sequence()) {
    return InvalidArgument(absl::StrCat("from_sequence: ", req.from_sequence(),
                                        " is in the future (last is ", last_sequence(), ")"));
  }
  if (req.task_ids_size() > 1000) return InvalidArgument("task_ids: more than 1000");
  for (int i = 0; i < req.task_ids_size(); ++i) {
    if (!ValidTaskId(req.task_ids(i))) {
      return InvalidArgument(
          absl::StrCat("task_ids[", i, "] ", Quote(req.task_ids(i)), ": not a task id"));
    }
  }
  for (int i = 0; i < req.states_size(); ++i) {
    if (req.states(i) <= pb::TASK_STATE_UNSPECIFIED || req.states(i) > pb::TASK_STATE_CANCELLED) {
      return InvalidArgument(absl::StrCat("states[", i, "]: ", req.states(i), " is not a state"));
    }
  }
  if (!req.agent_id().empty() && !ValidAgentId(req.agent_id())) {
    return InvalidArgument(absl::StrCat("agent_id ", Quote(req.agent_id()), ": not an agent id"));
  }
  CNET_RETURN_IF_ERROR(CheckTags("tags", req.tags()));
  CNET_RETURN_IF_ERROR(CheckBytes("workspace", req.workspace(), 256));
  for (int i = 0; i < req.event_types_size(); ++i) {
    if (req.event_types(i) <= pb::TASK_EVENT_TYPE_UNSPECIFIED ||
        req.event_types(i) > pb::TASK_EVENT_TYPE_RESYNC_REQUIRED) {
      return InvalidArgument(
          absl::StrCat("event_types[", i, "]: ", req.event_types(i), " is not an event type"));
    }
  }
  return absl::OkStatus();
}

bool Board::WatchMatches(const pb::WatchTasksRequest& req, const BoardEvent& be) {
  const pb::TaskEvent& ev = be.event;
  switch (ev.type()) {
    case pb::TASK_EVENT_TYPE_SNAPSHOT_END:
    case pb::TASK_EVENT_TYPE_CHECKPOINT:
    case pb::TASK_EVENT_TYPE_RESYNC_REQUIRED:
      return true;
    case pb::TASK_EVENT_TYPE_SNAPSHOT:
      break;
    default:
      if (req.event_types_size() > 0 &&
          std::find(req.event_types().begin(), req.event_types().end(), ev.type()) ==
              req.event_types().end()) {
        return false;
      }
  }
  if (ev.has_reservation()) {
    const pb::Reservation& r = ev.reservation();
    if (req.states_size() > 0 || req.tags_size() > 0) return false;
    if (req.task_ids_size() > 0 && !Contains(req.task_ids(), r.task_id())) return false;
    if (!req.agent_id().empty() && r.holder() != req.agent_id()) return false;
    if (!req.workspace().empty() && r.workspace() != req.workspace()) return false;
    return true;
  }
  if (ev.has_changed_paths_conflict()) {
    const pb::ChangedPathsConflict& c = ev.changed_paths_conflict();
    if (req.states_size() > 0 || req.tags_size() > 0 || req.task_ids_size() > 0) return false;
    if (!req.agent_id().empty() && c.agent_id() != req.agent_id() &&
        c.other_agent_id() != req.agent_id()) {
      return false;
    }
    if (!req.workspace().empty() && c.workspace() != req.workspace()) return false;
    return true;
  }
  const bool task_filters = req.task_ids_size() > 0 || req.states_size() > 0 ||
                            !req.agent_id().empty() || req.tags_size() > 0 ||
                            !req.workspace().empty();
  if (!ev.has_task()) return !task_filters;
  const pb::Task& t = ev.task();
  if (req.task_ids_size() > 0 && !Contains(req.task_ids(), t.id())) return false;
  if (req.states_size() > 0 &&
      std::find(req.states().begin(), req.states().end(), t.state()) == req.states().end()) {
    return false;
  }
  if (!req.agent_id().empty() && t.assignee() != req.agent_id() &&
      be.previous_holder != req.agent_id()) {
    return false;
  }
  for (const std::string& tag : req.tags()) {
    if (!Contains(t.tags(), tag)) return false;
  }
  if (!req.workspace().empty() && t.workspace() != req.workspace()) return false;
  return true;
}

bool Board::CanResume(int64_t from) {
  if (from == 0) return true;
  int64_t last = last_sequence();
  if (from >= last) return true;
  if (last - from > static_cast<int64_t>(options_.max_replay)) return false;
  {
    absl::MutexLock lock(&recent_mu_);
    if (!recent_.empty() && recent_.front()->event.sequence() <= from + 1) return true;
  }
  absl::StatusOr<int64_t> min = store_->MinEventSequence();
  return min.ok() && *min != 0 && *min <= from + 1;
}

std::vector<pb::TaskEvent> Board::WatchInitial(const pb::WatchTasksRequest& req, bool* resync,
                                               int64_t* covered) {
  *resync = false;
  int64_t ignored = 0;
  if (covered == nullptr) covered = &ignored;
  *covered = 0;
  std::vector<pb::TaskEvent> out;
  if (req.send_snapshot()) {
    absl::MutexLock lock(&mu_);
    int64_t seq = last_sequence();
    *covered = seq;
    absl::Time now = clock_->Now();
    for (const auto& [id, e] : tasks_) {
      if (req.states_size() == 0 && IsTerminal(e.task.state())) continue;
      BoardEvent be;
      be.event.set_sequence(seq);
      be.event.set_type(pb::TASK_EVENT_TYPE_SNAPSHOT);
      *be.event.mutable_time() = ToProto(now);
      *be.event.mutable_task() = e.task;
      if (!WatchMatches(req, be)) continue;
      out.push_back(std::move(be.event));
    }
    for (const auto& [id, e] : reservations_) {
      BoardEvent be;
      be.event.set_sequence(seq);
      be.event.set_type(pb::TASK_EVENT_TYPE_SNAPSHOT);
      *be.event.mutable_time() = ToProto(now);
      *be.event.mutable_reservation() = e.r;
      if (WatchMatches(req, be)) out.push_back(std::move(be.event));
    }
    pb::TaskEvent end;
    end.set_sequence(seq);
    end.set_type(pb::TASK_EVENT_TYPE_SNAPSHOT_END);
    *end.mutable_time() = ToProto(now);
    out.push_back(std::move(end));
    return out;
  }
  if (req.from_sequence() == 0) return out;
  int64_t from = req.from_sequence();
  int64_t last = last_sequence();
  *covered = std::max(from, last);
  if (last - from > static_cast<int64_t>(options_.max_replay)) {
    *resync = true;
    return out;
  }
  {
    absl::MutexLock lock(&recent_mu_);
    if (!recent_.empty() && recent_.front()->event.sequence() <= from + 1) {
      for (const BoardEventPtr& ev : recent_) {
        if (ev->event.sequence() > from && WatchMatches(req, *ev)) out.push_back(ev->event);
      }
      *covered = std::max(*covered, recent_.back()->event.sequence());
      return out;
    }
  }
  absl::StatusOr<int64_t> min = store_->MinEventSequence();
  if (!min.ok() || (*min > from + 1 && last > from)) {
    *resync = true;
    return out;
  }
  int64_t cursor = from;
  while (cursor < last) {
    absl::StatusOr<std::vector<EventRow>> rows = store_->ReadEvents(cursor, 4096);
    if (!rows.ok() || rows->empty()) break;
    for (const EventRow& row : *rows) {
      BoardEvent be;
      if (!be.event.ParseFromString(row.body)) continue;
      cursor = row.sequence;
      if (row.sequence > last) break;
      if (WatchMatches(req, be)) out.push_back(std::move(be.event));
    }
  }
  return out;
}

// --- scheduler: push, fill, sweep, agent changes -----------------------------------------------

void Board::PushTasks(const std::vector<std::string>& ids) {
  // Group by queue so the directory is asked once per capability set.
  std::map<std::string, std::vector<std::string>> groups;
  std::map<std::string, std::pair<std::vector<std::string>, std::string>> queue_info;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    for (const std::string& id : ids) {
      Entry* e = Find(id);
      if (e == nullptr || e->queue_name.empty()) continue;
      groups[e->queue_name].push_back(id);
      const CapQueue& q = queues_.at(e->queue_name);
      queue_info[e->queue_name] = {q.caps, q.assign_to};
    }
  }
  for (auto& [name, group] : groups) {
    const auto& [caps, assign_to] = queue_info[name];
    std::vector<AgentInfo> candidates;
    if (!assign_to.empty()) {
      absl::StatusOr<AgentInfo> a = directory_->GetAgent(assign_to);
      if (!a.ok()) continue;
      if (a->Available() && a->HasAll(caps)) candidates.push_back(std::move(*a));
    } else {
      absl::StatusOr<std::vector<AgentInfo>> found =
          directory_->FindAgents(caps, std::max<int>(32, static_cast<int>(group.size())));
      if (!found.ok()) continue;  // registry down: the sweep retries
      candidates = std::move(*found);
    }
    Fx fx;
    {
      absl::MutexLock lock(&mu_);
      if (shut_down_) return;
      if (candidates.empty() && assign_to.empty()) {
        std::string set_key = absl::StrJoin(caps, ",");
        if (alerted_capsets_.insert(set_key).second) {
          auto q = queues_.find(name);
          int64_t waiting = q == queues_.end() ? 0 : static_cast<int64_t>(q->second.items.size());
          absl::Duration oldest = absl::ZeroDuration();
          if (q != queues_.end()) {
            for (const QueueKey& k : q->second.items) {
              oldest = std::max(oldest, clock_->Now() - FromMicros(k.since_us));
            }
          }
          EmitAlert(caps, waiting, oldest, fx);
        }
      } else if (!candidates.empty()) {
        alerted_capsets_.erase(absl::StrJoin(caps, ","));
      }
      for (const std::string& id : group) {
        Entry* e = Find(id);
        if (e == nullptr || e->queue_name != name) continue;
        if (!PushLocked(*e, candidates, fx)) break;
      }
      Settle(fx);
    }
    Finish(fx);
  }
}

bool Board::PushLocked(Entry& e, const std::vector<AgentInfo>& candidates, Fx& fx) {
  const AgentInfo* best = nullptr;
  double best_util = 0;
  for (const AgentInfo& a : candidates) {
    int limit = LimitOf(a);
    int load = LoadOf(a.id);
    if (load >= limit || !Accepts(e, a.id, ClaimFilter{a.capabilities, {}, ""})) continue;
    double util = static_cast<double>(load) / limit;
    if (best == nullptr || util < best_util) {
      best = &a;
      best_util = util;
    }
  }
  if (best == nullptr) return false;
  const std::string& id = e.task.id();
  Assign(e, best->id, options_.default_lease, Actor::System("scheduler"),
         absl::StrCat("pushed to ", best->id, " (least loaded capable agent)"), fx);
  AddNotice(best->id, id, "assigned", absl::StrCat("you got task ", id),
            absl::StrCat("You got task ", id, ": ", e.task.title(), ". Lease ",
                         e.task.lease().lease_id(), " epoch ", e.task.lease().epoch(),
                         " expires in ", absl::FormatDuration(options_.default_lease),
                         "; Start it or Release it."),
            PriorityRank(e.task) >= pb::PRIORITY_HIGH, fx);
  return true;
}

void Board::FillAgents(const std::set<std::string>& agents) {
  for (const std::string& agent : agents) {
    absl::StatusOr<AgentInfo> info = directory_->GetAgent(agent);
    if (!info.ok() || !info->Available()) continue;
    Fx fx;
    {
      absl::MutexLock lock(&mu_);
      if (shut_down_) return;
      ClaimFilter filter;
      filter.caps = info->capabilities;
      int limit = LimitOf(*info);
      while (LoadOf(agent) < limit) {
        Entry* e = BestFor(agent, filter);
        if (e == nullptr) break;
        Assign(*e, agent, options_.default_lease, Actor::System("scheduler"),
               absl::StrCat("pushed to ", agent, " (capacity available)"), fx);
        AddNotice(agent, e->task.id(), "assigned", absl::StrCat("you got task ", e->task.id()),
                  absl::StrCat("You got task ", e->task.id(), ": ", e->task.title(), ". Lease ",
                               e->task.lease().lease_id(), " epoch ", e->task.lease().epoch(),
                               "; Start it or Release it."),
                  PriorityRank(e->task) >= pb::PRIORITY_HIGH, fx);
      }
      Settle(fx);
    }
    Finish(fx);
  }
}

void Board::OnAgentChange(const AgentChange& change) {
  if (change.kind == AgentChange::Kind::kAvailable) {
    if (options_.push_assignment) SchedulePush({}, {change.agent_id});
    return;
  }
  Fx fx;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    const std::string why =
        change.reason.empty() ? absl::StrCat("holder ", change.agent_id, " is gone")
                              : change.reason;
    DropAgentReservations(change.agent_id, why, fx);
    auto it = loads_.find(change.agent_id);
    std::vector<std::string> held;
    if (it != loads_.end()) held.assign(it->second.held.begin(), it->second.held.end());
    for (const std::string& id : held) {
      Entry* e = Find(id);
      if (e == nullptr || !IsLeased(e->task.state())) continue;
      Requeue(*e, /*consume=*/true, Actor::System("registry"),
              change.reason.empty() ? absl::StrCat("holder ", change.agent_id, " is gone")
                                    : change.reason,
              fx);
    }
    Settle(fx);
  }
  fx.freed_agents.erase(change.agent_id);
  Finish(fx);
}

void Board::ArmSweep() {
  if (options_.sweep_interval <= absl::ZeroDuration()) return;
  sweep_timer_ = clock_->RunAfter(options_.sweep_interval,
                                  [this, life = life_mu_, alive = alive_] {
                                    absl::ReaderMutexLock l(life.get());
                                    if (!*alive) return;
                                    Post([this] { Sweep(); });
                                    ArmSweep();
                                  });
}

void Board::Sweep() {
  std::vector<std::string> heads;
  struct Waiting {
    std::vector<std::string> caps;
    int64_t count = 0;
    int64_t oldest_since = 0;
  };
  std::map<std::string, Waiting> by_caps;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    for (const auto& [name, q] : queues_) {
      int n = 0;
      for (const QueueKey& k : q.items) {
        if (n++ >= 32) break;
        heads.push_back(k.id);
      }
      if (!q.assign_to.empty()) continue;
      Waiting& w = by_caps[absl::StrJoin(q.caps, ",")];
      w.caps = q.caps;
      w.count += static_cast<int64_t>(q.items.size());
      for (const QueueKey& k : q.items) {
        if (w.oldest_since == 0 || k.since_us < w.oldest_since) w.oldest_since = k.since_us;
      }
    }
  }
  if (options_.push_assignment && !heads.empty()) PushTasks(heads);
  // Alerts: waiting work nobody online can do (edge-triggered per set).
  Fx fx;
  std::vector<std::pair<std::string, bool>> has_agents;
  for (const auto& [key, w] : by_caps) {
    absl::StatusOr<std::vector<AgentInfo>> found = directory_->FindAgents(w.caps, 1);
    if (found.ok()) has_agents.emplace_back(key, !found->empty());
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, any] : has_agents) {
      if (any) {
        alerted_capsets_.erase(key);
      } else if (alerted_capsets_.insert(key).second) {
        const Waiting& w = by_caps[key];
        EmitAlert(w.caps, w.count, clock_->Now() - FromMicros(w.oldest_since), fx);
      }
    }
    std::set<std::string> live;
    for (const auto& [key, w] : by_caps) live.insert(key);
    for (auto it = alerted_capsets_.begin(); it != alerted_capsets_.end();) {
      it = live.count(*it) ? std::next(it) : alerted_capsets_.erase(it);
    }
    Settle(fx);
  }
  Finish(fx);
  if (!options_.background) DrainNotices();
}

// --- notices ---------------------------------------------------------------------------------------

void Board::DrainNotices() {
  std::vector<std::string> done;
  while (true) {
    Notice n;
    {
      absl::MutexLock lock(&outbox_mu_);
      if (outbox_.empty()) break;
      n = outbox_.front();
    }
    absl::Status s = notifier_->Send(n);
    if (!s.ok()) break;
    {
      absl::MutexLock lock(&outbox_mu_);
      if (!outbox_.empty() && outbox_.front().id == n.id) outbox_.pop_front();
    }
    done.push_back(n.id);
  }
  if (!done.empty()) {
    absl::MutexLock lock(&mu_);
    for (std::string& id : done) pending_.notices_done.push_back(std::move(id));
    ++appended_;
  }
}

void Board::NoticeLoop() {
  while (true) {
    Notice n;
    {
      absl::MutexLock lock(&outbox_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(outbox_mu_) {
        return outbox_stop_ || (!outbox_.empty() && clock_->Now() >= outbox_retry_at_);
      };
      while (!ready()) {
        absl::Duration wait = absl::Milliseconds(200);
        if (!outbox_.empty()) {
          wait = std::max(absl::Milliseconds(1),
                          std::min(wait, outbox_retry_at_ - clock_->Now()));
        }
        outbox_cv_.WaitWithTimeout(&outbox_mu_, wait);
      }
      if (outbox_stop_) return;
      n = outbox_.front();
    }
    absl::Status s = notifier_->Send(n);
    if (s.ok()) {
      {
        absl::MutexLock lock(&outbox_mu_);
        if (!outbox_.empty() && outbox_.front().id == n.id) outbox_.pop_front();
        outbox_backoff_ = absl::Seconds(1);
      }
      absl::MutexLock board(&mu_);
      pending_.notices_done.push_back(n.id);
      ++appended_;
    } else {
      absl::MutexLock lock(&outbox_mu_);
      LOG_EVERY_N(WARNING, 20) << "tasks: notice " << n.id << " to " << n.recipient
                               << " not delivered (will retry): " << s;
      outbox_retry_at_ = clock_->Now() + outbox_backoff_;
      outbox_backoff_ = std::min(outbox_backoff_ * 2, absl::Seconds(30));
    }
  }
}

}  // namespace cnet::tasks
