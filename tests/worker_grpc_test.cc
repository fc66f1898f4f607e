// wf_worker as a gRPC service: real processes on 127.0.0.1, the real C++
// client. Batch invariance under concurrency, prefix reuse, cancellation,
// limits, WatchLoad consistency, metrics and SIGTERM drain.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/kv/block_hash.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/http_get.h"
#include "tests/testing/worker_process.h"

namespace wf {
namespace {

namespace v1 = wrinklefree::v1;
using ::testing::HasSubstr;
using wf::testing::WorkerProcess;

constexpr auto kDeadline = std::chrono::seconds(60);

struct Result {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  v1::GenerateResponse final;
  int messages = 0;
};

Result Generate(v1::Worker::Stub& stub, const v1::GenerateRequest& req, grpc::ClientContext* ctx = nullptr) {
  grpc::ClientContext own;
  if (ctx == nullptr) ctx = &own;
  ctx->set_deadline(std::chrono::system_clock::now() + kDeadline);
  Result r;
  auto reader = stub.Generate(ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    ++r.messages;
    for (const auto& t : resp.tokens()) r.tokens.push_back(t.token_id());
    r.text += resp.text_delta();
    if (resp.finished()) r.final = resp;
  }
  r.status = reader->Finish();
  return r;
}

v1::GenerateRequest IdsRequest(const std::vector<int32_t>& ids, int max_tokens, float temperature = 0,
                               uint64_t seed = 0) {
  v1::GenerateRequest r;
  r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  r.mutable_stop()->set_max_tokens(max_tokens);
  r.mutable_stop()->set_ignore_eos(true);
  r.mutable_sampling()->set_temperature(temperature);
  if (seed != 0) r.mutable_sampling()->set_seed(seed);
  return r;
}

std::vector<int32_t> RandomIds(int n, uint64_t seed, int vocab = 2048) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(4 + rng() % (vocab - 4));
  return ids;
}

// Waits (bounded) until the worker reports nothing running or waiting.
bool WaitIdle(WorkerProcess& worker, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    v1::Load l = worker.CurrentLoad();
    if (l.running() == 0 && l.waiting() == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(WorkerGrpcTest, ConcurrentClientsGetExactlyWhatTheyGetAlone) {
  ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--max-running", "8", "--max-step-tokens", "64"}));
  constexpr int kClients = 10;
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < kClients; ++i) {
    // Mixed prompt lengths (some longer than one step's budget: chunked) and
    // both greedy and seeded sampling.
    reqs.push_back(IdsRequest(RandomIds(5 + 23 * i, 100 + i), 12, i % 2 ? 0.8f : 0.0f, i % 2 ? 77 + i : 0));
  }
  std::vector<Result> alone;
  for (const auto& r : reqs) {
    alone.push_back(Generate(worker->stub(), r));
    ASSERT_TRUE(alone.back().status.ok()) << alone.back().status.error_message();
    ASSERT_EQ(alone.back().tokens.size(), 12u);
  }
  for (int round = 0; round < 2; ++round) {
    std::vector<Result> together(kClients);
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] { together[i] = Generate(worker->stub(), reqs[i]); });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < kClients; ++i) {
      ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
      EXPECT_EQ(together[i].tokens, alone[i].tokens) << "client " << i << " round " << round;
      EXPECT_EQ(together[i].text, alone[i].text) << "client " << i;
      EXPECT_EQ(together[i].final.finish_reason(), v1::FINISH_REASON_LENGTH);
      EXPECT_EQ(together[i].final.usage().completion_tokens(), 12);
      EXPECT_EQ(together[i].final.usage().prompt_tokens(), static_cast<int>(reqs[i].token_ids().ids_size()));
    }
  }
}

TEST(WorkerGrpcTest, PreemptionWhenKvRunsOutKeepsEveryOutputExact) {
  // A pool of 256 positions for six requests of 140: the scheduler must
  // preempt and recompute, and nobody may notice.
  ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--kv-cache-tokens", "256", "--max-context", "256",
                                                          "--max-running", "8", "--max-step-tokens", "64"}));
  constexpr int kClients = 6;
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < kClients; ++i) reqs.push_back(IdsRequest(RandomIds(40, 300 + i), 100));
  std::vector<Result> alone;
  for (const auto& r : reqs) alone.push_back(Generate(worker->stub(), r));
  std::vector<Result> together(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] { together[i] = Generate(worker->stub(), reqs[i]); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].tokens.size(), 100u);
    EXPECT_EQ(together[i].tokens, alone[i].tokens) << "client " << i;
  }
  ASSERT_OK_AND_ASSIGN(auto metrics, wf::testing::HttpGet(worker->metrics_port(), "/metrics"));
  const size_t pos = metrics.body.find("\nwrinklefree:num_preemptions_total{");
  ASSERT_NE(pos, std::string::npos);
  const size_t sp = metrics.body.find(' ', pos + 1);
  EXPECT_GT(std::atof(metrics.body.c_str() + sp + 1), 0.0);
}

