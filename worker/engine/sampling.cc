#include "worker/engine/sampling.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "worker/kernels/internal/fast_exp.h"

namespace wf::engine {
namespace {

using kernels::internal::ExpNonPositive;
using kernels::internal::Select;

constexpr float kInf = std::numeric_limits<float>::infinity();
// Largest top_k selected with a heap in one pass; above it, nth_element.
constexpr size_t kHeapTopK = 256;

bool InRange(float x, float lo, float hi) { return x >= lo && x <= hi; }

absl::Status RangeError(const char* field, const char* range, double value) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s must be in %s, got %g", field, range, value));
}

struct Candidate {
  float logit;
  int32_t id;
  float weight;  // exp((logit - max) / t) for the t of the current stage.
};

// Strict total order: higher logit first, then lower id. Every truncation
// keeps a prefix of this order, and making ties deterministic keeps the
// selected sets independent of the standard library implementation.
bool Before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// O(vocab) buffers shared by every Sampler on a thread: with many concurrent
// requests per engine thread, per-sampler copies would cost ~2 MiB each for
// a 128k vocabulary, while only one Sample() runs at a time.
struct Scratch {
  std::vector<float> work;
  std::vector<float> weights;
  std::vector<Candidate> cand;
  std::vector<int32_t> window;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t RandomSeed() {
  try {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  } catch (...) {
    // No entropy source: still avoid handing every request the same seed.
    uint64_t mix = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
    return SplitMix64(mix);
  }
}

// Sets c.weight = exp((c.logit - max_logit) * inv_t) for every candidate and
// returns their sum. Four partial sums in a fixed pattern: the order is part
// of the result, so it must not depend on the compiler.
double SetWeights(absl::Span<Candidate> cand, float max_logit, float inv_t) {
  for (Candidate& c : cand) {
    c.weight = ExpNonPositive((c.logit - max_logit) * inv_t);
  }
  double sum[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= cand.size(); i += 4) {
    for (int k = 0; k < 4; ++k) sum[k] += cand[i + k].weight;
  }
  for (; i < cand.size(); ++i) sum[0] += cand[i].weight;
  return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

// Largest logit and whether any entry is NaN or +inf. Eight independent
// lanes keep the loop free of a serial dependency.
float MaxLogit(const float* x, size_t n, bool* invalid) {
  float lane_max[8];
  int lane_bad[8];
  for (int k = 0; k < 8; ++k) {
    lane_max[k] = -kInf;
    lane_bad[k] = 0;
  }
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const float v = x[i + k];
      lane_max[k] = v > lane_max[k] ? v : lane_max[k];
      lane_bad[k] |= !(v < kInf);
    }
  }
  for (; i < n; ++i) {
    lane_max[0] = x[i] > lane_max[0] ? x[i] : lane_max[0];
    lane_bad[0] |= !(x[i] < kInf);
  }
  float max = -kInf;
  int bad = 0;
  for (int k = 0; k < 8; ++k) {
    max = lane_max[k] > max ? lane_max[k] : max;
    bad |= lane_bad[k];
  }
  *invalid = bad != 0;
  return max;
}

// Reorders `cand` so that its first `keep` entries, the return value, are the
// shortest prefix of the Before order whose weight reaches `target`: a
// quickselect that descends by mass instead of by rank, expected O(n).
// Deterministic for a given input order (own partition, no std:: algorithm
// whose element order is unspecified), which keeps the later draw portable.
size_t SelectNucleus(absl::Span<Candidate> cand, double target) {
  size_t lo = 0;
  size_t hi = cand.size();
  double above = 0.0;  // Weight of [0, lo), all kept.
  int budget = 64;     // Partition rounds before falling back to a sort.
  uint64_t pivot_state = 0;
  while (lo < hi) {
    if (--budget == 0) {
      std::sort(cand.begin() + lo, cand.begin() + hi, Before);
      for (size_t i = lo; i < hi; ++i) {
        above += cand[i].weight;
        if (above >= target) return i + 1;
      }
      return hi;
    }
    // Median of three pseudo-random entries as pivot, moved to hi - 1.
    // Fixed positions (first, middle, last) degrade on periodic layouts of
    // the vocabulary; a fixed-seed generator keeps the result reproducible.
    const size_t span = hi - lo;
    size_t a = lo + static_cast<size_t>(SplitMix64(pivot_state) % span);
    size_t b = lo + static_cast<size_t>(SplitMix64(pivot_state) % span);
    size_t c = lo + static_cast<size_t>(SplitMix64(pivot_state) % span);
    if (Before(cand[b], cand[a])) std::swap(a, b);
    if (Before(cand[c], cand[b])) std::swap(b, c);
    if (Before(cand[b], cand[a])) std::swap(a, b);
    std::swap(cand[b], cand[hi - 1]);
    const Candidate pivot = cand[hi - 1];
    size_t split = lo;
    double before_pivot = 0.0;
    for (size_t j = lo; j + 1 < hi; ++j) {
      if (Before(cand[j], pivot)) {
        before_pivot += cand[j].weight;
        std::swap(cand[split++], cand[j]);
      }
    }
    std::swap(cand[split], cand[hi - 1]);
    if (above + before_pivot >= target) {
      hi = split;
    } else if (above + before_pivot + pivot.weight >= target) {
      return split + 1;
    } else {
      above += before_pivot + pivot.weight;
      lo = split + 1;
    }
  }
  // Only reached when rounding kept the total just under the target.
  return hi;
}

// First index of context_tokens that the penalties look at; size when none.
size_t PenaltyWindowBegin(const SamplingParams& p, size_t context_size) {
  const bool any_penalty = p.repetition_penalty != 1.0f ||
                           p.presence_penalty != 0.0f ||
                           p.frequency_penalty != 0.0f;
  if (!any_penalty || p.penalty_last_n == 0) return context_size;
  const size_t last_n = static_cast<size_t>(p.penalty_last_n);
  return p.penalty_last_n < 0 || last_n >= context_size ? 0
                                                        : context_size - last_n;
}

// Weighted draw over `cand` in its current order; `total` is the sum of the
// weights and u in [0, 1). Zero weights (underflow at low temperature) never
// push the running sum past u * total, so they cannot be picked.
int32_t DrawFrom(absl::Span<const Candidate> cand, double total, double u) {
  const double target = u * total;
  double cumulative = 0.0;
  size_t last_positive = 0;
  for (size_t i = 0; i < cand.size(); ++i) {
    if (cand[i].weight <= 0.0f) continue;
    cumulative += cand[i].weight;
    if (cumulative > target) return cand[i].id;
    last_positive = i;
  }
  // The sequential sum can round just below the blocked `total`.
  return cand[last_positive].id;
}

// Sum of weights[0, n) in a fixed blocked order (see SetWeights).
double SumWeights(const float* weights, size_t n) {
  double sum[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) sum[k] += weights[i + k];
  }
  for (; i < n; ++i) sum[0] += weights[i];
  return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

// The sampling chain after bias and penalties: top-k -> top-p -> min-p ->
// temperature -> the draw at `uniform` in [0, 1). `max_logit` is the largest
// of the n `logits` and finite.
int32_t DrawToken(const SamplingParams& params, const float* logits, size_t n,
                  float max_logit, double uniform, Scratch& scratch) {
  // min-p keeps the prefix of the Before order with logit >= max + log(min_p),
  // and max survives top-k, so the two commute; top-p does not (it
  // renormalises over what is left). Without top-p, min-p therefore runs
  // first, folded into the first pass over the vocabulary.
  const bool min_p_on = params.min_p > 0.0f;
  const float min_p_floor =
      min_p_on ? max_logit + std::log(params.min_p) : -kInf;
  const bool top_k_on =
      params.top_k > 0 && static_cast<size_t>(params.top_k) < n;
  const bool top_p_on = params.top_p < 1.0f;
  // Capped so that a denormal temperature cannot turn 0 * inv_t into NaN.
  const float inv_t =
      std::min(1.0f / params.temperature, std::numeric_limits<float>::max());
  std::vector<float>& weights = scratch.weights;
  if (weights.size() < n) weights.resize(n);

  if (!top_k_on && !top_p_on) {
    // Whole-vocabulary draw in id order with no candidate list: one
    // vectorised pass (-inf and min-p-dropped entries get weight 0).
    float* w = weights.data();
    for (size_t i = 0; i < n; ++i) {
      const float x = logits[i];
      w[i] = Select(x >= min_p_floor, ExpNonPositive((x - max_logit) * inv_t),
                    0.0f);
    }
    const double target = uniform * SumWeights(w, n);
    double cumulative = 0.0;
    size_t last_positive = 0;
    for (size_t i = 0; i < n; ++i) {
      if (w[i] <= 0.0f) continue;
      cumulative += w[i];
      if (cumulative > target) return static_cast<int32_t>(i);
      last_positive = i;
    }
    return static_cast<int32_t>(last_positive);
  }

  // The buffer only grows, so filling it never value-initialises.
  if (scratch.cand.size() < n) scratch.cand.resize(n);
  Candidate* const buffer = scratch.cand.data();
  size_t count = 0;
  double mass = 0.0;  // Temperature-1 weight of the candidates (top-p).
  if (top_k_on) {
    const size_t k = static_cast<size_t>(params.top_k);
    const float floor = top_p_on ? -kInf : min_p_floor;
    if (k <= kHeapTopK) {
      // One pass with a heap of the k best whose front is the worst kept:
      // nearly every entry fails the single comparison against the front.
      // Scanning in id order, an entry tying the front's logit has a higher
      // id, so it is never Before the front and a strict > suffices.
      size_t i = 0;
      for (; i < n && count < k; ++i) {
        const float x = logits[i];
        if (x > -kInf && x >= floor) {
          buffer[count++] = {x, static_cast<int32_t>(i), 0.0f};
          std::push_heap(buffer, buffer + count, Before);
        }
      }
      for (; i < n; ++i) {
        const float x = logits[i];
        if (x > buffer[0].logit) {
          std::pop_heap(buffer, buffer + k, Before);
          buffer[k - 1] = {x, static_cast<int32_t>(i), 0.0f};
          std::push_heap(buffer, buffer + k, Before);
        }
      }
    } else {
      for (size_t i = 0; i < n; ++i) {
        const float x = logits[i];
        if (x > -kInf && x >= floor) {
          buffer[count++] = {x, static_cast<int32_t>(i), 0.0f};
        }
      }
      if (k < count) {
        std::nth_element(buffer, buffer + k, buffer + count, Before);
        count = k;
      }
    }
    std::sort(buffer, buffer + count, Before);
    if (top_p_on) {
      mass = SetWeights(absl::MakeSpan(buffer, count), max_logit, 1.0f);
    }
  } else {
    // top-p alone: temperature-1 weights in one vectorised pass first.
    float* w = weights.data();
    for (size_t i = 0; i < n; ++i) w[i] = ExpNonPositive(logits[i] - max_logit);
    mass = SumWeights(w, n);
    // Entries lighter than (1 - top_p) * mass / n cannot be in the nucleus:
    // all of them together weigh less than the (1 - top_p) tail it leaves
    // out. Real next-token distributions put most of the vocabulary below
    // that, which shrinks the selection to a few hundred entries. Halved
    // to stay clear of rounding in the sums.
    const float cutoff =
        static_cast<float>(0.5 * (1.0 - static_cast<double>(params.top_p)) *
                           mass / static_cast<double>(n));
    for (size_t i = 0; i < n; ++i) {
      if (w[i] >= cutoff && logits[i] > -kInf) {
        buffer[count++] = {logits[i], static_cast<int32_t>(i), w[i]};
      }
    }
  }
  absl::Span<Candidate> cand(buffer, count);

  if (top_p_on) {
    const double target = static_cast<double>(params.top_p) * mass;
    size_t keep = cand.size();
    if (top_k_on) {  // Sorted: the nucleus is a prefix.
      double cumulative = 0.0;
      for (size_t i = 0; i < cand.size(); ++i) {
        cumulative += cand[i].weight;
        if (cumulative >= target) {
          keep = i + 1;
          break;
        }
      }
    } else {
      keep = SelectNucleus(cand, target);
    }
    cand = cand.first(keep);
    if (min_p_on) {
      size_t kept = 0;
      for (const Candidate& c : cand) {
        if (c.logit >= min_p_floor) cand[kept++] = c;
      }
      cand = cand.first(kept);
    }
  }
  return DrawFrom(cand, SetWeights(cand, max_logit, inv_t), uniform);
}

}  // namespace

