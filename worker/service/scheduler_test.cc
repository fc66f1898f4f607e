#include "worker/service/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/kv_cache.h"
#include "worker/service/block_manager.h"

namespace wf::service {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

constexpr int kBlockSize = 4;

// The fake model: the next token is a function of the whole sequence, so a
// recomputed sequence must produce exactly the same tokens.
int32_t NextToken(const std::vector<int32_t>& tokens) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : tokens) h = (h ^ static_cast<uint32_t>(t)) * 1099511628211ull;
  return static_cast<int32_t>(h % 997) + 1;
}

std::vector<int32_t> Expected(std::vector<int32_t> prompt, int max_new) {
  for (int i = 0; i < max_new; ++i) prompt.push_back(NextToken(prompt));
  return prompt;
}

std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = 2000 + seed * 100 + i;
  return t;
}

struct PlannedItem {
  uint64_t id;
  int32_t begin;
  int32_t count;
  bool want_logits;
  bool operator==(const PlannedItem&) const = default;
};

struct StepTrace {
  std::vector<PlannedItem> items;
  std::vector<uint64_t> admitted;
  std::vector<uint64_t> preempted;
  bool operator==(const StepTrace&) const = default;
};

struct Finished {
  std::vector<int32_t> tokens;
  int32_t cached_prompt_tokens;
  int num_preemptions;
};

// Drives a Scheduler like the engine loop, with a fake forward that writes
// (token, position) into the K blocks and checks that every position below
// the written range still holds this sequence's tokens: a shared or reused
// block with the wrong contents, or a write into a shared block, fails.
class Sim {
 public:
  Sim(int num_blocks, const SchedulerConfig& config) : config_(config) {
    auto cache = engine::KvCache::Create({.n_layer = 2, .n_head_kv = 1, .head_dim = 4,
                                          .block_size = kBlockSize, .num_blocks = num_blocks});
    EXPECT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(cache).value();
    auto blocks = BlockManager::Create(cache_.get());
    EXPECT_TRUE(blocks.ok()) << blocks.status();
    blocks_ = std::move(blocks).value();
    auto scheduler = Scheduler::Create(config, blocks_.get());
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(scheduler).value();
  }

  absl::Status Add(uint64_t id, std::vector<int32_t> prompt, int max_new) {
    auto seq = std::make_unique<Sequence>();
    seq->id = id;
    seq->num_prompt_tokens = static_cast<int32_t>(prompt.size());
    seq->max_total_tokens = static_cast<int32_t>(prompt.size()) + max_new;
    seq->tokens = std::move(prompt);
    absl::Status s = scheduler_->Add(std::move(seq));
    if (s.ok()) add_order_.push_back(id);
    return s;
  }

  // One engine iteration; returns what was planned.
  StepTrace Step() {
    StepPlan plan = scheduler_->Schedule();
    StepTrace trace;
    trace.admitted = plan.admitted;
    trace.preempted = plan.preempted;
    CheckPlan(plan);
    for (uint64_t id : plan.admitted) {
      if (ever_admitted_.insert(id).second) first_admission_order_.push_back(id);
    }
    for (const auto& item : plan.items) {
      trace.items.push_back({item.seq->id, item.begin, item.count, item.want_logits});
      prefill_tokens_[item.seq->id] += item.count;
      FakeForward(item);
    }
    for (const auto& item : plan.items) {
      if (!item.want_logits) continue;
      Sequence* s = item.seq;
      s->tokens.push_back(NextToken(s->tokens));
      if (static_cast<int32_t>(s->tokens.size()) >= s->max_total_tokens) {
        std::unique_ptr<Sequence> done = scheduler_->Remove(s->id);
        EXPECT_NE(done, nullptr);
        finished_[done->id] = {done->tokens, done->cached_prompt_tokens, done->num_preemptions};
      }
    }
    scheduler_->OnStepComplete(plan);
    EXPECT_EQ(blocks_->num_used_blocks() + blocks_->num_free_blocks(),
              blocks_->num_total_blocks());
    ++steps_;
    return trace;
  }

