#include "libs/firebase/firebase_client.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "libs/http/curl_http.h"
#include "libs/status/macros.h"

namespace cnet::firebase {
namespace {

constexpr char kPushChars[] =
    "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

bool IsRetryableCode(absl::StatusCode c) {
  return c == absl::StatusCode::kUnavailable || c == absl::StatusCode::kDeadlineExceeded ||
         c == absl::StatusCode::kResourceExhausted;
}

std::string FirebaseErrorText(absl::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    auto it = j.find("error");
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  std::string s(body.substr(0, 200));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s;
}

absl::StatusOr<Json> ParseBody(absl::string_view body, absl::string_view what) {
  if (body.empty()) return Json();
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) {
    return absl::InternalError(absl::StrCat(what, ": response is not valid JSON"));
  }
  return j;
}

// Json::dump() throws on a string holding invalid UTF-8 (a value built by
// the caller, not parsed); that must be a clean INVALID_ARGUMENT, never an
// exception escaping into the gateway (found by reasoning over the fuzz
// surface; regression test InvalidUtf8IsRejectedNotThrown).
absl::StatusOr<std::string> DumpJson(const Json& v, absl::string_view what) {
  try {
    return v.dump();
  } catch (const Json::exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": value holds a string that is not valid UTF-8"));
  }
}

}  // namespace

Json ServerTimestamp() { return Json{{".sv", "timestamp"}}; }

std::string NewPushId(absl::Time now) {
  static absl::Mutex mu(absl::kConstInit);
  static int64_t last_ms = -1;
  static int last_rand[12];
  static std::mt19937_64 rng{std::random_device{}()};
  int64_t ms = absl::ToUnixMillis(now);
  absl::MutexLock l(&mu);
  char out[21];
  int64_t t = ms;
  for (int i = 7; i >= 0; --i) {
    out[i] = kPushChars[t % 64];
    t /= 64;
  }
  if (ms == last_ms) {
    // Same millisecond: increment the random part so ids stay ordered.
    int i = 11;
    for (; i >= 0 && last_rand[i] == 63; --i) last_rand[i] = 0;
    if (i >= 0) ++last_rand[i];
  } else {
    last_ms = ms;
    for (int i = 0; i < 12; ++i) last_rand[i] = static_cast<int>(rng() % 64);
  }
  for (int i = 0; i < 12; ++i) out[8 + i] = kPushChars[last_rand[i]];
  out[20] = '\0';
  return std::string(out, 20);
}

absl::StatusOr<std::string> NormalizePath(absl::string_view path) {
  absl::string_view p = path;
  while (absl::ConsumePrefix(&p, "/")) {
  }
  while (absl::ConsumeSuffix(&p, "/")) {
  }
  if (p.empty()) return std::string();
  if (p.size() > 768) {
    return absl::InvalidArgumentError(
        absl::StrCat("firebase path is ", p.size(), " bytes; the limit is 768"));
  }
  for (absl::string_view seg : absl::StrSplit(p, '/')) {
    if (seg.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("firebase path \"", p, "\" has an empty segment"));
    }
    for (char c : seg) {
      unsigned char u = static_cast<unsigned char>(c);
      if (c == '.' || c == '#' || c == '$' || c == '[' || c == ']' || u < 0x20 || u == 0x7f) {
        return absl::InvalidArgumentError(absl::StrCat(
            "firebase path segment \"", seg,
            "\" contains a character Firebase forbids in keys (. # $ [ ] or control)"));
      }
    }
  }
  return std::string(p);
}

