#include "router/openai/openai_response.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "router/openai/openai_api.h"
#include "router/openai/openai_request.h"

namespace wf::router::openai {
namespace {

using Json = nlohmann::json;
using wrinklefree::v1::FINISH_REASON_ABORT;
using wrinklefree::v1::FINISH_REASON_LENGTH;
using wrinklefree::v1::FINISH_REASON_STOP;
using wrinklefree::v1::FINISH_REASON_UNSPECIFIED;

// Parses one SSE event "data: <json>\n\n", checking the framing.
Json ParseEvent(const std::string& event) {
  EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
  EXPECT_GE(event.size(), 8u);
  EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
  EXPECT_EQ(event.find('\n'), event.size() - 2) << "JSON must be one line";
  return Json::parse(event.substr(6, event.size() - 8));
}

ResponseContext Ctx(bool include_usage = false) {
  ResponseContext ctx;
  ctx.id = "chatcmpl-abc";
  ctx.created = 1700000000;
  ctx.model = "bitnet-2b";
  ctx.include_usage = include_usage;
  return ctx;
}

void AddToken(GeneratedTokens* tokens, int id, const std::string& bytes,
              double logprob,
              std::vector<std::pair<std::string, double>> top = {}) {
  wrinklefree::v1::GeneratedToken* t = tokens->Add();
  t->set_token_id(id);
  t->set_token_bytes(bytes);
  t->set_logprob(logprob);
  int alt_id = 1000;
  for (const auto& [b, lp] : top) {
    wrinklefree::v1::TokenLogprob* a = t->add_top_logprobs();
    a->set_token_id(alt_id++);
    a->set_token_bytes(b);
    a->set_logprob(lp);
  }
}

void ExpectUsage(const Json& u, int prompt, int completion, int cached) {
  ASSERT_TRUE(u.is_object());
  EXPECT_EQ(u.at("prompt_tokens"), prompt);
  EXPECT_EQ(u.at("completion_tokens"), completion);
  EXPECT_EQ(u.at("total_tokens"), prompt + completion);
  EXPECT_EQ(u.at("prompt_tokens_details").at("cached_tokens"), cached);
}

TEST(ChatCompletionBodyTest, FieldByField) {
  std::vector<ChoiceResult> choices(3);
  choices[0].index = 0;
  choices[0].text = "Hello \"world\"\n";
  choices[0].finish_reason = FINISH_REASON_STOP;
  choices[1].index = 1;
  choices[1].text = "Hi";
  choices[1].finish_reason = FINISH_REASON_LENGTH;
  choices[2].index = 2;
  choices[2].finish_reason = FINISH_REASON_ABORT;
  ResponseContext ctx = Ctx();
  ctx.system_fingerprint = "wf-0.1";
  Json j = Json::parse(
      ChatCompletionBody(ctx, choices, UsageCounts{12, 7, 8}, false));
  EXPECT_EQ(j.at("id"), "chatcmpl-abc");
  EXPECT_EQ(j.at("object"), "chat.completion");
  EXPECT_EQ(j.at("created"), 1700000000);
  EXPECT_EQ(j.at("model"), "bitnet-2b");
  EXPECT_EQ(j.at("system_fingerprint"), "wf-0.1");
  ASSERT_EQ(j.at("choices").size(), 3u);
  const Json& c0 = j.at("choices")[0];
  EXPECT_EQ(c0.at("index"), 0);
  EXPECT_EQ(c0.at("message").at("role"), "assistant");
  EXPECT_EQ(c0.at("message").at("content"), "Hello \"world\"\n");
  EXPECT_TRUE(c0.at("message").at("refusal").is_null());
  EXPECT_TRUE(c0.at("logprobs").is_null());
  EXPECT_EQ(c0.at("finish_reason"), "stop");
  EXPECT_EQ(j.at("choices")[1].at("finish_reason"), "length");
  EXPECT_EQ(j.at("choices")[1].at("index"), 1);
  EXPECT_TRUE(j.at("choices")[2].at("finish_reason").is_null());
  ExpectUsage(j.at("usage"), 12, 7, 8);
}

TEST(ChatCompletionBodyTest, NoFingerprintIsNull) {
  Json j = Json::parse(ChatCompletionBody(Ctx(), {}, UsageCounts{}, false));
  EXPECT_TRUE(j.at("system_fingerprint").is_null());
  EXPECT_TRUE(j.at("choices").is_array());
  EXPECT_TRUE(j.at("choices").empty());
}

TEST(ChatCompletionBodyTest, Logprobs) {
  ChoiceResult c;
  c.text = "Hi\xe4\xb8\x96";
  c.finish_reason = FINISH_REASON_STOP;
  AddToken(&c.tokens, 13347, "Hi", -0.25, {{"Hi", -0.25}, {"Hello", -1.5}});
  AddToken(&c.tokens, 100, "\xe4", -std::numeric_limits<double>::infinity());
  AddToken(&c.tokens, 101, "\xb8\x96", -0.5);
  Json j = Json::parse(ChatCompletionBody(Ctx(), {c}, UsageCounts{1, 3, 0},
                                          /*logprobs=*/true));
  const Json& lp = j.at("choices")[0].at("logprobs");
  EXPECT_TRUE(lp.at("refusal").is_null());
  const Json& content = lp.at("content");
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0].at("token"), "Hi");
  EXPECT_DOUBLE_EQ(content[0].at("logprob").get<double>(), -0.25);
  EXPECT_EQ(content[0].at("bytes"), Json::array({72, 105}));
  ASSERT_EQ(content[0].at("top_logprobs").size(), 2u);
  EXPECT_EQ(content[0].at("top_logprobs")[1].at("token"), "Hello");
  EXPECT_DOUBLE_EQ(content[0].at("top_logprobs")[1].at("logprob").get<double>(),
                   -1.5);
  EXPECT_EQ(content[0].at("top_logprobs")[1].at("bytes").size(), 5u);
  EXPECT_EQ(content[1].at("token"), "bytes:\\xe4");
  EXPECT_DOUBLE_EQ(content[1].at("logprob").get<double>(), -9999.0);
  EXPECT_EQ(content[1].at("bytes"), Json::array({0xe4}));
  EXPECT_TRUE(content[1].at("top_logprobs").is_array());
  EXPECT_EQ(content[2].at("token"), "bytes:\\xb8\\x96");
}

