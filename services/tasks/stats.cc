#include "services/tasks/stats.h"

#include <algorithm>
#include <utility>

#include "services/tasks/task_util.h"

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

void StatsRecorder::Add(std::deque<Sample>& series, Sample s) {
  series.push_back(std::move(s));
  absl::Time cutoff = series.back().at - horizon_;
  while (!series.empty() && (series.size() > max_samples_ || series.front().at < cutoff)) {
    series.pop_front();
  }
}

void StatsRecorder::QueueWait(absl::Time at, absl::Duration wait, const std::string& agent) {
  Add(queue_waits_, {at, absl::ToInt64Microseconds(wait), agent});
}

void StatsRecorder::RunTime(absl::Time at, absl::Duration run, const std::string& agent) {
  Add(run_times_, {at, absl::ToInt64Microseconds(run), agent});
}

void StatsRecorder::Finished(absl::Time at, pb::TaskState state, const std::string& agent) {
  Add(finishes_, {at, static_cast<int64_t>(state), agent});
}

void StatsRecorder::Released(absl::Time at, const std::string& agent) {
  Add(releases_, {at, 0, agent});
}

void StatsRecorder::Claimed(absl::Time at) {
  claims_.push_back(at);
  while (!claims_.empty() && claims_.front() < at - absl::Minutes(1)) claims_.pop_front();
}

pb::DurationStats StatsRecorder::Summarize(std::vector<int64_t> v) {
  pb::DurationStats out;
  if (v.empty()) return out;
  std::sort(v.begin(), v.end());
  int64_t sum = 0;
  for (int64_t x : v) sum += x;
  auto pct = [&](double p) {
    size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(idx, v.size() - 1)];
  };
  out.set_count(static_cast<int64_t>(v.size()));
  *out.mutable_mean() = ToProtoDuration(absl::Microseconds(sum / static_cast<int64_t>(v.size())));
  *out.mutable_p50() = ToProtoDuration(absl::Microseconds(pct(0.50)));
  *out.mutable_p95() = ToProtoDuration(absl::Microseconds(pct(0.95)));
  *out.mutable_p99() = ToProtoDuration(absl::Microseconds(pct(0.99)));
  *out.mutable_max() = ToProtoDuration(absl::Microseconds(v.back()));
  return out;
}

StatsRecorder::Window StatsRecorder::Compute(absl::Time now, absl::Duration window) const {
  Window w;
  absl::Time from = now - window;
  std::vector<int64_t> waits, runs;
  std::map<std::string, std::vector<int64_t>> agent_runs;
  for (const Sample& s : queue_waits_) {
    if (s.at >= from && s.at <= now) waits.push_back(s.value_us);
  }
  for (const Sample& s : run_times_) {
    if (s.at < from || s.at > now) continue;
    runs.push_back(s.value_us);
    if (!s.agent.empty()) agent_runs[s.agent].push_back(s.value_us);
  }
  for (const Sample& s : finishes_) {
    if (s.at < from || s.at > now) continue;
    auto state = static_cast<pb::TaskState>(s.value_us);
    Window::PerAgent* a = s.agent.empty() ? nullptr : &w.per_agent[s.agent];
    if (state == pb::TASK_STATE_COMPLETED) {
      ++w.completed;
      if (a) ++a->completed;
    } else if (state == pb::TASK_STATE_FAILED) {
      ++w.failed;
      if (a) ++a->failed;
    } else if (state == pb::TASK_STATE_CANCELLED) {
      ++w.cancelled;
    }
  }
  for (const Sample& s : releases_) {
    if (s.at >= from && s.at <= now && !s.agent.empty()) ++w.per_agent[s.agent].released;
  }
  int64_t finished = w.completed + w.failed + w.cancelled;
  w.completion_rate = finished == 0 ? 0 : static_cast<double>(w.completed) / finished;
  int64_t claims = 0;
  for (absl::Time t : claims_) {
    if (t >= now - absl::Minutes(1) && t <= now) ++claims;
  }
  w.claims_per_second = static_cast<double>(claims) / 60.0;
  w.queue_wait = Summarize(std::move(waits));
  w.run_time = Summarize(std::move(runs));
  for (auto& [agent, values] : agent_runs) w.per_agent[agent].run_time = Summarize(values);
  return w;
}

}  // namespace cnet::tasks
