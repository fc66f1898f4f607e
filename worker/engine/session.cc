#include "worker/engine/session.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace wf::engine {

std::vector<double> LogSoftmax(absl::Span<const float> logits) {
  std::vector<double> out(logits.size());
  if (logits.empty()) return out;
  double max = logits[0];
  for (float l : logits) max = std::max(max, static_cast<double>(l));
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  const double log_z = max + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - log_z;
  return out;
}

std::vector<TokenLogprob> TopKLogSoftmax(absl::Span<const float> logits, int k) {
  const std::vector<double> lp = LogSoftmax(logits);
  std::vector<int32_t> ids(lp.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  const size_t n = std::min(ids.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
    return lp[a] > lp[b] || (lp[a] == lp[b] && a < b);
  });
  std::vector<TokenLogprob> top(n);
  for (size_t i = 0; i < n; ++i) top[i] = {.token = ids[i], .logprob = lp[ids[i]]};
  return top;
}

int32_t Argmax(absl::Span<const float> logits) {
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (best < 0 || logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

absl::StatusOr<std::unique_ptr<Session>> Session::Create(const Model& model,
                                                         const SessionOptions& options) {
  std::unique_ptr<Session> s(new Session());
  s->model_ = &model;
  const ModelConfig& c = model.config();
  const int32_t max_context = options.max_context > 0 ? options.max_context : c.n_ctx_train;
  if (options.block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be positive, got ", options.block_size));
  }
  BN_ASSIGN_OR_RETURN(
      s->cache_,
      KvCache::Create({.n_layer = c.n_layer,
                       .n_head_kv = c.n_head_kv,
                       .head_dim = c.head_dim,
                       .block_size = options.block_size,
                       .num_blocks = (max_context + options.block_size - 1) / options.block_size,
                       .type = options.kv_cache_type}));
  ThreadPool* pool = options.pool;
  if (pool == nullptr) {
    s->own_pool_ = std::make_unique<ThreadPool>(options.num_threads);
    pool = s->own_pool_.get();
  }
  BN_ASSIGN_OR_RETURN(
      s->runner_, ModelRunner::Create(&model, s->cache_.get(), pool, {.max_context = max_context}));
  s->batch_.sequences.resize(1);
  s->batch_.sequences[0].kv = &s->seq_;
  return s;
}

Session::~Session() {
  if (cache_ != nullptr) cache_->Release(&seq_);
}

void Session::Reset() { cache_->Release(&seq_); }

absl::StatusOr<std::vector<float>> Session::Run(absl::Span<const int32_t> tokens, bool all_logits,
                                                bool decode_rounding) {
  // Reserve no more than the runner accepts, so that running past the
  // context limit is reported by Forward() as OUT_OF_RANGE.
  const int64_t want =
      std::min<int64_t>(seq_.length + static_cast<int64_t>(tokens.size()), runner_->max_context());
  BN_RETURN_IF_ERROR(cache_->Reserve(&seq_, want));
  std::vector<BatchToken>& batch_tokens = batch_.sequences[0].tokens;
  batch_tokens.clear();
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch_tokens.push_back({.id = tokens[i],
                            .want_logits = all_logits || i + 1 == tokens.size(),
                            .decode_rounding = decode_rounding});
  }
  BN_RETURN_IF_ERROR(runner_->Forward(batch_, &out_));
  return out_.logits;
}

absl::StatusOr<std::vector<float>> Session::Prefill(absl::Span<const int32_t> tokens,
                                                    const PrefillOptions& options) {
  const bool rounding = options.decode_rounding.value_or(tokens.size() == 1);
  return Run(tokens, options.all_logits, rounding);
}

absl::StatusOr<std::vector<float>> Session::Decode(int32_t token) {
  return Run(absl::MakeConstSpan(&token, 1), /*all_logits=*/false, /*decode_rounding=*/true);
}

absl::StatusOr<GenerationResult> Session::GenerateGreedy(absl::Span<const int32_t> prompt,
                                                         int n_tokens, int top_k) {
  Reset();
  GenerationResult result;
  BN_ASSIGN_OR_RETURN(std::vector<float> logits, Prefill(prompt));
  for (int i = 0; i < n_tokens; ++i) {
    const int32_t token = Argmax(logits);
    result.tokens.push_back(token);
    result.steps.push_back({.token = token, .top = TopKLogSoftmax(logits, top_k)});
    if (i + 1 < n_tokens) {
      BN_ASSIGN_OR_RETURN(logits, Decode(token));
    }
  }
  return result;
}

}  // namespace wf::engine
