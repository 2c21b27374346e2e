// MACS gateway benchmark: durable Send throughput at 1, 16 and 64
// concurrent senders, and send -> deliver latency at a steady 1,000 msg/s.
//
// Everything runs in this process on loopback: the real gateway (group
// commit, SQLite WAL with synchronous=FULL in a temporary directory on the
// same disk as /tmp unless --dir is given), its gRPC adapter with the auth
// interceptor, and gRPC clients that sign every message (HMAC-SHA256 over
// CNET-MSG-V1) like real agents. Client and server share the machine's
// cores, so the figures include the client's cost.
//
//   bazel run -c opt //services/macs-gateway/bench:macs_bench -- [--seconds 3]
//       [--dir DIR] [--rate 1000] [--latency-seconds 5] [--fsync false]
#include <google/protobuf/util/time_util.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "services/macs-gateway/canonical.h"
#include "services/macs-gateway/directory.h"
#include "services/macs-gateway/gateway.h"
#include "services/macs-gateway/macs_service.h"

namespace pb = claudenet::v1;
using Steady = std::chrono::steady_clock;

namespace {

constexpr char kSecret[] = "bench-shared-secret";

class Tokens final : public cnet::auth::Authenticator {
 public:
  absl::StatusOr<cnet::auth::Principal> Authenticate(std::string_view c) override {
    return cnet::auth::Principal{cnet::auth::Kind::kAgent, std::string(c.substr(4)), ""};
  }
};

pb::SendRequest MakeRequest(const std::string& from, const std::string& to, const std::string& id,
                            int64_t now_s) {
  pb::SendRequest req;
  pb::Message* m = req.mutable_message();
  m->set_id(id);
  m->set_sender(from);
  m->set_recipient(to);
  m->set_type(pb::MESSAGE_TYPE_DIRECT);
  m->set_subject("bench");
  m->set_body("a typical short message body of about one hundred bytes, like a status line "
              "from an agent.");
  (*m->mutable_payload()->mutable_fields())["n"].set_number_value(1);
  m->mutable_created_at()->set_seconds(now_s);
  m->set_signature(*cnet::macs::SignMessage(*m, kSecret));
  return req;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with the Mutex deadlock detector on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  double seconds = 3, latency_seconds = 5, rate = 1000;
  std::string dir;
  bool fsync = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--seconds") seconds = std::stod(argv[i + 1]);
    if (f == "--latency-seconds") latency_seconds = std::stod(argv[i + 1]);
    if (f == "--rate") rate = std::stod(argv[i + 1]);
    if (f == "--dir") dir = argv[i + 1];
    if (f == "--fsync") fsync = std::string(argv[i + 1]) != "false";
  }
  if (dir.empty()) {
    char tmpl[] = "/tmp/macs-bench-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  cnet::macs::InMemoryAgentDirectory directory;
  for (int i = 0; i < 64; ++i) {
    directory.Put(cnet::macs::AgentInfo{absl::StrCat("sender-", i)});
    directory.Put(cnet::macs::AgentInfo{absl::StrCat("inbox-", i)});
  }
  directory.Put(cnet::macs::AgentInfo{"latency"});
  cnet::macs::GatewayOptions go;
  go.db_path = dir + "/macs.db";
  go.fsync = fsync;
  go.node = "bench";
  go.shared_secret = kSecret;
  go.rate_per_sec = 1e9;
  go.rate_burst = 1000000000;
  go.inbox_cap = 100000000;
  auto gateway = cnet::macs::Gateway::Create(go, cnet::RealClock::Default(), &directory);
  if (!gateway.ok()) {
    std::fprintf(stderr, "%s\n", std::string(gateway.status().message()).c_str());
    return 1;
  }
  cnet::macs::MacsServiceImpl impl(gateway->get(), cnet::RealClock::Default());
  cnet::ServerOptions so;
  so.name = "macs-bench";
  so.services = {&impl};
  so.interceptors.push_back(cnet::auth::MakeAuthInterceptorFactory(
      std::make_shared<cnet::auth::StaticAuthenticator>("a", "s", std::make_shared<Tokens>())));
  auto server = cnet::GrpcServer::Start(std::move(so));
  if (!server.ok()) return 1;
  auto channel = cnet::MakeChannel((*server)->address());
  auto stub = pb::MacsGateway::NewStub(channel);
  std::printf("MACS gateway benchmark (store %s, synchronous=%s, %u cores)\n",
              go.db_path.c_str(), fsync ? "FULL" : "NORMAL", std::thread::hardware_concurrency());
  {
    // What bounds durable latency: one small append + fdatasync on this disk.
    std::string probe = dir + "/fsync.probe";
    int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    Steady::time_point t0 = Steady::now();
    const int n = 200;
    for (int i = 0; i < n; ++i) {
      if (::write(fd, "0123456789abcdef", 16) != 16 || ::fdatasync(fd) != 0) break;
    }
    double each = std::chrono::duration<double, std::milli>(Steady::now() - t0).count() / n;
    ::close(fd);
    ::unlink(probe.c_str());
    std::printf("disk: append + fdatasync %.3f ms (%.0f/s)\n", each, 1000.0 / each);
  }

  // --- durable sends/s at 1, 16, 64 concurrent senders ---
  for (int concurrency : {1, 16, 64}) {
    std::atomic<int64_t> ok{0}, failed{0};
    std::atomic<bool> stop{false};
    auto before = (*gateway)->writer_stats();
    // Closed loop on the callback API: `concurrency` senders, each sending
    // its next message from the previous one's completion (no thread per
    // sender, so the client's own cost stays small).
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    Steady::time_point start = Steady::now();
    absl::Mutex loop_mu;
    int running = concurrency;
    std::function<void(int, int64_t)> send_next = [&](int t, int64_t i) {
      if (stop.load(std::memory_order_relaxed)) {
        absl::MutexLock lock(&loop_mu);
        running--;
        return;
      }
      struct Call {
        grpc::ClientContext ctx;
        pb::SendRequest req;
        pb::SendResponse resp;
      };
      auto call = std::make_shared<Call>();
      const std::string from = absl::StrCat("sender-", t);
      call->req = MakeRequest(from, absl::StrCat("inbox-", (t + i) % 64),
                              absl::StrCat("c", concurrency, "-", t, "-", i), now_s);
      call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      cnet::auth::SetBearer(&call->ctx, "tok-" + from);
      stub->async()->Send(&call->ctx, &call->req, &call->resp,
                          [&, call, t, i](grpc::Status st) {
                            if (st.ok()) {
                              ok++;
                            } else {
                              failed++;
                            }
                            send_next(t, i + 1);
                          });
    };
    for (int t = 0; t < concurrency; ++t) send_next(t, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(seconds * 1000)));
    stop = true;
    {
      absl::MutexLock lock(&loop_mu);
      auto drained = [&]() { return running == 0; };
      loop_mu.Await(absl::Condition(&drained));
    }
    double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
    auto after = (*gateway)->writer_stats();
    double batches = static_cast<double>(after.batches - before.batches);
    std::printf(
        "durable sends, %2d concurrent senders: %8.0f msg/s  (%lld ok, %lld failed in %.1f s; "
        "%.0f commits/s, %.1f ops per commit; writer busy %.0f%%: jobs %.0f us/op "
        "(%.0f us CPU), commit %.2f ms)\n",
        concurrency, ok / elapsed, static_cast<long long>(ok.load()),
        static_cast<long long>(failed.load()), elapsed, batches / elapsed,
        batches > 0 ? (after.jobs - before.jobs) / batches : 0.0,
        100.0 * ((after.run_micros - before.run_micros) + (after.commit_micros - before.commit_micros)) /
            (elapsed * 1e6),
        static_cast<double>(after.run_micros - before.run_micros) /
            std::max<int64_t>(1, after.jobs - before.jobs),
        static_cast<double>(after.run_cpu_micros - before.run_cpu_micros) /
            std::max<int64_t>(1, after.jobs - before.jobs),
        batches > 0 ? (after.commit_micros - before.commit_micros) / batches / 1000.0 : 0.0);
  }

