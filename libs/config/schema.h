// The table of every configuration key of Claude Network.
//
// One row per key: its dotted name, type, default, secrecy, limits, the rule
// that makes it required, its environment names and a one-line description.
// The loader validates every layer against this table, config.example.yaml
// documents it, and the config service serves it; nothing else lists keys.
//
// This unit also owns the value syntax: parsing text (from YAML or the
// environment) into a typed value and rendering its canonical text.
#ifndef CNET_LIBS_CONFIG_SCHEMA_H_
#define CNET_LIBS_CONFIG_SCHEMA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cnet::config {

enum class ValueType { kString, kInt, kDouble, kBool, kDuration, kStringList };

// "string", "integer", "number", "bool", "duration", "list".
std::string_view ValueTypeName(ValueType type);

// Syntax a string value (or each item of a list) must follow beyond its type.
// Empty strings are exempt: emptiness is governed by `required` rules.
enum class Format {
  kNone,
  kPath,      // "~" or "~/..." at the start expands to the home directory.
  kUrl,       // https://..., or http://127.0.0.1 / http://localhost (tests).
  kHostPort,  // host:port with port 0..65535 (0 = any free port), or unix:PATH.
  kRepo,      // A GitHub repository, "owner/name".
  kName,      // A short name such as a capability: [a-z0-9._-]{1,64}.
};

// One row of the table.
struct KeySpec {
  std::string_view key;            // Dotted, e.g. "network.health.healthy_max".
  ValueType type = ValueType::kString;
  std::string_view default_value;  // Canonical text; lists comma-separated.
  std::string_view description;    // One line, units included.
  bool secret = false;             // Never shown or logged in clear.
  bool required = false;           // Must never be empty.
  std::string_view required_when;  // A bool key: when true, this is required.
  Format format = Format::kNone;
  // Inclusive bounds for int and double values; in seconds for durations.
  std::optional<double> min;
  std::optional<double> max;
  // For strings: the accepted values, matched case-insensitively and stored
  // in the spelling given here. Empty = any value.
  std::vector<std::string_view> allowed;
  // The seed's environment names, tried in order after the generic name.
  std::vector<std::string_view> env_aliases;
};

// Two keys whose values must be ordered: lower < upper (or <= when
// `strict` is false). Both keys have the same numeric or duration type.
struct Ordering {
  std::string_view lower;
  std::string_view upper;
  bool strict = true;
};

// Every key, grouped by section, in a stable order.
const std::vector<KeySpec>& Schema();

// The cross-key ordering rules (health thresholds, backoff bounds, ...).
const std::vector<Ordering>& Orderings();

// The row for `key`, or nullptr when no such key exists.
const KeySpec* FindKey(std::string_view key);

// Position of `key` in Schema(), or -1 when unknown.
int KeyIndex(std::string_view key);

// True when `prefix` names a section holding keys, e.g. "network" or
// "network.health".
bool IsSection(std::string_view prefix);

// The closest known key or section to a misspelled one, or "" when nothing
// is close enough to be a plausible typo.
std::string SuggestKey(std::string_view unknown);

// The generic environment variable of a key: "CNET_" + the key upper-cased
// with "." replaced by "__" (network.health.healthy_max ->
// CNET_NETWORK__HEALTH__HEALTHY_MAX).
std::string GenericEnvName(std::string_view key);

// A parsed value, by type: kString -> std::string, kInt -> int64_t,
// kDouble -> double, kBool -> bool, kDuration -> absl::Duration,
// kStringList -> std::vector<std::string>.
using Value = std::variant<std::string, int64_t, double, bool, absl::Duration,
                           std::vector<std::string>>;

struct ParsedValue {
  Value value;
  std::string canonical;  // "15s", "true", "a,b", "0.1", ...
};

// Parses `text` for `spec`: lists are comma-separated (items trimmed, empty
// items dropped); a duration is "500ms", "15s", "5m", "1h30m" or a bare
// number of seconds; bools are true/false/yes/no/1/0 in any case. Checks the
// format, bounds, allowed set and `required`. Path values starting with "~"
// expand to `home_dir` when it is not empty.
// On failure returns INVALID_ARGUMENT whose message is the reason alone
// (no key), never echoing the value of a secret.
absl::StatusOr<ParsedValue> ParseText(const KeySpec& spec,
                                      std::string_view text,
                                      std::string_view home_dir);

// Like ParseText for a list key whose items come one by one (a YAML
// sequence). Items must be non-empty and free of commas.
absl::StatusOr<ParsedValue> ParseItems(const KeySpec& spec,
                                       const std::vector<std::string>& items,
                                       std::string_view home_dir);

// A numeric view of an int, double or duration value (durations in
// seconds), used for ordering rules.
double NumericValue(const Value& value);

}  // namespace cnet::config

#endif  // CNET_LIBS_CONFIG_SCHEMA_H_
