// GitHubClient against the in-process fake GitHub: create/list/comment/
// close, pagination over Link, pull requests skipped, 304 on an unchanged
// poll that costs no rate limit, rate-limit tracking and fail-fast,
// retry-after on 403/429, and every error class; the token never appears
// in error text.
#include "libs/github/github_client.h"

#include "gtest/gtest.h"
#include "libs/http/curl_http.h"
#include "tests/fakes/github_fake.h"

namespace cnet::github {
namespace {

using fakes::GitHubFake;

class GitHubClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = std::make_unique<GitHubFake>();
    ASSERT_TRUE(fake_->Start().ok());
  }
  GitHubOptions Options() {
    GitHubOptions o;
    o.api_url = fake_->url();
    o.owner = "acme";
    o.repo = "net";
    o.token = "gh-test-token";
    o.sleep_for = [this](absl::Duration d) { sleeps_.push_back(d); };
    return o;
  }
  std::unique_ptr<GitHubFake> fake_;
  std::vector<absl::Duration> sleeps_;
};

TEST_F(GitHubClientTest, CreateListCommentClose) {
  GitHubClient c(Options());
  auto n = c.CreateIssue("msg m-1 to node-b", "```\n{\"id\":\"m-1\"}\n```",
                         {"claudenet", "to:node-b"});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1);
  ListIssuesRequest req;
  req.labels = {"claudenet", "to:node-b"};
  auto list = c.ListIssues(req);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->issues.size(), 1u);
  const Issue& i = list->issues[0];
  EXPECT_EQ(i.title, "msg m-1 to node-b");
  EXPECT_EQ(i.body, "```\n{\"id\":\"m-1\"}\n```");
  EXPECT_EQ(i.labels, (std::vector<std::string>{"claudenet", "to:node-b"}));
  EXPECT_EQ(i.state, "open");
  EXPECT_FALSE(i.updated_at.empty());

  auto comment = c.CreateComment(*n, "delivered by node-b");
  ASSERT_TRUE(comment.ok()) << comment.status();
  ASSERT_TRUE(c.CloseIssue(*n).ok());
  EXPECT_EQ(fake_->GetIssue(*n).state, "closed");
  EXPECT_EQ(fake_->GetIssue(*n).comments, std::vector<std::string>{"delivered by node-b"});
  list = c.ListIssues(req);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->issues.empty());  // open only by default
  req.state = "all";
  list = c.ListIssues(req);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->issues.size(), 1u);
  auto got = c.GetIssue(*n);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, "closed");

  ASSERT_TRUE(c.AddLabels(*n, {"acked"}).ok());
  EXPECT_EQ(fake_->GetIssue(*n).labels.back(), "acked");
  EXPECT_TRUE(c.EnsureLabel("to:node-c", "00ff00", "dest").ok());
  EXPECT_TRUE(c.EnsureLabel("to:node-c", "00ff00", "dest").ok());  // exists: OK
}

TEST_F(GitHubClientTest, PaginatesAndSkipsPullRequests) {
  for (int i = 0; i < 25; ++i) {
    fake_->AddIssue("m" + std::to_string(i), "b", {"net"}, /*pull_request=*/i % 5 == 0);
  }
  fake_->AddIssue("other", "b", {"elsewhere"});
  GitHubClient c(Options());
  ListIssuesRequest req;
  req.labels = {"net"};
  req.per_page = 4;
  auto list = c.ListIssues(req);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->pages, 7);
  EXPECT_EQ(list->pull_requests_skipped, 5);
  ASSERT_EQ(list->issues.size(), 20u);
  for (const auto& i : list->issues) EXPECT_FALSE(i.is_pull_request);
  // sort=updated asc, same second: by number.
  EXPECT_EQ(list->issues[0].title, "m1");
}

