// Tasks across nodes, the REQUESTING side: what an agent of this node sees
// of the tasks other nodes own, and how its operations on them travel.
//
// RemoteTasks: a cache of /tasks (a stream), keeping the tasks whose
// origin_node is another node; and Submit(), which writes an operation to
// /task_ops/{owner}/{op_id} and waits for /task_results/{this node}/{op_id}
// (followed by a second stream), deleting the result once read.
//
// RemoteTaskServiceImpl: the claudenet.v1.RemoteTaskService rpcs
// (proto/claudenet/v1/remote_tasks.proto) served by the gateway.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_REMOTE_TASKS_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_REMOTE_TASKS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "libs/clock/clock.h"
#include "libs/ids/ids.h"
#include "proto/claudenet/v1/remote_tasks.grpc.pb.h"
#include "services/macs-gateway/xnode/documents.h"
#include "services/macs-gateway/xnode/json_tree.h"
#include "services/macs-gateway/xnode/kv_store.h"
#include "services/macs-gateway/xnode/worker.h"

namespace cnet::federation {

struct RemoteTasksOptions {
  std::string node;
  // How long an operation waits for the owner's answer.
  absl::Duration op_timeout = absl::Seconds(30);
  // The network's shared secret (documents.h); empty = signing disabled.
  std::string secret;
  Clock* clock = RealClock::Default();
};

class RemoteTasks {
 public:
  struct Stats {
    int64_t ops_sent = 0;
    int64_t ops_answered = 0;
    int64_t ops_timed_out = 0;
    int64_t results_discarded = 0;  // results of unknown (timed out) ops
    int64_t rejected = 0;           // malformed documents
  };

  RemoteTasks(RemoteTasksOptions options, KvStore* kv);
  ~RemoteTasks();
  void Start();
  void Stop();

  // Remote tasks (origin_node != this node) as last mirrored, by id.
  std::vector<claudenet::v1::Task> List() const;
  absl::StatusOr<claudenet::v1::Task> Get(const std::string& task_id) const;

  // Sends `op` to the owner of op.task_id (looked up in the cache: NOT_FOUND
  // when not a known remote task) and waits for the answer. Fills op_id,
  // from_node and created_ms.
  absl::StatusOr<TaskOpResult> Submit(TaskOp op);

  Stats stats() const;

 private:
  struct Pending {
    absl::Notification done;
    TaskOpResult result;
  };
  void OnTasksEvent(const KvEvent& event);
  void OnResultsEvent(const KvEvent& event);

  const RemoteTasksOptions options_;
  KvStore* const kv_;
  IdGenerator ids_;

  mutable absl::Mutex mu_;
  JsonTree tasks_ ABSL_GUARDED_BY(mu_);
  JsonTree results_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Pending>> pending_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<Worker> cleaner_;
  std::unique_ptr<KvSubscription> tasks_stream_;
  std::unique_ptr<KvSubscription> results_stream_;
};

class RemoteTaskServiceImpl final : public claudenet::v1::RemoteTaskService::Service {
 public:
  explicit RemoteTaskServiceImpl(RemoteTasks* tasks) : tasks_(tasks) {}

  grpc::Status ListRemoteTasks(grpc::ServerContext* ctx,
                               const claudenet::v1::ListTasksRequest* req,
                               claudenet::v1::ListTasksResponse* resp) override;
  grpc::Status GetRemoteTask(grpc::ServerContext* ctx, const claudenet::v1::GetTaskRequest* req,
                             claudenet::v1::GetTaskResponse* resp) override;
  grpc::Status Claim(grpc::ServerContext* ctx, const claudenet::v1::ClaimRequest* req,
                     claudenet::v1::ClaimResponse* resp) override;
  grpc::Status Start(grpc::ServerContext* ctx, const claudenet::v1::StartRequest* req,
                     claudenet::v1::StartResponse* resp) override;
  grpc::Status Progress(grpc::ServerContext* ctx, const claudenet::v1::ProgressRequest* req,
                        claudenet::v1::ProgressResponse* resp) override;
  grpc::Status RenewLease(grpc::ServerContext* ctx, const claudenet::v1::RenewLeaseRequest* req,
                          claudenet::v1::RenewLeaseResponse* resp) override;
  grpc::Status Release(grpc::ServerContext* ctx, const claudenet::v1::ReleaseRequest* req,
                       claudenet::v1::ReleaseResponse* resp) override;
  grpc::Status Complete(grpc::ServerContext* ctx, const claudenet::v1::CompleteRequest* req,
                        claudenet::v1::CompleteResponse* resp) override;
  grpc::Status Fail(grpc::ServerContext* ctx, const claudenet::v1::FailRequest* req,
                    claudenet::v1::FailResponse* resp) override;

 private:
  template <typename Req, typename Resp>
  grpc::Status Forward(grpc::ServerContext* ctx, TaskOpKind kind, Req req, Resp* resp);

  RemoteTasks* const tasks_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_REMOTE_TASKS_H_
