#include "services/skills/testing/fake_network.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/skills/json_proto.h"

namespace cnet::skills::testing {

google::protobuf::Timestamp FakeNetwork::Now() const {
  absl::Time t = clock_->Now();
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  return ts;
}

void FakeNetwork::AddAgent(const std::string& id, std::vector<std::string> capabilities,
                           pb::Health health) {
  absl::MutexLock lock(&mu_);
  pb::Agent a;
  a.set_id(id);
  a.set_name(id);
  a.set_kind(pb::AGENT_KIND_AI);
  std::sort(capabilities.begin(), capabilities.end());
  for (const std::string& c : capabilities) a.add_capabilities(c);
  a.set_node("node-1");
  a.set_status(pb::AGENT_STATUS_ONLINE);
  a.set_health(health);
  a.mutable_heartbeat_interval()->set_seconds(15);
  *a.mutable_last_heartbeat() = Now();
  *a.mutable_registered_at() = Now();
  agents_[id] = a;
}

std::vector<std::string> FakeNetwork::Capabilities(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(id);
  if (it == agents_.end()) return {};
  return {it->second.capabilities().begin(), it->second.capabilities().end()};
}

std::vector<pb::InboxEntry> FakeNetwork::Inbox(const std::string& agent) {
  absl::MutexLock lock(&mu_);
  return inboxes_[agent];
}

void FakeNetwork::CompleteTask(const std::string& task_id, const std::string& summary,
                               const Json& payload) {
  absl::MutexLock lock(&mu_);
  pb::Task& t = tasks_[task_id];
  t.set_state(pb::TASK_STATE_COMPLETED);
  t.mutable_result()->set_summary(summary);
  ToProtoStruct(payload, t.mutable_result()->mutable_payload());
  *t.mutable_finished_at() = Now();
}

pb::Task FakeNetwork::Task(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  return tasks_[task_id];
}

std::vector<std::string> FakeNetwork::Calls() {
  absl::MutexLock lock(&mu_);
  return calls_;
}

void FakeNetwork::FailNext(const std::string& method, int times, absl::Status status) {
  absl::MutexLock lock(&mu_);
  failures_[method] = {times, std::move(status)};
}

absl::Status FakeNetwork::Enter(const std::string& method, const CallContext& ctx) {
  calls_.push_back(absl::StrCat(method, " ", ctx.agent_id));
  auto it = failures_.find(method);
  if (it != failures_.end() && it->second.first > 0) {
    --it->second.first;
    return it->second.second;
  }
  if (ctx.agent_id.empty()) {
    return absl::PermissionDeniedError("a service call must name the agent (on-behalf-of)");
  }
  return absl::OkStatus();
}

void FakeNetwork::Deliver(const std::string& to, const pb::Message& m) {
  auto& inbox = inboxes_[to];
  pb::InboxEntry e;
  *e.mutable_message() = m;
  e.set_inbox_sequence(static_cast<int64_t>(inbox.size()) + 1);
  e.set_state(pb::DELIVERY_STATE_QUEUED);
  *e.mutable_received_at() = Now();
  inbox.push_back(e);
}

absl::Status FakeNetwork::Send(const CallContext& ctx, const pb::SendRequest& req,
                               pb::SendResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("Send", ctx); !s.ok()) return s;
  pb::Message m = req.message();
  if (m.recipient().empty()) return absl::InvalidArgumentError("message.recipient: required");
  if (!m.sender().empty() && m.sender() != ctx.agent_id) {
    return absl::PermissionDeniedError("message.sender: not the authenticated agent");
  }
  m.set_sender(ctx.agent_id);
  if (m.id().empty()) m.set_id(absl::StrCat("msg-", ++next_id_));
  *m.mutable_created_at() = Now();
  std::vector<std::string> to;
  if (m.recipient() == "broadcast") {
    for (const auto& [id, a] : agents_) {
      if (id != ctx.agent_id) to.push_back(id);
    }
  } else if (m.recipient().rfind("cap:", 0) == 0) {
    std::string cap = m.recipient().substr(4);
    for (const auto& [id, a] : agents_) {
      if (id != ctx.agent_id &&
          std::find(a.capabilities().begin(), a.capabilities().end(), cap) !=
              a.capabilities().end()) {
        to.push_back(id);
      }
    }
    if (to.empty()) return absl::NotFoundError(absl::StrCat("no agent has capability ", cap));
  } else {
    if (agents_.count(m.recipient()) == 0) {
      return absl::NotFoundError(absl::StrCat("unknown recipient \"", m.recipient(), "\""));
    }
    to.push_back(m.recipient());
  }
  for (const std::string& id : to) Deliver(id, m);
  resp->set_message_id(m.id());
  resp->set_sender(m.sender());
  resp->set_recipient_count(static_cast<int64_t>(to.size()));
  return absl::OkStatus();
}

