// Loads Claude Network's effective configuration from its layers.
//
// Layers, highest precedence first:
//   1. runtime overrides  <services.data_dir>/config-overrides.yaml, written
//                         by the config service's SetOverride (optional)
//   2. environment        CNET_<KEY> for every key, plus the seed's names
//   3. user file          <home>/.claude-network/config.yaml
//   4. project file       <project_dir>/config.yaml
//   5. example file       <project_dir>/config.example.yaml
//   6. built-in defaults  the schema table (schema.h)
// A file that does not exist is an absent layer, not an error. The data_dir
// that locates the overrides file is resolved from layers 2-6 first.
//
// Environment: every key has the generic name "CNET_" + key upper-cased with
// "." replaced by "__" (CNET_NETWORK__HEALTH__HEALTHY_MAX); some keys also
// accept the seed's names (FIREBASE_URL, CLAUDE_AGENT_ID, ...: see
// KeySpec::env_aliases). When several are set, the generic name wins, then
// the aliases in table order. An empty variable counts as unset. Lists are
// comma-separated. A CNET_ variable containing "__" that names no key is
// reported (CNET_ names without "__", such as the CLI's CNET_TOKEN, are not
// configuration and are left alone).
//
// YAML files nest sections as maps (network: {health: {healthy_max: 30s}})
// or use dotted keys (network.health.healthy_max: 30s), or mix both. A null
// value (`url:` or `url: ~`) leaves the key to lower layers; `""` sets it
// empty. Lists are YAML sequences. "~" at the start of a path value expands
// to the home directory.
//
// Validation collects every issue of every layer (syntax, structure,
// unknown keys with a suggestion, types, bounds, allowed values, required
// values, ordering of related keys). An invalid value is skipped, so the
// lower layers' value stays in effect in LoadResult::config; Load() fails.
//
// Nothing here reads the process environment except LoadOptions::FromProcess.
#ifndef CNET_LIBS_CONFIG_LOADER_H_
#define CNET_LIBS_CONFIG_LOADER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/schema.h"

namespace cnet::config {

enum class Layer {
  kDefault,
  kExampleFile,
  kProjectFile,
  kUserFile,
  kEnvironment,
  kRuntimeOverride,
};

// "default", "example file", "project file", "user file", "environment",
// "runtime override".
std::string_view LayerName(Layer layer);

// Where a value came from. `origin` is the file path, the environment
// variable's name, or "built-in default". Line and column are 1-based
// positions in a file; 0 when not applicable.
struct Source {
  Layer layer = Layer::kDefault;
  std::string origin;
  int line = 0;
  int column = 0;
};

// One problem found in a layer.
struct Issue {
  Layer layer = Layer::kDefault;
  std::string origin;
  int line = 0;
  int column = 0;
  std::string key;     // Dotted key; empty when the issue concerns no key.
  std::string reason;  // Never contains a secret's value.

  // "origin:line:column: key: reason"; the position is left out when line
  // is 0 and the key when empty, e.g.
  // /home/u/.claude-network/config.yaml:7:23: network.heartbeat_interval:
  // expected a duration like "15s", got "fast"
  std::string ToString() const;
};

namespace internal {
class ConfigBuilder;
}

// The immutable effective configuration: one value per schema key, with its
// source. Cheap to copy around by const reference; safe to share between
// threads.
class Config {
 public:
  struct Entry {
    const KeySpec* spec = nullptr;
    // Canonical text ("15s", "true", "a,b"). Secrets are redacted here:
    // "***" when set to a non-empty value, "" otherwise.
    std::string rendered;
    Source source;
    bool is_set = false;  // Given by a layer above the built-in defaults.
  };

  // The built-in defaults; paths keep their leading "~".
  Config();

