// Figures for the federation I/O layer over loopback against the in-process
// fakes: FirebaseClient PUT/GET latency, multi-path PATCH batch throughput,
// write -> stream event latency, GitHub create/list/304-poll latency.
// Printed, never asserted. Usage: fed_io_bench [--n=2000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "libs/firebase/firebase_client.h"
#include "libs/firebase/firebase_stream.h"
#include "libs/github/github_client.h"
#include "tests/fakes/firebase_fake.h"
#include "tests/fakes/github_fake.h"

namespace {

using Clock = std::chrono::steady_clock;
using cnet::firebase::Json;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void Report(const char* name, std::vector<double> v) {
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))]; };
  std::printf("%-34s n=%-6zu p50=%.3f ms  p99=%.3f ms  max=%.3f ms\n", name, v.size(), pct(0.5),
              pct(0.99), v.back());
}

}  // namespace

int main(int argc, char** argv) {
  int n = 2000;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--n=", 4) == 0) n = std::atoi(argv[i] + 4);
  }
  cnet::fakes::FirebaseFake::Options fo;
  fo.secret = "bench-secret";
  cnet::fakes::FirebaseFake fb(fo);
  if (!fb.Start().ok()) return 1;
  cnet::firebase::FirebaseOptions o;
  o.database_url = fb.url();
  o.auth = "bench-secret";
  cnet::firebase::FirebaseClient client(o);
  Json envelope = {{"id", "m-000000"},
                   {"from", "agent-a@node-a"},
                   {"to", "agent-b@node-b"},
                   {"body", std::string(512, 'x')},
                   {"sig", std::string(64, 'f')}};

  std::vector<double> put, get;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (!client.Put("bench/put/m" + std::to_string(i), envelope).ok()) return 2;
    put.push_back(Ms(Clock::now() - t0));
  }
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (!client.Get("bench/put/m" + std::to_string(i)).ok()) return 3;
    get.push_back(Ms(Clock::now() - t0));
  }
  Report("firebase PUT (600 B, print=silent)", put);
  Report("firebase GET", get);
  std::printf("connections opened for %d requests: %lld\n", 2 * n,
              static_cast<long long>(client.connections_opened()));

  // Multi-path batches of 100 (the offline-queue flush shape).
  const int batches = std::max(1, n / 100);
  auto t0 = Clock::now();
  for (int b = 0; b < batches; ++b) {
    std::map<std::string, Json> batch;
    for (int i = 0; i < 100; ++i) {
      batch["messages/node-b/m" + std::to_string(b * 100 + i)] = envelope;
    }
    if (!client.UpdateMultiPath("", batch).ok()) return 4;
  }
  double secs = Ms(Clock::now() - t0) / 1000.0;
  std::printf("%-34s %d messages in %.3f s = %.0f msg/s\n", "multi-path PATCH (batches of 100)",
              batches * 100, secs, batches * 100 / secs);

  // Write -> stream event latency.
  absl::Mutex mu;
  std::map<std::string, Clock::time_point> arrived;
  cnet::firebase::StreamOptions so;
  so.firebase = o;
  so.path = "live";
  cnet::firebase::FirebaseStream::Callbacks cb;
  cb.on_event = [&](const cnet::firebase::StreamEvent& e) {
    if (e.snapshot || e.type != cnet::firebase::StreamEvent::Type::kPut) return;
    absl::MutexLock l(&mu);
    arrived[e.path] = Clock::now();
  };
  bool snap = false;
  cb.on_state = [&](cnet::firebase::StreamState s, const absl::Status&) {
    if (s == cnet::firebase::StreamState::kConnected) {
      absl::MutexLock l(&mu);
      snap = true;
    }
  };
  cnet::firebase::FirebaseStream stream(so, cb);
  if (!stream.Start().ok()) return 5;
  {
    absl::MutexLock l(&mu);
    mu.Await(absl::Condition(&snap));
  }
  fb.WaitForOpenStreams(1, absl::Seconds(10));
  std::vector<double> live;
  const int m = std::min(n, 1000);
  for (int i = 0; i < m; ++i) {
    std::string key = "/m" + std::to_string(i);
    auto w0 = Clock::now();
    if (!client.Put("live" + key, envelope).ok()) return 6;
    absl::MutexLock l(&mu);
    auto have = [&]() { return arrived.count(key) > 0; };
    if (!mu.AwaitWithTimeout(absl::Condition(&have), absl::Seconds(10))) return 7;
    live.push_back(Ms(arrived[key] - w0));
  }
  Report("firebase write -> stream event", live);
  stream.Stop();

  // GitHub.
  cnet::fakes::GitHubFake gh;
  if (!gh.Start().ok()) return 8;
  cnet::github::GitHubOptions go;
  go.api_url = gh.url();
  go.owner = "acme";
  go.repo = "net";
  go.token = "gh-test-token";
  cnet::github::GitHubClient ghc(go);
  std::vector<double> create;
  for (int i = 0; i < 500; ++i) {
    auto c0 = Clock::now();
    if (!ghc.CreateIssue("msg " + std::to_string(i), envelope.dump(), {"claudenet", "to:node-b"})
             .ok()) {
      return 9;
    }
    create.push_back(Ms(Clock::now() - c0));
  }
  Report("github create issue", create);
  cnet::github::ListIssuesRequest req;
  req.labels = {"claudenet", "to:node-b"};
  auto l0 = Clock::now();
  auto list = ghc.ListIssues(req);
  if (!list.ok()) return 10;
  std::printf("%-34s %zu issues, %d pages in %.3f ms\n", "github list (per_page=100)",
              list->issues.size(), list->pages, Ms(Clock::now() - l0));
  req.etag = list->etag;
  std::vector<double> poll;
  for (int i = 0; i < 200; ++i) {
    auto p0 = Clock::now();
    auto r = ghc.ListIssues(req);
    if (!r.ok() || !r->not_modified) return 11;
    poll.push_back(Ms(Clock::now() - p0));
  }
  Report("github 304 poll (If-None-Match)", poll);
  return 0;
}
