#include "worker/engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/kernels/internal/fast_exp.h"

namespace wf::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Deterministic test data without implementation-defined distributions.
class TestRng {
 public:
  explicit TestRng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return state_ >> 11;
  }
  float Uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(Next() >> 29) * 0x1.0p-24f;
  }

 private:
  uint64_t state_;
};

std::vector<float> RandomLogits(int n, uint64_t seed, float lo = -8.0f,
                                float hi = 8.0f) {
  TestRng rng(seed);
  std::vector<float> logits(n);
  for (float& x : logits) x = rng.Uniform(lo, hi);
  return logits;
}

std::vector<float> LogitsFromProbs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

std::vector<double> Softmax(const std::vector<float>& logits,
                            double temperature = 1.0) {
  double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp((logits[i] - max) / temperature);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  return p;
}

std::unique_ptr<Sampler> MustCreate(const SamplingParams& params, int vocab) {
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      Sampler::Create(params, vocab);
  EXPECT_THAT(sampler, IsOk());
  return sampler.ok() ? std::move(sampler).value() : nullptr;
}

int32_t MustSample(Sampler& sampler, const std::vector<float>& logits,
                   const std::vector<int32_t>& context = {}) {
  absl::StatusOr<SampleResult> r = sampler.Sample(logits, context);
  EXPECT_THAT(r, IsOk());
  return r.ok() ? r->token : -1;
}

// Every token drawn over `draws` steps of one sampler per seed in [0, seeds).
std::set<int32_t> SampledSet(const SamplingParams& base,
                             const std::vector<float>& logits, int seeds,
                             int draws) {
  std::set<int32_t> seen;
  for (int s = 0; s < seeds; ++s) {
    SamplingParams params = base;
    params.seed = static_cast<uint64_t>(s);
    std::unique_ptr<Sampler> sampler =
        MustCreate(params, static_cast<int>(logits.size()));
    for (int i = 0; i < draws; ++i) seen.insert(MustSample(*sampler, logits));
  }
  return seen;
}

