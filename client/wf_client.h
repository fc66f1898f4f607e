// C++ clients of the WrinkleFree gRPC services, for other services that call
// a router (wrinklefree.v1.Router, proto/wrinklefree/v1/router.proto) or a
// worker directly (wrinklefree.v1.Worker, worker.proto).
//
// Requests and responses are the proto messages themselves: a generation is a
// `RouterGenerateRequest` (or `GenerateRequest` for a worker) and streams
// `GenerateResponse` chunks. Three ways to call Generate:
//   - Generate():       blocks and returns the whole `Completion`;
//   - GenerateStream(): blocks and hands every chunk to a callback;
//   - StartGenerate():  returns at once; chunks and the final status arrive on
//                       gRPC's callback threads (no thread per call).
//
// Errors: every gRPC failure becomes an absl::Status with the same code and
// the server's message unchanged (e.g. the router's INVALID_ARGUMENT
// "request.prompt: set one of token_ids, text or chat"). UNAVAILABLE and
// DEADLINE_EXCEEDED, which usually come from the transport rather than the
// server, get " (METHOD to TARGET)" appended so the log says which service
// was unreachable. A call cancelled by the caller ends with CANCELLED and a
// message saying how (Cancel(), on_chunk returning false).
//
// Threading and ownership: a client is thread-safe; any number of calls may
// run at once over its one channel. A client must outlive the calls it made,
// including AsyncGeneration handles. Callbacks run on gRPC threads, never two
// at once for the same call; keep them short, and do not call Wait() (or a
// blocking method of a client) from inside one.
//
// Example:
//   ClientOptions options;
//   options.target = "127.0.0.1:50061";
//   options.timeout = absl::Seconds(30);
//   BN_ASSIGN_OR_RETURN(std::unique_ptr<RouterClient> client, RouterClient::Create(options));
//   RouterGenerateRequest req;
//   req.mutable_request()->set_text("The capital of France is");
//   req.mutable_request()->mutable_stop()->set_max_tokens(32);
//   BN_RETURN_IF_ERROR(client->GenerateStream(req, [](const Chunk& c) {
//     std::cout << c.text_delta() << std::flush;
//     return true;  // false cancels the call
//   }));
//   BN_ASSIGN_OR_RETURN(Completion done, client->Generate(req));
//   std::cout << done.text << " (" << done.usage.completion_tokens() << " tokens)\n";
//
//   // Asynchronous: no thread per call; Wait() or future() gives the status.
//   std::unique_ptr<AsyncGeneration> call = client->StartGenerate(
//       req, {.on_chunk = [](const Chunk& c) { return Consume(c.text_delta()); },
//             .on_done = [](const absl::Status& s) { WF_LOG(INFO) << "done: " << s; }});
//   if (user_went_away) call->Cancel();  // the call then ends with CANCELLED
//   absl::Status final_status = call->Wait();
#ifndef WF_CLIENT_WF_CLIENT_H_
#define WF_CLIENT_WF_CLIENT_H_

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "wrinklefree/v1/router.grpc.pb.h"
#include "wrinklefree/v1/worker.grpc.pb.h"

namespace wf::client {

using RouterGenerateRequest = wrinklefree::v1::RouterGenerateRequest;
using GenerateRequest = wrinklefree::v1::GenerateRequest;
// One message of a Generate stream: new tokens and their text; the last one
// has `finished` set and carries the finish reason and usage.
using Chunk = wrinklefree::v1::GenerateResponse;

struct ClientOptions {
  // Where the service listens: "host:port" (any gRPC target, e.g.
  // "dns:///router.internal:50061" or "unix:/run/wf.sock").
  std::string target;
  // Deadline of each call, measured from its start; for Generate it bounds
  // the whole stream. absl::InfiniteDuration() = none.
  absl::Duration timeout = absl::Seconds(120);
  // false: a call fails at once with UNAVAILABLE while the channel cannot
  // connect. true: it waits for a connection until its deadline.
  bool wait_for_ready = false;
  // Sent as "authorization: Bearer API_KEY" (the router's --api-key-file or
  // WF_API_KEYS); empty = none.
  std::string api_key;
  // RouterClient only: the session id (the consistent_hash policy's key) put
  // into Generate requests that have none.
  std::string session_id;
  // Further metadata sent with every call. Keys are lowercase [a-z0-9-_.] and
  // do not start with "grpc-"; values are printable ASCII unless the key ends
  // in "-bin".
  std::vector<std::pair<std::string, std::string>> metadata;
  // Channel credentials; null = insecure (plaintext), e.g. on loopback.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Largest response message accepted, in bytes (-1 = unlimited).
  // GetModelInfo with the tokenizer needs several MB.
  int max_receive_message_bytes = 64 << 20;
};

// Everything one Generate stream delivered.
struct Completion {
  std::string request_id;
  // The concatenated text deltas.
  std::string text;
  // Generated token ids in order (a stop token that ended generation is
  // included), and the same tokens with logprobs when the request asked.
  std::vector<int32_t> token_ids;
  std::vector<wrinklefree::v1::GeneratedToken> tokens;
  // Set when the request had return_prompt_token_ids.
  std::vector<int32_t> prompt_token_ids;
  // Whether the final chunk (finished = true) arrived; the fields below come
  // from it. FINISH_REASON_ERROR is a completed call whose `error` says
  // what went wrong in generation.
  bool finished = false;
  wrinklefree::v1::FinishReason finish_reason = wrinklefree::v1::FINISH_REASON_UNSPECIFIED;
  std::string matched_stop;
  // prompt_tokens, completion_tokens, cached_prompt_tokens (prefix-cache hits).
  wrinklefree::v1::Usage usage;
  wrinklefree::v1::Timing timing;
  uint64_t seed = 0;
  std::string error;
  // How many chunks the stream carried.
  int chunks = 0;
};

// Adds one chunk to `completion` (what Generate does with each chunk).
void AppendChunk(const Chunk& chunk, Completion& completion);

// Callbacks of an asynchronous Generate; both optional. They run on gRPC
// threads, one at a time per call, and must not throw.
struct AsyncCallbacks {
  // Each chunk in order. Return false to cancel the call: no further chunk
  // is delivered, and it ends with CANCELLED (OK if that was the final chunk).
  std::function<bool(const Chunk&)> on_chunk;
  // Once, after the last on_chunk, with the final status (the one Wait()
  // returns). Not called when the handle is destroyed before the call ends.
  std::function<void(const absl::Status&)> on_done;
};

namespace internal {
class GenerateCall;
}  // namespace internal

// A running asynchronous Generate (see StartGenerate). Methods are
// thread-safe. Destroying the handle of a call that has not ended cancels the
// call and waits for it to end, so no callback runs after the destructor
// returned; destroying it from inside one of its own callbacks cancels
// without waiting (the call then ends on its own). Destroying it after the
// call ended is cheap.
class AsyncGeneration {
 public:
  ~AsyncGeneration();
  AsyncGeneration(const AsyncGeneration&) = delete;
  AsyncGeneration& operator=(const AsyncGeneration&) = delete;

