#include "worker/service/worker_service.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/reaction_order.h"
#include "common/log.h"

namespace wf::service {
namespace {

namespace v1 = wrinklefree::v1;

grpc::Status Unavailable(const char* what) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, absl::StrCat("the model is still loading; ", what));
}

// Appends `next` to the unsent message `into` (tokens and text concatenate,
// final fields come from `next`).
void MergeResponse(v1::GenerateResponse* into, v1::GenerateResponse&& next) {
  std::string text = into->text_delta();
  text += next.text_delta();
  into->MergeFrom(next);
  into->set_text_delta(std::move(text));
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// --------------------------------------------------------------- Generate

// State shared by the reactor (gRPC side) and the engine loop (as its sink).
// Only one write is in flight; the reactor is only called before Finish, so it
// is alive whenever it is called (gRPC deletes it in OnDone, after Finish).
class GenerateStream final : public ResponseSink {
 public:
  explicit GenerateStream(grpc::ServerWriteReactor<v1::GenerateResponse>* reactor) : reactor_(reactor) {}

  void Push(v1::GenerateResponse response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_ || final_status_.has_value()) return;
      const bool last = response.finished();
      if (!queue_.empty()) {
        MergeResponse(&queue_.back(), std::move(response));
      } else {
        queue_.push_back(std::move(response));
      }
      if (last) final_status_ = grpc::Status::OK;
    }
    Pump();
  }

  void Fail(absl::Status status) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_ || final_status_.has_value()) return;
      final_status_ = ToGrpcStatus(status);
    }
    Pump();
  }

  void OnWriteDone(bool ok) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_in_flight_ = false;
      if (!ok) cancelled_ = true;
    }
    Pump();
  }

  void OnCancel() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
    }
    Pump();
  }

  // Fails the call before it reached the engine.
  void FinishNow(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_) return;
      finish_called_ = true;
    }
    grpc_util::HandOff(reactor_);
    reactor_->Finish(std::move(status));
  }

 private:
  // Starts the next write, or finishes the call, outside the lock (gRPC may
  // run reactions inline).
  void Pump() {
    enum { kNothing, kWrite, kWriteAndFinish, kFinish } action = kNothing;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_called_ || write_in_flight_) return;
      if (cancelled_) {
        finish_called_ = true;
        action = kFinish;
        status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
      } else if (!queue_.empty()) {
        writing_ = std::move(queue_.front());
        queue_.pop_front();
        if (queue_.empty() && final_status_.has_value() && final_status_->ok()) {
          finish_called_ = true;
          action = kWriteAndFinish;
        } else {
          write_in_flight_ = true;
          action = kWrite;
        }
      } else if (final_status_.has_value()) {
        finish_called_ = true;
        action = kFinish;
        status = *final_status_;
      }
    }
    if (action != kNothing) grpc_util::HandOff(reactor_);
    switch (action) {
      case kWrite:
        reactor_->StartWrite(&writing_);
        break;
      case kWriteAndFinish:
        reactor_->StartWriteAndFinish(&writing_, grpc::WriteOptions(), grpc::Status::OK);
        break;
      case kFinish:
        reactor_->Finish(std::move(status));
        break;
      case kNothing:
        break;
    }
  }

  grpc::ServerWriteReactor<v1::GenerateResponse>* const reactor_;
  std::mutex mu_;  // std::mutex: visible to ThreadSanitizer
  std::deque<v1::GenerateResponse> queue_;  // guarded by mu_
  v1::GenerateResponse writing_;  // owned by the write in flight
  bool write_in_flight_ = false;  // guarded by mu_
  bool finish_called_ = false;  // guarded by mu_
  bool cancelled_ = false;  // guarded by mu_
  std::optional<grpc::Status> final_status_;  // guarded by mu_
};

