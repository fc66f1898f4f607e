// wf::client against a real local cluster: one wf_worker on the golden model
// behind one wf_router, both on 127.0.0.1 (started once for the suite).
#include "client/wf_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "common/testing/unused_port.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"

namespace wf::client {
namespace {

namespace v1 = wrinklefree::v1;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::wf::testing::IsOk;
using ::wf::testing::RouterProcess;
using ::wf::testing::StatusIs;
using ::wf::testing::WorkerProcess;

constexpr int kVocab = 2048;  // the golden model's
constexpr int kBlockSize = 16;
constexpr auto kWaitBound = std::chrono::seconds(60);

std::vector<int32_t> DistinctIds(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(4 + rng() % (kVocab - 4));
  return ids;
}

GenerateRequest Greedy(const std::vector<int32_t>& ids, int max_tokens) {
  GenerateRequest g;
  g.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  g.mutable_sampling()->set_temperature(0);
  g.mutable_stop()->set_max_tokens(max_tokens);
  g.mutable_stop()->set_ignore_eos(true);
  return g;
}

RouterGenerateRequest RouterGreedy(const std::vector<int32_t>& ids, int max_tokens) {
  RouterGenerateRequest r;
  *r.mutable_request() = Greedy(ids, max_tokens);
  return r;
}

using ::wf::testing::UnusedPort;

class WfClientTest : public ::wf::testing::OneWorkerOneRouterTest {
 protected:
  static ClientOptions Options(std::string target) {
    ClientOptions o;
    o.target = std::move(target);
    o.timeout = absl::Seconds(60);
    o.metadata = {{"x-caller", "wf_client_test"}};
    return o;
  }
  static std::unique_ptr<RouterClient> Router() {
    absl::StatusOr<std::unique_ptr<RouterClient>> c = RouterClient::Create(Options(router_->grpc_address()));
    EXPECT_THAT(c, IsOk());
    return c.ok() ? std::move(*c) : nullptr;
  }

