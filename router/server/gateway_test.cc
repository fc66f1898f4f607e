#include "router/server/gateway.h"

#include <set>
#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::router {
namespace {

using ::testing::StartsWith;

// Workers refuse a request id that is already running, and two routers in
// front of the same workers serve their n-th request in the same
// microsecond under load: their ids must still differ.
TEST(GatewayTest, ResponseIdsDifferAcrossGatewaysForTheSameTimeAndSerial) {
  Gateway a(/*pool=*/nullptr, /*dispatcher=*/nullptr, /*metrics=*/nullptr, GatewayOptions{});
  Gateway b(/*pool=*/nullptr, /*dispatcher=*/nullptr, /*metrics=*/nullptr, GatewayOptions{});
  const absl::Time t = absl::FromUnixMicros(1'700'000'000'123'456);
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    const std::string from_a = a.NewResponseId(openai::Endpoint::kChatCompletions, t);
    const std::string from_b = b.NewResponseId(openai::Endpoint::kChatCompletions, t);
    EXPECT_THAT(from_a, StartsWith("chatcmpl-"));
    EXPECT_TRUE(ids.insert(from_a).second) << from_a;
    EXPECT_TRUE(ids.insert(from_b).second) << from_b;
  }
  EXPECT_THAT(a.NewResponseId(openai::Endpoint::kCompletions, t), StartsWith("cmpl-"));
}

}  // namespace
}  // namespace wf::router
