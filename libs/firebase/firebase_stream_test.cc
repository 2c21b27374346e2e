// FirebaseStream against the fake: the initial snapshot, live put/patch,
// keep-alive, reconnect with resync after a drop, 307, cancel and
// auth_revoked, the keep-alive timeout, auth errors, refused connections
// and a prompt Stop(). Waits are on events (condition), never fixed sleeps.
#include "libs/firebase/firebase_stream.h"

#include <chrono>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/fakes/firebase_fake.h"

namespace cnet::firebase {
namespace {

using fakes::FirebaseFake;

constexpr char kSecret[] = "stream-secret-123";
constexpr absl::Duration kWait = absl::Seconds(10);

class Recorder {
 public:
  FirebaseStream::Callbacks Callbacks() {
    FirebaseStream::Callbacks cb;
    cb.on_event = [this](const StreamEvent& e) {
      absl::MutexLock l(&mu_);
      events_.push_back(e);
    };
    cb.on_state = [this](StreamState s, const absl::Status& why) {
      absl::MutexLock l(&mu_);
      states_.push_back({s, why});
    };
    return cb;
  }

  // Waits until `pred(events, states)` holds.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    absl::MutexLock l(&mu_);
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pred(events_, states_); };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), kWait);
  }

  bool WaitForEvents(size_t n) {
    return WaitFor([n](const auto& e, const auto&) { return e.size() >= n; });
  }

  size_t CountSnapshots() {
    absl::MutexLock l(&mu_);
    size_t n = 0;
    for (const auto& e : events_) n += e.snapshot ? 1 : 0;
    return n;
  }

  std::vector<StreamEvent> events() {
    absl::MutexLock l(&mu_);
    return events_;
  }
  std::vector<std::pair<StreamState, absl::Status>> states() {
    absl::MutexLock l(&mu_);
    return states_;
  }

 private:
  absl::Mutex mu_;
  std::vector<StreamEvent> events_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<StreamState, absl::Status>> states_ ABSL_GUARDED_BY(mu_);
};

bool HasDisconnect(const std::vector<std::pair<StreamState, absl::Status>>& s,
                   absl::StatusCode code) {
  for (const auto& [st, why] : s) {
    if (st == StreamState::kDisconnected && why.code() == code) return true;
  }
  return false;
}

size_t SnapshotsIn(const std::vector<StreamEvent>& e) {
  size_t n = 0;
  for (const auto& ev : e) n += ev.snapshot ? 1 : 0;
  return n;
}

class FirebaseStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FirebaseFake::Options o;
    o.secret = kSecret;
    o.keepalive_interval = absl::Seconds(30);
    fake_ = std::make_unique<FirebaseFake>(o);
    ASSERT_TRUE(fake_->Start().ok());
  }

  StreamOptions Options(const std::string& path) {
    StreamOptions o;
    o.firebase.database_url = fake_->url();
    o.firebase.auth = kSecret;
    o.path = path;
    o.initial_backoff = absl::Milliseconds(20);
    o.max_backoff = absl::Milliseconds(100);
    o.keepalive_timeout = absl::Seconds(30);
    o.jitter_seed = 7;
    return o;
  }

  std::unique_ptr<FirebaseFake> fake_;
};

