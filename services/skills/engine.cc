#include "services/skills/engine.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "libs/crypto/crypto.h"

namespace cnet::skills {

absl::Status WithReason(absl::Status status, const std::string& reason) {
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

// Cancellation that flows down the tree of a run: run -> step -> attempt
// -> child steps. Hooks run once, outside the lock, on the cancelling thread.
class Engine::CancelScope {
 public:
  std::shared_ptr<CancelScope> NewChild() {
    auto child = std::make_shared<CancelScope>();
    absl::Status reason;
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        children_.push_back(child);
        return child;
      }
      reason = reason_;
    }
    child->Cancel(reason);
    return child;
  }

  void Cancel(const absl::Status& why) {
    std::vector<std::function<void()>> hooks;
    std::vector<std::weak_ptr<CancelScope>> children;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
      reason_ = why;
      hooks.swap(hooks_);
      children.swap(children_);
    }
    for (auto& weak : children) {
      if (auto c = weak.lock()) c->Cancel(why);
    }
    for (auto& h : hooks) h();
  }

  void OnCancel(std::function<void()> fn) {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        hooks_.push_back(std::move(fn));
        return;
      }
    }
    fn();
  }

  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  absl::Status reason() const {
    absl::MutexLock lock(&mu_);
    return reason_;
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status reason_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> hooks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<CancelScope>> children_ ABSL_GUARDED_BY(mu_);
};

// A skill invocation's view for expressions: its inputs and the results of
// its steps so far (guarded by the run's mutex).
struct Engine::Frame {
  std::shared_ptr<const LoadedSkill> skill;
  Json inputs = Json::object();
  Json steps = Json::object();
  Json run = Json::object();

  EvalScope Scope() const {
    EvalScope s;
    s.inputs = &inputs;
    s.steps = &steps;
    s.run = &run;
    return s;
  }
};

struct Engine::Run {
  absl::Mutex mu;
  RunRecord rec ABSL_GUARDED_BY(mu);
  std::vector<RunEvent> events ABSL_GUARDED_BY(mu);
  std::vector<absl::Duration> overheads ABSL_GUARDED_BY(mu);
  std::vector<Finished> waiters ABSL_GUARDED_BY(mu);
  bool finished ABSL_GUARDED_BY(mu) = false;  // final state decided
  bool durable ABSL_GUARDED_BY(mu) = false;   // final state committed
  bool timed_out ABSL_GUARDED_BY(mu) = false;
  bool user_cancelled ABSL_GUARDED_BY(mu) = false;
  Clock::TimerId timer ABSL_GUARDED_BY(mu) = 0;
  std::shared_ptr<Frame> frame;  // the top-level skill's frame
  // Immutable after start.
  std::string run_id;
  std::string agent;
  std::string skill_name;
  std::shared_ptr<EventHub<RunEvent>> hub = std::make_shared<EventHub<RunEvent>>();
  std::shared_ptr<CancelScope> scope = std::make_shared<CancelScope>();
  std::shared_ptr<const Library> library;
  std::shared_ptr<const LoadedSkill> skill;
};

struct Engine::Outcome {
  StepState state = StepState::kSucceeded;
  Json output;
  std::optional<RunError> error;
};

struct Engine::Ctx {
  std::shared_ptr<Run> run;
  std::shared_ptr<Frame> frame;
  std::shared_ptr<CancelScope> scope;
};

// One attempt of one step. The first completion wins: the action finishing,
// the attempt's timeout, or cancellation from above.
struct Engine::Attempt {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  bool timed_out ABSL_GUARDED_BY(mu) = false;
  Clock::TimerId timer ABSL_GUARDED_BY(mu) = 0;
  bool composite = false;  // a group or composed skill: waits for its children
  std::shared_ptr<CancelScope> scope;
  absl::Time deadline = absl::InfiniteFuture();
  absl::Time started = absl::InfinitePast();
  std::function<void(absl::Status, Json, std::optional<RunError>)> on_done;

  void Complete(absl::Status status, Json output, std::optional<RunError> inner) {
    std::function<void(absl::Status, Json, std::optional<RunError>)> fn;
    {
      absl::MutexLock lock(&mu);
      if (done) return;
      done = true;
      fn.swap(on_done);
    }
    if (fn) fn(std::move(status), std::move(output), std::move(inner));
  }
  bool is_done() {
    absl::MutexLock lock(&mu);
    return done;
  }
};

// Everything one step needs across its attempts.
struct Engine::StepRun {
  Ctx ctx;
  const Step* step = nullptr;
  StepRecord* rec = nullptr;
  Next done;
  std::shared_ptr<CancelScope> scope;  // the step's; attempts are children
  Action* action = nullptr;
  std::optional<absl::Duration> timeout;
  Json args;  // rendered action arguments
  std::shared_ptr<const LoadedSkill> composed;
  Json composed_inputs;
  absl::Time began = absl::InfinitePast();
  absl::Duration action_time = absl::ZeroDuration();
  absl::Duration waiting_time = absl::ZeroDuration();
};

// The engine's side of an action attempt.
class Engine::Call final : public ActionCall {
 public:
  Call(Engine* engine, std::shared_ptr<StepRun> sr, std::shared_ptr<Attempt> attempt, int n)
      : engine_(engine), sr_(std::move(sr)), attempt_(std::move(attempt)), n_(n) {}
  const std::string& agent_id() const override { return sr_->ctx.run->agent; }
  const std::string& run_id() const override { return sr_->ctx.run->run_id; }
  const std::string& step_path() const override { return sr_->rec->path; }
  absl::Time deadline() const override { return attempt_->deadline; }
  Clock* clock() const override { return engine_->clock_; }
  Executor* blocking() const override { return engine_->blocking_; }
  void Output(const Json& value, const std::string& message) override {
    if (attempt_->is_done()) return;
    Run* run = sr_->ctx.run.get();
    absl::MutexLock lock(&run->mu);
    RunEvent e;
    e.type = EventType::kStepOutput;
    e.step_id = sr_->step->id;
    e.step_path = sr_->rec->path;
    e.attempt = n_;
    bool truncated = false;
    e.has_output = true;
    e.output = CapValue(value, engine_->options_.output_cap, &truncated);
    e.message = message;
    engine_->Emit(run, std::move(e));
  }
  void OnCancel(std::function<void()> fn) override { attempt_->scope->OnCancel(std::move(fn)); }
  bool cancelled() const override { return attempt_->is_done() || attempt_->scope->cancelled(); }
  void Finish(absl::StatusOr<Json> result) override {
    if (result.ok()) {
      attempt_->Complete(absl::OkStatus(), std::move(*result), std::nullopt);
    } else {
      attempt_->Complete(result.status(), Json(), std::nullopt);
    }
  }