// Pearson chi-square statistic of `draws` samples against `probs`.
double ChiSquare(Sampler& sampler, const std::vector<float>& logits,
                 const std::vector<double>& probs, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[MustSample(sampler, logits)];
  double chi2 = 0.0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double expected = probs[i] * draws;
    if (expected == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

TEST(ExpNonPositiveTest, AccurateToAFewUlpsAndZeroBelowRange) {
  double worst = 0.0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -86.99f * static_cast<float>(i) / 200000.0f;
    const double expected = std::exp(static_cast<double>(x));
    worst = std::max(
        worst, std::abs(kernels::internal::ExpNonPositive(x) - expected) / expected);
  }
  EXPECT_LT(worst, 2.5e-7);  // About four float ulps.
  EXPECT_EQ(kernels::internal::ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(kernels::internal::ExpNonPositive(-87.5f), 0.0f);
  EXPECT_EQ(kernels::internal::ExpNonPositive(-kInf), 0.0f);
}

TEST(SamplerTest, GreedyPicksArgmaxWithTiesToLowestId) {
  SamplingParams params;
  params.temperature = 0.0f;
  std::unique_ptr<Sampler> sampler = MustCreate(params, 6);
  EXPECT_EQ(MustSample(*sampler, {1.0f, 3.0f, -2.0f, 3.0f, 2.0f, 3.0f}), 1);
  EXPECT_EQ(MustSample(*sampler, {5.0f, 3.0f, -2.0f, 3.0f, 2.0f, 5.0f}), 0);
  EXPECT_EQ(MustSample(*sampler, {-kInf, -kInf, -7.0f, -7.0f, -kInf, -9.0f}),
            2);
}

TEST(SamplerTest, GreedyOnLargeVocabMatchesBruteForce) {
  constexpr int kVocab = 128256;
  SamplingParams params;
  params.temperature = 0.0f;
  params.top_k = 40;  // Irrelevant to greedy.
  params.top_p = 0.5f;
  std::unique_ptr<Sampler> sampler = MustCreate(params, kVocab);
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::vector<float> logits = RandomLogits(kVocab, seed);
    const int32_t expected = static_cast<int32_t>(
        std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(MustSample(*sampler, logits), expected);
  }
}

TEST(SamplerTest, TinyTemperatureActsGreedyButSplitsExactTies) {
  const std::vector<float> unique_max = RandomLogits(1000, 7);
  const int32_t argmax = static_cast<int32_t>(
      std::max_element(unique_max.begin(), unique_max.end()) -
      unique_max.begin());
  SamplingParams params;
  params.temperature = 1e-4f;
  EXPECT_THAT(SampledSet(params, unique_max, 20, 20), ElementsAre(argmax));

  // Greedy always takes the lowest tied id; any temperature > 0 draws
  // uniformly among exactly tied maxima.
  const std::vector<float> tied = {0.0f, 4.0f, 1.0f, 4.0f, 3.99f};
  EXPECT_THAT(SampledSet(params, tied, 20, 20), ElementsAre(1, 3));
  // A denormal temperature still behaves (1 / t overflows to inf).
  params.temperature = 1e-40f;
  EXPECT_THAT(SampledSet(params, tied, 20, 20), ElementsAre(1, 3));
  EXPECT_THAT(SampledSet(params, unique_max, 5, 5), ElementsAre(argmax));
  params.temperature = 0.0f;
  EXPECT_THAT(SampledSet(params, tied, 20, 20), ElementsAre(1));
}

TEST(SamplerTest, TopKKeepsExactlyTheKBest) {
  // Ids deliberately not in logit order.
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f, 0.9f, 1.9f, 0.0f};
  SamplingParams params;
  params.temperature = 2.0f;
  params.top_k = 3;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(1, 3, 5));
  params.top_k = 1;
  EXPECT_THAT(SampledSet(params, logits, 20, 10), ElementsAre(1));
  params.top_k = 100;  // Larger than the vocabulary: off.
  EXPECT_EQ(SampledSet(params, logits, 50, 40).size(), logits.size());
  // min-p (on the temperature-1 distribution) commutes with top-k: the floor
  // 2.0 + log(0.7) ~ 1.64 keeps ids 1 and 5 out of the top three.
  params.top_k = 3;
  params.min_p = 0.7f;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(1, 5));
}

TEST(SamplerTest, LargeTopKUsesTheSameSet) {
  // Above the heap limit top-k selects with nth_element instead.
  constexpr int kVocab = 4000;
  const std::vector<float> logits = RandomLogits(kVocab, 9, -1.0f, 1.0f);
  for (int k : {40, 300}) {
    std::vector<int32_t> order(kVocab);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(
        order.begin(), order.begin() + k, order.end(),
        [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    const std::set<int32_t> top(order.begin(), order.begin() + k);
    SamplingParams params;
    params.top_k = k;
    params.temperature = 2.0f;
    const std::set<int32_t> seen = SampledSet(params, logits, 3, 1000);
    EXPECT_TRUE(std::includes(top.begin(), top.end(), seen.begin(), seen.end()))
        << k;
    EXPECT_GT(seen.size(), static_cast<size_t>(k) * 9 / 10) << k;
  }
}

TEST(SamplerTest, TopKBreaksLogitTiesByLowerId) {
  const std::vector<float> logits = {1.0f, 2.0f, 1.0f, 1.0f};
  SamplingParams params;
  params.top_k = 2;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(0, 1));
}

TEST(SamplerTest, TopPKeepsTheSmallestNucleus) {
  // Probabilities by id: 0.15, 0.5, 0.05, 0.3 -> sorted 1, 3, 0, 2.
  const std::vector<float> logits = LogitsFromProbs({0.15, 0.5, 0.05, 0.3});
  SamplingParams params;
  params.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(1, 3));
  params.top_p = 0.85f;  // 0.8 < 0.85 <= 0.95
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(0, 1, 3));
  params.top_p = 0.4f;
  EXPECT_THAT(SampledSet(params, logits, 20, 10), ElementsAre(1));
}