TEST_F(FirebaseStreamTest, SnapshotThenLiveEvents) {
  fake_->Set("messages/n1/m0", Json{{"body", "before"}});
  Recorder rec;
  FirebaseStream stream(Options("messages/n1"), rec.Callbacks());
  ASSERT_TRUE(stream.Start().ok());
  ASSERT_TRUE(rec.WaitForEvents(1));
  auto e = rec.events();
  EXPECT_EQ(e[0].type, StreamEvent::Type::kPut);
  EXPECT_TRUE(e[0].snapshot);
  EXPECT_FALSE(e[0].resync);
  EXPECT_EQ(e[0].path, "/");
  EXPECT_EQ(e[0].data["m0"]["body"], "before");

  fake_->Set("messages/n1/m1", Json{{"body", "hi"}});
  fake_->Set("messages/other/x", 1);  // not under the path: no event
  FirebaseClient c(Options("").firebase);
  ASSERT_TRUE(c.Patch("messages/n1/m1", Json{{"read", true}}).ok());
  ASSERT_TRUE(c.Delete("messages/n1/m0").ok());
  ASSERT_TRUE(rec.WaitForEvents(4));
  e = rec.events();
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[1].type, StreamEvent::Type::kPut);
  EXPECT_EQ(e[1].path, "/m1");
  EXPECT_EQ(e[1].data["body"], "hi");
  EXPECT_EQ(e[2].type, StreamEvent::Type::kPatch);
  EXPECT_EQ(e[2].path, "/m1");
  EXPECT_EQ(e[2].data, (Json{{"read", true}}));
  EXPECT_EQ(e[3].path, "/m0");
  EXPECT_TRUE(e[3].data.is_null());
  EXPECT_FALSE(e[1].snapshot);
  EXPECT_TRUE(stream.connected());
  EXPECT_EQ(stream.connects(), 1);
}

TEST_F(FirebaseStreamTest, KeepAliveEventsArrive) {
  fake_->SetKeepAliveInterval(absl::Milliseconds(30));
  Recorder rec;
  FirebaseStream stream(Options("x"), rec.Callbacks());
  ASSERT_TRUE(stream.Start().ok());
  ASSERT_TRUE(rec.WaitFor([](const auto& e, const auto&) {
    int ka = 0;
    for (const auto& ev : e) ka += ev.type == StreamEvent::Type::kKeepAlive ? 1 : 0;
    return ka >= 2;
  }));
  EXPECT_EQ(rec.CountSnapshots(), 1u);
}

TEST_F(FirebaseStreamTest, ReconnectsAfterDropAndResyncs) {
  Recorder rec;
  FirebaseStream stream(Options("inbox"), rec.Callbacks());
  ASSERT_TRUE(stream.Start().ok());
  ASSERT_TRUE(rec.WaitForEvents(1));
  // Drop and write while the listener is away: the resync carries it.
  ASSERT_TRUE(fake_->SetRefuseConnections(true).ok());
  ASSERT_TRUE(rec.WaitFor([](const auto&, const auto& s) {
    return HasDisconnect(s, absl::StatusCode::kUnavailable);
  }));
  fake_->Set("inbox/m9", Json{{"body", "while away"}});
  ASSERT_TRUE(fake_->SetRefuseConnections(false).ok());
  ASSERT_TRUE(rec.WaitFor([](const auto& e, const auto&) { return SnapshotsIn(e) >= 2; }));
  auto e = rec.events();
  const StreamEvent* resync = nullptr;
  for (const auto& ev : e) {
    if (ev.snapshot && ev.resync) resync = &ev;
  }
  ASSERT_NE(resync, nullptr);
  EXPECT_EQ(resync->data["m9"]["body"], "while away");
  EXPECT_GE(stream.disconnects(), 1);

  // A drop mid-stream (connection closed by the server) also reconnects.
  fake_->DropStreams();
  ASSERT_TRUE(rec.WaitFor([](const auto& e, const auto&) { return SnapshotsIn(e) >= 3; }));
}

TEST_F(FirebaseStreamTest, FollowsRedirectKeepingAuth) {
  fake_->RedirectNextStream();
  Recorder rec;
  FirebaseStream stream(Options("r"), rec.Callbacks());
  ASSERT_TRUE(stream.Start().ok());
  ASSERT_TRUE(rec.WaitForEvents(1));
  EXPECT_TRUE(rec.events()[0].snapshot);
  EXPECT_EQ(fake_->stream_requests(), 2);  // the 307, then the real one
  EXPECT_FALSE(HasDisconnect(rec.states(), absl::StatusCode::kUnauthenticated));
}