 private:
  Engine* engine_;
  std::shared_ptr<StepRun> sr_;
  std::shared_ptr<Attempt> attempt_;
  int n_;
};

namespace {

std::string Quoted(const std::string& s) { return absl::StrCat("\"", s, "\""); }

// Step records for a list of declared steps (groups recursively; a
// composed skill's steps are added when it starts).
std::vector<StepRecord> BuildRecords(const std::vector<Step>& steps, const std::string& prefix,
                                     const Library& lib, const LoadedSkill& owner) {
  std::vector<StepRecord> out;
  out.reserve(steps.size());
  for (const Step& s : steps) {
    StepRecord r;
    r.step_id = s.id;
    r.path = prefix.empty() ? s.id : prefix + "/" + s.id;
    r.kind = s.kind;
    if (s.kind == StepKind::kAction) {
      r.target = s.action;
    } else if (s.kind == StepKind::kSkill) {
      auto target = lib.ResolveStep(owner, s);
      r.target = target ? target->def().Key() : s.skill;
    } else {
      r.children = BuildRecords(s.children, r.path, lib, owner);
    }
    out.push_back(std::move(r));
  }
  return out;
}

void ResetRecord(StepRecord* r) {
  r->state = StepState::kPending;
  r->attempts = 0;
  r->started_at = absl::InfinitePast();
  r->finished_at = absl::InfinitePast();
  r->resolved_args = Json();
  r->output = Json();
  r->truncated = false;
  r->error.reset();
  r->skip_reason.clear();
  for (StepRecord& c : r->children) ResetRecord(&c);
}

void MarkNotRun(std::vector<StepRecord>* recs, size_t from, const std::string& why) {
  for (size_t i = from; i < recs->size(); ++i) {
    StepRecord& r = (*recs)[i];
    if (r.state == StepState::kPending) {
      r.state = StepState::kSkipped;
      r.skip_reason = why;
    }
    MarkNotRun(&r.children, 0, why);
  }
}

// Every action a skill can reach (itself and the skills it composes).
void CollectActions(const Library& lib, const LoadedSkill& skill,
                    std::vector<std::pair<const Step*, std::string>>* out,
                    std::vector<std::string>* capabilities, int depth = 0) {
  if (depth > kMaxCompositionDepth) return;
  for (const std::string& c : skill.def().capabilities) capabilities->push_back(c);
  std::function<void(const std::vector<Step>&)> walk = [&](const std::vector<Step>& steps) {
    for (const Step& s : steps) {
      if (s.kind == StepKind::kAction) {
        out->emplace_back(&s, skill.def().Key());
      } else if (s.kind == StepKind::kSkill) {
        if (auto t = lib.ResolveStep(skill, s)) {
          CollectActions(lib, *t, out, capabilities, depth + 1);
        }
      }
      walk(s.children);
    }
  };
  walk(skill.def().steps);
}



DurationSummary Summarize(std::vector<absl::Duration> samples) {
  DurationSummary s;
  s.count = static_cast<int64_t>(samples.size());
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  absl::Duration total;
  for (absl::Duration d : samples) total += d;
  s.mean = total / static_cast<int64_t>(samples.size());
  auto rank = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    return samples[std::min(samples.size(), std::max<size_t>(i, 1)) - 1];
  };
  s.p50 = rank(0.50);
  s.p95 = rank(0.95);
  s.p99 = rank(0.99);
  s.max = samples.back();
  return s;
}

}  // namespace

Engine::Engine(LibraryManager* library, ActionRegistry* actions, Store* store, Clock* clock,
               Executor* pool, Executor* blocking, EngineOptions options,
               CapabilityLookup capabilities)
    : library_(library),
      actions_(actions),
      store_(store),
      clock_(clock),
      pool_(pool),
      blocking_(blocking),
      options_(std::move(options)),
      capabilities_(std::move(capabilities)),
      ids_(clock) {}

Engine::~Engine() {
  std::vector<std::shared_ptr<Run>> runs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, run] : active_) runs.push_back(run);
  }
  for (auto& run : runs) {
    run->scope->Cancel(absl::CancelledError("the skills service is shutting down"));
  }
  absl::MutexLock lock(&mu_);
  auto empty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_.empty(); };
  mu_.Await(absl::Condition(&empty));
}

absl::StatusOr<int> Engine::Recover() { return store_->FailInterruptedRuns(clock_->Now()); }

int64_t Engine::in_flight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(active_.size());
}

absl::StatusOr<std::shared_ptr<const LoadedSkill>> Engine::Resolve(
    const std::string& name, const std::string& version, std::shared_ptr<const Library>* out) {
  std::shared_ptr<const Library> lib = library_->Current();
  *out = lib;
  VersionRange range;
  if (!version.empty()) {
    auto parsed = VersionRange::Parse(version);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("version: ", parsed.status().message()));
    }
    range = *parsed;
  }
  if (auto skill = lib->Find(name, &range)) return skill;
  std::vector<std::shared_ptr<const LoadedSkill>> all = lib->AllVersions(name);
  if (all.empty()) {
    return WithReason(absl::NotFoundError(absl::StrCat("skill ", Quoted(name), " not found")),
                      "SKILL_NOT_FOUND");
  }
  std::vector<std::string> valid_versions;
  for (const auto& s : all) {
    if (range.Matches(s->def().version) && !s->valid) {
      std::string why = s->issues.empty() ? "invalid" : s->issues.front().ToString();
      for (const Issue& i : s->issues) {
        if (i.severity == Severity::kError) {
          why = i.ToString();
          break;
        }
      }
      return WithReason(absl::FailedPreconditionError(absl::StrCat(
                            "skill ", Quoted(s->def().Key()), " is invalid: ", why)),
                        "SKILL_INVALID");
    }
    if (s->valid) valid_versions.push_back(s->def().version.ToString());
  }
  return WithReason(
      absl::NotFoundError(absl::StrCat("no version of skill ", Quoted(name), " matches ",
                                       Quoted(version), " (available: ",
                                       absl::StrJoin(valid_versions, ", "), ")")),
      "SKILL_NOT_FOUND");
}

