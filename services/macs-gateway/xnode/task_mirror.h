// Tasks across nodes, the OWNER side (the node whose tasks service created
// the task; it stays the only authority over it).
//
// TaskMirror: follows the local tasks service's Watch (snapshot, then live;
// reopened with a snapshot after any failure or RESYNC_REQUIRED) and keeps
// /tasks/{available|assigned|completed}/{id} in step, moving a task between
// buckets with one atomic multi-path update (the other two set to null).
// Only tasks whose origin_node is this node are published.
//
// TaskOpExecutor: follows /task_ops/{this node}; each operation (claim,
// start, progress, renew_lease, release, complete, fail) requested by an
// agent of another node is checked (the agent must be a remote agent of the
// requesting node in the local registry, the request must name the op's
// task) and executed on the local tasks service with the service
// credential on behalf of that agent; the answer (status code, message,
// response) is written to /task_results/{requesting node}/{op_id} and the op
// deleted, in one atomic update. Ops already executed by this process are
// not executed again (a result already written is re-sent instead).
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_TASK_MIRROR_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_TASK_MIRROR_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "libs/clock/clock.h"
#include "libs/registry_client/registry_client.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "services/macs-gateway/xnode/coalescing_writer.h"
#include "services/macs-gateway/xnode/documents.h"
#include "services/macs-gateway/xnode/json_tree.h"
#include "services/macs-gateway/xnode/kv_store.h"
#include "services/macs-gateway/xnode/worker.h"

namespace cnet::federation {

struct TaskMirrorOptions {
  std::string node;
  std::shared_ptr<grpc::Channel> tasks_channel;  // the local tasks service
  std::string service_credential;
  // The network's shared secret (documents.h); empty = signing disabled.
  std::string secret;
  absl::Duration call_deadline = absl::Seconds(10);
  Clock* clock = RealClock::Default();
};

class TaskMirror {
 public:
  struct Stats {
    int64_t published = 0;     // task documents written (coalesced)
    int64_t write_errors = 0;  // failed writes (repaired by the next snapshot)
    int64_t watch_streams = 0; // Watch streams opened
    int64_t ops_executed = 0;  // remote operations executed
    int64_t ops_refused = 0;   // remote operations refused before execution
    int64_t ops_malformed = 0; // op documents rejected
  };

  TaskMirror(TaskMirrorOptions options, KvStore* kv,
             std::shared_ptr<registry_client::RegistryClient> registry);
  ~TaskMirror();
  void Start();
  void Stop();
  Stats stats() const;

 private:
  void WatchLoop();
  void Publish(const claudenet::v1::Task& task);
  void OnOpEvent(const KvEvent& event);
  void Execute(TaskOp op);
  TaskOpResult Run(const TaskOp& op);

  const TaskMirrorOptions options_;
  KvStore* const kv_;
  const std::shared_ptr<registry_client::RegistryClient> registry_;
  std::unique_ptr<claudenet::v1::TaskService::Stub> stub_;

  mutable absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The /task_ops/{node} cache, and ops queued or executing.
  JsonTree ops_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  // Results of ops executed by this process, by op id.
  std::map<std::string, std::string> done_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<Worker> publisher_;
  std::unique_ptr<CoalescingWriter> writer_;
  std::unique_ptr<Worker> executor_;
  std::unique_ptr<KvSubscription> ops_stream_;
  std::thread watch_thread_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_TASK_MIRROR_H_
