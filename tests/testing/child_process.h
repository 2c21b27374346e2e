// Helpers for tests and benches that run the suite's built binaries: a
// free loopback port, a child process (fork + execve with an explicit
// environment), and the path of a Bazel runfile.
#ifndef CNET_TESTS_TESTING_CHILD_PROCESS_H_
#define CNET_TESTS_TESTING_CHILD_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace cnet::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
// it, close). Another process may take it before the caller binds it;
// callers that start servers on it must handle a failed start.
int FreePort();

// `path` below the test's runfiles root (TEST_SRCDIR/claudenet/...).
std::string Runfile(const std::string& path);

// A child process running `binary` with `args` and exactly `env`. Started
// by the constructor; the destructor sends SIGTERM and reaps it.
class ChildProcess {
 public:
  ChildProcess(std::string binary, std::vector<std::string> args, std::vector<std::string> env);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts the same command again (after it was killed and reaped).
  void Start();
  // Sends `sig` if the process is running (not yet reaped).
  void Signal(int sig = SIGTERM);
  // Waits until the process exits and reaps it; a no-op when reaped.
  void Wait();
  // Signal(sig) then Wait().
  void Kill(int sig);
  // True once the process has exited (it is reaped then); never blocks.
  bool Exited();
  pid_t pid() const { return pid_; }

 private:
  std::string binary_;
  std::vector<std::string> args_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
};

}  // namespace cnet::testing

#endif  // CNET_TESTS_TESTING_CHILD_PROCESS_H_
