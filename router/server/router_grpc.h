// The router's gRPC front (wrinklefree.v1.Router, proto/wrinklefree/v1/router.proto)
// on the callback API: Generate is dispatched like an HTTP request (same
// policy, retries and metrics) and the chosen worker's responses are
// streamed back unchanged; Tokenize and ListModels are answered from the
// workers' model info.
#ifndef WF_ROUTER_SERVER_ROUTER_GRPC_H_
#define WF_ROUTER_SERVER_ROUTER_GRPC_H_

#include "router/server/gateway.h"
#include "wrinklefree/v1/router.grpc.pb.h"

namespace wf::router {

class RouterService final : public wrinklefree::v1::Router::CallbackService {
 public:
  // `gateway` provides the tokenizer, served name and API keys; none owned.
  RouterService(Gateway* gateway, WorkerPool* pool, Dispatcher* dispatcher, RouterMetrics* metrics)
      : gateway_(gateway), pool_(pool), dispatcher_(dispatcher), metrics_(metrics) {}

  grpc::ServerWriteReactor<wrinklefree::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const wrinklefree::v1::RouterGenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const wrinklefree::v1::TokenizeRequest* request,
                                     wrinklefree::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const wrinklefree::v1::ListModelsRequest* request,
                                       wrinklefree::v1::ListModelsResponse* response) override;

 private:
  class GenerateReactor;
  // OK (and the caller's key index, see Gateway::Authenticate, into
  // `*key_index` unless null) or UNAUTHENTICATED.
  grpc::Status CheckAuth(grpc::CallbackServerContext* context, int* key_index) const;

  Gateway* gateway_;
  WorkerPool* pool_;
  Dispatcher* dispatcher_;
  RouterMetrics* metrics_;
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_ROUTER_GRPC_H_
