// wf_validate_kv: checks a running deployment's KV cache through its public
// HTTP API and prints one PASS/FAIL line per check; exits 1 on any failure,
// 2 on bad flags.
#include <iostream>
#include <string>
#include <vector>

#include "common/flags.h"
#include "tools/validate_kv/http_client.h"
#include "tools/validate_kv/validator.h"

int main(int argc, char** argv) {
  wf::validate_kv::ValidatorOptions opts;
  std::vector<std::string> urls;
  int64_t connect_timeout_ms = opts.http.connect_timeout_ms;
  int64_t request_timeout_ms = opts.http.request_timeout_ms;
  wf::FlagSet flags("wf_validate_kv --url http://HOST:PORT [--url ...] [options]");
  flags.StringList("url", &urls, "router base URL (repeat for several routers; all must give identical outputs)");
  flags.String("model", &opts.model, "model name (default: the first listed by GET /v1/models)");
  flags.String("api-key", &opts.http.api_key, "sent as Authorization: Bearer KEY");
  flags.Int("seed", &opts.seed, "seed of the prompt token ids");
  flags.Int("max-tokens", &opts.max_tokens, "tokens generated per request (greedy, ignore_eos)");
  flags.Int("prompt-tokens", &opts.prompt_tokens, "length of the cold/warm and concurrent prompts");
  flags.Int("extend-tokens", &opts.extend_tokens, "suffix added for the prefix-extension check");
  flags.Int("concurrency", &opts.concurrency, "concurrent requests in the concurrent check");
  flags.Int("capacity-prompts", &opts.capacity_prompts, "distinct prompts sent to push past the KV pool");
  flags.Int("capacity-prompt-tokens", &opts.capacity_prompt_tokens, "length of each capacity prompt");
  flags.Int("capacity-tokens", &opts.capacity_tokens,
            "KV pool size in tokens across the deployment; when set, send at least twice this many prompt tokens");
  flags.Int("min-token-id", &opts.min_token_id, "smallest prompt token id");
  flags.Int("max-token-id", &opts.max_token_id, "prompt token ids are below this (keep it within the vocabulary)");
  flags.Int("settle-ms", &opts.settle_ms,
            "pause, in [0, 10000] ms, before each run that expects the previous run's blocks to be reused (routers "
            "learn the cache from the workers' load reports)");
  flags.Int("connect-timeout-ms", &connect_timeout_ms, "HTTP connect timeout");
  flags.Int("request-timeout-ms", &request_timeout_ms, "whole-request HTTP timeout");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    std::cerr << "wf_validate_kv: " << s.message() << "\n";
    return 2;
  }
  if (flags.help()) {
    std::cout << flags.Help();
    return 0;
  }
  if (urls.empty()) {
    std::cerr << "wf_validate_kv: --url is required\n";
    return 2;
  }
  if (opts.max_tokens < 1 || opts.prompt_tokens < 1 || opts.extend_tokens < 1 || opts.capacity_prompt_tokens < 1 ||
      opts.min_token_id < 0 || opts.max_token_id <= opts.min_token_id) {
    std::cerr << "wf_validate_kv: --max-tokens, --prompt-tokens, --extend-tokens and --capacity-prompt-tokens must be "
                 ">= 1 and 0 <= --min-token-id < --max-token-id\n";
    return 2;
  }
  if (opts.settle_ms < 0 || opts.settle_ms > 10000) {
    std::cerr << "wf_validate_kv: --settle-ms must be in [0, 10000], got " << opts.settle_ms << "\n";
    return 2;
  }
  opts.urls = urls;
  opts.http.connect_timeout_ms = connect_timeout_ms;
  opts.http.request_timeout_ms = request_timeout_ms;
  if (absl::Status s = wf::validate_kv::CurlGlobalInit(); !s.ok()) {
    std::cerr << "wf_validate_kv: " << s.message() << "\n";
    return 1;
  }
  wf::validate_kv::KvValidator validator(opts);
  const std::vector<wf::validate_kv::CheckResult> results = validator.Run();
  std::cout << wf::validate_kv::FormatReport(results) << std::flush;
  return wf::validate_kv::AllPassed(results) ? 0 : 1;
}
