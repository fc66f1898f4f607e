#include "router/openai/openai_request.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/openai/openai_api.h"

namespace wf::router::openai {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

enum class Api { kChat, kCompletions, kLlama, kTokenize, kDetokenize };

absl::Status Parse(Api api, const std::string& body,
                   const RequestLimits& limits = RequestLimits{}) {
  switch (api) {
    case Api::kChat: return ParseChatCompletionRequest(body, limits).status();
    case Api::kCompletions: return ParseCompletionRequest(body, limits).status();
    case Api::kLlama: return ParseLlamaCompletionRequest(body, limits).status();
    case Api::kTokenize: return ParseTokenizeRequest(body, limits).status();
    case Api::kDetokenize: return ParseDetokenizeRequest(body, limits).status();
  }
  return absl::InternalError("unreachable");
}

// A valid chat body with `extra` fields appended (extra starts with ",").
std::string Chat(const std::string& extra) {
  return R"({"model":"m","messages":[{"role":"user","content":"hi"}])" + extra +
         "}";
}
std::string Cmpl(const std::string& extra) {
  return R"({"model":"m","prompt":"hi")" + extra + "}";
}
std::string Llama(const std::string& extra) {
  return R"({"prompt":"hi")" + extra + "}";
}

struct BadCase {
  const char* name;
  Api api;
  std::string body;
  int status;
  const char* param;  // "" = null
  const char* message_substring;
};

std::vector<BadCase> BadCases() {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  std::string deep_in_field = Chat(R"(,"metadata":)" + std::string(70, '{'));
  return {
      // --- malformed bodies
      {"EmptyBody", Api::kChat, "", 400, "", "request body is empty"},
      {"WhitespaceBody", Api::kChat, "  \n ", 400, "", "request body is empty"},
      {"NotJson", Api::kChat, "hello", 400, "", "not valid JSON"},
      {"TruncatedJson", Api::kChat, R"({"model":"m")", 400, "",
       "not valid JSON"},
      {"TrailingGarbage", Api::kChat, Chat("") + "x", 400, "",
       "not valid JSON"},
      {"TopLevelArray", Api::kChat, "[1,2]", 400, "", "must be a JSON object"},
      {"TopLevelString", Api::kCompletions, "\"hi\"", 400, "",
       "must be a JSON object, got string"},
      {"InvalidUtf8", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":")" +
           std::string("\xc3\x28") + R"("}]})",
       400, "", "invalid UTF-8"},
      {"InvalidUtf8Overlong", Api::kCompletions,
       std::string(R"({"model":"m","prompt":")") + "\xc0\xaf" + "\"}", 400, "",
       "invalid UTF-8"},
      {"LoneSurrogateEscape", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":"\ud800"}]})", 400,
       "", "not valid JSON"},
      {"RawNulByte", Api::kChat, std::string("{\"model\":\"m\"\0}", 14), 400,
       "", "NUL byte at offset 12"},
      {"NulEscapeInContent", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":"a\u0000b"}]})",
       400, "messages[0].content", "NUL"},
      {"NulEscapeInPrompt", Api::kCompletions,
       R"({"model":"m","prompt":"a\u0000"})", 400, "prompt", "NUL"},
      {"DepthBomb", Api::kChat, deep, 400, "", "deeper than the limit of 64"},
      {"DepthBombInIgnoredField", Api::kChat, deep_in_field, 400, "",
       "deeper than the limit"},
      {"BodyTooLarge", Api::kChat, Chat(R"(,"user":")" +
                                        std::string(9 << 20, 'a') + "\""),
       413, "", "the limit is 8388608 bytes"},
      // --- model
      {"MissingModel", Api::kChat,
       R"({"messages":[{"role":"user","content":"hi"}]})", 400, "model",
       "model is required"},
      {"ModelNotString", Api::kChat,
       R"({"model":5,"messages":[{"role":"user","content":"hi"}]})", 400,
       "model", "model must be a string, got number"},
      {"ModelEmpty", Api::kCompletions, R"({"model":"","prompt":"x"})", 400,
       "model", "must not be empty"},
      // --- messages
      {"MissingMessages", Api::kChat, R"({"model":"m"})", 400, "messages",
       "messages is required"},
      {"MessagesNotArray", Api::kChat, R"({"model":"m","messages":"hi"})", 400,
       "messages", "must be an array of messages, got string"},
      {"MessagesEmpty", Api::kChat, R"({"model":"m","messages":[]})", 400,
       "messages", "at least one message"},
      {"MessageNotObject", Api::kChat, R"({"model":"m","messages":["hi"]})",
       400, "messages[0]", "messages[0] must be an object, got string"},
      {"MessageMissingRole", Api::kChat,
       R"({"model":"m","messages":[{"content":"hi"}]})", 400,
       "messages[0].role", "role is required"},
      {"MessageRoleNotString", Api::kChat,
       R"({"model":"m","messages":[{"role":1,"content":"hi"}]})", 400,
       "messages[0].role", "must be a string, got number"},
      {"MessageUnknownRole", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"robot","content":"hi"}]})",
       400, "messages[1].role", "got \"robot\""},
      {"MessageToolRole", Api::kChat,
       R"({"model":"m","messages":[{"role":"tool","content":"{}","tool_call_id":"x"}]})",
       400, "messages[0].role", "'tool' is not supported"},
      {"MessageFunctionRole", Api::kChat,
       R"({"model":"m","messages":[{"role":"function","content":"x"}]})", 400,
       "messages[0].role", "tool calling"},
      {"MessageMissingContent", Api::kChat,
       R"({"model":"m","messages":[{"role":"user"}]})", 400,
       "messages[0].content", "required for role 'user'"},
      {"MessageNullContent", Api::kChat,
       R"({"model":"m","messages":[{"role":"assistant","content":null}]})", 400,
       "messages[0].content", "required"},
      {"MessageContentNumber", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":42}]})", 400,
       "messages[0].content", "a string or an array of text parts, got number"},
      {"MessageImagePart", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]}]})",
       400, "messages[0].content[1].type", "'image_url' is not supported"},
      {"MessagePartWithoutType", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":[{"text":"a"}]}]})",
       400, "messages[0].content[0].type", "type is required"},
      {"MessagePartWithoutText", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})",
       400, "messages[0].content[0].text", "text is required"},
      {"MessagePartNotObject", Api::kChat,
       R"({"model":"m","messages":[{"role":"user","content":["a"]}]})", 400,
       "messages[0].content[0]", "must be an object"},
      {"MessageToolCalls", Api::kChat,
       R"({"model":"m","messages":[{"role":"assistant","content":"","tool_calls":[{"id":"1"}]}]})",
       400, "messages[0].tool_calls", "not supported"},
      // --- unsupported features
      {"Tools", Api::kChat, Chat(R"(,"tools":[{"type":"function"}])"), 400,
       "tools", "tool calling"},
      {"ToolChoiceRequired", Api::kChat, Chat(R"(,"tool_choice":"required")"),
       400, "tool_choice", "not supported"},
      {"Functions", Api::kChat, Chat(R"(,"functions":[{"name":"f"}])"), 400,
       "functions", "not supported"},
      {"FunctionCallObject", Api::kChat,
       Chat(R"(,"function_call":{"name":"f"})"), 400, "function_call",
       "not supported"},
      {"ResponseFormatJson", Api::kChat,
       Chat(R"(,"response_format":{"type":"json_object"})"), 400,
       "response_format", "'json_object' is not supported"},
      {"ResponseFormatSchema", Api::kChat,
       Chat(R"(,"response_format":{"type":"json_schema","json_schema":{}})"),
       400, "response_format", "'json_schema' is not supported"},
      {"ResponseFormatString", Api::kChat, Chat(R"(,"response_format":"text")"),
       400, "response_format", "must be an object"},
      {"Audio", Api::kChat, Chat(R"(,"audio":{"voice":"x"})"), 400, "audio",
       "text only"},
      {"ModalitiesAudio", Api::kChat, Chat(R"(,"modalities":["text","audio"])"),
       400, "modalities", "not supported"},
      {"Prediction", Api::kChat, Chat(R"(,"prediction":{"type":"content"})"),
       400, "prediction", "not supported"},
      {"MinTokens", Api::kChat, Chat(R"(,"min_tokens":5)"), 400, "min_tokens",
       "not supported"},
      {"IncludeStopStr", Api::kCompletions,
       Cmpl(R"(,"include_stop_str_in_output":true)"), 400,
       "include_stop_str_in_output", "not supported"},
      // --- stream
      {"StreamNotBool", Api::kChat, Chat(R"(,"stream":"true")"), 400, "stream",
       "stream must be a boolean, got string"},
      {"StreamOptionsWithoutStream", Api::kChat,
       Chat(R"(,"stream_options":{"include_usage":true})"), 400,
       "stream_options", "only allowed when stream is true"},
      {"StreamOptionsNotObject", Api::kChat,
       Chat(R"(,"stream":true,"stream_options":true)"), 400, "stream_options",
       "must be an object"},
      {"IncludeUsageNotBool", Api::kChat,
       Chat(R"(,"stream":true,"stream_options":{"include_usage":1})"), 400,
       "stream_options.include_usage", "must be a boolean, got number"},
      // --- limits and sampling
      {"MaxTokensNegative", Api::kChat, Chat(R"(,"max_tokens":-5)"), 400,
       "max_tokens", "max_tokens must be >= 1, got -5"},
      {"MaxTokensZero", Api::kCompletions, Cmpl(R"(,"max_tokens":0)"), 400,
       "max_tokens", "max_tokens must be >= 1, got 0"},
      {"MaxTokensFraction", Api::kChat, Chat(R"(,"max_tokens":1.5)"), 400,
       "max_tokens", "must be an integer, got 1.5"},
      {"MaxTokensString", Api::kChat, Chat(R"(,"max_tokens":"100")"), 400,
       "max_tokens", "must be an integer, got string"},
      {"MaxTokensHuge", Api::kChat, Chat(R"(,"max_tokens":99999999999)"), 400,
       "max_tokens", "max_tokens must be <= 2147483647, got 99999999999"},
      {"MaxCompletionTokensNegative", Api::kChat,
       Chat(R"(,"max_completion_tokens":-1)"), 400, "max_completion_tokens",
       ">= 1, got -1"},
      {"NTooLarge", Api::kChat, Chat(R"(,"n":9)"), 400, "n",
       "n must be between 1 and 8, got 9"},
      {"NZero", Api::kCompletions, Cmpl(R"(,"n":0)"), 400, "n",
       "between 1 and 8, got 0"},
      {"TemperatureHigh", Api::kChat, Chat(R"(,"temperature":2.5)"), 400,
       "temperature", "temperature must be in [0, 2], got 2.5"},
      {"TemperatureNegative", Api::kCompletions, Cmpl(R"(,"temperature":-1)"),
       400, "temperature", "[0, 2]"},
      {"TemperatureString", Api::kChat, Chat(R"(,"temperature":"hot")"), 400,
       "temperature", "must be a number, got string"},
      {"TopPZero", Api::kChat, Chat(R"(,"top_p":0)"), 400, "top_p",
       "top_p must be in (0, 1], got 0"},
      {"TopPHigh", Api::kChat, Chat(R"(,"top_p":1.5)"), 400, "top_p",
       "(0, 1]"},
      {"TopKBelowMinusOne", Api::kChat, Chat(R"(,"top_k":-2)"), 400, "top_k",
       "top_k must be >= -1, got -2"},
      {"MinPHigh", Api::kChat, Chat(R"(,"min_p":1.1)"), 400, "min_p",
       "[0, 1]"},
      {"PresencePenaltyHigh", Api::kChat, Chat(R"(,"presence_penalty":3)"),
       400, "presence_penalty", "[-2, 2], got 3"},
      {"FrequencyPenaltyLow", Api::kCompletions,
       Cmpl(R"(,"frequency_penalty":-2.5)"), 400, "frequency_penalty",
       "[-2, 2]"},
      {"RepetitionPenaltyZero", Api::kChat,
       Chat(R"(,"repetition_penalty":0)"), 400, "repetition_penalty",
       "must be > 0, got 0"},
      {"SeedFloat", Api::kChat, Chat(R"(,"seed":1.5)"), 400, "seed",
       "must be an integer"},
      {"SeedString", Api::kChat, Chat(R"(,"seed":"42")"), 400, "seed",
       "must be an integer, got string"},
      {"IgnoreEosNotBool", Api::kChat, Chat(R"(,"ignore_eos":1)"), 400,
       "ignore_eos", "must be a boolean"},
      // --- stop
      {"StopNumber", Api::kChat, Chat(R"(,"stop":5)"), 400, "stop",
       "a string or an array of strings, got number"},
      {"StopArrayWithNumber", Api::kChat, Chat(R"(,"stop":["a",5])"), 400,
       "stop[1]", "stop[1] must be a string, got number"},
      {"StopTooMany", Api::kChat,
       Chat(R"(,"stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])"),
       400, "stop", "stop has 17 strings; the limit is 16"},
      {"StopEmptyString", Api::kChat, Chat(R"(,"stop":["a",""])"), 400, "stop",
       "stop[1] must not be empty"},
      {"StopTooLong", Api::kChat,
       Chat(R"(,"stop":")" + std::string(257, 'x') + "\""), 400, "stop",
       "is 257 bytes; the limit is 256 bytes"},
      {"StopTokenIdsNotArray", Api::kChat, Chat(R"(,"stop_token_ids":5)"), 400,
       "stop_token_ids", "must be an array"},
      {"StopTokenIdsNegative", Api::kChat, Chat(R"(,"stop_token_ids":[1,-2])"),
       400, "stop_token_ids[1]", ">= 0"},
      {"StopTokenIdsTooMany", Api::kChat,
       Chat(R"(,"stop_token_ids":[)"
            R"(5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,)"
            R"(5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5])"),
       400, "stop_token_ids", "has 65 token ids; the limit is 64"},
      {"SeedTwoToThe63AsFloat", Api::kChat,
       Chat(R"(,"seed":9223372036854775808.0)"), 400, "seed", "must be <= "},
      {"NumberBeyondDouble", Api::kChat, Chat(R"(,"max_tokens":1e400)"), 400,
       "", "not valid JSON: number overflow"},
      // --- logit_bias
      {"LogitBiasArray", Api::kChat, Chat(R"(,"logit_bias":[[1,2]])"), 400,
       "logit_bias", "an object mapping token ids to biases, got array"},
      {"LogitBiasBadKey", Api::kChat, Chat(R"(,"logit_bias":{"abc":1})"), 400,
       "logit_bias", "key \"abc\" is not a token id"},
      {"LogitBiasNegativeKey", Api::kChat, Chat(R"(,"logit_bias":{"-1":1})"),
       400, "logit_bias", "not a token id"},
      {"LogitBiasKeyTooLarge", Api::kChat,
       Chat(R"(,"logit_bias":{"99999999999":1})"), 400, "logit_bias",
       "not a token id"},
      {"LogitBiasOutOfRange", Api::kChat, Chat(R"(,"logit_bias":{"5":150})"),
       400, "logit_bias", "logit_bias[\"5\"] must be in [-100, 100], got 150"},
      {"LogitBiasValueString", Api::kChat, Chat(R"(,"logit_bias":{"5":"x"})"),
       400, "logit_bias", "logit_bias[\"5\"] must be a number, got string"},
      // --- logprobs
      {"ChatLogprobsNotBool", Api::kChat, Chat(R"(,"logprobs":3)"), 400,
       "logprobs", "must be a boolean, got number"},
      {"ChatTopLogprobsTooMany", Api::kChat,
       Chat(R"(,"logprobs":true,"top_logprobs":21)"), 400, "top_logprobs",
       "between 0 and 20, got 21"},
      {"ChatTopLogprobsWithoutLogprobs", Api::kChat,
       Chat(R"(,"top_logprobs":2)"), 400, "top_logprobs",
       "requires logprobs to be true"},
      {"CompletionLogprobsTooMany", Api::kCompletions,
       Cmpl(R"(,"logprobs":6)"), 400, "logprobs", "between 0 and 5, got 6"},
      {"CompletionLogprobsBool", Api::kCompletions, Cmpl(R"(,"logprobs":true)"),
       400, "logprobs", "got boolean"},
      // --- completions prompt and extras
      {"PromptMissing", Api::kCompletions, R"({"model":"m"})", 400, "prompt",
       "prompt is required"},
      {"PromptEmptyString", Api::kCompletions, R"({"model":"m","prompt":""})",
       400, "prompt", "must not be empty"},
      {"PromptEmptyArray", Api::kCompletions, R"({"model":"m","prompt":[]})",
       400, "prompt", "must not be empty"},
      {"PromptNumber", Api::kCompletions, R"({"model":"m","prompt":5})", 400,
       "prompt", "a string or an array of token ids, got number"},
      {"PromptObject", Api::kCompletions, R"({"model":"m","prompt":{}})", 400,
       "prompt", "got object"},
      {"PromptManyStrings", Api::kCompletions,
       R"({"model":"m","prompt":["a","b"]})", 400, "prompt",
       "2 prompts in one request is not supported"},
      {"PromptManyTokenLists", Api::kCompletions,
       R"({"model":"m","prompt":[[1],[2]]})", 400, "prompt",
       "send one request per prompt"},
      {"PromptMixed", Api::kCompletions, R"({"model":"m","prompt":["a",5]})",
       400, "prompt", "mixed array"},
      {"PromptNegativeTokenId", Api::kCompletions,
       R"({"model":"m","prompt":[1,-2]})", 400, "prompt[1]",
       "prompt[1] must be >= 0, got -2"},
      {"PromptTokenIdTooLarge", Api::kCompletions,
       R"({"model":"m","prompt":[[1,3000000000]]})", 400, "prompt[0][1]",
       "prompt[0][1] must be <= 2147483647, got 3000000000"},
      {"PromptNestedEmpty", Api::kCompletions, R"({"model":"m","prompt":[[]]})",
       400, "prompt", "prompt[0] must not be empty"},
      {"EchoTrue", Api::kCompletions, Cmpl(R"(,"echo":true)"), 400, "echo",
       "not supported"},
      {"SuffixNonEmpty", Api::kCompletions, Cmpl(R"(,"suffix":"end")"), 400,
       "suffix", "not supported"},
      {"BestOfBelowN", Api::kCompletions, Cmpl(R"(,"n":3,"best_of":2)"), 400,
       "best_of", "best_of must be >= n"},
      {"BestOfAboveN", Api::kCompletions, Cmpl(R"(,"best_of":3)"), 400,
       "best_of", "best_of > n is not supported"},
      // --- llama.cpp /completion
      {"LlamaNoPrompt", Api::kLlama, R"({"n_predict":5})", 400, "prompt",
       "prompt is required"},
      {"LlamaNPredictZero", Api::kLlama, Llama(R"(,"n_predict":0)"), 400,
       "n_predict", "-1 (until a stop condition"},
      {"LlamaNPredictBelowMinusOne", Api::kLlama, Llama(R"(,"n_predict":-2)"),
       400, "n_predict", "n_predict must be >= -1, got -2"},
      {"LlamaTemperatureHigh", Api::kLlama, Llama(R"(,"temperature":3)"), 400,
       "temperature", "temperature must be <= 2, got 3"},
      {"LlamaRepeatPenaltyZero", Api::kLlama, Llama(R"(,"repeat_penalty":0)"),
       400, "repeat_penalty", "must be > 0"},
      {"LlamaRepeatLastN", Api::kLlama, Llama(R"(,"repeat_last_n":-5)"), 400,
       "repeat_last_n", ">= -1, got -5"},
      {"LlamaSeedNegative", Api::kLlama, Llama(R"(,"seed":-7)"), 400, "seed",
       "seed must be -1 (random) or >= 0, got -7"},
      {"LlamaNProbs", Api::kLlama, Llama(R"(,"n_probs":50)"), 400, "n_probs",
       "between 0 and 20, got 50"},
      {"LlamaLogitBiasBadPair", Api::kLlama, Llama(R"(,"logit_bias":[[1]])"),
       400, "logit_bias", "must be a [token_id, bias] pair"},
      {"LlamaLogitBiasTokenString", Api::kLlama,
       Llama(R"(,"logit_bias":[["hello",1]])"), 400, "logit_bias",
       "token strings are not supported"},
      {"LlamaGrammar", Api::kLlama, Llama(R"(,"grammar":"root ::= \"a\"")"),
       400, "grammar", "not supported"},
      {"LlamaMirostat", Api::kLlama, Llama(R"(,"mirostat":2)"), 400,
       "mirostat", "not supported"},
      {"LlamaNAboveOne", Api::kLlama, Llama(R"(,"n":2)"), 400, "n",
       "use /v1/completions"},
      {"LlamaCachePromptNotBool", Api::kLlama, Llama(R"(,"cache_prompt":"yes")"),
       400, "cache_prompt", "must be a boolean"},
      {"LlamaStopNotString", Api::kLlama, Llama(R"(,"stop":[null])"), 400,
       "stop[0]", "must be a string, got null"},
      // --- tokenize / detokenize
      {"TokenizeNoContent", Api::kTokenize, R"({"add_special":true})", 400,
       "content", "content is required"},
      {"TokenizeContentArray", Api::kTokenize, R"({"content":[1,2]})", 400,
       "content", "must be a string, got array"},
      {"TokenizeAddSpecialString", Api::kTokenize,
       R"({"content":"a","add_special":"no"})", 400, "add_special",
       "must be a boolean"},
      {"DetokenizeNoTokens", Api::kDetokenize, R"({})", 400, "tokens",
       "tokens is required"},
      {"DetokenizeNotArray", Api::kDetokenize, R"({"tokens":"1 2"})", 400,
       "tokens", "must be an array of token ids, got string"},
      {"DetokenizeNegative", Api::kDetokenize, R"({"tokens":[1,-1]})", 400,
       "tokens[1]", "got -1"},
      {"DetokenizeFloat", Api::kDetokenize, R"({"tokens":[1.5]})", 400,
       "tokens[0]", "an integer token id, got number"},
  };
}

class BadRequestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadRequestTest, RejectedWithStatusParamAndMessage) {
  const BadCase& c = GetParam();
  absl::Status s = Parse(c.api, c.body);
  ASSERT_FALSE(s.ok()) << "accepted: " << c.body.substr(0, 200);
  ApiError e = ToApiError(s);
  EXPECT_EQ(e.http_status, c.status) << e.message;
  EXPECT_EQ(e.param, c.param) << e.message;
  EXPECT_THAT(e.message, HasSubstr(c.message_substring));
  EXPECT_EQ(e.type, c.status == 413 || c.status == 400 ? "invalid_request_error"
                                                       : e.type);
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadRequestTest, ::testing::ValuesIn(BadCases()),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      return std::string(info.param.name);
    });

TEST(BadRequestTableTest, HasAtLeastSixtyCases) {
  EXPECT_GE(BadCases().size(), 60u);
}

// ------------------------------------------------------------ good requests

TEST(ChatRequestTest, FullRequestFillsTemplate) {
  const std::string body = R"({
    "model": "bitnet-2b",
    "messages": [
      {"role": "developer", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "a"},
                                   {"type": "text", "text": "b"}], "name": "x"},
      {"role": "assistant", "content": "ok", "tool_calls": []},
      {"role": "user", "content": "again"}
    ],
    "stream": true, "stream_options": {"include_usage": true},
    "max_tokens": 10, "max_completion_tokens": 20,
    "stop": ["\n\n", "END"], "temperature": 0.5, "top_p": 0.9, "top_k": 40,
    "min_p": 0.1, "seed": 7, "presence_penalty": 0.5,
    "frequency_penalty": -0.5, "repetition_penalty": 1.1,
    "logit_bias": {"15": -100, "42": 2.5}, "logprobs": true,
    "top_logprobs": 3, "n": 2, "user": "u-1", "ignore_eos": true,
    "tools": [], "tool_choice": "none", "response_format": {"type": "text"},
    "parallel_tool_calls": false, "some_future_field": {"x": [1]},
    "stop_token_ids": [128001], "skip_special_tokens": false
  })";
  ASSERT_OK_AND_ASSIGN(ParsedGenerateRequest r,
                       ParseChatCompletionRequest(body, RequestLimits{}));
  EXPECT_EQ(r.endpoint, Endpoint::kChatCompletions);
  EXPECT_EQ(r.model, "bitnet-2b");
  EXPECT_EQ(r.prompt_kind, PromptKind::kChat);
  ASSERT_EQ(r.chat.messages_size(), 4);
  EXPECT_EQ(r.chat.messages(0).role(), "system");
  EXPECT_EQ(r.chat.messages(0).content(), "be brief");
  EXPECT_EQ(r.chat.messages(1).role(), "user");
  EXPECT_EQ(r.chat.messages(1).content(), "a\nb");
  EXPECT_EQ(r.chat.messages(2).role(), "assistant");
  EXPECT_EQ(r.chat.messages(3).content(), "again");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.max_tokens, 20);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);

  const wrinklefree::v1::GenerateRequest& g = r.request_template;
  EXPECT_EQ(g.prompt_case(), wrinklefree::v1::GenerateRequest::PROMPT_NOT_SET);
  EXPECT_EQ(g.stop().max_tokens(), 20);
  EXPECT_THAT(g.stop().stop(), ElementsAre("\n\n", "END"));
  EXPECT_THAT(g.stop().stop_token_ids(), ElementsAre(128001));
  EXPECT_TRUE(g.stop().ignore_eos());
  EXPECT_FLOAT_EQ(g.sampling().temperature(), 0.5f);
  EXPECT_FLOAT_EQ(g.sampling().top_p(), 0.9f);
  EXPECT_EQ(g.sampling().top_k(), 40);
  EXPECT_FLOAT_EQ(g.sampling().min_p(), 0.1f);
  EXPECT_EQ(g.sampling().seed(), 7u);
  EXPECT_FLOAT_EQ(g.sampling().presence_penalty(), 0.5f);
  EXPECT_FLOAT_EQ(g.sampling().frequency_penalty(), -0.5f);
  EXPECT_FLOAT_EQ(g.sampling().repetition_penalty(), 1.1f);
  ASSERT_EQ(g.sampling().logit_bias_size(), 2);
  EXPECT_FLOAT_EQ(g.sampling().logit_bias().at(15), -100.0f);
  EXPECT_FLOAT_EQ(g.sampling().logit_bias().at(42), 2.5f);
  EXPECT_TRUE(g.logprobs());
  EXPECT_EQ(g.top_logprobs(), 3);
  ASSERT_TRUE(g.has_skip_special_tokens());
  EXPECT_FALSE(g.skip_special_tokens());
}

