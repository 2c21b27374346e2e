#include "libs/github/github_client.h"

#include "libs/http/json_depth.h"

#include <algorithm>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/http/curl_http.h"
#include "libs/status/macros.h"
#include "nlohmann/json.hpp"

namespace cnet::github {
namespace {

using Json = nlohmann::json;

constexpr char kRetryAfterPayload[] = "type.claudenet/github.retry_after_ms";
constexpr int kMaxJsonDepth = 256;

Json ParseLenient(absl::string_view body) {
  if (!http::JsonDepthWithinLimit(body, kMaxJsonDepth)) return Json();
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  return j.is_discarded() ? Json() : j;
}

std::string Sanitize(absl::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

absl::Status WithRetryAfter(absl::Status s, absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  s.SetPayload(kRetryAfterPayload, absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(d))));
  return s;
}

std::string StringField(const Json& item, const char* name) {
  auto it = item.find(name);
  if (it == item.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// Json::dump() throws on invalid UTF-8 in a caller-built string; map it to
// INVALID_ARGUMENT (regression test InvalidUtf8IsRejectedNotThrown).
absl::StatusOr<std::string> DumpJson(const Json& v, absl::string_view what) {
  try {
    return v.dump();
  } catch (const Json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": text is not valid UTF-8"));
  }
}

}  // namespace

absl::StatusOr<std::vector<Issue>> ParseIssuesPage(absl::string_view json) {
  if (!http::JsonDepthWithinLimit(json, kMaxJsonDepth)) {
    return absl::InvalidArgumentError("issues page: JSON nested too deeply");
  }
  Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError("issues page: malformed JSON");
  if (!j.is_array()) return absl::InvalidArgumentError("issues page: not a JSON array");
  std::vector<Issue> out;
  out.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const Json& item = j[i];
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(absl::StrCat("issues page: item ", i, ": ", why));
    };
    if (!item.is_object()) return bad("not an object");
    Issue issue;
    auto num = item.find("number");
    if (num == item.end() || !num->is_number_integer() || num->get<int64_t>() <= 0) {
      return bad("\"number\" missing or not a positive integer");
    }
    issue.number = num->get<int64_t>();
    auto title = item.find("title");
    if (title == item.end() || !title->is_string()) return bad("\"title\" missing or not a string");
    issue.title = title->get<std::string>();
    auto body = item.find("body");
    if (body != item.end() && !body->is_null()) {
      if (!body->is_string()) return bad("\"body\" is not a string");
      issue.body = body->get<std::string>();
    }
    auto state = item.find("state");
    if (state == item.end() || !state->is_string()) return bad("\"state\" missing or not a string");
    issue.state = state->get<std::string>();
    issue.created_at = StringField(item, "created_at");
    issue.updated_at = StringField(item, "updated_at");
    auto labels = item.find("labels");
    if (labels != item.end() && !labels->is_null()) {
      if (!labels->is_array()) return bad("\"labels\" is not an array");
      for (const Json& l : *labels) {
        if (l.is_string()) {
          issue.labels.push_back(l.get<std::string>());
        } else if (l.is_object() && l.contains("name") && l["name"].is_string()) {
          issue.labels.push_back(l["name"].get<std::string>());
        } else {
          return bad("a label has no string \"name\"");
        }
      }
    }
    issue.is_pull_request = item.contains("pull_request") && !item["pull_request"].is_null();
    out.push_back(std::move(issue));
  }
  return out;
}

std::map<std::string, std::string> ParseLinkHeader(absl::string_view header) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < header.size()) {
    size_t lt = header.find('<', pos);
    if (lt == absl::string_view::npos) break;
    size_t gt = header.find('>', lt + 1);
    if (gt == absl::string_view::npos) break;
    absl::string_view url = header.substr(lt + 1, gt - lt - 1);
    size_t next = header.find('<', gt + 1);
    absl::string_view params =
        header.substr(gt + 1, next == absl::string_view::npos ? absl::string_view::npos
                                                              : next - gt - 1);
    pos = next == absl::string_view::npos ? header.size() : next;
    for (absl::string_view param : absl::StrSplit(params, ';')) {
      param = absl::StripAsciiWhitespace(param);
      if (!absl::ConsumePrefix(&param, "rel=")) continue;
      param = absl::StripSuffix(absl::StripPrefix(param, "\""), ",");
      size_t q = param.find('"');
      if (q != absl::string_view::npos) param = param.substr(0, q);
      for (absl::string_view rel : absl::StrSplit(param, ' ', absl::SkipEmpty())) {
        if (!url.empty() && out.count(std::string(rel)) == 0) {
          out.emplace(std::string(rel), std::string(url));
        }
      }
    }
  }
  return out;
}

