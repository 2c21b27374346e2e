#include "services/skills/service_actions.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/skills/action_args.h"
#include "libs/crypto/crypto.h"
#include "services/skills/json_proto.h"

namespace cnet::skills {
namespace {

constexpr size_t kMaxDataValueBytes = 256 << 10;

// "PRIORITY_HIGH" -> "HIGH".
std::string Short(const std::string& full, const std::string& prefix) {
  return full.rfind(prefix, 0) == 0 ? full.substr(prefix.size()) : full;
}

const std::vector<std::string> kPriorities = {"low", "normal", "high", "critical", "emergency"};
const std::vector<std::string> kMessageTypes = {
    "direct", "broadcast", "task",      "status", "query",  "response", "learning",
    "patch",  "consensus", "heartbeat", "system", "error",  "discovery"};
const std::vector<std::string> kStatuses = {"online", "busy", "away", "offline"};
const std::vector<std::string> kHealths = {"healthy", "warning", "critical", "dead"};
const std::vector<std::string> kTaskStates = {"created",   "queued", "assigned",
                                              "running",   "input_required", "reviewing",
                                              "completed", "failed", "cancelled"};

google::protobuf::Duration ToDurationProto(absl::Duration d) {
  google::protobuf::Duration out;
  out.set_seconds(absl::IDivDuration(d, absl::Seconds(1), &d));
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return out;
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return std::vector<std::string>(r.begin(), r.end());
}

Json MessageJson(const pb::InboxEntry& e) {
  const pb::Message& m = e.message();
  return Json{{"id", m.id()},
              {"sender", m.sender()},
              {"recipient", m.recipient()},
              {"type", Short(pb::MessageType_Name(m.type()), "MESSAGE_TYPE_")},
              {"subject", m.subject()},
              {"body", m.body()},
              {"payload", FromProtoStruct(m.payload())},
              {"priority", Short(pb::Priority_Name(m.priority()), "PRIORITY_")},
              {"created_at", TimeText(m.created_at())},
              {"correlation_id", m.correlation_id()},
              {"reply_to", m.reply_to()},
              {"inbox_sequence", e.inbox_sequence()},
              {"state", Short(pb::DeliveryState_Name(e.state()), "DELIVERY_STATE_")}};
}

Json AgentJson(const pb::Agent& a) {
  return Json{{"id", a.id()},
              {"name", a.name()},
              {"kind", Short(pb::AgentKind_Name(a.kind()), "AGENT_KIND_")},
              {"capabilities", Strings(a.capabilities())},
              {"status", Short(pb::AgentStatus_Name(a.status()), "AGENT_STATUS_")},
              {"health", Short(pb::Health_Name(a.health()), "HEALTH_")},
              {"health_reason", a.health_reason()},
              {"node", a.node()},
              {"last_heartbeat", TimeText(a.last_heartbeat())}};
}

Json TaskJson(const pb::Task& t) {
  return Json{{"task_id", t.id()},
              {"title", t.title()},
              {"state", Short(pb::TaskState_Name(t.state()), "TASK_STATE_")},
              {"priority", Short(pb::Priority_Name(t.priority()), "PRIORITY_")},
              {"assignee", t.assignee()},
              {"created_at", TimeText(t.created_at())}};
}

// "<run id>:<step path with '/' as '.'>", hashed when over 128 bytes.
std::string StableMessageId(const std::string& run_id, const std::string& path) {
  std::string id = run_id + ":" + path;
  for (char& c : id) {
    if (c == '/') c = '.';
  }
  if (id.size() > 128) id = run_id + ":" + crypto::Sha256Hex(path).substr(0, 32);
  return id;
}

absl::Status NotConfigured(const char* what) {
  return absl::FailedPreconditionError(
      absl::StrCat(what, " is not configured in this skills service"));
}

}  // namespace

absl::StatusOr<Json> MessagingSend(MessagingBackend* backend, const Json& a, ActionCall& call,
                                   bool broadcast) {
  if (backend == nullptr) return NotConfigured("messaging");
  Args args(a, broadcast ? "messaging.broadcast" : "messaging.send");
  pb::SendRequest req;
  pb::Message* m = req.mutable_message();
  if (broadcast) {
    std::string cap = args.Str("capability");
    m->set_recipient(cap.empty() ? "broadcast" : "cap:" + cap);
  } else {
    m->set_recipient(args.RequiredStr("to"));
  }
  m->set_subject(args.Str("subject"));
  m->set_body(args.Str("body"));
  m->set_type(args.Enum<pb::MessageType>(
      "type", "MESSAGE_TYPE_", &pb::MessageType_Parse, kMessageTypes,
      broadcast ? pb::MESSAGE_TYPE_BROADCAST : pb::MESSAGE_TYPE_DIRECT));
  m->set_priority(args.Enum<pb::Priority>("priority", "PRIORITY_", &pb::Priority_Parse,
                                          kPriorities, pb::PRIORITY_NORMAL));
  ToProtoStruct(args.Map("payload"), m->mutable_payload());
  m->set_correlation_id(args.Str("correlation_id"));
  m->set_reply_to(args.Str("reply_to"));
  if (auto ttl = args.Dur("ttl")) *m->mutable_ttl() = ToDurationProto(*ttl);
  // A stable id per run and step: MACS drops a retried send as a duplicate.
  m->set_id(args.Str("id", StableMessageId(call.run_id(), call.step_path())));
  if (!args.ok()) return args.status();
  pb::SendResponse resp;
  absl::Status s = backend->Send(call.Context(), req, &resp);
  if (!s.ok()) return s;
  return Json{{"message_id", resp.message_id()},
              {"recipient_count", resp.recipient_count()},
              {"duplicate", resp.duplicate()}};
}

absl::StatusOr<Json> MessagingFetch(MessagingBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("messaging");
  Args args(a, "messaging.fetch_inbox");
  pb::FetchInboxRequest req;
  req.set_filter(args.Enum<pb::InboxFilter>("filter", "INBOX_FILTER_", &pb::InboxFilter_Parse,
                                            {"unread", "unacked", "all"},
                                            pb::INBOX_FILTER_UNREAD));
  req.set_since_sequence(args.IntIn("since_sequence", 0, 0, INT64_MAX));
  req.set_page_size(static_cast<int32_t>(args.IntIn("limit", 100, 1, 1000)));
  req.set_min_priority(args.Enum<pb::Priority>("min_priority", "PRIORITY_", &pb::Priority_Parse,
                                               kPriorities, pb::PRIORITY_UNSPECIFIED));
  req.set_order(args.Enum<pb::InboxOrder>("order", "INBOX_ORDER_", &pb::InboxOrder_Parse,
                                          {"sequence", "priority"}, pb::INBOX_ORDER_SEQUENCE));
  for (const std::string& t : args.StrList("types")) {
    pb::MessageType type;
    if (!pb::MessageType_Parse("MESSAGE_TYPE_" + absl::AsciiStrToUpper(t), &type)) {
      args.Fail(absl::StrCat(args.Label("types"), ": \"", t, "\" is not one of ",
                             absl::StrJoin(kMessageTypes, ", ")));
      break;
    }
    req.add_types(type);
  }
  if (!args.ok()) return args.status();
  pb::FetchInboxResponse resp;
  absl::Status s = backend->FetchInbox(call.Context(), req, &resp);
  if (!s.ok()) return s;
  Json messages = Json::array();
  for (const pb::InboxEntry& e : resp.entries()) messages.push_back(MessageJson(e));
  return Json{{"messages", messages},
              {"count", static_cast<int64_t>(messages.size())},
              {"unread_count", resp.unread_count()},
              {"pending_count", resp.pending_count()},
              {"latest_sequence", resp.latest_sequence()},
              {"urgent_unread_count", resp.urgent_unread_count()}};
}

absl::StatusOr<Json> MessagingAck(MessagingBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("messaging");
  Args args(a, "messaging.ack");
  pb::AckRequest req;
  if (const Json* seqs = args.Raw("inbox_sequences")) {
    if (!seqs->is_array()) {
      args.Fail(absl::StrCat(args.Label("inbox_sequences"), ": expected a list of ints, got ",
                             TypeOf(*seqs)));
    } else {
      for (const Json& s : *seqs) {
        if (!Conforms(s, ValueType::kInt)) {
          args.Fail(absl::StrCat(args.Label("inbox_sequences"), ": expected ints, got ",
                                 TypeOf(s), " ", Describe(s)));
          break;
        }
        req.add_inbox_sequences(s.get<int64_t>());
      }
    }
  }
  for (const std::string& id : args.StrList("message_ids")) req.add_message_ids(id);
  if (const Json* entries = args.Raw("entries")) {
    if (!entries->is_array()) {
      args.Fail(absl::StrCat(args.Label("entries"), ": expected a list of messages, got ",
                             TypeOf(*entries)));
    } else {
      for (const Json& e : *entries) {
        const Json* seq = e.is_object() && e.contains("inbox_sequence") ? &e["inbox_sequence"]
                                                                        : nullptr;
        if (seq == nullptr || !Conforms(*seq, ValueType::kInt)) {
          args.Fail(absl::StrCat(args.Label("entries"),
                                 ": each entry needs an int inbox_sequence, got ", Describe(e)));
          break;
        }
        req.add_inbox_sequences(seq->get<int64_t>());
      }
    }
  }
  if (!args.ok()) return args.status();
  if (req.inbox_sequences_size() + req.message_ids_size() == 0) {
    // Nothing to acknowledge (an empty inbox) is not an error.
    return Json{{"acked", 0}, {"results", Json::array()}};
  }
  pb::AckResponse resp;
  absl::Status s = backend->Ack(call.Context(), req, &resp);
  if (!s.ok()) return s;
  int64_t acked = 0;
  Json results = Json::array();
  for (const pb::ItemResult& r : resp.results()) {
    if (r.outcome() == pb::ITEM_OUTCOME_OK || r.outcome() == pb::ITEM_OUTCOME_ALREADY_DONE) {
      ++acked;
    }
    results.push_back(
        Json{{"inbox_sequence", r.inbox_sequence()},
             {"message_id", r.message_id()},
             {"outcome", Short(pb::ItemOutcome_Name(r.outcome()), "ITEM_OUTCOME_")}});
  }
  return Json{{"acked", acked}, {"results", results}};
}

absl::StatusOr<Json> RegistryList(RegistryBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("registry");
  Args args(a, "registry.list_agents");
  pb::ListAgentsRequest req;
  for (const std::string& c : args.StrList("capabilities")) req.add_capabilities_all(c);
  auto status = args.Enum<pb::AgentStatus>("status", "AGENT_STATUS_", &pb::AgentStatus_Parse,
                                           kStatuses, pb::AGENT_STATUS_UNSPECIFIED);
  if (status != pb::AGENT_STATUS_UNSPECIFIED) req.add_statuses(status);
  auto health = args.Enum<pb::Health>("health", "HEALTH_", &pb::Health_Parse, kHealths,
                                      pb::HEALTH_UNSPECIFIED);
  if (health != pb::HEALTH_UNSPECIFIED) req.add_healths(health);
  std::string node = args.Str("node");
  if (!node.empty()) req.add_nodes(node);
  req.set_page_size(static_cast<int32_t>(args.IntIn("limit", 100, 1, 1000)));
  if (!args.ok()) return args.status();
  pb::ListAgentsResponse resp;
  absl::Status s = backend->ListAgents(call.Context(), req, &resp);
  if (!s.ok()) return s;
  Json agents = Json::array();
  for (const pb::Agent& ag : resp.agents()) agents.push_back(AgentJson(ag));
  return Json{{"agents", agents},
              {"count", static_cast<int64_t>(agents.size())},
              {"total", resp.total_size()}};
}

absl::StatusOr<Json> RegistryHealth(RegistryBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("registry");
  Args args(a, "registry.agent_health");
  pb::GetAgentRequest req;
  req.set_agent_id(args.Str("agent", call.agent_id()));
  if (!args.ok()) return args.status();
  pb::GetAgentResponse resp;
  absl::Status s = backend->GetAgent(call.Context(), req, &resp);
  if (!s.ok()) return s;
  Json out = AgentJson(resp.agent());
  out["agent_id"] = resp.agent().id();
  out["heartbeat_interval_s"] = resp.agent().heartbeat_interval().seconds();
  return out;
}

absl::StatusOr<Json> RegistryNetwork(RegistryBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("registry");
  Args args(a, "registry.network_status");
  pb::GetNetworkStatusRequest req;
  req.set_node(args.Str("node"));
  if (!args.ok()) return args.status();
  pb::GetNetworkStatusResponse resp;
  absl::Status s = backend->GetNetworkStatus(call.Context(), req, &resp);
  if (!s.ok()) return s;
  Json by_health = Json::object(), by_status = Json::object(), nodes = Json::array();
  for (const auto& h : resp.by_health()) {
    by_health[Short(pb::Health_Name(h.health()), "HEALTH_")] = h.count();
  }
  for (const auto& st : resp.by_status()) {
    by_status[Short(pb::AgentStatus_Name(st.status()), "AGENT_STATUS_")] = st.count();
  }
  for (const auto& n : resp.by_node()) {
    nodes.push_back(Json{{"node", n.node()},
                         {"local", n.local()},
                         {"total", n.total()},
                         {"last_heartbeat", TimeText(n.last_heartbeat())}});
  }
  int64_t healthy = by_health.value("HEALTHY", int64_t{0});
  return Json{{"total_agents", resp.total_agents()},
              {"local_agents", resp.local_agents()},
              {"remote_agents", resp.remote_agents()},
              {"healthy_agents", healthy},
              {"by_health", by_health},
              {"by_status", by_status},
              {"nodes", nodes},
              {"oldest_heartbeat_agent_id", resp.oldest_heartbeat_agent_id()},
              {"local_node", resp.local_node()}};
}

absl::StatusOr<Json> RegistryRegister(RegistryBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("registry");
  Args args(a, "registry.register");
  pb::RegisterRequest req;
  req.set_agent_id(call.agent_id());
  std::string name = args.Str("name");
  req.set_name(name.empty() ? call.agent_id() : name);
  for (const std::string& c : args.StrList("capabilities")) req.add_capabilities(c);
  req.set_status_message(args.Str("status_message"));
  req.set_status(args.Enum<pb::AgentStatus>("status", "AGENT_STATUS_", &pb::AgentStatus_Parse,
                                            kStatuses, pb::AGENT_STATUS_UNSPECIFIED));
  req.set_location(args.Str("location"));
  req.set_version(args.Str("version"));
  if (!args.ok()) return args.status();
  pb::RegisterResponse resp;
  absl::Status s = backend->Register(call.Context(), req, &resp);
  if (!s.ok()) return s;
  return Json{{"agent_id", resp.agent().id()},
              {"created", resp.created()},
              {"capabilities", Strings(resp.agent().capabilities())},
              {"node", resp.agent().node()}};
}

absl::StatusOr<Json> TasksCreate(TaskBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("tasks");
  Args args(a, "tasks.create");
  pb::CreateTaskRequest req;
  req.set_title(args.RequiredStr("title"));
  req.set_description(args.Str("description"));
  for (const std::string& c : args.StrList("capabilities")) req.add_required_capabilities(c);
  req.set_priority(args.Enum<pb::Priority>("priority", "PRIORITY_", &pb::Priority_Parse,
                                           kPriorities, pb::PRIORITY_NORMAL));
  ToProtoStruct(args.Map("payload"), req.mutable_payload());
  for (const std::string& t : args.StrList("tags")) req.add_tags(t);
  for (const std::string& d : args.StrList("dependencies")) req.add_dependencies(d);
  req.set_assign_to(args.Str("assign_to"));
  req.set_idempotency_key(args.Str("idempotency_key"));
  req.set_max_attempts(static_cast<int32_t>(args.IntIn("max_attempts", 0, 0, 100)));
  req.set_workspace(args.Str("workspace"));
  if (!args.ok()) return args.status();
  pb::CreateTaskResponse resp;
  absl::Status s = backend->CreateTask(call.Context(), req, &resp);
  if (!s.ok()) return s;
  return Json{{"task_id", resp.task().id()},
              {"state", Short(pb::TaskState_Name(resp.task().state()), "TASK_STATE_")},
              {"created", resp.created()}};
}

absl::StatusOr<Json> TasksGet(TaskBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("tasks");
  Args args(a, "tasks.get");
  pb::GetTaskRequest req;
  req.set_task_id(args.RequiredStr("task_id"));
  if (!args.ok()) return args.status();
  pb::GetTaskResponse resp;
  absl::Status s = backend->GetTask(call.Context(), req, &resp);
  if (!s.ok()) return s;
  const pb::Task& t = resp.task();
  Json out = TaskJson(t);
  out["terminal"] = t.state() == pb::TASK_STATE_COMPLETED ||
                    t.state() == pb::TASK_STATE_FAILED || t.state() == pb::TASK_STATE_CANCELLED;
  out["progress_percent"] = t.progress().percent();
  out["result_summary"] = t.result().summary();
  out["result_payload"] = FromProtoStruct(t.result().payload());
  out["terminal_reason"] = t.terminal_reason();
  return out;
}

absl::StatusOr<Json> TasksList(TaskBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("tasks");
  Args args(a, "tasks.list");
  pb::ListTasksRequest req;
  for (const std::string& st : args.StrList("states")) {
    pb::TaskState state;
    if (!pb::TaskState_Parse("TASK_STATE_" + absl::AsciiStrToUpper(st), &state)) {
      args.Fail(absl::StrCat(args.Label("states"), ": \"", st, "\" is not one of ",
                             absl::StrJoin(kTaskStates, ", ")));
      break;
    }
    req.add_states(state);
  }
  req.set_assignee(args.Str("assignee"));
  req.set_creator(args.Str("creator"));
  req.set_capability(args.Str("capability"));
  for (const std::string& t : args.StrList("tags")) req.add_tags(t);
  req.set_page_size(static_cast<int32_t>(args.IntIn("limit", 100, 1, 1000)));
  if (!args.ok()) return args.status();
  pb::ListTasksResponse resp;
  absl::Status s = backend->ListTasks(call.Context(), req, &resp);
  if (!s.ok()) return s;
  Json tasks = Json::array();
  for (const pb::Task& t : resp.tasks()) tasks.push_back(TaskJson(t));
  return Json{{"tasks", tasks},
              {"count", static_cast<int64_t>(tasks.size())},
              {"total", resp.total_size()}};
}

absl::StatusOr<Json> TasksClaim(TaskBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("tasks");
  Args args(a, "tasks.claim");
  pb::ClaimRequest req;
  req.set_task_id(args.Str("task_id"));
  for (const std::string& c : args.StrList("capabilities")) req.add_capabilities(c);
  for (const std::string& t : args.StrList("tags")) req.add_tags(t);
  if (auto wait = args.Dur("wait")) *req.mutable_wait() = ToDurationProto(*wait);
  if (auto lease = args.Dur("lease")) *req.mutable_lease_duration() = ToDurationProto(*lease);
  if (!args.ok()) return args.status();
  pb::ClaimResponse resp;
  absl::Status s = backend->Claim(call.Context(), req, &resp);
  if (!s.ok()) return s;
  if (!resp.has_task()) {
    return Json{{"claimed", false}, {"task_id", ""},  {"title", ""},      {"description", ""},
                {"payload", Json::object()}, {"lease_id", ""}, {"lease_epoch", 0}};
  }
  return Json{{"claimed", true},
              {"task_id", resp.task().id()},
              {"title", resp.task().title()},
              {"description", resp.task().description()},
              {"payload", FromProtoStruct(resp.task().payload())},
              {"lease_id", resp.lease().lease_id()},
              {"lease_epoch", resp.lease().epoch()}};
}

absl::StatusOr<Json> TasksProgress(TaskBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("tasks");
  Args args(a, "tasks.progress");
  pb::ProgressRequest req;
  req.set_task_id(args.RequiredStr("task_id"));
  req.set_lease_id(args.RequiredStr("lease_id"));
  req.set_lease_epoch(args.Int("lease_epoch"));
  double percent = args.Num("percent", 0);
  if (args.ok() && (percent < 0 || percent > 100)) {
    args.Fail(absl::StrCat(args.Label("percent"), ": must be 0..100, got ", percent));
  }
  req.set_percent(percent);
  req.set_note(args.Str("note"));
  if (!args.ok()) return args.status();
  pb::ProgressResponse resp;
  absl::Status s = backend->Progress(call.Context(), req, &resp);
  if (!s.ok()) return s;
  return Json{{"lease_valid", resp.lease_valid()},
              {"cancel_requested", resp.cancel_requested()},
              {"state", Short(pb::TaskState_Name(resp.task_state()), "TASK_STATE_")}};
}

absl::StatusOr<Json> TasksComplete(TaskBackend* backend, const Json& a, ActionCall& call) {
  if (backend == nullptr) return NotConfigured("tasks");
  Args args(a, "tasks.complete");
  pb::CompleteRequest req;
  req.set_task_id(args.RequiredStr("task_id"));
  req.set_lease_id(args.Str("lease_id"));
  req.set_lease_epoch(args.Int("lease_epoch"));
  req.mutable_result()->set_summary(args.Str("summary"));
  ToProtoStruct(args.Map("payload"), req.mutable_result()->mutable_payload());
  if (!args.ok()) return args.status();
  pb::CompleteResponse resp;
  absl::Status s = backend->Complete(call.Context(), req, &resp);
  if (!s.ok()) return s;
  return Json{{"task_id", resp.task().id()},
              {"state", Short(pb::TaskState_Name(resp.task().state()), "TASK_STATE_")}};
}

namespace {

// Namespaces: "agent/<id>" is private to that agent (the default is the
// caller's own); every other namespace is shared by all agents.
absl::StatusOr<std::string> Namespace(Args& args, const std::string& agent) {
  std::string ns = args.Str("namespace");
  if (!args.ok()) return args.status();
  if (ns.empty()) return "agent/" + agent;
  bool ok = ns.size() <= 128;
  for (char c : ns) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                c == '-' || c == '/' || c == ':');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(args.Label("namespace"), ": \"", ns,
                                                   "\" must match [A-Za-z0-9._/:-]{1,128}"));
  }
  if (ns.rfind("agent/", 0) == 0 && ns != "agent/" + agent) {
    return absl::PermissionDeniedError(absl::StrCat(
        "namespace \"", ns, "\" is private to agent \"", ns.substr(6), "\"; agent \"", agent,
        "\" may use \"agent/", agent, "\" or a shared namespace"));
  }
  return ns;
}

