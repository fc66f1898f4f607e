#include "client/wf_client.h"

#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace wf::client {
namespace {

namespace v1 = wrinklefree::v1;

constexpr char kRouterGenerate[] = "wrinklefree.v1.Router/Generate";
constexpr char kWorkerGenerate[] = "wrinklefree.v1.Worker/Generate";

absl::Status ValidateOptions(const ClientOptions& o) {
  if (o.target.empty()) return absl::InvalidArgumentError("ClientOptions.target is empty; want \"host:port\"");
  if (o.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ClientOptions.timeout is ", absl::FormatDuration(o.timeout), "; want > 0 (or InfiniteDuration)"));
  }
  if (o.max_receive_message_bytes == 0 || o.max_receive_message_bytes < -1) {
    return absl::InvalidArgumentError(absl::StrCat("ClientOptions.max_receive_message_bytes is ",
                                                   o.max_receive_message_bytes, "; want > 0 or -1 (unlimited)"));
  }
  for (size_t i = 0; i < o.metadata.size(); ++i) {
    const auto& [key, value] = o.metadata[i];
    const std::string where = absl::StrCat("ClientOptions.metadata[", i, "] key '", key, "'");
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("ClientOptions.metadata[", i, "] has an empty key"));
    for (char c : key) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
      if (!ok) return absl::InvalidArgumentError(where + ": only lowercase letters, digits, '-', '_' and '.' allowed");
    }
    if (absl::StartsWith(key, "grpc-")) return absl::InvalidArgumentError(where + ": the 'grpc-' prefix is reserved");
    if (!absl::EndsWith(key, "-bin")) {
      for (size_t k = 0; k < value.size(); ++k) {
        const unsigned char c = static_cast<unsigned char>(value[k]);
        if (c < 0x20 || c > 0x7e) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": value byte ", k, " (0x", absl::Hex(c),
                                                         ") is not printable ASCII; use a key ending in '-bin'"));
        }
      }
    }
  }
  for (char c : o.api_key) {
    if (c < 0x20 || c > 0x7e) return absl::InvalidArgumentError("ClientOptions.api_key is not printable ASCII");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& o) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(o.max_receive_message_bytes);
  std::shared_ptr<grpc::ChannelCredentials> creds = o.credentials ? o.credentials : grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(o.target, creds, args);
}

void Configure(const ClientOptions& o, grpc::ClientContext& ctx) {
  if (o.timeout != absl::InfiniteDuration()) ctx.set_deadline(absl::ToChronoTime(absl::Now() + o.timeout));
  ctx.set_wait_for_ready(o.wait_for_ready);
  if (!o.api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + o.api_key);
  for (const auto& [key, value] : o.metadata) ctx.AddMetadata(key, value);
}

// The server's code and message; transport-level codes also name the call,
// since gRPC's own text ("failed to connect to all addresses") does not.
absl::Status FromGrpc(const grpc::Status& s, const std::string& method, const std::string& target) {
  if (s.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(code, absl::StrCat(s.error_message(), " (", method, " to ", target, ")"));
  }
  return absl::Status(code, s.error_message());
}

// A stream that ended OK must have delivered its final chunk; anything else
// is a broken server.
absl::Status CheckFinished(const Completion& c, const std::string& method, const std::string& target) {
  if (c.finished) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(method, " to ", target, " ended OK without a final response (finished = true) after ",
                                          c.chunks, " chunks"));
}

template <typename Reader>
absl::Status DrainStream(grpc::ClientContext& ctx, Reader& reader, const std::function<bool(const Chunk&)>& on_chunk,
                         const std::string& method, const ClientOptions& o) {
  Chunk chunk;
  bool finished = false;
  int chunks = 0;
  bool cancelled = false;
  while (reader.Read(&chunk)) {
    ++chunks;
    finished |= chunk.finished();
    if (on_chunk && !on_chunk(chunk)) {
      ctx.TryCancel();
      cancelled = true;
      while (reader.Read(&chunk)) {
      }
      break;
    }
  }
  const grpc::Status s = reader.Finish();
  if (cancelled && s.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::CancelledError(absl::StrCat(method, " to ", o.target, ": cancelled by the caller (on_chunk returned false)"));
  }
  BN_RETURN_IF_ERROR(FromGrpc(s, method, o.target));
  if (!finished && !cancelled) {
    Completion c;
    c.chunks = chunks;
    return CheckFinished(c, method, o.target);
  }
  return absl::OkStatus();
}

template <typename Response, typename Fn>
absl::StatusOr<Response> Unary(const ClientOptions& o, const std::string& method, Fn&& fn) {
  grpc::ClientContext ctx;
  Configure(o, ctx);
  Response response;
  const grpc::Status s = fn(&ctx, &response);
  if (!s.ok()) return FromGrpc(s, method, o.target);
  return response;
}

