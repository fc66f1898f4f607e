// WorkerPool against real wf_worker processes on 127.0.0.1 (and one scripted
// in-process WatchLoad server for sequence gaps).
#include "router/dispatch/worker_pool.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/kv/block_hash.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/dispatch/model_tokenizer.h"
#include "router/dispatch/routing_policy.h"
#include "tests/testing/worker_process.h"

namespace wf::router {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;
using ::wf::testing::WorkerProcess;
namespace v1 = ::wrinklefree::v1;

// Generous bound for conditions that normally hold within a second; the
// tests assert outcomes, not timings.
constexpr absl::Duration kPatience = absl::Seconds(30);

template <typename Pred>
bool Eventually(Pred pred, absl::Duration limit = kPatience) {
  const absl::Time deadline = absl::Now() + limit;
  while (!pred()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

std::optional<WorkerStatus> StatusOf(const WorkerPool& pool, const std::string& id) {
  for (WorkerStatus& s : pool.Status()) {
    if (s.id == id) return s;
  }
  return std::nullopt;
}

std::optional<WorkerView> ViewOf(const std::vector<WorkerView>& views, const std::string& id) {
  for (const WorkerView& v : views) {
    if (v.id == id) return v;
  }
  return std::nullopt;
}

// Prefills `ids` on the worker (one generated token) so its blocks get cached.
void Prefill(WorkerProcess& worker, const std::vector<int32_t>& ids) {
  v1::GenerateRequest req;
  req.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  req.mutable_sampling()->set_temperature(0);
  req.mutable_stop()->set_max_tokens(1);
  grpc::ClientContext ctx;
  auto reader = worker.stub().Generate(&ctx, req);
  v1::GenerateResponse resp;
  bool finished = false;
  while (reader->Read(&resp)) finished |= resp.finished();
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(finished);
}

// The worker's own cached hashes: the snapshot of a fresh WatchLoad stream.
std::vector<uint64_t> WorkerSnapshot(WorkerProcess& worker) {
  grpc::ClientContext ctx;
  v1::WatchLoadRequest req;
  req.set_include_kv_events(true);
  auto reader = worker.stub().WatchLoad(&ctx, req);
  v1::LoadReport report;
  std::vector<uint64_t> out;
  if (reader->Read(&report)) out.assign(report.snapshot().block_hashes().begin(), report.snapshot().block_hashes().end());
  ctx.TryCancel();
  reader->Finish();
  std::sort(out.begin(), out.end());
  return out;
}

// Distinct `first` values below 20 give unrelated sequences of ids in [10, 260).
std::vector<int32_t> Tokens(int first, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(10 + (first * 13 + i * 7) % 250);
  return out;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

WorkerPoolOptions FastOptions() {
  WorkerPoolOptions o;
  o.report_interval_ms = 50;
  o.dns_refresh = absl::Milliseconds(100);
  o.reconnect_backoff_initial = absl::Milliseconds(20);
  o.reconnect_backoff_max = absl::Milliseconds(200);
  return o;
}

TEST(WorkerPoolTest, MirrorsConvergeAndAffinityPicksTheHolder) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  ASSERT_OK_AND_ASSIGN(auto w1, WorkerProcess::Start());
  WorkerPoolOptions o = FastOptions();
  o.static_workers = {w0->address(), w1->address()};
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(2, kPatience), IsOk());

  ASSERT_OK_AND_ASSIGN(v1::ModelInfo info, pool->ModelInfo());
  EXPECT_FALSE(info.vocab_tokens().empty()) << "the pool's model carries the tokenizer";
  ASSERT_OK_AND_ASSIGN(auto mt, ModelTokenizer::Create(info));
  const int bs = mt->block_size();
  ASSERT_GT(bs, 0);
  ASSERT_GE(info.vocab_size(), 260);

  // Shared 3-block prefix: two requests on w0; an unrelated prompt on w1.
  const std::vector<int32_t> shared = Tokens(1, 3 * bs);
  const std::vector<int32_t> a = Concat(shared, Tokens(2, bs + 3));
  const std::vector<int32_t> b = Concat(shared, Tokens(3, 2 * bs));
  const std::vector<int32_t> other = Tokens(4, 4 * bs);
  Prefill(*w0, a);
  Prefill(*w0, b);
  Prefill(*w1, other);

  for (WorkerProcess* w : {w0.get(), w1.get()}) {
    std::vector<uint64_t> own;
    EXPECT_TRUE(Eventually([&] {
      own = WorkerSnapshot(*w);
      return !own.empty() && pool->CachedHashes(w->address()) == own;
    })) << w->address() << ": mirror " << pool->CachedHashes(w->address()).size() << " hashes, worker "
        << own.size();
  }

  // A new request sharing the prefix (plus one more block of its own).
  const std::vector<int32_t> c = Concat(shared, Tokens(5, 2 * bs));
  const std::vector<uint64_t> hashes = mt->BlockHashes(c);
  ASSERT_EQ(hashes.size(), 5u);
  const std::vector<WorkerView> views = pool->Views(hashes);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(ViewOf(views, w0->address())->matched_blocks, 3);
  EXPECT_EQ(ViewOf(views, w1->address())->matched_blocks, 0);
  EXPECT_EQ(ViewOf(views, w0->address())->kv_total, info.kv_total_blocks());
  ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create({}));
  ASSERT_OK_AND_ASSIGN(RoutingDecision d, policy->Choose({hashes, ""}, views));
  EXPECT_EQ(d.worker_id, w0->address());
  EXPECT_EQ(d.reason, "kv_affinity");
  EXPECT_EQ(d.predicted_matched_blocks, 3);

  // The router's tokenizer agrees with the worker's.
  for (const char* text : {"Hello world", "<|begin_of_text|>x  y\n\nz 123"}) {
    ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ours, mt->EncodeText(text));
    v1::TokenizeRequest req;
    req.set_text(text);
    v1::TokenizeResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(w0->stub().Tokenize(&ctx, req, &resp).ok());
    EXPECT_THAT(ours, ::testing::ElementsAreArray(resp.ids())) << text;
  }
  if (mt->chat_format().has_value()) {
    ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ours, mt->EncodeChat({{"system", "Be brief."}, {"user", "Hi there"}}));
    v1::TokenizeRequest req;
    for (auto [role, content] : {std::pair{"system", "Be brief."}, std::pair{"user", "Hi there"}}) {
      v1::ChatMessage* m = req.mutable_chat()->add_messages();
      m->set_role(role);
      m->set_content(content);
    }
    v1::TokenizeResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(w0->stub().Tokenize(&ctx, req, &resp).ok());
    EXPECT_THAT(ours, ::testing::ElementsAreArray(resp.ids()));
  }
}

