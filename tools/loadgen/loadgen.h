// Load generation against the wrinklefree.v1.Worker gRPC API (a wf_worker,
// or anything serving the same service): N concurrent Generate streams, each
// issuing requests back to back, with the latency and throughput figures of
// every run. wf_loadgen (main.cc) is the command-line front end.
//
// Definitions (every time is measured on the client, steady clock):
//   TTFT        request start -> first response carrying a token.
//   ITL         time between consecutive tokens of one stream. A response
//               carrying k tokens counts them as arriving together: one gap
//               (since the previous token) and k-1 gaps of 0. A request with
//               n tokens contributes n-1 samples.
//   e2e         request start -> end of the call.
//   wall time   first request start -> last request end of the run.
//   generated tok/s = generated tokens received (all requests) / wall time,
//               prefill included, as llama-server figures are measured.
//   req/s       successful requests / wall time.
// Latency distributions use successful requests only.
// A request succeeds when the call ends OK with a final response whose
// finish_reason is STOP or LENGTH. Failures are counted by key: the gRPC
// status code name ("UNAVAILABLE", "DEADLINE_EXCEEDED", ...), or for an OK
// call "FINISH_REASON_ERROR", "FINISH_REASON_ABORT" or "NO_FINAL_RESPONSE".
//
// Threading: calls use gRPC's callback client API, so one process drives
// thousands of streams on gRPC's bounded internal thread pool; Run() blocks
// its caller (which also reports progress) until the run is over. Every call
// has a deadline (connect_timeout_seconds for GetModelInfo,
// request_timeout_seconds for Generate), so nothing waits forever.
//
// Example:
//   LoadgenConfig config;
//   config.target = "127.0.0.1:50051";
//   config.prompt_tokens = 21;
//   config.max_tokens = 128;
//   BN_ASSIGN_OR_RETURN(std::unique_ptr<LoadGenerator> gen, LoadGenerator::Create(config));
//   BN_ASSIGN_OR_RETURN(RunResult run, gen->Run({.concurrency = 4, .requests_per_stream = 8}));
//   RunStats stats = Summarize(run);
//   std::cout << FormatTable(gen->Describe(), {stats});
//
// JSON document (FormatJson), one object:
//   "target", "model": strings; "vocab_size", "max_context": integers;
//   "config": {"prompt_tokens", "prompt_text" (string or null),
//     "shared_prefix_tokens", "max_tokens", "ignore_eos", "temperature",
//     "seed", "requests_per_stream", "duration_seconds", "warmup_requests",
//     "channels", "request_timeout_seconds"};
//   "runs": [ one object per concurrency, in order:
//     "concurrency", "requests_ok", "requests_failed",
//     "failed_by_code": {KEY: count}, "first_error": {KEY: message},
//     "wall_seconds", "generated_tokens", "prompt_tokens",
//     "cached_prompt_tokens", "generated_tokens_per_second",
//     "requests_per_second",
//     "ttft_seconds", "itl_seconds", "e2e_seconds": each
//       {"count", "mean", "min", "p50", "p90", "p99", "max"}, the figures
//       null when count is 0 ]
#ifndef WF_TOOLS_LOADGEN_LOADGEN_H_
#define WF_TOOLS_LOADGEN_LOADGEN_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wf::loadgen {

// ------------------------------------------------------------- Statistics

// The p-th percentile (p in [0, 100]) of `sorted` (ascending), interpolated
// linearly between the closest ranks: rank = p / 100 * (n - 1). 0 if empty.
double Percentile(absl::Span<const double> sorted, double p);

struct Distribution {
  int64_t count = 0;
  // Meaningless (0) when count is 0.
  double mean = 0, min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};
// Sorts `values` in place and summarizes them.
Distribution Summarize(std::vector<double>& values);

// Responses of one request: `tokens` tokens arrived at `seconds` (since the
// start of the run).
struct TokenBatch {
  double seconds = 0;
  int32_t tokens = 0;
};

// What happened to one request. Times are seconds since the run started.
struct RequestRecord {
  int32_t stream = 0;
  bool ok = false;
  std::string failure;  // failure key (see the file comment) when !ok
  std::string error;    // the status or error message when !ok
  double start_seconds = 0;
  double end_seconds = 0;
  std::vector<TokenBatch> batches;  // responses that carried tokens, in order
  // From the final response's usage (0 when it never came).
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;
  std::string finish_reason;  // "STOP", "LENGTH", ... ("" without a final response)

  int64_t TokensReceived() const;
};

struct RunResult {
  int32_t concurrency = 0;
  double wall_seconds = 0;
  std::vector<RequestRecord> requests;  // in completion order
};

struct RunStats {
  int32_t concurrency = 0;
  int64_t requests_ok = 0;
  int64_t requests_failed = 0;
  std::map<std::string, int64_t> failed_by_code;
  std::map<std::string, std::string> first_error;  // one message per failure key
  double wall_seconds = 0;
  int64_t generated_tokens = 0;  // received, all requests
  int64_t prompt_tokens = 0;     // from usage, all requests
  int64_t cached_prompt_tokens = 0;
  double generated_tokens_per_second = 0;
  double requests_per_second = 0;
  Distribution ttft_seconds;
  Distribution itl_seconds;
  Distribution e2e_seconds;
};

