#include "libs/auth/auth.h"

#include <sys/stat.h>

#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace cnet::auth {
namespace {

class FakeAgents final : public Authenticator {
 public:
  absl::StatusOr<Principal> Authenticate(std::string_view credential) override {
    if (credential == "agent-token") return Principal{Kind::kAgent, "a-1", ""};
    return absl::UnauthenticatedError("authorization: unknown agent token");
  }
};

TEST(StaticAuthenticatorTest, RecognisesAdminServiceAndDelegatesTheRest) {
  StaticAuthenticator auth("adm", "svc-secret", std::make_shared<FakeAgents>());
  EXPECT_EQ(auth.Authenticate("adm")->kind, Kind::kAdmin);
  EXPECT_EQ(auth.Authenticate("svc-secret")->kind, Kind::kService);
  auto agent = auth.Authenticate("agent-token");
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->kind, Kind::kAgent);
  EXPECT_EQ(agent->acting_agent(), "a-1");
  EXPECT_EQ(auth.Authenticate("nope").status().code(), absl::StatusCode::kUnauthenticated);
  StaticAuthenticator alone("adm", "");
  EXPECT_EQ(alone.Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(alone.Authenticate("svc-secret").status().code(),
            absl::StatusCode::kUnauthenticated);
}

std::string TempDir() {
  std::string tmpl = std::string(::testing::TempDir()) + "/authXXXXXX";
  return mkdtemp(tmpl.data());
}

TEST(SecretFileTest, CreatedOnceWithMode0600AndReadBack) {
  std::string dir = TempDir();
  auto first = AdminToken("", dir);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 64u);
  struct stat st;
  ASSERT_EQ(stat((dir + "/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(*AdminToken("", dir), *first);
  EXPECT_EQ(*AdminToken("configured", dir), "configured");
  EXPECT_NE(*ServiceCredential("", dir), *first);
}

TEST(SecretFileTest, ConcurrentCreatorsAgreeOnOneSecret) {
  std::string dir = TempDir();
  std::vector<std::string> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { got[i] = *LoadOrCreateSecret(dir + "/s.token"); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), 1u);
}

TEST(SecretFileTest, UnwritableDirectoryIsAClearError) {
  auto s = LoadOrCreateSecret("/proc/no/such/dir/x.token");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("/proc/no/such/dir"), std::string::npos);
}

}  // namespace
}  // namespace cnet::auth
