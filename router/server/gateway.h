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
// "Authorization: Bearer KEY" (compared in constant time; keys never logged).
//
// Threading: Handle() runs on HTTP IO threads and never blocks; responses
// are written from gRPC threads. A client that disconnects cancels its
// upstream streams at once.
#ifndef WF_ROUTER_SERVER_GATEWAY_H_
#define WF_ROUTER_SERVER_GATEWAY_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "router/dispatch/model_tokenizer.h"
#include "router/dispatch/worker_pool.h"
#include "router/http/http_server.h"
#include "router/openai/openai_api.h"
#include "router/openai/openai_request.h"
#include "router/server/dispatcher.h"
#include "router/server/router_metrics.h"

namespace wf::router {

struct GatewayOptions {
  std::vector<std::string> api_keys;  // empty: no authentication
  std::string session_header = "x-session-id";
  std::string model_name;  // served name override; empty = the workers'
  openai::RequestLimits limits;
  bool log_requests = false;
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

 private:
  struct Generation;
  void HandleGenerate(openai::Endpoint endpoint, const http::Request& request,
                      std::shared_ptr<http::ResponseWriter> writer);
  void HandleTokenize(const http::Request& request, const std::shared_ptr<http::ResponseWriter>& writer);
  void HandleDetokenize(const http::Request& request, const std::shared_ptr<http::ResponseWriter>& writer);
  void SendError(const std::shared_ptr<http::ResponseWriter>& writer, const openai::ApiError& error,
                 std::string_view endpoint, absl::Time start);

  WorkerPool* pool_;
  Dispatcher* dispatcher_;
  RouterMetrics* metrics_;
  GatewayOptions options_;
  std::mutex mu_;
  std::shared_ptr<const ModelTokenizer> tokenizer_;
  std::string tokenizer_model_;  // model name the tokenizer was built for
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_GATEWAY_H_
