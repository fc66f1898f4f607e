// The worker's engine loop: one thread that owns the model runner, the KV
// cache, the prefix cache and the scheduler, and runs iteration-level
// continuous batching. gRPC handlers only validate (generate_job.h), Submit
// and stream what their ResponseSink receives.
//
// Each step: take new jobs and aborts from the inbox, let the scheduler plan
// (decodes + prefill chunks under the token budget), run one forward pass
// over the whole plan, sample a token for every sequence that produced
// logits, stream it, finish sequences that hit a stop condition, publish the
// load and KV events to the LoadHub.
//
// Rounding: prompt tokens are computed with prompt rounding and generated
// tokens (fed back) with bitnet.cpp's single-token decode rounding, whatever
// the batch or chunk they run in, so a request's output does not depend on
// what else runs, on preemption, or on prefix-cache hits.
//
// Threading: Submit/Abort/Cancel/BeginDrain/WaitIdle/Stop from any thread;
// sinks are called on the engine thread and must not block.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto loop, EngineLoop::Create(model.get(), tok.get(), options, &hub, metrics));
//   loop->Start();
//   BN_RETURN_IF_ERROR(loop->Submit(std::move(job), sink));
#ifndef WF_WORKER_SERVICE_ENGINE_LOOP_H_
#define WF_WORKER_SERVICE_ENGINE_LOOP_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/engine/forward.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"
#include "worker/engine/sampling.h"
#include "worker/engine/stop_matcher.h"
#include "worker/engine/thread_pool.h"
#include "worker/service/block_manager.h"
#include "worker/service/generate_job.h"
#include "worker/service/load_hub.h"
#include "worker/service/scheduler.h"
#include "worker/service/worker_metrics.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::service {

// Receives one request's output. Push() gets every response, the last with
// finished() set; Fail() instead ends the request with an error status
// (nothing follows either). Called on the engine thread: must not block.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void Push(wrinklefree::v1::GenerateResponse response) = 0;
  virtual void Fail(absl::Status status) = 0;
};

struct EngineLoopOptions {
  SchedulerConfig scheduler;  // max_context must be set (> 0)
  int block_size = 16;
  int kv_cache_blocks = 0;  // pool size; must hold at least one max_context sequence
  engine::KvCacheType kv_cache_type = engine::KvCacheType::kF16;
  int threads = 0;          // compute threads; 0 = hardware concurrency
  absl::Duration report_interval = absl::Milliseconds(100);
};

class EngineLoop {
 public:
  // `model`, `tokenizer`, `hub` must outlive the loop; `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<EngineLoop>> Create(const engine::Model* model,
                                                            const tokenizer::Tokenizer* tokenizer,
                                                            const EngineLoopOptions& options, LoadHub* hub,
                                                            WorkerMetrics* metrics);
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;
  ~EngineLoop();  // Stop()

  void Start();

  // Queues a job. Errors: UNAVAILABLE while draining or stopped;
  // RESOURCE_EXHAUSTED when max_waiting requests already wait (the message
  // names the limit); ALREADY_EXISTS if a live request has the same id. An
  // empty request id is replaced by a fresh one (written back into the job
  // before the sink sees anything); returns the id in use.
  absl::StatusOr<std::string> Submit(std::unique_ptr<GenerateJob> job, std::shared_ptr<ResponseSink> sink);

  // Ends a live request with FINISH_REASON_ABORT within one step. NOT_FOUND if
  // no live request has that id.
  absl::Status Abort(const std::string& request_id);
  // Abort for a client that went away: unknown ids are ignored.
  void Cancel(const std::string& request_id);

  // Refuse new work from now on (SIGTERM); running requests continue.
  void BeginDrain();
  bool draining() const { return draining_.load(); }
  // Waits until no request is live; true if that happened within `timeout`.
  bool WaitIdle(absl::Duration timeout);
  // Aborts whatever is left and joins the engine thread. Idempotent.
  void Stop();

  int block_size() const { return block_size_; }
  int total_blocks() const { return total_blocks_; }
  int32_t max_context() const { return max_context_; }
  const SchedulerConfig& scheduler_config() const { return scheduler_config_; }
  int num_live_requests() const;

 private:
  struct Pending {
    uint64_t seq_id = 0;
    std::unique_ptr<GenerateJob> job;
    std::shared_ptr<ResponseSink> sink;
  };
  // Engine-thread state of one request.
  struct Active {
    std::unique_ptr<GenerateJob> job;
    std::shared_ptr<ResponseSink> sink;
    std::unique_ptr<engine::Sampler> sampler;
    std::unique_ptr<engine::StopMatcher> stops;
    std::unique_ptr<tokenizer::StreamingDecoder> decoder;
    uint64_t seq_id = 0;
    int32_t generated = 0;
    bool admitted = false;
    bool sent_prompt_ids = false;
    std::chrono::steady_clock::time_point admitted_at, first_token_at, last_token_at;
  };

  EngineLoop() = default;
  void Run();
  void AdmitPending(std::vector<Pending>* pending);
  void Step();
  void HandleLogits(Sequence* seq, absl::Span<const float> logits);
  // Ends a request: final response (ok) or Fail (error), removes it everywhere.
  void Finish(uint64_t seq_id, wrinklefree::v1::FinishReason reason, wrinklefree::v1::GenerateResponse response,
              std::string matched_stop = "");
  void FailRequest(uint64_t seq_id, absl::Status status);
  void Forget(uint64_t seq_id);
  std::string FlushText(Active& a);
  void PublishLoad();

  const engine::Model* model_ = nullptr;
  const tokenizer::Tokenizer* tokenizer_ = nullptr;
  LoadHub* hub_ = nullptr;
  WorkerMetrics* metrics_ = nullptr;
  SchedulerConfig scheduler_config_;
  int block_size_ = 0;
  int total_blocks_ = 0;
  int32_t max_context_ = 0;
  absl::Duration report_interval_;
  std::vector<int32_t> eog_ids_;

  std::unique_ptr<engine::ThreadPool> pool_;
  std::unique_ptr<engine::KvCache> cache_;
  std::unique_ptr<engine::ModelRunner> runner_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> scheduler_;

  // Engine thread only.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Active>> active_;
  uint64_t next_event_seq_ = 1;
  engine::Batch batch_;
  engine::ForwardOutput out_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, int>> recent_tokens_;
  int recent_token_sum_ = 0;
  uint64_t reported_query_tokens_ = 0;  // prefix-cache counters already added to metrics
  uint64_t reported_hit_tokens_ = 0;

  // Shared with submitting threads.
  // std::mutex rather than absl::Mutex: ThreadSanitizer sees its
  // synchronization (Debian's Abseil is not built with TSan annotations).
  mutable std::mutex mu_;
  std::condition_variable input_cv_;  // inbox, aborts, stop
  std::condition_variable idle_cv_;   // live_ became empty
  std::vector<Pending> inbox_;  // guarded by mu_
  std::vector<uint64_t> aborts_;  // guarded by mu_; seq ids
  absl::flat_hash_map<std::string, uint64_t> live_;  // guarded by mu_; request id -> seq id
  int waiting_in_scheduler_ = 0;  // guarded by mu_
  uint64_t next_seq_id_ = 1;  // guarded by mu_
  bool stop_ = false;  // guarded by mu_
  std::atomic<bool> draining_{false};
  std::thread thread_;
};

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_ENGINE_LOOP_H_
