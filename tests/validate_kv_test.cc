// wf_validate_kv against two real wf_router processes over two real wf_worker
// processes (golden tiny model, small KV pool so the capacity check evicts),
// and against a loopback port where nothing listens.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "common/testing/unused_port.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/http_get.h"
#include "tests/testing/worker_process.h"
#include "tools/validate_kv/validator.h"

namespace wf {
namespace {

using ::testing::HasSubstr;
using testing::ChildProcess;
using testing::CommandResult;
using testing::RunCommand;
using testing::WorkerProcess;
using validate_kv::ParseCompletion;
using validate_kv::SeededPromptIds;

// A wf_router child with the gRPC front off; Start() returns once /ready is 200.
class Router {
 public:
  static absl::StatusOr<std::unique_ptr<Router>> Start(const std::vector<std::string>& workers) {
    auto r = std::unique_ptr<Router>(new Router());
    BN_RETURN_IF_ERROR(r->child_.Start({testing::BinaryDir() + "/router/wf_router", "--workers",
                                        absl::StrJoin(workers, ","), "--host", "127.0.0.1", "--http-port", "0",
                                        "--grpc-port", "-1", "--log-level", "warning"}));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    auto left = [&] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    };
    const std::string kListening = "wf_router: http listening on 127.0.0.1:";
    while (r->port_ == 0) {
      if (left().count() <= 0) return absl::DeadlineExceededError("wf_router printed no HTTP port in 60 s");
      BN_ASSIGN_OR_RETURN(std::string line, r->child_.ReadLine(left()));
      if (absl::StartsWith(line, kListening) && !absl::SimpleAtoi(line.substr(kListening.size()), &r->port_)) {
        return absl::InternalError("bad port line: " + line);
      }
    }
    while (true) {
      absl::StatusOr<testing::HttpResponse> ready = testing::HttpGet(r->port_, "/ready", std::chrono::seconds(5));
      if (ready.ok() && ready->status == 200) return r;
      if (left().count() <= 0) return absl::DeadlineExceededError("wf_router /ready did not answer 200 in 60 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~Router() { child_.StopWithin(SIGTERM, std::chrono::seconds(5)); }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }

 private:
  Router() = default;
  ChildProcess child_;
  int port_ = 0;
};

using ::wf::testing::UnusedPort;

TEST(ValidateKvUnitTest, SeededPromptIdsAreDeterministicAndInRange) {
  const std::vector<int32_t> a = SeededPromptIds(7, 300, 32, 2000);
  EXPECT_EQ(a, SeededPromptIds(7, 300, 32, 2000));
  EXPECT_NE(a, SeededPromptIds(8, 300, 32, 2000));
  ASSERT_EQ(a.size(), 300u);
  for (int32_t id : a) {
    EXPECT_GE(id, 32);
    EXPECT_LT(id, 2000);
  }
}

TEST(ValidateKvUnitTest, ParseCompletionReadsCachedTokensAndNamesMissingFields) {
  ASSERT_OK_AND_ASSIGN(validate_kv::Completion c,
                       ParseCompletion(R"({"choices":[{"text":"ab","finish_reason":"length"}],
                         "usage":{"prompt_tokens":20,"completion_tokens":2,
                                  "prompt_tokens_details":{"cached_tokens":16}}})"));
  EXPECT_EQ(c.text, "ab");
  EXPECT_EQ(c.cached_tokens, 16);
  EXPECT_EQ(c.prompt_tokens, 20);
  EXPECT_THAT(ParseCompletion(R"({"choices":[{"text":"ab"}],"usage":{"prompt_tokens":2,"completion_tokens":1}})"),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cached_tokens")));
  EXPECT_THAT(ParseCompletion("not json"), testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ParseCompletion(R"({"choices":[]})"), testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(ValidateKvTest, PassesOnTwoRoutersOverTwoWorkersWithEviction) {
  const std::vector<std::string> worker_args = {"--kv-cache-tokens", "4096", "--max-context", "1024"};
  ASSERT_OK_AND_ASSIGN(auto w1, WorkerProcess::Start(worker_args));
  ASSERT_OK_AND_ASSIGN(auto w2, WorkerProcess::Start(worker_args));
  ASSERT_OK_AND_ASSIGN(auto r1, Router::Start({w1->address(), w2->address()}));
  ASSERT_OK_AND_ASSIGN(auto r2, Router::Start({w1->address(), w2->address()}));
  // 40 x 512-token prompts: about 21k tokens against 8192 pooled KV tokens.
  const CommandResult run = RunCommand({WF_VALIDATE_KV_BINARY, "--url", r1->url(), "--url", r2->url(),
                                        "--capacity-prompts", "40", "--capacity-prompt-tokens", "512",
                                        "--request-timeout-ms", "60000"},
                                       {}, 300);
  std::cout << run.output;
  EXPECT_EQ(run.exit_code, 0) << run.output;
  for (const char* check : {"models", "cold_warm", "prefix_extension", "concurrent", "capacity", "routers_agree"}) {
    EXPECT_THAT(run.output, HasSubstr(absl::StrCat("PASS ", check, " "))) << check;
  }
  EXPECT_THAT(run.output, HasSubstr("40 distinct 512-token prompts"));
  EXPECT_THAT(run.output, HasSubstr("validate_kv: OK (6 checks, 0 failed)"));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("FAIL")));
}

TEST(ValidateKvTest, FailsWhereNothingListens) {
  const int port = UnusedPort();
  ASSERT_NE(port, 0);
  const CommandResult run = RunCommand({WF_VALIDATE_KV_BINARY, "--url", absl::StrCat("http://127.0.0.1:", port),
                                        "--connect-timeout-ms", "2000", "--request-timeout-ms", "5000"},
                                       {}, 60);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("FAIL models"));
  EXPECT_THAT(run.output, HasSubstr("validate_kv: FAILED"));
}

TEST(ValidateKvTest, RejectsMissingUrl) {
  const CommandResult run = RunCommand({WF_VALIDATE_KV_BINARY}, {}, 60);
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("--url is required"));
}

TEST(ValidateKvTest, RejectsASettleTimeOutOfRange) {
  for (const char* bad : {"-1", "10001"}) {
    const CommandResult run =
        RunCommand({WF_VALIDATE_KV_BINARY, "--url", "http://127.0.0.1:1", "--settle-ms", bad}, {}, 60);
    EXPECT_EQ(run.exit_code, 2) << run.output;
    EXPECT_THAT(run.output, HasSubstr(absl::StrCat("--settle-ms must be in [0, 10000], got ", bad)));
  }
  const CommandResult help = RunCommand({WF_VALIDATE_KV_BINARY, "--help"}, {}, 60);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("--settle-ms"));
}

}  // namespace
}  // namespace wf
