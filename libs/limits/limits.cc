#include "libs/limits/limits.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace cnet::limits {

RateLimiter::RateLimiter(Clock* clock, double per_sec, double burst, size_t max_keys)
    : clock_(clock),
      per_sec_(per_sec),
      burst_(std::max(1.0, burst)),
      max_keys_(std::max<size_t>(1, max_keys)) {}

absl::Duration RateLimiter::Take(const std::string& key) {
  if (per_sec_ <= 0) return absl::ZeroDuration();
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      // Forget every key whose bucket has refilled: it is as if new.
      for (auto b = buckets_.begin(); b != buckets_.end();) {
        double refill = absl::ToDoubleSeconds(now - b->second.at) * per_sec_;
        b = b->second.tokens + refill >= burst_ ? buckets_.erase(b) : std::next(b);
      }
      // Still full of busy keys: refuse rather than grow without bound.
      if (buckets_.size() >= max_keys_) return absl::Seconds(1) / per_sec_;
    }
    it = buckets_.emplace(key, Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  if (now > b.at) {
    b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.at) * per_sec_);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return absl::ZeroDuration();
  }
  return std::max(absl::Milliseconds(1), absl::Seconds((1.0 - b.tokens) / per_sec_));
}

std::shared_ptr<void> StreamSlots::Acquire(const std::string& key) {
  {
    absl::MutexLock lock(&mu_);
    int64_t& n = open_[key];
    if (max_ > 0 && n >= max_) return nullptr;
    ++n;
  }
  // A non-null token whose deleter gives the slot back.
  return std::shared_ptr<void>(reinterpret_cast<void*>(1),
                               [this, key](void*) { Release(key); });
}

void StreamSlots::Release(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(key);
  if (it == open_.end()) return;
  if (--it->second <= 0) open_.erase(it);
}

int64_t StreamSlots::open(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(key);
  return it == open_.end() ? 0 : it->second;
}

std::string RetryAfterText(absl::Duration wait) {
  int64_t s = static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(wait)));
  return absl::StrCat("retry after ", std::max<int64_t>(1, s), "s");
}

int64_t RetryAfterMs(absl::Duration wait) {
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
}

}  // namespace cnet::limits
