#include "services/config/config_core.h"

#include <glog/logging.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace cnet::configsvc {

std::string_view ChangeCauseName(ChangeCause cause) {
  switch (cause) {
    case ChangeCause::kInitial: return "initial";
    case ChangeCause::kFileChanged: return "file changed";
    case ChangeCause::kSignalReload: return "SIGHUP";
    case ChangeCause::kRequestedReload: return "reload requested";
    case ChangeCause::kOverrideSet: return "override set";
    case ChangeCause::kOverrideDeleted: return "override deleted";
  }
  return "unknown";
}

namespace {

std::string OverridesPath(const config::LoadOptions& options,
                          const config::Config& config) {
  if (options.overrides_file) return *options.overrides_file;
  return absl::StrCat(config.GetString("services.data_dir"), "/",
                      std::string(config::kOverridesFileName));
}

absl::Status FirstIssue(const std::vector<config::Issue>& issues) {
  std::string msg = issues.front().ToString();
  if (issues.size() > 1) absl::StrAppend(&msg, " (and ", issues.size() - 1, " more)");
  return absl::InvalidArgumentError(msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConfigCore>> ConfigCore::Create(
    config::LoadOptions options, Clock* clock) {
  config::LoadResult result = config::LoadLayers(options);
  if (!result.ok()) return FirstIssue(result.issues);
  return std::unique_ptr<ConfigCore>(
      new ConfigCore(std::move(options), clock, std::move(result.config)));
}

ConfigCore::ConfigCore(config::LoadOptions options, Clock* clock,
                       config::Config initial)
    : options_(std::move(options)), clock_(clock) {
  overrides_path_ = OverridesPath(options_, initial);
  current_ = std::make_shared<const config::Config>(std::move(initial));
}

ConfigCore::~ConfigCore() {
  watcher_.reset();
  hub_.Close();
}

std::shared_ptr<const config::Config> ConfigCore::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

int64_t ConfigCore::last_sequence() const {
  absl::MutexLock lock(&mu_);
  return sequence_;
}

std::vector<std::string> ConfigCore::LayerFiles() const {
  std::vector<std::string> files = {overrides_path_};
  if (!options_.home_dir.empty()) {
    files.push_back(absl::StrCat(options_.home_dir, "/.claude-network/config.yaml"));
  }
  if (!options_.project_dir.empty()) {
    files.push_back(absl::StrCat(options_.project_dir, "/config.yaml"));
    files.push_back(absl::StrCat(options_.project_dir, "/config.example.yaml"));
  }
  return files;
}

ConfigEvent ConfigCore::PublishLocked(ChangeCause cause, const config::Config& before,
                                      const config::Config& after,
                                      std::vector<config::Issue> issues) {
  ConfigEvent event;
  event.cause = cause;
  event.time = clock_->Now();
  event.issues = std::move(issues);
  if (event.issues.empty()) {
    for (const std::string& key : before.ChangedKeys(after)) {
      const config::Config::Entry& old_entry = before.entry(key);
      const config::Config::Entry& new_entry = after.entry(key);
      event.changes.push_back(
          {key, old_entry.rendered, new_entry.rendered, old_entry.source, new_entry.source});
    }
    if (event.changes.empty()) return event;  // nothing to tell
  }
  event.sequence = ++sequence_;
  hub_.Publish(event);
  return event;
}

ConfigEvent ConfigCore::Reload(ChangeCause cause) {
  // Loading under the lock keeps reloads and override writes in one order:
  // a reload can never put back values older than an override just written.
  absl::MutexLock lock(&mu_);
  config::LoadResult result = config::LoadLayers(options_);
  if (!result.ok()) {
    LOG(WARNING) << "configuration reload (" << ChangeCauseName(cause)
                 << ") found " << result.issues.size()
                 << " issue(s); keeping the previous configuration: "
                 << result.issues.front().ToString();
    return PublishLocked(cause, *current_, *current_, std::move(result.issues));
  }
  auto next = std::make_shared<const config::Config>(std::move(result.config));
  ConfigEvent event = PublishLocked(cause, *current_, *next, {});
  if (event.sequence != 0) {
    LOG(INFO) << "configuration reloaded (" << ChangeCauseName(cause) << "): "
              << event.changes.size() << " value(s) changed";
  }
  current_ = std::move(next);
  return event;
}

absl::Status ConfigCore::ApplyOverridesLocked(
    const std::map<std::string, std::string>& values, ChangeCause cause) {
  // Check the candidate against every rule before touching the file.
  config::LoadOptions trial = options_;
  trial.override_values = values;
  config::LoadResult result = config::LoadLayers(trial);
  if (!result.ok()) return FirstIssue(result.issues);
  absl::Status written = config::WriteOverrides(overrides_path_, values);
  if (!written.ok()) return written;
  auto next = std::make_shared<const config::Config>(std::move(result.config));
  PublishLocked(cause, *current_, *next, {});
  current_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<config::Config::Entry> ConfigCore::SetOverride(const std::string& key,
                                                             const std::string& value) {
  absl::Status valid = config::ValidateValue(key, value);
  if (!valid.ok()) return valid;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::map<std::string, std::string>> values =
      config::ReadOverrides(overrides_path_);
  if (!values.ok()) return values.status();
  (*values)[key] = value;
  absl::Status applied = ApplyOverridesLocked(*values, ChangeCause::kOverrideSet);
  if (!applied.ok()) return applied;
  return current_->entry(key);
}

absl::Status ConfigCore::DeleteOverride(const std::string& key) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::map<std::string, std::string>> values =
      config::ReadOverrides(overrides_path_);
  if (!values.ok()) return values.status();
  if (values->erase(key) == 0) {
    return absl::NotFoundError(absl::StrCat("key \"", key, "\": no runtime override is set"));
  }
  return ApplyOverridesLocked(*values, ChangeCause::kOverrideDeleted);
}

absl::StatusOr<std::map<std::string, std::string>> ConfigCore::ListOverrides() const {
  absl::StatusOr<std::map<std::string, std::string>> values =
      config::ReadOverrides(overrides_path_);
  if (!values.ok()) return values.status();
  for (auto& [key, value] : *values) {
    const config::KeySpec* spec = config::FindKey(key);
    if (spec != nullptr && spec->secret && !value.empty()) value = "***";
  }
  return values;
}

absl::Status ConfigCore::WatchFiles() {
  absl::StatusOr<std::unique_ptr<FileWatcher>> watcher = FileWatcher::Start(
      LayerFiles(), [this](const std::string& path) {
        LOG(INFO) << "layer file changed: " << path;
        Reload(ChangeCause::kFileChanged);
      });
  if (!watcher.ok()) return watcher.status();
  watcher_ = *std::move(watcher);
  return absl::OkStatus();
}

}  // namespace cnet::configsvc
