#include "router/dispatch/circuit_breaker.h"

#include "gtest/gtest.h"

namespace wf::router {
namespace {

using State = CircuitBreaker::State;

TEST(CircuitBreakerTest, OpensAfterConsecutiveFailuresThenProbes) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  CircuitBreaker b({.failure_threshold = 3, .cooldown = absl::Seconds(10)});
  EXPECT_TRUE(b.AllowsDispatch(t0));
  b.OnResult(false, t0);
  b.OnResult(false, t0);
  b.OnResult(true, t0);  // a success resets the run
  b.OnResult(false, t0);
  b.OnResult(false, t0);
  EXPECT_EQ(b.state(t0), State::kClosed);
  b.OnResult(false, t0);
  EXPECT_EQ(b.state(t0), State::kOpen);
  EXPECT_FALSE(b.AllowsDispatch(t0 + absl::Seconds(9)));

  const absl::Time t1 = t0 + absl::Seconds(10);
  EXPECT_EQ(b.state(t1), State::kHalfOpen);
  EXPECT_TRUE(b.AllowsDispatch(t1));
  b.OnDispatch(t1);
  EXPECT_FALSE(b.AllowsDispatch(t1)) << "one probe at a time";
  b.OnResult(false, t1);  // probe failed: open again for a full cooldown
  EXPECT_EQ(b.state(t1 + absl::Seconds(5)), State::kOpen);

  const absl::Time t2 = t1 + absl::Seconds(10);
  EXPECT_TRUE(b.AllowsDispatch(t2));
  b.OnDispatch(t2);
  b.OnResult(true, t2);
  EXPECT_EQ(b.state(t2), State::kClosed);
  EXPECT_EQ(b.consecutive_failures(), 0);
  EXPECT_EQ(CircuitStateName(b.state(t2)), "closed");
}

TEST(CircuitBreakerTest, DisabledWithZeroThreshold) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  CircuitBreaker b({.failure_threshold = 0, .cooldown = absl::Seconds(10)});
  for (int i = 0; i < 100; ++i) b.OnResult(false, t0);
  EXPECT_TRUE(b.AllowsDispatch(t0));
}

}  // namespace
}  // namespace wf::router
