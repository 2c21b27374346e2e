#include "libs/firebase/firebase_stream.h"

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "libs/http/curl_http.h"

namespace cnet::firebase {

const char* StreamStateName(StreamState s) {
  switch (s) {
    case StreamState::kConnecting:
      return "connecting";
    case StreamState::kConnected:
      return "connected";
    case StreamState::kDisconnected:
      return "disconnected";
    case StreamState::kStopped:
      return "stopped";
  }
  return "unknown";
}

FirebaseStream::FirebaseStream(StreamOptions options, Callbacks callbacks)
    : options_(std::move(options)), callbacks_(std::move(callbacks)) {
  auth_ = options_.firebase.auth;
  access_token_ = options_.firebase.access_token;
}

FirebaseStream::~FirebaseStream() { Stop(); }

absl::Status FirebaseStream::Start() {
  auto path = NormalizePath(options_.path);
  if (!path.ok()) return path.status();
  auto query = EncodeQuery(options_.query);
  if (!query.ok()) return query.status();
  if (options_.firebase.database_url.empty()) {
    return absl::InvalidArgumentError("firebase stream: database_url is empty");
  }
  absl::MutexLock l(&mu_);
  if (started_) return absl::FailedPreconditionError("firebase stream: already started");
  started_ = true;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void FirebaseStream::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void FirebaseStream::SetAuth(std::string auth, std::string access_token) {
  absl::MutexLock l(&mu_);
  auth_ = std::move(auth);
  access_token_ = std::move(access_token);
}

int64_t FirebaseStream::connects() const {
  absl::MutexLock l(&mu_);
  return connects_;
}

int64_t FirebaseStream::disconnects() const {
  absl::MutexLock l(&mu_);
  return disconnects_;
}

bool FirebaseStream::connected() const {
  absl::MutexLock l(&mu_);
  return connected_;
}

bool FirebaseStream::WaitBackoff(absl::Duration d) {
  absl::MutexLock l(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

void FirebaseStream::Run() {
  std::mt19937_64 rng(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}());
  int attempt = 0;
  bool had_snapshot = false;
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_) break;
    }
    if (callbacks_.on_state) callbacks_.on_state(StreamState::kConnecting, absl::OkStatus());
    bool got_snapshot = had_snapshot;  // in: resync flag; out: snapshot seen
    absl::Status s = RunOnce(&got_snapshot);
    bool stopping;
    {
      absl::MutexLock l(&mu_);
      stopping = stopping_;
      if (connected_) ++disconnects_;
      connected_ = false;
    }
    if (stopping) break;
    if (got_snapshot) {
      had_snapshot = true;
      attempt = 0;
    }
    if (s.ok()) s = absl::UnavailableError("firebase stream: server ended the stream");
    if (callbacks_.on_state) callbacks_.on_state(StreamState::kDisconnected, s);
    absl::Duration cap = options_.initial_backoff;
    for (int i = 0; i < attempt && cap < options_.max_backoff; ++i) cap *= 2;
    cap = std::min(cap, options_.max_backoff);
    ++attempt;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (!WaitBackoff(cap * u(rng))) break;
  }
  if (callbacks_.on_state) callbacks_.on_state(StreamState::kStopped, absl::OkStatus());
}

absl::Status FirebaseStream::RunOnce(bool* got_snapshot) {
  const bool resync = *got_snapshot;
  *got_snapshot = false;
  FirebaseOptions fo = options_.firebase;
  {
    absl::MutexLock l(&mu_);
    fo.auth = auth_;
    fo.access_token = access_token_;
  }
  std::string path = NormalizePath(options_.path).value_or("");
  std::string query = EncodeQuery(options_.query).value_or("");
  // The client is only used to build the URL (no connection is made).
  FirebaseClient url_builder(fo);
  http::HttpRequest req;
  req.method = "GET";
  req.url = url_builder.UrlFor(path, query);
  req.headers.emplace_back("Accept", "text/event-stream");
  const std::string what = absl::StrCat("stream GET ", http::RedactUrl(req.url));

  http::HttpOptions ho;
  ho.connect_timeout = fo.connect_timeout;
  ho.user_agent = fo.user_agent;
  ho.max_idle_handles = 0;
  http::CurlHttpClient http(ho);

  SseLimits limits;
  limits.max_event_bytes = fo.max_response_bytes;
  limits.max_line_bytes = fo.max_response_bytes;
  SseParser parser(limits);
  int status_code = 0;
  std::string error_body;
  absl::Status failure;  // why this side ended the stream
  bool first_event = true;
  using SteadyClock = std::chrono::steady_clock;
  auto last_byte = SteadyClock::now();
  const auto keepalive = absl::ToChronoMilliseconds(options_.keepalive_timeout);
  std::vector<SseEvent> events;

  http::CurlHttpClient::StreamCallbacks cb;
  cb.on_response = [&](int code, const std::multimap<std::string, std::string>&) {
    status_code = code;
    last_byte = SteadyClock::now();
    if (code == 200) {
      {
        absl::MutexLock l(&mu_);
        connected_ = true;
      }
      if (callbacks_.on_state) callbacks_.on_state(StreamState::kConnected, absl::OkStatus());
    }
    return true;
  };
  cb.on_data = [&](absl::string_view chunk) {
    last_byte = SteadyClock::now();
    if (status_code != 200) {
      if (error_body.size() < 4096) error_body.append(chunk.data(), std::min<size_t>(chunk.size(), 4096));
      return true;
    }
    events.clear();
    absl::Status fs = parser.Feed(chunk, &events);
    for (const SseEvent& raw : events) {
      auto ev = DecodeStreamEvent(raw);
      if (!ev.ok()) {
        failure = absl::Status(ev.status().code(),
                               absl::StrCat(what, ": ", ev.status().message()));
        return false;
      }
      if (first_event && ev->type != StreamEvent::Type::kKeepAlive) {
        first_event = false;
        if (ev->type == StreamEvent::Type::kPut && ev->path == "/") {
          ev->snapshot = true;
          ev->resync = resync;
          *got_snapshot = true;
          absl::MutexLock l(&mu_);
          ++connects_;
        }
      }
      if (callbacks_.on_event) callbacks_.on_event(*ev);
      if (ev->type == StreamEvent::Type::kCancel) {
        failure = absl::PermissionDeniedError(
            absl::StrCat(what, ": cancelled by the server", ev->reason.empty() ? "" : ": ",
                         ev->reason));
        return false;
      }
      if (ev->type == StreamEvent::Type::kAuthRevoked) {
        failure = absl::UnauthenticatedError(absl::StrCat(what, ": auth revoked"));
        return false;
      }
    }
    if (!fs.ok()) {
      failure = absl::Status(fs.code(), absl::StrCat(what, ": ", fs.message()));
      return false;
    }
    return true;
  };
  cb.should_abort = [&]() {
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return true;
    }
    if (SteadyClock::now() - last_byte > keepalive) {
      failure = absl::DeadlineExceededError(
          absl::StrCat(what, ": no data (not even keep-alive) for ",
                       absl::FormatDuration(options_.keepalive_timeout)));
      return true;
    }
    return false;
  };
  absl::Status s = http.Stream(req, cb);
  if (!failure.ok()) return failure;
  if (!s.ok()) return s;
  if (status_code != 200) return StatusFromFirebaseResponse(status_code, error_body, what);
  return absl::OkStatus();
}

}  // namespace cnet::firebase
