#include "tools/cnet/mcp_server.h"

#include <google/protobuf/util/time_util.h>

#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/macs_client/macs_client.h"
#include "tools/cnet/agent_context.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
using nlohmann::json;

namespace {

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;

struct RpcError {
  int code;
  std::string message;
};

json ErrorResponse(const json& id, int code, const std::string& message) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Short(const std::string& enum_name, const std::string& prefix) {
  if (absl::StartsWith(enum_name, prefix)) return absl::AsciiStrToLower(enum_name.substr(prefix.size()));
  return absl::AsciiStrToLower(enum_name);
}

std::string Ts(const google::protobuf::Timestamp& t) { return TimeText(t); }

// A tool's result: concise text for the model plus the same facts as
// structured content.
json Result(const std::string& text, const json& structured, bool is_error = false) {
  json r = {{"content", json::array({{{"type", "text"}, {"text", text}}})}};
  if (!structured.is_null()) r["structuredContent"] = structured;
  r["isError"] = is_error;
  return r;
}

json GrpcFailure(const std::string& what, const grpc::Status& s) {
  std::string code;
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT: code = "INVALID_ARGUMENT"; break;
    case grpc::StatusCode::NOT_FOUND: code = "NOT_FOUND"; break;
    case grpc::StatusCode::ALREADY_EXISTS: code = "ALREADY_EXISTS"; break;
    case grpc::StatusCode::PERMISSION_DENIED: code = "PERMISSION_DENIED"; break;
    case grpc::StatusCode::UNAUTHENTICATED: code = "UNAUTHENTICATED"; break;
    case grpc::StatusCode::FAILED_PRECONDITION: code = "FAILED_PRECONDITION"; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: code = "RESOURCE_EXHAUSTED"; break;
    case grpc::StatusCode::UNAVAILABLE: code = "UNAVAILABLE"; break;
    case grpc::StatusCode::DEADLINE_EXCEEDED: code = "DEADLINE_EXCEEDED"; break;
    default: code = absl::StrCat("code ", static_cast<int>(s.error_code())); break;
  }
  std::string message = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    message = absl::StrCat("Claude Network is unreachable (is the suite running? `cnet up`): ",
                           message);
  }
  return Result(absl::StrCat(what, " failed: ", code, ": ", message),
                {{"error", {{"code", code}, {"message", message}}}}, true);
}

// --- tool descriptions ----------------------------------------------------
json Prop(const char* type, const char* description) {
  return {{"type", type}, {"description", description}};
}
json ArrayOf(const char* item_type, const char* description) {
  return {{"type", "array"}, {"items", {{"type", item_type}}}, {"description", description}};
}
json Tool(const char* name, const char* description, json properties,
          std::vector<std::string> required) {
  json schema = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) schema["required"] = required;
  schema["additionalProperties"] = false;
  return {{"name", name}, {"description", description}, {"inputSchema", schema}};
}

