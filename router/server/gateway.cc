#include "router/server/gateway.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "router/openai/openai_api.h"
#include "router/openai/openai_response.h"

namespace wf::router {
namespace {

namespace v1 = wrinklefree::v1;
using openai::ApiError;
using openai::Endpoint;

const http::Headers& JsonHeaders() {
  static const auto* h = new http::Headers{{"Content-Type", "application/json"}};
  return *h;
}

std::string_view EndpointLabel(Endpoint e) {
  switch (e) {
    case Endpoint::kChatCompletions:
      return "chat_completions";
    case Endpoint::kCompletions:
      return "completions";
    case Endpoint::kLlamaCompletion:
      return "completion";
  }
  return "other";
}

// Constant-time comparison: the time taken does not depend on where the
// strings differ.
bool SameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

ApiError FromGrpc(const grpc::Status& status) {
  ApiError e;
  e.message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::FAILED_PRECONDITION:
      e.http_status = 400;
      e.type = "invalid_request_error";
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      e.http_status = 429;
      e.type = "rate_limit_error";
      e.code = "no_capacity";
      break;
    case grpc::StatusCode::UNAVAILABLE:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "no_healthy_worker";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      e.http_status = 504;
      e.type = "server_error";
      e.code = "upstream_timeout";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
  }
  return e;
}

http::Headers ErrorHeaders(const ApiError& e) {
  http::Headers h = JsonHeaders();
  if (e.http_status == 429 || e.http_status == 503) h.emplace_back("Retry-After", "1");
  return h;
}

ApiError Err(int status, std::string message, std::string type, std::string param, std::string code) {
  ApiError e;
  e.http_status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

double Since(absl::Time t) { return absl::ToDoubleSeconds(absl::Now() - t); }

// Two routers started together count their requests alike, so under load
// they once gave the same worker the same id in the same microsecond.
uint64_t RandomIdNonce() {
  std::random_device device;
  return (uint64_t{device()} << 32) ^ uint64_t{device()};
}

}  // namespace

// One generation request: n choices, each dispatched on its own, merged into
// one OpenAI response or SSE stream.
struct Gateway::Generation : std::enable_shared_from_this<Gateway::Generation> {
  Gateway* gateway = nullptr;
  Endpoint endpoint = Endpoint::kChatCompletions;
  openai::ParsedGenerateRequest parsed;
  std::shared_ptr<http::ResponseWriter> writer;
  openai::ResponseContext ctx;
  absl::Time start;
  std::string prompt_text;  // for llama.cpp's response "prompt"
  int prompt_tokens = 0;

  std::mutex mu;
  std::vector<std::shared_ptr<DispatchHandle>> handles;
  std::vector<openai::ChoiceResult> choices;
  std::vector<v1::Usage> usages;
  std::vector<bool> role_sent;
  std::vector<int64_t> text_offsets;
  std::vector<int> generated;
  v1::Timing timing;
  int done = 0;
  bool stream_started = false;
  bool first_token = false;
  bool finished = false;
  std::optional<ApiError> error;
  std::optional<StreamLimiter::Slot> slot;  // this request's place under --max-streams-per-key

  void StartStreamLocked() {
    if (stream_started) return;
    stream_started = true;
    writer->StartStream(200, {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}});
  }

