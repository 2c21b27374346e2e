#include "services/macs-gateway/xnode/json_tree.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace cnet::federation {

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out = absl::StrSplit(path, '/', absl::SkipEmpty());
  return out;
}

std::string JoinPath(const std::vector<std::string>& segments) {
  return absl::StrJoin(segments, "/");
}

absl::StatusOr<JsonValue> ParseJson(const std::string& text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError("JSON value of " + std::to_string(text.size()) +
                                      " bytes exceeds the limit of " +
                                      std::to_string(max_bytes));
  }
  JsonValue v;
  if (text == "null" || text.empty()) {
    v.set_null_value(google::protobuf::NULL_VALUE);
    return v;
  }
  auto status = google::protobuf::util::JsonStringToMessage(text, &v);
  if (!status.ok()) {
    return absl::InvalidArgumentError("malformed JSON: " + std::string(status.message()));
  }
  return v;
}

bool IsNull(const JsonValue& value) {
  return value.kind_case() == JsonValue::KIND_NOT_SET ||
         value.kind_case() == JsonValue::kNullValue;
}

std::string ToJson(const JsonValue& value) {
  if (IsNull(value)) return "null";
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(value, &out);
  return out;
}

const JsonValue* Field(const JsonValue& object, const std::string& key) {
  if (object.kind_case() != JsonValue::kStructValue) return nullptr;
  auto it = object.struct_value().fields().find(key);
  if (it == object.struct_value().fields().end()) return nullptr;
  return &it->second;
}

std::string StringField(const JsonValue& object, const std::string& key) {
  const JsonValue* f = Field(object, key);
  if (f == nullptr || f->kind_case() != JsonValue::kStringValue) return "";
  return f->string_value();
}

double NumberField(const JsonValue& object, const std::string& key, double fallback) {
  const JsonValue* f = Field(object, key);
  if (f == nullptr || f->kind_case() != JsonValue::kNumberValue) return fallback;
  return f->number_value();
}

namespace {

// Sets `value` at path[i..] under `node`; returns true when `node` became
// empty (to be pruned by the caller).
bool SetAt(JsonValue* node, const std::vector<std::string>& path, size_t i,
           const JsonValue& value) {
  if (i == path.size()) {
    if (IsNull(value) ||
        (value.kind_case() == JsonValue::kStructValue && value.struct_value().fields().empty())) {
      node->Clear();
      return true;
    }
    *node = value;
    return false;
  }
  if (node->kind_case() != JsonValue::kStructValue) {
    if (IsNull(value)) return IsNull(*node);  // deleting below a leaf: no-op
    node->mutable_struct_value();             // replaces a leaf by an object
  }
  auto* fields = node->mutable_struct_value()->mutable_fields();
  JsonValue& child = (*fields)[path[i]];
  if (SetAt(&child, path, i + 1, value)) fields->erase(path[i]);
  if (fields->empty()) {
    node->Clear();
    return true;
  }
  return false;
}

}  // namespace

void JsonTree::Set(const std::vector<std::string>& path, const JsonValue& value) {
  SetAt(&root_, path, 0, value);
}

const JsonValue* JsonTree::Get(const std::vector<std::string>& path) const {
  const JsonValue* node = &root_;
  for (const std::string& seg : path) {
    node = Field(*node, seg);
    if (node == nullptr) return nullptr;
  }
  return node;
}

absl::StatusOr<std::set<std::string>> JsonTree::Apply(const KvEvent& event) {
  std::set<std::string> touched;
  if (event.type == KvEvent::Type::kReset) {
    root_.Clear();
    touched.insert("*");
    return touched;
  }
  auto data = ParseJson(event.data);
  if (!data.ok()) return data.status();
  std::vector<std::string> base = SplitPath(event.path);
  if (event.type == KvEvent::Type::kPut) {
    if (!base.empty()) {
      touched.insert(base[0]);
      Set(base, *data);
      return touched;
    }
    // The whole value. The first one (empty cache: a new or reopened
    // stream) is reported as "*"; later ones (a database may send the whole
    // value again after a multi-path update) as the children that differ.
    const bool first = root_.kind_case() != JsonValue::kStructValue;
    JsonValue before = std::move(root_);
    root_.Clear();
    Set({}, *data);
    if (first) {
      touched.insert("*");
      return touched;
    }
    static const JsonValue kNull;
    auto children = [](const JsonValue& v) {
      return v.kind_case() == JsonValue::kStructValue ? &v.struct_value().fields() : nullptr;
    };
    const auto* old_fields = children(before);
    const auto* new_fields = children(root_);
    auto at = [](const google::protobuf::Map<std::string, JsonValue>* f,
                 const std::string& k) -> const JsonValue& {
      if (f == nullptr) return kNull;
      auto it = f->find(k);
      return it == f->end() ? kNull : it->second;
    };
    std::set<std::string> keys;
    if (old_fields != nullptr) for (const auto& [k, v] : *old_fields) keys.insert(k);
    if (new_fields != nullptr) for (const auto& [k, v] : *new_fields) keys.insert(k);
    for (const std::string& k : keys) {
      if (!google::protobuf::util::MessageDifferencer::Equals(at(old_fields, k),
                                                              at(new_fields, k))) {
        touched.insert(k);
      }
    }
    return touched;
  }
  // Patch: each key is a relative path below `base`.
  if (data->kind_case() != JsonValue::kStructValue) {
    return absl::InvalidArgumentError("patch data at " + event.path + " is not an object");
  }
  for (const auto& [key, value] : data->struct_value().fields()) {
    std::vector<std::string> path = base;
    for (std::string& s : SplitPath(key)) path.push_back(std::move(s));
    if (path.empty()) continue;
    touched.insert(path[0]);
    Set(path, value);
  }
  return touched;
}

}  // namespace cnet::federation
