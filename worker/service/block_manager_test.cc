#include "worker/service/block_manager.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "common/kv/block_hash.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/kv_cache.h"

namespace wf::service {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

constexpr int kBlockSize = 4;

std::unique_ptr<engine::KvCache> MakeCache(int num_blocks) {
  auto cache = engine::KvCache::Create(
      {.n_layer = 2, .n_head_kv = 1, .head_dim = 4, .block_size = kBlockSize,
       .num_blocks = num_blocks});
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::move(cache).value();
}

// Prompt whose full blocks hash to a chain; `seed` makes distinct prompts.
std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = seed * 1000 + i;
  return t;
}

// Fills `kv` as if `n` positions were computed and commits them.
void ComputeAndCommit(BlockManager& m, engine::SequenceKv* kv, const std::vector<uint64_t>& h,
                      int n) {
  ASSERT_THAT(m.Reserve(kv, n), IsOk());
  kv->length = n;
  m.Commit(*kv, h);
}

class BlockManagerTest : public ::testing::Test {
 protected:
  void Init(int num_blocks) {
    cache_ = MakeCache(num_blocks);
    ASSERT_OK_AND_ASSIGN(manager_, BlockManager::Create(cache_.get()));
  }
  void ExpectAccounting() {
    EXPECT_EQ(manager_->num_free_blocks() + manager_->num_used_blocks(),
              manager_->num_total_blocks());
  }

  std::unique_ptr<engine::KvCache> cache_;
  std::unique_ptr<BlockManager> manager_;
};

TEST_F(BlockManagerTest, CreateRejectsNullAndBusyCache) {
  EXPECT_THAT(BlockManager::Create(nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  auto cache = MakeCache(4);
  ASSERT_THAT(cache->AllocateBlock().status(), IsOk());
  EXPECT_THAT(BlockManager::Create(cache.get()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("1 of 4")));
}

TEST_F(BlockManagerTest, ReserveIsAllOrNothing) {
  Init(4);
  engine::SequenceKv a;
  ASSERT_THAT(manager_->Reserve(&a, 9), IsOk());  // 3 blocks
  EXPECT_EQ(a.block_table.size(), 3u);
  EXPECT_EQ(manager_->num_free_blocks(), 1);
  EXPECT_EQ(manager_->num_used_blocks(), 3);
  engine::SequenceKv b;
  EXPECT_THAT(manager_->Reserve(&b, 5),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("need 2 more blocks")));
  EXPECT_TRUE(b.block_table.empty());
  EXPECT_EQ(manager_->num_free_blocks(), 1);
  ASSERT_THAT(manager_->Reserve(&a, 13), IsOk());  // grows into the last block
  ASSERT_THAT(manager_->Reserve(&a, 3), IsOk());   // never shrinks
  EXPECT_EQ(a.block_table.size(), 4u);
  manager_->Release(&a);
  EXPECT_TRUE(a.block_table.empty());
  EXPECT_EQ(a.length, 0);
  EXPECT_EQ(manager_->num_free_blocks(), 4);
  ExpectAccounting();
}

TEST_F(BlockManagerTest, CommitThenAcquireSharesBlocks) {
  Init(8);
  const auto tokens = Prompt(10, 1);  // 2 full blocks
  const auto h = kv::HashFullBlocks(tokens, kBlockSize);
  ASSERT_EQ(h.size(), 2u);
  engine::SequenceKv a;
  ComputeAndCommit(*manager_, &a, h, 10);
  EXPECT_EQ(manager_->num_cached_blocks(), 2);
  EXPECT_EQ(manager_->MatchPrefix(h), 2);

  engine::SequenceKv b;
  EXPECT_EQ(manager_->AcquirePrefix(h, 5, &b), 2);
  EXPECT_EQ(b.length, 8);
  EXPECT_THAT(b.block_table, ElementsAre(a.block_table[0], a.block_table[1]));
  EXPECT_EQ(manager_->ref_count(a.block_table[0]), 2);
  EXPECT_EQ(manager_->ref_count(a.block_table[2]), 1);
  EXPECT_TRUE(manager_->is_cached(a.block_table[1]));
  EXPECT_FALSE(manager_->is_cached(a.block_table[2]));
  EXPECT_EQ(manager_->num_used_blocks(), 3);

  // A non-empty sequence takes nothing.
  EXPECT_EQ(manager_->AcquirePrefix(h, 5, &b), 0);
  EXPECT_EQ(b.block_table.size(), 2u);

  manager_->Release(&a);
  EXPECT_EQ(manager_->num_used_blocks(), 2);  // still held by b
  manager_->Release(&b);
  EXPECT_EQ(manager_->num_used_blocks(), 0);
  EXPECT_EQ(manager_->num_free_blocks(), 8);
  EXPECT_EQ(manager_->num_evictable_blocks(), 2);
  EXPECT_EQ(manager_->num_cached_blocks(), 2);
}

TEST_F(BlockManagerTest, AcquireRespectsMaxBlocksAndCountsStats) {
  Init(8);
  const auto h = kv::HashFullBlocks(Prompt(12, 2), kBlockSize);  // 3 blocks
  engine::SequenceKv a;
  ComputeAndCommit(*manager_, &a, h, 12);
  engine::SequenceKv b;
  EXPECT_EQ(manager_->AcquirePrefix(h, 2, &b), 2);
  EXPECT_EQ(b.length, 8);
  engine::SequenceKv c;
  EXPECT_EQ(manager_->AcquirePrefix(h, 0, &c), 0);
  engine::SequenceKv d;
  EXPECT_EQ(manager_->AcquirePrefix(h, 3, &d, /*record_stats=*/false), 3);
  const auto& s = manager_->stats();
  EXPECT_EQ(s.prefix_queries, 2u);
  EXPECT_EQ(s.prefix_query_tokens, 24u);
  EXPECT_EQ(s.prefix_hit_tokens, 8u);
  // Only the leading run counts: a gap stops the match.
  std::vector<uint64_t> gap = {h[0], 12345, h[2]};
  EXPECT_EQ(manager_->MatchPrefix(gap), 1);
  for (auto* kv : {&a, &b, &c, &d}) manager_->Release(kv);
}

TEST_F(BlockManagerTest, DuplicateComputationStaysPrivate) {
  Init(8);
  const auto h = kv::HashFullBlocks(Prompt(8, 3), kBlockSize);
  engine::SequenceKv a, b;
  ASSERT_THAT(manager_->Reserve(&a, 8), IsOk());
  ASSERT_THAT(manager_->Reserve(&b, 8), IsOk());
  a.length = b.length = 8;
  manager_->Commit(a, h);
  manager_->Commit(b, h);  // same prefix computed concurrently
  EXPECT_EQ(manager_->num_cached_blocks(), 2);
  EXPECT_FALSE(manager_->is_cached(b.block_table[0]));
  auto events = manager_->TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, KvEvent::Kind::kStored);
  EXPECT_THAT(events[0].block_hashes, ElementsAre(h[0], h[1]));
  EXPECT_EQ(events[0].parent_hash, std::nullopt);
  manager_->Release(&b);  // private blocks go straight back
  EXPECT_EQ(manager_->num_free_blocks(), 6);
  EXPECT_EQ(manager_->num_evictable_blocks(), 0);
  manager_->Release(&a);
  EXPECT_EQ(manager_->num_evictable_blocks(), 2);
}

