// A JSON tree (google.protobuf.Value) that applies Realtime Database stream
// events, plus small JSON helpers. Used as the local cache of a listened
// path (e.g. "/agents") and as the data of MemoryKvStore.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_JSON_TREE_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_JSON_TREE_H_

#include <google/protobuf/struct.pb.h>

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/macs-gateway/xnode/kv_store.h"

namespace cnet::federation {

using JsonValue = google::protobuf::Value;

// "/a/b/" -> {"a", "b"}.
std::vector<std::string> SplitPath(const std::string& path);
std::string JoinPath(const std::vector<std::string>& segments);

// Parses JSON text (any value, "null" included). Rejects text over
// `max_bytes`.
absl::StatusOr<JsonValue> ParseJson(const std::string& text, size_t max_bytes = 16 << 20);
std::string ToJson(const JsonValue& value);
bool IsNull(const JsonValue& value);

// Accessors on an object value; defaults when absent or of another type.
std::string StringField(const JsonValue& object, const std::string& key);
double NumberField(const JsonValue& object, const std::string& key, double fallback = 0);
const JsonValue* Field(const JsonValue& object, const std::string& key);

class JsonTree {
 public:
  // Replaces the value at `path` (null deletes, empty parents are pruned).
  void Set(const std::vector<std::string>& path, const JsonValue& value);
  // The value at `path`, or nullptr.
  const JsonValue* Get(const std::vector<std::string>& path) const;
  // Applies one stream event (kReset clears). Returns the first path
  // segments (children of the listened root) the event touched; "*" for a
  // put of the whole value into an empty cache (a new or reopened stream);
  // a later put of the whole value reports the children that differ.
  absl::StatusOr<std::set<std::string>> Apply(const KvEvent& event);
  const JsonValue& root() const { return root_; }
  void Clear() { root_ = JsonValue(); }

 private:
  JsonValue root_;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_JSON_TREE_H_