  void OnResponse(int i, v1::GenerateResponse r) {
    std::lock_guard<std::mutex> lock(mu);
    if (finished || error.has_value()) return;
    if (!first_token && r.tokens_size() > 0) {
      first_token = true;
      gateway->metrics_->FirstToken(EndpointLabel(endpoint), Since(start));
    }
    openai::ChoiceResult& c = choices[i];
    c.text += r.text_delta();
    generated[i] += r.tokens_size();
    // The token that ended generation (EOS) is not part of the completion.
    int keep = r.tokens_size();
    if (r.finished() && r.finish_reason() == v1::FINISH_REASON_STOP && r.matched_stop().empty() && keep > 0) --keep;
    if (parsed.logprobs || parsed.return_tokens) {
      for (int t = 0; t < keep; ++t) *c.tokens.Add() = r.tokens(t);
    }
    if (r.finished()) {
      c.finish_reason = r.finish_reason();
      c.matched_stop = r.matched_stop();
      usages[i] = r.usage();
      if (i == 0) timing = r.timing();
      if (r.finish_reason() != v1::FINISH_REASON_STOP && r.finish_reason() != v1::FINISH_REASON_LENGTH) {
        error = openai::ErrorForFinish(r);
        return;
      }
    }
    if (!parsed.stream) return;
    StartStreamLocked();
    google::protobuf::RepeatedPtrField<v1::GeneratedToken> kept;
    for (int t = 0; t < keep; ++t) *kept.Add() = r.tokens(t);
    const openai::GeneratedTokens* lp = parsed.logprobs ? &kept : nullptr;
    switch (endpoint) {
      case Endpoint::kChatCompletions:
        if (!role_sent[i]) {
          writer->Write(openai::ChatRoleChunkEvent(ctx, i));
          role_sent[i] = true;
        }
        if (!r.text_delta().empty() || (lp != nullptr && keep > 0)) {
          writer->Write(openai::ChatContentChunkEvent(ctx, i, r.text_delta(), lp));
        }
        if (r.finished()) writer->Write(openai::ChatFinishChunkEvent(ctx, i, r.finish_reason()));
        break;
      case Endpoint::kCompletions:
        if (!r.text_delta().empty() || r.finished() || (lp != nullptr && keep > 0)) {
          writer->Write(openai::CompletionChunkEvent(ctx, i, r.text_delta(),
                                                     r.finished() ? r.finish_reason() : v1::FINISH_REASON_UNSPECIFIED,
                                                     lp, &text_offsets[i]));
        }
        break;
      case Endpoint::kLlamaCompletion:
        if (!r.finished() && (!r.text_delta().empty() || keep > 0)) {
          writer->Write(openai::LlamaCompletionChunkEvent(parsed, r.text_delta(), kept, generated[i], prompt_tokens));
        }
        break;
    }
  }

  void OnDone(int i, const grpc::Status& status) {
    std::vector<std::shared_ptr<DispatchHandle>> to_cancel;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      if (!status.ok() && !error.has_value() && status.error_code() != grpc::StatusCode::CANCELLED) {
        error = FromGrpc(status);
        if (generated[i] > 0) {
          // Tokens were already produced, so no retry was possible: say what
          // happened rather than blaming the pool.
          error->http_status = 502;
          error->type = "server_error";
          error->code = "upstream_failed";
          error->message = absl::StrCat("the worker serving this request failed after ", generated[i],
                                        " tokens: ", status.error_message());
        }
      } else if (!status.ok() && !error.has_value()) {
        error = Err(499, "cancelled", "server_error", "", "");
      }
      (void)i;
      if (error.has_value() && done < static_cast<int>(handles.size())) to_cancel = handles;
      if (done < static_cast<int>(choices.size())) {
        // Wait for the others (cancelled just below on error).
      } else {
        Complete();
      }
    }
    for (auto& h : to_cancel) {
      if (h) h->Cancel();
    }
  }

  // All choices are done: the last bytes of the response.
  void Complete() {
    finished = true;
    if (slot.has_value()) slot->Release();
    gateway->metrics_->StreamEnded();
    const std::string_view label = EndpointLabel(endpoint);
    if (error.has_value()) {
      if (error->http_status == 499) {  // the client left: nobody to answer
        gateway->metrics_->Request(label, 499, Since(start));
        if (stream_started) writer->End();
        return;
      }
      gateway->metrics_->Request(label, error->http_status, Since(start));
      if (stream_started) {
        writer->Write(openai::SseErrorEvent(*error));
        writer->Write(openai::SseDoneEvent());
        writer->End();
      } else {
        writer->Send(error->http_status, ErrorHeaders(*error), openai::ErrorBody(*error));
      }
      return;
    }
    const openai::UsageCounts usage = openai::AggregateUsage(usages);
    gateway->metrics_->Request(label, 200, Since(start));
    if (gateway->options_.log_requests) {
      WF_LOG(INFO) << "request " << ctx.id << " " << label << " prompt=" << usage.prompt_tokens
                   << " completion=" << usage.completion_tokens << " cached=" << usage.cached_tokens
                   << absl::StrFormat(" %.3fs", Since(start));
    }
    if (parsed.stream) {
      StartStreamLocked();
      switch (endpoint) {
        case Endpoint::kChatCompletions:
          if (parsed.include_usage) writer->Write(openai::ChatUsageChunkEvent(ctx, usage));
          writer->Write(openai::SseDoneEvent());
          break;
        case Endpoint::kCompletions:
          if (parsed.include_usage) writer->Write(openai::CompletionUsageChunkEvent(ctx, usage));
          writer->Write(openai::SseDoneEvent());
          break;
        case Endpoint::kLlamaCompletion:
          writer->Write(openai::LlamaCompletionFinalEvent(parsed, ctx.model, prompt_text, choices[0], usage, timing));
          break;
      }
      writer->End();
      return;
    }
    std::string body;
    switch (endpoint) {
      case Endpoint::kChatCompletions:
        body = openai::ChatCompletionBody(ctx, choices, usage, parsed.logprobs);
        break;
      case Endpoint::kCompletions:
        body = openai::CompletionBody(ctx, choices, usage, parsed.logprobs);
        break;
      case Endpoint::kLlamaCompletion:
        body = openai::LlamaCompletionBody(parsed, ctx.model, prompt_text, choices[0], usage, timing, false);
        break;
    }
    writer->Send(200, JsonHeaders(), std::move(body));
  }
};

