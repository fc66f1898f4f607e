// A single-sequence convenience over ModelRunner for tests, tools and the
// CLI: prefill a prompt, feed tokens one at a time, greedy generation with
// per-step top-k log-probabilities. Sampling lives in worker/engine/sampling.h;
// continuous batching in the worker's scheduler. This class owns a KV cache
// sized for one sequence of max_context positions.
//
// Rounding convention: tokens fed by Decode() (generated tokens fed back) use
// bitnet.cpp's single-token-decode rounding; Prefill() tokens do not, except
// that a one-token Prefill() uses it by default, as bitnet.cpp's single-token
// path does for a one-token prompt (PrefillOptions::decode_rounding
// overrides).
//
// Threading: one thread at a time. The Model (and a shared ThreadPool, if
// given) must outlive the session.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto session, Session::Create(*model, {.num_threads = 2}));
//   BN_ASSIGN_OR_RETURN(GenerationResult r, session->GenerateGreedy(prompt_ids, 32, 5));
//   for (const GenerationStep& step : r.steps) Print(step.token, step.top[0].logprob);
#ifndef WF_WORKER_ENGINE_SESSION_H_
#define WF_WORKER_ENGINE_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/engine/forward.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"
#include "worker/engine/thread_pool.h"

namespace wf::engine {

struct TokenLogprob {
  int32_t token = 0;
  double logprob = 0.0;
};

struct GenerationStep {
  int32_t token = 0;                   // the greedy choice
  std::vector<TokenLogprob> top = {};  // top-k of the distribution it came from
};

struct GenerationResult {
  std::vector<int32_t> tokens = {};
  std::vector<GenerationStep> steps = {};
};

// Log-softmax over all of `logits`, computed in double; the k most likely
// tokens, most likely first, ties to the lower id. k is clamped to the size.
std::vector<TokenLogprob> TopKLogSoftmax(absl::Span<const float> logits, int k);
// Full log-softmax in double.
std::vector<double> LogSoftmax(absl::Span<const float> logits);
// Index of the largest logit, ties to the lowest index; -1 if empty.
int32_t Argmax(absl::Span<const float> logits);

struct SessionOptions {
  // Threads of the session's own pool when `pool` is null (0 = hardware
  // concurrency).
  int num_threads = 0;
  ThreadPool* pool = nullptr;  // shared pool, not owned
  int32_t max_context = 0;     // 0 = the model's n_ctx_train
  int block_size = 16;         // KV cache block size in positions
  KvCacheType kv_cache_type = KvCacheType::kF16;
};

struct PrefillOptions {
  // Logits for every prompt position (else only the last).
  bool all_logits = false;
  // Rounding of the prompt tokens; unset = decode rounding only for a
  // one-token prefill (see the file comment).
  std::optional<bool> decode_rounding = std::nullopt;
};

class Session {
 public:
  // Errors from KvCache::Create and ModelRunner::Create.
  static absl::StatusOr<std::unique_ptr<Session>> Create(const Model& model,
                                                         const SessionOptions& options);

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Forgets the sequence (frees its KV blocks).
  void Reset();
  // Positions cached so far.
  int32_t length() const { return seq_.length; }

  // Appends `tokens` in one forward call. Returns the logits of every new
  // position ([n][n_vocab] row-major) with all_logits, else of the last one.
  // Errors: Forward()'s (empty input, bad ids, OUT_OF_RANGE past max_context).
  absl::StatusOr<std::vector<float>> Prefill(absl::Span<const int32_t> tokens,
                                             const PrefillOptions& options = {});
  // Appends one generated token (decode rounding) and returns its logits.
  absl::StatusOr<std::vector<float>> Decode(int32_t token);

  // Reset(), Prefill(prompt), then `n_tokens` greedy steps; each step's
  // token is fed back with Decode() except the last. Argmax ties go to the
  // lowest id.
  absl::StatusOr<GenerationResult> GenerateGreedy(absl::Span<const int32_t> prompt, int n_tokens,
                                                  int top_k);

  ModelRunner& runner() { return *runner_; }
  KvCache& cache() { return *cache_; }

 private:
  Session() = default;
  absl::StatusOr<std::vector<float>> Run(absl::Span<const int32_t> tokens, bool all_logits,
                                         bool decode_rounding);

  const Model* model_ = nullptr;
  std::unique_ptr<ThreadPool> own_pool_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<ModelRunner> runner_;
  SequenceKv seq_;
  Batch batch_;
  ForwardOutput out_;
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_SESSION_H_
