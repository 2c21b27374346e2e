// The KvStore over the Firebase Realtime Database REST API (libs/firebase):
// Put = PUT (DELETE for null), Update = multi-path PATCH at the root,
// Get = GET, Listen = a FirebaseStream (SSE) whose reconnect snapshots are
// preceded by a kReset so consumers replace their cache.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_FIREBASE_KV_STORE_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_FIREBASE_KV_STORE_H_

#include <memory>

#include "libs/firebase/firebase_client.h"
#include "libs/firebase/firebase_stream.h"
#include "services/macs-gateway/xnode/kv_store.h"

namespace cnet::federation {

class FirebaseKvStore final : public KvStore {
 public:
  // `client` (not owned, outlives the store) is shared with the message path; `stream_template` gives the
  // connection and backoff settings of the streams (its path is replaced).
  FirebaseKvStore(firebase::FirebaseClient* client,
                  firebase::StreamOptions stream_template);

  absl::Status Put(const std::string& path, const std::string& json) override;
  absl::Status Update(const std::map<std::string, std::string>& writes) override;
  absl::StatusOr<std::string> Get(const std::string& path) override;
  std::unique_ptr<KvSubscription> Listen(const std::string& path,
                                         std::function<void(const KvEvent&)> on_event) override;

 private:
  firebase::FirebaseClient* const client_;  // not owned
  const firebase::StreamOptions stream_template_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_FIREBASE_KV_STORE_H_
