// libFuzzer entry point (built by tools/fuzz.sh with clang -fsanitize=fuzzer).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cnet::fuzz::FuzzConfigDocument({reinterpret_cast<const char*>(data), size});
  return 0;
}
