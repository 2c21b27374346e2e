// Path reservations on the board: Reserve, RenewReservation,
// ReleaseReservation, ListReservations, ForceRelease, CheckPaths and
// ReportChangedPaths (tasks.proto). They share the board's mutex, journal
// (so a grant is durable before it is acknowledged, in the same group
// commit as task changes), event log (reservation events on Watch), timers
// and agent feed (a DEAD or deregistered holder loses its reservations).
#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/crypto/crypto.h"
#include "libs/status/macros.h"
#include "services/tasks/board.h"
#include "services/tasks/task_util.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

namespace {

constexpr size_t kMaxLapsed = 10000;

absl::Status CheckWorkspace(const std::string& ws) {
  if (ws.empty()) return InvalidArgument("workspace: required");
  if (ws.size() > 256) {
    return InvalidArgument(absl::StrCat("workspace: longer than 256 bytes (", ws.size(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> TtlOf(const google::protobuf::Duration& d, bool present,
                                     absl::Duration fallback, const BoardOptions& o) {
  if (!present) return fallback;
  absl::Duration ttl = FromProtoDuration(d);
  if (ttl < o.min_reservation_ttl || ttl > o.max_reservation_ttl) {
    return InvalidArgument(absl::StrCat("ttl: ", absl::FormatDuration(ttl), " is outside ",
                                        absl::FormatDuration(o.min_reservation_ttl), "..",
                                        absl::FormatDuration(o.max_reservation_ttl)));
  }
  return ttl;
}

pb::PathResult Result(const std::string& pattern, const std::string& id, pb::PathOutcome outcome) {
  pb::PathResult r;
  r.set_pattern(pattern);
  r.set_reservation_id(id);
  r.set_outcome(outcome);
  return r;
}

pb::ResourceConflict ConflictWith(const pb::Reservation& held, const std::string& requested) {
  pb::ResourceConflict c;
  c.set_resource_type("reservation");
  c.set_resource_id(held.id());
  c.set_requested(requested);
  c.set_held(held.pattern());
  c.set_holder(held.holder());
  *c.mutable_expires_at() = held.expires_at();
  c.set_holder_reason(held.reason().empty() ? held.task_id() : held.reason());
  return c;
}

bool Exclusive(const pb::Reservation& r) { return r.mode() != pb::RESERVATION_MODE_SHARED; }

std::string ModeName(const pb::Reservation& r) { return Exclusive(r) ? "EXCLUSIVE" : "SHARED"; }

// Ordering of ListReservations: workspace, pattern, holder, id.
std::string ListKey(const pb::Reservation& r) {
  return absl::StrCat(r.workspace(), std::string(1, '\0'), r.pattern(), std::string(1, '\0'),
                      r.holder(), std::string(1, '\0'), r.id());
}

}  // namespace

std::string Board::ResolveAgent(const Actor& actor, const std::string& requested) const {
  return requested.empty() ? actor.agent() : requested;
}

int64_t Board::EmitEvent(pb::TaskEvent ev, Fx& fx) {
  int64_t seq = ++last_seq_;
  ev.set_sequence(seq);
  *ev.mutable_time() = ToProto(clock_->Now());
  auto be = std::make_shared<BoardEvent>();
  be->event = std::move(ev);
  EventRow row;
  row.sequence = seq;
  row.time_us = ToMicros(clock_->Now());
  row.task_id = be->event.reservation().task_id();
  row.body = be->event.SerializeAsString();
  pending_.events.push_back(std::move(row));
  pending_events_.push_back(std::move(be));
  fx.wrote = true;
  return seq;
}

std::vector<const Board::ResEntry*> Board::ReservationsIn(const std::string& workspace) const {
  std::vector<const ResEntry*> out;
  auto it = res_by_workspace_.find(workspace);
  if (it == res_by_workspace_.end()) return out;
  for (const std::string& id : it->second) {
    auto r = reservations_.find(id);
    if (r != reservations_.end()) out.push_back(&r->second);
  }
  return out;
}

void Board::PutReservation(ResEntry& e, pb::TaskEventType type, const Actor& actor, Fx& fx) {
  const pb::Reservation& r = e.r;
  res_by_workspace_[r.workspace()].insert(r.id());
  res_by_holder_[r.holder()].insert(r.id());
  pending_.reservations_deleted.erase(r.id());
  pending_.reservations[r.id()] = r.SerializeAsString();
  ArmReservationTimers(e);
  pb::TaskEvent ev;
  ev.set_type(type);
  *ev.mutable_reservation() = r;
  *ev.mutable_actor() = actor.ToProto();
  EmitEvent(std::move(ev), fx);
}

void Board::DropReservation(const std::string& id, pb::TaskEventType type, const Actor& actor,
                            const std::string& reason, Fx& fx) {
  auto it = reservations_.find(id);
  if (it == reservations_.end()) return;
  ResEntry& e = it->second;
  const pb::Reservation r = e.r;
  if (e.expiry_timer != 0) clock_->Cancel(e.expiry_timer);
  if (e.warning_timer != 0) clock_->Cancel(e.warning_timer);
  auto ws = res_by_workspace_.find(r.workspace());
  if (ws != res_by_workspace_.end()) {
    ws->second.erase(id);
    if (ws->second.empty()) res_by_workspace_.erase(ws);
  }
  auto h = res_by_holder_.find(r.holder());
  if (h != res_by_holder_.end()) {
    h->second.erase(id);
    if (h->second.empty()) res_by_holder_.erase(h);
  }
  reservations_.erase(it);
  pending_.reservations.erase(id);
  pending_.reservations_deleted.insert(id);
  if (type == pb::TASK_EVENT_TYPE_RESERVATION_EXPIRED) {
    lapsed_[id] = Lapsed{r.holder(), r.workspace(), r.pattern()};
    lapsed_order_.push_back(id);
    while (lapsed_order_.size() > kMaxLapsed) {
      lapsed_.erase(lapsed_order_.front());
      lapsed_order_.pop_front();
    }
  }
  pb::TaskEvent ev;
  ev.set_type(type);
  *ev.mutable_reservation() = r;
  *ev.mutable_actor() = actor.ToProto();
  (void)reason;
  EmitEvent(std::move(ev), fx);
}

void Board::ArmReservationTimers(ResEntry& e) {
  if (e.expiry_timer != 0) clock_->Cancel(e.expiry_timer);
  if (e.warning_timer != 0) clock_->Cancel(e.warning_timer);
  const std::string id = e.r.id();
  absl::Time expires = FromProto(e.r.expires_at());
  e.expiry_timer = clock_->RunAt(expires, [this, id, life = life_mu_, alive = alive_] {
    absl::ReaderMutexLock l(life.get());
    if (*alive) OnReservationTimer(id, /*warning=*/false);
  });
  e.warning_timer = 0;
  absl::Time warn = expires - options_.reservation_warning;
  if (options_.reservation_warning > absl::ZeroDuration() && warn > clock_->Now()) {
    e.warning_timer = clock_->RunAt(warn, [this, id, life = life_mu_, alive = alive_] {
      absl::ReaderMutexLock l(life.get());
      if (*alive) OnReservationTimer(id, /*warning=*/true);
    });
  }
}

void Board::OnReservationTimer(const std::string& id, bool warning) {
  Fx fx;
  {
    absl::MutexLock lock(&mu_);
    auto it = reservations_.find(id);
    if (it == reservations_.end()) return;
    ResEntry& e = it->second;
    absl::Time expires = FromProto(e.r.expires_at());
    if (warning) {
      e.warning_timer = 0;
      if (clock_->Now() < expires - options_.reservation_warning) return;  // renewed since
      pb::TaskEvent ev;
      ev.set_type(pb::TASK_EVENT_TYPE_RESERVATION_EXPIRING_SOON);
      *ev.mutable_reservation() = e.r;
      *ev.mutable_actor() = Actor::System("reservation-timer").ToProto();
      EmitEvent(std::move(ev), fx);
    } else {
      e.expiry_timer = 0;
      if (clock_->Now() < expires) {
        ArmReservationTimers(e);  // renewed since
        return;
      }
      DropReservation(id, pb::TASK_EVENT_TYPE_RESERVATION_EXPIRED,
                      Actor::System("reservation-timer"), "ttl passed", fx);
    }
    Settle(fx);
  }
  Finish(fx);
}

void Board::DropAgentReservations(const std::string& agent, const std::string& reason, Fx& fx) {
  auto it = res_by_holder_.find(agent);
  if (it != res_by_holder_.end()) {
    std::vector<std::string> ids(it->second.begin(), it->second.end());
    for (const std::string& id : ids) {
      DropReservation(id, pb::TASK_EVENT_TYPE_RESERVATION_EXPIRED, Actor::System("registry"),
                      reason, fx);
    }
  }
  for (auto r = reports_.begin(); r != reports_.end();) {
    if (r->first.second == agent) {
      if (r->second.timer != 0) clock_->Cancel(r->second.timer);
      r = reports_.erase(r);
    } else {
      ++r;
    }
  }
}

absl::StatusOr<pb::ReserveResponse> Board::Reserve(const Actor& actor,
                                                   const pb::ReserveRequest& req) {
  const std::string agent = ResolveAgent(actor, req.agent_id());
  if (agent.empty() || !ValidAgentId(agent)) {
    return InvalidArgument("agent_id: required (the caller is not an agent)");
  }
  if (agent != actor.agent() && !actor.admin()) {
    return Denied("", "NOT_CALLER",
                  absl::StrCat("agent_id \"", agent, "\": the caller is ", actor.principal_id()));
  }
  CNET_RETURN_IF_ERROR(CheckWorkspace(req.workspace()));
  if (req.patterns_size() == 0) return InvalidArgument("patterns: at least one is required");
  if (req.patterns_size() > 100) {
    return InvalidArgument(absl::StrCat("patterns: more than 100 (", req.patterns_size(), ")"));
  }
  if (req.mode() < 0 || req.mode() > pb::RESERVATION_MODE_SHARED) {
    return InvalidArgument(absl::StrCat("mode: ", req.mode(), " is not a mode"));
  }
  if (req.reason().size() > 256) {
    return InvalidArgument(absl::StrCat("reason: longer than 256 bytes (", req.reason().size(), ")"));
  }
  CNET_ASSIGN_OR_RETURN(absl::Duration ttl,
                        TtlOf(req.ttl(), req.has_ttl(), options_.reservation_ttl, options_));
  std::vector<Glob> globs;
  for (int i = 0; i < req.patterns_size(); ++i) {
    CNET_ASSIGN_OR_RETURN(Glob g, Glob::Parse(req.patterns(i), absl::StrCat("patterns[", i, "]")));
    for (int j = 0; j < i; ++j) {
      if (globs[j].Overlaps(g)) {
        return InvalidArgument(absl::StrCat("patterns[", i, "] \"", req.patterns(i),
                                            "\" overlaps patterns[", j, "] \"", req.patterns(j),
                                            "\"; reserve each path once"));
      }
    }
    globs.push_back(std::move(g));
  }
  if (!req.task_id().empty() && !ValidTaskId(req.task_id())) {
    return InvalidArgument(absl::StrCat("task_id \"", req.task_id(), "\": not a task id"));
  }
  const pb::ReservationMode mode =
      req.mode() == pb::RESERVATION_MODE_SHARED ? pb::RESERVATION_MODE_SHARED
                                                : pb::RESERVATION_MODE_EXCLUSIVE;
  const bool want_exclusive = mode == pb::RESERVATION_MODE_EXCLUSIVE;
  absl::Time now = clock_->Now();

  Fx fx;
  pb::ReserveResponse resp;
  {
    absl::MutexLock lock(&mu_);
    if (!req.task_id().empty() && Find(req.task_id()) == nullptr) {
      return NotFound(req.task_id(), absl::StrCat("task_id: ", TaskRef(req.task_id()),
                                                  ": no such task"));
    }
    std::vector<const ResEntry*> here = ReservationsIn(req.workspace());
    struct Plan {
      std::string own_id;  // renewal of the caller's identical pattern
      std::vector<pb::ResourceConflict> conflicts;
    };
    std::vector<Plan> plans(req.patterns_size());
    int new_ones = 0;
    bool any_conflict = false;
    for (int i = 0; i < req.patterns_size(); ++i) {
      for (const ResEntry* e : here) {
        if (e->r.holder() == agent) {
          if (e->r.pattern() == req.patterns(i)) plans[i].own_id = e->r.id();
          continue;
        }
        if (!(want_exclusive || Exclusive(e->r))) continue;
        if (!e->glob.Overlaps(globs[i])) continue;
        plans[i].conflicts.push_back(ConflictWith(e->r, req.patterns(i)));
      }
      if (!plans[i].conflicts.empty()) any_conflict = true;
      if (plans[i].own_id.empty() && plans[i].conflicts.empty()) ++new_ones;
    }
    if (any_conflict && !req.allow_partial()) {
      pb::ErrorDetail detail;
      detail.set_reason("RESERVATION_CONFLICT");
      detail.set_resource_type("reservation");
      std::vector<std::string> lines;
      for (int i = 0; i < req.patterns_size(); ++i) {
        for (const pb::ResourceConflict& c : plans[i].conflicts) {
          *detail.add_conflicts() = c;
          lines.push_back(absl::StrCat("patterns[", i, "] \"", req.patterns(i), "\" conflicts with \"",
                                       c.held(), "\" held by ", c.holder(), " until ",
                                       absl::FormatTime(FromProto(c.expires_at()))));
        }
      }
      absl::Status st = absl::FailedPreconditionError(
          absl::StrCat("workspace \"", req.workspace(), "\": ", absl::StrJoin(lines, "; ")));
      st.SetPayload(kErrorDetailUrl, absl::Cord(detail.SerializeAsString()));
      return st;
    }
    auto held = res_by_holder_.find(agent);
    int holding = held == res_by_holder_.end() ? 0 : static_cast<int>(held->second.size());
    if (holding + new_ones > options_.max_reservations_per_agent) {
      return TaskError(absl::StatusCode::kResourceExhausted, "RESERVATION_CAP", "",
                       absl::StrCat("agent ", agent, " holds ", holding, " reservations; ",
                                    new_ones, " more would exceed the cap of ",
                                    options_.max_reservations_per_agent));
    }
    for (int i = 0; i < req.patterns_size(); ++i) {
      const std::string& pattern = req.patterns(i);
      if (!plans[i].conflicts.empty()) {
        pb::PathResult r = Result(pattern, "", pb::PATH_OUTCOME_CONFLICT);
        for (const auto& c : plans[i].conflicts) *r.add_conflicts() = c;
        *resp.add_results() = std::move(r);
        continue;
      }
      ResEntry* e = nullptr;
      pb::TaskEventType type = pb::TASK_EVENT_TYPE_RESERVATION_GRANTED;
      if (!plans[i].own_id.empty()) {
        e = &reservations_.at(plans[i].own_id);
        type = pb::TASK_EVENT_TYPE_RESERVATION_RENEWED;
      } else {
        std::string id = absl::AsciiStrToLower(ids_.Next("res-"));
        e = &reservations_[id];
        e->r.set_id(id);
        e->r.set_workspace(req.workspace());
        e->r.set_pattern(pattern);
        e->r.set_holder(agent);
        *e->r.mutable_acquired_at() = ToProto(now);
        e->glob = globs[i];
      }
      e->r.set_mode(mode);
      if (!req.task_id().empty()) e->r.set_task_id(req.task_id());
      if (!req.reason().empty()) e->r.set_reason(req.reason());
      *e->r.mutable_renewed_at() = ToProto(now);
      *e->r.mutable_expires_at() = ToProto(now + ttl);
      *e->r.mutable_ttl() = ToProtoDuration(ttl);
      PutReservation(*e, type, actor, fx);
      pb::PathResult r = Result(pattern, e->r.id(), pb::PATH_OUTCOME_OK);
      *r.mutable_expires_at() = e->r.expires_at();
      *resp.add_results() = std::move(r);
      *resp.add_reservations() = e->r;
    }
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::RenewReservationResponse> Board::RenewReservation(
    const Actor& actor, const pb::RenewReservationRequest& req) {
  const std::string agent = ResolveAgent(actor, req.agent_id());
  if (agent.empty()) return InvalidArgument("agent_id: required (the caller is not an agent)");
  if (agent != actor.agent() && !actor.admin()) {
    return Denied("", "NOT_CALLER",
                  absl::StrCat("agent_id \"", agent, "\": the caller is ", actor.principal_id()));
  }
  const int items = req.patterns_size() + req.reservation_ids_size();
  if (items == 0) return InvalidArgument("patterns, reservation_ids: name at least one");
  if (items > 100) return InvalidArgument(absl::StrCat("more than 100 items (", items, ")"));
  if (req.patterns_size() > 0) CNET_RETURN_IF_ERROR(CheckWorkspace(req.workspace()));
  std::optional<absl::Duration> ttl;
  if (req.has_ttl()) {
    CNET_ASSIGN_OR_RETURN(absl::Duration t, TtlOf(req.ttl(), true, absl::ZeroDuration(), options_));
    ttl = t;
  }
  absl::Time now = clock_->Now();
  Fx fx;
  pb::RenewReservationResponse resp;
  {
    absl::MutexLock lock(&mu_);
    auto renew = [&](ResEntry& e) {
      absl::Duration d = ttl.has_value() ? *ttl : FromProtoDuration(e.r.ttl());
      *e.r.mutable_renewed_at() = ToProto(now);
      *e.r.mutable_expires_at() = ToProto(now + d);
      *e.r.mutable_ttl() = ToProtoDuration(d);
      PutReservation(e, pb::TASK_EVENT_TYPE_RESERVATION_RENEWED, actor, fx);
      pb::PathResult r = Result(e.r.pattern(), e.r.id(), pb::PATH_OUTCOME_OK);
      *r.mutable_expires_at() = e.r.expires_at();
      return r;
    };
    std::vector<const ResEntry*> here =
        req.patterns_size() > 0 ? ReservationsIn(req.workspace()) : std::vector<const ResEntry*>{};
    for (const std::string& pattern : req.patterns()) {
      const ResEntry* mine = nullptr;
      const ResEntry* theirs = nullptr;
      for (const ResEntry* e : here) {
        if (e->r.pattern() != pattern) continue;
        (e->r.holder() == agent ? mine : theirs) = e;
      }
      if (mine != nullptr) {
        *resp.add_results() = renew(reservations_.at(mine->r.id()));
      } else if (theirs != nullptr) {
        *resp.add_results() = Result(pattern, theirs->r.id(), pb::PATH_OUTCOME_NOT_OWNER);
      } else {
        bool lapsed = std::any_of(lapsed_.begin(), lapsed_.end(), [&](const auto& kv) {
          return kv.second.holder == agent && kv.second.workspace == req.workspace() &&
                 kv.second.pattern == pattern;
        });
        *resp.add_results() = Result(
            pattern, "", lapsed ? pb::PATH_OUTCOME_EXPIRED : pb::PATH_OUTCOME_NOT_FOUND);
      }
    }
    for (const std::string& id : req.reservation_ids()) {
      auto it = reservations_.find(id);
      if (it != reservations_.end()) {
        *resp.add_results() = it->second.r.holder() == agent
                                  ? renew(it->second)
                                  : Result(it->second.r.pattern(), id, pb::PATH_OUTCOME_NOT_OWNER);
        continue;
      }
      auto l = lapsed_.find(id);
      if (l != lapsed_.end()) {
        *resp.add_results() =
            Result(l->second.pattern, id,
                   l->second.holder == agent ? pb::PATH_OUTCOME_EXPIRED : pb::PATH_OUTCOME_NOT_OWNER);
      } else {
        *resp.add_results() = Result("", id, pb::PATH_OUTCOME_NOT_FOUND);
      }
    }
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::ReleaseReservationResponse> Board::ReleaseReservation(
    const Actor& actor, const pb::ReleaseReservationRequest& req) {
  const std::string agent = ResolveAgent(actor, req.agent_id());
  if (agent.empty()) return InvalidArgument("agent_id: required (the caller is not an agent)");
  if (agent != actor.agent() && !actor.admin()) {
    return Denied("", "NOT_CALLER",
                  absl::StrCat("agent_id \"", agent, "\": the caller is ", actor.principal_id()));
  }
  const int items = req.patterns_size() + req.reservation_ids_size();
  if (items == 0 && !req.all() && req.task_id().empty()) {
    return InvalidArgument("patterns, reservation_ids, all, task_id: name what to release");
  }
  if (items > 1000) return InvalidArgument(absl::StrCat("more than 1000 items (", items, ")"));
  if (req.patterns_size() > 0) CNET_RETURN_IF_ERROR(CheckWorkspace(req.workspace()));
  if (!req.workspace().empty()) CNET_RETURN_IF_ERROR(CheckWorkspace(req.workspace()));
  Fx fx;
  pb::ReleaseReservationResponse resp;
  {
    absl::MutexLock lock(&mu_);
    int64_t released = 0;
    auto release = [&](const std::string& id) {
      pb::PathResult r = Result(reservations_.at(id).r.pattern(), id, pb::PATH_OUTCOME_OK);
      DropReservation(id, pb::TASK_EVENT_TYPE_RESERVATION_RELEASED, actor, "released", fx);
      ++released;
      return r;
    };
    for (const std::string& pattern : req.patterns()) {
      std::string mine, theirs;
      for (const ResEntry* e : ReservationsIn(req.workspace())) {
        if (e->r.pattern() != pattern) continue;
        (e->r.holder() == agent ? mine : theirs) = e->r.id();
      }
      if (!mine.empty()) {
        *resp.add_results() = release(mine);
      } else {
        *resp.add_results() = Result(pattern, theirs, theirs.empty() ? pb::PATH_OUTCOME_NOT_FOUND
                                                                      : pb::PATH_OUTCOME_NOT_OWNER);
      }
    }
    for (const std::string& id : req.reservation_ids()) {
      auto it = reservations_.find(id);
      if (it == reservations_.end()) {
        *resp.add_results() = Result("", id, pb::PATH_OUTCOME_NOT_FOUND);
      } else if (it->second.r.holder() != agent) {
        *resp.add_results() = Result(it->second.r.pattern(), id, pb::PATH_OUTCOME_NOT_OWNER);
      } else {
        *resp.add_results() = release(id);
      }
    }
    if (req.all() || !req.task_id().empty()) {
      auto held = res_by_holder_.find(agent);
      std::vector<std::string> ids;
      if (held != res_by_holder_.end()) ids.assign(held->second.begin(), held->second.end());
      for (const std::string& id : ids) {
        const pb::Reservation& r = reservations_.at(id).r;
        if (!req.workspace().empty() && r.workspace() != req.workspace()) continue;
        if (!req.task_id().empty() && r.task_id() != req.task_id()) continue;
        *resp.add_results() = release(id);
      }
    }
    resp.set_released_count(released);
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

absl::StatusOr<pb::ListReservationsResponse> Board::ListReservations(
    const pb::ListReservationsRequest& req) {
  if (req.page_size() < 0 || req.page_size() > 1000) {
    return InvalidArgument(absl::StrCat("page_size: ", req.page_size(), " is outside 0..1000"));
  }
  std::optional<Glob> path;
  if (!req.path().empty()) {
    CNET_ASSIGN_OR_RETURN(Glob g, Glob::Literal(req.path(), "path"));
    path = std::move(g);
  }
  if (req.workspace().size() > 256) return InvalidArgument("workspace: longer than 256 bytes");
  pb::ListReservationsRequest filters = req;
  filters.clear_page_size();
  filters.clear_page_token();
  const std::string hash = crypto::Sha256Hex(filters.SerializeAsString()).substr(0, 16);
  std::string cursor;
  if (!req.page_token().empty()) {
    std::string raw;
    if (!absl::WebSafeBase64Unescape(req.page_token(), &raw)) {
      return InvalidArgument("page_token: cannot be decoded");
    }
    std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits(':', 2));
    if (parts.size() != 3 || parts[0] != "res") {
      return InvalidArgument("page_token: not a token of this rpc");
    }
    if (parts[1] != hash) {
      return InvalidArgument("page_token: was issued for different filters");
    }
    cursor = parts[2];
  }
  const int page = req.page_size() == 0 ? 100 : req.page_size();
  std::vector<std::pair<std::string, const pb::Reservation*>> rows;
  pb::ListReservationsResponse resp;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, e] : reservations_) {
    const pb::Reservation& r = e.r;
    if (!req.workspace().empty() && r.workspace() != req.workspace()) continue;
    if (!req.holder().empty() && r.holder() != req.holder()) continue;
    if (!req.task_id().empty() && r.task_id() != req.task_id()) continue;
    if (path.has_value() && !e.glob.Matches(*path)) continue;
    std::string key = ListKey(r);
    if (!cursor.empty() && !(cursor < key)) continue;
    rows.emplace_back(std::move(key), &r);
  }
  std::sort(rows.begin(), rows.end());
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < page; ++i) {
    *resp.add_reservations() = *rows[i].second;
  }
  if (static_cast<int>(rows.size()) > page) {
    resp.set_next_page_token(
        absl::WebSafeBase64Escape(absl::StrCat("res:", hash, ":", rows[page - 1].first)));
  }
  return resp;
}

absl::StatusOr<pb::ForceReleaseResponse> Board::ForceRelease(const Actor& actor,
                                                             const pb::ForceReleaseRequest& req) {
  if (!actor.admin()) return Denied("", "NOT_ADMIN", "ForceRelease needs the admin credential");
  if (req.reservation_ids_size() == 0 && req.holder().empty()) {
    return InvalidArgument("reservation_ids, holder: name what to release");
  }
  if (req.reason().empty()) return InvalidArgument("reason: required");
  if (req.reason().size() > 1024) return InvalidArgument("reason: longer than 1024 bytes");
  if (req.reservation_ids_size() > 1000) return InvalidArgument("reservation_ids: more than 1000");
  Fx fx;
  pb::ForceReleaseResponse resp;
  {
    absl::MutexLock lock(&mu_);
    int64_t released = 0;
    std::vector<std::string> ids(req.reservation_ids().begin(), req.reservation_ids().end());
    if (!req.holder().empty()) {
      auto held = res_by_holder_.find(req.holder());
      if (held != res_by_holder_.end()) {
        for (const std::string& id : held->second) {
          if (req.workspace().empty() || reservations_.at(id).r.workspace() == req.workspace()) {
            ids.push_back(id);
          }
        }
      }
    }
    std::set<std::string> done;
    for (const std::string& id : ids) {
      if (!done.insert(id).second) continue;
      auto it = reservations_.find(id);
      if (it == reservations_.end()) {
        *resp.add_results() = Result("", id, pb::PATH_OUTCOME_NOT_FOUND);
        continue;
      }
      const pb::Reservation r = it->second.r;
      *resp.add_results() = Result(r.pattern(), id, pb::PATH_OUTCOME_OK);
      DropReservation(id, pb::TASK_EVENT_TYPE_RESERVATION_RELEASED, actor, req.reason(), fx);
      AddNotice(r.holder(), r.task_id(), "reservation_released",
                absl::StrCat("reservation of ", r.pattern(), " was released"),
                absl::StrCat("An admin released your reservation of \"", r.pattern(),
                             "\" in ", r.workspace(), ": ", req.reason()),
                true, fx);
      ++released;
    }
    resp.set_released_count(released);
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

pb::PathCheck Board::CheckOnePath(const std::string& workspace, const std::string& agent,
                                  const std::string& path, const Glob& glob) const {
  pb::PathCheck check;
  check.set_path(path);
  std::vector<const pb::Reservation*> blocking, shared;
  bool own = false;
  for (const ResEntry* e : ReservationsIn(workspace)) {
    if (!e->glob.Matches(glob)) continue;
    if (!agent.empty() && e->r.holder() == agent) {
      own = true;
    } else if (Exclusive(e->r)) {
      blocking.push_back(&e->r);
    } else {
      shared.push_back(&e->r);
    }
  }
  for (const pb::Reservation* r : blocking) *check.add_reservations() = *r;
  for (const pb::Reservation* r : shared) *check.add_reservations() = *r;
  if (!blocking.empty()) {
    check.set_verdict(pb::PATH_VERDICT_RESERVED_BY_OTHER);
    check.set_allowed(false);
  } else if (own) {
    check.set_verdict(pb::PATH_VERDICT_HELD_BY_AGENT);  // others' shared ones still listed
    check.set_allowed(true);
  } else {
    check.set_verdict(shared.empty() ? pb::PATH_VERDICT_FREE
                                     : pb::PATH_VERDICT_SHARED_WITH_OTHERS);
    check.set_allowed(true);
  }
  return check;
}

absl::StatusOr<pb::CheckPathsResponse> Board::CheckPaths(const Actor& actor,
                                                         const pb::CheckPathsRequest& req) {
  CNET_RETURN_IF_ERROR(CheckWorkspace(req.workspace()));
  if (req.paths_size() == 0) return InvalidArgument("paths: at least one is required");
  if (req.paths_size() > 1000) {
    return InvalidArgument(absl::StrCat("paths: more than 1000 (", req.paths_size(), ")"));
  }
  std::vector<Glob> paths;
  for (int i = 0; i < req.paths_size(); ++i) {
    CNET_ASSIGN_OR_RETURN(Glob g, Glob::Literal(req.paths(i), absl::StrCat("paths[", i, "]")));
    paths.push_back(std::move(g));
  }
  const std::string agent = ResolveAgent(actor, req.agent_id());
  pb::CheckPathsResponse resp;
  resp.set_allowed(true);
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < req.paths_size(); ++i) {
    pb::PathCheck c = CheckOnePath(req.workspace(), agent, req.paths(i), paths[i]);
    if (!c.allowed()) resp.set_allowed(false);
    *resp.add_results() = std::move(c);
  }
  return resp;
}

absl::StatusOr<pb::ReportChangedPathsResponse> Board::ReportChangedPaths(
    const Actor& actor, const pb::ReportChangedPathsRequest& req) {
  const std::string agent = ResolveAgent(actor, req.agent_id());
  if (agent.empty()) return InvalidArgument("agent_id: required (the caller is not an agent)");
  if (agent != actor.agent() && !actor.admin()) {
    return Denied("", "NOT_CALLER",
                  absl::StrCat("agent_id \"", agent, "\": the caller is ", actor.principal_id()));
  }
  CNET_RETURN_IF_ERROR(CheckWorkspace(req.workspace()));
  if (req.base_ref().size() > 256) return InvalidArgument("base_ref: longer than 256 bytes");
  if (req.paths_size() > 10000) {
    return InvalidArgument(absl::StrCat("paths: more than 10000 (", req.paths_size(), ")"));
  }
  std::vector<Glob> globs;
  for (int i = 0; i < req.paths_size(); ++i) {
    CNET_ASSIGN_OR_RETURN(Glob g, Glob::Literal(req.paths(i), absl::StrCat("paths[", i, "]")));
    globs.push_back(std::move(g));
  }
  absl::Time now = clock_->Now();
  Fx fx;
  pb::ReportChangedPathsResponse resp;
  {
    absl::MutexLock lock(&mu_);
    const auto key = std::make_pair(req.workspace(), agent);
    auto old = reports_.find(key);
    if (old != reports_.end()) {
      if (old->second.timer != 0) clock_->Cancel(old->second.timer);
      reports_.erase(old);
    }
    if (req.paths_size() > 0) {
      ChangedReport& report = reports_[key];
      report.base_ref = req.base_ref();
      report.task_id = req.task_id();
      report.paths.insert(req.paths().begin(), req.paths().end());
      report.reported_at = now;
      int64_t at_us = ToMicros(now);
      report.timer = clock_->RunAfter(
          options_.changed_paths_ttl,
          [this, ws = req.workspace(), agent, at_us, life = life_mu_, alive = alive_] {
            absl::ReaderMutexLock l(life.get());
            if (*alive) OnReportLapse(ws, agent, at_us);
          });
      // Overlaps with the other agents' current reports in this workspace.
      for (const auto& [other_key, other] : reports_) {
        if (other_key.first != req.workspace() || other_key.second == agent) continue;
        std::vector<std::string> both;
        std::set_intersection(report.paths.begin(), report.paths.end(), other.paths.begin(),
                              other.paths.end(), std::back_inserter(both));
        if (both.empty()) continue;
        pb::ChangedPathsOverlap* o = resp.add_overlaps();
        o->set_other_agent_id(other_key.second);
        o->set_path_count(static_cast<int64_t>(both.size()));
        for (size_t i = 0; i < both.size() && i < 1000; ++i) o->add_paths(both[i]);
        o->set_other_base_ref(other.base_ref);
        *o->mutable_other_reported_at() = ToProto(other.reported_at);
        o->set_other_task_id(other.task_id);
        pb::TaskEvent ev;
        ev.set_type(pb::TASK_EVENT_TYPE_CHANGED_PATHS_CONFLICT);
        pb::ChangedPathsConflict* c = ev.mutable_changed_paths_conflict();
        c->set_workspace(req.workspace());
        c->set_agent_id(agent);
        c->set_other_agent_id(other_key.second);
        *c->mutable_paths() = o->paths();
        c->set_path_count(o->path_count());
        *ev.mutable_actor() = actor.ToProto();
        EmitEvent(std::move(ev), fx);
        AddNotice(other_key.second, other.task_id, "changed_paths_conflict",
                  absl::StrCat("overlapping changes with ", agent),
                  absl::StrCat(agent, " changed ", both.size(), " of the paths you changed in ",
                               req.workspace(), ", e.g. ", both.front(),
                               ". Coordinate before merging."),
                  true, fx);
      }
    }
    for (int i = 0; i < req.paths_size(); ++i) {
      pb::PathCheck c = CheckOnePath(req.workspace(), agent, req.paths(i), globs[i]);
      if (c.verdict() == pb::PATH_VERDICT_RESERVED_BY_OTHER) {
        *resp.add_reserved_by_others() = std::move(c);
      }
    }
    Settle(fx);
  }
  Finish(fx);
  return resp;
}

void Board::OnReportLapse(const std::string& workspace, const std::string& agent, int64_t at_us) {
  absl::MutexLock lock(&mu_);
  auto it = reports_.find({workspace, agent});
  if (it == reports_.end() || ToMicros(it->second.reported_at) != at_us) return;
  reports_.erase(it);
}

}  // namespace cnet::tasks
