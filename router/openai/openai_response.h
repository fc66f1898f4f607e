// Response bodies and SSE events of the router's HTTP API, in OpenAI's exact
// shapes (and llama.cpp's for /completion, /tokenize, /detokenize). Pure
// functions: ids and timestamps come from the caller, so output is
// deterministic. Thread-safe; never throw. Every result is compact JSON (one
// line); the *Event functions return complete SSE events ("data: ...\n\n").
//
// Invalid UTF-8 in texts is replaced with U+FFFD; token strings that hold a
// partial character are spelled "bytes:\xNN..." (as OpenAI does) with the raw
// bytes in the `bytes` arrays. Log-probabilities of -inf become -9999.
//
// Tokens: the builders format exactly the GeneratedTokens they are given; a
// caller that does not want the end-of-generation token in logprobs drops it
// first. Finish reasons: STOP -> "stop", LENGTH -> "length"; any other reason
// is written as null (callers report ErrorForFinish() instead, see
// openai_api.h).
//
// A chat stream is:
//   ChatRoleChunkEvent(ctx, i)                     once per choice
//   ChatContentChunkEvent(ctx, i, delta, tokens)   per worker response
//   ChatFinishChunkEvent(ctx, i, reason)           once per choice
//   ChatUsageChunkEvent(ctx, usage)                if include_usage
//   SseDoneEvent()
// (on a failure after the first event: SseErrorEvent(e) + SseDoneEvent()).
//
// Example:
//   ResponseContext ctx{.id = "chatcmpl-42", .created = 1700000000,
//                       .model = "bitnet-2b", .include_usage = true};
//   ChoiceResult c;
//   c.text = "Hello";
//   c.finish_reason = wrinklefree::v1::FINISH_REASON_STOP;
//   std::string body = ChatCompletionBody(ctx, {c}, UsageCounts{5, 1, 0},
//                                         /*logprobs=*/false);
#ifndef WF_ROUTER_OPENAI_OPENAI_RESPONSE_H_
#define WF_ROUTER_OPENAI_OPENAI_RESPONSE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "router/openai/openai_request.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::router::openai {

using GeneratedTokens =
    google::protobuf::RepeatedPtrField<wrinklefree::v1::GeneratedToken>;

// What every OpenAI response object repeats.
struct ResponseContext {
  std::string id;       // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
  std::string system_fingerprint;  // empty -> null
  // Streams only: with stream_options.include_usage every chunk carries
  // "usage": null and the last one the totals (OpenAI's behaviour).
  bool include_usage = false;
};

struct UsageCounts {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;  // prompt tokens served from the prefix cache
};

// Usage of a request fanned out into several choices: the prompt (and its
// cached part) counts once, from the first choice; completions add up.
UsageCounts AggregateUsage(const std::vector<wrinklefree::v1::Usage>& choices);

// One finished choice.
struct ChoiceResult {
  int index = 0;
  std::string text;  // the concatenated text deltas
  wrinklefree::v1::FinishReason finish_reason =
      wrinklefree::v1::FINISH_REASON_UNSPECIFIED;
  std::string matched_stop;
  // The generated tokens (needed for logprobs and llama.cpp's return_tokens).
  GeneratedTokens tokens;
};

// ------------------------------------------------------- /v1/chat/completions

// The chat.completion object. With `logprobs` each choice carries
// {"content":[{token, logprob, bytes, top_logprobs}], "refusal": null}, else
// "logprobs": null.
std::string ChatCompletionBody(const ResponseContext& ctx,
                               const std::vector<ChoiceResult>& choices,
                               const UsageCounts& usage, bool logprobs);

// First chunk of a choice: delta {"role":"assistant","content":""}.
std::string ChatRoleChunkEvent(const ResponseContext& ctx, int index);

// A content delta; `logprob_tokens` (nullable) adds the choice's logprobs for
// the tokens of this delta.
std::string ChatContentChunkEvent(const ResponseContext& ctx, int index,
                                  std::string_view text,
                                  const GeneratedTokens* logprob_tokens);