Gateway::Gateway(WorkerPool* pool, Dispatcher* dispatcher, RouterMetrics* metrics, GatewayOptions options)
    : pool_(pool),
      dispatcher_(dispatcher),
      metrics_(metrics),
      options_(std::move(options)),
      streams_(options_.api_keys.size(), options_.max_streams_per_key),
      id_nonce_(RandomIdNonce()) {}

std::string Gateway::NewResponseId(Endpoint endpoint, absl::Time start) {
  const uint64_t serial = next_id_.fetch_add(1);
  return absl::StrFormat("%s-%016x%x%08x", endpoint == Endpoint::kChatCompletions ? "chatcmpl" : "cmpl", id_nonce_,
                         absl::ToUnixMicros(start), serial);
}

absl::StatusOr<std::shared_ptr<const ModelTokenizer>> Gateway::Tokenizer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (tokenizer_ != nullptr) return tokenizer_;
  }
  absl::StatusOr<v1::ModelInfo> info = pool_->ModelInfo();
  if (!info.ok()) return info.status();
  absl::StatusOr<std::unique_ptr<ModelTokenizer>> tok = ModelTokenizer::Create(*info);
  if (!tok.ok()) return tok.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (tokenizer_ == nullptr) {
    tokenizer_ = std::shared_ptr<const ModelTokenizer>(std::move(*tok));
    tokenizer_model_ = info->model_name();
  }
  return tokenizer_;
}

std::string Gateway::ServedModelName() {
  if (!options_.model_name.empty()) return options_.model_name;
  std::lock_guard<std::mutex> lock(mu_);
  return tokenizer_model_;
}

bool Gateway::Authorized(std::optional<std::string_view> authorization) const {
  return Authenticate(authorization).has_value();
}

std::optional<int> Gateway::Authenticate(std::optional<std::string_view> authorization) const {
  if (options_.api_keys.empty()) return -1;
  if (!authorization.has_value()) return std::nullopt;
  std::string_view v = *authorization;
  if (v.size() < 7 || !absl::EqualsIgnoreCase(absl::string_view(v.data(), 7), "bearer ")) return std::nullopt;
  v.remove_prefix(7);
  int match = -1;
  for (size_t i = 0; i < options_.api_keys.size(); ++i) {  // no early exit
    const bool same = SameSecret(v, options_.api_keys[i]);
    match = same ? static_cast<int>(i) : match;
  }
  if (match < 0) return std::nullopt;
  return match;
}

std::string Gateway::TooManyStreamsMessage() const {
  return absl::StrCat("this API key already has ", options_.max_streams_per_key,
                      " generation requests in flight, the limit per key (--max-streams-per-key); "
                      "retry when one of them has ended");
}

absl::Status Gateway::ApplyTokenLimits(int prompt_tokens, int max_context, int* max_tokens) const {
  if (options_.max_prompt_tokens > 0 && prompt_tokens > options_.max_prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", prompt_tokens,
                                                   " tokens, more than this server's limit of ",
                                                   options_.max_prompt_tokens, " (--max-prompt-tokens)"));
  }
  if (options_.max_output_tokens <= 0) return absl::OkStatus();
  if (*max_tokens > options_.max_output_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens ", *max_tokens, " is more than this server's limit of ",
                                                   options_.max_output_tokens, " (--max-output-tokens)"));
  }
  if (*max_tokens <= 0) *max_tokens = std::min(options_.max_output_tokens, std::max(max_context - prompt_tokens, 1));
  return absl::OkStatus();
}

void Gateway::SendError(const std::shared_ptr<http::ResponseWriter>& writer, const ApiError& error,
                        std::string_view endpoint, absl::Time start) {
  metrics_->Request(endpoint, error.http_status, Since(start));
  writer->Send(error.http_status, ErrorHeaders(error), openai::ErrorBody(error));
}

