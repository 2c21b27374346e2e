// The JSON documents the agents/tasks federation keeps in the Realtime
// Database (schema: docs/federation-agents-tasks.md):
//   /agents/{id}                           presence of one agent
//   /tasks/{available|assigned|completed}/{id}  one task, in one bucket
//   /task_ops/{owner_node}/{op_id}         a remote operation on a task
//   /task_results/{requesting_node}/{op_id} its result
// Each document carries the seed's flat fields (for Firebase-only agents)
// and `record`: the full claudenet.v1 message in the protobuf JSON mapping,
// which is what Claude Network nodes read back.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_DOCUMENTS_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_DOCUMENTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/claudenet/v1/registry.pb.h"
#include "proto/claudenet/v1/tasks.pb.h"
#include "services/macs-gateway/xnode/json_tree.h"

namespace cnet::federation {

// Signing with the network's shared secret (security.shared_secret; empty =
// signing disabled, nothing signed or checked). Every document carries
// "sig" = lower-case hex HMAC-SHA256 over
//   "CNET-XNODE-V1\n" kind "\n" part_1 "\n" ... part_n "\n" hex(SHA-256(body))
// where body is the deterministic protobuf serialization of the document's
// record (Agent, Task), request or response message, so the JSON key order
// does not matter. Kinds and parts:
//   agent:  id, node                       body = record (Agent)
//   task:   id, node                       body = record (Task)
//   op:     op_id, from_node, agent_id, task_id, op   body = request
//   result: op_id, code, message           body = response (empty when failed)
std::string DocSignature(const std::string& secret, const std::string& kind,
                         const std::vector<std::string>& parts,
                         const google::protobuf::Message* body);
bool VerifyDocSignature(const std::string& secret, const std::string& kind,
                        const std::vector<std::string>& parts,
                        const google::protobuf::Message* body, const std::string& sig);

// Largest document accepted from the database (bigger ones are rejected
// and logged, never applied).
inline constexpr size_t kMaxDocumentBytes = 512 << 10;

// Firebase keys may not contain . $ # [ ] / or control characters.
bool ValidKey(const std::string& key);

// A node name as a database key: '.', '$', '#', '[', ']', '/', '%' and
// control bytes become %XX (the message path's EscapeKey does the same).
std::string NodeKey(const std::string& node);

// "AGENT_STATUS_ONLINE" -> "online".
std::string EnumWord(const std::string& enum_name, const std::string& prefix);

// ---- /agents/{id}
JsonValue AgentDocument(const claudenet::v1::Agent& agent, absl::Time published_at,
                        const std::string& secret = "");
// The agent in `doc` (stored under key `id`). INVALID_ARGUMENT when the
// document is malformed, its id differs from the key, or it has no node;
// UNAUTHENTICATED when `secret` is set and the document is unsigned or
// wrongly signed (seed documents without a record are then refused too).
absl::StatusOr<claudenet::v1::Agent> AgentFromDocument(const JsonValue& doc,
                                                       const std::string& id,
                                                       const std::string& secret = "");

// ---- /tasks/{bucket}/{id}
// "available" (CREATED, QUEUED), "assigned" (ASSIGNED, RUNNING,
// INPUT_REQUIRED, REVIEWING) or "completed" (COMPLETED, FAILED, CANCELLED).
std::string TaskBucket(claudenet::v1::TaskState state);
JsonValue TaskDocument(const claudenet::v1::Task& task, const std::string& secret = "");
absl::StatusOr<claudenet::v1::Task> TaskFromDocument(const JsonValue& doc, const std::string& id,
                                                     const std::string& secret = "");

// ---- /task_ops and /task_results
enum class TaskOpKind { kClaim, kStart, kProgress, kRenewLease, kRelease, kComplete, kFail };
std::string TaskOpName(TaskOpKind kind);
bool ParseTaskOpName(const std::string& name, TaskOpKind* kind);

struct TaskOp {
  std::string op_id;
  std::string from_node;  // the requesting node (where the agent lives)
  std::string agent_id;   // the acting agent (an agent of from_node)
  std::string task_id;
  TaskOpKind kind = TaskOpKind::kClaim;
  JsonValue request;  // the tasks.proto request message, protobuf JSON
  int64_t created_ms = 0;
};
// The request / response message type of an op kind.
std::unique_ptr<google::protobuf::Message> NewOpRequest(TaskOpKind kind);
std::unique_ptr<google::protobuf::Message> NewOpResponse(TaskOpKind kind);

JsonValue TaskOpDocument(const TaskOp& op, const std::string& secret = "");
absl::StatusOr<TaskOp> TaskOpFromDocument(const JsonValue& doc, const std::string& op_id,
                                          const std::string& secret = "");

struct TaskOpResult {
  std::string op_id;
  int code = 0;  // grpc status code
  std::string message;
  JsonValue response;  // the tasks.proto response message, protobuf JSON
  std::string sig;
};
JsonValue TaskOpResultDocument(const TaskOpResult& result, TaskOpKind kind,
                               const std::string& secret = "");
absl::StatusOr<TaskOpResult> TaskOpResultFromDocument(const JsonValue& doc,
                                                      const std::string& op_id);
// UNAUTHENTICATED when `secret` is set and the result of an op of `kind` is
// unsigned or wrongly signed; INVALID_ARGUMENT when its response does not
// parse.
absl::Status VerifyTaskOpResult(const TaskOpResult& result, TaskOpKind kind,
                                const std::string& secret);

// Protobuf message <-> JSON value (protobuf JSON mapping, proto field names).
JsonValue MessageToValue(const google::protobuf::Message& message);
absl::Status ValueToMessage(const JsonValue& value, google::protobuf::Message* message);

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_DOCUMENTS_H_
