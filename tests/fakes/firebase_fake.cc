#include "tests/fakes/firebase_fake.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <list>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "tests/fakes/listen_backlog.h"

namespace cnet::fakes {
namespace {

using Json = nlohmann::json;
using Segs = std::vector<std::string>;

constexpr char kPushChars[] =
    "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

bool ParsePath(const std::string& raw, Segs* out, std::string* error) {
  out->clear();
  for (absl::string_view seg : absl::StrSplit(raw, '/', absl::SkipEmpty())) {
    for (char c : seg) {
      unsigned char u = static_cast<unsigned char>(c);
      if (c == '.' || c == '#' || c == '$' || c == '[' || c == ']' || u < 0x20 || u == 0x7f) {
        *error = "Invalid path: Invalid token in path";
        return false;
      }
    }
    out->emplace_back(seg);
  }
  return true;
}

std::string Join(const Segs& s) { return absl::StrJoin(s, "/"); }

bool IsPrefix(const Segs& a, const Segs& b) {  // a is ancestor-or-self of b
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

Json GetAt(const Json& root, const Segs& segs) {
  const Json* cur = &root;
  for (const auto& s : segs) {
    if (!cur->is_object()) return Json();
    auto it = cur->find(s);
    if (it == cur->end()) return Json();
    cur = &*it;
  }
  return *cur;
}

// Firebase never stores nulls or empty objects/arrays.
Json Prune(const Json& v) {
  if (v.is_object()) {
    Json out = Json::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      Json c = Prune(it.value());
      if (!c.is_null()) out[it.key()] = std::move(c);
    }
    return out.empty() ? Json() : out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    bool any = false;
    for (const auto& e : v) {
      Json c = Prune(e);
      any = any || !c.is_null();
      out.push_back(std::move(c));
    }
    return any ? out : Json();
  }
  return v;
}

Json ResolveServerValues(const Json& v, int64_t now_ms) {
  if (v.is_object()) {
    if (v.size() == 1 && v.contains(".sv") && v[".sv"] == "timestamp") return now_ms;
    Json out = Json::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      out[it.key()] = ResolveServerValues(it.value(), now_ms);
    }
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const auto& e : v) out.push_back(ResolveServerValues(e, now_ms));
    return out;
  }
  return v;
}

void SetAt(Json* root, const Segs& segs, const Json& value) {
  Json v = Prune(value);
  if (segs.empty()) {
    *root = v;
    return;
  }
  // Walk down, creating objects, remembering the chain for pruning.
  std::vector<Json*> chain;
  Json* cur = root;
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    if (!cur->is_object()) {
      if (v.is_null()) return;  // deleting under a leaf/absent: nothing
      *cur = Json::object();
    }
    chain.push_back(cur);
    cur = &(*cur)[segs[i]];
  }
  if (!cur->is_object()) {
    if (v.is_null()) {
      // Parent chain may now hold an empty object created above: prune.
    } else {
      *cur = Json::object();
    }
  }
  chain.push_back(cur);
  if (cur->is_object()) {
    if (v.is_null()) {
      cur->erase(segs.back());
    } else {
      (*cur)[segs.back()] = v;
    }
  }
  // Prune empty objects bottom-up.
  for (size_t i = chain.size(); i-- > 1;) {
    Json* node = chain[i];
    if ((node->is_object() && node->empty()) || node->is_null()) {
      chain[i - 1]->erase(segs[i - 1]);
    } else {
      break;
    }
  }
  if (root->is_object() && root->empty()) *root = Json();
}