TEST(SamplerTest, TopPOnLargeFlatVocabMatchesBruteForce) {
  // A nucleus of hundreds of near-equal tokens.
  constexpr int kVocab = 2000;
  const std::vector<float> logits = RandomLogits(kVocab, 11, -0.5f, 0.5f);
  const std::vector<double> probs = Softmax(logits);
  std::vector<int32_t> order(kVocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  constexpr float kTopP = 0.3f;
  std::set<int32_t> nucleus;
  double cumulative = 0.0;
  for (int32_t id : order) {
    nucleus.insert(id);
    cumulative += probs[id];
    if (cumulative >= kTopP) break;
  }
  ASSERT_GT(nucleus.size(), 300u);

  SamplingParams params;
  params.top_p = kTopP;
  const std::set<int32_t> seen = SampledSet(params, logits, 3, 1000);
  EXPECT_TRUE(
      std::includes(nucleus.begin(), nucleus.end(), seen.begin(), seen.end()));
  EXPECT_GT(seen.size(), nucleus.size() * 9 / 10);
}

TEST(SamplerTest, TopPWithLongTailMatchesBruteForce) {
  // 50 head tokens hold ~75% of the mass, ~10k tail tokens the rest, and
  // the other ids are dust far below anything a nucleus could need (the
  // sampler prunes them). top_p = 0.85 reaches into the tail.
  constexpr int kVocab = 16000;
  std::vector<float> logits(kVocab, -40.0f);
  std::vector<bool> is_tail(kVocab, false);
  int tail = 0;
  for (int i = 0; i < kVocab; ++i) {
    if (i % 320 == 0) {
      logits[i] = -0.001f * static_cast<float>(i / 320);
    } else if (i % 3 == 0) {
      logits[i] = -5.8f - 1e-5f * static_cast<float>(i);
      is_tail[i] = true;
      ++tail;
    }
  }
  const std::vector<double> probs = Softmax(logits);
  std::vector<int32_t> order(kVocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  constexpr float kTopP = 0.85f;
  std::set<int32_t> nucleus;
  double cumulative = 0.0;
  double tail_in_nucleus = 0.0;
  for (int32_t id : order) {
    nucleus.insert(id);
    cumulative += probs[id];
    if (is_tail[id]) tail_in_nucleus += probs[id];
    if (cumulative >= kTopP) break;
  }
  ASSERT_GT(tail_in_nucleus, 0.02);
  ASSERT_LT(nucleus.size(), static_cast<size_t>(50 + tail));

  SamplingParams params;
  params.top_p = kTopP;
  params.seed = 8;
  std::unique_ptr<Sampler> sampler = MustCreate(params, kVocab);
  constexpr int kDraws = 2000;
  int tail_draws = 0;
  for (int i = 0; i < kDraws; ++i) {
    const int32_t token = MustSample(*sampler, logits);
    ASSERT_TRUE(nucleus.count(token)) << token;
    tail_draws += is_tail[token];
  }
  // Binomial: mean kDraws * p, within five standard deviations.
  const double p = tail_in_nucleus / cumulative;
  EXPECT_NEAR(tail_draws, kDraws * p, 5 * std::sqrt(kDraws * p * (1 - p)));
}

TEST(SamplerTest, MinPKeepsTokensAboveFractionOfMax) {
  // p_max = 0.4; min_p 0.125 -> threshold 0.05 keeps ids 0..3, drops 0.04.
  const std::vector<float> logits =
      LogitsFromProbs({0.3, 0.4, 0.2, 0.06, 0.04});
  SamplingParams params;
  params.min_p = 0.125f;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(0, 1, 2, 3));
  params.min_p = 0.6f;  // threshold 0.24
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(0, 1));
  params.min_p = 1.0f;
  EXPECT_THAT(SampledSet(params, logits, 20, 10), ElementsAre(1));
}

