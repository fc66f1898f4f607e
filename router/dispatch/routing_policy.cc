#include "router/dispatch/routing_policy.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/string_view_compat.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace wf::router {
namespace {

// Seed for hashing session keys, distinct from the KV root seed so a session
// key never collides with a block hash by construction.
constexpr uint64_t kSessionSeed = 0x5e55'10c0'ffee'0001ULL;

uint64_t HashSessionKey(std::string_view key) { return XXH3_64bits_withSeed(key.data(), key.size(), kSessionSeed); }

uint64_t RequestKey(const RoutingRequest& request) {
  if (!request.block_hashes.empty()) return request.block_hashes.front();
  if (!request.session_key.empty()) return HashSessionKey(request.session_key);
  return 0;
}

int Load(const WorkerView& w) { return std::max(0, w.running) + std::max(0, w.waiting) + std::max(0, w.pending); }

double Utilization(const WorkerView& w) { return static_cast<double>(Load(w)) / std::max(1, w.max_running); }

// A scored candidate; larger is better in every field, compared in order.
// The id comparison only matters for a 64-bit hash collision.
struct Candidate {
  size_t index;
  double primary;
  double secondary;
  uint64_t tie;
};

size_t PickBest(const std::vector<Candidate>& candidates, absl::Span<const WorkerView> workers) {
  const Candidate* best = &candidates.front();
  for (const Candidate& c : candidates) {
    if (c.primary != best->primary) {
      if (c.primary > best->primary) best = &c;
    } else if (c.secondary != best->secondary) {
      if (c.secondary > best->secondary) best = &c;
    } else if (c.tie != best->tie) {
      if (c.tie > best->tie) best = &c;
    } else if (workers[c.index].id < workers[best->index].id) {
      best = &c;
    }
  }
  return best->index;
}

size_t LeastLoaded(const std::vector<size_t>& eligible, absl::Span<const WorkerView> workers, uint64_t key) {
  std::vector<Candidate> c;
  c.reserve(eligible.size());
  for (size_t i : eligible) {
    c.push_back({i, -Utilization(workers[i]), -static_cast<double>(Load(workers[i])), WorkerKeyHash(key, workers[i].id)});
  }
  return PickBest(c, workers);
}

bool Imbalanced(const RoutingOptions& o, const std::vector<size_t>& eligible, absl::Span<const WorkerView> workers) {
  if (!o.enable_imbalance_guard || eligible.size() < 2) return false;
  int min_load = Load(workers[eligible.front()]);
  int max_load = min_load;
  for (size_t i : eligible) {
    min_load = std::min(min_load, Load(workers[i]));
    max_load = std::max(max_load, Load(workers[i]));
  }
  return max_load - min_load > o.balance_abs_threshold &&
         static_cast<double>(max_load) > o.balance_rel_threshold * static_cast<double>(min_load);
}

int ClampedMatch(const WorkerView& w, size_t total) {
  return std::clamp(w.matched_blocks, 0, static_cast<int>(total));
}

size_t KvAffinity(const RoutingOptions& o, const std::vector<size_t>& eligible, absl::Span<const WorkerView> workers,
                  size_t total_blocks, uint64_t key) {
  std::vector<Candidate> c;
  c.reserve(eligible.size());
  if (o.scoring == RoutingOptions::Scoring::kCost) {
    const double request_blocks = static_cast<double>(std::max<size_t>(1, total_blocks));
    for (size_t i : eligible) {
      const WorkerView& w = workers[i];
      const double prefill = static_cast<double>(total_blocks) - ClampedMatch(w, total_blocks);
      const double busy = std::max(0, w.kv_used) +
                          static_cast<double>(std::max(0, w.waiting) + std::max(0, w.pending)) * request_blocks;
      c.push_back({i, -(o.overlap_weight * prefill + busy), -Utilization(w), WorkerKeyHash(key, w.id)});
    }
    return PickBest(c, workers);
  }
  double min_u = Utilization(workers[eligible.front()]);
  double max_u = min_u;
  for (size_t i : eligible) {
    min_u = std::min(min_u, Utilization(workers[i]));
    max_u = std::max(max_u, Utilization(workers[i]));
  }
  for (size_t i : eligible) {
    const WorkerView& w = workers[i];
    const double prefix =
        total_blocks == 0 ? 0.0 : static_cast<double>(ClampedMatch(w, total_blocks)) / static_cast<double>(total_blocks);
    const double queue = max_u == min_u ? 1.0 : (max_u - Utilization(w)) / (max_u - min_u);
    const double kv = w.kv_total > 0
                          ? 1.0 - std::clamp(static_cast<double>(w.kv_used) / static_cast<double>(w.kv_total), 0.0, 1.0)
                          : 1.0;
    const double score = o.prefix_weight * prefix + o.queue_weight * queue + o.kv_weight * kv;
    c.push_back({i, score, -Utilization(w), WorkerKeyHash(key, w.id)});
  }
  return PickBest(c, workers);
}

}  // namespace