absl::Status Engine::CheckRunnable(const Library& lib, const LoadedSkill& skill,
                                   const CallerInfo& caller) {
  std::vector<std::pair<const Step*, std::string>> steps;
  std::vector<std::string> needed;
  CollectActions(lib, skill, &steps, &needed);
  for (const auto& [step, owner] : steps) {
    const ActionSpec* spec = actions_->catalog().Find(step->action);
    if (spec != nullptr && !spec->enabled) {
      return WithReason(
          absl::PermissionDeniedError(absl::StrCat(
              "skill ", Quoted(skill.def().Key()), " uses action ", Quoted(spec->name),
              " (step ", Quoted(step->id), " of ", owner, "), which is disabled: ",
              spec->disabled_reason)),
          "ACTION_DISABLED");
    }
    if (spec != nullptr && spec->check_literal_args) {
      absl::Status s = spec->check_literal_args(step->args.source());
      if (!s.ok()) {
        return WithReason(absl::Status(s.code(), absl::StrCat("skill ", Quoted(skill.def().Key()),
                                                              ", step ", Quoted(step->id), " of ",
                                                              owner, ": ", s.message())),
                          "ACTION_DISABLED");
      }
    }
  }
  if (needed.empty() || !capabilities_) return absl::OkStatus();
  auto have = capabilities_(caller.agent());
  if (!have.ok()) return have.status();
  std::sort(needed.begin(), needed.end());
  needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
  std::vector<std::string> missing;
  for (const std::string& c : needed) {
    if (std::find(have->begin(), have->end(), c) == have->end()) missing.push_back(c);
  }
  if (!missing.empty()) {
    return WithReason(absl::FailedPreconditionError(absl::StrCat(
                          "agent ", Quoted(caller.agent()), " lacks capabilities required by skill ",
                          Quoted(skill.def().Key()), ": ", absl::StrJoin(missing, ", "))),
                      "MISSING_CAPABILITY");
  }
  return absl::OkStatus();
}

void Engine::Emit(Run* run, RunEvent e) {
  e.run_id = run->run_id;
  e.sequence = ++run->rec.event_count;
  e.time = clock_->Now();
  run->events.push_back(e);
  store_->AppendEvents({e});
  run->hub->Publish(e);
}

RunRecord Engine::Snapshot(Run* run, bool with_steps) {
  absl::MutexLock lock(&run->mu);
  RunRecord r = run->rec;
  if (!with_steps) r.steps.clear();
  return r;
}

absl::StatusOr<RunRecord> Engine::Start(const RunRequest& req, Accepted on_accepted,
                                        Finished on_finished, bool* existing) {
  if (existing != nullptr) *existing = false;
  if (req.skill_name.empty()) return absl::InvalidArgumentError("name: required");
  if (req.caller.agent().empty()) {
    return absl::PermissionDeniedError(
        "RunSkill needs an agent token (or a service acting on behalf of an agent)");
  }
  if (req.idempotency_key.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat("idempotency_key: longer than 128 bytes (",
                                                   req.idempotency_key.size(), ")"));
  }
  absl::Duration timeout = req.timeout.value_or(options_.default_run_timeout);
  if (req.timeout && (*req.timeout < absl::Seconds(1) || *req.timeout > absl::Hours(24))) {
    return absl::InvalidArgumentError(
        absl::StrCat("timeout: must be 1s..24h, got ", absl::FormatDuration(*req.timeout)));
  }
  std::shared_ptr<const Library> lib;
  auto skill_or = Resolve(req.skill_name, req.version, &lib);
  if (!skill_or.ok()) return skill_or.status();
  std::shared_ptr<const LoadedSkill> skill = *skill_or;
  auto inputs = CheckInputs(skill->def(), req.inputs, "input");
  if (!inputs.ok()) return inputs.status();
  absl::Status runnable = CheckRunnable(*lib, *skill, req.caller);
  if (!runnable.ok()) return runnable;

  std::string request_hash =
      crypto::Sha256Hex(absl::StrCat(req.skill_name, "\n", req.version, "\n", Dump(req.inputs)));
  absl::Time now = clock_->Now();
  if (!req.idempotency_key.empty()) {
    std::shared_ptr<Run> active;
    {
      absl::MutexLock lock(&mu_);
      auto it = keys_.find({req.caller.id, req.idempotency_key});
      if (it != keys_.end()) {
        auto a = active_.find(it->second);
        if (a != active_.end()) active = a->second;
      }
    }
    std::optional<RunRecord> prior;
    if (active != nullptr) {
      prior = Snapshot(active.get(), true);
    } else {
      auto found = store_->FindByIdempotencyKey(req.caller.id, req.idempotency_key,
                                                now - options_.idempotency_window);
      if (!found.ok()) return found.status();
      prior = *found;
    }
    if (prior) {
      if (prior->request_hash != request_hash) {
        return WithReason(absl::AlreadyExistsError(absl::StrCat(
                              "idempotency_key ", Quoted(req.idempotency_key),
                              " was used for a different request (run ", prior->run_id, ")")),
                          "IDEMPOTENCY_KEY_REUSED");
      }
      if (existing != nullptr) *existing = true;
      if (on_accepted) on_accepted(absl::OkStatus(), *prior);
      if (on_finished) {
        bool finished_now = true;
        if (active != nullptr) {
          absl::MutexLock lock(&active->mu);
          if (!active->durable) {
            active->waiters.push_back(on_finished);
            finished_now = false;
          }
        }
        if (finished_now) {
          auto final_rec = active != nullptr ? Snapshot(active.get(), true) : *prior;
          on_finished(absl::OkStatus(), final_rec);
        }
      }
      return *prior;
    }
  }

  auto run = std::make_shared<Run>();
  run->run_id = "run-" + absl::AsciiStrToLower(ids_.Next());
  run->agent = req.caller.agent();
  run->skill_name = skill->def().name;
  run->library = lib;
  run->skill = skill;
  {
    absl::MutexLock lock(&mu_);
    if (static_cast<int>(active_.size()) >= options_.max_runs) {
      absl::Status s = absl::ResourceExhaustedError(absl::StrCat(
          "runs in flight: ", active_.size(), " of ", options_.max_runs,
          " (config limits.max_skill_runs); retry in ", absl::FormatDuration(options_.retry_after)));
      s.SetPayload(kRetryAfterPayload,
                   absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(options_.retry_after))));
      return WithReason(s, "TOO_MANY_RUNS");
    }
    int& mine = per_agent_[run->agent];
    if (mine >= options_.max_runs_per_agent) {
      absl::Status s = absl::ResourceExhaustedError(absl::StrCat(
          "agent ", Quoted(run->agent), " has ", mine, " runs in flight, the limit is ",
          options_.max_runs_per_agent, " (config skills.max_runs_per_agent); retry in ",
          absl::FormatDuration(options_.retry_after)));
      s.SetPayload(kRetryAfterPayload,
                   absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(options_.retry_after))));
      return WithReason(s, "TOO_MANY_RUNS");
    }
    ++mine;
    active_[run->run_id] = run;
    if (!req.idempotency_key.empty()) {
      keys_[{req.caller.id, req.idempotency_key}] = run->run_id;
    }
  }

  auto frame = std::make_shared<Frame>();
  frame->skill = skill;
  frame->inputs = *inputs;
  frame->run = Json{{"id", run->run_id},
                    {"agent", run->agent},
                    {"skill", skill->def().name},
                    {"version", skill->def().version.ToString()}};
  run->frame = frame;
  RunRecord accepted;
  {
    absl::MutexLock lock(&run->mu);
    RunRecord& r = run->rec;
    r.run_id = run->run_id;
    r.skill_name = skill->def().name;
    r.skill_version = skill->def().version.ToString();
    r.state = RunState::kRunning;
    r.mode = req.mode;
    r.inputs = *inputs;
    r.caller = req.caller;
    r.created_at = now;
    r.started_at = now;
    r.timeout = timeout;
    r.idempotency_key = req.idempotency_key;
    r.request_hash = request_hash;
    r.steps = BuildRecords(skill->def().steps, "", *lib, *skill);
    if (on_finished) run->waiters.push_back(std::move(on_finished));
    store_->SaveRun(r, [on_accepted, snapshot = r](absl::Status s) {
      if (on_accepted) on_accepted(s, snapshot);
    });
    RunEvent started;
    started.type = EventType::kRunStarted;
    started.run_state = RunState::kRunning;
    started.started_at = now;
    started.has_output = true;
    started.output = *inputs;
    started.message = absl::StrCat("run of ", skill->def().Key(), " by ", run->agent);
    Emit(run.get(), std::move(started));
    accepted = r;
    std::weak_ptr<Run> weak = run;
    run->timer = clock_->RunAfter(timeout, [weak, timeout] {
      auto r = weak.lock();
      if (r == nullptr) return;
      {
        absl::MutexLock lock(&r->mu);
        if (r->finished) return;
        r->timed_out = true;
      }
      r->scope->Cancel(absl::DeadlineExceededError(
          absl::StrCat("the run timed out after ", absl::FormatDuration(timeout))));
    });
  }
  Ctx ctx{run, frame, run->scope};
  pool_->Post([this, ctx, run] {
    std::vector<StepRecord>* recs;
    {
      absl::MutexLock lock(&run->mu);
      recs = &run->rec.steps;
    }
    ExecSequence(ctx, &run->skill->def().steps, recs, 0,
                 [this, run](Outcome top) { FinishRun(run, std::move(top)); });
  });
  return accepted;
}

