#include "worker/service/load_hub.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace wf::service {
namespace {

namespace v1 = wrinklefree::v1;

v1::KvEvent Stored(uint64_t seq, std::vector<uint64_t> hashes) {
  v1::KvEvent e;
  e.set_sequence_number(seq);
  for (uint64_t h : hashes) e.mutable_stored()->add_block_hashes(h);
  return e;
}

v1::KvEvent Removed(uint64_t seq, std::vector<uint64_t> hashes) {
  v1::KvEvent e;
  e.set_sequence_number(seq);
  for (uint64_t h : hashes) e.mutable_removed()->add_block_hashes(h);
  return e;
}

v1::Load LoadWith(int running) {
  v1::Load l;
  l.set_running(running);
  return l;
}

// What a router does: start from the snapshot, apply events, check the gap rule.
struct Mirror {
  absl::flat_hash_set<uint64_t> hashes;
  uint64_t last = 0;
  bool gap = false;
  void Apply(const v1::LoadReport& r) {
    if (r.has_snapshot()) {
      hashes.clear();
      hashes.insert(r.snapshot().block_hashes().begin(), r.snapshot().block_hashes().end());
      last = r.snapshot().last_sequence_number();
    }
    for (const v1::KvEvent& e : r.events()) {
      if (e.sequence_number() != last + 1) gap = true;
      last = e.sequence_number();
      if (e.has_stored()) hashes.insert(e.stored().block_hashes().begin(), e.stored().block_hashes().end());
      if (e.has_removed()) {
        for (uint64_t h : e.removed().block_hashes()) hashes.erase(h);
      }
      if (e.has_all_cleared()) hashes.clear();
    }
  }
  std::vector<uint64_t> Sorted() const {
    std::vector<uint64_t> v(hashes.begin(), hashes.end());
    std::sort(v.begin(), v.end());
    return v;
  }
};

TEST(LoadHubTest, FirstReportIsASnapshotThenEvents) {
  LoadHub hub("inst-1");
  hub.Publish(LoadWith(1), {Stored(1, {10, 11}), Stored(2, {12})});
  LoadHub::Cursor c = hub.Subscribe(true);
  v1::LoadReport r;
  ASSERT_TRUE(hub.NextReport(&c, absl::Milliseconds(100), &r));
  EXPECT_EQ(r.instance_id(), "inst-1");
  ASSERT_TRUE(r.has_snapshot());
  EXPECT_EQ(r.snapshot().last_sequence_number(), 2u);
  EXPECT_EQ(r.snapshot().block_hashes_size(), 3);
  EXPECT_EQ(r.events_size(), 0);
  EXPECT_EQ(r.load().running(), 1);

  hub.Publish(LoadWith(2), {Removed(3, {10})});
  ASSERT_TRUE(hub.NextReport(&c, absl::Seconds(5), &r));
  EXPECT_FALSE(r.has_snapshot());
  ASSERT_EQ(r.events_size(), 1);
  EXPECT_EQ(r.events(0).sequence_number(), 3u);
  EXPECT_EQ(r.load().running(), 2);
}

TEST(LoadHubTest, PeriodicReportWithoutChanges) {
  LoadHub hub("i");
  hub.Publish(LoadWith(0), {});
  LoadHub::Cursor c = hub.Subscribe(false);
  v1::LoadReport r;
  ASSERT_TRUE(hub.NextReport(&c, absl::Milliseconds(20), &r));
  EXPECT_FALSE(r.has_snapshot());  // events off: no snapshot either
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(hub.NextReport(&c, absl::Milliseconds(20), &r));
  EXPECT_GE(absl::Now() - t0, absl::Milliseconds(15));  // waited for the interval, not returned at once
}

TEST(LoadHubTest, LaggingSubscriberGetsAFreshSnapshot) {
  LoadHub hub("i", /*max_retained_events=*/4);
  LoadHub::Cursor c = hub.Subscribe(true);
  v1::LoadReport r;
  ASSERT_TRUE(hub.NextReport(&c, absl::Milliseconds(10), &r));  // empty snapshot
  Mirror m;
  m.Apply(r);
  for (uint64_t s = 1; s <= 10; ++s) hub.Publish(LoadWith(0), {Stored(s, {100 + s})});
  ASSERT_TRUE(hub.NextReport(&c, absl::Milliseconds(10), &r));
  EXPECT_TRUE(r.has_snapshot());
  m.Apply(r);
  EXPECT_FALSE(m.gap);
  EXPECT_EQ(m.Sorted(), hub.CachedHashesForTest());
}

TEST(LoadHubTest, SnapshotPlusEventsReproduceTheCacheUnderConcurrency) {
  LoadHub hub("i", 64);
  std::mt19937_64 rng(7);
  std::vector<uint64_t> present;
  Mirror m;
  std::atomic<uint64_t> seen{0};
  LoadHub::Cursor c = hub.Subscribe(true);
  std::thread reader([&] {
    v1::LoadReport r;
    while (hub.NextReport(&c, absl::Milliseconds(1), &r)) {
      m.Apply(r);
      seen.store(m.last);
    }
  });
  uint64_t seq = 0;
  for (int i = 0; i < 3000; ++i) {
    if (present.empty() || rng() % 3 != 0) {
      const uint64_t h = rng();
      present.push_back(h);
      hub.Publish(LoadWith(i % 5), {Stored(++seq, {h})});
    } else if (rng() % 50 == 0) {
      v1::KvEvent e;
      e.set_sequence_number(++seq);
      e.mutable_all_cleared();
      present.clear();
      hub.Publish(LoadWith(0), {e});
    } else {
      const size_t k = rng() % present.size();
      const uint64_t h = present[k];
      present.erase(present.begin() + static_cast<long>(k));
      hub.Publish(LoadWith(1), {Removed(++seq, {h})});
    }
  }
  // Let the reader catch up, then stop it.
  for (int i = 0; i < 2000 && seen.load() != seq; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  hub.Shutdown();
  reader.join();
  std::sort(present.begin(), present.end());
  EXPECT_FALSE(m.gap);
  EXPECT_EQ(m.last, seq);
  EXPECT_EQ(m.Sorted(), present);
  EXPECT_EQ(hub.CachedHashesForTest(), present);
}

TEST(LoadHubTest, ShutdownWakesWaiters) {
  LoadHub hub("i");
  LoadHub::Cursor c = hub.Subscribe(false);
  v1::LoadReport r;
  ASSERT_TRUE(hub.NextReport(&c, absl::Seconds(100), &r));
  std::thread t([&] { EXPECT_FALSE(hub.NextReport(&c, absl::Seconds(100), &r)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  hub.Shutdown();
  t.join();
}

}  // namespace
}  // namespace wf::service