class WorkerService::GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  GenerateReactor(WorkerService* service, const v1::GenerateRequest* request)
      : stream_(std::make_shared<GenerateStream>(this)) {
    grpc_util::HandlerScope handler_scope;
    const ReadyState* ready = service->ready();
    if (ready == nullptr) {
      stream_->FinishNow(Unavailable("retry shortly or on another worker"));
      return;
    }
    loop_ = ready->loop;
    absl::StatusOr<std::unique_ptr<GenerateJob>> job = BuildGenerateJob(*request, ready->prompt_tools, ready->limits);
    if (!job.ok()) {
      stream_->FinishNow(ToGrpcStatus(job.status()));
      return;
    }
    absl::StatusOr<std::string> id = loop_->Submit(*std::move(job), stream_);
    if (!id.ok()) {
      stream_->FinishNow(ToGrpcStatus(id.status()));
      return;
    }
    request_id_ = *id;
    grpc_util::HandOff(this);
  }

  void OnWriteDone(bool ok) override {
    grpc_util::ReactionScope scope(this);
    stream_->OnWriteDone(ok);
  }
  void OnCancel() override {
    grpc_util::ReactionScope scope(this);
    if (!request_id_.empty()) loop_->Cancel(request_id_);
    stream_->OnCancel();
  }
  void OnDone() override {
    grpc_util::OnDoneScope scope(this);
    delete this;
  }

 private:
  std::shared_ptr<GenerateStream> stream_;
  EngineLoop* loop_ = nullptr;
  std::string request_id_;
};

// -------------------------------------------------------------- WatchLoad

// One thread per subscriber (routers: few, long-lived): it waits on the hub
// and writes one report at a time.
class WorkerService::WatchReactor final : public grpc::ServerWriteReactor<v1::LoadReport> {
 public:
  WatchReactor(WorkerService* service, const v1::WatchLoadRequest* request) : service_(service) {
    grpc_util::HandlerScope handler_scope;
    if (service->watchers_.fetch_add(1) >= service->options_.max_watchers) {
      service->watchers_.fetch_sub(1);
      counted_ = false;
      grpc_util::HandOff(this);
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("too many WatchLoad streams (limit ", service->options_.max_watchers, ")")));
      return;
    }
    int ms = request->report_interval_ms();
    if (ms == 0) ms = service->options_.default_report_interval_ms;
    interval_ = absl::Milliseconds(std::clamp(ms, 10, 10000));
    cursor_ = service->hub_->Subscribe(!request->has_include_kv_events() || request->include_kv_events());
    thread_ = std::thread([this] { Loop(); });
    grpc_util::HandOff(this);
  }

  void OnWriteDone(bool ok) override {
    grpc_util::ReactionScope scope(this);
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_done_ = true;
      if (!ok) broken_ = true;
    }
    cv_.notify_all();
  }
  void OnCancel() override {
    grpc_util::ReactionScope scope(this);
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken_ = true;
    }
    cv_.notify_all();
  }
  void OnDone() override {
    grpc_util::OnDoneScope scope(this);
    if (thread_.joinable()) {
      // OnDone follows Finish, the thread's last call; it is about to exit.
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        thread_.join();
      }
    }
    if (counted_) service_->watchers_.fetch_sub(1);
    delete this;
  }

 private:
  void Loop() {
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (broken_) break;
      }
      if (!service_->hub_->NextReport(&cursor_, interval_, &report_)) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (broken_) break;
        write_done_ = false;
      }
      grpc_util::HandOff(this);
      StartWrite(&report_);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return write_done_ || broken_; });
      if (!write_done_) {
        // Cancelled with a write in flight: gRPC still completes it.
        cv_.wait(lock, [this] { return write_done_; });
        break;
      }
    }
    grpc_util::HandOff(this);
    Finish(grpc::Status::OK);
  }

  WorkerService* const service_;
  bool counted_ = true;
  absl::Duration interval_;
  LoadHub::Cursor cursor_;
  v1::LoadReport report_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool write_done_ = true;  // guarded by mu_
  bool broken_ = false;  // guarded by mu_
};

// ------------------------------------------------------------------ Service

WorkerService::WorkerService(LoadHub* hub, const WorkerServiceOptions& options) : hub_(hub), options_(options) {}

WorkerService::~WorkerService() = default;

void WorkerService::StopWatchers() { hub_->Shutdown(); }

grpc::ServerWriteReactor<v1::GenerateResponse>* WorkerService::Generate(grpc::CallbackServerContext* /*context*/,
                                                                       const v1::GenerateRequest* request) {
  return new GenerateReactor(this, request);
}

