// A listener on one location of a Firebase Realtime Database: a background
// thread holding a streaming GET (`Accept: text/event-stream`), decoding
// events (sse_parser.h) and handing them to a callback.
//
// Guarantees:
//   - The first event of every connection is a put at "/" with the whole
//     value (snapshot=true). After a reconnect it has resync=true: events
//     may have been missed, so the receiver replaces its state.
//   - 307 redirects are followed, keeping the query (auth) when the
//     Location has none.
//   - On a drop, an HTTP error, a malformed event, `cancel`, or no bytes for
//     keepalive_timeout (Firebase sends keep-alive every ~30 s), the state
//     callback gets kDisconnected with the reason, and the stream reconnects
//     after a backoff with full jitter: uniform in [0, min(max_backoff,
//     initial_backoff * 2^attempt)]; attempt resets once a snapshot arrives.
//   - `auth_revoked` is delivered to on_event, then the stream reconnects
//     (with the current credential — call SetAuth() first to refresh it).
//   - 401/403 answers keep retrying with backoff (the credential may be
//     rotated) and are reported through on_state with UNAUTHENTICATED/
//     PERMISSION_DENIED.
//   - Stop() returns within ~100 ms (transfer aborted through curl's
//     progress callback, backoff wait interrupted); no callback runs after
//     Stop() returns. Callbacks run on the stream thread, one at a time;
//     they must not call Stop() (use a flag) and should be quick.
#ifndef CNET_LIBS_FIREBASE_FIREBASE_STREAM_H_
#define CNET_LIBS_FIREBASE_FIREBASE_STREAM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/firebase/firebase_client.h"
#include "libs/firebase/sse_parser.h"

namespace cnet::firebase {

struct StreamOptions {
  // Connection: database_url, auth/access_token, connect_timeout and
  // max_response_bytes (used as the per-event cap) are taken from here.
  FirebaseOptions firebase;
  // Location to listen to ("" = root).
  std::string path;
  // Optional query (e.g. orderBy/startAt) to narrow the stream.
  Query query;
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(60);
  // No byte (not even keep-alive) for this long = dead stream, reconnect.
  absl::Duration keepalive_timeout = absl::Seconds(75);
  // Seed for the jitter (0 = random).
  uint64_t jitter_seed = 0;
};

enum class StreamState { kConnecting, kConnected, kDisconnected, kStopped };
const char* StreamStateName(StreamState s);

class FirebaseStream {
 public:
  struct Callbacks {
    // Every decoded event (put/patch/keep-alive/cancel/auth_revoked).
    std::function<void(const StreamEvent&)> on_event;
    // State changes; `reason` is OK for kConnecting/kConnected/kStopped and
    // says why for kDisconnected (credential never included).
    std::function<void(StreamState, const absl::Status& reason)> on_state;
  };

  FirebaseStream(StreamOptions options, Callbacks callbacks);
  ~FirebaseStream();  // Stop()s.
  FirebaseStream(const FirebaseStream&) = delete;
  FirebaseStream& operator=(const FirebaseStream&) = delete;

  // Starts the thread (once); INVALID_ARGUMENT for a bad path/query/url.
  absl::Status Start();
  // Ends the stream promptly; idempotent.
  void Stop();
  // Replaces the credential used by the next connection attempt.
  void SetAuth(std::string auth, std::string access_token);

  // Completed connections (HTTP 200 + snapshot) so far, and drops.
  int64_t connects() const;
  int64_t disconnects() const;
  bool connected() const;

 private:
  void Run();
  absl::Status RunOnce(bool* got_snapshot);
  bool WaitBackoff(absl::Duration d);

  const StreamOptions options_;
  const Callbacks callbacks_;
  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  std::string auth_ ABSL_GUARDED_BY(mu_);
  std::string access_token_ ABSL_GUARDED_BY(mu_);
  int64_t connects_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t disconnects_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace cnet::firebase

#endif  // CNET_LIBS_FIREBASE_FIREBASE_STREAM_H_