  void RunToCompletion(int max_steps = 10000) {
    while (scheduler_->HasWork() && steps_ < max_steps) Step();
    EXPECT_FALSE(scheduler_->HasWork()) << "did not finish in " << max_steps << " steps";
  }

  // After everything was removed: no block is referenced, and clearing the
  // cache returns every block to the KvCache.
  void ExpectNoLeaks() {
    EXPECT_EQ(blocks_->num_used_blocks(), 0);
    blocks_->ClearCache();
    EXPECT_EQ(blocks_->num_cached_blocks(), 0);
    EXPECT_EQ(cache_->num_free_blocks(), cache_->num_blocks());
  }

  Scheduler& scheduler() { return *scheduler_; }
  BlockManager& blocks() { return *blocks_; }
  const std::map<uint64_t, Finished>& finished() const { return finished_; }
  const std::vector<uint64_t>& first_admission_order() const { return first_admission_order_; }
  const std::vector<uint64_t>& add_order() const { return add_order_; }
  int64_t computed_tokens(uint64_t id) { return prefill_tokens_[id]; }
  int steps() const { return steps_; }
  int max_seen_running() const { return max_seen_running_; }

 private:
  void CheckPlan(const StepPlan& plan) {
    int64_t total = 0;
    absl::flat_hash_set<uint64_t> seen;
    for (const auto& item : plan.items) {
      const Sequence* s = item.seq;
      EXPECT_TRUE(seen.insert(s->id).second) << "sequence " << s->id << " planned twice";
      EXPECT_TRUE(s->running);
      EXPECT_EQ(scheduler_->Find(s->id), s);
      EXPECT_GE(item.count, 1);
      EXPECT_EQ(item.begin, s->kv.length);
      EXPECT_EQ(item.want_logits,
                item.begin + item.count == static_cast<int32_t>(s->tokens.size()));
      EXPECT_LE(item.begin + item.count, static_cast<int32_t>(s->tokens.size()));
      EXPECT_LE(item.begin + item.count, config_.max_context);
      EXPECT_GE(static_cast<int64_t>(s->kv.block_table.size()) * kBlockSize,
                item.begin + item.count)
          << "KV not reserved for sequence " << s->id;
      total += item.count;
    }
    EXPECT_EQ(total, plan.num_tokens);
    EXPECT_LE(plan.num_tokens, config_.max_step_tokens);
    EXPECT_LE(scheduler_->num_running(), config_.max_running);
    max_seen_running_ = std::max(max_seen_running_, scheduler_->num_running());
    for (uint64_t id : plan.preempted) {
      const Sequence* s = scheduler_->Find(id);
      ASSERT_NE(s, nullptr);
      EXPECT_FALSE(s->running);
      EXPECT_TRUE(s->kv.block_table.empty());
    }
    if (!plan.preempted.empty()) {
      EXPECT_TRUE(plan.admitted.empty());
    }
  }

  uint16_t* Slot(int32_t block, int32_t slot) {
    return cache_->KBlock(0, block) + static_cast<size_t>(slot) * 4;
  }

  void FakeForward(const StepPlan::Item& item) {
    Sequence* s = item.seq;
    for (int32_t p = 0; p < item.begin; ++p) {
      const uint16_t* v = Slot(s->kv.block_table[p / kBlockSize], p % kBlockSize);
      ASSERT_EQ(v[0], static_cast<uint16_t>(s->tokens[p]))
          << "sequence " << s->id << " position " << p << " holds a wrong token";
      ASSERT_EQ(v[1], static_cast<uint16_t>(p));
    }
    for (int32_t p = item.begin; p < item.begin + item.count; ++p) {
      const int32_t b = s->kv.block_table[p / kBlockSize];
      ASSERT_EQ(blocks_->ref_count(b), 1) << "write into a shared block";
      ASSERT_FALSE(blocks_->is_cached(b)) << "write into a cached block";
      uint16_t* v = Slot(b, p % kBlockSize);
      v[0] = static_cast<uint16_t>(s->tokens[p]);
      v[1] = static_cast<uint16_t>(p);
    }
    s->kv.length += item.count;
  }