std::string ETagOf(const Json& v) {
  // Content hash (FNV-1a 64) of the canonical dump: equal values, equal tags.
  std::string s = v.dump();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Firebase's ordering of values: null < false < true < numbers < strings <
// objects; numbers by value, strings lexicographically.
int TypeRank(const Json& v) {
  if (v.is_null()) return 0;
  if (v.is_boolean()) return v.get<bool>() ? 2 : 1;
  if (v.is_number()) return 3;
  if (v.is_string()) return 4;
  return 5;
}

int CompareValues(const Json& a, const Json& b) {
  int ra = TypeRank(a), rb = TypeRank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra == 3) {
    double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (ra == 4) {
    const auto& x = a.get_ref<const std::string&>();
    const auto& y = b.get_ref<const std::string&>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  return 0;
}

// Keys that are 32-bit integers sort first, numerically; then strings.
int CompareKeys(const std::string& a, const std::string& b) {
  int64_t x = 0, y = 0;
  bool ia = absl::SimpleAtoi(a, &x) && std::to_string(x) == a && x >= INT32_MIN && x <= INT32_MAX;
  bool ib = absl::SimpleAtoi(b, &y) && std::to_string(y) == b && y >= INT32_MIN && y <= INT32_MAX;
  if (ia && ib) return x < y ? -1 : (x > y ? 1 : 0);
  if (ia != ib) return ia ? -1 : 1;
  return a < b ? -1 : (a > b ? 1 : 0);
}

std::string SseEventText(const std::string& type, const Json& data) {
  return absl::StrCat("event: ", type, "\ndata: ", data.dump(), "\n\n");
}

}  // namespace

struct StreamConn {
  Segs path;
  std::deque<std::string> outbox;
  bool closed = false;         // end after flushing outbox
};

struct FirebaseFake::State {
  Options options;
  mutable absl::Mutex mu;
  Json root;
  std::unique_ptr<httplib::Server> server;
  std::thread listen_thread;
  int port = 0;
  bool running = false;
  int fail_all = 0;
  int fail_next = 0;
  int fail_next_count = 0;
  absl::Duration latency = absl::ZeroDuration();
  bool redirect_next_stream = false;
  int64_t requests = 0;
  int64_t stream_requests = 0;
  int64_t writes = 0;
  std::map<std::string, int64_t> writes_by_path;
  std::list<std::shared_ptr<StreamConn>> streams;
  int64_t last_push_ms = -1;
  int last_push_rand[12] = {0};
  std::mt19937_64 rng{12345};

  // --- tree notifications (mu held) ---
  void NotifyPut(const Segs& at, const Json& value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto& s : streams) {
      if (s->closed) continue;
      if (IsPrefix(s->path, at)) {
        Segs rel(at.begin() + s->path.size(), at.end());
        s->outbox.push_back(
            SseEventText("put", Json{{"path", "/" + Join(rel)}, {"data", value}}));
      } else if (IsPrefix(at, s->path)) {
        s->outbox.push_back(
            SseEventText("put", Json{{"path", "/"}, {"data", GetAt(root, s->path)}}));
      }
    }
  }
  void NotifyPatch(const Segs& base, const Json& data, const std::vector<Segs>& touched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto& s : streams) {
      if (s->closed) continue;
      if (IsPrefix(s->path, base)) {
        Segs rel(base.begin() + s->path.size(), base.end());
        s->outbox.push_back(
            SseEventText("patch", Json{{"path", "/" + Join(rel)}, {"data", data}}));
      } else {
        for (const Segs& t : touched) {
          if (IsPrefix(t, s->path) || IsPrefix(s->path, t)) {
            s->outbox.push_back(
                SseEventText("put", Json{{"path", "/"}, {"data", GetAt(root, s->path)}}));
            break;
          }
        }
      }
    }
  }

  std::string NewPushId(int64_t ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    char out[20];
    int64_t t = ms;
    for (int i = 7; i >= 0; --i) {
      out[i] = kPushChars[t % 64];
      t /= 64;
    }
    if (ms == last_push_ms) {
      int i = 11;
      for (; i >= 0 && last_push_rand[i] == 63; --i) last_push_rand[i] = 0;
      if (i >= 0) ++last_push_rand[i];
    } else {
      last_push_ms = ms;
      for (int& r : last_push_rand) r = static_cast<int>(rng() % 64);
    }
    for (int i = 0; i < 12; ++i) out[8 + i] = kPushChars[last_push_rand[i]];
    return std::string(out, 20);
  }

  void CloseAllStreams() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto& s : streams) s->closed = true;
  }

  void Install(httplib::Server* svr);
  void Handle(const httplib::Request& req, httplib::Response& res);
  void HandleStream(const httplib::Request& req, httplib::Response& res, const Segs& path);
  absl::Status Listen(int port);
  void StopServer();
};

namespace {

void Error(httplib::Response& res, int status, const std::string& msg) {
  res.status = status;
  res.set_content(Json{{"error", msg}}.dump(), "application/json; charset=utf-8");
}

}  // namespace

