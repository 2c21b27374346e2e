#include "services/skills/value.h"

#include <cmath>

namespace cnet::skills {
namespace {
constexpr double kMaxExactInt = 9007199254740992.0;  // 2^53
}  // namespace

std::string TypeName(ValueType type) {
  switch (type) {
    case ValueType::kAny: return "any";
    case ValueType::kString: return "string";
    case ValueType::kInt: return "int";
    case ValueType::kFloat: return "float";
    case ValueType::kBool: return "bool";
    case ValueType::kList: return "list";
    case ValueType::kMap: return "map";
  }
  return "any";
}

bool ParseTypeName(std::string_view name, ValueType* type) {
  static const std::pair<std::string_view, ValueType> kNames[] = {
      {"string", ValueType::kString}, {"int", ValueType::kInt},
      {"float", ValueType::kFloat},   {"bool", ValueType::kBool},
      {"list", ValueType::kList},     {"map", ValueType::kMap},
  };
  for (const auto& [n, t] : kNames) {
    if (n == name) {
      *type = t;
      return true;
    }
  }
  return false;
}

std::string TypeOf(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "int";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "string";
    case Json::value_t::array: return "list";
    case Json::value_t::object: return "map";
    default: return "binary";
  }
}

bool Conforms(const Json& value, ValueType type) {
  switch (type) {
    case ValueType::kAny: return true;
    case ValueType::kString: return value.is_string();
    case ValueType::kInt:
      if (value.is_number_unsigned()) return value.get<uint64_t>() < kMaxExactInt;
      if (value.is_number_integer()) {
        return std::fabs(static_cast<double>(value.get<int64_t>())) < kMaxExactInt;
      }
      return false;
    case ValueType::kFloat:
      return value.is_number() &&
             (value.is_number_float() ? std::isfinite(value.get<double>()) : true);
    case ValueType::kBool: return value.is_boolean();
    case ValueType::kList: return value.is_array();
    case ValueType::kMap: return value.is_object();
  }
  return false;
}

Json CoerceTo(const Json& value, ValueType type) {
  if (type == ValueType::kFloat && value.is_number() && !value.is_number_float()) {
    return Json(value.get<double>());
  }
  return value;
}

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Describe(const Json& value) {
  std::string text = Dump(value);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

}  // namespace cnet::skills