TEST(WorkerPoolTest, KilledWorkerTurnsUnhealthyAndComesBackFresh) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  ASSERT_OK_AND_ASSIGN(auto w1, WorkerProcess::Start());
  WorkerPoolOptions o = FastOptions();
  o.static_workers = {w0->address(), w1->address()};
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(2, kPatience), IsOk());
  const std::string id = w1->address();
  const int port = w1->grpc_port();

  Prefill(*w1, Tokens(6, 64));
  ASSERT_TRUE(Eventually([&] { return !pool->CachedHashes(id).empty(); }));
  const std::string old_instance = StatusOf(*pool, id)->instance_id;
  ASSERT_FALSE(old_instance.empty());

  w1->child().Stop(SIGKILL);
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(Eventually([&] { return !ViewOf(pool->Views({}), id)->healthy; }));
  std::cerr << "unhealthy " << absl::FormatDuration(absl::Now() - killed) << " after SIGKILL\n";
  EXPECT_TRUE(ViewOf(pool->Views({}), w0->address())->healthy);
  ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create({}));
  for (int i = 0; i < 10; ++i) {
    const std::vector<uint64_t> hashes = {static_cast<uint64_t>(i)};
    ASSERT_OK_AND_ASSIGN(RoutingDecision d, policy->Choose({hashes, ""}, pool->Views(hashes)));
    EXPECT_EQ(d.worker_id, w0->address());
  }

  // Restarted on the same port: healthy again, new instance, empty mirror.
  w1.reset();
  ASSERT_OK_AND_ASSIGN(w1, WorkerProcess::Start({"--port", std::to_string(port)}));
  ASSERT_EQ(w1->address(), id);
  ASSERT_TRUE(Eventually([&] {
    std::optional<WorkerStatus> s = StatusOf(*pool, id);
    return s->healthy && s->instance_id != old_instance;
  }));
  const WorkerStatus s = *StatusOf(*pool, id);
  EXPECT_GE(s.restarts, 1);
  EXPECT_EQ(s.cached_blocks, 0u);
  EXPECT_TRUE(pool->CachedHashes(id).empty());
  EXPECT_EQ(s.breaker, CircuitBreaker::State::kClosed);
}

