// The engine against bitnet.cpp's reference outputs (shared golden sets),
// with the tolerances of the golden README, for every kernel ISA this CPU
// runs. The |delta logprob| statistics are printed, not asserted.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "common/tokenizer/gguf_vocab.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/internal/golden_data.h"
#include "worker/engine/model.h"
#include "worker/engine/session.h"
#include "worker/kernels/kernels.h"

namespace wf::kernels {
// Readable test names in ctest and failure messages.
void PrintTo(Isa isa, std::ostream* os) { *os << IsaName(isa); }
}  // namespace wf::kernels

namespace wf::engine {
namespace {

using internal::GoldenCase;
using internal::GoldenSet;
using internal::GoldenTop;
using kernels::Isa;

// Tolerances of the golden README.
constexpr double kMaxLogprobDelta = 0.35;
constexpr double kArgmaxMargin = 0.15;
constexpr double kMaxLogitDelta = 0.5;

struct Stats {
  std::vector<double> deltas;
  std::vector<std::string> argmax_disagreements;

  void Print(const std::string& label) {
    if (deltas.empty()) return;
    std::vector<double> d = deltas;
    std::sort(d.begin(), d.end());
    const double median = d[d.size() / 2];
    const double p99 = d[std::min(d.size() - 1, d.size() * 99 / 100)];
    double sum = 0.0;
    for (double x : d) sum += x;
    std::printf(
        "[golden %s] %zu logprobs compared: |delta| median %.6f, mean %.6f, p99 %.4f, max %.4f\n",
        label.c_str(), d.size(), median, sum / d.size(), p99, d.back());
    for (const std::string& s : argmax_disagreements) {
      std::printf("[golden %s] argmax differs (allowed, low margin): %s\n", label.c_str(),
                  s.c_str());
    }
  }
};

// Compares one distribution with a reference top-5 list.
void CheckTop5(const std::vector<float>& logits, const std::vector<GoldenTop>& top5,
               int32_t expected_token, double margin, const std::string& where, Stats* stats) {
  const std::vector<double> lp = LogSoftmax(logits);
  for (const GoldenTop& ref : top5) {
    ASSERT_GE(ref.token, 0);
    ASSERT_LT(ref.token, static_cast<int32_t>(lp.size()));
    const double delta = std::fabs(lp[ref.token] - ref.logprob);
    stats->deltas.push_back(delta);
    EXPECT_LE(delta, kMaxLogprobDelta) << where << " token " << ref.token << ": ours "
                                       << lp[ref.token] << ", reference " << ref.logprob;
  }
  const int32_t ours = Argmax(logits);
  if (ours != expected_token) {
    if (margin >= kArgmaxMargin) {
      ADD_FAILURE() << where << ": argmax " << ours << ", reference " << expected_token
                    << " with margin " << margin;
    } else {
      stats->argmax_disagreements.push_back(
          absl::StrCat(where, " ours ", ours, " reference ", expected_token, " margin ", margin));
    }
  }
}

class GoldenTest : public ::testing::TestWithParam<Isa> {
 protected:
  static void SetUpTestSuite() {
    auto sets = internal::LoadGoldenSets();
    ASSERT_TRUE(sets.ok()) << sets.status();
    sets_ = new std::vector<GoldenSet>(std::move(sets).value());
  }
  static void TearDownTestSuite() {
    delete sets_;
    sets_ = nullptr;
  }

  void SetUp() override {
    if (sets_ == nullptr) GTEST_SKIP() << "golden sets failed to load";
    kernels_ = kernels::KernelsFor(GetParam());
    if (kernels_ == nullptr) {
      GTEST_SKIP() << "this CPU cannot run " << kernels::IsaName(GetParam());
    }
  }

