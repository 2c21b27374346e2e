// MACS workload over gRPC against the started suite: durable sends/s at 1,
// 16 and 64 concurrent senders (each Send returns after the message is on
// disk), send->deliver latency at a fixed offered rate measured from the
// Send call to the subscriber's receipt, and a broadcast to 100 agents.
#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/macs_client/macs_client.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "tools/bench/workloads.h"

namespace cnet::bench {
namespace pb = claudenet::v1;

namespace {

struct Agent {
  std::string id, token;
};

std::vector<Agent> RegisterAgents(pb::RegistryService::Stub* stub, const std::string& prefix,
                                  int n, const std::string& capability = "bench") {
  std::vector<Agent> out;
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    pb::RegisterRequest req;
    req.set_agent_id(absl::StrCat(prefix, i));
    req.set_name(absl::StrCat(prefix, i));
    req.add_capabilities(capability);
    pb::RegisterResponse resp;
    if (stub->Register(&ctx, req, &resp).ok()) out.push_back({resp.agent().id(), resp.token()});
  }
  return out;
}

std::string ReadSecret(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return std::string(absl::StripAsciiWhitespace(s));
}

}  // namespace

void RunMacs(const Params& p, SuiteRunner* suite, Report* report) {
  const std::vector<std::string> names = {
      "durable sends/s (1 sender)",   "durable sends/s (16 senders)",
      "durable sends/s (64 senders)", "send->deliver p50 @1000/s",
      "send->deliver p95 @1000/s",    "send->deliver p99 @1000/s",
      "broadcast fan-out to 100 agents"};
  auto registry = pb::RegistryService::NewStub(MakeChannel(suite->address("registry")));
  auto macs_channel = MakeChannel(suite->address("macs-gateway"));
  std::vector<Agent> senders = RegisterAgents(registry.get(), "bench-sender-", 64);
  std::vector<Agent> receivers = RegisterAgents(registry.get(), "bench-receiver-", 1);
  std::string secret = ReadSecret(suite->data_dir() + "/message.secret");
  if (senders.size() < 64 || receivers.empty() || secret.empty()) {
    for (const auto& n : names) report->Missing("macs", n, "could not register agents or read the secret");
    return;
  }
  auto client_for = [&](const Agent& a) {
    macs_client::ClientOptions o;
    o.agent_id = a.id;
    o.token = a.token;
    o.signing_key = secret;
    o.deadline = absl::Seconds(30);
    return std::make_unique<macs_client::MacsClient>(macs_channel, o);
  };

  // Durable throughput: c threads, each a closed loop of Send calls.
  const absl::Duration span = p.quick ? absl::Milliseconds(1500) : absl::Seconds(5);
  int name_index = 0;
  for (int c : {1, 16, 64}) {
    std::atomic<int64_t> ok{0}, failed{0};
    absl::Time end = absl::Now() + span;
    absl::Time t0 = absl::Now();
    std::vector<std::thread> threads;
    for (int t = 0; t < c; ++t) {
      threads.emplace_back([&, t] {
        auto client = client_for(senders[t]);
        while (absl::Now() < end) {
          auto r = client->SendText(receivers[0].id, "bench", "payload");
          (r.ok() ? ok : failed).fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    double rate = ok.load() / absl::ToDoubleSeconds(absl::Now() - t0);
    Figure f{"macs", names[name_index++], rate, "msg/s", true};
    f.seed = "100 msg/s";
    if (c == 64) {
      f.goal = ">= 20,000";
      f.goal_value = 20000;
    }
    if (failed.load()) f.note = absl::StrCat(failed.load(), " failed");
    report->Add(f);
  }

  // Latency at a fixed offered rate: the receiver's own agent subscribes on
  // a fresh inbox; each body carries its send time.
  std::vector<Agent> fresh = RegisterAgents(registry.get(), "bench-latency-", 1);
  if (fresh.empty()) {
    for (int i = 3; i < 6; ++i) report->Missing("macs", names[i], "could not register agent");
  } else {
    auto receiver = client_for(fresh[0]);
    auto sub = receiver->Subscribe();
    const int total = p.quick ? 1000 : 5000;
    Samples lat;
    absl::Mutex mu;
    int received = 0;
    std::thread reader([&] {
      if (!sub.ok()) return;
      pb::InboxEntry entry;
      std::vector<int64_t> to_ack;
      while ((*sub)->Next(&entry)) {
        int64_t sent_ns = 0;
        absl::SimpleAtoi(entry.message().body(), &sent_ns);
        absl::Duration d = absl::Now() - absl::FromUnixNanos(sent_ns);
        to_ack.push_back(entry.inbox_sequence());
        if (to_ack.size() >= 64) {
          receiver->Ack(to_ack).IgnoreError();
          to_ack.clear();
        }
        absl::MutexLock lock(&mu);
        lat.Add(d);
        if (++received == total) break;
      }
      if (!to_ack.empty()) receiver->Ack(to_ack).IgnoreError();
    });
    auto sender = client_for(senders[0]);
    absl::Time start = absl::Now();
    for (int i = 0; i < total; ++i) {
      absl::Time due = start + absl::Milliseconds(i);  // 1,000 msg/s
      absl::Duration wait = due - absl::Now();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
      sender->SendText(fresh[0].id, "latency", absl::StrCat(absl::ToUnixNanos(absl::Now())))
          .IgnoreError();
    }
    {
      absl::MutexLock lock(&mu);
      auto all_in = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return received >= total; };
      mu.AwaitWithTimeout(absl::Condition(&all_in), absl::Seconds(30));
    }
    if (sub.ok()) (*sub)->Cancel();
    reader.join();
    absl::MutexLock lock(&mu);
    for (auto [i, pct] : std::vector<std::pair<int, double>>{{3, 50}, {4, 95}, {5, 99}}) {
      Figure f{"macs", names[i], lat.PercentileMicros(pct) / 1000.0, "ms", false};
      f.seed = "100-500 ms";
      if (pct == 99) {
        f.goal = "< 2 ms";
        f.goal_value = 2;
      }
      if (received < total) f.note = absl::StrCat("only ", received, " of ", total, " delivered in time");
      report->Add(f);
    }
  }

  // Fan-out: Send latency of one message to a capability group of exactly
  // 100 agents (a plain `broadcast` would reach every agent registered by
  // the other workloads of this run).
  RegisterAgents(registry.get(), "bench-fanout-", 100, "bench-fanout");
  auto sender = client_for(senders[1]);
  Samples fan;
  for (int i = 0; i < (p.quick ? 5 : 20); ++i) {
    pb::Message m;
    m.set_recipient("cap:bench-fanout");
    m.set_type(pb::MESSAGE_TYPE_BROADCAST);
    m.set_subject("fan-out");
    m.set_body("x");
    absl::Time t0 = absl::Now();
    if (sender->Send(m).ok()) fan.Add(absl::Now() - t0);
  }
  if (fan.size() == 0) {
    report->Missing("macs", names[6], "every broadcast failed");
  } else {
    report->Add({"macs", names[6], fan.PercentileMicros(50) / 1000.0, "ms", false, "", "",
                 0, "p50 Send latency of one message to cap:bench-fanout (100 agents), durable in every inbox"});
  }
}

}  // namespace cnet::bench
