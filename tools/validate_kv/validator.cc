#include "tools/validate_kv/validator.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace wf::validate_kv {
namespace {

using Json = nlohmann::json;

// Prompt streams: each check draws from its own stream so that changing one
// check's sizes leaves every other prompt unchanged.
constexpr uint64_t kBaseStream = 1;
constexpr uint64_t kExtendStream = 2;
constexpr uint64_t kRoutersStream = 3;
constexpr uint64_t kConcurrentStream = 1000;
constexpr uint64_t kCapacityStream = 100000;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string Quote(const std::string& s, size_t max_chars = 40) {
  std::string out = s.size() > max_chars ? s.substr(0, max_chars) + "..." : s;
  return Json(out).dump(-1, ' ', true, Json::error_handler_t::replace);
}

std::string TrimSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

CheckResult Fail(std::string name, std::string detail) { return {std::move(name), false, std::move(detail)}; }

}  // namespace

std::vector<int32_t> SeededPromptIds(uint64_t seed, int64_t n, int64_t min_id, int64_t max_id) {
  uint64_t state = seed;
  const uint64_t span = static_cast<uint64_t>(std::max<int64_t>(1, max_id - min_id));
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(std::max<int64_t>(0, n)));
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>(min_id + SplitMix64(state) % span));
  return ids;
}

absl::StatusOr<Completion> ParseCompletion(const std::string& body) {
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("response is not a JSON object");
  try {
    Completion c;
    const Json& choices = j.at("choices");
    if (!choices.is_array() || choices.empty()) return absl::InvalidArgumentError("response has no choices[0]");
    c.text = choices[0].at("text").get<std::string>();
    if (choices[0].contains("finish_reason") && choices[0]["finish_reason"].is_string()) {
      c.finish_reason = choices[0]["finish_reason"].get<std::string>();
    }
    const Json& usage = j.at("usage");
    c.prompt_tokens = usage.at("prompt_tokens").get<int64_t>();
    c.completion_tokens = usage.at("completion_tokens").get<int64_t>();
    if (!usage.contains("prompt_tokens_details") || !usage["prompt_tokens_details"].contains("cached_tokens")) {
      return absl::InvalidArgumentError("response has no usage.prompt_tokens_details.cached_tokens");
    }
    c.cached_tokens = usage["prompt_tokens_details"]["cached_tokens"].get<int64_t>();
    return c;
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed completion response: ", e.what()));
  }
}

absl::StatusOr<std::vector<std::string>> ParseModelIds(const std::string& body) {
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("/v1/models answer is not a JSON object");
  try {
    std::vector<std::string> ids;
    for (const Json& m : j.at("data")) ids.push_back(m.at("id").get<std::string>());
    return ids;
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed /v1/models answer: ", e.what()));
  }
}

KvValidator::KvValidator(ValidatorOptions options) : options_(std::move(options)), client_(options_.http) {
  for (std::string& url : options_.urls) url = TrimSlash(url);
}

std::vector<int32_t> KvValidator::Prompt(uint64_t stream, int64_t n) const {
  return SeededPromptIds(static_cast<uint64_t>(options_.seed) * 0x100000001b3ULL + stream, n, options_.min_token_id,
                         options_.max_token_id);
}

absl::StatusOr<Completion> KvValidator::Complete(const std::string& url, const std::vector<int32_t>& prompt) const {
  const Json request = {{"model", options_.model},     {"prompt", prompt},     {"max_tokens", options_.max_tokens},
                        {"temperature", 0},            {"ignore_eos", true},   {"stream", false}};
  const std::string endpoint = url + "/v1/completions";
  absl::StatusOr<HttpResult> r = client_.Post(endpoint, request.dump());
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::FailedPreconditionError(absl::StrCat("POST ", endpoint, " answered HTTP ", r->status, ": ",
                                                      r->body.substr(0, 300)));
  }
  absl::StatusOr<Completion> c = ParseCompletion(r->body);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat("POST ", endpoint, ": ", c.status().message()));
  if (c->completion_tokens != options_.max_tokens) {
    return absl::FailedPreconditionError(absl::StrCat("POST ", endpoint, " generated ", c->completion_tokens,
                                                      " tokens, expected max_tokens = ", options_.max_tokens,
                                                      " (finish_reason ", c->finish_reason, ")"));
  }
  return c;
}

CheckResult KvValidator::CheckModels() {
  std::vector<std::string> seen;
  for (const std::string& url : options_.urls) {
    absl::StatusOr<HttpResult> r = client_.Get(url + "/v1/models");
    if (!r.ok()) return Fail("models", absl::StrCat("GET ", url, "/v1/models failed: ", r.status().message()));
    if (r->status != 200) {
      return Fail("models", absl::StrCat("GET ", url, "/v1/models answered HTTP ", r->status, ": ",
                                         r->body.substr(0, 200)));
    }
    absl::StatusOr<std::vector<std::string>> ids = ParseModelIds(r->body);
    if (!ids.ok()) return Fail("models", absl::StrCat(url, ": ", ids.status().message()));
    if (ids->empty()) return Fail("models", absl::StrCat(url, "/v1/models lists no model"));
    if (options_.model.empty()) options_.model = ids->front();
    if (std::find(ids->begin(), ids->end(), options_.model) == ids->end()) {
      return Fail("models", absl::StrCat(url, "/v1/models does not list model '", options_.model, "' (lists ",
                                         absl::StrJoin(*ids, ", "), ")"));
    }
    seen.push_back(url);
  }
  return {"models", true, absl::StrCat(seen.size(), " URL(s) serve model '", options_.model, "'")};
}