absl::StatusOr<RunRecord> Engine::Cancel(const std::string& run_id, const CallerInfo& who,
                                         bool admin, const std::string& reason) {
  if (reason.size() > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("reason: longer than 1024 bytes (", reason.size(), ")"));
  }
  std::shared_ptr<Run> run;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it != active_.end()) run = it->second;
  }
  if (run == nullptr) {
    auto stored = store_->GetRun(run_id, false);
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) {
      return absl::NotFoundError(absl::StrCat("run ", Quoted(run_id), " not found"));
    }
    if (!admin && (*stored)->caller.agent() != who.agent()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "run ", Quoted(run_id), " was started by ", Quoted((*stored)->caller.agent()),
          "; only that agent or an admin may cancel it"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", Quoted(run_id), " already finished (", RunStateName((*stored)->state), ")"));
  }
  absl::Notification done;
  RunRecord final_rec;
  {
    absl::MutexLock lock(&run->mu);
    if (!admin && run->agent != who.agent()) {
      return absl::PermissionDeniedError(
          absl::StrCat("run ", Quoted(run_id), " was started by ", Quoted(run->agent),
                       "; only that agent or an admin may cancel it"));
    }
    if (run->finished) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", Quoted(run_id), " already finished (", RunStateName(run->rec.state), ")"));
    }
    run->user_cancelled = true;
    run->waiters.push_back([&](absl::Status, const RunRecord& r) {
      final_rec = r;
      done.Notify();
    });
  }
  std::string by = who.id.empty() ? "admin" : who.id;
  run->scope->Cancel(absl::CancelledError(absl::StrCat(
      "run cancelled by ", by, reason.empty() ? "" : absl::StrCat(": ", reason))));
  done.WaitForNotification();
  return final_rec;
}

void Engine::Abandon(const std::string& run_id, const std::string& reason) {
  std::shared_ptr<Run> run;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) return;
    run = it->second;
  }
  {
    absl::MutexLock lock(&run->mu);
    if (run->finished) return;
    run->user_cancelled = true;
  }
  run->scope->Cancel(absl::CancelledError(reason));
}

absl::StatusOr<RunRecord> Engine::GetRun(const std::string& run_id, bool with_steps) {
  std::shared_ptr<Run> run;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it != active_.end()) run = it->second;
  }
  if (run != nullptr) return Snapshot(run.get(), with_steps);
  auto stored = store_->GetRun(run_id, with_steps);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) {
    return absl::NotFoundError(absl::StrCat("run ", Quoted(run_id), " not found"));
  }
  return std::move(**stored);
}

