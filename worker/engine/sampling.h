// Token sampling: turns one step's logits into the next token.
//
// The chain follows llama.cpp's default order (src/llama-sampling.cpp,
// common/sampling.cpp), restricted to the stages we support:
//
//   logit_bias -> penalties -> top-k -> top-p -> min-p -> temperature -> draw
//
// * logit_bias adds the bias to the raw logit; a bias of -100 or -inf bans the
//   token outright (OpenAI documents -100 as "should result in a ban").
// * Penalties look at the last `penalty_last_n` entries of the context tokens
//   passed to Sample() (-1 = all of them, 0 = none). All three penalties share
//   that one window, as in llama.cpp; a caller that wants OpenAI's
//   "generated tokens only" semantics passes only the generated tokens. For a
//   token seen `c` times in the window:
//     repetition (HF/llama.cpp): logit > 0 ? logit / r : logit * r
//     then (OpenAI):             logit -= presence * [c > 0] + frequency * c
// * top-k, top-p and min-p are truncations computed on the temperature-1
//   distribution of the surviving candidates (top-p on the renormalised top-k
//   set; min-p keeps p >= min_p * p_max). Temperature is applied last and only
//   shapes the draw among the survivors.
// * temperature == 0 is greedy: the argmax after bias and penalties, ties to
//   the lowest token id. Truncation cannot change it (each keeps the top one).
//
// Log-probabilities (when `logprobs` is set) are those of the RAW model
// distribution, log_softmax(logits) before bias, penalties, truncation and
// temperature, computed in double: vLLM's default ("raw_logprobs"). So a
// banned or truncated token can still appear among the top logprobs.
//
// Determinism: the generator is xoshiro256** seeded through splitmix64; a
// draw maps 53 random bits to [0, 1) by hand; the sampling weights use our
// own exp (no libm) summed in a fixed order; candidate sets are prefixes of a
// strict total order (logit descending, then id ascending). So the same seed,
// params, logits and context give the same tokens on every platform (min_p's
// threshold is the one libm call, std::log of a single value).
//
// Cost per call for a 128k vocabulary (2-core AVX2 host, baseline build):
// greedy ~0.1 ms (vectorised max, then the first index holding it); top-k
// <= 256 one heap pass (~0.2 ms); plain temperature/min-p one vectorised exp
// pass (~0.4 ms); top-p alone prunes entries that cannot reach the nucleus,
// then a mass-guided quickselect, no full sort (~0.5 ms on peaked
// distributions, ~2.5 ms on near-uniform ones); logprobs add one double exp
// per entry (~1 ms).
//
// Example:
//   SamplingParams params;
//   params.temperature = 0.7f;
//   params.top_p = 0.9f;
//   params.seed = 42;
//   BN_ASSIGN_OR_RETURN(std::unique_ptr<Sampler> sampler,
//                       Sampler::Create(params, vocab_size));
//   BN_ASSIGN_OR_RETURN(SampleResult r, sampler->Sample(logits, tokens));
//   tokens.push_back(r.token);
#ifndef WF_WORKER_ENGINE_SAMPLING_H_
#define WF_WORKER_ENGINE_SAMPLING_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wf::engine {

inline constexpr int32_t kMaxTopLogprobs = 20;
inline constexpr int32_t kDefaultPenaltyLastN = 64;
// A bias at or below this bans the token (the logit becomes -inf).
inline constexpr float kLogitBiasBan = -100.0f;

struct SamplingParams {
  float temperature = 1.0f;                       // [0, 2]; 0 = greedy.
  int32_t top_k = 0;                              // >= 0; 0 = off.
  float top_p = 1.0f;                             // (0, 1]; 1 = off.
  float min_p = 0.0f;                             // [0, 1]; 0 = off.
  float repetition_penalty = 1.0f;                // > 0; 1 = off.
  int32_t penalty_last_n = kDefaultPenaltyLastN;  // >= -1; -1 = whole context.
  float presence_penalty = 0.0f;                  // [-2, 2].
  float frequency_penalty = 0.0f;                 // [-2, 2].
  // Token id -> bias added to its logit; values in [-100, 100] or -inf.
  absl::flat_hash_map<int32_t, float> logit_bias;
  // Unset: the Sampler draws one from std::random_device (see Sampler::seed).
  std::optional<uint64_t> seed;
  // Fill SampleResult::logprob and top_logprobs (costs one exp per vocab
  // entry per step).
  bool logprobs = false;
  int32_t top_logprobs = 0;  // [0, 20]; > 0 requires `logprobs`.
};

// OK, or INVALID_ARGUMENT naming the first offending field and its allowed
// range (NaN fails every range). `vocab_size` bounds the logit_bias ids.
absl::Status Validate(const SamplingParams& params, int32_t vocab_size);

// Applies logit_bias, then the penalties over the last penalty_last_n
// entries of `context_tokens`, to `logits` in place (the first two stages of
// the chain above). `params` must have passed Validate. INVALID_ARGUMENT if a
// context token inside the penalty window is outside [0, logits.size()).
// Uses this thread's scratch buffers; allocation-free once they have grown.
absl::Status ApplyLogitBiasAndPenalties(
    const SamplingParams& params, absl::Span<const int32_t> context_tokens,
    absl::Span<float> logits);

struct TopLogprob {
  int32_t token = -1;
  double logprob = 0.0;
};

struct SampleResult {
  int32_t token = -1;
  // Raw-distribution log-probability of `token`; 0 unless params.logprobs.
  double logprob = 0.0;
  // The params.top_logprobs most likely tokens of the raw distribution,
  // logprob descending (ties: lower id first). Never allocates.
  absl::InlinedVector<TopLogprob, kMaxTopLogprobs> top_logprobs;
};

// Per-request sampler. Not thread-safe: one request, one thread at a time.
// Scratch buffers of O(vocab) size are per thread and reused across calls and
// samplers, so a Sampler itself is small and Sample() does not allocate once
// its thread has seen the largest vocabulary.
class Sampler {
 public:
  // INVALID_ARGUMENT if Validate(params, vocab_size) fails or vocab_size < 1.
  static absl::StatusOr<std::unique_ptr<Sampler>> Create(
      const SamplingParams& params, int32_t vocab_size);

  // Picks the next token from `logits` (size vocab_size, the raw model
  // output) with penalties over `context_tokens` (prompt + generated so far,
  // oldest first). Advances the generator by one draw unless greedy.
  // INVALID_ARGUMENT: wrong logits size, a NaN or +inf logit, a context token
  // outside the vocabulary, or no token left with a finite logit after
  // logit_bias and penalties (e.g. everything banned).
  absl::StatusOr<SampleResult> Sample(absl::Span<const float> logits,
                                      absl::Span<const int32_t> context_tokens);

  // The seed in use: params.seed, or the one drawn when it was unset (report
  // it so that a run can be replayed).
  uint64_t seed() const { return seed_; }
  const SamplingParams& params() const { return params_; }

 private:
  struct Rng {
    uint64_t s[4];
    uint64_t Next();
  };

  Sampler(const SamplingParams& params, int32_t vocab_size, uint64_t seed);
  double NextUniform();  // [0, 1), 53 bits.

  SamplingParams params_;
  int32_t vocab_size_;
  uint64_t seed_;
  Rng rng_;
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_SAMPLING_H_
