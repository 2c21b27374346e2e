#include "tests/fakes/github_fake.h"

#include <httplib.h>

#include <algorithm>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/listen_backlog.h"

namespace cnet::fakes {
namespace {

using Json = nlohmann::json;

std::string Iso(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()); }

std::string WeakETag(const std::string& body) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[40];
  snprintf(buf, sizeof(buf), "W/\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

void Message(httplib::Response& res, int status, const std::string& msg, Json errors = Json()) {
  res.status = status;
  Json j = {{"message", msg},
            {"documentation_url", "https://docs.github.com/rest"}};
  if (!errors.is_null()) j["errors"] = errors;
  res.set_content(j.dump(), "application/json; charset=utf-8");
}

Json ValidationFailed(const std::string& resource, const std::string& field,
                      const std::string& code) {
  return Json::array({Json{{"resource", resource}, {"field", field}, {"code", code}}});
}

}  // namespace

struct GitHubFake::State {
  Options options;
  mutable absl::Mutex mu;
  std::unique_ptr<httplib::Server> server;
  std::thread listen_thread;
  int port = 0;
  bool running = false;
  std::map<int64_t, FakeIssue> issues;
  std::map<std::string, Json> labels;  // name -> label object
  int64_t next_number = 1;
  int64_t next_id = 1000;
  std::optional<absl::Time> now_override;
  bool issues_enabled = true;
  int fail_status = 0;
  int fail_count = 0;
  int fail_retry_after = -1;
  int64_t remaining = 0;
  absl::Time reset;
  int64_t requests = 0;
  int64_t not_modified = 0;

  absl::Time Now() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return now_override ? *now_override : absl::Now();
  }

  void RefreshWindow() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    absl::Time now = absl::Now();
    if (now >= reset) {
      remaining = options.rate_limit;
      reset = now + options.rate_window;
    }
  }

  void RateHeaders(httplib::Response& res) ABSL_SHARED_LOCKS_REQUIRED(mu) {
    res.set_header("x-ratelimit-limit", std::to_string(options.rate_limit));
    res.set_header("x-ratelimit-remaining", std::to_string(remaining));
    res.set_header("x-ratelimit-used", std::to_string(options.rate_limit - remaining));
    res.set_header("x-ratelimit-reset", std::to_string(absl::ToUnixSeconds(reset)));
    res.set_header("x-ratelimit-resource", "core");
  }

  Json LabelJson(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = labels.find(name);
    if (it == labels.end()) {
      Json l = {{"id", next_id++}, {"name", name}, {"color", "ededed"}, {"description", nullptr},
                {"default", false}};
      it = labels.emplace(name, l).first;
    }
    return it->second;
  }

  Json IssueJson(const FakeIssue& i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::string base = absl::StrCat("http://127.0.0.1:", port, "/repos/", options.owner, "/",
                                    options.repo);
    Json labels_json = Json::array();
    for (const auto& l : i.labels) labels_json.push_back(LabelJson(l));
    Json j = {{"id", 500000 + i.number},
              {"number", i.number},
              {"url", absl::StrCat(base, "/issues/", i.number)},
              {"title", i.title},
              {"body", i.body.empty() ? Json() : Json(i.body)},
              {"state", i.state},
              {"labels", labels_json},
              {"user", {{"login", "claudenet-bot"}, {"type", "Bot"}}},
              {"comments", i.comments.size()},
              {"created_at", Iso(i.created_at)},
              {"updated_at", Iso(i.updated_at)},
              {"closed_at", i.state == "closed" ? Json(Iso(i.updated_at)) : Json()}};
    if (i.pull_request) {
      j["pull_request"] = {{"url", absl::StrCat(base, "/pulls/", i.number)}};
    }
    return j;
  }

  void Install(httplib::Server* svr);
  void Handle(const httplib::Request& req, httplib::Response& res);
  void Route(const httplib::Request& req, httplib::Response& res,
             const std::vector<std::string>& parts) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void ListIssues(const httplib::Request& req, httplib::Response& res)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
};

