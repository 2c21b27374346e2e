// In-memory federation media with fault injection, for tests and the bench:
// the message path's behaviour (queueing, backoff, fallback, ordering,
// dedupe) does not depend on HTTP. The HTTP fakes of tests/fakes exercise
// the real clients against the documented REST behaviour.
#ifndef CNET_SERVICES_MACS_GATEWAY_FEDERATION_MEMORY_MEDIA_H_
#define CNET_SERVICES_MACS_GATEWAY_FEDERATION_MEMORY_MEDIA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/macs-gateway/federation/media.h"

namespace cnet::macs::federation {

// Values live at the paths they were written to; Children(p) returns the
// values written directly under p. Update with "null" deletes the path and
// everything under it.
class MemoryRealtimeDb final : public RealtimeDb {
 public:
  absl::Status Update(const std::map<std::string, std::string>& values) override;
  absl::StatusOr<std::map<std::string, std::string>> Children(const std::string& path,
                                                              int limit) override;

  // Fault injection: while down, every call fails with UNAVAILABLE
  // (connection refused); FailNext(n) fails the next n calls with 503.
  void SetDown(bool down);
  void FailNext(int n);
  // While set, Update applies the write but fails with DEADLINE_EXCEEDED
  // (the reply was lost).
  void LoseReplies(bool lose);
  // Called (outside the lock) after every successful Update: a stream.
  void OnUpdate(std::function<void()> fn);

  int64_t updates() const;
  int64_t failures() const;
  size_t Count(const std::string& prefix) const;

 private:
  absl::Status Fault() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  bool lose_replies_ ABSL_GUARDED_BY(mu_) = false;
  int64_t updates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> on_update_ ABSL_GUARDED_BY(mu_);
};

class MemoryIssueTracker final : public IssueTracker {
 public:
  absl::StatusOr<int64_t> Create(const std::string& title, const std::string& body,
                                 const std::vector<std::string>& labels) override;
  absl::StatusOr<std::vector<Issue>> ListOpen(const std::vector<std::string>& labels) override;
  absl::Status CommentAndClose(int64_t number, const std::string& comment) override;

  void SetDown(bool down);
  int64_t created() const;
  int64_t open_count() const;
  std::vector<std::string> comments(int64_t number) const;

 private:
  struct Item {
    Issue issue;
    bool open = true;
    std::vector<std::string> comments;
  };
  mutable absl::Mutex mu_;
  std::map<int64_t, Item> items_ ABSL_GUARDED_BY(mu_);
  int64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cnet::macs::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_FEDERATION_MEMORY_MEDIA_H_
