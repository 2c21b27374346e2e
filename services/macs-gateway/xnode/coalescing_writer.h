// Batches database writes: Write(group, writes) records the paths of one
// logical change (e.g. the three buckets of one task); a later write of the
// same group replaces an earlier one not yet sent. A flush on the given
// worker sends everything pending in multi-path updates of about
// `max_paths` paths, never splitting a group. Used for the task and presence mirrors, so a snapshot
// of thousands of tasks costs a few requests, and a burst of changes to one
// task sends only its latest state. Callers write every path of one logical
// change in one Write() call, so a batch never splits it.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_COALESCING_WRITER_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_COALESCING_WRITER_H_

#include <functional>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "services/macs-gateway/xnode/kv_store.h"
#include "services/macs-gateway/xnode/worker.h"

namespace cnet::federation {

class CoalescingWriter {
 public:
  // `on_result(status, paths_written)` is called after each update. A
  // failed update is not retried here: the mirrors repair by their
  // periodic pass / snapshot.
  CoalescingWriter(KvStore* kv, Worker* worker, size_t max_paths,
                   std::function<void(const absl::Status&, size_t)> on_result)
      : kv_(kv), worker_(worker), max_paths_(max_paths), on_result_(std::move(on_result)) {}

  void Write(const std::string& group, std::map<std::string, std::string> writes) {
    bool post = false;
    {
      absl::MutexLock lock(&mu_);
      pending_[group] = std::move(writes);
      if (!flush_posted_) {
        flush_posted_ = true;
        post = true;
      }
    }
    if (post) worker_->Post([this] { Flush(); });
  }

 private:
  void Flush() {
    for (;;) {
      std::map<std::string, std::string> batch;
      {
        absl::MutexLock lock(&mu_);
        if (pending_.empty()) {
          flush_posted_ = false;
          return;
        }
        auto it = pending_.begin();
        while (it != pending_.end() && batch.size() < max_paths_) {
          batch.insert(it->second.begin(), it->second.end());
          it = pending_.erase(it);
        }
      }
      absl::Status s = kv_->Update(batch);
      on_result_(s, batch.size());
    }
  }

  KvStore* const kv_;
  Worker* const worker_;
  const size_t max_paths_;
  const std::function<void(const absl::Status&, size_t)> on_result_;
  absl::Mutex mu_;
  std::map<std::string, std::map<std::string, std::string>> pending_ ABSL_GUARDED_BY(mu_);
  bool flush_posted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_COALESCING_WRITER_H_