void Gateway::Handle(http::Request request, std::shared_ptr<http::ResponseWriter> writer) {
  const absl::Time start = absl::Now();
  const std::string& path = request.path;
  const bool post = request.method == "POST";
  const bool get = request.method == "GET";
  if (path == "/health") {
    writer->Send(200, JsonHeaders(), R"({"status":"ok"})");
    return;
  }
  if (path == "/ready") {
    int healthy = 0;
    for (const WorkerStatus& w : pool_->Status()) healthy += w.healthy ? 1 : 0;
    // Ready means requests can be served: a healthy worker, and the model
    // (tokenizer, chat format) known from a worker's model info.
    if (healthy > 0 && pool_->ModelInfo().ok()) {
      writer->Send(200, JsonHeaders(), absl::StrCat(R"({"status":"ready","healthy_workers":)", healthy, "}"));
    } else {
      writer->Send(503, {{"Content-Type", "application/json"}, {"Retry-After", "1"}},
                   absl::StrCat(R"({"status":"not ready","healthy_workers":)", healthy, "}"));
    }
    return;
  }
  if (path == "/metrics") {
    writer->Send(200, {{"Content-Type", "text/plain; version=0.0.4"}}, metrics_->Serialize());
    return;
  }
  struct Route {
    const char* path;
    bool post;
  };
  static constexpr Route kRoutes[] = {{"/v1/chat/completions", true}, {"/v1/completions", true},
                                      {"/completion", true},          {"/tokenize", true},
                                      {"/detokenize", true},          {"/v1/models", false}};
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (path == r.path) route = &r;
  }
  if (route == nullptr) {
    SendError(writer,
              Err(404, absl::StrCat("no route for ", request.method.substr(0, 32), " ", path.substr(0, 200)), "invalid_request_error", "", "not_found"),
              "other", start);
    return;
  }
  if ((route->post && !post) || (!route->post && !get)) {
    SendError(writer,
              Err(405, absl::StrCat(path, " takes ", route->post ? "POST" : "GET"), "invalid_request_error", "", "method_not_allowed"),
              "other", start);
    return;
  }
  const std::optional<int> key = Authenticate(request.Header("authorization"));
  if (!key.has_value()) {
    SendError(writer,
              Err(401, "missing or invalid API key (send Authorization: Bearer KEY)", "invalid_request_error", "", "invalid_api_key"),
              "other", start);
    return;
  }
  if (path == "/v1/models") {
    if (auto tok = Tokenizer(); !tok.ok()) {
      SendError(writer, FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(tok.status().message()))),
                "models", start);
      return;
    }
    writer->Send(200, JsonHeaders(), openai::ModelsListBody({{.id = ServedModelName(), .created = 0}}));
    return;
  }
  if (path == "/tokenize") return HandleTokenize(request, writer);
  if (path == "/detokenize") return HandleDetokenize(request, writer);
  HandleGenerate(path == "/v1/chat/completions" ? Endpoint::kChatCompletions
                 : path == "/v1/completions"    ? Endpoint::kCompletions
                                                : Endpoint::kLlamaCompletion,
                 request, std::move(writer), *key);
}