void KvValidator::Settle() const {
  if (options_.settle_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options_.settle_ms));
}

CheckResult KvValidator::CheckColdWarm() {
  const std::string& url = options_.urls.front();
  base_prompt_ = Prompt(kBaseStream, options_.prompt_tokens);
  absl::StatusOr<Completion> cold = Complete(url, base_prompt_);
  if (!cold.ok()) return Fail("cold_warm", absl::StrCat("cold run: ", cold.status().message()));
  Settle();
  absl::StatusOr<Completion> warm = Complete(url, base_prompt_);
  if (!warm.ok()) return Fail("cold_warm", absl::StrCat("warm run: ", warm.status().message()));
  base_output_ = cold->text;
  have_base_ = true;
  const std::string figures = absl::StrFormat("prompt %d tokens, cached cold %d warm %d, output %d tokens %s",
                                              cold->prompt_tokens, cold->cached_tokens, warm->cached_tokens,
                                              cold->completion_tokens, Quote(cold->text));
  if (warm->text != cold->text) {
    return Fail("cold_warm", absl::StrCat("warm output ", Quote(warm->text), " != cold output ", Quote(cold->text),
                                          "; ", figures));
  }
  if (warm->cached_tokens <= 0) return Fail("cold_warm", "warm run reused no cached tokens; " + figures);
  return {"cold_warm", true, "identical; " + figures};
}

CheckResult KvValidator::CheckPrefixExtension() {
  const std::string& url = options_.urls.front();
  extended_prompt_ = base_prompt_;
  const std::vector<int32_t> suffix = Prompt(kExtendStream, options_.extend_tokens);
  extended_prompt_.insert(extended_prompt_.end(), suffix.begin(), suffix.end());
  Settle();
  absl::StatusOr<Completion> first = Complete(url, extended_prompt_);
  if (!first.ok()) return Fail("prefix_extension", absl::StrCat("first run: ", first.status().message()));
  Settle();
  absl::StatusOr<Completion> again = Complete(url, extended_prompt_);
  if (!again.ok()) return Fail("prefix_extension", absl::StrCat("second run: ", again.status().message()));
  extended_output_ = first->text;
  have_extended_ = true;
  const int64_t shared_blocks_tokens = static_cast<int64_t>(base_prompt_.size()) / 16 * 16;
  const std::string figures =
      absl::StrFormat("prompt %d tokens (shared prefix %d, %d in full blocks), cached first %d again %d",
                      first->prompt_tokens, base_prompt_.size(), shared_blocks_tokens, first->cached_tokens,
                      again->cached_tokens);
  if (again->text != first->text) {
    return Fail("prefix_extension", absl::StrCat("repeated output ", Quote(again->text), " != first ",
                                                 Quote(first->text), "; ", figures));
  }
  if (shared_blocks_tokens > 0 && first->cached_tokens <= 0) {
    return Fail("prefix_extension", "the shared prefix was not reused; " + figures);
  }
  if (again->cached_tokens <= 0) return Fail("prefix_extension", "the repeated run reused nothing; " + figures);
  return {"prefix_extension", true, "identical; " + figures};
}

CheckResult KvValidator::CheckConcurrent() {
  const std::string& url = options_.urls.front();
  const int64_t n = std::max<int64_t>(1, options_.concurrency);
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t i = 0; i < n; ++i) prompts.push_back(Prompt(kConcurrentStream + i, options_.prompt_tokens));
  std::vector<std::optional<absl::StatusOr<Completion>>> together(n);
  {
    std::vector<std::thread> threads;
    for (int64_t i = 0; i < n; ++i) {
      threads.emplace_back([&, i] { together[i] = Complete(url, prompts[i]); });
    }
    for (std::thread& t : threads) t.join();
  }
  int64_t identical = 0, cached_alone = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!together[i]->ok()) {
      return Fail("concurrent", absl::StrCat("concurrent request ", i, ": ", together[i]->status().message()));
    }
    absl::StatusOr<Completion> alone = Complete(url, prompts[i]);
    if (!alone.ok()) return Fail("concurrent", absl::StrCat("alone request ", i, ": ", alone.status().message()));
    cached_alone += alone->cached_tokens;
    if (alone->text != (*together[i])->text) {
      return Fail("concurrent", absl::StrCat("prompt ", i, ": alone ", Quote(alone->text), " != among ", n, " ",
                                             Quote((*together[i])->text)));
    }
    ++identical;
  }
  return {"concurrent", true,
          absl::StrFormat("%d/%d outputs identical alone and among %d concurrent requests (cached on the alone runs "
                          "%d of %d tokens)",
                          identical, n, n, cached_alone, n * options_.prompt_tokens)};
}

