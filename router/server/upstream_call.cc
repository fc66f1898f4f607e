#include "router/server/upstream_call.h"

#include <chrono>
#include <utility>

#include "common/grpc/reaction_order.h"

namespace wf::router {

std::shared_ptr<UpstreamCall> UpstreamCall::Start(wrinklefree::v1::Worker::Stub* stub,
                                                  const wrinklefree::v1::GenerateRequest& request,
                                                  absl::Duration timeout, Callbacks callbacks) {
  std::shared_ptr<UpstreamCall> call(new UpstreamCall());
  call->request_ = request;
  call->callbacks_ = std::move(callbacks);
  call->context_.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  call->self_ = call;
  stub->async()->Generate(&call->context_, &call->request_, call.get());
  call->StartRead(&call->response_);
  grpc_util::HandOff(call.get());
  call->StartCall();
  return call;
}

void UpstreamCall::OnReadDone(bool ok) {
  grpc_util::ReactionScope scope(this);
  if (!ok) return;  // the stream ended: OnDone follows
  ++responses_;
  if (callbacks_.on_response) callbacks_.on_response(std::move(response_));
  response_.Clear();
  grpc_util::HandOff(this);
  StartRead(&response_);
}

void UpstreamCall::OnDone(const grpc::Status& status) {
  grpc_util::OnDoneScope scope(this);
  if (callbacks_.on_done) callbacks_.on_done(status, responses_);
  callbacks_ = {};
  // Last use of this object by gRPC; release our own reference (the caller
  // may still hold one for Cancel()).
  std::shared_ptr<UpstreamCall> keep = std::move(self_);
}

}  // namespace wf::router
