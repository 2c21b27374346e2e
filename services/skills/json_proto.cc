#include "services/skills/json_proto.h"

#include <cmath>

namespace cnet::skills {

Json FromProtoValue(const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kNullValue: return nullptr;
    case google::protobuf::Value::kBoolValue: return v.bool_value();
    case google::protobuf::Value::kNumberValue: {
      double d = v.number_value();
      if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0) {
        return static_cast<int64_t>(d);
      }
      return d;
    }
    case google::protobuf::Value::kStringValue: return v.string_value();
    case google::protobuf::Value::kStructValue: return FromProtoStruct(v.struct_value());
    case google::protobuf::Value::kListValue: {
      Json out = Json::array();
      for (const auto& e : v.list_value().values()) out.push_back(FromProtoValue(e));
      return out;
    }
    default: return nullptr;
  }
}

Json FromProtoStruct(const google::protobuf::Struct& s) {
  Json out = Json::object();
  for (const auto& [k, v] : s.fields()) out[k] = FromProtoValue(v);
  return out;
}

void ToProtoValue(const Json& j, google::protobuf::Value* out) {
  switch (j.type()) {
    case Json::value_t::null: out->set_null_value(google::protobuf::NULL_VALUE); break;
    case Json::value_t::boolean: out->set_bool_value(j.get<bool>()); break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: out->set_number_value(j.get<double>()); break;
    case Json::value_t::string: out->set_string_value(j.get<std::string>()); break;
    case Json::value_t::array: {
      auto* list = out->mutable_list_value();
      for (const Json& e : j) ToProtoValue(e, list->add_values());
      break;
    }
    case Json::value_t::object: ToProtoStruct(j, out->mutable_struct_value()); break;
    default: out->set_null_value(google::protobuf::NULL_VALUE); break;
  }
}

void ToProtoStruct(const Json& j, google::protobuf::Struct* out) {
  out->Clear();
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end(); ++it) {
    ToProtoValue(it.value(), &(*out->mutable_fields())[it.key()]);
  }
}

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return TimeText(absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()));
}

std::string TimeText(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::UnixEpoch()) return "";
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

}  // namespace cnet::skills
