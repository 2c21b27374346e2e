// Calls back when any of a set of files is created, written, replaced
// (editor-style rename over it) or removed — event-driven through Linux
// inotify on the files' directories, so files that do not exist yet are
// watched too. Callbacks run on the watcher's own thread, one at a time.
#ifndef CNET_LIBS_FILES_FILE_WATCHER_H_
#define CNET_LIBS_FILES_FILE_WATCHER_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace cnet {

class FileWatcher {
 public:
  // `on_change` receives the path (as given) that changed. Directories that
  // do not exist are skipped (their files are then not watched); the
  // returned watcher lists what it watches in watched_paths().
  static absl::StatusOr<std::unique_ptr<FileWatcher>> Start(
      const std::vector<std::string>& paths,
      std::function<void(const std::string&)> on_change);
  ~FileWatcher();

  const std::vector<std::string>& watched_paths() const { return watched_; }

 private:
  FileWatcher() = default;
  void Loop();

  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that ends Loop()
  // watch descriptor -> (file name in that directory -> path as given)
  std::map<int, std::map<std::string, std::string>> by_wd_;
  std::vector<std::string> watched_;
  std::function<void(const std::string&)> on_change_;
  std::thread thread_;
};

}  // namespace cnet

#endif  // CNET_LIBS_FILES_FILE_WATCHER_H_