TEST(WorkerGrpcTest, SharedPrefixIsReusedAndOutputMatchesAColdWorker) {
  ASSERT_OK_AND_ASSIGN(auto warm, WorkerProcess::Start());
  ASSERT_OK_AND_ASSIGN(auto cold, WorkerProcess::Start({"--no-prefix-caching"}));
  const std::vector<int32_t> prefix = RandomIds(80, 1);
  std::vector<int32_t> a = prefix, b = prefix;
  for (int32_t id : RandomIds(7, 2)) a.push_back(id);
  for (int32_t id : RandomIds(9, 3)) b.push_back(id);

  Result ra = Generate(warm->stub(), IdsRequest(a, 8));
  ASSERT_TRUE(ra.status.ok()) << ra.status.error_message();
  EXPECT_EQ(ra.final.usage().cached_prompt_tokens(), 0);
  Result rb = Generate(warm->stub(), IdsRequest(b, 8));
  ASSERT_TRUE(rb.status.ok()) << rb.status.error_message();
  EXPECT_EQ(rb.final.usage().cached_prompt_tokens(), 80);  // five full blocks of 16

  Result rb_cold = Generate(cold->stub(), IdsRequest(b, 8));
  ASSERT_TRUE(rb_cold.status.ok());
  EXPECT_EQ(rb_cold.final.usage().cached_prompt_tokens(), 0);
  EXPECT_EQ(rb.tokens, rb_cold.tokens);
  // With prefix caching off nothing is reused, and nothing is reported cached.
  Result rb_cold2 = Generate(cold->stub(), IdsRequest(b, 8));
  EXPECT_EQ(rb_cold2.final.usage().cached_prompt_tokens(), 0);
  EXPECT_EQ(rb_cold2.tokens, rb_cold.tokens);
  EXPECT_EQ(cold->CurrentLoad().kv_cached_blocks(), 0);

  // The whole prompt cached: at least its last token is recomputed.
  Result again = Generate(warm->stub(), IdsRequest(b, 8));
  EXPECT_EQ(again.tokens, rb_cold.tokens);
  EXPECT_EQ(again.final.usage().cached_prompt_tokens(), 80);
}

// The 8-bit KV cache as a service: the same memory holds about 1.8x the
// positions, concurrent clients still get what they get alone, and a reused
// prefix gives what a cold worker computes.
TEST(WorkerGrpcTest, Q8KvCacheHoldsMoreAndStaysExact) {
  ASSERT_OK_AND_ASSIGN(auto f16, WorkerProcess::Start({"--kv-cache-mb", "8", "--max-context", "256"}));
  ASSERT_OK_AND_ASSIGN(auto warm, WorkerProcess::Start({"--kv-cache-mb", "8", "--max-context", "256",
                                                        "--kv-cache-type", "q8", "--max-running", "8"}));
  ASSERT_OK_AND_ASSIGN(auto cold, WorkerProcess::Start({"--kv-cache-type", "q8", "--no-prefix-caching"}));
  const int f16_blocks = f16->CurrentLoad().kv_total_blocks();
  const int q8_blocks = warm->CurrentLoad().kv_total_blocks();
  ASSERT_GT(f16_blocks, 0);
  EXPECT_GE(q8_blocks, f16_blocks * 17 / 10) << f16_blocks << " f16 blocks, " << q8_blocks << " q8 blocks";
  ASSERT_OK_AND_ASSIGN(auto metrics, wf::testing::HttpGet(warm->metrics_port(), "/metrics"));
  EXPECT_THAT(metrics.body, HasSubstr("cache_dtype=\"q8\""));

  constexpr int kClients = 4;
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < kClients; ++i) reqs.push_back(IdsRequest(RandomIds(9 + 31 * i, 500 + i), 10));
  std::vector<Result> alone;
  for (const auto& r : reqs) {
    alone.push_back(Generate(cold->stub(), r));
    ASSERT_TRUE(alone.back().status.ok()) << alone.back().status.error_message();
  }
  std::vector<Result> together(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] { together[i] = Generate(warm->stub(), reqs[i]); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].tokens, alone[i].tokens) << "client " << i;
  }
  // Client 3's prompt (102 tokens) again with a new tail: its first 96
  // positions (six full blocks) come from the cache.
  std::vector<int32_t> again(reqs[3].token_ids().ids().begin(), reqs[3].token_ids().ids().end());
  again.resize(100);
  for (int32_t id : RandomIds(5, 9)) again.push_back(id);
  Result reused = Generate(warm->stub(), IdsRequest(again, 8));
  ASSERT_TRUE(reused.status.ok()) << reused.status.error_message();
  EXPECT_EQ(reused.final.usage().cached_prompt_tokens(), 96);
  Result computed = Generate(cold->stub(), IdsRequest(again, 8));
  EXPECT_EQ(computed.final.usage().cached_prompt_tokens(), 0);
  EXPECT_EQ(reused.tokens, computed.tokens);
}

