#include "worker/engine/forward.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/kernels/kernels.h"

namespace wf::engine {
namespace {

// Row granularity of the ternary projections handed to one thread: whole
// multiples keep the kernels on their full-width row tiles.
constexpr int64_t kProjectionGrain = 32;
// Head rows per inner tile: the tile (64 x n_embd halves, 320 KB for 2560)
// stays in L2 while every logits token of the batch is dotted with it, so the
// head streams from memory once per step instead of once per token.
constexpr int64_t kHeadRowTile = 64;
// Attention splits each token's context into chunks of this many positions
// (the unit of work of a thread, and of the fixed P.V summation order).
constexpr int64_t kAttentionChunk = 256;
// Most floats of attention scores kept at once (32 MB); longer batches run
// in several passes.
constexpr int64_t kAttentionScratchFloats = int64_t{8} << 20;

std::vector<uint16_t>& ThreadHalfBuffer() {
  thread_local std::vector<uint16_t> buf;
  return buf;
}

template <typename T>
void GrowTo(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// RMSNorm as ggml computes it: squares summed in double in index order, the
// mean and the reciprocal root in float, then (x * scale) * weight.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

// Asks for [p, p + bytes) to be brought into cache; never faults.
void Prefetch(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 3);
}

// Rounds n floats to the nearest F16 value, in place.
void RoundToF16(const kernels::KernelTable& kt, float* x, int64_t n) {
  std::vector<uint16_t>& half = ThreadHalfBuffer();
  GrowTo(half, static_cast<size_t>(n));
  kt.f32_to_f16(x, half.data(), n);
  kt.f16_to_f32(half.data(), x, n);
}

}  // namespace

ModelRunner::ModelRunner(const Model* model, KvCache* cache, ThreadPool* pool, int32_t max_context)
    : model_(model), cache_(cache), pool_(pool), max_context_(max_context) {}

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(const Model* model, KvCache* cache,
                                                                 ThreadPool* pool,
                                                                 const RunnerOptions& options) {
  if (model == nullptr || cache == nullptr) {
    return absl::InvalidArgumentError("ModelRunner needs a model and a KV cache");
  }
  const ModelConfig& c = model->config();
  const KvCacheConfig& kc = cache->config();
  if (kc.n_layer != c.n_layer || kc.n_head_kv != c.n_head_kv || kc.head_dim != c.head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache geometry (layers ", kc.n_layer, ", KV heads ", kc.n_head_kv,
                     ", head dim ", kc.head_dim, ") does not match the model (", c.n_layer, ", ",
                     c.n_head_kv, ", ", c.head_dim, ")"));
  }
  if (options.max_context < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_context must be >= 0, got ", options.max_context));
  }
  const int32_t max_context = options.max_context > 0 ? options.max_context : c.n_ctx_train;
  return std::unique_ptr<ModelRunner>(new ModelRunner(model, cache, pool, max_context));
}

void ModelRunner::ParallelFor(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (pool_ == nullptr) {
    if (n > 0) fn(0, n);
    return;
  }
  pool_->ParallelFor(n, fn, grain);
}