absl::StatusOr<std::vector<RunRecord>> Engine::ListRuns(const Store::RunFilter& filter) {
  auto runs = store_->ListRuns(filter);
  if (!runs.ok()) return runs.status();
  absl::MutexLock lock(&mu_);
  for (RunRecord& r : *runs) {
    auto it = active_.find(r.run_id);
    if (it == active_.end()) continue;
    absl::MutexLock run_lock(&it->second->mu);
    r.state = it->second->rec.state;
    r.event_count = it->second->rec.event_count;
  }
  return runs;
}

absl::StatusOr<Engine::WatchSource> Engine::Watch(const std::string& run_id) {
  std::shared_ptr<Run> run;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it != active_.end()) run = it->second;
  }
  WatchSource src;
  if (run != nullptr) {
    src.hub = run->hub;
    src.backlog = [run](int64_t after) {
      absl::MutexLock lock(&run->mu);
      std::vector<RunEvent> out;
      for (const RunEvent& e : run->events) {
        if (e.sequence > after) out.push_back(e);
      }
      return out;
    };
    return src;
  }
  auto stored = store_->GetRun(run_id, false);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) {
    return absl::NotFoundError(absl::StrCat("run ", Quoted(run_id), " not found"));
  }
  src.hub = std::make_shared<EventHub<RunEvent>>();
  src.hub->Close();
  Store* store = store_;
  src.backlog = [store, run_id](int64_t after) {
    auto events = store->GetEvents(run_id, after);
    return events.ok() ? *events : std::vector<RunEvent>{};
  };
  return src;
}

absl::StatusOr<std::vector<SkillStats>> Engine::Stats(const std::string& skill,
                                                      std::optional<absl::Duration> window,
                                                      SkillStats* totals) {
  absl::Time since = window ? clock_->Now() - *window : absl::InfinitePast();
  if (!skill.empty()) {
    auto seen = store_->SkillHasRuns(skill);
    if (!seen.ok()) return seen.status();
    bool active = false;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, run] : active_) active = active || run->skill_name == skill;
    }
    if (!*seen && !active) {
      return absl::NotFoundError(absl::StrCat("skill ", Quoted(skill), " has never run"));
    }
  }
  auto finished = store_->FinishedRuns(skill, since);
  if (!finished.ok()) return finished.status();
  auto overheads = store_->StepOverheads(skill, since);
  if (!overheads.ok()) return overheads.status();
  struct Acc {
    SkillStats stats;
    std::vector<absl::Duration> durations, overheads;
  };
  std::map<std::string, Acc> by_skill;
  Acc all;
  for (const Store::FinishedRun& f : *finished) {
    for (Acc* acc : {&by_skill[f.skill_name], &all}) {
      ++acc->stats.runs;
      if (f.state == RunState::kSucceeded) ++acc->stats.succeeded;
      if (f.state == RunState::kFailed) ++acc->stats.failed;
      if (f.state == RunState::kCancelled) ++acc->stats.cancelled;
      acc->durations.push_back(f.duration);
      acc->stats.last_run_at = std::max(acc->stats.last_run_at, f.created_at);
    }
  }
  for (const auto& [name, d] : *overheads) {
    by_skill[name].overheads.push_back(d);
    all.overheads.push_back(d);
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, run] : active_) {
      if (!skill.empty() && run->skill_name != skill) continue;
      absl::Time created;
      {
        absl::MutexLock run_lock(&run->mu);
        created = run->rec.created_at;
      }
      for (Acc* acc : {&by_skill[run->skill_name], &all}) {
        ++acc->stats.in_flight;
        acc->stats.last_run_at = std::max(acc->stats.last_run_at, created);
      }
    }
  }
  auto finish = [](const std::string& name, Acc& acc) {
    SkillStats s = acc.stats;
    s.skill_name = name;
    s.success_rate = s.runs == 0 ? 0 : static_cast<double>(s.succeeded) / s.runs;
    s.duration = Summarize(std::move(acc.durations));
    s.step_overhead = Summarize(std::move(acc.overheads));
    return s;
  };
  std::vector<SkillStats> out;
  for (auto& [name, acc] : by_skill) out.push_back(finish(name, acc));
  if (totals != nullptr) *totals = finish("", all);
  return out;
}

void Engine::ExecSequence(Ctx ctx, const std::vector<Step>* steps, std::vector<StepRecord>* recs,
                          size_t index, Next done) {
  if (index >= steps->size()) return done(Outcome{});
  if (ctx.scope->cancelled()) {
    absl::Status why = ctx.scope->reason();
    {
      absl::MutexLock lock(&ctx.run->mu);
      MarkNotRun(recs, index, absl::StrCat("not run: ", why.message()));
    }
    return done(Outcome{StepState::kCancelled, Json(), RunError::From(why)});
  }
  const Step* step = &(*steps)[index];
  ExecStep(ctx, step, &(*recs)[index],
           [this, ctx, steps, recs, index, step, done](Outcome o) {
             bool stop = o.state == StepState::kCancelled ||
                         (o.state == StepState::kFailed && step->on_error == OnError::kFail);
             if (stop) {
               {
                 absl::MutexLock lock(&ctx.run->mu);
                 MarkNotRun(recs, index + 1,
                            absl::StrCat("not run: step ", Quoted(step->id),
                                         o.state == StepState::kFailed ? " failed" : " was cancelled"));
               }
               return done(std::move(o));
             }
             ExecSequence(ctx, steps, recs, index + 1, done);
           });
}

void Engine::ExecParallel(Ctx ctx, const std::vector<Step>* steps, std::vector<StepRecord>* recs,
                          Next done) {
  struct Group {
    absl::Mutex mu;
    size_t remaining = 0;
    std::optional<Outcome> failure;
    std::optional<Outcome> cancelled;
  };
  auto group = std::make_shared<Group>();
  group->remaining = steps->size();
  if (steps->empty()) return done(Outcome{});
  for (size_t i = 0; i < steps->size(); ++i) {
    const Step* step = &(*steps)[i];
    StepRecord* rec = &(*recs)[i];
    pool_->Post([this, ctx, step, rec, group, done] {
      ExecStep(ctx, step, rec, [ctx, step, group, done](Outcome o) {
        bool cancel_siblings = false;
        bool last = false;
        Outcome result;
        {
          absl::MutexLock lock(&group->mu);
          if (o.state == StepState::kFailed && step->on_error == OnError::kFail &&
              !group->failure) {
            group->failure = o;
            cancel_siblings = true;
          } else if (o.state == StepState::kCancelled && !group->cancelled) {
            group->cancelled = o;
          }
          last = --group->remaining == 0;
          if (last) {
            result = group->failure ? *group->failure
                                    : (group->cancelled ? *group->cancelled : Outcome{});
          }
        }
        if (cancel_siblings) {
          ctx.scope->Cancel(absl::CancelledError(
              absl::StrCat("cancelled: step ", Quoted(step->id), " of the same parallel group failed")));
        }
        if (last) done(std::move(result));
      });
    });
  }
}

