// Conversions between the engine's JSON values and protobuf's Struct/Value
// (the wire form of inputs, arguments and outputs). Integral numbers below
// 2^53 become JSON integers, so a declared `int` input given as 3 checks.
#ifndef CNET_SERVICES_SKILLS_JSON_PROTO_H_
#define CNET_SERVICES_SKILLS_JSON_PROTO_H_

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"
#include "services/skills/value.h"

namespace cnet::skills {

Json FromProtoValue(const google::protobuf::Value& v);
Json FromProtoStruct(const google::protobuf::Struct& s);
void ToProtoValue(const Json& j, google::protobuf::Value* out);
// Non-object values give an empty Struct.
void ToProtoStruct(const Json& j, google::protobuf::Struct* out);

// RFC 3339 UTC ("2025-01-02T03:04:05Z", fraction when non-zero); "" for unset.
std::string TimeText(const google::protobuf::Timestamp& t);
std::string TimeText(absl::Time t);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_JSON_PROTO_H_