absl::Status ModelRunner::Validate(const Batch& batch) const {
  if (batch.sequences.empty()) return absl::InvalidArgumentError("empty batch: no sequences");
  const ModelConfig& c = model_->config();
  absl::flat_hash_set<const SequenceKv*> seen;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceSlice& slice = batch.sequences[s];
    if (slice.kv == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("batch sequence ", s, ": kv is null"));
    }
    if (!seen.insert(slice.kv).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch sequence ", s, ": its SequenceKv appears twice in the batch"));
    }
    if (slice.tokens.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("batch sequence ", s, ": no tokens"));
    }
    for (size_t i = 0; i < slice.tokens.size(); ++i) {
      const int32_t id = slice.tokens[i].id;
      if (id < 0 || id >= c.n_vocab) {
        return absl::InvalidArgumentError(absl::StrCat("batch sequence ", s, " token ", i, ": id ",
                                                       id, " is outside the vocabulary [0, ",
                                                       c.n_vocab, ")"));
      }
    }
    const int64_t length = slice.kv->length;
    const int64_t end = length + static_cast<int64_t>(slice.tokens.size());
    if (length < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch sequence ", s, ": negative length ", length));
    }
    if (end > max_context_) {
      return absl::OutOfRangeError(
          absl::StrCat("batch sequence ", s, ": ", length, " cached + ", slice.tokens.size(),
                       " new positions exceed the context limit of ", max_context_));
    }
    const int64_t capacity =
        static_cast<int64_t>(slice.kv->block_table.size()) * cache_->block_size();
    if (end > capacity) {
      return absl::FailedPreconditionError(
          absl::StrCat("batch sequence ", s, ": block table covers ", capacity, " positions but ",
                       end, " are needed (reserve KV blocks first)"));
    }
    for (int32_t b : slice.kv->block_table) {
      if (b < 0 || b >= cache_->num_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat("batch sequence ", s, ": block id ", b,
                                                       " outside the cache [0, ",
                                                       cache_->num_blocks(), ")"));
      }
    }
  }
  return absl::OkStatus();
}

void ModelRunner::EnsureScratch(int64_t n_tokens) {
  if (n_tokens <= scratch_tokens_) return;
  const ModelConfig& c = model_->config();
  const size_t t = static_cast<size_t>(n_tokens);
  const size_t n_embd = c.n_embd;
  const size_t n_ff = c.n_ff;
  const size_t n_kv = static_cast<size_t>(c.n_head_kv) * c.head_dim;
  const size_t widest = std::max(n_embd, n_ff);
  GrowTo(x_, t * n_embd);
  GrowTo(normed_, t * widest);
  GrowTo(q8_, t * widest);
  GrowTo(act_scale_, t);
  GrowTo(act_sum_, t);
  GrowTo(q_, t * n_embd);
  GrowTo(k_, t * n_kv);
  GrowTo(v_, t * n_kv);
  GrowTo(attn_, t * n_embd);
  GrowTo(proj_, t * n_embd);
  GrowTo(gate_, t * n_ff);
  GrowTo(up_, t * n_ff);
  scratch_tokens_ = n_tokens;
}

void ModelRunner::NormAndQuantize(int64_t n_tokens, float* x, const float* add, int64_t dim,
                                  const float* w, int64_t x_stride) {
  const kernels::KernelTable& kt = model_->kernels();
  const float eps = model_->config().rms_eps;
  ParallelFor(n_tokens, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* row = x + t * x_stride;
      if (add != nullptr) {
        const float* a = add + t * dim;
        for (int64_t i = 0; i < dim; ++i) row[i] += a[i];
      }
      float* y = normed_.data() + t * dim;
      RmsNorm(row, w, dim, eps, y);
      kt.quantize_activations_i8(y, dim, q8_.data() + t * dim, &act_scale_[t], &act_sum_[t]);
    }
  });
}

void ModelRunner::Project(int64_t n_tokens,
                          std::initializer_list<std::pair<const TernaryWeight*, float*>> ws) {
  // Several weights that read the same quantized input share one parallel
  // loop over their concatenated rows.
  int64_t total_rows = 0;
  for (const auto& [w, y] : ws) total_rows += w->m;
  const kernels::KernelTable& kt = model_->kernels();
  ParallelFor(total_rows, kProjectionGrain, [&](int64_t begin, int64_t end) {
    int64_t offset = 0;
    for (const auto& [w, y] : ws) {
      const int64_t lo = std::max(begin - offset, int64_t{0});
      const int64_t hi = std::min(end - offset, w->m);
      if (lo < hi && n_tokens == 1) {
        // Same integers and epilogue as the gemm (bit-identical), with row
        // tiles tuned for one token.
        kt.i2s_gemv(w->codes, w->k, lo, hi, q8_.data(), act_scale_[0], act_sum_[0], w->scale, y);
      } else if (lo < hi) {
        kt.i2s_gemm(w->codes, w->k, lo, hi, q8_.data(), act_scale_.data(), act_sum_.data(),
                    n_tokens, w->scale, y, w->m);
      }
      offset += w->m;
    }
  });
}

