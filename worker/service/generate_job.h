// A Generate request checked, tokenized and resolved into what the engine
// loop runs. All validation of client input happens here, on the gRPC thread,
// so the engine loop only sees well-formed jobs.
//
// Example:
//   BN_ASSIGN_OR_RETURN(std::unique_ptr<GenerateJob> job,
//                       BuildGenerateJob(request, prompt_tools, limits));
#ifndef WF_WORKER_SERVICE_GENERATE_JOB_H_
#define WF_WORKER_SERVICE_GENERATE_JOB_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/engine/sampling.h"
#include "worker/engine/stop_matcher.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::service {

inline constexpr size_t kMaxRequestIdBytes = 128;

struct GenerateJob {
  std::string request_id;  // may be empty until the engine loop assigns one
  std::vector<int32_t> prompt;
  engine::SamplingParams sampling;
  engine::StopConditions stop;  // max_tokens resolved (>= 1)
  bool skip_special_tokens = true;
  bool return_prompt_token_ids = false;
  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
};

struct JobLimits {
  int32_t max_context = 0;         // positions per sequence (prompt + output)
  int32_t default_max_tokens = 0;  // when the request leaves max_tokens unset
  int32_t vocab_size = 0;
};

// What turns text or chat messages into token ids.
struct PromptTools {
  const tokenizer::Tokenizer* tokenizer = nullptr;
  // Unset when the model's chat format is unknown: chat prompts are refused.
  std::optional<tokenizer::ChatFormat> chat_format;
};

// INVALID_ARGUMENT naming the field and the limit for anything malformed:
// a bad request id, no prompt, token ids outside the vocabulary, an empty
// prompt, a prompt that does not leave room for one generated token, or
// prompt + max_tokens over the context limit (both numbers are given),
// sampling or stop parameters out of range (including a repetition_penalty
// outside [1e-6, 1e6] and a logit_bias that bans every token: either would
// only fail later, on the engine thread).
absl::StatusOr<std::unique_ptr<GenerateJob>> BuildGenerateJob(const wrinklefree::v1::GenerateRequest& request,
                                                              const PromptTools& tools,
                                                              const JobLimits& limits);

// Text or chat → ids, with the same rules as Generate (used by Tokenize).
absl::StatusOr<std::vector<int32_t>> EncodeChatMessages(const wrinklefree::v1::ChatMessages& chat,
                                                        const PromptTools& tools);

// OK if `id` is 1..kMaxRequestIdBytes printable ASCII characters.
absl::Status ValidateRequestId(const std::string& id);

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_GENERATE_JOB_H_
