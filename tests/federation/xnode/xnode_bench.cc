// Figures for agents and tasks across nodes, two complete nodes in one
// process over the Firebase fake (HTTP + SSE on 127.0.0.1, through
// libs/firebase) and over the in-memory store:
//   - presence propagation: Register on A -> the agent appears in B's
//     registry (REGISTERED event of B's Watch);
//   - remote claim round trip: Claim through B's RemoteTaskService of a task
//     owned by A (B -> /task_ops/A -> A's gateway -> A's tasks service ->
//     /task_results/B -> B), and the same for Complete.
// Run: bazel run -c opt //tests/federation/xnode:xnode_bench -- [--n=200]
#include <algorithm>
#include <iostream>
#include <map>

#include "absl/strings/str_format.h"
#include "services/macs-gateway/xnode/firebase_kv_store.h"
#include "services/macs-gateway/xnode/memory_kv_store.h"
#include "tests/fakes/firebase_fake.h"
#include "tests/federation/xnode/two_node_harness.h"

namespace cnet::xnode_test {
namespace {
namespace pb = ::claudenet::v1;

std::string Summary(std::vector<double> ms) {
  if (ms.empty()) return "no samples";
  std::sort(ms.begin(), ms.end());
  auto q = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  return absl::StrFormat("n=%d p50=%.2f ms p90=%.2f ms p99=%.2f ms max=%.2f ms", ms.size(),
                         q(0.5), q(0.9), q(0.99), ms.back());
}

int Run(const std::string& kind, int n) {
  fakes::FirebaseFake fake;
  std::unique_ptr<firebase::FirebaseClient> client;
  std::unique_ptr<federation::KvStore> kv;
  if (kind == "firebase-fake") {
    if (!fake.Start().ok()) return 1;
    firebase::FirebaseOptions fo;
    fo.database_url = fake.url();
    firebase::StreamOptions so;
    so.firebase = fo;
    client = std::make_unique<firebase::FirebaseClient>(fo);
    kv = std::make_unique<federation::FirebaseKvStore>(client.get(), so);
  } else {
    kv = std::make_unique<federation::MemoryKvStore>();
  }
  SimulatedClock ca(absl::Now()), cb(absl::Now());
  TestNode a("node-a", TempDir("bench-a"), kv.get(), &ca);
  TestNode b("node-b", TempDir("bench-b"), kv.get(), &cb);
  if (!a.Start().ok() || !b.Start().ok()) return 1;

  // --- presence A -> B
  absl::Mutex mu;
  std::map<std::string, absl::Time> seen;
  pb::WatchAgentsRequest wr;
  wr.add_nodes("node-a");
  auto watch = b.registry().Watch(wr, [&](const pb::AgentEvent& ev) {
    if (ev.type() != pb::AGENT_EVENT_TYPE_REGISTERED) return;
    absl::MutexLock lock(&mu);
    seen.emplace(ev.agent().id(), absl::Now());
  });
  watch->WaitForSequence(0, absl::Seconds(5));
  std::vector<double> presence;
  for (int i = 0; i < n; ++i) {
    std::string id = absl::StrFormat("a-agent-%04d", i);
    absl::Time t0 = absl::Now();
    if (!a.Register(id, {"py"}).ok()) return 1;
    absl::MutexLock lock(&mu);
    auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return seen.count(id) > 0; };
    if (!mu.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(30))) {
      std::cerr << "presence of " << id << " never arrived\n";
      return 1;
    }
    presence.push_back(absl::ToDoubleMilliseconds(seen[id] - t0));
  }
  watch->Stop();

  // --- remote claim / complete round trips B -> A
  auto token = b.Register("b-worker", {"rust"});
  if (!token.ok()) return 1;
  ChangeWaiter waiter(kv.get());
  if (!waiter.Until([&] {
        auto info = a.directory().GetAgent("b-worker");
        return info.ok() && info->Available();
      })) {
    return 1;
  }
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    pb::CreateTaskRequest req;
    req.set_title(absl::StrFormat("job %d", i));
    req.add_required_capabilities("rust");
    pb::CreateTaskResponse resp;
    grpc::ClientContext ctx;
    auth::SetBearer(&ctx, kAdmin);
    if (!a.tasks().CreateTask(&ctx, req, &resp).ok()) return 1;
    ids.push_back(resp.task().id());
  }
  if (!waiter.Until([&] { return b.remote().List().size() >= ids.size(); },
                    absl::Seconds(60))) {
    std::cerr << "tasks never visible on B\n";
    return 1;
  }
  std::vector<double> claim, complete;
  for (const std::string& id : ids) {
    pb::ClaimRequest req;
    req.set_task_id(id);
    pb::ClaimResponse resp;
    absl::Time t0 = absl::Now();
    {
      grpc::ClientContext ctx;
      auth::SetBearer(&ctx, *token);
      grpc::Status st = b.remote_tasks().Claim(&ctx, req, &resp);
      if (!st.ok()) {
        std::cerr << "claim " << id << ": " << st.error_message() << "\n";
        return 1;
      }
    }
    claim.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    {
      pb::StartRequest sreq;
      sreq.set_task_id(id);
      sreq.set_lease_id(resp.lease().lease_id());
      sreq.set_lease_epoch(resp.lease().epoch());
      pb::StartResponse sresp;
      grpc::ClientContext ctx;
      auth::SetBearer(&ctx, *token);
      grpc::Status st = b.remote_tasks().Start(&ctx, sreq, &sresp);
      if (!st.ok()) {
        std::cerr << "start " << id << ": " << st.error_message() << "\n";
        return 1;
      }
    }
    pb::CompleteRequest creq;
    creq.set_task_id(id);
    creq.set_lease_id(resp.lease().lease_id());
    creq.set_lease_epoch(resp.lease().epoch());
    creq.mutable_result()->set_stop_reason(pb::STOP_REASON_DONE);
    pb::CompleteResponse cresp;
    t0 = absl::Now();
    grpc::ClientContext ctx;
    auth::SetBearer(&ctx, *token);
    grpc::Status st = b.remote_tasks().Complete(&ctx, creq, &cresp);
    if (!st.ok()) {
      std::cerr << "complete " << id << ": " << st.error_message() << "\n";
      return 1;
    }
    complete.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  std::cout << "[" << kind << "] presence propagation A->B (Register -> REGISTERED on B): "
            << Summary(presence) << "\n";
  std::cout << "[" << kind << "] remote Claim round trip B->A->B: " << Summary(claim) << "\n";
  std::cout << "[" << kind << "] remote Complete round trip B->A->B: " << Summary(complete)
            << "\n";
  b.Stop();
  a.Stop();
  return 0;
}

}  // namespace
}  // namespace cnet::xnode_test

int main(int argc, char** argv) {
  int n = 100;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--n=", 0) == 0) n = std::max(1, std::stoi(arg.substr(4)));
  }
  int rc = cnet::xnode_test::Run("firebase-fake", n);
  if (rc == 0) rc = cnet::xnode_test::Run("memory", n);
  return rc;
}
