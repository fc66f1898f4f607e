#include "worker/service/worker_metrics.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

namespace wf::service {

// vLLM's TTFT set (vllm/v1/metrics/loggers.py).
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
                                          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
// vLLM's time-per-output-token set starts at 10 ms; a small ternary model on a
// fast CPU decodes a token in a few ms, so 1-7.5 ms buckets come first.
const std::vector<double> kInterTokenBuckets = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
                                                0.1,   0.15,   0.2,   0.3,    0.4,  0.5,   0.75, 1.0,
                                                2.5,   5.0,    7.5,   10.0,   20.0, 40.0,  80.0};
// vLLM's request-latency set starts at 300 ms; queue and prefill times on an
// idle worker are milliseconds, so finer buckets come first.
const std::vector<double> kRequestLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  0.2,  0.3,   0.5,   0.8,   1.0,   1.5,    2.0,   2.5,
    5.0,   10.0,   15.0,  20.0, 30.0,  40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const std::vector<double> kIterationTokenBuckets = {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

std::vector<double> OneTwoFiveBuckets(int64_t max_value) {
  std::vector<double> out;
  for (int64_t scale = 1; scale <= max_value; scale *= 10) {
    for (int64_t m : {1, 2, 5}) {
      if (m * scale <= max_value) out.push_back(static_cast<double>(m * scale));
    }
    if (scale > max_value / 10) break;  // next scale would overflow or exceed
  }
  if (out.empty()) out.push_back(1);
  return out;
}

namespace {

constexpr int64_t kDefaultMaxModelLen = 65536;

std::string FullName(std::string_view name) {
  std::string full(kMetricPrefix);
  full.append(name);
  return full;
}

prometheus::Gauge& NewGauge(prometheus::Registry& registry, std::string_view name, const std::string& help,
                            const prometheus::Labels& labels) {
  return prometheus::BuildGauge().Name(FullName(name)).Help(help).Register(registry).Add(labels);
}

prometheus::Counter& NewCounter(prometheus::Registry& registry, std::string_view name, const std::string& help,
                                const prometheus::Labels& labels) {
  return prometheus::BuildCounter().Name(FullName(name)).Help(help).Register(registry).Add(labels);
}

prometheus::Histogram& NewHistogram(prometheus::Registry& registry, std::string_view name, const std::string& help,
                                    const prometheus::Labels& labels, const std::vector<double>& buckets) {
  return prometheus::BuildHistogram().Name(FullName(name)).Help(help).Register(registry).Add(labels, buckets);
}

std::array<prometheus::Counter*, kNumFinishReasons> NewFinishedCounters(prometheus::Registry& registry,
                                                                        const std::string& model_name) {
  auto& family = prometheus::BuildCounter()
                     .Name(FullName("request_success_total"))
                     .Help("Finished requests by finished_reason (stop, length, abort, error).")
                     .Register(registry);
  std::array<prometheus::Counter*, kNumFinishReasons> out{};
  for (int i = 0; i < kNumFinishReasons; ++i) {
    const auto reason = static_cast<FinishReason>(i);
    out[i] = &family.Add({{"model_name", model_name}, {"finished_reason", std::string(FinishReasonName(reason))}});
  }
  return out;
}

}  // namespace

// Families are registered in the initialiser list so the handles can be
// references; only prometheus-cpp's own name checks could throw, and Create()
// catches that.
WorkerMetrics::WorkerMetrics(std::string model_name, int block_size, int64_t max_model_len,
                             const std::string& cache_dtype)
    : model_name_(std::move(model_name)),
      registry_(std::make_shared<prometheus::Registry>()),
      running_(NewGauge(*registry_, "num_requests_running", "Number of requests in the running batch.",
                        {{"model_name", model_name_}})),
      waiting_(NewGauge(*registry_, "num_requests_waiting", "Number of requests waiting to be scheduled.",
                        {{"model_name", model_name_}})),
      kv_usage_(NewGauge(*registry_, "kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
                         {{"model_name", model_name_}})),
      kv_blocks_total_(
          NewGauge(*registry_, "kv_cache_blocks_total", "KV-cache blocks in the pool.", {{"model_name", model_name_}})),
      kv_blocks_used_(
          NewGauge(*registry_, "kv_cache_blocks_used", "KV-cache blocks in use.", {{"model_name", model_name_}})),
      cache_config_info_(NewGauge(*registry_, "cache_config_info", "KV-cache configuration (value is always 1).",
                                  {{"model_name", model_name_},
                                   {"block_size", absl::StrCat(block_size)},
                                   {"cache_dtype", cache_dtype}})),
      prompt_tokens_(NewCounter(*registry_, "prompt_tokens_total", "Number of prefill tokens processed.",
                                {{"model_name", model_name_}})),
      generation_tokens_(NewCounter(*registry_, "generation_tokens_total", "Number of generation tokens processed.",
                                    {{"model_name", model_name_}})),
      preemptions_(NewCounter(*registry_, "num_preemptions_total", "Cumulative number of preemptions.",
                              {{"model_name", model_name_}})),
      prefix_queries_(NewCounter(*registry_, "prefix_cache_queries_total",
                                 "Prefix cache queries, in terms of number of queried tokens.",
                                 {{"model_name", model_name_}})),
      prefix_hits_(NewCounter(*registry_, "prefix_cache_hits_total",
                              "Prefix cache hits, in terms of number of cached tokens.",
                              {{"model_name", model_name_}})),
      iterations_(NewCounter(*registry_, "iterations_total", "Engine steps (forward passes) run.",
                             {{"model_name", model_name_}})),
      busy_seconds_(NewCounter(*registry_, "iteration_busy_seconds_total", "Wall time spent in engine steps.",
                               {{"model_name", model_name_}})),
      finished_(NewFinishedCounters(*registry_, model_name_)),
      ttft_(NewHistogram(*registry_, "time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                         {{"model_name", model_name_}}, kTtftBuckets)),
      itl_(NewHistogram(*registry_, "inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                        {{"model_name", model_name_}}, kInterTokenBuckets)),
      e2e_(NewHistogram(*registry_, "e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                        {{"model_name", model_name_}}, kRequestLatencyBuckets)),
      queue_(NewHistogram(*registry_, "request_queue_time_seconds",
                          "Histogram of time spent in WAITING phase for request.", {{"model_name", model_name_}},
                          kRequestLatencyBuckets)),
      prefill_(NewHistogram(*registry_, "request_prefill_time_seconds",
                            "Histogram of time spent in PREFILL phase for request.", {{"model_name", model_name_}},
                            kRequestLatencyBuckets)),
      decode_(NewHistogram(*registry_, "request_decode_time_seconds",
                           "Histogram of time spent in DECODE phase for request.", {{"model_name", model_name_}},
                           kRequestLatencyBuckets)),
      inference_(NewHistogram(*registry_, "request_inference_time_seconds",
                              "Histogram of time spent in RUNNING phase for request.", {{"model_name", model_name_}},
                              kRequestLatencyBuckets)),
      prompt_len_(NewHistogram(*registry_, "request_prompt_tokens", "Number of prefill tokens per request.",
                               {{"model_name", model_name_}}, OneTwoFiveBuckets(max_model_len))),
      generation_len_(NewHistogram(*registry_, "request_generation_tokens", "Number of generation tokens per request.",
                                   {{"model_name", model_name_}}, OneTwoFiveBuckets(max_model_len))),
      max_tokens_(NewHistogram(*registry_, "request_params_max_tokens",
                               "Histogram of the max_tokens request parameter.", {{"model_name", model_name_}},
                               OneTwoFiveBuckets(max_model_len))),
      iteration_tokens_(NewHistogram(*registry_, "iteration_tokens_total",
                                     "Histogram of number of tokens per engine step.", {{"model_name", model_name_}},
                                     kIterationTokenBuckets)) {
  cache_config_info_.Set(1);
}

absl::StatusOr<std::unique_ptr<WorkerMetrics>> WorkerMetrics::Create(std::string model_name, int block_size,
                                                                     int64_t max_model_len, std::string cache_dtype) {
  if (model_name.empty()) return absl::InvalidArgumentError("metrics model_name must not be empty");
  if (block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("metrics block_size must be >= 1, got ", block_size));
  }
  if (max_model_len < 0) {
    return absl::InvalidArgumentError(absl::StrCat("metrics max_model_len must be >= 0, got ", max_model_len));
  }
  if (max_model_len == 0) max_model_len = kDefaultMaxModelLen;
  try {
    return std::unique_ptr<WorkerMetrics>(new WorkerMetrics(std::move(model_name), block_size, max_model_len, cache_dtype));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot create worker metrics: ", e.what()));
  }
}

void WorkerMetrics::SetKvCacheBlocks(int64_t used, int64_t total) {
  kv_blocks_used_.Set(static_cast<double>(used));
  kv_blocks_total_.Set(static_cast<double>(total));
  kv_usage_.Set(total > 0 ? static_cast<double>(used) / static_cast<double>(total) : 0.0);
}

void WorkerMetrics::RecordIteration(int64_t num_tokens, double seconds) {
  iterations_.Increment();
  if (num_tokens >= 0) iteration_tokens_.Observe(static_cast<double>(num_tokens));
  if (seconds > 0) busy_seconds_.Increment(seconds);
}

void WorkerMetrics::RequestFinished(FinishReason reason) {
  const int i = static_cast<int>(reason);
  finished_[(i >= 0 && i < kNumFinishReasons) ? i : static_cast<int>(FinishReason::kError)]->Increment();
}

void WorkerMetrics::RecordFinishedRequest(const FinishedRequestStats& stats) {
  RequestFinished(stats.reason);
  ObserveE2eLatency(stats.e2e_seconds);
  ObserveQueueTime(stats.queue_seconds);
  ObservePrefillTime(stats.prefill_seconds);
  ObserveDecodeTime(stats.decode_seconds);
  if (stats.prefill_seconds >= 0 && stats.decode_seconds >= 0) {
    ObserveInferenceTime(stats.prefill_seconds + stats.decode_seconds);
  }
  if (stats.prompt_tokens >= 0) prompt_len_.Observe(static_cast<double>(stats.prompt_tokens));
  if (stats.generation_tokens >= 0) generation_len_.Observe(static_cast<double>(stats.generation_tokens));
  if (stats.max_tokens > 0) max_tokens_.Observe(static_cast<double>(stats.max_tokens));
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& host, int port, std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  if (host.empty()) return absl::InvalidArgumentError("metrics host must not be empty");
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics port must be in 0..65535, got ", port));
  }
  for (size_t i = 0; i < collectables.size(); ++i) {
    if (collectables[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("metrics registry #", i, " is null"));
    }
  }
  const std::string address =
      host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  server->host_ = host;
  server->collectables_ = std::move(collectables);
  // The embedded HTTP server reports every start-up failure (bind, bad
  // address) with one generic exception, so all of them map to UNAVAILABLE.
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/2);
    for (const auto& c : server->collectables_) server->exposer_->RegisterCollectable(c);
    const std::vector<int> ports = server->exposer_->GetListeningPorts();
    if (ports.empty()) {
      return absl::UnavailableError(absl::StrCat("metrics server on ", address, " reports no listening port"));
    }
    server->port_ = ports.front();
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, " (port in use or address not local?): ", e.what()));
  }
  return server;
}

MetricsServer::~MetricsServer() = default;

}  // namespace wf::service