  static std::vector<GoldenSet>* sets_;
  const kernels::KernelTable* kernels_ = nullptr;
};

std::vector<GoldenSet>* GoldenTest::sets_ = nullptr;

TEST_P(GoldenTest, MatchesReference) {
  Stats stats;
  for (const GoldenSet& set : *sets_) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Model> model,
                         Model::Load(set.model_path, {.kernels = kernels_}));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Session> session,
                         Session::Create(*model, {.num_threads = 2}));
    const int32_t n_vocab = model->config().n_vocab;
    for (const GoldenCase& c : set.cases) {
      SCOPED_TRACE(c.name);
      ASSERT_EQ(c.steps.size(), c.greedy_ids.size());
      ASSERT_EQ(c.prompt_top5.size(), c.prompt_ids.size());

      // (3) every prompt position, from one prefill call.
      session->Reset();
      ASSERT_OK_AND_ASSIGN(std::vector<float> prompt_logits,
                           session->Prefill(c.prompt_ids, {.all_logits = true}));
      ASSERT_EQ(prompt_logits.size(), c.prompt_ids.size() * n_vocab);
      for (size_t p = 0; p < c.prompt_ids.size(); ++p) {
        const std::vector<float> row(prompt_logits.begin() + p * n_vocab,
                                     prompt_logits.begin() + (p + 1) * n_vocab);
        const auto& top5 = c.prompt_top5[p];
        ASSERT_GE(top5.size(), 2u);
        CheckTop5(row, top5, top5[0].token, top5[0].logprob - top5[1].logprob,
                  absl::StrCat(c.name, " prompt position ", p), &stats);
      }
      ASSERT_EQ(c.last_prompt_logits.size(), static_cast<size_t>(n_vocab));
      const float* last = prompt_logits.data() + (c.prompt_ids.size() - 1) * n_vocab;
      float worst = 0.0f;
      for (int32_t i = 0; i < n_vocab; ++i) {
        worst = std::max(worst, std::fabs(last[i] - c.last_prompt_logits[i]));
      }
      EXPECT_LE(worst, kMaxLogitDelta) << "last prompt logits";

      // (1) teacher forcing: step 0 from the prefill, then greedy_ids[:-1]
      // fed back one at a time.
      std::vector<float> logits(last, last + n_vocab);
      for (size_t i = 0; i < c.steps.size(); ++i) {
        CheckTop5(logits, c.steps[i].top5, c.steps[i].token, c.steps[i].margin,
                  absl::StrCat(c.name, " step ", i), &stats);
        if (i + 1 < c.steps.size()) {
          ASSERT_OK_AND_ASSIGN(logits, session->Decode(c.greedy_ids[i]));
        }
      }

      // (2) free-running greedy, identical up to the first low-margin step.
      ASSERT_OK_AND_ASSIGN(
          GenerationResult gen,
          session->GenerateGreedy(c.prompt_ids, static_cast<int>(c.steps.size()), 5));
      for (size_t i = 0; i < c.steps.size(); ++i) {
        if (c.steps[i].margin < kArgmaxMargin) break;
        ASSERT_EQ(gen.tokens[i], c.greedy_ids[i]) << "free-running step " << i;
      }
    }
  }
  stats.Print(std::string(kernels::IsaName(GetParam())));
}

