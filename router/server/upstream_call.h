// One streaming Generate call from the router to a worker, on gRPC's
// callback client API (no thread per call: 1000+ concurrent streams share
// gRPC's own threads).
//
// Threading: callbacks run on gRPC threads, one at a time per call and in
// order: on_response for each message, then on_done exactly once. Cancel()
// may be called from any thread at any time (also after on_done).
//
// Example:
//   auto call = UpstreamCall::Start(stub, request, absl::Seconds(600),
//       {.on_response = [](wrinklefree::v1::GenerateResponse r) { ... },
//        .on_done = [](const grpc::Status& s, int responses) { ... }});
//   ...
//   call->Cancel();  // the HTTP client went away
#ifndef WF_ROUTER_SERVER_UPSTREAM_CALL_H_
#define WF_ROUTER_SERVER_UPSTREAM_CALL_H_

#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "wrinklefree/v1/worker.grpc.pb.h"

namespace wf::router {

class UpstreamCall final : public grpc::ClientReadReactor<wrinklefree::v1::GenerateResponse> {
 public:
  struct Callbacks {
    std::function<void(wrinklefree::v1::GenerateResponse)> on_response;
    // `responses`: how many messages arrived before the end (0 = the worker
    // produced nothing, so a retry elsewhere is safe).
    std::function<void(const grpc::Status& status, int responses)> on_done;
  };

  static std::shared_ptr<UpstreamCall> Start(wrinklefree::v1::Worker::Stub* stub,
                                             const wrinklefree::v1::GenerateRequest& request, absl::Duration timeout,
                                             Callbacks callbacks);

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  UpstreamCall() = default;

  grpc::ClientContext context_;
  wrinklefree::v1::GenerateRequest request_;
  wrinklefree::v1::GenerateResponse response_;
  Callbacks callbacks_;
  int responses_ = 0;
  std::shared_ptr<UpstreamCall> self_;  // keeps the call alive until OnDone
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_UPSTREAM_CALL_H_
