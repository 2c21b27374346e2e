// Values that flow through skills: inputs, step arguments and outputs.
//
// The skill engine works on JSON values (nlohmann::json), which keep the
// distinction the skill format needs between integers and floats. This
// header names the six declared types of the format and the one check the
// whole service uses to decide whether a value has a declared type.
#ifndef CNET_SERVICES_SKILLS_VALUE_H_
#define CNET_SERVICES_SKILLS_VALUE_H_

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace cnet::skills {

using Json = nlohmann::json;

// Declared types (SkillValueType in skills.proto). kAny is internal: an
// action argument or an output without a declared type.
enum class ValueType { kAny, kString, kInt, kFloat, kBool, kList, kMap };

// "string", "int", "float", "bool", "list", "map" ("any" for kAny).
std::string TypeName(ValueType type);
// Parses a type name as written in YAML; false if unknown.
bool ParseTypeName(std::string_view name, ValueType* type);

// The type of a value as users read it in messages: "string", "int",
// "float", "bool", "list", "map" or "null".
std::string TypeOf(const Json& value);

// True when `value` may be used where `type` is declared. An int is
// accepted for a float; integers must satisfy |x| < 2^53; null conforms to
// nothing but kAny.
bool Conforms(const Json& value, ValueType type);

// `value` converted to the declared type when Conforms() (int -> float);
// otherwise unchanged.
Json CoerceTo(const Json& value, ValueType type);

// Compact JSON text, used for messages and size caps.
std::string Dump(const Json& value);

// A short rendering for one-line messages: strings quoted, long values cut.
std::string Describe(const Json& value);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_VALUE_H_