TEST(ChatRequestTest, MinimalRequestLeavesDefaultsUnset) {
  ASSERT_OK_AND_ASSIGN(ParsedGenerateRequest r,
                       ParseChatCompletionRequest(Chat(""), RequestLimits{}));
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_FALSE(r.max_tokens_until_context);
  const wrinklefree::v1::GenerateRequest& g = r.request_template;
  EXPECT_FALSE(g.stop().has_max_tokens());
  EXPECT_FALSE(g.sampling().has_temperature());
  EXPECT_FALSE(g.sampling().has_top_p());
  EXPECT_FALSE(g.sampling().has_seed());
  EXPECT_FALSE(g.sampling().has_repetition_penalty());
  EXPECT_FALSE(g.logprobs());
  EXPECT_FALSE(g.has_skip_special_tokens());
}

TEST(ChatRequestTest, NullFieldsAreUnsetAndIntegralFloatsAccepted) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseChatCompletionRequest(
          Chat(R"(,"temperature":null,"stop":null,"max_tokens":16.0,)"
               R"("stream_options":null,"seed":-3,"top_k":-1,"n":null)"),
          RequestLimits{}));
  EXPECT_FALSE(r.request_template.sampling().has_temperature());
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.request_template.sampling().seed(), static_cast<uint64_t>(-3));
  EXPECT_EQ(r.request_template.sampling().top_k(), 0);
  EXPECT_EQ(r.n, 1);
}

