// Every shipped skill, run by the real skills binary against the real
// registry, macs-gateway and tasks binaries (each on port 0, one private
// data directory, messages signed with a shared secret). Agents register
// through the registry and call with their own tokens; the skills service
// acts for them with its service credential and on-behalf-of.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/files/file_watcher.h"
#include "libs/server/server.h"
#include "proto/claudenet/v1/registry.grpc.pb.h"
#include "proto/claudenet/v1/skills.grpc.pb.h"
#include "proto/claudenet/v1/tasks.grpc.pb.h"

namespace cnet {
namespace {
namespace pb = claudenet::v1;

std::string Runfile(const std::string& path) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/" + std::getenv("TEST_WORKSPACE") + "/" +
         path;
}

// The four services as child processes.
class Suite {
 public:
  Suite() {
    std::string tmpl = std::string(::testing::TempDir()) + "/e2eXXXXXX";
    root_ = mkdtemp(tmpl.data());
    std::filesystem::create_directories(root_ + "/project");
    env_ = {
        {"HOME", root_},
        {"PATH", "/usr/bin:/bin"},
        {"CNET_SERVICES__DATA_DIR", root_ + "/data"},
        {"CNET_SERVICES__LOG_DIR", root_ + "/logs"},
        {"CNET_SECURITY__SHARED_SECRET", "e2e-shared-secret-0123456789"},
        {"CNET_SECURITY__SERVICE_CREDENTIAL", "svc-e2e"},
        {"CNET_SECURITY__ADMIN_TOKEN", "admin-e2e"},
        {"CNET_NETWORK__NODE_ID", "node-e2e"},
        // Parallel tests must not fight over the fixed metrics ports.
        {"CNET_SERVICES__METRICS_ENABLED", "false"},
        // The test's worker claims the delegated task itself.
        {"CNET_TASKS__PUSH_ASSIGNMENT", "false"},
        {"CNET_SKILLS__LIBRARY_DIR", Runfile("skills")},
    };
  }

  ~Suite() {
    for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) ::kill(it->second, SIGTERM);
    for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) {
      int status = 0;
      ::waitpid(it->second, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  const std::string& root() const { return root_; }

  // Runs `args` (argv[0] a runfile path) with the suite's environment and
  // returns (exit code, stdout).
  std::pair<int, std::string> RunTool(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env_) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
  }

  // Starts `binary` (under services/) and returns its address.
  std::string Start(const std::string& name, const std::string& binary,
                    const std::string& address_key) {
    std::string port_file = root_ + "/" + name + ".port";
    std::vector<std::string> args = {Runfile("services/" + binary + "/" + binary),
                                     "--listen",      "127.0.0.1:0",
                                     "--port-file",   port_file,
                                     "--project-dir", root_ + "/project",
                                     "--log-file",    root_ + "/" + name + ".log"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env_) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    // Wait for the port file on an inotify event, not by polling.
    absl::Mutex mu;
    bool written = false;
    auto watcher = FileWatcher::Start({port_file}, [&](const std::string&) {
      absl::MutexLock lock(&mu);
      written = true;
    });
    EXPECT_TRUE(watcher.ok());
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data()), 0) << name;
    pids_.emplace_back(name, pid);
    {
      absl::MutexLock lock(&mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return written || std::filesystem::exists(port_file);
      };
      EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(60)))
          << name << " did not start; see " << root_ << "/" << name << ".log";
    }
    std::ifstream in(port_file);
    std::string port;
    std::getline(in, port);
    std::string address = "127.0.0.1:" + port;
    env_["CNET_" + Upper(address_key)] = address;
    return address;
  }

 private:
  static std::string Upper(const std::string& key) {
    std::string out;
    for (char c : key) out += c == '.' ? std::string("__") : std::string(1, std::toupper(c));
    return out;
  }

  std::string root_;
  std::map<std::string, std::string> env_;
  std::vector<std::pair<std::string, pid_t>> pids_;
};

class SkillsEndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_ = new Suite();
    std::string registry = suite_->Start("registry", "registry", "services.registry_addr");
    suite_->Start("macs", "macs-gateway", "services.macs_addr");
    std::string tasks = suite_->Start("tasks", "tasks", "services.tasks_addr");
    std::string skills = suite_->Start("skills", "skills", "services.skills_addr");
    registry_ = pb::RegistryService::NewStub(MakeChannel(registry)).release();
    tasks_ = pb::TaskService::NewStub(MakeChannel(tasks)).release();
    skills_ = pb::SkillService::NewStub(MakeChannel(skills)).release();
    for (const auto& [agent, caps] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"alice", {"python"}},
             {"bob", {"review"}},
             {"carol", {"review", "python"}},
             {"dave", {}},
             {"wendy", {"bench-e2e"}}}) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      pb::RegisterRequest req;
      req.set_agent_id(agent);
      req.set_name(agent);
      for (const auto& c : caps) req.add_capabilities(c);
      pb::RegisterResponse resp;
      grpc::Status s = registry_->Register(&ctx, req, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
      (*tokens_)[agent] = resp.token();
    }
  }

  static void TearDownTestSuite() {
    delete skills_;
    delete tasks_;
    delete registry_;
    delete suite_;
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& agent) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx->AddMetadata("authorization", "Bearer " + (*tokens_)[agent]);
    return ctx;
  }

  // Runs `skill` SYNC as `agent` with inputs given as JSON; expects success.
  static pb::SkillRun Run(const std::string& agent, const std::string& skill,
                          const std::string& inputs_json = "{}") {
    pb::RunSkillRequest req;
    req.set_name(skill);
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(inputs_json, req.mutable_inputs()).ok());
    pb::RunSkillResponse resp;
    grpc::Status s = skills_->RunSkill(Ctx(agent).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << skill << ": " << s.error_message();
    EXPECT_EQ(resp.run().state(), pb::RUN_STATE_SUCCEEDED)
        << skill << ": " << resp.run().error().code() << " " << resp.run().error().message()
        << " at " << resp.run().error().step_path();
    return resp.run();
  }

  static double Num(const pb::SkillRun& run, const std::string& output) {
    return run.outputs().fields().at(output).number_value();
  }
  static std::string Str(const pb::SkillRun& run, const std::string& output) {
    return run.outputs().fields().at(output).string_value();
  }

  static Suite* suite_;
  static pb::RegistryService::Stub* registry_;
  static pb::TaskService::Stub* tasks_;
  static pb::SkillService::Stub* skills_;
  static std::map<std::string, std::string>* tokens_;
};

Suite* SkillsEndToEndTest::suite_ = nullptr;
pb::RegistryService::Stub* SkillsEndToEndTest::registry_ = nullptr;
pb::TaskService::Stub* SkillsEndToEndTest::tasks_ = nullptr;
pb::SkillService::Stub* SkillsEndToEndTest::skills_ = nullptr;
std::map<std::string, std::string>* SkillsEndToEndTest::tokens_ =
    new std::map<std::string, std::string>();

TEST_F(SkillsEndToEndTest, TheLibraryLoadsWithoutInvalidFiles) {
  pb::ListSkillsRequest req;
  req.set_include_invalid(true);
  pb::ListSkillsResponse resp;
  ASSERT_TRUE(skills_->ListSkills(Ctx("alice").get(), req, &resp).ok());
  EXPECT_EQ(resp.invalid_files(), 0);
  EXPECT_GE(resp.total_size(), 13);
}

TEST_F(SkillsEndToEndTest, MessagingSkills) {
  pb::SkillRun sent = Run("alice", "send_message",
                          R"({"to": "bob", "subject": "e2e", "body": "signed and delivered"})");
  EXPECT_EQ(Num(sent, "recipient_count"), 1);
  pb::SkillRun all = Run("alice", "broadcast", R"({"subject": "hello all"})");
  EXPECT_EQ(Num(all, "recipient_count"), 4);
  pb::SkillRun got = Run("bob", "receive_message", R"({"limit": 50})");
  ASSERT_GE(Num(got, "count"), 2);
  EXPECT_EQ(Num(got, "acknowledged"), Num(got, "count"));
  bool found = false;
  for (const auto& m : got.outputs().fields().at("messages").list_value().values()) {
    const auto& f = m.struct_value().fields();
    if (f.at("body").string_value() == "signed and delivered") {
      found = true;
      EXPECT_EQ(f.at("sender").string_value(), "alice");
    }
  }
  EXPECT_TRUE(found);
  pb::SkillRun again = Run("bob", "receive_message");
  EXPECT_EQ(Num(again, "count"), 0);
}

TEST_F(SkillsEndToEndTest, ObservationSkills) {
  pb::SkillRun health = Run("alice", "system_health");
  EXPECT_FALSE(Str(health, "status").empty());
  EXPECT_GE(Num(health, "cpu_count"), 1);
  pb::SkillRun network = Run("alice", "network_status");
  EXPECT_GE(Num(network, "total_agents"), 5);
  pb::SkillRun scan = Run("carol", "basic_scan");
  EXPECT_GE(Num(scan, "agents"), 5);
  pb::SkillRun ping = Run("carol", "ping", R"({"message": "hi"})");
  EXPECT_EQ(Str(ping, "echo"), "hi");
  EXPECT_EQ(Str(ping, "agent"), "carol");
}

TEST_F(SkillsEndToEndTest, DataSkills) {
  pb::SkillRun put = Run("alice", "data_store", R"({"key": "e2e/k", "value": {"n": 7}})");
  EXPECT_TRUE(put.outputs().fields().at("created").bool_value());
  pb::SkillRun get = Run("alice", "data_retrieve", R"({"key": "e2e/k"})");
  EXPECT_EQ(get.outputs().fields().at("value").struct_value().fields().at("n").number_value(), 7);
  pb::SkillRun del = Run("alice", "data_delete", R"({"key": "e2e/k"})");
  EXPECT_TRUE(del.outputs().fields().at("deleted").bool_value());
}

