// The CNET-MSG-V1 test vector of macs.proto / docs/macs.md, reproduced
// byte for byte, and the canonical JSON rules it relies on.
#include "services/macs-gateway/canonical.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "libs/crypto/crypto.h"

namespace cnet::macs {
namespace {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

pb::Message VectorMessage() {
  pb::Message m;
  m.set_id("msg-0001");
  m.set_sender("agent-alice");
  m.set_recipient("agent-bob");
  m.set_type(pb::MESSAGE_TYPE_DIRECT);
  m.set_subject("Build status");
  m.set_body("Tests pass on main \xE2\x9C\x93");
  auto& f = *m.mutable_payload()->mutable_fields();
  f["run"].set_number_value(42);
  f["ok"].set_bool_value(true);
  f["ratio"].set_number_value(0.25);
  auto* tags = f["tags"].mutable_list_value();
  tags->add_values()->set_string_value("ci");
  tags->add_values()->set_string_value("linux");
  f["note"].set_null_value(google::protobuf::NULL_VALUE);
  m.set_priority(pb::PRIORITY_HIGH);
  *m.mutable_created_at() = TimeUtil::SecondsToTimestamp(1735787045);  // 2025-01-02T03:04:05Z
  m.mutable_ttl()->set_seconds(3600);
  m.set_correlation_id("thread-7");
  m.set_origin_node("node-a");
  return m;
}

TEST(CanonicalTest, TestVectorBytesHashAndHmac) {
  absl::StatusOr<std::string> bytes = CanonicalBytes(VectorMessage());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes,
            "CNET-MSG-V1\n"
            "8:msg-0001\n"
            "11:agent-alice\n"
            "9:agent-bob\n"
            "1:1\n"
            "12:Build status\n"
            "22:Tests pass on main \xE2\x9C\x93\n"
            "67:{\"note\":null,\"ok\":true,\"ratio\":0.25,\"run\":42,\"tags\":[\"ci\",\"linux\"]}\n"
            "1:3\n"
            "20:2025-01-02T03:04:05Z\n"
            "4:3600\n"
            "8:thread-7\n"
            "0:\n"
            "6:node-a\n");
  EXPECT_EQ(bytes->size(), 225u);
  EXPECT_EQ(crypto::Sha256Hex(*bytes),
            "182d1ec9db5b66803c3b0c3a6412d9e6def1ff30c6d55940ad61bfb082f5d2b0");
  absl::StatusOr<std::string> sig =
      SignMessage(VectorMessage(), "test-shared-secret-0123456789abcdef");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(*sig, "6c8c3299ee8de574eb97185fbe337906ee051649c49e8c003d12d4feef831a43");
  EXPECT_TRUE(VerifyCanonical(*bytes, "test-shared-secret-0123456789abcdef", *sig));
  EXPECT_FALSE(VerifyCanonical(*bytes, "test-shared-secret-0123456789abcdeF", *sig));
}

TEST(CanonicalTest, TestVectorEd25519) {
  std::string seed;
  for (int i = 0; i < 32; ++i) seed.push_back(static_cast<char>(i));
  std::string pub = Ed25519PublicKey(seed);
  EXPECT_EQ(crypto::HexEncode(pub),
            "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
  EXPECT_EQ(crypto::Sha256Hex(pub).substr(0, 16), "56475aa75463474c");
  std::string bytes = *CanonicalBytes(VectorMessage());
  std::string sig = SignEd25519Hex(seed, bytes);
  EXPECT_EQ(sig,
            "0745e6c444a99a18a6fb16e5e9bca68920f56fa0906353ca994b4e7756c0"
            "91b185dcec252e0b2a20ea951f164d9a4d33f5eff6fa3d30f598ca23f820"
            "d8de4f0a");
  EXPECT_TRUE(VerifyEd25519Hex(pub, bytes, sig));
  EXPECT_FALSE(VerifyEd25519Hex(pub, bytes + "x", sig));
}

TEST(CanonicalTest, EveryFieldChangesTheBytes) {
  const std::string base = *CanonicalBytes(VectorMessage());
  std::vector<std::function<void(pb::Message*)>> edits = {
      [](pb::Message* m) { m->set_id("msg-0002"); },
      [](pb::Message* m) { m->set_sender("agent-alicf"); },
      [](pb::Message* m) { m->set_recipient("broadcast"); },
      [](pb::Message* m) { m->set_type(pb::MESSAGE_TYPE_QUERY); },
      [](pb::Message* m) { m->set_subject(""); },
      [](pb::Message* m) { m->set_body("x"); },
      [](pb::Message* m) { (*m->mutable_payload()->mutable_fields())["run"].set_number_value(43); },
      [](pb::Message* m) { m->set_priority(pb::PRIORITY_UNSPECIFIED); },
      [](pb::Message* m) { m->mutable_created_at()->set_seconds(1735787046); },
      [](pb::Message* m) { m->clear_ttl(); },
      [](pb::Message* m) { m->set_correlation_id(""); },
      [](pb::Message* m) { m->set_reply_to("msg-0000"); },
      [](pb::Message* m) { m->set_origin_node(""); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    pb::Message m = VectorMessage();
    edits[i](&m);
    EXPECT_NE(*CanonicalBytes(m), base) << "edit " << i;
  }
  // Unsigned fields do not take part: nanos, output-only fields, signatures.
  pb::Message m = VectorMessage();
  m.mutable_created_at()->set_nanos(999);
  m.set_signature("ab");
  m.set_ed25519_signature("cd");
  m.mutable_accepted_at()->set_seconds(5);
  EXPECT_EQ(*CanonicalBytes(m), base);
}

TEST(CanonicalTest, EmptyMessageHasThirteenFields) {
  pb::Message m;
  EXPECT_EQ(*CanonicalBytes(m), "CNET-MSG-V1\n0:\n0:\n0:\n1:0\n0:\n0:\n2:{}\n1:0\n0:\n1:0\n0:\n0:\n0:\n");
}

TEST(CanonicalTest, EcmaNumbers) {
  EXPECT_EQ(EcmaNumber(42.0), "42");
  EXPECT_EQ(EcmaNumber(-0.0), "0");
  EXPECT_EQ(EcmaNumber(0.25), "0.25");
  EXPECT_EQ(EcmaNumber(1e-7), "1e-7");
  EXPECT_EQ(EcmaNumber(1e21), "1e+21");
  EXPECT_EQ(EcmaNumber(1e20), "100000000000000000000");
  EXPECT_EQ(EcmaNumber(0.1), "0.1");
  EXPECT_EQ(EcmaNumber(0.000001), "0.000001");
  EXPECT_EQ(EcmaNumber(-1.5), "-1.5");
  EXPECT_EQ(EcmaNumber(123456789012345680000.0), "123456789012345680000");
  EXPECT_EQ(EcmaNumber(9007199254740993.0), "9007199254740992");
  EXPECT_EQ(EcmaNumber(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(EcmaNumber(5e-324), "5e-324");
  EXPECT_EQ(EcmaNumber(333333333.33333329), "333333333.3333333");
  EXPECT_EQ(EcmaNumber(-1e-7), "-1e-7");
}

TEST(CanonicalTest, JsonEscapingAndUtf16KeyOrder) {
  google::protobuf::Struct s;
  auto& f = *s.mutable_fields();
  f["b"].set_string_value("q\"b\\\b\t\n\f\r\x01\x1f/\xC3\xA9");
  f["\xEF\xBF\xBD"].set_number_value(1);      // U+FFFD
  f["\xF0\x9F\x98\x80"].set_number_value(2);  // U+1F600 (surrogates D83D DE00)
  f["a"].mutable_struct_value();
  f["c"].mutable_list_value();
  EXPECT_EQ(*CanonicalJson(s),
            "{\"a\":{},\"b\":\"q\\\"b\\\\\\b\\t\\n\\f\\r\\u0001\\u001f/\xC3\xA9\",\"c\":[],"
            "\"\xF0\x9F\x98\x80\":2,\"\xEF\xBF\xBD\":1}");
  google::protobuf::Struct empty;
  EXPECT_EQ(*CanonicalJson(empty), "{}");
}

TEST(CanonicalTest, NanAndInfinityAreRejectedWithThePath) {
  google::protobuf::Struct s;
  auto* list = (*s.mutable_fields())["a"].mutable_list_value();
  list->add_values()->set_number_value(1);
  list->add_values()->set_number_value(std::numeric_limits<double>::infinity());
  absl::StatusOr<std::string> json = CanonicalJson(s);
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(json.status().message()).find("payload.a[1]"), std::string::npos);
}

}  // namespace
}  // namespace cnet::macs
