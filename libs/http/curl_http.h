// A small, thread-safe HTTP/1.1 client over libcurl shared by the Firebase
// and GitHub clients (only the macs-gateway binary links it).
//
// What it owns: a bounded pool of reusable curl easy handles (so TCP/TLS
// connections are kept alive between requests), connect/total timeouts, a
// response size cap (a response larger than the cap is refused with
// OUT_OF_RANGE, never buffered), redirect handling that keeps the original
// query string (Firebase's 307 Location may omit `auth=`), and the
// credential-free rendering of URLs for error text (RedactUrl).
//
// It does no retrying and no status mapping: callers decide what an HTTP
// status means for their API. Transport failures map as:
//   could not resolve/connect, connection reset, empty reply -> UNAVAILABLE
//   timeout                                                  -> DEADLINE_EXCEEDED
//   response over the cap                                    -> OUT_OF_RANGE
//   aborted by the caller (streaming)                        -> CANCELLED
// Every error message names the method and the redacted URL.
#ifndef CNET_LIBS_HTTP_CURL_HTTP_H_
#define CNET_LIBS_HTTP_CURL_HTTP_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cnet::http {

struct HttpRequest {
  std::string method = "GET";  // GET, PUT, POST, PATCH, DELETE
  std::string url;             // absolute, query already encoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Zero means "use the client's default".
  absl::Duration timeout = absl::ZeroDuration();
};

struct HttpResponse {
  int status = 0;
  // Header names lower-cased; repeated headers keep every value in order.
  std::multimap<std::string, std::string> headers;
  std::string body;

  // First value of a header (name matched case-insensitively) or "".
  std::string Header(absl::string_view name) const;
  bool HasHeader(absl::string_view name) const;
};

struct HttpOptions {
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration total_timeout = absl::Seconds(30);
  size_t max_response_bytes = 16u << 20;
  // Easy handles kept for reuse (idle); more concurrent requests still run,
  // their handles are just not kept.
  int max_idle_handles = 4;
  // Redirects (301/302/303/307/308) followed; 0 disables following. The
  // Authorization and Cookie headers are dropped when a redirect leaves the
  // original origin (query parameters such as Firebase's auth= are kept:
  // Firebase redirects streams to another host by design).
  int max_redirects = 5;
  std::string user_agent = "claudenet/1";
};

// True when `status` (from Do/Stream) says the request never reached the
// server (name resolution or connection failed), so even a non-idempotent
// request may be retried.
bool RequestNotSent(const absl::Status& status);

// Replaces the values of credential-bearing query parameters (`auth`,
// `access_token`, `token`, `key`) with "REDACTED"; everything else is kept.
std::string RedactUrl(absl::string_view url);

// Percent-encodes a string for use in a URL query or path segment
// (RFC 3986 unreserved characters are kept).
std::string UrlEncode(absl::string_view s);

// Returns the query string (without '?') of `url`, or "".
std::string QueryOf(absl::string_view url);

// "scheme://host[:port]" of an absolute URL, lower-cased ("" if none).
std::string OriginOf(absl::string_view url);

// The target of a redirect: `location` resolved against `base`; when the
// location has no query, `base`'s query is appended (keeps auth=).
std::string ResolveRedirect(absl::string_view base, absl::string_view location);

class CurlHttpClient {
 public:
  explicit CurlHttpClient(HttpOptions options = {});
  ~CurlHttpClient();
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  // Performs one request (following redirects). Any HTTP status is an OK
  // result; only transport failures are errors (see the file comment).
  absl::StatusOr<HttpResponse> Do(const HttpRequest& request);

  // Streaming request: `on_response` is called once with the final status
  // and headers (after redirects) and may return false to stop; `on_data`
  // receives the final response's body bytes as they arrive, whatever the
  // status (an error body is small; return false to stop);
  // `should_abort` is polled at least every ~100 ms while the transfer is
  // idle (return true to stop). No total timeout applies unless
  // request.timeout is set. Returns OK when the server ended the response,
  // CANCELLED when a callback stopped it, or a transport error.
  struct StreamCallbacks {
    std::function<bool(int status, const std::multimap<std::string, std::string>& headers)>
        on_response;
    std::function<bool(absl::string_view chunk)> on_data;
    std::function<bool()> should_abort;
  };
  absl::Status Stream(const HttpRequest& request, const StreamCallbacks& callbacks);

  const HttpOptions& options() const { return options_; }

  // Number of connections curl opened (for tests of keep-alive reuse).
  int64_t connections_opened() const;

 private:
  struct Handle;
  std::unique_ptr<Handle> Acquire();
  void Release(std::unique_ptr<Handle> h);

  const HttpOptions options_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_ ABSL_GUARDED_BY(mu_);
  int64_t connections_opened_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cnet::http

#endif  // CNET_LIBS_HTTP_CURL_HTTP_H_
