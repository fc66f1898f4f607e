#include "router/dispatch/routing_policy.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::router {
namespace {

using ::wf::testing::StatusIs;

WorkerView W(std::string id, int matched = 0, int running = 0, int waiting = 0, int pending = 0, int kv_used = 0) {
  WorkerView v;
  v.id = std::move(id);
  v.healthy = true;
  v.matched_blocks = matched;
  v.running = running;
  v.waiting = waiting;
  v.max_running = 8;
  v.kv_used = kv_used;
  v.kv_total = 100;
  v.pending = pending;
  return v;
}

WorkerView Sick(WorkerView v) {
  v.healthy = false;
  return v;
}

const std::vector<uint64_t> kFourBlocks = {11, 22, 33, 44};

struct Case {
  std::string name;
  RoutingOptions options;
  std::vector<WorkerView> workers;
  std::string session;
  std::string want_id;
  std::string want_reason;
  int want_matched;
};

RoutingOptions With(PolicyKind kind) {
  RoutingOptions o;
  o.policy = kind;
  return o;
}

RoutingOptions Cost(double overlap) {
  RoutingOptions o;
  o.scoring = RoutingOptions::Scoring::kCost;
  o.overlap_weight = overlap;
  return o;
}

RoutingOptions NoGuard() {
  RoutingOptions o;
  o.enable_imbalance_guard = false;
  return o;
}

TEST(RoutingPolicyTest, Table) {
  const std::vector<Case> cases = {
      {"affinity picks the prefix holder", {}, {W("a"), W("b", 4), W("c", 1)}, "", "b", "kv_affinity", 4},
      {"longer prefix beats shorter", {}, {W("a", 2), W("b", 3)}, "", "b", "kv_affinity", 3},
      {"no match: least loaded", {}, {W("a", 0, 3), W("b", 0, 1)}, "", "b", "kv_affinity_no_match", 0},
      {"prefix worth more than a small queue", {}, {W("a", 4, 5), W("b", 0, 0)}, "", "a", "kv_affinity", 4},
      {"guard: holder overloaded -> least load", {}, {W("a", 4, 8, 12), W("b", 0, 1)}, "", "b", "imbalance_guard", 0},
      {"guard needs the relative ratio too", {}, {W("a", 4, 8, 22), W("b", 0, 8, 12)}, "", "a", "kv_affinity", 4},
      {"guard off: holder keeps it", NoGuard(), {W("a", 4, 8, 12), W("b", 0, 1)}, "", "a", "kv_affinity", 4},
      {"pending counts as load in the guard", {}, {W("a", 4, 0, 0, 20), W("b")}, "", "b", "imbalance_guard", 0},
      {"unhealthy holder never chosen", {}, {Sick(W("a", 4)), W("b")}, "", "b", "kv_affinity_no_match", 0},
      {"kv usage breaks an equal match", {}, {W("a", 2, 0, 0, 0, 90), W("b", 2, 0, 0, 0, 10)}, "", "b", "kv_affinity",
       2},
      {"cost: cached prefix wins", Cost(1.0), {W("a", 4, 0, 0, 0, 2), W("b", 0)}, "", "a", "kv_affinity", 4},
      {"cost: overlap weight 0 is pure load", Cost(0.0), {W("a", 4, 0, 0, 0, 2), W("b", 0)}, "", "b",
       "kv_affinity_no_match", 0},
      {"least_load uses utilisation", With(PolicyKind::kLeastLoad), {W("a", 4, 3), W("b", 0, 2), W("c", 0, 2, 1)}, "",
       "b", "least_load", 0},
      {"least_load counts pending", With(PolicyKind::kLeastLoad), {W("a", 0, 1), W("b", 0, 0, 0, 2)}, "", "a",
       "least_load", 0},
      {"consistent_hash without key -> kv_affinity", With(PolicyKind::kConsistentHash), {W("a"), W("b", 4)}, "", "b",
       "kv_affinity", 4},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create(c.options));
    ASSERT_OK_AND_ASSIGN(RoutingDecision d, policy->Choose({kFourBlocks, c.session}, c.workers));
    EXPECT_EQ(d.worker_id, c.want_id);
    EXPECT_EQ(c.workers[d.index].id, c.want_id);
    EXPECT_EQ(d.reason, c.want_reason);
    EXPECT_EQ(d.predicted_matched_blocks, c.want_matched);
  }
}