v1::TokenizeRequest TextTokenizeRequest(std::string_view text, bool add_special_tokens) {
  v1::TokenizeRequest req;
  req.set_text(std::string(text));
  req.set_add_special_tokens(add_special_tokens);
  return req;
}

}  // namespace

void AppendChunk(const Chunk& chunk, Completion& c) {
  ++c.chunks;
  if (!chunk.request_id().empty()) c.request_id = chunk.request_id();
  for (const v1::GeneratedToken& t : chunk.tokens()) {
    c.token_ids.push_back(t.token_id());
    c.tokens.push_back(t);
  }
  c.text += chunk.text_delta();
  if (chunk.prompt_token_ids_size() > 0) c.prompt_token_ids.assign(chunk.prompt_token_ids().begin(), chunk.prompt_token_ids().end());
  if (chunk.finished()) {
    c.finished = true;
    c.finish_reason = chunk.finish_reason();
    c.matched_stop = chunk.matched_stop();
    c.usage = chunk.usage();
    c.timing = chunk.timing();
    c.seed = chunk.seed();
    c.error = chunk.error();
  }
}

namespace internal {

// One asynchronous Generate on gRPC's callback API. It owns itself (self_)
// from the start until OnDone, and is shared with the AsyncGeneration handle,
// so either may go first.
class GenerateCall final : public grpc::ClientReadReactor<Chunk> {
 public:
  using Starter = std::function<void(grpc::ClientContext*, grpc::ClientReadReactor<Chunk>*)>;

  GenerateCall(const ClientOptions& options, const std::string& method, AsyncCallbacks callbacks)
      : method_(method), target_(options.target), callbacks_(std::move(callbacks)), future_(promise_.get_future().share()) {
    Configure(options, context_);
  }

  // `start` binds this reactor to the RPC (stub->async()->Generate(...))
  // with `request`, which the call keeps alive until it ends.
  static std::shared_ptr<GenerateCall> Start(const ClientOptions& options, const std::string& method,
                                             AsyncCallbacks callbacks, std::shared_ptr<const void> request,
                                             const Starter& start) {
    auto call = std::make_shared<GenerateCall>(options, method, std::move(callbacks));
    call->self_ = call;
    call->request_ = std::move(request);
    start(&call->context_, call.get());
    call->StartRead(&call->chunk_);
    call->StartCall();
    return call;
  }

  void Cancel(std::string reason) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cancel_reason_.empty()) cancel_reason_ = std::move(reason);
    }
    cancelled_.store(true);
    context_.TryCancel();
  }

  void Detach() { detached_.store(true); }
  bool InsideCallback() const { return callback_thread_.load() == std::this_thread::get_id(); }
  const std::shared_future<absl::Status>& future() const { return future_; }
  // Only read after the future is ready (OnDone wrote it before).
  const Completion& completion() const { return completion_; }

  void OnReadDone(bool ok) override {
    // The stream ended or was cancelled (chunks read after Cancel() are
    // dropped, so none is delivered once Cancel returned); OnDone follows.
    if (!ok || cancelled_.load()) return;
    AppendChunk(chunk_, completion_);
    bool keep = true;
    if (callbacks_.on_chunk && !detached_.load()) {
      callback_thread_.store(std::this_thread::get_id());
      keep = callbacks_.on_chunk(chunk_);
      callback_thread_.store(std::thread::id());
    }
    if (!keep) {
      Cancel("on_chunk returned false");
      return;
    }
    if (cancelled_.load()) return;  // Cancel() from inside on_chunk
    StartRead(&chunk_);
  }

  void OnDone(const grpc::Status& s) override {
    absl::Status status;
    std::string cancel_reason;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_reason = cancel_reason_;
    }
    // OK without the final chunk after a Cancel: the rest was dropped here.
    const bool cut = s.error_code() == grpc::StatusCode::CANCELLED || (s.ok() && !completion_.finished);
    if (cut && !cancel_reason.empty()) {
      status = absl::CancelledError(absl::StrCat(method_, " to ", target_, ": cancelled by the caller (", cancel_reason, ")"));
    } else if (!s.ok()) {
      status = FromGrpc(s, method_, target_);
    } else {
      status = CheckFinished(completion_, method_, target_);
    }
    if (callbacks_.on_done && !detached_.load()) {
      callback_thread_.store(std::this_thread::get_id());
      callbacks_.on_done(status);
      callback_thread_.store(std::thread::id());
    }
    // The handle holds a reference until the future is ready (its destructor
    // waits for it), so dropping ours first leaves the object's destruction,
    // with its ClientContext and gRPC call, to the handle's owner instead of
    // this gRPC thread, which may still be running when the program exits.
    // Only a handle destroyed from inside a callback leaves it to us. The
    // promise moves to the stack: the waiter may destroy this object while
    // set_value is still returning.
    std::promise<absl::Status> promise = std::move(promise_);
    self_.reset();  // `this` may be gone after this line
    promise.set_value(std::move(status));
  }

 private:
  const std::string method_;
  const std::string target_;
  AsyncCallbacks callbacks_;
  grpc::ClientContext context_;
  Chunk chunk_;
  Completion completion_;
  std::promise<absl::Status> promise_;
  std::shared_future<absl::Status> future_;
  std::shared_ptr<GenerateCall> self_;
  std::shared_ptr<const void> request_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::string cancel_reason_;  // guarded by mu_; set by the first Cancel
  std::atomic<bool> detached_{false};
  std::atomic<std::thread::id> callback_thread_{};
};

}  // namespace internal

