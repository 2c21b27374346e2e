// Cryptographic primitives shared by the suite, on OpenSSL: HMAC-SHA256
// for message signatures, SHA-256 for storing tokens as hashes, a
// constant-time comparison for verifying either, and secure random bytes
// for tokens and ids.
#ifndef CNET_LIBS_CRYPTO_CRYPTO_H_
#define CNET_LIBS_CRYPTO_CRYPTO_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cnet::crypto {

// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(std::string_view key, std::string_view data);

// Lower-case hex of HmacSha256(key, data): the signature format on the wire.
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// Checks a hex signature in constant time (independent of where the first
// mismatch is). Upper- and lower-case hex are both accepted.
bool VerifyHmacSha256Hex(std::string_view key, std::string_view data,
                         std::string_view signature_hex);

// Raw 32-byte SHA-256 and its lower-case hex.
std::string Sha256(std::string_view data);
std::string Sha256Hex(std::string_view data);

// Equality whose running time depends only on the lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `n` bytes from OpenSSL's CSPRNG. Aborts if the generator fails (there is
// no safe fallback for secrets).
std::string RandomBytes(size_t n);

std::string HexEncode(std::string_view bytes);
// INVALID_ARGUMENT on odd length or a non-hex character.
absl::StatusOr<std::string> HexDecode(std::string_view hex);

}  // namespace cnet::crypto

#endif  // CNET_LIBS_CRYPTO_CRYPTO_H_