void ModelRunner::RopeAndStore(int layer, int64_t n_tokens) {
  const ModelConfig& c = model_->config();
  const kernels::KernelTable& kt = model_->kernels();
  const int64_t hd = c.head_dim;
  const int64_t half = hd / 2;
  const int64_t n_kv = static_cast<int64_t>(c.n_head_kv) * hd;
  const int bs = cache_->block_size();
  // ggml's NEOX RoPE: theta_i = p * base^(-2i/hd), built by repeated float
  // multiplication; pairs (i, i + hd/2).
  const float theta_scale = std::pow(c.rope_theta, -2.0f / static_cast<float>(hd));
  ParallelFor(n_tokens, 1, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> cos_sin;
    GrowTo(cos_sin, static_cast<size_t>(2 * half));
    for (int64_t t = begin; t < end; ++t) {
      const TokenInfo& info = tokens_[t];
      float theta = static_cast<float>(info.position);
      for (int64_t i = 0; i < half; ++i) {
        cos_sin[2 * i] = std::cos(theta);
        cos_sin[2 * i + 1] = std::sin(theta);
        theta *= theta_scale;
      }
      auto rotate = [&](float* head) {
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = head[i];
          const float x1 = head[i + half];
          const float cs = cos_sin[2 * i];
          const float sn = cos_sin[2 * i + 1];
          head[i] = x0 * cs - x1 * sn;
          head[i + half] = x0 * sn + x1 * cs;
        }
      };
      float* q = q_.data() + t * c.n_embd;
      for (int h = 0; h < c.n_head; ++h) rotate(q + h * hd);
      RoundToF16(kt, q, c.n_embd);
      float* k = k_.data() + t * n_kv;
      const float* v = v_.data() + t * n_kv;
      for (int g = 0; g < c.n_head_kv; ++g) rotate(k + g * hd);
      const int32_t block = info.kv->block_table[info.position / bs];
      const int64_t slot = info.position % bs;
      if (cache_->type() == KvCacheType::kQ8) {
        for (int g = 0; g < c.n_head_kv; ++g) {
          const int64_t row = g * bs + slot;
          kernels::QuantizeQ8Blocks(k + g * hd, hd, cache_->KBlockQ8(layer, block) + row * hd,
                                    cache_->KScalesQ8(layer, block) + row * (hd / kernels::kQ8Block));
          kernels::QuantizeQ8Blocks(v + g * hd, hd, cache_->VBlockQ8(layer, block) + row * hd,
                                    cache_->VScalesQ8(layer, block) + row * (hd / kernels::kQ8Block));
        }
        continue;
      }
      uint16_t* kb = cache_->KBlock(layer, block);
      uint16_t* vb = cache_->VBlock(layer, block);
      for (int g = 0; g < c.n_head_kv; ++g) {
        const int64_t off = (g * bs + slot) * hd;
        kt.f32_to_f16(k + g * hd, kb + off, hd);
        kt.f32_to_f16(v + g * hd, vb + off, hd);
      }
    }
  });
}