TEST(ChatRequestTest, SingleStopStringAndConfigurableN) {
  RequestLimits limits;
  limits.max_n = 16;
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseChatCompletionRequest(Chat(R"(,"stop":"###","n":16)"), limits));
  EXPECT_THAT(r.request_template.stop().stop(), ElementsAre("###"));
  EXPECT_EQ(r.n, 16);
}

TEST(ChatRequestTest, DepthLimitIsConfigurable) {
  RequestLimits limits;
  limits.max_json_depth = 3;
  // Depth 3: body, messages array, message object.
  EXPECT_THAT(ParseChatCompletionRequest(Chat(""), limits), wf::testing::IsOk());
  absl::Status s =
      ParseChatCompletionRequest(Chat(R"(,"metadata":{"a":{"b":{}}})"), limits)
          .status();
  EXPECT_THAT(ToApiError(s).message, HasSubstr("limit of 3 levels"));
}

TEST(ChatRequestTest, BracketsInsideStringsDoNotCountAsDepth) {
  RequestLimits limits;
  limits.max_json_depth = 3;
  std::string body = R"({"model":"m","messages":[{"role":"user","content":")" +
                     std::string(100, '[') + R"(\"{{{"}]})";
  ASSERT_OK_AND_ASSIGN(ParsedGenerateRequest r,
                       ParseChatCompletionRequest(body, limits));
  EXPECT_EQ(r.chat.messages(0).content(), std::string(100, '[') + "\"{{{");
}