uint64_t WorkerKeyHash(uint64_t key, std::string_view worker_id) {
  return XXH3_64bits_withSeed(worker_id.data(), worker_id.size(), key);
}

std::string_view PolicyKindName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kKvAffinity:
      return "kv_affinity";
    case PolicyKind::kLeastLoad:
      return "least_load";
    case PolicyKind::kRoundRobin:
      return "round_robin";
    case PolicyKind::kConsistentHash:
      return "consistent_hash";
  }
  return "unknown";
}

absl::StatusOr<PolicyKind> ParsePolicyKind(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(Av(name));
  for (PolicyKind k : {PolicyKind::kKvAffinity, PolicyKind::kLeastLoad, PolicyKind::kRoundRobin,
                       PolicyKind::kConsistentHash}) {
    if (lower == PolicyKindName(k)) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown routing policy '", Av(name),
                                                 "'; known: kv_affinity, least_load, round_robin, consistent_hash"));
}

absl::StatusOr<std::unique_ptr<RoutingPolicy>> RoutingPolicy::Create(const RoutingOptions& options) {
  auto check_weight = [](const char* name, double v) -> absl::Status {
    if (!(v >= 0.0) || v > 1e6) {
      return absl::InvalidArgumentError(absl::StrCat("routing option ", name, " must be in [0, 1e6], got ", v));
    }
    return absl::OkStatus();
  };
  for (auto [name, v] : {std::pair<const char*, double>{"prefix_weight", options.prefix_weight},
                         {"queue_weight", options.queue_weight},
                         {"kv_weight", options.kv_weight},
                         {"overlap_weight", options.overlap_weight}}) {
    if (absl::Status s = check_weight(name, v); !s.ok()) return s;
  }
  if (options.balance_abs_threshold < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("routing option balance_abs_threshold must be >= 0, got ", options.balance_abs_threshold));
  }
  if (!(options.balance_rel_threshold >= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("routing option balance_rel_threshold must be >= 1, got ", options.balance_rel_threshold));
  }
  return std::unique_ptr<RoutingPolicy>(new RoutingPolicy(options));
}

absl::StatusOr<RoutingDecision> RoutingPolicy::Choose(const RoutingRequest& request,
                                                      absl::Span<const WorkerView> workers) {
  std::vector<size_t> eligible;
  eligible.reserve(workers.size());
  for (size_t i = 0; i < workers.size(); ++i) {
    if (workers[i].healthy) eligible.push_back(i);
  }
  if (eligible.empty()) {
    return absl::UnavailableError(absl::StrCat("no healthy worker to route to (", workers.size(),
                                               " known, none healthy)"));
  }
  const size_t total_blocks = request.block_hashes.size();
  const uint64_t key = RequestKey(request);
  RoutingDecision d;
  PolicyKind policy = options_.policy;
  if (policy == PolicyKind::kConsistentHash && request.session_key.empty()) policy = PolicyKind::kKvAffinity;
  switch (policy) {
    case PolicyKind::kLeastLoad:
      d.index = LeastLoaded(eligible, workers, key);
      d.reason = "least_load";
      break;
    case PolicyKind::kRoundRobin: {
      std::sort(eligible.begin(), eligible.end(),
                [&](size_t a, size_t b) { return workers[a].id < workers[b].id; });
      const uint64_t n = round_robin_next_.fetch_add(1, std::memory_order_relaxed);
      d.index = eligible[n % eligible.size()];
      d.reason = "round_robin";
      break;
    }
    case PolicyKind::kConsistentHash: {
      const uint64_t session = HashSessionKey(request.session_key);
      std::vector<Candidate> c;
      c.reserve(eligible.size());
      for (size_t i : eligible) c.push_back({i, 0.0, 0.0, WorkerKeyHash(session, workers[i].id)});
      d.index = PickBest(c, workers);
      d.reason = "consistent_hash";
      break;
    }
    case PolicyKind::kKvAffinity:
      if (Imbalanced(options_, eligible, workers)) {
        d.index = LeastLoaded(eligible, workers, key);
        d.reason = "imbalance_guard";
      } else {
        d.index = KvAffinity(options_, eligible, workers, total_blocks, key);
        d.reason = workers[d.index].matched_blocks > 0 ? "kv_affinity" : "kv_affinity_no_match";
      }
      break;
  }
  d.worker_id = workers[d.index].id;
  d.predicted_matched_blocks = ClampedMatch(workers[d.index], total_blocks);
  return d;
}

}  // namespace wf::router
