// wf_loadgen: drives concurrent Generate streams against a worker's gRPC API
// (or, with --http, requests against routers' OpenAI HTTP API; http_main.cc)
// and prints throughput and latency figures (see tools/loadgen/README.md).
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/flags.h"
#include "tools/loadgen/http_main.h"
#include "tools/loadgen/loadgen.h"

namespace {

int Usage(const std::string& message) {
  std::fprintf(stderr, "wf_loadgen: %s (see --help)\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (wf::loadgen::WantsHttpMode(argc, argv)) return wf::loadgen::HttpMain(argc, argv);
  wf::loadgen::LoadgenConfig config;
  std::string concurrency_list = "1";
  int64_t requests_per_stream = 4, warmup_requests = 1, seed = -1;
  double duration_seconds = 0;
  bool json = false, progress = true;

  wf::FlagSet flags("wf_loadgen --target HOST:PORT [--concurrency 1,4,8,16] [options]");
  flags.String("target", &config.target, "worker gRPC address HOST:PORT (required)");
  flags.String("concurrency", &concurrency_list, "comma-separated stream counts; one run per value", "c");
  flags.Int("requests-per-stream", &requests_per_stream, "requests each stream issues back to back", "n");
  flags.Double("duration-seconds", &duration_seconds,
               "instead of --requests-per-stream: seconds during which streams start new requests");
  flags.Int("prompt-tokens", &config.prompt_tokens, "random prompt token ids per request");
  flags.String("prompt-text", &config.prompt_text, "send this text as every prompt instead of random ids");
  flags.Int("shared-prefix-tokens", &config.shared_prefix_tokens,
            "leading prompt tokens identical in every request (exercises the prefix cache)");
  flags.Int("max-tokens", &config.max_tokens, "tokens generated per request");
  flags.Bool("ignore-eos", &config.ignore_eos, "generate through end-of-generation tokens (--no-ignore-eos: stop)");
  flags.Double("temperature", &config.temperature, "sampling temperature; 0 = greedy");
  flags.Int("warmup-requests", &warmup_requests, "requests sent one by one before the runs, not measured");
  flags.Int("seed", &seed,
            "seed of the prompts and sampling seeds; -1 = random (printed), so a rerun against the same worker "
            "does not find its prompts in the prefix cache");
  flags.Int("channels", &config.channels, "gRPC connections; streams are spread over them");
  flags.Double("connect-timeout-seconds", &config.connect_timeout_seconds,
               "deadline to connect and fetch the model info");
  flags.Double("request-timeout-seconds", &config.request_timeout_seconds, "deadline of each Generate call");
  flags.Bool("json", &json, "print one JSON document instead of the table");
  flags.Bool("progress", &progress, "a progress line per second on stderr (--no-progress: none)");
  flags.Footer(
      "Figures per run: requests ok/failed (by status code), generated tok/s (all generated tokens /\n"
      "wall time, prefill included), req/s, TTFT, inter-token latency and end-to-end percentiles,\n"
      "cached prompt tokens. Exit status: 0 when every request succeeded, 3 when some failed (figures\n"
      "are still printed), 1 when the target cannot be used, 2 on bad usage.\n"
      "HTTP mode (routers' OpenAI API, SSE): wf_loadgen --http --urls http://HOST:PORT[,...]; see\n"
      "wf_loadgen --http --help.");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) return Usage(std::string(s.message()));
  if (flags.help()) {
    std::cout << flags.Help();
    return 0;
  }
  if (config.target.empty()) return Usage("--target HOST:PORT is required");
  if (flags.WasSet("requests-per-stream") && flags.WasSet("duration-seconds")) {
    return Usage("give at most one of --requests-per-stream and --duration-seconds");
  }
  if (flags.WasSet("duration-seconds")) {
    if (!(duration_seconds > 0)) return Usage("--duration-seconds must be > 0");
    requests_per_stream = 0;
  } else if (requests_per_stream < 1) {
    return Usage("--requests-per-stream must be >= 1");
  }
  if (warmup_requests < 0) return Usage("--warmup-requests must be >= 0");
  if (flags.WasSet("prompt-text") && config.prompt_text.empty()) return Usage("--prompt-text must not be empty");
  if (flags.WasSet("prompt-text") && flags.WasSet("prompt-tokens")) {
    return Usage("give at most one of --prompt-tokens and --prompt-text");
  }
  config.seed = seed >= 0 ? static_cast<uint64_t>(seed) : std::random_device{}() >> 1;
  absl::StatusOr<std::vector<int32_t>> concurrency = wf::loadgen::ParseConcurrencyList(concurrency_list);
  if (!concurrency.ok()) return Usage("--concurrency: " + std::string(concurrency.status().message()));
  if (absl::Status s = wf::loadgen::ValidateConfig(config); !s.ok()) return Usage(std::string(s.message()));

  absl::StatusOr<std::unique_ptr<wf::loadgen::LoadGenerator>> generator = wf::loadgen::LoadGenerator::Create(config);
  if (!generator.ok()) {
    std::fprintf(stderr, "wf_loadgen: %s\n", std::string(generator.status().message()).c_str());
    return generator.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  wf::loadgen::LoadGenerator& gen = **generator;

  const auto print_progress = [](const wf::loadgen::Progress& p) {
    std::fprintf(stderr, "%s\n", wf::loadgen::FormatProgress(p).c_str());
  };
  const std::function<void(const wf::loadgen::Progress&)> reporter =
      progress ? std::function<void(const wf::loadgen::Progress&)>(print_progress) : nullptr;

  if (warmup_requests > 0) {
    std::fprintf(stderr, "wf_loadgen: warmup: %lld requests\n", static_cast<long long>(warmup_requests));
    absl::StatusOr<wf::loadgen::RunResult> warmup =
        gen.Run({.concurrency = 1, .requests_per_stream = warmup_requests}, reporter);
    if (!warmup.ok()) {
      std::fprintf(stderr, "wf_loadgen: %s\n", std::string(warmup.status().message()).c_str());
      return 1;
    }
    for (const wf::loadgen::RequestRecord& r : warmup->requests) {
      if (!r.ok) {
        std::fprintf(stderr, "wf_loadgen: warmup request failed with %s: %s\n", r.failure.c_str(), r.error.c_str());
        return 1;
      }
    }
  }

  std::vector<wf::loadgen::RunStats> runs;
  bool all_ok = true;
  for (int32_t c : *concurrency) {
    absl::StatusOr<wf::loadgen::RunResult> run = gen.Run(
        {.concurrency = c, .requests_per_stream = requests_per_stream, .duration_seconds = duration_seconds}, reporter);
    if (!run.ok()) {
      std::fprintf(stderr, "wf_loadgen: %s\n", std::string(run.status().message()).c_str());
      return 1;
    }
    runs.push_back(wf::loadgen::Summarize(*run));
    const wf::loadgen::RunStats& s = runs.back();
    all_ok = all_ok && s.requests_failed == 0;
    std::fprintf(stderr, "wf_loadgen: concurrency %d done: %lld ok, %lld failed, %.2f generated tok/s\n", c,
                 static_cast<long long>(s.requests_ok), static_cast<long long>(s.requests_failed),
                 s.generated_tokens_per_second);
  }

  wf::loadgen::TargetDescription target;
  target.config = gen.config();
  target.model_name = gen.model_name();
  target.vocab_size = gen.vocab_size();
  target.max_context = gen.max_context();
  target.requests_per_stream = requests_per_stream;
  target.duration_seconds = duration_seconds;
  target.warmup_requests = warmup_requests;
  std::cout << (json ? wf::loadgen::FormatJson(target, runs) : wf::loadgen::FormatTable(target, runs));
  std::cout.flush();
  return all_ok ? 0 : 3;
}