// ------------------------------------------------------------ AsyncGeneration

AsyncGeneration::~AsyncGeneration() {
  if (done()) return;
  call_->Detach();
  call_->Cancel("the AsyncGeneration handle was destroyed");
  if (call_->InsideCallback()) return;  // waiting here would wait for ourselves
  call_->future().wait();
}

void AsyncGeneration::Cancel() { call_->Cancel("AsyncGeneration::Cancel()"); }

const absl::Status& AsyncGeneration::Wait() const { return call_->future().get(); }

bool AsyncGeneration::WaitFor(absl::Duration timeout) const {
  return call_->future().wait_for(absl::ToChronoNanoseconds(timeout)) == std::future_status::ready;
}

bool AsyncGeneration::done() const { return WaitFor(absl::ZeroDuration()); }

std::shared_future<absl::Status> AsyncGeneration::future() const { return call_->future(); }

const Completion& AsyncGeneration::completion() const {
  Wait();
  return call_->completion();
}

absl::StatusOr<Completion> AsyncGeneration::Result() const {
  BN_RETURN_IF_ERROR(Wait());
  return call_->completion();
}

// ---------------------------------------------------------------- RouterClient

absl::StatusOr<std::unique_ptr<RouterClient>> RouterClient::Create(const ClientOptions& options) {
  BN_RETURN_IF_ERROR(ValidateOptions(options));
  return std::unique_ptr<RouterClient>(new RouterClient(options, MakeChannel(options)));
}

RouterClient::RouterClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)), channel_(std::move(channel)), stub_(v1::Router::NewStub(channel_)) {}

const RouterGenerateRequest& RouterClient::WithSession(const RouterGenerateRequest& request,
                                                       RouterGenerateRequest& copy) const {
  if (options_.session_id.empty() || !request.session_id().empty()) return request;
  copy = request;
  copy.set_session_id(options_.session_id);
  return copy;
}

absl::StatusOr<Completion> RouterClient::Generate(const RouterGenerateRequest& request) const {
  Completion c;
  BN_RETURN_IF_ERROR(GenerateStream(request, [&c](const Chunk& chunk) {
    AppendChunk(chunk, c);
    return true;
  }));
  return c;
}

absl::Status RouterClient::GenerateStream(const RouterGenerateRequest& request,
                                          const std::function<bool(const Chunk&)>& on_chunk) const {
  RouterGenerateRequest copy;
  const RouterGenerateRequest& req = WithSession(request, copy);
  grpc::ClientContext ctx;
  Configure(options_, ctx);
  std::unique_ptr<grpc::ClientReader<Chunk>> reader = stub_->Generate(&ctx, req);
  return DrainStream(ctx, *reader, on_chunk, kRouterGenerate, options_);
}

std::unique_ptr<AsyncGeneration> RouterClient::StartGenerate(const RouterGenerateRequest& request,
                                                             AsyncCallbacks callbacks) const {
  auto req = std::make_shared<RouterGenerateRequest>(request);
  if (!options_.session_id.empty() && req->session_id().empty()) req->set_session_id(options_.session_id);
  v1::Router::Stub* stub = stub_.get();
  return std::unique_ptr<AsyncGeneration>(new AsyncGeneration(internal::GenerateCall::Start(
      options_, kRouterGenerate, std::move(callbacks), req,
      [stub, raw = req.get()](grpc::ClientContext* ctx, grpc::ClientReadReactor<Chunk>* reactor) {
        stub->async()->Generate(ctx, raw, reactor);
      })));
}

absl::StatusOr<v1::TokenizeResponse> RouterClient::Tokenize(const v1::TokenizeRequest& request) const {
  return Unary<v1::TokenizeResponse>(options_, "wrinklefree.v1.Router/Tokenize",
                                     [&](grpc::ClientContext* ctx, v1::TokenizeResponse* out) {
                                       return stub_->Tokenize(ctx, request, out);
                                     });
}

