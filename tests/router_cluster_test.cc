// The router tier as deployed: real wf_worker and wf_router processes on
// 127.0.0.1. KV-cache affinity against round robin, agreement between two
// routers, a worker killed mid-stream and restarted, the gateway's error
// answers, the gRPC front, and the router's added latency (printed).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"

namespace wf {
namespace {

namespace v1 = wrinklefree::v1;
using Json = nlohmann::json;
using ::testing::HasSubstr;
using wf::testing::HttpResponse;
using wf::testing::RouterProcess;
using wf::testing::WorkerProcess;

constexpr int kWorkers = 3;
constexpr int kVocab = 2048;
// Workers report load (and KV events) this often to the routers.
constexpr int kReportMs = 50;

std::vector<int32_t> RandomIds(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(4 + rng() % (kVocab - 4));
  return ids;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Cluster {
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  std::vector<std::unique_ptr<RouterProcess>> routers;

  std::vector<std::string> Addresses() const {
    std::vector<std::string> a;
    for (const auto& w : workers) {
      if (w) a.push_back(w->address());
    }
    return a;
  }
};

// Starts `n` workers and one router per entry of `router_args`.
absl::StatusOr<Cluster> StartCluster(int n, const std::vector<std::vector<std::string>>& router_args) {
  Cluster c;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<std::unique_ptr<WorkerProcess>> w = WorkerProcess::Start({"--max-running", "8"});
    if (!w.ok()) return w.status();
    c.workers.push_back(*std::move(w));
  }
  for (std::vector<std::string> args : router_args) {
    args.push_back("--worker-report-interval-ms");
    args.push_back(std::to_string(kReportMs));
    absl::StatusOr<std::unique_ptr<RouterProcess>> r = RouterProcess::Start(c.Addresses(), args);
    if (!r.ok()) return r.status();
    c.routers.push_back(*std::move(r));
  }
  return c;
}

// wrinklefree:generation_tokens_total summed over its label sets, or -1 if
// the worker's metrics cannot be read.
double GenerationTokens(const WorkerProcess& w) {
  absl::StatusOr<HttpResponse> r = testing::HttpGet(w.metrics_port(), "/metrics");
  if (!r.ok() || r->status != 200) return -1;
  double total = 0;
  for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
    if (!absl::StartsWith(line, "wrinklefree:generation_tokens_total")) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) total += v;
  }
  return total;
}

std::vector<double> AllGenerationTokens(const Cluster& c) {
  std::vector<double> v;
  for (const auto& w : c.workers) v.push_back(w ? GenerationTokens(*w) : -1);
  return v;
}

