// The helpers every new cnet command group relies on: the credentials
// lookup order, input sources, enum names.
#include "tools/cnet/common.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "proto/claudenet/v1/tasks.pb.h"

namespace cnet::cli {
namespace {
namespace fs = std::filesystem;
namespace pb = claudenet::v1;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = fs::path(std::getenv("TEST_TMPDIR")) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(home_);
    fs::create_directories(home_ / "project");
    fs::create_directories(home_ / ".claude-network/agents");
    setenv("HOME", home_.c_str(), 1);
    unsetenv("CNET_TOKEN");
    unsetenv("CNET_AGENT");
    g_.project_dir = (home_ / "project").string();
  }

  void Save(const std::string& id, const std::string& token) {
    std::ofstream(home_ / ".claude-network/agents" / (id + ".json"))
        << "{\"agent_id\":\"" << id << "\",\"token\":\"" << token << "\"}";
  }

  fs::path home_;
  Globals g_;
};

TEST_F(IdentityTest, NoneSavedSaysWhatToDo) {
  absl::StatusOr<Identity> who = ResolveIdentity(&g_);
  ASSERT_EQ(who.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(who.status().message()).find("cnet agent join"), std::string::npos);
}

TEST_F(IdentityTest, TheOnlySavedIdentityActs) {
  Save("agent-a", "tok-a");
  absl::StatusOr<Identity> who = ResolveIdentity(&g_);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->id, "agent-a");
  EXPECT_EQ(who->token, "tok-a");
}

TEST_F(IdentityTest, SeveralSavedNeedAChoice) {
  Save("agent-a", "tok-a");
  Save("agent-b", "tok-b");
  absl::StatusOr<Identity> who = ResolveIdentity(&g_);
  ASSERT_EQ(who.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(who.status().message()).find("--agent"), std::string::npos);
  g_.agent = "agent-b";
  who = ResolveIdentity(&g_);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->token, "tok-b");
  // A command's --as wins over --agent.
  who = ResolveIdentity(&g_, "agent-a");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->token, "tok-a");
}

TEST_F(IdentityTest, TokenWinsAndFindsItsAgent) {
  Save("agent-a", "tok-a");
  Save("agent-b", "tok-b");
  g_.token = "tok-b";
  absl::StatusOr<Identity> who = ResolveIdentity(&g_);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->id, "agent-b");  // the saved identity holding that token
  g_.token = "tok-unsaved";
  g_.agent = "agent-x";
  who = ResolveIdentity(&g_);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->id, "agent-x");
  EXPECT_EQ(who->token, "tok-unsaved");
}

TEST_F(IdentityTest, UnknownNamedIdentityIsUnauthenticated) {
  g_.agent = "agent-nobody";
  absl::StatusOr<Identity> who = ResolveIdentity(&g_);
  ASSERT_EQ(who.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(who.status().message()).find("agent-nobody"), std::string::npos);
}

TEST(InputTest, OneSourceOnly) {
  EXPECT_EQ(*ReadInput("text", "", "--body"), "text");
  EXPECT_EQ(*ReadInput("", "", "--body", "dflt"), "dflt");
  absl::StatusOr<std::string> both = ReadInput("text", "file", "--body");
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> missing = ReadInput("", "/nonexistent/x", "--body");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(missing.status().message()).find("--body"), std::string::npos);
  std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/in.txt";
  std::ofstream(path) << "from a file";
  EXPECT_EQ(*ReadInput("", path, "--body"), "from a file");
}

TEST(InputTest, PayloadMustBeAnObject) {
  google::protobuf::Struct s;
  EXPECT_TRUE(ParseStruct(R"({"a": [1, "x"], "b": {"c": true}})", "--payload", &s).ok());
  EXPECT_EQ(ProtoJsonValue(s)["b"]["c"], true);
  absl::Status bad = ParseStruct("[1]", "--payload", &s);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.message()).find("--payload"), std::string::npos);
  EXPECT_FALSE(ParseStruct("{not json", "--payload", &s).ok());
}

TEST(EnumTest, ShortNamesBothWays) {
  EXPECT_EQ(ShortName(pb::TASK_STATE_INPUT_REQUIRED, pb::TaskState_descriptor()),
            "INPUT_REQUIRED");
  EXPECT_EQ(ShortName(pb::TASK_STATE_UNSPECIFIED, pb::TaskState_descriptor()), "-");
  int v = 0;
  ASSERT_TRUE(ParseEnum("input-required", pb::TaskState_descriptor(), &v));
  EXPECT_EQ(v, pb::TASK_STATE_INPUT_REQUIRED);
  ASSERT_TRUE(ParseEnum("TASK_STATE_QUEUED", pb::TaskState_descriptor(), &v));
  EXPECT_EQ(v, pb::TASK_STATE_QUEUED);
  EXPECT_FALSE(ParseEnum("unspecified", pb::TaskState_descriptor(), &v));
  EXPECT_FALSE(ParseEnum("bogus", pb::TaskState_descriptor(), &v));
}

}  // namespace
}  // namespace cnet::cli
