// A per-worker circuit breaker: after `failure_threshold` consecutive failed
// dispatches the worker gets no new requests for `cooldown`; then one probe
// request is let through (half-open): its success closes the breaker, its
// failure opens it again for another cooldown.
//
// Time is passed in explicitly, so the state machine is testable without
// sleeping.
//
// Example:
//   CircuitBreaker breaker({.failure_threshold = 5, .cooldown = absl::Seconds(10)});
//   if (breaker.AllowsDispatch(absl::Now())) {
//     breaker.OnDispatch(absl::Now());
//     ...
//     breaker.OnResult(ok, absl::Now());
//   }
//
// Thread-safety: none; the owner (WorkerPool) serialises calls.
#ifndef WF_ROUTER_DISPATCH_CIRCUIT_BREAKER_H_
#define WF_ROUTER_DISPATCH_CIRCUIT_BREAKER_H_

#include <string_view>

#include "absl/time/time.h"

namespace wf::router {

struct CircuitBreakerOptions {
  int failure_threshold = 5;  // Consecutive failures that open it; <= 0 disables the breaker.
  absl::Duration cooldown = absl::Seconds(10);
};

class CircuitBreaker {
 public:
  enum class State { kClosed = 0, kOpen = 1, kHalfOpen = 2 };  // Metric values (SMG's cb_state).

  explicit CircuitBreaker(const CircuitBreakerOptions& options = {}) : options_(options) {}

  // The state at `now` (open turns half-open once the cooldown has passed).
  State state(absl::Time now) const;
  // Closed, or half-open without a probe in flight.
  bool AllowsDispatch(absl::Time now) const;
  // A request was sent; in half-open it becomes the probe.
  void OnDispatch(absl::Time now);
  // The outcome of a dispatched request.
  void OnResult(bool ok, absl::Time now);
  // Back to closed with no failures (e.g. the worker restarted).
  void Reset();

  int consecutive_failures() const { return consecutive_failures_; }

 private:
  CircuitBreakerOptions options_;
  bool open_ = false;
  absl::Time opened_at_ = absl::InfinitePast();
  bool probe_in_flight_ = false;
  int consecutive_failures_ = 0;
};

// "closed", "open", "half_open".
std::string_view CircuitStateName(CircuitBreaker::State state);

}  // namespace wf::router

#endif  // WF_ROUTER_DISPATCH_CIRCUIT_BREAKER_H_
