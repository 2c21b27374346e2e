// The Firebase fake checked over raw HTTP against the documented REST API
// behaviour (status codes, bodies, headers), independent of our client.
#include "tests/fakes/firebase_fake.h"

#include <httplib.h>

#include "gtest/gtest.h"

namespace cnet::fakes {
namespace {

using Json = nlohmann::json;

class FirebaseFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FirebaseFake::Options o;
    o.secret = "sek";
    fake_ = std::make_unique<FirebaseFake>(o);
    ASSERT_TRUE(fake_->Start().ok());
    cli_ = std::make_unique<httplib::Client>("127.0.0.1", fake_->port());
  }
  std::unique_ptr<FirebaseFake> fake_;
  std::unique_ptr<httplib::Client> cli_;
};

TEST_F(FirebaseFakeTest, RestVerbs) {
  auto put = cli_->Put("/users/jack/name.json?auth=sek", R"({"first":"Jack","last":"Sparrow"})",
                       "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 200);
  EXPECT_EQ(Json::parse(put->body)["first"], "Jack");  // echoes the data
  auto get = cli_->Get("/users/jack/name/first.json?auth=sek");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, "\"Jack\"");
  auto patch = cli_->Patch("/users/jack/name.json?auth=sek&print=silent", R"({"last":"Jones"})",
                           "application/json");
  ASSERT_TRUE(patch);
  EXPECT_EQ(patch->status, 204);
  EXPECT_TRUE(patch->body.empty());
  EXPECT_EQ(fake_->Get("users/jack/name"), (Json{{"first", "Jack"}, {"last", "Jones"}}));
  auto post = cli_->Post("/message_list.json?auth=sek", R"({"text":"Ahoy!"})", "application/json");
  ASSERT_TRUE(post);
  std::string name = Json::parse(post->body)["name"];
  EXPECT_EQ(name.size(), 20u);
  EXPECT_EQ(fake_->Get("message_list/" + name)["text"], "Ahoy!");
  auto del = cli_->Delete("/users/jack/name/last.json?auth=sek");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  EXPECT_EQ(del->body, "null");
  auto missing = cli_->Get("/nothing/here.json?auth=sek");
  EXPECT_EQ(missing->body, "null");
  // Empty objects are not stored.
  cli_->Put("/e.json?auth=sek", R"({"a":{},"b":null})", "application/json");
  EXPECT_TRUE(fake_->Get("e").is_null());
  auto bad = cli_->Put("/x.json?auth=sek", "{not json", "application/json");
  EXPECT_EQ(bad->status, 400);
}

