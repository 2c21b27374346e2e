// The GitHub fake checked over raw HTTP against the documented REST API
// behaviour: auth, issues and PRs in one list, filters, Link pagination,
// ETag/304 without rate cost, rate-limit headers, injected faults.
#include "tests/fakes/github_fake.h"

#include <httplib.h>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cnet::fakes {
namespace {

using Json = nlohmann::json;

class GitHubFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fake_.Start().ok());
    cli_ = std::make_unique<httplib::Client>("127.0.0.1", fake_.port());
    cli_->set_default_headers({{"Authorization", "Bearer gh-test-token"},
                               {"Accept", "application/vnd.github+json"}});
  }
  GitHubFake fake_;
  std::unique_ptr<httplib::Client> cli_;
};

TEST_F(GitHubFakeTest, AuthAndRepo) {
  httplib::Client anon("127.0.0.1", fake_.port());
  auto r = anon.Get("/repos/acme/net/issues");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(Json::parse(r->body)["message"], "Bad credentials");
  EXPECT_EQ(cli_->Get("/repos/acme/other/issues")->status, 404);
  fake_.SetIssuesEnabled(false);
  EXPECT_EQ(cli_->Get("/repos/acme/net/issues")->status, 410);
}

TEST_F(GitHubFakeTest, IssuesAndPullRequestsShareTheList) {
  auto c = cli_->Post("/repos/acme/net/issues", R"({"title":"t","body":"b","labels":["x","y"]})",
                      "application/json");
  ASSERT_EQ(c->status, 201);
  EXPECT_EQ(Json::parse(c->body)["number"], 1);
  fake_.AddIssue("pr", "", {"x"}, /*pull_request=*/true);
  auto l = cli_->Get("/repos/acme/net/issues?labels=x");
  Json arr = Json::parse(l->body);
  ASSERT_EQ(arr.size(), 2u);
  int prs = 0;
  for (const auto& i : arr) prs += i.contains("pull_request") ? 1 : 0;
  EXPECT_EQ(prs, 1);
  EXPECT_EQ(Json::parse(cli_->Get("/repos/acme/net/issues?labels=x,y")->body).size(), 1u);
  auto bad = cli_->Post("/repos/acme/net/issues", R"({"body":"no title"})", "application/json");
  EXPECT_EQ(bad->status, 422);
  EXPECT_EQ(Json::parse(bad->body)["errors"][0]["code"], "missing_field");
  auto closed = cli_->Patch("/repos/acme/net/issues/1", R"({"state":"closed"})", "application/json");
  EXPECT_EQ(Json::parse(closed->body)["state"], "closed");
  EXPECT_EQ(Json::parse(cli_->Get("/repos/acme/net/issues?labels=x")->body).size(), 1u);
  EXPECT_EQ(Json::parse(cli_->Get("/repos/acme/net/issues?state=all")->body).size(), 2u);
}

TEST_F(GitHubFakeTest, LinkPagination) {
  for (int i = 0; i < 5; ++i) fake_.AddIssue("i" + std::to_string(i), "", {});
  auto p1 = cli_->Get("/repos/acme/net/issues?per_page=2");
  std::string link = p1->get_header_value("Link");
  EXPECT_NE(link.find("page=2>; rel=\"next\""), std::string::npos) << link;
  EXPECT_NE(link.find("page=3>; rel=\"last\""), std::string::npos) << link;
  auto p3 = cli_->Get("/repos/acme/net/issues?per_page=2&page=3");
  EXPECT_EQ(Json::parse(p3->body).size(), 1u);
  std::string link3 = p3->get_header_value("Link");
  EXPECT_EQ(link3.find("rel=\"next\""), std::string::npos);
  EXPECT_NE(link3.find("rel=\"prev\""), std::string::npos);
  // Default order: created desc.
  EXPECT_EQ(Json::parse(p1->body)[0]["number"], 5);
}

TEST_F(GitHubFakeTest, ConditionalRequestsAreFree) {
  fake_.AddIssue("a", "", {});
  auto r = cli_->Get("/repos/acme/net/issues");
  std::string etag = r->get_header_value("ETag");
  int remaining = std::stoi(r->get_header_value("x-ratelimit-remaining"));
  EXPECT_EQ(remaining, 4999);
  auto nm = cli_->Get("/repos/acme/net/issues", httplib::Headers{{"If-None-Match", etag}});
  EXPECT_EQ(nm->status, 304);
  EXPECT_EQ(std::stoi(nm->get_header_value("x-ratelimit-remaining")), remaining);
  EXPECT_EQ(fake_.rate_remaining(), remaining);
  EXPECT_FALSE(r->get_header_value("x-ratelimit-reset").empty());
}

TEST_F(GitHubFakeTest, RateLimitsAndFaults) {
  fake_.FailNext(403, 1, 30);
  auto r = cli_->Get("/repos/acme/net/issues");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->get_header_value("retry-after"), "30");
  fake_.FailNext(503, 1);
  EXPECT_EQ(cli_->Get("/repos/acme/net/issues")->status, 503);
  EXPECT_EQ(cli_->Get("/repos/acme/net/issues")->status, 200);
  fake_.ExhaustRateLimit(absl::Minutes(5));
  r = cli_->Get("/repos/acme/net/issues");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->get_header_value("x-ratelimit-remaining"), "0");
  EXPECT_NE(r->body.find("API rate limit exceeded"), std::string::npos);
  fake_.ClearFailures();
  EXPECT_EQ(cli_->Get("/repos/acme/net/issues")->status, 200);
}

TEST_F(GitHubFakeTest, SinceAndComments) {
  fake_.SetNow(absl::FromUnixSeconds(1'800'000'000));
  int64_t n = fake_.AddIssue("old", "", {});
  fake_.SetNow(absl::FromUnixSeconds(1'800'000'500));
  auto c = cli_->Post("/repos/acme/net/issues/" + std::to_string(n) + "/comments",
                      R"({"body":"ack"})", "application/json");
  EXPECT_EQ(c->status, 201);
  fake_.AddIssue("other", "", {});
  // The comment bumped updated_at, so both match `since`.
  auto l = cli_->Get("/repos/acme/net/issues?since=2027-01-15T08:05:00Z");
  EXPECT_EQ(Json::parse(l->body).size(), 2u);
  EXPECT_EQ(fake_.GetIssue(n).comments.size(), 1u);
  auto bad = cli_->Get("/repos/acme/net/issues?since=yesterday");
  EXPECT_EQ(bad->status, 422);
}

}  // namespace
}  // namespace cnet::fakes