const json& Tools() {
  static const json* tools = new json(json::array({
      Tool("network_status", "Agents on Claude Network by health and node.", json::object(), {}),
      Tool("list_agents", "List agents (id, name, status, health, capabilities).",
           {{"capability", Prop("string", "only agents with this capability")},
            {"include_dead", Prop("boolean", "include DEAD agents")}},
           {}),
      Tool("send_message", "Send a message to an agent id, `broadcast` or `cap:<capability>`.",
           {{"to", Prop("string", "recipient")},
            {"body", Prop("string", "text")},
            {"subject", Prop("string", "short subject")},
            {"priority", {{"type", "string"},
                          {"enum", {"low", "normal", "high", "critical", "emergency"}}}},
            {"reply_to", Prop("string", "id of the message answered")}},
           {"to", "body"}),
      Tool("read_inbox", "Read unread messages (marks them read).",
           {{"limit", Prop("integer", "at most this many (1..50, default 10)")},
            {"include_read", Prop("boolean", "also read-but-unacknowledged ones")}},
           {}),
      Tool("ack", "Acknowledge processed messages by inbox sequence.",
           {{"sequences", ArrayOf("integer", "inbox sequences from read_inbox")}},
           {"sequences"}),
      Tool("task_create", "Create a task on the shared board.",
           {{"title", Prop("string", "what to do")},
            {"description", Prop("string", "details")},
            {"capabilities", ArrayOf("string", "capabilities the assignee needs")},
            {"priority", {{"type", "string"},
                          {"enum", {"low", "normal", "high", "critical", "emergency"}}}}},
           {"title"}),
      Tool("task_claim", "Claim a task (a given id, or the best one for you) and start it.",
           {{"task_id", Prop("string", "the task; omit for the best match")},
            {"capabilities", ArrayOf("string", "only tasks needing these")}},
           {}),
      Tool("task_update", "Report progress on your task, or fail it with a reason.",
           {{"task_id", Prop("string", "your task")},
            {"percent", Prop("number", "0..100")},
            {"note", Prop("string", "what happened")},
            {"fail_reason", Prop("string", "set to fail the task")},
            {"retryable", Prop("boolean", "with fail_reason: may be retried")}},
           {"task_id"}),
      Tool("task_complete", "Complete your task with a summary.",
           {{"task_id", Prop("string", "your task")},
            {"summary", Prop("string", "what was done")},
            {"commit_sha", Prop("string", "commit with the work (40/64 hex)")}},
           {"task_id", "summary"}),
      Tool("reserve_paths",
           "Reserve repository paths/globs so other agents cannot edit them (exclusive by "
           "default).",
           {{"patterns", ArrayOf("string", "paths or globs relative to the repo root")},
            {"shared", Prop("boolean", "shared instead of exclusive")},
            {"ttl_seconds", Prop("integer", "lease, 10..86400 (default 900)")},
            {"reason", Prop("string", "why, shown to others")},
            {"task_id", Prop("string", "related task")},
            {"workspace", Prop("string", "default: this repository")}},
           {"patterns"}),
      Tool("release_paths", "Release your path reservations (named patterns, or all).",
           {{"patterns", ArrayOf("string", "exact patterns")},
            {"all", Prop("boolean", "every reservation in the workspace")},
            {"workspace", Prop("string", "default: this repository")}},
           {}),
  }));
  return *tools;
}

// Checks `args` against the tool's schema: known keys, required keys,
// JSON types. Returns "" or the problem, naming the field.
std::string ValidateArgs(const json& schema, const json& args) {
  const json& props = schema["properties"];
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (!props.contains(it.key())) {
      return absl::StrCat("arguments.", it.key(), ": unknown argument");
    }
    const json& p = props[it.key()];
    const std::string type = p["type"].get<std::string>();
    const json& v = it.value();
    auto type_ok = [](const std::string& t, const json& x) {
      if (t == "string") return x.is_string();
      if (t == "integer") return x.is_number_integer();
      if (t == "number") return x.is_number();
      if (t == "boolean") return x.is_boolean();
      return false;
    };
    if (type == "array") {
      if (!v.is_array()) return absl::StrCat("arguments.", it.key(), ": must be an array");
      const std::string item = p["items"]["type"].get<std::string>();
      for (size_t i = 0; i < v.size(); ++i) {
        if (!type_ok(item, v[i])) {
          return absl::StrCat("arguments.", it.key(), "[", i, "]: must be a", 
                              item == "integer" ? "n " : " ", item);
        }
      }
    } else if (!type_ok(type, v)) {
      return absl::StrCat("arguments.", it.key(), ": must be a",
                          type == "integer" ? "n " : " ", type);
    }
    if (p.contains("enum")) {
      bool found = false;
      for (const json& e : p["enum"]) found = found || e == v;
      if (!found) {
        std::vector<std::string> names;
        for (const json& e : p["enum"]) names.push_back(e.get<std::string>());
        return absl::StrCat("arguments.", it.key(), ": one of ", absl::StrJoin(names, ", "));
      }
    }
  }
  if (schema.contains("required")) {
    for (const json& r : schema["required"]) {
      if (!args.contains(r.get<std::string>())) {
        return absl::StrCat("arguments.", r.get<std::string>(), ": required");
      }
    }
  }
  return "";
}

pb::Priority ParsePriority(const json& a) {
  std::string p = a.value("priority", "normal");
  if (p == "low") return pb::PRIORITY_LOW;
  if (p == "high") return pb::PRIORITY_HIGH;
  if (p == "critical") return pb::PRIORITY_CRITICAL;
  if (p == "emergency") return pb::PRIORITY_EMERGENCY;
  return pb::PRIORITY_NORMAL;
}