absl::Status ApplyLogitBiasAndPenalties(
    const SamplingParams& params, absl::Span<const int32_t> context_tokens,
    absl::Span<float> logits) {
  const size_t n = logits.size();
  for (const auto& [id, bias] : params.logit_bias) {
    // Validate() bounded the ids by the vocabulary; guard a smaller span.
    if (id < 0 || static_cast<size_t>(id) >= n) continue;
    logits[id] = bias <= kLogitBiasBan ? -kInf : logits[id] + bias;
  }
  const size_t window_begin = PenaltyWindowBegin(params, context_tokens.size());
  if (window_begin == context_tokens.size()) return absl::OkStatus();

  // Sorting the window groups repeats without an O(vocab) count table.
  std::vector<int32_t>& window = ThreadScratch().window;
  window.assign(context_tokens.begin() + window_begin, context_tokens.end());
  for (size_t i = 0; i < window.size(); ++i) {
    if (window[i] < 0 || static_cast<size_t>(window[i]) >= n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "context_tokens[%d] = %d is outside the vocabulary [0, %d)",
          window_begin + i, window[i], n));
    }
  }
  std::sort(window.begin(), window.end());
  for (size_t i = 0; i < window.size();) {
    size_t j = i;
    while (j < window.size() && window[j] == window[i]) ++j;
    float& logit = logits[window[i]];
    if (params.repetition_penalty != 1.0f) {
      logit = logit > 0.0f ? logit / params.repetition_penalty
                           : logit * params.repetition_penalty;
    }
    logit -= params.presence_penalty +
             params.frequency_penalty * static_cast<float>(j - i);
    i = j;
  }
  return absl::OkStatus();
}

