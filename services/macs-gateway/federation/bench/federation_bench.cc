// Federation figures between two in-process nodes over loopback HTTP: the
// real FirebaseClient + FirebaseStream against the Firebase fake, and the
// real GitHubClient against the GitHub fake. Prints, asserts nothing.
//
//   bazel run -c opt //services/macs-gateway/federation/bench:federation_bench -- \
//       [--latency N] [--flush N] [--github N]
//
//   1. cross-node send -> deliver (Send ack on A until B's subscriber gets
//      it), closed loop, N messages: p50/p99/max.
//   2. offline-queue flush: the database refuses connections, N messages
//      are accepted by A (queued), the database comes back: time until B
//      delivered all N, and the rate.
//   3. GitHub path: the database down past fallback_after; N messages one
//      at a time through GitHub issues (fallback_after 20 s, poll interval
//      200 ms): send ->
//      deliver p50/max.
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/clock/clock.h"
#include "libs/firebase/firebase_client.h"
#include "libs/firebase/firebase_stream.h"
#include "libs/github/github_client.h"
#include "services/macs-gateway/canonical.h"
#include "services/macs-gateway/federation/federation.h"
#include "services/macs-gateway/federation/http_media.h"
#include "services/macs-gateway/gateway.h"
#include "tests/fakes/firebase_fake.h"
#include "tests/fakes/github_fake.h"

