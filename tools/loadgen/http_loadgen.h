// Load generation against routers' OpenAI-compatible HTTP API: N concurrent
// client streams, each sending requests back to back over its own keep-alive
// connection (stream s uses urls[s % urls.size()], so streams are spread
// round-robin over the routers), with streamed (SSE) or whole responses, a
// prompt mix, and per-request records from which the figures are computed.
// `wf_loadgen --http` (http_main.cc) is the command-line front end.
//
// Definitions (client side, steady clock; see loadgen.h for the statistics):
//   TTFT   request start (connect included when the connection is new) ->
//          the first SSE event carrying generated text.
//   ITL    time between consecutive SSE events carrying text (the router
//          sends one event per worker response; one may hold several tokens).
//   e2e    request start -> the response fully read.
//   generated tokens: usage.completion_tokens of each response (streams ask
//          for it with stream_options.include_usage), else its text events.
//   open   requests sent whose response has not been fully processed; the
//          run's peak of that count is reported.
// A request succeeds when it is answered 200 and, when streamed, every event
// parses, none is an error event, and "data: [DONE]" ends the stream; whole
// responses must be a JSON object with "choices". Failure keys: "HTTP_<code>"
// (any other status; the Retry-After header and the body are recorded),
// "CONNECT" (connection refused or not established within
// connect_timeout_seconds), "TIMEOUT" (request_timeout_seconds elapsed),
// "IO" (connection closed or reset early, malformed HTTP), "SSE_ERROR" (an
// error event in a 200 stream), "NO_DONE" (the stream ended without [DONE]),
// "BAD_BODY" (a whole response that is not the expected JSON).
//
// Hold (HttpRunSpec::hold_first_event): each stream's first request stops
// being read once its first SSE event is processed; bytes already received
// are kept unprocessed. When every stream's first request has had its first
// event (or has ended), all those requests are open at once by construction:
// `on_hold` is called on Run()'s thread with that count, then reading
// resumes. This proves concurrency without any timing assumption.
//
// Threading: `io_threads` threads run every connection (Boost.Asio, one
// strand per connection); 1000+ streams need no more than one. Run() blocks
// the caller, which reports progress and runs `on_hold`. Every request is
// bounded by request_timeout_seconds.
//
// Example:
//   HttpLoadgenConfig config;
//   config.urls = {"http://127.0.0.1:8080", "http://127.0.0.1:8081"};
//   config.max_tokens = 64;
//   BN_ASSIGN_OR_RETURN(std::unique_ptr<HttpLoadGenerator> gen, HttpLoadGenerator::Create(config));
//   HttpRunSpec spec;
//   spec.concurrency = 100;
//   spec.requests = 1000;
//   BN_ASSIGN_OR_RETURN(HttpRunResult run, gen->Run(spec));
//   HttpRunStats stats = SummarizeHttp(run);
//   std::cout << FormatHttpTable(gen->config(), gen->model(), stats, {});
#ifndef WF_TOOLS_LOADGEN_HTTP_LOADGEN_H_
#define WF_TOOLS_LOADGEN_HTTP_LOADGEN_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/loadgen/loadgen.h"

namespace wf::loadgen {

// ------------------------------------------------------------ SSE parsing

// Splits a text/event-stream body, fed in arbitrary pieces, into the data of
// each event ("data:" lines joined by '\n'). Lines end with LF, CRLF or CR;
// comments and other fields are ignored; an event without data lines yields
// nothing.
class SseSplitter {
 public:
  // Appends the data of every event completed by `bytes` to `events`.
  void Feed(std::string_view bytes, std::vector<std::string>* events);
  // Bytes of an event begun but not yet complete.
  size_t pending_bytes() const { return line_.size() + data_.size(); }