std::optional<absl::Duration> RetryAfter(const absl::Status& status) {
  auto p = status.GetPayload(kRetryAfterPayload);
  if (!p.has_value()) return std::nullopt;
  int64_t ms = 0;
  if (!absl::SimpleAtoi(std::string(*p), &ms)) return std::nullopt;
  return absl::Milliseconds(ms);
}

absl::Status StatusFromGitHubResponse(const http::HttpResponse& response, absl::Time now,
                                      absl::string_view what) {
  const int code = response.status;
  Json j = ParseLenient(response.body);
  std::string message;
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    message = j["message"].get<std::string>();
  } else {
    message = Sanitize(response.body, 200);
  }
  std::vector<std::string> errors;
  if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    for (const Json& e : j["errors"]) {
      if (errors.size() >= 5) break;
      if (e.is_string()) {
        errors.push_back(Sanitize(e.get<std::string>(), 100));
      } else if (e.is_object()) {
        std::string item = StringField(e, "message");
        if (item.empty()) {
          item = absl::StrCat(StringField(e, "resource"), ".", StringField(e, "field"), " ",
                              StringField(e, "code"));
        }
        errors.push_back(Sanitize(item, 100));
      }
    }
  }
  std::string msg = absl::StrCat(what, ": HTTP ", code);
  if (!message.empty()) absl::StrAppend(&msg, ": ", Sanitize(message, 300));
  if (!errors.empty()) absl::StrAppend(&msg, " [", absl::StrJoin(errors, "; "), "]");

  if (code == 403 || code == 429) {
    std::string retry_after = response.Header("retry-after");
    int64_t secs = 0;
    if (!retry_after.empty() && absl::SimpleAtoi(retry_after, &secs) && secs >= 0) {
      return WithRetryAfter(absl::ResourceExhaustedError(
                                absl::StrCat(msg, " (retry after ", secs, " s)")),
                            absl::Seconds(secs));
    }
    int64_t reset = 0;
    if (response.Header("x-ratelimit-remaining") == "0" &&
        absl::SimpleAtoi(response.Header("x-ratelimit-reset"), &reset)) {
      absl::Duration wait = absl::FromUnixSeconds(reset) - now;
      return WithRetryAfter(
          absl::ResourceExhaustedError(absl::StrCat(
              msg, " (rate limit exhausted; resets at ", absl::FormatTime(absl::FromUnixSeconds(reset)),
              ")")),
          wait);
    }
    if (code == 429 || absl::StrContains(absl::AsciiStrToLower(message), "rate limit")) {
      // GitHub: without retry-after, wait at least a minute.
      return WithRetryAfter(absl::ResourceExhaustedError(msg), absl::Minutes(1));
    }
    return absl::PermissionDeniedError(msg);
  }
  if (code >= 500) return absl::UnavailableError(msg);
  switch (code) {
    case 400:
    case 422:
      return absl::InvalidArgumentError(msg);
    case 401:
      return absl::UnauthenticatedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 410:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::UnknownError(msg);
  }
}

struct GitHubClient::Call {
  std::string method;
  std::string url;  // absolute
  std::string body;
  std::string if_none_match;
  bool retryable = false;
  std::string what;
};

GitHubClient::GitHubClient(GitHubOptions options, Clock* clock)
    : options_(std::move(options)), clock_(clock != nullptr ? clock : RealClock::Default()) {
  http::HttpOptions h;
  h.connect_timeout = options_.connect_timeout;
  h.total_timeout = options_.timeout;
  h.max_response_bytes = options_.max_response_bytes;
  h.user_agent = options_.user_agent;
  http_ = std::make_unique<http::CurlHttpClient>(h);
}

GitHubClient::~GitHubClient() = default;

RateLimit GitHubClient::rate_limit() const {
  absl::MutexLock l(&mu_);
  return rate_;
}

int64_t GitHubClient::requests_sent() const {
  absl::MutexLock l(&mu_);
  return requests_sent_;
}

void GitHubClient::TrackRateLimit(const http::HttpResponse& response) {
  int64_t limit = 0, remaining = 0, reset = 0;
  absl::MutexLock l(&mu_);
  if (absl::SimpleAtoi(response.Header("x-ratelimit-limit"), &limit)) rate_.limit = limit;
  if (absl::SimpleAtoi(response.Header("x-ratelimit-remaining"), &remaining)) {
    rate_.remaining = remaining;
  }
  if (absl::SimpleAtoi(response.Header("x-ratelimit-reset"), &reset)) {
    rate_.reset = absl::FromUnixSeconds(reset);
  }
}