// The last chunk of a choice: empty delta, finish_reason set.
std::string ChatFinishChunkEvent(const ResponseContext& ctx, int index,
                                 wrinklefree::v1::FinishReason reason);

// The include_usage chunk: "choices": [] and the usage totals.
std::string ChatUsageChunkEvent(const ResponseContext& ctx,
                                const UsageCounts& usage);

// ------------------------------------------------------------ /v1/completions

// The text_completion object. With `logprobs` each choice carries
// {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}
// (text_offset in code points from the start of the completion).
std::string CompletionBody(const ResponseContext& ctx,
                           const std::vector<ChoiceResult>& choices,
                           const UsageCounts& usage, bool logprobs);

// A text_completion chunk. `finish_reason` UNSPECIFIED writes null (a chunk
// in the middle). `logprob_tokens` (nullable) adds logprobs; `text_offset`
// is the choice's running code-point offset: read for this chunk's first
// token, advanced past its tokens (callers keep one per choice, starting 0).
std::string CompletionChunkEvent(const ResponseContext& ctx, int index,
                                 std::string_view text,
                                 wrinklefree::v1::FinishReason finish_reason,
                                 const GeneratedTokens* logprob_tokens,
                                 int64_t* text_offset);

// The include_usage chunk for completions.
std::string CompletionUsageChunkEvent(const ResponseContext& ctx,
                                      const UsageCounts& usage);

// ------------------------------------------------------- llama.cpp /completion

// The final /completion object: {index, content, tokens, id_slot, stop: true,
// model, tokens_predicted, tokens_evaluated, generation_settings, prompt,
// has_new_line, truncated, stop_type ("eos" | "word" | "limit" | "none"),
// stopping_word, tokens_cached, timings{cache_n, prompt_n, prompt_ms,
// prompt_per_token_ms, prompt_per_second, predicted_n, predicted_ms,
// predicted_per_token_ms, predicted_per_second}, completion_probabilities?}.
// With `streamed` (the final event of a stream) content, tokens and
// completion_probabilities are empty: the chunks already carried them.
// `prompt` is echoed as given (the text prompt; empty for token ids).
std::string LlamaCompletionBody(const ParsedGenerateRequest& request,
                                std::string_view model, std::string_view prompt,
                                const ChoiceResult& choice,
                                const UsageCounts& usage,
                                const wrinklefree::v1::Timing& timing,
                                bool streamed);

// A /completion stream chunk: {index, content, tokens, stop: false, id_slot,
// tokens_predicted, tokens_evaluated, completion_probabilities?}. `tokens`
// are this chunk's tokens; `tokens_predicted` counts all so far.
std::string LlamaCompletionChunkEvent(const ParsedGenerateRequest& request,
                                      std::string_view text,
                                      const GeneratedTokens& tokens,
                                      int tokens_predicted,
                                      int tokens_evaluated);

// The final /completion stream event (LlamaCompletionBody with streamed).
std::string LlamaCompletionFinalEvent(const ParsedGenerateRequest& request,
                                      std::string_view model,
                                      std::string_view prompt,
                                      const ChoiceResult& choice,
                                      const UsageCounts& usage,
                                      const wrinklefree::v1::Timing& timing);

// ------------------------------------------------------- tokenize, models

// {"tokens":[ids]}; with `pieces` (same length as ids) {"tokens":[{"id",
// "piece"}]} where a piece that is not valid UTF-8 becomes a byte array.
std::string TokenizeResponseBody(const std::vector<int32_t>& ids,
                                 const std::vector<std::string>* pieces);

// {"content": text}.
std::string DetokenizeResponseBody(std::string_view text);

struct ModelCard {
  std::string id;
  int64_t created = 0;
  std::string owned_by = "wrinklefree";
};

// {"object":"list","data":[{"id","object":"model","created","owned_by"}]}.
std::string ModelsListBody(const std::vector<ModelCard>& models);

}  // namespace wf::router::openai

#endif  // WF_ROUTER_OPENAI_OPENAI_RESPONSE_H_
