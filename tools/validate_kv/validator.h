// Checks that a running WrinkleFree deployment's KV cache never changes what
// the model generates, through the router's public OpenAI-compatible HTTP API
// (POST /v1/completions, GET /v1/models).
//
// Every request is greedy (temperature 0, ignore_eos, fixed max_tokens) on a
// prompt of token ids drawn deterministically from a seed, so each prompt has
// exactly one correct output. The checks:
//   models            every URL answers /v1/models and lists the model
//   cold_warm         a prompt twice: identical text, cached_tokens > 0 the second time
//   prefix_extension  the prompt plus a suffix reuses the cached prefix; repeated, identical
//   concurrent        N distinct prompts at once, then each alone: identical
//   capacity          many distinct long prompts (past the KV pool), no errors;
//                     then the first prompts again: identical to their first runs
//   routers_agree     (several URLs) one prompt through every router: identical
//
// Example:
//   ValidatorOptions opts;
//   opts.urls = {"http://127.0.0.1:8080"};
//   KvValidator validator(opts);
//   std::vector<CheckResult> results = validator.Run();
//   std::cout << FormatReport(results);
//   return AllPassed(results) ? 0 : 1;
//
// Threading: Run() is not reentrant; it starts and joins its own threads for
// the concurrent check. Errors (transport, HTTP status, malformed responses)
// never escape: they become FAIL results naming the request that failed.
#ifndef WF_TOOLS_VALIDATE_KV_VALIDATOR_H_
#define WF_TOOLS_VALIDATE_KV_VALIDATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/validate_kv/http_client.h"

namespace wf::validate_kv {

struct ValidatorOptions {
  std::vector<std::string> urls;  // router base URLs, e.g. "http://127.0.0.1:8080"
  std::string model;              // empty: the first model listed by urls[0]
  int64_t seed = 1;
  int64_t max_tokens = 16;
  int64_t prompt_tokens = 200;    // the cold/warm prompt (not a multiple of the 16-token block)
  int64_t extend_tokens = 100;    // the suffix of the prefix-extension prompt
  int64_t concurrency = 8;
  int64_t capacity_prompts = 40;
  int64_t capacity_prompt_tokens = 512;
  // When > 0, at least enough capacity prompts to send twice this many tokens.
  int64_t capacity_tokens = 0;
  int64_t min_token_id = 32;      // prompt ids are drawn from [min_token_id, max_token_id)
  int64_t max_token_id = 2000;
  // Pause before each run that expects the previous one's blocks to be
  // reused: routers learn what a worker caches from its load reports (sent
  // every 100 ms by default and on change), not from their own traffic, so a
  // request sent the instant the previous one ended may be routed before
  // they arrive.
  int64_t settle_ms = 250;
  HttpClientOptions http;
};

struct CheckResult {
  std::string name;
  bool passed = false;
  std::string detail;  // figures, or what went wrong
};

// One /v1/completions answer.
struct Completion {
  std::string text;
  std::string finish_reason;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};

// `n` token ids in [min_id, max_id), a pure function of the arguments.
std::vector<int32_t> SeededPromptIds(uint64_t seed, int64_t n, int64_t min_id, int64_t max_id);

// Parses a /v1/completions response body; INVALID_ARGUMENT names the missing field.
absl::StatusOr<Completion> ParseCompletion(const std::string& body);

// Parses a /v1/models body into its model ids.
absl::StatusOr<std::vector<std::string>> ParseModelIds(const std::string& body);

class KvValidator {
 public:
  explicit KvValidator(ValidatorOptions options);

  std::vector<CheckResult> Run();

 private:
  absl::StatusOr<Completion> Complete(const std::string& url, const std::vector<int32_t>& prompt) const;
  std::vector<int32_t> Prompt(uint64_t stream, int64_t n) const;
  void Settle() const;  // sleeps settle_ms

  CheckResult CheckModels();
  CheckResult CheckColdWarm();
  CheckResult CheckPrefixExtension();
  CheckResult CheckConcurrent();
  CheckResult CheckCapacity();
  CheckResult CheckRoutersAgree();

  ValidatorOptions options_;
  HttpClient client_;
  // Filled by the checks in order; later checks compare against them.
  std::vector<int32_t> base_prompt_;
  std::vector<int32_t> extended_prompt_;
  std::string base_output_;
  std::string extended_output_;
  bool have_base_ = false;
  bool have_extended_ = false;
};

// One line per check ("PASS name  detail"), then a summary line.
std::string FormatReport(const std::vector<CheckResult>& results);
bool AllPassed(const std::vector<CheckResult>& results);

}  // namespace wf::validate_kv

#endif  // WF_TOOLS_VALIDATE_KV_VALIDATOR_H_
