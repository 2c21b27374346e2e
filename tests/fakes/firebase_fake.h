// An in-process fake of the Firebase Realtime Database REST API on
// 127.0.0.1 (port 0), for tests and benchmarks of the federation code.
//
// Fidelity (checked by firebase_fake_test against the documented API):
//   - one JSON tree; GET/PUT/POST/PATCH/DELETE on /<path>.json; empty
//     objects/nulls are pruned (Firebase never stores them); responses echo
//     the written data (200), or 204 with print=silent;
//   - POST answers {"name": <push id>} (20 chars, time ordered);
//   - queries: orderBy ("$key", "$value", child path) with startAt/endAt/
//     equalTo/limitToFirst/limitToLast (JSON-quoted values; unquoted
//     strings or a filter without orderBy -> 400 like Firebase); shallow;
//   - X-Firebase-ETag: true -> ETag header (content hash); if-match on
//     PUT/DELETE -> 412 with the current value and ETag when it differs;
//   - multi-path PATCH (keys containing '/'), applied atomically; an
//     ancestor/descendant overlap -> 400;
//   - {".sv":"timestamp"} replaced by the fake's clock in ms;
//   - `auth=` checked when a secret is set: missing/wrong -> 401
//     {"error" : "Permission denied"}; access_token= accepted likewise;
//   - streaming (Accept: text/event-stream): `put` at "/" with the whole
//     value at the path first, then put/patch for writes at, above or below
//     the path (paths relative to it), keep-alive every keepalive_interval;
//     optional 307 to itself for the first stream request.
// Fault knobs: refuse connections (the listener is closed), answer every
// request with a status (503, 429...) until cleared, added latency, drop
// every open stream, send cancel/auth_revoked, counters.
#ifndef CNET_TESTS_FAKES_FIREBASE_FAKE_H_
#define CNET_TESTS_FAKES_FIREBASE_FAKE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace cnet::fakes {

class FirebaseFake {
 public:
  struct Options {
    // Required `auth=`/`access_token=` value; empty = no auth check.
    std::string secret;
    absl::Duration keepalive_interval = absl::Seconds(30);
    // Answer the first streaming request with a 307 to the same URL
    // without the query (the client must keep its auth).
    bool redirect_first_stream = false;
  };

  FirebaseFake();
  explicit FirebaseFake(Options options);
  ~FirebaseFake();
  FirebaseFake(const FirebaseFake&) = delete;
  FirebaseFake& operator=(const FirebaseFake&) = delete;

  // Listens on 127.0.0.1:0 (or the previous port after Stop()).
  absl::Status Start();
  // Closes every stream and the listener.
  void Stop();
  int port() const;
  // "http://127.0.0.1:<port>" — the database_url for clients.
  std::string url() const;

  // --- direct inspection/modification of the tree (streams are told) ---
  nlohmann::json Get(const std::string& path) const;
  void Set(const std::string& path, const nlohmann::json& value);
  nlohmann::json Root() const;

  // --- fault injection ---
  // true: close the listener so connections are refused (open streams are
  // dropped); false: listen again on the same port.
  absl::Status SetRefuseConnections(bool refuse);
  // Every request (incl. streams) answers `http_status` with a Firebase
  // error body until ClearFailures(); 0 = none.
  void FailAllWith(int http_status);
  // Only the next `count` non-stream requests fail with `http_status`.
  void FailNext(int http_status, int count);
  void ClearFailures();
  void SetLatency(absl::Duration latency);
  void SetKeepAliveInterval(absl::Duration interval);
  void SetSecret(const std::string& secret);
  void RedirectNextStream();
  // Ends every open stream (the connection closes mid-way).
  void DropStreams();
  // Sends `cancel` / `auth_revoked` on every open stream, then closes it.
  void SendCancel();
  void SendAuthRevoked();

  // --- counters ---
  int64_t requests() const;        // every HTTP request received
  int64_t stream_requests() const; // streaming GETs received (incl. 307ed)
  int open_streams() const;
  // Successful writes per normalized path ("" = root) the request named.
  std::map<std::string, int64_t> writes_by_path() const;
  int64_t writes() const;
  // Blocks until at least `n` streams are open (true) or `timeout` passes.
  bool WaitForOpenStreams(int n, absl::Duration timeout) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cnet::fakes

#endif  // CNET_TESTS_FAKES_FIREBASE_FAKE_H_