  // Polls (bounded) until the worker runs nothing: proof that a cancelled
  // stream reached it.
  static bool WorkerBecomesIdle() {
    const auto until = std::chrono::steady_clock::now() + kWaitBound;
    while (std::chrono::steady_clock::now() < until) {
      const v1::Load load = worker_->CurrentLoad();
      if (load.running() == 0 && load.waiting() == 0 && load.max_running() > 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
};

TEST_F(WfClientTest, SyncGenerateEqualsTheStreamedChunks) {
  std::unique_ptr<RouterClient> client = Router();
  ASSERT_NE(client, nullptr);
  const std::vector<int32_t> ids = DistinctIds(40, 1);
  const RouterGenerateRequest req = RouterGreedy(ids, 12);

  ASSERT_OK_AND_ASSIGN(Completion c, client->Generate(req));
  EXPECT_TRUE(c.finished);
  EXPECT_EQ(c.finish_reason, v1::FINISH_REASON_LENGTH);
  EXPECT_THAT(c.token_ids, SizeIs(12));
  EXPECT_THAT(c.tokens, SizeIs(12));
  EXPECT_FALSE(c.request_id.empty());
  EXPECT_EQ(c.usage.prompt_tokens(), 40);
  EXPECT_EQ(c.usage.completion_tokens(), 12);
  EXPECT_GE(c.chunks, 2);

  std::vector<int32_t> streamed;
  std::string text;
  std::vector<Chunk> chunks;
  ASSERT_THAT(client->GenerateStream(req,
                                     [&](const Chunk& chunk) {
                                       for (const auto& t : chunk.tokens()) streamed.push_back(t.token_id());
                                       text += chunk.text_delta();
                                       chunks.push_back(chunk);
                                       return true;
                                     }),
              IsOk());
  EXPECT_EQ(streamed, c.token_ids);
  EXPECT_EQ(text, c.text);
  ASSERT_FALSE(chunks.empty());
  EXPECT_TRUE(chunks.back().finished());
  for (size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_FALSE(chunks[i].finished()) << "chunk " << i;

  // The same prompt again: its full blocks come from the prefix cache, and
  // the usage says so.
  ASSERT_OK_AND_ASSIGN(Completion again, client->Generate(req));
  EXPECT_EQ(again.token_ids, c.token_ids);
  EXPECT_GE(again.usage.cached_prompt_tokens(), kBlockSize);
  EXPECT_LT(again.usage.cached_prompt_tokens(), 40);
}

TEST_F(WfClientTest, TokenizeAndListModels) {
  std::unique_ptr<RouterClient> client = Router();
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ids, client->TokenizeText("Hello world, hello client."));
  EXPECT_FALSE(ids.empty());
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < kVocab) << id;
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> bare, client->TokenizeText("Hello world, hello client.", false));
  EXPECT_LE(bare.size(), ids.size());

  v1::TokenizeRequest chat;
  auto* m = chat.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("Hi");
  ASSERT_OK_AND_ASSIGN(v1::TokenizeResponse r, client->Tokenize(chat));
  EXPECT_GT(r.ids_size(), 1);
  EXPECT_EQ(r.max_context(), 4096);
  EXPECT_THAT(client->Tokenize(v1::TokenizeRequest()),
              StatusIs(absl::StatusCode::kInvalidArgument, Eq("input: set text or chat")));

  ASSERT_OK_AND_ASSIGN(v1::ListModelsResponse models, client->ListModels());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_FALSE(models.models(0).model_name().empty());
  EXPECT_EQ(models.models(0).vocab_size(), kVocab);
  ASSERT_EQ(models.healthy_workers_size(), 1);
  EXPECT_EQ(models.healthy_workers(0), 1);
}

TEST_F(WfClientTest, EightConcurrentAsyncCallsMatchTheirSyncResults) {
  std::unique_ptr<RouterClient> client = Router();
  ASSERT_NE(client, nullptr);
  constexpr int kCalls = 8;
  std::vector<RouterGenerateRequest> reqs;
  std::vector<Completion> sync;
  for (int i = 0; i < kCalls; ++i) {
    reqs.push_back(RouterGreedy(DistinctIds(20 + i, 100 + i), 10 + i));
    ASSERT_OK_AND_ASSIGN(Completion c, client->Generate(reqs.back()));
    sync.push_back(std::move(c));
  }

  struct Seen {
    std::vector<int32_t> tokens;  // written by one call's callbacks only
    std::atomic<int> done_calls{0};
    absl::Status done_status;
  };
  std::vector<Seen> seen(kCalls);
  std::vector<std::unique_ptr<AsyncGeneration>> calls;
  for (int i = 0; i < kCalls; ++i) {
    Seen* s = &seen[i];
    AsyncCallbacks cb;
    cb.on_chunk = [s](const Chunk& chunk) {
      for (const auto& t : chunk.tokens()) s->tokens.push_back(t.token_id());
      return true;
    };
    cb.on_done = [s](const absl::Status& status) {
      s->done_status = status;
      s->done_calls.fetch_add(1);
    };
    calls.push_back(client->StartGenerate(reqs[i], std::move(cb)));
    ASSERT_NE(calls.back(), nullptr);
  }
  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(absl::StrCat("call ", i));
    ASSERT_TRUE(calls[i]->WaitFor(absl::Seconds(120))) << "did not end";
    EXPECT_THAT(calls[i]->Wait(), IsOk());
    EXPECT_TRUE(calls[i]->done());
    ASSERT_OK_AND_ASSIGN(Completion c, calls[i]->Result());
    EXPECT_EQ(c.token_ids, sync[i].token_ids);
    EXPECT_EQ(c.text, sync[i].text);
    EXPECT_EQ(c.finish_reason, v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(c.usage.completion_tokens(), 10 + i);
    // on_done ran (once) before Wait() returned, after every on_chunk.
    EXPECT_EQ(seen[i].done_calls.load(), 1);
    EXPECT_THAT(seen[i].done_status, IsOk());
    EXPECT_EQ(seen[i].tokens, sync[i].token_ids);
    EXPECT_THAT(calls[i]->future().get(), IsOk());
  }
  calls.clear();  // destroying finished calls is cheap and safe
}

TEST_F(WfClientTest, CancelFromTheFirstChunkEndsWithCancelled) {
  std::unique_ptr<RouterClient> client = Router();
  ASSERT_NE(client, nullptr);
  // 4000 tokens take far longer than the cancellation's round trip.
  const RouterGenerateRequest req = RouterGreedy(DistinctIds(8, 7), 4000);
  std::promise<AsyncGeneration*> handle;
  std::shared_future<AsyncGeneration*> handle_ready = handle.get_future().share();
  std::atomic<int> chunks{0};
  std::atomic<int> done_calls{0};
  AsyncCallbacks cb;
  cb.on_chunk = [&](const Chunk&) {
    if (chunks.fetch_add(1) == 0) {
      // StartGenerate may not have returned yet: wait (bounded) for it.
      if (handle_ready.wait_for(kWaitBound) == std::future_status::ready) handle_ready.get()->Cancel();
    }
    return true;
  };
  cb.on_done = [&](const absl::Status&) { done_calls.fetch_add(1); };
  std::unique_ptr<AsyncGeneration> call = client->StartGenerate(req, std::move(cb));
  handle.set_value(call.get());

  ASSERT_TRUE(call->WaitFor(absl::Seconds(120)));
  EXPECT_THAT(call->Wait(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("AsyncGeneration::Cancel()")));
  EXPECT_EQ(chunks.load(), 1) << "no chunk is delivered after Cancel()";
  EXPECT_EQ(done_calls.load(), 1);
  const Completion& c = call->completion();
  EXPECT_FALSE(c.finished);
  EXPECT_LT(c.token_ids.size(), 4000u);
  EXPECT_THAT(call->Result(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("Router/Generate")));
  call->Cancel();  // after the end: harmless
  EXPECT_TRUE(WorkerBecomesIdle()) << "the worker still runs the cancelled request";
}

TEST_F(WfClientTest, ReturningFalseFromOnChunkCancels) {
  std::unique_ptr<RouterClient> client = Router();
  ASSERT_NE(client, nullptr);
  const RouterGenerateRequest req = RouterGreedy(DistinctIds(8, 8), 4000);

  int sync_chunks = 0;
  EXPECT_THAT(client->GenerateStream(req,
                                     [&](const Chunk&) {
                                       ++sync_chunks;
                                       return false;
                                     }),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("on_chunk returned false")));
  EXPECT_EQ(sync_chunks, 1);