void Engine::ExecStep(Ctx ctx, const Step* step, StepRecord* rec, Next done) {
  auto sr = std::make_shared<StepRun>();
  sr->ctx = ctx;
  sr->step = step;
  sr->rec = rec;
  sr->done = std::move(done);
  sr->scope = ctx.scope->NewChild();
  sr->began = clock_->Now();
  Run* run = ctx.run.get();
  if (sr->scope->cancelled()) {
    absl::Status why = sr->scope->reason();
    {
      absl::MutexLock lock(&run->mu);
      if (rec->state == StepState::kPending) {
        rec->state = StepState::kSkipped;
        rec->skip_reason = absl::StrCat("not run: ", why.message());
      }
    }
    return sr->done(Outcome{StepState::kCancelled, Json(), RunError::From(why)});
  }
  absl::Status prep;
  std::string skip_reason;
  std::optional<RunError> prep_error;
  {
    absl::MutexLock lock(&run->mu);
    EvalScope scope = ctx.frame->Scope();
    const std::string label = absl::StrCat("step ", Quoted(step->id));
    if (!step->when.empty()) {
      auto w = step->when.EvaluateCondition(scope);
      if (!w.ok()) {
        prep = absl::InvalidArgumentError(absl::StrCat(label, ": when: ", w.status().message()));
      } else if (!*w) {
        skip_reason = absl::StrCat("when: ", step->when.text(), " was false");
      }
    }
    if (prep.ok() && skip_reason.empty()) {
      if (step->kind == StepKind::kAction) {
        sr->action = actions_->Find(step->action);
        const ActionSpec* spec = actions_->catalog().Find(step->action);
        auto args = step->args.Render(scope);
        if (sr->action == nullptr || spec == nullptr) {
          prep = absl::FailedPreconditionError(
              absl::StrCat(label, ": action ", Quoted(step->action), " is not available"));
        } else if (!spec->enabled) {
          prep = absl::PermissionDeniedError(absl::StrCat(label, ": action ", Quoted(spec->name),
                                                          " is disabled: ", spec->disabled_reason));
        } else if (!args.ok()) {
          prep = absl::InvalidArgumentError(absl::StrCat(label, ": ", args.status().message()));
        } else {
          sr->args = std::move(*args);
          bool truncated = false;
          rec->resolved_args = CapValue(sr->args, options_.output_cap, &truncated);
          rec->truncated = truncated;
          sr->timeout = step->timeout.value_or(options_.default_step_timeout);
          if (step->action == "shell") sr->timeout = std::min(*sr->timeout, options_.shell_timeout);
        }
      } else if (step->kind == StepKind::kSkill) {
        sr->composed = run->library->ResolveStep(*ctx.frame->skill, *step);
        auto inputs = step->skill_inputs.Render(scope);
        if (sr->composed == nullptr) {
          prep = absl::FailedPreconditionError(
              absl::StrCat(label, ": composed skill ", Quoted(step->skill), " is not available"));
        } else if (!inputs.ok()) {
          prep = absl::InvalidArgumentError(absl::StrCat(label, ": ", inputs.status().message()));
        } else {
          auto checked = CheckInputs(sr->composed->def(), *inputs, label + ": input");
          if (!checked.ok()) {
            prep = checked.status();
          } else {
            sr->composed_inputs = std::move(*checked);
            bool truncated = false;
            rec->resolved_args = CapValue(sr->composed_inputs, options_.output_cap, &truncated);
            rec->truncated = truncated;
          }
        }
        sr->timeout = step->timeout;
      } else {
        sr->timeout = step->timeout;
      }
    }
    absl::Time now = clock_->Now();
    if (!skip_reason.empty()) {
      rec->state = StepState::kSkipped;
      rec->skip_reason = skip_reason;
      ctx.frame->steps[step->id] = Json{{"state", "SKIPPED"}, {"output", nullptr}};
      RunEvent e;
      e.type = EventType::kStepSkipped;
      e.step_id = step->id;
      e.step_path = rec->path;
      e.message = skip_reason;
      Emit(run, std::move(e));
    } else if (!prep.ok()) {
      prep_error = RunError::From(prep, rec->path);
      rec->state = StepState::kFailed;
      rec->error = prep_error;
      rec->started_at = now;
      rec->finished_at = now;
      ctx.frame->steps[step->id] = Json{{"state", "FAILED"}, {"output", nullptr}};
      RunEvent e;
      e.type = EventType::kStepFailed;
      e.step_id = step->id;
      e.step_path = rec->path;
      e.error = prep_error;
      e.started_at = now;
      e.duration = absl::ZeroDuration();
      e.message = prep_error->message;
      Emit(run, std::move(e));
    }
  }
  if (!skip_reason.empty()) return sr->done(Outcome{StepState::kSkipped, Json(), std::nullopt});
  if (prep_error) return sr->done(Outcome{StepState::kFailed, Json(), prep_error});
  StartAttempt(sr, 1);
}

