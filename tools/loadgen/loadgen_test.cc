// The load generator's statistics on synthetic timelines, and end-to-end runs
// (library and wf_loadgen CLI) against a real wf_worker child process on the
// golden tiny model, on loopback.
#include "tools/loadgen/loadgen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "common/testing/test_paths.h"
#include "common/testing/unused_port.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf::loadgen {
namespace {

using ::testing::DoubleNear;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::wf::testing::CommandResult;
using ::wf::testing::RunCommand;

constexpr double kEps = 1e-9;

// ------------------------------------------------------------- Statistics

TEST(PercentileTest, InterpolatesBetweenClosestRanks) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(Percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 2.5);
  EXPECT_NEAR(Percentile(v, 90), 3.7, kEps);
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(Percentile(std::vector<double>{7}, 99), 7);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
  std::vector<double> hundred;
  for (int i = 100; i >= 1; --i) hundred.push_back(i);
  const Distribution d = Summarize(hundred);  // sorts
  EXPECT_EQ(d.count, 100);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.max, 100);
  EXPECT_DOUBLE_EQ(d.mean, 50.5);
  EXPECT_NEAR(d.p50, 50.5, kEps);
  EXPECT_NEAR(d.p90, 90.1, kEps);
  EXPECT_NEAR(d.p99, 99.01, kEps);
  std::vector<double> none;
  EXPECT_EQ(Summarize(none).count, 0);
}

RequestRecord Record(bool ok, double start, double end, std::vector<TokenBatch> batches, std::string failure = "") {
  RequestRecord r;
  r.ok = ok;
  r.start_seconds = start;
  r.end_seconds = end;
  r.batches = std::move(batches);
  r.failure = std::move(failure);
  r.error = r.failure.empty() ? "" : "message of " + r.failure;
  return r;
}

RunResult SyntheticRun() {
  RunResult run;
  run.concurrency = 2;
  run.wall_seconds = 2.5;
  // Tokens at 0.5, 0.6 and two together at 0.8.
  run.requests.push_back(Record(true, 0.0, 0.9, {{0.5, 1}, {0.6, 1}, {0.8, 2}}));
  run.requests.back().prompt_tokens = 10;
  run.requests.back().cached_prompt_tokens = 0;
  // Three tokens in one response.
  run.requests.push_back(Record(true, 1.0, 1.3, {{1.2, 3}}));
  run.requests.back().prompt_tokens = 10;
  run.requests.back().cached_prompt_tokens = 8;
  run.requests.push_back(Record(false, 0.1, 0.2, {}, "UNAVAILABLE"));
  // Failed after two tokens: they count as generated, not in latencies.
  run.requests.push_back(Record(false, 1.5, 2.5, {{2.0, 2}}, "DEADLINE_EXCEEDED"));
  return run;
}

TEST(SummarizeTest, AggregatesSyntheticTimeline) {
  const RunStats s = Summarize(SyntheticRun());
  EXPECT_EQ(s.concurrency, 2);
  EXPECT_EQ(s.requests_ok, 2);
  EXPECT_EQ(s.requests_failed, 2);
  EXPECT_EQ(s.failed_by_code.at("UNAVAILABLE"), 1);
  EXPECT_EQ(s.failed_by_code.at("DEADLINE_EXCEEDED"), 1);
  EXPECT_EQ(s.first_error.at("UNAVAILABLE"), "message of UNAVAILABLE");
  EXPECT_EQ(s.generated_tokens, 9);
  EXPECT_EQ(s.prompt_tokens, 20);
  EXPECT_EQ(s.cached_prompt_tokens, 8);
  EXPECT_NEAR(s.generated_tokens_per_second, 9 / 2.5, kEps);
  EXPECT_NEAR(s.requests_per_second, 2 / 2.5, kEps);

  EXPECT_EQ(s.ttft_seconds.count, 2);  // 0.5 and 0.2
  EXPECT_NEAR(s.ttft_seconds.min, 0.2, kEps);
  EXPECT_NEAR(s.ttft_seconds.p50, 0.35, kEps);
  EXPECT_NEAR(s.ttft_seconds.max, 0.5, kEps);

  // Gaps: 0.1, 0.2, 0 (second of the pair), 0, 0 (the batch of three).
  EXPECT_EQ(s.itl_seconds.count, 5);
  EXPECT_NEAR(s.itl_seconds.min, 0, kEps);
  EXPECT_NEAR(s.itl_seconds.p50, 0, kEps);
  EXPECT_NEAR(s.itl_seconds.p90, 0.16, kEps);
  EXPECT_NEAR(s.itl_seconds.max, 0.2, kEps);
  EXPECT_NEAR(s.itl_seconds.mean, 0.06, kEps);

  EXPECT_EQ(s.e2e_seconds.count, 2);  // 0.9 and 0.3
  EXPECT_NEAR(s.e2e_seconds.p50, 0.6, kEps);
  EXPECT_NEAR(s.e2e_seconds.p99, 0.3 + 0.99 * 0.6, kEps);
}

