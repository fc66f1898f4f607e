// Fuzz target: the router's request-body parsers, as the gateway calls them
// (router/server/gateway.cc), on arbitrary bytes. The same body goes to every
// endpoint: /v1/chat/completions, /v1/completions, /completion, /tokenize and
// /detokenize. A rejected body must map to a 4xx/5xx error whose envelope is
// valid JSON; an accepted one must give 1..max_n worker requests that survive
// a protobuf round trip (proto3 strings must be UTF-8, or the worker cannot
// parse the request).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "nlohmann/json.hpp"
#include "router/openai/openai_api.h"
#include "router/openai/openai_request.h"
#include "wrinklefree/v1/worker.pb.h"

namespace {

namespace openai = ::wf::router::openai;
using ::wf::fuzz::Fail;

void CheckError(const absl::Status& status) {
  const openai::ApiError error = openai::ToApiError(status);
  if (error.http_status < 400 || error.http_status > 599) Fail("error maps to a non-error HTTP status");
  if (!nlohmann::json::accept(openai::ErrorBody(error))) Fail("ErrorBody is not valid JSON");
  const std::string sse = openai::SseErrorEvent(error);
  if (sse.find('\n') != sse.size() - 2) Fail("SseErrorEvent is not a single-line event");
}

void CheckGenerate(const absl::StatusOr<openai::ParsedGenerateRequest>& parsed,
                   const openai::RequestLimits& limits) {
  if (!parsed.ok()) return CheckError(parsed.status());
  if (parsed->n < 1 || parsed->n > limits.max_n) Fail("n outside 1..max_n accepted");
  for (int i = 0; i < parsed->n; ++i) {
    const wrinklefree::v1::GenerateRequest request =
        openai::MakeChoiceRequest(*parsed, i, "req-" + std::to_string(i));
    wrinklefree::v1::GenerateRequest again;
    if (!again.ParseFromString(request.SerializeAsString())) {
      Fail("the worker request does not survive a protobuf round trip");
    }
  }
  wrinklefree::v1::ChatMessages chat;
  if (!chat.ParseFromString(parsed->chat.SerializeAsString())) {
    Fail("the chat messages do not survive a protobuf round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const openai::RequestLimits limits;
  CheckGenerate(openai::ParseChatCompletionRequest(body, limits), limits);
  CheckGenerate(openai::ParseCompletionRequest(body, limits), limits);
  CheckGenerate(openai::ParseLlamaCompletionRequest(body, limits), limits);
  if (absl::StatusOr<openai::ParsedTokenizeRequest> t = openai::ParseTokenizeRequest(body, limits);
      !t.ok()) {
    CheckError(t.status());
  }
  if (absl::StatusOr<std::vector<int32_t>> d = openai::ParseDetokenizeRequest(body, limits); !d.ok()) {
    CheckError(d.status());
  } else if (d->size() > limits.max_prompt_token_ids) {
    Fail("more detokenize ids than the limit accepted");
  }
  return 0;
}
