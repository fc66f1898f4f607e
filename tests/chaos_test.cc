// Chaos under load: 3 real wf_worker and 2 real wf_router processes on
// 127.0.0.1, plus a fourth "worker" address whose listener accepts TCP
// connections and never answers. 64 client threads stream greedy chat
// completions through both routers (alternating) while, one after another, a
// worker is killed with SIGKILL and restarted on its port, a router is killed
// and restarted on its port, and a worker is stopped (SIGSTOP) for a few
// seconds and resumed.
//
// Asserted: every request ends within its deadline plus slack (none hangs);
// every completed stream carries exactly the reference text and token count
// of a solo run (no duplicated or missing tokens); the only errors are
// in-band errors of streams that were running on the killed worker and
// transport errors of requests sent to the router while it was down;
// requests waiting (no token yet) on the killed or the stopped worker are
// retried elsewhere; the routers' healthy-worker gauge follows the kills and
// the stop and comes back within 2 s of a restart or SIGCONT (the silent
// address never counts as healthy). A summary (requests, completed, retried, errors by kind,
// convergence times) is printed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/router_process.h"
#include "tests/testing/sanitizer_build.h"
#include "tests/testing/worker_process.h"

namespace wf {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using ::wf::testing::IsOk;
using testing::HttpResponse;
using testing::RouterProcess;
using testing::WorkerProcess;

constexpr int kWorkers = 3;
constexpr int kRouters = 2;
constexpr int kClients = 64;
constexpr int kReportMs = 50;
// The routers end a request after this (a clear 504 or in-band error); the
// clients give up only after kDeadline + kSlack, which counts as a hang. A
// sanitizer build serves the same load several times slower, so waiting
// requests reach a 30 s deadline before any fault is injected.
constexpr std::chrono::seconds kDeadline(30 * testing::kSanitizerSlowdown);
constexpr std::chrono::seconds kSlack(30 * testing::kSanitizerSlowdown);
constexpr auto kStopDuration = std::chrono::seconds(3);
constexpr int64_t kConvergeLimitMs = 2000;

double MsSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// A port below the ephemeral range that nothing listens on now, so that a
// process can be restarted on it without an outgoing connection having taken
// it meanwhile.
absl::StatusOr<int> PickFixedPort(std::mt19937* rng) {
  int ephemeral_low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  if (range) range >> ephemeral_low;
  const int low = 20000, high = std::max(low + 1000, ephemeral_low) - 1;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = low + static_cast<int>((*rng)() % static_cast<uint32_t>(high - low));
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return absl::InternalError("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool free_port = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    if (free_port) return port;
  }
  return absl::UnavailableError(absl::StrCat("no free port in ", low, "..", high, " after 200 tries"));
}

// Accepts TCP connections on 127.0.0.1 and never reads or writes: a worker
// that hangs after connect (its HTTP/2 handshake never completes).
class SilentListener {
 public:
  static absl::StatusOr<std::unique_ptr<SilentListener>> Start() {
    auto l = std::unique_ptr<SilentListener>(new SilentListener());
    l->fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (l->fd_ < 0) return absl::InternalError("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(l->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(l->fd_, 64) != 0 ||
        ::getsockname(l->fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return absl::InternalError("cannot listen on 127.0.0.1");
    }
    l->port_ = ntohs(addr.sin_port);
    l->thread_ = std::thread([p = l.get()] { p->Run(); });
    return l;
  }
  ~SilentListener() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    for (int c : connections_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int accepted() const { return accepted_.load(); }

 private:
  SilentListener() = default;
  void Run() {
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      connections_.push_back(c);  // held open, never answered
      ++accepted_;
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<int> connections_;  // the accept thread's only
  std::thread thread_;
};

// One value of a Prometheus text exposition: the sum over lines whose name
// and labels start with `prefix`, or -1 if there is none or no scrape.
double Scrape(int port, const std::string& prefix) {
  absl::StatusOr<HttpResponse> r = testing::HttpGet(port, "/metrics", std::chrono::seconds(5));
  if (!r.ok() || r->status != 200) return -1;
  double total = 0;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) {
      total += v;
      found = true;
    }
  }
  return found ? total : -1;
}

int HealthyWorkers(int router_http_port) {
  return static_cast<int>(Scrape(router_http_port, "wrinklefree:router_workers{state=\"healthy\"}"));
}

// ------------------------------------------------------------ the workload

struct Prompt {
  std::string content;
  int max_tokens;
};

const std::vector<Prompt>& Prompts() {
  static const auto* p = new std::vector<Prompt>{
      {"Tell me a story about a fox and a crow.", 48},
      {"What is the capital of France?", 24},
      {"Write a haiku about servers.", 64},
      {"List three prime numbers.", 32},
      {"Explain ternary weights in one paragraph.", 80},
      {"Say hello.", 16},
      {"Describe the sea at night.", 56},
      {"Why is the sky blue?", 40},
  };
  return *p;
}

std::string ChatBody(const std::string& model, const Prompt& p) {
  Json j = {{"model", model},
            {"messages", Json::array({{{"role", "user"}, {"content", p.content}}})},
            {"max_tokens", p.max_tokens},
            {"temperature", 0},
            {"ignore_eos", true},
            {"stream", true},
            {"stream_options", {{"include_usage", true}}}};
  return j.dump();
}

struct Reference {
  std::string text;
  int completion_tokens = 0;
};

// What one streamed request gave.
struct Outcome {
  int client = 0;
  int router = 0;
  int prompt = 0;
  Clock::time_point start, end;
  absl::Status transport;  // of the HTTP exchange; DEADLINE_EXCEEDED = hung
  int status = 0;
  bool done = false;      // "[DONE]" seen
  bool finished = false;  // a finish_reason seen
  bool error_event = false;
  std::string error_code;  // error.code of an in-band event or an error body
  std::string detail;
  std::string text;  // concatenated content deltas
  int completion_tokens = -1;
};

Outcome Stream(int port, const std::string& body) {
  Outcome o;
  absl::StatusOr<testing::HttpExchange> ex =
      testing::HttpRequestFull(port, "POST", "/v1/chat/completions", body, {}, kDeadline + kSlack);
  if (!ex.ok()) {
    o.transport = ex.status();
    o.detail = std::string(ex.status().message().substr(0, 300));
    return o;
  }
  o.status = ex->response.status;
  const std::string& b = ex->response.body;
  if (o.status != 200) {
    Json j = Json::parse(b, nullptr, false);
    if (!j.is_discarded() && j.contains("error") && j["error"].is_object()) {
      const Json& e = j["error"];
      if (e.contains("code") && e["code"].is_string()) o.error_code = e["code"].get<std::string>();
    }
    o.detail = b.substr(0, 300);
    return o;
  }
  for (const std::string& data : testing::SseData(b)) {
    if (data == "[DONE]") {
      o.done = true;
      continue;
    }
    Json j = Json::parse(data, nullptr, false);
    if (j.is_discarded()) {
      o.detail = "unparsable event: " + data.substr(0, 200);
      continue;
    }
    if (j.contains("error") && j["error"].is_object()) {
      o.error_event = true;
      if (j["error"].contains("code") && j["error"]["code"].is_string()) {
        o.error_code = j["error"]["code"].get<std::string>();
      }
      o.detail = data.substr(0, 300);
    }
    if (j.contains("usage") && j["usage"].is_object()) o.completion_tokens = j["usage"].value("completion_tokens", -1);
    if (j.contains("choices") && j["choices"].is_array()) {
      for (const Json& ch : j["choices"]) {
        if (ch.contains("delta") && ch["delta"].contains("content") && ch["delta"]["content"].is_string()) {
          o.text += ch["delta"]["content"].get<std::string>();
        }
        if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) o.finished = true;
      }
    }
  }
  return o;
}

// ------------------------------------------------------------ the cluster

// A time window [from, to] in which a process was down; `to` stays open
// (max) until the process is back.
struct Window {
  int index = -1;
  Clock::time_point from = Clock::time_point::max();
  Clock::time_point to = Clock::time_point::max();
  bool Overlaps(const Outcome& o) const { return o.start <= to && o.end >= from; }
};

class Cluster {
 public:
  absl::Status Start() {
    std::mt19937 rng(static_cast<uint32_t>(::getpid()));
    BN_ASSIGN_OR_RETURN(silent_, SilentListener::Start());
    for (int i = 0; i < kWorkers; ++i) {
      BN_ASSIGN_OR_RETURN(int port, PickFixedPort(&rng));
      worker_ports_.push_back(port);
      workers_.emplace_back();
      BN_RETURN_IF_ERROR(StartWorker(i));
    }
    for (int i = 0; i < kRouters; ++i) {
      BN_ASSIGN_OR_RETURN(int port, PickFixedPort(&rng));
      router_ports_.push_back(port);
      routers_.emplace_back();
      BN_RETURN_IF_ERROR(StartRouter(i));
    }
    return absl::OkStatus();
  }

