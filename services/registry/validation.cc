#include "services/registry/validation.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace cnet::registry {
namespace pb = claudenet::v1;

namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

bool IsCapabilityChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' ||
         c == '-';
}
bool IsIdChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
}
bool IsMetadataKeyChar(char c) { return IsIdChar(c) || c == '/'; }

std::string Indexed(std::string_view field, int i) {
  return absl::StrCat(Sv(field), "[", i, "]");
}
std::string Sub(std::string_view field, std::string_view name) {
  return absl::StrCat(Sv(field), ".", Sv(name));
}

absl::Status CheckList(std::string_view field,
                       const google::protobuf::RepeatedPtrField<std::string>& items,
                       int max_items, size_t max_bytes) {
  if (items.size() > max_items) {
    return Invalid(field, absl::StrCat(items.size(), " entries, at most ", max_items));
  }
  for (int i = 0; i < items.size(); ++i) {
    absl::Status s = CheckText(Indexed(field, i), items[i], max_bytes, /*required=*/true);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckEnum(std::string_view field, int value, int max) {
  if (value < 0 || value > max) {
    return Invalid(field, absl::StrCat("unknown value ", value));
  }
  return absl::OkStatus();
}

}  // namespace

std::string Quote(std::string_view value) {
  std::string shown(value.substr(0, 64));
  std::string quoted = absl::StrCat("\"", absl::CHexEscape(shown), "\"");
  if (value.size() > 64) quoted += "...";
  return quoted;
}

absl::Status Invalid(std::string_view field, std::string_view value, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(field), " ", Quote(value), ": ", Sv(reason)));
}

absl::Status Invalid(std::string_view field, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(field), ": ", Sv(reason)));
}

