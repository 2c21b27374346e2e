// The real registry binary, killed with SIGKILL (no shutdown, no final
// flush) and started again on the same data directory: every acknowledged
// registration, token, status change and deregistration is back, health is
// as it was (the restart grace period keeps it), and the event log resumes.
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/auth.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "tests/testing/child_process.h"

namespace {
namespace pb = claudenet::v1;

constexpr char kAdmin[] = "restart-test-admin";
constexpr char kService[] = "restart-test-service";

using cnet::testing::FreePort;

class RegistryProcess {
 public:
  RegistryProcess(const std::string& root, const std::string& data_dir) {
    std::string binary =
        std::string(getenv("TEST_SRCDIR")) + "/claudenet/services/registry/registry";
    address_ = absl::StrCat("127.0.0.1:", FreePort());
    std::vector<std::string> args = {binary,       "--listen",   address_,
                                     "--data-dir", data_dir,     "--project-dir",
                                     root,         "--log-file", root + "/registry.log"};
    std::vector<std::string> env = {
        "HOME=" + root,
        "PATH=/usr/bin:/bin",
        "CNET_NETWORK__NODE_ID=restart-node",
        // Parallel tests must not fight over the fixed metrics port.
        "CNET_SERVICES__METRICS_ENABLED=false",
        std::string("CNET_SECURITY__ADMIN_TOKEN=") + kAdmin,
        std::string("CNET_SECURITY__SERVICE_CREDENTIAL=") + kService,
    };
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv, envp;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      for (auto& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      execve(binary.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    channel_ = cnet::MakeChannel(address_);
    stub_ = pb::RegistryService::NewStub(channel_);
  }

  ~RegistryProcess() {
    if (pid_ > 0) Kill();
  }

  void Kill() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& credential) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ctx->set_wait_for_ready(true);  // waits for the process to listen
    if (!credential.empty()) cnet::auth::SetBearer(ctx.get(), credential);
    return ctx;
  }