void FirebaseFake::State::Install(httplib::Server* svr) {
  auto h = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  svr->Get(".*", h);
  svr->Put(".*", h);
  svr->Post(".*", h);
  svr->Patch(".*", h);
  svr->Delete(".*", h);
  svr->set_keep_alive_max_count(100000);
  svr->set_tcp_nodelay(true);
  svr->set_keep_alive_timeout(2);
  svr->new_task_queue = [] { return new httplib::ThreadPool(48); };
}

absl::Status FirebaseFake::State::Listen(int want_port) {
  auto svr = std::make_unique<httplib::Server>();
  Install(svr.get());
  int p = want_port;
  if (want_port == 0) {
    p = svr->bind_to_any_port("127.0.0.1");
    if (p <= 0) return absl::UnavailableError("firebase fake: cannot bind 127.0.0.1:0");
  } else if (!svr->bind_to_port("127.0.0.1", want_port)) {
    return absl::UnavailableError(absl::StrCat("firebase fake: cannot bind 127.0.0.1:", want_port));
  }
  RaiseListenBacklog(p);
  httplib::Server* raw = svr.get();
  {
    absl::MutexLock l(&mu);
    port = p;
    server = std::move(svr);
    running = true;
  }
  listen_thread = std::thread([raw] { raw->listen_after_bind(); });
  // Wait until it accepts.
  while (!raw->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return absl::OkStatus();
}

void FirebaseFake::State::StopServer() {
  std::unique_ptr<httplib::Server> svr;
  {
    absl::MutexLock l(&mu);
    CloseAllStreams();
    running = false;
    svr = std::move(server);
  }
  if (svr) svr->stop();
  if (listen_thread.joinable()) listen_thread.join();
}

void FirebaseFake::State::Handle(const httplib::Request& req, httplib::Response& res) {
  absl::Duration delay;
  bool is_stream = req.method == "GET" &&
                   absl::StrContains(req.get_header_value("Accept"), "text/event-stream");
  int fail = 0;
  std::string secret;
  {
    absl::MutexLock l(&mu);
    ++requests;
    if (is_stream) ++stream_requests;
    delay = latency;
    if (fail_all != 0) {
      fail = fail_all;
    } else if (fail_next_count > 0 && !is_stream) {
      --fail_next_count;
      fail = fail_next;
    }
    secret = options.secret;
  }
  if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
  if (fail != 0) {
    Error(res, fail, fail == 429 ? "Too many requests" : "Service Unavailable");
    return;
  }
  if (!absl::EndsWith(req.path, ".json")) {
    Error(res, 404, "Not found: append .json to the path");
    return;
  }
  if (!secret.empty()) {
    std::string auth = req.has_param("auth") ? req.get_param_value("auth")
                                             : req.get_param_value("access_token");
    if (auth != secret) {
      Error(res, 401, "Permission denied");
      return;
    }
  }
  Segs path;
  std::string perr;
  if (!ParsePath(req.path.substr(0, req.path.size() - 5), &path, &perr)) {
    Error(res, 400, perr);
    return;
  }
  const bool silent = req.get_param_value("print") == "silent";
  const bool want_etag = req.get_header_value("X-Firebase-ETag") == "true";
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());

  if (req.method == "GET") {
    if (is_stream) {
      HandleStream(req, res, path);
      return;
    }
    static const char* kQueryParams[] = {"orderBy", "startAt", "endAt", "equalTo",
                                         "limitToFirst", "limitToLast"};
    bool has_query = false;
    for (const char* p : kQueryParams) has_query = has_query || req.has_param(p);
    Json value;
    {
      absl::MutexLock l(&mu);
      value = GetAt(root, path);
    }
    if (req.get_param_value("shallow") == "true") {
      if (has_query) {
        Error(res, 400, "Mixing 'shallow' and querying parameters is not supported");
        return;
      }
      if (value.is_object()) {
        Json keys = Json::object();
        for (auto it = value.begin(); it != value.end(); ++it) keys[it.key()] = true;
        value = keys;
      }
    } else if (has_query) {
      if (!req.has_param("orderBy")) {
        Error(res, 400, "orderBy must be defined when other query parameters are defined");
        return;
      }
      auto parse = [&](const char* name, Json* out) -> bool {
        if (!req.has_param(name)) return true;
        std::string raw = req.get_param_value(name);
        *out = Json::parse(raw, nullptr, false);
        if (out->is_discarded() || out->is_object() || out->is_array()) {
          Error(res, 400, absl::StrCat("Constraint index field must be a JSON primitive"));
          return false;
        }
        return true;
      };
      Json order_by, start_at, end_at, equal_to;
      if (!parse("orderBy", &order_by) || !parse("startAt", &start_at) ||
          !parse("endAt", &end_at) || !parse("equalTo", &equal_to)) {
        return;
      }
      if (!order_by.is_string()) {
        Error(res, 400, "orderBy must be a valid JSON encoded path");
        return;
      }
      int64_t first = -1, last = -1;
      if (req.has_param("limitToFirst") &&
          (!absl::SimpleAtoi(req.get_param_value("limitToFirst"), &first) || first <= 0)) {
        Error(res, 400, "limitToFirst must be a positive integer");
        return;
      }
      if (req.has_param("limitToLast") &&
          (!absl::SimpleAtoi(req.get_param_value("limitToLast"), &last) || last <= 0)) {
        Error(res, 400, "limitToLast must be a positive integer");
        return;
      }
      if (first > 0 && last > 0) {
        Error(res, 400, "limitToFirst and limitToLast cannot both be set");
        return;
      }
      const std::string ob = order_by.get<std::string>();
      const bool by_key = ob == "$key";
      if (by_key) {
        for (const Json* v : {&start_at, &end_at, &equal_to}) {
          if (!v->is_null() && !v->is_string()) {
            Error(res, 400, "When ordering by key, you may only pass strings to startAt, endAt or equalTo");
            return;
          }
        }
      }
      Segs child;
      if (!by_key && ob != "$value" && ob != "$priority") {
        std::string e;
        if (!ParsePath(ob, &child, &e)) {
          Error(res, 400, "orderBy must be a valid JSON encoded path");
          return;
        }
      }
      struct Item {
        std::string key;
        Json sort;
        Json value;
      };
      std::vector<Item> items;
      if (value.is_object()) {
        for (auto it = value.begin(); it != value.end(); ++it) {
          Item item{it.key(), Json(), it.value()};
          if (by_key) {
            item.sort = it.key();
          } else if (ob == "$value") {
            item.sort = it.value();
          } else if (ob != "$priority") {
            item.sort = GetAt(it.value(), child);
          }
          items.push_back(std::move(item));
        }
      }
      auto cmp = [&](const Item& a, const Item& b) {
        if (by_key) return CompareKeys(a.key, b.key) < 0;
        int c = CompareValues(a.sort, b.sort);
        if (c != 0) return c < 0;
        return CompareKeys(a.key, b.key) < 0;
      };
      std::sort(items.begin(), items.end(), cmp);
      auto compare_to = [&](const Item& it, const Json& bound) {
        if (by_key) return CompareKeys(it.key, bound.get<std::string>());
        return CompareValues(it.sort, bound);
      };
      std::vector<Item> kept;
      for (auto& it : items) {
        if (req.has_param("startAt") && compare_to(it, start_at) < 0) continue;
        if (req.has_param("endAt") && compare_to(it, end_at) > 0) continue;
        if (req.has_param("equalTo") && compare_to(it, equal_to) != 0) continue;
        kept.push_back(std::move(it));
      }
      if (first > 0 && kept.size() > static_cast<size_t>(first)) kept.resize(first);
      if (last > 0 && kept.size() > static_cast<size_t>(last)) {
        kept.erase(kept.begin(), kept.end() - last);
      }
      Json out = Json::object();
      for (auto& it : kept) out[it.key] = std::move(it.value);
      value = value.is_object() ? out : Json();
    }
    if (want_etag) res.set_header("ETag", ETagOf(value));
    res.status = 200;
    res.set_content(value.dump(), "application/json; charset=utf-8");
    return;
  }

  // Writes.
  Json body;
  if (req.method != "DELETE") {
    body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      Error(res, 400, "Invalid data; couldn't parse JSON object, array, or value.");
      return;
    }
    body = ResolveServerValues(body, now_ms);
  }
  absl::MutexLock l(&mu);
  std::string if_match = req.get_header_value("if-match");
  if (!if_match.empty()) {
    if (req.method != "PUT" && req.method != "DELETE") {
      Error(res, 400, "if-match is only supported for PUT and DELETE");
      return;
    }
    Json current = GetAt(root, path);
    std::string tag = ETagOf(current);
    if (tag != if_match) {
      res.status = 412;
      res.set_header("ETag", tag);
      res.set_content(current.dump(), "application/json; charset=utf-8");
      return;
    }
  }
  Json echo;
  if (req.method == "PUT" || req.method == "DELETE") {
    Json v = req.method == "PUT" ? body : Json();
    SetAt(&root, path, v);
    NotifyPut(path, Prune(v));
    echo = Prune(v);
  } else if (req.method == "POST") {
    std::string id = NewPushId(now_ms);
    Segs child = path;
    child.push_back(id);
    SetAt(&root, child, body);
    NotifyPut(child, Prune(body));
    path = child;
    echo = Json{{"name", id}};
  } else {  // PATCH
    if (!body.is_object()) {
      Error(res, 400, "Invalid data; couldn't parse JSON object. Are you sending a JSON object with valid key names?");
      return;
    }
    std::vector<Segs> targets;
    for (auto it = body.begin(); it != body.end(); ++it) {
      Segs rel;
      std::string e;
      if (!ParsePath(it.key(), &rel, &e) || rel.empty()) {
        Error(res, 400, absl::StrCat("Invalid data; key \"", it.key(), "\" is not a valid path"));
        return;
      }
      Segs full = path;
      full.insert(full.end(), rel.begin(), rel.end());
      for (const Segs& t : targets) {
        if (IsPrefix(t, full) || IsPrefix(full, t)) {
          Error(res, 400, absl::StrCat("Invalid data; path /", Join(IsPrefix(t, full) ? t : full),
                                       " is an ancestor of /",
                                       Join(IsPrefix(t, full) ? full : t),
                                       " in the same update"));
          return;
        }
      }
      targets.push_back(std::move(full));
    }
    size_t i = 0;
    for (auto it = body.begin(); it != body.end(); ++it, ++i) SetAt(&root, targets[i], it.value());
    NotifyPatch(path, body, targets);
    echo = body;
  }
  ++writes;
  ++writes_by_path[Join(path)];
  if (want_etag || !if_match.empty()) res.set_header("ETag", ETagOf(GetAt(root, path)));
  if (silent) {
    res.status = 204;
    return;
  }
  res.status = 200;
  res.set_content(echo.dump(), "application/json; charset=utf-8");
}

