#include "libs/http/curl_http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>

#include <sys/socket.h>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cnet::http {
namespace {

constexpr char kNotSentPayload[] = "type.claudenet/http.not_sent";

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool IsCredentialParam(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  return n == "auth" || n == "access_token" || n == "token" || n == "key" ||
         n == "client_secret";
}

long Millis(absl::Duration d) {
  int64_t ms = absl::ToInt64Milliseconds(d);
  if (ms <= 0) return 0;
  return static_cast<long>(std::min<int64_t>(ms, 1L << 30));
}

}  // namespace

bool RequestNotSent(const absl::Status& status) {
  return status.GetPayload(kNotSentPayload).has_value();
}

std::string HttpResponse::Header(absl::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? std::string() : it->second;
}

bool HttpResponse::HasHeader(absl::string_view name) const {
  return headers.count(absl::AsciiStrToLower(name)) > 0;
}

std::string RedactUrl(absl::string_view url) {
  size_t q = url.find('?');
  if (q == absl::string_view::npos) return std::string(url);
  size_t hash = url.find('#', q);
  absl::string_view query = url.substr(q + 1, hash == absl::string_view::npos
                                                  ? absl::string_view::npos
                                                  : hash - q - 1);
  std::string out(url.substr(0, q + 1));
  bool first = true;
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    if (!first) out += '&';
    first = false;
    size_t eq = part.find('=');
    absl::string_view name = part.substr(0, eq);
    if (eq != absl::string_view::npos && IsCredentialParam(name)) {
      absl::StrAppend(&out, name, "=REDACTED");
    } else {
      absl::StrAppend(&out, part);
    }
  }
  if (hash != absl::string_view::npos) absl::StrAppend(&out, url.substr(hash));
  return out;
}

std::string UrlEncode(absl::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string QueryOf(absl::string_view url) {
  size_t q = url.find('?');
  if (q == absl::string_view::npos) return "";
  absl::string_view rest = url.substr(q + 1);
  size_t hash = rest.find('#');
  return std::string(rest.substr(0, hash));
}

std::string OriginOf(absl::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) return "";
  size_t host_end = url.find_first_of("/?#", scheme_end + 3);
  return absl::AsciiStrToLower(url.substr(0, host_end));
}

std::string ResolveRedirect(absl::string_view base, absl::string_view location) {
  std::string target;
  if (absl::StartsWith(location, "http://") || absl::StartsWith(location, "https://")) {
    target = std::string(location);
  } else {
    // Origin of base: scheme://host[:port]
    size_t scheme_end = base.find("://");
    size_t host_end = scheme_end == absl::string_view::npos
                          ? absl::string_view::npos
                          : base.find_first_of("/?#", scheme_end + 3);
    absl::string_view origin = base.substr(0, host_end);
    if (absl::StartsWith(location, "/")) {
      target = absl::StrCat(origin, location);
    } else {
      absl::string_view path = base.substr(0, base.find_first_of("?#"));
      size_t slash = path.rfind('/');
      target = absl::StrCat(path.substr(0, slash + 1), location);
    }
  }
  if (target.find('?') == std::string::npos) {
    std::string q = QueryOf(base);
    if (!q.empty()) absl::StrAppend(&target, "?", q);
  }
  return target;
}

struct CurlHttpClient::Handle {
  CURL* curl = nullptr;
  ~Handle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

namespace {

// Per-transfer state shared with curl's callbacks.
struct Transfer {
  size_t max_bytes = 0;
  bool too_big = false;
  bool stopped = false;  // a callback asked to stop
  std::string body;
  std::multimap<std::string, std::string> headers;
  int status = 0;
  bool response_announced = false;
  const CurlHttpClient::StreamCallbacks* stream = nullptr;
  bool streaming_body = false;  // pass body to stream->on_data
  int64_t opened = 0;
};

size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  absl::string_view line(data, len);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after a 100-continue or a redirect): start over.
    t->headers.clear();
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    t->status = 0;
    if (parts.size() >= 2) {
      int code = 0;
      for (char c : parts[1]) {
        if (c < '0' || c > '9') break;
        code = code * 10 + (c - '0');
      }
      t->status = code;
    }
    return len;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    t->headers.emplace(std::move(name), std::move(value));
  }
  return len;
}