absl::Status FakeNetwork::FetchInbox(const CallContext& ctx, const pb::FetchInboxRequest& req,
                                     pb::FetchInboxResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("FetchInbox", ctx); !s.ok()) return s;
  std::string owner = req.agent_id().empty() ? ctx.agent_id : req.agent_id();
  if (owner != ctx.agent_id) return absl::PermissionDeniedError("another agent's inbox");
  if (agents_.count(owner) == 0) return absl::NotFoundError("unknown agent");
  int page = req.page_size() == 0 ? 100 : req.page_size();
  int64_t unread = 0, pending = 0, latest = 0;
  for (const pb::InboxEntry& e : inboxes_[owner]) {
    bool acked = e.state() == pb::DELIVERY_STATE_ACKED;
    bool read = e.has_read_at();
    latest = std::max(latest, e.inbox_sequence());
    if (!acked) ++pending;
    if (!acked && !read) ++unread;
    if (e.inbox_sequence() <= req.since_sequence()) continue;
    bool match = req.filter() == pb::INBOX_FILTER_ALL ||
                 (req.filter() == pb::INBOX_FILTER_UNACKED && !acked) ||
                 ((req.filter() == pb::INBOX_FILTER_UNREAD ||
                   req.filter() == pb::INBOX_FILTER_UNSPECIFIED) &&
                  !acked && !read);
    if (match && resp->entries_size() < page) *resp->add_entries() = e;
  }
  resp->set_unread_count(unread);
  resp->set_pending_count(pending);
  resp->set_latest_sequence(latest);
  return absl::OkStatus();
}

absl::Status FakeNetwork::Ack(const CallContext& ctx, const pb::AckRequest& req,
                              pb::AckResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("Ack", ctx); !s.ok()) return s;
  auto& inbox = inboxes_[ctx.agent_id];
  for (int64_t seq : req.inbox_sequences()) {
    pb::ItemResult* r = resp->add_results();
    r->set_inbox_sequence(seq);
    r->set_outcome(pb::ITEM_OUTCOME_NOT_FOUND);
    for (pb::InboxEntry& e : inbox) {
      if (e.inbox_sequence() != seq) continue;
      r->set_message_id(e.message().id());
      r->set_outcome(e.state() == pb::DELIVERY_STATE_ACKED ? pb::ITEM_OUTCOME_ALREADY_DONE
                                                            : pb::ITEM_OUTCOME_OK);
      e.set_state(pb::DELIVERY_STATE_ACKED);
    }
  }
  for (const std::string& id : req.message_ids()) {
    pb::ItemResult* r = resp->add_results();
    r->set_message_id(id);
    r->set_outcome(pb::ITEM_OUTCOME_NOT_FOUND);
    for (pb::InboxEntry& e : inbox) {
      if (e.message().id() != id) continue;
      r->set_inbox_sequence(e.inbox_sequence());
      r->set_outcome(e.state() == pb::DELIVERY_STATE_ACKED ? pb::ITEM_OUTCOME_ALREADY_DONE
                                                            : pb::ITEM_OUTCOME_OK);
      e.set_state(pb::DELIVERY_STATE_ACKED);
    }
  }
  return absl::OkStatus();
}

