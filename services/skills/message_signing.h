// The canonical signing encoding of a MACS message (CNET-MSG-V1, defined in
// proto/claudenet/v1/macs.proto) and its HMAC-SHA256 signature, so that the
// skills service can send signed messages on behalf of the running agent
// when security.use_message_signing is on.
#ifndef CNET_SERVICES_SKILLS_MESSAGE_SIGNING_H_
#define CNET_SERVICES_SKILLS_MESSAGE_SIGNING_H_

#include <string>

#include "google/protobuf/struct.pb.h"
#include "proto/claudenet/v1/macs.pb.h"

namespace cnet::skills {

// RFC 8785 (JCS) canonical JSON of a Struct ("{}" when empty).
std::string CanonicalJson(const google::protobuf::Struct& s);
// ECMAScript Number.prototype.toString of a finite double.
std::string EcmaNumber(double x);
// The bytes that are signed.
std::string CanonicalMessage(const claudenet::v1::Message& m);
// Lower-case hex HMAC-SHA256 of CanonicalMessage(m) keyed with `secret`.
std::string SignMessage(const claudenet::v1::Message& m, const std::string& secret);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_MESSAGE_SIGNING_H_