void ModelRunner::Attention(int layer, int64_t n_tokens) {
  const ModelConfig& c = model_->config();
  const kernels::KernelTable& kt = model_->kernels();
  const int64_t hd = c.head_dim;
  const int64_t n_head = c.n_head;
  const int64_t n_kv = c.n_head_kv;
  const int64_t group = n_head / n_kv;
  const int64_t bs = cache_->block_size();
  const float kq_scale = 1.0f / std::sqrt(static_cast<float>(hd));
  int64_t max_pos = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    max_pos = std::max<int64_t>(max_pos, tokens_[t].position + 1);
  }
  const int64_t max_chunks = (max_pos + kAttentionChunk - 1) / kAttentionChunk;
  // Tokens per pass, so the score rows stay within kAttentionScratchFloats.
  const int64_t per_token = n_head * max_pos;
  const int64_t pass = std::clamp<int64_t>(kAttentionScratchFloats / per_token, 1, n_tokens);
  GrowTo(attn_scores_, static_cast<size_t>(pass * per_token));
  GrowTo(attn_partial_, static_cast<size_t>(pass * n_head * max_chunks * hd));
  float* scores = attn_scores_.data();
  float* partial = attn_partial_.data();

  const bool q8 = cache_->type() == KvCacheType::kQ8;
  const int64_t scales_per_row = hd / kernels::kQ8Block;
  // A run of positions inside one KV block: KV head g's first row of the run
  // in the layer's K or V pool (codes and scales for q8).
  struct Run {
    const uint16_t* f16 = nullptr;
    const int8_t* codes = nullptr;
    const float* scales = nullptr;
  };
  auto run_at = [&](const SequenceKv& kv, bool keys, int64_t g, int64_t p) {
    const int32_t block = kv.block_table[p / bs];
    const int64_t row = g * bs + p % bs;
    Run r;
    if (q8) {
      r.codes = (keys ? cache_->KBlockQ8(layer, block) : cache_->VBlockQ8(layer, block)) + row * hd;
      r.scales = (keys ? cache_->KScalesQ8(layer, block) : cache_->VScalesQ8(layer, block)) + row * scales_per_row;
    } else {
      r.f16 = (keys ? cache_->KBlock(layer, block) : cache_->VBlock(layer, block)) + row * hd;
    }
    return r;
  };
  // Calls fn(first position, rows, run) for the runs of positions [p0, p1)
  // that lie in one KV block. Before each run it prefetches the next one: a
  // run is one head_dim x block_size piece (4 KB for 2B-4T in f16) a whole
  // block apart from the next, so every run starts a new page where the
  // hardware prefetcher has to learn the stream again (decode at 4096
  // positions against 128 went from about 0.60 to 0.66 of the rate with it).
  auto for_each_run = [&](const SequenceKv& kv, bool keys, int64_t g, int64_t p0, int64_t p1,
                          auto&& fn) {
    while (p0 < p1) {
      const int64_t rows = std::min(p1, (p0 / bs + 1) * bs) - p0;
      const int64_t next = p0 + rows;
      if (next < p1) {
        const Run ahead = run_at(kv, keys, g, next);
        const int64_t ahead_rows = std::min(p1 - next, bs);
        if (q8) {
          Prefetch(ahead.codes, ahead_rows * hd);
          Prefetch(ahead.scales, ahead_rows * scales_per_row * int64_t{sizeof(float)});
        } else {
          Prefetch(ahead.f16, ahead_rows * hd * int64_t{sizeof(uint16_t)});
        }
      }
      fn(p0, rows, run_at(kv, keys, g, p0));
      p0 = next;
    }
  };

  for (int64_t t0 = 0; t0 < n_tokens; t0 += pass) {
    const int64_t tn = std::min(pass, n_tokens - t0);
    // An item is (token, KV head, chunk of positions): each K/V block is read
    // once, in F16, for the whole group of query heads that shares it, and
    // a long context splits into chunks that several threads share.
    const int64_t items = tn * n_kv * max_chunks;
    ParallelFor(items, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t tl = item / (n_kv * max_chunks);
        const int64_t g = (item / max_chunks) % n_kv;
        const int64_t ch = item % max_chunks;
        const TokenInfo& info = tokens_[t0 + tl];
        const int64_t n_pos = info.position + 1;  // causal: positions [0, position]
        const int64_t p0 = ch * kAttentionChunk;
        if (p0 >= n_pos) continue;
        const int64_t q_offset = (t0 + tl) * c.n_embd + g * group * hd;
        float* row = scores + (tl * n_head + g * group) * max_pos;
        for_each_run(*info.kv, /*keys=*/true, g, p0, std::min(n_pos, p0 + kAttentionChunk),
                     [&](int64_t p, int64_t rows, const Run& k) {
                       if (q8) {
                         kt.q8_scores(k.codes, k.scales, rows, hd, q_.data() + q_offset, group, row + p, max_pos);
                       } else {
                         kt.f16_scores(k.f16, rows, hd, q_.data() + q_offset, group, row + p, max_pos);
                       }
                     });
      }
    });
    ParallelFor(tn * n_head, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const TokenInfo& info = tokens_[t0 + item / n_head];
        const int64_t n_pos = info.position + 1;
        float* p = scores + item * max_pos;
        kt.f32_softmax(p, n_pos, kq_scale);
        if (info.decode_rounding) RoundToF16(kt, p, n_pos);
      }
    });
    // P.V per chunk from zero, then the chunks summed in order: a fixed
    // order that depends on the position only, never on threads or batch.
    ParallelFor(items, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t tl = item / (n_kv * max_chunks);
        const int64_t g = (item / max_chunks) % n_kv;
        const int64_t ch = item % max_chunks;
        const TokenInfo& info = tokens_[t0 + tl];
        const int64_t n_pos = info.position + 1;
        const int64_t p0 = ch * kAttentionChunk;
        if (p0 >= n_pos) continue;
        const float* p = scores + (tl * n_head + g * group) * max_pos;
        float* acc = partial + (((tl * n_kv + g) * max_chunks + ch) * group) * hd;
        std::fill(acc, acc + group * hd, 0.0f);
        for_each_run(*info.kv, /*keys=*/false, g, p0, std::min(n_pos, p0 + kAttentionChunk),
                     [&](int64_t pos, int64_t rows, const Run& v) {
                       if (q8) {
                         kt.q8_accumulate_rows(v.codes, v.scales, rows, hd, p + pos, max_pos, group, acc);
                       } else {
                         kt.f16_accumulate_rows(v.f16, rows, hd, p + pos, max_pos, group, acc);
                       }
                     });
      }
    });
    ParallelFor(tn * n_kv, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t tl = item / n_kv;
        const int64_t g = item % n_kv;
        const int64_t n_pos = tokens_[t0 + tl].position + 1;
        const int64_t chunks = (n_pos + kAttentionChunk - 1) / kAttentionChunk;
        const float* first = partial + ((tl * n_kv + g) * max_chunks) * group * hd;
        float* out = attn_.data() + (t0 + tl) * c.n_embd + g * group * hd;
        std::copy(first, first + group * hd, out);
        for (int64_t ch = 1; ch < chunks; ++ch) {
          const float* add = first + ch * group * hd;
          for (int64_t d = 0; d < group * hd; ++d) out[d] += add[d];
        }
      }
    });
  }
}

