// Thread pool, KV cache, forward-pass invariance (threads, batching, prefill
// chunking, block size) and forward-pass input errors, on the golden model.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/forward.h"
#include "worker/engine/internal/golden_data.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"
#include "worker/engine/session.h"
#include "worker/engine/thread_pool.h"
#include "worker/kernels/kernels.h"

namespace wf::engine {
namespace {

using ::testing::HasSubstr;
using wf::testing::IsOk;
using wf::testing::StatusIs;

// ---------------------------------------------------------------------------
// ThreadPool

TEST(ThreadPoolTest, EveryItemRunsExactlyOnceOnGrainBoundaries) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1000}) {
      for (int64_t grain : {1, 3, 32}) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<int> bad_boundary{0};
        pool.ParallelFor(
            n,
            [&](int64_t begin, int64_t end) {
              if (begin % grain != 0 || (end != n && end % grain != 0) || begin >= end) {
                ++bad_boundary;
              }
              for (int64_t i = begin; i < end; ++i) ++hits[i];
            },
            grain);
        EXPECT_EQ(bad_boundary.load(), 0) << threads << " threads, n " << n;
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "item " << i;
      }
    }
  }
}

TEST(ThreadPoolTest, ManyBackToBackJobsComplete) {
  ThreadPool pool(3);
  std::vector<int64_t> out(96);
  int64_t total = 0;
  for (int round = 0; round < 3000; ++round) {
    // Enough work per range that the workers, not only the caller, take part.
    pool.ParallelFor(static_cast<int64_t>(out.size()), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        int64_t v = round;
        for (int j = 0; j < 200; ++j) v = (v * 31 + i) % 1000003;
        out[i] = v;
      }
    });
    for (int64_t v : out) total += v;
  }
  int64_t expected = 0;
  for (int round = 0; round < 3000; ++round) {
    for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i) {
      int64_t v = round;
      for (int j = 0; j < 200; ++j) v = (v * 31 + i) % 1000003;
      expected += v;
    }
  }
  EXPECT_EQ(total, expected);
}

TEST(ThreadPoolTest, DefaultUsesHardwareConcurrency) {
  ThreadPool pool;
  EXPECT_GE(pool.num_threads(), 1);
}

// ---------------------------------------------------------------------------
// KvCache

TEST(KvCacheTest, ReserveIsAllOrNothingAndReleaseReturnsBlocks) {
  ASSERT_OK_AND_ASSIGN(
      auto cache,
      KvCache::Create(
          {.n_layer = 2, .n_head_kv = 2, .head_dim = 8, .block_size = 4, .num_blocks = 5}));
  EXPECT_EQ(cache->bytes_per_token(), 2u * 2 * 2 * 2 * 8);
  SequenceKv a, b;
  ASSERT_THAT(cache->Reserve(&a, 9), IsOk());  // 3 blocks
  EXPECT_EQ(a.block_table.size(), 3u);
  EXPECT_EQ(cache->num_free_blocks(), 2);
  ASSERT_THAT(cache->Reserve(&a, 12), IsOk());  // still 3 blocks
  EXPECT_EQ(a.block_table.size(), 3u);
  EXPECT_THAT(cache->Reserve(&b, 13),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("only 2 of 5")));
  EXPECT_TRUE(b.block_table.empty());
  EXPECT_EQ(cache->num_free_blocks(), 2);
  ASSERT_THAT(cache->Reserve(&b, 8), IsOk());
  EXPECT_EQ(cache->num_free_blocks(), 0);
  EXPECT_THAT(cache->AllocateBlock().status(),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("5 blocks")));
  cache->Release(&a);
  EXPECT_EQ(a.length, 0);
  EXPECT_TRUE(a.block_table.empty());
  EXPECT_EQ(cache->num_free_blocks(), 3);
  cache->Release(&b);
  EXPECT_EQ(cache->num_free_blocks(), 5);
}

TEST(KvCacheTest, FreeErrors) {
  ASSERT_OK_AND_ASSIGN(
      auto cache,
      KvCache::Create(
          {.n_layer = 1, .n_head_kv = 1, .head_dim = 2, .block_size = 2, .num_blocks = 2}));
  ASSERT_OK_AND_ASSIGN(int32_t block, cache->AllocateBlock());
  EXPECT_THAT(cache->FreeBlock(block), IsOk());
  EXPECT_THAT(cache->FreeBlock(block),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not allocated")));
  EXPECT_THAT(cache->FreeBlock(7),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("out of range")));
  EXPECT_EQ(cache->num_free_blocks(), 2);
}

