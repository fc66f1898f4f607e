#include "worker/service/generate_job.h"

#include <cmath>
#include <memory>
#include <string>

#include "common/gguf/gguf_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_paths.h"
#include "common/tokenizer/gguf_vocab.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::service {
namespace {

namespace v1 = wrinklefree::v1;
using ::testing::HasSubstr;
using wf::testing::StatusIs;

class GenerateJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto file = gguf::GgufFile::Open(wf::testing::GoldenDir() + "/bitnet-synth-h256-l4.gguf");
    ASSERT_TRUE(file.ok()) << file.status();
    auto vocab = tokenizer::VocabFromGgufFile(**file);
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    auto tok = tokenizer::Tokenizer::Create(*std::move(vocab));
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = tok->release();
  }
  static void TearDownTestSuite() { delete tok_; }

  PromptTools Tools() const { return {.tokenizer = tok_, .chat_format = tokenizer::ChatFormat::kBitNet}; }
  JobLimits Limits() const {
    return {.max_context = 64, .default_max_tokens = 16, .vocab_size = tok_->vocab_size()};
  }
  static v1::GenerateRequest WithIds(std::initializer_list<int32_t> ids) {
    v1::GenerateRequest r;
    r.mutable_token_ids();  // set even when empty
    for (int32_t id : ids) r.mutable_token_ids()->add_ids(id);
    return r;
  }

  static tokenizer::Tokenizer* tok_;
};
tokenizer::Tokenizer* GenerateJobTest::tok_ = nullptr;

TEST_F(GenerateJobTest, TokenIdsPassThroughWithDefaults) {
  ASSERT_OK_AND_ASSIGN(auto job, BuildGenerateJob(WithIds({1, 2, 3}), Tools(), Limits()));
  EXPECT_EQ(job->prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(job->stop.max_tokens, 16);
  EXPECT_EQ(job->sampling.temperature, 1.0f);
  EXPECT_TRUE(job->skip_special_tokens);
  EXPECT_TRUE(job->request_id.empty());
}

TEST_F(GenerateJobTest, TextAndChatAreTokenized) {
  v1::GenerateRequest r;
  r.set_text("Hello world");
  ASSERT_OK_AND_ASSIGN(auto job, BuildGenerateJob(r, Tools(), Limits()));
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> expected, tok_->Encode("Hello world", {.add_bos = tok_->add_bos()}));
  EXPECT_EQ(job->prompt, expected);

  v1::GenerateRequest c;
  auto* m = c.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("Hi");
  ASSERT_OK_AND_ASSIGN(auto chat_job, BuildGenerateJob(c, Tools(), Limits()));
  EXPECT_GT(chat_job->prompt.size(), 3u);
}

TEST_F(GenerateJobTest, DefaultMaxTokensShrinksToTheRoomLeft) {
  std::vector<int32_t> ids(60, 5);
  v1::GenerateRequest r;
  r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  ASSERT_OK_AND_ASSIGN(auto job, BuildGenerateJob(r, Tools(), Limits()));
  EXPECT_EQ(job->stop.max_tokens, 4);
}

