#include "router/openai/openai_api.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/string_view_compat.h"
#include "router/openai/internal/json_util.h"

namespace wf::router::openai {
namespace {

using internal::OrderedJson;

// Payload keys under which MakeApiStatus() stores the envelope fields.
constexpr char kPayloadHttpStatus[] = "type.wrinklefree/openai.http_status";
constexpr char kPayloadType[] = "type.wrinklefree/openai.type";
constexpr char kPayloadParam[] = "type.wrinklefree/openai.param";
constexpr char kPayloadCode[] = "type.wrinklefree/openai.code";

absl::StatusCode CodeForHttp(int http_status) {
  switch (http_status) {
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 413: return absl::StatusCode::kOutOfRange;
    case 429: return absl::StatusCode::kResourceExhausted;
    case 501: return absl::StatusCode::kUnimplemented;
    case 503: return absl::StatusCode::kUnavailable;
    case 504: return absl::StatusCode::kDeadlineExceeded;
    default:
      return http_status >= 400 && http_status < 500
                 ? absl::StatusCode::kInvalidArgument
                 : absl::StatusCode::kInternal;
  }
}

std::string_view TypeForHttp(int http_status) {
  switch (http_status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 501: return "not_supported_error";
    case 503: return "unavailable_error";
    default:
      return http_status >= 400 && http_status < 500 ? "invalid_request_error"
                                                     : "server_error";
  }
}

std::optional<std::string> Payload(const absl::Status& s, const char* key) {
  absl::optional<absl::Cord> cord = s.GetPayload(key);
  if (!cord.has_value()) return std::nullopt;
  return std::string(*cord);
}

OrderedJson ErrorJson(const ApiError& e) {
  OrderedJson inner = {
      {"message", e.message},
      {"type", e.type},
      {"param", e.param.empty() ? OrderedJson(nullptr) : OrderedJson(e.param)},
      {"code", e.code.empty() ? OrderedJson(nullptr) : OrderedJson(e.code)},
  };
  return OrderedJson{{"error", std::move(inner)}};
}

}  // namespace

absl::Status MakeApiStatus(int http_status, std::string_view message,
                           std::string_view param, std::string_view code,
                           std::string_view type) {
  absl::Status s(CodeForHttp(http_status), Av(message));
  s.SetPayload(kPayloadHttpStatus, absl::Cord(absl::StrCat(http_status)));
  s.SetPayload(kPayloadType,
               absl::Cord(Av(type.empty() ? TypeForHttp(http_status) : type)));
  if (!param.empty()) s.SetPayload(kPayloadParam, absl::Cord(Av(param)));
  if (!code.empty()) s.SetPayload(kPayloadCode, absl::Cord(Av(code)));
  return s;
}

absl::Status InvalidRequest(std::string_view message, std::string_view param,
                            std::string_view code) {
  return MakeApiStatus(400, message, param, code);
}

ApiError ToApiError(const absl::Status& status) {
  ApiError e;
  if (status.ok()) {
    e.http_status = 500;
    e.message = "internal error: OK status converted to error";
    e.type = "server_error";
    return e;
  }
  e.message = std::string(status.message());
  int http = 0;
  if (std::optional<std::string> h = Payload(status, kPayloadHttpStatus);
      h.has_value() && absl::SimpleAtoi(*h, &http)) {
    e.http_status = http;
    e.type = Payload(status, kPayloadType).value_or(std::string(TypeForHttp(http)));
    e.param = Payload(status, kPayloadParam).value_or("");
    e.code = Payload(status, kPayloadCode).value_or("");
    return e;
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      e.http_status = 400;
      break;
    case absl::StatusCode::kUnauthenticated:
      e.http_status = 401;
      e.code = "invalid_api_key";
      break;
    case absl::StatusCode::kPermissionDenied:
      e.http_status = 403;
      break;
    case absl::StatusCode::kNotFound:
      e.http_status = 404;
      break;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
      e.http_status = 503;
      e.code = "service_unavailable";
      break;
    case absl::StatusCode::kDeadlineExceeded:
      e.http_status = 504;
      e.code = "timeout";
      break;
    case absl::StatusCode::kUnimplemented:
      e.http_status = 501;
      break;
    default:
      e.http_status = 500;
      break;
  }
  e.type = std::string(TypeForHttp(e.http_status));
  return e;
}

std::string ErrorBody(const ApiError& error) {
  return internal::Dump(ErrorJson(error));
}

std::string SseEvent(std::string_view json) {
  return absl::StrCat("data: ", Av(json), "\n\n");
}

std::string SseErrorEvent(const ApiError& error) {
  return SseEvent(ErrorBody(error));
}

std::string SseDoneEvent() { return "data: [DONE]\n\n"; }

ApiError ContextLengthError(int max_context, int prompt_tokens,
                            int completion_tokens, PromptNoun noun) {
  ApiError e;
  e.http_status = 400;
  e.type = "invalid_request_error";
  e.code = "context_length_exceeded";
  const bool messages = noun == PromptNoun::kMessages;
  e.param = messages ? "messages" : "prompt";
  if (completion_tokens > 0) {
    const long long total =
        static_cast<long long>(prompt_tokens) + completion_tokens;
    e.message = absl::StrFormat(
        "This model's maximum context length is %d tokens. However, you "
        "requested %d tokens (%d in the %s, %d in the completion). Please "
        "reduce the length of the %s or completion.",
        max_context, total, prompt_tokens, messages ? "messages" : "prompt",
        completion_tokens, messages ? "messages" : "prompt");
  } else {
    e.message = absl::StrFormat(
        "This model's maximum context length is %d tokens. However, your %s "
        "resulted in %d tokens, leaving no room for the completion. Please "
        "reduce the length of the %s.",
        max_context, messages ? "messages" : "prompt", prompt_tokens,
        messages ? "messages" : "prompt");
  }
  return e;
}

absl::Status CheckContextLength(int max_context, int prompt_tokens,
                                int max_tokens, PromptNoun noun) {
  const long long needed = static_cast<long long>(prompt_tokens) +
                           (max_tokens > 0 ? max_tokens : 1);
  if (needed <= max_context) return absl::OkStatus();
  ApiError e = ContextLengthError(max_context, prompt_tokens, max_tokens, noun);
  return MakeApiStatus(e.http_status, e.message, e.param, e.code, e.type);
}

std::string_view FinishReasonString(wrinklefree::v1::FinishReason reason) {
  switch (reason) {
    case wrinklefree::v1::FINISH_REASON_STOP: return "stop";
    case wrinklefree::v1::FINISH_REASON_LENGTH: return "length";
    default: return {};
  }
}

ApiError ErrorForFinish(const wrinklefree::v1::GenerateResponse& final_response) {
  ApiError e;
  switch (final_response.finish_reason()) {
    case wrinklefree::v1::FINISH_REASON_ABORT:
      e.http_status = 503;
      e.type = "unavailable_error";
      e.code = "request_aborted";
      e.message =
          "the worker aborted the request before it finished (it may be "
          "draining); retry the request";
      break;
    case wrinklefree::v1::FINISH_REASON_ERROR:
      e.http_status = 500;
      e.type = "server_error";
      e.code = "generation_error";
      e.message = final_response.error().empty()
                      ? "generation failed on the worker"
                      : absl::StrCat("generation failed on the worker: ",
                                     final_response.error());
      break;
    default:
      e.http_status = 502;
      e.type = "server_error";
      e.code = "bad_upstream_response";
      e.message = absl::StrFormat(
          "the worker ended the request without a finish reason (value %d)",
          static_cast<int>(final_response.finish_reason()));
      break;
  }
  return e;
}

}  // namespace wf::router::openai