TEST(SummarizeTest, EmptyRunHasNoRates) {
  const RunStats s = Summarize(RunResult{});
  EXPECT_EQ(s.requests_ok, 0);
  EXPECT_EQ(s.generated_tokens_per_second, 0);
  EXPECT_EQ(s.ttft_seconds.count, 0);
}

TEST(ReportTest, JsonDocumentHasTheDocumentedKeys) {
  TargetDescription t;
  t.config.target = "127.0.0.1:5";
  t.model_name = "m";
  t.requests_per_stream = 2;
  std::vector<RunStats> runs = {Summarize(SyntheticRun()), Summarize(RunResult{})};
  const std::string text = FormatJson(t, runs);
  nlohmann::json doc;
  ASSERT_NO_THROW(doc = nlohmann::json::parse(text));
  EXPECT_EQ(doc["target"], "127.0.0.1:5");
  EXPECT_EQ(doc["model"], "m");
  for (const char* key :
       {"prompt_tokens", "prompt_text", "shared_prefix_tokens", "max_tokens", "ignore_eos", "temperature", "seed",
        "requests_per_stream", "duration_seconds", "warmup_requests", "channels", "request_timeout_seconds"}) {
    EXPECT_TRUE(doc["config"].contains(key)) << key;
  }
  ASSERT_EQ(doc["runs"].size(), 2u);
  const nlohmann::json& r = doc["runs"][0];
  EXPECT_EQ(r["concurrency"], 2);
  EXPECT_EQ(r["requests_ok"], 2);
  EXPECT_EQ(r["requests_failed"], 2);
  EXPECT_EQ(r["failed_by_code"]["UNAVAILABLE"], 1);
  EXPECT_EQ(r["generated_tokens"], 9);
  EXPECT_EQ(r["cached_prompt_tokens"], 8);
  EXPECT_NEAR(r["ttft_seconds"]["p50"].get<double>(), 0.35, kEps);
  EXPECT_EQ(r["itl_seconds"]["count"], 5);
  for (const char* key : {"wall_seconds", "prompt_tokens", "generated_tokens_per_second", "requests_per_second",
                          "e2e_seconds", "first_error"}) {
    EXPECT_TRUE(r.contains(key)) << key;
  }
  EXPECT_TRUE(doc["runs"][1]["ttft_seconds"]["p50"].is_null());
  EXPECT_EQ(doc["runs"][1]["ttft_seconds"]["count"], 0);
}

TEST(ReportTest, TableHasARowPerRunAndTheFailures) {
  TargetDescription t;
  t.config.target = "127.0.0.1:5";
  t.requests_per_stream = 2;
  const std::string table = FormatTable(t, {Summarize(SyntheticRun())});
  EXPECT_THAT(table, HasSubstr("TTFT ms p50/p90/p99"));
  EXPECT_THAT(table, HasSubstr("350.0/470.0/497.0"));  // TTFT of 200 and 500 ms
  EXPECT_THAT(table, HasSubstr("1 failed with UNAVAILABLE (message of UNAVAILABLE)"));
  EXPECT_THAT(table, HasSubstr("requests per stream 2"));
}

// ---------------------------------------------------- Inputs and prompts

TEST(InputsTest, ParsesConcurrencyLists) {
  EXPECT_THAT(ParseConcurrencyList("1,4,8,16").value(), ElementsAre(1, 4, 8, 16));
  EXPECT_THAT(ParseConcurrencyList("1000").value(), ElementsAre(1000));
  for (const char* bad : {"", "0", "1,,2", "a", "-1", "4,100001", "2.5"}) {
    EXPECT_THAT(ParseConcurrencyList(bad),
                wf::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("concurrency")))
        << bad;
  }
}

