// wf_router_bench: the router's added latency to first token, against the
// same worker asked directly (see router_bench.h and README.md). Starts one
// wf_worker and one wf_router on 127.0.0.1, or uses running ones.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/testing/test_paths.h"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"
#include "tools/router_bench/router_bench.h"

namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "wf_router_bench: %s (see --help)\n", message.c_str());
  return 2;
}

// An integer flag's allowed range, stated in --help and in the usage error
// from the same numbers. The upper bounds keep the counts within int and the
// run finite.
struct IntRange {
  int64_t min;
  int64_t max;
  std::string Text() const { return absl::StrCat(min, " to ", max); }
  std::string Check(const char* flag, int64_t value) const {
    if (value >= min && value <= max) return "";
    return absl::StrCat("--", flag, " must be in [", min, ", ", max, "]");
  }
};
constexpr IntRange kRequestsRange{1, 10'000'000};
constexpr IntRange kWarmupRange{0, 1'000'000};
constexpr IntRange kPromptTokensRange{1, 1'048'576};
constexpr IntRange kPauseMsRange{0, 60'000};

}  // namespace

int main(int argc, char** argv) {
  wf::router_bench::BenchConfig config;
  int64_t requests = config.requests, warmup = config.warmup, prompt_tokens = config.prompt_tokens, seed = -1,
          pause_ms = 0;
  bool json = false, progress = true;
  std::string worker, router_grpc, router_http, model, build_dir;
  std::vector<std::string> worker_args, router_args;

  wf::FlagSet flags("wf_router_bench [--requests N] [--json] [--worker ADDR --router-grpc ADDR --router-http PORT]");
  flags.Int("requests", &requests,
            absl::StrCat("measured iterations, ", kRequestsRange.Text(), "; each sends one request on every path"),
            "n");
  flags.Int("warmup", &warmup,
            absl::StrCat("unmeasured iterations first, ", kWarmupRange.Text(), " (connections, caches, page faults)"));
  flags.Int("prompt-tokens", &prompt_tokens,
            absl::StrCat("random prompt token ids per request (fresh every time), ", kPromptTokensRange.Text()));
  flags.Int("seed", &seed, "seed of the prompts; -1 = random (printed), so no rerun hits the prefix cache");
  flags.Int("pause-ms", &pause_ms,
            absl::StrCat("idle milliseconds before every request, ", kPauseMsRange.Text(),
                         " (sparse traffic: e.g. 1050 finds servers after a quiet second)"));
  flags.Double("timeout-seconds", &config.request_timeout_seconds, "deadline of each request");
  flags.Bool("json", &json, "print one JSON document instead of the table");
  flags.Bool("progress", &progress, "a progress line on stderr every 2 s (--no-progress: none)");
  flags.String("worker", &worker, "use this running worker (gRPC HOST:PORT) instead of starting one");
  flags.String("router-grpc", &router_grpc, "the running router's gRPC front HOST:PORT (with --worker)");
  flags.String("router-http", &router_http, "the running router's HTTP port, or HOST:PORT (with --worker)");
  flags.String("model", &model,
               "GGUF for the started worker; default: the tiny golden model in $WF_GOLDEN_DIR "
               "(bitnet-synth-h256-l4.gguf)");
  flags.String("build-dir", &build_dir,
               "build tree holding worker/wf_worker and router/wf_router to start; default: $WF_BINARY_DIR, else "
               "the tree this program was built in");
  flags.StringList("worker-arg", &worker_args,
                   "extra flag for the started wf_worker, e.g. --worker-arg=--threads=2 (default --threads 1)");
  flags.StringList("router-arg", &router_args, "extra flag for the started wf_router, e.g. --router-arg=--io-threads=1");
  flags.Footer(
      "Each iteration asks the same worker for one token (max_tokens 1, greedy, a fresh random prompt) three\n"
      "ways, in rotating order: worker gRPC Generate directly, router gRPC Generate, and router HTTP\n"
      "POST /v1/completions with stream=true on a keep-alive connection; plus, as a reference, one unary\n"
      "GetModelInfo to the worker (what one plain gRPC round trip costs on this host). Time to first token\n"
      "is measured by this client: gRPC from the call to the first message carrying tokens, HTTP from the\n"
      "send to the first byte of the first SSE chunk. Printed per path: mean, p50, p90, p99, p99.9, max;\n"
      "then what the router adds: router minus direct at p50 and p99, and the p50/p99 of the per-iteration\n"
      "difference (router minus direct in the same iteration, which cancels slow phases of a shared host).\n"
      "Without --worker, one wf_worker (--threads 1) and one wf_router (in front of it only) are started\n"
      "on 127.0.0.1 with free ports and stopped at the end. Progress goes to stderr, figures to stdout.\n"
      "Exit status: 0 done, 1 a process or request failed (the message names it), 2 bad usage.");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) return Usage(std::string(s.message()));
  if (flags.help()) {
    std::cout << flags.Help();
    return 0;
  }
  for (const std::string& error : {kRequestsRange.Check("requests", requests), kWarmupRange.Check("warmup", warmup),
                                   kPromptTokensRange.Check("prompt-tokens", prompt_tokens),
                                   kPauseMsRange.Check("pause-ms", pause_ms)}) {
    if (!error.empty()) return Usage(error);
  }
  if (!(config.request_timeout_seconds > 0)) return Usage("--timeout-seconds must be > 0");
  const int external = !worker.empty() + !router_grpc.empty() + !router_http.empty();
  if (external != 0 && external != 3) return Usage("give all of --worker, --router-grpc and --router-http, or none");
  if (external == 3 && (!model.empty() || !worker_args.empty() || !router_args.empty())) {
    return Usage("--model, --worker-arg and --router-arg only apply to processes this program starts");
  }
  config.requests = static_cast<int>(requests);
  config.warmup = static_cast<int>(warmup);
  config.prompt_tokens = static_cast<int>(prompt_tokens);
  config.progress = progress;
  config.pause_ms = static_cast<int>(pause_ms);
  if (seed < 0) {
    seed = static_cast<int64_t>(std::random_device{}() & 0x7fffffff);
    std::fprintf(stderr, "wf_router_bench: seed %lld\n", static_cast<long long>(seed));
  }
  config.seed = static_cast<uint64_t>(seed);

  std::unique_ptr<wf::testing::WorkerProcess> worker_process;
  std::unique_ptr<wf::testing::RouterProcess> router_process;
  if (external == 3) {
    config.worker_address = worker;
    config.router_grpc_address = router_grpc;
    std::string port_text = router_http;
    if (const size_t colon = router_http.rfind(':'); colon != std::string::npos) {
      config.router_http_host = router_http.substr(0, colon);
      port_text = router_http.substr(colon + 1);
    }
    if (!absl::SimpleAtoi(port_text, &config.router_http_port) || config.router_http_port <= 0 ||
        config.router_http_port > 65535) {
      return Usage("--router-http: expected PORT or HOST:PORT, got '" + router_http + "'");
    }
  } else {
    if (!build_dir.empty()) ::setenv("WF_BINARY_DIR", build_dir.c_str(), 1);
    std::vector<std::string> wargs = {"--threads", "1"};
    if (!model.empty()) {
      wargs.push_back("--model-path");
      wargs.push_back(model);
    }
    wargs.insert(wargs.end(), worker_args.begin(), worker_args.end());
    std::fprintf(stderr, "wf_router_bench: starting %s on %s\n", wf::testing::WorkerBinary().c_str(),
                 model.empty() ? wf::testing::GoldenModelPath().c_str() : model.c_str());
    auto w = wf::testing::WorkerProcess::Start(wargs);
    if (!w.ok()) {
      std::fprintf(stderr, "wf_router_bench: starting wf_worker failed: %s\n", w.status().ToString().c_str());
      return 1;
    }
    worker_process = *std::move(w);
    std::fprintf(stderr, "wf_router_bench: starting %s\n", wf::testing::RouterBinary().c_str());
    auto r = wf::testing::RouterProcess::Start({worker_process->address()}, router_args);
    if (!r.ok()) {
      std::fprintf(stderr, "wf_router_bench: starting wf_router failed: %s\n", r.status().ToString().c_str());
      return 1;
    }
    router_process = *std::move(r);
    config.worker_address = worker_process->address();
    config.router_grpc_address = router_process->grpc_address();
    config.router_http_port = router_process->http_port();
    if (router_process->grpc_port() == 0) {
      std::fprintf(stderr, "wf_router_bench: the started router has no gRPC front (--router-arg turned it off?)\n");
      return 1;
    }
  }

  absl::StatusOr<wf::router_bench::BenchResult> result = wf::router_bench::RunBench(config);
  if (!result.ok()) {
    std::fprintf(stderr, "wf_router_bench: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::cout << (json ? wf::router_bench::FormatJson(config, *result) : wf::router_bench::FormatText(config, *result));
  return 0;
}