absl::Status Validate(const SamplingParams& p, int32_t vocab_size) {
  if (!InRange(p.temperature, 0.0f, 2.0f)) {
    return RangeError("temperature", "[0, 2] (0 = greedy)", p.temperature);
  }
  if (p.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_k must be >= 0 (0 = off), got %d", p.top_k));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return RangeError("top_p", "(0, 1] (1 = off)", p.top_p);
  }
  if (!InRange(p.min_p, 0.0f, 1.0f)) {
    return RangeError("min_p", "[0, 1] (0 = off)", p.min_p);
  }
  if (!(p.repetition_penalty > 0.0f && p.repetition_penalty < kInf)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "repetition_penalty must be finite and > 0 (1 = off), got %g",
        p.repetition_penalty));
  }
  if (p.penalty_last_n < -1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "penalty_last_n must be >= -1 (-1 = whole context, 0 = off), got %d",
        p.penalty_last_n));
  }
  if (!InRange(p.presence_penalty, -2.0f, 2.0f)) {
    return RangeError("presence_penalty", "[-2, 2]", p.presence_penalty);
  }
  if (!InRange(p.frequency_penalty, -2.0f, 2.0f)) {
    return RangeError("frequency_penalty", "[-2, 2]", p.frequency_penalty);
  }
  if (!p.logit_bias.empty()) {
    // Report the lowest offending id, not whichever the hash order yields.
    std::vector<std::pair<int32_t, float>> bias(p.logit_bias.begin(),
                                                p.logit_bias.end());
    std::sort(bias.begin(), bias.end());
    for (const auto& [id, value] : bias) {
      if (id < 0 || id >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "logit_bias token id %d is outside the vocabulary [0, %d)", id,
            vocab_size));
      }
      if (!InRange(value, -100.0f, 100.0f) && value != -kInf) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "logit_bias[%d] must be in [-100, 100] (or -inf to ban), got %g",
            id, value));
      }
    }
  }
  if (p.top_logprobs < 0 || p.top_logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_logprobs must be in [0, %d], got %d",
                        kMaxTopLogprobs, p.top_logprobs));
  }
  if (p.top_logprobs > 0 && !p.logprobs) {
    return absl::InvalidArgumentError(
        "top_logprobs > 0 requires logprobs to be enabled");
  }
  return absl::OkStatus();
}