grpc::ServerUnaryReactor* WorkerService::Abort(grpc::CallbackServerContext* context, const v1::AbortRequest* request,
                                               v1::AbortResponse* /*response*/) {
  grpc_util::HandlerScope handler_scope;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const ReadyState* ready = this->ready();
  if (ready == nullptr) {
    reactor->Finish(Unavailable("nothing is running"));
  } else if (absl::Status s = ValidateRequestId(request->request_id()); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
  } else {
    reactor->Finish(ToGrpcStatus(ready->loop->Abort(request->request_id())));
  }
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Tokenize(grpc::CallbackServerContext* context,
                                                  const v1::TokenizeRequest* request,
                                                  v1::TokenizeResponse* response) {
  grpc_util::HandlerScope handler_scope;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const ReadyState* ready = this->ready();
  if (ready == nullptr) {
    reactor->Finish(Unavailable("retry shortly"));
    return reactor;
  }
  absl::StatusOr<std::vector<int32_t>> ids;
  switch (request->input_case()) {
    case v1::TokenizeRequest::kText: {
      const bool special = !request->has_add_special_tokens() || request->add_special_tokens();
      ids = ready->tokenizer->Encode(request->text(),
                                     {.add_bos = special && ready->tokenizer->add_bos(), .parse_special = true});
      if (!ids.ok()) ids = absl::InvalidArgumentError(absl::StrCat("text: ", ids.status().message()));
      break;
    }
    case v1::TokenizeRequest::kChat:
      ids = EncodeChatMessages(request->chat(), ready->prompt_tools);
      break;
    case v1::TokenizeRequest::INPUT_NOT_SET:
      ids = absl::InvalidArgumentError("input: set text or chat");
      break;
  }
  if (!ids.ok()) {
    reactor->Finish(ToGrpcStatus(ids.status()));
    return reactor;
  }
  response->mutable_ids()->Add(ids->begin(), ids->end());
  response->set_max_context(ready->limits.max_context);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Detokenize(grpc::CallbackServerContext* context,
                                                    const v1::DetokenizeRequest* request,
                                                    v1::DetokenizeResponse* response) {
  grpc_util::HandlerScope handler_scope;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const ReadyState* ready = this->ready();
  if (ready == nullptr) {
    reactor->Finish(Unavailable("retry shortly"));
    return reactor;
  }
  const int32_t vocab = ready->limits.vocab_size;
  for (int i = 0; i < request->ids_size(); ++i) {
    if (request->ids(i) < 0 || request->ids(i) >= vocab) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   absl::StrCat("ids[", i, "] = ", request->ids(i), " is outside the vocabulary [0, ",
                                                vocab, ")")));
      return reactor;
    }
  }
  const bool skip = !request->has_skip_special_tokens() || request->skip_special_tokens();
  absl::StatusOr<std::string> text =
      ready->tokenizer->Decode(absl::MakeConstSpan(request->ids().data(), request->ids_size()), skip);
  if (!text.ok()) {
    reactor->Finish(ToGrpcStatus(text.status()));
    return reactor;
  }
  response->set_text(*std::move(text));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::GetModelInfo(grpc::CallbackServerContext* context,
                                                      const v1::GetModelInfoRequest* request,
                                                      v1::ModelInfo* response) {
  grpc_util::HandlerScope handler_scope;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const ReadyState* ready = this->ready();
  if (ready == nullptr) {
    reactor->Finish(Unavailable("retry shortly"));
    return reactor;
  }
  *response = ready->model_info;
  if (request->include_tokenizer()) {
    const tokenizer::Vocab& vocab = ready->tokenizer->vocab();
    response->mutable_vocab_tokens()->Add(vocab.tokens.begin(), vocab.tokens.end());
    response->mutable_merges()->Add(vocab.merges.begin(), vocab.merges.end());
    response->mutable_token_types()->Add(vocab.token_types.begin(), vocab.token_types.end());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::LoadReport>* WorkerService::WatchLoad(grpc::CallbackServerContext* /*context*/,
                                                                  const v1::WatchLoadRequest* request) {
  return new WatchReactor(this, request);
}

}  // namespace wf::service
