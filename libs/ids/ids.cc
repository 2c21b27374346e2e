#include "libs/ids/ids.h"

#include <cstring>

#include "libs/crypto/crypto.h"

namespace cnet {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int DecodeChar(char c) {
  const char* p = std::strchr(kAlphabet, c);
  return (p == nullptr || c == '\0') ? -1 : static_cast<int>(p - kAlphabet);
}

}  // namespace

std::string IdGenerator::Next(std::string_view prefix) {
  uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(clock_->Now()));
  uint64_t hi, lo;
  {
    absl::MutexLock lock(&mu_);
    if (ms <= last_ms_) {
      // Same (or earlier, if the clock stepped back) millisecond: keep the
      // last timestamp and increment the random part to stay ordered.
      ms = last_ms_;
      if (++rand_lo_ == 0) rand_hi_ = (rand_hi_ + 1) & 0xffff;
    } else {
      last_ms_ = ms;
      std::string r = crypto::RandomBytes(10);
      rand_hi_ = (static_cast<uint64_t>(static_cast<uint8_t>(r[0])) << 8) |
                 static_cast<uint8_t>(r[1]);
      // Clear the top bit so increments within a millisecond cannot wrap.
      r[2] = static_cast<char>(static_cast<uint8_t>(r[2]) & 0x7f);
      std::memcpy(&rand_lo_, r.data() + 2, 8);
    }
    hi = rand_hi_;
    lo = rand_lo_;
  }
  // 128 bits: [48 ms][16 hi][64 lo], written as 26 base32 digits (130 bits,
  // the top two always zero).
  char out[26];
  uint64_t top = (ms << 16) | hi;  // 64 bits
  uint64_t bottom = lo;            // 64 bits
  for (int i = 25; i >= 0; --i) {
    out[i] = kAlphabet[bottom & 31];
    bottom = (bottom >> 5) | (top << 59);
    top >>= 5;
  }
  std::string id(prefix);
  id.append(out, 26);
  return id;
}

bool IdTimestamp(std::string_view id, absl::Time* out) {
  if (id.size() != 26) return false;
  uint64_t ms = 0;
  // The first 10 characters carry 50 bits: the top 2 are zero, then 48 ms.
  for (int i = 0; i < 10; ++i) {
    int v = DecodeChar(id[i]);
    if (v < 0) return false;
    ms = (ms << 5) | static_cast<uint64_t>(v);
  }
  for (int i = 10; i < 26; ++i) {
    if (DecodeChar(id[i]) < 0) return false;
  }
  // 10 chars = 50 bits = 2 zero bits + 48 bits of ms.
  *out = absl::FromUnixMillis(static_cast<int64_t>(ms));
  return true;
}

}  // namespace cnet