absl::Status CheckAgentId(std::string_view field, std::string_view id) {
  if (id.empty()) return Invalid(field, "empty (an agent id is 1..128 bytes)");
  if (id.size() > kMaxIdBytes) {
    return Invalid(field, id, absl::StrCat("longer than 128 bytes (", id.size(), ")"));
  }
  if (id.find(':') != std::string_view::npos || id == "broadcast") {
    return Invalid(field, id, "reserved id (ids with ':' and `broadcast` are reserved)");
  }
  if (!absl::ascii_isalnum(id[0]) || !std::all_of(id.begin(), id.end(), IsIdChar)) {
    return Invalid(field, id, "must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  }
  return absl::OkStatus();
}

absl::Status CheckCapability(std::string_view field, std::string_view name) {
  if (name.empty() || name.size() > kMaxCapabilityBytes ||
      !std::all_of(name.begin(), name.end(), IsCapabilityChar)) {
    return Invalid(field, name, "must match [a-z0-9._-]{1,64}");
  }
  return absl::OkStatus();
}

absl::Status CheckCapabilities(std::string_view field,
                               const google::protobuf::RepeatedPtrField<std::string>& names,
                               int max) {
  if (names.size() > max) {
    return Invalid(field, absl::StrCat(names.size(), " capabilities, at most ", max));
  }
  for (int i = 0; i < names.size(); ++i) {
    absl::Status s = CheckCapability(Indexed(field, i), names[i]);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckNodeName(std::string_view field, std::string_view node) {
  if (node.empty() || node.size() > kMaxNodeBytes ||
      !std::all_of(node.begin(), node.end(), IsIdChar)) {
    return Invalid(field, node, "must match [A-Za-z0-9._-]{1,64}");
  }
  return absl::OkStatus();
}

absl::Status CheckText(std::string_view field, std::string_view text, size_t max,
                       bool required) {
  if (required && text.empty()) return Invalid(field, "empty");
  if (text.size() > max) {
    return Invalid(field, absl::StrCat("longer than ", max, " bytes (", text.size(), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckUrl(std::string_view field, std::string_view url) {
  if (url.empty()) return absl::OkStatus();
  if (url.size() > 2048) {
    return Invalid(field, absl::StrCat("longer than 2048 bytes (", url.size(), ")"));
  }
  size_t sep = url.find("://");
  bool ok = sep != std::string_view::npos && sep > 0 && sep + 3 < url.size() &&
            absl::ascii_isalpha(url[0]);
  for (size_t i = 0; ok && i < sep; ++i) {
    char c = url[i];
    ok = absl::ascii_isalnum(c) || c == '+' || c == '.' || c == '-';
  }
  for (size_t i = 0; ok && i < url.size(); ++i) {
    ok = !absl::ascii_isspace(url[i]) && !absl::ascii_iscntrl(url[i]);
  }
  if (!ok) return Invalid(field, url, "not an absolute URL (scheme://...)");
  return absl::OkStatus();
}

absl::Status CheckStatus(std::string_view field, int status) {
  return CheckEnum(field, status, pb::AgentStatus_MAX);
}
absl::Status CheckHealth(std::string_view field, int health) {
  return CheckEnum(field, health, pb::Health_MAX);
}
absl::Status CheckKind(std::string_view field, int kind) {
  return CheckEnum(field, kind, pb::AgentKind_MAX);
}
absl::Status CheckSurface(std::string_view field, int surface) {
  return CheckEnum(field, surface, pb::Surface_MAX);
}
absl::Status CheckLocality(std::string_view field, int locality) {
  return CheckEnum(field, locality, pb::Locality_MAX);
}
absl::Status CheckEventType(std::string_view field, int type) {
  if (type <= 0 || type > pb::AgentEventType_MAX) {
    return Invalid(field, absl::StrCat("unknown event type ", type));
  }
  return absl::OkStatus();
}

absl::Status CheckMetrics(std::string_view field, const pb::AgentMetrics& m) {
  struct Counter {
    const char* name;
    int64_t value;
  };
  for (const Counter& c : {Counter{"messages_sent", m.messages_sent()},
                           Counter{"messages_received", m.messages_received()},
                           Counter{"errors", m.errors()}}) {
    if (c.value < 0) {
      return Invalid(Sub(field, c.name), absl::StrCat("negative (", c.value, ")"));
    }
  }
  if (m.uptime().seconds() < 0 || m.uptime().nanos() < 0) {
    return Invalid(Sub(field, "uptime"), "negative");
  }
  if (!std::isfinite(m.load()) || m.load() < 0 || m.load() > 1000) {
    return Invalid(Sub(field, "load"),
                   absl::StrCat("must be finite and within [0, 1000] (", m.load(), ")"));
  }
  if (m.active_tasks() < 0 || m.active_tasks() > 10000) {
    return Invalid(Sub(field, "active_tasks"),
                   absl::StrCat("must be within 0..10000 (", m.active_tasks(), ")"));
  }
  if (m.custom_size() > 32) {
    return Invalid(Sub(field, "custom"), absl::StrCat(m.custom_size(), " entries, at most 32"));
  }
  for (const auto& [key, value] : m.custom()) {
    std::string f = absl::StrCat(Sv(field), ".custom[", Quote(key), "]");
    if (key.empty() || key.size() > 64 ||
        !std::all_of(key.begin(), key.end(), IsCapabilityChar)) {
      return Invalid(f, "key must match [a-z0-9._-]{1,64}");
    }
    if (!std::isfinite(value)) return Invalid(f, "value is not finite");
  }
  return absl::OkStatus();
}

absl::Status CheckMetadata(std::string_view field,
                           const google::protobuf::Map<std::string, std::string>& metadata) {
  if (metadata.size() > 64) {
    return Invalid(field, absl::StrCat(metadata.size(), " entries, at most 64"));
  }
  size_t total = 0;
  // Sorted, so the first fault reported is the same on every call.
  std::set<std::string> keys;
  for (const auto& kv : metadata) keys.insert(kv.first);
  for (const std::string& key : keys) {
    const std::string& value = metadata.at(key);
    std::string f = absl::StrCat(Sv(field), "[", Quote(key), "]");
    if (key.empty() || key.size() > 64 ||
        !std::all_of(key.begin(), key.end(), IsMetadataKeyChar)) {
      return Invalid(f, "key must match [A-Za-z0-9._/-]{1,64}");
    }
    if (value.size() > 1024) {
      return Invalid(f, absl::StrCat("value longer than 1024 bytes (", value.size(), ")"));
    }
    total += key.size() + value.size();
  }
  if (total > 16 * 1024) {
    return Invalid(field, absl::StrCat(total, " bytes of keys and values, at most 16384"));
  }
  return absl::OkStatus();
}

absl::Status CheckCard(std::string_view field, const pb::AgentCardInfo& card) {
  absl::Status s;
  auto check = [&s](absl::Status next) {
    if (s.ok()) s = std::move(next);
  };
  check(CheckText(Sub(field, "description"), card.description(), 4096));
  check(CheckUrl(Sub(field, "url"), card.url()));
  check(CheckUrl(Sub(field, "documentation_url"), card.documentation_url()));
  check(CheckUrl(Sub(field, "icon_url"), card.icon_url()));
  check(CheckText(Sub(field, "provider_organization"), card.provider_organization(), 256));
  check(CheckUrl(Sub(field, "provider_url"), card.provider_url()));
  check(CheckList(Sub(field, "default_input_modes"), card.default_input_modes(), 16, 128));
  check(CheckList(Sub(field, "default_output_modes"), card.default_output_modes(), 16, 128));
  if (!s.ok()) return s;
  if (card.skills_size() > 64) {
    return Invalid(Sub(field, "skills"), absl::StrCat(card.skills_size(), " skills, at most 64"));
  }
  std::set<std::string> ids;
  for (int i = 0; i < card.skills_size(); ++i) {
    const pb::AgentSkill& skill = card.skills(i);
    std::string f = Indexed(Sub(field, "skills"), i);
    check(CheckCapability(Sub(f, "id"), skill.id()));
    check(CheckText(Sub(f, "name"), skill.name(), 128, /*required=*/true));
    check(CheckText(Sub(f, "description"), skill.description(), 4096, /*required=*/true));
    check(CheckList(Sub(f, "tags"), skill.tags(), 16, 64));
    check(CheckList(Sub(f, "examples"), skill.examples(), 8, 1024));
    check(CheckList(Sub(f, "input_modes"), skill.input_modes(), 16, 128));
    check(CheckList(Sub(f, "output_modes"), skill.output_modes(), 16, 128));
    if (s.ok() && !ids.insert(skill.id()).second) {
      s = Invalid(Sub(f, "id"), skill.id(), "duplicate skill id");
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckPublicKey(std::string_view field, const pb::PublicKey& key) {
  if (key.algorithm() != pb::KEY_ALGORITHM_ED25519) {
    return Invalid(Sub(field, "algorithm"),
                   absl::StrCat("unsupported algorithm ", key.algorithm(),
                                " (only KEY_ALGORITHM_ED25519)"));
  }
  if (key.key().size() != 32) {
    return Invalid(Sub(field, "key"),
                   absl::StrCat("an Ed25519 key is 32 bytes, got ", key.key().size()));
  }
  return absl::OkStatus();
}

absl::Status CheckRegisterRequest(const pb::RegisterRequest& r, int max_capabilities) {
  absl::Status s;
  auto check = [&s](absl::Status next) {
    if (s.ok()) s = std::move(next);
  };
  if (!r.agent_id().empty()) check(CheckAgentId("agent_id", r.agent_id()));
  check(CheckText("name", r.name(), kMaxNameBytes, /*required=*/true));
  check(CheckKind("kind", r.kind()));
  check(CheckCapabilities("capabilities", r.capabilities(), max_capabilities));
  check(CheckSurface("surface", r.surface()));
  check(CheckText("location", r.location(), kMaxLocationBytes));
  if (!r.node().empty()) check(CheckNodeName("node", r.node()));
  check(CheckText("version", r.version(), kMaxVersionBytes));
  check(CheckMetadata("metadata", r.metadata()));
  check(CheckCard("card", r.card()));
  check(CheckStatus("status", r.status()));
  check(CheckText("status_message", r.status_message(), kMaxStatusMessageBytes));
  if (r.has_public_key()) check(CheckPublicKey("public_key", r.public_key()));
  if (!r.spawned_by().empty()) check(CheckAgentId("spawned_by", r.spawned_by()));
  if (s.ok() && (r.max_concurrent_tasks() < 0 || r.max_concurrent_tasks() > 1000)) {
    s = Invalid("max_concurrent_tasks",
                absl::StrCat("must be within 0..1000 (", r.max_concurrent_tasks(), ")"));
  }
  if (r.has_metrics()) check(CheckMetrics("metrics", r.metrics()));
  return s;
}

std::vector<std::string> NormalizeCapabilities(
    const google::protobuf::RepeatedPtrField<std::string>& names) {
  std::vector<std::string> out(names.begin(), names.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace cnet::registry