TEST_F(GenerateJobTest, ClearErrors) {
  struct Case {
    const char* name;
    v1::GenerateRequest request;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({"no prompt", v1::GenerateRequest(), "set one of token_ids, text or chat"});
  cases.push_back({"empty ids", WithIds({}), "the prompt is empty"});
  cases.push_back({"id out of range", WithIds({1, 999999}), "token_ids.ids[1] = 999999 is outside"});
  cases.push_back({"negative id", WithIds({-1}), "token_ids.ids[0] = -1"});
  {
    v1::GenerateRequest r;
    std::vector<int32_t> ids(64, 7);
    r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
    cases.push_back({"prompt too long", r, "prompt has 64 tokens; the context limit is 64"});
  }
  {
    auto r = WithIds({1, 2});
    r.mutable_stop()->set_max_tokens(63);
    cases.push_back({"over context", r, "prompt (2 tokens) + max_tokens (63) = 65 exceeds the context limit of 64"});
  }
  {
    auto r = WithIds({1});
    r.mutable_stop()->set_max_tokens(0);
    cases.push_back({"zero max tokens", r, "stop.max_tokens must be >= 1, got 0"});
  }
  {
    auto r = WithIds({1});
    r.mutable_sampling()->set_temperature(-1);
    cases.push_back({"temperature", r, "sampling: "});
  }
  {
    auto r = WithIds({1});
    r.mutable_sampling()->set_top_p(0);
    cases.push_back({"top_p", r, "top_p"});
  }
  {
    auto r = WithIds({1});
    (*r.mutable_sampling()->mutable_logit_bias())[1000000] = 1;
    cases.push_back({"logit bias id", r, "sampling: "});
  }
  {
    auto r = WithIds({1});
    r.mutable_sampling()->set_repetition_penalty(1e-40f);  // overflows a logit
    cases.push_back({"tiny repetition penalty", r, "sampling.repetition_penalty must be in [1e-06, 1e+06]"});
  }
  {
    auto r = WithIds({1});
    r.mutable_sampling()->set_repetition_penalty(1e30f);
    cases.push_back({"huge repetition penalty", r, "got 1e+30"});
  }
  {
    auto r = WithIds({1});
    for (int32_t id = 0; id < tok_->vocab_size(); ++id) {
      (*r.mutable_sampling()->mutable_logit_bias())[id] = id % 2 == 0 ? -100.0f : -INFINITY;
    }
    cases.push_back({"every token banned", r, "sampling.logit_bias bans every token of the vocabulary"});
  }
  {
    auto r = WithIds({1});
    r.set_top_logprobs(21);
    cases.push_back({"top_logprobs", r, "top_logprobs must be in [0, 20], got 21"});
  }
  {
    auto r = WithIds({1});
    r.mutable_stop()->add_stop("");
    cases.push_back({"empty stop", r, "stop: "});
  }
  {
    auto r = WithIds({1});
    r.mutable_stop()->add_stop_token_ids(-3);
    cases.push_back({"stop token", r, "stop: "});
  }
  {
    auto r = WithIds({1});
    r.set_request_id("has space");
    cases.push_back({"request id", r, "request_id must be printable ASCII"});
  }
  {
    auto r = WithIds({1});
    r.set_request_id(std::string(200, 'a'));
    cases.push_back({"long request id", r, "request_id must be 1..128 characters"});
  }
  {
    v1::GenerateRequest r;
    auto* m = r.mutable_chat()->add_messages();
    m->set_role("robot");
    cases.push_back({"chat role", r, "chat.messages[0].role must be system, user or assistant"});
  }
  {
    v1::GenerateRequest r;
    r.mutable_chat();
    cases.push_back({"empty chat", r, "chat.messages is empty"});
  }
  for (const Case& c : cases) {
    auto job = BuildGenerateJob(c.request, Tools(), Limits());
    EXPECT_THAT(job.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message))) << c.name;
  }
}

TEST_F(GenerateJobTest, AllButOneTokenBannedIsAccepted) {
  auto r = WithIds({1});
  for (int32_t id = 1; id < tok_->vocab_size(); ++id) (*r.mutable_sampling()->mutable_logit_bias())[id] = -100.0f;
  r.mutable_sampling()->set_repetition_penalty(1e-6f);
  EXPECT_THAT(BuildGenerateJob(r, Tools(), Limits()).status(), wf::testing::IsOk());
}

TEST_F(GenerateJobTest, ChatWithoutAKnownFormatIsRefused) {
  v1::GenerateRequest r;
  auto* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  PromptTools tools = Tools();
  tools.chat_format.reset();
  EXPECT_THAT(BuildGenerateJob(r, tools, Limits()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no known chat format")));
}

TEST_F(GenerateJobTest, SamplingAndStopFieldsAreCarried) {
  auto r = WithIds({1, 2});
  r.set_request_id("req-1");
  auto* s = r.mutable_sampling();
  s->set_temperature(0.5f);
  s->set_top_k(40);
  s->set_top_p(0.9f);
  s->set_min_p(0.05f);
  s->set_repetition_penalty(1.1f);
  s->set_presence_penalty(0.5f);
  s->set_frequency_penalty(-0.5f);
  s->set_penalty_last_n(-1);
  (*s->mutable_logit_bias())[7] = -100;
  s->set_seed(42);
  r.mutable_stop()->set_max_tokens(5);
  r.mutable_stop()->add_stop("END");
  r.mutable_stop()->add_stop_token_ids(9);
  r.mutable_stop()->set_ignore_eos(true);
  r.set_top_logprobs(3);
  r.set_skip_special_tokens(false);
  ASSERT_OK_AND_ASSIGN(auto job, BuildGenerateJob(r, Tools(), Limits()));
  EXPECT_EQ(job->request_id, "req-1");
  EXPECT_EQ(job->sampling.temperature, 0.5f);
  EXPECT_EQ(job->sampling.top_k, 40);
  EXPECT_EQ(job->sampling.penalty_last_n, -1);
  EXPECT_EQ(job->sampling.logit_bias.at(7), -100.0f);
  EXPECT_EQ(job->sampling.seed, 42u);
  EXPECT_TRUE(job->sampling.logprobs);  // implied by top_logprobs
  EXPECT_EQ(job->sampling.top_logprobs, 3);
  EXPECT_EQ(job->stop.max_tokens, 5);
  EXPECT_EQ(job->stop.stop_strings, std::vector<std::string>{"END"});
  EXPECT_EQ(job->stop.stop_token_ids, std::vector<int32_t>{9});
  EXPECT_TRUE(job->stop.ignore_eos);
  EXPECT_FALSE(job->skip_special_tokens);
}

}  // namespace
}  // namespace wf::service
