// Sortable unique ids (ULID-style) for agents, messages, tasks and runs.
//
// An id is an optional prefix and 26 Crockford base32 characters: 48 bits of
// milliseconds since the Unix epoch, then 80 random bits. Ids from one
// generator sort by creation time, and within one millisecond they still
// increase (the random part is incremented), so lexical order is creation
// order for a single process.
#ifndef CNET_LIBS_IDS_IDS_H_
#define CNET_LIBS_IDS_IDS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"

namespace cnet {

class IdGenerator {
 public:
  explicit IdGenerator(Clock* clock) : clock_(clock) {}

  // Returns prefix + 26 characters, e.g. "msg-01HF3Z6W8QK2R1T5V7XBCDEFGH".
  std::string Next(std::string_view prefix = "");

 private:
  Clock* clock_;
  absl::Mutex mu_;
  uint64_t last_ms_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rand_hi_ ABSL_GUARDED_BY(mu_) = 0;  // upper 16 of 80 random bits
  uint64_t rand_lo_ ABSL_GUARDED_BY(mu_) = 0;  // lower 64 bits
};

// Milliseconds encoded in an id made by IdGenerator (prefix stripped by the
// caller). Returns false when `id` is not 26 valid characters.
bool IdTimestamp(std::string_view id, absl::Time* out);

}  // namespace cnet

#endif  // CNET_LIBS_IDS_IDS_H_
