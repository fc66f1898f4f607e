// Load on the router tier as deployed (real wf_worker and wf_router
// processes on 127.0.0.1, driven by the HTTP load generator of wf_loadgen):
//   - 1000 SSE streams through two routers, all open at once (the load
//     generator holds every stream after its first event until all 1000 have
//     one): zero errors, every stream ends with [DONE], router threads and
//     memory bounded, no descriptor left behind. Figures are printed.
//   - Overload of a small worker behind a router: requests beyond its queue
//     are refused at once with 429/503, Retry-After and the OpenAI error
//     envelope; admitted requests complete; nothing times out.
#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/router_process.h"
#include "tests/testing/sanitizer_build.h"
#include "tests/testing/worker_process.h"
#include "tools/loadgen/http_loadgen.h"

namespace wf {
namespace {

using Json = nlohmann::json;
using wf::testing::HttpResponse;
using wf::testing::RouterProcess;
using wf::testing::WorkerProcess;
using wf::testing::kSanitizerBuild;
using Clock = std::chrono::steady_clock;

constexpr int kStreams = 1000;

// How much a router's RSS may grow while it carries (and after it carried)
// the streams. In a sanitizer build the routers are instrumented too: ASan
// keeps freed blocks in its quarantine (256 MiB by default) and both ASan and
// TSan map shadow memory in proportion to the heap, so RSS there measures the
// sanitizer more than the router (ASan adds about 430 MiB for this run), and
// the bound only catches a gross leak.
constexpr int64_t kRouterRssGrowthKb = (kSanitizerBuild ? 1024 : 256) * int64_t{1024};
// Wall-time budget of one request; the work itself is the same in every build.
constexpr int kRequestSeconds = 600 * testing::kSanitizerSlowdown;

// Short prompts, so that 500 sequences per worker fit its KV pool.
const std::vector<std::string>& ShortPrompts() {
  static const auto* p = new std::vector<std::string>{"Hello!", "Say something about the sea.",
                                                      "Count to five.", "What is a cat?"};
  return *p;
}

// Figures of one process from /proc.
struct ProcFigures {
  int64_t rss_kb = -1;
  int64_t threads = -1;
  int64_t fds = -1;
};

int64_t CountEntries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  int64_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

ProcFigures Sample(pid_t pid) {
  ProcFigures f;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(status, line);) {
    if (absl::StartsWith(line, "VmRSS:")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (parts.size() >= 2) (void)absl::SimpleAtoi(parts[1], &f.rss_kb);
    }
  }
  f.threads = CountEntries(absl::StrCat("/proc/", pid, "/task"));
  f.fds = CountEntries(absl::StrCat("/proc/", pid, "/fd"));
  return f;
}

// A gauge or counter of a Prometheus text page (summed over label sets), or -1.
double Metric(int port, const std::string& name) {
  absl::StatusOr<HttpResponse> r = testing::HttpGet(port, "/metrics");
  if (!r.ok() || r->status != 200) return -1;
  double total = 0;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
    if (!absl::StartsWith(line, name) || line.size() <= name.size() ||
        (line[name.size()] != ' ' && line[name.size()] != '{')) {
      continue;
    }
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) {
      total += v;
      found = true;
    }
  }
  return found ? total : -1;
}

// Each stream is a socket here and on a router.
bool RaiseOpenFileLimit(rlim_t wanted) {
  rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) return false;
    limit.rlim_cur = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  }
  return true;
}

