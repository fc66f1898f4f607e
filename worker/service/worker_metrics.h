// Prometheus metrics of the worker, and the HTTP server that exposes them.
//
// Names follow vLLM's (`vllm:` -> `wrinklefree:`), with the same `model_name`
// label, so a vLLM Grafana dashboard ports by replacing the prefix. Every
// metric carries `model_name`; the only other labels are `finished_reason`
// (4 values) and `block_size` / `cache_dtype` on the info gauge, so cardinality is fixed at
// construction and nothing is ever created per request.
//
// Metrics (all prefixed `wrinklefree:`):
//   Gauges
//     num_requests_running            requests in the running batch
//     num_requests_waiting            requests admitted but not yet running
//     kv_cache_usage_perc             used / total KV blocks, 0..1 (vLLM's name; not a percentage)
//     kv_cache_blocks_total           KV blocks in the pool
//     kv_cache_blocks_used            KV blocks held by sequences or the prefix cache
//     cache_config_info{block_size,cache_dtype}  always 1; carries the KV block size and element
//                                     type (f16 or q8; vLLM's label name) as labels
//   Counters
//     prompt_tokens_total             prompt tokens of requests that reached prefill (incl. cached)
//     generation_tokens_total         tokens generated
//     request_success_total{finished_reason="stop|length|abort|error"}
//                                     finished requests by reason (all four pre-created at 0)
//     num_preemptions_total           running requests paused to free KV blocks
//     prefix_cache_queries_total      prompt tokens looked up in the prefix cache
//     prefix_cache_hits_total         of those, tokens found cached (hit rate = hits / queries)
//     iterations_total                engine steps (forward passes) run
//     iteration_busy_seconds_total    wall time spent in engine steps (rate() = utilisation)
//   Histograms (seconds)
//     time_to_first_token_seconds     arrival -> first token                        kTtftBuckets
//     inter_token_latency_seconds     between consecutive tokens of one request      kInterTokenBuckets
//     e2e_request_latency_seconds     arrival -> finish                              kRequestLatencyBuckets
//     request_queue_time_seconds      arrival -> first scheduled (WAITING)            kRequestLatencyBuckets
//     request_prefill_time_seconds    first scheduled -> first token                 kRequestLatencyBuckets
//     request_decode_time_seconds     first token -> finish                          kRequestLatencyBuckets
//     request_inference_time_seconds  first scheduled -> finish (prefill + decode)   kRequestLatencyBuckets
//   Histograms (counts)
//     request_prompt_tokens           prompt length per finished request      1-2-5 up to max_model_len
//     request_generation_tokens       generated tokens per finished request   1-2-5 up to max_model_len
//     request_params_max_tokens       the request's max_tokens                1-2-5 up to max_model_len
//     iteration_tokens_total          tokens computed per engine step         kIterationTokenBuckets
//                                     (vLLM's name: a histogram despite "_total")
//
// Bucket sets are vLLM's. The inter-token and request-latency sets are vLLM's
// with finer buckets prepended (down to 1 ms), because on a CPU worker queue
// times and per-token latencies of small models are often well under vLLM's
// lowest bound (10 ms resp. 300 ms); histogram_quantile() works unchanged.
//
// Threading: every method of WorkerMetrics is thread-safe (prometheus-cpp
// counters and gauges are atomic, histograms lock internally) and does no
// label lookup: each metric is resolved once in Create().
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto metrics, WorkerMetrics::Create("bitnet-2b", 16, 4096));
//   BN_ASSIGN_OR_RETURN(auto server, MetricsServer::Start("0.0.0.0", 9091, {metrics->registry()}));
//   metrics->SetRunning(3);
//   metrics->ObserveTtft(0.042);
//   metrics->RecordFinishedRequest({.reason = FinishReason::kStop, .e2e_seconds = 1.5, ...});
#ifndef WF_WORKER_SERVICE_WORKER_METRICS_H_
#define WF_WORKER_SERVICE_WORKER_METRICS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace wf::service {

// Metric name prefix (vLLM uses "vllm:").
inline constexpr std::string_view kMetricPrefix = "wrinklefree:";

// Why a request ended; the `finished_reason` label value is FinishReasonName().
enum class FinishReason { kStop = 0, kLength = 1, kAbort = 2, kError = 3 };
inline constexpr int kNumFinishReasons = 4;
// "stop", "length", "abort" or "error".
std::string_view FinishReasonName(FinishReason reason);

// Bucket upper bounds (the +Inf bucket is implicit).
extern const std::vector<double> kTtftBuckets;
extern const std::vector<double> kInterTokenBuckets;
extern const std::vector<double> kRequestLatencyBuckets;
extern const std::vector<double> kIterationTokenBuckets;
// 1, 2, 5, 10, 20, 50, ... up to and including max_value (vLLM's token-count
// buckets); {1} if max_value < 1.
std::vector<double> OneTwoFiveBuckets(int64_t max_value);

// Everything measured about one finished request. Times are in seconds; a
// negative time means "not measured" (e.g. prefill/decode of a request
// aborted while waiting) and is not observed.
struct FinishedRequestStats {
  FinishReason reason = FinishReason::kStop;
  double e2e_seconds = -1;
  double queue_seconds = -1;
  double prefill_seconds = -1;
  double decode_seconds = -1;
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  int64_t max_tokens = 0;  // the request's max_tokens; 0 = not observed
};

