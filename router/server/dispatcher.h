// Sends one generation to a worker chosen by the routing policy, and retries
// on another worker when the chosen one fails before producing anything.
// Shared by the HTTP gateway and the gRPC front.
//
// Threading: Dispatch() from any thread; callbacks on gRPC threads, in order
// per dispatch (on_response*, then on_done once). Cancel() any time.
#ifndef WF_ROUTER_SERVER_DISPATCHER_H_
#define WF_ROUTER_SERVER_DISPATCHER_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "grpcpp/grpcpp.h"
#include "router/dispatch/routing_policy.h"
#include "router/dispatch/worker_pool.h"
#include "router/server/router_metrics.h"
#include "router/server/upstream_call.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::router {

struct DispatchCallbacks {
  std::function<void(wrinklefree::v1::GenerateResponse)> on_response;
  // The final status of the last attempt (OK when the worker finished the
  // stream); `worker` is the id that served (or last failed).
  std::function<void(const grpc::Status& status, const std::string& worker)> on_done;
};

class DispatchHandle {
 public:
  void Cancel();

 private:
  friend class Dispatcher;
  std::mutex mu_;
  bool cancelled_ = false;
  std::shared_ptr<UpstreamCall> call_;
};

class Dispatcher {
 public:
  // None owned; all must outlive the dispatcher and its calls.
  Dispatcher(WorkerPool* pool, RoutingPolicy* policy, RouterMetrics* metrics, absl::Duration timeout,
             int max_retries);

  // `request` must carry the prompt as token ids; `hashes` are its full-block
  // hashes; `session_key` feeds consistent_hash (may be empty).
  std::shared_ptr<DispatchHandle> Dispatch(wrinklefree::v1::GenerateRequest request, std::vector<uint64_t> hashes,
                                           std::string session_key, DispatchCallbacks callbacks);

 private:
  struct State;
  void Attempt(std::shared_ptr<State> state);

  WorkerPool* pool_;
  RoutingPolicy* policy_;
  RouterMetrics* metrics_;
  absl::Duration timeout_;
  int max_retries_;
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_DISPATCHER_H_
