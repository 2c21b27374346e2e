// FirebaseClient against the in-process fake Realtime Database: every verb,
// query quoting, ETag/412, multi-path, server values, auth, fault mapping,
// retries, timeouts, the response cap, keep-alive reuse, and that the
// credential never appears in error text.
#include "libs/firebase/firebase_client.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fakes/firebase_fake.h"

namespace cnet::firebase {
namespace {

using fakes::FirebaseFake;

constexpr char kSecret[] = "s3cr3t-db-secret";

class FirebaseClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FirebaseFake::Options o;
    o.secret = kSecret;
    fake_ = std::make_unique<FirebaseFake>(o);
    ASSERT_TRUE(fake_->Start().ok());
  }

  FirebaseOptions Options() {
    FirebaseOptions o;
    o.database_url = fake_->url();
    o.auth = kSecret;
    o.timeout = absl::Seconds(5);
    o.max_retries = 2;
    o.sleep_for = [this](absl::Duration d) {
      sleeps_.push_back(d);
    };
    return o;
  }

  std::unique_ptr<FirebaseFake> fake_;
  std::vector<absl::Duration> sleeps_;
};

TEST_F(FirebaseClientTest, PutGetPatchDelete) {
  FirebaseClient c(Options());
  ASSERT_TRUE(c.Put("agents/a1", Json{{"name", "alpha"}, {"status", "online"}}).ok());
  auto v = c.Get("agents/a1");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["name"], "alpha");
  ASSERT_TRUE(c.Patch("agents/a1", Json{{"status", "away"}, {"name", nullptr}}).ok());
  v = c.Get("/agents/a1/");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (Json{{"status", "away"}}));
  ASSERT_TRUE(c.Delete("agents/a1").ok());
  v = c.Get("agents/a1");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is_null());
  EXPECT_TRUE(fake_->Get("agents").is_null());  // empty parents pruned
  EXPECT_TRUE(c.Delete("agents/never").ok());   // deleting nothing is OK
  EXPECT_EQ(fake_->writes_by_path()["agents/a1"], 3);
}

TEST_F(FirebaseClientTest, PushIdsAreTwentyCharsAndTimeOrdered) {
  FirebaseClient c(Options());
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    auto id = c.Push("messages/n1", Json{{"seq", i}});
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(id->size(), 20u);
    ids.push_back(*id);
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  Json all = fake_->Get("messages/n1");
  ASSERT_EQ(all.size(), 20u);
  EXPECT_EQ(all[ids[7]]["seq"], 7);
  // Client-side ids are ordered too (for PushId + Put, which is retryable).
  std::string a = NewPushId(absl::FromUnixMillis(1000));
  std::string b = NewPushId(absl::FromUnixMillis(1000));
  std::string d = NewPushId(absl::FromUnixMillis(999));
  EXPECT_LT(a, b);
  EXPECT_LT(d, a);
}

TEST_F(FirebaseClientTest, QueryEncodingQuotesJson) {
  auto q = EncodeQuery(Query::OrderByKey().StartAt("b").LimitToFirst(2));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, "orderBy=%22%24key%22&startAt=%22b%22&limitToFirst=2");
  q = EncodeQuery(Query::OrderByChild("meta/ts").EqualTo(5));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, "orderBy=%22meta%2Fts%22&equalTo=5");
  EXPECT_EQ(EncodeQuery(Query().LimitToFirst(1)).status().code(),
            absl::StatusCode::kInvalidArgument);  // filter without orderBy
  Query shallow_and_order = Query::OrderByKey();
  shallow_and_order.shallow = true;
  EXPECT_EQ(EncodeQuery(shallow_and_order).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeQuery(Query::OrderByKey().LimitToFirst(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeQuery(Query::OrderByKey().LimitToFirst(1).LimitToLast(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FirebaseClientTest, OrderedQueries) {
  FirebaseClient c(Options());
  fake_->Set("q", Json{{"a", {{"ts", 30}, {"n", "x y"}}},
                       {"b", {{"ts", 10}, {"n", "b"}}},
                       {"c", {{"ts", 20}, {"n", "c"}}},
                       {"d", {{"ts", 40}, {"n", "d"}}}});
  auto v = c.Get("q", Query::OrderByKey().StartAt("b").LimitToFirst(2));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), 2u);
  EXPECT_TRUE(v->contains("b") && v->contains("c"));
  v = c.Get("q", Query::OrderByChild("ts").LimitToLast(2));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->contains("a") && v->contains("d") && v->size() == 2u);
  v = c.Get("q", Query::OrderByChild("ts").StartAt(15).EndAt(35));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->contains("a") && v->contains("c") && v->size() == 2u);
  v = c.Get("q", Query::OrderByChild("n").EqualTo("x y"));  // space survives encoding
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->size(), 1u);
  EXPECT_TRUE(v->contains("a"));
  v = c.Get("q", Query::Shallow());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (Json{{"a", true}, {"b", true}, {"c", true}, {"d", true}}));
}