void GitHubFake::State::Install(httplib::Server* svr) {
  auto h = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  svr->Get(".*", h);
  svr->Post(".*", h);
  svr->Patch(".*", h);
  svr->Put(".*", h);
  svr->Delete(".*", h);
  svr->set_keep_alive_max_count(100000);
  svr->set_tcp_nodelay(true);
  svr->set_keep_alive_timeout(2);
  svr->new_task_queue = [] { return new httplib::ThreadPool(16); };
}

void GitHubFake::State::Handle(const httplib::Request& req, httplib::Response& res) {
  absl::MutexLock l(&mu);
  ++requests;
  RefreshWindow();
  std::string auth = req.get_header_value("Authorization");
  std::string token;
  if (absl::StartsWith(auth, "Bearer ")) token = auth.substr(7);
  if (absl::StartsWith(auth, "token ")) token = auth.substr(6);
  if (token.empty() || token != options.token) {
    Message(res, 401, "Bad credentials");
    return;
  }
  if (fail_count > 0) {
    --fail_count;
    RateHeaders(res);
    if (fail_retry_after >= 0) res.set_header("retry-after", std::to_string(fail_retry_after));
    if (fail_status == 403 || fail_status == 429) {
      Message(res, fail_status,
              "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
              "again.");
    } else {
      Message(res, fail_status, "Server Error");
    }
    return;
  }
  if (remaining <= 0) {
    RateHeaders(res);
    Message(res, 403, "API rate limit exceeded for installation. Check the rate limit headers.");
    return;
  }
  std::vector<std::string> parts = absl::StrSplit(req.path, '/', absl::SkipEmpty());
  if (parts.size() < 3 || parts[0] != "repos" || parts[1] != options.owner ||
      parts[2] != options.repo) {
    --remaining;
    RateHeaders(res);
    Message(res, 404, "Not Found");
    return;
  }
  Route(req, res, parts);
  if (req.method == "GET" && res.status == 200) {
    std::string etag = WeakETag(res.body);
    res.set_header("ETag", etag);
    std::string inm = req.get_header_value("If-None-Match");
    if (!inm.empty() && inm == etag) {
      ++not_modified;
      res.status = 304;
      res.body.clear();
      res.set_content("", "application/json; charset=utf-8");
      RateHeaders(res);  // not counted
      return;
    }
  }
  --remaining;
  RateHeaders(res);
}

