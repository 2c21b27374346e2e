// The built-in actions a skill step can call, and the small interfaces
// they call through.
//
// Messaging, registry and tasks actions call the MACS gateway, the
// Registry and the Tasks service through MessagingBackend, RegistryBackend
// and TaskBackend: interfaces speaking the services' own request/response
// messages, implemented over gRPC in production (grpc_backends.h: deadline,
// service credential, `claudenet-on-behalf-of: <acting agent>`) and by
// in-memory fakes in tests. Data actions use the skills service's own
// key-value store (DataStore, in its SQLite). `system.health` reads /proc.
// `shell` runs an allow-listed local command and is disabled when the
// allow-list is empty.
//
// An action is asynchronous: Start() returns at once and the action calls
// ActionCall::Finish exactly once, from any thread. Blocking work runs on
// the `blocking` executor so the engine's pool never waits on I/O. Each
// action honours cancellation (timeout, CancelRun) through OnCancel.
#ifndef CNET_SERVICES_SKILLS_ACTIONS_H_
#define CNET_SERVICES_SKILLS_ACTIONS_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "proto/claudenet/v1/macs.pb.h"
#include "proto/claudenet/v1/registry.pb.h"
#include "proto/claudenet/v1/tasks.pb.h"
#include "services/skills/action_spec.h"
#include "services/skills/executor.h"
#include "services/skills/value.h"

namespace cnet::skills {

namespace pb = ::claudenet::v1;

// Identity and limits of one outgoing call.
struct CallContext {
  // The agent the call acts for (the run's caller).
  std::string agent_id;
  // When the call must be answered by (engine clock); InfiniteFuture = none.
  absl::Time deadline = absl::InfiniteFuture();
  // Registers a hook that abandons the call (e.g. ClientContext::TryCancel)
  // when the step times out or the run is cancelled. May be null.
  std::function<void(std::function<void()>)> on_cancel;
};

class MessagingBackend {
 public:
  virtual ~MessagingBackend() = default;
  virtual absl::Status Send(const CallContext& ctx, const pb::SendRequest& req,
                            pb::SendResponse* resp) = 0;
  virtual absl::Status FetchInbox(const CallContext& ctx, const pb::FetchInboxRequest& req,
                                  pb::FetchInboxResponse* resp) = 0;
  virtual absl::Status Ack(const CallContext& ctx, const pb::AckRequest& req,
                           pb::AckResponse* resp) = 0;
};

class RegistryBackend {
 public:
  virtual ~RegistryBackend() = default;
  virtual absl::Status Register(const CallContext& ctx, const pb::RegisterRequest& req,
                                pb::RegisterResponse* resp) = 0;
  virtual absl::Status GetAgent(const CallContext& ctx, const pb::GetAgentRequest& req,
                                pb::GetAgentResponse* resp) = 0;
  virtual absl::Status ListAgents(const CallContext& ctx, const pb::ListAgentsRequest& req,
                                  pb::ListAgentsResponse* resp) = 0;
  virtual absl::Status GetNetworkStatus(const CallContext& ctx,
                                        const pb::GetNetworkStatusRequest& req,
                                        pb::GetNetworkStatusResponse* resp) = 0;
};

class TaskBackend {
 public:
  virtual ~TaskBackend() = default;
  virtual absl::Status CreateTask(const CallContext& ctx, const pb::CreateTaskRequest& req,
                                  pb::CreateTaskResponse* resp) = 0;
  virtual absl::Status GetTask(const CallContext& ctx, const pb::GetTaskRequest& req,
                               pb::GetTaskResponse* resp) = 0;
  virtual absl::Status ListTasks(const CallContext& ctx, const pb::ListTasksRequest& req,
                                 pb::ListTasksResponse* resp) = 0;
  virtual absl::Status Claim(const CallContext& ctx, const pb::ClaimRequest& req,
                             pb::ClaimResponse* resp) = 0;
  virtual absl::Status Progress(const CallContext& ctx, const pb::ProgressRequest& req,
                                pb::ProgressResponse* resp) = 0;
  virtual absl::Status Complete(const CallContext& ctx, const pb::CompleteRequest& req,
                                pb::CompleteResponse* resp) = 0;
};

// The namespaced key-value store of the data actions (owned by the skills
// service; implemented by Store).
class DataStore {
 public:
  virtual ~DataStore() = default;
  // True when the key was created (false: replaced).
  virtual absl::StatusOr<bool> DataPut(const std::string& ns, const std::string& key,
                                       const Json& value, const std::string& agent) = 0;
  virtual absl::StatusOr<std::optional<Json>> DataGet(const std::string& ns,
                                                      const std::string& key) = 0;
  virtual absl::StatusOr<bool> DataDelete(const std::string& ns, const std::string& key) = 0;
  virtual absl::StatusOr<std::vector<std::string>> DataList(const std::string& ns,
                                                            const std::string& prefix,
                                                            int limit) = 0;
};

// Host health from /proc (a different root in tests).
class SystemProbe {
 public:
  virtual ~SystemProbe() = default;
  virtual absl::StatusOr<Json> HostHealth(const std::string& disk_path) = 0;
};

class ProcSystemProbe final : public SystemProbe {
 public:
  explicit ProcSystemProbe(std::string proc_root = "/proc") : proc_(std::move(proc_root)) {}
  absl::StatusOr<Json> HostHealth(const std::string& disk_path) override;

 private:
  std::string proc_;
};

// One attempt of one action, handed over by the engine.
class ActionCall {
 public:
  virtual ~ActionCall() = default;
  virtual const std::string& agent_id() const = 0;
  virtual const std::string& run_id() const = 0;
  // The step's path in the run (e.g. "notify/send"): with run_id, a stable
  // identity across retries (used for idempotent message ids).
  virtual const std::string& step_path() const = 0;
  // The attempt's deadline (InfiniteFuture when the step has no timeout).
  virtual absl::Time deadline() const = 0;
  virtual Clock* clock() const = 0;
  // Where blocking work goes.
  virtual Executor* blocking() const = 0;
  // A STEP_OUTPUT event (a log line, a partial result).
  virtual void Output(const Json& value, const std::string& message) = 0;
  // Runs `fn` when the attempt is abandoned (timeout, cancellation); at
  // once if it already was.
  virtual void OnCancel(std::function<void()> fn) = 0;
  virtual bool cancelled() const = 0;
  // The result; only the first call counts.
  virtual void Finish(absl::StatusOr<Json> result) = 0;

  CallContext Context();
};

class Action {
 public:
  virtual ~Action() = default;
  virtual void Start(const Json& args, std::shared_ptr<ActionCall> call) = 0;
};

struct ActionEnv {
  MessagingBackend* messaging = nullptr;
  RegistryBackend* registry = nullptr;
  TaskBackend* tasks = nullptr;
  DataStore* data = nullptr;
  SystemProbe* system = nullptr;
  // Commands `shell` may run (exact argv[0]); empty = shell disabled.
  std::vector<std::string> shell_allowlist;
  // Bytes kept of each of stdout and stderr.
  size_t shell_output_cap = 64 << 10;
};

class ActionRegistry {
 public:
  // Every built-in action over `env` (whose pointers must outlive it).
  explicit ActionRegistry(const ActionEnv& env);

  const ActionCatalog& catalog() const { return catalog_; }
  Action* Find(const std::string& name) const;
  // Adds or replaces an action (tests, extensions).
  void Register(ActionSpec spec, std::unique_ptr<Action> action);

 private:
  ActionCatalog catalog_;
  std::map<std::string, std::unique_ptr<Action>> actions_;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_ACTIONS_H_
