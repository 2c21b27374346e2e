#include "tools/bench/load.h"

#include <atomic>
#include <memory>

#include "absl/synchronization/mutex.h"

namespace cnet::bench {

LoadResult RunClosedLoop(int inflight, int64_t total, absl::Duration span,
                         const std::function<void(int64_t, std::function<void(bool)>)>& start) {
  struct State {
    absl::Mutex mu;
    int outstanding = 0;
    int64_t next = 0;
    LoadResult result;
  };
  auto state = std::make_shared<State>();
  absl::Time t0 = absl::Now();
  absl::Time end = span == absl::ZeroDuration() ? absl::InfiniteFuture() : t0 + span;
  std::function<void()> issue;
  issue = [&, state] {
    int64_t i;
    {
      absl::MutexLock lock(&state->mu);
      if ((total > 0 && state->next >= total) || absl::Now() >= end) {
        --state->outstanding;
        return;
      }
      i = state->next++;
    }
    absl::Time began = absl::Now();
    start(i, [&, state, began](bool ok) {
      absl::Duration took = absl::Now() - began;
      {
        absl::MutexLock lock(&state->mu);
        if (ok) {
          ++state->result.ok;
          state->result.latency.Add(took);
        } else {
          ++state->result.failed;
        }
      }
      issue();
    });
  };
  {
    absl::MutexLock lock(&state->mu);
    state->outstanding = inflight;
  }
  for (int k = 0; k < inflight; ++k) issue();
  absl::MutexLock lock(&state->mu);
  state->mu.Await(absl::Condition(+[](int* n) { return *n == 0; }, &state->outstanding));
  state->result.elapsed = absl::Now() - t0;
  return state->result;
}

}  // namespace cnet::bench
