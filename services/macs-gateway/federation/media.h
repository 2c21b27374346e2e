// The two federation media as the gateway sees them: small interfaces, so
// that the message path (federation.h) is independent of HTTP, and tests
// can run it against in-memory media (memory_media.h) or the HTTP fakes.
//
//   * RealtimeDb: the subset of the Firebase Realtime Database REST API the
//     federation needs: an atomic multi-path update at the root (PATCH /.json
//     with {"a/b": value, "c/d": null}) and an ordered read of a node's
//     children (GET <path>.json?orderBy="$key"&limitToFirst=N).
//     Implementations: MemoryRealtimeDb (tests), FirebaseRealtimeDb
//     (firebase_media.h, over libs/firebase).
//   * IssueTracker: the subset of GitHub Issues: create an issue with
//     labels, list the open issues carrying all given labels (pull requests
//     already skipped, oldest first), comment and close.
//
// Errors: any non-OK status is a failure of the medium (unreachable,
// timeout, 5xx, 429, auth): the federation backs off and keeps the traffic
// queued. Values are JSON texts; a value of "null" in Update deletes.
#ifndef CNET_SERVICES_MACS_GATEWAY_FEDERATION_MEDIA_H_
#define CNET_SERVICES_MACS_GATEWAY_FEDERATION_MEDIA_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cnet::macs::federation {

class RealtimeDb {
 public:
  virtual ~RealtimeDb() = default;
  // Atomic multi-path update: every path (relative to the root, no leading
  // '/') is set to its JSON value, "null" deletes. All or nothing.
  virtual absl::Status Update(const std::map<std::string, std::string>& values) = 0;
  // The first `limit` children of `path` by key (key -> JSON text); empty
  // when the node does not exist.
  virtual absl::StatusOr<std::map<std::string, std::string>> Children(const std::string& path,
                                                                      int limit) = 0;
};

struct Issue {
  int64_t number = 0;
  std::string title;
  std::string body;
  std::vector<std::string> labels;
};

class IssueTracker {
 public:
  virtual ~IssueTracker() = default;
  virtual absl::StatusOr<int64_t> Create(const std::string& title, const std::string& body,
                                         const std::vector<std::string>& labels) = 0;
  // Open issues (never pull requests) carrying every label, oldest first.
  virtual absl::StatusOr<std::vector<Issue>> ListOpen(const std::vector<std::string>& labels) = 0;
  virtual absl::Status CommentAndClose(int64_t number, const std::string& comment) = 0;
};

// A node name as a Firebase key segment that is also safe in a URL path:
// every byte but [A-Za-z0-9_-] becomes ~XX (so "host.lan" -> "host~2Elan").
std::string EscapeKey(const std::string& s);

}  // namespace cnet::macs::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_FEDERATION_MEDIA_H_