class WorkerMetrics {
 public:
  // A fresh registry with every metric above. `model_name` is the label value
  // (non-empty), `block_size` the KV block size in tokens (>= 1),
  // `max_model_len` the context length bounding the token-count buckets
  // (0 = 65536). INVALID_ARGUMENT naming the bad argument otherwise.
  static absl::StatusOr<std::unique_ptr<WorkerMetrics>> Create(std::string model_name, int block_size,
                                                               int64_t max_model_len = 0,
                                                               std::string cache_dtype = "f16");

  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // The registry to expose (MetricsServer::Start) or to collect in tests.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  const std::string& model_name() const { return model_name_; }

  // --- Scheduler state (gauges), typically set once per engine step. ---
  void SetRunning(int64_t n) { running_.Set(static_cast<double>(n)); }
  void SetWaiting(int64_t n) { waiting_.Set(static_cast<double>(n)); }
  // Sets kv_cache_blocks_used/_total and kv_cache_usage_perc (0 if total is 0).
  void SetKvCacheBlocks(int64_t used, int64_t total);

  // --- Counters. Negative or zero increments are ignored. ---
  void AddPromptTokens(int64_t n) { AddTo(prompt_tokens_, n); }
  void AddGenerationTokens(int64_t n) { AddTo(generation_tokens_, n); }
  void AddPreemptions(int64_t n = 1) { AddTo(preemptions_, n); }
  // One prefix-cache lookup: `queried_tokens` prompt tokens looked up, of
  // which `hit_tokens` were cached.
  void AddPrefixCacheLookup(int64_t queried_tokens, int64_t hit_tokens) {
    AddTo(prefix_queries_, queried_tokens);
    AddTo(prefix_hits_, hit_tokens);
  }
  // One engine step that computed `num_tokens` positions (prefill + decode)
  // in `seconds` of wall time.
  void RecordIteration(int64_t num_tokens, double seconds);
  // Increments request_success_total{finished_reason} only. Use either this
  // plus the Observe* methods, or RecordFinishedRequest, not both.
  void RequestFinished(FinishReason reason);

  // --- Histograms. Negative values are ignored. ---
  void ObserveTtft(double seconds) { ObserveIfValid(ttft_, seconds); }
  void ObserveInterTokenLatency(double seconds) { ObserveIfValid(itl_, seconds); }
  void ObserveE2eLatency(double seconds) { ObserveIfValid(e2e_, seconds); }
  void ObserveQueueTime(double seconds) { ObserveIfValid(queue_, seconds); }
  void ObservePrefillTime(double seconds) { ObserveIfValid(prefill_, seconds); }
  void ObserveDecodeTime(double seconds) { ObserveIfValid(decode_, seconds); }
  void ObserveInferenceTime(double seconds) { ObserveIfValid(inference_, seconds); }
  // RequestFinished(stats.reason) plus every per-request histogram: e2e,
  // queue, prefill, decode, inference (prefill + decode when both measured),
  // prompt and generation token counts, and max_tokens when > 0.
  void RecordFinishedRequest(const FinishedRequestStats& stats);

 private:
  WorkerMetrics(std::string model_name, int block_size, int64_t max_model_len, const std::string& cache_dtype);
  static void AddTo(prometheus::Counter& c, int64_t n) {
    if (n > 0) c.Increment(static_cast<double>(n));
  }
  static void ObserveIfValid(prometheus::Histogram& h, double v) {
    if (v >= 0) h.Observe(v);
  }

  // Declared first: the handles below are initialised from them.
  const std::string model_name_;
  const std::shared_ptr<prometheus::Registry> registry_;

  // Pre-resolved handles, owned by registry_'s families.
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Gauge& kv_usage_;
  prometheus::Gauge& kv_blocks_total_;
  prometheus::Gauge& kv_blocks_used_;
  prometheus::Gauge& cache_config_info_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& generation_tokens_;
  prometheus::Counter& preemptions_;
  prometheus::Counter& prefix_queries_;
  prometheus::Counter& prefix_hits_;
  prometheus::Counter& iterations_;
  prometheus::Counter& busy_seconds_;
  const std::array<prometheus::Counter*, kNumFinishReasons> finished_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& itl_;
  prometheus::Histogram& e2e_;
  prometheus::Histogram& queue_;
  prometheus::Histogram& prefill_;
  prometheus::Histogram& decode_;
  prometheus::Histogram& inference_;
  prometheus::Histogram& prompt_len_;
  prometheus::Histogram& generation_len_;
  prometheus::Histogram& max_tokens_;
  prometheus::Histogram& iteration_tokens_;
};

// Serves GET /metrics (Prometheus text format) for one or more registries
// over HTTP with prometheus-cpp's embedded server (2 threads). The server
// keeps the registries alive until it is destroyed. Destruction stops it and
// blocks up to ~2 s (the embedded server's accept-poll interval).
class MetricsServer {
 public:
  // Listens on host:port. `host` is an IPv4 address or "localhost"; port 0
  // picks a free port (see port()). INVALID_ARGUMENT for an empty host or a
  // port outside 0..65535; UNAVAILABLE naming host:port if it cannot listen
  // there (port in use, address not local, unsupported address).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& host, int port, std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port actually bound (the chosen one when started with port 0).
  int port() const { return port_; }
  const std::string& host() const { return host_; }

 private:
  MetricsServer() = default;
  std::string host_;
  int port_ = 0;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_WORKER_METRICS_H_