absl::StatusOr<std::string> EncodeQuery(const Query& q) {
  bool has_filter = q.start_at || q.end_at || q.equal_to || q.limit_to_first || q.limit_to_last;
  if (q.shallow) {
    if (has_filter || !q.order_by.empty()) {
      return absl::InvalidArgumentError(
          "query: shallow cannot be combined with orderBy or filters");
    }
    return std::string("shallow=true");
  }
  if (has_filter && q.order_by.empty()) {
    return absl::InvalidArgumentError("query: filters (startAt/endAt/equalTo/limitTo*) need orderBy");
  }
  if (q.limit_to_first && q.limit_to_last) {
    return absl::InvalidArgumentError("query: limitToFirst and limitToLast are exclusive");
  }
  if (q.equal_to && (q.start_at || q.end_at)) {
    return absl::InvalidArgumentError("query: equalTo cannot be combined with startAt/endAt");
  }
  for (const auto* limit : {&q.limit_to_first, &q.limit_to_last}) {
    if (*limit && **limit <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("query: limit must be positive, got ", **limit));
    }
  }
  auto check_value = [](const std::optional<Json>& v, const char* name) -> absl::Status {
    if (v && !(v->is_string() || v->is_number() || v->is_boolean() || v->is_null())) {
      return absl::InvalidArgumentError(
          absl::StrCat("query: ", name, " must be a string, number, boolean or null"));
    }
    return absl::OkStatus();
  };
  CNET_RETURN_IF_ERROR(check_value(q.start_at, "startAt"));
  CNET_RETURN_IF_ERROR(check_value(q.end_at, "endAt"));
  CNET_RETURN_IF_ERROR(check_value(q.equal_to, "equalTo"));
  std::vector<std::string> parts;
  auto add = [&](const char* name, const Json& v) -> absl::Status {
    CNET_ASSIGN_OR_RETURN(std::string text, DumpJson(v, absl::StrCat("query: ", name)));
    parts.push_back(absl::StrCat(name, "=", http::UrlEncode(text)));
    return absl::OkStatus();
  };
  if (!q.order_by.empty()) CNET_RETURN_IF_ERROR(add("orderBy", Json(q.order_by)));
  if (q.start_at) CNET_RETURN_IF_ERROR(add("startAt", *q.start_at));
  if (q.end_at) CNET_RETURN_IF_ERROR(add("endAt", *q.end_at));
  if (q.equal_to) CNET_RETURN_IF_ERROR(add("equalTo", *q.equal_to));
  if (q.limit_to_first) parts.push_back(absl::StrCat("limitToFirst=", *q.limit_to_first));
  if (q.limit_to_last) parts.push_back(absl::StrCat("limitToLast=", *q.limit_to_last));
  return absl::StrJoin(parts, "&");
}

absl::Status StatusFromFirebaseResponse(int http_status, absl::string_view body,
                                        absl::string_view what) {
  std::string msg = absl::StrCat(what, ": HTTP ", http_status);
  std::string text = FirebaseErrorText(body);
  if (!text.empty()) absl::StrAppend(&msg, ": ", text);
  if (http_status >= 500) return absl::UnavailableError(msg);
  switch (http_status) {
    case 400:
      return absl::InvalidArgumentError(msg);
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 408:
      return absl::DeadlineExceededError(msg);
    case 412:
      return absl::FailedPreconditionError(msg);
    case 413:
      return absl::InvalidArgumentError(msg);
    case 429:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::UnknownError(msg);
  }
}

struct FirebaseClient::Counters {
  std::atomic<int64_t> attempts{0};
  absl::Mutex mu;
  std::mt19937_64 rng{std::random_device{}()};
};

struct FirebaseClient::Call {
  std::string method;
  std::string path;   // normalized
  std::string query;  // extra encoded parameters
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool idempotent = true;
  bool accept_412 = false;
};

struct FirebaseClient::CallResult {
  http::HttpResponse response;
};

FirebaseClient::FirebaseClient(FirebaseOptions options)
    : options_(std::move(options)), counters_(std::make_unique<Counters>()) {
  http::HttpOptions h;
  h.connect_timeout = options_.connect_timeout;
  h.total_timeout = options_.timeout;
  h.max_response_bytes = options_.max_response_bytes;
  h.max_idle_handles = options_.max_idle_connections;
  h.user_agent = options_.user_agent;
  http_ = std::make_unique<http::CurlHttpClient>(h);
}

FirebaseClient::~FirebaseClient() = default;

int64_t FirebaseClient::attempts() const { return counters_->attempts.load(); }
int64_t FirebaseClient::connections_opened() const { return http_->connections_opened(); }

