// Fuzz targets: one function per input format, each feeding arbitrary
// bytes to the production code and checking invariants with FUZZ_CHECK.
// Called by the libFuzzer entry points (*_fuzzer.cc, built by
// tools/fuzz.sh) and by the bounded drivers in fuzz_driver_test.cc.
#ifndef CNET_TESTS_FUZZ_TARGETS_H_
#define CNET_TESTS_FUZZ_TARGETS_H_

#include <string_view>

namespace cnet::fuzz {

// The config YAML loader (ValidateDocument): never throws; every issue
// names the document and a key or a line; one short line each.
void FuzzConfigDocument(std::string_view data);

// CNET-MSG-V1: a Message parsed from the bytes (and one built from
// '|'-separated fields with a JSON payload): CanonicalBytes never throws;
// sign-then-verify holds and any one-byte change of the canonical bytes
// breaks the HMAC; two messages with equal canonical bytes have equal
// signed fields; Ed25519 verification of arbitrary key/signature bytes
// never crashes and never accepts; every finite number's EcmaNumber text
// reads back as the same double.
void FuzzCanonicalMessage(std::string_view data);

}  // namespace cnet::fuzz

#endif  // CNET_TESTS_FUZZ_TARGETS_H_