  std::atomic<int> async_chunks{0};
  AsyncCallbacks cb;
  cb.on_chunk = [&](const Chunk&) {
    async_chunks.fetch_add(1);
    return false;
  };
  std::unique_ptr<AsyncGeneration> call = client->StartGenerate(req, std::move(cb));
  ASSERT_TRUE(call->WaitFor(absl::Seconds(120)));
  EXPECT_THAT(call->Wait(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("on_chunk returned false")));
  EXPECT_EQ(async_chunks.load(), 1);
  EXPECT_TRUE(WorkerBecomesIdle());
}

TEST_F(WfClientTest, DestroyingARunningCallCancelsItWithoutCallbacks) {
  std::unique_ptr<RouterClient> client = Router();
  ASSERT_NE(client, nullptr);
  std::promise<void> first_chunk;
  std::atomic<bool> first{true};
  std::atomic<int> done_calls{0};
  AsyncCallbacks cb;
  cb.on_chunk = [&](const Chunk&) {
    if (first.exchange(false)) first_chunk.set_value();
    return true;
  };
  cb.on_done = [&](const absl::Status&) { done_calls.fetch_add(1); };
  std::unique_ptr<AsyncGeneration> call = client->StartGenerate(RouterGreedy(DistinctIds(8, 9), 4000), std::move(cb));
  ASSERT_EQ(first_chunk.get_future().wait_for(kWaitBound), std::future_status::ready);
  call.reset();  // cancels and waits for the call's end
  EXPECT_EQ(done_calls.load(), 0);
  EXPECT_TRUE(WorkerBecomesIdle());
}

TEST_F(WfClientTest, UnreachableTargetIsUnavailableNamingTheTarget) {
  const int port = UnusedPort();
  ASSERT_GT(port, 0);
  const std::string target = absl::StrCat("127.0.0.1:", port);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RouterClient> client, RouterClient::Create(Options(target)));
  const RouterGenerateRequest req = RouterGreedy({1, 2, 3}, 2);
  EXPECT_THAT(client->Generate(req), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(target)));
  EXPECT_THAT(client->ListModels(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(target)));
  std::unique_ptr<AsyncGeneration> call = client->StartGenerate(req);
  ASSERT_TRUE(call->WaitFor(absl::Seconds(60)));
  EXPECT_THAT(call->Wait(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(target)));

  // With wait_for_ready the call waits for a connection until its deadline.
  ClientOptions o = Options(target);
  o.wait_for_ready = true;
  o.timeout = absl::Milliseconds(300);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RouterClient> waiting, RouterClient::Create(o));
  EXPECT_THAT(waiting->Generate(req),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("Router/Generate to " + target)));
  EXPECT_THAT(waiting->TokenizeText("x"), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr(target)));
}