json PathResultJson(const pb::PathResult& r) {
  json j = {{"pattern", r.pattern()},
            {"outcome", Short(pb::PathOutcome_Name(r.outcome()), "PATH_OUTCOME_")}};
  if (!r.reservation_id().empty()) j["reservation_id"] = r.reservation_id();
  if (r.has_expires_at()) j["expires_at"] = Ts(r.expires_at());
  json conflicts = json::array();
  for (const auto& c : r.conflicts()) {
    conflicts.push_back({{"holder", c.holder()},
                         {"held", c.held()},
                         {"expires_at", Ts(c.expires_at())},
                         {"reason", c.holder_reason()}});
  }
  if (!conflicts.empty()) j["conflicts"] = conflicts;
  return j;
}

json TaskJson(const pb::Task& t) {
  return {{"id", t.id()},
          {"title", t.title()},
          {"state", Short(pb::TaskState_Name(t.state()), "TASK_STATE_")},
          {"priority", Short(pb::Priority_Name(t.priority()), "PRIORITY_")},
          {"assignee", t.assignee()}};
}

}  // namespace

const std::vector<std::string>& McpServer::SupportedVersions() {
  static const std::vector<std::string>* v =
      new std::vector<std::string>{"2025-06-18", "2025-03-26", "2024-11-05"};
  return *v;
}

json McpServer::ToolList() { return Tools(); }

McpServer::McpServer(McpOptions options) : options_(std::move(options)) {
  registry_ = pb::RegistryService::NewStub(options_.registry);
  macs_ = pb::MacsGateway::NewStub(options_.macs);
  tasks_ = pb::TaskService::NewStub(options_.tasks);
}

std::unique_ptr<grpc::ClientContext> McpServer::Ctx() const {
  return CallContext(options_.deadline, options_.token);
}

