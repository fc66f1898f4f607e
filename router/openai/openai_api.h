// OpenAI-compatible API layer of the router: errors and SSE framing shared by
// the request parser (openai_request.h) and the response builders
// (openai_response.h). Everything here is a pure function of its arguments:
// no sockets, no gRPC calls, no clocks, no randomness. All functions are
// thread-safe and never throw.
//
// Errors travel inside the router as absl::Status; the fields OpenAI's error
// envelope needs (HTTP status, type, param, code) ride along as payloads set by
// MakeApiStatus() and are recovered by ToApiError(), which also maps plain
// statuses (e.g. a worker's UNAVAILABLE) to sensible HTTP errors.
//
// Example:
//   absl::Status s = MakeApiStatus(400, "n must be between 1 and 8, got 9",
//                                  "n");
//   ApiError e = ToApiError(s);        // {400, "...", "invalid_request_error",
//                                      //  "n", ""}
//   std::string body = ErrorBody(e);   // {"error":{"message":...,"param":"n",
//                                      //  "code":null,"type":...}}
//   std::string sse = SseErrorEvent(e) + SseDoneEvent();
#ifndef WF_ROUTER_OPENAI_OPENAI_API_H_
#define WF_ROUTER_OPENAI_OPENAI_API_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::router::openai {

// One error as OpenAI reports it. Empty `param` / `code` serialize as null.
struct ApiError {
  int http_status = 500;
  std::string message;
  std::string type = "server_error";
  std::string param;
  std::string code;
};

// Builds a status that carries an OpenAI error. The absl code is derived from
// `http_status` (400 -> INVALID_ARGUMENT, 404 -> NOT_FOUND, 413 ->
// OUT_OF_RANGE, 429 -> RESOURCE_EXHAUSTED, 503 -> UNAVAILABLE, ...); `type`
// defaults to the OpenAI type of that HTTP status when empty.
absl::Status MakeApiStatus(int http_status, std::string_view message,
                           std::string_view param = "",
                           std::string_view code = "",
                           std::string_view type = "");

// Shorthand for the common 400 invalid_request_error naming a field.
absl::Status InvalidRequest(std::string_view message, std::string_view param,
                            std::string_view code = "");

// Recovers the error of a status made by MakeApiStatus(), or maps any other
// non-OK status by its code:
//   INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE -> 400
//   UNAUTHENTICATED -> 401, PERMISSION_DENIED -> 403, NOT_FOUND -> 404
//   RESOURCE_EXHAUSTED, UNAVAILABLE, ABORTED, CANCELLED -> 503 (retryable:
//     a worker's full queue or drain is "no capacity", not a per-key limit)
//   DEADLINE_EXCEEDED -> 504, UNIMPLEMENTED -> 501, anything else -> 500.
// An OK status yields a 500 "internal error: OK status converted to error"
// (a caller bug made visible rather than hidden).
ApiError ToApiError(const absl::Status& status);

// OpenAI's error envelope: {"error":{"message","type","param","code"}}.
std::string ErrorBody(const ApiError& error);

// An error after streaming began (HTTP 200 already committed), sent in-band as
// one SSE event "data: {"error":{...}}\n\n". Follow it with SseDoneEvent().
std::string SseErrorEvent(const ApiError& error);

// The OpenAI stream terminator "data: [DONE]\n\n".
std::string SseDoneEvent();

// Frames one JSON document as an SSE event: "data: <json>\n\n". `json` must be
// a single line (every builder here produces compact JSON).
std::string SseEvent(std::string_view json);

// Which prompt a context-length error talks about.
enum class PromptNoun { kMessages, kPrompt };

// OpenAI's context-length error (400, code "context_length_exceeded", param
// "messages" or "prompt"). With completion_tokens > 0:
//   "This model's maximum context length is M tokens. However, you requested
//    N tokens (P in the messages, K in the completion). Please reduce the
//    length of the messages or completion."
// With completion_tokens <= 0 only the prompt is counted.
ApiError ContextLengthError(int max_context, int prompt_tokens,
                            int completion_tokens, PromptNoun noun);

// Checks prompt_tokens + max_tokens against max_context; OK or a status
// carrying ContextLengthError(). max_tokens <= 0 checks the prompt alone
// (which must leave room for at least one generated token).
absl::Status CheckContextLength(int max_context, int prompt_tokens,
                                int max_tokens, PromptNoun noun);

// OpenAI's finish_reason for a worker's: STOP -> "stop", LENGTH -> "length".
// ABORT, ERROR and UNSPECIFIED have no OpenAI spelling: they return an empty
// view and the caller reports ErrorForFinish() instead of a normal end.
std::string_view FinishReasonString(wrinklefree::v1::FinishReason reason);

// The error to report for a final response whose finish reason has no OpenAI
// spelling: ABORT -> 503 "request_aborted" (the worker dropped it, e.g. while
// draining; retryable), ERROR -> 500 with the worker's message,
// UNSPECIFIED -> 502 "bad_upstream_response".
ApiError ErrorForFinish(const wrinklefree::v1::GenerateResponse& final_response);

}  // namespace wf::router::openai

#endif  // WF_ROUTER_OPENAI_OPENAI_API_H_