void Engine::StartAttempt(const std::shared_ptr<StepRun>& sr, int n) {
  const Step* step = sr->step;
  StepRecord* rec = sr->rec;
  std::shared_ptr<Run> run = sr->ctx.run;
  auto attempt = std::make_shared<Attempt>();
  attempt->scope = sr->scope->NewChild();
  attempt->composite = step->kind != StepKind::kAction;
  absl::Time now = clock_->Now();
  attempt->started = now;
  if (sr->timeout) attempt->deadline = now + *sr->timeout;
  {
    absl::MutexLock lock(&run->mu);
    if (n == 1) rec->started_at = now;
    rec->attempts = n;
    rec->state = StepState::kRunning;
    if (step->kind == StepKind::kSkill && rec->children.empty()) {
      rec->children =
          BuildRecords(sr->composed->def().steps, rec->path, *run->library, *sr->composed);
    } else if (n > 1) {
      for (StepRecord& c : rec->children) ResetRecord(&c);
    }
    RunEvent e;
    e.type = EventType::kStepStarted;
    e.step_id = step->id;
    e.step_path = rec->path;
    e.attempt = n;
    e.started_at = now;
    Emit(run.get(), std::move(e));
  }

  // Whoever completes the attempt holds a reference to it while on_done
  // runs, so a raw pointer is enough here (and avoids a cycle).
  Attempt* a = attempt.get();
  std::shared_ptr<StepRun> srp = sr;
  a->on_done = [this, srp, n, a](absl::Status status, Json output,
                                 std::optional<RunError> inner) {
    Clock::TimerId timer;
    {
      absl::MutexLock lock(&a->mu);
      timer = a->timer;
    }
    if (timer != 0) clock_->Cancel(timer);
    absl::Duration took = clock_->Now() - a->started;
    // An action that finished on a pool thread (log, assert, a composite)
    // continues there at once, up to a small nesting depth; any other
    // thread (timer, I/O pool, cancelling caller) hands over to the pool.
    static thread_local int depth = 0;
    if (pool_->OnOwnThread() && depth < 8) {
      ++depth;
      srp->action_time += took;
      AfterAttempt(srp, n, std::move(status), std::move(output), std::move(inner));
      --depth;
      return;
    }
    pool_->Post([this, srp, n, status, output, inner, took] {
      srp->action_time += took;
      AfterAttempt(srp, n, status, output, inner);
    });
  };

  if (sr->timeout) {
    absl::Status expired = absl::DeadlineExceededError(absl::StrCat(
        "step ", Quoted(step->id), " timed out after ", absl::FormatDuration(*sr->timeout)));
    std::weak_ptr<Attempt> weak = attempt;
    Clock::TimerId timer = clock_->RunAt(attempt->deadline, [weak, expired] {
      auto at = weak.lock();
      if (at == nullptr) return;
      if (at->composite) {
        {
          absl::MutexLock lock(&at->mu);
          if (at->done) return;
          at->timed_out = true;
        }
        at->scope->Cancel(expired);
      } else {
        at->Complete(expired, Json(), std::nullopt);
        at->scope->Cancel(expired);
      }
    });
    bool already_done;
    {
      absl::MutexLock lock(&a->mu);
      already_done = a->done;
      if (!already_done) a->timer = timer;
    }
    if (already_done) clock_->Cancel(timer);
  }
  if (!attempt->composite) {
    // Cancellation from above (run cancelled or timed out, a sibling failed)
    // ends an action attempt at once; its hooks interrupt the action.
    std::weak_ptr<Attempt> weak = attempt;
    attempt->scope->OnCancel([weak] {
      if (auto at = weak.lock()) at->Complete(at->scope->reason(), Json(), std::nullopt);
    });
  }
  if (attempt->is_done()) return;

  // A composite attempt ends when its children have: with the timeout's
  // error if it fired, else with what the children did.
  auto composite_done = [this, attempt, srp, run](Outcome o, Json output) {
    bool timed_out;
    {
      absl::MutexLock lock(&attempt->mu);
      timed_out = attempt->timed_out;
    }
    if (timed_out) {
      absl::Status expired = absl::DeadlineExceededError(
          absl::StrCat("step ", Quoted(srp->step->id), " timed out after ",
                       absl::FormatDuration(*srp->timeout)));
      attempt->Complete(expired, Json(), RunError::From(expired, srp->rec->path));
    } else if (o.state == StepState::kSucceeded) {
      attempt->Complete(absl::OkStatus(), std::move(output), std::nullopt);
    } else {
      RunError err = o.error ? *o.error : RunError{"UNKNOWN", "failed", srp->rec->path};
      attempt->Complete(err.ToStatus(), Json(), err);
    }
  };

  switch (step->kind) {
    case StepKind::kAction: {
      auto call = std::make_shared<Call>(this, sr, attempt, n);
      sr->action->Start(sr->args, call);
      break;
    }
    case StepKind::kSkill: {
      auto frame = std::make_shared<Frame>();
      frame->skill = sr->composed;
      frame->inputs = sr->composed_inputs;
      frame->run = sr->ctx.frame->run;
      Ctx child{run, frame, attempt->scope};
      ExecSequence(child, &sr->composed->def().steps, &rec->children, 0,
                   [this, frame, srp, run, composite_done](Outcome o) {
                     if (o.state != StepState::kSucceeded) return composite_done(o, Json());
                     absl::StatusOr<Json> out;
                     {
                       absl::MutexLock lock(&run->mu);
                       out = Outputs(*srp->composed, *frame);
                     }
                     if (!out.ok()) {
                       RunError err = RunError::From(out.status(), srp->rec->path);
                       return composite_done(Outcome{StepState::kFailed, Json(), err}, Json());
                     }
                     composite_done(o, std::move(*out));
                   });
      break;
    }
    case StepKind::kParallel:
      ExecParallel(Ctx{run, sr->ctx.frame, attempt->scope}, &step->children, &rec->children,
                   [composite_done](Outcome o) { composite_done(std::move(o), Json()); });
      break;
    case StepKind::kSequence:
      ExecSequence(Ctx{run, sr->ctx.frame, attempt->scope}, &step->children, &rec->children, 0,
                   [composite_done](Outcome o) { composite_done(std::move(o), Json()); });
      break;
  }
}