TEST(ChatRequestTest, MultibyteUtf8Accepted) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseChatCompletionRequest(
          R"({"model":"m","messages":[{"role":"user","content":"héllo 世界 🙂"}]})",
          RequestLimits{}));
  EXPECT_EQ(r.chat.messages(0).content(), "héllo 世界 🙂");
}

TEST(CompletionRequestTest, PromptForms) {
  ASSERT_OK_AND_ASSIGN(ParsedGenerateRequest text,
                       ParseCompletionRequest(Cmpl(""), RequestLimits{}));
  EXPECT_EQ(text.prompt_kind, PromptKind::kText);
  EXPECT_EQ(text.text, "hi");

  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest one,
      ParseCompletionRequest(R"({"model":"m","prompt":["once"]})",
                             RequestLimits{}));
  EXPECT_EQ(one.prompt_kind, PromptKind::kText);
  EXPECT_EQ(one.text, "once");

  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest ids,
      ParseCompletionRequest(R"({"model":"m","prompt":[1,2,3]})",
                             RequestLimits{}));
  EXPECT_EQ(ids.prompt_kind, PromptKind::kTokenIds);
  EXPECT_THAT(ids.token_ids, ElementsAre(1, 2, 3));

  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest nested,
      ParseCompletionRequest(R"({"model":"m","prompt":[[7,8]]})",
                             RequestLimits{}));
  EXPECT_EQ(nested.prompt_kind, PromptKind::kTokenIds);
  EXPECT_THAT(nested.token_ids, ElementsAre(7, 8));

  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest single_id,
      ParseCompletionRequest(R"({"model":"m","prompt":[5]})", RequestLimits{}));
  EXPECT_THAT(single_id.token_ids, ElementsAre(5));
}

