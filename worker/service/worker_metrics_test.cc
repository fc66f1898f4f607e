#include "worker/service/worker_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace wf::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

constexpr char kModel[] = "bitnet-test";

// Connects to 127.0.0.1:port and returns the socket, or -1.
int ConnectLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = 10;  // bounds a hung server; not a timing assertion
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// GET `path` over HTTP/1.0 from 127.0.0.1:port; returns the whole response
// (status line, headers and body) or an error.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("connect to port ", port, ": ", std::strerror(errno)));
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      ::close(fd);
      return absl::UnavailableError("send failed");
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  while (response.size() < (size_t{4} << 20)) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("recv failed: ", std::strerror(errno)));
    }
    if (n == 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return response;
}

std::string Serialize(const WorkerMetrics& metrics) {
  return prometheus::TextSerializer().Serialize(metrics.registry()->Collect());
}

// One exposition line "name{labels} value" for the test model.
std::string Line(const std::string& name, const std::string& extra_labels, const std::string& value) {
  // prometheus-cpp prints labels sorted by name.
  return absl::StrCat("wrinklefree:", name, "{", extra_labels, "}", " ", value, "\n");
}

TEST(FinishReasonTest, Names) {
  EXPECT_EQ(FinishReasonName(FinishReason::kStop), "stop");
  EXPECT_EQ(FinishReasonName(FinishReason::kLength), "length");
  EXPECT_EQ(FinishReasonName(FinishReason::kAbort), "abort");
  EXPECT_EQ(FinishReasonName(FinishReason::kError), "error");
}