 private:
  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool last_was_cr_ = false;
};

// What one SSE event of a chat or completions stream says.
struct SseEventInfo {
  bool done = false;     // the "[DONE]" sentinel
  bool error = false;    // not JSON, or an object with "error"
  bool has_text = false; // choices[0].delta.content or choices[0].text non-empty
  std::string finish_reason;       // choices[0].finish_reason when a string
  int64_t completion_tokens = -1;  // usage.completion_tokens when present
  std::string error_message;
};
SseEventInfo ParseSseEvent(std::string_view data);

// ---------------------------------------------------------------- Config

struct HttpLoadgenConfig {
  // Router base URLs "http://HOST:PORT" (or "HOST:PORT"); paths are fixed.
  std::vector<std::string> urls;
  // "chat" (/v1/chat/completions), "completions" (/v1/completions) or "mix"
  // (the two alternate by request number).
  std::string endpoint = "chat";
  std::string model;  // empty: the first id of GET /v1/models on urls[0]
  // Prompt texts, used in turn (request k takes prompts[k % size]); empty:
  // DefaultPromptMix().
  std::vector<std::string> prompts;
  int64_t max_tokens = 64;
  // When > max_tokens, each request's max_tokens is drawn uniformly from
  // [max_tokens, max_tokens_max] (seeded).
  int64_t max_tokens_max = 0;
  // Share of requests sent with "stream": true (drawn per request, seeded).
  double stream_fraction = 1.0;
  bool ignore_eos = true;
  double temperature = 0;
  uint64_t seed = 1;
  std::string api_key;  // sent as "Authorization: Bearer KEY" when set
  int64_t io_threads = 1;
  double connect_timeout_seconds = 10;
  double request_timeout_seconds = 600;
};

// Prompts of varied lengths (a few words to a few hundred), the default mix.
const std::vector<std::string>& DefaultPromptMix();

// OK, or INVALID_ARGUMENT naming the first bad setting: no URL or one that is
// not [http://]HOST:PORT[/]; endpoint not chat/completions/mix; an empty
// prompt; max_tokens < 1 or max_tokens_max set below it; stream_fraction
// outside [0, 1]; temperature outside [0, 2]; io_threads outside [1, 64];
// timeouts <= 0.
absl::Status ValidateHttpConfig(const HttpLoadgenConfig& config);

// ------------------------------------------------------------------- Run

// The moment a hold is released (see the file comment).
struct HoldPoint {
  double seconds = 0;          // since the run started
  int64_t open_requests = 0;   // requests open at once at that moment
  int64_t held_streams = 0;    // of those, held after their first event
  int64_t ended_before_hold = 0;  // first requests that ended before their first event
  // Held requests whose whole response had already arrived (unprocessed).
  int64_t held_complete = 0;
};

struct HttpRunSpec {
  int32_t concurrency = 1;
  // Exactly one is > 0: requests in total (shared by the streams), or seconds
  // during which streams start new requests (those in flight then finish).
  int64_t requests = 0;
  double duration_seconds = 0;
  bool hold_first_event = false;
  // Runs on Run()'s thread at the hold, while nothing is read.
  std::function<void(const HoldPoint&)> on_hold;
};

struct HttpRequestRecord {
  // ok, failure, error, start/end, one TokenBatch (tokens = 1) per text
  // event, completion_tokens and prompt tokens from usage, finish_reason.
  RequestRecord base;
  int32_t url_index = 0;
  std::string endpoint;  // "chat" or "completions"
  bool stream = false;
  int status = 0;            // HTTP status; 0 when no response head came
  std::string retry_after;   // the Retry-After header ("" if none)
  std::string content_type;
  std::string error_body;    // non-200 body or error event (first 4 KiB)
  int64_t events = 0;        // SSE events processed
  bool done = false;         // [DONE] seen
};

struct HttpRunResult {
  int32_t concurrency = 0;
  double wall_seconds = 0;
  int64_t peak_open = 0;
  std::optional<HoldPoint> hold;  // set when the run held
  std::vector<HttpRequestRecord> requests;  // in completion order
};

struct HttpProgress {
  double elapsed_seconds = 0;
  int64_t requests_ok = 0;
  int64_t requests_failed = 0;
  int64_t open = 0;
  int64_t text_events = 0;
};

class HttpLoadGenerator {
 public:
  // Resolves every URL and, when config.model is empty, asks urls[0] for
  // GET /v1/models within connect_timeout_seconds.
  // Errors: INVALID_ARGUMENT for a bad configuration; UNAVAILABLE naming the
  // URL when a host does not resolve or the model list cannot be fetched.
  static absl::StatusOr<std::unique_ptr<HttpLoadGenerator>> Create(const HttpLoadgenConfig& config);
  ~HttpLoadGenerator();

  // Runs one load. Failed requests are data; errors are INVALID_ARGUMENT for
  // a bad spec (concurrency outside [1, kMaxConcurrency], not exactly one of
  // requests/duration positive). Not reentrant.
  absl::StatusOr<HttpRunResult> Run(const HttpRunSpec& spec,
                                    const std::function<void(const HttpProgress&)>& progress = {},
                                    double progress_interval_seconds = 1.0);

  const HttpLoadgenConfig& config() const;
  const std::string& model() const;

 private:
  struct Impl;
  explicit HttpLoadGenerator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// --------------------------------------------------------------- Reports

struct HttpRunStats {
  RunStats stats;  // latencies, tok/s, failures by key (see loadgen.h)
  std::map<int, int64_t> by_status;  // HTTP status -> requests (0: none received)
  int64_t peak_open = 0;
  // Non-200 answers, how many lacked Retry-After, and their latency.
  int64_t error_answers = 0;
  int64_t error_answers_without_retry_after = 0;
  Distribution error_answer_seconds;
  int64_t text_events = 0;
  double start_seconds = 0;  // interval bounds (by request end time)
  double end_seconds = 0;
};

HttpRunStats SummarizeHttp(const HttpRunResult& run);
// The run cut by request end time into consecutive intervals of `seconds`
// (the last may be shorter); tok/s and req/s use each interval's length.
std::vector<HttpRunStats> SummarizeHttpIntervals(const HttpRunResult& run, double seconds);

std::string FormatHttpTable(const HttpLoadgenConfig& config, const std::string& model, const HttpRunStats& total,
                            const std::vector<HttpRunStats>& intervals, const std::optional<HoldPoint>& hold);
// One JSON object: "urls", "model", "config" {...}, "total" and "intervals"
// (objects with "start_seconds", "end_seconds", "requests_ok",
// "requests_failed", "by_status", "failed_by_code", "first_error",
// "generated_tokens", "generated_tokens_per_second", "requests_per_second",
// "peak_open", "error_answers", "error_answers_without_retry_after",
// "error_answer_seconds", "ttft_seconds", "itl_seconds", "e2e_seconds"), and
// "hold" (null or the HoldPoint fields). Trailing newline.
std::string FormatHttpJson(const HttpLoadgenConfig& config, const std::string& model, int32_t concurrency,
                           const HttpRunStats& total, const std::vector<HttpRunStats>& intervals,
                           const std::optional<HoldPoint>& hold);
std::string FormatHttpProgress(const HttpProgress& progress);

}  // namespace wf::loadgen

#endif  // WF_TOOLS_LOADGEN_HTTP_LOADGEN_H_
