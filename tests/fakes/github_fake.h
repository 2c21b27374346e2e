// An in-process fake of the GitHub REST API (issues of one repository) on
// 127.0.0.1 (port 0), for tests of the GitHub fallback.
//
// Fidelity (checked by github_fake_test against the documented API):
//   - POST /repos/{o}/{r}/issues, GET .../issues (state, labels = all of a
//     comma list, since = updated_at >= since, sort created|updated,
//     direction, per_page <= 100, page), GET/PATCH .../issues/{n}
//     (state, title, body, labels), POST/GET .../issues/{n}/comments,
//     POST .../issues/{n}/labels, POST/GET .../labels (422 already_exists);
//   - pull requests mixed into the issue list with a `pull_request` key;
//   - Link header with rel="next"/"last"/"first"/"prev" on list pages;
//   - ETag on GETs; If-None-Match matching -> 304 that does not decrement
//     the rate limit; x-ratelimit-limit/remaining/used/reset/resource on
//     every response, remaining decremented per counted request; when it is
//     0: 403 {"message":"API rate limit exceeded ..."};
//   - Authorization: Bearer|token <token> checked -> 401 "Bad credentials";
//     unknown repo -> 404; issues disabled -> 410; validation -> 422 with
//     errors[];
//   - timestamps come from the fake's clock (settable), ISO 8601 seconds.
// Fault knobs: next N requests answer 403 + retry-after (secondary limit),
// 429 + retry-after, or a 5xx; exhaust the primary limit; counters.
#ifndef CNET_TESTS_FAKES_GITHUB_FAKE_H_
#define CNET_TESTS_FAKES_GITHUB_FAKE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cnet::fakes {

class GitHubFake {
 public:
  struct Options {
    std::string owner = "acme";
    std::string repo = "net";
    std::string token = "gh-test-token";
    int64_t rate_limit = 5000;
    absl::Duration rate_window = absl::Hours(1);
  };
  struct FakeIssue {
    int64_t number = 0;
    std::string title;
    std::string body;
    std::vector<std::string> labels;
    std::string state = "open";
    bool pull_request = false;
    absl::Time created_at;
    absl::Time updated_at;
    std::vector<std::string> comments;
  };

  GitHubFake();
  explicit GitHubFake(Options options);
  ~GitHubFake();
  GitHubFake(const GitHubFake&) = delete;
  GitHubFake& operator=(const GitHubFake&) = delete;

  absl::Status Start();
  void Stop();
  int port() const;
  // "http://127.0.0.1:<port>" — the api_url for clients.
  std::string url() const;

  // --- data ---
  // Adds an issue or pull request directly; returns its number.
  int64_t AddIssue(const std::string& title, const std::string& body,
                   const std::vector<std::string>& labels, bool pull_request = false);
  std::vector<FakeIssue> Issues() const;
  FakeIssue GetIssue(int64_t number) const;  // number 0 when absent
  // Time used for created_at/updated_at (default: real time).
  void SetNow(absl::Time now);
  void SetIssuesEnabled(bool enabled);  // false -> 410 on issue endpoints

  // --- faults ---
  // The next `count` requests answer `http_status` (403 or 429 with
  // retry-after when retry_after_seconds >= 0; 5xx plain).
  void FailNext(int http_status, int count, int retry_after_seconds = -1);
  // Sets remaining to 0 until `reset_in` from now.
  void ExhaustRateLimit(absl::Duration reset_in);
  void ClearFailures();

  // --- counters ---
  int64_t requests() const;
  int64_t not_modified() const;
  int64_t rate_remaining() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cnet::fakes

#endif  // CNET_TESTS_FAKES_GITHUB_FAKE_H_