void ModelRunner::Head(const std::vector<int64_t>& logit_tokens, ForwardOutput* out) {
  const ModelConfig& c = model_->config();
  const kernels::KernelTable& kt = model_->kernels();
  const int64_t n_embd = c.n_embd;
  const int64_t n_rows = static_cast<int64_t>(logit_tokens.size());
  // Final norm of the tokens that want logits, into normed_ rows 0..n_rows.
  ParallelFor(n_rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = logit_tokens[i];
      float* x = x_.data() + t * n_embd;
      const float* add = proj_.data() + t * n_embd;
      for (int64_t d = 0; d < n_embd; ++d) x[d] += add[d];
      float* y = normed_.data() + i * n_embd;
      RmsNorm(x, model_->output_norm(), n_embd, c.rms_eps, y);
      if (tokens_[t].decode_rounding) RoundToF16(kt, y, n_embd);
    }
  });
  float* logits = out->logits.data();
  const int64_t n_vocab = c.n_vocab;
  if (model_->head_type() == HeadType::kQ8) {
    ParallelFor(n_rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        kt.quantize_activations_i8(normed_.data() + i * n_embd, n_embd, q8_.data() + i * n_embd,
                                   &act_scale_[i], &act_sum_[i]);
      }
    });
    // Exact integer dots with a per-row epilogue: any split of rows or
    // tokens gives the same bits, so the gemm may batch the tokens.
    ParallelFor(n_vocab, kHeadRowTile, [&](int64_t begin, int64_t end) {
      kt.i8_gemm(model_->head_q8(), model_->head_q8_scales(), n_embd, begin, end, q8_.data(),
                 act_scale_.data(), n_rows, logits, n_vocab);
    });
    return;
  }
  // The F16 gemm gives each token the bits of its own gemv (the kernels'
  // contract), so logits do not depend on the batch; several tokens share
  // each converted weight vector.
  ParallelFor(n_vocab, kHeadRowTile, [&](int64_t begin, int64_t end) {
    for (int64_t r0 = begin; r0 < end; r0 += kHeadRowTile) {
      const int64_t r1 = std::min(end, r0 + kHeadRowTile);
      kt.f16_gemm(model_->head(), n_embd, r0, r1, normed_.data(), n_rows, logits, n_vocab);
    }
  });
}