std::string FirebaseClient::UrlFor(absl::string_view normalized_path,
                                   absl::string_view extra_query) const {
  absl::string_view base = options_.database_url;
  while (absl::ConsumeSuffix(&base, "/")) {
  }
  std::string url(base);
  url += '/';
  bool first = true;
  for (absl::string_view seg : absl::StrSplit(normalized_path, '/', absl::SkipEmpty())) {
    if (!first) url += '/';
    first = false;
    url += http::UrlEncode(seg);
  }
  url += ".json";
  std::vector<std::string> params;
  if (!options_.auth.empty()) {
    params.push_back(absl::StrCat("auth=", http::UrlEncode(options_.auth)));
  } else if (!options_.access_token.empty()) {
    params.push_back(absl::StrCat("access_token=", http::UrlEncode(options_.access_token)));
  }
  if (!extra_query.empty()) params.push_back(std::string(extra_query));
  if (!params.empty()) absl::StrAppend(&url, "?", absl::StrJoin(params, "&"));
  return url;
}

absl::StatusOr<FirebaseClient::CallResult> FirebaseClient::Execute(const Call& call) {
  http::HttpRequest req;
  req.method = call.method;
  req.url = UrlFor(call.path, call.query);
  req.body = call.body;
  req.headers = call.headers;
  if (!call.body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  req.timeout = options_.timeout;
  const std::string what = absl::StrCat(call.method, " ", http::RedactUrl(req.url));
  absl::Status last;
  for (int attempt = 0;; ++attempt) {
    counters_->attempts.fetch_add(1);
    auto resp = http_->Do(req);
    bool may_retry = false;
    if (!resp.ok()) {
      last = resp.status();
      may_retry = IsRetryableCode(last.code()) && (call.idempotent || http::RequestNotSent(last));
    } else {
      int code = resp->status;
      if ((code >= 200 && code < 300) || (code == 412 && call.accept_412)) {
        CallResult r;
        r.response = std::move(*resp);
        return r;
      }
      last = StatusFromFirebaseResponse(code, resp->body, what);
      // 429 means the request was rejected unprocessed: safe even for POST.
      may_retry = IsRetryableCode(last.code()) && (call.idempotent || code == 429);
    }
    if (!may_retry || attempt >= options_.max_retries) {
      if (attempt > 0) {
        return absl::Status(last.code(), absl::StrCat(last.message(), " (after ", attempt + 1,
                                                      " attempts)"));
      }
      return last;
    }
    absl::Duration cap = options_.retry_initial_backoff;
    for (int i = 0; i < attempt && cap < options_.retry_max_backoff; ++i) cap *= 2;
    cap = std::min(cap, options_.retry_max_backoff);
    absl::Duration wait;
    {
      absl::MutexLock l(&counters_->mu);
      std::uniform_real_distribution<double> u(0.0, 1.0);
      wait = cap * u(counters_->rng);
    }
    if (options_.sleep_for) {
      options_.sleep_for(wait);
    } else {
      absl::SleepFor(wait);
    }
  }
}

absl::StatusOr<Json> FirebaseClient::Get(absl::string_view path, const Query& query) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  CNET_ASSIGN_OR_RETURN(std::string q, EncodeQuery(query));
  Call c;
  c.method = "GET";
  c.path = p;
  c.query = q;
  CNET_ASSIGN_OR_RETURN(CallResult r, Execute(c));
  return ParseBody(r.response.body, absl::StrCat("GET /", p));
}

absl::StatusOr<ETagged> FirebaseClient::GetWithETag(absl::string_view path) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  Call c;
  c.method = "GET";
  c.path = p;
  c.headers.emplace_back("X-Firebase-ETag", "true");
  CNET_ASSIGN_OR_RETURN(CallResult r, Execute(c));
  ETagged out;
  CNET_ASSIGN_OR_RETURN(out.value, ParseBody(r.response.body, absl::StrCat("GET /", p)));
  out.etag = r.response.Header("etag");
  if (out.etag.empty()) {
    return absl::InternalError(absl::StrCat("GET /", p, ": response has no ETag header"));
  }
  return out;
}

absl::Status FirebaseClient::Put(absl::string_view path, const Json& value) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  Call c;
  c.method = "PUT";
  c.path = p;
  c.query = "print=silent";
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(value, absl::StrCat("PUT /", p)));
  return Execute(c).status();
}

