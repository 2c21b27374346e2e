// libFuzzer entry point (built by tools/fuzz.sh with clang -fsanitize=fuzzer).
#include <cstddef>
#include <cstdint>

#include "services/skills/fuzz/skills_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cnet::skills::fuzz::FuzzTemplate({reinterpret_cast<const char*>(data), size});
  return 0;
}
