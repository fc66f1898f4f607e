#include "router/server/router_grpc.h"

#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/reaction_order.h"

namespace wf::router {
namespace {

namespace v1 = wrinklefree::v1;

// gRPC codes on the HTTP scale, so one status label serves both fronts.
int HttpEquivalent(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

grpc::Status Invalid(std::string message) { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message)); }

}  // namespace

grpc::Status RouterService::CheckAuth(grpc::CallbackServerContext* context, int* key_index) const {
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  std::optional<std::string_view> value;
  if (it != md.end()) value = std::string_view(it->second.data(), it->second.size());
  const std::optional<int> key = gateway_->Authenticate(value);
  if (key.has_value()) {
    if (key_index != nullptr) *key_index = *key;
    return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or invalid API key (metadata authorization: Bearer KEY)");
}

// Streams one dispatched generation back. While a write is in flight, later
// responses are merged into one message, so a slow client never stalls the
// worker's stream (it gets fewer, bigger messages).
class RouterService::GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  GenerateReactor(RouterService* service, grpc::CallbackServerContext* context, const v1::RouterGenerateRequest* req)
      : service_(service), start_(absl::Now()) {
    grpc_util::HandlerScope handler_scope;
    service->metrics_->StreamStarted();
    Start(context, req);
    grpc_util::HandOff(this);
  }

 private:
  void Start(grpc::CallbackServerContext* context, const v1::RouterGenerateRequest* req) {
    RouterService* service = service_;
    int key_index = -1;
    if (grpc::Status auth = service->CheckAuth(context, &key_index); !auth.ok()) return FinishEarly(auth);
    slot_ = service->gateway_->AcquireStream(key_index);
    if (!slot_.has_value()) {
      return FinishEarly(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, service->gateway_->TooManyStreamsMessage()));
    }
    absl::StatusOr<std::shared_ptr<const ModelTokenizer>> tok = service->gateway_->Tokenizer();
    if (!tok.ok()) return FinishEarly(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(tok.status().message())));
    const std::string served = service->gateway_->ServedModelName();
    if (!req->model().empty() && req->model() != served) {
      return FinishEarly(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                      absl::StrCat("unknown model '", req->model().substr(0, 200), "'; this router serves '",
                                                   served, "'")));
    }
    v1::GenerateRequest request = req->request();
    std::vector<int32_t> ids;
    switch (request.prompt_case()) {
      case v1::GenerateRequest::kTokenIds:
        ids.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
        for (size_t k = 0; k < ids.size(); ++k) {
          if (ids[k] < 0 || ids[k] >= (*tok)->tokenizer().vocab_size()) {
            return FinishEarly(Invalid(absl::StrCat("request.token_ids.ids[", k, "] = ", ids[k],
                                                    " is outside the vocabulary [0, ", (*tok)->tokenizer().vocab_size(),
                                                    ")")));
          }
        }
        break;
      case v1::GenerateRequest::kText: {
        auto r = (*tok)->EncodeText(request.text());
        if (!r.ok()) return FinishEarly(Invalid(absl::StrCat("request.text: ", r.status().message())));
        ids = *std::move(r);
        break;
      }
      case v1::GenerateRequest::kChat: {
        std::vector<tokenizer::ChatMessage> messages;
        for (const auto& m : request.chat().messages()) messages.push_back({m.role(), m.content()});
        auto r = (*tok)->EncodeChat(messages);
        if (!r.ok()) return FinishEarly(Invalid(absl::StrCat("request.chat: ", r.status().message())));
        ids = *std::move(r);
        break;
      }
      case v1::GenerateRequest::PROMPT_NOT_SET:
        return FinishEarly(Invalid("request.prompt: set one of token_ids, text or chat"));
    }
    if (ids.empty()) return FinishEarly(Invalid("the prompt is empty"));
    const int max_context = (*tok)->max_context();
    int limited = request.stop().has_max_tokens() ? request.stop().max_tokens() : 0;
    if (absl::Status s = service->gateway_->ApplyTokenLimits(static_cast<int>(ids.size()), max_context, &limited);
        !s.ok()) {
      return FinishEarly(Invalid(std::string(s.message())));
    }
    if (!request.stop().has_max_tokens() && limited > 0) request.mutable_stop()->set_max_tokens(limited);
    const int64_t max_tokens = request.stop().has_max_tokens() ? request.stop().max_tokens() : 1;
    if (static_cast<int64_t>(ids.size()) + max_tokens > max_context) {
      return FinishEarly(Invalid(absl::StrCat("prompt (", ids.size(), " tokens) + max_tokens (", max_tokens,
                                              ") exceeds the context limit of ", max_context, " tokens")));
    }
    // Forward token ids: the worker caches exactly the ids the router hashed.
    request.mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
    std::vector<uint64_t> hashes = (*tok)->BlockHashes(ids);
    DispatchCallbacks cb;
    cb.on_response = [this](v1::GenerateResponse r) { Push(std::move(r)); };
    cb.on_done = [this](const grpc::Status& s, const std::string&) { Done(s); };
    // Not under mu_: a dispatch that fails at once calls Done() on this thread.
    std::shared_ptr<DispatchHandle> handle =
        service->dispatcher_->Dispatch(std::move(request), std::move(hashes), req->session_id(), std::move(cb));
    bool cancel_now;
    {
      std::lock_guard<std::mutex> lock(mu_);
      handle_ = handle;
      cancel_now = cancelled_;
    }
    if (cancel_now) handle->Cancel();
  }

 public:
  void OnWriteDone(bool ok) override {
    grpc_util::ReactionScope scope(this);
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_now_ = false;
      if (!ok) cancelled_ = true;
    }
    Pump();
  }
  void OnCancel() override {
    grpc_util::ReactionScope scope(this);
    std::shared_ptr<DispatchHandle> h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      h = handle_;
    }
    if (h) h->Cancel();
    Pump();
  }
  void OnDone() override {
    grpc_util::OnDoneScope scope(this);
    service_->metrics_->StreamEnded();
    service_->metrics_->Request("grpc_generate", final_code_, absl::ToDoubleSeconds(absl::Now() - start_));
    // The dispatch may still call Done(): it holds no pointer to us after
    // its on_done, and on_done has run (Finish needs it) unless we finished
    // early, in which case nothing was dispatched.
    delete this;
  }

 private:
  void FinishEarly(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      final_ = status;
      finish_called_ = true;
      final_code_ = HttpEquivalent(status.error_code());
    }
    grpc_util::HandOff(this);
    Finish(std::move(status));
  }

  void Push(v1::GenerateResponse r) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_) return;
      if (!first_token_ && r.tokens_size() > 0) {
        first_token_ = true;
        service_->metrics_->FirstToken("grpc_generate", absl::ToDoubleSeconds(absl::Now() - start_));
      }
      if (queue_.empty()) {
        queue_.push_back(std::move(r));
      } else {
        std::string text = queue_.back().text_delta() + r.text_delta();
        queue_.back().MergeFrom(r);
        queue_.back().set_text_delta(std::move(text));
      }
    }
    Pump();
  }

  void Done(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      final_ = status;
      dispatch_done_ = true;
    }
    Pump();
  }

  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_ || writing_now_) return;
      if (cancelled_ && dispatch_done_) {
        finish_called_ = true;
        action = kFinish;
        status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
      } else if (cancelled_) {
        return;  // wait for the dispatch to end (it was cancelled)
      } else if (!queue_.empty()) {
        writing_ = std::move(queue_.front());
        queue_.pop_front();
        writing_now_ = true;
        action = kWrite;
      } else if (dispatch_done_) {
        finish_called_ = true;
        action = kFinish;
        status = final_.value_or(grpc::Status::OK);
      }
      if (action == kFinish) final_code_ = HttpEquivalent(status.error_code());
    }
    if (action != kNothing) grpc_util::HandOff(this);
    if (action == kWrite) StartWrite(&writing_);
    if (action == kFinish) Finish(std::move(status));
  }

  RouterService* service_;
  const absl::Time start_;
  std::mutex mu_;
  std::shared_ptr<DispatchHandle> handle_;
  std::deque<v1::GenerateResponse> queue_;
  v1::GenerateResponse writing_;
  bool writing_now_ = false;
  bool cancelled_ = false;
  bool dispatch_done_ = false;
  bool finish_called_ = false;
  bool first_token_ = false;
  std::optional<grpc::Status> final_;
  int final_code_ = 200;
  std::optional<StreamLimiter::Slot> slot_;  // freed with the reactor (OnDone)
};

