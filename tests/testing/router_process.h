// A real wf_router child process on 127.0.0.1 with ephemeral HTTP and gRPC
// ports in front of given workers, and a gRPC stub to its Router service, for
// multi-process tests.
//
// Example:
//   ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start());
//   ASSERT_OK_AND_ASSIGN(auto router, RouterProcess::Start({worker->address()}, {"--policy", "round_robin"}));
//   ASSERT_OK_AND_ASSIGN(HttpResponse r, HttpGet(router->http_port(), "/v1/models"));
//
// Start() returns only once GET /ready answers 200 (at least one worker is
// healthy), or an error naming what did not happen within the timeout. The
// destructor kills the router (SIGKILL after a SIGTERM grace period).
#ifndef WF_TESTS_TESTING_ROUTER_PROCESS_H_
#define WF_TESTS_TESTING_ROUTER_PROCESS_H_

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/testing/subprocess.h"
#include "common/testing/test_paths.h"
#include "grpcpp/grpcpp.h"
#include "tests/testing/http_get.h"
#include "wrinklefree/v1/router.grpc.pb.h"

namespace wf::testing {

inline std::string RouterBinary() { return BinaryDir() + "/router/wf_router"; }

class RouterProcess {
 public:
  // Starts wf_router over `workers` ("host:port"), then waits (bounded) for
  // its "started" line and for /ready to answer 200.
  static absl::StatusOr<std::unique_ptr<RouterProcess>> Start(const std::vector<std::string>& workers,
                                                              std::vector<std::string> extra_args = {},
                                                              std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto r = std::unique_ptr<RouterProcess>(new RouterProcess());
    std::vector<std::string> args = {RouterBinary(),  "--workers",   absl::StrJoin(workers, ","),
                                     "--host",        "127.0.0.1",   "--http-port",
                                     "0",             "--grpc-port", "0",
                                     "--log-level",   "warning"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    if (absl::Status s = r->child_.Start(args); !s.ok()) return s;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto left = [&] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    };
    auto parse_port = [](const std::string& line, int* port) {
      return absl::SimpleAtoi(line.substr(line.rfind(':') + 1), port);
    };
    while (true) {
      if (left().count() <= 0) return absl::DeadlineExceededError("wf_router did not print 'started' in time");
      absl::StatusOr<std::string> line = r->child_.ReadLine(left());
      if (!line.ok()) return line.status();
      if (absl::StartsWith(*line, "wf_router: http listening on ")) {
        if (!parse_port(*line, &r->http_port_)) return absl::InternalError("bad port line: " + *line);
      } else if (absl::StartsWith(*line, "wf_router: grpc listening on ")) {
        if (!parse_port(*line, &r->grpc_port_)) return absl::InternalError("bad port line: " + *line);
      } else if (absl::StartsWith(*line, "wf_router: started")) {
        break;
      }
    }
    if (r->http_port_ == 0) return absl::InternalError("wf_router printed no HTTP port");
    int last_status = 0;
    while (true) {
      absl::StatusOr<HttpResponse> ready = HttpGet(r->http_port_, "/ready", std::chrono::seconds(5));
      if (ready.ok()) last_status = ready->status;
      if (ready.ok() && ready->status == 200) break;
      if (left().count() <= 0) {
        return absl::DeadlineExceededError(absl::StrCat("wf_router /ready did not answer 200 in time (last status ",
                                                        last_status, ")"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (r->grpc_port_ != 0) {
      r->channel_ = grpc::CreateChannel(r->grpc_address(), grpc::InsecureChannelCredentials());
      r->stub_ = wrinklefree::v1::Router::NewStub(r->channel_);
    }
    return r;
  }

  ~RouterProcess() { child_.StopWithin(SIGTERM, std::chrono::seconds(5)); }

  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }
  std::string grpc_address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }
  // Only when the gRPC front is on (the default here).
  wrinklefree::v1::Router::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  ChildProcess& child() { return child_; }

 private:
  RouterProcess() = default;
  ChildProcess child_;
  int http_port_ = 0;
  int grpc_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<wrinklefree::v1::Router::Stub> stub_;
};

}  // namespace wf::testing

#endif  // WF_TESTS_TESTING_ROUTER_PROCESS_H_