// Waits (bounded) until no worker runs or queues anything, then a few report
// periods so that every router has seen the final state (and KV events).
void Settle(Cluster& c) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (auto& w : c.workers) {
    if (!w) continue;
    while (std::chrono::steady_clock::now() < deadline) {
      const v1::Load l = w->CurrentLoad();
      if (l.running() == 0 && l.waiting() == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(4 * kReportMs));
}

std::string ModelName(const RouterProcess& r) {
  absl::StatusOr<HttpResponse> models = testing::HttpGet(r.http_port(), "/v1/models");
  if (!models.ok() || models->status != 200) return "";
  Json j = Json::parse(models->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || j["data"].empty()) return "";
  return j["data"][0].value("id", "");
}

std::string CompletionBody(const std::string& model, const std::vector<int32_t>& ids, int max_tokens,
                           bool stream = false) {
  Json j = {{"model", model}, {"prompt", ids}, {"max_tokens", max_tokens}, {"temperature", 0},
            {"ignore_eos", true}};
  if (stream) j["stream"] = true;
  return j.dump();
}

// The worker (index) whose generation counter grew since `before`; -1 if none
// did within the bound, -2 if more than one did.
int WhoServed(const Cluster& c, const std::vector<double>& before) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::vector<double> now = AllGenerationTokens(c);
    int grown = 0, who = -1;
    for (size_t i = 0; i < now.size(); ++i) {
      if (now[i] > before[i]) {
        ++grown;
        who = static_cast<int>(i);
      }
    }
    if (grown > 1) return -2;
    if (grown == 1) return who;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

// Sends the shared-prefix workload (conversation after conversation) through
// router 0 and returns sum(cached_tokens) / sum(prompt_tokens).
double PrefixHitRate(Cluster& c, const char* policy) {
  constexpr int kConversations = 6;
  constexpr int kTurns = 5;
  const std::string model = ModelName(*c.routers[0]);
  EXPECT_FALSE(model.empty());
  int64_t prompt = 0, cached = 0;
  for (int conv = 0; conv < kConversations; ++conv) {
    const std::vector<int32_t> prefix = RandomIds(128, 1000 + conv);
    for (int turn = 0; turn < kTurns; ++turn) {
      const std::vector<int32_t> ids = Concat(prefix, RandomIds(8, 5000 + conv * 100 + turn));
      absl::StatusOr<HttpResponse> r =
          testing::HttpPost(c.routers[0]->http_port(), "/v1/completions", CompletionBody(model, ids, 2));
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) continue;
      EXPECT_EQ(r->status, 200) << r->body;
      Json j = Json::parse(r->body, nullptr, false);
      if (j.is_discarded() || !j.contains("usage")) {
        ADD_FAILURE() << "no usage in " << r->body;
        continue;
      }
      prompt += j["usage"].value("prompt_tokens", 0);
      cached += j["usage"]["prompt_tokens_details"].value("cached_tokens", 0);
      Settle(c);
    }
  }
  const double rate = prompt > 0 ? static_cast<double>(cached) / static_cast<double>(prompt) : 0;
  std::printf("[router_cluster] policy %s: cached %lld of %lld prompt tokens, hit rate %.3f\n", policy,
              static_cast<long long>(cached), static_cast<long long>(prompt), rate);
  return rate;
}

TEST(RouterClusterTest, KvAffinityReusesPrefixesFarMoreThanRoundRobin) {
  double affinity = 0, round_robin = 0;
  {
    ASSERT_OK_AND_ASSIGN(Cluster c, StartCluster(kWorkers, {{"--policy", "kv_affinity"}}));
    affinity = PrefixHitRate(c, "kv_affinity");
  }
  {
    ASSERT_OK_AND_ASSIGN(Cluster c, StartCluster(kWorkers, {{"--policy", "round_robin"}}));
    round_robin = PrefixHitRate(c, "round_robin");
  }
  EXPECT_GE(affinity, 0.6);
  EXPECT_GT(affinity, round_robin + 0.2);
}

TEST(RouterClusterTest, TwoRoutersChooseTheSameWorkerForTheSameRequests) {
  ASSERT_OK_AND_ASSIGN(Cluster c, StartCluster(kWorkers, {{"--policy", "kv_affinity"}, {"--policy", "kv_affinity"}}));
  const std::string model = ModelName(*c.routers[0]);
  ASSERT_FALSE(model.empty());
  // Conversations interleaved with one-off prompts: some requests have a
  // cached prefix somewhere, some none (the choice is then a tie-break).
  std::vector<std::vector<int32_t>> stream;
  for (int turn = 0; turn < 3; ++turn) {
    for (int conv = 0; conv < 4; ++conv) {
      stream.push_back(Concat(RandomIds(64, 200 + conv), RandomIds(5 + turn, 300 + conv * 10 + turn)));
    }
    stream.push_back(RandomIds(40 + turn, 400 + turn));
  }
  std::vector<int> served_counts(kWorkers, 0);
  for (size_t k = 0; k < stream.size(); ++k) {
    int chosen[2];
    for (int r = 0; r < 2; ++r) {
      Settle(c);
      const std::vector<double> before = AllGenerationTokens(c);
      absl::StatusOr<HttpResponse> resp =
          testing::HttpPost(c.routers[r]->http_port(), "/v1/completions", CompletionBody(model, stream[k], 3));
      ASSERT_TRUE(resp.ok()) << resp.status();
      ASSERT_EQ(resp->status, 200) << resp->body;
      chosen[r] = WhoServed(c, before);
      ASSERT_GE(chosen[r], 0) << "request " << k << " via router " << r << ": cannot tell which worker served it";
    }
    EXPECT_EQ(chosen[0], chosen[1]) << "request " << k;
    ++served_counts[chosen[0]];
  }
  std::printf("[router_cluster] agreement: requests per worker %d/%d/%d\n", served_counts[0], served_counts[1],
              served_counts[2]);
}