TEST(InputsTest, ValidatesConfigAndSpec) {
  LoadgenConfig c;
  c.target = "127.0.0.1:50051";
  EXPECT_THAT(ValidateConfig(c), wf::testing::IsOk());
  LoadgenConfig bad = c;
  bad.target = "localhost";
  EXPECT_THAT(ValidateConfig(bad), wf::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("HOST:PORT")));
  bad = c;
  bad.target = "h:70000";
  EXPECT_THAT(ValidateConfig(bad), Not(wf::testing::IsOk()));
  bad = c;
  bad.shared_prefix_tokens = c.prompt_tokens + 1;
  EXPECT_THAT(ValidateConfig(bad),
              wf::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("shared_prefix_tokens")));
  bad = c;
  bad.max_tokens = 0;
  EXPECT_THAT(ValidateConfig(bad), wf::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_tokens")));
  bad = c;
  bad.temperature = 3;
  EXPECT_THAT(ValidateConfig(bad), Not(wf::testing::IsOk()));

  EXPECT_THAT(ValidateRunSpec({.concurrency = 4, .requests_per_stream = 2}), wf::testing::IsOk());
  EXPECT_THAT(ValidateRunSpec({.concurrency = 4, .duration_seconds = 1}), wf::testing::IsOk());
  EXPECT_THAT(ValidateRunSpec({.concurrency = 0, .requests_per_stream = 2}), Not(wf::testing::IsOk()));
  EXPECT_THAT(ValidateRunSpec({.concurrency = 1}), Not(wf::testing::IsOk()));
  EXPECT_THAT(ValidateRunSpec({.concurrency = 1, .requests_per_stream = 1, .duration_seconds = 1}),
              Not(wf::testing::IsOk()));
}

TEST(PromptTest, SharedPrefixIsIdenticalAndTailsDiffer) {
  std::vector<int32_t> allowed;
  for (int32_t i = 0; i < 1000; ++i) allowed.push_back(3 * i + 7);
  const std::set<int32_t> allowed_set(allowed.begin(), allowed.end());
  const std::vector<int32_t> a = MakePromptTokens(allowed, 40, 16, 42, 1);
  const std::vector<int32_t> b = MakePromptTokens(allowed, 40, 16, 42, 2);
  ASSERT_EQ(a.size(), 40u);
  ASSERT_EQ(b.size(), 40u);
  EXPECT_EQ(std::vector<int32_t>(a.begin(), a.begin() + 16), std::vector<int32_t>(b.begin(), b.begin() + 16));
  EXPECT_NE(std::vector<int32_t>(a.begin() + 16, a.end()), std::vector<int32_t>(b.begin() + 16, b.end()));
  EXPECT_EQ(a, MakePromptTokens(allowed, 40, 16, 42, 1));  // deterministic
  EXPECT_NE(a, MakePromptTokens(allowed, 40, 16, 43, 1));  // seed matters
  EXPECT_NE(MakePromptTokens(allowed, 8, 0, 42, 1), MakePromptTokens(allowed, 8, 0, 42, 2));
  for (int32_t id : a) EXPECT_TRUE(allowed_set.count(id)) << id;
  EXPECT_TRUE(MakePromptTokens({}, 5, 0, 1, 1).empty());
}

// ------------------------------------------------------------ End to end

std::string WorkerBinary() { return WF_WORKER_BINARY; }
std::string LoadgenBinary() { return WF_LOADGEN_BINARY; }
std::string GoldenModel() { return wf::testing::GoldenDir() + "/bitnet-synth-h256-l4.gguf"; }

using ::wf::testing::UnusedPort;

class LoadgenWorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker_ = new wf::testing::ChildProcess();
    absl::Status s = worker_->Start({WorkerBinary(), "-m", GoldenModel(), "--host", "127.0.0.1", "--port", "0",
                                     "--metrics-port", "-1", "--threads", "1", "--log-level", "warning"});
    if (!s.ok()) {
      setup_error_ = std::string(s.message());
      return;
    }
    constexpr absl::string_view kListening = "wf_worker: grpc listening on ";
    for (;;) {
      absl::StatusOr<std::string> line = worker_->ReadLine(std::chrono::seconds(120));
      if (!line.ok()) {
        setup_error_ = absl::StrCat("worker did not become ready: ", line.status().message());
        return;
      }
      if (absl::StartsWith(*line, kListening)) {
        const std::string address = line->substr(kListening.size());
        int port = 0;
        if (!absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port) || port <= 0) {
          setup_error_ = "cannot parse the port in '" + *line + "'";
          return;
        }
        target_ = absl::StrCat("127.0.0.1:", port);
      } else if (absl::StartsWith(*line, "wf_worker: ready")) {
        break;
      }
    }
    if (target_.empty()) setup_error_ = "worker was ready without printing its gRPC port";
  }

  static void TearDownTestSuite() {
    if (worker_ != nullptr) {
      const int status = worker_->Stop(SIGTERM);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker wait status " << status;
    }
    delete worker_;
    worker_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  LoadgenConfig Config() const {
    LoadgenConfig c;
    c.target = target_;
    c.prompt_tokens = 12;
    c.shared_prefix_tokens = 4;
    c.max_tokens = 6;
    c.connect_timeout_seconds = 30;
    c.request_timeout_seconds = 120;
    return c;
  }

  static wf::testing::ChildProcess* worker_;
  static std::string target_;
  static std::string setup_error_;
};

wf::testing::ChildProcess* LoadgenWorkerTest::worker_ = nullptr;
std::string LoadgenWorkerTest::target_;
std::string LoadgenWorkerTest::setup_error_;

TEST_F(LoadgenWorkerTest, EveryRequestGeneratesTheRequestedTokens) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LoadGenerator> gen, LoadGenerator::Create(Config()));
  EXPECT_GT(gen->vocab_size(), 0);
  EXPECT_FALSE(gen->prompt_token_ids().empty());
  for (int32_t concurrency : {1, 4}) {
    ASSERT_OK_AND_ASSIGN(RunResult run,
                         gen->Run({.concurrency = concurrency, .requests_per_stream = 3}, [&](const Progress& p) {
                           EXPECT_EQ(p.concurrency, concurrency);
                           EXPECT_LE(p.in_flight, concurrency);
                         }));
    ASSERT_EQ(run.requests.size(), static_cast<size_t>(3 * concurrency));
    std::vector<int> per_stream(static_cast<size_t>(concurrency), 0);
    for (const RequestRecord& r : run.requests) {
      EXPECT_TRUE(r.ok) << r.failure << ": " << r.error;
      EXPECT_EQ(r.TokensReceived(), 6);
      EXPECT_EQ(r.completion_tokens, 6);
      EXPECT_EQ(r.prompt_tokens, 12);
      EXPECT_EQ(r.finish_reason, "LENGTH");
      EXPECT_LE(r.start_seconds, r.end_seconds);
      ASSERT_GE(r.stream, 0);
      ASSERT_LT(r.stream, concurrency);
      ++per_stream[static_cast<size_t>(r.stream)];
    }
    EXPECT_THAT(per_stream, Each(3));
    const RunStats stats = Summarize(run);
    EXPECT_EQ(stats.requests_ok, 3 * concurrency);
    EXPECT_EQ(stats.requests_failed, 0);
    EXPECT_EQ(stats.generated_tokens, 18 * concurrency);
    EXPECT_EQ(stats.ttft_seconds.count, 3 * concurrency);
    EXPECT_EQ(stats.itl_seconds.count, 15 * concurrency);
    EXPECT_GT(stats.wall_seconds, 0);
    EXPECT_GT(stats.generated_tokens_per_second, 0);
  }
}

TEST_F(LoadgenWorkerTest, DurationRunsAndSharedPrefixesHitThePrefixCache) {
  LoadgenConfig c = Config();
  c.prompt_tokens = 40;
  c.shared_prefix_tokens = 32;  // two whole KV blocks of the default size 16
  c.max_tokens = 2;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LoadGenerator> gen, LoadGenerator::Create(c));
  ASSERT_OK_AND_ASSIGN(RunResult run, gen->Run({.concurrency = 2, .duration_seconds = 0.3}));
  ASSERT_GE(run.requests.size(), 2u);
  for (const RequestRecord& r : run.requests) EXPECT_TRUE(r.ok) << r.failure << ": " << r.error;
  // Sequentially after the first run, every request finds the shared blocks.
  ASSERT_OK_AND_ASSIGN(RunResult again, gen->Run({.concurrency = 1, .requests_per_stream = 2}));
  const RunStats stats = Summarize(again);
  EXPECT_EQ(stats.requests_ok, 2);
  EXPECT_GE(stats.cached_prompt_tokens, 2 * 32);
}