TEST(SamplerTest, TopPIsComputedOnTheTopKRenormalisedSet) {
  // Sorted probabilities 0.5, 0.3, 0.2. With top_k = 2 the renormalised head
  // is 0.625, so top_p = 0.6 keeps one token; without top-k it needs two.
  const std::vector<float> logits = LogitsFromProbs({0.2, 0.5, 0.3});
  SamplingParams params;
  params.top_p = 0.6f;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(1, 2));
  params.top_k = 2;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(1));
}

TEST(SamplerTest, MinPAfterTopP) {
  // top_p 0.95 keeps 0.5, 0.3, 0.1, 0.06; min_p 0.15 (threshold 0.075) then
  // drops 0.06.
  const std::vector<float> logits =
      LogitsFromProbs({0.06, 0.5, 0.04, 0.1, 0.3});
  SamplingParams params;
  params.top_p = 0.95f;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(0, 1, 3, 4));
  params.min_p = 0.15f;
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(1, 3, 4));
}

TEST(SamplerTest, TruncationOnLargeVocabStaysInsideTopK) {
  constexpr int kVocab = 128256;
  const std::vector<float> logits = RandomLogits(kVocab, 5, -4.0f, 4.0f);
  std::vector<int32_t> order(kVocab);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(
      order.begin(), order.begin() + 40, order.end(),
      [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const std::set<int32_t> top40(order.begin(), order.begin() + 40);
  SamplingParams params;
  params.top_k = 40;
  params.top_p = 0.9f;
  params.min_p = 0.05f;
  const std::set<int32_t> seen = SampledSet(params, logits, 2, 200);
  EXPECT_TRUE(
      std::includes(top40.begin(), top40.end(), seen.begin(), seen.end()));
  EXPECT_GT(seen.size(), 5u);
}

TEST(SamplerTest, SameSeedSameSequenceDifferentSeedDifferentSequence) {
  const std::vector<float> logits = RandomLogits(64, 3, -1.0f, 1.0f);
  auto run = [&](uint64_t seed) {
    SamplingParams params;
    params.seed = seed;
    params.top_k = 50;
    params.top_p = 0.95f;
    std::unique_ptr<Sampler> sampler = MustCreate(params, 64);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 200; ++i)
      tokens.push_back(MustSample(*sampler, logits));
    return tokens;
  };
  EXPECT_EQ(run(1234), run(1234));
  EXPECT_NE(run(1234), run(1235));
  EXPECT_NE(run(0), run(1));
}

TEST(SamplerTest, UnseededSamplerReportsAReplayableSeed) {
  const std::vector<float> logits = RandomLogits(64, 4, -1.0f, 1.0f);
  SamplingParams params;
  std::unique_ptr<Sampler> a = MustCreate(params, 64);
  std::unique_ptr<Sampler> b = MustCreate(params, 64);
  EXPECT_NE(a->seed(), b->seed());
  params.seed = a->seed();
  std::unique_ptr<Sampler> replay = MustCreate(params, 64);
  EXPECT_EQ(replay->seed(), a->seed());
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(MustSample(*a, logits), MustSample(*replay, logits));
  }
}

