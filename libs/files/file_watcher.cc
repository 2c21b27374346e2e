#include "libs/files/file_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace cnet {

absl::StatusOr<std::unique_ptr<FileWatcher>> FileWatcher::Start(
    const std::vector<std::string>& paths,
    std::function<void(const std::string&)> on_change) {
  std::unique_ptr<FileWatcher> w(new FileWatcher());
  w->on_change_ = std::move(on_change);
  w->inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  w->stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->inotify_fd_ < 0 || w->stop_fd_ < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("inotify/eventfd: ", std::strerror(errno)));
  }
  std::map<std::string, int> wd_by_dir;
  for (const std::string& path : paths) {
    // "dir/" watches every entry of dir: recorded under the empty name.
    const bool whole_dir = !path.empty() && path.back() == '/';
    std::filesystem::path p(whole_dir ? path + "." : path);
    std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
    auto it = wd_by_dir.find(dir);
    if (it == wd_by_dir.end()) {
      int wd = inotify_add_watch(w->inotify_fd_, dir.c_str(),
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE |
                                     IN_DELETE | IN_MOVED_FROM);
      if (wd < 0) continue;  // directory absent: nothing to watch there
      it = wd_by_dir.emplace(dir, wd).first;
    }
    w->by_wd_[it->second][whole_dir ? std::string() : p.filename().string()] = path;
    w->watched_.push_back(path);
  }
  FileWatcher* raw = w.get();
  w->thread_ = std::thread([raw] { raw->Loop(); });
  return w;
}

FileWatcher::~FileWatcher() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    ssize_t ignored = ::write(stop_fd_, &one, sizeof(one));
    (void)ignored;
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void FileWatcher::Loop() {
  alignas(inotify_event) char buf[16384];
  for (;;) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    ssize_t n = ::read(inotify_fd_, buf, sizeof(buf));
    if (n <= 0) continue;
    std::set<std::string> changed;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      p += sizeof(inotify_event) + ev->len;
      if (ev->len == 0) continue;
      auto dir = by_wd_.find(ev->wd);
      if (dir == by_wd_.end()) continue;
      auto file = dir->second.find(ev->name);
      if (file != dir->second.end()) {
        changed.insert(file->second);
        continue;
      }
      auto any = dir->second.find(std::string());
      if (any != dir->second.end()) changed.insert(any->second + ev->name);
    }
    for (const std::string& path : changed) on_change_(path);
  }
}

}  // namespace cnet