void FirebaseFake::State::HandleStream(const httplib::Request& req, httplib::Response& res,
                                       const Segs& path) {
  auto conn = std::make_shared<StreamConn>();
  conn->path = path;
  {
    absl::MutexLock l(&mu);
    if (redirect_next_stream) {
      redirect_next_stream = false;
      res.status = 307;
      res.set_header("Location", absl::StrCat("http://127.0.0.1:", port, req.path));
      return;
    }
    // Snapshot and registration together: no write can fall in between.
    conn->outbox.push_back(SseEventText("put", Json{{"path", "/"}, {"data", GetAt(root, path)}}));
    streams.push_back(conn);
  }
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, conn](size_t, httplib::DataSink& sink) {
        std::deque<std::string> batch;
        bool closed;
        {
          absl::MutexLock l(&mu);
          absl::Duration interval = options.keepalive_interval;
          auto ready = [](StreamConn* c) { return c->closed || !c->outbox.empty(); };
          bool woke = mu.AwaitWithTimeout(
              absl::Condition(+ready, conn.get()),
              interval > absl::ZeroDuration() ? interval : absl::Milliseconds(1));
          batch.swap(conn->outbox);
          closed = conn->closed;
          if (!woke && batch.empty() && !closed) {
            batch.push_back("event: keep-alive\ndata: null\n\n");
          }
        }
        for (const std::string& ev : batch) {
          if (!sink.write(ev.data(), ev.size())) return false;
        }
        return !closed;  // false: connection closes without a final chunk
      },
      [this, conn](bool) {
        absl::MutexLock l(&mu);
        streams.remove(conn);
      });
}