TEST(KvCacheTest, RejectsBadConfig) {
  EXPECT_THAT(
      KvCache::Create({.n_layer = 1, .n_head_kv = 0, .head_dim = 2, .num_blocks = 2}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("n_head_kv")));
}

TEST(KvCacheTest, Q8StoresCodesAndScalesAndNeedsWholeBlocks) {
  ASSERT_OK_AND_ASSIGN(auto cache, KvCache::Create({.n_layer = 2, .n_head_kv = 2, .head_dim = 64, .block_size = 4,
                                                    .num_blocks = 3, .type = KvCacheType::kQ8}));
  EXPECT_EQ(cache->type(), KvCacheType::kQ8);
  // Per token: K and V, 2 layers x 2 heads x (64 codes + 2 float scales).
  EXPECT_EQ(cache->bytes_per_token(), 2u * 2 * 2 * (64 + 2 * 4));
  EXPECT_EQ(cache->total_bytes(), cache->bytes_per_token() * 4 * 3);
  // Blocks do not overlap: consecutive blocks are one block's size apart.
  EXPECT_EQ(cache->KBlockQ8(0, 1) - cache->KBlockQ8(0, 0), 2 * 4 * 64);
  EXPECT_EQ(cache->VScalesQ8(1, 0) - cache->VScalesQ8(0, 0), 3 * 2 * 4 * 2);
  EXPECT_THAT(KvCache::Create({.n_layer = 1, .n_head_kv = 1, .head_dim = 40, .num_blocks = 2, .type = KvCacheType::kQ8})
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiple of 32, got 40")));
  EXPECT_THAT(KvCache::Create({.n_layer = 1, .n_head_kv = 1, .head_dim = 40, .num_blocks = 2}), IsOk());
  EXPECT_EQ(ParseKvCacheType("Q8").value(), KvCacheType::kQ8);
  EXPECT_EQ(ParseKvCacheType("f16").value(), KvCacheType::kF16);
  EXPECT_THAT(ParseKvCacheType("fp8").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown KV cache type 'fp8' (expected f16 or q8)")));
}

// ---------------------------------------------------------------------------
// Forward pass on the golden model.

// Every forward test runs with the exact F16 head and KV cache, with the
// 8-bit head, and with the 8-bit KV cache.
struct ForwardVariant {
  HeadType head;
  KvCacheType kv;
};

class ForwardTest : public ::testing::TestWithParam<ForwardVariant> {
 protected:
  static void SetUpTestSuite() {
    auto sets = internal::LoadGoldenSets();
    ASSERT_TRUE(sets.ok()) << sets.status();
    for (HeadType head : {HeadType::kF16, HeadType::kQ8}) {
      auto model = Model::Load(sets->front().model_path, {.head_type = head});
      ASSERT_TRUE(model.ok()) << model.status();
      models_[static_cast<int>(head)] = std::move(model).value().release();
    }
  }
  static void TearDownTestSuite() {
    for (Model*& m : models_) {
      delete m;
      m = nullptr;
    }
    model_ = nullptr;
  }
  void SetUp() override {
    model_ = models_[static_cast<int>(GetParam().head)];
    kv_ = GetParam().kv;
    if (model_ == nullptr) GTEST_SKIP() << "golden model failed to load";
    ASSERT_EQ(model_->head_type(), GetParam().head);
  }

  std::unique_ptr<KvCache> MakeCache(int num_blocks, int block_size = 16) const {
    const ModelConfig& c = model_->config();
    return KvCache::Create({.n_layer = c.n_layer,
                            .n_head_kv = c.n_head_kv,
                            .head_dim = c.head_dim,
                            .block_size = block_size,
                            .num_blocks = num_blocks,
                            .type = kv_})
        .value();
  }

  static std::vector<int32_t> Prompt(int n, int seed) {
    std::vector<int32_t> ids = {2040};  // BOS
    uint32_t x = 12345u + 977u * seed;
    while (static_cast<int>(ids.size()) < n) {
      x = x * 1664525u + 1013904223u;
      ids.push_back(static_cast<int32_t>((x >> 8) % 2040));
    }
    return ids;
  }

  static Model* models_[2];
  static Model* model_;
  KvCacheType kv_ = KvCacheType::kF16;
};

Model* ForwardTest::models_[2] = {nullptr, nullptr};
Model* ForwardTest::model_ = nullptr;

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Prefill (all positions) plus 6 greedy decode steps, all logits concatenated.
std::vector<float> RunSequence(Session& session, const std::vector<int32_t>& prompt) {
  session.Reset();
  std::vector<float> all = session.Prefill(prompt, {.all_logits = true}).value();
  std::vector<float> logits(all.end() - session.runner().model().config().n_vocab, all.end());
  for (int i = 0; i < 6; ++i) {
    logits = session.Decode(Argmax(logits)).value();
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

TEST_P(ForwardTest, LogitsDoNotDependOnThreadCount) {
  const std::vector<int32_t> prompt = Prompt(37, 1);
  std::vector<float> reference;
  for (int threads : {1, 2, 3, 4}) {
    ASSERT_OK_AND_ASSIGN(auto session, Session::Create(*model_, {.num_threads = threads, .kv_cache_type = kv_}));
    const std::vector<float> logits = RunSequence(*session, prompt);
    if (threads == 1) {
      reference = logits;
    } else {
      EXPECT_TRUE(BitEqual(logits, reference)) << threads << " threads";
    }
  }
}

TEST_P(ForwardTest, LogitsDoNotDependOnBlockSize) {
  const std::vector<int32_t> prompt = Prompt(29, 2);
  std::vector<float> reference;
  for (int block_size : {16, 1, 7, 64}) {
    ASSERT_OK_AND_ASSIGN(auto session,
                         Session::Create(*model_, {.num_threads = 2, .block_size = block_size, .kv_cache_type = kv_}));
    const std::vector<float> logits = RunSequence(*session, prompt);
    if (reference.empty()) {
      reference = logits;
    } else {
      EXPECT_TRUE(BitEqual(logits, reference)) << "block size " << block_size;
    }
  }
}

TEST_P(ForwardTest, ChunkedPrefillEqualsOneChunk) {
  const std::vector<int32_t> prompt = Prompt(40, 3);
  const int32_t n_vocab = model_->config().n_vocab;
  ASSERT_OK_AND_ASSIGN(auto session, Session::Create(*model_, {.num_threads = 2, .kv_cache_type = kv_}));
  for (bool rounding : {false, true}) {
    session->Reset();
    ASSERT_OK_AND_ASSIGN(
        std::vector<float> whole,
        session->Prefill(prompt, {.all_logits = true, .decode_rounding = rounding}));
    session->Reset();
    std::vector<float> chunked;
    size_t at = 0;
    for (size_t len : {1u, 3u, 16u, 1u, 19u}) {
      ASSERT_OK_AND_ASSIGN(std::vector<float> part,
                           session->Prefill(absl::MakeConstSpan(prompt).subspan(at, len),
                                            {.all_logits = true, .decode_rounding = rounding}));
      chunked.insert(chunked.end(), part.begin(), part.end());
      at += len;
    }
    ASSERT_EQ(at, prompt.size());
    ASSERT_EQ(chunked.size(), prompt.size() * n_vocab);
    EXPECT_TRUE(BitEqual(whole, chunked)) << "decode_rounding " << rounding;
  }
}

// Contexts longer than one attention chunk (256 positions) are split across
// threads; the result must not depend on threads, block size or how the
// prompt was cut into forward calls.
TEST_P(ForwardTest, LongContextDoesNotDependOnThreadsBlocksOrChunks) {
  const std::vector<int32_t> prompt = Prompt(600, 7);
  std::vector<float> reference;
  auto run = [&](Session& session, size_t first_call) {
    session.Reset();
    std::vector<float> logits;
    if (first_call < prompt.size()) {
      EXPECT_THAT(session.Prefill(absl::MakeConstSpan(prompt).subspan(0, first_call)).status(),
                  IsOk());
      logits = session.Prefill(absl::MakeConstSpan(prompt).subspan(first_call)).value();
    } else {
      logits = session.Prefill(prompt).value();
    }
    std::vector<float> all = logits;
    for (int i = 0; i < 3; ++i) {
      logits = session.Decode(Argmax(logits)).value();
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  };
  struct Config {
    int threads, block_size;
    size_t first_call;
  };
  for (const Config& cfg : {Config{1, 16, 600}, Config{3, 16, 600}, Config{2, 7, 600},
                            Config{2, 16, 257}, Config{4, 64, 511}}) {
    ASSERT_OK_AND_ASSIGN(auto session, Session::Create(*model_, {.num_threads = cfg.threads,
                                                                 .block_size = cfg.block_size, .kv_cache_type = kv_}));
    const std::vector<float> logits = run(*session, cfg.first_call);
    if (reference.empty()) {
      reference = logits;
    } else {
      EXPECT_TRUE(BitEqual(logits, reference))
          << cfg.threads << " threads, block size " << cfg.block_size << ", first call "
          << cfg.first_call;
    }
  }
}

// Three sequences decoded together (one joining late, prefilling while the
// others decode) give the same bits as each one alone.
TEST_P(ForwardTest, BatchedSequencesEqualSequencesAlone) {
  const int32_t n_vocab = model_->config().n_vocab;
  const std::vector<std::vector<int32_t>> prompts = {Prompt(5, 4), Prompt(23, 5), Prompt(12, 6)};
  constexpr int kSteps = 8;
  ThreadPool pool(2);

  // Alone: logits of the last prompt position, then of each decode step.
  std::vector<std::vector<std::vector<float>>> alone(prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_OK_AND_ASSIGN(auto session, Session::Create(*model_, {.pool = &pool, .kv_cache_type = kv_}));
    ASSERT_OK_AND_ASSIGN(std::vector<float> logits,
                         session->Prefill(prompts[s], {.decode_rounding = false}));
    alone[s].push_back(logits);
    for (int i = 0; i < kSteps; ++i) {
      ASSERT_OK_AND_ASSIGN(logits, session->Decode(Argmax(logits)));
      alone[s].push_back(logits);
    }
  }

  auto cache = MakeCache(32);
  ASSERT_OK_AND_ASSIGN(auto runner, ModelRunner::Create(model_, cache.get(), &pool, {}));
  std::vector<SequenceKv> kv(prompts.size());
  std::vector<std::vector<std::vector<float>>> batched(prompts.size());
  std::vector<int32_t> next(prompts.size(), -1);
  // Sequence 2 starts at round 2; every round, a sequence either prefills
  // its prompt or decodes its last greedy token.
  for (int round = 0; round < kSteps + 3; ++round) {
    Batch batch;
    std::vector<size_t> members;
    for (size_t s = 0; s < prompts.size(); ++s) {
      const int start = s == 2 ? 2 : 0;
      if (round < start || batched[s].size() > kSteps) continue;
      SequenceSlice slice;
      slice.kv = &kv[s];
      if (round == start) {
        for (int32_t id : prompts[s]) slice.tokens.push_back({.id = id});
        slice.tokens.back().want_logits = true;
      } else {
        slice.tokens.push_back({.id = next[s], .want_logits = true, .decode_rounding = true});
      }
      ASSERT_THAT(cache->Reserve(&kv[s], kv[s].length + slice.tokens.size()), IsOk());
      batch.sequences.push_back(std::move(slice));
      members.push_back(s);
    }
    if (members.empty()) break;
    ForwardOutput out;
    ASSERT_THAT(runner->Forward(batch, &out), IsOk());
    ASSERT_EQ(out.rows.size(), members.size());
    for (size_t r = 0; r < members.size(); ++r) {
      const size_t s = members[out.rows[r].sequence];
      const auto row = out.row_logits(r);
      batched[s].emplace_back(row.begin(), row.end());
      next[s] = Argmax(row);
    }
  }
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_EQ(batched[s].size(), alone[s].size()) << "sequence " << s;
    for (size_t i = 0; i < alone[s].size(); ++i) {
      EXPECT_TRUE(BitEqual(batched[s][i], alone[s][i]))
          << "sequence " << s << " step " << i << " of " << n_vocab << " logits";
    }
  }
}

// The head runs one F16 gemv per token and row tile; the split into tiles
// and threads must not change a row's sum.
TEST_P(ForwardTest, HeadGemvDoesNotDependOnRowRange) {
  const kernels::KernelTable& kt = model_->kernels();
  const int64_t k = model_->config().n_embd;
  const int64_t m = 200;
  std::vector<float> x(k);
  for (int64_t i = 0; i < k; ++i) x[i] = 0.01f * static_cast<float>((i * 37) % 101) - 0.5f;
  std::vector<float> whole(m), split(m);
  kt.f16_gemv(model_->head(), k, 0, m, x.data(), whole.data());
  for (int64_t r = 0; r < m;) {
    const int64_t len = 1 + (r % 7);
    const int64_t end = std::min(m, r + len);
    kt.f16_gemv(model_->head(), k, r, end, x.data(), split.data());
    r = end;
  }
  EXPECT_TRUE(BitEqual(whole, split));
}

TEST_P(ForwardTest, InputErrors) {
  auto cache = MakeCache(4);
  ASSERT_OK_AND_ASSIGN(auto runner,
                       ModelRunner::Create(model_, cache.get(), nullptr, {.max_context = 20}));
  ForwardOutput out;
  EXPECT_THAT(runner->Forward(Batch{}, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty batch")));

  SequenceKv kv;
  ASSERT_THAT(cache->Reserve(&kv, 16), IsOk());
  Batch batch;
  batch.sequences.push_back({.kv = &kv, .tokens = {}});
  EXPECT_THAT(runner->Forward(batch, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no tokens")));

  batch.sequences[0].tokens = {{.id = 1}, {.id = 2048}};
  EXPECT_THAT(runner->Forward(batch, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id 2048")));
  batch.sequences[0].tokens = {{.id = -1}};
  EXPECT_THAT(runner->Forward(batch, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id -1")));

  batch.sequences[0].tokens = {{.id = 1}};
  batch.sequences.push_back(batch.sequences[0]);
  EXPECT_THAT(runner->Forward(batch, &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  batch.sequences.pop_back();

  // 17 positions with 16 reserved.
  batch.sequences[0].tokens.assign(17, {.id = 1});
  EXPECT_THAT(runner->Forward(batch, &out),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("reserve")));
  // 21 positions with a context limit of 20.
  ASSERT_THAT(cache->Reserve(&kv, 32), IsOk());
  batch.sequences[0].tokens.assign(21, {.id = 1});
  EXPECT_THAT(runner->Forward(batch, &out),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("context limit of 20")));
  EXPECT_EQ(kv.length, 0);  // nothing was run

  batch.sequences[0].tokens.assign(20, {.id = 1});
  batch.sequences[0].tokens.back().want_logits = true;
  ASSERT_THAT(runner->Forward(batch, &out), IsOk());
  EXPECT_EQ(kv.length, 20);
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0].position, 19);
  batch.sequences[0].tokens = {{.id = 1}};
  EXPECT_THAT(runner->Forward(batch, &out), StatusIs(absl::StatusCode::kOutOfRange, ::testing::_));
  EXPECT_EQ(kv.length, 20);
}

TEST_P(ForwardTest, SessionContextOverflowAndBadTokens) {
  ASSERT_OK_AND_ASSIGN(auto session,
                       Session::Create(*model_, {.num_threads = 1, .max_context = 8, .kv_cache_type = kv_}));
  EXPECT_THAT(session->Prefill(Prompt(9, 7)).status(),
              StatusIs(absl::StatusCode::kOutOfRange, ::testing::_));
  ASSERT_THAT(session->Prefill(Prompt(8, 7)).status(), IsOk());
  EXPECT_THAT(session->Decode(5).status(), StatusIs(absl::StatusCode::kOutOfRange, ::testing::_));
  session->Reset();
  EXPECT_THAT(session->Decode(100000).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside the vocabulary")));
  EXPECT_THAT(session->Prefill({}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_EQ(session->length(), 0);
}

TEST_P(ForwardTest, RunnerRejectsMismatchedCache) {
  auto cache =
      KvCache::Create({.n_layer = 3, .n_head_kv = 2, .head_dim = 64, .num_blocks = 2}).value();
  EXPECT_THAT(ModelRunner::Create(model_, cache.get(), nullptr, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("geometry")));
}

INSTANTIATE_TEST_SUITE_P(Variants, ForwardTest,
                         ::testing::Values(ForwardVariant{HeadType::kF16, KvCacheType::kF16},
                                           ForwardVariant{HeadType::kQ8, KvCacheType::kF16},
                                           ForwardVariant{HeadType::kF16, KvCacheType::kQ8}),
                         [](const ::testing::TestParamInfo<ForwardVariant>& info) {
                           return std::string(HeadTypeName(info.param.head)) + "_head_" +
                                  KvCacheTypeName(info.param.kv) + "_kv";
                         });

TEST(TopKTest, LogSoftmaxTopKOrderAndTies) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, -2.0f};
  const std::vector<TokenLogprob> top = TopKLogSoftmax(logits, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].token, 1);
  EXPECT_EQ(top[1].token, 2);
  EXPECT_EQ(top[2].token, 0);
  const double z = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(-2.0));
  EXPECT_NEAR(top[0].logprob, 3.0 - z, 1e-12);
  EXPECT_EQ(Argmax(logits), 1);
  EXPECT_EQ(TopKLogSoftmax(logits, 10).size(), 4u);
}

}  // namespace
}  // namespace wf::engine