void GitHubFake::State::Route(const httplib::Request& req, httplib::Response& res,
                              const std::vector<std::string>& parts) {
  const std::string& m = req.method;
  Json body;
  if (m == "POST" || m == "PATCH") {
    body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      Message(res, 400, "Problems parsing JSON");
      return;
    }
  }
  if (parts.size() >= 4 && parts[3] == "labels" && parts.size() == 4) {
    if (m == "POST") {
      if (!body.contains("name") || !body["name"].is_string() ||
          body["name"].get<std::string>().empty()) {
        Message(res, 422, "Validation Failed", ValidationFailed("Label", "name", "missing_field"));
        return;
      }
      std::string name = body["name"];
      if (labels.count(name)) {
        Message(res, 422, "Validation Failed", ValidationFailed("Label", "name", "already_exists"));
        return;
      }
      Json l = {{"id", next_id++},
                {"name", name},
                {"color", body.value("color", "ededed")},
                {"description", body.contains("description") ? body["description"] : Json()},
                {"default", false}};
      labels[name] = l;
      res.status = 201;
      res.set_content(l.dump(), "application/json; charset=utf-8");
      return;
    }
    if (m == "GET") {
      Json arr = Json::array();
      for (auto& [n, l] : labels) arr.push_back(l);
      res.status = 200;
      res.set_content(arr.dump(), "application/json; charset=utf-8");
      return;
    }
  }
  if (parts.size() < 4 || parts[3] != "issues") {
    Message(res, 404, "Not Found");
    return;
  }
  if (!issues_enabled) {
    Message(res, 410, "Issues are disabled for this repo");
    return;
  }
  const absl::Time now = Now();
  if (parts.size() == 4) {
    if (m == "GET") {
      ListIssues(req, res);
      return;
    }
    if (m == "POST") {
      if (!body.contains("title") || !body["title"].is_string() ||
          body["title"].get<std::string>().empty()) {
        Message(res, 422, "Validation Failed", ValidationFailed("Issue", "title", "missing_field"));
        return;
      }
      FakeIssue i;
      i.number = next_number++;
      i.title = body["title"];
      if (body.contains("body") && body["body"].is_string()) i.body = body["body"];
      if (body.contains("labels")) {
        if (!body["labels"].is_array()) {
          Message(res, 422, "Validation Failed", ValidationFailed("Issue", "labels", "invalid"));
          return;
        }
        for (const auto& l : body["labels"]) {
          if (!l.is_string()) {
            Message(res, 422, "Validation Failed", ValidationFailed("Issue", "labels", "invalid"));
            return;
          }
          i.labels.push_back(l);
          LabelJson(l);
        }
      }
      i.created_at = i.updated_at = now;
      issues[i.number] = i;
      res.status = 201;
      res.set_content(IssueJson(i).dump(), "application/json; charset=utf-8");
      return;
    }
    Message(res, 404, "Not Found");
    return;
  }
  int64_t number = 0;
  if (!absl::SimpleAtoi(parts[4], &number) || issues.count(number) == 0) {
    Message(res, 404, "Not Found");
    return;
  }
  FakeIssue& issue = issues[number];
  if (parts.size() == 5) {
    if (m == "GET") {
      res.status = 200;
      res.set_content(IssueJson(issue).dump(), "application/json; charset=utf-8");
      return;
    }
    if (m == "PATCH") {
      if (body.contains("state")) {
        std::string s = body["state"].is_string() ? body["state"].get<std::string>() : "";
        if (s != "open" && s != "closed") {
          Message(res, 422, "Validation Failed", ValidationFailed("Issue", "state", "invalid"));
          return;
        }
        issue.state = s;
      }
      if (body.contains("title") && body["title"].is_string()) issue.title = body["title"];
      if (body.contains("body") && body["body"].is_string()) issue.body = body["body"];
      if (body.contains("labels") && body["labels"].is_array()) {
        issue.labels.clear();
        for (const auto& l : body["labels"]) {
          if (l.is_string()) issue.labels.push_back(l);
        }
      }
      issue.updated_at = now;
      res.status = 200;
      res.set_content(IssueJson(issue).dump(), "application/json; charset=utf-8");
      return;
    }
  }
  if (parts.size() == 6 && parts[5] == "comments") {
    if (m == "POST") {
      if (!body.contains("body") || !body["body"].is_string() ||
          body["body"].get<std::string>().empty()) {
        Message(res, 422, "Validation Failed",
                ValidationFailed("IssueComment", "body", "missing_field"));
        return;
      }
      issue.comments.push_back(body["body"]);
      issue.updated_at = now;
      Json c = {{"id", next_id++},
                {"body", body["body"]},
                {"user", {{"login", "claudenet-bot"}}},
                {"created_at", Iso(now)},
                {"updated_at", Iso(now)}};
      res.status = 201;
      res.set_content(c.dump(), "application/json; charset=utf-8");
      return;
    }
    if (m == "GET") {
      Json arr = Json::array();
      int64_t id = 1;
      for (const auto& c : issue.comments) arr.push_back({{"id", id++}, {"body", c}});
      res.status = 200;
      res.set_content(arr.dump(), "application/json; charset=utf-8");
      return;
    }
  }
  if (parts.size() == 6 && parts[5] == "labels" && m == "POST") {
    if (!body.contains("labels") || !body["labels"].is_array()) {
      Message(res, 422, "Validation Failed", ValidationFailed("Label", "labels", "invalid"));
      return;
    }
    for (const auto& l : body["labels"]) {
      if (!l.is_string()) continue;
      std::string name = l;
      if (std::find(issue.labels.begin(), issue.labels.end(), name) == issue.labels.end()) {
        issue.labels.push_back(name);
      }
    }
    issue.updated_at = now;
    Json arr = Json::array();
    for (const auto& n : issue.labels) arr.push_back(LabelJson(n));
    res.status = 200;
    res.set_content(arr.dump(), "application/json; charset=utf-8");
    return;
  }
  Message(res, 404, "Not Found");
}