absl::StatusOr<http::HttpResponse> GitHubClient::Send(const Call& call) {
  {
    absl::MutexLock l(&mu_);
    absl::Time now = clock_->Now();
    if (rate_.remaining == 0 && now < rate_.reset) {
      return WithRetryAfter(
          absl::ResourceExhaustedError(absl::StrCat(
              call.what, ": GitHub rate limit exhausted (", rate_.limit,
              " per window); resets at ", absl::FormatTime(rate_.reset), "; nothing sent")),
          rate_.reset - now);
    }
  }
  http::HttpRequest req;
  req.method = call.method;
  req.url = call.url;
  req.body = call.body;
  req.headers.emplace_back("Accept", "application/vnd.github+json");
  req.headers.emplace_back("Authorization", absl::StrCat("Bearer ", options_.token));
  req.headers.emplace_back("X-GitHub-Api-Version", options_.api_version);
  if (!call.body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  if (!call.if_none_match.empty()) req.headers.emplace_back("If-None-Match", call.if_none_match);
  std::mt19937_64 rng(std::random_device{}());
  for (int attempt = 0;; ++attempt) {
    {
      absl::MutexLock l(&mu_);
      ++requests_sent_;
    }
    auto resp = http_->Do(req);
    absl::Status st;
    if (resp.ok()) {
      TrackRateLimit(*resp);
      if ((resp->status >= 200 && resp->status < 300) || resp->status == 304) return resp;
      st = StatusFromGitHubResponse(*resp, clock_->Now(), call.what);
    } else {
      st = resp.status();
    }
    bool transient = st.code() == absl::StatusCode::kUnavailable ||
                     st.code() == absl::StatusCode::kDeadlineExceeded;
    bool may_retry = transient && (call.retryable || http::RequestNotSent(st));
    if (!may_retry || attempt >= options_.max_retries) return st;
    absl::Duration cap = options_.retry_initial_backoff;
    for (int i = 0; i < attempt && cap < options_.retry_max_backoff; ++i) cap *= 2;
    cap = std::min(cap, options_.retry_max_backoff);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    absl::Duration wait = cap * u(rng);
    if (options_.sleep_for) {
      options_.sleep_for(wait);
    } else {
      absl::SleepFor(wait);
    }
  }
}

namespace {

std::string RepoUrl(const GitHubOptions& o) {
  absl::string_view base = o.api_url;
  while (absl::ConsumeSuffix(&base, "/")) {
  }
  return absl::StrCat(base, "/repos/", http::UrlEncode(o.owner), "/", http::UrlEncode(o.repo));
}

absl::StatusOr<Json> ParseObject(const http::HttpResponse& r, absl::string_view what) {
  if (!http::JsonDepthWithinLimit(r.body, kMaxJsonDepth)) {
    return absl::InternalError(absl::StrCat(what, ": response JSON nested too deeply"));
  }
  Json j = Json::parse(r.body.begin(), r.body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(absl::StrCat(what, ": response is not a JSON object"));
  }
  return j;
}

}  // namespace

absl::StatusOr<int64_t> GitHubClient::CreateIssue(const std::string& title,
                                                  const std::string& body,
                                                  const std::vector<std::string>& labels) {
  if (title.empty()) return absl::InvalidArgumentError("create issue: title is empty");
  Call c;
  c.method = "POST";
  c.url = absl::StrCat(RepoUrl(options_), "/issues");
  c.what = absl::StrCat("POST /repos/", options_.owner, "/", options_.repo, "/issues");
  Json j = {{"title", title}, {"body", body}, {"labels", labels}};
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(j, c.what));
  CNET_ASSIGN_OR_RETURN(http::HttpResponse r, Send(c));
  CNET_ASSIGN_OR_RETURN(Json o, ParseObject(r, c.what));
  if (!o.contains("number") || !o["number"].is_number_integer()) {
    return absl::InternalError(absl::StrCat(c.what, ": response has no issue number"));
  }
  return o["number"].get<int64_t>();
}

