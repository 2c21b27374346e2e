#include "services/macs-gateway/xnode/firebase_kv_store.h"

#include <glog/logging.h>

#include <vector>

#include "services/macs-gateway/xnode/json_tree.h"

namespace cnet::federation {

namespace {

absl::StatusOr<firebase::Json> Parse(const std::string& json) {
  firebase::Json v = firebase::Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return absl::InvalidArgumentError("malformed JSON value");
  return v;
}

class StreamSubscription final : public KvSubscription {
 public:
  explicit StreamSubscription(std::unique_ptr<firebase::FirebaseStream> stream)
      : stream_(std::move(stream)) {}
  ~StreamSubscription() override { stream_->Stop(); }

 private:
  std::unique_ptr<firebase::FirebaseStream> stream_;
};

}  // namespace

FirebaseKvStore::FirebaseKvStore(firebase::FirebaseClient* client,
                                 firebase::StreamOptions stream_template)
    : client_(client), stream_template_(std::move(stream_template)) {}

absl::Status FirebaseKvStore::Put(const std::string& path, const std::string& json) {
  auto v = Parse(json);
  if (!v.ok()) return v.status();
  if (v->is_null()) return client_->Delete(path);
  return client_->Put(path, *v);
}

absl::Status FirebaseKvStore::Update(const std::map<std::string, std::string>& writes) {
  if (writes.empty()) return absl::OkStatus();
  if (writes.size() == 1) return Put(writes.begin()->first, writes.begin()->second);
  // PATCH at the deepest common ancestor of the paths: listeners below the
  // root then get one `patch` of their own children rather than the whole
  // value of their location.
  std::vector<std::string> base;
  bool first = true;
  for (const auto& [path, json] : writes) {
    std::vector<std::string> segs = SplitPath(path);
    if (!segs.empty()) segs.pop_back();  // the base must be a proper ancestor
    if (first) {
      base = segs;
      first = false;
      continue;
    }
    size_t n = 0;
    while (n < base.size() && n < segs.size() && base[n] == segs[n]) ++n;
    base.resize(n);
  }
  std::map<std::string, firebase::Json> updates;
  for (const auto& [path, json] : writes) {
    auto v = Parse(json);
    if (!v.ok()) return v.status();
    std::vector<std::string> segs = SplitPath(path);
    std::vector<std::string> rel(segs.begin() + base.size(), segs.end());
    updates[JoinPath(rel)] = std::move(*v);
  }
  return client_->UpdateMultiPath(JoinPath(base), updates);
}

absl::StatusOr<std::string> FirebaseKvStore::Get(const std::string& path) {
  auto v = client_->Get(path);
  if (!v.ok()) return v.status();
  return v->dump();
}

std::unique_ptr<KvSubscription> FirebaseKvStore::Listen(
    const std::string& path, std::function<void(const KvEvent&)> on_event) {
  firebase::StreamOptions options = stream_template_;
  options.path = path;
  firebase::FirebaseStream::Callbacks callbacks;
  callbacks.on_event = [on_event = std::move(on_event)](const firebase::StreamEvent& ev) {
    using T = firebase::StreamEvent::Type;
    if (ev.type != T::kPut && ev.type != T::kPatch) return;
    if (ev.snapshot) on_event(KvEvent{KvEvent::Type::kReset, "/", "null"});
    on_event(KvEvent{ev.type == T::kPut ? KvEvent::Type::kPut : KvEvent::Type::kPatch, ev.path,
                     ev.data.dump()});
  };
  callbacks.on_state = [path](firebase::StreamState state, const absl::Status& reason) {
    if (state == firebase::StreamState::kDisconnected) {
      LOG(WARNING) << "xnode: stream on /" << path << " disconnected: " << reason.message();
    }
  };
  auto stream = std::make_unique<firebase::FirebaseStream>(options, std::move(callbacks));
  absl::Status s = stream->Start();
  if (!s.ok()) LOG(ERROR) << "xnode: stream on /" << path << ": " << s.message();
  return std::make_unique<StreamSubscription>(std::move(stream));
}

}  // namespace cnet::federation