  SchedulerConfig config_;
  std::unique_ptr<engine::KvCache> cache_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> scheduler_;
  std::map<uint64_t, Finished> finished_;
  std::map<uint64_t, int64_t> prefill_tokens_;
  std::set<uint64_t> ever_admitted_;
  std::vector<uint64_t> first_admission_order_;
  std::vector<uint64_t> add_order_;
  int steps_ = 0;
  int max_seen_running_ = 0;
};

// --- table-driven simulations ---

struct Request {
  uint64_t id;
  int arrival_step;  // added before this step runs
  std::vector<int32_t> prompt;
  int max_new;
};

struct SimCase {
  std::string name;
  SchedulerConfig config;
  int num_blocks;
  std::vector<Request> requests;
  bool expect_preemption;
};

void PrintTo(const SimCase& c, std::ostream* os) { *os << c.name; }

std::vector<SimCase> Cases() {
  std::vector<SimCase> cases;
  cases.push_back({"single", {.max_running = 4, .max_step_tokens = 16, .max_context = 64}, 16,
                   {{1, 0, Prompt(7, 1), 5}}, false});
  cases.push_back({"max_running_two",
                   {.max_running = 2, .max_step_tokens = 32, .max_context = 64},
                   32,
                   {{1, 0, Prompt(5, 1), 3},
                    {2, 0, Prompt(6, 2), 4},
                    {3, 0, Prompt(3, 3), 2},
                    {4, 0, Prompt(9, 4), 6},
                    {5, 1, Prompt(2, 5), 1},
                    {6, 2, Prompt(11, 6), 3}},
                   false});
  cases.push_back({"chunked_long_prompt",
                   {.max_running = 4, .max_step_tokens = 8, .max_context = 128},
                   64,
                   {{1, 0, Prompt(50, 1), 4}, {2, 3, Prompt(6, 2), 5}, {3, 3, Prompt(30, 3), 2}},
                   false});
  cases.push_back({"tight_pool_preempts",
                   {.max_running = 4, .max_step_tokens = 16, .max_context = 32},
                   10,
                   {{1, 0, Prompt(10, 1), 14},
                    {2, 0, Prompt(9, 2), 15},
                    {3, 0, Prompt(7, 3), 12},
                    {4, 1, Prompt(12, 4), 10}},
                   true});
  cases.push_back({"shared_prefixes_staggered",
                   {.max_running = 3, .max_step_tokens = 12, .max_context = 64},
                   24,
                   {{1, 0, Prompt(17, 7), 4},
                    {2, 2, Prompt(17, 7), 6},
                    {3, 2, Prompt(13, 7), 3},
                    {4, 5, Prompt(21, 8), 5},
                    {5, 9, Prompt(17, 7), 2},
                    {6, 9, Prompt(8, 7), 7}},
                   false});
  return cases;
}

class SchedulerSimTest : public ::testing::TestWithParam<SimCase> {};

TEST_P(SchedulerSimTest, RunsEveryRequestToCompletion) {
  const SimCase& c = GetParam();
  Sim sim(c.num_blocks, c.config);
  size_t next = 0;
  std::vector<Request> reqs = c.requests;
  while ((next < reqs.size() || sim.scheduler().HasWork()) && sim.steps() < 5000) {
    while (next < reqs.size() && reqs[next].arrival_step <= sim.steps()) {
      ASSERT_THAT(sim.Add(reqs[next].id, reqs[next].prompt, reqs[next].max_new), IsOk());
      ++next;
    }
    sim.Step();
    if (::testing::Test::HasFatalFailure()) return;
  }
  ASSERT_EQ(sim.finished().size(), reqs.size());
  for (const Request& r : reqs) {
    EXPECT_EQ(sim.finished().at(r.id).tokens, Expected(r.prompt, r.max_new)) << "request " << r.id;
  }
  EXPECT_EQ(sim.first_admission_order(), sim.add_order()) << "admission is not FCFS";
  EXPECT_LE(sim.max_seen_running(), c.config.max_running);
  EXPECT_EQ(sim.scheduler().total_preemptions() > 0, c.expect_preemption);
  sim.ExpectNoLeaks();
}

