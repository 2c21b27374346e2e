// MCP protocol handling of `cnet mcp` without a suite (every backend call
// would be UNAVAILABLE), and the workspace helpers of agent_context.h.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tools/cnet/agent_context.h"
#include "tools/cnet/mcp_server.h"

namespace cnet::cli {
namespace {
using nlohmann::json;

class McpProtocolTest : public ::testing::Test {
 protected:
  McpProtocolTest() : server_(Options()) {}

  static McpOptions Options() {
    McpOptions o;
    o.agent_id = "agent-test";
    o.identity_error = "no saved identity";
    o.max_line_bytes = 256;
    o.deadline = absl::Milliseconds(200);
    auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
    o.registry = o.macs = o.tasks = channel;
    return o;
  }

  json Handle(const std::string& line) {
    std::optional<std::string> out = server_.HandleLine(line);
    if (!out) return json();
    EXPECT_EQ(out->find('\n'), std::string::npos) << "one message per line";
    return json::parse(*out);
  }

  int ErrorCode(const std::string& line) {
    json r = Handle(line);
    EXPECT_EQ(r["jsonrpc"], "2.0");
    EXPECT_FALSE(r.contains("result"));
    return r["error"]["code"].get<int>();
  }

  McpServer server_;
};

TEST_F(McpProtocolTest, InitializeNegotiatesTheProtocolVersion) {
  for (const std::string& v : McpServer::SupportedVersions()) {
    json r = Handle(json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
                         {"params", {{"protocolVersion", v}, {"capabilities", json::object()}}}}
                        .dump());
    EXPECT_EQ(r["id"], 1);
    EXPECT_EQ(r["result"]["protocolVersion"], v);
    EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
    EXPECT_EQ(r["result"]["serverInfo"]["name"], "cnet");
  }
  json r = Handle(R"({"jsonrpc":"2.0","id":"x","method":"initialize","params":{"protocolVersion":"2030-01-01"}})");
  EXPECT_EQ(r["id"], "x");
  EXPECT_EQ(r["result"]["protocolVersion"], McpServer::SupportedVersions().front());
}

TEST_F(McpProtocolTest, ErrorCodes) {
  EXPECT_EQ(ErrorCode("{"), -32700);
  EXPECT_EQ(Handle("{")["id"], nullptr);
  EXPECT_EQ(ErrorCode("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]"), -32600);
  EXPECT_EQ(ErrorCode("\"ping\""), -32600);
  EXPECT_EQ(ErrorCode(R"({"id":1,"method":"ping"})"), -32600);
  EXPECT_EQ(ErrorCode(R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})"), -32600);
  EXPECT_EQ(ErrorCode(R"({"jsonrpc":"2.0","id":1,"method":7})"), -32600);
  EXPECT_EQ(ErrorCode(R"({"jsonrpc":"2.0","id":1})"), -32600);
  EXPECT_EQ(ErrorCode(std::string(300, ' ') + "{}"), -32600);  // over max_line_bytes
  EXPECT_EQ(ErrorCode(R"({"jsonrpc":"2.0","id":1,"method":"prompts/list"})"), -32601);
  EXPECT_EQ(ErrorCode(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}})"), -32602);
  json r = Handle(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ack","arguments":{"sequences":["a"]}}})");
  EXPECT_EQ(r["error"]["code"], -32602);
  EXPECT_EQ(r["error"]["message"], "params.arguments.sequences[0]: must be an integer");
  r = Handle(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ack","arguments":{"sequences":[1],"extra":1}}})");
  EXPECT_EQ(r["error"]["message"], "params.arguments.extra: unknown argument");
  r = Handle(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"send_message","arguments":{"to":"b","body":"x","priority":"urgent"}}})");
  EXPECT_EQ(r["error"]["code"], -32602);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("arguments.priority"),
            std::string::npos);
}

TEST_F(McpProtocolTest, NotificationsAndClientResponsesAreNotAnswered) {
  EXPECT_TRUE(Handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").is_null());
  EXPECT_TRUE(Handle(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}})").is_null());
  EXPECT_TRUE(Handle(R"({"jsonrpc":"2.0","id":5,"result":{}})").is_null());
  EXPECT_TRUE(Handle("   ").is_null());
  EXPECT_EQ(Handle(R"({"jsonrpc":"2.0","id":6,"method":"ping"})")["result"], json::object());
}

TEST_F(McpProtocolTest, ToolsHaveShortObjectSchemas) {
  json r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  const json& tools = r["result"]["tools"];
  EXPECT_EQ(tools.size(), 11u);
  for (const json& t : tools) {
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t.dump();
    EXPECT_LE(t.dump().size(), 1200u) << "tool descriptions cost the model context: " << t.dump();
  }
}

TEST_F(McpProtocolTest, ToolFailuresAreResultsWithIsError) {
  // With a token but no suite: the call runs and fails -> isError.
  McpOptions o = Options();
  o.token = "secret";
  McpServer server(o);
  std::optional<std::string> out = server.HandleLine(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"network_status"}})");
  ASSERT_TRUE(out);
  json r = json::parse(*out);
  EXPECT_EQ(r["result"]["isError"], true);
  EXPECT_EQ(r["result"]["content"][0]["type"], "text");
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("unreachable"),
            std::string::npos);
  EXPECT_TRUE(r["result"]["structuredContent"]["error"].contains("code"));
  // Without an identity: also a tool error, naming the remedy.
  json n = Handle(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_agents","arguments":{}}})");
  EXPECT_EQ(n["result"]["isError"], true);
  EXPECT_NE(n["result"]["content"][0]["text"].get<std::string>().find("cnet agent join"),
            std::string::npos);
}

TEST(AgentContextTest, NormalisesRemotes) {
  EXPECT_EQ(NormaliseRemote("git@github.com:Org/Repo.git\n"), "github.com/org/repo");
  EXPECT_EQ(NormaliseRemote("https://user@github.com/org/repo"), "github.com/org/repo");
  EXPECT_EQ(NormaliseRemote("ssh://git@host.example:22/x/y.git"), "host.example:22/x/y");
  EXPECT_EQ(NormaliseRemote("https://github.com/org/repo/"), "github.com/org/repo");
}

TEST(AgentContextTest, PathsRelativeToTheRoot) {
  std::string root = std::filesystem::temp_directory_path().string() + "/agentx-root";
  EXPECT_EQ(RelativeTo(root, root, root + "/src/a.cc").value_or("?"), "src/a.cc");
  EXPECT_EQ(RelativeTo(root, root + "/src", "b/../c.cc").value_or("?"), "src/c.cc");
  EXPECT_FALSE(RelativeTo(root, root, "/etc/passwd").has_value());
  EXPECT_FALSE(RelativeTo(root, root, root).has_value());
  EXPECT_FALSE(RelativeTo(root, root, root + "-other/x").has_value());
}

}  // namespace
}  // namespace cnet::cli