FirebaseFake::FirebaseFake() : FirebaseFake(Options()) {}

FirebaseFake::FirebaseFake(Options options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->redirect_next_stream = state_->options.redirect_first_stream;
}

FirebaseFake::~FirebaseFake() { Stop(); }

absl::Status FirebaseFake::Start() {
  int p;
  {
    absl::MutexLock l(&state_->mu);
    if (state_->running) return absl::OkStatus();
    p = state_->port;
  }
  return state_->Listen(p);
}

void FirebaseFake::Stop() { state_->StopServer(); }

int FirebaseFake::port() const {
  absl::MutexLock l(&state_->mu);
  return state_->port;
}

std::string FirebaseFake::url() const { return absl::StrCat("http://127.0.0.1:", port()); }

nlohmann::json FirebaseFake::Get(const std::string& path) const {
  Segs s;
  std::string e;
  ParsePath(path, &s, &e);
  absl::MutexLock l(&state_->mu);
  return GetAt(state_->root, s);
}

void FirebaseFake::Set(const std::string& path, const nlohmann::json& value) {
  Segs s;
  std::string e;
  ParsePath(path, &s, &e);
  absl::MutexLock l(&state_->mu);
  Json v = ResolveServerValues(value, absl::ToUnixMillis(absl::Now()));
  SetAt(&state_->root, s, v);
  state_->NotifyPut(s, Prune(v));
}

