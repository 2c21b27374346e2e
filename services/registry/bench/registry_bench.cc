// Registry benchmark: 100,000 agents on this machine, in process (the core
// with its SQLite store on disk) and over gRPC (the real adapter on a
// loopback port). Prints figures; asserts nothing.
//
//   bazel run -c opt //services/registry/bench:registry_bench -- [--agents N]
//       [--seconds S] [--threads T] [--grpc-register N]
//
// Agents get 3 capabilities out of 20 (so each capability has ~15,000
// agents) plus "common", which every agent has (the worst case: 100,000).
// Health thresholds are set to hours so that the figures measure steady
// state, not a wave of health changes caused by the benchmark's own pace.
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "services/registry/registry.h"
#include "services/registry/registry_service.h"

namespace cnet::registry {
namespace {
namespace pb = claudenet::v1;

struct Flags {
  int agents = 100'000;
  double seconds = 3;
  int threads = 2;
  int grpc_threads = 8;
  int grpc_register = 10'000;
  int queries = 2'000;
  bool grpc = true;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    std::string v = argv[i + 1];
    if (k == "--agents") (void)absl::SimpleAtoi(v, &f.agents);
    if (k == "--seconds") (void)absl::SimpleAtod(v, &f.seconds);
    if (k == "--threads") (void)absl::SimpleAtoi(v, &f.threads);
    if (k == "--grpc-threads") (void)absl::SimpleAtoi(v, &f.grpc_threads);
    if (k == "--grpc-register") (void)absl::SimpleAtoi(v, &f.grpc_register);
    if (k == "--queries") (void)absl::SimpleAtoi(v, &f.queries);
    if (k == "--grpc") f.grpc = v != "false" && v != "0";
  }
  return f;
}

// Resident set size of this process, MiB.
double RssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kb = 0;
      std::string digits;
      for (char c : line) {
        if (isdigit(static_cast<unsigned char>(c))) digits += c;
      }
      (void)absl::SimpleAtoi(digits, &kb);
      return kb / 1024.0;
    }
  }
  return 0;
}

struct Percentiles {
  double p50_us = 0, p99_us = 0, max_us = 0;
  // CPU time of the calling thread: what the call costs on a core of its
  // own, whatever else the machine is doing.
  double cpu_p50_us = 0, cpu_p99_us = 0;
};

double ThreadCpuMicros() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

Percentiles Summarize(std::vector<double> us) {
  Percentiles p;
  if (us.empty()) return p;
  std::sort(us.begin(), us.end());
  p.p50_us = us[us.size() / 2];
  p.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  p.max_us = us.back();
  return p;
}

void Print(const std::string& what, const Percentiles& p) {
  std::printf("  %-52s wall p50 %7.1f p99 %7.1f max %7.1f | cpu p50 %7.1f p99 %7.1f us\n",
              what.c_str(), p.p50_us, p.p99_us, p.max_us, p.cpu_p50_us, p.cpu_p99_us);
}

template <typename Fn>
Percentiles Measure(int n, Fn fn) {
  std::vector<double> us, cpu;
  us.reserve(n);
  cpu.reserve(n);
  for (int i = 0; i < n; ++i) {
    double c = ThreadCpuMicros();
    absl::Time t = absl::Now();
    fn(i);
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
    cpu.push_back(ThreadCpuMicros() - c);
  }
  Percentiles p = Summarize(us);
  Percentiles c = Summarize(cpu);
  p.cpu_p50_us = c.p50_us;
  p.cpu_p99_us = c.p99_us;
  return p;
}

// CPU seconds (user + system) of the whole process: client and server
// threads together in the gRPC phases.
double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = 0;
  in >> load;
  return load;
}

std::string Cap(int i) { return absl::StrCat("cap-", i); }

pb::RegisterRequest MakeAgent(std::mt19937& random, int i) {
  pb::RegisterRequest r;
  r.set_name(absl::StrCat("bench agent ", i));
  r.set_version("1.0.0");
  r.set_location("bench");
  r.add_capabilities("common");
  std::vector<int> picks;
  while (picks.size() < 3) {
    int c = static_cast<int>(random() % 20);
    if (std::find(picks.begin(), picks.end(), c) == picks.end()) picks.push_back(c);
  }
  for (int c : picks) r.add_capabilities(Cap(c));
  return r;
}

