// Loading and validating the skill library.
//
// The library is a directory tree of YAML files (skills/core/communication/,
// observation/, data/, onboarding/, domain/..., meta/...); a file's category
// is its directory relative to the root. Loading happens in two stages:
//
//   1. ParseSkillFile: one document on its own - YAML syntax, schema, types,
//      known actions and their arguments, template syntax, references to
//      inputs and to earlier steps, duplicate step ids, limits.
//   2. BuildLibrary: the files together - duplicate name@version, composed
//      skills that exist (and are valid) in a matching version, one version
//      per composed skill within a skill, composition cycles, composition
//      depth, and references to composed skills' outputs and inputs.
//
// Every problem is an Issue with file, line, column and a one-line reason.
// A file with an ERROR is kept (for GetSkill / ListSkills include_invalid)
// but never run; every other skill keeps serving. A Library is immutable:
// reloading builds a new one and swaps it in, so runs in flight keep the
// definitions they started with.
#ifndef CNET_SERVICES_SKILLS_LOADER_H_
#define CNET_SERVICES_SKILLS_LOADER_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "services/skills/action_spec.h"
#include "services/skills/skill.h"

namespace cnet {
class FileWatcher;
}

namespace cnet::skills {

// Limits enforced by validation (ISSUE_CODE_LIMIT_EXCEEDED).
inline constexpr size_t kMaxDocumentBytes = 1 << 20;
inline constexpr int kMaxGroupDepth = 8;
inline constexpr int kMaxStepsPerSkill = 256;
inline constexpr int kMaxCompositionDepth = 16;

// One file after stage 1.
struct ParsedFile {
  std::string file;      // relative to the library root (or the submitted name)
  std::string category;  // directory of the file, e.g. "core/communication"
  std::string source;
  std::string sha256;  // hex
  absl::Time modified_at = absl::UnixEpoch();
  // False when the document did not parse far enough to have a name and a
  // version (YAML syntax error, not a map, ...).
  bool has_definition = false;
  SkillDef def;
  std::vector<Issue> issues;

  // References to outputs of composed skills, checked in stage 2.
  struct OutputRef {
    const Step* target = nullptr;  // the skill step referenced
    std::string field;
    SourcePos pos;
    std::string path;
    std::string text;
  };
  std::vector<OutputRef> skill_output_refs;

  bool HasErrors() const;
};

// Stage 1. Never fails: problems are issues in the result.
std::shared_ptr<const ParsedFile> ParseSkillFile(const std::string& source,
                                                 const std::string& file,
                                                 const std::string& category,
                                                 const ActionCatalog& actions);

// One file after stage 2.
struct LoadedSkill {
  std::shared_ptr<const ParsedFile> parsed;
  std::vector<Issue> issues;  // stage 1 and 2, by line then column
  bool valid = false;
  absl::Time loaded_at = absl::UnixEpoch();
  // Skill steps -> version chosen ("1.2.0").
  std::map<const Step*, std::string> resolved;
  std::vector<std::string> composes;  // name@version, sorted

  const SkillDef& def() const { return parsed->def; }
  const std::string& file() const { return parsed->file; }
  int error_count() const;
};

class Library {
 public:
  const std::string& root() const { return root_; }
  // Every file, by path.
  const std::vector<std::shared_ptr<const LoadedSkill>>& files() const { return files_; }
  // The highest VALID version of `name` matching `range` (null = any).
  std::shared_ptr<const LoadedSkill> Find(const std::string& name,
                                          const VersionRange* range = nullptr) const;
  std::shared_ptr<const LoadedSkill> FindExact(const std::string& name,
                                               const Semver& version) const;
  std::shared_ptr<const LoadedSkill> FindFile(const std::string& file) const;
  // True when some file (valid or not) declares this name.
  bool Declares(const std::string& name) const;
  // Files (valid or not) declaring `name`.
  std::vector<std::shared_ptr<const LoadedSkill>> AllVersions(const std::string& name) const;
  // The skill a composing step of `owner` runs.
  std::shared_ptr<const LoadedSkill> ResolveStep(const LoadedSkill& owner,
                                                 const Step& step) const;
  int64_t valid_count() const;
  int64_t invalid_count() const { return static_cast<int64_t>(files_.size()) - valid_count(); }

