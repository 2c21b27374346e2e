// A serial work queue on its own thread: federation components run their
// blocking calls (gRPC to local services, HTTP to the database) here rather
// than on registry-watch, clock-timer or stream threads.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_WORKER_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_WORKER_H_

#include <deque>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace cnet::federation {

class Worker {
 public:
  Worker() : thread_([this] { Run(); }) {}
  ~Worker() { Stop(); }
  void Post(std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    if (!stop_) queue_.push_back(std::move(fn));
  }
  // Drops pending work, waits for the running item, joins.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      stop_ = true;
      queue_.clear();
    }
    thread_.join();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> fn;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Worker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
              return w->stop_ || !w->queue_.empty();
            },
            this));
        if (stop_) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_WORKER_H_