// The figures of one run (see the file comment for the definitions).
RunStats Summarize(const RunResult& run);

// ----------------------------------------------------------------- Driver

struct LoadgenConfig {
  std::string target;  // HOST:PORT
  // Prompt: `prompt_text` if non-empty (sent as text, the same for every
  // request), else `prompt_tokens` random token ids sent as token_ids, of
  // which the first `shared_prefix_tokens` are identical in every request.
  std::string prompt_text;
  int64_t prompt_tokens = 21;
  int64_t shared_prefix_tokens = 0;
  int64_t max_tokens = 128;
  bool ignore_eos = true;
  double temperature = 0;
  uint64_t seed = 1;     // prompts and sampling seeds derive from it
  int64_t channels = 1;  // separate connections, streams spread round-robin
  double connect_timeout_seconds = 10;
  double request_timeout_seconds = 600;
};

struct RunSpec {
  int32_t concurrency = 1;
  // Exactly one of these is > 0: requests per stream, or seconds during
  // which streams start new requests (those in flight then still finish).
  int64_t requests_per_stream = 0;
  double duration_seconds = 0;
};

// A snapshot for progress lines.
struct Progress {
  int32_t concurrency = 0;
  double elapsed_seconds = 0;
  int64_t requests_ok = 0;
  int64_t requests_failed = 0;
  int64_t in_flight = 0;
  int64_t generated_tokens = 0;
};

// What the target told us, plus the configuration, for reports.
struct TargetDescription {
  LoadgenConfig config;
  std::string model_name;
  int64_t vocab_size = 0;
  int64_t max_context = 0;
  int64_t requests_per_stream = 0;
  double duration_seconds = 0;
  int64_t warmup_requests = 0;
};

// OK, or INVALID_ARGUMENT naming the first bad setting and its limit:
// target not HOST:PORT; prompt_tokens < 1 (without prompt_text);
// shared_prefix_tokens outside [0, prompt_tokens]; max_tokens < 1;
// temperature outside [0, 2]; channels outside [1, 256]; timeouts <= 0.
absl::Status ValidateConfig(const LoadgenConfig& config);
// OK, or INVALID_ARGUMENT: concurrency outside [1, kMaxConcurrency], or not
// exactly one of requests_per_stream / duration_seconds positive.
absl::Status ValidateRunSpec(const RunSpec& spec);
inline constexpr int32_t kMaxConcurrency = 100000;

// "1,4,8,16" -> {1, 4, 8, 16}. INVALID_ARGUMENT for an empty list, a
// non-integer or a value outside [1, kMaxConcurrency], naming the value.
absl::StatusOr<std::vector<int32_t>> ParseConcurrencyList(const std::string& text);

// One prompt of `length` token ids drawn from `allowed_ids` (non-empty):
// the first `shared_prefix` come from a generator seeded with `seed` alone,
// the rest from one seeded with (seed, request_key), so the prefix is the
// same for every request and the tail differs between keys.
std::vector<int32_t> MakePromptTokens(absl::Span<const int32_t> allowed_ids, int64_t length, int64_t shared_prefix,
                                      uint64_t seed, uint64_t request_key);

class LoadGenerator {
 public:
  // Connects to config.target and asks for its model info (vocabulary size,
  // token types, context limit) within connect_timeout_seconds.
  // Errors: INVALID_ARGUMENT for a bad configuration (naming the setting and
  // the limit, including a prompt + max_tokens beyond the target's context);
  // UNAVAILABLE / DEADLINE_EXCEEDED naming the target when it cannot be
  // reached or does not answer in time.
  static absl::StatusOr<std::unique_ptr<LoadGenerator>> Create(const LoadgenConfig& config);
  ~LoadGenerator();

  // Runs one load and returns every request's record. `progress`, if set, is
  // called on the calling thread about every `progress_interval_seconds`.
  // Failed requests are data (in the records), not an error; errors are
  // INVALID_ARGUMENT for a bad spec. Not reentrant: one Run at a time.
  absl::StatusOr<RunResult> Run(const RunSpec& spec, const std::function<void(const Progress&)>& progress = {},
                                double progress_interval_seconds = 1.0);

  const std::string& model_name() const;
  int64_t vocab_size() const;
  int64_t max_context() const;
  // Token ids random prompts are drawn from (the vocabulary's normal tokens).
  const std::vector<int32_t>& prompt_token_ids() const;
  const LoadgenConfig& config() const;

 private:
  struct Impl;
  explicit LoadGenerator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// --------------------------------------------------------------- Reports

// "OK"... gRPC status code names as in the gRPC documentation, by number.
std::string StatusCodeName(int code);

// A human table: a header line describing the load, one row per run, then
// a line per failure key.
std::string FormatTable(const TargetDescription& target, const std::vector<RunStats>& runs);
// The JSON document described in the file comment, with a trailing newline.
std::string FormatJson(const TargetDescription& target, const std::vector<RunStats>& runs);
// One progress line (no newline).
std::string FormatProgress(const Progress& progress);

}  // namespace wf::loadgen

#endif  // WF_TOOLS_LOADGEN_LOADGEN_H_