TEST(SamplerTest, FrequenciesMatchSoftmax) {
  // Pearson chi-square with 7 degrees of freedom: P(chi2 > 24.3) = 0.001.
  // The seed is fixed, so this is deterministic; the bound documents how far
  // off a correct sampler could plausibly be.
  constexpr double kChi2Bound = 24.3;
  constexpr int kDraws = 20000;
  const std::vector<float> logits = {0.5f, -1.0f, 2.0f, 0.0f,
                                     1.2f, -0.3f, 1.9f, -2.5f};
  for (float temperature : {1.0f, 0.5f, 1.7f}) {
    SamplingParams params;
    params.temperature = temperature;
    params.seed = 2024;
    std::unique_ptr<Sampler> sampler = MustCreate(params, 8);
    EXPECT_LT(ChiSquare(*sampler, logits, Softmax(logits, temperature), kDraws),
              kChi2Bound)
        << "temperature " << temperature;
  }
}

TEST(SamplerTest, TruncatedDistributionIsRenormalisedThenTempered) {
  // top_k = 3 keeps ids 2, 6, 4; temperature 0.8 then shapes their draw.
  constexpr double kChi2Bound = 13.8;  // 2 dof, P = 0.001.
  const std::vector<float> logits = {0.5f, -1.0f, 2.0f, 0.0f,
                                     1.2f, -0.3f, 1.9f, -2.5f};
  std::vector<float> kept(logits.size(), -kInf);
  for (int id : {2, 4, 6}) kept[id] = logits[id];
  SamplingParams params;
  params.temperature = 0.8f;
  params.top_k = 3;
  params.seed = 99;
  std::unique_ptr<Sampler> sampler = MustCreate(params, 8);
  std::vector<double> probs = Softmax(kept, 0.8);
  EXPECT_LT(ChiSquare(*sampler, logits, probs, 20000), kChi2Bound);
}

TEST(ApplyLogitBiasAndPenaltiesTest, MatchesHandComputedLogits) {
  SamplingParams params;
  params.repetition_penalty = 1.5f;
  params.presence_penalty = 0.5f;
  params.frequency_penalty = 0.25f;
  params.penalty_last_n = -1;
  params.logit_bias = {{2, 1.0f}, {5, -100.0f}};
  std::vector<float> logits = {3.0f, -2.0f, 0.5f, 1.0f, 4.0f, 2.0f};
  // Counts: id 0 x1, id 1 x2, id 2 x1, id 3 x0, id 4 x3.
  const std::vector<int32_t> context = {4, 1, 0, 4, 1, 2, 4};
  ASSERT_THAT(
      ApplyLogitBiasAndPenalties(params, context, absl::MakeSpan(logits)),
      IsOk());
  EXPECT_FLOAT_EQ(logits[0], 3.0f / 1.5f - 0.5f - 0.25f * 1);
  EXPECT_FLOAT_EQ(logits[1], -2.0f * 1.5f - 0.5f - 0.25f * 2);
  EXPECT_FLOAT_EQ(logits[2], (0.5f + 1.0f) / 1.5f - 0.5f - 0.25f * 1);
  EXPECT_FLOAT_EQ(logits[3], 1.0f);
  EXPECT_FLOAT_EQ(logits[4], 4.0f / 1.5f - 0.5f - 0.25f * 3);
  EXPECT_EQ(logits[5], -kInf);
}

TEST(ApplyLogitBiasAndPenaltiesTest, WindowCoversOnlyTheLastN) {
  SamplingParams params;
  params.frequency_penalty = 1.0f;
  params.penalty_last_n = 3;
  std::vector<float> logits(4, 0.0f);
  // Only the last three (2, 3, 3) count.
  ASSERT_THAT(ApplyLogitBiasAndPenalties(params, {0, 1, 1, 2, 3, 3},
                                         absl::MakeSpan(logits)),
              IsOk());
  EXPECT_THAT(logits, ElementsAre(0.0f, 0.0f, -1.0f, -2.0f));

  params.penalty_last_n = 0;
  std::vector<float> untouched(4, 0.0f);
  ASSERT_THAT(ApplyLogitBiasAndPenalties(params, {0, 1, 1, 2, 3, 3},
                                         absl::MakeSpan(untouched)),
              IsOk());
  EXPECT_THAT(untouched, ElementsAre(0.0f, 0.0f, 0.0f, 0.0f));

  params.penalty_last_n = 100;  // Longer than the context: all of it.
  ASSERT_THAT(ApplyLogitBiasAndPenalties(params, {0, 1, 1, 2, 3, 3},
                                         absl::MakeSpan(untouched)),
              IsOk());
  EXPECT_THAT(untouched, ElementsAre(-1.0f, -2.0f, -1.0f, -2.0f));
}

