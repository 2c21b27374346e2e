// The federation of the macs-gateway binary, built from the configuration:
// the Firebase client (+ stream on /messages/<node>) and GitHub client when
// enabled, the media adapters, and the Federation object (federation.h),
// started. Other components of the binary (agents presence, tasks across
// nodes) take `federation()` (node, shared RealtimeDb, state, tick hooks)
// and `firebase()` (the shared FirebaseClient, e.g. for their own streams).
#ifndef CNET_SERVICES_MACS_GATEWAY_FEDERATION_RUNTIME_H_
#define CNET_SERVICES_MACS_GATEWAY_FEDERATION_RUNTIME_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "libs/clock/clock.h"
#include "libs/config/loader.h"
#include "libs/firebase/firebase_client.h"
#include "libs/firebase/firebase_stream.h"
#include "libs/github/github_client.h"
#include "services/macs-gateway/federation/federation.h"
#include "services/macs-gateway/federation/http_media.h"

namespace cnet::macs::federation {

class FederationRuntime {
 public:
  // Validates the federation keys: with firebase.enabled, firebase.url and
  // firebase.auth (or its env) and security.shared_secret are required;
  // with github.enabled, github.repo (owner/name) and github.token. The
  // error names the key (main exits 2). `node` is the resolved node id.
  static absl::StatusOr<std::unique_ptr<FederationRuntime>> Create(const config::Config& cfg,
                                                                   const std::string& node,
                                                                   Gateway* gateway,
                                                                   Clock* clock);
  ~FederationRuntime();

  // Imports federation.import_offline_queue (if set and present), starts
  // the federation thread and the stream.
  void Start(const std::string& shared_secret);
  // Stops the stream and the thread (before the gateway shuts down).
  void Stop();

  Federation* federation() { return federation_.get(); }
  firebase::FirebaseClient* firebase() { return firebase_.get(); }  // null when disabled

 private:
  FederationRuntime() = default;
  std::string import_path_;
  firebase::FirebaseOptions firebase_options_;
  std::unique_ptr<firebase::FirebaseClient> firebase_;
  std::unique_ptr<FirebaseRealtimeDb> db_;
  std::unique_ptr<github::GitHubClient> github_;
  std::unique_ptr<GitHubIssueTracker> issues_;
  std::unique_ptr<Federation> federation_;
  std::unique_ptr<firebase::FirebaseStream> stream_;
  std::unique_ptr<firebase::FirebaseStream> receipt_stream_;
  Gateway* gateway_ = nullptr;
};

}  // namespace cnet::macs::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_FEDERATION_RUNTIME_H_