struct StreamOutcome {
  absl::Status transport;  // the HTTP exchange itself (DEADLINE_EXCEEDED = hung)
  int status = 0;
  bool done = false;       // "[DONE]" seen
  bool finished = false;   // a finish_reason seen
  bool error = false;      // an in-band error event, or a non-200 JSON error
  std::string detail;
};

StreamOutcome StreamCompletion(int port, const std::string& body) {
  StreamOutcome o;
  absl::StatusOr<HttpResponse> r = testing::HttpPost(port, "/v1/completions", body, std::chrono::seconds(120));
  if (!r.ok()) {
    o.transport = r.status();
    return o;
  }
  o.status = r->status;
  if (r->status != 200) {
    Json j = Json::parse(r->body, nullptr, false);
    o.error = !j.is_discarded() && j.contains("error") && j["error"].contains("message");
    o.detail = r->body.substr(0, 300);
    return o;
  }
  for (const std::string& data : testing::SseData(r->body)) {
    if (data == "[DONE]") {
      o.done = true;
      continue;
    }
    Json j = Json::parse(data, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.contains("error")) {
      o.error = true;
      o.detail = data.substr(0, 300);
    }
    if (j.contains("choices")) {
      for (const Json& ch : j["choices"]) {
        if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) o.finished = true;
      }
    }
  }
  return o;
}