TEST_F(BlockManagerTest, CommitIgnoresPartialBlocksAndRecordsParent) {
  Init(8);
  const auto h = kv::HashFullBlocks(Prompt(16, 4), kBlockSize);  // 4 blocks
  engine::SequenceKv a;
  ASSERT_THAT(manager_->Reserve(&a, 16), IsOk());
  a.length = 6;  // block 1 is only half computed
  manager_->Commit(a, h);
  EXPECT_EQ(manager_->num_cached_blocks(), 1);
  a.length = 16;
  manager_->Commit(a, h);
  manager_->Commit(a, h);  // idempotent
  auto events = manager_->TakeEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].sequence_number, 1u);
  EXPECT_THAT(events[0].block_hashes, ElementsAre(h[0]));
  EXPECT_EQ(events[1].sequence_number, 2u);
  EXPECT_THAT(events[1].block_hashes, ElementsAre(h[1], h[2], h[3]));
  EXPECT_EQ(events[1].parent_hash, h[0]);
  manager_->Release(&a);
}

TEST_F(BlockManagerTest, EvictsLeastRecentlyReleasedTailFirst) {
  Init(6);
  const auto ha = kv::HashFullBlocks(Prompt(8, 5), kBlockSize);
  const auto hb = kv::HashFullBlocks(Prompt(8, 6), kBlockSize);
  engine::SequenceKv a, b;
  ComputeAndCommit(*manager_, &a, ha, 8);
  ComputeAndCommit(*manager_, &b, hb, 8);
  manager_->Release(&a);  // released first: evicted first
  manager_->Release(&b);
  manager_->TakeEvents();
  EXPECT_EQ(manager_->num_free_blocks(), 6);

  engine::SequenceKv c;
  ASSERT_THAT(manager_->Reserve(&c, 12), IsOk());  // 2 free + 1 evicted
  auto events = manager_->TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, KvEvent::Kind::kRemoved);
  // Within a sequence the tail goes first, so the prefix a[0] stays usable.
  EXPECT_THAT(events[0].block_hashes, ElementsAre(ha[1]));
  EXPECT_EQ(manager_->MatchPrefix(ha), 1);
  ASSERT_THAT(manager_->Reserve(&c, 24), IsOk());  // 3 more: a[0], b[1], b[0]
  events = manager_->TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_THAT(events[0].block_hashes, ElementsAre(ha[0], hb[1], hb[0]));
  EXPECT_EQ(manager_->stats().evicted_blocks, 4u);
  EXPECT_EQ(manager_->num_cached_blocks(), 0);
  manager_->Release(&c);
  EXPECT_EQ(manager_->num_free_blocks(), 6);
}

