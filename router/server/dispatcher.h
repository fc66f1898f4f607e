// Sends one generation to a worker chosen by the routing policy, and retries
// on another worker when the chosen one fails before producing anything.
// Shared by the HTTP gateway and the gRPC front.
//
// A worker can also hang without failing (stopped, or its host frozen): a
// watchdog cancels every attempt still waiting for its first response on a
// worker the pool finds silent for `stall_timeout` (WorkerPool::SilentWorkers)
// and retries it elsewhere like a failure. Streams already answering are left
// alone; they end by the request deadline at the latest.
//
// Threading: Dispatch() from any thread; callbacks on gRPC threads, in order
// per dispatch (on_response*, then on_done once). Cancel() any time. The
// watchdog is one thread, joined by the destructor.
#ifndef WF_ROUTER_SERVER_DISPATCHER_H_
#define WF_ROUTER_SERVER_DISPATCHER_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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
  // None owned; all must outlive the dispatcher and its calls. A zero
  // `stall_timeout` turns the stall watchdog off.
  Dispatcher(WorkerPool* pool, RoutingPolicy* policy, RouterMetrics* metrics, absl::Duration timeout,
             int max_retries, absl::Duration stall_timeout = absl::Seconds(1));
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // `request` must carry the prompt as token ids; `hashes` are its full-block
  // hashes; `session_key` feeds consistent_hash (may be empty).
  std::shared_ptr<DispatchHandle> Dispatch(wrinklefree::v1::GenerateRequest request, std::vector<uint64_t> hashes,
                                           std::string session_key, DispatchCallbacks callbacks);

 private:
  struct State;
  void Attempt(std::shared_ptr<State> state);
  void WatchStalls();

  WorkerPool* pool_;
  RoutingPolicy* policy_;
  RouterMetrics* metrics_;
  absl::Duration timeout_;
  int max_retries_;
  absl::Duration stall_timeout_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stopping_ = false;                       // guarded by watch_mu_
  std::vector<std::weak_ptr<State>> awaiting_;  // attempts to watch; guarded by watch_mu_
  std::thread watchdog_;
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_DISPATCHER_H_