absl::Status ModelRunner::Forward(const Batch& batch, ForwardOutput* out) {
  if (out == nullptr) return absl::InvalidArgumentError("Forward: output is null");
  BN_RETURN_IF_ERROR(Validate(batch));
  const ModelConfig& c = model_->config();

  tokens_.clear();
  out->rows.clear();
  out->n_vocab = c.n_vocab;
  std::vector<int32_t> ids;
  std::vector<int64_t> logit_tokens;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceSlice& slice = batch.sequences[s];
    for (size_t i = 0; i < slice.tokens.size(); ++i) {
      const BatchToken& tok = slice.tokens[i];
      const int32_t position = slice.kv->length + static_cast<int32_t>(i);
      if (tok.want_logits) {
        logit_tokens.push_back(static_cast<int64_t>(tokens_.size()));
        out->rows.push_back({.sequence = static_cast<int32_t>(s),
                             .token = static_cast<int32_t>(i),
                             .position = position});
      }
      tokens_.push_back(
          {.kv = slice.kv, .position = position, .decode_rounding = tok.decode_rounding});
      ids.push_back(tok.id);
    }
  }
  const int64_t n_tokens = static_cast<int64_t>(tokens_.size());
  EnsureScratch(std::max<int64_t>(n_tokens, static_cast<int64_t>(logit_tokens.size())));
  out->logits.resize(logit_tokens.size() * static_cast<size_t>(c.n_vocab));

  ParallelFor(n_tokens, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) model_->Embed(ids[t], x_.data() + t * c.n_embd);
  });

  const float* residual_add = nullptr;  // the previous layer's Wdown output
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = model_->layer(l);
    NormAndQuantize(n_tokens, x_.data(), residual_add, c.n_embd, w.attn_norm, c.n_embd);
    Project(n_tokens, {{&w.wq, q_.data()}, {&w.wk, k_.data()}, {&w.wv, v_.data()}});
    RopeAndStore(l, n_tokens);
    Attention(l, n_tokens);
    NormAndQuantize(n_tokens, attn_.data(), nullptr, c.n_embd, w.attn_sub_norm, c.n_embd);
    Project(n_tokens, {{&w.wo, proj_.data()}});
    NormAndQuantize(n_tokens, x_.data(), proj_.data(), c.n_embd, w.ffn_norm, c.n_embd);
    Project(n_tokens, {{&w.w_gate, gate_.data()}, {&w.w_up, up_.data()}});
    // relu(gate)^2 * up, computed in place in gate_, then the FFN sub-norm.
    ParallelFor(n_tokens, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin * c.n_ff; i < end * c.n_ff; ++i) {
        const float g = std::max(gate_[i], 0.0f);
        gate_[i] = (g * g) * up_[i];
      }
    });
    NormAndQuantize(n_tokens, gate_.data(), nullptr, c.n_ff, w.ffn_sub_norm, c.n_ff);
    Project(n_tokens, {{&w.w_down, proj_.data()}});
    residual_add = proj_.data();
  }
  if (!logit_tokens.empty()) Head(logit_tokens, out);

  for (const SequenceSlice& slice : batch.sequences) {
    slice.kv->length += static_cast<int32_t>(slice.tokens.size());
  }
  return absl::OkStatus();
}

}  // namespace wf::engine
