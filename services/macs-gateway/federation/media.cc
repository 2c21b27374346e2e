#include "services/macs-gateway/federation/media.h"

namespace cnet::macs::federation {

std::string EscapeKey(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c == '.' || c == '$' || c == '#' || c == '[' || c == ']' ||
        c == '/' || c == '%') {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace cnet::macs::federation
