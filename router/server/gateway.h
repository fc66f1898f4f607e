// The OpenAI-compatible HTTP gateway: routes each HTTP request (router/http)
// to its handler, parses and validates it (router/openai), renders and
// tokenizes the prompt with the workers' tokenizer (no model file here),
// hashes its KV blocks, dispatches it (dispatcher.h) and turns the worker's
// stream into OpenAI (or llama.cpp) JSON or SSE.
//
// Endpoints: POST /v1/chat/completions, /v1/completions, /completion
// (llama.cpp), /tokenize, /detokenize; GET /v1/models, /health (liveness),
// /ready (a healthy worker exists), /metrics (Prometheus; no key needed).
// With API keys configured, every /v1/* and generation endpoint needs
// "Authorization: Bearer KEY" (compared in constant time; keys never logged);
// /health, /ready and /metrics never do. With max_streams_per_key set, a key
// that already has that many generation requests in flight (HTTP and gRPC
// together) gets 429 rate_limit_exceeded with Retry-After until one ends.
//
// Threading: Handle() runs on HTTP IO threads and never blocks; responses
// are written from gRPC threads. A client that disconnects cancels its
// upstream streams at once.
#ifndef WF_ROUTER_SERVER_GATEWAY_H_
#define WF_ROUTER_SERVER_GATEWAY_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "router/dispatch/model_tokenizer.h"
#include "router/dispatch/worker_pool.h"
#include "router/http/http_server.h"
#include "router/openai/openai_api.h"
#include "router/openai/openai_request.h"
#include "router/server/dispatcher.h"
#include "router/server/router_metrics.h"
#include "router/server/stream_limiter.h"

namespace wf::router {

struct GatewayOptions {
  std::vector<std::string> api_keys;  // empty: no authentication
  std::string session_header = "x-session-id";
  std::string model_name;  // served name override; empty = the workers'
  openai::RequestLimits limits;
  bool log_requests = false;
  int max_streams_per_key = 0;  // concurrent generation requests per key; 0 = unlimited
  int max_prompt_tokens = 0;    // 0 = only the context limit
  int max_output_tokens = 0;    // largest max_tokens, and the default; 0 = only the context limit
};

class Gateway {
 public:
  Gateway(WorkerPool* pool, Dispatcher* dispatcher, RouterMetrics* metrics, GatewayOptions options);

  void Handle(http::Request request, std::shared_ptr<http::ResponseWriter> writer);

  // The tokenizer and model facts, from the workers' GetModelInfo (fetched
  // lazily, refreshed if the workers' model changes). UNAVAILABLE until a
  // worker has answered.
  absl::StatusOr<std::shared_ptr<const ModelTokenizer>> Tokenizer();
  std::string ServedModelName();

  // Whether `authorization` (the header value) carries a configured key.
  bool Authorized(std::optional<std::string_view> authorization) const;
  // The index of the configured key that `authorization` carries, -1 when
  // authentication is off, nullopt when the key is missing or unknown.
  // Every configured key is compared, in constant time each.
  std::optional<int> Authenticate(std::optional<std::string_view> authorization) const;

  // A place for one generation request of key `key_index` (see
  // StreamLimiter), or nullopt when the key is at max_streams_per_key.
  std::optional<StreamLimiter::Slot> AcquireStream(int key_index) { return streams_.TryAcquire(key_index); }
  // The message of the answer to a request over max_streams_per_key.
  std::string TooManyStreamsMessage() const;

  // max_prompt_tokens / max_output_tokens: OK, or INVALID_ARGUMENT naming
  // the limit and its flag. `*max_tokens` (<= 0: not set by the request)
  // becomes min(max_output_tokens, room the context leaves) when unset.
  absl::Status ApplyTokenLimits(int prompt_tokens, int max_context, int* max_tokens) const;

  // A new response id ("chatcmpl-..." or "cmpl-..."; its choices' worker
  // requests are "<id>-<choice>"). Workers refuse a request id that is
  // already running and several routers share them, so an id is unique
  // across gateways, not only within one: besides `start` and a serial it
  // carries a random number drawn once per gateway. Thread-safe.
  std::string NewResponseId(openai::Endpoint endpoint, absl::Time start);

 private:
  struct Generation;
  void HandleGenerate(openai::Endpoint endpoint, const http::Request& request,
                      std::shared_ptr<http::ResponseWriter> writer, int key_index);
  void HandleTokenize(const http::Request& request, const std::shared_ptr<http::ResponseWriter>& writer);
  void HandleDetokenize(const http::Request& request, const std::shared_ptr<http::ResponseWriter>& writer);
  void SendError(const std::shared_ptr<http::ResponseWriter>& writer, const openai::ApiError& error,
                 std::string_view endpoint, absl::Time start);

  WorkerPool* pool_;
  Dispatcher* dispatcher_;
  RouterMetrics* metrics_;
  GatewayOptions options_;
  StreamLimiter streams_;
  std::mutex mu_;
  std::shared_ptr<const ModelTokenizer> tokenizer_;
  std::string tokenizer_model_;  // model name the tokenizer was built for
  const uint64_t id_nonce_;  // see NewResponseId
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_GATEWAY_H_