TEST(CompletionRequestTest, LogprobsEchoSuffixBestOf) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseCompletionRequest(
          Cmpl(R"(,"logprobs":0,"echo":false,"suffix":"","best_of":2,"n":2,)"
               R"("max_tokens":7)"),
          RequestLimits{}));
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 0);
  EXPECT_TRUE(r.request_template.logprobs());
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.request_template.stop().max_tokens(), 7);

  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest k,
      ParseCompletionRequest(Cmpl(R"(,"logprobs":5)"), RequestLimits{}));
  EXPECT_EQ(k.request_template.top_logprobs(), 5);
}

TEST(CompletionRequestTest, MaxCompletionTokensIsChatOnly) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseCompletionRequest(Cmpl(R"(,"max_completion_tokens":-1)"),
                             RequestLimits{}));
  EXPECT_EQ(r.max_tokens, -1);  // unknown field on this endpoint: ignored
}

TEST(LlamaRequestTest, DefaultsFollowLlamaServer) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseLlamaCompletionRequest(R"({"prompt":"Hello","n_predict":10})",
                                  RequestLimits{}));
  EXPECT_EQ(r.endpoint, Endpoint::kLlamaCompletion);
  EXPECT_EQ(r.model, "");
  EXPECT_EQ(r.text, "Hello");
  EXPECT_EQ(r.max_tokens, 10);
  const wrinklefree::v1::SamplingParams& s = r.request_template.sampling();
  EXPECT_FLOAT_EQ(s.temperature(), 0.8f);
  EXPECT_EQ(s.top_k(), 40);
  EXPECT_FLOAT_EQ(s.top_p(), 0.95f);
  EXPECT_FLOAT_EQ(s.min_p(), 0.05f);
  EXPECT_EQ(s.penalty_last_n(), 64);
  EXPECT_FALSE(s.has_seed());
  EXPECT_FALSE(r.logprobs);
}

