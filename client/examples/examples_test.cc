// The client examples (C++, Python, Node), each run as a child process against
// a real local cluster (one wf_worker on the golden model + one wf_router on
// 127.0.0.1). Each must stream the same greedy completion that
// RouterClient::Generate returns, then report the final usage on stderr.
// CTest runs each example as its own test (--gtest_filter); see
// client/CMakeLists.txt.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/wf_client.h"
#include "common/file_util.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"

namespace wf::client {
namespace {

namespace v1 = wrinklefree::v1;
using ::testing::HasSubstr;
using ::wf::testing::RouterProcess;
using ::wf::testing::WorkerProcess;

constexpr char kPrompt[] = "Once upon a time, in a quiet town";
constexpr int kMaxTokens = 16;
constexpr int kExampleTimeoutSeconds = 240;

struct ProgramResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
};

// Runs args (none may contain a single quote) to completion, bounded by
// coreutils timeout, with stdout and stderr captured separately.
ProgramResult RunProgram(const std::vector<std::string>& args) {
  ProgramResult r;
  const std::filesystem::path err_path =
      std::filesystem::temp_directory_path() / absl::StrCat("wf_client_example_err_", ::getpid());
  std::string cmd = absl::StrCat("timeout ", kExampleTimeoutSeconds);
  for (const std::string& a : args) absl::StrAppend(&cmd, " '", a, "'");
  absl::StrAppend(&cmd, " 2>'", err_path.string(), "'");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    r.err = "popen failed: " + cmd;
    return r;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  absl::StatusOr<std::string> err = ReadFileToString(err_path.string());
  if (err.ok()) r.err = *std::move(err);
  std::filesystem::remove(err_path);
  return r;
}

std::string FinishReasonName(v1::FinishReason reason) {
  std::string name = v1::FinishReason_Name(reason);
  if (absl::StartsWith(name, "FINISH_REASON_")) name = name.substr(14);
  return absl::AsciiStrToLower(name);
}

class ClientExamplesTest : public ::wf::testing::OneWorkerOneRouterTest {
 protected:
  // The greedy completion every example must print.
  static absl::StatusOr<Completion> Expected() {
    ClientOptions o;
    o.target = router_->grpc_address();
    absl::StatusOr<std::unique_ptr<RouterClient>> client = RouterClient::Create(o);
    if (!client.ok()) return client.status();
    RouterGenerateRequest req;
    req.mutable_request()->set_text(kPrompt);
    req.mutable_request()->mutable_sampling()->set_temperature(0);
    req.mutable_request()->mutable_stop()->set_max_tokens(kMaxTokens);
    return (*client)->Generate(req);
  }

  // Every example's arguments after the interpreter and script.
  static std::vector<std::string> CommonArgs() {
    return {"--target", router_->grpc_address(), "--prompt", kPrompt, "--max-tokens", absl::StrCat(kMaxTokens),
            "--temperature", "0"};
  }

  // The text on stdout (then a newline), the usage line on stderr.
  static void CheckOutput(const ProgramResult& r, const Completion& expected) {
    ASSERT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;
    EXPECT_EQ(r.out, expected.text + "\n") << "stderr:\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(absl::StrCat("usage: prompt_tokens=", expected.usage.prompt_tokens(),
                                              " completion_tokens=", expected.usage.completion_tokens(),
                                              " cached_prompt_tokens=")));
    EXPECT_THAT(r.err, HasSubstr(absl::StrCat(" finish_reason=", FinishReasonName(expected.finish_reason), "\n")));
  }
};

TEST_F(ClientExamplesTest, CppExampleStreamsTheGreedyCompletion) {
  ASSERT_OK_AND_ASSIGN(Completion expected, Expected());
  ASSERT_FALSE(expected.text.empty()) << "the golden model's completion is empty: pick another prompt";
  std::vector<std::string> args = {WF_CLIENT_EXAMPLE_BINARY};
  for (std::string& a : CommonArgs()) args.push_back(std::move(a));
  CheckOutput(RunProgram(args), expected);

  // A failing call: exit status 1, the code and the target on stderr.
  ProgramResult bad = RunProgram({WF_CLIENT_EXAMPLE_BINARY, "--target", router_->grpc_address(), "--prompt", kPrompt,
                                  "--max-tokens", "5000"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(bad.err, HasSubstr("context limit"));
}

TEST_F(ClientExamplesTest, PythonExampleStreamsTheGreedyCompletion) {
  const std::string python = WF_CLIENT_PYTHON;
  if (python.empty()) GTEST_SKIP() << "no /usr/bin/python3 with grpc_python_plugin at configure time";
  ASSERT_OK_AND_ASSIGN(Completion expected, Expected());
  std::vector<std::string> args = {python, testing::SourceDir() + "/client/examples/python/router_client.py",
                                   "--protoc", WF_CLIENT_PROTOC, "--plugin", WF_CLIENT_GRPC_PYTHON_PLUGIN,
                                   "--proto-dir", testing::SourceDir() + "/proto"};
  for (std::string& a : CommonArgs()) args.push_back(std::move(a));
  ProgramResult r = RunProgram(args);
  if (r.exit_code == 77) GTEST_SKIP() << r.err;
  CheckOutput(r, expected);
}

TEST_F(ClientExamplesTest, NodeExampleStreamsTheGreedyCompletion) {
  const std::string node = WF_CLIENT_NODE;
  if (node.empty()) GTEST_SKIP() << "no node/npm at configure time";
  const std::string dir = testing::SourceDir() + "/client/examples/node";
  ProgramResult installed = RunProgram({node, dir + "/check_install.mjs"});
  ASSERT_EQ(installed.exit_code, 0) << "node_modules is missing or not at the locked versions; run: npm ci --prefix "
                                    << dir << " (CTest's client_node_example_install does)";
  ASSERT_OK_AND_ASSIGN(Completion expected, Expected());
  std::vector<std::string> args = {node, dir + "/router_client.mjs", "--proto-dir", testing::SourceDir() + "/proto"};
  for (std::string& a : CommonArgs()) args.push_back(std::move(a));
  CheckOutput(RunProgram(args), expected);
}

}  // namespace
}  // namespace wf::client
