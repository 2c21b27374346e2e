// `cnet mcp`: a Model Context Protocol server over stdio.
//
// Transport: JSON-RPC 2.0 messages, one per line (UTF-8, no embedded
// newlines), requests on stdin, responses on stdout, logs on stderr.
// Methods: initialize (protocol version negotiation; capabilities
// {tools}), ping, tools/list, tools/call; notifications
// (notifications/initialized, notifications/cancelled, ...) are accepted
// and never answered. Errors are JSON-RPC error objects: -32700 parse
// error, -32600 invalid request (also batches and lines over the size
// limit), -32601 unknown method, -32602 invalid params naming the field;
// a tool that runs but fails answers a result with isError: true and the
// reason as text. The server acts as one agent (its saved identity or
// token) and keeps serving after any bad line.
#ifndef CNET_TOOLS_CNET_MCP_SERVER_H_
#define CNET_TOOLS_CNET_MCP_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"

namespace cnet::cli {

struct McpOptions {
  std::string agent_id;     // the acting agent ("" when unknown)
  std::string token;        // its credential ("" = tools answer isError)
  std::string identity_error;  // why there is no token, shown by tools
  std::string workspace;    // default workspace of reserve/release
  std::string signing_key;  // HMAC key for messages ("" = unsigned)
  std::string ed25519_seed;    // the agent's Ed25519 seed ("" = no Ed25519 signature)
  std::string ed25519_key_id;  // its registered key id
  std::string version = "0.1.0";
  absl::Duration deadline = absl::Seconds(10);
  size_t max_line_bytes = 1 << 20;
  std::shared_ptr<grpc::Channel> registry;
  std::shared_ptr<grpc::Channel> macs;
  std::shared_ptr<grpc::Channel> tasks;
};

class McpServer {
 public:
  // Protocol versions understood, newest first.
  static const std::vector<std::string>& SupportedVersions();

  explicit McpServer(McpOptions options);

  // Handles one line; the response line, or nullopt (notification, blank
  // line, a response from the client).
  std::optional<std::string> HandleLine(const std::string& line);

  // Reads lines from `in` until EOF, writing responses to `out`. Lines over
  // max_line_bytes are refused (-32600) without being buffered whole.
  void Serve(std::FILE* in, std::FILE* out);

  // The tool descriptions of tools/list.
  static nlohmann::json ToolList();

 private:
  struct ToolError {
    std::string message;
  };
  nlohmann::json Dispatch(const nlohmann::json& request, bool* is_error_response);
  nlohmann::json Initialize(const nlohmann::json& params);
  nlohmann::json CallTool(const nlohmann::json& params);
  nlohmann::json RunTool(const std::string& name, const nlohmann::json& args);

  std::unique_ptr<grpc::ClientContext> Ctx() const;

  nlohmann::json NetworkStatus(const nlohmann::json& a);
  nlohmann::json ListAgents(const nlohmann::json& a);
  nlohmann::json SendMessage(const nlohmann::json& a);
  nlohmann::json ReadInbox(const nlohmann::json& a);
  nlohmann::json Ack(const nlohmann::json& a);
  nlohmann::json TaskCreate(const nlohmann::json& a);
  nlohmann::json TaskClaim(const nlohmann::json& a);
  nlohmann::json TaskUpdate(const nlohmann::json& a);
  nlohmann::json TaskComplete(const nlohmann::json& a);
  nlohmann::json ReservePaths(const nlohmann::json& a);
  nlohmann::json ReleasePaths(const nlohmann::json& a);

  // The current lease of a task this agent holds.
  bool LeaseOf(const std::string& task_id, claudenet::v1::Lease* lease, std::string* error);

  McpOptions options_;
  std::unique_ptr<claudenet::v1::RegistryService::Stub> registry_;
  std::unique_ptr<claudenet::v1::MacsGateway::Stub> macs_;
  std::unique_ptr<claudenet::v1::TaskService::Stub> tasks_;
  std::map<std::string, claudenet::v1::Lease> leases_;
  bool initialized_ = false;
};

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_MCP_SERVER_H_