TEST_F(SkillsEndToEndTest, OnboardingAndReview) {
  pb::SkillRun joined = Run("dave", "network_onboarding",
                            R"({"name": "Dave", "capabilities": ["rust", "review"]})");
  EXPECT_EQ(Str(joined, "agent_id"), "dave");
  EXPECT_EQ(Str(joined, "health"), "HEALTHY");
  EXPECT_EQ(Num(joined, "announced_to"), 4);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  pb::GetAgentRequest get;
  get.set_agent_id("dave");
  pb::GetAgentResponse agent;
  ctx.AddMetadata("authorization", "Bearer " + (*tokens_)["dave"]);
  ASSERT_TRUE(registry_->GetAgent(&ctx, get, &agent).ok());
  EXPECT_EQ(agent.agent().name(), "Dave");
  ASSERT_EQ(agent.agent().capabilities_size(), 2);

  pb::SkillRun review = Run("alice", "request_review", R"({"title": "Review PR 42"})");
  EXPECT_GE(Num(review, "reviewers_available"), 2);
  EXPECT_EQ(Num(review, "notified"), Num(review, "reviewers_available"));
  EXPECT_FALSE(Str(review, "task_id").empty());
}

TEST_F(SkillsEndToEndTest, DelegateWaitsForARealWorker) {
  pb::RunSkillRequest req;
  req.set_name("delegate_and_announce");
  req.set_mode(pb::RUN_MODE_ASYNC);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"title": "e2e delegated work", "capabilities": ["bench-e2e"],
                      "poll_interval": "100ms"})",
                  req.mutable_inputs())
                  .ok());
  pb::RunSkillResponse started;
  ASSERT_TRUE(skills_->RunSkill(Ctx("alice").get(), req, &started).ok());

  // The worker long-polls for the task, starts and completes it.
  pb::ClaimRequest claim;
  claim.set_agent_id("wendy");
  claim.mutable_wait()->set_seconds(30);
  pb::ClaimResponse claimed;
  grpc::Status s = tasks_->Claim(Ctx("wendy").get(), claim, &claimed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(claimed.has_task());
  EXPECT_EQ(claimed.task().title(), "e2e delegated work");
  pb::StartRequest start;
  start.set_task_id(claimed.task().id());
  start.set_lease_id(claimed.lease().lease_id());
  start.set_lease_epoch(claimed.lease().epoch());
  pb::StartResponse running;
  ASSERT_TRUE(tasks_->Start(Ctx("wendy").get(), start, &running).ok());
  pb::CompleteRequest complete;
  complete.set_task_id(claimed.task().id());
  complete.set_lease_id(running.lease().lease_id());
  complete.set_lease_epoch(running.lease().epoch());
  complete.mutable_result()->set_summary("done by wendy");
  pb::CompleteResponse completed;
  s = tasks_->Complete(Ctx("wendy").get(), complete, &completed);
  ASSERT_TRUE(s.ok()) << s.error_message();

  // Follow the run to its end.
  pb::WatchRunRequest watch;
  watch.set_run_id(started.run().run_id());
  auto ctx = Ctx("alice");
  auto reader = skills_->WatchRun(ctx.get(), watch);
  pb::RunEvent event, last;
  while (reader->Read(&event)) last = event;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last.type(), pb::RUN_EVENT_TYPE_RUN_FINISHED);
  ASSERT_EQ(last.run_state(), pb::RUN_STATE_SUCCEEDED) << last.error().message();
  pb::GetRunRequest get;
  get.set_run_id(started.run().run_id());
  pb::GetRunResponse run;
  ASSERT_TRUE(skills_->GetRun(Ctx("alice").get(), get, &run).ok());
  EXPECT_EQ(Str(run.run(), "state"), "COMPLETED");
  EXPECT_EQ(Str(run.run(), "summary"), "done by wendy");
  EXPECT_EQ(Num(run.run(), "announced_to"), 4);
}

TEST_F(SkillsEndToEndTest, CnetSkillCommands) {
  std::string file = suite_->root() + "/mine.yaml";
  std::ofstream(file) << "name: mine\nversion: 1.0.0\ndescription: d\nsteps:\n  - id: s\n"
                         "    action: lgo\n";
  std::string cnet = Runfile("tools/cnet/cnet");
  auto [code, out] =
      suite_->RunTool({cnet, "--token", (*tokens_)["alice"], "skill", "validate", file});
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find(file + ":6:13: unknown action \"lgo\" (did you mean \"log\"?)"),
            std::string::npos)
      << out;
  auto [run_code, run_out] = suite_->RunTool(
      {cnet, "--token", (*tokens_)["alice"], "skill", "run", "ping", "-i", "message=from cli"});
  EXPECT_EQ(run_code, 0) << run_out;
  EXPECT_NE(run_out.find("SUCCEEDED"), std::string::npos) << run_out;
  EXPECT_NE(run_out.find("\"echo\":\"from cli\""), std::string::npos) << run_out;
  auto [list_code, list_out] =
      suite_->RunTool({cnet, "--token", (*tokens_)["alice"], "skill", "list", "--category", "meta"});
  EXPECT_EQ(list_code, 0);
  EXPECT_NE(list_out.find("delegate_and_announce"), std::string::npos) << list_out;
}

}  // namespace
}  // namespace cnet
