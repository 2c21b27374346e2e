// The gRPC adapter of the task board: checks who calls, hands the request to
// the Board, maps the answer (absl::Status -> grpc::Status, with the
// ErrorDetail in the `claudenet-error-bin` trailer). No business logic.
//
// Claim (long-poll) and Watch (server stream) use the callback API so a
// waiting caller holds no thread.
#ifndef CNET_SERVICES_TASKS_TASKS_SERVICE_H_
#define CNET_SERVICES_TASKS_TASKS_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "libs/clock/clock.h"
#include "libs/limits/limits.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"
#include "services/tasks/board.h"

namespace cnet::tasks {

class TaskServiceImpl final
    : public claudenet::v1::TaskService::WithCallbackMethod_Claim<
          claudenet::v1::TaskService::WithCallbackMethod_Watch<
              claudenet::v1::TaskService::Service>> {
 public:
  struct Options {
    // Watch streams open at once; more are RESOURCE_EXHAUSTED.
    size_t max_watchers = 256;
    // Events buffered per watcher before it must resync.
    size_t watch_queue = 4096;
    // Watch streams one caller (agent, or service on behalf of one) may
    // hold open; more are RESOURCE_EXHAUSTED. 0 = no per-caller limit.
    int64_t max_watchers_per_caller = 16;
    // Tasks one agent may create: `create_burst_per_agent` at once and
    // `create_rate_per_agent` per second on average (0 = unlimited).
    // Admin is exempt. Over it: RESOURCE_EXHAUSTED with a retry delay.
    double create_rate_per_agent = 0;
    double create_burst_per_agent = 100;
    Clock* clock = nullptr;  // for the rate limiter; null = RealClock
  };

  explicit TaskServiceImpl(Board* board) : TaskServiceImpl(board, Options()) {}
  TaskServiceImpl(Board* board, Options options)
      : board_(board),
        options_(options),
        create_limiter_(options.clock ? options.clock : RealClock::Default(),
                        options.create_rate_per_agent, options.create_burst_per_agent),
        watch_slots_(options.max_watchers_per_caller) {}

  grpc::Status CreateTask(grpc::ServerContext* ctx, const claudenet::v1::CreateTaskRequest* req,
                          claudenet::v1::CreateTaskResponse* resp) override;
  grpc::Status GetTask(grpc::ServerContext* ctx, const claudenet::v1::GetTaskRequest* req,
                       claudenet::v1::GetTaskResponse* resp) override;
  grpc::Status UpdateTask(grpc::ServerContext* ctx, const claudenet::v1::UpdateTaskRequest* req,
                          claudenet::v1::UpdateTaskResponse* resp) override;
  grpc::Status ListTasks(grpc::ServerContext* ctx, const claudenet::v1::ListTasksRequest* req,
                         claudenet::v1::ListTasksResponse* resp) override;
  grpc::ServerUnaryReactor* Claim(grpc::CallbackServerContext* ctx,
                                  const claudenet::v1::ClaimRequest* req,
                                  claudenet::v1::ClaimResponse* resp) override;
  grpc::Status Steal(grpc::ServerContext* ctx, const claudenet::v1::StealRequest* req,
                     claudenet::v1::StealResponse* resp) override;
  grpc::Status Start(grpc::ServerContext* ctx, const claudenet::v1::StartRequest* req,
                     claudenet::v1::StartResponse* resp) override;
  grpc::Status Progress(grpc::ServerContext* ctx, const claudenet::v1::ProgressRequest* req,
                        claudenet::v1::ProgressResponse* resp) override;
  grpc::Status RenewLease(grpc::ServerContext* ctx, const claudenet::v1::RenewLeaseRequest* req,
                          claudenet::v1::RenewLeaseResponse* resp) override;
  grpc::Status Release(grpc::ServerContext* ctx, const claudenet::v1::ReleaseRequest* req,
                       claudenet::v1::ReleaseResponse* resp) override;
  grpc::Status RequestInput(grpc::ServerContext* ctx,
                            const claudenet::v1::RequestInputRequest* req,
                            claudenet::v1::RequestInputResponse* resp) override;
  grpc::Status ProvideInput(grpc::ServerContext* ctx,
                            const claudenet::v1::ProvideInputRequest* req,
                            claudenet::v1::ProvideInputResponse* resp) override;
  grpc::Status Complete(grpc::ServerContext* ctx, const claudenet::v1::CompleteRequest* req,
                        claudenet::v1::CompleteResponse* resp) override;
  grpc::Status Fail(grpc::ServerContext* ctx, const claudenet::v1::FailRequest* req,
                    claudenet::v1::FailResponse* resp) override;
  grpc::Status Review(grpc::ServerContext* ctx, const claudenet::v1::ReviewRequest* req,
                      claudenet::v1::ReviewResponse* resp) override;
  grpc::Status Cancel(grpc::ServerContext* ctx, const claudenet::v1::CancelRequest* req,
                      claudenet::v1::CancelResponse* resp) override;
  grpc::Status ExplainTask(grpc::ServerContext* ctx, const claudenet::v1::ExplainTaskRequest* req,
                           claudenet::v1::ExplainTaskResponse* resp) override;
  grpc::Status GetHistory(grpc::ServerContext* ctx, const claudenet::v1::GetHistoryRequest* req,
                          claudenet::v1::GetHistoryResponse* resp) override;
  grpc::ServerWriteReactor<claudenet::v1::TaskEvent>* Watch(
      grpc::CallbackServerContext* ctx, const claudenet::v1::WatchTasksRequest* req) override;
  grpc::Status GetStats(grpc::ServerContext* ctx, const claudenet::v1::GetTaskStatsRequest* req,
                        claudenet::v1::GetTaskStatsResponse* resp) override;
  grpc::Status Reserve(grpc::ServerContext* ctx, const claudenet::v1::ReserveRequest* req,
                       claudenet::v1::ReserveResponse* resp) override;
  grpc::Status RenewReservation(grpc::ServerContext* ctx,
                                const claudenet::v1::RenewReservationRequest* req,
                                claudenet::v1::RenewReservationResponse* resp) override;
  grpc::Status ReleaseReservation(grpc::ServerContext* ctx,
                                  const claudenet::v1::ReleaseReservationRequest* req,
                                  claudenet::v1::ReleaseReservationResponse* resp) override;
  grpc::Status ListReservations(grpc::ServerContext* ctx,
                                const claudenet::v1::ListReservationsRequest* req,
                                claudenet::v1::ListReservationsResponse* resp) override;
  grpc::Status ForceRelease(grpc::ServerContext* ctx,
                            const claudenet::v1::ForceReleaseRequest* req,
                            claudenet::v1::ForceReleaseResponse* resp) override;
  grpc::Status CheckPaths(grpc::ServerContext* ctx, const claudenet::v1::CheckPathsRequest* req,
                          claudenet::v1::CheckPathsResponse* resp) override;
  grpc::Status ReportChangedPaths(grpc::ServerContext* ctx,
                                  const claudenet::v1::ReportChangedPathsRequest* req,
                                  claudenet::v1::ReportChangedPathsResponse* resp) override;

 private:
  Board* const board_;
  const Options options_;
  limits::RateLimiter create_limiter_;
  limits::StreamSlots watch_slots_;
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_TASKS_SERVICE_H_