// A hung worker (SIGSTOP) keeps its TCP connection but stops reporting: it
// turns unhealthy (alone in the pool, once the idle watchdog has closed its
// stream), and healthy again once it resumes.
TEST(WorkerPoolTest, SilentWorkerTurnsStaleAndRecovers) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  WorkerPoolOptions o = FastOptions();
  o.static_workers = {w0->address()};
  o.stream_idle_timeout = absl::Milliseconds(500);
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(1, kPatience), IsOk());
  const int64_t streams_before = StatusOf(*pool, w0->address())->streams_opened;
  w0->child().Signal(SIGSTOP);
  const bool went_stale = Eventually([&] { return !ViewOf(pool->Views({}), w0->address())->healthy; });
  EXPECT_TRUE(StatusOf(*pool, w0->address())->instance_id.size() > 0);
  // Let the watchdog cancel the silent stream at least once.
  const bool reopened =
      Eventually([&] { return StatusOf(*pool, w0->address())->streams_opened > streams_before; });
  w0->child().Signal(SIGCONT);
  EXPECT_TRUE(went_stale);
  EXPECT_TRUE(reopened);
  ASSERT_THAT(pool->WaitForHealthy(1, kPatience), IsOk());
  EXPECT_EQ(StatusOf(*pool, w0->address())->restarts, 0) << "same process, same instance";
}

// Of two workers, the stopped one is listed silent (the other keeps
// reporting) and unhealthy; once resumed, none is.
TEST(WorkerPoolTest, SilentWorkersListsTheStoppedOneOnly) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  ASSERT_OK_AND_ASSIGN(auto w1, WorkerProcess::Start());
  WorkerPoolOptions o = FastOptions();
  o.static_workers = {w0->address(), w1->address()};
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(2, kPatience), IsOk());
  const absl::Duration silence = absl::Milliseconds(300);
  EXPECT_TRUE(pool->SilentWorkers(silence).empty());
  w1->child().Signal(SIGSTOP);
  const bool listed = Eventually([&] { return pool->SilentWorkers(silence) == std::vector{w1->address()}; });
  const bool unhealthy = !ViewOf(pool->Views({}), w1->address())->healthy;
  const bool other_healthy = ViewOf(pool->Views({}), w0->address())->healthy;
  w1->child().Signal(SIGCONT);
  EXPECT_TRUE(listed);
  EXPECT_TRUE(unhealthy);
  EXPECT_TRUE(other_healthy);
  EXPECT_TRUE(Eventually([&] { return pool->SilentWorkers(silence).empty(); }));
  ASSERT_THAT(pool->WaitForHealthy(2, kPatience), IsOk());
}

TEST(WorkerPoolTest, DnsNameResolvesToTheWorker) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  WorkerPoolOptions o = FastOptions();
  o.dns_workers = {absl::StrCat("localhost:", w0->grpc_port())};
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(1, kPatience), IsOk());
  const std::vector<WorkerStatus> status = pool->Status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].id, absl::StrCat("127.0.0.1:", w0->grpc_port()));
  EXPECT_NE(pool->Stub(status[0].id), nullptr);
  EXPECT_EQ(pool->Stub("10.9.9.9:1"), nullptr);
}

// A fake resolver stands in for a headless Service whose pods come and go.
class FakeDns {
 public:
  void Set(std::vector<std::string> addresses) {
    std::lock_guard<std::mutex> lock(mu_);
    addresses_ = std::move(addresses);
  }
  HostResolver Resolver() {
    return [this](const std::string& host, int) -> absl::StatusOr<std::vector<std::string>> {
      if (host != "workers.test") return absl::UnavailableError("unknown host");
      std::lock_guard<std::mutex> lock(mu_);
      return addresses_;
    };
  }

 private:
  std::mutex mu_;
  std::vector<std::string> addresses_;
};

std::vector<std::string> Ids(const WorkerPool& pool) {
  std::vector<std::string> out;
  for (const WorkerStatus& s : pool.Status()) out.push_back(s.id);
  return out;
}