TEST(WorkerGrpcTest, CancellationFreesTheSlotMidDecodeAndMidPrefill) {
  ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--max-step-tokens", "16"}));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kDeadline);
    auto reader = worker->stub().Generate(&ctx, IdsRequest(RandomIds(10, 5), 3000));
    v1::GenerateResponse resp;
    ASSERT_TRUE(reader->Read(&resp));  // decoding
    EXPECT_EQ(worker->CurrentLoad().running(), 1);
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_TRUE(WaitIdle(*worker));
  }
  {
    // 3000 prompt tokens at 16 per step: a long prefill, cancelled early.
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kDeadline);
    auto reader = worker->stub().Generate(&ctx, IdsRequest(RandomIds(3000, 6), 4));
    const auto t0 = std::chrono::steady_clock::now();
    bool seen_running = false;
    while (!seen_running && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
      seen_running = worker->CurrentLoad().running() == 1;
    }
    ASSERT_TRUE(seen_running);
    ctx.TryCancel();
    v1::GenerateResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_TRUE(WaitIdle(*worker, std::chrono::seconds(5)));
    v1::Load l = worker->CurrentLoad();
    EXPECT_EQ(l.kv_used_blocks(), 0);
  }
  {
    // Abort by id.
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kDeadline);
    v1::GenerateRequest req = IdsRequest(RandomIds(10, 7), 3000);
    req.set_request_id("to-abort");
    auto reader = worker->stub().Generate(&ctx, req);
    v1::GenerateResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    grpc::ClientContext actx;
    v1::AbortRequest abort;
    abort.set_request_id("to-abort");
    v1::AbortResponse aresp;
    ASSERT_TRUE(worker->stub().Abort(&actx, abort, &aresp).ok());
    v1::GenerateResponse last;
    while (reader->Read(&resp)) last = resp;
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_TRUE(last.finished());
    EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_ABORT);
    grpc::ClientContext actx2;
    EXPECT_EQ(worker->stub().Abort(&actx2, abort, &aresp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST(WorkerGrpcTest, LimitsAndMalformedRequests) {
  ASSERT_OK_AND_ASSIGN(auto worker,
                       WorkerProcess::Start({"--max-running", "1", "--max-waiting", "1", "--max-context", "128",
                                             "--max-step-tokens", "16"}));
  // One running, one waiting, the third is refused at once.
  grpc::ClientContext c1, c2;
  c1.set_deadline(std::chrono::system_clock::now() + kDeadline);
  c2.set_deadline(std::chrono::system_clock::now() + kDeadline);
  auto r1 = worker->stub().Generate(&c1, IdsRequest(RandomIds(4, 1), 120));
  v1::GenerateResponse resp;
  ASSERT_TRUE(r1->Read(&resp));
  auto r2 = worker->stub().Generate(&c2, IdsRequest(RandomIds(4, 2), 120));
  const auto t0 = std::chrono::steady_clock::now();
  while (worker->CurrentLoad().waiting() != 1 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
  }
  Result r3 = Generate(worker->stub(), IdsRequest(RandomIds(4, 3), 4));
  EXPECT_EQ(r3.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(r3.status.error_message(), HasSubstr("queue full"));
  c1.TryCancel();
  c2.TryCancel();
  while (r1->Read(&resp)) {
  }
  while (r2->Read(&resp)) {
  }
  (void)r1->Finish();
  (void)r2->Finish();
  ASSERT_TRUE(WaitIdle(*worker));

  struct Case {
    v1::GenerateRequest req;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({v1::GenerateRequest(), "set one of token_ids, text or chat"});
  cases.push_back({IdsRequest({1, 5000}, 4), "token_ids.ids[1] = 5000 is outside the vocabulary [0, 2048)"});
  cases.push_back({IdsRequest(RandomIds(128, 4), 4), "prompt has 128 tokens; the context limit is 128"});
  cases.push_back({IdsRequest(RandomIds(100, 4), 50), "exceeds the context limit of 128"});
  cases.push_back({IdsRequest({1, 2}, 4, -2.0f), "temperature"});
  for (const Case& c : cases) {
    Result r = Generate(worker->stub(), c.req);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(r.status.error_message(), HasSubstr(c.message));
  }
  // Duplicate live request id.
  grpc::ClientContext c4;
  c4.set_deadline(std::chrono::system_clock::now() + kDeadline);
  v1::GenerateRequest dup = IdsRequest(RandomIds(4, 9), 100);
  dup.set_request_id("same");
  auto r4 = worker->stub().Generate(&c4, dup);
  ASSERT_TRUE(r4->Read(&resp));
  Result r5 = Generate(worker->stub(), dup);
  EXPECT_EQ(r5.status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  c4.TryCancel();
  while (r4->Read(&resp)) {
  }
  (void)r4->Finish();
  // Still healthy.
  Result ok = Generate(worker->stub(), IdsRequest({1, 2, 3}, 3));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

TEST(WorkerGrpcTest, WatchLoadReproducesTheCacheAfterARandomWorkload) {
  // A small KV pool so that eviction happens.
  ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--kv-cache-tokens", "4096", "--max-context", "1024",
                                                          "--max-running", "4"}));
  grpc::ClientContext wctx;
  wctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::WatchLoadRequest wreq;
  wreq.set_report_interval_ms(20);
  auto watch = worker->stub().WatchLoad(&wctx, wreq);
  absl::flat_hash_set<uint64_t> mirror;
  std::atomic<uint64_t> last_seq{0};
  std::atomic<bool> gap{false};
  std::thread watcher([&] {
    v1::LoadReport rep;
    while (watch->Read(&rep)) {
      if (rep.has_snapshot()) {
        mirror.clear();
        mirror.insert(rep.snapshot().block_hashes().begin(), rep.snapshot().block_hashes().end());
        last_seq = rep.snapshot().last_sequence_number();
      }
      for (const auto& e : rep.events()) {
        if (e.sequence_number() != last_seq + 1) gap = true;
        last_seq = e.sequence_number();
        if (e.has_stored()) mirror.insert(e.stored().block_hashes().begin(), e.stored().block_hashes().end());
        for (uint64_t h : e.removed().block_hashes()) mirror.erase(h);
        if (e.has_all_cleared()) mirror.clear();
      }
    }
  });
  // Prompts from a few shared stems, so prefixes repeat and the pool churns.
  std::mt19937_64 rng(11);
  std::vector<std::vector<int32_t>> stems = {RandomIds(200, 21), RandomIds(300, 22), RandomIds(150, 23)};
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 24; ++i) {
    std::vector<int32_t> p = stems[rng() % stems.size()];
    p.resize(32 + rng() % p.size());
    for (int32_t id : RandomIds(1 + rng() % 40, 1000 + i)) p.push_back(id);
    prompts.push_back(p);
  }
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (size_t i = c; i < prompts.size(); i += 4) {
        Result r = Generate(worker->stub(), IdsRequest(prompts[i], 3));
        EXPECT_TRUE(r.status.ok()) << r.status.error_message();
      }
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_TRUE(WaitIdle(*worker));

  // A fresh subscription's snapshot is the worker's truth now.
  grpc::ClientContext sctx;
  sctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto snap_reader = worker->stub().WatchLoad(&sctx, v1::WatchLoadRequest());
  v1::LoadReport snap;
  ASSERT_TRUE(snap_reader->Read(&snap));
  ASSERT_TRUE(snap.has_snapshot());
  sctx.TryCancel();
  (void)snap_reader->Finish();
  const uint64_t truth_seq = snap.snapshot().last_sequence_number();
  for (int i = 0; i < 500 && last_seq.load() < truth_seq; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  wctx.TryCancel();
  watcher.join();
  (void)watch->Finish();

  EXPECT_FALSE(gap.load());
  EXPECT_EQ(last_seq.load(), truth_seq);
  absl::flat_hash_set<uint64_t> truth(snap.snapshot().block_hashes().begin(), snap.snapshot().block_hashes().end());
  EXPECT_EQ(mirror, truth);
  EXPECT_GT(truth.size(), 0u);
  EXPECT_LE(static_cast<int>(truth.size()), snap.load().kv_total_blocks());
  // Every cached hash is the hash of some prompt's full prompt block.
  absl::flat_hash_set<uint64_t> possible;
  for (const auto& p : prompts) {
    for (uint64_t h : kv::HashFullBlocks(p, 16)) possible.insert(h);
  }
  for (uint64_t h : truth) EXPECT_TRUE(possible.contains(h));
}

double MetricValue(const std::string& body, const std::string& name_with_labels_prefix) {
  for (size_t pos = 0; (pos = body.find(name_with_labels_prefix, pos)) != std::string::npos; ++pos) {
    if (pos > 0 && body[pos - 1] != '\n') continue;
    const size_t sp = body.find(' ', pos);
    const size_t nl = body.find('\n', pos);
    if (sp == std::string::npos || sp > nl) continue;
    return std::atof(body.substr(sp + 1, nl - sp - 1).c_str());
  }
  return -1;
}

TEST(WorkerGrpcTest, MetricsMoveAsRequestsRun) {
  ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--model-name", "tiny"}));
  ASSERT_OK_AND_ASSIGN(auto before, wf::testing::HttpGet(worker->metrics_port(), "/metrics"));
  ASSERT_EQ(before.status, 200);
  for (const char* name :
       {"wrinklefree:num_requests_running", "wrinklefree:num_requests_waiting", "wrinklefree:kv_cache_usage_perc",
        "wrinklefree:prefix_cache_queries_total", "wrinklefree:prefix_cache_hits_total",
        "wrinklefree:prompt_tokens_total", "wrinklefree:generation_tokens_total",
        "wrinklefree:request_success_total", "wrinklefree:time_to_first_token_seconds",
        "wrinklefree:inter_token_latency_seconds", "wrinklefree:e2e_request_latency_seconds",
        "wrinklefree:request_queue_time_seconds"}) {
    EXPECT_THAT(before.body, HasSubstr(name));
  }
  EXPECT_THAT(before.body, HasSubstr("model_name=\"tiny\""));
  const std::vector<int32_t> prompt = RandomIds(40, 3);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(Generate(worker->stub(), IdsRequest(prompt, 5)).status.ok());
  ASSERT_OK_AND_ASSIGN(auto after, wf::testing::HttpGet(worker->metrics_port(), "/metrics"));
  EXPECT_EQ(MetricValue(after.body, "wrinklefree:generation_tokens_total{"), 10);
  EXPECT_EQ(MetricValue(after.body, "wrinklefree:prompt_tokens_total{"), 80);
  EXPECT_EQ(MetricValue(after.body, "wrinklefree:request_success_total{finished_reason=\"length\""), 2);
  EXPECT_EQ(MetricValue(after.body, "wrinklefree:prefix_cache_hits_total{"), 32);  // second request: 2 blocks
  EXPECT_EQ(MetricValue(after.body, "wrinklefree:time_to_first_token_seconds_count{"), 2);
  EXPECT_EQ(MetricValue(after.body, "wrinklefree:inter_token_latency_seconds_count{"), 8);
}

TEST(WorkerGrpcTest, SigtermDrainsRunningRequestsAndRefusesNewOnes) {
  ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--drain-timeout-seconds", "30"}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kDeadline);
  auto reader = worker->stub().Generate(&ctx, IdsRequest(RandomIds(8, 1), 200));
  v1::GenerateResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  int tokens = resp.tokens_size();
  worker->child().Signal(SIGTERM);
  ASSERT_OK_AND_ASSIGN(std::string line, worker->ReadLine(std::chrono::seconds(10)));
  EXPECT_THAT(line, HasSubstr("draining"));
  Result refused = Generate(worker->stub(), IdsRequest({1, 2}, 2));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::GenerateResponse last;
  while (reader->Read(&resp)) {
    tokens += resp.tokens_size();
    last = resp;
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, 200);  // finished, not cut
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  bool in_time = false;
  const int status = worker->child().StopWithin(0, std::chrono::seconds(20), &in_time);
  EXPECT_TRUE(in_time);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace wf
