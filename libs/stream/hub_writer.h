// A gRPC server-streaming reactor (callback API) that writes an initial
// batch of messages and then every event of an EventHub subscription, one
// write in flight at a time, without holding a thread while idle.
//
// The stream ends:
//  - OK when the hub closes (server shutdown) after the queue drains;
//  - with `overflow_status` (e.g. ABORTED "resync needed") when the reader fell
//    so far behind that its queue overflowed — after writing the optional
//    final message made by `on_overflow`;
//  - CANCELLED when the client goes away.
//
// Lock order: reactor state mutex, then the subscriber's queue mutex. The
// hub calls notify without its locks held, so there is no inversion.
#ifndef CNET_LIBS_STREAM_HUB_WRITER_H_
#define CNET_LIBS_STREAM_HUB_WRITER_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_callback.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/stream/event_hub.h"

namespace cnet {

template <typename Event, typename Msg>
class HubWriter final : public grpc::ServerWriteReactor<Msg> {
 public:
  struct Options {
    size_t queue_capacity = 1024;
    // Converts an event to the wire message; false skips it (a filter).
    std::function<bool(const Event&, Msg*)> convert;
    // Builds a last message telling the reader to resync; may be null.
    std::function<bool(Msg*)> on_overflow;
    grpc::Status overflow_status = grpc::Status(
        grpc::StatusCode::ABORTED,
        "watcher fell too far behind; resubscribe with a snapshot or resume point");
  };

  // Subscribes to `hub`, THEN calls `make_initial` (a snapshot, or events
  // replayed from a resume point), so nothing published in between is lost.
  // An event both in the initial batch and in the subscription is the
  // caller's to drop in `convert` (e.g. by sequence number).
  static HubWriter* Start(EventHub<Event>* hub, Options options,
                          const std::function<std::vector<Msg>()>& make_initial) {
    return new HubWriter(hub, std::move(options), make_initial);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    state_->writing = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream write failed"));
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled"));
  }

  void OnDone() override {
    hub_->Unsubscribe(subscriber_);
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct State {
    absl::Mutex mu;
    HubWriter* reactor ABSL_GUARDED_BY(mu) = nullptr;
    bool writing ABSL_GUARDED_BY(mu) = false;
  };

  HubWriter(EventHub<Event>* hub, Options options,
            const std::function<std::vector<Msg>()>& make_initial)
      : hub_(hub), options_(std::move(options)), state_(std::make_shared<State>()) {
    std::weak_ptr<State> weak = state_;
    subscriber_ = hub_->Subscribe(options_.queue_capacity, [weak] {
      std::shared_ptr<State> state = weak.lock();
      if (!state) return;
      absl::MutexLock lock(&state->mu);
      if (state->reactor != nullptr) state->reactor->PumpLocked();
    });
    std::vector<Msg> initial = make_initial ? make_initial() : std::vector<Msg>{};
    absl::MutexLock lock(&state_->mu);
    for (auto& m : initial) initial_.push_back(std::move(m));
    state_->reactor = this;
    PumpLocked();
  }

  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_ || state_->writing) return;
    if (!initial_.empty()) {
      current_ = std::move(initial_.front());
      initial_.pop_front();
      StartWriteLocked();
      return;
    }
    Event event;
    while (subscriber_->Pop(&event)) {
      Msg msg;
      if (options_.convert(event, &msg)) {
        current_ = std::move(msg);
        StartWriteLocked();
        return;
      }
    }
    if (subscriber_->overflowed()) {
      Msg last;
      if (options_.on_overflow && !overflow_sent_ && options_.on_overflow(&last)) {
        overflow_sent_ = true;
        current_ = std::move(last);
        StartWriteLocked();
        return;
      }
      FinishLocked(options_.overflow_status);
      return;
    }
    if (subscriber_->closed()) FinishLocked(grpc::Status::OK);
  }

  void StartWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    state_->writing = true;
    this->StartWrite(&current_);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    finished_ = true;
    this->Finish(status);
  }

  EventHub<Event>* hub_;
  Options options_;
  std::shared_ptr<State> state_;
  std::shared_ptr<typename EventHub<Event>::Subscriber> subscriber_;
  std::deque<Msg> initial_;
  Msg current_;
  bool finished_ = false;
  bool overflow_sent_ = false;
};

// A reactor that ends the stream at once with `status`: for a streaming
// handler that rejects its request (bad argument, missing credential).
template <typename Msg>
grpc::ServerWriteReactor<Msg>* FailedWriter(const grpc::Status& status) {
  class Failed final : public grpc::ServerWriteReactor<Msg> {
   public:
    explicit Failed(const grpc::Status& s) { this->Finish(s); }
    void OnDone() override { delete this; }
  };
  return new Failed(status);
}

}  // namespace cnet

#endif  // CNET_LIBS_STREAM_HUB_WRITER_H_
