// The wrinklefree.v1.Worker gRPC service (proto/wrinklefree/v1/worker.proto)
// on gRPC's callback API: no thread per stream. Handlers validate, Submit to
// the EngineLoop and stream what it produces; they never touch the model.
//
// Generate writes are flow-controlled per stream: while one write is in
// flight, further tokens are merged into the next message, so a slow client
// never blocks the engine loop (it just gets bigger messages).
//
// While the model is loading (SetReady not called yet) or after BeginDrain,
// Generate answers UNAVAILABLE; GetModelInfo/Tokenize answer UNAVAILABLE
// until ready.
//
// Threading: all methods are thread-safe.
//
// Example:
//   WorkerService service(&hub, {.max_watchers = 64});
//   builder.RegisterService(&service);
//   ... load the model, create the EngineLoop ...
//   service.SetReady(&ready_state);
#ifndef WF_WORKER_SERVICE_WORKER_SERVICE_H_
#define WF_WORKER_SERVICE_WORKER_SERVICE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "grpcpp/grpcpp.h"
#include "worker/service/engine_loop.h"
#include "worker/service/generate_job.h"
#include "worker/service/load_hub.h"
#include "wrinklefree/v1/worker.grpc.pb.h"

namespace wf::service {

// absl -> gRPC status, code for code.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Everything the handlers need once the model is loaded. Must outlive the
// service's use of it (the server is shut down first).
struct ReadyState {
  EngineLoop* loop = nullptr;
  const tokenizer::Tokenizer* tokenizer = nullptr;
  PromptTools prompt_tools;
  JobLimits limits;
  wrinklefree::v1::ModelInfo model_info;  // without the tokenizer fields
};

struct WorkerServiceOptions {
  int max_watchers = 64;  // concurrent WatchLoad streams
  int default_report_interval_ms = 100;
};

class WorkerService final : public wrinklefree::v1::Worker::CallbackService {
 public:
  WorkerService(LoadHub* hub, const WorkerServiceOptions& options);
  ~WorkerService() override;

  void SetReady(const ReadyState* state) { ready_.store(state); }
  const ReadyState* ready() const { return ready_.load(); }
  // Stops WatchLoad streams (they end with OK) — call before Server::Shutdown.
  void StopWatchers();

  grpc::ServerWriteReactor<wrinklefree::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const wrinklefree::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* context, const wrinklefree::v1::AbortRequest* request,
                                  wrinklefree::v1::AbortResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const wrinklefree::v1::TokenizeRequest* request,
                                     wrinklefree::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const wrinklefree::v1::DetokenizeRequest* request,
                                       wrinklefree::v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const wrinklefree::v1::GetModelInfoRequest* request,
                                         wrinklefree::v1::ModelInfo* response) override;
  grpc::ServerWriteReactor<wrinklefree::v1::LoadReport>* WatchLoad(
      grpc::CallbackServerContext* context, const wrinklefree::v1::WatchLoadRequest* request) override;

 private:
  class GenerateReactor;
  class WatchReactor;

  LoadHub* hub_;
  WorkerServiceOptions options_;
  std::atomic<const ReadyState*> ready_{nullptr};
  std::atomic<int> watchers_{0};
};

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_WORKER_SERVICE_H_