TEST_F(FirebaseClientTest, ConditionalWritesReturnCurrentValueOn412) {
  FirebaseClient c(Options());
  ASSERT_TRUE(c.Put("lease/t1", Json{{"owner", "a"}}).ok());
  auto got = c.GetWithETag("lease/t1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value["owner"], "a");
  ASSERT_FALSE(got->etag.empty());

  auto w = c.PutIf("lease/t1", Json{{"owner", "b"}}, got->etag);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->applied);
  EXPECT_EQ(fake_->Get("lease/t1")["owner"], "b");

  // Stale tag: not applied, current value and its tag returned.
  auto stale = c.PutIf("lease/t1", Json{{"owner", "c"}}, got->etag);
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_FALSE(stale->applied);
  EXPECT_EQ(stale->current["owner"], "b");
  EXPECT_EQ(fake_->Get("lease/t1")["owner"], "b");
  auto retry = c.PutIf("lease/t1", Json{{"owner", "c"}}, stale->etag);
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->applied);

  auto del_stale = c.DeleteIf("lease/t1", got->etag);
  ASSERT_TRUE(del_stale.ok());
  EXPECT_FALSE(del_stale->applied);
  EXPECT_FALSE(fake_->Get("lease/t1").is_null());
  auto now = c.GetWithETag("lease/t1");
  ASSERT_TRUE(now.ok());
  auto del = c.DeleteIf("lease/t1", now->etag);
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(del->applied);
  EXPECT_TRUE(fake_->Get("lease/t1").is_null());

  // Creating only if absent: the tag of "nothing".
  auto absent = c.GetWithETag("lease/t2");
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent->value.is_null());
  auto create = c.PutIf("lease/t2", Json{{"owner", "z"}}, absent->etag);
  ASSERT_TRUE(create.ok());
  EXPECT_TRUE(create->applied);
}

TEST_F(FirebaseClientTest, MultiPathUpdateIsAtomicAndRejectsOverlap) {
  FirebaseClient c(Options());
  fake_->Set("messages/n2/m0", Json{{"body", "old"}});
  std::map<std::string, Json> batch = {
      {"messages/n2/m1", Json{{"body", "one"}}},
      {"messages/n2/m2", Json{{"body", "two"}}},
      {"messages/n2/m0", nullptr},
      {"stats/n2/sent", 2}};
  ASSERT_TRUE(c.UpdateMultiPath("", batch).ok());
  Json n2 = fake_->Get("messages/n2");
  EXPECT_EQ(n2.size(), 2u);
  EXPECT_EQ(n2["m1"]["body"], "one");
  EXPECT_EQ(fake_->Get("stats/n2/sent"), 2);

  int64_t before = fake_->requests();
  auto overlap = c.UpdateMultiPath("messages", {{"n2", Json{{"x", 1}}}, {"n2/m1", nullptr}});
  EXPECT_EQ(overlap.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(overlap.message()).find("ancestor"), std::string::npos);
  EXPECT_EQ(fake_->requests(), before);  // nothing sent
  EXPECT_EQ(fake_->Get("messages/n2").size(), 2u);
}

TEST_F(FirebaseClientTest, ServerTimestampIsResolved) {
  FirebaseClient c(Options());
  ASSERT_TRUE(c.Put("agents/a1/last_heartbeat", ServerTimestamp()).ok());
  Json v = fake_->Get("agents/a1/last_heartbeat");
  ASSERT_TRUE(v.is_number_integer());
  EXPECT_GT(v.get<int64_t>(), 1'600'000'000'000);
}

TEST_F(FirebaseClientTest, BadPathsAreRejectedBeforeSending) {
  FirebaseClient c(Options());
  int64_t before = fake_->requests();
  for (const char* p : {"a.b", "a/#", "a//b", "x/$y", "a[0]"}) {
    EXPECT_EQ(c.Put(p, 1).code(), absl::StatusCode::kInvalidArgument) << p;
  }
  EXPECT_EQ(c.Patch("a", Json::array({1})).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fake_->requests(), before);
}