// The 8-bit options against the same references: teacher-forced over every
// prompt position and decode step, a run reports how often its top-1 agrees
// with the reference and the largest |delta logprob| over the reference
// top-5, and asserts a sane bound on both (the int8 rounding adds a drift of
// its own to the F16 engine's).
void ExpectBoundedDrift(const std::vector<GoldenSet>& sets, const kernels::KernelTable* kernels,
                        HeadType head_type, KvCacheType kv_type, const std::string& label,
                        double max_logprob_delta, double min_top1_agreement) {
  Stats stats;
  int64_t top1_total = 0, top1_agree = 0;
  double max_delta = 0.0;
  for (const GoldenSet& set : sets) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Model> model,
                         Model::Load(set.model_path, {.kernels = kernels, .head_type = head_type}));
    ASSERT_EQ(model->head_type(), head_type);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Session> session,
                         Session::Create(*model, {.num_threads = 2, .kv_cache_type = kv_type}));
    const int32_t n_vocab = model->config().n_vocab;
    auto check = [&](const std::vector<float>& logits, const std::vector<GoldenTop>& top5,
                     int32_t expected) {
      const std::vector<double> lp = LogSoftmax(logits);
      for (const GoldenTop& ref : top5) {
        const double d = std::fabs(lp[ref.token] - ref.logprob);
        stats.deltas.push_back(d);
        max_delta = std::max(max_delta, d);
      }
      ++top1_total;
      if (Argmax(logits) == expected) ++top1_agree;
    };
    for (const GoldenCase& c : set.cases) {
      SCOPED_TRACE(c.name);
      session->Reset();
      ASSERT_OK_AND_ASSIGN(std::vector<float> prompt_logits,
                           session->Prefill(c.prompt_ids, {.all_logits = true}));
      for (size_t p = 0; p < c.prompt_ids.size(); ++p) {
        check(std::vector<float>(prompt_logits.begin() + p * n_vocab,
                                 prompt_logits.begin() + (p + 1) * n_vocab),
              c.prompt_top5[p], c.prompt_top5[p][0].token);
      }
      std::vector<float> logits(prompt_logits.end() - n_vocab, prompt_logits.end());
      for (size_t i = 0; i < c.steps.size(); ++i) {
        check(logits, c.steps[i].top5, c.steps[i].token);
        if (i + 1 < c.steps.size()) {
          ASSERT_OK_AND_ASSIGN(logits, session->Decode(c.greedy_ids[i]));
        }
      }
    }
  }
  ASSERT_GT(top1_total, 0);
  const double agreement = static_cast<double>(top1_agree) / static_cast<double>(top1_total);
  stats.Print(label);
  std::printf("[golden %s] top-1 agreement %lld/%lld = %.4f, max |delta logprob| %.4f\n",
              label.c_str(), static_cast<long long>(top1_agree),
              static_cast<long long>(top1_total), agreement, max_delta);
  EXPECT_GE(agreement, min_top1_agreement);
  EXPECT_LE(max_delta, max_logprob_delta);
}

TEST_P(GoldenTest, Q8HeadDriftIsBounded) {
  ExpectBoundedDrift(*sets_, kernels_, HeadType::kQ8, KvCacheType::kF16,
                     std::string(kernels::IsaName(GetParam())) + " q8 head", /*max_logprob_delta=*/0.5,
                     /*min_top1_agreement=*/0.95);
}

// The 8-bit KV cache: keys, values and queries in int8 blocks of 32.
TEST_P(GoldenTest, Q8KvCacheDriftIsBounded) {
  ExpectBoundedDrift(*sets_, kernels_, HeadType::kF16, KvCacheType::kQ8,
                     std::string(kernels::IsaName(GetParam())) + " q8 KV cache", /*max_logprob_delta=*/0.5,
                     /*min_top1_agreement=*/0.95);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, GoldenTest,
                         ::testing::Values(Isa::kGeneric, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(kernels::IsaName(info.param));
                         });

// (4) the text cases: tokenizing prompt_text with BOS gives prompt_ids.
TEST(GoldenTokenizerTest, TextPromptsTokenizeToPromptIds) {
  ASSERT_OK_AND_ASSIGN(std::vector<GoldenSet> sets, internal::LoadGoldenSets());
  int checked = 0;
  for (const GoldenSet& set : sets) {
    ASSERT_OK_AND_ASSIGN(auto file, gguf::GgufFile::Open(set.model_path));
    ASSERT_OK_AND_ASSIGN(tokenizer::Vocab vocab, tokenizer::VocabFromGgufFile(*file));
    ASSERT_OK_AND_ASSIGN(auto tok, tokenizer::Tokenizer::Create(std::move(vocab)));
    for (const GoldenCase& c : set.cases) {
      if (!c.has_prompt_text) continue;
      ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ids,
                           tok->Encode(c.prompt_text, {.add_bos = true, .parse_special = false}));
      EXPECT_EQ(ids, c.prompt_ids) << c.name;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no text cases in the golden sets";
}

}  // namespace
}  // namespace wf::engine