INSTANTIATE_TEST_SUITE_P(Cases, SchedulerSimTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

// --- focused scenarios ---

TEST(SchedulerTest, ChunkedPrefillUnderBudget) {
  Sim sim(32, {.max_running = 4, .max_step_tokens = 16, .max_context = 64});
  ASSERT_THAT(sim.Add(1, Prompt(50, 1), 3), IsOk());
  std::vector<PlannedItem> items;
  while (sim.scheduler().HasWork() && sim.steps() < 100) {
    StepTrace t = sim.Step();
    ASSERT_EQ(t.items.size(), 1u);
    items.push_back(t.items[0]);
  }
  EXPECT_THAT(items, ElementsAre(PlannedItem{1, 0, 16, false}, PlannedItem{1, 16, 16, false},
                                 PlannedItem{1, 32, 16, false}, PlannedItem{1, 48, 2, true},
                                 PlannedItem{1, 50, 1, true}, PlannedItem{1, 51, 1, true}));
  EXPECT_EQ(sim.finished().at(1).tokens, Expected(Prompt(50, 1), 3));
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, DecodesFirstThenPrefillThenAdmission) {
  Sim sim(64, {.max_running = 4, .max_step_tokens = 10, .max_context = 64});
  ASSERT_THAT(sim.Add(1, Prompt(3, 1), 10), IsOk());
  StepTrace t = sim.Step();  // 1 prefills fully
  ASSERT_THAT(t.items, ElementsAre(PlannedItem{1, 0, 3, true}));
  ASSERT_THAT(sim.Add(2, Prompt(20, 2), 2), IsOk());
  ASSERT_THAT(sim.Add(3, Prompt(5, 3), 2), IsOk());
  t = sim.Step();  // decode of 1, then 9 tokens of 2's prompt; 3 must wait
  EXPECT_THAT(t.items, ElementsAre(PlannedItem{1, 3, 1, true}, PlannedItem{2, 0, 9, false}));
  EXPECT_THAT(t.admitted, ElementsAre(2));
  t = sim.Step();  // decode of 1, rest of the budget continues 2, then 3
  EXPECT_THAT(t.items, ElementsAre(PlannedItem{1, 4, 1, true}, PlannedItem{2, 9, 9, false}));
  t = sim.Step();
  EXPECT_THAT(t.items, ElementsAre(PlannedItem{1, 5, 1, true}, PlannedItem{2, 18, 2, true},
                                   PlannedItem{3, 0, 5, true}));
  EXPECT_THAT(t.admitted, ElementsAre(3));
  sim.RunToCompletion();
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, SecondRequestReusesCachedPrompt) {
  Sim sim(32, {.max_running = 4, .max_step_tokens = 64, .max_context = 64});
  const auto prompt = Prompt(22, 5);  // 5 full blocks + 2 tokens
  ASSERT_THAT(sim.Add(1, prompt, 3), IsOk());
  sim.RunToCompletion();
  EXPECT_EQ(sim.finished().at(1).cached_prompt_tokens, 0);
  ASSERT_THAT(sim.Add(2, prompt, 3), IsOk());
  sim.RunToCompletion();
  const Finished& f = sim.finished().at(2);
  EXPECT_EQ(f.cached_prompt_tokens, 20);
  EXPECT_EQ(f.tokens, Expected(prompt, 3));
  // 2 prompt tokens + 2 decodes instead of 22 + 2.
  EXPECT_EQ(sim.computed_tokens(2), 4);
  EXPECT_EQ(sim.computed_tokens(1), 24);
  const auto& stats = sim.blocks().stats();
  EXPECT_EQ(stats.prefix_queries, 2u);
  EXPECT_EQ(stats.prefix_query_tokens, 40u);
  EXPECT_EQ(stats.prefix_hit_tokens, 20u);
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, FullyCachedPromptStillComputesATokenForLogits) {
  Sim sim(32, {.max_running = 4, .max_step_tokens = 64, .max_context = 64});
  const auto aligned = Prompt(8, 6);  // exactly 2 blocks
  const auto one_more = Prompt(9, 6);
  ASSERT_THAT(sim.Add(1, aligned, 1), IsOk());
  sim.RunToCompletion();
  ASSERT_THAT(sim.Add(2, aligned, 1), IsOk());
  StepTrace t = sim.Step();
  // The last block cannot be shared (the sequence would write into it), so
  // the whole last block is recomputed.
  EXPECT_THAT(t.items, ElementsAre(PlannedItem{2, 4, 4, true}));
  EXPECT_EQ(sim.finished().at(2).cached_prompt_tokens, 4);
  ASSERT_THAT(sim.Add(3, one_more, 1), IsOk());
  t = sim.Step();
  EXPECT_THAT(t.items, ElementsAre(PlannedItem{3, 8, 1, true}));
  EXPECT_EQ(sim.finished().at(3).cached_prompt_tokens, 8);
  EXPECT_EQ(sim.finished().at(3).tokens, Expected(one_more, 1));
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, FinishingOnTheFirstTokenStillCachesThePrompt) {
  // The engine removes the sequence before OnStepComplete; Remove commits.
  Sim sim(16, {.max_running = 2, .max_step_tokens = 32, .max_context = 32});
  ASSERT_THAT(sim.Add(1, Prompt(12, 9), 1), IsOk());
  sim.Step();
  ASSERT_EQ(sim.finished().size(), 1u);
  EXPECT_EQ(sim.blocks().num_cached_blocks(), 3);
  ASSERT_THAT(sim.Add(2, Prompt(12, 9), 1), IsOk());
  sim.Step();
  EXPECT_EQ(sim.finished().at(2).cached_prompt_tokens, 8);
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, GeneratedBlocksAreNeverShared) {
  Sim sim(32, {.max_running = 4, .max_step_tokens = 64, .max_context = 64});
  const auto prompt = Prompt(6, 3);
  ASSERT_THAT(sim.Add(1, prompt, 12), IsOk());
  sim.RunToCompletion();
  // Only the one full prompt block; blocks 1..4 hold generated tokens.
  EXPECT_EQ(sim.blocks().num_cached_blocks(), 1);
  // A prompt equal to the whole first sequence shares only that block.
  ASSERT_THAT(sim.Add(2, sim.finished().at(1).tokens, 1), IsOk());
  sim.RunToCompletion();
  EXPECT_EQ(sim.finished().at(2).cached_prompt_tokens, 4);
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, PreemptedSequenceRecomputesAndMatchesReference) {
  // 8 blocks of 4 = 32 positions; two sequences growing to 24 positions
  // each cannot both fit.
  Sim sim(8, {.max_running = 2, .max_step_tokens = 16, .max_context = 32});
  ASSERT_THAT(sim.Add(1, Prompt(8, 1), 16), IsOk());
  ASSERT_THAT(sim.Add(2, Prompt(8, 2), 16), IsOk());
  bool saw_preempt = false;
  while (sim.scheduler().HasWork() && sim.steps() < 1000) {
    StepTrace t = sim.Step();
    if (!t.preempted.empty()) {
      saw_preempt = true;
      EXPECT_THAT(t.preempted, ElementsAre(2));  // the newest goes
      const Sequence* s = sim.scheduler().Find(2);
      ASSERT_NE(s, nullptr);
      EXPECT_GT(static_cast<int32_t>(s->tokens.size()), s->num_prompt_tokens);
    }
  }
  EXPECT_TRUE(saw_preempt);
  EXPECT_EQ(sim.finished().at(1).num_preemptions, 0);
  EXPECT_GE(sim.finished().at(2).num_preemptions, 1);
  EXPECT_EQ(sim.finished().at(1).tokens, Expected(Prompt(8, 1), 16));
  EXPECT_EQ(sim.finished().at(2).tokens, Expected(Prompt(8, 2), 16));
  // The recomputed prompt block came back from the cache: cached_prompt_tokens
  // is recorded at the first admission only.
  EXPECT_EQ(sim.finished().at(2).cached_prompt_tokens, 0);
  EXPECT_EQ(sim.blocks().stats().prefix_queries, 2u);
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, PreemptedSequenceReturnsOnlyWhenItFitsWhole) {
  // 8 blocks of 4 = 32 positions; two sequences growing to 30 positions each.
  // Once preempted, the newer one waits for the older to finish instead of
  // coming back chunk by chunk and being preempted over and over.
  Sim sim(8, {.max_running = 2, .max_step_tokens = 4, .max_context = 32});
  ASSERT_THAT(sim.Add(1, Prompt(6, 1), 24), IsOk());
  ASSERT_THAT(sim.Add(2, Prompt(6, 2), 24), IsOk());
  while (sim.scheduler().HasWork() && sim.steps() < 1000) sim.Step();
  ASSERT_EQ(sim.finished().size(), 2u);
  EXPECT_EQ(sim.finished().at(1).num_preemptions, 0);
  EXPECT_EQ(sim.finished().at(2).num_preemptions, 1);
  EXPECT_EQ(sim.finished().at(2).tokens, Expected(Prompt(6, 2), 24));
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, PreemptedGoesToTheFrontOfTheQueue) {
  Sim sim(8, {.max_running = 2, .max_step_tokens = 16, .max_context = 32});
  ASSERT_THAT(sim.Add(1, Prompt(8, 1), 16), IsOk());
  ASSERT_THAT(sim.Add(2, Prompt(8, 2), 16), IsOk());
  ASSERT_THAT(sim.Add(3, Prompt(4, 3), 2), IsOk());  // waits: max_running
  std::vector<uint64_t> admitted;
  bool preempted = false;
  while (sim.scheduler().HasWork() && sim.steps() < 1000) {
    StepTrace t = sim.Step();
    if (!t.preempted.empty()) preempted = true;
    if (preempted) admitted.insert(admitted.end(), t.admitted.begin(), t.admitted.end());
  }
  ASSERT_TRUE(preempted);
  ASSERT_FALSE(admitted.empty());
  EXPECT_EQ(admitted[0], 2u);  // re-admitted before the later arrival
  EXPECT_EQ(sim.finished().size(), 3u);
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, RemoveInAnyState) {
  Sim sim(32, {.max_running = 1, .max_step_tokens = 8, .max_context = 64});
  ASSERT_THAT(sim.Add(1, Prompt(20, 1), 5), IsOk());
  ASSERT_THAT(sim.Add(2, Prompt(6, 2), 5), IsOk());
  EXPECT_EQ(sim.scheduler().Remove(99), nullptr);
  sim.Step();  // 1 has 8 of 20 prompt tokens
  ASSERT_EQ(sim.scheduler().num_running(), 1);
  EXPECT_GT(sim.blocks().num_used_blocks(), 0);
  // Mid-prefill abort: its computed full blocks stay cached, nothing is held.
  auto one = sim.scheduler().Remove(1);
  ASSERT_NE(one, nullptr);
  EXPECT_TRUE(one->kv.block_table.empty());
  EXPECT_EQ(sim.blocks().num_used_blocks(), 0);
  EXPECT_EQ(sim.blocks().num_cached_blocks(), 2);
  EXPECT_EQ(sim.scheduler().Find(1), nullptr);
  // Waiting abort.
  ASSERT_THAT(sim.Add(3, Prompt(4, 3), 2), IsOk());
  EXPECT_NE(sim.scheduler().Remove(3), nullptr);
  EXPECT_EQ(sim.scheduler().num_waiting(), 1);
  // Mid-decode abort.
  sim.Step();
  sim.Step();
  const Sequence* two = sim.scheduler().Find(2);
  ASSERT_NE(two, nullptr);
  ASSERT_GT(static_cast<int32_t>(two->tokens.size()), two->num_prompt_tokens);
  EXPECT_NE(sim.scheduler().Remove(2), nullptr);
  EXPECT_FALSE(sim.scheduler().HasWork());
  // Planned but not run: Remove between Schedule and the forward.
  ASSERT_THAT(sim.Add(4, Prompt(9, 4), 2), IsOk());
  StepPlan plan = sim.scheduler().Schedule();
  ASSERT_EQ(plan.items.size(), 1u);
  EXPECT_NE(sim.scheduler().Remove(4), nullptr);
  sim.scheduler().OnStepComplete(plan);  // must not touch the removed item
  // The id can be reused once removed.
  ASSERT_THAT(sim.Add(4, Prompt(9, 4), 2), IsOk());
  sim.RunToCompletion();
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, AddErrors) {
  Sim sim(64, {.max_running = 2, .max_waiting = 2, .max_step_tokens = 8, .max_context = 32});
  EXPECT_THAT(sim.scheduler().Add(nullptr), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(sim.Add(1, {}, 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty prompt")));
  EXPECT_THAT(sim.Add(1, Prompt(33, 1), 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("prompt has 33 tokens; the context limit is 32")));
  EXPECT_THAT(sim.Add(1, Prompt(30, 1), 3),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_total_tokens is 33; the context limit is 32")));
  auto bad = std::make_unique<Sequence>();
  bad->id = 7;
  bad->tokens = Prompt(4, 1);
  bad->num_prompt_tokens = 5;
  bad->max_total_tokens = 8;
  EXPECT_THAT(sim.scheduler().Add(std::move(bad)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_prompt_tokens")));
  auto short_total = std::make_unique<Sequence>();
  short_total->id = 8;
  short_total->tokens = Prompt(4, 1);
  short_total->num_prompt_tokens = 4;
  short_total->max_total_tokens = 3;
  EXPECT_THAT(sim.scheduler().Add(std::move(short_total)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_total_tokens is 3")));
  ASSERT_THAT(sim.Add(1, Prompt(4, 1), 4), IsOk());
  EXPECT_THAT(sim.Add(1, Prompt(4, 2), 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sequence id 1")));
  ASSERT_THAT(sim.Add(2, Prompt(4, 2), 4), IsOk());
  EXPECT_THAT(sim.Add(3, Prompt(4, 3), 4),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("queue full: 2 requests waiting (limit 2)")));
  EXPECT_EQ(sim.scheduler().num_waiting(), 2);
  sim.RunToCompletion();
  EXPECT_EQ(sim.finished().size(), 2u);
  sim.ExpectNoLeaks();
}

TEST(SchedulerTest, CreateErrors) {
  auto cache = engine::KvCache::Create(
      {.n_layer = 1, .n_head_kv = 1, .head_dim = 4, .block_size = kBlockSize, .num_blocks = 8});
  ASSERT_TRUE(cache.ok());
  ASSERT_OK_AND_ASSIGN(auto blocks, BlockManager::Create(cache->get()));
  EXPECT_THAT(Scheduler::Create({}, nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  EXPECT_THAT(Scheduler::Create({.max_running = 0, .max_context = 32}, blocks.get()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_running")));
  EXPECT_THAT(Scheduler::Create({.max_waiting = -1, .max_context = 32}, blocks.get()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_waiting")));
  EXPECT_THAT(
      Scheduler::Create({.max_running = 8, .max_step_tokens = 4, .max_context = 32}, blocks.get())
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_step_tokens (4)")));
  EXPECT_THAT(Scheduler::Create({.max_context = 33}, blocks.get()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_context (33) needs 9 KV blocks")));
  EXPECT_THAT(Scheduler::Create({.max_context = 32}, blocks.get()), IsOk());
}

TEST(SchedulerTest, DestructorReleasesHeldSequences) {
  auto cache = engine::KvCache::Create(
      {.n_layer = 1, .n_head_kv = 1, .head_dim = 4, .block_size = kBlockSize, .num_blocks = 16});
  ASSERT_TRUE(cache.ok());
  ASSERT_OK_AND_ASSIGN(auto blocks, BlockManager::Create(cache->get()));
  {
    ASSERT_OK_AND_ASSIGN(auto scheduler,
                         Scheduler::Create({.max_step_tokens = 16, .max_context = 32},
                                           blocks.get()));
    auto seq = std::make_unique<Sequence>();
    seq->id = 1;
    seq->tokens = Prompt(10, 1);
    seq->num_prompt_tokens = 10;
    seq->max_total_tokens = 12;
    ASSERT_THAT(scheduler->Add(std::move(seq)), IsOk());
    scheduler->Schedule();
    EXPECT_GT(blocks->num_used_blocks(), 0);
  }
  EXPECT_EQ(blocks->num_used_blocks(), 0);
}

// Same calls, same plans.
std::vector<StepTrace> TraceWorkload() {
  Sim sim(12, {.max_running = 3, .max_step_tokens = 10, .max_context = 32});
  std::vector<StepTrace> trace;
  for (uint64_t id = 1; id <= 6; ++id) {
    EXPECT_THAT(sim.Add(id, Prompt(3 + static_cast<int>(id * 5 % 11), static_cast<int>(id % 3)),
                        6 + static_cast<int>(id % 4)),
                IsOk());
  }
  while (sim.scheduler().HasWork() && sim.steps() < 1000) trace.push_back(sim.Step());
  return trace;
}

TEST(SchedulerTest, Deterministic) {
  const auto a = TraceWorkload();
  const auto b = TraceWorkload();
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b);
}

// Random arrivals, lengths, shared prefixes and aborts on a tight pool; the
// events drained every step must mirror the cached set exactly.
TEST(SchedulerTest, RandomWorkloadKeepsInvariantsAndEventMirror) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    Sim sim(20, {.max_running = 4, .max_waiting = 8, .max_step_tokens = 12, .max_context = 48});
    std::set<uint64_t> mirror;
    uint64_t last_event = 0;
    std::map<uint64_t, std::pair<std::vector<int32_t>, int>> submitted;
    std::set<uint64_t> aborted;
    uint64_t next_id = 1;
    for (int step = 0; step < 600; ++step) {
      if (rng() % 3 == 0) {
        // Prompts from 4 families: common prefixes of random depth.
        const int family = static_cast<int>(rng() % 4);
        const int len = 1 + static_cast<int>(rng() % 30);
        const int max_new = 1 + static_cast<int>(rng() % 16);
        auto prompt = Prompt(len, family);
        absl::Status s = sim.Add(next_id, prompt, max_new);
        if (s.ok()) {
          submitted[next_id] = {prompt, max_new};
        } else {
          EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted, _));
        }
        ++next_id;
      }
      if (rng() % 20 == 0 && next_id > 1) {
        const uint64_t victim = 1 + rng() % (next_id - 1);
        if (sim.scheduler().Remove(victim) != nullptr) aborted.insert(victim);
      }
      if (sim.scheduler().HasWork()) sim.Step();
      if (::testing::Test::HasFatalFailure()) return;
      for (const KvEvent& e : sim.blocks().TakeEvents()) {
        ASSERT_EQ(e.sequence_number, ++last_event);
        if (e.kind == KvEvent::Kind::kStored) {
          for (uint64_t h : e.block_hashes) ASSERT_TRUE(mirror.insert(h).second);
        } else if (e.kind == KvEvent::Kind::kRemoved) {
          for (uint64_t h : e.block_hashes) ASSERT_EQ(mirror.erase(h), 1u);
        } else {
          mirror.clear();
        }
      }
      if (step % 50 == 0) sim.blocks().ClearCache();
      auto snap = sim.blocks().TakeSnapshot();
      if (snap.last_sequence_number == last_event) {
        ASSERT_EQ(std::set<uint64_t>(snap.hashes.begin(), snap.hashes.end()), mirror);
      }
    }
    sim.RunToCompletion();
    for (const auto& [id, req] : submitted) {
      if (aborted.count(id)) continue;
      ASSERT_TRUE(sim.finished().count(id)) << "request " << id;
      EXPECT_EQ(sim.finished().at(id).tokens, Expected(req.first, req.second)) << "request " << id;
    }
    EXPECT_GT(sim.blocks().stats().prefix_hit_tokens, 0u);
    sim.ExpectNoLeaks();
  }
}

}  // namespace
}  // namespace wf::service