  pb::RegistryService::Stub* stub() { return stub_.get(); }

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::RegistryService::Stub> stub_;
};

TEST(RegistryRestartTest, KillNineAndRestartKeepsEverythingAcknowledged) {
  std::string tmpl = std::string(::testing::TempDir()) + "/restartXXXXXX";
  std::string root = mkdtemp(tmpl.data());
  std::string data_dir = root + "/data";

  std::map<std::string, std::string> tokens;  // id -> token
  std::map<std::string, std::string> capability;  // id -> its one capability
  std::string rotated_id, old_token, gone_id;
  int64_t sequence = 0;
  {
    RegistryProcess registry(root, data_dir);
    for (int i = 0; i < 50; ++i) {
      pb::RegisterRequest req;
      req.set_name(absl::StrCat("agent ", i));
      req.add_capabilities(i % 2 == 0 ? "python" : "go");
      pb::RegisterResponse resp;
      grpc::Status s = registry.stub()->Register(registry.Ctx("").get(), req, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
      tokens[resp.agent().id()] = resp.token();
      capability[resp.agent().id()] = req.capabilities(0);
    }
    auto it = tokens.begin();
    // A status change (durable before the reply).
    pb::HeartbeatRequest busy;
    busy.set_status(pb::AGENT_STATUS_BUSY);
    busy.set_status_message("compiling");
    pb::HeartbeatResponse beat;
    ASSERT_TRUE(registry.stub()->Heartbeat(registry.Ctx(it->second).get(), busy, &beat).ok());
    // A rotation.
    ++it;
    rotated_id = it->first;
    old_token = it->second;
    pb::RotateTokenResponse rotated;
    ASSERT_TRUE(registry.stub()
                    ->RotateToken(registry.Ctx(old_token).get(), pb::RotateTokenRequest(),
                                  &rotated)
                    .ok());
    it->second = rotated.token();
    // A deregistration.
    ++it;
    gone_id = it->first;
    pb::DeregisterResponse left;
    ASSERT_TRUE(registry.stub()
                    ->Deregister(registry.Ctx(it->second).get(), pb::DeregisterRequest(), &left)
                    .ok());
    tokens.erase(it);
    pb::GetNetworkStatusResponse status;
    ASSERT_TRUE(registry.stub()
                    ->GetNetworkStatus(registry.Ctx(kAdmin).get(),
                                       pb::GetNetworkStatusRequest(), &status)
                    .ok());
    sequence = status.current_sequence();
    EXPECT_EQ(sequence, 50 + 1 + 1 + 1);
    registry.Kill();  // SIGKILL: no shutdown hook, no final flush
  }

  int python_agents = 0;
  for (const auto& [id, token] : tokens) python_agents += capability[id] == "python";
  RegistryProcess registry(root, data_dir);
  pb::GetNetworkStatusResponse status;
  ASSERT_TRUE(registry.stub()
                  ->GetNetworkStatus(registry.Ctx(kAdmin).get(), pb::GetNetworkStatusRequest(),
                                     &status)
                  .ok());
  EXPECT_EQ(status.total_agents(), 49);
  EXPECT_EQ(status.current_sequence(), sequence);
  EXPECT_EQ(status.local_node(), "restart-node");
  // The restart grace period is announced and nobody was declared DEAD.
  ASSERT_TRUE(status.has_grace_until());
  EXPECT_GT(status.grace_until().seconds(), status.server_time().seconds());
  ASSERT_EQ(status.by_health_size(), 1);
  EXPECT_EQ(status.by_health(0).health(), pb::HEALTH_HEALTHY);
  EXPECT_EQ(status.by_health(0).count(), 49);

  // Every token works again; the rotated-away and the deregistered ones do not.
  for (const auto& [id, token] : tokens) {
    pb::HeartbeatRequest req;
    pb::HeartbeatResponse resp;
    grpc::Status s = registry.stub()->Heartbeat(registry.Ctx(token).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << id << ": " << s.error_message();
    EXPECT_EQ(resp.health(), pb::HEALTH_HEALTHY);
  }
  pb::ValidateTokenRequest validate;
  pb::ValidateTokenResponse valid;
  validate.set_token(old_token);
  ASSERT_TRUE(
      registry.stub()->ValidateToken(registry.Ctx(kService).get(), validate, &valid).ok());
  EXPECT_FALSE(valid.valid());
  EXPECT_EQ(valid.invalid_reason(), pb::TOKEN_INVALID_REASON_ROTATED);
  pb::GetAgentRequest get;
  get.set_agent_id(gone_id);
  pb::GetAgentResponse got;
  EXPECT_EQ(registry.stub()->GetAgent(registry.Ctx(kAdmin).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // The status change survived.
  get.set_agent_id(tokens.begin()->first);
  ASSERT_TRUE(registry.stub()->GetAgent(registry.Ctx(kAdmin).get(), get, &got).ok());
  EXPECT_EQ(got.agent().status(), pb::AGENT_STATUS_BUSY);
  EXPECT_EQ(got.agent().status_message(), "compiling");
  // Capabilities are indexed again.
  pb::ListAgentsRequest list;
  list.add_capabilities_all("python");
  pb::ListAgentsResponse listed;
  ASSERT_TRUE(registry.stub()->ListAgents(registry.Ctx(kAdmin).get(), list, &listed).ok());
  EXPECT_EQ(listed.total_size(), python_agents);
  // The event log resumes where a watcher left off.
  pb::WatchAgentsRequest watch;
  watch.set_from_sequence(sequence - 1);
  auto ctx = registry.Ctx(kService);
  auto reader = registry.stub()->Watch(ctx.get(), watch);
  pb::AgentEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.sequence(), sequence);
  EXPECT_EQ(ev.type(), pb::AGENT_EVENT_TYPE_DEREGISTERED);
  EXPECT_EQ(ev.agent().id(), gone_id);
  ctx->TryCancel();
  reader->Finish();
}

}  // namespace
