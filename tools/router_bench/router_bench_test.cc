#include "tools/router_bench/router_bench.h"

#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"

namespace wf::router_bench {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::StatusIs;

TEST(RouterBenchTest, PercentileIsNearestRank) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);  // unsorted on purpose
  EXPECT_EQ(Percentile(v, 0.5), 50);
  EXPECT_EQ(Percentile(v, 0.99), 99);
  EXPECT_EQ(Percentile(v, 0.999), 100);
  EXPECT_EQ(Percentile(v, 0.0), 1);
  EXPECT_EQ(Percentile(v, 1.0), 100);
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({7}, 0.99), 7);
}

TEST(RouterBenchTest, SummarizeAndPairedDifference) {
  const std::vector<double> router = {2, 3, 4, 10};
  const std::vector<double> direct = {1, 1, 1, 1, 99};  // the longer one is cut
  const std::vector<double> d = PairedDifference(router, direct);
  EXPECT_EQ(d, (std::vector<double>{1, 2, 3, 9}));
  const Summary s = Summarize(d);
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.mean, 3.75);
  EXPECT_EQ(s.p50, 2);
  EXPECT_EQ(s.p99, 9);
  EXPECT_EQ(s.max, 9);
  EXPECT_EQ(Summarize({}).count, 0);
}

TEST(RouterBenchTest, ReportsNameEveryPathAndTheAddedLatency) {
  BenchConfig config;
  config.requests = 3;
  config.worker_address = "w:1";
  config.router_grpc_address = "r:2";
  config.router_http_port = 3;
  BenchResult result;
  result.model = "m";
  result.ttft_ms[kDirectGrpc] = {1, 2, 3};
  result.ttft_ms[kRouterGrpc] = {1.5, 2.5, 3.5};
  result.ttft_ms[kRouterHttp] = {2, 3, 5};
  result.ttft_ms[kUnaryRoundTrip] = {0.1, 0.2, 0.3};
  const std::string text = FormatText(config, result);
  EXPECT_THAT(text, HasSubstr("worker gRPC direct"));
  EXPECT_THAT(text, HasSubstr("router gRPC"));
  EXPECT_THAT(text, HasSubstr("router HTTP SSE"));
  EXPECT_THAT(text, HasSubstr("gRPC unary round trip"));
  EXPECT_THAT(text, HasSubstr("added by the router"));
  const nlohmann::json j = nlohmann::json::parse(FormatJson(config, result));
  EXPECT_EQ(j["paths"]["direct_grpc"]["count"], 3);
  EXPECT_DOUBLE_EQ(j["paths"]["router_http"]["max_ms"].get<double>(), 5);
  EXPECT_DOUBLE_EQ(j["added"]["router_grpc"]["p50_ms"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["added"]["router_http"]["p99_ms"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(j["added"]["router_http"]["paired_p99_ms"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(j["reference"]["unary_round_trip"]["max_ms"].get<double>(), 0.3);
  EXPECT_FALSE(j["added"].contains("unary_round_trip"));
}

TEST(RouterBenchTest, RejectsAnIncompleteConfig) {
  BenchConfig config;
  config.worker_address = "127.0.0.1:1";
  EXPECT_THAT(RunBench(config), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("required")));
}

// Real processes: every path (and the reference round trip) answers, and
// every iteration is recorded.
TEST(RouterBenchTest, MeasuresEveryPathAgainstRealProcesses) {
  ASSERT_OK_AND_ASSIGN(auto worker, testing::WorkerProcess::Start({"--threads", "1"}));
  ASSERT_OK_AND_ASSIGN(auto router, testing::RouterProcess::Start({worker->address()}));
  BenchConfig config;
  config.worker_address = worker->address();
  config.router_grpc_address = router->grpc_address();
  config.router_http_port = router->http_port();
  config.requests = 4;
  config.warmup = 1;
  config.prompt_tokens = 20;
  config.progress = false;
  ASSERT_OK_AND_ASSIGN(BenchResult result, RunBench(config));
  EXPECT_FALSE(result.model.empty());
  for (int p = 0; p < kPathCount; ++p) {
    ASSERT_EQ(result.ttft_ms[p].size(), 4u) << PathName(p);
    for (double ms : result.ttft_ms[p]) EXPECT_GT(ms, 0) << PathName(p);
  }
}

// Out-of-range counts are usage errors (exit 2) naming the flag and its
// range, before any process starts.
TEST(RouterBenchCliTest, BadFlagsExitWithUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--requests", "0"}, "--requests must be in [1, 10000000]"},
      {{"--requests", "5000000000"}, "--requests must be in [1, 10000000]"},
      {{"--warmup", "-1"}, "--warmup must be in [0, 1000000]"},
      {{"--warmup", "4294967296"}, "--warmup must be in [0, 1000000]"},
      {{"--prompt-tokens", "0"}, "--prompt-tokens must be in [1, 1048576]"},
      {{"--prompt-tokens", "2147483648"}, "--prompt-tokens must be in [1, 1048576]"},
      {{"--pause-ms", "60001"}, "--pause-ms must be in [0, 60000]"},
      {{"--requests", "many"}, "--requests"},
      {{"--worker", "127.0.0.1:1"}, "give all of --worker, --router-grpc and --router-http"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {WF_ROUTER_BENCH_BINARY};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const wf::testing::CommandResult r = wf::testing::RunCommand(args, {}, 60);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message)) << c.args[0];
  }
}

}  // namespace
}  // namespace wf::router_bench