TEST_F(FirebaseStreamTest, CancelAndAuthRevokedAreDeliveredThenReconnect) {
  Recorder rec;
  FirebaseStream stream(Options("c"), rec.Callbacks());
  ASSERT_TRUE(stream.Start().ok());
  ASSERT_TRUE(rec.WaitForEvents(1));
  ASSERT_TRUE(fake_->WaitForOpenStreams(1, kWait));
  fake_->SendCancel();
  ASSERT_TRUE(rec.WaitFor([](const auto& e, const auto&) {
    for (const auto& ev : e) {
      if (ev.type == StreamEvent::Type::kCancel) return SnapshotsIn(e) >= 2;
    }
    return false;
  }));
  EXPECT_TRUE(HasDisconnect(rec.states(), absl::StatusCode::kPermissionDenied));
  ASSERT_TRUE(fake_->WaitForOpenStreams(1, kWait));
  fake_->SendAuthRevoked();
  ASSERT_TRUE(rec.WaitFor([](const auto& e, const auto&) {
    for (const auto& ev : e) {
      if (ev.type == StreamEvent::Type::kAuthRevoked) return SnapshotsIn(e) >= 3;
    }
    return false;
  }));
  for (const auto& ev : rec.events()) {
    if (ev.type == StreamEvent::Type::kAuthRevoked) {
      EXPECT_EQ(ev.reason, "credential is no longer valid");
    }
  }
}

TEST_F(FirebaseStreamTest, SilentStreamIsDetectedByKeepAliveTimeout) {
  // The fake sends keep-alive every 30 s; the client expects bytes every
  // 200 ms, so it declares the stream dead and reconnects.
  StreamOptions o = Options("k");
  o.keepalive_timeout = absl::Milliseconds(200);
  Recorder rec;
  FirebaseStream stream(o, rec.Callbacks());
  ASSERT_TRUE(stream.Start().ok());
  ASSERT_TRUE(rec.WaitFor([](const auto&, const auto& s) {
    return HasDisconnect(s, absl::StatusCode::kDeadlineExceeded);
  }));
  ASSERT_TRUE(rec.WaitFor([](const auto& e, const auto&) { return SnapshotsIn(e) >= 2; }));
}

TEST_F(FirebaseStreamTest, BadCredentialReportsUnauthenticatedWithoutTheSecret) {
  StreamOptions o = Options("a");
  o.firebase.auth = "not-the-secret-xyz";
  Recorder rec;
  FirebaseStream stream(o, rec.Callbacks());
  ASSERT_TRUE(stream.Start().ok());
  ASSERT_TRUE(rec.WaitFor([](const auto&, const auto& s) {
    return HasDisconnect(s, absl::StatusCode::kUnauthenticated);
  }));
  for (const auto& [st, why] : rec.states()) {
    EXPECT_EQ(std::string(why.message()).find("not-the-secret-xyz"), std::string::npos);
  }
  // Rotating the credential lets it connect.
  stream.SetAuth(kSecret, "");
  ASSERT_TRUE(rec.WaitForEvents(1));
  EXPECT_TRUE(rec.events()[0].snapshot);
}

TEST_F(FirebaseStreamTest, StopIsPrompt) {
  Recorder rec;
  auto stream = std::make_unique<FirebaseStream>(Options("s"), rec.Callbacks());
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(rec.WaitForEvents(1));
  auto t0 = std::chrono::steady_clock::now();
  stream->Stop();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(2));
  auto states = rec.states();
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back().first, StreamState::kStopped);
  size_t n = rec.events().size();
  fake_->Set("s/x", 1);
  stream.reset();
  EXPECT_EQ(rec.events().size(), n);  // nothing after Stop()
}

TEST_F(FirebaseStreamTest, StartRejectsBadPath) {
  Recorder rec;
  FirebaseStream stream(Options("a.b"), rec.Callbacks());
  EXPECT_EQ(stream.Start().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cnet::firebase
