// The CNET-MSG-V1 test vector of proto/claudenet/v1/macs.proto.
#include "services/skills/message_signing.h"

#include "gtest/gtest.h"
#include "libs/crypto/crypto.h"
#include "services/skills/json_proto.h"

namespace cnet::skills {
namespace {

TEST(MessageSigningTest, MatchesTheProtocolTestVector) {
  claudenet::v1::Message m;
  m.set_id("msg-0001");
  m.set_sender("agent-alice");
  m.set_recipient("agent-bob");
  m.set_type(claudenet::v1::MESSAGE_TYPE_DIRECT);
  m.set_subject("Build status");
  m.set_body("Tests pass on main \xE2\x9C\x93");
  ToProtoStruct(Json::parse(R"({"run": 42, "ok": true, "ratio": 0.25, "tags": ["ci", "linux"],
                               "note": null})"),
                m.mutable_payload());
  m.set_priority(claudenet::v1::PRIORITY_HIGH);
  m.mutable_created_at()->set_seconds(1735787045);  // 2025-01-02T03:04:05Z
  m.mutable_ttl()->set_seconds(3600);
  m.set_correlation_id("thread-7");
  m.set_origin_node("node-a");
  std::string canonical = CanonicalMessage(m);
  EXPECT_EQ(canonical.size(), 225u);
  EXPECT_EQ(crypto::Sha256Hex(canonical),
            "182d1ec9db5b66803c3b0c3a6412d9e6def1ff30c6d55940ad61bfb082f5d2b0");
  EXPECT_EQ(SignMessage(m, "test-shared-secret-0123456789abcdef"),
            "6c8c3299ee8de574eb97185fbe337906ee051649c49e8c003d12d4feef831a43");
}

TEST(MessageSigningTest, NumbersAndStringsAsJcs) {
  EXPECT_EQ(EcmaNumber(42.0), "42");
  EXPECT_EQ(EcmaNumber(-0.0), "0");
  EXPECT_EQ(EcmaNumber(0.25), "0.25");
  EXPECT_EQ(EcmaNumber(1e-7), "1e-7");
  EXPECT_EQ(EcmaNumber(1e21), "1e+21");
  EXPECT_EQ(EcmaNumber(123456789012345680000.0), "123456789012345680000");
  EXPECT_EQ(EcmaNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(EcmaNumber(1.5e-6), "0.0000015");
  google::protobuf::Struct s;
  ToProtoStruct(Json::parse(R"({"b": "x\u0001\"y", "a": [1, 2.5]})"), &s);
  EXPECT_EQ(CanonicalJson(s), "{\"a\":[1,2.5],\"b\":\"x\\u0001\\\"y\"}");
}

}  // namespace
}  // namespace cnet::skills
