// The process-wide descriptor limit a server with many connections needs;
// declared in http_server.h, kept apart from the connection handling.
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include "router/http/http_server.h"

namespace wf::router::http {

absl::StatusOr<size_t> RaiseOpenFileLimit(size_t wanted) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    rlim_t target = static_cast<rlim_t>(wanted);
    if (limit.rlim_max != RLIM_INFINITY && target > limit.rlim_max) target = limit.rlim_max;
    limit.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return absl::InternalError(std::string("setrlimit(RLIMIT_NOFILE, ") +
                                 std::to_string(target) + "): " + std::strerror(errno));
    }
  }
  return limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<size_t>::max()
                                         : static_cast<size_t>(limit.rlim_cur);
}

}  // namespace wf::router::http
