// Notices to agents through the MACS gateway's Send rpc (generated stub,
// service credential, deadline): type TASK, sender `svc:tasks` (stamped by
// the gateway for the service credential), payload {task_id, kind}, the
// notice id as the message id so a retry is deduplicated by the gateway.
//
// Send answers an error only when a retry may help (gateway down, deadline,
// rate limit, signature not accepted yet); the board keeps the notice in its
// outbox and retries with backoff. A notice the gateway can never accept
// (unknown recipient, malformed) is logged and dropped.
//
// Until //libs/macs_client (macs branch) is merged this adapter does not
// sign messages; with security.use_message_signing on, the gateway refuses
// them and the notices wait in the outbox until the client library (which
// signs) replaces this adapter.
#ifndef CNET_SERVICES_TASKS_MACS_NOTIFIER_H_
#define CNET_SERVICES_TASKS_MACS_NOTIFIER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "services/tasks/notifier.h"

namespace cnet::tasks {

class MacsNotifier final : public Notifier {
 public:
  MacsNotifier(std::shared_ptr<grpc::Channel> channel, std::string service_credential,
               absl::Duration deadline = absl::Seconds(2));
  absl::Status Send(const Notice& notice) override;

 private:
  std::unique_ptr<claudenet::v1::MacsGateway::Stub> stub_;
  const std::string credential_;
  const absl::Duration deadline_;
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_MACS_NOTIFIER_H_
