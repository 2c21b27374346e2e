// gRPC adapter of the MACS gateway: converts the caller (libs/auth), calls
// the Gateway core, maps statuses and puts the ErrorDetail into the
// `claudenet-error-bin` trailer (plus `claudenet-retry-after-ms` on
// RESOURCE_EXHAUSTED). No messaging logic lives here.
//
// Send is a callback-API unary rpc: the handler thread returns at once and
// the reply is sent from the group-commit writer after the batch is on
// disk, so many concurrent Sends wait without holding threads.
// Subscribe and WatchStats are callback-API streams; no thread is held per
// subscriber.
//
// Several subscribers of one agent (several shells) follow the inbox's
// SubscribeMode, fixed by the first open subscriber: FANOUT (default, also
// what SUBSCRIBE_MODE_UNSPECIFIED joins when no subscriber is open): each
// subscriber gets every message and one Ack acknowledges it for all;
// COMPETING: each message goes to one subscriber at a time, round robin.
// A later subscriber asking UNSPECIFIED joins whatever mode is in effect;
// asking the other mode is FAILED_PRECONDITION (MODE_CONFLICT). When a
// subscriber goes away, copies only it held are offered again at once
// (that hand-over counted as an attempt).
#ifndef CNET_SERVICES_MACS_GATEWAY_MACS_SERVICE_H_
#define CNET_SERVICES_MACS_GATEWAY_MACS_SERVICE_H_

#include <set>

#include "absl/synchronization/mutex.h"
#include "libs/clock/clock.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "services/macs-gateway/gateway.h"

namespace cnet::macs {

class StatsStream;

class MacsServiceImpl final
    : public claudenet::v1::MacsGateway::WithCallbackMethod_Send<
          claudenet::v1::MacsGateway::WithCallbackMethod_Subscribe<
              claudenet::v1::MacsGateway::WithCallbackMethod_WatchStats<
                  claudenet::v1::MacsGateway::Service>>> {
 public:
  MacsServiceImpl(Gateway* gateway, Clock* clock) : gateway_(gateway), clock_(clock) {}
  ~MacsServiceImpl() override;

  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* ctx,
                                 const claudenet::v1::SendRequest* req,
                                 claudenet::v1::SendResponse* resp) override;
  grpc::ServerWriteReactor<claudenet::v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* ctx, const claudenet::v1::SubscribeRequest* req) override;
  grpc::ServerWriteReactor<claudenet::v1::GetStatsResponse>* WatchStats(
      grpc::CallbackServerContext* ctx, const claudenet::v1::WatchStatsRequest* req) override;

  grpc::Status Ack(grpc::ServerContext* ctx, const claudenet::v1::AckRequest* req,
                   claudenet::v1::AckResponse* resp) override;
  grpc::Status MarkRead(grpc::ServerContext* ctx, const claudenet::v1::MarkReadRequest* req,
                        claudenet::v1::MarkReadResponse* resp) override;
  grpc::Status FetchInbox(grpc::ServerContext* ctx, const claudenet::v1::FetchInboxRequest* req,
                          claudenet::v1::FetchInboxResponse* resp) override;
  grpc::Status GetMessageStatus(grpc::ServerContext* ctx,
                                const claudenet::v1::GetMessageStatusRequest* req,
                                claudenet::v1::GetMessageStatusResponse* resp) override;
  grpc::Status ListDeadLetters(grpc::ServerContext* ctx,
                               const claudenet::v1::ListDeadLettersRequest* req,
                               claudenet::v1::ListDeadLettersResponse* resp) override;
  grpc::Status RequeueDeadLetter(grpc::ServerContext* ctx,
                                 const claudenet::v1::RequeueDeadLetterRequest* req,
                                 claudenet::v1::RequeueDeadLetterResponse* resp) override;
  grpc::Status GetThread(grpc::ServerContext* ctx, const claudenet::v1::GetThreadRequest* req,
                         claudenet::v1::GetThreadResponse* resp) override;
  grpc::Status GetStats(grpc::ServerContext* ctx, const claudenet::v1::GetStatsRequest* req,
                        claudenet::v1::GetStatsResponse* resp) override;

  // Ends the WatchStats streams (server shutdown); Subscribe streams are
  // ended by Gateway::Shutdown.
  void Shutdown();

 private:
  friend class StatsStream;
  void Forget(StatsStream* s);

  Gateway* gateway_;
  Clock* clock_;
  absl::Mutex mu_;
  std::set<StatsStream*> stats_streams_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

// Maps a core status to the wire, adding the error trailers to `ctx`.
grpc::Status ToWire(grpc::ServerContextBase* ctx, const absl::Status& status);

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_MACS_SERVICE_H_
