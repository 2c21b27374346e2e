// The federation media over the real HTTP clients: RealtimeDb over
// libs/firebase (FirebaseClient), IssueTracker over libs/github
// (GitHubClient). Neither owns its client.
#ifndef CNET_SERVICES_MACS_GATEWAY_FEDERATION_HTTP_MEDIA_H_
#define CNET_SERVICES_MACS_GATEWAY_FEDERATION_HTTP_MEDIA_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/firebase/firebase_client.h"
#include "libs/github/github_client.h"
#include "services/macs-gateway/federation/media.h"

namespace cnet::macs::federation {

// Update = one multi-path PATCH at the root; Children = GET
// <path>.json?orderBy="$key"&limitToFirst=N. A value that is not valid JSON
// is INVALID_ARGUMENT before anything is sent.
class FirebaseRealtimeDb final : public RealtimeDb {
 public:
  explicit FirebaseRealtimeDb(firebase::FirebaseClient* client) : client_(client) {}
  absl::Status Update(const std::map<std::string, std::string>& values) override;
  absl::StatusOr<std::map<std::string, std::string>> Children(const std::string& path,
                                                              int limit) override;

 private:
  firebase::FirebaseClient* const client_;
};

// ListOpen lists open issues with every label, oldest first, with
// If-None-Match: a 304 (free of rate limit) answers from the previous list
// minus the issues closed since.
class GitHubIssueTracker final : public IssueTracker {
 public:
  explicit GitHubIssueTracker(github::GitHubClient* client) : client_(client) {}
  absl::StatusOr<int64_t> Create(const std::string& title, const std::string& body,
                                 const std::vector<std::string>& labels) override;
  absl::StatusOr<std::vector<Issue>> ListOpen(const std::vector<std::string>& labels) override;
  absl::Status CommentAndClose(int64_t number, const std::string& comment) override;

 private:
  github::GitHubClient* const client_;
  absl::Mutex mu_;
  std::map<std::vector<std::string>, std::pair<std::string, std::vector<Issue>>> cache_
      ABSL_GUARDED_BY(mu_);  // labels -> (etag, issues)
};

}  // namespace cnet::macs::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_FEDERATION_HTTP_MEDIA_H_
