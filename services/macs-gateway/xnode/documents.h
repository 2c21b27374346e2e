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

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/claudenet/v1/registry.pb.h"
#include "proto/claudenet/v1/tasks.pb.h"
#include "services/macs-gateway/xnode/json_tree.h"

namespace cnet::federation {

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
JsonValue AgentDocument(const claudenet::v1::Agent& agent, absl::Time published_at);
// The agent in `doc` (stored under key `id`). INVALID_ARGUMENT when the
// document is malformed, its id differs from the key, or it has no node.
absl::StatusOr<claudenet::v1::Agent> AgentFromDocument(const JsonValue& doc,
                                                       const std::string& id);

// ---- /tasks/{bucket}/{id}
// "available" (CREATED, QUEUED), "assigned" (ASSIGNED, RUNNING,
// INPUT_REQUIRED, REVIEWING) or "completed" (COMPLETED, FAILED, CANCELLED).
std::string TaskBucket(claudenet::v1::TaskState state);
JsonValue TaskDocument(const claudenet::v1::Task& task);
absl::StatusOr<claudenet::v1::Task> TaskFromDocument(const JsonValue& doc, const std::string& id);

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
JsonValue TaskOpDocument(const TaskOp& op);
absl::StatusOr<TaskOp> TaskOpFromDocument(const JsonValue& doc, const std::string& op_id);

struct TaskOpResult {
  std::string op_id;
  int code = 0;  // grpc status code
  std::string message;
  JsonValue response;  // the tasks.proto response message, protobuf JSON
};
JsonValue TaskOpResultDocument(const TaskOpResult& result);
absl::StatusOr<TaskOpResult> TaskOpResultFromDocument(const JsonValue& doc,
                                                      const std::string& op_id);

// Protobuf message <-> JSON value (protobuf JSON mapping, proto field names).
JsonValue MessageToValue(const google::protobuf::Message& message);
absl::Status ValueToMessage(const JsonValue& value, google::protobuf::Message* message);

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_DOCUMENTS_H_