TEST(WorkerPoolTest, DnsWorkersAreAddedAndRemovedAndMismatchedModelsExcluded) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  ASSERT_OK_AND_ASSIGN(auto w1, WorkerProcess::Start());
  ASSERT_OK_AND_ASSIGN(auto odd, WorkerProcess::Start({"--model-name", "some-other-model"}));
  FakeDns dns;
  dns.Set({w0->address()});
  WorkerPoolOptions o = FastOptions();
  o.dns_workers = {"workers.test:50051"};
  o.resolver = dns.Resolver();
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(1, kPatience), IsOk());
  EXPECT_THAT(Ids(*pool), ::testing::ElementsAre(w0->address()));

  dns.Set({w0->address(), w1->address(), odd->address()});
  ASSERT_THAT(pool->WaitForHealthy(2, kPatience), IsOk());
  ASSERT_TRUE(Eventually([&] { return StatusOf(*pool, odd->address())->model_mismatch; }));
  EXPECT_FALSE(StatusOf(*pool, odd->address())->healthy);
  ASSERT_OK_AND_ASSIGN(v1::ModelInfo info, pool->ModelInfo());
  EXPECT_NE(info.model_name(), "some-other-model");

  dns.Set({w1->address()});
  ASSERT_TRUE(Eventually([&] { return Ids(*pool) == std::vector<std::string>{w1->address()}; }));
  EXPECT_EQ(pool->Stub(w0->address()), nullptr);
  EXPECT_TRUE(StatusOf(*pool, w1->address())->healthy);
}

