// A small typed client of the registry for the other services (tasks, MACS,
// skills) and tools: discovery calls with deadlines, and a Watch
// subscription that reconnects by itself and resumes where it left off.
//
//   cnet::registry_client::ClientOptions options;
//   options.address = config.GetString("services.registry_addr");
//   options.credential = service_credential;  // auth::ServiceCredential(...)
//   auto registry = std::make_shared<cnet::registry_client::RegistryClient>(options);
//   absl::StatusOr<claudenet::v1::FindAgentsResponse> found =
//       registry->FindAgents({"python", "review"}, /*limit=*/5);
//
//   auto watch = registry->Watch(request, [](const claudenet::v1::AgentEvent& ev) {
//     if (ev.type() == claudenet::v1::AGENT_EVENT_TYPE_DEREGISTERED) { ... }
//   });
//   ...
//   watch->Stop();  // or let it go out of scope
//
// Errors are absl::Status with the registry's code and message
// (UNAVAILABLE / DEADLINE_EXCEEDED when the registry cannot be reached).
// Thread-safe: one client may serve every thread of a process.
#ifndef CNET_LIBS_REGISTRY_CLIENT_REGISTRY_CLIENT_H_
#define CNET_LIBS_REGISTRY_CLIENT_REGISTRY_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"

namespace cnet::registry_client {

struct ClientOptions {
  // host:port of the registry (config services.registry_addr). Ignored when
  // `channel` is set.
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  // Bearer credential sent with every call: the service credential for
  // services, an agent token for tools acting as an agent.
  std::string credential;
  // Deadline of every unary call.
  absl::Duration deadline = absl::Seconds(5);
  // Watch reconnects: exponential backoff with jitter between these bounds,
  // timed on `clock`.
  absl::Duration reconnect_min = absl::Milliseconds(200);
  absl::Duration reconnect_max = absl::Seconds(10);
  Clock* clock = RealClock::Default();
};

class WatchSubscription;

class RegistryClient {
 public:
  explicit RegistryClient(ClientOptions options);

  absl::StatusOr<claudenet::v1::Agent> GetAgent(const std::string& agent_id) const;
  // HEALTHY agents having all `capabilities`, least loaded first.
  absl::StatusOr<claudenet::v1::FindAgentsResponse> FindAgents(
      const claudenet::v1::FindAgentsRequest& request) const;
  absl::StatusOr<claudenet::v1::FindAgentsResponse> FindAgents(
      const std::vector<std::string>& capabilities, int limit = 0) const;
  // One page.
  absl::StatusOr<claudenet::v1::ListAgentsResponse> ListAgents(
      const claudenet::v1::ListAgentsRequest& request) const;
  // Every page (at most `max_agents` agents), one call per page.
  absl::StatusOr<std::vector<claudenet::v1::Agent>> ListAllAgents(
      claudenet::v1::ListAgentsRequest request, size_t max_agents = 1'000'000) const;
  absl::StatusOr<claudenet::v1::ValidateTokenResponse> ValidateToken(
      const std::string& token) const;
  absl::StatusOr<claudenet::v1::GetNetworkStatusResponse> GetNetworkStatus(
      const claudenet::v1::GetNetworkStatusRequest& request = {}) const;

  // Events, delivered in sequence order to `on_event` on the subscription's
  // own thread (keep the callback short; never call Stop() from it).
  //  - The stream is reopened after any failure, resuming after the last
  //    delivered sequence, so no event is lost or repeated while the
  //    registry retains it.
  //  - A live watch (from_sequence 0, no snapshot) first asks the registry
  //    for its current sequence, so even a reconnect before the first event
  //    resumes without a gap.
  //  - RESYNC_REQUIRED (the watcher fell behind or the resume point was no
  //    longer retained) is delivered to the callback, then the stream is
  //    reopened: with a snapshot when `resync_with_snapshot` (SNAPSHOT...,
  //    SNAPSHOT_END follow), else live from the current sequence.
  using EventCallback = std::function<void(const claudenet::v1::AgentEvent&)>;
  std::unique_ptr<WatchSubscription> Watch(claudenet::v1::WatchAgentsRequest request,
                                           EventCallback on_event,
                                           bool resync_with_snapshot = true) const;

  // The raw stub, for calls not wrapped here (set deadlines yourself).
  claudenet::v1::RegistryService::Stub* stub() const { return stub_.get(); }
  // A context with the deadline and the credential.
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  const ClientOptions& options() const { return options_; }

 private:
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<claudenet::v1::RegistryService::Stub> stub_;
};

// A running Watch. Stops (and joins its thread) on Stop() or destruction.
class WatchSubscription {
 public:
  ~WatchSubscription();
  void Stop();
  // The last sequence delivered (0 before any).
  int64_t last_sequence() const;
  // Streams opened so far (1 after the first connection).
  int connections() const;
  // Waits until an event with sequence >= `sequence` was handed to the
  // callback (and the callback returned), or a live watch learned that the
  // registry is at least there. False on timeout or stop.
  bool WaitForSequence(int64_t sequence, absl::Duration timeout) const;

 private:
  friend class RegistryClient;
  struct Shared;
  WatchSubscription(const RegistryClient* client, claudenet::v1::WatchAgentsRequest request,
                    RegistryClient::EventCallback on_event, bool resync_with_snapshot);
  void Run();
  // One stream: true when anything was received.
  bool RunOnce();
  bool WaitBackoff(absl::Duration delay);

  const RegistryClient* client_;
  const claudenet::v1::WatchAgentsRequest base_;
  const RegistryClient::EventCallback on_event_;
  const bool resync_with_snapshot_;
  std::shared_ptr<Shared> shared_;
  // Owned by the subscription thread.
  bool need_snapshot_;
  std::thread thread_;
};

}  // namespace cnet::registry_client

#endif  // CNET_LIBS_REGISTRY_CLIENT_REGISTRY_CLIENT_H_