absl::Status FakeNetwork::Register(const CallContext& ctx, const pb::RegisterRequest& req,
                                   pb::RegisterResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("Register", ctx); !s.ok()) return s;
  if (req.agent_id() != ctx.agent_id) {
    return absl::PermissionDeniedError("may only re-register the acting agent");
  }
  bool created = agents_.count(req.agent_id()) == 0;
  pb::Agent& a = agents_[req.agent_id()];
  a.set_id(req.agent_id());
  a.set_name(req.name());
  a.clear_capabilities();
  std::vector<std::string> caps(req.capabilities().begin(), req.capabilities().end());
  std::sort(caps.begin(), caps.end());
  caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
  for (const std::string& c : caps) a.add_capabilities(c);
  a.set_status_message(req.status_message());
  if (req.status() != pb::AGENT_STATUS_UNSPECIFIED) a.set_status(req.status());
  a.mutable_heartbeat_interval()->set_seconds(15);
  a.set_node("node-1");
  if (created) {
    a.set_status(pb::AGENT_STATUS_ONLINE);
    a.set_health(pb::HEALTH_HEALTHY);
  }
  *resp->mutable_agent() = a;
  resp->set_created(created);
  return absl::OkStatus();
}

absl::Status FakeNetwork::GetAgent(const CallContext& ctx, const pb::GetAgentRequest& req,
                                   pb::GetAgentResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("GetAgent", ctx); !s.ok()) return s;
  auto it = agents_.find(req.agent_id());
  if (it == agents_.end()) {
    return absl::NotFoundError(absl::StrCat("agent \"", req.agent_id(), "\" not found"));
  }
  *resp->mutable_agent() = it->second;
  return absl::OkStatus();
}

absl::Status FakeNetwork::ListAgents(const CallContext& ctx, const pb::ListAgentsRequest& req,
                                     pb::ListAgentsResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("ListAgents", ctx); !s.ok()) return s;
  int page = req.page_size() == 0 ? 100 : req.page_size();
  for (const auto& [id, a] : agents_) {
    bool ok = true;
    for (const std::string& c : req.capabilities_all()) {
      ok = ok && std::find(a.capabilities().begin(), a.capabilities().end(), c) !=
                     a.capabilities().end();
    }
    if (req.statuses_size() > 0) {
      ok = ok && std::find(req.statuses().begin(), req.statuses().end(), a.status()) !=
                     req.statuses().end();
    }
    if (req.healths_size() > 0) {
      ok = ok && std::find(req.healths().begin(), req.healths().end(), a.health()) !=
                     req.healths().end();
    }
    if (!ok) continue;
    resp->set_total_size(resp->total_size() + 1);
    if (resp->agents_size() < page) *resp->add_agents() = a;
  }
  return absl::OkStatus();
}

absl::Status FakeNetwork::GetNetworkStatus(const CallContext& ctx,
                                           const pb::GetNetworkStatusRequest&,
                                           pb::GetNetworkStatusResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("GetNetworkStatus", ctx); !s.ok()) return s;
  std::map<int, int64_t> health, status;
  for (const auto& [id, a] : agents_) {
    ++health[a.health()];
    ++status[a.status()];
  }
  resp->set_total_agents(static_cast<int64_t>(agents_.size()));
  resp->set_local_agents(static_cast<int64_t>(agents_.size()));
  for (const auto& [h, n] : health) {
    auto* c = resp->add_by_health();
    c->set_health(static_cast<pb::Health>(h));
    c->set_count(n);
  }
  for (const auto& [st, n] : status) {
    auto* c = resp->add_by_status();
    c->set_status(static_cast<pb::AgentStatus>(st));
    c->set_count(n);
  }
  auto* node = resp->add_by_node();
  node->set_node("node-1");
  node->set_local(true);
  node->set_total(static_cast<int64_t>(agents_.size()));
  resp->set_local_node("node-1");
  return absl::OkStatus();
}

absl::Status FakeNetwork::CreateTask(const CallContext& ctx, const pb::CreateTaskRequest& req,
                                     pb::CreateTaskResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("CreateTask", ctx); !s.ok()) return s;
  if (req.title().empty() || req.title().size() > 256) {
    return absl::InvalidArgumentError("title: must be 1..256 bytes");
  }
  pb::Task t;
  t.set_id(absl::StrCat("task-", ++next_id_));
  t.set_title(req.title());
  t.set_description(req.description());
  t.set_priority(req.priority());
  *t.mutable_required_capabilities() = req.required_capabilities();
  *t.mutable_payload() = req.payload();
  *t.mutable_tags() = req.tags();
  t.set_state(pb::TASK_STATE_QUEUED);
  t.mutable_creator()->set_kind(pb::PRINCIPAL_KIND_AGENT);
  t.mutable_creator()->set_id(ctx.agent_id);
  *t.mutable_created_at() = Now();
  tasks_[t.id()] = t;
  *resp->mutable_task() = t;
  resp->set_created(true);
  return absl::OkStatus();
}