void GitHubFake::State::ListIssues(const httplib::Request& req, httplib::Response& res) {
  std::string state = req.has_param("state") ? req.get_param_value("state") : "open";
  if (state != "open" && state != "closed" && state != "all") {
    Message(res, 422, "Validation Failed", ValidationFailed("Issue", "state", "invalid"));
    return;
  }
  std::vector<std::string> want_labels;
  if (req.has_param("labels")) {
    want_labels = absl::StrSplit(req.get_param_value("labels"), ',', absl::SkipEmpty());
  }
  std::optional<absl::Time> since;
  if (req.has_param("since")) {
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, req.get_param_value("since"), &t, &err)) {
      Message(res, 422, "Validation Failed", ValidationFailed("Issue", "since", "invalid"));
      return;
    }
    since = t;
  }
  std::string sort = req.has_param("sort") ? req.get_param_value("sort") : "created";
  std::string direction = req.has_param("direction") ? req.get_param_value("direction") : "desc";
  int64_t per_page = 30, page = 1;
  if (req.has_param("per_page") && !absl::SimpleAtoi(req.get_param_value("per_page"), &per_page)) {
    per_page = 30;
  }
  per_page = std::clamp<int64_t>(per_page, 1, 100);
  if (req.has_param("page") && (!absl::SimpleAtoi(req.get_param_value("page"), &page) || page < 1)) {
    page = 1;
  }
  std::vector<const FakeIssue*> matched;
  for (const auto& [n, i] : issues) {
    if (state != "all" && i.state != state) continue;
    bool ok = true;
    for (const auto& l : want_labels) {
      if (std::find(i.labels.begin(), i.labels.end(), l) == i.labels.end()) ok = false;
    }
    if (!ok) continue;
    if (since && i.updated_at < *since) continue;
    matched.push_back(&i);
  }
  auto key = [&](const FakeIssue* i) {
    if (sort == "updated") return i->updated_at;
    if (sort == "comments") return absl::FromUnixSeconds(static_cast<int64_t>(i->comments.size()));
    return i->created_at;
  };
  std::stable_sort(matched.begin(), matched.end(), [&](const FakeIssue* a, const FakeIssue* b) {
    absl::Time ka = key(a), kb = key(b);
    if (ka != kb) return direction == "asc" ? ka < kb : ka > kb;
    return direction == "asc" ? a->number < b->number : a->number > b->number;
  });
  int64_t total_pages = std::max<int64_t>(1, (static_cast<int64_t>(matched.size()) + per_page - 1) / per_page);
  Json arr = Json::array();
  for (int64_t k = (page - 1) * per_page;
       k < std::min<int64_t>(page * per_page, static_cast<int64_t>(matched.size())); ++k) {
    arr.push_back(IssueJson(*matched[k]));
  }
  // Link header: the same query with page replaced.
  std::vector<std::string> params;
  for (const auto& [k, v] : req.params) {
    if (k == "page") continue;
    std::string enc;
    for (unsigned char c : v) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',' || c == ':') {
        enc += static_cast<char>(c);
      } else {
        char b[4];
        snprintf(b, sizeof(b), "%%%02X", c);
        enc += b;
      }
    }
    params.push_back(absl::StrCat(k, "=", enc));
  }
  std::string base = absl::StrCat("http://127.0.0.1:", port, req.path, "?",
                                  absl::StrJoin(params, "&"), params.empty() ? "" : "&", "page=");
  std::vector<std::string> links;
  if (page < total_pages) {
    links.push_back(absl::StrCat("<", base, page + 1, ">; rel=\"next\""));
    links.push_back(absl::StrCat("<", base, total_pages, ">; rel=\"last\""));
  }
  if (page > 1) {
    links.push_back(absl::StrCat("<", base, 1, ">; rel=\"first\""));
    links.push_back(absl::StrCat("<", base, page - 1, ">; rel=\"prev\""));
  }
  if (!links.empty()) res.set_header("Link", absl::StrJoin(links, ", "));
  res.status = 200;
  res.set_content(arr.dump(), "application/json; charset=utf-8");
}