TEST(ApplyLogitBiasAndPenaltiesTest, RejectsContextTokenOutsideVocabInWindow) {
  SamplingParams params;
  params.repetition_penalty = 1.1f;
  params.penalty_last_n = 2;
  std::vector<float> logits(4, 0.0f);
  EXPECT_THAT(
      ApplyLogitBiasAndPenalties(params, {0, 1, 4}, absl::MakeSpan(logits)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("context_tokens[2] = 4")));
  // Outside the window it is not looked at.
  EXPECT_THAT(
      ApplyLogitBiasAndPenalties(params, {9, 1, 2}, absl::MakeSpan(logits)),
      IsOk());
}

TEST(SamplerTest, PenaltiesChangeTheGreedyPick) {
  const std::vector<float> logits = {2.0f, 1.9f, 0.0f};
  SamplingParams params;
  params.temperature = 0.0f;
  params.repetition_penalty = 1.1f;  // 2.0 / 1.1 = 1.82 < 1.9
  std::unique_ptr<Sampler> sampler = MustCreate(params, 3);
  EXPECT_EQ(MustSample(*sampler, logits, {}), 0);
  EXPECT_EQ(MustSample(*sampler, logits, {0}), 1);
  EXPECT_EQ(MustSample(*sampler, logits, {0, 1}), 0);  // 1.9 / 1.1 = 1.73
}

TEST(SamplerTest, LogitBiasBansAndForces) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 0.0f};
  SamplingParams params;
  params.logit_bias = {{1, -100.0f}};
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(0, 2, 3));
  params.logit_bias = {{1, -kInf}, {2, -100.0f}};
  EXPECT_THAT(SampledSet(params, logits, 50, 40), ElementsAre(0, 3));
  params.temperature = 0.0f;
  EXPECT_THAT(SampledSet(params, logits, 1, 1), ElementsAre(0));
  params.logit_bias = {{3, 100.0f}};
  EXPECT_THAT(SampledSet(params, logits, 1, 1), ElementsAre(3));

  params.logit_bias = {{0, -100.0f}, {1, -100.0f}, {2, -100.0f}, {3, -100.0f}};
  for (float temperature : {0.0f, 1.0f}) {
    params.temperature = temperature;
    std::unique_ptr<Sampler> sampler = MustCreate(params, 4);
    EXPECT_THAT(sampler->Sample(logits, {}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("no token has a finite logit")));
  }
}

TEST(SamplerTest, TopLogprobsAreSortedRawLogSoftmax) {
  const std::vector<float> logits = RandomLogits(300, 21, -5.0f, 5.0f);
  SamplingParams params;
  params.logprobs = true;
  params.top_logprobs = kMaxTopLogprobs;
  params.temperature = 0.3f;  // Must not change the reported logprobs.
  params.top_k = 3;
  params.logit_bias = {{7, 50.0f}};
  params.seed = 5;
  std::unique_ptr<Sampler> sampler = MustCreate(params, 300);
  ASSERT_OK_AND_ASSIGN(SampleResult r, sampler->Sample(logits, {}));

  std::vector<double> probs = Softmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ASSERT_EQ(r.top_logprobs.size(), static_cast<size_t>(kMaxTopLogprobs));
  double total = 0.0;
  for (int i = 0; i < kMaxTopLogprobs; ++i) {
    EXPECT_EQ(r.top_logprobs[i].token, order[i]) << i;
    EXPECT_NEAR(r.top_logprobs[i].logprob, std::log(probs[order[i]]), 1e-9);
    if (i > 0) {
      EXPECT_LE(r.top_logprobs[i].logprob, r.top_logprobs[i - 1].logprob);
    }
    total += std::exp(r.top_logprobs[i].logprob);
  }
  EXPECT_LE(total, 1.0);
  EXPECT_EQ(r.token, 7);  // The bias dominates the draw...
  // ...but the reported logprob is the raw model's.
  EXPECT_NEAR(r.logprob, std::log(probs[7]), 1e-9);
}

