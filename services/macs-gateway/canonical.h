// The canonical signing encoding of a message, version 1 ("CNET-MSG-V1"),
// and the HMAC-SHA256 signature over it.
//
// The encoding is defined byte for byte in proto/claudenet/v1/macs.proto
// (comment on `Message`) and docs/macs.md, with a test vector; any language
// can reproduce it (tests/macs/ does, with Python's standard library). It
// covers the thirteen signed fields; output-only fields, the signatures
// themselves and provenance are not part of it. The payload is rendered as
// canonical JSON per RFC 8785 (JCS).
//
// Shared by the gateway (verification, dedupe content hash) and by
// //libs/macs_client (signing).
#ifndef CNET_SERVICES_MACS_GATEWAY_CANONICAL_H_
#define CNET_SERVICES_MACS_GATEWAY_CANONICAL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "proto/claudenet/v1/macs.pb.h"

namespace cnet::macs {

// "CNET-MSG-V1\n": the first line of every canonical encoding.
inline constexpr std::string_view kCanonicalPrefix = "CNET-MSG-V1\n";

// RFC 8785 canonical JSON of a Struct (an unset or empty Struct is "{}").
// INVALID_ARGUMENT naming the path (e.g. `payload.a[2]`) for NaN or
// Infinity, which JSON cannot carry.
absl::StatusOr<std::string> CanonicalJson(const google::protobuf::Struct& payload);
absl::StatusOr<std::string> CanonicalJsonValue(const google::protobuf::Value& value);

// ECMAScript Number.prototype.toString of a finite double (what JCS
// prescribes): 42 -> "42", -0 -> "0", 0.25 -> "0.25", 1e-7 -> "1e-7",
// 1e21 -> "1e+21", 123456789012345680000 -> "123456789012345680000".
std::string EcmaNumber(double value);

// RFC 3339 UTC with whole seconds: "2025-01-02T03:04:05Z" (nanos dropped).
std::string CanonicalTime(const google::protobuf::Timestamp& ts);

// The canonical bytes of `message` as signed. `payload_json` is
// CanonicalJson(message.payload()) when already computed (saves a second
// rendering), else empty to compute it here.
absl::StatusOr<std::string> CanonicalBytes(const claudenet::v1::Message& message,
                                           std::string_view payload_json = {});

// Lower-case hex HMAC-SHA256 of the canonical bytes under `key`.
absl::StatusOr<std::string> SignMessage(const claudenet::v1::Message& message,
                                        std::string_view key);

// True when `message.signature()` is the HMAC of `canonical` under `key`
// (constant-time compare; upper-case hex is accepted).
bool VerifyCanonical(std::string_view canonical, std::string_view key,
                     std::string_view signature_hex);

// Ed25519 (RFC 8032, pure) verification of `data` with a 32-byte raw public
// key and a 128-hex-character signature. False on any malformed input.
bool VerifyEd25519Hex(std::string_view public_key_raw, std::string_view data,
                      std::string_view signature_hex);

// Ed25519 signature (128 lower-case hex characters) of `data` by the private
// key with this 32-byte seed; for clients and tests. Empty on a bad seed.
std::string SignEd25519Hex(std::string_view seed, std::string_view data);
// The 32-byte raw public key of a 32-byte Ed25519 seed; empty on error.
std::string Ed25519PublicKey(std::string_view seed);

}  // namespace cnet::macs

#endif  // CNET_SERVICES_MACS_GATEWAY_CANONICAL_H_
