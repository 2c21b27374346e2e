// Client for the Firebase Realtime Database REST API
// (`<database_url>/<path>.json`), used by the macs-gateway for federation.
//
// What it owns: request construction (auth/access_token parameter, query
// parameters quoted as JSON the way the API demands, print=silent, shallow),
// retries of idempotent verbs with backoff, the HTTP status -> absl::Status
// mapping, and credential redaction in every error message. Connections are
// pooled and kept alive (libs/http). Thread-safe: one client may be shared
// by many threads.
//
// Status mapping (Firebase's `{"error": "..."}` text is included):
//   transport: connect failure/reset -> UNAVAILABLE, timeout -> DEADLINE_EXCEEDED
//   5xx -> UNAVAILABLE, 429 -> RESOURCE_EXHAUSTED, 400 -> INVALID_ARGUMENT,
//   401 -> UNAUTHENTICATED, 403 -> PERMISSION_DENIED, 404 -> NOT_FOUND,
//   412 -> FAILED_PRECONDITION (conditional calls return a ConditionalWrite
//   instead), response over max_response_bytes -> OUT_OF_RANGE,
//   malformed JSON response -> INTERNAL, bad path/argument -> INVALID_ARGUMENT
//   (nothing sent).
//
// Retry policy: GET, PUT, PATCH, DELETE (idempotent) are retried up to
// max_retries times on UNAVAILABLE/DEADLINE_EXCEEDED/RESOURCE_EXHAUSTED with
// exponential backoff and full jitter (retry_initial_backoff doubling, capped
// at retry_max_backoff). POST (push) is retried only when the connection
// could not be established (the request certainly never reached the server)
// or the answer was 429 (rejected unprocessed); callers wanting safe retries
// use NewPushId()+Put instead. Conditional writes (if-match) are idempotent
// and retried too.
//
// Paths: "" or "/" is the root; segments separated by '/'; a segment must be
// non-empty and must not contain '.', '#', '$', '[', ']' or control
// characters (Firebase's key rules), else INVALID_ARGUMENT before sending.
#ifndef CNET_LIBS_FIREBASE_FIREBASE_CLIENT_H_
#define CNET_LIBS_FIREBASE_FIREBASE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace cnet::http {
class CurlHttpClient;
}

namespace cnet::firebase {

using Json = nlohmann::json;

struct FirebaseOptions {
  // e.g. "https://my-db.firebaseio.com" (a trailing '/' is ignored).
  std::string database_url;
  // Database secret or Firebase ID token, sent as `auth=`. Never logged.
  std::string auth;
  // OAuth2 access token, sent as `access_token=` (used when auth is empty).
  std::string access_token;
  absl::Duration connect_timeout = absl::Seconds(10);
  // Total time for one attempt (Firebase's seed `timeout`).
  absl::Duration timeout = absl::Seconds(30);
  // Extra attempts after the first for retryable failures (seed `max_retries`).
  int max_retries = 3;
  absl::Duration retry_initial_backoff = absl::Milliseconds(250);
  absl::Duration retry_max_backoff = absl::Seconds(8);
  // Responses larger than this are refused (OUT_OF_RANGE), never buffered.
  size_t max_response_bytes = 16u << 20;
  // Idle keep-alive connections kept for reuse.
  int max_idle_connections = 4;
  std::string user_agent = "claudenet-firebase/1";
  // Waits between retries; null = a real sleep. Tests inject a recorder.
  std::function<void(absl::Duration)> sleep_for;
};

// Ordered/filtered read. Firebase requires orderBy for any filter; values
// are JSON (strings are sent quoted: orderBy="$key"&startAt="a").
struct Query {
  // "$key", "$value", "$priority" or a child path such as "meta/ts".
  std::string order_by;
  std::optional<Json> start_at;
  std::optional<Json> end_at;
  std::optional<Json> equal_to;
  std::optional<int> limit_to_first;
  std::optional<int> limit_to_last;
  // shallow=true: keys only (values become true); cannot be combined with
  // ordering/filters (INVALID_ARGUMENT, as Firebase answers 400).
  bool shallow = false;