absl::StatusOr<std::string> FirebaseClient::Push(absl::string_view path, const Json& value) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  Call c;
  c.method = "POST";
  c.path = p;
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(value, absl::StrCat("POST /", p)));
  c.idempotent = false;
  CNET_ASSIGN_OR_RETURN(CallResult r, Execute(c));
  CNET_ASSIGN_OR_RETURN(Json j, ParseBody(r.response.body, absl::StrCat("POST /", p)));
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
    return absl::InternalError(absl::StrCat("POST /", p, ": response has no \"name\""));
  }
  return j["name"].get<std::string>();
}

absl::Status FirebaseClient::Patch(absl::string_view path, const Json& children) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  if (!children.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("PATCH /", p, ": children must be a JSON object"));
  }
  Call c;
  c.method = "PATCH";
  c.path = p;
  c.query = "print=silent";
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(children, absl::StrCat("PATCH /", p)));
  return Execute(c).status();
}

absl::Status FirebaseClient::UpdateMultiPath(absl::string_view base,
                                             const std::map<std::string, Json>& updates) {
  CNET_ASSIGN_OR_RETURN(std::string b, NormalizePath(base));
  if (updates.empty()) return absl::OkStatus();
  Json body = Json::object();
  std::set<std::string> keys;
  for (const auto& [rel, value] : updates) {
    auto n = NormalizePath(rel);
    if (!n.ok()) return n.status();
    if (n->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi-path update at /", b, ": an update path is empty"));
    }
    if (!keys.insert(*n).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("multi-path update at /", b, ": path \"", *n, "\" given twice"));
    }
    body[*n] = value;
  }
  // Sorted, so an ancestor sorts directly before some descendant of it.
  std::string prev;
  for (const std::string& k : keys) {
    if (!prev.empty() && absl::StartsWith(k, prev + "/")) {
      return absl::InvalidArgumentError(absl::StrCat("multi-path update at /", b, ": path \"",
                                                     prev, "\" is an ancestor of \"", k, "\""));
    }
    if (prev.empty() || !absl::StartsWith(k, prev + "/")) prev = k;
  }
  Call c;
  c.method = "PATCH";
  c.path = b;
  c.query = "print=silent";
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(body, absl::StrCat("multi-path update at /", b)));
  return Execute(c).status();
}

absl::Status FirebaseClient::Delete(absl::string_view path) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  Call c;
  c.method = "DELETE";
  c.path = p;
  c.query = "print=silent";
  return Execute(c).status();
}

namespace {

absl::StatusOr<ConditionalWrite> ToConditional(const http::HttpResponse& resp,
                                               absl::string_view what) {
  ConditionalWrite out;
  out.applied = resp.status != 412;
  out.etag = resp.Header("etag");
  CNET_ASSIGN_OR_RETURN(out.current, ParseBody(resp.body, what));
  return out;
}

}  // namespace

absl::StatusOr<ConditionalWrite> FirebaseClient::PutIf(absl::string_view path, const Json& value,
                                                       const std::string& etag) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  if (etag.empty()) return absl::InvalidArgumentError(absl::StrCat("PUT /", p, ": empty etag"));
  Call c;
  c.method = "PUT";
  c.path = p;
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(value, absl::StrCat("PUT /", p)));
  c.headers.emplace_back("X-Firebase-ETag", "true");
  c.headers.emplace_back("if-match", etag);
  c.accept_412 = true;
  CNET_ASSIGN_OR_RETURN(CallResult r, Execute(c));
  return ToConditional(r.response, absl::StrCat("PUT /", p));
}

absl::StatusOr<ConditionalWrite> FirebaseClient::DeleteIf(absl::string_view path,
                                                          const std::string& etag) {
  CNET_ASSIGN_OR_RETURN(std::string p, NormalizePath(path));
  if (etag.empty()) return absl::InvalidArgumentError(absl::StrCat("DELETE /", p, ": empty etag"));
  Call c;
  c.method = "DELETE";
  c.path = p;
  c.headers.emplace_back("X-Firebase-ETag", "true");
  c.headers.emplace_back("if-match", etag);
  c.accept_412 = true;
  CNET_ASSIGN_OR_RETURN(CallResult r, Execute(c));
  return ToConditional(r.response, absl::StrCat("DELETE /", p));
}

}  // namespace cnet::firebase
