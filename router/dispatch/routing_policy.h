// Routing policies: which worker gets a request. Pure scoring over a snapshot
// of the workers (no I/O, no clocks, no random state), so that any number of
// routers given the same worker views and the same request stream make the
// same choices.
//
// Inputs: the request's chained KV block hashes (kv::HashFullBlocks over the
// rendered prompt ids with the workers' block size), an optional session key,
// and one WorkerView per known worker (WorkerPool::Views fills them).
//
// Policies:
//   kv_affinity (default) - weighted score, highest wins:
//       score = prefix_weight * matched_blocks / request_blocks
//             + queue_weight  * (max_u - u) / (max_u - min_u)   (1 if all equal)
//             + kv_weight     * (1 - kv_used / kv_total)
//     where u = (running + waiting + pending) / max(1, max_running) is the
//     worker's utilisation and min/max run over the eligible workers. The
//     default weights 2/1/1 follow llm-d's precise-prefix configuration.
//     With `scoring = kCost` the Dynamo-style cost is minimised instead:
//       cost = overlap_weight * (request_blocks - matched_blocks)
//            + kv_used + (waiting + pending) * max(1, request_blocks)
//     i.e. blocks to prefill here plus blocks already busy or about to be.
//     Imbalance guard (SGLang cache_aware): with load = running + waiting +
//     pending, if max_load - min_load > balance_abs_threshold AND max_load >
//     balance_rel_threshold * min_load over the eligible workers, the request
//     goes to the least-loaded worker instead (reason "imbalance_guard").
//   least_load - lowest utilisation u, then lowest raw load.
//   round_robin - the eligible workers in id order, one after another (the
//     only policy with state: a counter advanced once per Choose call).
//   consistent_hash - rendezvous (highest random weight) hashing of the
//     session key over the eligible worker ids: adding or removing a worker
//     moves only the keys that hash to it. Without a session key the request
//     is routed by kv_affinity.
//
// Eligibility: only views with healthy == true are ever chosen (the pool
// folds stream health, staleness, draining, model mismatch and an open
// circuit breaker into `healthy`). None eligible -> UNAVAILABLE.
//
// Ties: broken by a 64-bit hash of (request key, worker id), where the request
// key is the first block hash, else the session key, else 0; never by input
// order or map order.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto policy, RoutingPolicy::Create({}));  // kv_affinity
//   std::vector<uint64_t> hashes = kv::HashFullBlocks(prompt_ids, block_size);
//   std::vector<WorkerView> views = pool->Views(hashes);
//   BN_ASSIGN_OR_RETURN(RoutingDecision d, policy->Choose({.block_hashes = hashes}, views));
//   // views[d.index].id == d.worker_id; d.reason == "kv_affinity", ...
//
// Thread-safety: Choose() may be called from many threads at once.
#ifndef WF_ROUTER_DISPATCH_ROUTING_POLICY_H_
#define WF_ROUTER_DISPATCH_ROUTING_POLICY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wf::router {

// What the router knows about one worker when it routes one request.
struct WorkerView {
  std::string id;        // Stable identity (the worker's "host:port").
  bool healthy = false;  // Eligible for new requests.
  int matched_blocks = 0;  // Longest prefix of the request's hashes cached there.
  int running = 0;
  int waiting = 0;
  int max_running = 0;
  int kv_used = 0;   // KV blocks referenced by running sequences.
  int kv_total = 0;  // KV pool size in blocks.
  int pending = 0;   // Dispatched by this router, not yet in the worker's reports.
};

enum class PolicyKind { kKvAffinity, kLeastLoad, kRoundRobin, kConsistentHash };

// "kv_affinity", "least_load", "round_robin", "consistent_hash".
std::string_view PolicyKindName(PolicyKind kind);
// Inverse of PolicyKindName; InvalidArgument listing the known names.
absl::StatusOr<PolicyKind> ParsePolicyKind(std::string_view name);

struct RoutingOptions {
  PolicyKind policy = PolicyKind::kKvAffinity;

  // kv_affinity scoring.
  enum class Scoring { kWeighted, kCost };
  Scoring scoring = Scoring::kWeighted;
  double prefix_weight = 2.0;  // >= 0
  double queue_weight = 1.0;   // >= 0
  double kv_weight = 1.0;      // >= 0
  double overlap_weight = 1.0;  // kCost only, >= 0 (0 = pure load balance).

  // Imbalance guard (kv_affinity and consistent_hash without key). CPU
  // workers run few sequences at once, hence a lower absolute threshold than
  // SGLang's GPU default of 64. Set enable_imbalance_guard = false to turn off.
  bool enable_imbalance_guard = true;
  int balance_abs_threshold = 8;        // >= 0, in requests
  double balance_rel_threshold = 1.5;   // >= 1
};

struct RoutingRequest {
  absl::Span<const uint64_t> block_hashes;
  std::string_view session_key;  // Empty: none.
};

struct RoutingDecision {
  size_t index = 0;       // Into the views passed to Choose().
  std::string worker_id;
  // "kv_affinity" (a prefix match decided or helped), "kv_affinity_no_match"
  // (no eligible worker holds any block), "imbalance_guard", "least_load",
  // "round_robin", "consistent_hash". Static strings.
  std::string_view reason;
  int predicted_matched_blocks = 0;  // The chosen worker's matched_blocks.
};

class RoutingPolicy {
 public:
  // InvalidArgument naming the option for negative weights or thresholds
  // out of range.
  static absl::StatusOr<std::unique_ptr<RoutingPolicy>> Create(const RoutingOptions& options);

  // Picks one of `workers`. UNAVAILABLE if none is healthy (the message says
  // how many workers are known).
  absl::StatusOr<RoutingDecision> Choose(const RoutingRequest& request, absl::Span<const WorkerView> workers);

  const RoutingOptions& options() const { return options_; }

 private:
  explicit RoutingPolicy(const RoutingOptions& options) : options_(options) {}

  const RoutingOptions options_;
  std::atomic<uint64_t> round_robin_next_{0};
};

// Tie-break and rendezvous hash of (key, worker id); exposed for tests.
uint64_t WorkerKeyHash(uint64_t key, std::string_view worker_id);

}  // namespace wf::router

#endif  // WF_ROUTER_DISPATCH_ROUTING_POLICY_H_
