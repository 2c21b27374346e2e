// The config service's core: owns the effective configuration of this node,
// reloads it when a layer file changes (inotify) or on request (SIGHUP,
// Reload rpc), applies runtime overrides, and publishes every change as an
// event with a sequence number.
//
// Invariants:
//  - current() is always a valid configuration: a reload that finds issues
//    keeps the previous one in effect and publishes an event carrying the
//    issues instead of changes.
//  - A runtime override is validated (alone and against every cross-key
//    rule) before the overrides file is touched; the file is replaced
//    atomically (0600). Overrides persist across restarts because the file is
//    itself a layer that every service loads at start.
//  - Events are published in sequence order; sequence numbers start at 1 for
//    each process lifetime.
#ifndef CNET_SERVICES_CONFIG_CONFIG_CORE_H_
#define CNET_SERVICES_CONFIG_CONFIG_CORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "libs/clock/clock.h"
#include "libs/config/loader.h"
#include "libs/files/file_watcher.h"
#include "libs/stream/event_hub.h"

namespace cnet::configsvc {

enum class ChangeCause {
  kInitial,
  kFileChanged,
  kSignalReload,
  kRequestedReload,
  kOverrideSet,
  kOverrideDeleted,
};

struct ValueChange {
  std::string key;
  std::string old_value;  // rendered, secrets redacted
  std::string new_value;
  config::Source old_source;
  config::Source new_source;
};

struct ConfigEvent {
  int64_t sequence = 0;
  absl::Time time;
  ChangeCause cause = ChangeCause::kInitial;
  std::vector<ValueChange> changes;
  // Non-empty when a reload found the layers invalid; the previous
  // configuration stays in effect.
  std::vector<config::Issue> issues;
};

class ConfigCore {
 public:
  // Loads the layers; INVALID_ARGUMENT (first issue) when they are invalid.
  static absl::StatusOr<std::unique_ptr<ConfigCore>> Create(
      config::LoadOptions options, Clock* clock);
  ~ConfigCore();

  std::shared_ptr<const config::Config> current() const;

  // Re-reads every layer. Publishes an event when values changed or when the
  // layers are invalid; returns it (sequence 0 when nothing changed).
  ConfigEvent Reload(ChangeCause cause);

  // Sets `key` to `value` in the runtime override layer. INVALID_ARGUMENT
  // when the key is unknown or the value invalid, alone or with the other
  // keys (e.g. thresholds out of order); nothing is written then.
  absl::StatusOr<config::Config::Entry> SetOverride(const std::string& key,
                                                    const std::string& value);
  // NOT_FOUND when `key` has no override.
  absl::Status DeleteOverride(const std::string& key);
  // Key -> value of every override (secrets redacted).
  absl::StatusOr<std::map<std::string, std::string>> ListOverrides() const;

  // Starts watching the layer files; changes trigger Reload(kFileChanged).
  absl::Status WatchFiles();

  // Paths of the file layers, highest first (they need not exist).
  std::vector<std::string> LayerFiles() const;

  const std::string& overrides_path() const { return overrides_path_; }
  EventHub<ConfigEvent>* hub() { return &hub_; }
  int64_t last_sequence() const;

 private:
  ConfigCore(config::LoadOptions options, Clock* clock, config::Config initial);
  // Publishes under mu_ so sequence order is publication order.
  ConfigEvent PublishLocked(ChangeCause cause, const config::Config& before,
                            const config::Config& after,
                            std::vector<config::Issue> issues)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyOverridesLocked(const std::map<std::string, std::string>& values,
                                    ChangeCause cause)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const config::LoadOptions options_;
  Clock* const clock_;
  std::string overrides_path_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const config::Config> current_ ABSL_GUARDED_BY(mu_);
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  EventHub<ConfigEvent> hub_;
  std::unique_ptr<FileWatcher> watcher_;
};

std::string_view ChangeCauseName(ChangeCause cause);

}  // namespace cnet::configsvc

#endif  // CNET_SERVICES_CONFIG_CONFIG_CORE_H_
