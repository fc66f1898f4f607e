// wf_worker as users run it (--prompt, --benchmark), as a real process on the
// golden model: greedy completions reproduce the reference's tokens.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "common/testing/test_paths.h"
#include "common/tokenizer/gguf_vocab.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::CommandResult;
using ::wf::testing::RunCommand;

std::string Worker() { return wf::testing::BinaryDir() + "/worker/wf_worker"; }
std::string GoldenModel() { return wf::testing::GoldenDir() + "/bitnet-synth-h256-l4.gguf"; }

TEST(WorkerCliTest, HelpAndBadUsage) {
  CommandResult r = RunCommand({Worker(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--model-path", "--prompt", "--n-predict", "--chat", "--temperature", "--top-k", "--top-p",
                           "--min-p", "--seed", "--stop", "--benchmark", "--json", "--threads", "--head-type",
                           "--kv-cache-type", "BITNET_FORCE_ISA"}) {
    EXPECT_THAT(r.output, HasSubstr(flag));
  }
  r = RunCommand({Worker(), "--prompt", "hi"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("model_path (--model-path) is required"));
  r = RunCommand({Worker(), "-m", GoldenModel(), "--threads", "two", "--prompt", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--threads needs an integer"));
  r = RunCommand({Worker(), "-m", GoldenModel(), "--prompt", "x", "--benchmark"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("at most one of --prompt or --benchmark"));
  // Without either, wf_worker serves: bad serving flags are usage errors.
  r = RunCommand({Worker(), "-m", GoldenModel(), "--port", "70000"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("port (--port) must be in 0..65535, got 70000"));
  r = RunCommand({Worker(), "-m", "/nonexistent.gguf", "--prompt", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("/nonexistent.gguf"));
  r = RunCommand({Worker(), "-m", GoldenModel(), "--prompt", "x", "--temperature", "5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("temperature"));
  r = RunCommand({Worker(), "-m", GoldenModel(), "--prompt", "x"}, {"BITNET_FORCE_ISA=sse9"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("sse9"));
}

// A golden case's prompt and the reference's greedy tokens up to the first
// step decided by less than `min_margin` (log-prob of the top token over the
// runner-up), decoded as the completion text wf_worker must print.
struct DecidedCase {
  std::string name;
  std::string prompt;
  size_t tokens = 0;
  std::string text;
};

absl::StatusOr<std::vector<DecidedCase>> DecidedGoldenCases(double min_margin) {
  BN_ASSIGN_OR_RETURN(std::string text, ReadFileToString(wf::testing::GoldenDir() + "/golden-h256-l4.json"));
  const nlohmann::json golden = nlohmann::json::parse(text);
  BN_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::Open(GoldenModel()));
  BN_ASSIGN_OR_RETURN(tokenizer::Vocab vocab, tokenizer::VocabFromGgufFile(*file));
  BN_ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::Create(vocab));
  std::vector<DecidedCase> out;
  for (const auto& c : golden["cases"]) {
    if (!c.contains("prompt_text")) continue;
    std::vector<int32_t> ids;
    for (const auto& step : c["steps"]) {
      if (step["margin"].get<double>() < min_margin) break;
      ids.push_back(step["token"].get<int32_t>());
    }
    if (ids.empty()) continue;
    BN_ASSIGN_OR_RETURN(std::string want, tok->Decode(ids, /*skip_special=*/true));
    out.push_back({c["name"].get<std::string>(), c["prompt_text"].get<std::string>(), ids.size(), want});
  }
  return out;
}

TEST(WorkerCliTest, GreedyCompletionMatchesTheReference) {
  // Up to the first step where the reference itself was nearly undecided.
  ASSERT_OK_AND_ASSIGN(std::vector<DecidedCase> cases, DecidedGoldenCases(0.15));
  ASSERT_FALSE(cases.empty());
  for (const DecidedCase& c : cases) {
    CommandResult r = RunCommand({Worker(), "-m", GoldenModel(), "--prompt", c.prompt, "-n",
                                  std::to_string(c.tokens), "--temperature", "0", "--ignore-eos"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.text + "\n")) << c.name;
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat("generated ", c.tokens, " tokens")));
  }
}

// The int8 head (--head-type q8) is an approximation of the F16 head: where
// the reference was clearly decided (log-prob margin >= 0.5), it agrees.
TEST(WorkerCliTest, Q8HeadFollowsTheReferenceWhereItIsDecided) {
  ASSERT_OK_AND_ASSIGN(std::vector<DecidedCase> cases, DecidedGoldenCases(0.5));
  ASSERT_FALSE(cases.empty());
  for (const DecidedCase& c : cases) {
    CommandResult r = RunCommand({Worker(), "-m", GoldenModel(), "--head-type", "q8", "--prompt", c.prompt, "-n",
                                  std::to_string(c.tokens), "--temperature", "0", "--ignore-eos"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.text + "\n")) << c.name;
  }
  CommandResult bad = RunCommand({Worker(), "-m", GoldenModel(), "--head-type", "q4", "--prompt", "x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.output, HasSubstr("head_type (--head-type) must be f16 or q8, got \"q4\""));
}

// The 8-bit KV cache (--kv-cache-type q8) likewise agrees with the reference
// where it was clearly decided.
TEST(WorkerCliTest, Q8KvCacheFollowsTheReferenceWhereItIsDecided) {
  ASSERT_OK_AND_ASSIGN(std::vector<DecidedCase> cases, DecidedGoldenCases(0.5));
  ASSERT_FALSE(cases.empty());
  for (const DecidedCase& c : cases) {
    CommandResult r = RunCommand({Worker(), "-m", GoldenModel(), "--kv-cache-type", "q8", "--prompt", c.prompt, "-n",
                                  std::to_string(c.tokens), "--temperature", "0", "--ignore-eos"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.text + "\n")) << c.name;
  }
  CommandResult bad = RunCommand({Worker(), "-m", GoldenModel(), "--kv-cache-type", "fp8", "--prompt", "x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.output, HasSubstr("kv_cache_type (--kv-cache-type) must be f16 or q8, got \"fp8\""));
}

TEST(WorkerCliTest, StopStringIsNeverPrinted) {
  CommandResult free = RunCommand({Worker(), "-m", GoldenModel(), "--prompt", "The", "-n", "12", "--temperature",
                                   "0", "--ignore-eos"});
  ASSERT_EQ(free.exit_code, 0) << free.output;
  const std::string completion = free.output.substr(0, free.output.find('\n'));
  ASSERT_GE(completion.size(), 4u);
  // A stop string whose first occurrence is not at the start.
  size_t at = 1;
  while (at + 2 <= completion.size() && completion.find(completion.substr(at, 2)) != at) ++at;
  ASSERT_LE(at + 2, completion.size()) << "no usable stop string in '" << completion << "'";
  const std::string stop = completion.substr(at, 2);
  CommandResult r = RunCommand({Worker(), "-m", GoldenModel(), "--prompt", "The", "-n", "12", "--temperature", "0",
                                "--ignore-eos", "--stop", stop});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.substr(0, r.output.find('\n')), completion.substr(0, at));
  EXPECT_THAT(r.output, HasSubstr("finish: stop (string"));
}

TEST(WorkerCliTest, BenchmarkPrintsOneJsonObject) {
  CommandResult r = RunCommand({Worker(), "-m", GoldenModel(), "--benchmark", "--json", "--prefill-tokens", "16,32",
                                "--decode-tokens", "8", "--repetitions", "1", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string line = r.output.substr(r.output.find('{'));
  const nlohmann::json j = nlohmann::json::parse(line.substr(0, line.find('\n')));
  EXPECT_EQ(j["threads"], 2);
  EXPECT_GT(j["load_seconds"].get<double>(), 0);
  ASSERT_EQ(j["prefill"].size(), 2u);
  EXPECT_EQ(j["prefill"][1]["tokens"], 32);
  EXPECT_GT(j["prefill"][0]["tok_per_s"].get<double>(), 0);
  EXPECT_GT(j["decode"]["tok_per_s"].get<double>(), 0);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  // The f16 KV cache's contexts, and the q8 cache's timed beside them.
  EXPECT_EQ(j["kv_cache_type"], "f16");
  ASSERT_EQ(j["decode_context"].size(), 2u);
  ASSERT_EQ(j["decode_context_q8_kv"].size(), 2u);
  EXPECT_EQ(j["decode_context_q8_kv"][1]["context"], j["decode_context"][1]["context"]);
  EXPECT_GT(j["long_context_ratio_q8_kv"].get<double>(), 0);
  EXPECT_GT(j["q8_kv_speedup_at_longest_context"].get<double>(), 0);

  r = RunCommand({Worker(), "-m", GoldenModel(), "--benchmark", "--json", "--prefill-tokens", "16", "--decode-tokens",
                  "8", "--repetitions", "1", "--kv-cache-type", "q8"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string q8_line = r.output.substr(r.output.find('{'));
  const nlohmann::json q8 = nlohmann::json::parse(q8_line.substr(0, q8_line.find('\n')));
  EXPECT_EQ(q8["kv_cache_type"], "q8");
  EXPECT_EQ(q8["decode_context"].size(), 2u);
  EXPECT_FALSE(q8.contains("decode_context_q8_kv"));
  EXPECT_LT(q8["kv_pool_bytes"].get<int64_t>(), j["kv_pool_bytes"].get<int64_t>());
}

}  // namespace
}  // namespace wf