TEST_F(BlockManagerTest, ReacquiringAnEvictableBlockProtectsIt) {
  Init(3);
  const auto ha = kv::HashFullBlocks(Prompt(4, 7), kBlockSize);
  const auto hb = kv::HashFullBlocks(Prompt(4, 8), kBlockSize);
  engine::SequenceKv a, b;
  ComputeAndCommit(*manager_, &a, ha, 4);
  ComputeAndCommit(*manager_, &b, hb, 4);
  manager_->Release(&a);
  manager_->Release(&b);
  engine::SequenceKv a2;
  EXPECT_EQ(manager_->AcquirePrefix(ha, 1, &a2), 1);  // a is no longer evictable
  EXPECT_EQ(manager_->num_free_blocks(), 2);
  engine::SequenceKv c;
  ASSERT_THAT(manager_->Reserve(&c, 8), IsOk());
  EXPECT_EQ(manager_->MatchPrefix(ha), 1);
  EXPECT_EQ(manager_->MatchPrefix(hb), 0);
  EXPECT_THAT(manager_->Reserve(&c, 12), StatusIs(absl::StatusCode::kResourceExhausted, _));
  manager_->Release(&a2);
  manager_->Release(&c);
}

TEST_F(BlockManagerTest, CanAcquireAndReserveCountsRevivedBlocks) {
  Init(3);
  const auto h = kv::HashFullBlocks(Prompt(8, 9), kBlockSize);
  engine::SequenceKv a;
  ComputeAndCommit(*manager_, &a, h, 8);
  manager_->Release(&a);  // 2 evictable + 1 free
  // Taking both cached blocks leaves one block for new positions.
  EXPECT_TRUE(manager_->CanAcquireAndReserve(h, 2, 12));
  EXPECT_FALSE(manager_->CanAcquireAndReserve(h, 2, 13));
  EXPECT_TRUE(manager_->CanAcquireAndReserve({}, 2, 12));
  EXPECT_FALSE(manager_->CanAcquireAndReserve({}, 2, 13));
  engine::SequenceKv b;
  EXPECT_EQ(manager_->AcquirePrefix(h, 2, &b), 2);
  EXPECT_THAT(manager_->Reserve(&b, 12), IsOk());
  EXPECT_EQ(manager_->ReservablePositions(b), 12);
  manager_->Release(&b);
}

TEST_F(BlockManagerTest, ClearCacheEvents) {
  Init(8);
  const auto ha = kv::HashFullBlocks(Prompt(8, 10), kBlockSize);
  const auto hb = kv::HashFullBlocks(Prompt(4, 11), kBlockSize);
  engine::SequenceKv a, b;
  ComputeAndCommit(*manager_, &a, ha, 8);
  ComputeAndCommit(*manager_, &b, hb, 4);
  manager_->Release(&a);
  manager_->TakeEvents();
  manager_->ClearCache();  // b still holds its block
  auto events = manager_->TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, KvEvent::Kind::kRemoved);
  EXPECT_THAT(events[0].block_hashes, ElementsAre(ha[1], ha[0]));
  EXPECT_EQ(manager_->num_cached_blocks(), 1);
  manager_->ClearCache();  // nothing evictable: no event
  EXPECT_THAT(manager_->TakeEvents(), IsEmpty());
  manager_->Release(&b);
  manager_->ClearCache();
  events = manager_->TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, KvEvent::Kind::kAllCleared);
  EXPECT_EQ(events[0].sequence_number, 4u);
  EXPECT_EQ(manager_->num_cached_blocks(), 0);
  EXPECT_EQ(manager_->num_free_blocks(), 8);
  EXPECT_EQ(cache_->num_free_blocks(), 8);
  EXPECT_EQ(manager_->stats().cleared_blocks, 3u);
}