TEST(RouterClusterTest, KilledWorkerIsRoutedAroundAndWelcomedBack) {
  ASSERT_OK_AND_ASSIGN(Cluster c, StartCluster(kWorkers, {{"--policy", "kv_affinity"}}));
  RouterProcess& router = *c.routers[0];
  const std::string model = ModelName(router);
  ASSERT_FALSE(model.empty());

  // /ready is watched for the whole test.
  std::atomic<bool> stop_watch{false};
  std::atomic<int> not_ready{0}, ready_probes{0};
  std::thread watch([&] {
    while (!stop_watch.load()) {
      absl::StatusOr<HttpResponse> r = testing::HttpGet(router.http_port(), "/ready", std::chrono::seconds(5));
      ++ready_probes;
      if (!r.ok() || r->status != 200) ++not_ready;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  constexpr int kStreams = 12;
  std::vector<StreamOutcome> outcomes(kStreams);
  std::vector<std::thread> clients;
  const std::vector<double> before = AllGenerationTokens(c);
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] {
      outcomes[i] = StreamCompletion(router.http_port(), CompletionBody(model, RandomIds(20 + i, 700 + i), 600, true));
    });
  }
  // The victim: the first worker seen generating.
  int victim = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (victim < 0 && std::chrono::steady_clock::now() < deadline) {
    const std::vector<double> now = AllGenerationTokens(c);
    for (int i = 0; i < kWorkers && victim < 0; ++i) {
      if (now[i] > before[i]) victim = i;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(victim, 0) << "no worker started generating";
  const int victim_port = c.workers[victim]->grpc_port();
  {
    const std::vector<double> at_kill = AllGenerationTokens(c);
    std::printf("[router_cluster] tokens generated per worker at the kill: %.0f/%.0f/%.0f\n", at_kill[0] - before[0],
                at_kill[1] - before[1], at_kill[2] - before[2]);
  }
  c.workers[victim]->child().Stop(SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();

  // While the streams run on: new requests, polled until the first success,
  // then every one must succeed.
  auto one_request = [&](uint64_t seed) {
    absl::StatusOr<HttpResponse> r =
        testing::HttpPost(router.http_port(), "/v1/completions", CompletionBody(model, RandomIds(24, seed), 4));
    return r.ok() && r->status == 200;
  };
  bool first_ok = false;
  int failed_before = 0;
  uint64_t seed = 9000;
  const auto poll_until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!first_ok && std::chrono::steady_clock::now() < poll_until) {
    first_ok = one_request(seed++);
    if (!first_ok) {
      ++failed_before;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ASSERT_TRUE(first_ok) << "no request succeeded after the kill";
  std::printf("[router_cluster] first success %lld ms after the kill (%d failed before)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - killed_at)
                                         .count()),
              failed_before);
  for (int i = 0; i < 12; ++i) EXPECT_TRUE(one_request(seed++)) << "request " << i << " after the kill";

  for (auto& t : clients) t.join();
  int completed = 0, errored = 0;
  for (int i = 0; i < kStreams; ++i) {
    const StreamOutcome& o = outcomes[i];
    ASSERT_TRUE(o.transport.ok()) << "stream " << i << " did not end cleanly: " << o.transport;
    const bool complete = o.status == 200 && o.done && o.finished && !o.error;
    const bool clear_error = o.error && (o.status != 200 || o.done);
    EXPECT_TRUE(complete || clear_error) << "stream " << i << ": status " << o.status << " done " << o.done
                                         << " finished " << o.finished << " error " << o.error << " " << o.detail;
    completed += complete ? 1 : 0;
    errored += clear_error ? 1 : 0;
    if (clear_error) std::printf("[router_cluster]   stream %d: status %d, %s\n", i, o.status, o.detail.c_str());
  }
  std::printf("[router_cluster] kill -9 worker %d mid-run: %d streams completed, %d ended with an error\n", victim,
              completed, errored);

  // The worker comes back on the same port and gets traffic again.
  c.workers[victim].reset();
  ASSERT_OK_AND_ASSIGN(c.workers[victim],
                       WorkerProcess::Start({"--max-running", "8", "--port", std::to_string(victim_port)}));
  ASSERT_EQ(c.workers[victim]->grpc_port(), victim_port);
  bool served = false;
  const auto back_until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!served && std::chrono::steady_clock::now() < back_until) {
    EXPECT_TRUE(one_request(seed++));
    served = GenerationTokens(*c.workers[victim]) > 0;
  }
  EXPECT_TRUE(served) << "the restarted worker got no request";

  stop_watch.store(true);
  watch.join();
  EXPECT_EQ(not_ready.load(), 0) << "of " << ready_probes.load() << " /ready probes";
}

TEST(RouterClusterTest, GatewayRejectsBadRequestsPrecisely) {
  ASSERT_OK_AND_ASSIGN(Cluster c, StartCluster(1, {{"--max-body-bytes", "65536"}}));
  const int port = c.routers[0]->http_port();
  const std::string model = ModelName(*c.routers[0]);
  ASSERT_FALSE(model.empty());
  const std::string m = absl::StrCat(R"({"model":")", model, R"(",)");
  std::vector<int32_t> long_prompt(4100, 7);
  std::string huge = absl::StrCat(m, R"("prompt":")", std::string(70000, 'a'), R"("})");

  struct Case {
    const char* name;
    std::string method;
    std::string path;
    std::string body;
    int status;
    std::string message;  // substring of error.message
    std::string param;    // error.param ("" = not checked)
  };
  const std::vector<Case> cases = {
      {"MalformedJson", "POST", "/v1/completions", R"({"model": "x", "prompt": [1, 2)", 400, "not valid JSON", ""},
      {"PromptWrongType", "POST", "/v1/completions", m + R"("prompt": 12})", 400, "prompt", "prompt"},
      {"MaxTokensWrongType", "POST", "/v1/completions", m + R"("prompt": [1,2], "max_tokens": "ten"})", 400,
       "max_tokens", "max_tokens"},
      {"StreamWrongType", "POST", "/v1/chat/completions",
       m + R"("messages": [{"role":"user","content":"hi"}], "stream": "yes"})", 400, "stream", "stream"},
      {"HugeBody", "POST", "/v1/completions", huge, 413, "65536", ""},
      {"InvalidUtf8", "POST", "/v1/completions", m + "\"prompt\": \"caf\xc3\x28 \xff\"}", 400, "UTF-8", ""},
      {"NegativeMaxTokens", "POST", "/v1/completions", m + R"("prompt": [1,2], "max_tokens": -5})", 400, "-5",
       "max_tokens"},
      {"PromptOverContext", "POST", "/v1/completions",
       m + absl::StrCat(R"("prompt": )", Json(long_prompt).dump(), R"(, "max_tokens": 16})"), 400, "4100",
       "prompt"},
      {"UnknownRoute", "POST", "/v1/nothing-here", "{}", 404, "/v1/nothing-here", ""},
      {"WrongMethod", "GET", "/v1/completions", "", 405, "POST", ""},
      {"UnknownModel", "POST", "/v1/completions", R"({"model": "no-such-model", "prompt": [1, 2]})", 404,
       "no-such-model", "model"},
      {"NTooLarge", "POST", "/v1/completions", m + R"("prompt": [1,2], "n": 500})", 400, "500", "n"},
      {"TokenIdOutsideVocabulary", "POST", "/v1/completions", m + R"("prompt": [1, 99999]})", 400, "2048", "prompt"},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    absl::StatusOr<testing::HttpExchange> ex = testing::HttpRequestFull(port, tc.method, tc.path, tc.body);
    ASSERT_TRUE(ex.ok()) << ex.status();
    EXPECT_EQ(ex->response.status, tc.status) << ex->response.body;
    Json j = Json::parse(ex->response.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "error body is not JSON: " << ex->response.body;
    ASSERT_TRUE(j.contains("error") && j["error"].is_object()) << ex->response.body;
    EXPECT_THAT(j["error"].value("message", ""), HasSubstr(tc.message)) << ex->response.body;
    if (!tc.param.empty()) {
      EXPECT_TRUE(j["error"].contains("param") && j["error"]["param"].is_string() &&
                  absl::StrContains(j["error"]["param"].get<std::string>(), tc.param))
          << ex->response.body;
    }
  }
  // The over-context message names both the prompt's size and the limit.
  absl::StatusOr<HttpResponse> r = testing::HttpPost(
      port, "/v1/completions", m + absl::StrCat(R"("prompt": )", Json(long_prompt).dump(), R"(, "max_tokens": 16})"));
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->body, HasSubstr("4096"));
  EXPECT_THAT(r->body, HasSubstr("4100"));
  // The router still serves after all that.
  r = testing::HttpPost(port, "/v1/completions", CompletionBody(model, {1, 2, 3}, 2));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200) << r->body;
}

struct GrpcResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  v1::GenerateResponse final;
  std::chrono::microseconds first_token{0};
};

