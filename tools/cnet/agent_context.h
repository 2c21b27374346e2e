// What the agent-experience commands (`cnet hook`, `cnet mcp`,
// `cnet reserve`...) share: the acting identity (a saved
// ~/.claude-network/agents/<id>.json, as written by `cnet agent join`),
// the workspace a directory belongs to, and channels to the services.
#ifndef CNET_TOOLS_CNET_AGENT_CONTEXT_H_
#define CNET_TOOLS_CNET_AGENT_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/loader.h"
#include "proto/claudenet/v1/registry.pb.h"
#include "proto/claudenet/v1/tasks.pb.h"

namespace cnet::cli {

// A saved identity.
struct SavedAgent {
  std::string id;
  std::string token;
  std::string path;
  // Ed25519 key from `cnet agent join` (raw 32-byte seed + registry key id);
  // empty for identity files without one.
  std::string ed25519_seed;
  std::string key_id;
};

std::string AgentsDir(const std::string& home);

// Reads ~/.claude-network/agents/<id>.json.
absl::StatusOr<SavedAgent> LoadSavedAgent(const std::string& home, const std::string& id);

// Ids of the saved identities, sorted.
std::vector<std::string> SavedAgentIds(const std::string& home);

// Writes the identity file (0600, atomically, in a 0700 directory): the
// format `cnet agent join` saves. `ed25519_seed` (raw 32 bytes, may be
// empty) is stored hex with the registry's key id when the agent has a
// registered public key.
absl::Status WriteSavedAgent(const std::string& home, const std::string& registry,
                             const claudenet::v1::Agent& agent, const std::string& token,
                             const std::string& ed25519_seed, std::string* path);

// The acting identity: `as`, else $CNET_AGENT_ID or $CNET_AGENT (the
// global --agent of the msg/task commands), else agent.id from the
// configuration, else the only saved identity. NOT_FOUND when none,
// FAILED_PRECONDITION when several are saved and none is chosen.
absl::StatusOr<SavedAgent> ResolveAgent(const config::Config& config, const std::string& home,
                                        const std::string& as);

// A workspace: the repository a directory is in.
struct Workspace {
  std::string name;  // what reservations are keyed by
  std::string root;  // absolute root directory ("" when not a git repo)
};

// The workspace of `dir`: `override_name` if set, else $CNET_WORKSPACE,
// else the git repository's normalised origin URL
// (`github.com/org/repo`), else `<node>:<repository root>`. Outside a git
// repository: `<node>:<dir>` with root = dir.
Workspace DetectWorkspace(const config::Config& config, const std::string& dir,
                          const std::string& override_name);

// `git@github.com:org/repo.git`, `https://user@github.com/org/repo` ->
// `github.com/org/repo`.
std::string NormaliseRemote(const std::string& url);

// `path` (absolute, or relative to `cwd`) relative to `root`, '/'-separated;
// nullopt when it is outside root.
std::optional<std::string> RelativeTo(const std::string& root, const std::string& cwd,
                                      const std::string& path);

// This node's name: network.node_id, else the host name.
std::string NodeName(const config::Config& config);

// Runs a command (argv, no shell) and returns its stdout; nullopt when it
// cannot run or exits non-zero.
std::optional<std::string> RunCapture(const std::vector<std::string>& argv);

// A client context with a deadline and a bearer credential.
std::unique_ptr<grpc::ClientContext> CallContext(absl::Duration deadline,
                                                 const std::string& credential);

// The HMAC key messages are signed with: security.shared_secret, else the
// single-node secret <data_dir>/message.secret when readable; "" when
// signing is off.
std::string SigningKey(const config::Config& config);

// One line for people and models: "src/** EXCLUSIVE by agent-x until
// 2026-11-26T14:00:00Z (refactor)".
std::string DescribeReservation(const claudenet::v1::Reservation& r);
// "OK src/** (res-..., until ...)", "CONFLICT src/** held by agent-x as
// src/a.cc until ...", "NOT_OWNER ...", "EXPIRED ...", "NOT_FOUND ...".
std::string DescribePathResult(const claudenet::v1::PathResult& r);
// RFC 3339, whole seconds; "-" when unset.
std::string TimeText(const google::protobuf::Timestamp& t);

}  // namespace cnet::cli

#endif  // CNET_TOOLS_CNET_AGENT_CONTEXT_H_
