// A closed-loop load driver over the gRPC callback API: keeps `inflight`
// calls outstanding until `total` calls completed or `span` elapsed, so the
// generator itself never blocks a thread per call.
#ifndef CNET_TOOLS_BENCH_LOAD_H_
#define CNET_TOOLS_BENCH_LOAD_H_

#include <cstdint>
#include <functional>

#include "absl/time/time.h"
#include "tools/bench/report.h"

namespace cnet::bench {

struct LoadResult {
  int64_t ok = 0;
  int64_t failed = 0;
  absl::Duration elapsed;
  Samples latency;
  double rate() const { return ok / absl::ToDoubleSeconds(elapsed); }
};

// `start(i, done)` starts call number i and must call done(ok) exactly once
// when it finishes (on any thread). Stops issuing after `total` calls
// (0 = unlimited) or after `span` (ZeroDuration = unlimited).
LoadResult RunClosedLoop(int inflight, int64_t total, absl::Duration span,
                         const std::function<void(int64_t, std::function<void(bool)>)>& start);

}  // namespace cnet::bench

#endif  // CNET_TOOLS_BENCH_LOAD_H_