absl::StatusOr<ListIssuesResult> GitHubClient::ListIssues(const ListIssuesRequest& request) {
  if (request.per_page < 1 || request.per_page > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("list issues: per_page must be 1..100, got ", request.per_page));
  }
  if (request.state != "open" && request.state != "closed" && request.state != "all") {
    return absl::InvalidArgumentError(
        absl::StrCat("list issues: state must be open, closed or all, got \"", request.state, "\""));
  }
  std::vector<std::string> params;
  params.push_back(absl::StrCat("state=", request.state));
  if (!request.labels.empty()) {
    std::vector<std::string> enc;
    for (const auto& l : request.labels) enc.push_back(http::UrlEncode(l));
    params.push_back(absl::StrCat("labels=", absl::StrJoin(enc, ",")));
  }
  if (!request.since.empty()) params.push_back(absl::StrCat("since=", http::UrlEncode(request.since)));
  if (!request.sort.empty()) params.push_back(absl::StrCat("sort=", http::UrlEncode(request.sort)));
  if (!request.direction.empty()) {
    params.push_back(absl::StrCat("direction=", http::UrlEncode(request.direction)));
  }
  params.push_back(absl::StrCat("per_page=", request.per_page));
  std::string url = absl::StrCat(RepoUrl(options_), "/issues?", absl::StrJoin(params, "&"));
  ListIssuesResult result;
  for (int page = 0;; ++page) {
    if (page >= options_.max_pages) {
      return absl::OutOfRangeError(absl::StrCat("list issues: more than ", options_.max_pages,
                                                " pages; narrow the query (since/labels)"));
    }
    Call c;
    c.method = "GET";
    c.url = url;
    c.retryable = true;
    c.what = absl::StrCat("GET /repos/", options_.owner, "/", options_.repo, "/issues (page ",
                          page + 1, ")");
    if (page == 0) c.if_none_match = request.etag;
    CNET_ASSIGN_OR_RETURN(http::HttpResponse r, Send(c));
    if (page == 0) result.etag = r.Header("etag");
    if (r.status == 304) {
      if (page == 0) {
        result.not_modified = true;
        if (result.etag.empty()) result.etag = request.etag;
        return result;
      }
      return absl::InternalError(absl::StrCat(c.what, ": unexpected 304"));
    }
    auto items = ParseIssuesPage(r.body);
    if (!items.ok()) {
      return absl::InternalError(absl::StrCat(c.what, ": ", items.status().message()));
    }
    ++result.pages;
    for (Issue& i : *items) {
      if (i.is_pull_request) {
        ++result.pull_requests_skipped;
      } else {
        result.issues.push_back(std::move(i));
      }
    }
    auto links = ParseLinkHeader(r.Header("link"));
    auto next = links.find("next");
    if (next == links.end()) break;
    url = next->second;
  }
  return result;
}

absl::StatusOr<Issue> GitHubClient::GetIssue(int64_t number) {
  Call c;
  c.method = "GET";
  c.url = absl::StrCat(RepoUrl(options_), "/issues/", number);
  c.retryable = true;
  c.what = absl::StrCat("GET issue #", number);
  CNET_ASSIGN_OR_RETURN(http::HttpResponse r, Send(c));
  auto items = ParseIssuesPage(absl::StrCat("[", r.body, "]"));
  if (!items.ok() || items->size() != 1) {
    return absl::InternalError(absl::StrCat(c.what, ": malformed issue in response"));
  }
  return (*items)[0];
}

absl::StatusOr<int64_t> GitHubClient::CreateComment(int64_t number, const std::string& body) {
  Call c;
  c.method = "POST";
  c.url = absl::StrCat(RepoUrl(options_), "/issues/", number, "/comments");
  c.what = absl::StrCat("POST comment on issue #", number);
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(Json({{"body", body}}), c.what));
  CNET_ASSIGN_OR_RETURN(http::HttpResponse r, Send(c));
  CNET_ASSIGN_OR_RETURN(Json o, ParseObject(r, c.what));
  if (!o.contains("id") || !o["id"].is_number_integer()) {
    return absl::InternalError(absl::StrCat(c.what, ": response has no comment id"));
  }
  return o["id"].get<int64_t>();
}

absl::Status GitHubClient::CloseIssue(int64_t number) {
  Call c;
  c.method = "PATCH";
  c.url = absl::StrCat(RepoUrl(options_), "/issues/", number);
  c.what = absl::StrCat("PATCH issue #", number, " state=closed");
  c.retryable = true;
  c.body = R"({"state":"closed"})";
  return Send(c).status();
}

absl::Status GitHubClient::AddLabels(int64_t number, const std::vector<std::string>& labels) {
  Call c;
  c.method = "POST";
  c.url = absl::StrCat(RepoUrl(options_), "/issues/", number, "/labels");
  c.what = absl::StrCat("POST labels on issue #", number);
  c.retryable = true;
  CNET_ASSIGN_OR_RETURN(c.body, DumpJson(Json({{"labels", labels}}), c.what));
  return Send(c).status();
}

absl::Status GitHubClient::EnsureLabel(const std::string& name, const std::string& color,
                                       const std::string& description) {
  Call c;
  c.method = "POST";
  c.url = absl::StrCat(RepoUrl(options_), "/labels");
  c.what = absl::StrCat("POST label \"", name, "\"");
  c.retryable = true;
  CNET_ASSIGN_OR_RETURN(
      c.body,
      DumpJson(Json({{"name", name}, {"color", color}, {"description", description}}), c.what));
  auto r = Send(c);
  if (r.ok()) return absl::OkStatus();
  if (r.status().code() == absl::StatusCode::kInvalidArgument &&
      absl::StrContains(r.status().message(), "already_exists")) {
    return absl::OkStatus();
  }
  return r.status();
}

}  // namespace cnet::github