TEST(ChatStreamTest, FullSequence) {
  ResponseContext ctx = Ctx(/*include_usage=*/true);
  Json role = ParseEvent(ChatRoleChunkEvent(ctx, 1));
  EXPECT_EQ(role.at("id"), "chatcmpl-abc");
  EXPECT_EQ(role.at("object"), "chat.completion.chunk");
  EXPECT_EQ(role.at("created"), 1700000000);
  EXPECT_EQ(role.at("model"), "bitnet-2b");
  EXPECT_TRUE(role.at("system_fingerprint").is_null());
  EXPECT_TRUE(role.at("usage").is_null());
  ASSERT_EQ(role.at("choices").size(), 1u);
  EXPECT_EQ(role.at("choices")[0].at("index"), 1);
  EXPECT_EQ(role.at("choices")[0].at("delta"),
            Json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(role.at("choices")[0].at("finish_reason").is_null());
  EXPECT_TRUE(role.at("choices")[0].at("logprobs").is_null());

  GeneratedTokens tokens;
  AddToken(&tokens, 5, "He", -0.1, {{"He", -0.1}});
  Json delta = ParseEvent(ChatContentChunkEvent(ctx, 1, "He", &tokens));
  EXPECT_EQ(delta.at("choices")[0].at("delta"), Json({{"content", "He"}}));
  EXPECT_EQ(delta.at("choices")[0].at("logprobs").at("content")[0].at("token"),
            "He");
  EXPECT_TRUE(delta.at("choices")[0].at("finish_reason").is_null());

  Json plain = ParseEvent(ChatContentChunkEvent(ctx, 1, "llo", nullptr));
  EXPECT_TRUE(plain.at("choices")[0].at("logprobs").is_null());

  Json fin = ParseEvent(ChatFinishChunkEvent(ctx, 1, FINISH_REASON_LENGTH));
  EXPECT_EQ(fin.at("choices")[0].at("delta"), Json::object());
  EXPECT_EQ(fin.at("choices")[0].at("finish_reason"), "length");
  EXPECT_TRUE(fin.at("usage").is_null());

  Json usage = ParseEvent(ChatUsageChunkEvent(ctx, UsageCounts{20, 3, 16}));
  EXPECT_EQ(usage.at("object"), "chat.completion.chunk");
  EXPECT_EQ(usage.at("choices"), Json::array());
  ExpectUsage(usage.at("usage"), 20, 3, 16);
}

TEST(ChatStreamTest, NoUsageKeyWithoutIncludeUsage) {
  Json j = ParseEvent(ChatContentChunkEvent(Ctx(false), 0, "x", nullptr));
  EXPECT_FALSE(j.contains("usage"));
  Json f = ParseEvent(ChatFinishChunkEvent(Ctx(false), 0, FINISH_REASON_STOP));
  EXPECT_EQ(f.at("choices")[0].at("finish_reason"), "stop");
}

TEST(ChatStreamTest, InvalidUtf8TextIsReplacedNotThrown) {
  Json j = ParseEvent(
      ChatContentChunkEvent(Ctx(), 0, std::string("a\xff") + "b", nullptr));
  EXPECT_EQ(j.at("choices")[0].at("delta").at("content"), "a\xef\xbf\xbd" "b");
}

TEST(CompletionBodyTest, FieldByFieldWithLogprobs) {
  ChoiceResult c;
  c.index = 0;
  c.text = "é!";
  c.finish_reason = FINISH_REASON_STOP;
  AddToken(&c.tokens, 1, "\xc3\xa9", -0.5, {{"\xc3\xa9", -0.5}, {"e", -2.0}});
  AddToken(&c.tokens, 2, "!", -1.0, {{"!", -1.0}, {"?", -3.0}});
  ResponseContext ctx = Ctx();
  ctx.id = "cmpl-1";
  Json j = Json::parse(CompletionBody(ctx, {c}, UsageCounts{4, 2, 0}, true));
  EXPECT_EQ(j.at("id"), "cmpl-1");
  EXPECT_EQ(j.at("object"), "text_completion");
  EXPECT_EQ(j.at("created"), 1700000000);
  EXPECT_EQ(j.at("model"), "bitnet-2b");
  const Json& ch = j.at("choices")[0];
  EXPECT_EQ(ch.at("index"), 0);
  EXPECT_EQ(ch.at("text"), "é!");
  EXPECT_EQ(ch.at("finish_reason"), "stop");
  const Json& lp = ch.at("logprobs");
  EXPECT_EQ(lp.at("tokens"), Json::array({"é", "!"}));
  EXPECT_EQ(lp.at("token_logprobs"), Json::array({-0.5, -1.0}));
  ASSERT_EQ(lp.at("top_logprobs").size(), 2u);
  EXPECT_DOUBLE_EQ(lp.at("top_logprobs")[0].at("e").get<double>(), -2.0);
  EXPECT_DOUBLE_EQ(lp.at("top_logprobs")[1].at("?").get<double>(), -3.0);
  EXPECT_EQ(lp.at("text_offset"), Json::array({0, 1}));
  ExpectUsage(j.at("usage"), 4, 2, 0);
}

TEST(CompletionBodyTest, NoLogprobsIsNull) {
  ChoiceResult c;
  c.text = "x";
  c.finish_reason = FINISH_REASON_LENGTH;
  Json j = Json::parse(CompletionBody(Ctx(), {c}, UsageCounts{1, 1, 0}, false));
  EXPECT_TRUE(j.at("choices")[0].at("logprobs").is_null());
  EXPECT_EQ(j.at("choices")[0].at("finish_reason"), "length");
}

TEST(CompletionStreamTest, ChunksCarryRunningTextOffset) {
  ResponseContext ctx = Ctx(/*include_usage=*/true);
  int64_t offset = 0;
  GeneratedTokens a;
  AddToken(&a, 1, "ab", -0.1);
  AddToken(&a, 2, "\xe4\xb8\x96", -0.2);
  Json first = ParseEvent(CompletionChunkEvent(ctx, 2, "ab\xe4\xb8\x96",
                                               FINISH_REASON_UNSPECIFIED, &a,
                                               &offset));
  EXPECT_EQ(first.at("object"), "text_completion");
  EXPECT_TRUE(first.at("usage").is_null());
  const Json& c = first.at("choices")[0];
  EXPECT_EQ(c.at("index"), 2);
  EXPECT_EQ(c.at("text"), "ab世");
  EXPECT_TRUE(c.at("finish_reason").is_null());
  EXPECT_EQ(c.at("logprobs").at("text_offset"), Json::array({0, 2}));
  EXPECT_EQ(offset, 3);

  GeneratedTokens b;
  AddToken(&b, 3, "c", -0.3);
  Json second = ParseEvent(
      CompletionChunkEvent(ctx, 2, "c", FINISH_REASON_STOP, &b, &offset));
  EXPECT_EQ(second.at("choices")[0].at("logprobs").at("text_offset"),
            Json::array({3}));
  EXPECT_EQ(second.at("choices")[0].at("finish_reason"), "stop");
  EXPECT_EQ(offset, 4);

  Json usage = ParseEvent(CompletionUsageChunkEvent(ctx, UsageCounts{9, 3, 0}));
  EXPECT_EQ(usage.at("object"), "text_completion");
  EXPECT_EQ(usage.at("choices"), Json::array());
  ExpectUsage(usage.at("usage"), 9, 3, 0);
}

ParsedGenerateRequest LlamaRequest(const std::string& body) {
  absl::StatusOr<ParsedGenerateRequest> r =
      ParseLlamaCompletionRequest(body, RequestLimits{});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ParsedGenerateRequest{};
}

TEST(LlamaCompletionTest, FinalBodyFieldByField) {
  ParsedGenerateRequest req = LlamaRequest(
      R"({"prompt":"Hello","n_predict":10,"stop":["\n\n"],"seed":5,)"
      R"("n_probs":1,"return_tokens":true,"logit_bias":[[7,false]]})");
  ChoiceResult c;
  c.text = "World\nagain";
  c.finish_reason = FINISH_REASON_STOP;
  c.matched_stop = "\n\n";
  AddToken(&c.tokens, 10, "World", -0.5, {{"World", -0.5}});
  AddToken(&c.tokens, 11, "\nagain", -0.25, {{"\nagain", -0.25}});
  wrinklefree::v1::Timing timing;
  timing.set_queue_seconds(0.5);
  timing.set_time_to_first_token_seconds(1.5);  // 1000 ms of prompt
  timing.set_total_seconds(2.0);                // 500 ms of generation
  Json j = Json::parse(LlamaCompletionBody(req, "bitnet-2b", "Hello", c,
                                           UsageCounts{6, 2, 2}, timing,
                                           /*streamed=*/false));
  EXPECT_EQ(j.at("index"), 0);
  EXPECT_EQ(j.at("content"), "World\nagain");
  EXPECT_EQ(j.at("tokens"), Json::array({10, 11}));
  EXPECT_EQ(j.at("id_slot"), -1);
  EXPECT_EQ(j.at("stop"), true);
  EXPECT_EQ(j.at("model"), "bitnet-2b");
  EXPECT_EQ(j.at("tokens_predicted"), 2);
  EXPECT_EQ(j.at("tokens_evaluated"), 6);
  EXPECT_EQ(j.at("prompt"), "Hello");
  EXPECT_EQ(j.at("has_new_line"), true);
  EXPECT_EQ(j.at("truncated"), false);
  EXPECT_EQ(j.at("stop_type"), "word");
  EXPECT_EQ(j.at("stopping_word"), "\n\n");
  EXPECT_EQ(j.at("tokens_cached"), 2);
  const Json& gs = j.at("generation_settings");
  EXPECT_EQ(gs.at("n_predict"), 10);
  EXPECT_EQ(gs.at("seed"), 5);
  EXPECT_NEAR(gs.at("temperature").get<double>(), 0.8, 1e-6);
  EXPECT_EQ(gs.at("top_k"), 40);
  EXPECT_EQ(gs.at("stop"), Json::array({"\n\n"}));
  EXPECT_EQ(gs.at("n_probs"), 1);
  EXPECT_EQ(gs.at("logit_bias")[0].at("token"), 7);
  EXPECT_DOUBLE_EQ(gs.at("logit_bias")[0].at("bias").get<double>(), -100.0);
  const Json& t = j.at("timings");
  EXPECT_EQ(t.at("cache_n"), 2);
  EXPECT_EQ(t.at("prompt_n"), 4);
  EXPECT_DOUBLE_EQ(t.at("prompt_ms").get<double>(), 1000.0);
  EXPECT_DOUBLE_EQ(t.at("prompt_per_token_ms").get<double>(), 250.0);
  EXPECT_DOUBLE_EQ(t.at("prompt_per_second").get<double>(), 4.0);
  EXPECT_EQ(t.at("predicted_n"), 2);
  EXPECT_DOUBLE_EQ(t.at("predicted_ms").get<double>(), 500.0);
  EXPECT_DOUBLE_EQ(t.at("predicted_per_token_ms").get<double>(), 250.0);
  EXPECT_DOUBLE_EQ(t.at("predicted_per_second").get<double>(), 4.0);
  const Json& probs = j.at("completion_probabilities");
  ASSERT_EQ(probs.size(), 2u);
  EXPECT_EQ(probs[0].at("id"), 10);
  EXPECT_EQ(probs[0].at("token"), "World");
  EXPECT_DOUBLE_EQ(probs[0].at("logprob").get<double>(), -0.5);
  EXPECT_EQ(probs[0].at("bytes").size(), 5u);
  EXPECT_EQ(probs[0].at("top_logprobs")[0].at("id"), 1000);
  EXPECT_EQ(probs[0].at("top_logprobs")[0].at("token"), "World");
}

TEST(LlamaCompletionTest, StopTypes) {
  ParsedGenerateRequest req = LlamaRequest(R"({"prompt":"x"})");
  ChoiceResult c;
  wrinklefree::v1::Timing timing;
  auto stop_type = [&](wrinklefree::v1::FinishReason r, std::string word) {
    c.finish_reason = r;
    c.matched_stop = word;
    return Json::parse(LlamaCompletionBody(req, "m", "x", c, UsageCounts{},
                                           timing, false))
        .at("stop_type")
        .get<std::string>();
  };
  EXPECT_EQ(stop_type(FINISH_REASON_STOP, ""), "eos");
  EXPECT_EQ(stop_type(FINISH_REASON_STOP, "END"), "word");
  EXPECT_EQ(stop_type(FINISH_REASON_LENGTH, ""), "limit");
  EXPECT_EQ(stop_type(FINISH_REASON_ABORT, ""), "none");
}

TEST(LlamaCompletionTest, DefaultsWithoutLogprobsOrTokens) {
  ParsedGenerateRequest req = LlamaRequest(R"({"prompt":"x","n_predict":-1})");
  ChoiceResult c;
  c.text = "y";
  c.finish_reason = FINISH_REASON_LENGTH;
  AddToken(&c.tokens, 3, "y", -0.1);
  wrinklefree::v1::Timing timing;
  Json j = Json::parse(
      LlamaCompletionBody(req, "m", "x", c, UsageCounts{1, 1, 0}, timing, false));
  EXPECT_EQ(j.at("tokens"), Json::array());
  EXPECT_FALSE(j.contains("completion_probabilities"));
  EXPECT_EQ(j.at("generation_settings").at("n_predict"), -1);
  EXPECT_EQ(j.at("generation_settings").at("seed"), -1);
  EXPECT_DOUBLE_EQ(j.at("timings").at("prompt_per_second").get<double>(), 0.0);
}

TEST(LlamaCompletionTest, StreamChunksAndFinalEvent) {
  ParsedGenerateRequest req = LlamaRequest(
      R"({"prompt":"Hello","stream":true,"return_tokens":true,"n_probs":1})");
  GeneratedTokens tokens;
  AddToken(&tokens, 42, " wo", -0.3, {{" wo", -0.3}});
  Json chunk = ParseEvent(LlamaCompletionChunkEvent(req, " wo", tokens, 1, 2));
  EXPECT_EQ(chunk.at("index"), 0);
  EXPECT_EQ(chunk.at("content"), " wo");
  EXPECT_EQ(chunk.at("tokens"), Json::array({42}));
  EXPECT_EQ(chunk.at("stop"), false);
  EXPECT_EQ(chunk.at("id_slot"), -1);
  EXPECT_EQ(chunk.at("tokens_predicted"), 1);
  EXPECT_EQ(chunk.at("tokens_evaluated"), 2);
  EXPECT_EQ(chunk.at("completion_probabilities")[0].at("id"), 42);

  ChoiceResult c;
  c.text = " wo";
  c.finish_reason = FINISH_REASON_STOP;
  c.tokens = tokens;
  wrinklefree::v1::Timing timing;
  Json fin = ParseEvent(LlamaCompletionFinalEvent(req, "m", "Hello", c,
                                                  UsageCounts{2, 1, 0}, timing));
  EXPECT_EQ(fin.at("stop"), true);
  EXPECT_EQ(fin.at("content"), "");
  EXPECT_EQ(fin.at("tokens"), Json::array());
  EXPECT_FALSE(fin.contains("completion_probabilities"));
  EXPECT_EQ(fin.at("stop_type"), "eos");
  EXPECT_EQ(fin.at("tokens_predicted"), 1);
}

TEST(TokenizeResponseTest, IdsAndPieces) {
  Json plain = Json::parse(TokenizeResponseBody({9906, 1917}, nullptr));
  EXPECT_EQ(plain, Json({{"tokens", {9906, 1917}}}));

  std::vector<std::string> pieces = {"Hello", "\xe4"};
  Json with = Json::parse(TokenizeResponseBody({9906, 100}, &pieces));
  ASSERT_EQ(with.at("tokens").size(), 2u);
  EXPECT_EQ(with.at("tokens")[0].at("id"), 9906);
  EXPECT_EQ(with.at("tokens")[0].at("piece"), "Hello");
  EXPECT_EQ(with.at("tokens")[1].at("piece"), Json::array({0xe4}));
}

TEST(DetokenizeResponseTest, Content) {
  EXPECT_EQ(Json::parse(DetokenizeResponseBody("Hello world")),
            Json({{"content", "Hello world"}}));
}

TEST(ModelsListTest, Shape) {
  Json j = Json::parse(ModelsListBody({{"bitnet-2b", 1700000000, "wrinklefree"},
                                       {"other", 5, "me"}}));
  EXPECT_EQ(j.at("object"), "list");
  ASSERT_EQ(j.at("data").size(), 2u);
  EXPECT_EQ(j.at("data")[0],
            Json({{"id", "bitnet-2b"},
                  {"object", "model"},
                  {"created", 1700000000},
                  {"owned_by", "wrinklefree"}}));
  EXPECT_EQ(j.at("data")[1].at("owned_by"), "me");
  EXPECT_EQ(Json::parse(ModelsListBody({})).at("data"), Json::array());
}

TEST(AggregateUsageTest, PromptOnceCompletionsSummed) {
  std::vector<wrinklefree::v1::Usage> per(3);
  for (int i = 0; i < 3; ++i) {
    per[i].set_prompt_tokens(10);
    per[i].set_completion_tokens(i + 1);
    per[i].set_cached_prompt_tokens(i == 0 ? 0 : 8);
  }
  UsageCounts u = AggregateUsage(per);
  EXPECT_EQ(u.prompt_tokens, 10);
  EXPECT_EQ(u.completion_tokens, 6);
  EXPECT_EQ(u.cached_tokens, 0);
  UsageCounts none = AggregateUsage({});
  EXPECT_EQ(none.prompt_tokens, 0);
  EXPECT_EQ(none.completion_tokens, 0);
}

}  // namespace
}  // namespace wf::router::openai