namespace {
namespace pb = claudenet::v1;
using namespace cnet::macs;              // NOLINT
using namespace cnet::macs::federation;  // NOLINT

constexpr char kSecret[] = "bench-secret";

class TimingSink final : public DeliverySink {
 public:
  void Deliver(pb::SubscribeResponse frame) override {
    if (!frame.has_delivery()) return;
    absl::MutexLock lock(&mu_);
    arrived_[frame.delivery().message().id()] = absl::Now();
  }
  void End(const absl::Status&) override {}
  size_t count() {
    absl::MutexLock lock(&mu_);
    return arrived_.size();
  }
  bool WaitFor(const std::string& id, absl::Time* at, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto has = [&] { return arrived_.count(id) > 0; };
    mu_.AwaitWithTimeout(absl::Condition(&has), timeout);
    if (!has()) return false;
    *at = arrived_[id];
    return true;
  }
  bool WaitCount(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] { return arrived_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, absl::Time> arrived_;
};

struct Node {
  std::string name;
  InMemoryAgentDirectory directory;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<cnet::firebase::FirebaseClient> fb;
  std::unique_ptr<FirebaseRealtimeDb> db;
  std::unique_ptr<cnet::github::GitHubClient> gh;
  std::unique_ptr<GitHubIssueTracker> issues;
  std::unique_ptr<Federation> federation;
  std::vector<std::unique_ptr<cnet::firebase::FirebaseStream>> streams;
  TimingSink sink;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

pb::Message Msg(const std::string& from, const std::string& to, const std::string& id) {
  pb::Message m;
  m.set_id(id);
  m.set_sender(from);
  m.set_recipient(to);
  m.set_body("bench message body of " + id);
  *m.mutable_created_at() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(absl::Now()));
  m.set_signature(*SignMessage(m, kSecret));
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  int latency_n = 500, flush_n = 10000, github_n = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--latency")) latency_n = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--flush")) flush_n = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--github")) github_n = atoi(argv[i + 1]);
  }
  cnet::fakes::FirebaseFake fake;
  cnet::fakes::GitHubFake::Options gho;
  gho.rate_limit = 1000000000;  // the bench polls every 200 ms
  cnet::fakes::GitHubFake ghfake(gho);
  if (!fake.Start().ok() || !ghfake.Start().ok()) {
    fprintf(stderr, "fakes did not start\n");
    return 1;
  }
  char tmpl[] = "/tmp/fedbenchXXXXXX";
  const std::string dir = mkdtemp(tmpl);
  cnet::Clock* clock = cnet::RealClock::Default();
  Node a, b;
  a.name = "A";
  b.name = "B";
  for (Node* n : {&a, &b}) {
    for (const char* id : {"a1", "b1", "b2"}) {
      AgentInfo info;
      info.id = id;
      if ((id[0] == 'a') != (n == &a)) {
        info.node = id[0] == 'a' ? "A" : "B";
        info.remote = true;
      }
      n->directory.Put(info);
    }
    GatewayOptions o;
    o.db_path = dir + "/" + n->name + ".db";
    o.node = n->name;
    o.shared_secret = kSecret;
    o.fsync = false;
    o.rate_per_sec = 1e6;
    o.rate_burst = 1000000;
    o.inbox_cap = 1000000;
    o.ack_timeout = absl::Hours(1);
    n->gateway = std::move(*Gateway::Create(o, clock, &n->directory));
    cnet::firebase::FirebaseOptions fo;
    fo.database_url = fake.url();
    fo.max_retries = 0;
    fo.timeout = absl::Seconds(5);
    fo.connect_timeout = absl::Seconds(1);
    n->fb = std::make_unique<cnet::firebase::FirebaseClient>(fo);
    n->db = std::make_unique<FirebaseRealtimeDb>(n->fb.get());
    cnet::github::GitHubOptions go;
    go.api_url = ghfake.url();
    go.owner = "acme";
    go.repo = "net";
    go.token = "gh-test-token";
    go.max_retries = 0;
    n->gh = std::make_unique<cnet::github::GitHubClient>(go, clock);
    n->issues = std::make_unique<GitHubIssueTracker>(n->gh.get());
    FederationOptions f;
    f.node = n->name;
    f.backoff_base = absl::Milliseconds(50);
    f.backoff_max = absl::Milliseconds(500);
    f.fallback_after = absl::Seconds(20);  // longer than the flush outage
    f.poll_interval = absl::Seconds(1);
    f.github_poll_interval = absl::Milliseconds(200);
    f.batch_max_messages = 500;
    n->federation = std::make_unique<Federation>(f, clock, n->gateway.get(), n->db.get(),
                                                 n->issues.get());
    Federation* fed = n->federation.get();
    n->gateway->SetOutboxListener([fed] { fed->Nudge(); });
    n->gateway->SetFederationStatusSource([fed](pb::FederationStatus* s) { fed->FillStatus(s); });
    for (const char* base : {"messages/", "receipts/"}) {
      cnet::firebase::StreamOptions so;
      so.firebase = fo;
      so.path = absl::StrCat(base, n->name);
      so.initial_backoff = absl::Milliseconds(50);
      so.max_backoff = absl::Milliseconds(500);
      cnet::firebase::FirebaseStream::Callbacks cb;
      cb.on_event = [fed](const cnet::firebase::StreamEvent&) { fed->Nudge(); };
      cb.on_state = [fed](cnet::firebase::StreamState, const absl::Status&) { fed->Nudge(); };
      n->streams.push_back(std::make_unique<cnet::firebase::FirebaseStream>(so, cb));
      (void)n->streams.back()->Start();
    }
    n->federation->Start();
    pb::SubscribeRequest sub;
    sub.set_max_in_flight(1000);
    const std::string agent = n == &a ? "a1" : "b1";
    (void)n->gateway->Subscribe(Caller::Agent(agent), sub, &n->sink);
  }
  auto send = [&](const std::string& id, const char* to = "b1") {
    pb::SendRequest req;
    *req.mutable_message() = Msg("a1", to, id);
    auto r = a.gateway->SendAndWait(Caller::Agent("a1"), req);
    if (!r.ok()) fprintf(stderr, "send %s: %s\n", id.c_str(), r.status().ToString().c_str());
  };

  // 1. Latency.
  std::vector<double> ms;
  for (int i = 0; i < latency_n; i++) {
    const std::string id = absl::StrCat("lat-", i);
    absl::Time t0 = absl::Now();
    send(id);
    absl::Time at;
    if (!b.sink.WaitFor(id, &at, absl::Seconds(10))) {
      fprintf(stderr, "latency: %s not delivered\n", id.c_str());
      break;
    }
    ms.push_back(absl::ToDoubleMilliseconds(at - t0));
  }
  printf("cross-node send->deliver via Firebase fake (loopback HTTP, %zu msgs, closed loop): "
         "p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
         ms.size(), Percentile(ms, 0.5), Percentile(ms, 0.99), Percentile(ms, 1.0));

  // 2. Offline-queue flush.
  (void)fake.SetRefuseConnections(true);
  // To b2 (no subscriber: a subscriber that never acks stops at 1000 in
  // flight); "delivered" = accepted into b2's inbox on B.
  const int64_t before = b.federation->counters().accepted;
  absl::Time q0 = absl::Now();
  for (int i = 0; i < flush_n; i++) send(absl::StrCat("flush-", i), "b2");
  double enqueue_s = absl::ToDoubleSeconds(absl::Now() - q0);
  pb::GetStatsResponse st = *a.gateway->GetStats(Caller::Admin(), pb::GetStatsRequest());
  printf("offline queue: %d accepted while the database refused in %.2f s; depth %lld, state %s\n",
         flush_n, enqueue_s, static_cast<long long>(st.federation().offline_queue_depth()),
         pb::FederationState_Name(st.federation().state()).c_str());
  (void)fake.SetRefuseConnections(false);
  absl::Time f0 = absl::Now();
  a.federation->Nudge();
  bool all = false;
  while (absl::Now() - f0 < absl::Seconds(300)) {
    if (b.federation->counters().accepted - before >= flush_n) {
      all = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(2));  // bench only: sampling a counter
  }
  const double flush_s = absl::ToDoubleSeconds(absl::Now() - f0);
  const int64_t flushed = b.federation->counters().accepted - before;
  printf("offline queue flush after the outage: %lld/%d delivered into B's inbox in %.2f s = "
         "%.0f msg/s (batches of 500, multi-path PATCH)%s\n",
         static_cast<long long>(flushed), flush_n, flush_s, flushed / flush_s,
         all ? "" : "  INCOMPLETE");

  // 3. GitHub path.
  (void)fake.SetRefuseConnections(true);
  send("gh-warmup");
  absl::Time w0 = absl::Now();
  while (a.federation->state() != pb::FEDERATION_STATE_FALLBACK &&
         absl::Now() - w0 < absl::Seconds(30)) {
    a.federation->Nudge();
    absl::SleepFor(absl::Milliseconds(50));  // bench only: waiting for real time
  }
  absl::Time at;
  (void)b.sink.WaitFor("gh-warmup", &at, absl::Seconds(30));
  std::vector<double> gms;
  for (int i = 0; i < github_n; i++) {
    const std::string id = absl::StrCat("gh-", i);
    absl::Time t0 = absl::Now();
    send(id);
    if (!b.sink.WaitFor(id, &at, absl::Seconds(30))) {
      fprintf(stderr, "github: %s not delivered\n", id.c_str());
      break;
    }
    gms.push_back(absl::ToDoubleMilliseconds(at - t0));
  }
  printf("GitHub-path send->deliver (GitHub fake, loopback, receiver poll interval 200 ms, %zu "
         "msgs): p50 %.0f ms  max %.0f ms\n",
         gms.size(), Percentile(gms, 0.5), Percentile(gms, 1.0));
  (void)fake.SetRefuseConnections(false);

  for (Node* n : {&a, &b}) {
    for (auto& s : n->streams) s->Stop();
    n->federation->Stop();
    n->gateway->Shutdown();
  }
  return 0;
}
