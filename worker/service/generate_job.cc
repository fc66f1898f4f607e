#include "worker/service/generate_job.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace wf::service {
namespace {

using wrinklefree::v1::GenerateRequest;

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// Tighter than the sampler's "finite and > 0": a penalty outside these bounds
// can overflow a logit to +-inf, which fails the request on the engine thread
// (where it looks like a worker fault) instead of here.
constexpr float kMinRepetitionPenalty = 1e-6f;
constexpr float kMaxRepetitionPenalty = 1e6f;

}  // namespace

absl::Status ValidateRequestId(const std::string& id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) {
    return Invalid(absl::StrCat("request_id must be 1..", kMaxRequestIdBytes, " characters, got ", id.size()));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c < 0x21 || c > 0x7e) {
      return Invalid(absl::StrCat("request_id must be printable ASCII without spaces; byte ", i, " is 0x",
                                  absl::Hex(c)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> EncodeChatMessages(const wrinklefree::v1::ChatMessages& chat,
                                                        const PromptTools& tools) {
  if (!tools.chat_format.has_value()) {
    return absl::FailedPreconditionError(
        "this model has no known chat format; send text or token_ids (or start the worker with --chat-format)");
  }
  if (chat.messages().empty()) return Invalid("chat.messages is empty");
  std::vector<tokenizer::ChatMessage> messages;
  messages.reserve(chat.messages_size());
  for (int i = 0; i < chat.messages_size(); ++i) {
    const auto& m = chat.messages(i);
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") {
      return Invalid(absl::StrCat("chat.messages[", i, "].role must be system, user or assistant, got '",
                                  m.role().substr(0, 32), "'"));
    }
    messages.push_back({m.role(), m.content()});
  }
  return tokenizer::EncodeChat(*tools.tokenizer, *tools.chat_format, messages, /*add_generation_prompt=*/true);
}

absl::StatusOr<std::unique_ptr<GenerateJob>> BuildGenerateJob(const GenerateRequest& request,
                                                              const PromptTools& tools,
                                                              const JobLimits& limits) {
  auto job = std::make_unique<GenerateJob>();
  if (!request.request_id().empty()) {
    BN_RETURN_IF_ERROR(ValidateRequestId(request.request_id()));
    job->request_id = request.request_id();
  }

  switch (request.prompt_case()) {
    case GenerateRequest::kTokenIds: {
      const auto& ids = request.token_ids().ids();
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
          return Invalid(absl::StrCat("token_ids.ids[", i, "] = ", ids[i], " is outside the vocabulary [0, ",
                                      limits.vocab_size, ")"));
        }
      }
      job->prompt.assign(ids.begin(), ids.end());
      break;
    }
    case GenerateRequest::kText: {
      auto ids = tools.tokenizer->Encode(request.text(), {.add_bos = tools.tokenizer->add_bos(), .parse_special = true});
      if (!ids.ok()) return Invalid(absl::StrCat("text: ", ids.status().message()));
      job->prompt = *std::move(ids);
      break;
    }
    case GenerateRequest::kChat: {
      auto ids = EncodeChatMessages(request.chat(), tools);
      if (!ids.ok()) return ids.status();
      job->prompt = *std::move(ids);
      break;
    }
    case GenerateRequest::PROMPT_NOT_SET:
      return Invalid("prompt: set one of token_ids, text or chat");
  }
  const int64_t n_prompt = static_cast<int64_t>(job->prompt.size());
  if (n_prompt == 0) return Invalid("the prompt is empty");
  if (n_prompt >= limits.max_context) {
    return Invalid(absl::StrCat("prompt has ", n_prompt, " tokens; the context limit is ", limits.max_context,
                                " (prompt + at least one generated token)"));
  }

  const auto& stop = request.stop();
  const int64_t room = limits.max_context - n_prompt;
  if (stop.has_max_tokens()) {
    if (stop.max_tokens() < 1) {
      return Invalid(absl::StrCat("stop.max_tokens must be >= 1, got ", stop.max_tokens()));
    }
    if (stop.max_tokens() > room) {
      return Invalid(absl::StrCat("prompt (", n_prompt, " tokens) + max_tokens (", stop.max_tokens(),
                                  ") = ", n_prompt + stop.max_tokens(), " exceeds the context limit of ",
                                  limits.max_context, " tokens"));
    }
    job->stop.max_tokens = stop.max_tokens();
  } else {
    job->stop.max_tokens = static_cast<int32_t>(std::min<int64_t>(limits.default_max_tokens, room));
  }
  job->stop.stop_strings.assign(stop.stop().begin(), stop.stop().end());
  job->stop.stop_token_ids.assign(stop.stop_token_ids().begin(), stop.stop_token_ids().end());
  job->stop.ignore_eos = stop.ignore_eos();
  if (absl::Status s = engine::Validate(job->stop, limits.vocab_size); !s.ok()) {
    return Invalid(absl::StrCat("stop: ", s.message()));
  }

  const auto& sp = request.sampling();
  engine::SamplingParams& p = job->sampling;
  if (sp.has_temperature()) p.temperature = sp.temperature();
  p.top_k = sp.top_k();
  if (sp.has_top_p()) p.top_p = sp.top_p();
  p.min_p = sp.min_p();
  if (sp.has_repetition_penalty()) p.repetition_penalty = sp.repetition_penalty();
  p.presence_penalty = sp.presence_penalty();
  p.frequency_penalty = sp.frequency_penalty();
  if (sp.has_penalty_last_n()) p.penalty_last_n = sp.penalty_last_n();
  if (sp.logit_bias_size() > limits.vocab_size) {
    return Invalid(absl::StrCat("sampling.logit_bias has ", sp.logit_bias_size(), " entries; at most ",
                                limits.vocab_size));
  }
  for (const auto& [id, bias] : sp.logit_bias()) p.logit_bias[id] = bias;
  if (sp.has_seed()) p.seed = sp.seed();
  if (request.top_logprobs() < 0 || request.top_logprobs() > engine::kMaxTopLogprobs) {
    return Invalid(absl::StrCat("top_logprobs must be in [0, ", engine::kMaxTopLogprobs, "], got ",
                                request.top_logprobs()));
  }
  p.logprobs = request.logprobs() || request.top_logprobs() > 0;
  p.top_logprobs = request.top_logprobs();
  if (absl::Status s = engine::Validate(p, limits.vocab_size); !s.ok()) {
    return Invalid(absl::StrCat("sampling: ", s.message()));
  }
  if (p.repetition_penalty < kMinRepetitionPenalty || p.repetition_penalty > kMaxRepetitionPenalty) {
    return Invalid(absl::StrCat("sampling.repetition_penalty must be in [", kMinRepetitionPenalty, ", ",
                                kMaxRepetitionPenalty, "] (1 = off), got ", p.repetition_penalty));
  }
  // With every token banned nothing could ever be sampled.
  int64_t banned = 0;
  for (const auto& [id, bias] : p.logit_bias) banned += bias <= engine::kLogitBiasBan ? 1 : 0;
  if (banned >= limits.vocab_size) {
    return Invalid(absl::StrCat("sampling.logit_bias bans every token of the vocabulary (", banned, " of ",
                                limits.vocab_size, " ids at -100 or -inf); at least one must stay possible"));
  }

  job->skip_special_tokens = !request.has_skip_special_tokens() || request.skip_special_tokens();
  job->return_prompt_token_ids = request.return_prompt_token_ids();
  return job;
}

}  // namespace wf::service
