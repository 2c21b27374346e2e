// An in-process KvStore with the Realtime Database's write and stream
// semantics (initial put at "/", put/patch events, multi-path updates
// applied atomically and delivered as one patch), for unit tests and the
// bench. Several "nodes" share one instance as they would share a database.
// Fault injection: SetFailing(status) makes every write/read fail.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_MEMORY_KV_STORE_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_MEMORY_KV_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/macs-gateway/xnode/json_tree.h"
#include "services/macs-gateway/xnode/kv_store.h"

namespace cnet::federation {

class MemoryKvStore final : public KvStore {
 public:
  MemoryKvStore();
  ~MemoryKvStore() override;

  absl::Status Put(const std::string& path, const std::string& json) override;
  absl::Status Update(const std::map<std::string, std::string>& writes) override;
  absl::StatusOr<std::string> Get(const std::string& path) override;
  std::unique_ptr<KvSubscription> Listen(const std::string& path,
                                         std::function<void(const KvEvent&)> on_event) override;

  void SetFailing(absl::Status status);
  int64_t writes() const;

  struct Listener;

 private:
  void Publish(const std::vector<std::pair<std::vector<std::string>, JsonValue>>& changes,
               bool is_put) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  JsonTree tree_ ABSL_GUARDED_BY(mu_);
  absl::Status failing_ ABSL_GUARDED_BY(mu_);
  int64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<Listener>> listeners_ ABSL_GUARDED_BY(mu_);
  friend class MemorySubscription;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_MEMORY_KV_STORE_H_
