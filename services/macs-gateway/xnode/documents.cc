#include "services/macs-gateway/xnode/documents.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "libs/crypto/crypto.h"

namespace cnet::federation {
namespace pb = ::claudenet::v1;
using google::protobuf::util::TimeUtil;

bool ValidKey(const std::string& key) {
  if (key.empty() || key.size() > 768) return false;
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f || c == '.' || c == '$' || c == '#' || c == '[' || c == ']' ||
        c == '/') {
      return false;
    }
  }
  return true;
}

std::string NodeKey(const std::string& node) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : node) {
    if (c < 0x20 || c == 0x7f || c == '.' || c == '$' || c == '#' || c == '[' || c == ']' ||
        c == '/' || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string EnumWord(const std::string& enum_name, const std::string& prefix) {
  std::string s = enum_name;
  if (absl::StartsWith(s, prefix)) s = s.substr(prefix.size());
  return absl::AsciiStrToLower(s);
}

namespace {

JsonValue Str(const std::string& s) {
  JsonValue v;
  v.set_string_value(s);
  return v;
}
JsonValue Num(double d) {
  JsonValue v;
  v.set_number_value(d);
  return v;
}
JsonValue StrList(const google::protobuf::RepeatedPtrField<std::string>& items) {
  JsonValue v;
  auto* list = v.mutable_list_value();
  for (const std::string& s : items) *list->add_values() = Str(s);
  return v;
}
std::string Rfc3339(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "";
  return TimeUtil::ToString(ts);
}

}  // namespace

namespace {

// Removes what the Realtime Database does not store: nulls, empty objects
// and empty arrays (recursively). Returns true when `v` itself is empty.
bool PruneEmpty(JsonValue* v) {
  if (v->kind_case() == JsonValue::kStructValue) {
    auto* fields = v->mutable_struct_value()->mutable_fields();
    for (auto it = fields->begin(); it != fields->end();) {
      if (PruneEmpty(&it->second)) {
        it = fields->erase(it);
      } else {
        ++it;
      }
    }
    return fields->empty();
  }
  if (v->kind_case() == JsonValue::kListValue) {
    auto* values = v->mutable_list_value()->mutable_values();
    for (int i = values->size() - 1; i >= 0; --i) {
      if (PruneEmpty(values->Mutable(i))) values->DeleteSubrange(i, 1);
    }
    return values->empty();
  }
  return IsNull(*v);
}

// The deterministic serialization of `body` as it reads back from the
// database (empty objects/arrays and nulls dropped), so that the signer and
// the verifier hash the same bytes.
std::string CanonicalBytes(const google::protobuf::Message& body) {
  JsonValue v = MessageToValue(body);
  PruneEmpty(&v);
  std::unique_ptr<google::protobuf::Message> copy(body.New());
  (void)ValueToMessage(v, copy.get());
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    copy->SerializeToCodedStream(&coded);
  }
  return bytes;
}

}  // namespace

std::string DocSignature(const std::string& secret, const std::string& kind,
                         const std::vector<std::string>& parts,
                         const google::protobuf::Message* body) {
  std::string bytes;
  if (body != nullptr) bytes = CanonicalBytes(*body);
  std::string data = "CNET-XNODE-V1\n" + kind + "\n" + absl::StrJoin(parts, "\n") + "\n" +
                     crypto::Sha256Hex(bytes);
  return crypto::HmacSha256Hex(secret, data);
}

bool VerifyDocSignature(const std::string& secret, const std::string& kind,
                        const std::vector<std::string>& parts,
                        const google::protobuf::Message* body, const std::string& sig) {
  return !sig.empty() &&
         crypto::ConstantTimeEquals(DocSignature(secret, kind, parts, body), sig);
}

JsonValue MessageToValue(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  auto v = ParseJson(json);
  return v.ok() ? *v : JsonValue();
}

absl::Status ValueToMessage(const JsonValue& value, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // newer nodes may add fields
  auto status = google::protobuf::util::JsonStringToMessage(ToJson(value), message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError("record: " + std::string(status.message()));
  }
  return absl::OkStatus();
}

JsonValue AgentDocument(const pb::Agent& a, absl::Time published_at, const std::string& secret) {
  JsonValue doc;
  auto& f = *doc.mutable_struct_value()->mutable_fields();
  f["id"] = Str(a.id());
  f["name"] = Str(a.name());
  f["status"] = Str(EnumWord(pb::AgentStatus_Name(a.status()), "AGENT_STATUS_"));
  f["health"] = Str(EnumWord(pb::Health_Name(a.health()), "HEALTH_"));
  f["last_heartbeat"] = Str(Rfc3339(a.last_heartbeat()));
  f["capabilities"] = StrList(a.capabilities());
  f["location"] = Str(a.location());
  JsonValue metrics;
  auto& m = *metrics.mutable_struct_value()->mutable_fields();
  m["messages_sent"] = Num(static_cast<double>(a.metrics().messages_sent()));
  m["messages_received"] = Num(static_cast<double>(a.metrics().messages_received()));
  m["uptime_seconds"] = Num(static_cast<double>(a.metrics().uptime().seconds()));
  m["load"] = Num(a.metrics().load());
  m["active_tasks"] = Num(a.metrics().active_tasks());
  m["errors"] = Num(static_cast<double>(a.metrics().errors()));
  f["metrics"] = metrics;
  f["node"] = Str(a.node());
  f["kind"] = Str(EnumWord(pb::AgentKind_Name(a.kind()), "AGENT_KIND_"));
  if (a.has_public_key()) {
    JsonValue key;
    auto& k = *key.mutable_struct_value()->mutable_fields();
    k["algorithm"] = Str(EnumWord(pb::KeyAlgorithm_Name(a.public_key().algorithm()),
                                  "KEY_ALGORITHM_"));
    k["key_id"] = Str(a.public_key().key_id());
    f["public_key"] = key;  // the key bytes themselves are in record.public_key
  }
  f["published_at"] = Str(absl::FormatTime(absl::RFC3339_full, published_at, absl::UTCTimeZone()));
  f["record"] = MessageToValue(a);
  if (!secret.empty()) f["sig"] = Str(DocSignature(secret, "agent", {a.id(), a.node()}, &a));
  return doc;
}

absl::StatusOr<pb::Agent> AgentFromDocument(const JsonValue& doc, const std::string& id,
                                             const std::string& secret) {
  if (doc.kind_case() != JsonValue::kStructValue) {
    return absl::InvalidArgumentError("agents/" + id + ": not an object");
  }
  pb::Agent a;
  const JsonValue* record = Field(doc, "record");
  if (record != nullptr) {
    absl::Status s = ValueToMessage(*record, &a);
    if (!s.ok()) return absl::InvalidArgumentError("agents/" + id + ": " + std::string(s.message()));
  } else {
    // A seed (Firebase-only) agent: the flat fields.
    a.set_id(StringField(doc, "id"));
    a.set_name(StringField(doc, "name"));
    a.set_location(StringField(doc, "location"));
    a.set_node(StringField(doc, "node"));
    if (const JsonValue* caps = Field(doc, "capabilities");
        caps != nullptr && caps->kind_case() == JsonValue::kListValue) {
      for (const JsonValue& c : caps->list_value().values()) {
        if (c.kind_case() == JsonValue::kStringValue) a.add_capabilities(c.string_value());
      }
    }
    pb::AgentStatus status;
    if (pb::AgentStatus_Parse("AGENT_STATUS_" + absl::AsciiStrToUpper(StringField(doc, "status")),
                              &status)) {
      a.set_status(status);
    }
    pb::Health health;
    if (pb::Health_Parse("HEALTH_" + absl::AsciiStrToUpper(StringField(doc, "health")), &health)) {
      a.set_health(health);
    }
    std::string hb = StringField(doc, "last_heartbeat");
    if (!hb.empty() && !TimeUtil::FromString(hb, a.mutable_last_heartbeat())) {
      return absl::InvalidArgumentError("agents/" + id + ": last_heartbeat \"" + hb +
                                        "\" is not RFC 3339");
    }
  }
  if (a.id() != id) {
    return absl::InvalidArgumentError("agents/" + id + ": id \"" + a.id() +
                                      "\" differs from its key");
  }
  if (a.node().empty()) return absl::InvalidArgumentError("agents/" + id + ": node is empty");
  if (!secret.empty() && (record == nullptr || !VerifyDocSignature(secret, "agent", {a.id(), a.node()},
                                                                   &a, StringField(doc, "sig")))) {
    return absl::UnauthenticatedError("agents/" + id + ": " +
                                      (StringField(doc, "sig").empty() ? "unsigned"
                                                                       : "wrongly signed"));
  }
  a.set_remote(false);  // output only; the registry sets it
  return a;
}

std::string TaskBucket(pb::TaskState state) {
  switch (state) {
    case pb::TASK_STATE_ASSIGNED:
    case pb::TASK_STATE_RUNNING:
    case pb::TASK_STATE_INPUT_REQUIRED:
    case pb::TASK_STATE_REVIEWING:
      return "assigned";
    case pb::TASK_STATE_COMPLETED:
    case pb::TASK_STATE_FAILED:
    case pb::TASK_STATE_CANCELLED:
      return "completed";
    default:
      return "available";
  }
}

JsonValue TaskDocument(const pb::Task& t, const std::string& secret) {
  JsonValue doc;
  auto& f = *doc.mutable_struct_value()->mutable_fields();
  f["id"] = Str(t.id());
  f["title"] = Str(t.title());
  f["description"] = Str(t.description());
  f["status"] = Str(EnumWord(pb::TaskState_Name(t.state()), "TASK_STATE_"));
  f["priority"] = Str(EnumWord(pb::Priority_Name(t.priority()), "PRIORITY_"));
  f["required_capabilities"] = StrList(t.required_capabilities());
  f["assigned_to"] = Str(t.assignee());
  f["created_by"] = Str(t.creator().id());
  f["created_at"] = Str(Rfc3339(t.created_at()));
  f["updated_at"] = Str(Rfc3339(t.updated_at()));
  f["node"] = Str(t.origin_node());
  f["progress"] = Num(t.progress().percent());
  pb::Task copy = t;
  // Checkpoints can be large (256 KiB); they stay on the owner.
  if (copy.has_progress()) copy.mutable_progress()->clear_checkpoint();
  f["record"] = MessageToValue(copy);
  if (!secret.empty()) {
    f["sig"] = Str(DocSignature(secret, "task", {t.id(), t.origin_node()}, &copy));
  }
  return doc;
}

absl::StatusOr<pb::Task> TaskFromDocument(const JsonValue& doc, const std::string& id,
                                           const std::string& secret) {
  const JsonValue* record = Field(doc, "record");
  if (record == nullptr) return absl::InvalidArgumentError("tasks/" + id + ": no record");
  pb::Task t;
  absl::Status s = ValueToMessage(*record, &t);
  if (!s.ok()) return absl::InvalidArgumentError("tasks/" + id + ": " + std::string(s.message()));
  if (t.id() != id) {
    return absl::InvalidArgumentError("tasks/" + id + ": id \"" + t.id() + "\" differs from its key");
  }
  if (t.origin_node().empty()) return absl::InvalidArgumentError("tasks/" + id + ": no node");
  if (!secret.empty() && !VerifyDocSignature(secret, "task", {t.id(), t.origin_node()}, &t,
                                             StringField(doc, "sig"))) {
    return absl::UnauthenticatedError("tasks/" + id + ": " +
                                      (StringField(doc, "sig").empty() ? "unsigned"
                                                                       : "wrongly signed"));
  }
  return t;
}

std::string TaskOpName(TaskOpKind kind) {
  switch (kind) {
    case TaskOpKind::kClaim: return "claim";
    case TaskOpKind::kStart: return "start";
    case TaskOpKind::kProgress: return "progress";
    case TaskOpKind::kRenewLease: return "renew_lease";
    case TaskOpKind::kRelease: return "release";
    case TaskOpKind::kComplete: return "complete";
    case TaskOpKind::kFail: return "fail";
  }
  return "?";
}

bool ParseTaskOpName(const std::string& name, TaskOpKind* kind) {
  for (TaskOpKind k : {TaskOpKind::kClaim, TaskOpKind::kStart, TaskOpKind::kProgress,
                       TaskOpKind::kRenewLease, TaskOpKind::kRelease, TaskOpKind::kComplete,
                       TaskOpKind::kFail}) {
    if (TaskOpName(k) == name) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::unique_ptr<google::protobuf::Message> NewOpRequest(TaskOpKind kind) {
  switch (kind) {
    case TaskOpKind::kClaim: return std::make_unique<pb::ClaimRequest>();
    case TaskOpKind::kStart: return std::make_unique<pb::StartRequest>();
    case TaskOpKind::kProgress: return std::make_unique<pb::ProgressRequest>();
    case TaskOpKind::kRenewLease: return std::make_unique<pb::RenewLeaseRequest>();
    case TaskOpKind::kRelease: return std::make_unique<pb::ReleaseRequest>();
    case TaskOpKind::kComplete: return std::make_unique<pb::CompleteRequest>();
    case TaskOpKind::kFail: return std::make_unique<pb::FailRequest>();
  }
  return nullptr;
}

std::unique_ptr<google::protobuf::Message> NewOpResponse(TaskOpKind kind) {
  switch (kind) {
    case TaskOpKind::kClaim: return std::make_unique<pb::ClaimResponse>();
    case TaskOpKind::kStart: return std::make_unique<pb::StartResponse>();
    case TaskOpKind::kProgress: return std::make_unique<pb::ProgressResponse>();
    case TaskOpKind::kRenewLease: return std::make_unique<pb::RenewLeaseResponse>();
    case TaskOpKind::kRelease: return std::make_unique<pb::ReleaseResponse>();
    case TaskOpKind::kComplete: return std::make_unique<pb::CompleteResponse>();
    case TaskOpKind::kFail: return std::make_unique<pb::FailResponse>();
  }
  return nullptr;
}

namespace {

std::vector<std::string> OpParts(const TaskOp& op) {
  return {op.op_id, op.from_node, op.agent_id, op.task_id, TaskOpName(op.kind)};
}

}  // namespace

JsonValue TaskOpDocument(const TaskOp& op, const std::string& secret) {
  JsonValue doc;
  auto& f = *doc.mutable_struct_value()->mutable_fields();
  f["op_id"] = Str(op.op_id);
  f["from_node"] = Str(op.from_node);
  f["agent_id"] = Str(op.agent_id);
  f["task_id"] = Str(op.task_id);
  f["op"] = Str(TaskOpName(op.kind));
  f["request"] = op.request;
  f["created_ms"] = Num(static_cast<double>(op.created_ms));
  if (!secret.empty()) {
    auto req = NewOpRequest(op.kind);
    if (ValueToMessage(op.request, req.get()).ok()) {
      f["sig"] = Str(DocSignature(secret, "op", OpParts(op), req.get()));
    }
  }
  return doc;
}

absl::StatusOr<TaskOp> TaskOpFromDocument(const JsonValue& doc, const std::string& op_id,
                                           const std::string& secret) {
  TaskOp op;
  op.op_id = StringField(doc, "op_id");
  if (op.op_id != op_id) {
    return absl::InvalidArgumentError("task_ops/" + op_id + ": op_id differs from its key");
  }
  op.from_node = StringField(doc, "from_node");
  op.agent_id = StringField(doc, "agent_id");
  op.task_id = StringField(doc, "task_id");
  if (op.from_node.empty() || op.agent_id.empty() || op.task_id.empty()) {
    return absl::InvalidArgumentError("task_ops/" + op_id +
                                      ": from_node, agent_id and task_id are required");
  }
  if (!ParseTaskOpName(StringField(doc, "op"), &op.kind)) {
    return absl::InvalidArgumentError("task_ops/" + op_id + ": unknown op \"" +
                                      StringField(doc, "op") + "\"");
  }
  const JsonValue* req = Field(doc, "request");
  if (req == nullptr || req->kind_case() != JsonValue::kStructValue) {
    return absl::InvalidArgumentError("task_ops/" + op_id + ": request is not an object");
  }
  op.request = *req;
  op.created_ms = static_cast<int64_t>(NumberField(doc, "created_ms"));
  if (!secret.empty()) {
    auto typed = NewOpRequest(op.kind);
    absl::Status parsed = ValueToMessage(op.request, typed.get());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError("task_ops/" + op_id + ": request: " +
                                        std::string(parsed.message()));
    }
    if (!VerifyDocSignature(secret, "op", OpParts(op), typed.get(), StringField(doc, "sig"))) {
      return absl::UnauthenticatedError("task_ops/" + op_id + ": " +
                                        (StringField(doc, "sig").empty() ? "unsigned"
                                                                         : "wrongly signed"));
    }
  }
  return op;
}

JsonValue TaskOpResultDocument(const TaskOpResult& r, TaskOpKind kind,
                               const std::string& secret) {
  JsonValue doc;
  auto& f = *doc.mutable_struct_value()->mutable_fields();
  f["op_id"] = Str(r.op_id);
  f["code"] = Num(r.code);
  f["message"] = Str(r.message);
  if (!IsNull(r.response)) f["response"] = r.response;
  if (!secret.empty()) {
    auto resp = NewOpResponse(kind);
    if (r.code == 0) (void)ValueToMessage(r.response, resp.get());
    f["sig"] = Str(DocSignature(secret, "result", {r.op_id, std::to_string(r.code), r.message},
                                r.code == 0 ? resp.get() : nullptr));
  }
  return doc;
}

absl::Status VerifyTaskOpResult(const TaskOpResult& r, TaskOpKind kind,
                                const std::string& secret) {
  if (secret.empty()) return absl::OkStatus();
  auto resp = NewOpResponse(kind);
  if (r.code == 0) {
    absl::Status parsed = ValueToMessage(r.response, resp.get());
    if (!parsed.ok()) return parsed;
  }
  if (!VerifyDocSignature(secret, "result", {r.op_id, std::to_string(r.code), r.message},
                          r.code == 0 ? resp.get() : nullptr, r.sig)) {
    return absl::UnauthenticatedError("task_results/" + r.op_id + ": " +
                                      (r.sig.empty() ? "unsigned" : "wrongly signed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TaskOpResult> TaskOpResultFromDocument(const JsonValue& doc,
                                                      const std::string& op_id) {
  TaskOpResult r;
  r.op_id = StringField(doc, "op_id");
  if (r.op_id != op_id) {
    return absl::InvalidArgumentError("task_results/" + op_id + ": op_id differs from its key");
  }
  double code = NumberField(doc, "code", -1);
  if (code < 0 || code > 16) {
    return absl::InvalidArgumentError("task_results/" + op_id + ": code out of range");
  }
  r.code = static_cast<int>(code);
  r.message = StringField(doc, "message");
  r.sig = StringField(doc, "sig");
  if (const JsonValue* resp = Field(doc, "response"); resp != nullptr) r.response = *resp;
  return r;
}

}  // namespace cnet::federation
