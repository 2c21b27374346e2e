#include "libs/files/file_watcher.h"

#include <cstdio>
#include <fstream>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace cnet {
namespace {

class Recorder {
 public:
  void Add(const std::string& p) {
    absl::MutexLock lock(&mu_);
    seen_.push_back(p);
  }
  // Waits for the n-th event on `p` itself; the bound only guards a hang.
  bool WaitFor(const std::string& p, size_t n = 1) {
    absl::MutexLock lock(&mu_);
    auto has = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return static_cast<size_t>(std::count(seen_.begin(), seen_.end(), p)) >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&has), absl::Seconds(60));
  }
  size_t count(const std::string& p) {
    absl::MutexLock lock(&mu_);
    return std::count(seen_.begin(), seen_.end(), p);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> seen_ ABSL_GUARDED_BY(mu_);
};

std::string TempDir() {
  std::string tmpl = std::string(::testing::TempDir()) + "/fwXXXXXX";
  return mkdtemp(tmpl.data());
}

TEST(FileWatcherTest, SeesCreationRewriteAndRenameOverOnlyForWatchedFiles) {
  std::string dir = TempDir();
  std::string watched = dir + "/config.yaml";
  std::string other = dir + "/other.yaml";
  Recorder rec;
  auto w = FileWatcher::Start({watched, "/nonexistent-dir/x.yaml"},
                              [&](const std::string& p) { rec.Add(p); });
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->watched_paths(), std::vector<std::string>{watched});

  std::ofstream(other) << "a: 1\n";
  std::ofstream(watched) << "a: 1\n";  // created
  ASSERT_TRUE(rec.WaitFor(watched));
  EXPECT_EQ(rec.count(other), 0u);

  // Editor-style replace: write elsewhere, rename over.
  std::ofstream(dir + "/config.yaml.swp") << "a: 2\n";
  size_t before = rec.count(watched);
  ASSERT_EQ(std::rename((dir + "/config.yaml.swp").c_str(), watched.c_str()), 0);
  EXPECT_TRUE(rec.WaitFor(watched, before + 1));
  EXPECT_EQ(rec.count(other), 0u);
}

TEST(FileWatcherTest, TrailingSlashWatchesEveryEntryOfTheDirectory) {
  std::string dir = TempDir();
  Recorder rec;
  auto w = FileWatcher::Start({dir + "/"}, [&](const std::string& p) { rec.Add(p); });
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->watched_paths(), std::vector<std::string>{dir + "/"});

  std::ofstream(dir + "/new.yaml") << "a: 1\n";
  EXPECT_TRUE(rec.WaitFor(dir + "/new.yaml"));
  ASSERT_EQ(std::remove((dir + "/new.yaml").c_str()), 0);
  EXPECT_TRUE(rec.WaitFor(dir + "/new.yaml", 2));
}

}  // namespace
}  // namespace cnet
