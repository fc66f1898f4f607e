// The BitNet b1.58 forward pass over a batch of sequence slices.
//
// A Batch lists, for each sequence, its KV state (block table + positions
// already cached) and the new tokens to run. All tokens of the batch go
// through every projection together (one int8 x ternary GEMM per weight);
// attention runs per sequence over its own paged KV; logits are produced
// only for the tokens that ask for them. The math follows bitnet.cpp's
// build_bitnet_158 (see the REFERENCE notes on rounding points): K and V are
// stored as F16, Q is rounded to F16 before QK^T, and a token with
// `decode_rounding` also rounds its softmax probabilities and its final
// normed hidden state to F16, as bitnet.cpp's single-token decode does.
//
// Invariance contract: a token's logits depend only on its sequence's tokens
// and rounding flags, never on the other sequences of the batch, on how a
// prompt was split into forward calls, or on the thread count. Every float
// reduction is done per token (or per token and head) by one thread in a
// fixed order, and the integer GEMMs are exact.
//
// Threading: a ModelRunner is used by one thread at a time (it owns scratch
// buffers); it fans work out to its ThreadPool. Several runners may share a
// Model; each needs its own KvCache or disjoint blocks of a shared one.
//
// Example:
//   ThreadPool pool(2);
//   BN_ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(model.get(), cache.get(), &pool, {}));
//   SequenceKv seq;
//   BN_RETURN_IF_ERROR(cache->Reserve(&seq, prompt.size()));
//   Batch batch;
//   SequenceSlice& s = batch.sequences.emplace_back();
//   s.kv = &seq;
//   for (int32_t id : prompt) s.tokens.push_back({.id = id});
//   s.tokens.back().want_logits = true;
//   ForwardOutput out;
//   BN_RETURN_IF_ERROR(runner->Forward(batch, &out));  // seq.length == prompt.size()
//   absl::Span<const float> logits = out.row_logits(0);
#ifndef WF_WORKER_ENGINE_FORWARD_H_
#define WF_WORKER_ENGINE_FORWARD_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"
#include "worker/engine/thread_pool.h"

namespace wf::engine {

struct BatchToken {
  int32_t id = 0;
  // Produce logits for the position of this token (the next-token prediction).
  bool want_logits = false;
  // bitnet.cpp single-token-decode rounding: set for generated tokens fed
  // back one at a time; leave false for prompt tokens.
  bool decode_rounding = false;
};

struct SequenceSlice {
  // Not owned. Its block table must cover length + tokens.size() positions
  // (KvCache::Reserve); Forward() writes the new positions and, on success,
  // advances length by tokens.size(). Two slices of one batch must not share
  // a SequenceKv, and the blocks holding the new positions must not be
  // shared with any other sequence of the batch (shared prefix blocks that
  // are only read are fine).
  SequenceKv* kv = nullptr;
  std::vector<BatchToken> tokens = {};  // at least one
};

struct Batch {
  std::vector<SequenceSlice> sequences = {};
};

struct ForwardOutput {
  struct Row {
    int32_t sequence = 0;  // index into Batch::sequences
    int32_t token = 0;     // index into that slice's tokens
    int32_t position = 0;  // absolute position of that token in its sequence
  };
  int32_t n_vocab = 0;
  std::vector<Row> rows = {};      // one per token with want_logits, in batch order
  std::vector<float> logits = {};  // rows.size() * n_vocab raw logits

  absl::Span<const float> row_logits(size_t i) const {
    return absl::MakeConstSpan(logits.data() + i * n_vocab, n_vocab);
  }
};

struct RunnerOptions {
  // Most positions a sequence may reach; 0 means the model's n_ctx_train.
  int32_t max_context = 0;
};

class ModelRunner {
 public:
  // `model` and `cache` must outlive the runner; `pool` may be nullptr
  // (single-threaded). INVALID_ARGUMENT if the cache geometry (layers, KV
  // heads, head dim) does not match the model or max_context is negative.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(const Model* model, KvCache* cache,
                                                             ThreadPool* pool,
                                                             const RunnerOptions& options);

  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // Runs one step over `batch` (see the file comment); fills *out. Errors,
  // all detected before anything is computed or written:
  //   INVALID_ARGUMENT: empty batch or slice, null or repeated kv, a token id
  //     outside [0, n_vocab), a block id outside the cache;
  //   OUT_OF_RANGE: a sequence would exceed max_context positions;
  //   FAILED_PRECONDITION: a block table too short for the new positions.
  // On error no SequenceKv is changed.
  absl::Status Forward(const Batch& batch, ForwardOutput* out);

  const Model& model() const { return *model_; }
  int32_t max_context() const { return max_context_; }

 private:
  // Per new token of the current batch.
  struct TokenInfo {
    const SequenceKv* kv;
    int32_t position;
    bool decode_rounding;
  };

  ModelRunner(const Model* model, KvCache* cache, ThreadPool* pool, int32_t max_context);

  absl::Status Validate(const Batch& batch) const;
  void EnsureScratch(int64_t n_tokens);
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
  // Per token t: x_t += add_t (if add), then RMSNorm(x_t) * w, int8-quantized
  // into q8_ / act_scale_ / act_sum_ (the input of the next projections).
  void NormAndQuantize(int64_t n_tokens, float* x, const float* add, int64_t dim, const float* w,
                       int64_t x_stride);
  void Project(int64_t n_tokens, std::initializer_list<std::pair<const TernaryWeight*, float*>> ws);
  void RopeAndStore(int layer, int64_t n_tokens);
  void Attention(int layer, int64_t n_tokens);
  void Head(const std::vector<int64_t>& logit_tokens, ForwardOutput* out);

  const Model* model_;
  KvCache* cache_;
  ThreadPool* pool_;
  int32_t max_context_;

  std::vector<TokenInfo> tokens_;
  int64_t scratch_tokens_ = 0;
  std::vector<float> x_;       // [T][n_embd] residual stream
  std::vector<float> normed_;  // [T][max(n_embd, n_ff)] norm output before quantization
  std::vector<int8_t> q8_;     // [T][max(n_embd, n_ff)] quantized projection input
  std::vector<float> act_scale_;
  std::vector<int32_t> act_sum_;
  std::vector<float> q_;     // [T][n_embd]
  std::vector<float> k_;     // [T][n_head_kv * head_dim]
  std::vector<float> v_;     // [T][n_head_kv * head_dim]
  std::vector<float> attn_;  // [T][n_embd]
  std::vector<float> proj_;  // [T][n_embd] output of Wo / Wdown
  std::vector<float> gate_;  // [T][n_ff]
  std::vector<float> up_;    // [T][n_ff]
  std::vector<float> attn_scores_;   // [tokens of a pass][n_head][max positions]
  std::vector<float> attn_partial_;  // [tokens of a pass][n_head_kv][chunks][group][head_dim]
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_FORWARD_H_