TEST_F(GitHubClientTest, SinceFiltersByUpdatedAt) {
  fake_->SetNow(absl::FromUnixSeconds(1'700'000'000));
  fake_->AddIssue("old", "", {"net"});
  fake_->SetNow(absl::FromUnixSeconds(1'700'000'100));
  fake_->AddIssue("new", "", {"net"});
  GitHubClient c(Options());
  ListIssuesRequest req;
  req.since = "2023-11-14T22:14:00Z";  // 1'700'000'040
  auto list = c.ListIssues(req);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->issues.size(), 1u);
  EXPECT_EQ(list->issues[0].title, "new");
}

TEST_F(GitHubClientTest, UnchangedPollIsNotModifiedAndFree) {
  fake_->AddIssue("a", "", {"net"});
  GitHubClient c(Options());
  ListIssuesRequest req;
  auto first = c.ListIssues(req);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->etag.empty());
  int64_t remaining = fake_->rate_remaining();
  req.etag = first->etag;
  auto again = c.ListIssues(req);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->not_modified);
  EXPECT_TRUE(again->issues.empty());
  EXPECT_EQ(again->etag, first->etag);
  EXPECT_EQ(fake_->rate_remaining(), remaining);
  EXPECT_EQ(fake_->not_modified(), 1);
  // A change makes the next poll return data again.
  fake_->AddIssue("b", "", {"net"});
  auto changed = c.ListIssues(req);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(changed->not_modified);
  EXPECT_EQ(changed->issues.size(), 2u);
  EXPECT_NE(changed->etag, first->etag);
}

TEST_F(GitHubClientTest, TracksRateLimitAndFailsFastWhenExhausted) {
  GitHubClient c(Options());
  ASSERT_TRUE(c.ListIssues({}).ok());
  RateLimit rl = c.rate_limit();
  EXPECT_EQ(rl.limit, 5000);
  EXPECT_EQ(rl.remaining, 4999);
  EXPECT_GT(rl.reset, absl::Now());

  fake_->ExhaustRateLimit(absl::Minutes(10));
  auto s = c.CreateIssue("t", "b", {});
  ASSERT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted) << s.status();
  auto delay = RetryAfter(s.status());
  ASSERT_TRUE(delay.has_value());
  EXPECT_GT(*delay, absl::Minutes(9));
  EXPECT_LE(*delay, absl::Minutes(10) + absl::Seconds(1));
  // Now known exhausted: the next call is refused without a request.
  int64_t sent = c.requests_sent();
  int64_t seen = fake_->requests();
  EXPECT_EQ(c.ListIssues({}).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(c.requests_sent(), sent);
  EXPECT_EQ(fake_->requests(), seen);
}

TEST_F(GitHubClientTest, SecondaryLimitCarriesRetryAfter) {
  GitHubClient c(Options());
  fake_->FailNext(403, 1, 42);
  auto s = c.CreateIssue("t", "b", {});
  ASSERT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryAfter(s.status()), absl::Seconds(42));
  EXPECT_NE(std::string(s.status().message()).find("secondary rate limit"), std::string::npos);
  fake_->FailNext(429, 1, 7);
  auto l = c.ListIssues({});
  ASSERT_EQ(l.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryAfter(l.status()), absl::Seconds(7));
  EXPECT_TRUE(sleeps_.empty());  // never waited internally
  EXPECT_TRUE(c.ListIssues({}).ok());
}

