#include "services/tasks/notifier.h"

#include "google/protobuf/struct.pb.h"

namespace cnet::tasks {

// Stored as a google.protobuf.Struct: self-describing, and readable with any
// protobuf tool when inspecting the notices table.
std::string Notice::Serialize() const {
  google::protobuf::Struct s;
  auto& f = *s.mutable_fields();
  f["id"].set_string_value(id);
  f["recipient"].set_string_value(recipient);
  f["task_id"].set_string_value(task_id);
  f["kind"].set_string_value(kind);
  f["subject"].set_string_value(subject);
  f["body"].set_string_value(body);
  f["urgent"].set_bool_value(urgent);
  f["created_us"].set_number_value(static_cast<double>(absl::ToUnixMicros(created)));
  return s.SerializeAsString();
}

bool Notice::Parse(const std::string& text, Notice* out) {
  google::protobuf::Struct s;
  if (!s.ParseFromString(text)) return false;
  const auto& f = s.fields();
  auto str = [&](const char* k) {
    auto it = f.find(k);
    return it == f.end() ? std::string() : it->second.string_value();
  };
  out->id = str("id");
  out->recipient = str("recipient");
  out->task_id = str("task_id");
  out->kind = str("kind");
  out->subject = str("subject");
  out->body = str("body");
  auto u = f.find("urgent");
  out->urgent = u != f.end() && u->second.bool_value();
  auto c = f.find("created_us");
  out->created = absl::FromUnixMicros(
      c == f.end() ? 0 : static_cast<int64_t>(c->second.number_value()));
  return !out->id.empty();
}

}  // namespace cnet::tasks
