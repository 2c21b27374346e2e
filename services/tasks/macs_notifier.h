// Notices to agents through the MACS gateway, on //libs/macs_client: type
// TASK, sender `svc:tasks` (the service credential), signed with the shared
// secret when message signing is on, payload {task_id, kind}, correlation id
// = the task id, and the notice id as the message id so a retry is
// deduplicated by the gateway.
//
// Send answers an error only when a retry may help (gateway down, deadline,
// rate limit, signature or credential not accepted: configuration that can
// be fixed); the board keeps the notice in its outbox and retries with
// backoff. A notice the gateway can never accept (unknown recipient,
// malformed) is logged and dropped.
#ifndef CNET_SERVICES_TASKS_MACS_NOTIFIER_H_
#define CNET_SERVICES_TASKS_MACS_NOTIFIER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "libs/macs_client/macs_client.h"
#include "services/tasks/notifier.h"

namespace cnet::tasks {

class MacsNotifier final : public Notifier {
 public:
  // `service_credential` authenticates the calls; `signing_key` is the
  // shared secret (empty when message signing is off).
  MacsNotifier(std::shared_ptr<grpc::Channel> channel, std::string service_credential,
               std::string signing_key, absl::Duration deadline = absl::Seconds(2));
  absl::Status Send(const Notice& notice) override;

 private:
  macs_client::MacsClient client_;
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_MACS_NOTIFIER_H_