size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (t->stream != nullptr) {
    if (!t->response_announced) {
      bool redirect = t->status >= 300 && t->status < 400 && t->headers.count("location") > 0;
      if (!redirect) {
        t->response_announced = true;
        t->streaming_body = true;
        if (t->stream->on_response && !t->stream->on_response(t->status, t->headers)) {
          t->stopped = true;
          return 0;
        }
      }
    }
    if (t->streaming_body) {
      if (t->stream->on_data && !t->stream->on_data(absl::string_view(data, len))) {
        t->stopped = true;
        return 0;
      }
      return len;
    }
  }
  if (t->body.size() + len > t->max_bytes) {
    t->too_big = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  t->body.append(data, len);
  return len;
}

int XferInfoCallback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->stream != nullptr && t->stream->should_abort && t->stream->should_abort()) {
    t->stopped = true;
    return 1;
  }
  return 0;
}

curl_socket_t OpenSocketCounter(void* user, curlsocktype, struct curl_sockaddr* addr) {
  auto* t = static_cast<Transfer*>(user);
  ++t->opened;
  return ::socket(addr->family, addr->socktype, addr->protocol);
}

}  // namespace

CurlHttpClient::CurlHttpClient(HttpOptions options) : options_(std::move(options)) {
  GlobalInitOnce();
}

CurlHttpClient::~CurlHttpClient() = default;