uint64_t Sampler::Rng::Next() {
  // xoshiro256** (Blackman & Vigna, https://prng.di.unimi.it/).
  const uint64_t result = Rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = Rotl(s[3], 45);
  return result;
}

absl::StatusOr<std::unique_ptr<Sampler>> Sampler::Create(
    const SamplingParams& params, int32_t vocab_size) {
  if (vocab_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vocab_size must be >= 1, got %d", vocab_size));
  }
  if (absl::Status s = Validate(params, vocab_size); !s.ok()) return s;
  const uint64_t seed = params.seed.has_value() ? *params.seed : RandomSeed();
  return std::unique_ptr<Sampler>(new Sampler(params, vocab_size, seed));
}

Sampler::Sampler(const SamplingParams& params, int32_t vocab_size,
                 uint64_t seed)
    : params_(params), vocab_size_(vocab_size), seed_(seed) {
  uint64_t state = seed;
  for (uint64_t& word : rng_.s) word = SplitMix64(state);
}

double Sampler::NextUniform() {
  return static_cast<double>(rng_.Next() >> 11) * 0x1.0p-53;
}

absl::StatusOr<SampleResult> Sampler::Sample(
    absl::Span<const float> logits, absl::Span<const int32_t> context_tokens) {
  const size_t n = static_cast<size_t>(vocab_size_);
  if (logits.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("logits has %d entries, expected vocab_size %d",
                        logits.size(), vocab_size_));
  }
  bool invalid = false;
  const float raw_max = MaxLogit(logits.data(), n, &invalid);
  if (invalid) {
    size_t bad = 0;
    while (logits[bad] < kInf) ++bad;
    return absl::InvalidArgumentError(absl::StrFormat(
        "logits[%d] is %g; logits must be finite or -inf", bad, logits[bad]));
  }
  Scratch& scratch = ThreadScratch();
  SampleResult result;

  double log_sum_exp = 0.0;
  if (params_.logprobs) {
    if (raw_max == -kInf) {
      return absl::InvalidArgumentError("every logit is -inf");
    }
    double sum = 0.0;
    for (float x : logits) sum += std::exp(static_cast<double>(x) - raw_max);
    log_sum_exp = raw_max + std::log(sum);

    // Keep the best top_logprobs in a heap whose front is the worst kept.
    const size_t want = static_cast<size_t>(params_.top_logprobs);
    absl::InlinedVector<Candidate, kMaxTopLogprobs> heap;
    for (size_t i = 0; i < n && want > 0; ++i) {
      const Candidate c{logits[i], static_cast<int32_t>(i), 0.0f};
      if (heap.size() < want) {
        heap.push_back(c);
        std::push_heap(heap.begin(), heap.end(), Before);
      } else if (Before(c, heap.front())) {
        std::pop_heap(heap.begin(), heap.end(), Before);
        heap.back() = c;
        std::push_heap(heap.begin(), heap.end(), Before);
      }
    }
    std::sort_heap(heap.begin(), heap.end(), Before);
    for (const Candidate& c : heap) {
      result.top_logprobs.push_back(
          {c.id, static_cast<double>(c.logit) - log_sum_exp});
    }
  }

  // Logit bias and penalties touch few entries, but on a private copy.
  const float* cur = logits.data();
  float max_logit = raw_max;
  if (!params_.logit_bias.empty() ||
      PenaltyWindowBegin(params_, context_tokens.size()) <
          context_tokens.size()) {
    scratch.work.assign(logits.begin(), logits.end());
    if (absl::Status s = ApplyLogitBiasAndPenalties(
            params_, context_tokens, absl::MakeSpan(scratch.work));
        !s.ok()) {
      return s;
    }
    cur = scratch.work.data();
    max_logit = MaxLogit(cur, n, &invalid);
    if (invalid) {
      return absl::InvalidArgumentError(
          "logit_bias and penalties overflowed a logit to +inf");
    }
  }
  if (max_logit == -kInf) {
    return absl::InvalidArgumentError(
        "no token has a finite logit after logit_bias and penalties");
  }

  if (params_.temperature == 0.0f) {
    // The first maximum: ties go to the lowest id.
    size_t best = 0;
    while (cur[best] != max_logit) ++best;
    result.token = static_cast<int32_t>(best);
  } else {
    result.token =
        DrawToken(params_, cur, n, max_logit, NextUniform(), scratch);
  }

  if (params_.logprobs) {
    result.logprob = static_cast<double>(logits[result.token]) - log_sum_exp;
  }
  return result;
}

}  // namespace wf::engine