std::string Key(Args& args) {
  std::string key = args.Str("key");
  if (!args.ok()) return key;
  if (key.empty() || key.size() > 256) {
    args.Fail(absl::StrCat(args.Label("key"), ": must be 1..256 bytes, got ", key.size()));
  }
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) {
      args.Fail(absl::StrCat(args.Label("key"), ": control characters are not allowed"));
      break;
    }
  }
  return key;
}

}  // namespace

absl::StatusOr<Json> DataStoreAction(DataStore* store, const Json& a, ActionCall& call) {
  if (store == nullptr) return NotConfigured("data");
  Args args(a, "data.store");
  std::string key = Key(args);
  const Json* value = args.Raw("value");
  if (args.ok() && value == nullptr) {
    args.Fail(absl::StrCat(args.Label("value"), ": required (to remove a key use data.delete)"));
  }
  if (!args.ok()) return args.status();
  std::string text = Dump(*value);
  if (text.size() > kMaxDataValueBytes) {
    return absl::InvalidArgumentError(absl::StrCat(args.Label("value"), ": ", text.size(),
                                                   " bytes; the limit is ", kMaxDataValueBytes));
  }
  auto ns = Namespace(args, call.agent_id());
  if (!ns.ok()) return ns.status();
  auto created = store->DataPut(*ns, key, *value, call.agent_id());
  if (!created.ok()) return created.status();
  return Json{{"namespace", *ns},
              {"key", key},
              {"created", *created},
              {"size_bytes", static_cast<int64_t>(text.size())}};
}