TEST_F(LoadgenWorkerTest, PromptBeyondTheContextIsRejected) {
  LoadgenConfig c = Config();
  c.prompt_tokens = 1 << 20;
  EXPECT_THAT(LoadGenerator::Create(c),
              wf::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("context limit")));
}

TEST(LoadgenUnreachableTest, FailsWithinTheConnectDeadline) {
  LoadgenConfig c;
  c.target = absl::StrCat("127.0.0.1:", UnusedPort());
  c.connect_timeout_seconds = 1;
  absl::StatusOr<std::unique_ptr<LoadGenerator>> gen = LoadGenerator::Create(c);
  ASSERT_FALSE(gen.ok());
  EXPECT_THAT(gen.status().message(), HasSubstr(c.target));

  CommandResult r = RunCommand({LoadgenBinary(), "--target", c.target, "--connect-timeout-seconds", "1"}, {}, 60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot connect to " + c.target));
}

TEST(LoadgenCliTest, BadFlagsExitWithUsageErrors) {
  const std::string lg = LoadgenBinary();
  CommandResult r = RunCommand({lg, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--target", "--concurrency", "--requests-per-stream", "--duration-seconds",
                           "--prompt-tokens", "--prompt-text", "--shared-prefix-tokens", "--max-tokens", "--ignore-eos",
                           "--temperature", "--warmup-requests", "--json", "--seed"}) {
    EXPECT_THAT(r.output, HasSubstr(flag));
  }
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "--target HOST:PORT is required"},
      {{"--target", "nohost"}, "HOST:PORT"},
      {{"--target", "127.0.0.1:1", "--concurrency", "1,0"}, "concurrency"},
      {{"--target", "127.0.0.1:1", "--concurrency", "four"}, "four"},
      {{"--target", "127.0.0.1:1", "--requests-per-stream", "2", "--duration-seconds", "3"}, "at most one"},
      {{"--target", "127.0.0.1:1", "--shared-prefix-tokens", "50", "--prompt-tokens", "10"}, "shared_prefix_tokens"},
      {{"--target", "127.0.0.1:1", "--max-tokens", "x"}, "--max-tokens"},
      {{"--target", "127.0.0.1:1", "--bogus"}, "bogus"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {lg};
    args.insert(args.end(), c.args.begin(), c.args.end());
    r = RunCommand(args, {}, 60);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message));
  }
}

TEST_F(LoadgenWorkerTest, CliPrintsJsonAndTable) {
  CommandResult r = RunCommand({LoadgenBinary(), "--target", target_, "--concurrency", "1,2", "--requests-per-stream",
                                "2", "--prompt-tokens", "8", "--max-tokens", "4", "--json", "--no-progress"},
                               {}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t begin = r.output.find("{\n");
  const size_t end = r.output.rfind("}\n");
  ASSERT_NE(begin, std::string::npos) << r.output;
  ASSERT_NE(end, std::string::npos) << r.output;
  nlohmann::json doc;
  ASSERT_NO_THROW(doc = nlohmann::json::parse(r.output.substr(begin, end + 1 - begin))) << r.output;
  ASSERT_EQ(doc["runs"].size(), 2u);
  EXPECT_EQ(doc["runs"][0]["concurrency"], 1);
  EXPECT_EQ(doc["runs"][0]["requests_ok"], 2);
  EXPECT_EQ(doc["runs"][1]["concurrency"], 2);
  EXPECT_EQ(doc["runs"][1]["requests_ok"], 4);
  EXPECT_EQ(doc["runs"][1]["generated_tokens"], 16);
  EXPECT_EQ(doc["config"]["max_tokens"], 4);

  r = RunCommand({LoadgenBinary(), "--target", target_, "--concurrency", "3", "--requests-per-stream", "1",
                  "--prompt-text", "Hello there", "--max-tokens", "3", "--warmup-requests", "0"},
                 {}, 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("TTFT ms p50/p90/p99"));
  EXPECT_THAT(r.output, HasSubstr("prompt text of 11 bytes"));
}

}  // namespace
}  // namespace wf::loadgen
