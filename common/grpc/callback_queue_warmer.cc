#include "common/grpc/callback_queue_warmer.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "common/grpc/reaction_order.h"
#include "grpcpp/generic/generic_stub.h"

namespace wf::grpc_util {
namespace {

constexpr char kHealthCheck[] = "/grpc.health.v1.Health/Check";

// One health check: its reactor, and the wait for its OnDone.
class Check final : public grpc::ClientUnaryReactor {
 public:
  void OnDone(const grpc::Status& /*status*/) override {
    OnDoneScope scope(this);
    // Notified under the lock: Wait() may destroy this object as soon as it
    // can take the lock again.
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
};

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
      Check check;
      stub.PrepareUnaryCall(&ctx, kHealthCheck, grpc::StubOptions(), &request, &response, &check);
      HandOff(&check);
      check.StartCall();
      // gRPC always completes the call (by its deadline at the latest), and
      // the call uses this frame.
      check.Wait();
    }
    checks_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    cv_.wait_for(lock, interval, [this] { return stopping_; });
  }
}

}  // namespace wf::grpc_util