GitHubFake::GitHubFake() : GitHubFake(Options()) {}

GitHubFake::GitHubFake(Options options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->remaining = state_->options.rate_limit;
  state_->reset = absl::Now() + state_->options.rate_window;
}

GitHubFake::~GitHubFake() { Stop(); }

absl::Status GitHubFake::Start() {
  auto svr = std::make_unique<httplib::Server>();
  state_->Install(svr.get());
  int p = svr->bind_to_any_port("127.0.0.1");
  if (p <= 0) return absl::UnavailableError("github fake: cannot bind 127.0.0.1:0");
  RaiseListenBacklog(p);
  httplib::Server* raw = svr.get();
  {
    absl::MutexLock l(&state_->mu);
    state_->port = p;
    state_->server = std::move(svr);
    state_->running = true;
  }
  state_->listen_thread = std::thread([raw] { raw->listen_after_bind(); });
  while (!raw->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return absl::OkStatus();
}

void GitHubFake::Stop() {
  std::unique_ptr<httplib::Server> svr;
  {
    absl::MutexLock l(&state_->mu);
    state_->running = false;
    svr = std::move(state_->server);
  }
  if (svr) svr->stop();
  if (state_->listen_thread.joinable()) state_->listen_thread.join();
}

int GitHubFake::port() const {
  absl::MutexLock l(&state_->mu);
  return state_->port;
}

std::string GitHubFake::url() const { return absl::StrCat("http://127.0.0.1:", port()); }

int64_t GitHubFake::AddIssue(const std::string& title, const std::string& body,
                             const std::vector<std::string>& labels, bool pull_request) {
  absl::MutexLock l(&state_->mu);
  FakeIssue i;
  i.number = state_->next_number++;
  i.title = title;
  i.body = body;
  i.labels = labels;
  i.pull_request = pull_request;
  i.created_at = i.updated_at = state_->Now();
  for (const auto& n : labels) state_->LabelJson(n);
  state_->issues[i.number] = i;
  return i.number;
}

std::vector<GitHubFake::FakeIssue> GitHubFake::Issues() const {
  absl::MutexLock l(&state_->mu);
  std::vector<FakeIssue> out;
  for (const auto& [n, i] : state_->issues) out.push_back(i);
  return out;
}

GitHubFake::FakeIssue GitHubFake::GetIssue(int64_t number) const {
  absl::MutexLock l(&state_->mu);
  auto it = state_->issues.find(number);
  return it == state_->issues.end() ? FakeIssue() : it->second;
}

void GitHubFake::SetNow(absl::Time now) {
  absl::MutexLock l(&state_->mu);
  state_->now_override = now;
}

void GitHubFake::SetIssuesEnabled(bool enabled) {
  absl::MutexLock l(&state_->mu);
  state_->issues_enabled = enabled;
}

void GitHubFake::FailNext(int http_status, int count, int retry_after_seconds) {
  absl::MutexLock l(&state_->mu);
  state_->fail_status = http_status;
  state_->fail_count = count;
  state_->fail_retry_after = retry_after_seconds;
}

void GitHubFake::ExhaustRateLimit(absl::Duration reset_in) {
  absl::MutexLock l(&state_->mu);
  state_->remaining = 0;
  state_->reset = absl::Now() + reset_in;
}

void GitHubFake::ClearFailures() {
  absl::MutexLock l(&state_->mu);
  state_->fail_count = 0;
  state_->remaining = state_->options.rate_limit;
  state_->reset = absl::Now() + state_->options.rate_window;
}

int64_t GitHubFake::requests() const {
  absl::MutexLock l(&state_->mu);
  return state_->requests;
}

int64_t GitHubFake::not_modified() const {
  absl::MutexLock l(&state_->mu);
  return state_->not_modified;
}

int64_t GitHubFake::rate_remaining() const {
  absl::MutexLock l(&state_->mu);
  return state_->remaining;
}

}  // namespace cnet::fakes
