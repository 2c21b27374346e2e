// Input checks of the registry, one function per kind of field, shared by
// the core (which validates every request once, before touching state) and
// reusable by tools that want to reject bad input early.
//
// Every failure is INVALID_ARGUMENT with one line naming the field (dotted,
// with indexes: `capabilities[3]`, `card.skills[0].id`) and what is wrong,
// e.g. `capabilities[3] "Py Thon": must match [a-z0-9._-]{1,64}`.
#ifndef CNET_SERVICES_REGISTRY_VALIDATION_H_
#define CNET_SERVICES_REGISTRY_VALIDATION_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "proto/claudenet/v1/registry.pb.h"

namespace cnet::registry {

// Size limits of the API (registry.proto).
inline constexpr size_t kMaxIdBytes = 128;
inline constexpr size_t kMaxNameBytes = 128;
inline constexpr size_t kMaxCapabilityBytes = 64;
inline constexpr size_t kMaxNodeBytes = 64;
inline constexpr size_t kMaxLocationBytes = 128;
inline constexpr size_t kMaxVersionBytes = 64;
inline constexpr size_t kMaxStatusMessageBytes = 256;
inline constexpr size_t kMaxReasonBytes = 256;
inline constexpr size_t kMaxTokenBytes = 512;
inline constexpr int kMaxFilterValues = 64;
inline constexpr int kMaxIdList = 1000;
inline constexpr int kMaxPageSize = 1000;
inline constexpr int kDefaultPageSize = 100;

// A value quoted for an error message: C-escaped, cut at 64 bytes.
std::string Quote(std::string_view value);

// `field "value": reason` as INVALID_ARGUMENT.
absl::Status Invalid(std::string_view field, std::string_view value, std::string_view reason);
// `field: reason` as INVALID_ARGUMENT.
absl::Status Invalid(std::string_view field, std::string_view reason);

// Agent ids: 1..128 bytes of [A-Za-z0-9._-], starting with a letter or a
// digit; ids containing ':' and the id `broadcast` are reserved.
absl::Status CheckAgentId(std::string_view field, std::string_view id);
// Capability names: [a-z0-9._-]{1,64}.
absl::Status CheckCapability(std::string_view field, std::string_view name);
// A list of capabilities: at most `max` entries, each a capability name.
absl::Status CheckCapabilities(std::string_view field,
                               const google::protobuf::RepeatedPtrField<std::string>& names,
                               int max);
// Node names: [A-Za-z0-9._-]{1,64}.
absl::Status CheckNodeName(std::string_view field, std::string_view node);
// A string of at most `max` bytes; `required` = at least 1 byte.
absl::Status CheckText(std::string_view field, std::string_view text, size_t max,
                       bool required = false);
// An absolute URL (scheme://rest), at most 2048 bytes; empty is accepted.
absl::Status CheckUrl(std::string_view field, std::string_view url);

absl::Status CheckStatus(std::string_view field, int status);
absl::Status CheckHealth(std::string_view field, int health);
absl::Status CheckKind(std::string_view field, int kind);
absl::Status CheckSurface(std::string_view field, int surface);
absl::Status CheckLocality(std::string_view field, int locality);
absl::Status CheckEventType(std::string_view field, int type);

// Self-reported metrics: counters >= 0, load finite in [0, 1000],
// active_tasks 0..10000, at most 32 custom entries with name keys and
// finite values.
absl::Status CheckMetrics(std::string_view field, const claudenet::v1::AgentMetrics& metrics);
// Metadata: at most 64 entries, keys [A-Za-z0-9._/-]{1,64}, values at most
// 1024 bytes, 16 KiB in total.
absl::Status CheckMetadata(std::string_view field,
                           const google::protobuf::Map<std::string, std::string>& metadata);
// Agent card information, limits as in AgentCardInfo / AgentSkill.
absl::Status CheckCard(std::string_view field, const claudenet::v1::AgentCardInfo& card);
// Ed25519 only, exactly 32 key bytes.
absl::Status CheckPublicKey(std::string_view field, const claudenet::v1::PublicKey& key);

// Every field of a registration request (limits.max_capabilities = `max_capabilities`).
absl::Status CheckRegisterRequest(const claudenet::v1::RegisterRequest& request,
                                  int max_capabilities);

// Sorted, duplicates removed.
std::vector<std::string> NormalizeCapabilities(
    const google::protobuf::RepeatedPtrField<std::string>& names);

}  // namespace cnet::registry

#endif  // CNET_SERVICES_REGISTRY_VALIDATION_H_