TEST_F(BlockManagerTest, DestructorReturnsEvictableBlocks) {
  Init(4);
  const auto h = kv::HashFullBlocks(Prompt(8, 12), kBlockSize);
  engine::SequenceKv a;
  ComputeAndCommit(*manager_, &a, h, 8);
  manager_->Release(&a);
  EXPECT_EQ(cache_->num_free_blocks(), 2);
  manager_.reset();
  EXPECT_EQ(cache_->num_free_blocks(), 4);
}

// Applies events to a hash set the way a router mirror would.
void Apply(const std::vector<KvEvent>& events, uint64_t after, std::set<uint64_t>* set) {
  for (const KvEvent& e : events) {
    if (e.sequence_number <= after) continue;
    switch (e.kind) {
      case KvEvent::Kind::kStored:
        for (uint64_t h : e.block_hashes) EXPECT_TRUE(set->insert(h).second) << "stored twice";
        break;
      case KvEvent::Kind::kRemoved:
        for (uint64_t h : e.block_hashes) EXPECT_EQ(set->erase(h), 1u) << "removed unknown";
        break;
      case KvEvent::Kind::kAllCleared:
        set->clear();
        break;
    }
  }
}

TEST_F(BlockManagerTest, SnapshotPlusEventsReproduceCachedSet) {
  Init(24);
  std::mt19937 rng(20240611);
  std::vector<engine::SequenceKv> live;
  std::vector<KvEvent> all;  // every event since the start
  std::set<uint64_t> mirror_from_start;
  std::set<uint64_t> mirror_from_snapshot;
  uint64_t snapshot_at = 0;
  bool have_snapshot = false;
  uint64_t expected_seq = 1;
  for (int step = 0; step < 2000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      // A request: one of 6 prompt families with a random length, so
      // prefixes are shared at various depths.
      const int family = static_cast<int>(rng() % 6);
      const int len = 1 + static_cast<int>(rng() % 24);
      const auto tokens = Prompt(len, family);
      const auto h = kv::HashFullBlocks(tokens, kBlockSize);
      engine::SequenceKv kv;
      manager_->AcquirePrefix(h, (len - 1) / kBlockSize, &kv);
      if (!manager_->Reserve(&kv, len).ok()) {
        manager_->Release(&kv);
        continue;
      }
      kv.length = len;
      manager_->Commit(kv, h);
      live.push_back(std::move(kv));
    } else if (op < 9 && !live.empty()) {
      const size_t i = rng() % live.size();
      manager_->Release(&live[i]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (op == 9 && rng() % 4 == 0) {
      manager_->ClearCache();
    }
    ExpectAccounting();
    if (step == 700) {
      // A mirror joins late: snapshot first, then only newer events.
      auto snap = manager_->TakeSnapshot();
      snapshot_at = snap.last_sequence_number;
      mirror_from_snapshot.insert(snap.hashes.begin(), snap.hashes.end());
      have_snapshot = true;
    }
    for (KvEvent& e : manager_->TakeEvents()) {
      EXPECT_EQ(e.sequence_number, expected_seq++);
      all.push_back(std::move(e));
    }
  }
  ASSERT_TRUE(have_snapshot);
  EXPECT_GT(manager_->stats().evicted_blocks, 0u);
  Apply(all, 0, &mirror_from_start);
  Apply(all, snapshot_at, &mirror_from_snapshot);
  const auto final_snapshot = manager_->TakeSnapshot();
  EXPECT_EQ(final_snapshot.last_sequence_number, expected_seq - 1);
  const std::set<uint64_t> truth(final_snapshot.hashes.begin(), final_snapshot.hashes.end());
  EXPECT_EQ(truth.size(), static_cast<size_t>(manager_->num_cached_blocks()));
  EXPECT_EQ(mirror_from_start, truth);
  EXPECT_EQ(mirror_from_snapshot, truth);

  for (auto& kv : live) manager_->Release(&kv);
  manager_->ClearCache();
  EXPECT_EQ(manager_->num_cached_blocks(), 0);
  EXPECT_EQ(cache_->num_free_blocks(), 24);
}

}  // namespace
}  // namespace wf::service