TEST_F(WfClientTest, InvalidRequestIsInvalidArgumentWithTheRoutersMessage) {
  std::unique_ptr<RouterClient> client = Router();
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->Generate(RouterGenerateRequest()),
              StatusIs(absl::StatusCode::kInvalidArgument, Eq("request.prompt: set one of token_ids, text or chat")));
  EXPECT_THAT(client->Generate(RouterGreedy({1, 2, kVocab + 5}, 2)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq(absl::StrCat("request.token_ids.ids[2] = ", kVocab + 5, " is outside the vocabulary [0, ",
                                       kVocab, ")"))));
  std::unique_ptr<AsyncGeneration> call = client->StartGenerate(RouterGreedy(std::vector<int32_t>(4090, 9), 100));
  EXPECT_THAT(call->Wait(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context limit of 4096")));
  RouterGenerateRequest unknown = RouterGreedy({1, 2}, 2);
  unknown.set_model("no-such-model");
  EXPECT_THAT(client->Generate(unknown), StatusIs(absl::StatusCode::kNotFound, HasSubstr("'no-such-model'")));
}

TEST_F(WfClientTest, ApiKeyIsSentAsBearerMetadata) {
  const std::filesystem::path keys =
      std::filesystem::temp_directory_path() / absl::StrCat("wf_client_test_keys_", ::getpid());
  { std::ofstream(keys) << "secret-key-1\n"; }
  absl::StatusOr<std::unique_ptr<RouterProcess>> secured =
      RouterProcess::Start({worker_->address()}, {"--api-key-file", keys.string()});
  std::filesystem::remove(keys);
  ASSERT_THAT(secured, IsOk());

  ClientOptions o = Options((*secured)->grpc_address());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RouterClient> anonymous, RouterClient::Create(o));
  EXPECT_THAT(anonymous->Generate(RouterGreedy({1, 2, 3}, 2)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("API key")));
  o.api_key = "wrong";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RouterClient> wrong, RouterClient::Create(o));
  EXPECT_THAT(wrong->TokenizeText("x"), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("API key")));
  o.api_key = "secret-key-1";
  o.session_id = "conversation-1";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RouterClient> keyed, RouterClient::Create(o));
  ASSERT_OK_AND_ASSIGN(Completion c, keyed->Generate(RouterGreedy({1, 2, 3}, 2)));
  EXPECT_EQ(c.usage.completion_tokens(), 2);
  EXPECT_THAT(keyed->TokenizeText("x"), IsOk());
}

TEST_F(WfClientTest, CreateRejectsBadOptions) {
  ClientOptions o;
  EXPECT_THAT(RouterClient::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("target")));
  o.target = "127.0.0.1:1";
  o.timeout = absl::ZeroDuration();
  EXPECT_THAT(WorkerClient::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("timeout")));
  o.timeout = absl::InfiniteDuration();
  EXPECT_THAT(RouterClient::Create(o), IsOk());
  o.metadata = {{"X-Upper", "v"}};
  EXPECT_THAT(RouterClient::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metadata[0]")));
  o.metadata = {{"grpc-timeout", "1"}};
  EXPECT_THAT(RouterClient::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reserved")));
  o.metadata = {{"x-ok", "line\nbreak"}};
  EXPECT_THAT(RouterClient::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("printable")));
  o.metadata = {{"x-ok-bin", std::string("\x00\x01", 2)}};
  EXPECT_THAT(RouterClient::Create(o), IsOk());
  o.max_receive_message_bytes = 0;
  EXPECT_THAT(RouterClient::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_receive")));
}

TEST_F(WfClientTest, WorkerClientHasTheSameShape) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WorkerClient> worker, WorkerClient::Create(Options(worker_->address())));
  std::unique_ptr<RouterClient> router = Router();
  ASSERT_NE(router, nullptr);
  const std::vector<int32_t> ids = DistinctIds(24, 11);
  ASSERT_OK_AND_ASSIGN(Completion direct, worker->Generate(Greedy(ids, 9)));
  ASSERT_OK_AND_ASSIGN(Completion routed, router->Generate(RouterGreedy(ids, 9)));
  EXPECT_EQ(direct.token_ids, routed.token_ids);
  EXPECT_EQ(direct.text, routed.text);

  std::unique_ptr<AsyncGeneration> call = worker->StartGenerate(Greedy(ids, 9));
  ASSERT_OK_AND_ASSIGN(Completion async, call->Result());
  EXPECT_EQ(async.token_ids, direct.token_ids);

  ASSERT_OK_AND_ASSIGN(v1::ModelInfo info, worker->GetModelInfo());
  EXPECT_EQ(info.vocab_size(), kVocab);
  EXPECT_EQ(info.vocab_tokens_size(), 0);
  ASSERT_OK_AND_ASSIGN(v1::ModelInfo full, worker->GetModelInfo(true));
  EXPECT_EQ(full.vocab_tokens_size(), kVocab);
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> tokens, worker->TokenizeText("Hello there", false));
  ASSERT_OK_AND_ASSIGN(std::string text, worker->Detokenize(tokens));
  EXPECT_EQ(text, "Hello there");
  EXPECT_THAT(worker->Abort("no-such-request"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(worker->Generate(GenerateRequest()), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace wf::client