  // --- the same without gRPC: what the gateway core itself sustains ---
  {
    const int concurrency = 64;
    std::atomic<int64_t> ok{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    Steady::time_point start = Steady::now();
    for (int t = 0; t < concurrency; ++t) {
      threads.emplace_back([&, t] {
        const std::string from = absl::StrCat("sender-", t);
        cnet::macs::Caller caller = cnet::macs::Caller::Agent(from);
        for (int64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
          pb::SendRequest req = MakeRequest(from, absl::StrCat("inbox-", (t + i) % 64),
                                            absl::StrCat("core-", t, "-", i), now_s);
          if ((*gateway)->SendAndWait(caller, req).ok()) ok++;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(seconds * 1000)));
    stop = true;
    for (auto& th : threads) th.join();
    double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
    std::printf("core only (no gRPC), 64 concurrent callers: %8.0f msg/s\n", ok / elapsed);
  }

  // --- send -> deliver latency at a steady rate ---
  {
    grpc::ClientContext sub_ctx;
    cnet::auth::SetBearer(&sub_ctx, "tok-latency");
    pb::SubscribeRequest sreq;
    sreq.set_max_in_flight(1000);
    auto reader = stub->Subscribe(&sub_ctx, sreq);
    pb::SubscribeResponse frame;
    reader->Read(&frame);  // ready
    absl::Mutex mu;
    std::map<std::string, Steady::time_point> sent_at;
    std::vector<double> deliver_ms, ack_ms;
    const int total = static_cast<int>(rate * latency_seconds);
    // The receiver acknowledges in batches from a second thread, as a real
    // agent that processes messages while its acks are being written would.
    std::vector<int64_t> to_ack;
    bool receiving = true;
    std::thread acker([&] {
      auto ack_stub = pb::MacsGateway::NewStub(channel);
      for (;;) {
        pb::AckRequest ack;
        {
          absl::MutexLock lock(&mu);
          auto ready = [&]() { return !to_ack.empty() || !receiving; };
          mu.Await(absl::Condition(&ready));
          if (to_ack.empty()) return;
          for (int64_t s : to_ack) ack.add_inbox_sequences(s);
          to_ack.clear();
        }
        grpc::ClientContext ctx;
        cnet::auth::SetBearer(&ctx, "tok-latency");
        pb::AckResponse ar;
        ack_stub->Ack(&ctx, ack, &ar);
      }
    });
    std::thread receiver([&] {
      int got = 0;
      while (got < total && reader->Read(&frame)) {
        Steady::time_point now = Steady::now();
        if (!frame.has_delivery()) continue;
        absl::MutexLock lock(&mu);
        auto it = sent_at.find(frame.delivery().message().id());
        if (it != sent_at.end()) {
          deliver_ms.push_back(std::chrono::duration<double, std::milli>(now - it->second).count());
        }
        to_ack.push_back(frame.delivery().inbox_sequence());
        got++;
      }
      absl::MutexLock lock(&mu);
      receiving = false;
    });
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    Steady::time_point next = Steady::now();
    const auto period = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / rate));
    for (int i = 0; i < total; ++i) {
      std::this_thread::sleep_until(next);
      next += period;
      pb::SendRequest req = MakeRequest("sender-0", "latency", absl::StrCat("lat-", i), now_s);
      Steady::time_point t0 = Steady::now();
      {
        absl::MutexLock lock(&mu);
        sent_at[req.message().id()] = t0;
      }
      grpc::ClientContext ctx;
      cnet::auth::SetBearer(&ctx, "tok-sender-0");
      pb::SendResponse resp;
      stub->Send(&ctx, req, &resp);
      ack_ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
    }
    receiver.join();
    acker.join();
    sub_ctx.TryCancel();
    absl::MutexLock lock(&mu);
    std::printf(
        "send -> deliver at %.0f msg/s (%zu messages): p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
        rate, deliver_ms.size(), Percentile(deliver_ms, 0.5), Percentile(deliver_ms, 0.99),
        Percentile(deliver_ms, 1.0));
    std::printf("send acknowledged (durable) at %.0f msg/s: p50 %.3f ms, p99 %.3f ms\n", rate,
                Percentile(ack_ms, 0.5), Percentile(ack_ms, 0.99));
  }
  impl.Shutdown();
  (*gateway)->Shutdown();
  (*server)->Shutdown(absl::Seconds(2));
  return 0;
}
