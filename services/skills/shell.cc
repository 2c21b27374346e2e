#include "services/skills/shell.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace cnet::skills {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void Close(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

}  // namespace

absl::StatusOr<ShellResult> RunCommand(const std::vector<std::string>& argv,
                                       const std::string& stdin_text, const std::string& cwd,
                                       size_t output_cap,
                                       const std::function<void(std::function<void()>)>& on_cancel,
                                       const std::function<void(int pid)>& on_started) {
  if (argv.empty()) return absl::InvalidArgumentError("shell: empty command");
  // A child that exits before reading its stdin must not kill the service
  // with SIGPIPE; write() then fails with EPIPE instead.
  static const bool kIgnoreSigpipe = [] {
    ::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)kIgnoreSigpipe;
  Pipe in, out, err;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(out.fd, O_CLOEXEC) != 0 ||
      ::pipe2(err.fd, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("shell: pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigfillset(&defaults);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::string path_env = "PATH=/usr/local/bin:/usr/bin:/bin";
  std::string lang_env = "LANG=C.UTF-8";
  char* envp[] = {path_env.data(), lang_env.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::NotFoundError(
        absl::StrCat("shell: cannot start \"", argv[0], "\": ", std::strerror(rc)));
  }
  in.Close(0);
  out.Close(1);
  err.Close(1);

  // The hook may fire from another thread at any time, even after the
  // child was reaped: `done` keeps it from signalling a reused pid.
  struct KillState {
    std::mutex mu;
    bool done = false;
    bool killed = false;
  };
  auto state = std::make_shared<KillState>();
  if (on_cancel) {
    on_cancel([pid, state] {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->done) return;
      state->killed = true;
      ::kill(-pid, SIGKILL);
    });
  }

  if (on_started) on_started(pid);
  ShellResult result;
  size_t written = 0;
  if (stdin_text.empty()) in.Close(1);
  ::fcntl(in.fd[1], F_SETFL, O_NONBLOCK);
  bool out_open = true, err_open = true;
  char buf[8192];
  while (out_open || err_open) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_open) {
      fds[n] = {out.fd[0], POLLIN, 0};
      out_i = n++;
    }
    if (err_open) {
      fds[n] = {err.fd[0], POLLIN, 0};
      err_i = n++;
    }
    if (in.fd[1] >= 0) {
      fds[n] = {in.fd[1], POLLOUT, 0};
      in_i = n++;
    }
    if (::poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto drain = [&](int idx, int fd, std::string* sink, bool* open) {
      if (idx < 0 || fds[idx].revents == 0) return;
      ssize_t got = ::read(fd, buf, sizeof(buf));
      if (got <= 0) {
        if (got < 0 && errno == EINTR) return;
        *open = false;
        return;
      }
      size_t room = output_cap > sink->size() ? output_cap - sink->size() : 0;
      size_t keep = std::min(room, static_cast<size_t>(got));
      sink->append(buf, keep);
      if (keep < static_cast<size_t>(got)) result.truncated = true;
    };
    drain(out_i, out.fd[0], &result.stdout_text, &out_open);
    drain(err_i, err.fd[0], &result.stderr_text, &err_open);
    if (in_i >= 0 && fds[in_i].revents != 0) {
      if (fds[in_i].revents & (POLLERR | POLLHUP)) {
        in.Close(1);
      } else {
        ssize_t w = ::write(in.fd[1], stdin_text.data() + written, stdin_text.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) in.Close(1);
        if (written >= stdin_text.size()) in.Close(1);
      }
    }
  }
  in.Close(1);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  bool killed = false;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->done = true;
    killed = state->killed;
  }
  if (killed) return absl::CancelledError("shell: command killed");
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

}  // namespace cnet::skills