absl::Status FakeNetwork::GetTask(const CallContext& ctx, const pb::GetTaskRequest& req,
                                  pb::GetTaskResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("GetTask", ctx); !s.ok()) return s;
  auto it = tasks_.find(req.task_id());
  if (it == tasks_.end()) {
    return absl::NotFoundError(absl::StrCat("task \"", req.task_id(), "\" not found"));
  }
  *resp->mutable_task() = it->second;
  return absl::OkStatus();
}

absl::Status FakeNetwork::ListTasks(const CallContext& ctx, const pb::ListTasksRequest& req,
                                    pb::ListTasksResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("ListTasks", ctx); !s.ok()) return s;
  int page = req.page_size() == 0 ? 100 : req.page_size();
  for (const auto& [id, t] : tasks_) {
    if (req.states_size() > 0 &&
        std::find(req.states().begin(), req.states().end(), t.state()) == req.states().end()) {
      continue;
    }
    if (!req.assignee().empty() && t.assignee() != req.assignee()) continue;
    if (!req.creator().empty() && t.creator().id() != req.creator()) continue;
    resp->set_total_size(resp->total_size() + 1);
    if (resp->tasks_size() < page) *resp->add_tasks() = t;
  }
  return absl::OkStatus();
}

absl::Status FakeNetwork::Claim(const CallContext& ctx, const pb::ClaimRequest& req,
                                pb::ClaimResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("Claim", ctx); !s.ok()) return s;
  pb::Task* chosen = nullptr;
  for (auto& [id, t] : tasks_) {
    if (!req.task_id().empty() && id != req.task_id()) continue;
    if (t.state() == pb::TASK_STATE_QUEUED) {
      chosen = &t;
      break;
    }
  }
  if (chosen == nullptr) {
    if (!req.task_id().empty() && tasks_.count(req.task_id()) == 0) {
      return absl::NotFoundError(absl::StrCat("task \"", req.task_id(), "\" not found"));
    }
    return absl::OkStatus();
  }
  chosen->set_state(pb::TASK_STATE_ASSIGNED);
  chosen->set_assignee(ctx.agent_id);
  pb::Lease* lease = chosen->mutable_lease();
  lease->set_lease_id(absl::StrCat("lease-", ++next_id_));
  lease->set_epoch(lease->epoch() + 1);
  lease->set_holder(ctx.agent_id);
  *resp->mutable_task() = *chosen;
  *resp->mutable_lease() = *lease;
  return absl::OkStatus();
}

absl::Status FakeNetwork::Progress(const CallContext& ctx, const pb::ProgressRequest& req,
                                   pb::ProgressResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("Progress", ctx); !s.ok()) return s;
  auto it = tasks_.find(req.task_id());
  if (it == tasks_.end()) return absl::NotFoundError("task not found");
  pb::Task& t = it->second;
  bool valid = t.lease().lease_id() == req.lease_id() && t.lease().epoch() == req.lease_epoch() &&
               t.assignee() == ctx.agent_id;
  resp->set_lease_valid(valid);
  if (valid) {
    t.set_state(pb::TASK_STATE_RUNNING);
    t.mutable_progress()->set_percent(req.percent());
    t.mutable_progress()->set_note(req.note());
  } else {
    resp->set_lease_loss_reason(pb::LEASE_LOSS_REASON_SUPERSEDED);
  }
  resp->set_task_state(t.state());
  return absl::OkStatus();
}

absl::Status FakeNetwork::Complete(const CallContext& ctx, const pb::CompleteRequest& req,
                                   pb::CompleteResponse* resp) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Enter("Complete", ctx); !s.ok()) return s;
  auto it = tasks_.find(req.task_id());
  if (it == tasks_.end()) return absl::NotFoundError("task not found");
  pb::Task& t = it->second;
  if (t.lease().lease_id() != req.lease_id() || t.assignee() != ctx.agent_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("task \"", t.id(), "\": stale lease (LEASE_STALE)"));
  }
  t.set_state(pb::TASK_STATE_COMPLETED);
  *t.mutable_result() = req.result();
  *resp->mutable_task() = t;
  return absl::OkStatus();
}

}  // namespace cnet::skills::testing
