#include "router/server/dispatcher.h"

#include <algorithm>
#include <chrono>
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
  // Whether every failed attempt so far was a full worker queue, and the
  // last such refusal: once no untried worker is left, that (not "no healthy
  // worker") is the answer, so the client sees 429 with Retry-After.
  bool all_exhausted = true;
  grpc::Status last_exhausted;
  std::shared_ptr<wrinklefree::v1::Worker::Stub> stub;  // alive while its call runs
  // The attempt in flight, shared with the stall watchdog: its number, worker
  // and call, whether it ended, whether a response was passed on, and
  // whether the watchdog cancelled it to be retried elsewhere.
  std::mutex attempt_mu;
  int attempt = 0;
  std::string worker;
  std::shared_ptr<UpstreamCall> call;
  bool done = false;
  bool answered = false;
  bool stalled = false;
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
                       int max_retries, absl::Duration stall_timeout)
    : pool_(pool),
      policy_(policy),
      metrics_(metrics),
      timeout_(timeout),
      max_retries_(max_retries),
      stall_timeout_(stall_timeout) {
  if (stall_timeout_ > absl::ZeroDuration()) watchdog_ = std::thread([this] { WatchStalls(); });
}

Dispatcher::~Dispatcher() {
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

void Dispatcher::WatchStalls() {
  std::unique_lock<std::mutex> lock(watch_mu_);
  while (!stopping_) {
    watch_cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping_; });
    if (stopping_) return;
    std::vector<std::weak_ptr<State>> awaiting;
    awaiting.swap(awaiting_);
    lock.unlock();
    const std::vector<std::string> silent = pool_->SilentWorkers(stall_timeout_);  // sorted
    std::vector<std::weak_ptr<State>> keep;
    for (const std::weak_ptr<State>& weak : awaiting) {
      std::shared_ptr<State> state = weak.lock();
      if (state == nullptr) continue;
      std::shared_ptr<UpstreamCall> stalled_call;
      {
        std::lock_guard<std::mutex> attempt_lock(state->attempt_mu);
        if (state->done || state->answered || state->stalled) continue;  // nothing left to watch
        if (state->call != nullptr && std::binary_search(silent.begin(), silent.end(), state->worker)) {
          state->stalled = true;
          stalled_call = state->call;
        } else {
          keep.push_back(weak);
        }
      }
      if (stalled_call != nullptr) stalled_call->Cancel();
    }
    lock.lock();
    awaiting_.insert(awaiting_.end(), keep.begin(), keep.end());
  }
}

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
    if (!state->last_exhausted.ok() && state->all_exhausted) {
      state->callbacks.on_done(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       absl::StrCat("every worker tried is at capacity (", state->tried.size(),
                                    " tried); last refusal: ", state->last_exhausted.error_message())),
          "");
      return;
    }
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
  const int attempt = state->attempts;
  {
    std::lock_guard<std::mutex> lock(state->attempt_mu);
    state->attempt = attempt;
    state->worker = worker;
    state->call = nullptr;
    state->done = state->answered = state->stalled = false;
  }
  UpstreamCall::Callbacks cb;
  cb.on_response = [state](wrinklefree::v1::GenerateResponse r) {
    {
      std::lock_guard<std::mutex> lock(state->attempt_mu);
      if (state->stalled) return;  // being retried elsewhere: none of it may reach the client
      state->answered = true;
    }
    state->callbacks.on_response(std::move(r));
  };
  cb.on_done = [this, state, worker](const grpc::Status& status, int responses) {
    bool stalled;
    {
      std::lock_guard<std::mutex> lock(state->attempt_mu);
      stalled = state->stalled;
      state->done = true;
      state->call = nullptr;
    }
    // A stall cancelled here is no failure for the breaker: silence already
    // keeps the worker out of routing until it reports again, whereas an open
    // breaker would keep it out for a whole cooldown after it resumed.
    pool_->MarkFinished(worker, !WorkerFault(status.error_code()));
    bool cancelled;
    {
      std::lock_guard<std::mutex> lock(state->handle->mu_);
      cancelled = state->handle->cancelled_;
    }
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      state->last_exhausted = status;
    } else if (!status.ok()) {
      state->all_exhausted = false;
    }
    if (stalled && !cancelled) {
      // Nothing was passed on, so another worker may start afresh.
      state->all_exhausted = false;
      if (state->attempts <= max_retries_) {
        if (metrics_) metrics_->Retry();
        Attempt(state);
        return;
      }
      state->callbacks.on_done(
          grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       absl::StrCat("worker ", worker, " went silent before the first token (no load report for ",
                                    absl::FormatDuration(stall_timeout_), ") and no other worker is left to try")),
          worker);
      return;
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
  if (stall_timeout_ > absl::ZeroDuration()) {
    {
      std::lock_guard<std::mutex> lock(state->attempt_mu);
      if (state->attempt != attempt || state->done) return;  // over already
      state->call = call;
    }
    std::lock_guard<std::mutex> lock(watch_mu_);
    awaiting_.push_back(state);
  }
}

}  // namespace wf::router
