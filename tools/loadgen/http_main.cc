#include "tools/loadgen/http_main.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/flags.h"
#include "tools/loadgen/http_loadgen.h"

namespace wf::loadgen {
namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "wf_loadgen --http: %s (see wf_loadgen --http --help)\n", message.c_str());
  return 2;
}

// Each open stream is a socket; the usual soft limit (1024) is below a
// 1000-stream run's needs.
void RaiseOpenFileLimit(int64_t wanted) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  if (limit.rlim_cur >= static_cast<rlim_t>(wanted)) return;
  rlim_t target = static_cast<rlim_t>(wanted);
  if (limit.rlim_max != RLIM_INFINITY && target > limit.rlim_max) target = limit.rlim_max;
  limit.rlim_cur = target;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    std::fprintf(stderr, "wf_loadgen: cannot raise the open-file limit to %lld\n", static_cast<long long>(wanted));
  }
}

}  // namespace

bool WantsHttpMode(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--http" || a == "--http=true") return true;
  }
  return false;
}

int HttpMain(int argc, char** argv) {
  HttpLoadgenConfig config;
  bool http = true, json = false, progress = true, hold = false;
  std::string urls, prompt_file;
  std::vector<std::string> prompts;
  int64_t concurrency = 16, requests = 0, seed = -1;
  double duration_seconds = 0, interval_seconds = 0;

  FlagSet flags("wf_loadgen --http --urls http://HOST:PORT[,...] [--concurrency N] [--requests N | --duration-seconds S]");
  flags.Bool("http", &http, "HTTP mode: drive routers' OpenAI-compatible API (without it: a worker's gRPC API)");
  flags.String("urls", &urls, "comma-separated router base URLs; stream s uses URL s mod count (required)");
  flags.Int("concurrency", &concurrency, "client streams, each one request at a time on its own connection", "c");
  flags.Int("requests", &requests, "requests in total, shared by the streams (default: 4 x concurrency)", "n");
  flags.Double("duration-seconds", &duration_seconds,
               "instead of --requests: seconds during which streams start new requests");
  flags.String("endpoint", &config.endpoint, "chat (/v1/chat/completions), completions (/v1/completions) or mix");
  flags.String("model", &config.model, "model name sent; empty = the first of GET /v1/models");
  flags.StringList("prompt", &prompts, "a prompt of the mix (repeat); default: a built-in mix of varied lengths");
  flags.String("prompt-file", &prompt_file, "prompts of the mix, one per line (blank lines skipped)");
  flags.Int("max-tokens", &config.max_tokens, "max_tokens of each request (the minimum with --max-tokens-max)");
  flags.Int("max-tokens-max", &config.max_tokens_max,
            "when above --max-tokens: each request's max_tokens is uniform in [max-tokens, max-tokens-max]");
  flags.Double("stream-fraction", &config.stream_fraction, "share of requests streamed (SSE); the rest are whole");
  flags.Bool("ignore-eos", &config.ignore_eos, "generate through end-of-generation tokens (--no-ignore-eos: stop)");
  flags.Double("temperature", &config.temperature, "sampling temperature; 0 = greedy");
  flags.Int("seed", &seed, "seed of the request mix and sampling seeds; -1 = random (printed)");
  flags.String("api-key", &config.api_key, "sent as Authorization: Bearer KEY (also env WF_API_KEY)");
  flags.Int("io-threads", &config.io_threads, "client network threads");
  flags.Double("connect-timeout-seconds", &config.connect_timeout_seconds, "deadline to connect (per connection)");
  flags.Double("request-timeout-seconds", &config.request_timeout_seconds, "deadline of each request, connect included");
  flags.Double("interval-seconds", &interval_seconds, "also report each interval of this length (by request end); 0 = off");
  flags.Bool("hold-first-event", &hold,
             "hold every stream's first request after its first SSE event until all have one, proving they are open "
             "at once");
  flags.Bool("json", &json, "print one JSON document instead of the table");
  flags.Bool("progress", &progress, "a progress line per second on stderr (--no-progress: none)");
  flags.Footer(
      "Figures: requests ok/failed by HTTP status and failure key, generated tok/s (usage.completion_tokens /\n"
      "wall time), req/s, TTFT (first text event), ITL (between text events), e2e percentiles, peak open\n"
      "requests, error answers with and without Retry-After. Exit status: 0 when every request succeeded,\n"
      "3 when some failed (figures still printed), 1 when the routers cannot be used, 2 on bad usage.");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) return Usage(std::string(s.message()));
  if (flags.help()) {
    std::cout << flags.Help();
    return 0;
  }
  if (urls.empty()) return Usage("--urls is required");
  for (absl::string_view u : absl::StrSplit(urls, ',', absl::SkipWhitespace())) {
    config.urls.emplace_back(absl::StripAsciiWhitespace(u));
  }
  if (concurrency < 1 || concurrency > kMaxConcurrency) {
    return Usage("--concurrency must be in [1, " + std::to_string(kMaxConcurrency) + "]");
  }
  if (flags.WasSet("requests") && flags.WasSet("duration-seconds")) {
    return Usage("give at most one of --requests and --duration-seconds");
  }
  if (flags.WasSet("duration-seconds")) {
    if (!(duration_seconds > 0)) return Usage("--duration-seconds must be > 0");
  } else if (!flags.WasSet("requests")) {
    requests = 4 * concurrency;
  } else if (requests < 1) {
    return Usage("--requests must be >= 1");
  }
  if (interval_seconds < 0) return Usage("--interval-seconds must be >= 0");
  if (!prompt_file.empty()) {
    std::ifstream in(prompt_file);
    if (!in) return Usage("cannot read --prompt-file " + prompt_file);
    for (std::string line; std::getline(in, line);) {
      if (!absl::StripAsciiWhitespace(line).empty()) prompts.push_back(line);
    }
    if (prompts.empty()) return Usage("--prompt-file " + prompt_file + " has no prompt");
  }
  config.prompts = prompts;
  if (config.api_key.empty()) {
    if (const char* key = std::getenv("WF_API_KEY"); key != nullptr) config.api_key = key;
  }
  config.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}() >> 1;
  if (absl::Status s = ValidateHttpConfig(config); !s.ok()) return Usage(std::string(s.message()));
  RaiseOpenFileLimit(concurrency + 64);

  absl::StatusOr<std::unique_ptr<HttpLoadGenerator>> gen = HttpLoadGenerator::Create(config);
  if (!gen.ok()) {
    std::fprintf(stderr, "wf_loadgen: %s\n", std::string(gen.status().message()).c_str());
    return gen.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const auto print_progress = [](const HttpProgress& p) { std::fprintf(stderr, "%s\n", FormatHttpProgress(p).c_str()); };
  HttpRunSpec spec;
  spec.concurrency = static_cast<int32_t>(concurrency);
  spec.requests = duration_seconds > 0 ? 0 : requests;
  spec.duration_seconds = duration_seconds;
  spec.hold_first_event = hold;
  if (hold) {
    spec.on_hold = [](const HoldPoint& h) {
      std::fprintf(stderr, "wf_loadgen: hold at %.2f s: %lld requests open at once\n", h.seconds,
                   static_cast<long long>(h.open_requests));
    };
  }
  std::fprintf(stderr, "wf_loadgen: model %s, seed %llu\n", (*gen)->model().c_str(),
               static_cast<unsigned long long>(config.seed));
  absl::StatusOr<HttpRunResult> run =
      (*gen)->Run(spec, progress ? std::function<void(const HttpProgress&)>(print_progress) : nullptr);
  if (!run.ok()) return Usage(std::string(run.status().message()));
  const HttpRunStats total = SummarizeHttp(*run);
  const std::vector<HttpRunStats> intervals =
      interval_seconds > 0 ? SummarizeHttpIntervals(*run, interval_seconds) : std::vector<HttpRunStats>();
  std::cout << (json ? FormatHttpJson(config, (*gen)->model(), spec.concurrency, total, intervals, run->hold)
                     : FormatHttpTable(config, (*gen)->model(), total, intervals, run->hold));
  std::cout.flush();
  return total.stats.requests_failed == 0 ? 0 : 3;
}

}  // namespace wf::loadgen
