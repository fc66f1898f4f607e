#include "router/dispatch/circuit_breaker.h"

namespace wf::router {

CircuitBreaker::State CircuitBreaker::state(absl::Time now) const {
  if (!open_) return State::kClosed;
  return now - opened_at_ >= options_.cooldown ? State::kHalfOpen : State::kOpen;
}

bool CircuitBreaker::AllowsDispatch(absl::Time now) const {
  switch (state(now)) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return false;
    case State::kHalfOpen:
      return !probe_in_flight_;
  }
  return false;
}

void CircuitBreaker::OnDispatch(absl::Time now) {
  if (state(now) == State::kHalfOpen) probe_in_flight_ = true;
}

void CircuitBreaker::OnResult(bool ok, absl::Time now) {
  if (options_.failure_threshold <= 0) return;
  if (ok) {
    // Any success while closed resets the run; in half-open the probe (or a
    // request sent before the breaker opened) proves the worker works again.
    if (state(now) != State::kOpen) Reset();
    return;
  }
  ++consecutive_failures_;
  const State s = state(now);
  if (s == State::kHalfOpen || (s == State::kClosed && consecutive_failures_ >= options_.failure_threshold)) {
    open_ = true;
    opened_at_ = now;
    probe_in_flight_ = false;
  }
}

void CircuitBreaker::Reset() {
  open_ = false;
  opened_at_ = absl::InfinitePast();
  probe_in_flight_ = false;
  consecutive_failures_ = 0;
}

std::string_view CircuitStateName(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

}  // namespace wf::router