int Run(const Flags& flags) {
  std::string tmpl = "/tmp/registry_benchXXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  RegistryOptions options;
  options.local_node = "bench";
  options.healthy_max = absl::Hours(1);
  options.warning_max = absl::Hours(2);
  options.critical_max = absl::Hours(3);
  options.heartbeat_interval = absl::Seconds(15);
  options.max_agents = 10'000'000;
  auto store = RegistryStore::Open(dir + "/registry.db");
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  auto opened = Registry::Open(options, std::move(*store), RealClock::Default());
  if (!opened.ok()) return 1;
  std::unique_ptr<Registry> registry = std::move(*opened);
  std::mt19937 random(42);

  std::printf("registry_bench: %d agents, data in %s, %u cores, load average %.1f\n",
              flags.agents, dir.c_str(), std::thread::hardware_concurrency(), LoadAverage());
  double rss_before = RssMiB();
  std::vector<std::string> ids(flags.agents);
  std::vector<std::string> tokens(flags.agents);

  // 1. Registration, in process, each durable (committed) before returning.
  std::printf("\nin process (core + SQLite store, synchronous=NORMAL, WAL)\n");
  std::vector<double> reg_us;
  reg_us.reserve(flags.agents);
  double reg_cpu = ThreadCpuMicros();
  absl::Time start = absl::Now();
  for (int i = 0; i < flags.agents; ++i) {
    pb::RegisterRequest r = MakeAgent(random, i);
    absl::Time t = absl::Now();
    auto result = registry->Register(Actor(), r);
    reg_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
    if (!result.ok()) {
      std::fprintf(stderr, "register: %s\n", std::string(result.status().message()).c_str());
      return 1;
    }
    ids[i] = result->agent.id();
    tokens[i] = result->token;
  }
  absl::Duration reg_time = absl::Now() - start;
  reg_cpu = (ThreadCpuMicros() - reg_cpu) / 1e6;
  std::printf("  register %d agents: %.2f s (%.0f/s); %.2f s of CPU on the calling thread\n",
              flags.agents, absl::ToDoubleSeconds(reg_time),
              flags.agents / absl::ToDoubleSeconds(reg_time), reg_cpu);
  Percentiles one = Summarize(reg_us);
  std::printf("    one registration (durable before it returns): p50 %.1f us, p99 %.1f us, "
              "max %.1f us\n",
              one.p50_us, one.p99_us, one.max_us);
  double rss_after = RssMiB();
  std::printf("  RSS with %d agents: %.1f MiB (%.1f MiB before registering; includes the "
              "bench's own %d tokens and ids)\n",
              flags.agents, rss_after, rss_before, flags.agents);

  // 2. Heartbeats, in process, threads in parallel; the 1 s batch flush runs.
  {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> count{0};
    std::atomic<int64_t> cpu_us{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < flags.threads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 r(t);
        pb::HeartbeatRequest req;
        double c0 = ThreadCpuMicros();
        int64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          int i = static_cast<int>(r() % flags.agents);
          req.set_agent_id(ids[i]);
          req.mutable_metrics()->set_messages_sent(n);
          req.mutable_metrics()->set_load(0.25);
          (void)registry->Heartbeat(Actor::Agent(ids[i]), req);
          ++n;
        }
        count += n;
        cpu_us += static_cast<int64_t>(ThreadCpuMicros() - c0);
      });
    }
    absl::Time t0 = absl::Now();
    absl::SleepFor(absl::Seconds(flags.seconds));
    stop = true;
    for (auto& th : threads) th.join();
    double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    std::printf("  heartbeats: %.0f/s sustained (%d threads, %.1f s, batch flush every 1 s "
                "running); %.2f us of CPU each (%.0f/s per core)\n",
                count / secs, flags.threads, secs, cpu_us.load() / double(count),
                1e6 * count / double(cpu_us.load()));
    absl::Time f = absl::Now();
    (void)registry->Flush();
    std::printf("  final flush of pending heartbeat data: %.1f ms\n",
                absl::ToDoubleMilliseconds(absl::Now() - f));
  }

  // 3. Discovery, in process.
  const int q = flags.queries;
  auto find_one = [&](int i) {
    pb::FindAgentsRequest req;
    req.add_capabilities(Cap(i % 20));
    (void)registry->FindAgents(req);
  };
  Print("FindAgents(1 capability, ~15k agents), limit 10", Measure(q, find_one));
  Print("FindAgents(2 capabilities), limit 10", Measure(q, [&](int i) {
          pb::FindAgentsRequest req;
          req.add_capabilities(Cap(i % 20));
          req.add_capabilities(Cap((i + 7) % 20));
          (void)registry->FindAgents(req);
        }));
  Print("FindAgents(\"common\": all 100k agents), limit 10", Measure(q / 4, [&](int) {
          pb::FindAgentsRequest req;
          req.add_capabilities("common");
          (void)registry->FindAgents(req);
        }));
  Print("ListAgents(1 capability), page 100 + total_size", Measure(q, [&](int i) {
          pb::ListAgentsRequest req;
          req.add_capabilities_all(Cap(i % 20));
          (void)registry->ListAgents(req);
        }));
  Print("ListAgents(1 capability, status ONLINE), page 100", Measure(q, [&](int i) {
          pb::ListAgentsRequest req;
          req.add_capabilities_all(Cap(i % 20));
          req.add_statuses(pb::AGENT_STATUS_ONLINE);
          (void)registry->ListAgents(req);
        }));
  Print("ListAgents(\"common\": 100k), page 100", Measure(q / 4, [&](int) {
          pb::ListAgentsRequest req;
          req.add_capabilities_all("common");
          (void)registry->ListAgents(req);
        }));
  Print("GetAgent", Measure(q, [&](int i) { (void)registry->GetAgent(ids[(i * 7919) % flags.agents]); }));
  Print("GetNetworkStatus (all 100k)", Measure(20, [&](int) {
          (void)registry->GetNetworkStatus(pb::GetNetworkStatusRequest());
        }));

  std::printf("  one agent record in memory: %zu bytes (protobuf SpaceUsedLong of a view)\n",
              registry->GetAgent(ids[0])->SpaceUsedLong());
  if (!flags.grpc) {
    registry->Shutdown();
    std::string rm = "rm -rf " + dir;
    (void)system(rm.c_str());
    return 0;
  }
  // 4. Over gRPC: the adapter on a loopback port, with the auth interceptor.
  std::printf("\nover gRPC (loopback, same process, auth interceptor, %d client threads)\n",
              flags.grpc_threads);
  RegistryServiceImpl impl(registry.get());
  ServerOptions server_options;
  server_options.name = "registry";
  server_options.services = {&impl};
  server_options.interceptors.push_back(
      auth::MakeAuthInterceptorFactory(std::make_shared<auth::StaticAuthenticator>(
          "bench-admin", "bench-service",
          std::make_shared<RegistryTokenAuthenticator>(registry.get()))));
  auto server = GrpcServer::Start(std::move(server_options));
  if (!server.ok()) return 1;
  auto channel = MakeChannel((*server)->address());
  auto stub = pb::RegistryService::NewStub(channel);
  auto ctx_for = [](const std::string& credential) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auth::SetBearer(ctx.get(), credential);
    return ctx;
  };
  {
    // Registration over gRPC, concurrent clients.
    std::atomic<int> next{0};
    std::vector<std::thread> threads;
    absl::Time t0 = absl::Now();
    for (int t = 0; t < flags.grpc_threads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 r(100 + t);
        auto own = pb::RegistryService::NewStub(channel);
        for (int i = next++; i < flags.grpc_register; i = next++) {
          pb::RegisterRequest req = MakeAgent(r, flags.agents + i);
          pb::RegisterResponse resp;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          (void)own->Register(&ctx, req, &resp);
        }
      });
    }
    for (auto& th : threads) th.join();
    double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    std::printf("  register %d more agents: %.2f s (%.0f/s)\n", flags.grpc_register, secs,
                flags.grpc_register / secs);
  }
  {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> count{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < flags.grpc_threads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 r(t);
        auto own = pb::RegistryService::NewStub(channel);
        pb::HeartbeatRequest req;
        pb::HeartbeatResponse resp;
        int64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          int i = static_cast<int>(r() % flags.agents);
          req.mutable_metrics()->set_messages_sent(n);
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          auth::SetBearer(&ctx, tokens[i]);
          if (own->Heartbeat(&ctx, req, &resp).ok()) ++n;
        }
        count += n;
      });
    }
    double cpu0 = ProcessCpuSeconds();
    absl::Time t0 = absl::Now();
    absl::SleepFor(absl::Seconds(flags.seconds));
    stop = true;
    for (auto& th : threads) th.join();
    double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    double cpu = ProcessCpuSeconds() - cpu0;
    std::printf("  unary Heartbeat: %.0f/s sustained (%d client threads, %.1f s); %.1f us of "
                "CPU each, client and server together\n",
                count / secs, flags.grpc_threads, secs, 1e6 * cpu / count);
  }
  {
    // HeartbeatStream: one stream per agent, each waiting for its answer.
    const int streams = 4 * flags.grpc_threads;
    std::atomic<bool> stop{false};
    std::atomic<int64_t> count{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < streams; ++t) {
      threads.emplace_back([&, t] {
        grpc::ClientContext ctx;
        auth::SetBearer(&ctx, tokens[t]);
        auto stream = stub->HeartbeatStream(&ctx);
        pb::HeartbeatRequest req;
        pb::HeartbeatResponse resp;
        int64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          req.mutable_metrics()->set_messages_sent(n);
          if (!stream->Write(req) || !stream->Read(&resp)) break;
          ++n;
        }
        stream->WritesDone();
        (void)stream->Finish();
        count += n;
      });
    }
    double cpu0 = ProcessCpuSeconds();
    absl::Time t0 = absl::Now();
    absl::SleepFor(absl::Seconds(flags.seconds));
    stop = true;
    for (auto& th : threads) th.join();
    double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    double cpu = ProcessCpuSeconds() - cpu0;
    std::printf("  HeartbeatStream: %.0f/s sustained (%d streams, %.1f s); %.1f us of CPU each, "
                "client and server together\n",
                count / secs, streams, secs, 1e6 * cpu / count);
  }
  const std::string& credential = tokens[0];
  Print("FindAgents(1 capability, ~15k agents), limit 10", Measure(q, [&](int i) {
          pb::FindAgentsRequest req;
          req.add_capabilities(Cap(i % 20));
          pb::FindAgentsResponse resp;
          (void)stub->FindAgents(ctx_for(credential).get(), req, &resp);
        }));
  Print("FindAgents(\"common\": all agents), limit 10", Measure(q / 4, [&](int) {
          pb::FindAgentsRequest req;
          req.add_capabilities("common");
          pb::FindAgentsResponse resp;
          (void)stub->FindAgents(ctx_for(credential).get(), req, &resp);
        }));
  Print("ListAgents(1 capability), page 100", Measure(q, [&](int i) {
          pb::ListAgentsRequest req;
          req.add_capabilities_all(Cap(i % 20));
          pb::ListAgentsResponse resp;
          (void)stub->ListAgents(ctx_for(credential).get(), req, &resp);
        }));
  Print("ListAgents(1 capability), page 10", Measure(q, [&](int i) {
          pb::ListAgentsRequest req;
          req.add_capabilities_all(Cap(i % 20));
          req.set_page_size(10);
          pb::ListAgentsResponse resp;
          (void)stub->ListAgents(ctx_for(credential).get(), req, &resp);
        }));
  Print("GetAgent", Measure(q, [&](int i) {
          pb::GetAgentRequest req;
          req.set_agent_id(ids[(i * 7919) % flags.agents]);
          pb::GetAgentResponse resp;
          (void)stub->GetAgent(ctx_for(credential).get(), req, &resp);
        }));
  std::printf("  RSS at the end: %.1f MiB (%zu agents)\n", RssMiB(), registry->agent_count());
  registry->hub()->Close();
  (*server)->Shutdown(absl::Seconds(1));
  registry->Shutdown();
  std::string rm = "rm -rf " + dir;
  (void)system(rm.c_str());
  return 0;
}

}  // namespace
}  // namespace cnet::registry

int main(int argc, char** argv) {
  return cnet::registry::Run(cnet::registry::ParseFlags(argc, argv));
}