  // Typed getters. An unknown key or a getter of the wrong type is a
  // programming error: the process aborts with a message naming the key.
  // Secrets are returned in clear; never log them.
  std::string GetString(std::string_view key) const;
  int64_t GetInt(std::string_view key) const;
  double GetDouble(std::string_view key) const;
  bool GetBool(std::string_view key) const;
  absl::Duration GetDuration(std::string_view key) const;
  std::vector<std::string> GetStringList(std::string_view key) const;

  // Every key, in schema order.
  const std::vector<Entry>& entries() const { return entries_; }

  // The entry of `key`; aborts on an unknown key.
  const Entry& entry(std::string_view key) const;

  // The value's text as it may be shown: canonical, secrets redacted.
  std::string Display(std::string_view key) const;

  // Keys whose values differ (secrets compared in clear, reported by name
  // only), in schema order. For the config service's Watch.
  std::vector<std::string> ChangedKeys(const Config& other) const;

 private:
  friend class internal::ConfigBuilder;

  struct Raw {};
  explicit Config(Raw) {}  // Holds nothing; ConfigBuilder fills it.

  const Value& Get(std::string_view key, ValueType type) const;

  std::vector<Entry> entries_;
  std::vector<Value> values_;
  std::vector<std::string> canonical_;  // Clear text, secrets included.
};

// Everything the loader reads, injected so tests control it.
struct LoadOptions {
  std::string project_dir;  // Holds config.yaml, config.example.yaml; "" = none.
  std::string home_dir;     // Holds .claude-network/config.yaml; "" = none.
  std::map<std::string, std::string> env;
  // The runtime overrides file; unset = <services.data_dir>/config-overrides.yaml.
  std::optional<std::string> overrides_file;
  // When set, these key -> value pairs (text as in ValidateValue) stand in
  // for the overrides file's content, which is then not read. Lets the
  // config service check a candidate override against every rule before
  // writing it.
  std::optional<std::map<std::string, std::string>> override_values;

  // The real process: the working directory, $HOME (else the passwd
  // entry's home) and the whole environment.
  static LoadOptions FromProcess();
};

struct LoadResult {
  Config config;              // Effective values; invalid ones skipped.
  std::vector<Issue> issues;  // Every problem, in layer order.
  bool ok() const { return issues.empty(); }
};

// Loads every layer and reports all issues.
LoadResult LoadLayers(const LoadOptions& options);

// Loads every layer; INVALID_ARGUMENT on any issue, with the first issue's
// ToString() followed by " (and N more)" when there are others.
absl::StatusOr<Config> Load(const LoadOptions& options);

// Validates a YAML document as a project config.yaml over the built-in
// defaults (the environment is not consulted). For the ValidateConfig rpc.
std::vector<Issue> ValidateDocument(std::string_view yaml_text,
                                    std::string_view origin);

// Checks that `key` exists, may be overridden at runtime, and that `value`
// (text as in the environment: lists comma-separated) is valid for it.
// INVALID_ARGUMENT naming the key and the reason otherwise.
// Cross-key rules are not checked here: load with
// LoadOptions::override_values for that.
absl::Status ValidateValue(std::string_view key, std::string_view value);

// Reads a runtime overrides file: a flat YAML map of dotted key -> value.
// Values come back as canonical text (lists comma-separated, paths
// unexpanded). A missing file is an empty map; an invalid one is
// INVALID_ARGUMENT with the first issue.
absl::StatusOr<std::map<std::string, std::string>> ReadOverrides(
    const std::string& path);

// Replaces the overrides file with `values` after validating every pair
// with ValidateValue; on any error the file is left untouched. Writes a
// temporary file in the same directory (created 0700 if missing), fsyncs
// it, sets mode 0600 and renames it over `path`, then fsyncs the directory.
absl::Status WriteOverrides(const std::string& path,
                            const std::map<std::string, std::string>& values);

// The overrides file's name inside services.data_dir.
inline constexpr std::string_view kOverridesFileName = "config-overrides.yaml";

}  // namespace cnet::config

#endif  // CNET_LIBS_CONFIG_LOADER_H_
