#include "services/macs-gateway/canonical.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/crypto/crypto.h"

namespace cnet::macs {
namespace pb = claudenet::v1;
namespace gp = google::protobuf;

namespace {

// Appends x as F(x) = decimal(len(x)) ":" x "\n".
void AppendField(std::string* out, std::string_view x) {
  absl::StrAppend(out, x.size(), ":");
  out->append(x.data(), x.size());
  out->push_back('\n');
}

void AppendJsonString(std::string* out, const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\t': out->append("\\t"); break;
      case '\n': out->append("\\n"); break;
      case '\f': out->append("\\f"); break;
      case '\r': out->append("\\r"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// UTF-16 code units of a UTF-8 string, for JCS key ordering. Invalid bytes
// (protobuf rejects them in proto3 strings anyway) are taken as U+FFFD.
std::u16string Utf16(const std::string& s) {
  std::u16string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    uint32_t cp = 0xFFFD;
    size_t len = 1;
    if (c < 0x80) {
      cp = c;
    } else if ((c >> 5) == 6 && i + 1 < s.size()) {
      cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
      len = 2;
    } else if ((c >> 4) == 14 && i + 2 < s.size()) {
      cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
      len = 3;
    } else if ((c >> 3) == 30 && i + 3 < s.size()) {
      cp = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
           (s[i + 3] & 0x3F);
      len = 4;
    }
    i += len;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
  return out;
}

absl::Status AppendValue(std::string* out, const gp::Value& v, const std::string& path);

absl::Status AppendStruct(std::string* out, const gp::Struct& s, const std::string& path) {
  std::vector<std::pair<std::u16string, const std::string*>> keys;
  keys.reserve(s.fields_size());
  for (const auto& [key, value] : s.fields()) keys.emplace_back(Utf16(key), &key);
  std::sort(keys.begin(), keys.end());
  out->push_back('{');
  bool first = true;
  for (const auto& [unused, key] : keys) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(out, *key);
    out->push_back(':');
    absl::Status st = AppendValue(out, s.fields().at(*key), absl::StrCat(path, ".", *key));
    if (!st.ok()) return st;
  }
  out->push_back('}');
  return absl::OkStatus();
}

absl::Status AppendValue(std::string* out, const gp::Value& v, const std::string& path) {
  switch (v.kind_case()) {
    case gp::Value::kNullValue:
      out->append("null");
      return absl::OkStatus();
    case gp::Value::kBoolValue:
      out->append(v.bool_value() ? "true" : "false");
      return absl::OkStatus();
    case gp::Value::kNumberValue:
      if (!std::isfinite(v.number_value())) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": NaN and Infinity cannot be carried in JSON"));
      }
      out->append(EcmaNumber(v.number_value()));
      return absl::OkStatus();
    case gp::Value::kStringValue:
      AppendJsonString(out, v.string_value());
      return absl::OkStatus();
    case gp::Value::kStructValue:
      return AppendStruct(out, v.struct_value(), path);
    case gp::Value::kListValue: {
      out->push_back('[');
      for (int i = 0; i < v.list_value().values_size(); ++i) {
        if (i > 0) out->push_back(',');
        absl::Status st =
            AppendValue(out, v.list_value().values(i), absl::StrCat(path, "[", i, "]"));
        if (!st.ok()) return st;
      }
      out->push_back(']');
      return absl::OkStatus();
    }
    case gp::Value::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": value has no kind set"));
}

}  // namespace

std::string EcmaNumber(double v) {
  if (v == 0) return "0";  // also -0
  if (v < 0) return "-" + EcmaNumber(-v);
  if (v < 9007199254740992.0 && v == std::floor(v)) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  // Shortest decimal digits that read back as exactly v.
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // buf is d[.ddd]e[+-]xx: split into the digits s and the exponent n such
  // that v = 0.s * 10^n (ECMAScript's k digits and n).
  std::string text(buf);
  size_t e = text.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (text[i] != '.') digits.push_back(text[i]);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int n = std::atoi(text.c_str() + e + 1) + 1;
  int k = static_cast<int>(digits.size());
  if (k <= n && n <= 21) return digits + std::string(n - k, '0');
  if (0 < n && n <= 21) return digits.substr(0, n) + "." + digits.substr(n);
  if (-6 < n && n <= 0) return "0." + std::string(-n, '0') + digits;
  std::string exponent = absl::StrCat(n - 1 < 0 ? "-" : "+", std::abs(n - 1));
  if (k == 1) return digits + "e" + exponent;
  return digits.substr(0, 1) + "." + digits.substr(1) + "e" + exponent;
}

