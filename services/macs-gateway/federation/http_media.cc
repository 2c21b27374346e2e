#include "services/macs-gateway/federation/http_media.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace cnet::macs::federation {

absl::Status FirebaseRealtimeDb::Update(const std::map<std::string, std::string>& values) {
  std::map<std::string, firebase::Json> updates;
  for (const auto& [path, text] : values) {
    firebase::Json v = firebase::Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat("value for \"", path, "\" is not JSON"));
    }
    updates[path] = std::move(v);
  }
  if (updates.empty()) return absl::OkStatus();
  return client_->UpdateMultiPath("", updates);
}

absl::StatusOr<std::map<std::string, std::string>> FirebaseRealtimeDb::Children(
    const std::string& path, int limit) {
  firebase::Query q = firebase::Query::OrderByKey();
  if (limit > 0) q.LimitToFirst(limit);
  absl::StatusOr<firebase::Json> v = client_->Get(path, q);
  if (!v.ok()) return v.status();
  std::map<std::string, std::string> out;
  if (v->is_null()) return out;
  if (!v->is_object()) {
    return absl::InternalError(absl::StrCat("GET ", path, ": expected an object of children"));
  }
  for (auto it = v->begin(); it != v->end(); ++it) out[it.key()] = it.value().dump();
  return out;
}

absl::StatusOr<int64_t> GitHubIssueTracker::Create(const std::string& title,
                                                   const std::string& body,
                                                   const std::vector<std::string>& labels) {
  return client_->CreateIssue(title, body, labels);
}

absl::StatusOr<std::vector<Issue>> GitHubIssueTracker::ListOpen(
    const std::vector<std::string>& labels) {
  github::ListIssuesRequest req;
  req.labels = labels;
  req.state = "open";
  req.sort = "created";
  req.direction = "asc";
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(labels);
    if (it != cache_.end()) req.etag = it->second.first;
  }
  absl::StatusOr<github::ListIssuesResult> r = client_->ListIssues(req);
  if (!r.ok()) return r.status();
  absl::MutexLock lock(&mu_);
  if (r->not_modified) {
    auto it = cache_.find(labels);
    if (it != cache_.end()) return it->second.second;
    return std::vector<Issue>();
  }
  std::vector<Issue> out;
  for (const github::Issue& i : r->issues) {
    if (i.is_pull_request || i.state == "closed") continue;
    Issue o;
    o.number = i.number;
    o.title = i.title;
    o.body = i.body;
    o.labels = i.labels;
    out.push_back(std::move(o));
  }
  std::sort(out.begin(), out.end(),
            [](const Issue& a, const Issue& b) { return a.number < b.number; });
  cache_[labels] = {r->etag, out};
  return out;
}

absl::Status GitHubIssueTracker::CommentAndClose(int64_t number, const std::string& comment) {
  absl::StatusOr<int64_t> c = client_->CreateComment(number, comment);
  if (!c.ok()) return c.status();
  absl::Status st = client_->CloseIssue(number);
  if (!st.ok()) return st;
  absl::MutexLock lock(&mu_);
  for (auto& [labels, entry] : cache_) {
    auto& v = entry.second;
    v.erase(std::remove_if(v.begin(), v.end(), [&](const Issue& i) { return i.number == number; }),
            v.end());
  }
  return absl::OkStatus();
}

}  // namespace cnet::macs::federation