GrpcResult RouterGenerate(v1::Router::Stub& stub, const v1::RouterGenerateRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  GrpcResult r;
  const auto start = std::chrono::steady_clock::now();
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    if (r.tokens.empty() && resp.tokens_size() > 0) {
      r.first_token = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    }
    for (const auto& t : resp.tokens()) r.tokens.push_back(t.token_id());
    if (resp.finished()) r.final = resp;
  }
  r.status = reader->Finish();
  return r;
}

v1::GenerateRequest IdsRequest(const std::vector<int32_t>& ids, int max_tokens) {
  v1::GenerateRequest g;
  g.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  g.mutable_stop()->set_max_tokens(max_tokens);
  g.mutable_stop()->set_ignore_eos(true);
  g.mutable_sampling()->set_temperature(0);
  return g;
}

TEST(RouterClusterTest, GrpcFrontGeneratesListsModelsAndReportsHealth) {
  ASSERT_OK_AND_ASSIGN(Cluster c, StartCluster(kWorkers, {{}}));
  RouterProcess& router = *c.routers[0];

  v1::RouterGenerateRequest req;
  const std::vector<int32_t> ids = RandomIds(37, 42);
  *req.mutable_request() = IdsRequest(ids, 9);
  GrpcResult r = RouterGenerate(router.stub(), req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens.size(), 9u);
  EXPECT_TRUE(r.final.finished());
  EXPECT_EQ(r.final.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(r.final.usage().prompt_tokens(), 37);
  EXPECT_EQ(r.final.usage().completion_tokens(), 9);
  // Greedy: the same tokens as straight from a worker.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = c.workers[0]->stub().Generate(&ctx, IdsRequest(ids, 9));
    std::vector<int32_t> direct;
    v1::GenerateResponse resp;
    while (reader->Read(&resp)) {
      for (const auto& t : resp.tokens()) direct.push_back(t.token_id());
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(r.tokens, direct);
  }

  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListModelsResponse models;
    ASSERT_TRUE(router.stub().ListModels(&ctx, {}, &models).ok());
    ASSERT_EQ(models.models_size(), 1);
    EXPECT_FALSE(models.models(0).model_name().empty());
    EXPECT_EQ(models.models(0).vocab_size(), kVocab);
    EXPECT_EQ(models.models(0).kv_block_size(), 16);
    ASSERT_EQ(models.healthy_workers_size(), 1);
    EXPECT_GE(models.healthy_workers(0), 1);
    EXPECT_LE(models.healthy_workers(0), kWorkers);
  }

  struct Bad {
    const char* name;
    v1::RouterGenerateRequest req;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Bad> bad;
  bad.push_back({"NoPrompt", {}, grpc::StatusCode::INVALID_ARGUMENT, "prompt"});
  {
    v1::RouterGenerateRequest b;
    *b.mutable_request() = IdsRequest({1, 2, 5000}, 2);
    bad.push_back({"IdOutsideVocabulary", b, grpc::StatusCode::INVALID_ARGUMENT, "ids[2]"});
  }
  {
    v1::RouterGenerateRequest b;
    *b.mutable_request() = IdsRequest(std::vector<int32_t>(4090, 9), 100);
    bad.push_back({"OverContext", b, grpc::StatusCode::INVALID_ARGUMENT, "4096"});
  }
  {
    v1::RouterGenerateRequest b;
    *b.mutable_request() = IdsRequest({1, 2}, 2);
    b.set_model("no-such-model");
    bad.push_back({"UnknownModel", b, grpc::StatusCode::NOT_FOUND, "no-such-model"});
  }
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.name);
    GrpcResult br = RouterGenerate(router.stub(), b.req);
    EXPECT_EQ(br.status.error_code(), b.code) << br.status.error_message();
    EXPECT_THAT(br.status.error_message(), HasSubstr(b.message));
    EXPECT_TRUE(br.tokens.empty());
  }

  // grpc.health.v1.Health/Check with an empty service name, as raw bytes:
  // HealthCheckRequest{} is empty and HealthCheckResponse{status: SERVING}
  // is field 1 (varint) = 1. The router refreshes the status from its pool
  // periodically, so it is polled (bounded).
  grpc::GenericStub generic(router.channel());
  auto health = [&]() -> std::string {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice empty("");  // a default ByteBuffer is no message at all
    grpc::ByteBuffer request_buf(&empty, 1), response_buf;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buf, &response_buf,
                      [&done](grpc::Status s) { done.set_value(std::move(s)); });
    grpc::Status s = done.get_future().get();
    if (!s.ok()) return "error: " + s.error_message();
    std::vector<grpc::Slice> slices;
    if (!response_buf.Dump(&slices).ok()) return "error: cannot read the response";
    std::string bytes;
    for (const grpc::Slice& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    return bytes;
  };
  const std::string kServing("\x08\x01", 2);
  std::string status = health();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int probes = 1;
  while (status != kServing && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    status = health();
    ++probes;
  }
  EXPECT_EQ(status, kServing) << "not SERVING";
  if (probes > 1) std::printf("[router_cluster] gRPC health became SERVING after %d probes\n", probes);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[k];
}