 private:
  friend std::shared_ptr<const Library> BuildLibrary(
      std::string root, std::vector<std::shared_ptr<const ParsedFile>> files, absl::Time now);
  std::string root_;
  std::vector<std::shared_ptr<const LoadedSkill>> files_;
  // name -> version -> valid skill.
  std::map<std::string, std::map<Semver, std::shared_ptr<const LoadedSkill>>> valid_;
  std::map<std::string, std::vector<std::shared_ptr<const LoadedSkill>>> by_name_;
};

// Stage 2 over a set of parsed files (any order; sorted by path inside).
std::shared_ptr<const Library> BuildLibrary(std::string root,
                                            std::vector<std::shared_ptr<const ParsedFile>> files,
                                            absl::Time now);

struct ReloadReport {
  int64_t loaded = 0;   // valid skills served
  int64_t invalid = 0;  // invalid files skipped
  std::vector<std::string> added, removed, changed;  // name@version
  std::vector<Issue> issues;                         // of the invalid files
  absl::Duration duration;
};

struct ValidationResult {
  bool valid = false;
  std::vector<Issue> issues;
  std::shared_ptr<const ParsedFile> parsed;
};

// Owns the current library of one root directory: loads it, reloads it on
// request or when files change, and validates submitted documents.
class LibraryManager {
 public:
  LibraryManager(std::string root, const ActionCatalog* actions, Clock* clock);
  ~LibraryManager();

  // Reads the whole tree again. FAILED_PRECONDITION when the root is missing
  // or unreadable (the previous library stays).
  absl::StatusOr<ReloadReport> Reload();

  // Never null (an empty library before the first successful load).
  std::shared_ptr<const Library> Current() const;

  // Validates one document as the loader would. With check_library, also
  // against the current library (as if the document were added; a library
  // file with the same path is replaced).
  ValidationResult Validate(const std::string& yaml, const std::string& file_name,
                            bool check_library) const;

  // Reloads by itself when a file or directory of the tree changes
  // (inotify); `on_reload` (may be null) sees each automatic reload.
  absl::Status StartWatching(std::function<void(const absl::StatusOr<ReloadReport>&)> on_reload);

 private:
  absl::StatusOr<std::vector<std::shared_ptr<const ParsedFile>>> ReadTree(
      std::vector<std::string>* dirs) const;
  void WatchLoop();
  // Replaces the watcher; only on the watch thread (or before it starts).
  absl::Status Rewatch(const std::vector<std::string>& dirs);

  const std::string root_;
  const ActionCatalog* const actions_;
  Clock* const clock_;

  absl::Mutex reload_mu_;  // serializes reloads
  mutable absl::Mutex mu_;
  std::shared_ptr<const Library> current_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> dirs_ ABSL_GUARDED_BY(mu_);

  // Watching: the inotify thread only flags a change; this thread reloads
  // (and re-creates the watcher when directories come or go, which the
  // watcher's own thread could not do).
  absl::Mutex flag_mu_;
  bool dirty_ ABSL_GUARDED_BY(flag_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(flag_mu_) = false;
  // Owned by the watch thread once it runs.
  std::vector<std::string> watched_dirs_;
  std::unique_ptr<FileWatcher> watcher_;
  std::function<void(const absl::StatusOr<ReloadReport>&)> on_reload_;
  std::thread watch_thread_;
};

// Levenshtein distance, for "did you mean" suggestions.
int EditDistance(const std::string& a, const std::string& b);
// The closest candidate within distance max(2, |word|/3), or empty.
std::string Closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_LOADER_H_
