// The injectable clock every service core uses instead of the system clock.
//
// Logic never reads the system time or sleeps: it asks a Clock for Now() and
// schedules work with RunAt(). Production passes RealClock; tests pass
// SimulatedClock and call Advance(), which runs every timer that became due,
// in time order, with Now() equal to that timer's deadline while it runs —
// so an event "at the crossing time" is observable exactly, with no sleeps.
#ifndef CNET_LIBS_CLOCK_CLOCK_H_
#define CNET_LIBS_CLOCK_CLOCK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cnet {

class Clock {
 public:
  using TimerId = uint64_t;

  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;

  // Runs `fn` once, on a clock-owned thread (RealClock) or inside Advance()
  // (SimulatedClock), at or after `when`. Callbacks must not block for long.
  // Returns an id for Cancel().
  virtual TimerId RunAt(absl::Time when, std::function<void()> fn) = 0;

  // Cancels a pending timer. Returns false when it already ran or is unknown.
  // A callback that is running at the time of the call is not waited for.
  virtual bool Cancel(TimerId id) = 0;

  TimerId RunAfter(absl::Duration delay, std::function<void()> fn) {
    return RunAt(Now() + delay, std::move(fn));
  }
};

// Timers kept in deadline order; shared by both clocks.
class TimerQueue {
 public:
  Clock::TimerId Add(absl::Time when, std::function<void()> fn);
  bool Remove(Clock::TimerId id);
  // Pops the earliest timer due at or before `now`. Returns false if none.
  bool PopDue(absl::Time now, absl::Time* when, std::function<void()>* fn);
  // Deadline of the earliest timer, or InfiniteFuture when empty.
  absl::Time Earliest() const;
  bool empty() const { return by_time_.empty(); }
  size_t size() const { return by_time_.size(); }

 private:
  using Key = std::pair<absl::Time, Clock::TimerId>;
  std::map<Key, std::function<void()>> by_time_;
  std::map<Clock::TimerId, absl::Time> by_id_;
  Clock::TimerId next_id_ = 1;
};

// Wall-clock time; timers fire on one background thread.
class RealClock final : public Clock {
 public:
  RealClock();
  ~RealClock() override;

  // The process-wide instance, for binaries' main().
  static RealClock* Default();

  absl::Time Now() const override { return absl::Now(); }
  TimerId RunAt(absl::Time when, std::function<void()> fn) override;
  bool Cancel(TimerId id) override;

 private:
  void Loop();

  absl::Mutex mu_;
  TimerQueue timers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Time that moves only when a test calls Advance()/AdvanceTo().
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000));

  absl::Time Now() const override;
  TimerId RunAt(absl::Time when, std::function<void()> fn) override;
  bool Cancel(TimerId id) override;

  // Moves time forward, running every timer due on the way in deadline order
  // (Now() equals each timer's deadline while it runs). Timers scheduled by
  // callbacks run too if they fall within the advanced span.
  void Advance(absl::Duration d);
  void AdvanceTo(absl::Time t);

  // Number of timers waiting to fire.
  size_t PendingTimers() const;

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  TimerQueue timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cnet

#endif  // CNET_LIBS_CLOCK_CLOCK_H_
