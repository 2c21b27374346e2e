// Debian's prebuilt cpp-httplib listens with a backlog of 5
// (CPPHTTPLIB_LISTEN_BACKLOG is baked into the .so), so a burst of more than
// five simultaneous connects has SYNs dropped and the client retries after
// 1 s. The fakes raise the backlog of their listening socket after binding:
// listen() on a listening socket updates its backlog on Linux.
#ifndef CNET_TESTS_FAKES_LISTEN_BACKLOG_H_
#define CNET_TESTS_FAKES_LISTEN_BACKLOG_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace cnet::fakes {

// Finds this process's listening TCP socket on 127.0.0.1:`port` and sets
// its backlog to `backlog`. Returns false if no such socket was found.
inline bool RaiseListenBacklog(int port, int backlog = 512) {
  for (int fd = 0; fd < 4096; ++fd) {
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) continue;
    sockaddr_in addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    if (addr.sin_family != AF_INET || ntohs(addr.sin_port) != port) continue;
    return ::listen(fd, backlog) == 0;
  }
  return false;
}

}  // namespace cnet::fakes

#endif  // CNET_TESTS_FAKES_LISTEN_BACKLOG_H_