TEST(SamplerTest, LogprobsOffLeavesResultEmpty) {
  SamplingParams params;
  params.temperature = 0.0f;
  std::unique_ptr<Sampler> sampler = MustCreate(params, 3);
  ASSERT_OK_AND_ASSIGN(SampleResult r, sampler->Sample({0.0f, 1.0f, 2.0f}, {}));
  EXPECT_EQ(r.token, 2);
  EXPECT_EQ(r.logprob, 0.0);
  EXPECT_TRUE(r.top_logprobs.empty());
}

TEST(SamplerTest, TopLogprobsSmallerVocabThanRequested) {
  SamplingParams params;
  params.logprobs = true;
  params.top_logprobs = 5;
  params.temperature = 0.0f;
  std::unique_ptr<Sampler> sampler = MustCreate(params, 3);
  ASSERT_OK_AND_ASSIGN(SampleResult r,
                       sampler->Sample({0.0f, std::log(3.0f), -kInf}, {}));
  ASSERT_EQ(r.top_logprobs.size(), 3u);
  EXPECT_EQ(r.top_logprobs[0].token, 1);
  EXPECT_NEAR(r.top_logprobs[0].logprob, std::log(0.75), 1e-6);
  EXPECT_NEAR(r.top_logprobs[1].logprob, std::log(0.25), 1e-6);
  EXPECT_EQ(r.top_logprobs[2].token, 2);
  EXPECT_EQ(r.top_logprobs[2].logprob,
            -std::numeric_limits<double>::infinity());
  EXPECT_NEAR(r.logprob, std::log(0.75), 1e-6);
}

TEST(SamplerTest, SampleRejectsBadInputs) {
  SamplingParams params;
  params.repetition_penalty = 1.2f;
  std::unique_ptr<Sampler> sampler = MustCreate(params, 3);
  EXPECT_THAT(
      sampler->Sample({0.0f, 1.0f}, {}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("logits has 2 entries, expected vocab_size 3")));
  EXPECT_THAT(
      sampler->Sample({0.0f, std::nanf(""), 1.0f}, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("logits[1]")));
  EXPECT_THAT(
      sampler->Sample({kInf, 0.0f, 1.0f}, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("logits[0]")));
  EXPECT_THAT(sampler->Sample({0.0f, 0.0f, 1.0f}, {0, -1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("context_tokens[1] = -1")));
  EXPECT_THAT(
      Sampler::Create(params, 0),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vocab_size")));
}

struct ValidateCase {
  std::string name;
  std::function<void(SamplingParams&)> mutate;
  std::string message;  // Empty: valid.
};

class ValidateTest : public ::testing::TestWithParam<ValidateCase> {};

TEST_P(ValidateTest, ReportsFieldAndRange) {
  SamplingParams params;
  GetParam().mutate(params);
  const absl::Status status = Validate(params, 100);
  if (GetParam().message.empty()) {
    EXPECT_THAT(status, IsOk());
  } else {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr(GetParam().message)));
    EXPECT_THAT(Sampler::Create(params, 100),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(GetParam().message)));
  }
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();