TEST_F(FirebaseFakeTest, AuthIsChecked) {
  auto r = cli_->Get("/a.json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(Json::parse(r->body)["error"], "Permission denied");
  EXPECT_EQ(cli_->Get("/a.json?auth=wrong")->status, 401);
  EXPECT_EQ(cli_->Get("/a.json?access_token=sek")->status, 200);
}

TEST_F(FirebaseFakeTest, QueryRulesAndErrors) {
  fake_->Set("d", Json{{"x", 3}, {"y", 1}, {"z", 2}});
  auto r = cli_->Get("/d.json?auth=sek&orderBy=%22%24value%22&limitToFirst=2");
  ASSERT_TRUE(r);
  EXPECT_EQ(Json::parse(r->body), (Json{{"y", 1}, {"z", 2}}));
  r = cli_->Get("/d.json?auth=sek&limitToFirst=2");
  EXPECT_EQ(r->status, 400);  // filter without orderBy
  EXPECT_NE(r->body.find("orderBy must be defined"), std::string::npos);
  r = cli_->Get("/d.json?auth=sek&orderBy=$key");
  EXPECT_EQ(r->status, 400);  // unquoted
  r = cli_->Get("/d.json?auth=sek&orderBy=%22%24key%22&startAt=1");
  EXPECT_EQ(r->status, 400);  // $key needs string bounds
  r = cli_->Get("/d.json?auth=sek&shallow=true&orderBy=%22%24key%22");
  EXPECT_EQ(r->status, 400);
  r = cli_->Get("/d.json?auth=sek&shallow=true");
  EXPECT_EQ(Json::parse(r->body), (Json{{"x", true}, {"y", true}, {"z", true}}));
  // Integer-like keys sort numerically before strings under $key.
  fake_->Set("k", Json{{"10", 1}, {"9", 1}, {"a", 1}});
  r = cli_->Get("/k.json?auth=sek&orderBy=%22%24key%22&limitToFirst=1");
  EXPECT_EQ(Json::parse(r->body), (Json{{"9", 1}}));
}

TEST_F(FirebaseFakeTest, ETagsAndConditionalWrites) {
  fake_->Set("c", 1);
  httplib::Headers want_etag = {{"X-Firebase-ETag", "true"}};
  auto r = cli_->Get("/c.json?auth=sek", want_etag);
  ASSERT_TRUE(r);
  std::string tag = r->get_header_value("ETag");
  ASSERT_FALSE(tag.empty());
  auto stale = cli_->Put("/c.json?auth=sek", httplib::Headers{{"if-match", "nope"}}, "5",
                         "application/json");
  EXPECT_EQ(stale->status, 412);
  EXPECT_EQ(stale->body, "1");  // current value
  EXPECT_EQ(stale->get_header_value("ETag"), tag);
  auto ok = cli_->Put("/c.json?auth=sek", httplib::Headers{{"if-match", tag}}, "5",
                      "application/json");
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(fake_->Get("c"), 5);
}

TEST_F(FirebaseFakeTest, MultiPathPatchIsAtomicAndRejectsOverlap) {
  fake_->Set("u", Json{{"a", 1}});
  auto r = cli_->Patch("/.json?auth=sek", R"({"u/b":2,"v/c":{"d":3},"u/a":null})",
                       "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(fake_->Get("u"), (Json{{"b", 2}}));
  EXPECT_EQ(fake_->Get("v/c/d"), 3);
  Json before = fake_->Root();
  r = cli_->Patch("/.json?auth=sek", R"({"u":{"x":1},"u/b":5})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("ancestor"), std::string::npos);
  EXPECT_EQ(fake_->Root(), before);
}

TEST_F(FirebaseFakeTest, ServerTimestamp) {
  cli_->Put("/t.json?auth=sek", R"({".sv":"timestamp"})", "application/json");
  EXPECT_TRUE(fake_->Get("t").is_number_integer());
}

TEST_F(FirebaseFakeTest, StreamStartsWithSnapshotAndRedirectsWhenAsked) {
  fake_->Set("s", Json{{"a", 1}});
  fake_->RedirectNextStream();
  httplib::Headers sse = {{"Accept", "text/event-stream"}};
  auto r = cli_->Get("/s.json?auth=sek", sse);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 307);
  EXPECT_EQ(r->get_header_value("Location"),
            "http://127.0.0.1:" + std::to_string(fake_->port()) + "/s.json");
  std::string got;
  auto res = cli_->Get("/s.json?auth=sek", sse, [&](const char* data, size_t len) {
    got.append(data, len);
    return got.find("\n\n") == std::string::npos;  // stop after the first event
  });
  EXPECT_EQ(got.substr(0, got.find("\n\n") + 2),
            "event: put\ndata: {\"data\":{\"a\":1},\"path\":\"/\"}\n\n");
  EXPECT_EQ(fake_->stream_requests(), 2);
}

TEST(FirebaseFakeOptionsTest, RedirectFirstStreamOption) {
  FirebaseFake::Options o;
  o.redirect_first_stream = true;
  FirebaseFake fake(o);
  ASSERT_TRUE(fake.Start().ok());
  httplib::Client cli("127.0.0.1", fake.port());
  httplib::Headers sse = {{"Accept", "text/event-stream"}};
  auto r = cli.Get("/x.json", sse);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 307);
  EXPECT_EQ(cli.Get("/x.json")->status, 200);  // REST reads are not redirected
}

TEST_F(FirebaseFakeTest, FaultKnobs) {
  fake_->FailAllWith(503);
  EXPECT_EQ(cli_->Get("/a.json?auth=sek")->status, 503);
  fake_->FailAllWith(429);
  EXPECT_EQ(cli_->Get("/a.json?auth=sek")->status, 429);
  fake_->ClearFailures();
  EXPECT_EQ(cli_->Get("/a.json?auth=sek")->status, 200);
  fake_->FailNext(500, 1);
  EXPECT_EQ(cli_->Get("/a.json?auth=sek")->status, 500);
  EXPECT_EQ(cli_->Get("/a.json?auth=sek")->status, 200);
  ASSERT_TRUE(fake_->SetRefuseConnections(true).ok());
  httplib::Client fresh("127.0.0.1", fake_->port());
  EXPECT_FALSE(fresh.Get("/a.json?auth=sek"));
  ASSERT_TRUE(fake_->SetRefuseConnections(false).ok());
  httplib::Client again("127.0.0.1", fake_->port());
  EXPECT_EQ(again.Get("/a.json?auth=sek")->status, 200);
  EXPECT_GE(fake_->requests(), 6);
}

}  // namespace
}  // namespace cnet::fakes
