#include "libs/clock/clock.h"

#include <utility>

namespace cnet {

Clock::TimerId TimerQueue::Add(absl::Time when, std::function<void()> fn) {
  Clock::TimerId id = next_id_++;
  by_time_.emplace(Key{when, id}, std::move(fn));
  by_id_.emplace(id, when);
  return id;
}

bool TimerQueue::Remove(Clock::TimerId id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  by_time_.erase(Key{it->second, id});
  by_id_.erase(it);
  return true;
}

bool TimerQueue::PopDue(absl::Time now, absl::Time* when,
                        std::function<void()>* fn) {
  if (by_time_.empty()) return false;
  auto it = by_time_.begin();
  if (it->first.first > now) return false;
  *when = it->first.first;
  *fn = std::move(it->second);
  by_id_.erase(it->first.second);
  by_time_.erase(it);
  return true;
}

absl::Time TimerQueue::Earliest() const {
  if (by_time_.empty()) return absl::InfiniteFuture();
  return by_time_.begin()->first.first;
}

RealClock::RealClock() : thread_([this] { Loop(); }) {}

RealClock::~RealClock() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

RealClock* RealClock::Default() {
  static RealClock* clock = new RealClock();
  return clock;
}

Clock::TimerId RealClock::RunAt(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  return timers_.Add(when, std::move(fn));
}

bool RealClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  return timers_.Remove(id);
}

void RealClock::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    absl::Time when;
    std::function<void()> fn;
    if (timers_.PopDue(absl::Now(), &when, &fn)) {
      mu_.Unlock();
      fn();
      mu_.Lock();
      continue;
    }
    // Wake when the earliest deadline passes, a new timer is added, or on stop.
    absl::Time earliest = timers_.Earliest();
    auto changed = [this, earliest]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || timers_.Earliest() < earliest;
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), earliest);
  }
}

SimulatedClock::SimulatedClock(absl::Time start) : now_(start) {}

absl::Time SimulatedClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

Clock::TimerId SimulatedClock::RunAt(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  return timers_.Add(when, std::move(fn));
}

bool SimulatedClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  return timers_.Remove(id);
}

void SimulatedClock::Advance(absl::Duration d) { AdvanceTo(Now() + d); }

void SimulatedClock::AdvanceTo(absl::Time t) {
  for (;;) {
    absl::Time when;
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      if (!timers_.PopDue(t, &when, &fn)) {
        if (t > now_) now_ = t;
        return;
      }
      if (when > now_) now_ = when;
    }
    fn();
  }
}

size_t SimulatedClock::PendingTimers() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

}  // namespace cnet