nlohmann::json FirebaseFake::Root() const {
  absl::MutexLock l(&state_->mu);
  return state_->root;
}

absl::Status FirebaseFake::SetRefuseConnections(bool refuse) {
  if (refuse) {
    state_->StopServer();
    return absl::OkStatus();
  }
  return Start();
}

void FirebaseFake::FailAllWith(int http_status) {
  absl::MutexLock l(&state_->mu);
  state_->fail_all = http_status;
  if (http_status != 0) state_->CloseAllStreams();
}

void FirebaseFake::FailNext(int http_status, int count) {
  absl::MutexLock l(&state_->mu);
  state_->fail_next = http_status;
  state_->fail_next_count = count;
}

void FirebaseFake::ClearFailures() {
  absl::MutexLock l(&state_->mu);
  state_->fail_all = 0;
  state_->fail_next_count = 0;
}

void FirebaseFake::SetLatency(absl::Duration latency) {
  absl::MutexLock l(&state_->mu);
  state_->latency = latency;
}

void FirebaseFake::SetKeepAliveInterval(absl::Duration interval) {
  absl::MutexLock l(&state_->mu);
  state_->options.keepalive_interval = interval;
}

void FirebaseFake::SetSecret(const std::string& secret) {
  absl::MutexLock l(&state_->mu);
  state_->options.secret = secret;
}

void FirebaseFake::RedirectNextStream() {
  absl::MutexLock l(&state_->mu);
  state_->redirect_next_stream = true;
}

void FirebaseFake::DropStreams() {
  absl::MutexLock l(&state_->mu);
  for (auto& s : state_->streams) {
    s->outbox.clear();
    s->closed = true;
  }
}

void FirebaseFake::SendCancel() {
  absl::MutexLock l(&state_->mu);
  for (auto& s : state_->streams) {
    s->outbox.push_back("event: cancel\ndata: null\n\n");
    s->closed = true;
  }
}

void FirebaseFake::SendAuthRevoked() {
  absl::MutexLock l(&state_->mu);
  for (auto& s : state_->streams) {
    s->outbox.push_back("event: auth_revoked\ndata: \"credential is no longer valid\"\n\n");
    s->closed = true;
  }
}

int64_t FirebaseFake::requests() const {
  absl::MutexLock l(&state_->mu);
  return state_->requests;
}

int64_t FirebaseFake::stream_requests() const {
  absl::MutexLock l(&state_->mu);
  return state_->stream_requests;
}

int FirebaseFake::open_streams() const {
  absl::MutexLock l(&state_->mu);
  int n = 0;
  for (auto& s : state_->streams) n += s->closed ? 0 : 1;
  return n;
}

std::map<std::string, int64_t> FirebaseFake::writes_by_path() const {
  absl::MutexLock l(&state_->mu);
  return state_->writes_by_path;
}

int64_t FirebaseFake::writes() const {
  absl::MutexLock l(&state_->mu);
  return state_->writes;
}

bool FirebaseFake::WaitForOpenStreams(int n, absl::Duration timeout) const {
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    int open = 0;
    for (auto& s : state_->streams) open += s->closed ? 0 : 1;
    return open >= n;
  };
  absl::MutexLock l(&state_->mu);
  return state_->mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

}  // namespace cnet::fakes
