#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "services/macs-gateway/canonical.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/targets.h"

namespace cnet::fuzz {
namespace {
namespace pb = claudenet::v1;

std::string SignedFields(const pb::Message& m) {
  auto payload = macs::CanonicalJson(m.payload());
  return m.id() + "\x01" + m.sender() + "\x01" + m.recipient() + "\x01" +
         std::to_string(m.type()) + "\x01" + m.subject() + "\x01" + m.body() + "\x01" +
         (payload.ok() ? *payload : "!") + "\x01" + std::to_string(m.priority()) + "\x01" +
         macs::CanonicalTime(m.created_at()) + "\x01" + std::to_string(m.ttl().seconds()) +
         "\x01" + std::to_string(m.ttl().nanos()) + "\x01" + m.correlation_id() + "\x01" +
         m.reply_to() + "\x01" + m.origin_node();
}

void CheckMessage(const pb::Message& m, std::string_view data) {
  absl::StatusOr<std::string> canonical = macs::CanonicalBytes(m);
  if (!canonical.ok()) return;  // NaN / Infinity / bad time: an error, not a crash
  FUZZ_CHECK(canonical->rfind(std::string(macs::kCanonicalPrefix), 0) == 0, "prefix");
  const std::string key = "fuzz-key";
  absl::StatusOr<std::string> sig = macs::SignMessage(m, key);
  FUZZ_CHECK(sig.ok(), sig.status().ToString());
  FUZZ_CHECK(macs::VerifyCanonical(*canonical, key, *sig), "own signature does not verify");
  FUZZ_CHECK(!macs::VerifyCanonical(*canonical, "other-key", *sig), "wrong key verifies");
  if (!canonical->empty()) {
    std::string tampered = *canonical;
    size_t at = data.empty() ? 0 : static_cast<unsigned char>(data[0]) % tampered.size();
    tampered[at] ^= 0x01;
    FUZZ_CHECK(!macs::VerifyCanonical(tampered, key, *sig), "tampered bytes verify");
  }
  // Arbitrary signature text never verifies (and never crashes).
  FUZZ_CHECK(!macs::VerifyCanonical(*canonical, key, std::string(data.substr(0, 64))) ||
                 std::string(data.substr(0, 64)) == *sig,
             "random signature verifies");
  // Ed25519 with garbage keys and signatures.
  std::string raw(data.substr(0, 32));
  FUZZ_CHECK(!macs::VerifyEd25519Hex(raw, *canonical, std::string(data.substr(0, 128))),
             "garbage Ed25519 signature verifies");
}

}  // namespace

void FuzzCanonicalMessage(std::string_view data) {
  // 1. The bytes as a serialized Message.
  pb::Message parsed;
  if (parsed.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    CheckMessage(parsed, data);
  }
  // 2. A message from '|'-separated fields; the 8th is JSON for the payload.
  std::vector<std::string> f = absl::StrSplit(absl::string_view(data.data(), data.size()), '|');
  f.resize(10);
  pb::Message m;
  m.set_id(f[0]);
  m.set_sender(f[1]);
  m.set_recipient(f[2]);
  m.set_subject(f[3]);
  m.set_body(f[4]);
  m.set_correlation_id(f[5]);
  m.set_reply_to(f[6]);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  (void)google::protobuf::util::JsonStringToMessage(f[7], m.mutable_payload(), options);
  m.set_priority(static_cast<pb::Priority>(f[8].size() % 5));
  m.mutable_created_at()->set_seconds(static_cast<int64_t>(std::hash<std::string>{}(f[9]) %
                                                           253402300799LL));
  m.mutable_created_at()->set_nanos(static_cast<int32_t>(f[9].size() % 1000000000));
  CheckMessage(m, data);
  // Injectivity: a changed field always changes the canonical bytes.
  pb::Message n = m;
  switch (data.empty() ? 0 : static_cast<unsigned char>(data.back()) % 6) {
    case 0: n.set_subject(m.subject() + m.body()); n.set_body(""); break;
    case 1: n.set_id(m.id() + "|"); break;
    case 2: n.set_body(m.subject() + "\n" + m.body()); n.set_subject(""); break;
    case 3: n.set_sender(m.sender() + m.recipient()); n.set_recipient(""); break;
    case 4: n.set_correlation_id(m.reply_to()); n.set_reply_to(m.correlation_id()); break;
    case 5: (*n.mutable_payload()->mutable_fields())["k"].set_string_value(f[0]); break;
  }
  auto a = macs::CanonicalBytes(m);
  auto b = macs::CanonicalBytes(n);
  if (a.ok() && b.ok() && *a == *b) {
    FUZZ_CHECK(SignedFields(m) == SignedFields(n), "two different messages encode alike");
  }
  // Numbers: EcmaNumber round-trips every finite double.
  if (data.size() >= 8) {
    double d;
    std::memcpy(&d, data.data(), sizeof d);
    if (std::isfinite(d)) {
      std::string text = macs::EcmaNumber(d);
      double back = std::strtod(text.c_str(), nullptr);
      FUZZ_CHECK(back == d, text);
    }
  }
}

}  // namespace cnet::fuzz
