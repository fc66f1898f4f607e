// A loopback TCP port that nothing listens on, for tests that need an address
// which refuses connections (or a port to start a server on later).
//
// Example:
//   const int port = wf::testing::UnusedPort();
//   // connecting to 127.0.0.1:port is refused
//
// The port is bound, read back and released, so it was free a moment ago; 0
// when no port could be bound.
#ifndef WF_COMMON_TESTING_UNUSED_PORT_H_
#define WF_COMMON_TESTING_UNUSED_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wf::testing {

inline int UnusedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace wf::testing

#endif  // WF_COMMON_TESTING_UNUSED_PORT_H_