void Gateway::HandleGenerate(Endpoint endpoint, const http::Request& request,
                             std::shared_ptr<http::ResponseWriter> writer, int key_index) {
  const absl::Time start = absl::Now();
  const std::string_view label = EndpointLabel(endpoint);
  // Held until the request ends; any early return below frees it.
  std::optional<StreamLimiter::Slot> slot = streams_.TryAcquire(key_index);
  if (!slot.has_value()) {
    return SendError(writer, Err(429, TooManyStreamsMessage(), "rate_limit_error", "", "rate_limit_exceeded"), label,
                     start);
  }
  absl::StatusOr<openai::ParsedGenerateRequest> parsed =
      endpoint == Endpoint::kChatCompletions ? openai::ParseChatCompletionRequest(request.body, options_.limits)
      : endpoint == Endpoint::kCompletions   ? openai::ParseCompletionRequest(request.body, options_.limits)
                                             : openai::ParseLlamaCompletionRequest(request.body, options_.limits);
  if (!parsed.ok()) return SendError(writer, openai::ToApiError(parsed.status()), label, start);
  absl::StatusOr<std::shared_ptr<const ModelTokenizer>> tok = Tokenizer();
  if (!tok.ok()) {
    return SendError(writer, FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(tok.status().message()))),
                     label, start);
  }
  const std::string served = ServedModelName();
  if (endpoint != Endpoint::kLlamaCompletion && !parsed->model.empty() && parsed->model != served) {
    return SendError(writer,
                     Err(404, absl::StrCat("The model '", parsed->model.substr(0, 200),
                                              "' does not exist; this router serves '", served, "'"), "invalid_request_error", "model", "model_not_found"),
                     label, start);
  }

  // The prompt as token ids, exactly as the worker will see them.
  std::vector<int32_t> ids;
  std::string prompt_text;
  switch (parsed->prompt_kind) {
    case openai::PromptKind::kChat: {
      std::vector<tokenizer::ChatMessage> messages;
      for (const auto& m : parsed->chat.messages()) messages.push_back({m.role(), m.content()});
      absl::StatusOr<std::vector<int32_t>> r = (*tok)->EncodeChat(messages);
      if (!r.ok()) return SendError(writer, openai::ToApiError(openai::InvalidRequest(std::string(r.status().message()), "messages")), label, start);
      ids = *std::move(r);
      break;
    }
    case openai::PromptKind::kText: {
      absl::StatusOr<std::vector<int32_t>> r = (*tok)->EncodeText(parsed->text);
      if (!r.ok()) return SendError(writer, openai::ToApiError(openai::InvalidRequest(std::string(r.status().message()), "prompt")), label, start);
      ids = *std::move(r);
      prompt_text = parsed->text;
      break;
    }
    case openai::PromptKind::kTokenIds: {
      const int vocab = (*tok)->tokenizer().vocab_size();
      for (size_t k = 0; k < parsed->token_ids.size(); ++k) {
        if (parsed->token_ids[k] < 0 || parsed->token_ids[k] >= vocab) {
          return SendError(writer,
                           openai::ToApiError(openai::InvalidRequest(
                               absl::StrCat("prompt[", k, "] = ", parsed->token_ids[k],
                                            " is not a token id of this model (vocabulary size ", vocab, ")"),
                               "prompt")),
                           label, start);
        }
      }
      ids = parsed->token_ids;
      break;
    }
  }
  const int max_context = (*tok)->max_context();
  const int prompt_tokens = static_cast<int>(ids.size());
  if (prompt_tokens == 0) {
    return SendError(writer, openai::ToApiError(openai::InvalidRequest("the prompt is empty", endpoint == Endpoint::kChatCompletions ? "messages" : "prompt")), label, start);
  }
  const openai::PromptNoun noun =
      endpoint == Endpoint::kChatCompletions ? openai::PromptNoun::kMessages : openai::PromptNoun::kPrompt;
  int max_tokens = parsed->max_tokens;
  if (absl::Status s = ApplyTokenLimits(prompt_tokens, max_context, &max_tokens); !s.ok()) {
    const bool prompt_over = options_.max_prompt_tokens > 0 && prompt_tokens > options_.max_prompt_tokens;
    const char* param = !prompt_over ? "max_tokens" : endpoint == Endpoint::kChatCompletions ? "messages" : "prompt";
    return SendError(writer, openai::ToApiError(openai::InvalidRequest(std::string(s.message()), param)), label, start);
  }
  if (absl::Status s = openai::CheckContextLength(max_context, prompt_tokens, std::max(max_tokens, 1), noun);
      !s.ok()) {
    return SendError(writer, openai::ToApiError(s), label, start);
  }
  if (max_tokens < 0 && parsed->max_tokens_until_context) max_tokens = max_context - prompt_tokens;

  auto gen = std::make_shared<Generation>();
  gen->gateway = this;
  gen->endpoint = endpoint;
  gen->writer = writer;
  gen->start = start;
  gen->prompt_text = std::move(prompt_text);
  gen->prompt_tokens = prompt_tokens;
  gen->ctx.id = NewResponseId(endpoint, start);
  gen->ctx.created = absl::ToUnixSeconds(start);
  gen->ctx.model = served;
  gen->ctx.include_usage = parsed->include_usage;
  gen->parsed = *std::move(parsed);
  const int n = gen->parsed.n;
  gen->choices.resize(n);
  for (int i = 0; i < n; ++i) gen->choices[i].index = i;
  gen->usages.resize(n);
  gen->role_sent.assign(n, false);
  gen->text_offsets.assign(n, 0);
  gen->generated.assign(n, 0);
  gen->handles.resize(n);
  gen->slot = std::move(slot);
  metrics_->StreamStarted();

  std::string session;
  if (auto h = request.Header(options_.session_header); h.has_value()) session = std::string(*h);
  std::vector<uint64_t> hashes = (*tok)->BlockHashes(ids);
  // A client that goes away cancels every upstream stream at once.
  std::weak_ptr<Generation> weak = gen;
  writer->OnClose([weak] {
    std::shared_ptr<Generation> g = weak.lock();
    if (!g) return;
    std::vector<std::shared_ptr<DispatchHandle>> handles;
    {
      std::lock_guard<std::mutex> lock(g->mu);
      handles = g->handles;
    }
    for (auto& h : handles) {
      if (h) h->Cancel();
    }
  });
  for (int i = 0; i < n; ++i) {
    v1::GenerateRequest req = openai::MakeChoiceRequest(gen->parsed, i, absl::StrCat(gen->ctx.id, "-", i));
    req.mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
    if (max_tokens > 0) req.mutable_stop()->set_max_tokens(max_tokens);
    DispatchCallbacks cb;
    cb.on_response = [gen, i](v1::GenerateResponse r) { gen->OnResponse(i, std::move(r)); };
    cb.on_done = [gen, i](const grpc::Status& s, const std::string&) { gen->OnDone(i, s); };
    // Not under gen->mu: a dispatch that fails at once calls OnDone here.
    std::shared_ptr<DispatchHandle> handle = dispatcher_->Dispatch(std::move(req), hashes, session, std::move(cb));
    bool cancel_now;
    {
      std::lock_guard<std::mutex> lock(gen->mu);
      gen->handles[i] = handle;
      cancel_now = gen->error.has_value() || writer->closed();
    }
    if (cancel_now) handle->Cancel();
  }
}