// A streamed 429/503 answer is not a stream; an error answer must carry the
// OpenAI envelope {"error":{"message":...,"type":...,"code":...}}.
void ExpectErrorEnvelope(const loadgen::HttpRequestRecord& r) {
  const Json j = Json::parse(r.error_body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << r.error_body;
  ASSERT_TRUE(j.contains("error") && j["error"].is_object()) << r.error_body;
  EXPECT_TRUE(j["error"].contains("message") && j["error"]["message"].is_string()) << r.error_body;
  EXPECT_TRUE(j["error"].contains("type") && j["error"]["type"].is_string()) << r.error_body;
  EXPECT_TRUE(j["error"].contains("code")) << r.error_body;
}

std::vector<std::string> Urls(const std::vector<std::unique_ptr<RouterProcess>>& routers) {
  std::vector<std::string> urls;
  for (const auto& r : routers) urls.push_back(absl::StrCat("http://127.0.0.1:", r->http_port()));
  return urls;
}

TEST(LoadTest, ThousandSseStreamsOpenAtOnceThroughTwoRouters) {
  ASSERT_TRUE(RaiseOpenFileLimit(kStreams + 512)) << "cannot raise RLIMIT_NOFILE to " << kStreams + 512;
  // Each worker takes half of the streams at once: every one runs (none
  // waits), one step decodes them all, and the KV pool holds them
  // (500 x (about 40 prompt + 64 generated) tokens).
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  std::vector<std::string> addresses;
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto w, WorkerProcess::Start({"--threads", "1", "--max-running", "512", "--max-waiting",
                                                       "1024", "--max-step-tokens", "1024", "--kv-cache-tokens",
                                                       "65536"}));
    addresses.push_back(w->address());
    workers.push_back(std::move(w));
  }
  std::vector<std::unique_ptr<RouterProcess>> routers;
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto r, RouterProcess::Start(addresses, {"--policy", "round_robin"}));
    routers.push_back(std::move(r));
  }

  loadgen::HttpLoadgenConfig config;
  config.urls = Urls(routers);
  config.endpoint = "chat";
  config.prompts = ShortPrompts();
  config.max_tokens = 64;
  config.request_timeout_seconds = kRequestSeconds;
  config.connect_timeout_seconds = 60;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<loadgen::HttpLoadGenerator> gen, loadgen::HttpLoadGenerator::Create(config));

  // Warm the routers (tokenizer, gRPC channels) before the baseline.
  {
    loadgen::HttpRunSpec warm;
    warm.concurrency = 2;
    warm.requests = 4;
    ASSERT_OK_AND_ASSIGN(loadgen::HttpRunResult run, gen->Run(warm));
    for (const auto& r : run.requests) ASSERT_TRUE(r.base.ok) << r.base.failure << ": " << r.base.error;
  }
  std::vector<ProcFigures> before, at_hold;
  for (const auto& r : routers) before.push_back(Sample(r->child().pid()));
  double active_at_hold = 0;
  int64_t worker_load_at_hold = 0;

  loadgen::HttpRunSpec spec;
  spec.concurrency = kStreams;
  spec.requests = kStreams;
  spec.hold_first_event = true;
  spec.on_hold = [&](const loadgen::HoldPoint&) {
    for (const auto& r : routers) {
      at_hold.push_back(Sample(r->child().pid()));
      active_at_hold += std::max(0.0, Metric(r->http_port(), "wrinklefree:router_active_streams"));
    }
    for (const auto& w : workers) {
      const wrinklefree::v1::Load l = w->CurrentLoad();
      worker_load_at_hold += l.running() + l.waiting();
    }
  };
  ASSERT_OK_AND_ASSIGN(loadgen::HttpRunResult run, gen->Run(spec));

  ASSERT_TRUE(run.hold.has_value());
  EXPECT_EQ(run.hold->open_requests, kStreams);
  EXPECT_EQ(run.hold->held_streams, kStreams);
  EXPECT_EQ(run.hold->ended_before_hold, 0);
  EXPECT_GE(run.peak_open, kStreams);
  ASSERT_EQ(run.requests.size(), static_cast<size_t>(kStreams));
  int failures = 0;
  for (const loadgen::HttpRequestRecord& r : run.requests) {
    if (!r.base.ok && ++failures <= 5) {
      ADD_FAILURE() << "stream " << r.base.stream << ": " << r.base.failure << ": " << r.base.error;
    }
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(r.done) << "stream " << r.base.stream << " did not end with [DONE]";
  }
  EXPECT_EQ(failures, 0);
  const loadgen::HttpRunStats stats = loadgen::SummarizeHttp(run);

  // Connections the client closed are closed by the routers too (bounded wait).
  std::vector<ProcFigures> after(routers.size());
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (size_t i = 0; i < routers.size(); ++i) {
    while (true) {
      after[i] = Sample(routers[i]->child().pid());
      if (after[i].fds <= before[i].fds || Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::printf("load_test: %d SSE streams over 2 routers, 2 workers (golden model, 64 tokens each)\n", kStreams);
  std::printf("load_test: hold at %.2f s: %lld requests open at once (client side); routers' active_streams %.0f, "
              "workers' running+waiting %lld\n",
              run.hold->seconds, static_cast<long long>(run.hold->open_requests), active_at_hold,
              static_cast<long long>(worker_load_at_hold));
  std::printf("load_test: %lld ok, %lld failed, wall %.2f s, %.0f generated tok/s, TTFT p50 %.0f ms, e2e p99 %.2f s\n",
              static_cast<long long>(stats.stats.requests_ok), static_cast<long long>(stats.stats.requests_failed),
              stats.stats.wall_seconds, stats.stats.generated_tokens_per_second, stats.stats.ttft_seconds.p50 * 1e3,
              stats.stats.e2e_seconds.p99);
  for (size_t i = 0; i < routers.size(); ++i) {
    std::printf("load_test: router %zu: threads %lld -> %lld (at hold) -> %lld; RSS %.1f -> %.1f -> %.1f MiB; "
                "fds %lld -> %lld -> %lld\n",
                i, static_cast<long long>(before[i].threads), static_cast<long long>(at_hold[i].threads),
                static_cast<long long>(after[i].threads), before[i].rss_kb / 1024.0, at_hold[i].rss_kb / 1024.0,
                after[i].rss_kb / 1024.0, static_cast<long long>(before[i].fds),
                static_cast<long long>(at_hold[i].fds), static_cast<long long>(after[i].fds));
  }
  if (kSanitizerBuild) {
    std::printf("load_test: sanitizer build: router RSS growth bound relaxed to %lld MiB (quarantine, shadow)\n",
                static_cast<long long>(kRouterRssGrowthKb / 1024));
  }
  std::fflush(stdout);

  ASSERT_EQ(at_hold.size(), routers.size());
  constexpr int64_t kFdSlack = 8;
  int64_t fds_at_hold = 0;
  for (size_t i = 0; i < routers.size(); ++i) {
    // Threads do not grow with connections: a fixed IO pool plus gRPC's.
    EXPECT_LE(at_hold[i].threads, 64) << "router " << i;
    EXPECT_LE(after[i].threads, 64) << "router " << i;
    // Memory per stream stays small: 500 streams in well under 256 MiB
    // (1 GiB in a sanitizer build, see kRouterRssGrowthKb).
    EXPECT_LT(at_hold[i].rss_kb - before[i].rss_kb, kRouterRssGrowthKb)
        << "router " << i << (kSanitizerBuild ? " (sanitizer build: bound relaxed for quarantine and shadow)" : "");
    EXPECT_LT(after[i].rss_kb - before[i].rss_kb, kRouterRssGrowthKb)
        << "router " << i << (kSanitizerBuild ? " (sanitizer build: bound relaxed for quarantine and shadow)" : "");
    // A few descriptors come and go on their own (a health probe, a DNS
    // lookup, a gRPC reconnect), so "no leak" and "every connection open"
    // allow that much slack: a leak or a missing hold is hundreds.
    EXPECT_LE(after[i].fds, before[i].fds + kFdSlack) << "router " << i << " kept descriptors after its clients left";
    fds_at_hold += at_hold[i].fds - before[i].fds;
  }
  // Every held stream's connection is open on one of the routers.
  EXPECT_GE(fds_at_hold, kStreams - kFdSlack);
}

TEST(LoadTest, OverloadIsRefusedFastWithRetryAfter) {
  // Capacity 4: two running, two waiting; more are refused by the worker and
  // answered by the router. The KV pool holds two full-context sequences
  // (with less, the two long generations below would preempt each other).
  ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--threads", "1", "--max-running", "2", "--max-waiting",
                                                          "2", "--kv-cache-tokens", "16384"}));
  ASSERT_OK_AND_ASSIGN(auto router, RouterProcess::Start({worker->address()}));
  std::vector<std::unique_ptr<RouterProcess>> routers;
  routers.push_back(std::move(router));

  // Fill the worker with four long generations, one at a time (each is seen
  // queued before the next is sent, so none is refused).
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<loadgen::HttpLoadGenerator> probe, [&] {
    loadgen::HttpLoadgenConfig c;
    c.urls = Urls(routers);
    return loadgen::HttpLoadGenerator::Create(c);
  }());
  const std::string model = probe->model();
  struct Filler {
    std::thread thread;
    absl::StatusOr<testing::HttpExchange> result = absl::UnknownError("not run");
    Clock::time_point done;
  };
  std::vector<Filler> fillers(4);
  const int port = routers[0]->http_port();
  for (size_t i = 0; i < fillers.size(); ++i) {
    const std::string body =
        Json{{"model", model},
             {"messages", Json::array({{{"role", "user"}, {"content", "Tell a long story."}}})},
             {"max_tokens", 2000},
             {"ignore_eos", true},
             {"stream", true},
             {"temperature", 0}}
            .dump();
    Filler& f = fillers[i];
    f.thread = std::thread([&f, port, body] {
      f.result = testing::HttpRequestFull(port, "POST", "/v1/chat/completions", body, {},
                                          std::chrono::seconds(kRequestSeconds));
      f.done = Clock::now();
    });
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (true) {
      const wrinklefree::v1::Load l = worker->CurrentLoad();
      if (l.running() + l.waiting() >= static_cast<int>(i) + 1) break;
      ASSERT_LT(Clock::now(), deadline) << "filler " << i << " never reached the worker";
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // A burst far beyond capacity.
  loadgen::HttpLoadgenConfig config;
  config.urls = Urls(routers);
  config.model = model;
  config.prompts = ShortPrompts();
  config.max_tokens = 16;
  config.request_timeout_seconds = kRequestSeconds / 2;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<loadgen::HttpLoadGenerator> gen, loadgen::HttpLoadGenerator::Create(config));
  loadgen::HttpRunSpec burst;
  burst.concurrency = 64;
  burst.requests = 64;
  const Clock::time_point burst_start = Clock::now();
  ASSERT_OK_AND_ASSIGN(loadgen::HttpRunResult run, gen->Run(burst));
  const Clock::time_point burst_end = Clock::now();
  for (Filler& f : fillers) f.thread.join();
  Clock::time_point first_filler_done = fillers[0].done;
  for (const Filler& f : fillers) first_filler_done = std::min(first_filler_done, f.done);

  // The long generations were admitted and complete.
  for (size_t i = 0; i < fillers.size(); ++i) {
    ASSERT_TRUE(fillers[i].result.ok()) << "filler " << i << ": " << fillers[i].result.status();
    EXPECT_EQ(fillers[i].result->response.status, 200);
    const std::vector<std::string> events = testing::SseData(fillers[i].result->response.body);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back(), "[DONE]") << "filler " << i;
  }
  // Every burst request was answered: completed, or refused with 429/503,
  // Retry-After and the error envelope. Nothing timed out.
  int refused = 0;
  for (const loadgen::HttpRequestRecord& r : run.requests) {
    if (r.base.ok) {
      EXPECT_TRUE(r.done);
      continue;
    }
    ASSERT_TRUE(r.status == 429 || r.status == 503) << r.base.failure << ": " << r.base.error;
    EXPECT_FALSE(r.retry_after.empty()) << "a " << r.status << " without Retry-After";
    ExpectErrorEnvelope(r);
    ++refused;
  }
  // While no long generation had ended, the worker was full all along: then
  // every burst request must have been refused, none queued, and as a full
  // queue (429 no_capacity), not as a missing worker.
  const bool full_throughout = burst_end < first_filler_done;
  if (full_throughout) {
    EXPECT_EQ(refused, burst.requests);
    for (const loadgen::HttpRequestRecord& r : run.requests) {
      EXPECT_EQ(r.status, 429) << r.error_body;
      EXPECT_THAT(r.error_body, ::testing::HasSubstr("no_capacity"));
    }
  }
  const loadgen::HttpRunStats s = loadgen::SummarizeHttp(run);
  std::printf("load_test: overload burst of %d on a full worker (capacity 4)%s: %d refused, %lld ok; refusals "
              "answered in p50 %.1f ms, max %.1f ms; burst %.0f ms\n",
              burst.concurrency, full_throughout ? "" : " (a long generation ended meanwhile)", refused,
              static_cast<long long>(s.stats.requests_ok), s.error_answer_seconds.p50 * 1e3,
              s.error_answer_seconds.max * 1e3,
              std::chrono::duration<double, std::milli>(burst_end - burst_start).count());

  // The same burst on the idle worker: the first requests are admitted and
  // complete, the excess is refused the same way.
  {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (true) {
      const wrinklefree::v1::Load l = worker->CurrentLoad();
      if (l.running() == 0 && l.waiting() == 0) break;
      ASSERT_LT(Clock::now(), deadline) << "the worker did not become idle";
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_OK_AND_ASSIGN(loadgen::HttpRunResult mixed, gen->Run(burst));
  int ok = 0;
  for (const loadgen::HttpRequestRecord& r : mixed.requests) {
    if (r.base.ok) {
      ++ok;
      EXPECT_TRUE(r.done);
      continue;
    }
    ASSERT_TRUE(r.status == 429 || r.status == 503) << r.base.failure << ": " << r.base.error;
    EXPECT_FALSE(r.retry_after.empty());
    ExpectErrorEnvelope(r);
  }
  // The first two requests find the queue empty.
  EXPECT_GE(ok, 2);
  const loadgen::HttpRunStats m = loadgen::SummarizeHttp(mixed);
  std::printf("load_test: overload burst of %d on an idle worker: %d ok, %d refused (p50 %.1f ms)\n",
              burst.concurrency, ok, burst.concurrency - ok, m.error_answer_seconds.p50 * 1e3);
  // The router holds nothing afterwards.
  EXPECT_EQ(Metric(routers[0]->http_port(), "wrinklefree:router_active_streams"), 0);
  std::fflush(stdout);
}

}  // namespace
}  // namespace wf