TEST(BucketsTest, OneTwoFive) {
  EXPECT_EQ(OneTwoFiveBuckets(100), (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
  EXPECT_EQ(OneTwoFiveBuckets(4096), (std::vector<double>{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000}));
  EXPECT_EQ(OneTwoFiveBuckets(0), (std::vector<double>{1}));
  EXPECT_EQ(OneTwoFiveBuckets(INT64_MAX).back(), 5e18);
}

TEST(BucketsTest, LatencyBucketsResolveMillisecondsAndMinutes) {
  for (const auto* buckets : {&kTtftBuckets, &kInterTokenBuckets, &kRequestLatencyBuckets}) {
    EXPECT_TRUE(std::is_sorted(buckets->begin(), buckets->end()));
    EXPECT_LE(buckets->front(), 0.001);
    // At least two bounds below 10 ms and three above 2 s.
    EXPECT_GE(std::count_if(buckets->begin(), buckets->end(), [](double b) { return b < 0.01; }), 2);
    EXPECT_GE(std::count_if(buckets->begin(), buckets->end(), [](double b) { return b > 2.0; }), 3);
  }
  // vLLM's TTFT set, unchanged.
  EXPECT_EQ(kTtftBuckets.size(), 22u);
  EXPECT_EQ(kTtftBuckets.back(), 2560.0);
}

TEST(WorkerMetricsTest, CreateRejectsBadArguments) {
  EXPECT_THAT(WorkerMetrics::Create("", 16), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model_name")));
  EXPECT_THAT(WorkerMetrics::Create(kModel, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("block_size must be >= 1, got 0")));
  EXPECT_THAT(WorkerMetrics::Create(kModel, 16, -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_model_len")));
}

TEST(WorkerMetricsTest, EveryMetricIsPresentAtStart) {
  ASSERT_OK_AND_ASSIGN(auto metrics, WorkerMetrics::Create(kModel, 32, 4096));
  const std::string text = Serialize(*metrics);
  const std::string m = absl::StrCat("model_name=\"", kModel, "\"");
  for (const char* gauge : {"num_requests_running", "num_requests_waiting", "kv_cache_usage_perc",
                            "kv_cache_blocks_total", "kv_cache_blocks_used"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE wrinklefree:", gauge, " gauge\n"))) << gauge;
    EXPECT_THAT(text, HasSubstr(Line(gauge, m, "0"))) << gauge;
  }
  for (const char* counter :
       {"prompt_tokens_total", "generation_tokens_total", "num_preemptions_total", "prefix_cache_queries_total",
        "prefix_cache_hits_total", "iterations_total", "iteration_busy_seconds_total"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE wrinklefree:", counter, " counter\n"))) << counter;
    EXPECT_THAT(text, HasSubstr(Line(counter, m, "0"))) << counter;
  }
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    EXPECT_THAT(text,
                HasSubstr(Line("request_success_total", absl::StrCat("finished_reason=\"", reason, "\",", m), "0")))
        << reason;
  }
  for (const char* hist : {"time_to_first_token_seconds", "inter_token_latency_seconds", "e2e_request_latency_seconds",
                           "request_queue_time_seconds", "request_prefill_time_seconds", "request_decode_time_seconds",
                           "request_inference_time_seconds", "request_prompt_tokens", "request_generation_tokens",
                           "request_params_max_tokens", "iteration_tokens_total"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE wrinklefree:", hist, " histogram\n"))) << hist;
    EXPECT_THAT(text, HasSubstr(Line(absl::StrCat(hist, "_count"), m, "0"))) << hist;
  }
  EXPECT_THAT(text, HasSubstr(Line("cache_config_info", absl::StrCat("block_size=\"32\",cache_dtype=\"f16\",", m), "1")));
  // Token-count buckets stop at the model length.
  EXPECT_THAT(text, HasSubstr(Line("request_prompt_tokens_bucket", absl::StrCat(m, ",le=\"2000\""), "0")));
  EXPECT_THAT(text, Not(HasSubstr("request_prompt_tokens_bucket{model_name=\"bitnet-test\",le=\"5000\"}")));
}

TEST(WorkerMetricsTest, MethodsMoveTheRightMetrics) {
  ASSERT_OK_AND_ASSIGN(auto metrics, WorkerMetrics::Create(kModel, 16));
  metrics->SetRunning(3);
  metrics->SetWaiting(7);
  metrics->SetKvCacheBlocks(64, 256);
  metrics->AddPromptTokens(100);
  metrics->AddPromptTokens(-5);  // ignored
  metrics->AddGenerationTokens(1);
  metrics->AddGenerationTokens(1);
  metrics->AddPreemptions();
  metrics->AddPrefixCacheLookup(128, 96);
  metrics->RecordIteration(40, 0.5);
  metrics->RecordIteration(3, 0.25);
  metrics->RequestFinished(FinishReason::kAbort);
  metrics->ObserveTtft(0.003);
  metrics->ObserveInterTokenLatency(0.004);
  metrics->ObserveInterTokenLatency(-1);  // ignored
  metrics->RecordFinishedRequest({.reason = FinishReason::kLength,
                                  .e2e_seconds = 3.2,
                                  .queue_seconds = 0.002,
                                  .prefill_seconds = 0.2,
                                  .decode_seconds = 3.0,
                                  .prompt_tokens = 120,
                                  .generation_tokens = 64,
                                  .max_tokens = 64});
  // Aborted while waiting: only the queue time and counts are known.
  metrics->RecordFinishedRequest({.reason = FinishReason::kAbort, .queue_seconds = 1.0, .prompt_tokens = 10});

  const std::string text = Serialize(*metrics);
  const std::string m = "model_name=\"bitnet-test\"";
  EXPECT_THAT(text, HasSubstr(Line("num_requests_running", m, "3")));
  EXPECT_THAT(text, HasSubstr(Line("num_requests_waiting", m, "7")));
  EXPECT_THAT(text, HasSubstr(Line("kv_cache_blocks_used", m, "64")));
  EXPECT_THAT(text, HasSubstr(Line("kv_cache_blocks_total", m, "256")));
  EXPECT_THAT(text, HasSubstr(Line("kv_cache_usage_perc", m, "0.25")));
  EXPECT_THAT(text, HasSubstr(Line("prompt_tokens_total", m, "100")));
  EXPECT_THAT(text, HasSubstr(Line("generation_tokens_total", m, "2")));
  EXPECT_THAT(text, HasSubstr(Line("num_preemptions_total", m, "1")));
  EXPECT_THAT(text, HasSubstr(Line("prefix_cache_queries_total", m, "128")));
  EXPECT_THAT(text, HasSubstr(Line("prefix_cache_hits_total", m, "96")));
  EXPECT_THAT(text, HasSubstr(Line("iterations_total", m, "2")));
  EXPECT_THAT(text, HasSubstr(Line("iteration_busy_seconds_total", m, "0.75")));
  EXPECT_THAT(text, HasSubstr(Line("iteration_tokens_total_sum", m, "43")));
  EXPECT_THAT(text, HasSubstr(Line("iteration_tokens_total_bucket", m + ",le=\"8\"", "1")));
  EXPECT_THAT(text, HasSubstr(Line("request_success_total", "finished_reason=\"abort\"," + m, "2")));
  EXPECT_THAT(text, HasSubstr(Line("request_success_total", "finished_reason=\"length\"," + m, "1")));
  EXPECT_THAT(text, HasSubstr(Line("request_success_total", "finished_reason=\"stop\"," + m, "0")));
  // 3 ms TTFT: above the 1 ms bound, inside 5 ms.
  EXPECT_THAT(text, HasSubstr(Line("time_to_first_token_seconds_bucket", m + ",le=\"0.001\"", "0")));
  EXPECT_THAT(text, HasSubstr(Line("time_to_first_token_seconds_bucket", m + ",le=\"0.005\"", "1")));
  // 4 ms inter-token latency resolves below vLLM's lowest (10 ms) bound.
  EXPECT_THAT(text, HasSubstr(Line("inter_token_latency_seconds_bucket", m + ",le=\"0.0025\"", "0")));
  EXPECT_THAT(text, HasSubstr(Line("inter_token_latency_seconds_bucket", m + ",le=\"0.005\"", "1")));
  EXPECT_THAT(text, HasSubstr(Line("inter_token_latency_seconds_count", m, "1")));
  // 3.2 s end to end: between the 2.5 s and 5 s bounds.
  EXPECT_THAT(text, HasSubstr(Line("e2e_request_latency_seconds_bucket", m + ",le=\"2.5\"", "0")));
  EXPECT_THAT(text, HasSubstr(Line("e2e_request_latency_seconds_bucket", m + ",le=\"5\"", "1")));
  EXPECT_THAT(text, HasSubstr(Line("e2e_request_latency_seconds_count", m, "1")));
  // Queue times 2 ms and 1 s, both observed.
  EXPECT_THAT(text, HasSubstr(Line("request_queue_time_seconds_bucket", m + ",le=\"0.0025\"", "1")));
  EXPECT_THAT(text, HasSubstr(Line("request_queue_time_seconds_count", m, "2")));
  EXPECT_THAT(text, HasSubstr(Line("request_prefill_time_seconds_count", m, "1")));
  EXPECT_THAT(text, HasSubstr(Line("request_decode_time_seconds_sum", m, "3")));
  EXPECT_THAT(text, HasSubstr(Line("request_inference_time_seconds_sum", m, "3.2")));
  EXPECT_THAT(text, HasSubstr(Line("request_prompt_tokens_sum", m, "130")));
  EXPECT_THAT(text, HasSubstr(Line("request_generation_tokens_count", m, "2")));
  EXPECT_THAT(text, HasSubstr(Line("request_params_max_tokens_count", m, "1")));
}

TEST(WorkerMetricsTest, KvUsageWithEmptyPoolIsZero) {
  ASSERT_OK_AND_ASSIGN(auto metrics, WorkerMetrics::Create(kModel, 16));
  metrics->SetKvCacheBlocks(0, 0);
  EXPECT_THAT(Serialize(*metrics), HasSubstr(Line("kv_cache_usage_perc", "model_name=\"bitnet-test\"", "0")));
}

TEST(MetricsServerTest, ServesMetricsOverHttp) {
  ASSERT_OK_AND_ASSIGN(auto metrics, WorkerMetrics::Create(kModel, 16));
  ASSERT_OK_AND_ASSIGN(auto other, WorkerMetrics::Create("second-model", 8, 0, "q8"));
  ASSERT_OK_AND_ASSIGN(auto server, MetricsServer::Start("127.0.0.1", 0, {metrics->registry(), other->registry()}));
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(server->host(), "127.0.0.1");

  metrics->SetRunning(5);
  metrics->AddGenerationTokens(42);
  metrics->RequestFinished(FinishReason::kStop);
  metrics->ObserveTtft(0.25);
  other->SetWaiting(9);

  ASSERT_OK_AND_ASSIGN(std::string response, HttpGet(server->port(), "/metrics"));
  EXPECT_THAT(response, ::testing::StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(response, HasSubstr("text/plain"));
  const std::string m = "model_name=\"bitnet-test\"";
  EXPECT_THAT(response, HasSubstr(Line("num_requests_running", m, "5")));
  EXPECT_THAT(response, HasSubstr(Line("generation_tokens_total", m, "42")));
  EXPECT_THAT(response, HasSubstr(Line("request_success_total", "finished_reason=\"stop\"," + m, "1")));
  EXPECT_THAT(response, HasSubstr(Line("time_to_first_token_seconds_bucket", m + ",le=\"0.25\"", "1")));
  EXPECT_THAT(response, HasSubstr(Line("time_to_first_token_seconds_bucket", m + ",le=\"0.1\"", "0")));
  EXPECT_THAT(response, HasSubstr(Line("num_requests_waiting", "model_name=\"second-model\"", "9")));
  EXPECT_THAT(response, HasSubstr(Line("cache_config_info", "block_size=\"8\",cache_dtype=\"q8\",model_name=\"second-model\"", "1")));

  // A later scrape sees later values.
  metrics->SetRunning(1);
  ASSERT_OK_AND_ASSIGN(response, HttpGet(server->port(), "/metrics"));
  EXPECT_THAT(response, HasSubstr(Line("num_requests_running", m, "1")));
}

TEST(MetricsServerTest, BusyPortIsACleanError) {
  ASSERT_OK_AND_ASSIGN(auto metrics, WorkerMetrics::Create(kModel, 16));
  ASSERT_OK_AND_ASSIGN(auto first, MetricsServer::Start("127.0.0.1", 0, {metrics->registry()}));
  const std::string address = absl::StrCat("127.0.0.1:", first->port());
  EXPECT_THAT(MetricsServer::Start("127.0.0.1", first->port(), {metrics->registry()}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(address)));
  // The first server is unaffected.
  EXPECT_THAT(HttpGet(first->port(), "/metrics"), IsOk());
}

TEST(MetricsServerTest, RejectsBadArguments) {
  ASSERT_OK_AND_ASSIGN(auto metrics, WorkerMetrics::Create(kModel, 16));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1", -1, {metrics->registry()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got -1")));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1", 65536, {metrics->registry()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0..65535")));
  EXPECT_THAT(MetricsServer::Start("", 0, {metrics->registry()}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host")));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1", 0, {nullptr}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  // Not an address of this machine.
  EXPECT_THAT(MetricsServer::Start("not-an-address.invalid", 0, {metrics->registry()}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not-an-address.invalid:0")));
}

TEST(MetricsServerTest, DestructionStopsServing) {
  ASSERT_OK_AND_ASSIGN(auto metrics, WorkerMetrics::Create(kModel, 16));
  ASSERT_OK_AND_ASSIGN(auto server, MetricsServer::Start("127.0.0.1", 0, {metrics->registry()}));
  const int port = server->port();
  ASSERT_THAT(HttpGet(port, "/metrics"), IsOk());
  server.reset();
  // The registry outlives the server; nothing listens on the port any more.
  metrics->SetRunning(2);
  EXPECT_THAT(HttpGet(port, "/metrics"), Not(IsOk()));
}

}  // namespace
}  // namespace wf::service