std::unique_ptr<CurlHttpClient::Handle> CurlHttpClient::Acquire() {
  {
    absl::MutexLock l(&mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->curl = curl_easy_init();
  return h;
}

void CurlHttpClient::Release(std::unique_ptr<Handle> h) {
  absl::MutexLock l(&mu_);
  if (static_cast<int>(idle_.size()) < options_.max_idle_handles) idle_.push_back(std::move(h));
}

int64_t CurlHttpClient::connections_opened() const {
  absl::MutexLock l(&mu_);
  return connections_opened_;
}

namespace {

absl::Status TransportError(CURLcode rc, const Transfer& t, const HttpRequest& req,
                            const std::string& url, const char* errbuf) {
  std::string what = absl::StrCat(req.method, " ", RedactUrl(url));
  // The curl error text can quote the URL; never include it verbatim.
  std::string detail = RedactUrl(errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
  if (t.too_big) {
    return absl::OutOfRangeError(
        absl::StrCat(what, ": response larger than the ", t.max_bytes, "-byte cap; refused"));
  }
  if (t.stopped || rc == CURLE_ABORTED_BY_CALLBACK) {
    return absl::CancelledError(absl::StrCat(what, ": stopped"));
  }
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(absl::StrCat(what, ": timed out (", detail, ")"));
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(absl::StrCat(what, ": bad URL (", detail, ")"));
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: {
      absl::Status s = absl::UnavailableError(absl::StrCat(what, ": ", detail));
      s.SetPayload(kNotSentPayload, absl::Cord("1"));
      return s;
    }
    default:
      return absl::UnavailableError(absl::StrCat(what, ": ", detail));
  }
}

// Runs a transfer through a multi handle so that should_abort is polled
// every 100 ms even when no byte arrives (curl's progress callback alone
// can be as slow as once a second on an idle connection).
CURLcode PerformPolling(CURL* curl, Transfer* t) {
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return CURLE_OUT_OF_MEMORY;
  curl_multi_add_handle(multi, curl);
  CURLcode result = CURLE_OK;
  int running = 1;
  while (true) {
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      result = CURLE_RECV_ERROR;
      break;
    }
    if (running == 0) {
      int queued = 0;
      CURLMsg* msg = nullptr;
      result = CURLE_RECV_ERROR;
      while ((msg = curl_multi_info_read(multi, &queued)) != nullptr) {
        if (msg->msg == CURLMSG_DONE) result = msg->data.result;
      }
      break;
    }
    if (t->stream->should_abort && t->stream->should_abort()) {
      t->stopped = true;
      result = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  curl_multi_remove_handle(multi, curl);
  curl_multi_cleanup(multi);
  return result;
}

}  // namespace

// Performs one request with redirects handled here (so the query survives a
// Location without one). `stream` non-null selects streaming mode.
static absl::StatusOr<HttpResponse> Perform(CURL* curl, const HttpOptions& options,
                                            const HttpRequest& request,
                                            const CurlHttpClient::StreamCallbacks* stream,
                                            int64_t* opened) {
  std::string url = request.url;
  // Headers sent on this hop; credentials in headers never follow a
  // redirect to another origin (GitHub tokens), like curl's default.
  std::vector<std::pair<std::string, std::string>> hop_headers = request.headers;
  for (int hop = 0;; ++hop) {
    curl_easy_reset(curl);
    Transfer t;
    t.max_bytes = options.max_response_bytes;
    t.stream = stream;
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, Millis(options.connect_timeout));
    absl::Duration total = request.timeout > absl::ZeroDuration()
                               ? request.timeout
                               : (stream != nullptr ? absl::ZeroDuration() : options.total_timeout);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, Millis(total));
    curl_easy_setopt(curl, CURLOPT_USERAGENT, options.user_agent.c_str());
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &HeaderCallback);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteCallback);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, &OpenSocketCounter);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(options.max_response_bytes));
    if (stream != nullptr) {
      curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &XferInfoCallback);
      curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
      curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(0));
    }
    const std::string& method = request.method;
    if (method == "GET") {
      curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    } else if (method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
    } else {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    if (method != "GET") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
    struct curl_slist* headers = nullptr;
    for (const auto& [name, value] : hop_headers) {
      headers = curl_slist_append(headers, absl::StrCat(name, ": ", value).c_str());
    }
    if (method != "GET") headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    CURLcode rc = stream != nullptr ? PerformPolling(curl, &t) : curl_easy_perform(curl);
    curl_slist_free_all(headers);
    *opened += t.opened;
    if (rc != CURLE_OK) {
      if (rc == CURLE_FILESIZE_EXCEEDED) t.too_big = true;
      return TransportError(rc, t, request, url, errbuf);
    }
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    t.status = static_cast<int>(code);
    bool redirect = code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
    auto loc = t.headers.find("location");
    if (redirect && loc != t.headers.end() && options.max_redirects > 0) {
      if (hop >= options.max_redirects) {
        return absl::UnavailableError(absl::StrCat(request.method, " ", RedactUrl(request.url),
                                                   ": too many redirects"));
      }
      std::string next = ResolveRedirect(url, loc->second);
      if (OriginOf(next) != OriginOf(url)) {
        hop_headers.erase(std::remove_if(hop_headers.begin(), hop_headers.end(),
                                         [](const auto& h) {
                                           std::string n = absl::AsciiStrToLower(h.first);
                                           return n == "authorization" || n == "cookie";
                                         }),
                          hop_headers.end());
      }
      url = std::move(next);
      continue;
    }
    if (stream != nullptr && !t.response_announced && stream->on_response) {
      // Empty body: announce now.
      if (!stream->on_response(t.status, t.headers)) {
        return absl::CancelledError(absl::StrCat(request.method, " ", RedactUrl(url), ": stopped"));
      }
    }
    HttpResponse resp;
    resp.status = t.status;
    resp.headers = std::move(t.headers);
    resp.body = std::move(t.body);
    return resp;
  }
}

absl::StatusOr<HttpResponse> CurlHttpClient::Do(const HttpRequest& request) {
  auto h = Acquire();
  if (h->curl == nullptr) return absl::InternalError("curl_easy_init failed");
  int64_t opened = 0;
  auto result = Perform(h->curl, options_, request, nullptr, &opened);
  {
    absl::MutexLock l(&mu_);
    connections_opened_ += opened;
  }
  Release(std::move(h));
  return result;
}

absl::Status CurlHttpClient::Stream(const HttpRequest& request,
                                    const StreamCallbacks& callbacks) {
  // Streams get their own handle (never pooled): the connection is
  // long-lived and closed when the stream ends.
  Handle h;
  h.curl = curl_easy_init();
  if (h.curl == nullptr) return absl::InternalError("curl_easy_init failed");
  int64_t opened = 0;
  auto result = Perform(h.curl, options_, request, &callbacks, &opened);
  {
    absl::MutexLock l(&mu_);
    connections_opened_ += opened;
  }
  return result.status();
}

}  // namespace cnet::http
