#include "common/grpc/callback_queue_warmer.h"

#include <chrono>
#include <utility>

#include "grpcpp/generic/generic_stub.h"

namespace wf::grpc_util {
namespace {

constexpr char kHealthCheck[] = "/grpc.health.v1.Health/Check";

}  // namespace

CallbackQueueWarmer::CallbackQueueWarmer(std::shared_ptr<grpc::Channel> channel, absl::Duration interval)
    : channel_(std::move(channel)), interval_(interval) {
  thread_ = std::thread([this] { Run(); });
}

CallbackQueueWarmer::~CallbackQueueWarmer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CallbackQueueWarmer::Run() {
  grpc::GenericStub stub(channel_);
  const auto interval = absl::ToChronoMilliseconds(interval_);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    {
      // The callback form on purpose: its completion is the event the
      // callback threads need (a blocking call would complete elsewhere).
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      grpc::Slice empty;  // an empty HealthCheckRequest: the server as a whole
      grpc::ByteBuffer request(&empty, 1);
      grpc::ByteBuffer response;
      std::mutex done_mu;
      std::condition_variable done_cv;
      bool done = false;
      stub.UnaryCall(&ctx, kHealthCheck, grpc::StubOptions(), &request, &response, [&](grpc::Status) {
        std::lock_guard<std::mutex> done_lock(done_mu);
        done = true;
        done_cv.notify_all();
      });
      // gRPC always completes the call (by its deadline at the latest), and
      // the callback uses this frame.
      std::unique_lock<std::mutex> done_lock(done_mu);
      done_cv.wait(done_lock, [&] { return done; });
    }
    checks_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    cv_.wait_for(lock, interval, [this] { return stopping_; });
  }
}

}  // namespace wf::grpc_util