TEST_F(GitHubClientTest, ServerErrorsRetryReadsNotCreates) {
  GitHubClient c(Options());
  fake_->FailNext(502, 2);
  auto l = c.ListIssues({});
  EXPECT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(sleeps_.size(), 2u);
  fake_->FailNext(500, 1);
  auto n = c.CreateIssue("t", "b", {});
  EXPECT_EQ(n.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(fake_->Issues().empty());
}

TEST_F(GitHubClientTest, ErrorClasses) {
  {
    GitHubOptions o = Options();
    o.token = "bad-token-value-987";
    GitHubClient c(o);
    auto s = c.ListIssues({});
    EXPECT_EQ(s.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_NE(std::string(s.status().message()).find("Bad credentials"), std::string::npos);
    EXPECT_EQ(std::string(s.status().message()).find("bad-token-value-987"), std::string::npos);
  }
  {
    GitHubOptions o = Options();
    o.repo = "missing";
    GitHubClient c(o);
    EXPECT_EQ(c.CreateIssue("t", "b", {}).status().code(), absl::StatusCode::kNotFound);
  }
  GitHubClient c(Options());
  EXPECT_EQ(c.GetIssue(999).status().code(), absl::StatusCode::kNotFound);
  auto bad_state = c.ListIssues([] {
    ListIssuesRequest r;
    r.state = "weird";
    return r;
  }());
  EXPECT_EQ(bad_state.status().code(), absl::StatusCode::kInvalidArgument);
  int64_t n = fake_->AddIssue("x", "", {});
  EXPECT_EQ(c.CreateComment(n, "").status().code(), absl::StatusCode::kInvalidArgument);
  auto v = c.CreateComment(n, "");
  EXPECT_NE(std::string(v.status().message()).find("missing_field"), std::string::npos)
      << v.status();
  fake_->SetIssuesEnabled(false);
  EXPECT_EQ(c.CreateIssue("t", "b", {}).status().code(), absl::StatusCode::kFailedPrecondition);
}

// Regression (#12 finding): invalid UTF-8 in caller text must be
// INVALID_ARGUMENT, not an exception from Json::dump().
TEST_F(GitHubClientTest, InvalidUtf8IsRejectedNotThrown) {
  GitHubClient c(Options());
  std::string bad = "\xff\xfe";
  EXPECT_EQ(c.CreateIssue("t", bad, {}).status().code(), absl::StatusCode::kInvalidArgument);
  int64_t n = fake_->AddIssue("x", "", {});
  EXPECT_EQ(c.CreateComment(n, bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.AddLabels(n, {bad}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fake_->requests(), 0);
}

TEST_F(GitHubClientTest, SecondaryLimitWithoutRetryAfterWaitsAMinute) {
  GitHubClient c(Options());
  fake_->FailNext(403, 1);
  auto s = c.ListIssues({});
  ASSERT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted) << s.status();
  EXPECT_EQ(RetryAfter(s.status()), absl::Minutes(1));
}

TEST(GitHubStatusTest, PlainForbiddenIsPermissionDenied) {
  http::HttpResponse r;
  r.status = 403;
  r.body = R"({"message":"Resource not accessible by integration"})";
  absl::Status s = StatusFromGitHubResponse(r, absl::Now(), "GET x");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(RetryAfter(s).has_value());
  r.status = 422;
  r.body = R"({"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"},"free text"]})";
  s = StatusFromGitHubResponse(r, absl::Now(), "POST y");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("Issue.title missing_field; free text"), std::string::npos)
      << s;
  r.status = 403;
  r.body = "{}";
  r.headers.emplace("x-ratelimit-remaining", "0");
  r.headers.emplace("x-ratelimit-reset", std::to_string(absl::ToUnixSeconds(absl::Now()) + 120));
  s = StatusFromGitHubResponse(r, absl::Now(), "GET z");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(RetryAfter(s).has_value());
  EXPECT_GT(*RetryAfter(s), absl::Seconds(100));
}

TEST(GitHubParseTest, LinkHeader) {
  auto links = ParseLinkHeader(
      "<https://api.github.com/repositories/1/issues?labels=a,b&page=2>; rel=\"next\", "
      "<https://api.github.com/repositories/1/issues?labels=a,b&page=5>; rel=\"last\"");
  EXPECT_EQ(links["next"], "https://api.github.com/repositories/1/issues?labels=a,b&page=2");
  EXPECT_EQ(links["last"], "https://api.github.com/repositories/1/issues?labels=a,b&page=5");
  EXPECT_TRUE(ParseLinkHeader("").empty());
  EXPECT_TRUE(ParseLinkHeader("garbage <no-close").empty());
  EXPECT_EQ(ParseLinkHeader("<u>; rel=\"prev first\"")["first"], "u");
}

TEST(GitHubParseTest, IssuesPage) {
  auto page = ParseIssuesPage(R"([
    {"number": 3, "title": "t", "body": null, "state": "open",
     "labels": [{"name": "a"}, "b"], "updated_at": "2024-01-01T00:00:00Z"},
    {"number": 4, "title": "pr", "state": "open", "pull_request": {"url": "u"}}])");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].body, "");
  EXPECT_EQ((*page)[0].labels, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE((*page)[1].is_pull_request);
  EXPECT_EQ(ParseIssuesPage("{}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseIssuesPage("[{\"number\": \"x\"}]").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseIssuesPage(std::string(100000, '[')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cnet::github