TEST(LlamaRequestTest, AllFields) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseLlamaCompletionRequest(
          R"({"prompt":[1,2],"n_predict":-1,"temperature":-1,"top_k":0,)"
          R"("top_p":0.5,"min_p":0,"seed":-1,"stop":["a"],"stream":true,)"
          R"("repeat_penalty":1.2,"repeat_last_n":-1,"presence_penalty":1,)"
          R"("frequency_penalty":1,"ignore_eos":true,"n_probs":4,)"
          R"("cache_prompt":true,"return_tokens":true,"id_slot":3,)"
          R"("logit_bias":[[5,false],[6,1.5]],"grammar":"","model":"m"})",
          RequestLimits{}));
  EXPECT_EQ(r.prompt_kind, PromptKind::kTokenIds);
  EXPECT_THAT(r.token_ids, ElementsAre(1, 2));
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_TRUE(r.max_tokens_until_context);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.return_tokens);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 4);
  EXPECT_EQ(r.model, "m");
  const wrinklefree::v1::GenerateRequest& g = r.request_template;
  EXPECT_FALSE(g.stop().has_max_tokens());
  EXPECT_FLOAT_EQ(g.sampling().temperature(), 0.0f);
  EXPECT_EQ(g.sampling().top_k(), 0);
  EXPECT_FLOAT_EQ(g.sampling().min_p(), 0.0f);
  EXPECT_FALSE(g.sampling().has_seed());
  EXPECT_FLOAT_EQ(g.sampling().repetition_penalty(), 1.2f);
  EXPECT_EQ(g.sampling().penalty_last_n(), -1);
  EXPECT_TRUE(g.stop().ignore_eos());
  EXPECT_THAT(g.stop().stop(), ElementsAre("a"));
  EXPECT_FLOAT_EQ(g.sampling().logit_bias().at(5), -100.0f);
  EXPECT_FLOAT_EQ(g.sampling().logit_bias().at(6), 1.5f);
  EXPECT_EQ(g.top_logprobs(), 4);
}

