// The router's overhead on time to first token: the same worker is asked
// directly (worker gRPC Generate) and through a router (router gRPC Generate,
// and HTTP POST /v1/completions with stream=true), one request at a time, the
// three paths interleaved in each iteration (their order rotates), every
// prompt fresh (random token ids, so no path finds it in the prefix cache)
// and max_tokens 1. What the router adds is the router's figures minus the
// direct ones: per percentile, and per iteration (the paired difference,
// which cancels slow phases of a shared host that hit all three paths).
//
// Time to first token, per path, measured by this client:
//   direct gRPC / router gRPC: from starting the call to the first response
//     message that carries tokens;
//   router HTTP: from sending the request on an open keep-alive connection to
//     the first byte of the first SSE chunk's payload ("data: ...").
// A fourth request per iteration, a unary GetModelInfo to the worker (no
// tokenizer), measures one plain gRPC round trip on this host: the least an
// extra hop can cost, to read the router's figures against.
//
// Example:
//   BenchConfig config;
//   config.worker_address = "127.0.0.1:50051";
//   config.router_grpc_address = "127.0.0.1:50061";
//   config.router_http_port = 8080;
//   absl::StatusOr<BenchResult> r = RunBench(config);
//   if (r.ok()) std::cout << FormatText(config, *r);
//
// Threading: RunBench runs on the calling thread (one request in flight).
#ifndef WF_TOOLS_ROUTER_BENCH_ROUTER_BENCH_H_
#define WF_TOOLS_ROUTER_BENCH_ROUTER_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wf::router_bench {

struct BenchConfig {
  std::string worker_address;       // worker gRPC "host:port"
  std::string router_grpc_address;  // router gRPC front "host:port"
  std::string router_http_host = "127.0.0.1";
  int router_http_port = 0;
  int requests = 1000;  // measured iterations (each: one request per path)
  int warmup = 20;      // unmeasured iterations first
  int prompt_tokens = 32;
  uint64_t seed = 1;  // prompts; a new seed gives prompts no worker has cached
  double request_timeout_seconds = 30;
  // Idle time before every request (0: back to back), as sparse traffic has:
  // what a server does after a quiet second shows up here.
  int pause_ms = 0;
  bool progress = true;  // a line on stderr now and then
};

// The measured requests, in result order (kUnaryRoundTrip is the reference).
enum PathIndex { kDirectGrpc = 0, kRouterGrpc = 1, kRouterHttp = 2, kUnaryRoundTrip = 3, kPathCount = 4 };
const char* PathName(int path);  // "worker gRPC direct", ...
const char* PathKey(int path);   // "direct_grpc", "router_grpc", "router_http", "unary_round_trip"

struct BenchResult {
  // Time to first token (for kUnaryRoundTrip: to the answer) in
  // milliseconds, per path, one entry per iteration (index i of every path
  // belongs to iteration i).
  std::vector<double> ttft_ms[kPathCount];
  int vocab_size = 0;
  std::string model;  // the name the router serves
};

// Nearest-rank percentile (q in [0, 1]) of `samples`; 0 for none.
double Percentile(std::vector<double> samples, double q);

struct Summary {
  int count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
};
Summary Summarize(absl::Span<const double> samples);

// a[i] - b[i] for every i (the shorter length).
std::vector<double> PairedDifference(absl::Span<const double> a, absl::Span<const double> b);

// Runs the warm-up and the measured iterations. Errors: UNAVAILABLE or the
// gRPC code when a target cannot be reached or a request fails (names the
// path and the iteration), INVALID_ARGUMENT for a bad config.
absl::StatusOr<BenchResult> RunBench(const BenchConfig& config);

// The report: a row per path, then for each router path the added latency
// at p50/p99 and the paired difference's p50/p99 (milliseconds).
std::string FormatText(const BenchConfig& config, const BenchResult& result);
// The same figures as one JSON document (ends with a newline).
std::string FormatJson(const BenchConfig& config, const BenchResult& result);

}  // namespace wf::router_bench

#endif  // WF_TOOLS_ROUTER_BENCH_ROUTER_BENCH_H_
