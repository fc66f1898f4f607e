#include "router/server/dispatcher.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace wf::router {

struct Dispatcher::State {
  wrinklefree::v1::GenerateRequest request;
  std::vector<uint64_t> hashes;
  std::string session_key;
  DispatchCallbacks callbacks;
  std::shared_ptr<DispatchHandle> handle;
  absl::flat_hash_set<std::string> tried;
  int attempts = 0;
  std::shared_ptr<wrinklefree::v1::Worker::Stub> stub;  // alive while its call runs
};

namespace {

// Failures that say nothing about the request itself: another worker may
// well succeed.
bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::UNKNOWN || code == grpc::StatusCode::INTERNAL ||
         code == grpc::StatusCode::ABORTED;
}

// Whether the worker (not the request) is to blame, for its circuit breaker.
bool WorkerFault(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::UNKNOWN ||
         code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

void DispatchHandle::Cancel() {
  std::shared_ptr<UpstreamCall> call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    call = call_;
  }
  if (call) call->Cancel();
}

Dispatcher::Dispatcher(WorkerPool* pool, RoutingPolicy* policy, RouterMetrics* metrics, absl::Duration timeout,
                       int max_retries)
    : pool_(pool), policy_(policy), metrics_(metrics), timeout_(timeout), max_retries_(max_retries) {}

std::shared_ptr<DispatchHandle> Dispatcher::Dispatch(wrinklefree::v1::GenerateRequest request,
                                                     std::vector<uint64_t> hashes, std::string session_key,
                                                     DispatchCallbacks callbacks) {
  auto state = std::make_shared<State>();
  state->request = std::move(request);
  state->hashes = std::move(hashes);
  state->session_key = std::move(session_key);
  state->callbacks = std::move(callbacks);
  state->handle = std::make_shared<DispatchHandle>();
  std::shared_ptr<DispatchHandle> handle = state->handle;
  Attempt(std::move(state));
  return handle;
}

void Dispatcher::Attempt(std::shared_ptr<State> state) {
  std::vector<WorkerView> views = pool_->Views(state->hashes);
  for (WorkerView& v : views) {
    if (state->tried.contains(v.id)) v.healthy = false;
  }
  absl::StatusOr<RoutingDecision> decision =
      policy_->Choose({.block_hashes = state->hashes, .session_key = state->session_key}, views);
  if (!decision.ok()) {
    const std::string message =
        state->tried.empty() ? std::string(decision.status().message())
                             : absl::StrCat(decision.status().message(), " (after ", state->tried.size(),
                                            " failed attempt(s))");
    state->callbacks.on_done(grpc::Status(grpc::StatusCode::UNAVAILABLE, message), "");
    return;
  }
  const std::string worker = decision->worker_id;
  if (metrics_) {
    metrics_->Decision(PolicyKindName(policy_->options().policy), decision->reason,
                       static_cast<int>(state->hashes.size()), decision->predicted_matched_blocks);
  }
  state->tried.insert(worker);
  ++state->attempts;
  state->stub = pool_->Stub(worker);
  if (state->stub == nullptr) {
    Attempt(std::move(state));  // removed meanwhile: choose again (it is in `tried` now)
    return;
  }
  {
    std::lock_guard<std::mutex> lock(state->handle->mu_);
    if (state->handle->cancelled_) {
      state->callbacks.on_done(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"), worker);
      return;
    }
  }
  pool_->MarkDispatched(worker);
  UpstreamCall::Callbacks cb;
  cb.on_response = [state](wrinklefree::v1::GenerateResponse r) { state->callbacks.on_response(std::move(r)); };
  cb.on_done = [this, state, worker](const grpc::Status& status, int responses) {
    pool_->MarkFinished(worker, !WorkerFault(status.error_code()));
    bool cancelled;
    {
      std::lock_guard<std::mutex> lock(state->handle->mu_);
      cancelled = state->handle->cancelled_;
    }
    if (!status.ok() && responses == 0 && !cancelled && Retryable(status.error_code()) &&
        state->attempts <= max_retries_) {
      if (metrics_) metrics_->Retry();
      Attempt(state);
      return;
    }
    state->callbacks.on_done(status, worker);
  };
  // Not under the handle's lock: gRPC may run callbacks on another thread at
  // once, and a retry takes that lock.
  std::shared_ptr<UpstreamCall> call = UpstreamCall::Start(state->stub.get(), state->request, timeout_, std::move(cb));
  bool cancel_now;
  {
    std::lock_guard<std::mutex> lock(state->handle->mu_);
    state->handle->call_ = call;
    cancel_now = state->handle->cancelled_;
  }
  if (cancel_now) call->Cancel();
}

}  // namespace wf::router
