// Fan-out of events to many slow or fast readers without letting a slow one
// hold up the publisher or anyone else.
//
// Each subscriber has its own bounded queue. Publish() appends to every
// queue and never blocks; a subscriber whose queue is full is marked
// overflowed (it must resynchronize: its stream ends with a clear signal)
// and receives nothing more. Readers are told "something is waiting" by a
// notify callback, called without any hub or queue lock held, so the reader
// may take its own locks and call Pop() from inside it.
#ifndef CNET_LIBS_STREAM_EVENT_HUB_H_
#define CNET_LIBS_STREAM_EVENT_HUB_H_

#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace cnet {

template <typename T>
class EventHub {
 public:
  class Subscriber {
   public:
    Subscriber(size_t capacity, std::function<void()> notify)
        : capacity_(capacity), notify_(std::move(notify)) {}

    // Takes the oldest waiting item. False when none is waiting.
    bool Pop(T* out) {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) return false;
      *out = std::move(queue_.front());
      queue_.pop_front();
      return true;
    }

    // True once an item was dropped because the queue was full.
    bool overflowed() const {
      absl::MutexLock lock(&mu_);
      return overflowed_;
    }
    // True once the hub closed (shutdown); remaining items may still be popped.
    bool closed() const {
      absl::MutexLock lock(&mu_);
      return closed_;
    }
    size_t pending() const {
      absl::MutexLock lock(&mu_);
      return queue_.size();
    }

   private:
    friend class EventHub;

    // Returns the notify callback to run (outside locks), or null.
    std::function<void()> Push(const T& item) {
      absl::MutexLock lock(&mu_);
      if (closed_ || overflowed_) return nullptr;
      if (queue_.size() >= capacity_) {
        overflowed_ = true;
        return notify_;
      }
      queue_.push_back(item);
      return notify_;
    }
    std::function<void()> Close() {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      return notify_;
    }
    void Detach() {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      notify_ = nullptr;
    }

    mutable absl::Mutex mu_;
    const size_t capacity_;
    std::deque<T> queue_ ABSL_GUARDED_BY(mu_);
    std::function<void()> notify_ ABSL_GUARDED_BY(mu_);
    bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
    bool closed_ ABSL_GUARDED_BY(mu_) = false;
  };

  // A new subscriber that sees every item published from now on.
  // `notify` must be cheap and must not call back into the hub.
  std::shared_ptr<Subscriber> Subscribe(size_t capacity, std::function<void()> notify) {
    auto sub = std::make_shared<Subscriber>(capacity, std::move(notify));
    absl::MutexLock lock(&mu_);
    if (closed_) sub->Close();
    subscribers_.push_back(sub);
    return sub;
  }

  // Stops delivery; after return `notify` of this subscriber is never called
  // again by a later Publish (one already running may still finish).
  void Unsubscribe(const std::shared_ptr<Subscriber>& sub) {
    sub->Detach();
    absl::MutexLock lock(&mu_);
    for (auto it = subscribers_.begin(); it != subscribers_.end(); ++it) {
      if (*it == sub) {
        subscribers_.erase(it);
        break;
      }
    }
  }

  void Publish(const T& item) {
    std::vector<std::function<void()>> wake;
    {
      absl::MutexLock lock(&mu_);
      for (auto& sub : subscribers_) {
        if (auto fn = sub->Push(item)) wake.push_back(std::move(fn));
      }
    }
    for (auto& fn : wake) fn();
  }

  // Marks every subscriber closed and wakes it, so streams can end cleanly.
  void Close() {
    std::vector<std::function<void()>> wake;
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      for (auto& sub : subscribers_) {
        if (auto fn = sub->Close()) wake.push_back(std::move(fn));
      }
    }
    for (auto& fn : wake) fn();
  }

  size_t subscriber_count() const {
    absl::MutexLock lock(&mu_);
    return subscribers_.size();
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Subscriber>> subscribers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cnet

#endif  // CNET_LIBS_STREAM_EVENT_HUB_H_
