#include "tests/testing/child_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <utility>

namespace cnet::testing {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string Runfile(const std::string& path) {
  return std::string(getenv("TEST_SRCDIR")) + "/claudenet/" + path;
}

ChildProcess::ChildProcess(std::string binary, std::vector<std::string> args,
                           std::vector<std::string> env)
    : binary_(std::move(binary)), args_(std::move(args)), env_(std::move(env)) {
  Start();
}

ChildProcess::~ChildProcess() { Kill(SIGTERM); }

void ChildProcess::Start() {
  pid_ = fork();
  if (pid_ == 0) {
    std::vector<char*> argv{binary_.data()};
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env_) envp.push_back(e.data());
    envp.push_back(nullptr);
    execve(binary_.c_str(), argv.data(), envp.data());
    _exit(127);
  }
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

void ChildProcess::Wait() {
  if (pid_ <= 0) return;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void ChildProcess::Kill(int sig) {
  Signal(sig);
  Wait();
}

bool ChildProcess::Exited() {
  if (pid_ <= 0) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  return true;
}

}  // namespace cnet::testing
