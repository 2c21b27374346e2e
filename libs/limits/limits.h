// Per-caller limits shared by the services: a token-bucket rate limiter and
// a counter of open streams, both keyed by the acting principal. Each is
// bounded in memory (idle keys are forgotten) and answers how long to wait,
// which the services turn into RESOURCE_EXHAUSTED with "retry after Ns" in
// the message, `claudenet-retry-after-ms` in the trailers and
// ErrorDetail.retry_delay (docs/security.md, Limits).
#ifndef CNET_LIBS_LIMITS_LIMITS_H_
#define CNET_LIBS_LIMITS_LIMITS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"

namespace cnet::limits {

// Each key may do `burst` operations at once and `per_sec` on average.
// Thread-safe. per_sec <= 0 disables the limiter (Take always succeeds).
class RateLimiter {
 public:
  RateLimiter(Clock* clock, double per_sec, double burst, size_t max_keys = 100000);

  // Zero when allowed (one token taken); otherwise nothing is taken and the
  // result is how long until the next token (>= 1 ms).
  absl::Duration Take(const std::string& key);

 private:
  struct Bucket {
    double tokens;
    absl::Time at;
  };
  Clock* const clock_;
  const double per_sec_;
  const double burst_;
  const size_t max_keys_;
  absl::Mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// At most `max_per_key` slots held per key. Thread-safe; the counter must
// outlive the slots. max_per_key <= 0 disables the limit.
class StreamSlots {
 public:
  explicit StreamSlots(int64_t max_per_key) : max_(max_per_key) {}

  // A held slot (released when the last copy is destroyed), or null when
  // `key` holds max_per_key already.
  std::shared_ptr<void> Acquire(const std::string& key);
  int64_t open(const std::string& key) const;

 private:
  void Release(const std::string& key);
  const int64_t max_;
  mutable absl::Mutex mu_;
  std::unordered_map<std::string, int64_t> open_ ABSL_GUARDED_BY(mu_);
};

// "retry after 3s" (rounded up to whole seconds, at least 1).
std::string RetryAfterText(absl::Duration wait);
// Milliseconds for `claudenet-retry-after-ms` (at least 1).
int64_t RetryAfterMs(absl::Duration wait);

}  // namespace cnet::limits

#endif  // CNET_LIBS_LIMITS_LIMITS_H_
