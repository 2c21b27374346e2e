// Rolling samples behind GetStats: queue waits, run times, finishes,
// releases and claims, each stamped with its time and agent, kept for up to
// 30 days and at most `max_samples` per series (the newest are kept), so
// percentiles are over the window, or over its newest max_samples samples
// when the window holds more.
#ifndef CNET_SERVICES_TASKS_STATS_H_
#define CNET_SERVICES_TASKS_STATS_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/claudenet/v1/common.pb.h"
#include "proto/claudenet/v1/tasks.pb.h"

namespace cnet::tasks {

class StatsRecorder {
 public:
  explicit StatsRecorder(size_t max_samples = 200000,
                         absl::Duration horizon = absl::Hours(24 * 30))
      : max_samples_(max_samples), horizon_(horizon) {}

  void QueueWait(absl::Time at, absl::Duration wait, const std::string& agent);
  void RunTime(absl::Time at, absl::Duration run, const std::string& agent);
  // A task reached COMPLETED, FAILED or CANCELLED; `agent` is the holder or
  // author it counts for (may be empty).
  void Finished(absl::Time at, claudenet::v1::TaskState state, const std::string& agent);
  void Released(absl::Time at, const std::string& agent);
  void Claimed(absl::Time at);

  struct Window {
    claudenet::v1::DurationStats queue_wait;
    claudenet::v1::DurationStats run_time;
    int64_t completed = 0, failed = 0, cancelled = 0;
    double completion_rate = 0;
    double claims_per_second = 0;  // over the last minute
    struct PerAgent {
      int64_t completed = 0, failed = 0, released = 0;
      claudenet::v1::DurationStats run_time;
    };
    std::map<std::string, PerAgent> per_agent;
  };
  Window Compute(absl::Time now, absl::Duration window) const;

 private:
  struct Sample {
    absl::Time at;
    int64_t value_us = 0;  // duration, or the state for finishes
    std::string agent;
  };
  void Add(std::deque<Sample>& series, Sample s);
  static claudenet::v1::DurationStats Summarize(std::vector<int64_t> values_us);

  size_t max_samples_;
  absl::Duration horizon_;
  std::deque<Sample> queue_waits_, run_times_, finishes_, releases_;
  std::deque<absl::Time> claims_;
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_STATS_H_
