// SseParser and DecodeStreamEvent on the documented event-stream format and
// Firebase's event shapes.
#include "libs/firebase/sse_parser.h"

#include "gtest/gtest.h"

namespace cnet::firebase {
namespace {

std::vector<SseEvent> FeedAll(SseParser& p, const std::vector<std::string>& chunks) {
  std::vector<SseEvent> out;
  for (const auto& c : chunks) EXPECT_TRUE(p.Feed(c, &out).ok());
  return out;
}

TEST(SseParserTest, EventsInAnyChunking) {
  const std::string stream =
      "event: put\ndata: {\"path\":\"/\",\"data\":{\"a\":1}}\n\n"
      ": a comment\n"
      "event: keep-alive\ndata: null\n\n"
      "event: patch\r\ndata: {\"path\":\"/a\",\r\ndata: \"data\":{\"b\":2}}\r\n\r\n";
  for (size_t step = 1; step <= stream.size(); ++step) {
    SseParser p;
    std::vector<std::string> chunks;
    for (size_t i = 0; i < stream.size(); i += step) chunks.push_back(stream.substr(i, step));
    auto events = FeedAll(p, chunks);
    ASSERT_EQ(events.size(), 3u) << "step " << step;
    EXPECT_EQ(events[0].event, "put");
    EXPECT_EQ(events[0].data, "{\"path\":\"/\",\"data\":{\"a\":1}}");
    EXPECT_EQ(events[1].event, "keep-alive");
    EXPECT_EQ(events[2].event, "patch");
    EXPECT_EQ(events[2].data, "{\"path\":\"/a\",\n\"data\":{\"b\":2}}");
  }
}

TEST(SseParserTest, FieldRules) {
  SseParser p;
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.Feed("data:no-space\ndata\nid: 7\nretry: 10\nfoo: bar\n\n", &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].event, "message");
  EXPECT_EQ(out[0].data, "no-space\n");
  EXPECT_EQ(out[0].id, "7");
  out.clear();
  ASSERT_TRUE(p.Feed("\n\n: only comments\n\n", &out).ok());
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(p.Feed("event: x\r\r", &out).ok());  // CR-only line ends
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].event, "x");
}

TEST(SseParserTest, SizeCapsPoisonTheParser) {
  SseLimits limits;
  limits.max_line_bytes = 64;
  limits.max_event_bytes = 100;
  SseParser p(limits);
  std::vector<SseEvent> out;
  EXPECT_EQ(p.Feed(std::string(65, 'x'), &out).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(p.Feed("\n\n", &out).code(), absl::StatusCode::kResourceExhausted);
  SseParser q(limits);
  std::string many;
  for (int i = 0; i < 5; ++i) many += "data: " + std::string(30, 'y') + "\n";
  EXPECT_EQ(q.Feed(many, &out).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(out.empty());
}

SseEvent Ev(const std::string& type, const std::string& data) {
  SseEvent e;
  e.event = type;
  e.data = data;
  return e;
}

TEST(DecodeStreamEventTest, FirebaseShapes) {
  auto put = DecodeStreamEvent(Ev("put", R"({"path":"/m/1","data":{"x":1}})"));
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->type, StreamEvent::Type::kPut);
  EXPECT_EQ(put->path, "/m/1");
  EXPECT_EQ(put->data["x"], 1);
  auto del = DecodeStreamEvent(Ev("put", R"({"path":"/m/1","data":null})"));
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(del->data.is_null());
  auto patch = DecodeStreamEvent(Ev("patch", R"({"path":"/","data":{"a/b":2}})"));
  ASSERT_TRUE(patch.ok());
  EXPECT_EQ(patch->type, StreamEvent::Type::kPatch);
  EXPECT_EQ(DecodeStreamEvent(Ev("keep-alive", "null"))->type, StreamEvent::Type::kKeepAlive);
  auto cancel = DecodeStreamEvent(Ev("cancel", "null"));
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(cancel->type, StreamEvent::Type::kCancel);
  auto revoked = DecodeStreamEvent(Ev("auth_revoked", "\"credential is no longer valid\""));
  ASSERT_TRUE(revoked.ok());
  EXPECT_EQ(revoked->reason, "credential is no longer valid");
}

TEST(DecodeStreamEventTest, MalformedIsAnErrorNamingTheProblem) {
  struct Case {
    const char* type;
    const char* data;
    const char* want;
  } cases[] = {
      {"put", "{", "malformed JSON"},
      {"put", "[1]", "not a JSON object"},
      {"put", R"({"data":1})", "\"path\""},
      {"put", R"({"path":"m","data":1})", "does not start with '/'"},
      {"put", R"({"path":"/"})", "\"data\""},
      {"patch", R"({"path":"/","data":5})", "not an object"},
      {"rules_debug", "null", "unknown event type"},
  };
  for (const auto& c : cases) {
    auto r = DecodeStreamEvent(Ev(c.type, c.data));
    ASSERT_FALSE(r.ok()) << c.type << " " << c.data;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(c.want), std::string::npos)
        << r.status();
  }
  std::string deep = R"({"path":"/","data":)" + std::string(5000, '[') + std::string(5000, ']') + "}";
  EXPECT_EQ(DecodeStreamEvent(Ev("put", deep)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cnet::firebase