  // Cancels the call (the worker stops generating within one engine step).
  // No on_chunk starts after Cancel() returned; the final status is
  // CANCELLED unless the final chunk had already been delivered. Cheap,
  // idempotent, callable from any thread including the call's callbacks.
  void Cancel();

  // Blocks until the call ended (and on_done returned); the final status.
  const absl::Status& Wait() const;
  // Whether the call ended within `timeout`.
  bool WaitFor(absl::Duration timeout) const;
  bool done() const;
  // The final status as a future (ready when Wait() would return).
  std::shared_future<absl::Status> future() const;

  // Both wait for the end first. completion(): what the stream delivered
  // (complete when the status is OK, partial after an error or Cancel).
  // Result(): the completion, or the error status.
  const Completion& completion() const;
  absl::StatusOr<Completion> Result() const;

 private:
  friend class RouterClient;
  friend class WorkerClient;
  explicit AsyncGeneration(std::shared_ptr<internal::GenerateCall> call) : call_(std::move(call)) {}
  std::shared_ptr<internal::GenerateCall> call_;
};

// A client of a router's gRPC front (wrinklefree.v1.Router).
class RouterClient {
 public:
  // Validates `options` (INVALID_ARGUMENT naming the bad field) and creates
  // the channel. Does not connect: an unreachable target shows up as the
  // first call's UNAVAILABLE (or DEADLINE_EXCEEDED with wait_for_ready).
  static absl::StatusOr<std::unique_ptr<RouterClient>> Create(const ClientOptions& options);

  // The whole generation: blocks until the stream ended.
  absl::StatusOr<Completion> Generate(const RouterGenerateRequest& request) const;
  // Calls `on_chunk` with each chunk on this thread as it arrives; returning
  // false cancels the call and makes the result CANCELLED (OK if that was the
  // final chunk).
  absl::Status GenerateStream(const RouterGenerateRequest& request,
                              const std::function<bool(const Chunk&)>& on_chunk) const;
  // Starts the generation and returns at once; never null (a call that
  // cannot start ends with an error status through the usual path).
  std::unique_ptr<AsyncGeneration> StartGenerate(const RouterGenerateRequest& request,
                                                 AsyncCallbacks callbacks = {}) const;

  // Tokenizes with the served model's tokenizer.
  absl::StatusOr<wrinklefree::v1::TokenizeResponse> Tokenize(const wrinklefree::v1::TokenizeRequest& request) const;
  // Text to ids (BOS added when the model uses one and add_special_tokens).
  absl::StatusOr<std::vector<int32_t>> TokenizeText(std::string_view text, bool add_special_tokens = true) const;
  // The served models and their healthy worker counts.
  absl::StatusOr<wrinklefree::v1::ListModelsResponse> ListModels() const;

  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  RouterClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  // `request` with options_.session_id filled in when it has none.
  const RouterGenerateRequest& WithSession(const RouterGenerateRequest& request, RouterGenerateRequest& copy) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<wrinklefree::v1::Router::Stub> stub_;
};

// The same shape for one worker (wrinklefree.v1.Worker), for callers that
// pick workers themselves; plus the worker-only RPCs.
class WorkerClient {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerClient>> Create(const ClientOptions& options);

  absl::StatusOr<Completion> Generate(const GenerateRequest& request) const;
  absl::Status GenerateStream(const GenerateRequest& request, const std::function<bool(const Chunk&)>& on_chunk) const;
  std::unique_ptr<AsyncGeneration> StartGenerate(const GenerateRequest& request, AsyncCallbacks callbacks = {}) const;
  // Aborts a running request by its request_id (NOT_FOUND if unknown).
  absl::Status Abort(std::string_view request_id) const;

  absl::StatusOr<wrinklefree::v1::TokenizeResponse> Tokenize(const wrinklefree::v1::TokenizeRequest& request) const;
  absl::StatusOr<std::vector<int32_t>> TokenizeText(std::string_view text, bool add_special_tokens = true) const;
  absl::StatusOr<std::string> Detokenize(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;
  absl::StatusOr<wrinklefree::v1::ModelInfo> GetModelInfo(bool include_tokenizer = false) const;

  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  WorkerClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<wrinklefree::v1::Worker::Stub> stub_;
};

}  // namespace wf::client

#endif  // WF_CLIENT_WF_CLIENT_H_
