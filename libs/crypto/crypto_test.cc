#include "libs/crypto/crypto.h"

#include <set>

#include "gtest/gtest.h"

namespace cnet::crypto {
namespace {

// RFC 4231 test case 2.
TEST(HmacTest, Rfc4231Vector) {
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacTest, VerifyAcceptsOnlyTheRightSignature) {
  std::string sig = HmacSha256Hex("secret", "payload");
  EXPECT_TRUE(VerifyHmacSha256Hex("secret", "payload", sig));
  std::string upper = sig;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  EXPECT_TRUE(VerifyHmacSha256Hex("secret", "payload", upper));
  EXPECT_FALSE(VerifyHmacSha256Hex("secret", "payload!", sig));
  EXPECT_FALSE(VerifyHmacSha256Hex("other", "payload", sig));
  EXPECT_FALSE(VerifyHmacSha256Hex("secret", "payload", sig.substr(2)));
  EXPECT_FALSE(VerifyHmacSha256Hex("secret", "payload", "zz" + sig.substr(2)));
  EXPECT_FALSE(VerifyHmacSha256Hex("secret", "payload", ""));
}

TEST(ShaTest, KnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(RandomTest, ProducesDistinctValuesOfTheRightSize) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string r = RandomBytes(32);
    EXPECT_EQ(r.size(), 32u);
    seen.insert(r);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(HexTest, RoundTripAndErrors) {
  std::string bytes("\x00\x7f\x80\xff", 4);
  EXPECT_EQ(HexEncode(bytes), "007f80ff");
  EXPECT_EQ(*HexDecode("007F80ff"), bytes);
  EXPECT_EQ(HexDecode("abc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HexDecode("zz").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cnet::crypto
