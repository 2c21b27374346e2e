// In-memory stand-ins for the MACS gateway, the Registry and the Tasks
// service, behind the skills service's backend interfaces. They follow the
// services' contracts (claudenet.v1 protos) closely enough for skills to
// run against them: unknown recipients and agents are NOT_FOUND, a
// broadcast fans out to every other agent, inboxes keep read/ack state,
// tasks move CREATED/QUEUED -> ASSIGNED -> RUNNING -> COMPLETED with leases.
// Every call records the agent it acted for, so tests can check that the
// skills service passed the run's caller through.
#ifndef CNET_SERVICES_SKILLS_TESTING_FAKE_NETWORK_H_
#define CNET_SERVICES_SKILLS_TESTING_FAKE_NETWORK_H_

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "libs/clock/clock.h"
#include "services/skills/actions.h"

namespace cnet::skills::testing {

class FakeNetwork final : public MessagingBackend, public RegistryBackend, public TaskBackend {
 public:
  explicit FakeNetwork(Clock* clock) : clock_(clock) {}

  // --- test helpers ---
  void AddAgent(const std::string& id, std::vector<std::string> capabilities = {},
                pb::Health health = pb::HEALTH_HEALTHY);
  std::vector<std::string> Capabilities(const std::string& id);
  std::vector<pb::InboxEntry> Inbox(const std::string& agent);
  // Another agent finishes a task (state COMPLETED, result set).
  void CompleteTask(const std::string& task_id, const std::string& summary,
                    const Json& payload);
  pb::Task Task(const std::string& task_id);
  // "Method agent" for every call, in order.
  std::vector<std::string> Calls();
  // Fail the next calls of a method with this status (e.g. UNAVAILABLE).
  void FailNext(const std::string& method, int times, absl::Status status);

  // --- MessagingBackend ---
  absl::Status Send(const CallContext& ctx, const pb::SendRequest& req,
                    pb::SendResponse* resp) override;
  absl::Status FetchInbox(const CallContext& ctx, const pb::FetchInboxRequest& req,
                          pb::FetchInboxResponse* resp) override;
  absl::Status Ack(const CallContext& ctx, const pb::AckRequest& req,
                   pb::AckResponse* resp) override;
  // --- RegistryBackend ---
  absl::Status Register(const CallContext& ctx, const pb::RegisterRequest& req,
                        pb::RegisterResponse* resp) override;
  absl::Status GetAgent(const CallContext& ctx, const pb::GetAgentRequest& req,
                        pb::GetAgentResponse* resp) override;
  absl::Status ListAgents(const CallContext& ctx, const pb::ListAgentsRequest& req,
                          pb::ListAgentsResponse* resp) override;
  absl::Status GetNetworkStatus(const CallContext& ctx, const pb::GetNetworkStatusRequest& req,
                                pb::GetNetworkStatusResponse* resp) override;
  // --- TaskBackend ---
  absl::Status CreateTask(const CallContext& ctx, const pb::CreateTaskRequest& req,
                          pb::CreateTaskResponse* resp) override;
  absl::Status GetTask(const CallContext& ctx, const pb::GetTaskRequest& req,
                       pb::GetTaskResponse* resp) override;
  absl::Status ListTasks(const CallContext& ctx, const pb::ListTasksRequest& req,
                         pb::ListTasksResponse* resp) override;
  absl::Status Claim(const CallContext& ctx, const pb::ClaimRequest& req,
                     pb::ClaimResponse* resp) override;
  absl::Status Progress(const CallContext& ctx, const pb::ProgressRequest& req,
                        pb::ProgressResponse* resp) override;
  absl::Status Complete(const CallContext& ctx, const pb::CompleteRequest& req,
                        pb::CompleteResponse* resp) override;

 private:
  absl::Status Enter(const std::string& method, const CallContext& ctx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Deliver(const std::string& to, const pb::Message& m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  google::protobuf::Timestamp Now() const;

  Clock* clock_;
  absl::Mutex mu_;
  std::map<std::string, pb::Agent> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<pb::InboxEntry>> inboxes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, pb::Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<int, absl::Status>> failures_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cnet::skills::testing

#endif  // CNET_SERVICES_SKILLS_TESTING_FAKE_NETWORK_H_
