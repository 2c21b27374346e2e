// Where the engine runs its work: a bounded pool of threads in production,
// an inline trampoline in tests (every posted task runs on the posting
// thread, in order, without recursion), so that a test driving a
// SimulatedClock sees a run advance deterministically inside its own calls.
#ifndef CNET_SERVICES_SKILLS_EXECUTOR_H_
#define CNET_SERVICES_SKILLS_EXECUTOR_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace cnet::skills {

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs `fn` soon; never blocks the caller (the queue is unbounded; what
  // is posted is bounded by the run concurrency limit).
  virtual void Post(std::function<void()> fn) = 0;
  // True on a thread of this executor, where a short continuation may run
  // at once instead of being queued.
  virtual bool OnOwnThread() const { return false; }
};

// A fixed number of threads draining one FIFO queue.
class ThreadPool final : public Executor {
 public:
  explicit ThreadPool(int threads, std::string name = "skills");
  // Finishes the queued work, then joins.
  ~ThreadPool() override;
  void Post(std::function<void()> fn) override;
  bool OnOwnThread() const override;
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Runs posted work on the calling thread. A task posted while another runs
// is queued and run after it by the outermost Post (a trampoline), so long
// chains of continuations never deepen the stack.
class InlineExecutor final : public Executor {
 public:
  void Post(std::function<void()> fn) override;

 private:
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_EXECUTOR_H_
