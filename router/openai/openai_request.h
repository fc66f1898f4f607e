// Parsing and validation of the router's HTTP request bodies into what the
// router sends to a worker:
//   POST /v1/chat/completions   ParseChatCompletionRequest
//   POST /v1/completions        ParseCompletionRequest
//   POST /completion (llama.cpp) ParseLlamaCompletionRequest
//   POST /tokenize, /detokenize ParseTokenizeRequest, ParseDetokenizeRequest
//
// Every parser is a pure function of (body, limits): thread-safe, no I/O,
// never throws. A bad body yields a status made with MakeApiStatus() (see
// openai_api.h): convert it with ToApiError() for the HTTP response. The
// message names the field and the bad value or the limit, e.g.
// "max_tokens must be >= 1, got -5" with param "max_tokens".
//
// Unknown fields are ignored (SDKs send extra ones); fields we know but do
// not support (tools, functions, response_format other than text, audio
// output, suffix, echo, ...) are rejected with 400 rather than silently
// ignored, because ignoring them would change the output the client expects.
//
// Example:
//   absl::StatusOr<ParsedGenerateRequest> req =
//       ParseChatCompletionRequest(body, RequestLimits{});
//   if (!req.ok()) return Reply(ErrorBody(ToApiError(req.status())));
//   for (int i = 0; i < req->n; ++i) {
//     wrinklefree::v1::GenerateRequest g = MakeChoiceRequest(*req, i, id);
//     *g.mutable_token_ids() = ...;  // after rendering + tokenizing
//   }
#ifndef WF_ROUTER_OPENAI_OPENAI_REQUEST_H_
#define WF_ROUTER_OPENAI_OPENAI_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::router::openai {

// Limits the parsers enforce; the defaults are the documented service limits.
struct RequestLimits {
  // Bodies larger than this are rejected with 413 (the HTTP layer should
  // also stop reading at its own limit).
  size_t max_body_bytes = 8 << 20;
  // Deepest nesting of arrays/objects accepted (checked before parsing).
  int max_json_depth = 64;
  // Largest `n` (choices per request; each is one worker request).
  int max_n = 8;
  // At most this many stop strings, each 1..max_stop_bytes bytes.
  int max_stop_strings = 16;
  size_t max_stop_bytes = 256;
  // At most this many chat messages and logit_bias entries.
  size_t max_messages = 4096;
  size_t max_logit_bias_entries = 1024;
  // At most this many stop_token_ids (the workers refuse more).
  size_t max_stop_token_ids = 64;
  // top_logprobs for chat (0..20) and `logprobs` for completions (0..5).
  int max_top_logprobs = 20;
  int max_completion_logprobs = 5;
  // At most this many token ids in a prompt or a /detokenize request.
  size_t max_prompt_token_ids = 1 << 20;
};

enum class Endpoint { kChatCompletions, kCompletions, kLlamaCompletion };

enum class PromptKind { kChat, kText, kTokenIds };

// A generation request, validated. The router renders/tokenizes the prompt,
// fills GenerateRequest.token_ids and sends one GenerateRequest per choice.
struct ParsedGenerateRequest {
  Endpoint endpoint = Endpoint::kChatCompletions;
  // The requested model; empty when the endpoint does not require one
  // (llama.cpp's /completion).
  std::string model;

  PromptKind prompt_kind = PromptKind::kText;
  // kChat: roles are "system", "user" or "assistant" ("developer" became
  // "system"); contents are text (array-of-parts contents joined by "\n").
  wrinklefree::v1::ChatMessages chat;
  // kText: the prompt text.
  std::string text;
  // kTokenIds: the prompt, already tokenized by the client (ids >= 0; the
  // worker checks them against its vocabulary).
  std::vector<int32_t> token_ids;

  // Choices to generate (1..RequestLimits::max_n); each is its own worker
  // request (see MakeChoiceRequest).
  int n = 1;
  bool stream = false;
  // stream_options.include_usage: a final chunk with `usage` and no choices.
  bool include_usage = false;

  // The limit the client asked for (max_completion_tokens, max_tokens or
  // n_predict), or -1 when it gave none. When -1 the router picks the limit
  // (typically the room left in the context); `max_tokens_until_context`
  // records that the client asked for exactly that (n_predict = -1).
  int32_t max_tokens = -1;
  bool max_tokens_until_context = false;

  // Logprob output: `logprobs` mirrors the template's flag; for /v1/completions
  // and /completion `top_logprobs` is the client's `logprobs` / `n_probs`.
  bool logprobs = false;
  int top_logprobs = 0;

  // llama.cpp /completion: return_tokens (token ids in the response).
  bool return_tokens = false;

  // Sampling, stop conditions and logprob flags, ready to send. The prompt
  // oneof is unset; stop.max_tokens is set only when max_tokens > 0.
  wrinklefree::v1::GenerateRequest request_template;
};

absl::StatusOr<ParsedGenerateRequest> ParseChatCompletionRequest(
    std::string_view body, const RequestLimits& limits);

absl::StatusOr<ParsedGenerateRequest> ParseCompletionRequest(
    std::string_view body, const RequestLimits& limits);

// llama.cpp's native /completion. Absent sampling fields take llama-server's
// defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
// repeat_last_n 64) so old clients see the behaviour they were tuned for.
absl::StatusOr<ParsedGenerateRequest> ParseLlamaCompletionRequest(
    std::string_view body, const RequestLimits& limits);

// The worker request for choice `choice_index` (0..n-1): a copy of the
// template with `request_id`, and, when the client gave a seed and n > 1,
// seed + choice_index so that the choices differ yet stay reproducible.
wrinklefree::v1::GenerateRequest MakeChoiceRequest(
    const ParsedGenerateRequest& request, int choice_index,
    std::string_view request_id);

// POST /tokenize {content, add_special = false, parse_special = true,
// with_pieces = false} (llama.cpp's shape).
struct ParsedTokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
  bool with_pieces = false;
};
absl::StatusOr<ParsedTokenizeRequest> ParseTokenizeRequest(
    std::string_view body, const RequestLimits& limits);

// POST /detokenize {tokens: [ids]}.
absl::StatusOr<std::vector<int32_t>> ParseDetokenizeRequest(
    std::string_view body, const RequestLimits& limits);

}  // namespace wf::router::openai

#endif  // WF_ROUTER_OPENAI_OPENAI_REQUEST_H_