TEST(RoutingPolicyTest, NoHealthyWorkerIsUnavailable) {
  for (PolicyKind k : {PolicyKind::kKvAffinity, PolicyKind::kLeastLoad, PolicyKind::kRoundRobin,
                       PolicyKind::kConsistentHash}) {
    ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create(With(k)));
    EXPECT_THAT(policy->Choose({kFourBlocks, "s"}, {}), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
    const std::vector<WorkerView> sick = {Sick(W("a", 4)), Sick(W("b"))};
    EXPECT_THAT(policy->Choose({kFourBlocks, "s"}, sick),
                StatusIs(absl::StatusCode::kUnavailable, ::testing::HasSubstr("2 known, none healthy")));
  }
}

TEST(RoutingPolicyTest, TiesDoNotDependOnInputOrder) {
  ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create({}));
  std::vector<WorkerView> views = {W("w0"), W("w1"), W("w2"), W("w3")};
  for (uint64_t first = 1; first <= 50; ++first) {
    const std::vector<uint64_t> hashes = {first * 7919, 5};
    ASSERT_OK_AND_ASSIGN(RoutingDecision want, policy->Choose({hashes, ""}, views));
    std::vector<WorkerView> shuffled = views;
    std::reverse(shuffled.begin(), shuffled.end());
    std::rotate(shuffled.begin(), shuffled.begin() + static_cast<long>(first % 4), shuffled.end());
    ASSERT_OK_AND_ASSIGN(RoutingDecision got, policy->Choose({hashes, ""}, shuffled));
    EXPECT_EQ(got.worker_id, want.worker_id);
  }
}

TEST(RoutingPolicyTest, TiesSpreadOverWorkers) {
  ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create({}));
  const std::vector<WorkerView> views = {W("w0"), W("w1"), W("w2")};
  std::set<std::string> chosen;
  for (uint64_t first = 1; first <= 60; ++first) {
    const std::vector<uint64_t> hashes = {first};
    ASSERT_OK_AND_ASSIGN(RoutingDecision d, policy->Choose({hashes, ""}, views));
    chosen.insert(d.worker_id);
  }
  EXPECT_EQ(chosen.size(), 3u);
}

TEST(RoutingPolicyTest, RoundRobinCyclesHealthyWorkersInIdOrder) {
  ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create(With(PolicyKind::kRoundRobin)));
  const std::vector<WorkerView> views = {W("c"), Sick(W("b")), W("a", 4)};
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(RoutingDecision d, policy->Choose({kFourBlocks, ""}, views));
    got.push_back(d.worker_id);
    EXPECT_EQ(d.reason, "round_robin");
  }
  EXPECT_THAT(got, ::testing::ElementsAre("a", "c", "a", "c"));
}

TEST(RoutingPolicyTest, ConsistentHashMovesFewKeys) {
  ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create(With(PolicyKind::kConsistentHash)));
  std::vector<WorkerView> four = {W("w0"), W("w1"), W("w2"), W("w3")};
  std::vector<WorkerView> three = {W("w0"), W("w1"), W("w3")};  // w2 removed
  std::vector<WorkerView> five = four;
  five.push_back(W("w4"));
  int moved_on_remove = 0, moved_on_add = 0, on_w2 = 0;
  std::map<std::string, int> per_worker;
  constexpr int kKeys = 2000;
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = absl::StrCat("session-", k);
    ASSERT_OK_AND_ASSIGN(RoutingDecision a, policy->Choose({kFourBlocks, key}, four));
    ASSERT_OK_AND_ASSIGN(RoutingDecision again, policy->Choose({{}, key}, four));
    EXPECT_EQ(a.worker_id, again.worker_id) << "the prompt must not matter, only the key";
    EXPECT_EQ(a.reason, "consistent_hash");
    ASSERT_OK_AND_ASSIGN(RoutingDecision b, policy->Choose({kFourBlocks, key}, three));
    ASSERT_OK_AND_ASSIGN(RoutingDecision c, policy->Choose({kFourBlocks, key}, five));
    ++per_worker[a.worker_id];
    if (a.worker_id == "w2") ++on_w2;
    if (a.worker_id != b.worker_id) {
      ++moved_on_remove;
      EXPECT_EQ(a.worker_id, "w2") << "only keys of the removed worker move";
    }
    if (a.worker_id != c.worker_id) {
      ++moved_on_add;
      EXPECT_EQ(c.worker_id, "w4") << "keys only move to the new worker";
    }
  }
  EXPECT_EQ(moved_on_remove, on_w2);
  // About 1/5 of the keys move to the new worker; far from all of them.
  EXPECT_GT(moved_on_add, kKeys / 10);
  EXPECT_LT(moved_on_add, kKeys * 3 / 10);
  for (const auto& [id, n] : per_worker) EXPECT_GT(n, kKeys / 8) << id;
}