TEST(RouterClusterTest, RouterOverheadOnTimeToFirstToken) {
  // One worker, so that the only difference is the router in between.
  ASSERT_OK_AND_ASSIGN(Cluster c, StartCluster(1, {{}}));
  RouterProcess& router = *c.routers[0];
  const std::string model = ModelName(router);
  ASSERT_FALSE(model.empty());
  constexpr int kRequests = 50;
  std::vector<double> direct_ms, router_grpc_ms, router_http_ms;
  for (int i = 0; i < kRequests; ++i) {
    // Fresh prompts of one length everywhere: no path gets cache hits.
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      const auto start = std::chrono::steady_clock::now();
      auto reader = c.workers[0]->stub().Generate(&ctx, IdsRequest(RandomIds(32, 20000 + i), 1));
      v1::GenerateResponse resp;
      double first = -1;
      while (reader->Read(&resp)) {
        if (first < 0 && resp.tokens_size() > 0) {
          first = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        }
      }
      ASSERT_TRUE(reader->Finish().ok());
      ASSERT_GE(first, 0) << "no token from the worker";
      direct_ms.push_back(first);
    }
    {
      v1::RouterGenerateRequest req;
      *req.mutable_request() = IdsRequest(RandomIds(32, 30000 + i), 1);
      GrpcResult r = RouterGenerate(router.stub(), req);
      ASSERT_TRUE(r.status.ok()) << r.status.error_message();
      router_grpc_ms.push_back(static_cast<double>(r.first_token.count()) / 1000.0);
    }
    {
      absl::StatusOr<testing::HttpExchange> ex = testing::HttpRequestFull(
          router.http_port(), "POST", "/v1/completions", CompletionBody(model, RandomIds(32, 40000 + i), 1, true));
      ASSERT_TRUE(ex.ok()) << ex.status();
      ASSERT_EQ(ex->response.status, 200);
      router_http_ms.push_back(static_cast<double>(ex->first_byte.count()) / 1000.0);
    }
  }
  const double d50 = Percentile(direct_ms, 0.5), d99 = Percentile(direct_ms, 0.99);
  const double g50 = Percentile(router_grpc_ms, 0.5), g99 = Percentile(router_grpc_ms, 0.99);
  const double h50 = Percentile(router_http_ms, 0.5), h99 = Percentile(router_http_ms, 0.99);
  std::printf("[router_cluster] TTFT over %d greedy requests, max_tokens 1 (ms):\n", kRequests);
  std::printf("[router_cluster]   worker gRPC direct : p50 %7.2f  p99 %7.2f\n", d50, d99);
  std::printf("[router_cluster]   router gRPC front  : p50 %7.2f  p99 %7.2f  (+%.2f / +%.2f)\n", g50, g99, g50 - d50,
              g99 - d99);
  std::printf("[router_cluster]   router HTTP (SSE)  : p50 %7.2f  p99 %7.2f  (+%.2f / +%.2f; first byte)\n",
              h50, h99, h50 - d50, h99 - d99);
  EXPECT_EQ(direct_ms.size(), static_cast<size_t>(kRequests));
}

}  // namespace
}  // namespace wf