TEST(LlamaRequestTest, MaxTokensAliasAndSeed) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseLlamaCompletionRequest(R"({"prompt":"x","max_tokens":3,"seed":9})",
                                  RequestLimits{}));
  EXPECT_EQ(r.max_tokens, 3);
  EXPECT_EQ(r.request_template.sampling().seed(), 9u);
}

TEST(MakeChoiceRequestTest, SeedsDifferPerChoiceOnlyWhenFannedOut) {
  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest r,
      ParseChatCompletionRequest(Chat(R"(,"seed":100,"n":3)"), RequestLimits{}));
  wrinklefree::v1::GenerateRequest g0 = MakeChoiceRequest(r, 0, "req-0");
  wrinklefree::v1::GenerateRequest g2 = MakeChoiceRequest(r, 2, "req-2");
  EXPECT_EQ(g0.request_id(), "req-0");
  EXPECT_EQ(g0.sampling().seed(), 100u);
  EXPECT_EQ(g2.sampling().seed(), 102u);

  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest single,
      ParseChatCompletionRequest(Chat(R"(,"seed":100)"), RequestLimits{}));
  EXPECT_EQ(MakeChoiceRequest(single, 0, "x").sampling().seed(), 100u);

  ASSERT_OK_AND_ASSIGN(
      ParsedGenerateRequest unseeded,
      ParseChatCompletionRequest(Chat(R"(,"n":2)"), RequestLimits{}));
  EXPECT_FALSE(MakeChoiceRequest(unseeded, 1, "x").sampling().has_seed());
}

TEST(TokenizeRequestTest, Fields) {
  ASSERT_OK_AND_ASSIGN(
      ParsedTokenizeRequest t,
      ParseTokenizeRequest(R"({"content":"Hello","add_special":true,)"
                           R"("with_pieces":true})",
                           RequestLimits{}));
  EXPECT_EQ(t.content, "Hello");
  EXPECT_TRUE(t.add_special);
  EXPECT_TRUE(t.parse_special);
  EXPECT_TRUE(t.with_pieces);

  ASSERT_OK_AND_ASSIGN(ParsedTokenizeRequest d,
                       ParseTokenizeRequest(R"({"content":""})", RequestLimits{}));
  EXPECT_FALSE(d.add_special);
  EXPECT_FALSE(d.with_pieces);
}

TEST(DetokenizeRequestTest, Ids) {
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ids,
                       ParseDetokenizeRequest(R"({"tokens":[9906, 0, 1]})",
                                              RequestLimits{}));
  EXPECT_THAT(ids, ElementsAre(9906, 0, 1));
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> none,
                       ParseDetokenizeRequest(R"({"tokens":[]})", RequestLimits{}));
  EXPECT_TRUE(none.empty());
}

TEST(LimitsTest, PromptTokenIdLimit) {
  RequestLimits limits;
  limits.max_prompt_token_ids = 2;
  absl::Status s =
      ParseCompletionRequest(R"({"model":"m","prompt":[1,2,3]})", limits)
          .status();
  ApiError e = ToApiError(s);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.param, "prompt");
  EXPECT_THAT(e.message, HasSubstr("3 token ids; the limit is 2"));
}

TEST(LimitsTest, MessageCountLimit) {
  RequestLimits limits;
  limits.max_messages = 1;
  ApiError e = ToApiError(
      ParseChatCompletionRequest(
          R"({"model":"m","messages":[{"role":"user","content":"a"},)"
          R"({"role":"user","content":"b"}]})",
          limits)
          .status());
  EXPECT_EQ(e.param, "messages");
  EXPECT_THAT(e.message, HasSubstr("2 entries; the limit is 1"));
}

}  // namespace
}  // namespace wf::router::openai