INSTANTIATE_TEST_SUITE_P(
    Fields, ValidateTest,
    ::testing::Values(
        ValidateCase{"Defaults", [](SamplingParams&) {}, ""},
        ValidateCase{"Extremes",
                     [](SamplingParams& p) {
                       p.temperature = 2.0f;
                       p.top_p = 1.0f;
                       p.min_p = 1.0f;
                       p.presence_penalty = -2.0f;
                       p.frequency_penalty = 2.0f;
                       p.penalty_last_n = -1;
                       p.logit_bias = {{0, -100.0f}, {99, 100.0f}, {5, -kInf}};
                       p.logprobs = true;
                       p.top_logprobs = 20;
                     },
                     ""},
        ValidateCase{"TemperatureNegative",
                     [](SamplingParams& p) { p.temperature = -0.1f; },
                     "temperature must be in [0, 2]"},
        ValidateCase{"TemperatureHigh",
                     [](SamplingParams& p) { p.temperature = 2.5f; },
                     "temperature must be in [0, 2]"},
        ValidateCase{"TemperatureNaN",
                     [](SamplingParams& p) { p.temperature = kNaN; },
                     "temperature must be in [0, 2]"},
        ValidateCase{"TopK", [](SamplingParams& p) { p.top_k = -1; },
                     "top_k must be >= 0"},
        ValidateCase{"TopPZero", [](SamplingParams& p) { p.top_p = 0.0f; },
                     "top_p must be in (0, 1]"},
        ValidateCase{"TopPHigh", [](SamplingParams& p) { p.top_p = 1.01f; },
                     "top_p must be in (0, 1]"},
        ValidateCase{"MinP", [](SamplingParams& p) { p.min_p = -0.01f; },
                     "min_p must be in [0, 1]"},
        ValidateCase{"RepetitionZero",
                     [](SamplingParams& p) { p.repetition_penalty = 0.0f; },
                     "repetition_penalty must be finite and > 0"},
        ValidateCase{"RepetitionInf",
                     [](SamplingParams& p) { p.repetition_penalty = kInf; },
                     "repetition_penalty must be finite and > 0"},
        ValidateCase{"PenaltyLastN",
                     [](SamplingParams& p) { p.penalty_last_n = -2; },
                     "penalty_last_n must be >= -1"},
        ValidateCase{"Presence",
                     [](SamplingParams& p) { p.presence_penalty = 2.1f; },
                     "presence_penalty must be in [-2, 2]"},
        ValidateCase{"Frequency",
                     [](SamplingParams& p) { p.frequency_penalty = -2.1f; },
                     "frequency_penalty must be in [-2, 2]"},
        ValidateCase{
            "BiasIdHigh",
            [](SamplingParams& p) {
              p.logit_bias = {{100, 1.0f}};
            },
            "logit_bias token id 100 is outside the vocabulary [0, 100)"},
        ValidateCase{"BiasIdNegative",
                     [](SamplingParams& p) {
                       p.logit_bias = {{-3, 1.0f}, {200, 1.0f}};
                     },
                     "logit_bias token id -3"},
        ValidateCase{"BiasValue",
                     [](SamplingParams& p) {
                       p.logit_bias = {{4, 100.5f}};
                     },
                     "logit_bias[4] must be in [-100, 100]"},
        ValidateCase{"BiasPlusInf",
                     [](SamplingParams& p) {
                       p.logit_bias = {{4, kInf}};
                     },
                     "logit_bias[4] must be in [-100, 100]"},
        ValidateCase{"TopLogprobsHigh",
                     [](SamplingParams& p) {
                       p.logprobs = true;
                       p.top_logprobs = 21;
                     },
                     "top_logprobs must be in [0, 20]"},
        ValidateCase{"TopLogprobsNegative",
                     [](SamplingParams& p) { p.top_logprobs = -1; },
                     "top_logprobs must be in [0, 20]"},
        ValidateCase{"TopLogprobsWithoutLogprobs",
                     [](SamplingParams& p) { p.top_logprobs = 3; },
                     "top_logprobs > 0 requires logprobs"}),
    [](const ::testing::TestParamInfo<ValidateCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace wf::engine
