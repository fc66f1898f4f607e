#include "common/grpc/callback_queue_warmer.h"

#include <chrono>
#include <memory>
#include <thread>

#include "grpcpp/generic/async_generic_service.h"
#include "gtest/gtest.h"

namespace wf::grpc_util {
namespace {

// An in-process-only server with gRPC's health service, as the router's
// gRPC front has it (a server needs at least one callback service).
struct InProcessServer {
  explicit InProcessServer(bool health) {
    grpc::EnableDefaultHealthCheckService(health);
    grpc::ServerBuilder builder;
    builder.RegisterCallbackGenericService(&generic);
    server = builder.BuildAndStart();
  }
  ~InProcessServer() {
    if (server != nullptr) server->Shutdown();
  }
  std::shared_ptr<grpc::Channel> Channel() { return server->InProcessChannel(grpc::ChannelArguments()); }
  grpc::CallbackGenericService generic;  // answers UNIMPLEMENTED
  std::unique_ptr<grpc::Server> server;
};

// Bounded polling: true once `warmer` has completed `n` checks.
bool WaitForChecks(const CallbackQueueWarmer& warmer, int64_t n) {
  for (int i = 0; i < 2000 && warmer.checks() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return warmer.checks() >= n;
}

TEST(CallbackQueueWarmerTest, ChecksTheInProcessServerOverAndOver) {
  InProcessServer s(/*health=*/true);
  ASSERT_NE(s.server, nullptr);
  CallbackQueueWarmer warmer(s.Channel(), absl::Milliseconds(1));
  EXPECT_TRUE(WaitForChecks(warmer, 3));
}

TEST(CallbackQueueWarmerTest, StopsWithoutWaitingForTheNextInterval) {
  InProcessServer s(/*health=*/true);
  ASSERT_NE(s.server, nullptr);
  auto warmer = std::make_unique<CallbackQueueWarmer>(s.Channel(), absl::Hours(1));
  ASSERT_TRUE(WaitForChecks(*warmer, 1));
  warmer.reset();  // would hang for an hour if the wait were not woken
  EXPECT_EQ(warmer, nullptr);
}

TEST(CallbackQueueWarmerTest, AnErrorAnswerStillCounts) {
  // Without the health service the answer is UNIMPLEMENTED: still an event
  // for the callback threads.
  InProcessServer s(/*health=*/false);
  ASSERT_NE(s.server, nullptr);
  CallbackQueueWarmer warmer(s.Channel(), absl::Milliseconds(1));
  EXPECT_TRUE(WaitForChecks(warmer, 2));
}

}  // namespace
}  // namespace wf::grpc_util
