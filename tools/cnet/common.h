// Helpers shared by the cnet command groups added after the foundation
// (msg, task, monitor, agent run) and reusable by later ones:
//
//   * credentials: which agent acts and with which token (lookup order
//     documented at ResolveIdentity), the admin fallback for reads, and
//     the message signing key;
//   * input: payloads and results from a flag, a file or stdin;
//   * output: protobuf messages as JSON (proto field names), short enum
//     names, "12s ago" ages, one-line errors with the documented exit code.
#ifndef CNET_TOOLS_CNET_COMMON_H_
#define CNET_TOOLS_CNET_COMMON_H_

#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/cnet/cli.h"

namespace cnet::cli {

// An agent identity: its id and bearer token, and the file it came from
// (empty when given by flag or environment).
struct Identity {
  std::string id;
  std::string token;
  std::string path;
  // The agent's Ed25519 key, when `cnet agent join` registered one: the raw
  // 32-byte seed (hex "ed25519_seed" in the file) and the registry's key id.
  // Empty for older identity files and for --token identities.
  std::string ed25519_seed;
  std::string key_id;
};

// ~/.claude-network/agents (the directory `cnet agent join` saves into).
std::string IdentityDir(Globals* g);
// Ids of the saved identities, sorted.
std::vector<std::string> SavedIdentityIds(Globals* g);
// Reads ~/.claude-network/agents/<id>.json.
absl::StatusOr<Identity> LoadSavedIdentity(Globals* g, const std::string& id);

// The identity acting for a command. Lookup order:
//   1. --token / CNET_TOKEN, with the agent id from --agent / CNET_AGENT
//      (else the saved identity whose token it is; else the id is empty);
//   2. --agent / CNET_AGENT (or the command's --as): that saved identity;
//   3. the only saved identity;
//   4. agent.id from the configuration, if saved.
// UNAUTHENTICATED (exit 4) when none is found, the message saying what to do.
absl::StatusOr<Identity> ResolveIdentity(Globals* g, const std::string& as = "");

// A credential for read-only calls: the acting identity's token if there
// is one, else the local admin credential (<data_dir>/admin.token).
std::string ReaderCredential(Globals* g, const std::string& as = "");

// The HMAC key messages are signed with: security.shared_secret, else the
// gateway's local secret <data_dir>/message.secret; "" when
// security.use_message_signing is false.
std::string SigningKey(Globals* g);

// Text from exactly one source: `inline_text` when not empty, else the
// file (`-` = stdin); `fallback` when neither is given.
absl::StatusOr<std::string> ReadInput(const std::string& inline_text, const std::string& file,
                                      const std::string& what, const std::string& fallback = "");
// A JSON object for a Struct field (e.g. a payload); INVALID_ARGUMENT naming
// `what` when the text is not a JSON object.
absl::Status ParseStruct(const std::string& json_text, const std::string& what,
                         google::protobuf::Struct* out);

// The message as JSON with proto field names (what --json prints).
std::string ProtoJson(const google::protobuf::Message& m);
nlohmann::json ProtoJsonValue(const google::protobuf::Message& m);

// An enum value name without its prefix: ShortName(pb::TASK_STATE_QUEUED,
// pb::TaskState_descriptor()) == "QUEUED"; "-" for *_UNSPECIFIED.
std::string ShortName(int value, const google::protobuf::EnumDescriptor* d);
// Parses "queued" / "QUEUED" / "TASK_STATE_QUEUED" into an enum number;
// false when unknown or UNSPECIFIED.
bool ParseEnum(const std::string& text, const google::protobuf::EnumDescriptor* d, int* out);

// "12s ago", "3m ago", "-" when unset.
std::string Ago(const google::protobuf::Timestamp& t);
// Seconds since t (0 when unset).
double AgeSeconds(const google::protobuf::Timestamp& t);

grpc::Status ToGrpcStatus(const absl::Status& s);
// ReportError for an absl::Status.
int ReportAbsl(const Globals& g, const std::string& what, const absl::Status& s);
// A usage error (exit 1): one line naming what was wrong.
int ReportUsage(const Globals& g, const std::string& what, const std::string& message);

// Prints one JSON value on stdout (the --json contract).
void PrintJson(const nlohmann::json& j);

// Stops long-running commands (watch, monitor, agent run) cleanly: while
// it lives, SIGINT and SIGTERM run `on_stop` once, on a dedicated thread
// (as does Stop(), e.g. from a --for timer); then the default handlers
// are restored. One at a time per process.
class StopSignal {
 public:
  explicit StopSignal(std::function<void()> on_stop);
  ~StopSignal();
  void Stop();
  bool stopped() const;
  // The signal that stopped us (0 = none or Stop()).
  int signal() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Command groups built on these helpers (msg_cmd.cc, task_cmd.cc,
// monitor_cmd.cc, agent_run.cc, skill_history_cmd.cc).
void AddMsgCommands(CLI::App* app, Globals* g);
void AddTaskCommands(CLI::App* app, Globals* g);
void AddMonitorCommands(CLI::App* app, Globals* g);
// Adds an example to the --help of the top level and of each group that
// has none (call after every group is registered).
void AddHelpExamples(CLI::App* app);
// Adds `history` and `stats` to the existing `skill` group.
void AddSkillHistoryCommands(CLI::App* app, Globals* g);
// Adds `run` to the existing `agent` group; returns it so that main can
// tell it apart from the AgentCommands subcommands.
CLI::App* AddAgentRunCommand(CLI::App* app, Globals* g);

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_COMMON_H_