TEST_F(FirebaseClientTest, WrongSecretIsUnauthenticatedAndNeverEchoed) {
  FirebaseOptions o = Options();
  o.auth = "wrong-secret-value";
  FirebaseClient c(o);
  auto v = c.Get("agents");
  ASSERT_EQ(v.status().code(), absl::StatusCode::kUnauthenticated);
  std::string msg(v.status().message());
  EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
  EXPECT_NE(msg.find("auth=REDACTED"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("wrong-secret-value"), std::string::npos) << msg;
  EXPECT_EQ(c.attempts(), 1);  // 401 is not retried

  FirebaseOptions t = Options();
  t.auth.clear();
  t.access_token = kSecret;  // access_token= accepted in place of auth=
  FirebaseClient tc(t);
  EXPECT_TRUE(tc.Put("x", 1).ok());
}

TEST_F(FirebaseClientTest, ServerErrorsAreRetriedWithBackoffThenMapped) {
  FirebaseClient c(Options());
  fake_->FailAllWith(503);
  auto put = c.Put("a", 1);
  EXPECT_EQ(put.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(c.attempts(), 3);  // 1 + max_retries
  ASSERT_EQ(sleeps_.size(), 2u);
  EXPECT_LE(sleeps_[0], absl::Milliseconds(250));
  EXPECT_LE(sleeps_[1], absl::Milliseconds(500));
  EXPECT_NE(std::string(put.message()).find("Service Unavailable"), std::string::npos);
  EXPECT_EQ(std::string(put.message()).find(kSecret), std::string::npos);

  fake_->FailAllWith(429);
  EXPECT_EQ(c.Get("a").status().code(), absl::StatusCode::kResourceExhausted);

  // Transient failures then success: the caller sees OK.
  fake_->ClearFailures();
  fake_->FailNext(503, 2);
  EXPECT_TRUE(c.Put("a", 2).ok());
  EXPECT_EQ(fake_->Get("a"), 2);
}

TEST_F(FirebaseClientTest, PostIsNotRetriedAfterTheServerSawIt) {
  FirebaseClient c(Options());
  fake_->FailNext(503, 1);
  int64_t before = c.attempts();
  auto id = c.Push("m", 1);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(c.attempts() - before, 1);
  EXPECT_TRUE(fake_->Get("m").is_null());
}

TEST_F(FirebaseClientTest, RefusedConnectionIsUnavailableAndRetriedEvenForPost) {
  FirebaseClient c(Options());
  ASSERT_TRUE(fake_->SetRefuseConnections(true).ok());
  auto id = c.Push("m", 1);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnavailable) << id.status();
  EXPECT_EQ(c.attempts(), 3);  // never reached the server: safe to retry
  EXPECT_EQ(std::string(id.status().message()).find(kSecret), std::string::npos);
  ASSERT_TRUE(fake_->SetRefuseConnections(false).ok());
  EXPECT_TRUE(c.Push("m", 1).ok());
}

TEST_F(FirebaseClientTest, SlowServerTimesOut) {
  FirebaseOptions o = Options();
  o.timeout = absl::Milliseconds(150);
  o.max_retries = 0;
  FirebaseClient c(o);
  fake_->SetLatency(absl::Milliseconds(600));
  EXPECT_EQ(c.Get("a").status().code(), absl::StatusCode::kDeadlineExceeded);
  fake_->SetLatency(absl::ZeroDuration());
}

TEST_F(FirebaseClientTest, OversizeResponseIsRefused) {
  FirebaseOptions o = Options();
  o.max_response_bytes = 4096;
  FirebaseClient c(o);
  fake_->Set("big", std::string(10000, 'x'));
  auto v = c.Get("big");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kOutOfRange) << v.status();
  EXPECT_TRUE(c.Get("small").ok());
}

TEST_F(FirebaseClientTest, ConnectionsAreReused) {
  FirebaseClient c(Options());
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(c.Put("k", i).ok());
  EXPECT_LE(c.connections_opened(), 2);
}

// Regression (#12 finding): Json::dump() throws on invalid UTF-8; the
// client must answer INVALID_ARGUMENT and send nothing.
TEST_F(FirebaseClientTest, InvalidUtf8IsRejectedNotThrown) {
  FirebaseClient c(Options());
  int64_t before = fake_->requests();
  Json bad = Json{{"body", std::string("\xff\xfe bad")}};
  EXPECT_EQ(c.Put("m/1", bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Push("m", bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Patch("m/1", bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.UpdateMultiPath("m", {{"1", bad}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.PutIf("m/1", bad, "tag").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Get("m", Query::OrderByKey().EqualTo(std::string("\xc3"))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fake_->requests(), before);
}

TEST_F(FirebaseClientTest, SharedByManyThreads) {
  FirebaseClient c(Options());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string path = "conc/t" + std::to_string(t) + "/k" + std::to_string(i);
        if (!c.Put(path, i).ok()) ++failures;
        auto v = c.Get(path);
        if (!v.ok() || *v != i) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(fake_->writes(), 200);
  EXPECT_LE(c.connections_opened(), 16);  // pooled, not one per request
}

TEST(FirebaseStatusTest, MapsEveryClass) {
  struct Case {
    int code;
    absl::StatusCode want;
  } cases[] = {{400, absl::StatusCode::kInvalidArgument},
               {401, absl::StatusCode::kUnauthenticated},
               {403, absl::StatusCode::kPermissionDenied},
               {404, absl::StatusCode::kNotFound},
               {412, absl::StatusCode::kFailedPrecondition},
               {429, absl::StatusCode::kResourceExhausted},
               {500, absl::StatusCode::kUnavailable},
               {503, absl::StatusCode::kUnavailable}};
  for (const auto& c : cases) {
    absl::Status s = StatusFromFirebaseResponse(c.code, "{\"error\":\"why\"}", "GET /x");
    EXPECT_EQ(s.code(), c.want) << c.code;
    EXPECT_NE(std::string(s.message()).find("why"), std::string::npos);
  }
}

}  // namespace
}  // namespace cnet::firebase