  absl::Status StartWorker(int i) {
    absl::StatusOr<std::unique_ptr<WorkerProcess>> w = WorkerProcess::Start(
        {"--port", std::to_string(worker_ports_[i]), "--threads", "1", "--max-running", "4"});
    if (!w.ok()) return absl::Status(w.status().code(), absl::StrCat("worker ", i, ": ", w.status().message()));
    workers_[i] = *std::move(w);
    return absl::OkStatus();
  }

  absl::Status StartRouter(int i) {
    std::vector<std::string> addresses;
    for (int port : worker_ports_) addresses.push_back(absl::StrCat("127.0.0.1:", port));
    addresses.push_back(silent_->address());
    absl::StatusOr<std::unique_ptr<RouterProcess>> r = RouterProcess::Start(
        addresses, {"--http-port", std::to_string(router_ports_[i]), "--worker-report-interval-ms",
                    std::to_string(kReportMs), "--request-timeout-seconds",
                    std::to_string(kDeadline.count()), "--io-threads", "1"});
    if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("router ", i, ": ", r.status().message()));
    routers_[i] = *std::move(r);
    return absl::OkStatus();
  }

  WorkerProcess& worker(int i) { return *workers_[i]; }
  std::unique_ptr<WorkerProcess>& worker_slot(int i) { return workers_[i]; }
  std::unique_ptr<RouterProcess>& router_slot(int i) { return routers_[i]; }
  int router_port(int i) const { return router_ports_[i]; }
  const SilentListener& silent() const { return *silent_; }