  static Query OrderByKey() { Query q; q.order_by = "$key"; return q; }
  static Query OrderByValue() { Query q; q.order_by = "$value"; return q; }
  static Query OrderByChild(std::string child) { Query q; q.order_by = std::move(child); return q; }
  static Query Shallow() { Query q; q.shallow = true; return q; }
  Query& StartAt(Json v) { start_at = std::move(v); return *this; }
  Query& EndAt(Json v) { end_at = std::move(v); return *this; }
  Query& EqualTo(Json v) { equal_to = std::move(v); return *this; }
  Query& LimitToFirst(int n) { limit_to_first = n; return *this; }
  Query& LimitToLast(int n) { limit_to_last = n; return *this; }
};

// Encodes a query as URL parameters ("orderBy=%22%24key%22&limitToFirst=2"),
// or INVALID_ARGUMENT when it is not a query Firebase accepts.
absl::StatusOr<std::string> EncodeQuery(const Query& q);

// A value with the ETag Firebase returned for it (X-Firebase-ETag: true).
struct ETagged {
  Json value;        // null when nothing is stored at the path
  std::string etag;  // opaque; pass back to PutIf/DeleteIf
};

// Result of a conditional write. applied=false means the ETag did not match
// (HTTP 412): `current` and `etag` then hold the value now stored and its
// ETag, so the caller can retry its compare-and-set.
struct ConditionalWrite {
  bool applied = false;
  Json current;
  std::string etag;
};

// {".sv": "timestamp"}: the server's time in ms since the epoch, resolved
// when the write is applied.
Json ServerTimestamp();

// A Firebase push id: 20 characters, 8 encoding the millisecond time and 12
// random, lexicographically ordered by creation time (monotonic within a
// process even within one millisecond).
std::string NewPushId(absl::Time now);

// Checks a path (see file comment) and returns it normalised without
// leading/trailing '/', or INVALID_ARGUMENT naming the bad segment.
absl::StatusOr<std::string> NormalizePath(absl::string_view path);

// Maps a non-2xx Firebase response to a status (see file comment). `what`
// is the verb and redacted URL, included in the message.
absl::Status StatusFromFirebaseResponse(int http_status, absl::string_view body,
                                        absl::string_view what);

class FirebaseClient {
 public:
  explicit FirebaseClient(FirebaseOptions options);
  ~FirebaseClient();
  FirebaseClient(const FirebaseClient&) = delete;
  FirebaseClient& operator=(const FirebaseClient&) = delete;

  // GET: the value at `path` (null when absent), optionally queried.
  absl::StatusOr<Json> Get(absl::string_view path, const Query& query = {});
  // GET with X-Firebase-ETag: true.
  absl::StatusOr<ETagged> GetWithETag(absl::string_view path);
  // PUT (print=silent): replaces the value at `path`.
  absl::Status Put(absl::string_view path, const Json& value);
  // POST: appends under `path` with a server-generated push id; returns it.
  absl::StatusOr<std::string> Push(absl::string_view path, const Json& value);
  // PATCH (print=silent): updates the named children of `path`. `children`
  // must be an object; a child set to null is deleted.
  absl::Status Patch(absl::string_view path, const Json& children);
  // Multi-path PATCH: every relative path -> value applied atomically at
  // `base` (null deletes). Overlapping paths (one an ancestor of another)
  // are INVALID_ARGUMENT, checked before sending.
  absl::Status UpdateMultiPath(absl::string_view base, const std::map<std::string, Json>& updates);
  // DELETE: removes the value at `path` (OK when already absent).
  absl::Status Delete(absl::string_view path);
  // PUT with if-match: writes only if the stored ETag is `etag`.
  absl::StatusOr<ConditionalWrite> PutIf(absl::string_view path, const Json& value,
                                         const std::string& etag);
  // DELETE with if-match.
  absl::StatusOr<ConditionalWrite> DeleteIf(absl::string_view path, const std::string& etag);

  // The URL for `path` with auth and `extra_query` (already encoded), for
  // streaming; contains the credential: never log it (use RedactUrl).
  std::string UrlFor(absl::string_view normalized_path, absl::string_view extra_query) const;

  const FirebaseOptions& options() const { return options_; }
  // Attempts made (including retries) since construction, for tests/metrics.
  int64_t attempts() const;
  // Connections opened by the pool (keep-alive reuse keeps this low).
  int64_t connections_opened() const;

 private:
  struct Call;
  struct CallResult;
  absl::StatusOr<CallResult> Execute(const Call& call);

  const FirebaseOptions options_;
  std::unique_ptr<http::CurlHttpClient> http_;
  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace cnet::firebase

#endif  // CNET_LIBS_FIREBASE_FIREBASE_CLIENT_H_