void Engine::AfterAttempt(const std::shared_ptr<StepRun>& sr, int n, absl::Status status,
                          Json output, std::optional<RunError> inner) {
  if (status.ok()) return EndStep(sr, StepState::kSucceeded, std::move(output), std::nullopt);
  const std::string& path = sr->rec->path;
  if (sr->scope->cancelled()) {
    return EndStep(sr, StepState::kCancelled, Json(), RunError::From(sr->scope->reason(), path));
  }
  RunError err = inner ? *inner : RunError::From(status, path);
  const RetryPolicy& retry = sr->step->retry;
  if (n >= retry.max_attempts) return EndStep(sr, StepState::kFailed, Json(), err);

  absl::Duration delay = retry.BackoffBefore(n + 1);
  Run* run = sr->ctx.run.get();
  {
    absl::MutexLock lock(&run->mu);
    sr->rec->error = err;
    RunEvent e;
    e.type = EventType::kStepRetried;
    e.step_id = sr->step->id;
    e.step_path = path;
    e.attempt = n;
    e.error = err;
    e.retry_in = delay;
    e.message = absl::StrCat("attempt ", n, " of ", retry.max_attempts, " failed (", err.code,
                             "); retrying in ", absl::FormatDuration(delay));
    Emit(run, std::move(e));
  }
  // Wait on the clock; a cancellation during the wait ends the step.
  auto fired = std::make_shared<std::atomic<bool>>(false);
  absl::Time wait_start = clock_->Now();
  auto resume = [this, sr, n, fired, wait_start](bool cancelled) {
    if (fired->exchange(true)) return;
    sr->waiting_time += clock_->Now() - wait_start;
    if (cancelled) {
      EndStep(sr, StepState::kCancelled, Json(),
              RunError::From(sr->scope->reason(), sr->rec->path));
    } else {
      StartAttempt(sr, n + 1);
    }
  };
  Clock::TimerId timer =
      clock_->RunAfter(delay, [this, resume] { pool_->Post([resume] { resume(false); }); });
  sr->scope->OnCancel([this, timer, resume] {
    clock_->Cancel(timer);
    pool_->Post([resume] { resume(true); });
  });
}

void Engine::EndStep(const std::shared_ptr<StepRun>& sr, StepState state, Json output,
                     std::optional<RunError> error) {
  Run* run = sr->ctx.run.get();
  StepRecord* rec = sr->rec;
  const Step* step = sr->step;
  {
    absl::MutexLock lock(&run->mu);
    absl::Time now = clock_->Now();
    rec->state = state;
    rec->finished_at = now;
    RunEvent e;
    e.step_id = step->id;
    e.step_path = rec->path;
    e.attempt = rec->attempts;
    e.started_at = rec->started_at;
    e.duration = now - rec->started_at;
    if (state == StepState::kSucceeded) {
      bool truncated = false;
      rec->output = CapValue(output, options_.output_cap, &truncated);
      rec->truncated = rec->truncated || truncated;
      rec->error.reset();
      e.type = EventType::kStepFinished;
      e.has_output = true;
      e.output = rec->output;
    } else {
      rec->error = error;
      e.type = EventType::kStepFailed;
      e.error = error;
      e.message = error ? error->message : "";
    }
    sr->ctx.frame->steps[step->id] =
        Json{{"state", StepStateName(state)},
             {"output", state == StepState::kSucceeded ? output : Json(nullptr)}};
    if (step->kind == StepKind::kAction && state != StepState::kCancelled) {
      absl::Duration overhead = (now - sr->began) - sr->action_time - sr->waiting_time;
      run->overheads.push_back(std::max(overhead, absl::ZeroDuration()));
    }
    Emit(run, std::move(e));
  }
  sr->done(Outcome{state, std::move(output), std::move(error)});
}

absl::StatusOr<Json> Engine::Outputs(const LoadedSkill& skill, const Frame& frame) {
  Json out = Json::object();
  EvalScope scope = frame.Scope();
  for (const OutputDef& o : skill.def().outputs) {
    auto v = o.value.Render(scope);
    if (!v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("output ", Quoted(o.name), " of skill ",
                                                     Quoted(skill.def().Key()), ": ",
                                                     v.status().message()));
    }
    if (!v->is_null() && !Conforms(*v, o.type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output ", Quoted(o.name), " of skill ", Quoted(skill.def().Key()), ": expected ",
          TypeName(o.type), ", got ", TypeOf(*v), " ", Describe(*v)));
    }
    out[o.name] = CoerceTo(*v, o.type);
  }
  return out;
}

void Engine::FinishRun(const std::shared_ptr<Run>& run, Outcome top) {
  RunRecord final_rec;
  std::vector<absl::Duration> overheads;
  {
    absl::MutexLock lock(&run->mu);
    if (run->finished) return;
    run->finished = true;
    if (run->timer != 0) clock_->Cancel(run->timer);
    RunRecord& r = run->rec;
    absl::Time now = clock_->Now();
    if (top.state == StepState::kSucceeded) {
      auto out = Outputs(*run->skill, *run->frame);
      if (out.ok()) {
        r.state = RunState::kSucceeded;
        r.outputs = std::move(*out);
      } else {
        r.state = RunState::kFailed;
        r.error = RunError::From(out.status());
      }
    } else if (run->timed_out) {
      r.state = RunState::kFailed;
      r.error = RunError::From(run->scope->reason());
    } else if (top.state == StepState::kCancelled && run->scope->cancelled()) {
      r.state = RunState::kCancelled;
      r.error = RunError::From(run->scope->reason());
    } else {
      r.state = RunState::kFailed;
      r.error = top.error ? top.error : RunError{"UNKNOWN", "the run failed", ""};
    }
    r.finished_at = now;
    MarkNotRun(&r.steps, 0,
               absl::StrCat("not run: the run ", absl::AsciiStrToLower(RunStateName(r.state))));
    RunEvent e;
    e.type = EventType::kRunFinished;
    e.run_state = r.state;
    e.error = r.error;
    e.started_at = r.started_at;
    e.duration = now - r.started_at;
    e.has_output = true;
    bool truncated = false;
    e.output = CapValue(r.outputs, options_.output_cap, &truncated);
    e.message = r.error ? r.error->message : "";
    Emit(run.get(), std::move(e));
    final_rec = r;
    overheads = run->overheads;
  }
  store_->FinishRun(final_rec, {}, std::move(overheads), [this, run, final_rec](absl::Status s) {
    std::vector<Finished> waiters;
    {
      absl::MutexLock lock(&run->mu);
      run->durable = true;
      waiters.swap(run->waiters);
    }
    {
      absl::MutexLock lock(&mu_);
      active_.erase(run->run_id);
      auto it = per_agent_.find(run->agent);
      if (it != per_agent_.end() && --it->second <= 0) per_agent_.erase(it);
      if (!final_rec.idempotency_key.empty()) {
        keys_.erase({final_rec.caller.id, final_rec.idempotency_key});
      }
    }
    // Nothing below may touch the engine: its destructor returns once
    // active_ is empty.
    run->hub->Close();
    for (auto& w : waiters) w(s, final_rec);
  });
}

}  // namespace cnet::skills