absl::StatusOr<std::vector<int32_t>> RouterClient::TokenizeText(std::string_view text, bool add_special_tokens) const {
  BN_ASSIGN_OR_RETURN(v1::TokenizeResponse r, Tokenize(TextTokenizeRequest(text, add_special_tokens)));
  return std::vector<int32_t>(r.ids().begin(), r.ids().end());
}

absl::StatusOr<v1::ListModelsResponse> RouterClient::ListModels() const {
  return Unary<v1::ListModelsResponse>(options_, "wrinklefree.v1.Router/ListModels",
                                       [&](grpc::ClientContext* ctx, v1::ListModelsResponse* out) {
                                         return stub_->ListModels(ctx, v1::ListModelsRequest(), out);
                                       });
}

// ---------------------------------------------------------------- WorkerClient

absl::StatusOr<std::unique_ptr<WorkerClient>> WorkerClient::Create(const ClientOptions& options) {
  BN_RETURN_IF_ERROR(ValidateOptions(options));
  return std::unique_ptr<WorkerClient>(new WorkerClient(options, MakeChannel(options)));
}

WorkerClient::WorkerClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)), channel_(std::move(channel)), stub_(v1::Worker::NewStub(channel_)) {}

absl::StatusOr<Completion> WorkerClient::Generate(const GenerateRequest& request) const {
  Completion c;
  BN_RETURN_IF_ERROR(GenerateStream(request, [&c](const Chunk& chunk) {
    AppendChunk(chunk, c);
    return true;
  }));
  return c;
}

absl::Status WorkerClient::GenerateStream(const GenerateRequest& request,
                                          const std::function<bool(const Chunk&)>& on_chunk) const {
  grpc::ClientContext ctx;
  Configure(options_, ctx);
  std::unique_ptr<grpc::ClientReader<Chunk>> reader = stub_->Generate(&ctx, request);
  return DrainStream(ctx, *reader, on_chunk, kWorkerGenerate, options_);
}

std::unique_ptr<AsyncGeneration> WorkerClient::StartGenerate(const GenerateRequest& request,
                                                             AsyncCallbacks callbacks) const {
  auto req = std::make_shared<GenerateRequest>(request);
  v1::Worker::Stub* stub = stub_.get();
  return std::unique_ptr<AsyncGeneration>(new AsyncGeneration(internal::GenerateCall::Start(
      options_, kWorkerGenerate, std::move(callbacks), req,
      [stub, raw = req.get()](grpc::ClientContext* ctx, grpc::ClientReadReactor<Chunk>* reactor) {
        stub->async()->Generate(ctx, raw, reactor);
      })));
}

absl::Status WorkerClient::Abort(std::string_view request_id) const {
  v1::AbortRequest req;
  req.set_request_id(std::string(request_id));
  return Unary<v1::AbortResponse>(options_, "wrinklefree.v1.Worker/Abort",
                                  [&](grpc::ClientContext* ctx, v1::AbortResponse* out) {
                                    return stub_->Abort(ctx, req, out);
                                  })
      .status();
}

absl::StatusOr<v1::TokenizeResponse> WorkerClient::Tokenize(const v1::TokenizeRequest& request) const {
  return Unary<v1::TokenizeResponse>(options_, "wrinklefree.v1.Worker/Tokenize",
                                     [&](grpc::ClientContext* ctx, v1::TokenizeResponse* out) {
                                       return stub_->Tokenize(ctx, request, out);
                                     });
}

absl::StatusOr<std::vector<int32_t>> WorkerClient::TokenizeText(std::string_view text, bool add_special_tokens) const {
  BN_ASSIGN_OR_RETURN(v1::TokenizeResponse r, Tokenize(TextTokenizeRequest(text, add_special_tokens)));
  return std::vector<int32_t>(r.ids().begin(), r.ids().end());
}

absl::StatusOr<std::string> WorkerClient::Detokenize(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  v1::DetokenizeRequest req;
  req.mutable_ids()->Add(ids.begin(), ids.end());
  req.set_skip_special_tokens(skip_special_tokens);
  BN_ASSIGN_OR_RETURN(v1::DetokenizeResponse r,
                      Unary<v1::DetokenizeResponse>(options_, "wrinklefree.v1.Worker/Detokenize",
                                                    [&](grpc::ClientContext* ctx, v1::DetokenizeResponse* out) {
                                                      return stub_->Detokenize(ctx, req, out);
                                                    }));
  return r.text();
}

absl::StatusOr<v1::ModelInfo> WorkerClient::GetModelInfo(bool include_tokenizer) const {
  v1::GetModelInfoRequest req;
  req.set_include_tokenizer(include_tokenizer);
  return Unary<v1::ModelInfo>(options_, "wrinklefree.v1.Worker/GetModelInfo",
                              [&](grpc::ClientContext* ctx, v1::ModelInfo* out) {
                                return stub_->GetModelInfo(ctx, req, out);
                              });
}

}  // namespace wf::client
