// wf_worker: holds one BitNet GGUF model. Serves it over gRPC
// (wrinklefree.v1.Worker) by default; --prompt runs one completion on the
// command line and --benchmark measures speed.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/log.h"
#include "worker/cli/benchmark.h"
#include "worker/cli/generate.h"
#include "worker/engine/kv_cache.h"
#include "worker/kernels/kernels.h"
#include "worker/service/worker_config.h"
#include "worker/service/worker_server.h"

int main(int argc, char** argv) {
  // The Abseil build we link checks lock order on every absl::Mutex
  // acquisition (gRPC's included), about 80 ns per lock pair as measured in
  // the router, which serves gRPC the same way; tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string prompt, chat_format, system, prefill_list = "128,512";
  int64_t n_predict = 64, top_k = 0, seed = -1, repeat_last_n = 64, repetitions = 3, decode_tokens = 128;
  double temperature = 0.0, top_p = 1.0, min_p = 0.0, repeat_penalty = 1.0, presence = 0.0, frequency = 0.0;
  bool chat = false, benchmark = false, json = false, ignore_eos = false;
  std::vector<std::string> stops;

  wf::service::WorkerConfig config;
  config.log_level = "info";
  wf::FlagSet flags(
      "wf_worker --model-path FILE.gguf [--port P] [serving flags]      serve over gRPC\n"
      "       wf_worker --model-path FILE.gguf --prompt TEXT [sampling flags]    one completion\n"
      "       wf_worker --model-path FILE.gguf --benchmark [--json]              speed figures");
  wf::service::RegisterWorkerFlags(&flags, &config);
  flags.String("prompt", &prompt, "text to complete; prints the completion", "p");
  flags.Int("n-predict", &n_predict, "tokens to generate at most", "n");
  flags.Bool("chat", &chat, "wrap the prompt in the model's chat format (one user turn)");
  flags.String("chat-format", &chat_format, "chat format override: bitnet, llama3 or chatml");
  flags.String("system", &system, "system message for --chat");
  flags.Double("temperature", &temperature, "sampling temperature; 0 = greedy", "t");
  flags.Int("top-k", &top_k, "keep the k most likely tokens; 0 = off");
  flags.Double("top-p", &top_p, "nucleus sampling mass; 1 = off");
  flags.Double("min-p", &min_p, "drop tokens below min-p x the top probability; 0 = off");
  flags.Double("repeat-penalty", &repeat_penalty, "repetition penalty; 1 = off");
  flags.Int("repeat-last-n", &repeat_last_n, "tokens the repetition penalty looks back; -1 = all");
  flags.Double("presence-penalty", &presence, "OpenAI presence penalty");
  flags.Double("frequency-penalty", &frequency, "OpenAI frequency penalty");
  flags.Int("seed", &seed, "sampling seed; -1 = random (printed)", "s");
  flags.StringList("stop", &stops, "stop string, never printed");
  flags.Bool("ignore-eos", &ignore_eos, "keep generating past end-of-generation tokens");
  flags.Bool("benchmark", &benchmark, "measure prefill/decode speed, load time and peak RSS");
  flags.Bool("json", &json, "with --benchmark: one JSON object on stdout");
  flags.String("prefill-tokens", &prefill_list, "with --benchmark: comma-separated prompt lengths");
  flags.Int("decode-tokens", &decode_tokens, "with --benchmark: tokens generated per decode run");
  flags.Int("repetitions", &repetitions, "with --benchmark: runs per figure");
  flags.Footer(
      "Serving: flags override the --config YAML file (keys = flag names with '_'; see\n"
      "worker/service/worker.example.yaml). SIGTERM drains: health NOT_SERVING, new requests\n"
      "UNAVAILABLE, running ones finish within --drain-timeout-seconds, then exit 0.\n"
      "Security: the worker reads only the --model-path file (and --config, TLS files) at start-up;\n"
      "no RPC names a file. Serve TLS with --tls-cert-file/--tls-key-file (PEM; routers then need\n"
      "--worker-tls-ca-file). Without TLS, keep the gRPC port on a private network: it has no\n"
      "authentication of its own.\n"
      "Environment: BITNET_FORCE_ISA=generic|avx2|avx512 forces a kernel set (an ISA this CPU lacks is an error).\n"
      "Exit status: 0 on success, 1 on a runtime error (the message names it), 2 on bad usage.");
  absl::Status parsed = flags.Parse(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "wf_worker: %s\n", std::string(parsed.message()).c_str());
    return 2;
  }
  if (flags.help()) {
    std::cout << flags.Help();
    return 0;
  }
  if (benchmark && flags.WasSet("prompt")) {
    std::fprintf(stderr, "wf_worker: give at most one of --prompt or --benchmark\n");
    return 2;
  }
  const bool serve = !benchmark && !flags.WasSet("prompt");
  if (!serve && !flags.WasSet("log-level")) config.log_level = "warning";
  absl::StatusOr<wf::service::WorkerConfig> resolved = wf::service::ResolveWorkerConfig(flags, config);
  if (!resolved.ok()) {
    std::fprintf(stderr, "wf_worker: %s\n", std::string(resolved.status().message()).c_str());
    return 2;
  }
  config = *std::move(resolved);
  wf::LogLevel level;
  if (!wf::ParseLogLevel(config.log_level, &level)) {
    std::fprintf(stderr, "wf_worker: --log-level must be debug, info, warning or error\n");
    return 2;
  }
  wf::SetLogLevel(level);
  const std::string& model_path = config.model_path;
  // Validated by ResolveWorkerConfig; parsed here for --benchmark and --prompt.
  const absl::StatusOr<wf::engine::HeadType> head_type = wf::engine::ParseHeadType(config.head_type);
  if (!head_type.ok()) {
    std::fprintf(stderr, "wf_worker: --head-type: %s\n", std::string(head_type.status().message()).c_str());
    return 2;
  }
  const absl::StatusOr<wf::engine::KvCacheType> kv_cache_type = wf::engine::ParseKvCacheType(config.kv_cache_type);
  if (!kv_cache_type.ok()) {
    std::fprintf(stderr, "wf_worker: --kv-cache-type: %s\n", std::string(kv_cache_type.status().message()).c_str());
    return 2;
  }
  const int64_t threads = config.threads;
  if (auto isa = wf::kernels::SelectKernels(); !isa.ok()) {
    std::fprintf(stderr, "wf_worker: %s\n", std::string(isa.status().message()).c_str());
    return 1;
  }

  absl::Status s;
  if (serve) {
    s = wf::service::RunWorkerServer(config);
  } else if (benchmark) {
    wf::cli::BenchmarkOptions o;
    o.model_path = model_path;
    o.threads = threads;
    o.json = json;
    o.repetitions = repetitions;
    o.decode_tokens = decode_tokens;
    o.head_type = *head_type;
    o.kv_cache_type = *kv_cache_type;
    o.prefill_tokens.clear();
    for (absl::string_view part : absl::StrSplit(prefill_list, ',', absl::SkipEmpty())) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(part, &n) || n < 1) {
        std::fprintf(stderr, "wf_worker: --prefill-tokens needs positive integers, got '%s'\n", prefill_list.c_str());
        return 2;
      }
      o.prefill_tokens.push_back(n);
    }
    s = wf::cli::RunBenchmark(o, std::cout);
  } else {
    wf::cli::GenerateOptions o;
    o.model_path = model_path;
    o.head_type = *head_type;
    o.kv_cache_type = *kv_cache_type;
    o.prompt = prompt;
    o.chat = chat;
    o.chat_format = chat_format;
    o.system = system;
    o.n_predict = n_predict;
    o.threads = threads;
    o.stop = stops;
    o.ignore_eos = ignore_eos;
    o.sampling.temperature = static_cast<float>(temperature);
    o.sampling.top_k = static_cast<int32_t>(top_k);
    o.sampling.top_p = static_cast<float>(top_p);
    o.sampling.min_p = static_cast<float>(min_p);
    o.sampling.repetition_penalty = static_cast<float>(repeat_penalty);
    o.sampling.penalty_last_n = static_cast<int32_t>(repeat_last_n);
    o.sampling.presence_penalty = static_cast<float>(presence);
    o.sampling.frequency_penalty = static_cast<float>(frequency);
    if (seed >= 0) o.sampling.seed = static_cast<uint64_t>(seed);
    s = wf::cli::RunGenerate(o, std::cout);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "wf_worker: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
