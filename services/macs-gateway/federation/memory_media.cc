#include "services/macs-gateway/federation/memory_media.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cnet::macs::federation {

absl::Status MemoryRealtimeDb::Fault() {
  if (down_) {
    failures_++;
    return absl::UnavailableError("connect: connection refused (fake database down)");
  }
  if (fail_next_ > 0) {
    fail_next_--;
    failures_++;
    return absl::UnavailableError("HTTP 503 Service Unavailable (fake)");
  }
  return absl::OkStatus();
}

absl::Status MemoryRealtimeDb::Update(const std::map<std::string, std::string>& values) {
  std::function<void()> notify;
  bool lost = false;
  {
    absl::MutexLock lock(&mu_);
    absl::Status st = Fault();
    if (!st.ok()) return st;
    for (const auto& [path, value] : values) {
      auto it = values_.lower_bound(path);
      while (it != values_.end() &&
             (it->first == path || absl::StartsWith(it->first, path + "/"))) {
        it = values_.erase(it);
      }
      if (value != "null") values_[path] = value;
    }
    updates_++;
    notify = on_update_;
    lost = lose_replies_;
  }
  if (notify) notify();
  if (lost) return absl::DeadlineExceededError("operation timed out (fake: reply lost)");
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> MemoryRealtimeDb::Children(
    const std::string& path, int limit) {
  absl::MutexLock lock(&mu_);
  absl::Status st = Fault();
  if (!st.ok()) return st;
  std::map<std::string, std::string> out;
  const std::string prefix = path + "/";
  for (auto it = values_.lower_bound(prefix);
       it != values_.end() && absl::StartsWith(it->first, prefix); ++it) {
    std::string key = it->first.substr(prefix.size());
    if (key.find('/') != std::string::npos) continue;
    out[key] = it->second;
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
  }
  return out;
}

void MemoryRealtimeDb::SetDown(bool down) {
  absl::MutexLock lock(&mu_);
  down_ = down;
}
void MemoryRealtimeDb::LoseReplies(bool lose) {
  absl::MutexLock lock(&mu_);
  lose_replies_ = lose;
}
void MemoryRealtimeDb::FailNext(int n) {
  absl::MutexLock lock(&mu_);
  fail_next_ = n;
}
void MemoryRealtimeDb::OnUpdate(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  on_update_ = std::move(fn);
}
int64_t MemoryRealtimeDb::updates() const {
  absl::MutexLock lock(&mu_);
  return updates_;
}
int64_t MemoryRealtimeDb::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}
size_t MemoryRealtimeDb::Count(const std::string& prefix) const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (auto it = values_.lower_bound(prefix);
       it != values_.end() && absl::StartsWith(it->first, prefix); ++it) {
    n++;
  }
  return n;
}

absl::StatusOr<int64_t> MemoryIssueTracker::Create(const std::string& title,
                                                   const std::string& body,
                                                   const std::vector<std::string>& labels) {
  absl::MutexLock lock(&mu_);
  if (down_) return absl::UnavailableError("HTTP 503 (fake GitHub down)");
  if (body.size() > 65536) return absl::InvalidArgumentError("HTTP 422: body is too long");
  Item item;
  item.issue.number = next_++;
  item.issue.title = title;
  item.issue.body = body;
  item.issue.labels = labels;
  int64_t n = item.issue.number;
  items_[n] = std::move(item);
  return n;
}

absl::StatusOr<std::vector<Issue>> MemoryIssueTracker::ListOpen(
    const std::vector<std::string>& labels) {
  absl::MutexLock lock(&mu_);
  if (down_) return absl::UnavailableError("HTTP 503 (fake GitHub down)");
  std::vector<Issue> out;
  for (const auto& [n, item] : items_) {
    if (!item.open) continue;
    bool all = true;
    for (const std::string& l : labels) {
      if (std::find(item.issue.labels.begin(), item.issue.labels.end(), l) ==
          item.issue.labels.end()) {
        all = false;
      }
    }
    if (all) out.push_back(item.issue);
  }
  return out;
}

absl::Status MemoryIssueTracker::CommentAndClose(int64_t number, const std::string& comment) {
  absl::MutexLock lock(&mu_);
  if (down_) return absl::UnavailableError("HTTP 503 (fake GitHub down)");
  auto it = items_.find(number);
  if (it == items_.end()) return absl::NotFoundError(absl::StrCat("issue ", number));
  it->second.comments.push_back(comment);
  it->second.open = false;
  return absl::OkStatus();
}

void MemoryIssueTracker::SetDown(bool down) {
  absl::MutexLock lock(&mu_);
  down_ = down;
}
int64_t MemoryIssueTracker::created() const {
  absl::MutexLock lock(&mu_);
  return next_ - 1;
}
int64_t MemoryIssueTracker::open_count() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [k, item] : items_) n += item.open ? 1 : 0;
  return n;
}
std::vector<std::string> MemoryIssueTracker::comments(int64_t number) const {
  absl::MutexLock lock(&mu_);
  auto it = items_.find(number);
  return it == items_.end() ? std::vector<std::string>() : it->second.comments;
}

}  // namespace cnet::macs::federation
