// Client for the GitHub REST API (v3) issues endpoints of one repository,
// used by the macs-gateway's GitHub Issues fallback.
//
// What it owns: request headers (Accept: application/vnd.github+json,
// Authorization: Bearer <token> — never logged, X-GitHub-Api-Version,
// User-Agent), Link-header pagination, conditional polling (If-None-Match ->
// 304 "not modified", which GitHub does not count against the rate limit),
// rate-limit tracking, and the status mapping below. Thread-safe.
//
// Status mapping (GitHub's `message` and a summary of `errors[]` included):
//   401 -> UNAUTHENTICATED; 404 -> NOT_FOUND; 410 (issues disabled) ->
//   FAILED_PRECONDITION; 422 -> INVALID_ARGUMENT; 400 -> INVALID_ARGUMENT;
//   403/429 with retry-after, or with x-ratelimit-remaining: 0 ->
//   RESOURCE_EXHAUSTED carrying a retry delay (RetryAfter()); other 403 ->
//   PERMISSION_DENIED; 5xx and transport failures -> UNAVAILABLE
//   (timeouts DEADLINE_EXCEEDED); oversize response -> OUT_OF_RANGE;
//   malformed JSON -> INTERNAL.
// When the tracked primary limit is exhausted (remaining 0 before reset),
// calls fail fast with RESOURCE_EXHAUSTED (retry delay = reset - now)
// without sending anything.
//
// Retries: GETs (ListIssues pages) are retried up to max_retries times on
// 5xx/transport failures with exponential backoff; writes (create issue,
// comment) are retried only when the request never reached the server (a
// retry could duplicate an issue); close and labels (idempotent PATCH/POST
// of a set) are retried. RESOURCE_EXHAUSTED is never retried internally:
// the caller owns waiting (RetryAfter()).
#ifndef CNET_LIBS_GITHUB_GITHUB_CLIENT_H_
#define CNET_LIBS_GITHUB_GITHUB_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"

namespace cnet::http {
class CurlHttpClient;
struct HttpResponse;
}

namespace cnet::github {

struct GitHubOptions {
  // "https://api.github.com" in production; the fake's URL in tests.
  std::string api_url = "https://api.github.com";
  std::string owner;
  std::string repo;
  // Personal access / installation token. Never logged.
  std::string token;
  std::string user_agent = "claudenet-gateway/1";
  std::string api_version = "2022-11-28";
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(30);
  int max_retries = 2;
  absl::Duration retry_initial_backoff = absl::Milliseconds(250);
  absl::Duration retry_max_backoff = absl::Seconds(8);
  size_t max_response_bytes = 16u << 20;
  // Waits between retries; null = a real sleep. Tests inject a recorder.
  std::function<void(absl::Duration)> sleep_for;
  // ListIssues follows at most this many pages (then OUT_OF_RANGE).
  int max_pages = 50;
};

struct Issue {
  int64_t number = 0;
  std::string title;
  std::string body;  // "" when GitHub sends null
  std::vector<std::string> labels;
  std::string state;       // "open" / "closed"
  std::string created_at;  // ISO 8601 as GitHub sends it
  std::string updated_at;
  bool is_pull_request = false;  // the item has a `pull_request` key
};

// Parses one page of GET /repos/{o}/{r}/issues (a JSON array). Items of
// the wrong shape make the page INVALID_ARGUMENT (naming the index and
// field); pull requests are kept with is_pull_request=true. Pure; fuzzed.
absl::StatusOr<std::vector<Issue>> ParseIssuesPage(absl::string_view json);

// Parses a Link header (`<url>; rel="next", <url>; rel="last"`) into
// rel -> url. Malformed parts are skipped; pure; fuzzed.
std::map<std::string, std::string> ParseLinkHeader(absl::string_view header);

// The retry delay carried by a RESOURCE_EXHAUSTED status from this client
// (retry-after, or rate-limit reset - now), if any.
std::optional<absl::Duration> RetryAfter(const absl::Status& status);

// Maps a non-2xx GitHub response to a status (see file comment). `now` is
// used for x-ratelimit-reset. `what` names the call (no credential).
absl::Status StatusFromGitHubResponse(const http::HttpResponse& response, absl::Time now,
                                      absl::string_view what);

struct ListIssuesRequest {
  std::vector<std::string> labels;  // all must match (GitHub's AND)
  std::string state = "open";       // open, closed, all
  std::string since;                // ISO 8601; updated at or after
  std::string sort = "updated";     // created, updated, comments
  std::string direction = "asc";
  int per_page = 100;               // 1..100
  // ETag of a previous first page; a 304 answer means nothing changed.
  std::string etag;
};

struct ListIssuesResult {
  bool not_modified = false;    // 304 to If-None-Match: issues empty
  std::vector<Issue> issues;    // pull requests removed
  int pull_requests_skipped = 0;
  std::string etag;             // of the first page (pass back next poll)
  int pages = 0;
};

struct RateLimit {
  int64_t limit = -1;      // -1 until a response carried the headers
  int64_t remaining = -1;
  absl::Time reset = absl::InfinitePast();
};

class GitHubClient {
 public:
  // `clock` (not owned; RealClock::Default() when null) is used for
  // rate-limit reset arithmetic against GitHub's epoch-seconds
  // x-ratelimit-reset, so it must read wall time (a SimulatedClock far from
  // now makes the fail-fast window wrong). Backoff waits use sleep_for.
  explicit GitHubClient(GitHubOptions options, Clock* clock = nullptr);
  ~GitHubClient();
  GitHubClient(const GitHubClient&) = delete;
  GitHubClient& operator=(const GitHubClient&) = delete;

  // POST /repos/{o}/{r}/issues -> the new issue's number.
  absl::StatusOr<int64_t> CreateIssue(const std::string& title, const std::string& body,
                                      const std::vector<std::string>& labels);
  // GET /repos/{o}/{r}/issues following Link rel="next".
  absl::StatusOr<ListIssuesResult> ListIssues(const ListIssuesRequest& request);
  // GET /repos/{o}/{r}/issues/{n}.
  absl::StatusOr<Issue> GetIssue(int64_t number);
  // POST /repos/{o}/{r}/issues/{n}/comments -> comment id.
  absl::StatusOr<int64_t> CreateComment(int64_t number, const std::string& body);
  // PATCH /repos/{o}/{r}/issues/{n} {"state":"closed"}.
  absl::Status CloseIssue(int64_t number);
  // POST /repos/{o}/{r}/issues/{n}/labels.
  absl::Status AddLabels(int64_t number, const std::vector<std::string>& labels);
  // POST /repos/{o}/{r}/labels; OK when it already exists (422
  // already_exists).
  absl::Status EnsureLabel(const std::string& name, const std::string& color,
                           const std::string& description);

  // Last seen x-ratelimit-* values.
  RateLimit rate_limit() const;
  // HTTP requests sent (not counting fail-fast refusals).
  int64_t requests_sent() const;

 private:
  struct Call;
  absl::StatusOr<http::HttpResponse> Send(const Call& call);
  void TrackRateLimit(const http::HttpResponse& response);

  const GitHubOptions options_;
  Clock* const clock_;
  std::unique_ptr<http::CurlHttpClient> http_;
  mutable absl::Mutex mu_;
  RateLimit rate_ ABSL_GUARDED_BY(mu_);
  int64_t requests_sent_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cnet::github

#endif  // CNET_LIBS_GITHUB_GITHUB_CLIENT_H_