grpc::ServerWriteReactor<v1::GenerateResponse>* RouterService::Generate(grpc::CallbackServerContext* context,
                                                                       const v1::RouterGenerateRequest* request) {
  return new GenerateReactor(this, context, request);
}

grpc::ServerUnaryReactor* RouterService::Tokenize(grpc::CallbackServerContext* context,
                                                  const v1::TokenizeRequest* request, v1::TokenizeResponse* response) {
  grpc_util::HandlerScope handler_scope;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = CheckAuth(context, nullptr); !auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<const ModelTokenizer>> tok = gateway_->Tokenizer();
  if (!tok.ok()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(tok.status().message())));
    return reactor;
  }
  absl::StatusOr<std::vector<int32_t>> ids;
  if (request->input_case() == v1::TokenizeRequest::kText) {
    ids = (*tok)->EncodeText(request->text(), !request->has_add_special_tokens() || request->add_special_tokens());
  } else if (request->input_case() == v1::TokenizeRequest::kChat) {
    std::vector<tokenizer::ChatMessage> messages;
    for (const auto& m : request->chat().messages()) messages.push_back({m.role(), m.content()});
    ids = (*tok)->EncodeChat(messages);
  } else {
    ids = absl::InvalidArgumentError("input: set text or chat");
  }
  if (!ids.ok()) {
    reactor->Finish(Invalid(std::string(ids.status().message())));
    return reactor;
  }
  response->mutable_ids()->Add(ids->begin(), ids->end());
  response->set_max_context((*tok)->max_context());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterService::ListModels(grpc::CallbackServerContext* context,
                                                    const v1::ListModelsRequest* /*request*/,
                                                    v1::ListModelsResponse* response) {
  grpc_util::HandlerScope handler_scope;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<v1::ModelInfo> info = pool_->ModelInfo();
  if (!info.ok()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(info.status().message())));
    return reactor;
  }
  info->clear_vocab_tokens();
  info->clear_merges();
  info->clear_token_types();
  info->set_model_name(gateway_->ServedModelName().empty() ? info->model_name() : gateway_->ServedModelName());
  *response->add_models() = *std::move(info);
  int healthy = 0;
  for (const WorkerStatus& w : pool_->Status()) healthy += w.healthy ? 1 : 0;
  response->add_healthy_workers(healthy);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace wf::router