absl::StatusOr<std::string> CanonicalJson(const gp::Struct& payload) {
  std::string out;
  absl::Status st = AppendStruct(&out, payload, "payload");
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::string> CanonicalJsonValue(const gp::Value& value) {
  std::string out;
  absl::Status st = AppendValue(&out, value, "value");
  if (!st.ok()) return st;
  return out;
}

std::string CanonicalTime(const gp::Timestamp& ts) {
  time_t secs = static_cast<time_t>(ts.seconds());
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

absl::StatusOr<std::string> CanonicalBytes(const pb::Message& m, std::string_view payload_json) {
  std::string payload;
  if (payload_json.empty()) {
    absl::StatusOr<std::string> json = CanonicalJson(m.payload());
    if (!json.ok()) return json.status();
    payload = std::move(*json);
    payload_json = payload;
  }
  std::string out;
  out.reserve(kCanonicalPrefix.size() + 160 + m.subject().size() + m.body().size() +
              payload_json.size());
  out.append(kCanonicalPrefix.data(), kCanonicalPrefix.size());
  AppendField(&out, m.id());
  AppendField(&out, m.sender());
  AppendField(&out, m.recipient());
  AppendField(&out, absl::StrCat(static_cast<int>(m.type())));
  AppendField(&out, m.subject());
  AppendField(&out, m.body());
  AppendField(&out, payload_json);
  AppendField(&out, absl::StrCat(static_cast<int>(m.priority())));
  AppendField(&out, m.has_created_at() ? CanonicalTime(m.created_at()) : std::string());
  AppendField(&out, absl::StrCat(m.has_ttl() ? m.ttl().seconds() : 0));
  AppendField(&out, m.correlation_id());
  AppendField(&out, m.reply_to());
  AppendField(&out, m.origin_node());
  return out;
}

absl::StatusOr<std::string> SignMessage(const pb::Message& message, std::string_view key) {
  absl::StatusOr<std::string> bytes = CanonicalBytes(message);
  if (!bytes.ok()) return bytes.status();
  return crypto::HmacSha256Hex(key, *bytes);
}

bool VerifyCanonical(std::string_view canonical, std::string_view key,
                     std::string_view signature_hex) {
  return crypto::VerifyHmacSha256Hex(key, canonical, signature_hex);
}

bool VerifyEd25519Hex(std::string_view public_key_raw, std::string_view data,
                      std::string_view signature_hex) {
  if (public_key_raw.size() != 32 || signature_hex.size() != 128) return false;
  absl::StatusOr<std::string> sig = crypto::HexDecode(signature_hex);
  if (!sig.ok()) return false;
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key_raw.data()),
      public_key_raw.size());
  if (key == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig->data()),
                             sig->size(), reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

std::string SignEd25519Hex(std::string_view seed, std::string_view data) {
  if (seed.size() != 32) return "";
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), 32);
  if (key == nullptr) return "";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[64];
  size_t sig_len = sizeof sig;
  bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestSign(ctx, sig, &sig_len,
                           reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  if (!ok) return "";
  return crypto::HexEncode(std::string_view(reinterpret_cast<char*>(sig), sig_len));
}

std::string Ed25519PublicKey(std::string_view seed) {
  if (seed.size() != 32) return "";
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), 32);
  if (key == nullptr) return "";
  unsigned char pub[32];
  size_t len = sizeof pub;
  bool ok = EVP_PKEY_get_raw_public_key(key, pub, &len) == 1;
  EVP_PKEY_free(key);
  return ok ? std::string(reinterpret_cast<char*>(pub), len) : "";
}

}  // namespace cnet::macs