namespace wf {
namespace {

// A client that reads the first SSE bytes of a long generation and hangs up:
// the router must cancel the upstream stream, so the worker frees the slot
// long before max_tokens would be reached.
TEST(RouterClusterTest, ClientDisconnectCancelsTheWorkersGeneration) {
  absl::StatusOr<Cluster> c = StartCluster(1, {{}});
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string model = ModelName(*c->routers[0]);
  ASSERT_FALSE(model.empty());
  // The tiny model can finish 3000 tokens before the hang-up lands (the
  // worker never waits for a slow client), so an attempt only counts when the
  // generation was still running at the hang-up; a few attempts are allowed.
  bool cancelled_one = false;
  for (int attempt = 0; attempt < 5 && !cancelled_one; ++attempt) {
    const double tokens_before = GenerationTokens(*c->workers[0]);
    const std::string body = CompletionBody(model, RandomIds(16, 77 + attempt), 3000, /*stream=*/true);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(c->routers[0]->http_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string req = absl::StrCat("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
                                         "Content-Length: ", body.size(), "\r\n\r\n", body);
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    // Wait (bounded) for the first streamed bytes: the generation is running.
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (got.find("data:") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    ASSERT_NE(got.find("data:"), std::string::npos) << got;
    const bool running = c->workers[0]->CurrentLoad().running() == 1;
    ::close(fd);
    // The worker's slot frees within a bounded time either way.
    bool freed = false;
    for (int i = 0; i < 500 && !freed; ++i) {
      freed = c->workers[0]->CurrentLoad().running() == 0;
      if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(freed);
    if (!running) continue;
    // Cancelled far before its 3000 tokens.
    EXPECT_LT(GenerationTokens(*c->workers[0]) - tokens_before, 3000);
    cancelled_one = true;
  }
  EXPECT_TRUE(cancelled_one) << "every attempt finished before the hang-up reached the worker";
}

}  // namespace
}  // namespace wf