absl::StatusOr<Json> DataRetrieve(DataStore* store, const Json& a, ActionCall& call) {
  if (store == nullptr) return NotConfigured("data");
  Args args(a, "data.retrieve");
  std::string key = Key(args);
  bool required = args.Bool("required", false);
  const Json* def = args.Raw("default");
  if (!args.ok()) return args.status();
  auto ns = Namespace(args, call.agent_id());
  if (!ns.ok()) return ns.status();
  auto got = store->DataGet(*ns, key);
  if (!got.ok()) return got.status();
  if (!got->has_value() && required) {
    return absl::NotFoundError(
        absl::StrCat("data.retrieve: no key \"", key, "\" in namespace \"", *ns, "\""));
  }
  return Json{{"namespace", *ns},
              {"key", key},
              {"found", got->has_value()},
              {"value", got->has_value() ? **got : (def != nullptr ? *def : Json(nullptr))}};
}

absl::StatusOr<Json> DataDeleteAction(DataStore* store, const Json& a, ActionCall& call) {
  if (store == nullptr) return NotConfigured("data");
  Args args(a, "data.delete");
  std::string key = Key(args);
  if (!args.ok()) return args.status();
  auto ns = Namespace(args, call.agent_id());
  if (!ns.ok()) return ns.status();
  auto deleted = store->DataDelete(*ns, key);
  if (!deleted.ok()) return deleted.status();
  return Json{{"namespace", *ns}, {"key", key}, {"deleted", *deleted}};
}

absl::StatusOr<Json> DataListAction(DataStore* store, const Json& a, ActionCall& call) {
  if (store == nullptr) return NotConfigured("data");
  Args args(a, "data.list");
  std::string prefix = args.Str("prefix");
  int64_t limit = args.IntIn("limit", 100, 1, 1000);
  if (!args.ok()) return args.status();
  auto ns = Namespace(args, call.agent_id());
  if (!ns.ok()) return ns.status();
  auto keys = store->DataList(*ns, prefix, static_cast<int>(limit));
  if (!keys.ok()) return keys.status();
  return Json{{"namespace", *ns}, {"keys", *keys}, {"count", static_cast<int64_t>(keys->size())}};
}

}  // namespace cnet::skills
