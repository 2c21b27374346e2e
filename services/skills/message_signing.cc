#include "services/skills/message_signing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/crypto/crypto.h"

namespace cnet::skills {
namespace {

// UTF-16 code units of a UTF-8 string (for JCS key order).
std::u16string Utf16(const std::string& s) {
  std::u16string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = c;
    int extra = 0;
    if (c >= 0xF0) {
      cp = c & 0x07;
      extra = 3;
    } else if (c >= 0xE0) {
      cp = c & 0x0F;
      extra = 2;
    } else if (c >= 0xC0) {
      cp = c & 0x1F;
      extra = 1;
    }
    ++i;
    for (int k = 0; k < extra && i < s.size(); ++k, ++i) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
    }
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

void AppendString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\t': *out += "\\t"; break;
      case '\n': *out += "\\n"; break;
      case '\f': *out += "\\f"; break;
      case '\r': *out += "\\r"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendValue(const google::protobuf::Value& v, std::string* out);

void AppendStruct(const google::protobuf::Struct& s, std::string* out) {
  std::vector<std::pair<std::u16string, const std::string*>> keys;
  for (const auto& [k, v] : s.fields()) keys.emplace_back(Utf16(k), &k);
  std::sort(keys.begin(), keys.end());
  out->push_back('{');
  bool first = true;
  for (const auto& [u16, key] : keys) {
    if (!first) out->push_back(',');
    first = false;
    AppendString(*key, out);
    out->push_back(':');
    AppendValue(s.fields().at(*key), out);
  }
  out->push_back('}');
}

void AppendValue(const google::protobuf::Value& v, std::string* out) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kNumberValue: *out += EcmaNumber(v.number_value()); break;
    case google::protobuf::Value::kStringValue: AppendString(v.string_value(), out); break;
    case google::protobuf::Value::kBoolValue: *out += v.bool_value() ? "true" : "false"; break;
    case google::protobuf::Value::kStructValue: AppendStruct(v.struct_value(), out); break;
    case google::protobuf::Value::kListValue: {
      out->push_back('[');
      bool first = true;
      for (const auto& e : v.list_value().values()) {
        if (!first) out->push_back(',');
        first = false;
        AppendValue(e, out);
      }
      out->push_back(']');
      break;
    }
    default: *out += "null"; break;
  }
}

void Field(const std::string& x, std::string* out) {
  absl::StrAppend(out, x.size(), ":", x, "\n");
}

}  // namespace

std::string EcmaNumber(double x) {
  if (x == 0) return "0";
  if (std::isnan(x) || std::isinf(x)) return "null";
  if (x < 0) return "-" + EcmaNumber(-x);
  // Shortest digits that round-trip: x = 0.d1..dk * 10^n.
  std::string digits;
  int n = 0;
  for (int p = 1; p <= 17; ++p) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
    if (std::strtod(buf, nullptr) != x && p < 17) continue;
    std::string s(buf);
    size_t e = s.find('e');
    std::string mantissa = s.substr(0, e);
    int exp = std::atoi(s.c_str() + e + 1);
    for (char c : mantissa) {
      if (c != '.') digits.push_back(c);
    }
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    n = exp + 1;
    break;
  }
  int k = static_cast<int>(digits.size());
  if (k <= n && n <= 21) return digits + std::string(n - k, '0');
  if (0 < n && n <= 21) return digits.substr(0, n) + "." + digits.substr(n);
  if (-6 < n && n <= 0) return "0." + std::string(-n, '0') + digits;
  int e = n - 1;
  std::string out = digits.substr(0, 1);
  if (k > 1) out += "." + digits.substr(1);
  return absl::StrCat(out, "e", e >= 0 ? "+" : "-", std::abs(e));
}

std::string CanonicalJson(const google::protobuf::Struct& s) {
  std::string out;
  AppendStruct(s, &out);
  return out;
}

std::string CanonicalMessage(const claudenet::v1::Message& m) {
  std::string out = "CNET-MSG-V1\n";
  Field(m.id(), &out);
  Field(m.sender(), &out);
  Field(m.recipient(), &out);
  Field(std::to_string(static_cast<int>(m.type())), &out);
  Field(m.subject(), &out);
  Field(m.body(), &out);
  Field(CanonicalJson(m.payload()), &out);
  Field(std::to_string(static_cast<int>(m.priority())), &out);
  Field(absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", absl::FromUnixSeconds(m.created_at().seconds()),
                         absl::UTCTimeZone()),
        &out);
  Field(std::to_string(m.has_ttl() ? m.ttl().seconds() : 0), &out);
  Field(m.correlation_id(), &out);
  Field(m.reply_to(), &out);
  Field(m.origin_node(), &out);
  return out;
}

std::string SignMessage(const claudenet::v1::Message& m, const std::string& secret) {
  return crypto::HmacSha256Hex(secret, CanonicalMessage(m));
}

}  // namespace cnet::skills