TEST(WorkerPoolTest, BreakerAndPendingFeedTheViews) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  WorkerPoolOptions o = FastOptions();
  o.static_workers = {w0->address()};
  o.breaker = {.failure_threshold = 2, .cooldown = absl::Hours(1)};
  o.pending_grace = absl::Hours(1);  // nothing dispatched is ever absorbed
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(1, kPatience), IsOk());
  const std::string id = w0->address();

  pool->MarkDispatched(id);
  pool->MarkDispatched(id);
  pool->MarkDispatched("10.9.9.9:1");  // unknown: ignored
  EXPECT_EQ(ViewOf(pool->Views({}), id)->pending, 2);

  pool->MarkFinished(id, false);
  EXPECT_TRUE(ViewOf(pool->Views({}), id)->healthy);
  pool->MarkFinished(id, false);
  EXPECT_FALSE(ViewOf(pool->Views({}), id)->healthy);
  EXPECT_EQ(StatusOf(*pool, id)->breaker, CircuitBreaker::State::kOpen);
  ASSERT_OK_AND_ASSIGN(auto policy, RoutingPolicy::Create({}));
  EXPECT_THAT(policy->Choose({}, pool->Views({})), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST(WorkerPoolTest, PendingIsAbsorbedByLaterReports) {
  ASSERT_OK_AND_ASSIGN(auto w0, WorkerProcess::Start());
  WorkerPoolOptions o = FastOptions();
  o.static_workers = {w0->address()};
  o.pending_grace = absl::ZeroDuration();
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
  ASSERT_THAT(pool->WaitForHealthy(1, kPatience), IsOk());
  pool->MarkDispatched(w0->address());
  EXPECT_TRUE(Eventually([&] { return ViewOf(pool->Views({}), w0->address())->pending == 0; }));
}

TEST(WorkerPoolTest, CreateValidatesAndWaitReportsWhatIsMissing) {
  WorkerPoolOptions o;
  o.static_workers = {"no-port"};
  EXPECT_THAT(WorkerPool::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no-port")));
  o.static_workers = {"host:99999"};
  EXPECT_THAT(WorkerPool::Create(o), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1..65535")));
  o.static_workers = {};
  o.report_interval_ms = 1;
  EXPECT_THAT(WorkerPool::Create(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("report_interval_ms")));

  // Nothing listens on port 1 of loopback.
  WorkerPoolOptions dead = FastOptions();
  dead.static_workers = {"127.0.0.1:1"};
  ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(dead));
  EXPECT_THAT(pool->WaitForHealthy(1, absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("only 0 of 1 known workers")));
  EXPECT_THAT(pool->ModelInfo().status(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST(WorkerPoolTest, SplitHostPortForms) {
  std::string host;
  int port = 0;
  ASSERT_THAT(SplitHostPort("[::1]:8080", "w", &host, &port), IsOk());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  ASSERT_THAT(SplitHostPort("svc.ns.svc.cluster.local:50051", "w", &host, &port), IsOk());
  EXPECT_EQ(host, "svc.ns.svc.cluster.local");
  EXPECT_THAT(SplitHostPort(":80", "w", &host, &port), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> local, ResolveHost("localhost", 7, false));
  EXPECT_THAT(local, ::testing::Contains("127.0.0.1:7"));
}

// ------------------------------------------------ scripted WatchLoad server

// Streams scripted reports: the first stream has a sequence gap; later
// streams send a fresh snapshot and then periodic load reports.
class ScriptedWorker final : public v1::Worker::Service {
 public:
  grpc::Status GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*, v1::ModelInfo* info) override {
    info->set_model_name("scripted");
    info->set_kv_block_size(16);
    info->set_kv_block_hash_scheme(kv::kBlockHashScheme);
    return grpc::Status::OK;
  }

  grpc::Status WatchLoad(grpc::ServerContext* ctx, const v1::WatchLoadRequest*,
                         grpc::ServerWriter<v1::LoadReport>* writer) override {
    const int stream = streams_.fetch_add(1);
    v1::LoadReport r;
    r.set_instance_id("inst-1");
    r.mutable_load()->set_kv_total_blocks(64);
    if (stream == 0) {
      r.mutable_snapshot()->add_block_hashes(1);
      r.mutable_snapshot()->add_block_hashes(2);
      r.mutable_snapshot()->set_last_sequence_number(5);
      writer->Write(r);
      r.clear_snapshot();
      v1::KvEvent* e = r.add_events();
      e->set_sequence_number(6);
      e->mutable_stored()->add_block_hashes(3);
      e = r.add_events();
      e->set_sequence_number(8);  // 7 is missing
      e->mutable_stored()->add_block_hashes(9);
      writer->Write(r);
      // Keep the stream open: the client must drop it on the gap.
      while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
      return grpc::Status::CANCELLED;
    }
    for (uint64_t h : {1, 2, 3, 4}) r.mutable_snapshot()->add_block_hashes(h);
    r.mutable_snapshot()->set_last_sequence_number(10);
    writer->Write(r);
    r.clear_snapshot();
    uint64_t seq = 10;
    while (!ctx->IsCancelled()) {
      absl::SleepFor(absl::Milliseconds(20));
      v1::KvEvent* e = r.add_events();
      e->set_sequence_number(++seq);
      e->mutable_removed()->add_block_hashes(4);  // harmless repeats
      if (!writer->Write(r)) break;
      r.clear_events();
    }
    return grpc::Status::OK;
  }

  int streams() const { return streams_.load(); }

 private:
  std::atomic<int> streams_{0};
};

TEST(WorkerPoolTest, SequenceGapResubscribesForAFreshSnapshot) {
  ScriptedWorker service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string id = absl::StrCat("127.0.0.1:", port);

  {
    WorkerPoolOptions o = FastOptions();
    o.static_workers = {id};
    ASSERT_OK_AND_ASSIGN(auto pool, WorkerPool::Create(o));
    // {1, 2, 3} is also the mirror after the first stream's event 6, before
    // the gap is seen: wait for an event of the second stream as well.
    ASSERT_TRUE(Eventually([&] {
      const std::optional<WorkerStatus> s = StatusOf(*pool, id);
      return s.has_value() && s->last_sequence_number > 10 &&
             pool->CachedHashes(id) == std::vector<uint64_t>{1, 2, 3};
    }));
    const WorkerStatus s = *StatusOf(*pool, id);
    EXPECT_GE(s.resyncs, 1);
    EXPECT_GE(s.streams_opened, 2);
    EXPECT_GE(service.streams(), 2);
    EXPECT_GT(s.last_sequence_number, 10u);
    const std::vector<uint64_t> hashes = {1, 2, 3, 9};
    EXPECT_EQ(ViewOf(pool->Views(hashes), id)->matched_blocks, 3);
    ASSERT_THAT(pool->WaitForHealthy(1, kPatience), IsOk());
  }  // the pool cancels its stream before the server shuts down
  server->Shutdown();
}

}  // namespace
}  // namespace wf::router
