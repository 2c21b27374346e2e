// libFuzzer entry point for the Firebase event-stream parser and event
// decoder (build with clang -fsanitize=fuzzer; see tools/fuzz.sh). The first
// input byte picks a chunk size so chunk-boundary handling is explored.
#include <cstddef>
#include <cstdint>

#include "libs/firebase/sse_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t step = 1 + data[0] % 64;
  absl::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  cnet::firebase::SseLimits limits;
  limits.max_line_bytes = 4096;
  limits.max_event_bytes = 16384;
  cnet::firebase::SseParser parser(limits);
  std::vector<cnet::firebase::SseEvent> events;
  for (size_t i = 0; i < in.size(); i += step) {
    if (!parser.Feed(in.substr(i, step), &events).ok()) break;
  }
  for (const auto& e : events) (void)cnet::firebase::DecodeStreamEvent(e);
  return 0;
}
