#include "services/macs-gateway/xnode/memory_kv_store.h"

#include <deque>
#include <thread>

namespace cnet::federation {

// One stream: events are queued under the store's lock (so their order is
// the order of the writes) and delivered by the listener's own thread.
struct MemoryKvStore::Listener {
  std::vector<std::string> path;
  std::function<void(const KvEvent&)> on_event;
  absl::Mutex mu;
  std::deque<KvEvent> queue ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread thread;

  void Push(KvEvent ev) {
    absl::MutexLock lock(&mu);
    queue.push_back(std::move(ev));
  }
  void Run() {
    for (;;) {
      KvEvent ev;
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(
            +[](Listener* l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu) {
              return l->stop || !l->queue.empty();
            },
            this));
        if (stop) return;
        ev = std::move(queue.front());
        queue.pop_front();
      }
      on_event(ev);
    }
  }
};

class MemorySubscription final : public KvSubscription {
 public:
  MemorySubscription(MemoryKvStore* store, std::shared_ptr<MemoryKvStore::Listener> l)
      : store_(store), l_(std::move(l)) {}
  ~MemorySubscription() override {
    {
      absl::MutexLock lock(&store_->mu_);
      auto& v = store_->listeners_;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->get() == l_.get()) {
          v.erase(it);
          break;
        }
      }
    }
    {
      absl::MutexLock lock(&l_->mu);
      l_->stop = true;
    }
    l_->thread.join();
  }

 private:
  MemoryKvStore* store_;
  std::shared_ptr<MemoryKvStore::Listener> l_;
};

MemoryKvStore::MemoryKvStore() = default;
MemoryKvStore::~MemoryKvStore() = default;

namespace {

bool IsPrefix(const std::vector<std::string>& prefix, const std::vector<std::string>& path) {
  if (prefix.size() > path.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (prefix[i] != path[i]) return false;
  }
  return true;
}

}  // namespace

void MemoryKvStore::Publish(
    const std::vector<std::pair<std::vector<std::string>, JsonValue>>& changes, bool is_put) {
  for (const auto& l : listeners_) {
    JsonValue patch;
    bool any = false;
    for (const auto& [path, value] : changes) {
      if (IsPrefix(l->path, path)) {
        std::vector<std::string> rel(path.begin() + l->path.size(), path.end());
        if (is_put) {
          l->Push(KvEvent{KvEvent::Type::kPut, "/" + JoinPath(rel), ToJson(value)});
        } else {
          (*patch.mutable_struct_value()->mutable_fields())[JoinPath(rel)] = value;
          any = true;
        }
      } else if (IsPrefix(path, l->path)) {
        // An ancestor was written: the whole listened value may have changed.
        const JsonValue* now = tree_.Get(l->path);
        l->Push(KvEvent{KvEvent::Type::kPut, "/", now ? ToJson(*now) : "null"});
      }
    }
    if (any) l->Push(KvEvent{KvEvent::Type::kPatch, "/", ToJson(patch)});
  }
}

absl::Status MemoryKvStore::Put(const std::string& path, const std::string& json) {
  auto v = ParseJson(json);
  if (!v.ok()) return v.status();
  absl::MutexLock lock(&mu_);
  if (!failing_.ok()) return failing_;
  ++writes_;
  std::vector<std::string> p = SplitPath(path);
  tree_.Set(p, *v);
  Publish({{p, *v}}, /*is_put=*/true);
  return absl::OkStatus();
}

absl::Status MemoryKvStore::Update(const std::map<std::string, std::string>& writes) {
  std::vector<std::pair<std::vector<std::string>, JsonValue>> changes;
  for (const auto& [path, json] : writes) {
    auto v = ParseJson(json);
    if (!v.ok()) return v.status();
    changes.emplace_back(SplitPath(path), std::move(*v));
  }
  absl::MutexLock lock(&mu_);
  if (!failing_.ok()) return failing_;
  ++writes_;
  for (const auto& [p, v] : changes) tree_.Set(p, v);
  Publish(changes, /*is_put=*/false);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryKvStore::Get(const std::string& path) {
  absl::MutexLock lock(&mu_);
  if (!failing_.ok()) return failing_;
  const JsonValue* v = tree_.Get(SplitPath(path));
  return v ? ToJson(*v) : std::string("null");
}

std::unique_ptr<KvSubscription> MemoryKvStore::Listen(
    const std::string& path, std::function<void(const KvEvent&)> on_event) {
  auto l = std::make_shared<Listener>();
  l->path = SplitPath(path);
  l->on_event = std::move(on_event);
  {
    absl::MutexLock lock(&mu_);
    const JsonValue* now = tree_.Get(l->path);
    l->Push(KvEvent{KvEvent::Type::kPut, "/", now ? ToJson(*now) : "null"});
    listeners_.push_back(l);
  }
  l->thread = std::thread([raw = l.get()] { raw->Run(); });
  return std::make_unique<MemorySubscription>(this, l);
}

void MemoryKvStore::SetFailing(absl::Status status) {
  absl::MutexLock lock(&mu_);
  failing_ = std::move(status);
}

int64_t MemoryKvStore::writes() const {
  absl::MutexLock lock(&mu_);
  return writes_;
}

}  // namespace cnet::federation
