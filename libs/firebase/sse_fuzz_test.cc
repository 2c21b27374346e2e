// Bounded randomized driver (#12) for SseParser + DecodeStreamEvent:
// deterministic mutations of valid Firebase event streams (byte flips, SSE
// and JSON punctuation, CR/LF mixes, truncation, duplication, deep nesting,
// huge lines), each fed in random chunkings. Invariants: never crashes;
// the events and the final status do not depend on the chunking; a decoded
// put/patch always has a path starting with '/' and patch data an object.
// CNET_FUZZ_ITERATIONS sets the budget (default 20000).
#include <cstdlib>
#include <random>

#include "gtest/gtest.h"
#include "libs/firebase/sse_parser.h"

namespace cnet::firebase {
namespace {

int Iterations() {
  const char* env = std::getenv("CNET_FUZZ_ITERATIONS");
  int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 20000;
}

const std::vector<std::string>& Seeds() {
  static const std::vector<std::string> seeds = {
      "event: put\ndata: {\"path\":\"/\",\"data\":{\"a\":{\"b\":1}}}\n\n"
      "event: patch\ndata: {\"path\":\"/a\",\"data\":{\"c\":true}}\n\n"
      "event: keep-alive\ndata: null\n\n",
      "event: put\r\ndata: {\"path\":\"/m/-NxYz\",\"data\":null}\r\n\r\n"
      ": comment\r\nevent: cancel\r\ndata: null\r\n\r\n",
      "event: auth_revoked\ndata: \"credential is no longer valid\"\n\n",
      "event: put\ndata: {\"path\":\"/\",\ndata: \"data\":[1,2,{\"x\":\"\\u00e9\"}]}\n\n",
  };
  return seeds;
}

std::string Mutate(std::string s, std::mt19937_64& rng) {
  static const std::vector<std::string> kTokens = {
      "\n", "\r", "\r\n", "\n\n", ":", "data:", "data: ", "event: put\n", "event: patch\n",
      "event: cancel\n", "event:\n", "id: 1\n", "{", "}", "[", "]", "\"", "\\", "\"path\":",
      "\"data\":", "null", "1e999", "-0", "\xff", "\x00", "/", "{\"path\":\"/\",\"data\":{}}"};
  int rounds = 1 + static_cast<int>(rng() % 5);
  for (int r = 0; r < rounds; ++r) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 7) {
      case 0:
        if (pos < s.size()) s[pos] = static_cast<char>(rng());
        break;
      case 1:
        s.insert(pos, kTokens[rng() % kTokens.size()]);
        break;
      case 2:
        s.resize(pos);
        break;
      case 3:
        s.insert(pos, s.substr(pos, rng() % 300));
        break;
      case 4:
        s.insert(pos, std::string(1 + rng() % 3000, rng() % 2 ? '[' : '{'));
        break;
      case 5:
        s.insert(pos, std::string(1 + rng() % 20000, 'x'));
        break;
      case 6:
        if (pos < s.size()) s.erase(pos, rng() % 50);
        break;
    }
  }
  return s;
}

struct Outcome {
  std::vector<SseEvent> events;
  bool ok = true;
};

Outcome FeedInChunks(const std::string& in, size_t step, const SseLimits& limits) {
  Outcome o;
  SseParser p(limits);
  for (size_t i = 0; i < in.size(); i += step) {
    if (!p.Feed(absl::string_view(in).substr(i, step), &o.events).ok()) {
      o.ok = false;
      break;
    }
  }
  return o;
}

TEST(SseFuzzTest, MutatedStreamsNeverCrashAndChunkingDoesNotMatter) {
  std::mt19937_64 rng(20261126);
  SseLimits limits;
  limits.max_line_bytes = 8192;
  limits.max_event_bytes = 16384;
  const int n = Iterations();
  int decoded = 0, rejected_events = 0, rejected_streams = 0;
  for (int it = 0; it < n; ++it) {
    std::string in = Mutate(Seeds()[rng() % Seeds().size()], rng);
    Outcome whole = FeedInChunks(in, in.size() + 1, limits);
    Outcome chunked = FeedInChunks(in, 1 + rng() % 17, limits);
    ASSERT_EQ(whole.ok, chunked.ok) << "iteration " << it;
    if (!whole.ok) {
      ++rejected_streams;
    } else {
      ASSERT_EQ(whole.events.size(), chunked.events.size()) << "iteration " << it;
      for (size_t i = 0; i < whole.events.size(); ++i) {
        ASSERT_EQ(whole.events[i].event, chunked.events[i].event);
        ASSERT_EQ(whole.events[i].data, chunked.events[i].data);
      }
    }
    for (const auto& e : whole.events) {
      auto d = DecodeStreamEvent(e);
      if (!d.ok()) {
        ++rejected_events;
        continue;
      }
      ++decoded;
      if (d->type == StreamEvent::Type::kPut || d->type == StreamEvent::Type::kPatch) {
        ASSERT_FALSE(d->path.empty());
        ASSERT_EQ(d->path[0], '/');
      }
      if (d->type == StreamEvent::Type::kPatch) ASSERT_TRUE(d->data.is_object());
    }
  }
  std::printf("sse fuzz: %d iterations, %d events decoded, %d events rejected, %d streams "
              "rejected (size caps)\n",
              n, decoded, rejected_events, rejected_streams);
}

}  // namespace
}  // namespace cnet::firebase
