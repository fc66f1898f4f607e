#include "router/server/stream_limiter.h"

#include <optional>
#include <utility>

#include "gtest/gtest.h"

namespace wf::router {
namespace {

TEST(StreamLimiterTest, CountsPerKeyAndFreesOnReleaseOrDestruction) {
  StreamLimiter limiter(/*num_keys=*/2, /*max_per_key=*/2);
  std::optional<StreamLimiter::Slot> a1 = limiter.TryAcquire(0);
  std::optional<StreamLimiter::Slot> a2 = limiter.TryAcquire(0);
  ASSERT_TRUE(a1.has_value() && a2.has_value());
  EXPECT_EQ(limiter.InUse(0), 2);
  EXPECT_FALSE(limiter.TryAcquire(0).has_value());  // the third of key 0
  std::optional<StreamLimiter::Slot> b = limiter.TryAcquire(1);
  EXPECT_TRUE(b.has_value());  // key 1 counts on its own
  EXPECT_EQ(limiter.InUse(1), 1);

  a1->Release();
  a1->Release();  // idempotent
  EXPECT_EQ(limiter.InUse(0), 1);
  std::optional<StreamLimiter::Slot> a3 = limiter.TryAcquire(0);
  ASSERT_TRUE(a3.has_value());
  EXPECT_FALSE(limiter.TryAcquire(0).has_value());

  {
    StreamLimiter::Slot moved = std::move(*a3);  // the moved-from slot frees nothing
    a3.reset();
    EXPECT_EQ(limiter.InUse(0), 2);
  }
  EXPECT_EQ(limiter.InUse(0), 1);  // freed by the destructor
  a2.reset();
  EXPECT_EQ(limiter.InUse(0), 0);
}

TEST(StreamLimiterTest, UnlimitedOrUnkeyedRequestsAreNeverRefused) {
  StreamLimiter unlimited(/*num_keys=*/1, /*max_per_key=*/0);
  std::optional<StreamLimiter::Slot> s1 = unlimited.TryAcquire(0);
  std::optional<StreamLimiter::Slot> s2 = unlimited.TryAcquire(0);
  EXPECT_TRUE(s1.has_value() && s2.has_value());
  EXPECT_EQ(unlimited.InUse(0), 0);

  StreamLimiter limited(/*num_keys=*/1, /*max_per_key=*/1);
  std::optional<StreamLimiter::Slot> anonymous1 = limited.TryAcquire(-1);  // authentication off
  std::optional<StreamLimiter::Slot> anonymous2 = limited.TryAcquire(-1);
  EXPECT_TRUE(anonymous1.has_value() && anonymous2.has_value());
  EXPECT_TRUE(limited.TryAcquire(5).has_value());  // not a configured key index
}

TEST(StreamLimiterTest, ASlotMayOutliveItsLimiter) {
  std::optional<StreamLimiter::Slot> slot;
  {
    StreamLimiter limiter(1, 1);
    slot = limiter.TryAcquire(0);
    ASSERT_TRUE(slot.has_value());
  }
  slot->Release();  // no use after free (run under ASan to see it)
}

}  // namespace
}  // namespace wf::router