// Two routers given the same worker views and the same request stream choose
// the same worker for every request.
TEST(RoutingPolicyTest, TwoInstancesAgreeOnARandomStream) {
  for (PolicyKind kind : {PolicyKind::kKvAffinity, PolicyKind::kLeastLoad, PolicyKind::kRoundRobin,
                          PolicyKind::kConsistentHash}) {
    SCOPED_TRACE(PolicyKindName(kind));
    RoutingOptions o = With(kind);
    ASSERT_OK_AND_ASSIGN(auto p1, RoutingPolicy::Create(o));
    ASSERT_OK_AND_ASSIGN(auto p2, RoutingPolicy::Create(o));
    std::mt19937_64 rng(1234);
    std::map<std::string, int> chosen;
    for (int i = 0; i < 2000; ++i) {
      const int n = 1 + static_cast<int>(rng() % 5);
      std::vector<WorkerView> views;
      for (int w = 0; w < n; ++w) {
        WorkerView v = W(absl::StrCat("10.0.0.", w, ":50051"), static_cast<int>(rng() % 6),
                         static_cast<int>(rng() % 9), static_cast<int>(rng() % 4), static_cast<int>(rng() % 3),
                         static_cast<int>(rng() % 100));
        v.healthy = rng() % 7 != 0;
        views.push_back(v);
      }
      std::vector<uint64_t> hashes(rng() % 6);
      for (uint64_t& h : hashes) h = rng() % 8;  // few distinct prefixes: many ties
      const std::string session = rng() % 2 ? absl::StrCat("user-", rng() % 10) : "";
      absl::StatusOr<RoutingDecision> d1 = p1->Choose({hashes, session}, views);
      absl::StatusOr<RoutingDecision> d2 = p2->Choose({hashes, session}, views);
      ASSERT_EQ(d1.ok(), d2.ok());
      if (!d1.ok()) continue;
      EXPECT_EQ(d1->worker_id, d2->worker_id) << "request " << i;
      EXPECT_EQ(d1->reason, d2->reason);
      EXPECT_TRUE(views[d1->index].healthy);
      ++chosen[d1->worker_id];
    }
    EXPECT_GE(chosen.size(), 4u);
  }
}

TEST(RoutingPolicyTest, CreateValidatesOptions) {
  RoutingOptions o;
  o.prefix_weight = -1;
  EXPECT_THAT(RoutingPolicy::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("prefix_weight")));
  o = {};
  o.balance_rel_threshold = 0.5;
  EXPECT_THAT(RoutingPolicy::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("balance_rel_threshold")));
  o = {};
  o.balance_abs_threshold = -1;
  EXPECT_THAT(RoutingPolicy::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("balance_abs_threshold")));
}

TEST(RoutingPolicyTest, PolicyNames) {
  for (PolicyKind k : {PolicyKind::kKvAffinity, PolicyKind::kLeastLoad, PolicyKind::kRoundRobin,
                       PolicyKind::kConsistentHash}) {
    ASSERT_OK_AND_ASSIGN(PolicyKind parsed, ParsePolicyKind(PolicyKindName(k)));
    EXPECT_EQ(parsed, k);
  }
  EXPECT_THAT(ParsePolicyKind("random"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("known")));
}

}  // namespace
}  // namespace wf::router