CheckResult KvValidator::CheckCapacity() {
  const std::string& url = options_.urls.front();
  int64_t count = options_.capacity_prompts;
  if (options_.capacity_tokens > 0 && options_.capacity_prompt_tokens > 0) {
    count = std::max(count, (2 * options_.capacity_tokens + options_.capacity_prompt_tokens - 1) /
                                options_.capacity_prompt_tokens);
  }
  int64_t sent_tokens = 0, cached_tokens = 0;
  for (int64_t i = 0; i < count; ++i) {
    absl::StatusOr<Completion> c = Complete(url, Prompt(kCapacityStream + i, options_.capacity_prompt_tokens));
    if (!c.ok()) {
      return Fail("capacity", absl::StrCat("filler prompt ", i, " of ", count, ": ", c.status().message()));
    }
    sent_tokens += c->prompt_tokens + c->completion_tokens;
    cached_tokens += c->cached_tokens;
  }
  absl::StatusOr<Completion> base = Complete(url, base_prompt_);
  if (!base.ok()) return Fail("capacity", absl::StrCat("first prompt again: ", base.status().message()));
  absl::StatusOr<Completion> extended = Complete(url, extended_prompt_);
  if (!extended.ok()) return Fail("capacity", absl::StrCat("extended prompt again: ", extended.status().message()));
  auto cache_note = [](int64_t cached) { return cached == 0 ? std::string("0 (evicted)") : absl::StrCat(cached); };
  const std::string figures = absl::StrFormat(
      "%d distinct %d-token prompts (%d tokens, %d cached), no errors; first prompt again cached %s, extended prompt "
      "again cached %s",
      count, options_.capacity_prompt_tokens, sent_tokens, cached_tokens, cache_note(base->cached_tokens),
      cache_note(extended->cached_tokens));
  if (base->text != base_output_) {
    return Fail("capacity", absl::StrCat("first prompt now ", Quote(base->text), " != its cold run ",
                                         Quote(base_output_), "; ", figures));
  }
  if (extended->text != extended_output_) {
    return Fail("capacity", absl::StrCat("extended prompt now ", Quote(extended->text), " != its first run ",
                                         Quote(extended_output_), "; ", figures));
  }
  return {"capacity", true, "identical; " + figures};
}

CheckResult KvValidator::CheckRoutersAgree() {
  const std::vector<int32_t> prompt = Prompt(kRoutersStream, options_.prompt_tokens);
  std::string reference;
  std::vector<std::string> per_url;
  for (size_t i = 0; i < options_.urls.size(); ++i) {
    const std::string& url = options_.urls[i];
    absl::StatusOr<Completion> first = Complete(url, prompt);
    if (!first.ok()) return Fail("routers_agree", absl::StrCat(url, " first run: ", first.status().message()));
    Settle();
    absl::StatusOr<Completion> again = Complete(url, prompt);
    if (!again.ok()) return Fail("routers_agree", absl::StrCat(url, " second run: ", again.status().message()));
    if (i == 0) reference = first->text;
    per_url.push_back(absl::StrFormat("%s cached %d/%d", url, first->cached_tokens, again->cached_tokens));
    if (first->text != reference || again->text != reference) {
      return Fail("routers_agree", absl::StrCat(url, " output ", Quote(first->text), " / ", Quote(again->text),
                                                " != ", options_.urls[0], " output ", Quote(reference)));
    }
    if (again->cached_tokens <= 0) {
      return Fail("routers_agree", absl::StrCat(url, " second run reused no cached tokens"));
    }
  }
  return {"routers_agree", true,
          absl::StrCat(options_.urls.size(), " routers identical; ", absl::StrJoin(per_url, "; "))};
}

std::vector<CheckResult> KvValidator::Run() {
  std::vector<CheckResult> results;
  results.push_back(CheckModels());
  if (!results.back().passed) return results;
  // Later checks compare against the outputs recorded by earlier ones.
  results.push_back(CheckColdWarm());
  if (have_base_) {
    results.push_back(CheckPrefixExtension());
    results.push_back(CheckConcurrent());
    if (have_extended_) results.push_back(CheckCapacity());
  }
  if (options_.urls.size() > 1) results.push_back(CheckRoutersAgree());
  return results;
}

std::string FormatReport(const std::vector<CheckResult>& results) {
  std::string out;
  int failed = 0;
  for (const CheckResult& r : results) {
    absl::StrAppendFormat(&out, "%s %-16s %s\n", r.passed ? "PASS" : "FAIL", r.name, r.detail);
    failed += r.passed ? 0 : 1;
  }
  absl::StrAppendFormat(&out, "validate_kv: %s (%d checks, %d failed)\n", failed == 0 ? "OK" : "FAILED",
                        results.size(), failed);
  return out;
}

bool AllPassed(const std::vector<CheckResult>& results) {
  if (results.empty()) return false;
  for (const CheckResult& r : results) {
    if (!r.passed) return false;
  }
  return true;
}

}  // namespace wf::validate_kv