std::optional<std::string> McpServer::HandleLine(const std::string& line) {
  if (absl::StripAsciiWhitespace(line).empty()) return std::nullopt;
  if (line.size() > options_.max_line_bytes) {
    return Dump(ErrorResponse(nullptr, kInvalidRequest,
                              absl::StrCat("request too large: ", line.size(), " bytes > ",
                                           options_.max_line_bytes)));
  }
  json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    return Dump(ErrorResponse(nullptr, kParseError, "parse error: not valid JSON"));
  }
  if (request.is_array()) {
    return Dump(ErrorResponse(nullptr, kInvalidRequest,
                              "batch requests are not supported: send one object per line"));
  }
  if (!request.is_object()) {
    return Dump(ErrorResponse(nullptr, kInvalidRequest, "a request must be a JSON object"));
  }
  json id = request.contains("id") ? request["id"] : json();
  bool has_id = request.contains("id");
  if (has_id && !id.is_string() && !id.is_number_integer()) {
    return Dump(ErrorResponse(nullptr, kInvalidRequest, "id: must be a string or an integer"));
  }
  if (!request.contains("jsonrpc") || request["jsonrpc"] != "2.0") {
    return Dump(ErrorResponse(has_id ? id : json(), kInvalidRequest, "jsonrpc: must be \"2.0\""));
  }
  if (!request.contains("method")) {
    // A response to a request of ours (we send none): nothing to answer.
    if (has_id && (request.contains("result") || request.contains("error"))) return std::nullopt;
    return Dump(ErrorResponse(has_id ? id : json(), kInvalidRequest, "method: required"));
  }
  if (!request["method"].is_string()) {
    return Dump(ErrorResponse(has_id ? id : json(), kInvalidRequest, "method: must be a string"));
  }
  if (request.contains("params") && !request["params"].is_object() &&
      !request["params"].is_array()) {
    if (!has_id) return std::nullopt;
    return Dump(ErrorResponse(id, kInvalidRequest, "params: must be an object"));
  }
  const std::string method = request["method"].get<std::string>();
  if (!has_id) {  // a notification: act, never answer
    if (method == "notifications/initialized") initialized_ = true;
    return std::nullopt;
  }
  json params = request.contains("params") ? request["params"] : json::object();
  if (!params.is_object()) {
    return Dump(ErrorResponse(id, kInvalidParams, "params: must be an object"));
  }
  try {
    json result;
    if (method == "initialize") {
      if (!params.contains("protocolVersion") || !params["protocolVersion"].is_string()) {
        return Dump(ErrorResponse(id, kInvalidParams, "params.protocolVersion: required string"));
      }
      result = Initialize(params);
    } else if (method == "ping") {
      result = json::object();
    } else if (method == "tools/list") {
      if (params.contains("cursor") && !params["cursor"].is_string()) {
        return Dump(ErrorResponse(id, kInvalidParams, "params.cursor: must be a string"));
      }
      result = {{"tools", Tools()}};
    } else if (method == "tools/call") {
      if (!params.contains("name") || !params["name"].is_string()) {
        return Dump(ErrorResponse(id, kInvalidParams, "params.name: required string"));
      }
      const std::string name = params["name"].get<std::string>();
      const json* schema = nullptr;
      for (const json& t : Tools()) {
        if (t["name"] == name) schema = &t["inputSchema"];
      }
      if (schema == nullptr) {
        return Dump(ErrorResponse(id, kInvalidParams, absl::StrCat("params.name: unknown tool '",
                                                                   name, "'")));
      }
      json args = params.contains("arguments") ? params["arguments"] : json::object();
      if (args.is_null()) args = json::object();
      if (!args.is_object()) {
        return Dump(ErrorResponse(id, kInvalidParams, "params.arguments: must be an object"));
      }
      std::string problem = ValidateArgs(*schema, args);
      if (!problem.empty()) {
        return Dump(ErrorResponse(id, kInvalidParams, "params." + problem));
      }
      result = RunTool(name, args);
    } else {
      return Dump(ErrorResponse(id, kMethodNotFound, absl::StrCat("method not found: ", method)));
    }
    return Dump({{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
  } catch (const std::exception& e) {
    return Dump(ErrorResponse(id, -32603, absl::StrCat("internal error: ", e.what())));
  }
}

json McpServer::Initialize(const json& params) {
  std::string requested = params["protocolVersion"].get<std::string>();
  std::string version = SupportedVersions().front();
  for (const std::string& v : SupportedVersions()) {
    if (v == requested) version = v;
  }
  initialized_ = true;
  return {{"protocolVersion", version},
          {"capabilities", {{"tools", {{"listChanged", false}}}}},
          {"serverInfo",
           {{"name", "cnet"}, {"title", "Claude Network"}, {"version", options_.version}}},
          {"instructions",
           absl::StrCat("Claude Network: coordinate with other agents. You act as agent ",
                        options_.agent_id.empty() ? "(none: run `cnet agent join`)"
                                                  : options_.agent_id,
                        ". Reserve paths before editing shared code; read_inbox for messages.")}};
}

json McpServer::RunTool(const std::string& name, const json& a) {
  if (options_.token.empty()) {
    return Result(absl::StrCat("no agent identity: ", options_.identity_error,
                               " (run `cnet agent join`, or start `cnet mcp --as ID`)"),
                  {{"error", {{"code", "NO_IDENTITY"}, {"message", options_.identity_error}}}},
                  true);
  }
  if (name == "network_status") return NetworkStatus(a);
  if (name == "list_agents") return ListAgents(a);
  if (name == "send_message") return SendMessage(a);
  if (name == "read_inbox") return ReadInbox(a);
  if (name == "ack") return Ack(a);
  if (name == "task_create") return TaskCreate(a);
  if (name == "task_claim") return TaskClaim(a);
  if (name == "task_update") return TaskUpdate(a);
  if (name == "task_complete") return TaskComplete(a);
  if (name == "reserve_paths") return ReservePaths(a);
  if (name == "release_paths") return ReleasePaths(a);
  return Result("unknown tool " + name, json(), true);
}

json McpServer::NetworkStatus(const json&) {
  pb::GetNetworkStatusResponse r;
  grpc::Status s = registry_->GetNetworkStatus(Ctx().get(), pb::GetNetworkStatusRequest(), &r);
  if (!s.ok()) return GrpcFailure("network_status", s);
  json by_health = json::object();
  std::vector<std::string> parts;
  for (const auto& h : r.by_health()) {
    std::string name = Short(pb::Health_Name(h.health()), "HEALTH_");
    by_health[name] = h.count();
    parts.push_back(absl::StrCat(h.count(), " ", name));
  }
  json nodes = json::array();
  for (const auto& n : r.by_node()) nodes.push_back({{"node", n.node()}, {"agents", n.total()}});
  std::string text = absl::StrCat(r.total_agents(), " agents (", absl::StrJoin(parts, ", "),
                                  ") on ", r.by_node_size(), " node(s); this node ",
                                  r.local_node(), "; you are ", options_.agent_id);
  return Result(text, {{"total_agents", r.total_agents()},
                       {"local_agents", r.local_agents()},
                       {"remote_agents", r.remote_agents()},
                       {"by_health", by_health},
                       {"nodes", nodes},
                       {"local_node", r.local_node()},
                       {"you", options_.agent_id}});
}

json McpServer::ListAgents(const json& a) {
  pb::ListAgentsRequest req;
  req.set_page_size(200);
  if (a.contains("capability")) req.add_capabilities_all(a["capability"].get<std::string>());
  if (!a.value("include_dead", false)) {
    for (pb::Health h : {pb::HEALTH_HEALTHY, pb::HEALTH_WARNING, pb::HEALTH_CRITICAL,
                         pb::HEALTH_UNSPECIFIED}) {
      req.add_healths(h);
    }
  }
  pb::ListAgentsResponse r;
  grpc::Status s = registry_->ListAgents(Ctx().get(), req, &r);
  if (!s.ok() && !a.value("include_dead", false) &&
      s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    // A registry that refuses HEALTH_UNSPECIFIED as a filter: ask without it.
    req.clear_healths();
    for (pb::Health h : {pb::HEALTH_HEALTHY, pb::HEALTH_WARNING, pb::HEALTH_CRITICAL}) {
      req.add_healths(h);
    }
    s = registry_->ListAgents(Ctx().get(), req, &r);
  }
  if (!s.ok()) return GrpcFailure("list_agents", s);
  json agents = json::array();
  std::vector<std::string> lines;
  for (const pb::Agent& ag : r.agents()) {
    std::vector<std::string> caps(ag.capabilities().begin(), ag.capabilities().end());
    json item = {{"id", ag.id()},
                 {"name", ag.name()},
                 {"node", ag.node()},
                 {"status", Short(pb::AgentStatus_Name(ag.status()), "AGENT_STATUS_")},
                 {"health", Short(pb::Health_Name(ag.health()), "HEALTH_")},
                 {"capabilities", caps}};
    agents.push_back(item);
    lines.push_back(absl::StrCat(ag.id(), " ", ag.name(), " [",
                                 item["health"].get<std::string>(), ", ",
                                 item["status"].get<std::string>(), "] ",
                                 absl::StrJoin(caps, ",")));
  }
  std::string text = absl::StrCat(r.agents_size(), " agents", lines.empty() ? "" : ":\n",
                                  absl::StrJoin(lines, "\n"));
  return Result(text, {{"agents", agents}, {"total", r.total_size()}});
}

json McpServer::SendMessage(const json& a) {
  macs_client::ClientOptions o;
  o.agent_id = options_.agent_id;
  o.token = options_.token;
  o.signing_key = options_.signing_key;
  o.ed25519_seed = options_.ed25519_seed;
  o.ed25519_key_id = options_.ed25519_key_id;
  o.deadline = options_.deadline;
  o.max_attempts = 2;
  macs_client::MacsClient client(options_.macs, o);
  pb::Message m;
  m.set_recipient(a["to"].get<std::string>());
  m.set_body(a["body"].get<std::string>());
  m.set_subject(a.value("subject", ""));
  m.set_priority(ParsePriority(a));
  m.set_reply_to(a.value("reply_to", ""));
  m.set_type(m.reply_to().empty() ? pb::MESSAGE_TYPE_DIRECT : pb::MESSAGE_TYPE_RESPONSE);
  absl::StatusOr<pb::SendResponse> r = client.Send(m);
  if (!r.ok()) {
    return GrpcFailure("send_message",
                       grpc::Status(static_cast<grpc::StatusCode>(r.status().code()),
                                    std::string(r.status().message())));
  }
  return Result(absl::StrCat("sent ", r->message_id(), " to ", m.recipient(), " (",
                             r->recipient_count(), " recipient(s))"),
                {{"message_id", r->message_id()},
                 {"recipient_count", r->recipient_count()},
                 {"duplicate", r->duplicate()}});
}

json McpServer::ReadInbox(const json& a) {
  int64_t limit = a.value("limit", 10);
  if (limit < 1 || limit > 50) {
    return Result("limit: 1..50", {{"error", {{"code", "INVALID_ARGUMENT"},
                                              {"message", "limit: 1..50"}}}},
                  true);
  }
  pb::FetchInboxRequest req;
  req.set_filter(a.value("include_read", false) ? pb::INBOX_FILTER_UNACKED
                                                : pb::INBOX_FILTER_UNREAD);
  req.set_order(pb::INBOX_ORDER_PRIORITY);
  req.set_page_size(static_cast<int32_t>(limit));
  pb::FetchInboxResponse r;
  grpc::Status s = macs_->FetchInbox(Ctx().get(), req, &r);
  if (!s.ok()) return GrpcFailure("read_inbox", s);
  json messages = json::array();
  std::vector<std::string> lines;
  pb::MarkReadRequest mark;
  for (const pb::InboxEntry& e : r.entries()) {
    const pb::Message& m = e.message();
    std::string priority = Short(pb::Priority_Name(m.priority()), "PRIORITY_");
    messages.push_back({{"sequence", e.inbox_sequence()},
                        {"id", m.id()},
                        {"from", m.sender()},
                        {"subject", m.subject()},
                        {"body", m.body()},
                        {"priority", priority},
                        {"reply_to", m.reply_to()},
                        {"received_at", Ts(e.received_at())}});
    lines.push_back(absl::StrCat("#", e.inbox_sequence(), " [", priority, "] from ", m.sender(),
                                 ": ", m.subject(), m.subject().empty() ? "" : " - ",
                                 m.body().substr(0, 2000)));
    if (!e.has_read_at()) mark.add_inbox_sequences(e.inbox_sequence());
  }
  if (!mark.inbox_sequences().empty()) {
    pb::MarkReadResponse marked;
    (void)macs_->MarkRead(Ctx().get(), mark, &marked);
  }
  std::string text = lines.empty()
                         ? "no unread messages"
                         : absl::StrCat(lines.size(), " message(s); ack them when handled:\n",
                                        absl::StrJoin(lines, "\n"));
  return Result(text, {{"messages", messages},
                       {"unread_count", r.unread_count()},
                       {"pending_count", r.pending_count()}});
}

json McpServer::Ack(const json& a) {
  pb::AckRequest req;
  for (const json& s : a["sequences"]) req.add_inbox_sequences(s.get<int64_t>());
  pb::AckResponse r;
  grpc::Status s = macs_->Ack(Ctx().get(), req, &r);
  if (!s.ok()) return GrpcFailure("ack", s);
  json results = json::array();
  std::vector<std::string> parts;
  for (const pb::ItemResult& i : r.results()) {
    std::string outcome = Short(pb::ItemOutcome_Name(i.outcome()), "ITEM_OUTCOME_");
    results.push_back({{"sequence", i.inbox_sequence()}, {"outcome", outcome}});
    parts.push_back(absl::StrCat("#", i.inbox_sequence(), " ", outcome));
  }
  return Result(absl::StrCat("ack: ", absl::StrJoin(parts, ", ")), {{"results", results}});
}

json McpServer::TaskCreate(const json& a) {
  pb::CreateTaskRequest req;
  req.set_title(a["title"].get<std::string>());
  req.set_description(a.value("description", ""));
  if (a.contains("capabilities")) {
    for (const json& c : a["capabilities"]) req.add_required_capabilities(c.get<std::string>());
  }
  req.set_priority(ParsePriority(a));
  pb::CreateTaskResponse r;
  grpc::Status s = tasks_->CreateTask(Ctx().get(), req, &r);
  if (!s.ok()) return GrpcFailure("task_create", s);
  return Result(absl::StrCat("created ", r.task().id(), " [",
                             Short(pb::TaskState_Name(r.task().state()), "TASK_STATE_"), "] ",
                             r.task().title()),
                {{"task", TaskJson(r.task())}});
}

json McpServer::TaskClaim(const json& a) {
  pb::ClaimRequest req;
  req.set_task_id(a.value("task_id", ""));
  if (a.contains("capabilities")) {
    for (const json& c : a["capabilities"]) req.add_capabilities(c.get<std::string>());
  }
  pb::ClaimResponse claimed;
  grpc::Status s = tasks_->Claim(Ctx().get(), req, &claimed);
  if (!s.ok() && !req.task_id().empty() &&
      s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    // The scheduler may already have pushed it to us: take it as claimed.
    pb::GetTaskRequest get;
    get.set_task_id(req.task_id());
    pb::GetTaskResponse got;
    if (tasks_->GetTask(Ctx().get(), get, &got).ok() && got.task().has_lease() &&
        got.task().lease().holder() == options_.agent_id) {
      *claimed.mutable_task() = got.task();
      *claimed.mutable_lease() = got.task().lease();
      s = grpc::Status::OK;
    }
  }
  if (!s.ok()) return GrpcFailure("task_claim", s);
  pb::Lease lease = claimed.lease();
  pb::StartRequest start;
  start.set_task_id(claimed.task().id());
  start.set_lease_id(lease.lease_id());
  start.set_lease_epoch(lease.epoch());
  pb::StartResponse started;
  pb::Task task = claimed.task();
  s = tasks_->Start(Ctx().get(), start, &started);
  if (s.ok()) {
    task = started.task();
    if (started.has_lease()) lease = started.lease();
  }
  leases_[task.id()] = lease;
  json structured = {{"task", TaskJson(task)},
                     {"description", task.description()},
                     {"lease_expires_at", Ts(lease.expires_at())}};
  return Result(absl::StrCat("claimed ", task.id(), " [",
                             Short(pb::TaskState_Name(task.state()), "TASK_STATE_"), "] ",
                             task.title(), task.description().empty() ? "" : "\n",
                             task.description().substr(0, 4000),
                             "\nReport with task_update; finish with task_complete."),
                structured);
}

bool McpServer::LeaseOf(const std::string& task_id, pb::Lease* lease, std::string* error) {
  pb::GetTaskRequest req;
  req.set_task_id(task_id);
  pb::GetTaskResponse r;
  grpc::Status s = tasks_->GetTask(Ctx().get(), req, &r);
  if (s.ok() && r.task().has_lease() && r.task().lease().holder() == options_.agent_id) {
    *lease = r.task().lease();
    return true;
  }
  auto it = leases_.find(task_id);
  if (it != leases_.end()) {
    *lease = it->second;
    return true;
  }
  *error = s.ok() ? absl::StrCat("you do not hold task ", task_id, " (claim it first)")
                  : s.error_message();
  return false;
}

json McpServer::TaskUpdate(const json& a) {
  const std::string task_id = a["task_id"].get<std::string>();
  pb::Lease lease;
  std::string error;
  if (!LeaseOf(task_id, &lease, &error)) {
    return Result("task_update failed: " + error,
                  {{"error", {{"code", "FAILED_PRECONDITION"}, {"message", error}}}}, true);
  }
  if (a.contains("fail_reason")) {
    pb::FailRequest req;
    req.set_task_id(task_id);
    req.set_lease_id(lease.lease_id());
    req.set_lease_epoch(lease.epoch());
    req.set_reason(a["fail_reason"].get<std::string>());
    req.set_retryable(a.value("retryable", false));
    pb::FailResponse r;
    grpc::Status s = tasks_->Fail(Ctx().get(), req, &r);
    if (!s.ok()) return GrpcFailure("task_update", s);
    leases_.erase(task_id);
    return Result(absl::StrCat("failed ", task_id, " -> ",
                               Short(pb::TaskState_Name(r.task().state()), "TASK_STATE_")),
                  {{"task", TaskJson(r.task())}});
  }
  pb::ProgressRequest req;
  req.set_task_id(task_id);
  req.set_lease_id(lease.lease_id());
  req.set_lease_epoch(lease.epoch());
  req.set_percent(a.value("percent", 0.0));
  req.set_note(a.value("note", ""));
  pb::ProgressResponse r;
  grpc::Status s = tasks_->Progress(Ctx().get(), req, &r);
  if (!s.ok()) return GrpcFailure("task_update", s);
  if (!r.lease_valid()) {
    std::string why = Short(pb::LeaseLossReason_Name(r.lease_loss_reason()), "LEASE_LOSS_REASON_");
    return Result(absl::StrCat("your lease on ", task_id, " is no longer valid (", why,
                               "): stop working on it"),
                  {{"lease_valid", false}, {"reason", why}}, true);
  }
  if (r.has_lease()) leases_[task_id] = r.lease();
  return Result(absl::StrCat("progress on ", task_id, " recorded",
                             r.cancel_requested() ? "; CANCEL REQUESTED: stop and release" : ""),
                {{"lease_valid", true},
                 {"cancel_requested", r.cancel_requested()},
                 {"lease_expires_at", Ts(r.lease().expires_at())}});
}

json McpServer::TaskComplete(const json& a) {
  const std::string task_id = a["task_id"].get<std::string>();
  pb::Lease lease;
  std::string error;
  pb::CompleteRequest req;
  req.set_task_id(task_id);
  if (LeaseOf(task_id, &lease, &error)) {
    req.set_lease_id(lease.lease_id());
    req.set_lease_epoch(lease.epoch());
  }
  req.mutable_result()->set_stop_reason(pb::STOP_REASON_DONE);
  req.mutable_result()->set_summary(a["summary"].get<std::string>());
  req.mutable_result()->set_commit_sha(a.value("commit_sha", ""));
  pb::CompleteResponse r;
  grpc::Status s = tasks_->Complete(Ctx().get(), req, &r);
  if (!s.ok()) return GrpcFailure("task_complete", s);
  leases_.erase(task_id);
  return Result(absl::StrCat("completed ", task_id, " -> ",
                             Short(pb::TaskState_Name(r.task().state()), "TASK_STATE_")),
                {{"task", TaskJson(r.task())}});
}

json McpServer::ReservePaths(const json& a) {
  pb::ReserveRequest req;
  req.set_workspace(a.value("workspace", options_.workspace));
  for (const json& p : a["patterns"]) req.add_patterns(p.get<std::string>());
  req.set_mode(a.value("shared", false) ? pb::RESERVATION_MODE_SHARED
                                        : pb::RESERVATION_MODE_EXCLUSIVE);
  if (a.contains("ttl_seconds")) req.mutable_ttl()->set_seconds(a["ttl_seconds"].get<int64_t>());
  req.set_reason(a.value("reason", ""));
  req.set_task_id(a.value("task_id", ""));
  req.set_allow_partial(true);  // the model gets an answer per pattern
  pb::ReserveResponse r;
  grpc::Status s = tasks_->Reserve(Ctx().get(), req, &r);
  if (!s.ok()) return GrpcFailure("reserve_paths", s);
  json results = json::array();
  std::vector<std::string> lines;
  bool all_ok = true;
  for (const pb::PathResult& p : r.results()) {
    results.push_back(PathResultJson(p));
    lines.push_back(DescribePathResult(p));
    all_ok = all_ok && p.outcome() == pb::PATH_OUTCOME_OK;
  }
  return Result(absl::StrCat(all_ok ? "reserved" : "NOT all reserved", " in ", req.workspace(),
                             ":\n", absl::StrJoin(lines, "\n")),
                {{"workspace", req.workspace()}, {"all_reserved", all_ok}, {"results", results}},
                !all_ok);
}

json McpServer::ReleasePaths(const json& a) {
  pb::ReleaseReservationRequest req;
  req.set_workspace(a.value("workspace", options_.workspace));
  if (a.contains("patterns")) {
    for (const json& p : a["patterns"]) req.add_patterns(p.get<std::string>());
  }
  req.set_all(a.value("all", false));
  if (req.patterns().empty() && !req.all()) {
    return Result("release_paths: give patterns or all: true",
                  {{"error", {{"code", "INVALID_ARGUMENT"},
                              {"message", "give patterns or all: true"}}}},
                  true);
  }
  pb::ReleaseReservationResponse r;
  grpc::Status s = tasks_->ReleaseReservation(Ctx().get(), req, &r);
  if (!s.ok()) return GrpcFailure("release_paths", s);
  json results = json::array();
  std::vector<std::string> lines;
  for (const pb::PathResult& p : r.results()) {
    results.push_back(PathResultJson(p));
    lines.push_back(DescribePathResult(p));
  }
  return Result(absl::StrCat("released ", r.released_count(), lines.empty() ? "" : ":\n",
                             absl::StrJoin(lines, "\n")),
                {{"released_count", r.released_count()}, {"results", results}});
}

void McpServer::Serve(std::FILE* in, std::FILE* out) {
  std::string line;
  bool oversize = false;
  size_t seen = 0;
  auto flush_line = [&]() {
    std::optional<std::string> response;
    if (oversize) {
      response = Dump(ErrorResponse(nullptr, kInvalidRequest,
                                    absl::StrCat("request too large: ", seen, " bytes > ",
                                                 options_.max_line_bytes)));
    } else {
      response = HandleLine(line);
    }
    if (response) {
      std::fwrite(response->data(), 1, response->size(), out);
      std::fputc('\n', out);
      std::fflush(out);
    }
    line.clear();
    oversize = false;
    seen = 0;
  };
  for (;;) {
    int c = getc_unlocked(in);
    if (c == EOF) break;
    if (c == '\n') {
      flush_line();
      continue;
    }
    ++seen;
    if (!oversize) {
      line.push_back(static_cast<char>(c));
      if (line.size() > options_.max_line_bytes) {  // stop buffering; answer at the newline
        oversize = true;
        line.clear();
        line.shrink_to_fit();
      }
    }
  }
  if (!line.empty() || oversize) flush_line();
}

}  // namespace cnet::cli
