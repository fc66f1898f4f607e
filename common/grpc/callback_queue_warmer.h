// Keeps gRPC's callback threads awake while a server is quiet (the router
// and the worker both run one).
//
// gRPC C++ (1.51 on Linux) runs every callback-API completion in a process
// -- requests arriving at a callback service, and the responses of callback
// client streams (the router's streams to the workers) -- on "nexting" threads
// that wait on one completion queue. A thread that waited 1 s without an
// event sleeps 100 ms before it waits again, so after a quiet second all of
// them sleep at once, and a request arriving in that window waits up to
// 100 ms at the front and again for the worker's first response (measured
// with wf_router_bench --pause-ms 1050: +40..100 ms time to first token;
// back to back: +0.5 ms). An in-process health check every `interval`
// (default 250 ms) gives that queue an event often enough that some thread is
// always waiting on it. It costs no network traffic and no worker time.
//
// Example:
//   CallbackQueueWarmer warmer(server->InProcessChannel(grpc::ChannelArguments()));
//   ...  // serve
//   // destroyed before the server shuts down
//
// Threading: one thread of its own, joined by the destructor, which returns
// once the check in flight (if any) has completed; it must run before the
// server behind `channel` shuts down. checks() is thread-safe.
#ifndef WF_COMMON_GRPC_CALLBACK_QUEUE_WARMER_H_
#define WF_COMMON_GRPC_CALLBACK_QUEUE_WARMER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace wf::grpc_util {

class CallbackQueueWarmer {
 public:
  // `channel` leads to a server of this process, usually one running gRPC's
  // default health service; any answer, even UNIMPLEMENTED (e.g. from a bare
  // grpc::CallbackGenericService), serves the purpose.
  explicit CallbackQueueWarmer(std::shared_ptr<grpc::Channel> channel,
                               absl::Duration interval = absl::Milliseconds(250));
  ~CallbackQueueWarmer();
  CallbackQueueWarmer(const CallbackQueueWarmer&) = delete;
  CallbackQueueWarmer& operator=(const CallbackQueueWarmer&) = delete;

  // Health checks completed so far (whatever their status).
  int64_t checks() const { return checks_.load(std::memory_order_relaxed); }

 private:
  void Run();

  const std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration interval_;
  std::atomic<int64_t> checks_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace wf::grpc_util

#endif  // WF_COMMON_GRPC_CALLBACK_QUEUE_WARMER_H_