void Gateway::HandleTokenize(const http::Request& request, const std::shared_ptr<http::ResponseWriter>& writer) {
  const absl::Time start = absl::Now();
  absl::StatusOr<openai::ParsedTokenizeRequest> parsed = openai::ParseTokenizeRequest(request.body, options_.limits);
  if (!parsed.ok()) return SendError(writer, openai::ToApiError(parsed.status()), "tokenize", start);
  absl::StatusOr<std::shared_ptr<const ModelTokenizer>> tok = Tokenizer();
  if (!tok.ok()) {
    return SendError(writer, FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(tok.status().message()))),
                     "tokenize", start);
  }
  absl::StatusOr<std::vector<int32_t>> ids = (*tok)->EncodeText(parsed->content, parsed->add_special);
  if (!ids.ok()) return SendError(writer, openai::ToApiError(openai::InvalidRequest(std::string(ids.status().message()), "content")), "tokenize", start);
  std::vector<std::string> pieces;
  if (parsed->with_pieces) {
    for (int32_t id : *ids) {
      auto piece = (*tok)->tokenizer().Decode({id});
      pieces.push_back(piece.ok() ? *piece : "");
    }
  }
  metrics_->Request("tokenize", 200, Since(start));
  writer->Send(200, JsonHeaders(), openai::TokenizeResponseBody(*ids, parsed->with_pieces ? &pieces : nullptr));
}

void Gateway::HandleDetokenize(const http::Request& request, const std::shared_ptr<http::ResponseWriter>& writer) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<int32_t>> ids = openai::ParseDetokenizeRequest(request.body, options_.limits);
  if (!ids.ok()) return SendError(writer, openai::ToApiError(ids.status()), "detokenize", start);
  absl::StatusOr<std::shared_ptr<const ModelTokenizer>> tok = Tokenizer();
  if (!tok.ok()) {
    return SendError(writer, FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(tok.status().message()))),
                     "detokenize", start);
  }
  const int vocab = (*tok)->tokenizer().vocab_size();
  for (size_t k = 0; k < ids->size(); ++k) {
    if ((*ids)[k] < 0 || (*ids)[k] >= vocab) {
      return SendError(writer,
                       openai::ToApiError(openai::InvalidRequest(
                           absl::StrCat("tokens[", k, "] = ", (*ids)[k], " is outside the vocabulary [0, ", vocab, ")"),
                           "tokens")),
                       "detokenize", start);
    }
  }
  absl::StatusOr<std::string> text = (*tok)->tokenizer().Decode(*ids, /*skip_special=*/false);
  if (!text.ok()) return SendError(writer, openai::ToApiError(text.status()), "detokenize", start);
  metrics_->Request("detokenize", 200, Since(start));
  writer->Send(200, JsonHeaders(), openai::DetokenizeResponseBody(*text));
}

}  // namespace wf::router
