// Notifications to agents through MACS ("you got task-001", cancel, reject,
// questions and answers), behind a small interface.
//
// The board never sends inline: a notice is written to the notices table in
// the same commit as the transition that caused it (the outbox), and a
// sender hands it to the Notifier afterwards, retrying with backoff while
// the gateway is down. So the board neither blocks nor fails when the
// gateway is unreachable, and catches up when it returns (also across a
// restart). Notice ids are stable, so a retried notice is deduplicated by
// MACS (sender, id).
//
// Production: MacsNotifier (gateway_adapter.h). Tests: RecordingNotifier.
#ifndef CNET_SERVICES_TASKS_NOTIFIER_H_
#define CNET_SERVICES_TASKS_NOTIFIER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cnet::tasks {

struct Notice {
  std::string id;         // "ntc-<ulid>", stable across retries
  std::string recipient;  // agent id
  std::string task_id;
  // assigned, cancel_requested, cancelled, rejected, input_requested,
  // input_provided, failed, lease_lost.
  std::string kind;
  std::string subject;
  std::string body;
  bool urgent = false;  // sent with priority HIGH
  absl::Time created;

  std::string Serialize() const;
  static bool Parse(const std::string& text, Notice* out);
};

class Notifier {
 public:
  virtual ~Notifier() = default;
  // Hands one notice to the gateway. Any error means "retry later".
  virtual absl::Status Send(const Notice& notice) = 0;
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_NOTIFIER_H_