  // Polls every router's healthy-worker gauge (bounded by 20 s) until it is
  // `want` on all of them; the milliseconds from `since`, or -1.
  double WaitHealthy(int want, Clock::time_point since) {
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < until) {
      bool all = true;
      for (int i = 0; i < kRouters && all; ++i) all = HealthyWorkers(router_ports_[i]) == want;
      if (all) return MsSince(since);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  std::unique_ptr<SilentListener> silent_;
  std::vector<int> worker_ports_, router_ports_;
  std::vector<std::unique_ptr<WorkerProcess>> workers_;
  std::vector<std::unique_ptr<RouterProcess>> routers_;
};

std::string ModelName(int router_port) {
  absl::StatusOr<HttpResponse> models = testing::HttpGet(router_port, "/v1/models");
  if (!models.ok() || models->status != 200) return "";
  Json j = Json::parse(models->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty()) return "";
  return j["data"][0].value("id", "");
}

// 64 client threads sending streamed requests until Stop().
class Load {
 public:
  Load(Cluster* cluster, std::string model) : cluster_(cluster), model_(std::move(model)) {}
  ~Load() { Stop(); }

  void Start() {
    for (int c = 0; c < kClients; ++c) {
      threads_.emplace_back([this, c] {
        for (int k = 0; !stop_.load(); ++k) {
          const int router = (c + k) % kRouters;
          const int prompt = (c * 3 + k) % static_cast<int>(Prompts().size());
          const std::string body = ChatBody(model_, Prompts()[prompt]);
          const Clock::time_point start = Clock::now();
          Outcome r = Stream(cluster_->router_port(router), body);
          r.end = Clock::now();
          r.start = start;
          r.client = c;
          r.router = router;
          r.prompt = prompt;
          const bool ok = r.transport.ok() && r.status == 200 && r.done && !r.error_event;
          {
            std::lock_guard<std::mutex> lock(mu_);
            outcomes_.push_back(std::move(r));
          }
          if (ok) {
            ++completed_;
          } else {
            // A router that is down refuses at once: do not spin on it.
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }
      });
    }
  }

  void Stop() {
    stop_.store(true);
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  // Waits (bounded by 60 s) until `n` more requests have completed.
  bool AwaitCompletions(int n) {
    const int64_t target = completed_.load() + n;
    const auto until = Clock::now() + std::chrono::seconds(60 * testing::kSanitizerSlowdown);
    while (completed_.load() < target && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return completed_.load() >= target;
  }

  std::vector<Outcome> outcomes() {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_;
  }

 private:
  Cluster* cluster_;
  const std::string model_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> completed_{0};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::vector<Outcome> outcomes_;
};

double GenerationTokens(const WorkerProcess& w) {
  return Scrape(w.metrics_port(), "wrinklefree:generation_tokens_total");
}

// Waits (bounded) until `w` has requests both running (streaming) and
// waiting (no token yet).
bool BusyWithWaiting(WorkerProcess& w) {
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < until) {
    const wrinklefree::v1::Load l = w.CurrentLoad();
    if (l.running() > 0 && l.waiting() > 0) return true;
  }
  return false;
}

double Retries(const Cluster& c) {
  double total = 0;
  for (int i = 0; i < kRouters; ++i) total += Scrape(c.router_port(i), "wrinklefree:router_retries_total");
  return total;
}

std::string Ms(double ms) {
  return ms < 0 ? std::string("never (20 s bound)") : absl::StrCat(static_cast<int64_t>(ms), " ms");
}

TEST(ChaosTest, KillsStopsAndASilentWorkerUnderStreamingLoad) {
  Cluster cluster;
  ASSERT_THAT(cluster.Start(), IsOk());
  const std::string model = ModelName(cluster.router_port(0));
  ASSERT_FALSE(model.empty());
  // Both routers see the three workers, never the silent address.
  ASSERT_GE(cluster.WaitHealthy(kWorkers, Clock::now()), 0) << "routers did not see 3 healthy workers";

  // The solo reference: each prompt alone, through each router.
  std::vector<Reference> reference;
  for (size_t p = 0; p < Prompts().size(); ++p) {
    Reference ref;
    for (int r = 0; r < kRouters; ++r) {
      const Outcome o = Stream(cluster.router_port(r), ChatBody(model, Prompts()[p]));
      ASSERT_TRUE(o.transport.ok() && o.status == 200 && o.done && !o.error_event)
          << "reference prompt " << p << " via router " << r << ": " << o.transport << " " << o.status << " "
          << o.detail;
      ASSERT_EQ(o.completion_tokens, Prompts()[p].max_tokens) << "prompt " << p;
      if (r == 0) {
        ref = {o.text, o.completion_tokens};
      } else {
        ASSERT_EQ(o.text, ref.text) << "prompt " << p << ": the routers' solo answers differ";
      }
    }
    reference.push_back(ref);
  }

  Load load(&cluster, model);
  const Clock::time_point t0 = Clock::now();
  std::vector<std::pair<double, std::string>> events;  // ms since t0
  auto event = [&](const std::string& what) { events.emplace_back(MsSince(t0), what); };
  load.Start();
  ASSERT_TRUE(load.AwaitCompletions(2 * kClients)) << "the load did not get going";

  std::vector<Window> worker_kills, router_kills;
  std::map<std::string, std::string> times;  // summary lines
  double retries_before_router_kill = 0;

  // --- 1. kill -9 a worker with streams running and requests waiting on it,
  // restart it on its port.
  {
    constexpr int kVictim = 0;
    WorkerProcess& victim = cluster.worker(kVictim);
    ASSERT_TRUE(BusyWithWaiting(victim)) << "worker " << kVictim << " never had requests both running and waiting";
    const double retries_before = Retries(cluster);
    Window w;
    w.index = kVictim;
    w.from = Clock::now();
    victim.child().Stop(SIGKILL);
    event("worker 0 killed");
    worker_kills.push_back(w);
    const double gone_ms = cluster.WaitHealthy(kWorkers - 1, w.from);
    times["worker kill: routers dropped it after"] = Ms(gone_ms);
    EXPECT_GE(gone_ms, 0) << "the routers kept the killed worker healthy";
    EXPECT_TRUE(load.AwaitCompletions(kClients)) << "requests stopped completing after the worker kill";
    const double retries_after = Retries(cluster);
    // It had requests waiting (no token yet): they must have gone elsewhere.
    EXPECT_GT(retries_after, retries_before) << "no request was retried after the kill";
    times["worker kill: retries"] = absl::StrCat(retries_after - retries_before);

    cluster.worker_slot(kVictim).reset();
    ASSERT_THAT(cluster.StartWorker(kVictim), IsOk());
    const auto ready = Clock::now();
    event("worker 0 ready again");
    worker_kills.back().to = ready;
    const double back_ms = cluster.WaitHealthy(kWorkers, ready);
    times["worker restart: routers healthy again after"] = Ms(back_ms);
    EXPECT_GE(back_ms, 0) << "the routers did not take the restarted worker back";
    EXPECT_LE(back_ms, kConvergeLimitMs) << "slow convergence on the restarted worker";
    // And it gets traffic again.
    bool served = false;
    const auto served_until = Clock::now() + std::chrono::seconds(20);
    while (!served && Clock::now() < served_until) {
      served = GenerationTokens(cluster.worker(kVictim)) > 0;
      if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(served) << "the restarted worker got no request";
    times["worker restart: first tokens generated after"] = Ms(served ? MsSince(ready) : -1);
    EXPECT_TRUE(load.AwaitCompletions(kClients)) << "requests stopped completing after the worker restart";
  }

  // --- 2. kill -9 a router, restart it on its port.
  {
    constexpr int kVictim = 1;
    retries_before_router_kill = Scrape(cluster.router_port(kVictim), "wrinklefree:router_retries_total");
    Window w;
    w.index = kVictim;
    w.from = Clock::now();
    cluster.router_slot(kVictim)->child().Stop(SIGKILL);
    event("router 1 killed");
    router_kills.push_back(w);
    EXPECT_TRUE(load.AwaitCompletions(kClients)) << "the other router stopped completing requests";
    cluster.router_slot(kVictim).reset();
    const auto restart = Clock::now();
    ASSERT_THAT(cluster.StartRouter(kVictim), IsOk());
    router_kills.back().to = Clock::now();
    event("router 1 ready again");
    times["router restart: ready after"] = Ms(MsSince(restart));
    const double all_ms = cluster.WaitHealthy(kWorkers, router_kills.back().to);
    times["router restart: all 3 workers healthy after ready"] = Ms(all_ms);
    EXPECT_GE(all_ms, 0);
    EXPECT_LE(all_ms, kConvergeLimitMs) << "the restarted router was slow to see every worker";
    EXPECT_TRUE(load.AwaitCompletions(kClients)) << "requests stopped completing after the router restart";
  }

  // --- 3. SIGSTOP a worker for a few seconds, then SIGCONT.
  Clock::time_point stop_from, stop_to;
  {
    constexpr int kVictim = 2;
    ASSERT_TRUE(BusyWithWaiting(cluster.worker(kVictim)))
        << "worker " << kVictim << " never had requests both running and waiting";
    const double retries_before = Retries(cluster);
    stop_from = Clock::now();
    cluster.worker(kVictim).child().Signal(SIGSTOP);
    event("worker 2 stopped");
    const double gone_ms = cluster.WaitHealthy(kWorkers - 1, stop_from);
    times["worker SIGSTOP: routers dropped it after"] = Ms(gone_ms);
    EXPECT_GE(gone_ms, 0) << "the routers kept routing to the stopped worker";
    std::this_thread::sleep_for(kStopDuration);  // the stop itself
    // Its waiting requests had no token yet: the routers gave up on the
    // silent worker and sent them elsewhere rather than wait for it.
    const double retries_during = Retries(cluster) - retries_before;
    times["worker SIGSTOP: retries"] = absl::StrCat(retries_during);
    EXPECT_GT(retries_during, 0) << "requests waiting on the stopped worker were not retried elsewhere";
    const auto resumed = Clock::now();
    cluster.worker(kVictim).child().Signal(SIGCONT);
    stop_to = Clock::now();
    event("worker 2 resumed");
    const double back_ms = cluster.WaitHealthy(kWorkers, resumed);
    times["worker SIGCONT: routers healthy again after"] = Ms(back_ms);
    EXPECT_GE(back_ms, 0);
    EXPECT_LE(back_ms, kConvergeLimitMs) << "slow convergence on the resumed worker";
    EXPECT_TRUE(load.AwaitCompletions(2 * kClients)) << "requests stopped completing after SIGCONT";
  }

  load.Stop();
  const double retries = Scrape(cluster.router_port(0), "wrinklefree:router_retries_total") +
                         retries_before_router_kill +
                         Scrape(cluster.router_port(1), "wrinklefree:router_retries_total");

  // --- Every request, classified.
  const std::vector<Outcome> outcomes = load.outcomes();
  std::map<std::string, int> kinds;
  int failures_printed = 0;
  double stop_window_max_ms = 0;
  int stop_window_requests = 0;
  auto fail = [&](const Outcome& o, const std::string& why) {
    kinds["FAILED: " + why]++;
    if (failures_printed++ < 20) {
      ADD_FAILURE() << why << ": client " << o.client << " router " << o.router << " prompt " << o.prompt << " after "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(o.end - o.start).count()
                    << " ms, started at +"
                    << std::chrono::duration_cast<std::chrono::milliseconds>(o.start - t0).count()
                    << " ms: transport " << o.transport << ", status " << o.status << ", done " << o.done
                    << ", error " << o.error_code << " " << o.detail << ", text '" << o.text.substr(0, 80) << "'";
    }
  };
  for (const Outcome& o : outcomes) {
    const Reference& ref = reference[o.prompt];
    const double took_ms = std::chrono::duration<double, std::milli>(o.end - o.start).count();
    if (o.start <= stop_to && o.end >= stop_from) {
      ++stop_window_requests;
      stop_window_max_ms = std::max(stop_window_max_ms, took_ms);
    }
    if (absl::IsDeadlineExceeded(o.transport)) {
      fail(o, "hung past its deadline");
      continue;
    }
    const bool router_down = std::any_of(router_kills.begin(), router_kills.end(), [&](const Window& w) {
      return w.index == o.router && w.Overlaps(o);
    });
    const bool on_worker_kill =
        std::any_of(worker_kills.begin(), worker_kills.end(), [&](const Window& w) { return w.Overlaps(o); });
    // Whatever arrived must be the reference's beginning: nothing doubled,
    // nothing skipped, even in a stream cut short.
    if (!absl::StartsWith(ref.text, o.text)) {
      fail(o, "text is not a prefix of the reference");
      continue;
    }
    if (o.transport.ok() && o.status == 200 && o.done && !o.error_event) {
      if (o.text != ref.text || o.completion_tokens != ref.completion_tokens || !o.finished) {
        fail(o, "completed with a wrong stream");
      } else {
        kinds["completed"]++;
      }
      continue;
    }
    if (router_down) {
      kinds["router down: " + std::string(!o.transport.ok() ? "connection refused/reset"
                                          : o.status != 200 ? absl::StrCat("HTTP ", o.status)
                                                            : "stream cut")]++;
      continue;
    }
    if (o.status == 200 && o.error_event && o.done && o.error_code == "upstream_failed" && on_worker_kill) {
      kinds["worker killed mid-stream (in-band error)"]++;
      continue;
    }
    fail(o, "unexpected error");
  }

  std::printf("[chaos] %zu requests by %d clients through %d routers over %d workers (+1 silent address, %d "
              "connections accepted, never answered)\n",
              outcomes.size(), kClients, kRouters, kWorkers, cluster.silent().accepted());
  for (const auto& [kind, n] : kinds) std::printf("[chaos]   %-48s %d\n", kind.c_str(), n);
  std::printf("[chaos]   %-48s %.0f\n", "retried before the first token (router metric)", retries);
  std::printf("[chaos]   requests overlapping the SIGSTOP: %d, slowest %.0f ms (deadline %lld s)\n",
              stop_window_requests, stop_window_max_ms, static_cast<long long>(kDeadline.count()));
  for (const auto& [at, what] : events) std::printf("[chaos]   at +%6.0f ms: %s\n", at, what.c_str());
  for (const auto& [what, t] : times) std::printf("[chaos]   %-48s %s\n", what.c_str(), t.c_str());
  EXPECT_GT(kinds["completed"], 0);
}

}  // namespace
}  // namespace wf
