#include "tests/hostile_input_rows.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"

namespace wf::hostile {
namespace {

using Json = nlohmann::json;

Row Http(std::string name, std::string path, std::string body, int status, std::string message,
         std::string param = "") {
  Row r;
  r.name = std::move(name);
  r.path = std::move(path);
  r.body = std::move(body);
  r.expect = status;
  r.message = std::move(message);
  r.param = std::move(param);
  return r;
}

Row Raw(std::string name, std::string bytes, int status, std::string message, std::vector<int> more = {}) {
  Row r;
  r.name = std::move(name);
  r.via = Via::kRaw;
  r.raw = std::move(bytes);
  r.expect = status;
  r.message = std::move(message);
  r.more = std::move(more);
  return r;
}

Row Grpc(std::string name, Via via, grpc::StatusCode code, std::string message) {
  Row r;
  r.name = std::move(name);
  r.via = via;
  r.expect = static_cast<int>(code);
  r.message = std::move(message);
  return r;
}

Row WorkerGen(std::string name, v1::GenerateRequest g, std::string message,
              grpc::StatusCode code = grpc::StatusCode::INVALID_ARGUMENT) {
  Row r = Grpc(std::move(name), Via::kWorkerGenerate, code, std::move(message));
  r.generate = std::move(g);
  return r;
}

Row RouterGen(std::string name, v1::GenerateRequest g, std::string message,
              grpc::StatusCode code = grpc::StatusCode::INVALID_ARGUMENT, std::string model = "") {
  Row r = Grpc(std::move(name), Via::kRouterGenerate, code, std::move(message));
  *r.router_generate.mutable_request() = std::move(g);
  r.router_generate.set_model(std::move(model));
  return r;
}

// A token-id prompt; max_tokens 0 leaves stop.max_tokens unset.
v1::GenerateRequest Ids(std::vector<int32_t> ids, int max_tokens = 2) {
  v1::GenerateRequest g;
  g.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  if (max_tokens != 0) g.mutable_stop()->set_max_tokens(max_tokens);
  return g;
}

v1::GenerateRequest Text(std::string text) {
  v1::GenerateRequest g;
  g.set_text(std::move(text));
  g.mutable_stop()->set_max_tokens(2);
  return g;
}

v1::ChatMessages Chat(std::vector<std::pair<std::string, std::string>> messages) {
  v1::ChatMessages chat;
  for (auto& [role, content] : messages) {
    v1::ChatMessage* m = chat.add_messages();
    m->set_role(role);
    m->set_content(content);
  }
  return chat;
}

// A string literal's bytes, NULs included.
template <size_t N>
std::string Bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

// `count` copies of `item`, comma-separated.
std::string JsonList(int count, const std::string& item) {
  std::vector<std::string> items(count, item);
  return absl::StrJoin(items, ",");
}

std::string LogitBiasMap(int entries) {
  std::string s = "{";
  for (int i = 0; i < entries; ++i) absl::StrAppend(&s, i > 0 ? "," : "", "\"", i, "\":1");
  return s + "}";
}

}  // namespace

std::vector<Row> HttpRows(const std::string& model) {
  const std::string m = absl::StrCat(R"({"model":")", model, R"(",)");
  const std::string hi = R"("messages":[{"role":"user","content":"hi"}])";
  auto chat = [&](const std::string& extra) { return m + hi + extra + "}"; };
  auto cmpl = [&](const std::string& extra) { return m + R"("prompt":[1,2,3])" + extra + "}"; };
  auto llama = [&](const std::string& extra) { return R"({"prompt":"hello")" + extra + "}"; };
  const std::string c = "/v1/chat/completions", p = "/v1/completions", l = "/completion";
  const std::string deep = std::string(100000, '[');
  const std::string long_words = std::string(R"(")") + [] {
    std::string s;
    for (int i = 0; i < 5000; ++i) s += "hello ";
    return s;
  }() + "\"";
  std::vector<int32_t> over(kContext + 10, 7);
  std::vector<int32_t> every_id(kVocab);
  for (int i = 0; i < kVocab; ++i) every_id[i] = i;
  std::vector<Row> rows = {
      // --- bad JSON
      Http("ChatEmptyBody", c, "", 400, "request body is empty"),
      Http("ChatNotJson", c, "hello", 400, "not valid JSON"),
      Http("ChatTruncatedJson", c, m + R"("messages":[{"role":"user")", 400, "not valid JSON"),
      Http("ChatTrailingComma", c, chat(","), 400, "not valid JSON"),
      Http("ChatTrailingGarbage", c, chat("") + "}}}", 400, "not valid JSON"),
      Http("ChatTopLevelArray", c, "[1,2]", 400, "must be a JSON object, got array"),
      Http("ChatTopLevelNull", c, "null", 400, "must be a JSON object, got null"),
      Http("ChatNaNLiteral", c, chat(R"(,"temperature":NaN)"), 400, "not valid JSON"),
      Http("ChatSingleQuotes", c, "{'model':'x'}", 400, "not valid JSON"),
      // --- deep nesting
      Http("ChatDeepArrays", c, deep, 400, "deeper than the limit of 64 levels"),
      Http("ChatDeepObjectsInIgnoredField", c, chat(R"(,"metadata":)" + std::string(5000, '{')), 400,
           "deeper than the limit of 64 levels"),
      Http("TokenizeDeepArrays", "/tokenize", deep, 400, "deeper than the limit of 64 levels"),
      // --- invalid UTF-8 and NUL bytes
      Http("ChatInvalidUtf8", c, m + "\"messages\":[{\"role\":\"user\",\"content\":\"caf\xc3\x28\"}]}", 400,
           "invalid UTF-8"),
      Http("ChatOverlongUtf8", c, m + "\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}", 400,
           "invalid UTF-8"),
      Http("ChatUtf16Surrogate", c, m + "\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", 400,
           "invalid UTF-8"),
      Http("ChatLoneSurrogateEscape", c, m + R"("messages":[{"role":"user","content":"\ud800"}]})", 400, "surrogate"),
      Http("ChatRawNulByte", c, chat(Bytes(",\"user\":\"a\0b\"")), 400, "NUL byte at offset"),
      Http("ChatNulEscapeInContent", c, m + R"("messages":[{"role":"user","content":"a\u0000b"}]})", 400,
           "must not contain NUL", "messages[0].content"),
      Http("CompletionNulEscapeInPrompt", p, m + R"("prompt":"a\u0000b"})", 400, "must not contain NUL", "prompt"),
      Http("CompletionInvalidUtf8Prompt", p, m + "\"prompt\":\"\xff\xfe\"}", 400, "invalid UTF-8"),
      Http("TokenizeNul", "/tokenize", R"({"content":"a\u0000"})", 400, "must not contain NUL", "content"),
      Http("TokenizeInvalidUtf8", "/tokenize", "{\"content\":\"\x80\"}", 400, "invalid UTF-8"),
      Http("ChatNulInStop", c, chat(R"(,"stop":["a\u0000"])"), 400, "stop[0] must not contain NUL", "stop[0]"),
      // --- wrong types
      Http("ChatModelNumber", c, R"({"model":5,"messages":[{"role":"user","content":"hi"}]})", 400,
           "model must be a string, got number", "model"),
      Http("ChatMessagesObject", c, m + R"("messages":{}})", 400, "messages must be an array", "messages"),
      Http("ChatMessagesEmpty", c, m + R"("messages":[]})", 400, "at least one message", "messages"),
      Http("ChatMessageString", c, m + R"("messages":["hi"]})", 400, "messages[0] must be an object", "messages[0]"),
      Http("ChatRoleNumber", c, m + R"("messages":[{"role":5,"content":"x"}]})", 400, "messages[0].role"),
      Http("ChatRoleTool", c, m + R"("messages":[{"role":"tool","content":"x"}]})", 400, "'tool' is not supported"),
      Http("ChatContentMissing", c, m + R"("messages":[{"role":"user"}]})", 400, "messages[0].content is required"),
      Http("ChatContentImage", c, m + R"("messages":[{"role":"user","content":[{"type":"image_url"}]}]})", 400,
           "'image_url' is not supported"),
      Http("ChatMaxTokensString", c, chat(R"(,"max_tokens":"ten")"), 400, "max_tokens must be an integer",
           "max_tokens"),
      Http("ChatMaxTokensFraction", c, chat(R"(,"max_tokens":1.5)"), 400, "max_tokens must be an integer, got 1.5",
           "max_tokens"),
      Http("ChatStreamString", c, chat(R"(,"stream":"yes")"), 400, "stream must be a boolean", "stream"),
      Http("ChatStreamOptionsWithoutStream", c, chat(R"(,"stream_options":{"include_usage":true})"), 400,
           "only allowed when stream is true", "stream_options"),
      Http("ChatTemperatureString", c, chat(R"(,"temperature":"hot")"), 400, "temperature must be a number",
           "temperature"),
      Http("ChatLogprobsNumber", c, chat(R"(,"logprobs":3)"), 400, "logprobs must be a boolean", "logprobs"),
      Http("ChatStopNumber", c, chat(R"(,"stop":5)"), 400, "stop must be a string or an array", "stop"),
      Http("ChatStopTokenIdsString", c, chat(R"(,"stop_token_ids":"5")"), 400, "stop_token_ids must be an array",
           "stop_token_ids"),
      Http("ChatLogitBiasArray", c, chat(R"(,"logit_bias":[[1,2]])"), 400, "an object mapping token ids", "logit_bias"),
      Http("ChatLogitBiasBadKey", c, chat(R"(,"logit_bias":{"abc":1})"), 400, "key \"abc\" is not a token id",
           "logit_bias"),
      Http("ChatLogitBiasValueString", c, chat(R"(,"logit_bias":{"5":"x"})"), 400, "must be a number, got string",
           "logit_bias"),
      Http("ChatToolsGiven", c, chat(R"(,"tools":[{"type":"function"}])"), 400, "tool calling", "tools"),
      Http("ChatResponseFormatJson", c, chat(R"(,"response_format":{"type":"json_object"})"), 400,
           "'json_object' is not supported", "response_format"),
      Http("CompletionPromptNumber", p, m + R"("prompt":12})", 400, "a string or an array of token ids", "prompt"),
      Http("CompletionPromptMissing", p, m + R"("max_tokens":2})", 400, "prompt is required", "prompt"),
      Http("CompletionPromptEmpty", p, m + R"("prompt":""})", 400, "prompt must not be empty", "prompt"),
      Http("CompletionPromptMixed", p, m + R"("prompt":[1,2.5]})", 400, "mixed array", "prompt"),
      Http("CompletionManyPrompts", p, m + R"("prompt":["a","b"]})", 400, "2 prompts in one request", "prompt"),
      Http("CompletionEcho", p, cmpl(R"(,"echo":true)"), 400, "echo is not supported", "echo"),
      Http("CompletionSuffix", p, cmpl(R"(,"suffix":"x")"), 400, "suffix is not supported", "suffix"),
      Http("LlamaPromptMissing", l, R"({"n_predict":2})", 400, "prompt is required", "prompt"),
      Http("LlamaLogitBiasPairShort", l, llama(R"(,"logit_bias":[[1]])"), 400, "must be a [token_id, bias] pair",
           "logit_bias"),
      Http("LlamaLogitBiasTokenString", l, llama(R"(,"logit_bias":[["a",1]])"), 400, "token strings are not supported",
           "logit_bias"),
      Http("LlamaGrammar", l, llama(R"(,"grammar":"root ::= x")"), 400, "grammar is not supported", "grammar"),
      Http("LlamaMirostat", l, llama(R"(,"mirostat":2)"), 400, "mirostat is not supported", "mirostat"),
      Http("LlamaTemperatureString", l, llama(R"(,"temperature":"x")"), 400, "temperature must be a number",
           "temperature"),
      Http("TokenizeContentMissing", "/tokenize", "{}", 400, "content is required", "content"),
      Http("TokenizeContentNumber", "/tokenize", R"({"content":5})", 400, "content must be a string", "content"),
      Http("TokenizeAddSpecialString", "/tokenize", R"({"content":"x","add_special":"yes"})", 400,
           "add_special must be a boolean", "add_special"),
      Http("TokenizeTopLevelArray", "/tokenize", "[]", 400, "must be a JSON object, got array"),
      Http("DetokenizeTokensMissing", "/detokenize", "{}", 400, "tokens is required", "tokens"),
      Http("DetokenizeTokensString", "/detokenize", R"({"tokens":"abc"})", 400, "tokens must be an array", "tokens"),
      Http("DetokenizeTokenFloat", "/detokenize", R"({"tokens":[1e10]})", 400, "tokens[0] must be an integer",
           "tokens[0]"),
      // --- huge numbers
      Http("ChatMaxTokensBeyondInt64", c, chat(R"(,"max_tokens":99999999999999999999999999)"), 400,
           "max_tokens must be <= 2147483647", "max_tokens"),
      Http("ChatMaxTokensBeyondDouble", c, chat(R"(,"max_tokens":1e400)"), 400, "not valid JSON: number overflow"),
      Http("ChatMaxTokensInt32Overflow", c, chat(R"(,"max_tokens":2147483648)"), 400,
           "max_tokens must be <= 2147483647", "max_tokens"),
      Http("ChatNHuge", c, chat(R"(,"n":1e300)"), 400, "n must be between 1 and 8", "n"),
      Http("ChatTemperatureHuge", c, chat(R"(,"temperature":1e308)"), 400, "temperature must be in [0, 2]",
           "temperature"),
      Http("ChatSeedTwoToThe63", c, chat(R"(,"seed":9223372036854775808.0)"), 400, "seed must be <=", "seed"),
      Http("ChatSeedHugeNegative", c, chat(R"(,"seed":-1e30)"), 400, "seed must be >=", "seed"),
      Http("ChatLogitBiasValueHuge", c, chat(R"(,"logit_bias":{"5":1e30})"), 400, "must be in [-100, 100]",
           "logit_bias"),
      Http("ChatLogitBiasKeyHuge", c, chat(R"(,"logit_bias":{"99999999999":1})"), 400, "is not a token id",
           "logit_bias"),
      Http("ChatTopLogprobsHuge", c, chat(R"(,"logprobs":true,"top_logprobs":1e10)"), 400,
           "top_logprobs must be between 0 and 20", "top_logprobs"),
      Http("CompletionTokenIdBeyondInt32", p, m + R"("prompt":[1,4294967297]})", 400, "prompt[1] must be <= 2147483647",
           "prompt[1]"),
      Http("LlamaRepeatPenaltyBeyondFloat", l, llama(R"(,"repeat_penalty":1e39,"n_predict":1)"), 400,
           "repetition_penalty must be finite"),
      Http("LlamaRepeatPenaltyDenormal", l,
           R"({"prompt":)" + Json(every_id).dump() + R"(,"repeat_penalty":1e-40,"n_predict":1})", 400,
           "repetition_penalty must be in [1e-06, 1e+06]"),
      Http("ChatRepetitionPenaltyHuge", c, chat(R"(,"repetition_penalty":1e38)"), 400,
           "repetition_penalty must be in [1e-06, 1e+06]"),
      Http("DetokenizeTokenBeyondInt32", "/detokenize", R"({"tokens":[3000000000]})", 400,
           "tokens[0] must be <= 2147483647", "tokens[0]"),
      // --- enormous stop lists and logit_bias maps
      Http("ChatStopSeventeen", c, chat(R"(,"stop":[)" + JsonList(17, "\"s\"") + "]"), 400,
           "stop has 17 strings; the limit is 16", "stop"),
      Http("ChatStopTenThousand", c, chat(R"(,"stop":[)" + JsonList(10000, "\"s\"") + "]"), 400,
           "stop has 10000 strings; the limit is 16", "stop"),
      Http("ChatStopTooLong", c, chat(R"(,"stop":")" + std::string(300, 'x') + "\""), 400,
           "stop is 300 bytes; the limit is 256 bytes", "stop"),
      Http("ChatStopEmptyString", c, chat(R"(,"stop":["a",""])"), 400, "stop[1] must not be empty", "stop"),
      Http("ChatStopTokenIdsTooMany", c, chat(R"(,"stop_token_ids":[)" + JsonList(65, "5") + "]"), 400,
           "stop_token_ids has 65 token ids; the limit is 64", "stop_token_ids"),
      Http("ChatLogitBiasFiveThousand", c, chat(R"(,"logit_bias":)" + LogitBiasMap(5000)), 400,
           "logit_bias has 5000 entries; the limit is 1024", "logit_bias"),
      Http("ChatLogitBiasOutsideVocabulary", c, chat(R"(,"logit_bias":{"99999":1})"), 400,
           "logit_bias token id 99999 is outside the vocabulary [0, 2048)"),
      Http("LlamaLogitBiasPairsTooMany", l, llama(R"(,"logit_bias":[)" + JsonList(2000, "[1,1]") + "]"), 400,
           "logit_bias has 2000 entries; the limit is 1024", "logit_bias"),
      Http("CompletionStopTenThousand", p, cmpl(R"(,"stop":[)" + JsonList(10000, "\"s\"") + "]"), 400,
           "stop has 10000 strings", "stop"),
      // --- prompt over the context, n too large, negative or zero limits
      Http("ChatMessagesOverContext", c, m + R"("messages":[{"role":"user","content":)" + long_words + "}]}", 400,
           "maximum context length is 4096 tokens", "messages"),
      Http("ChatMaxTokensOverContext", c, chat(R"(,"max_tokens":5000)"), 400, "maximum context length is 4096 tokens",
           "messages"),
      Http("CompletionIdsOverContext", p, m + absl::StrCat(R"("prompt":)", Json(over).dump(), "}"), 400,
           "maximum context length is 4096 tokens", "prompt"),
      Http("CompletionMaxTokensFillsContext", p, cmpl(R"(,"max_tokens":4094)"), 400,
           "you requested 4097 tokens (3 in the prompt, 4094 in the completion)", "prompt"),
      Http("LlamaPromptOverContext", l, R"({"prompt":)" + long_words + "}", 400, "maximum context length is 4096",
           "prompt"),
      Http("ChatNNine", c, chat(R"(,"n":9)"), 400, "n must be between 1 and 8, got 9", "n"),
      Http("ChatNZero", c, chat(R"(,"n":0)"), 400, "n must be between 1 and 8, got 0", "n"),
      Http("ChatNNegative", c, chat(R"(,"n":-3)"), 400, "n must be between 1 and 8, got -3", "n"),
      Http("CompletionNThousand", p, cmpl(R"(,"n":1000)"), 400, "n must be between 1 and 8, got 1000", "n"),
      Http("LlamaNTwo", l, llama(R"(,"n":2)"), 400, "n is not supported", "n"),
      Http("ChatMaxTokensZero", c, chat(R"(,"max_tokens":0)"), 400, "max_tokens must be >= 1, got 0", "max_tokens"),
      Http("ChatMaxTokensNegative", c, chat(R"(,"max_tokens":-5)"), 400, "max_tokens must be >= 1, got -5",
           "max_tokens"),
      Http("ChatMaxCompletionTokensMinusOne", c, chat(R"(,"max_completion_tokens":-1)"), 400,
           "max_completion_tokens must be >= 1, got -1", "max_completion_tokens"),
      Http("CompletionLogprobsSix", p, cmpl(R"(,"logprobs":6)"), 400, "logprobs must be between 0 and 5, got 6",
           "logprobs"),
      Http("CompletionLogprobsNegative", p, cmpl(R"(,"logprobs":-1)"), 400, "logprobs must be between 0 and 5",
           "logprobs"),
      Http("CompletionBestOfZero", p, cmpl(R"(,"best_of":0)"), 400, "best_of must be >= 1, got 0", "best_of"),
      Http("CompletionTokenIdNegative", p, m + R"("prompt":[1,-2]})", 400, "prompt[1] must be >= 0, got -2",
           "prompt[1]"),
      Http("CompletionTokenIdOutsideVocabulary", p, m + R"("prompt":[1,99999]})", 400, "vocabulary size 2048",
           "prompt"),
      Http("LlamaNPredictZero", l, llama(R"(,"n_predict":0)"), 400, "n_predict must be -1", "n_predict"),
      Http("LlamaNPredictMinusTwo", l, llama(R"(,"n_predict":-2)"), 400, "n_predict must be >= -1, got -2",
           "n_predict"),
      Http("LlamaRepeatLastNMinusTwo", l, llama(R"(,"repeat_last_n":-2)"), 400, "repeat_last_n must be >= -1",
           "repeat_last_n"),
      Http("LlamaSeedMinusTwo", l, llama(R"(,"seed":-2)"), 400, "seed must be -1 (random) or >= 0, got -2", "seed"),
      Http("DetokenizeTokenNegative", "/detokenize", R"({"tokens":[1,-1]})", 400, "tokens[1] must be >= 0",
           "tokens[1]"),
      Http("DetokenizeOutsideVocabulary", "/detokenize", R"({"tokens":[1,2,99999]})", 400,
           "tokens[2] = 99999 is outside the vocabulary [0, 2048)", "tokens"),
      Http("ChatFiveThousandMessages", c,
           m + R"("messages":[)" + JsonList(5000, R"({"role":"user","content":""})") + "]}", 400,
           "messages has 5000 entries; the limit is 4096", "messages"),
      // --- one bad choice of many: every choice is cancelled, one clean error
      Http("ChatEightChoicesWorkerRejects", c, chat(R"(,"n":8,"logit_bias":{"99999":1})"), 400,
           "logit_bias token id 99999 is outside the vocabulary"),
      Http("ChatEightStreamedChoicesWorkerRejects", c, chat(R"(,"n":8,"stream":true,"logit_bias":{"99999":1})"), 400,
           "logit_bias token id 99999 is outside the vocabulary"),
      Http("CompletionEightChoicesStopTokenOutsideVocabulary", p, cmpl(R"(,"n":8,"stop_token_ids":[5000])"), 400,
           "stop_token_ids[0] = 5000 is outside the vocabulary"),
      // --- accepted, and the answer is still valid UTF-8 JSON
      Http("DetokenizePartialCharacter", "/detokenize", R"({"tokens":[127]})", 200, "content"),
      Http("TokenizePiecesOfPartialCharacters", "/tokenize", R"({"content":"\u00e9\ud83d\ude00","with_pieces":true})",
           200, "piece"),
      Http("ChatBracketsInsideStringAreNotNesting", c,
           m + R"("messages":[{"role":"user","content":")" + std::string(1000, '[') + R"("}],"max_tokens":1})", 200,
           "chat.completion"),
      Http("ChatByteOrderMark", c, "\xef\xbb\xbf" + chat(R"(,"max_tokens":1)"), 200, "chat.completion"),
      // --- size, model, route, method
      Http("ChatBodyOverLimit", c, chat(R"(,"user":")" + std::string(kMaxBodyBytes + 10, 'a') + "\""), 413,
           "request body exceeds the limit of 262144 bytes"),
      Http("ChatUnknownModel", c, R"({"model":"no-such-model","messages":[{"role":"user","content":"hi"}]})", 404,
           "'no-such-model' does not exist", "model"),
      Http("ChatModelNameHuge", c,
           R"({"model":")" + std::string(200000, 'q') + R"(","messages":[{"role":"user","content":"hi"}]})", 404,
           "does not exist", "model"),
      Http("UnknownRouteInvalidUtf8", "/v1/\xff\xfe", "{}", 404, "no route for POST /v1/"),
      Http("UnknownRouteLong", "/v1/" + std::string(8000, 'z'), "{}", 404, "no route for POST /v1/zzz"),
  };
  Row get_completions = Http("CompletionsWithGet", p, "", 405, "takes POST");
  get_completions.method = "GET";
  rows.push_back(get_completions);
  // --- authentication
  Row no_key = Http("ChatWithoutApiKey", c, chat(""), 401, "missing or invalid API key");
  no_key.auth = false;
  rows.push_back(no_key);
  for (const auto& [name, header] : std::vector<std::pair<std::string, std::string>>{
           {"ChatWrongApiKey", "Authorization: Bearer wrong-key"},
           {"ChatKeyPrefixOnly", "Authorization: Bearer hostile-input"},
           {"ChatKeyWithSuffix", absl::StrCat("Authorization: Bearer ", kApiKey, "x")},
           {"ChatBasicAuth", "Authorization: Basic aG9zdGlsZTprZXk="},
           {"ChatBearerEmpty", "Authorization: Bearer "}}) {
    Row r = Http(name, c, chat(""), 401, "missing or invalid API key");
    r.auth = false;
    r.headers = {header};
    rows.push_back(r);
  }
  return rows;
}

std::vector<Row> RawRows(const std::string& model) {
  const std::string chat_body =
      absl::StrCat(R"({"model":")", model, R"(","messages":[{"role":"user","content":"hi"}],"max_tokens":2})");
  const std::string auth = absl::StrCat("Authorization: Bearer ", kApiKey, "\r\n");
  auto post = [&](const std::string& path, const std::string& extra_headers, const std::string& body_and_rest) {
    return absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: x\r\n", auth, extra_headers, "\r\n", body_and_rest);
  };
  auto http10 = [](std::string request) { return request.replace(request.find("HTTP/1.1"), 8, "HTTP/1.0"); };
  const std::string timeout_body = absl::StrCat("request body not received within ", kReadTimeoutSeconds * 1000, " ms");
  const std::string timeout_header =
      absl::StrCat("request header not received within ", kReadTimeoutSeconds * 1000, " ms");
  std::vector<Row> rows = {
      Raw("NulByteInPath", Bytes("GET /hea\0lth HTTP/1.1\r\nHost: x\r\n\r\n"), 400,
          "malformed HTTP request: bad target"),
      Raw("ControlByteInPath", "GET /hea\x01lth HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed HTTP request"),
      Raw("SpaceInPath", "GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed HTTP request"),
      Raw("TlsHandshakeBytes", Bytes("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n"), 400,
          "malformed HTTP request: bad method"),
      Raw("BinaryGarbage", Bytes("\x00\xff\x13\x37\r\n\r\n"), 400, "malformed HTTP request"),
      Raw("Http09RequestLine", "GET /health\r\n\r\n", 400, "malformed HTTP request"),
      Raw("Http2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "malformed HTTP request: bad version"),
      Raw("UnknownHttpVersion", "GET /health HTTP/9.9\r\n\r\n", 400, "malformed HTTP request: bad version"),
      Raw("BareLfLineEndings", "GET /health HTTP/1.1\nHost: x\n\n", 400, "malformed HTTP request"),
      Raw("Http10Health", "GET /health HTTP/1.0\r\n\r\n", 200, ""),
      Raw("HugeMethodUnknownRoute", std::string(10000, 'A') + " /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          404, "no route for AAAA"),
      Raw("Http10Chat",
          http10(post("/v1/chat/completions", absl::StrCat("Content-Length: ", chat_body.size(), "\r\n"), chat_body)),
          200, ""),
      Raw("OversizedHeaderValue", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(40000, 'a') + "\r\n\r\n",
          431, "request line and header fields exceed the limit of 16384 bytes"),
      Raw(
          "ThousandsOfHeaders",
          "GET /health HTTP/1.1\r\nHost: x\r\n" +
              [] {
                std::string h;
                for (int i = 0; i < 5000; ++i) absl::StrAppend(&h, "X-", i, ": a\r\n");
                return h;
              }() +
              "\r\n",
          431, "exceed the limit of 16384 bytes"),
      Raw("OversizedRequestLine", "GET /" + std::string(40000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 431,
          "exceed the limit of 16384 bytes"),
      Raw("NulInHeaderValue", Bytes("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"), 400,
          "malformed HTTP request: bad value"),
      Raw("HeaderWithoutColon", "GET /health HTTP/1.1\r\nHost x\r\n\r\n", 400, "malformed HTTP request: bad field"),
      Raw("ChunkSizeNotHex", post("/tokenize", "Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"), 400,
          "malformed HTTP request: bad chunk"),
      Raw("ChunkSizeNegative", post("/tokenize", "Transfer-Encoding: chunked\r\n", "-5\r\nabc\r\n0\r\n\r\n"), 400,
          "malformed HTTP request: bad chunk"),
      Raw("ChunkSizeHuge", post("/tokenize", "Transfer-Encoding: chunked\r\n", "ffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
          413, "request body exceeds the limit of 262144 bytes"),
      Raw("ChunkSizeOverflowsUint64",
          post("/tokenize", "Transfer-Encoding: chunked\r\n", "10000000000000000\r\nabc\r\n0\r\n\r\n"), 400,
          "malformed HTTP request"),
      Raw("ChunkLongerThanItsSize", post("/tokenize", "Transfer-Encoding: chunked\r\n", "3\r\nabcdef\r\n0\r\n\r\n"),
          400, "malformed HTTP request: bad chunk"),
      Raw("ChunkShorterThanItsSize", post("/tokenize", "Transfer-Encoding: chunked\r\n", "9\r\nabc"), 408,
          timeout_body),
      Raw("ChunkedAndContentLength",
          post("/tokenize", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400,
          "malformed HTTP request: bad Transfer-Encoding"),
      Raw("TransferEncodingGzip", post("/tokenize", "Transfer-Encoding: gzip\r\n", R"({"content":"x"})"), 400,
          "Transfer-Encoding is not supported unless chunked is the final coding"),
      Raw("TransferEncodingChunkedThenGzip",
          post("/tokenize", "Transfer-Encoding: chunked, gzip\r\n", "2\r\n{}\r\n0\r\n\r\n"), 400,
          "Transfer-Encoding is not supported"),
      Raw("TwoContentLengths", post("/tokenize", "Content-Length: 2\r\nContent-Length: 7\r\n", "{}"), 400,
          "malformed HTTP request: bad Content-Length"),
      Raw("NegativeContentLength", post("/tokenize", "Content-Length: -1\r\n", "{}"), 400,
          "malformed HTTP request: bad Content-Length"),
      Raw("ContentLengthBeyondUint64", post("/tokenize", "Content-Length: 99999999999999999999999\r\n", "{}"), 400,
          "malformed HTTP request: bad Content-Length"),
      Raw("ContentLengthOverLimit", post("/tokenize", "Content-Length: 1000000000\r\n", "{}"), 413,
          "request body exceeds the limit of 262144 bytes"),
      // The body's tail is read as a next request on the same connection.
      Raw("ContentLengthSmallerThanSent",
          post("/tokenize", "Content-Length: 5\r\nConnection: keep-alive\r\n", R"({"content":"hi"})"), 400,
          "not valid JSON", {400}),
      Raw("ContentLengthBiggerThanSent", post("/tokenize", "Content-Length: 100\r\n", R"({"content":"hi"})"), 408,
          timeout_body),
      Raw("HeaderWithoutBody", post("/v1/chat/completions", "Content-Length: 64\r\n", ""), 408, timeout_body),
      Raw("HeaderNeverEnds", "GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n", 408, timeout_header),
      Raw("PipelinedThree",
          "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          200, "", {200, 200}),
      Raw("PipelinedBadThenGood",
          post("/tokenize", "Content-Length: 3\r\n", "{x}") +
              "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          400, "not valid JSON", {200}),
      Raw("PipelinedGoodThenGarbage", "GET /health HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02garbage\r\n\r\n", 200, "", {400}),
      Raw("Expect100ContinueBadBody",
          post("/tokenize", "Expect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n", "{}"), 400,
          "content is required"),
      Raw("ChunkedBodyAccepted",
          post("/tokenize", "Transfer-Encoding: chunked\r\nConnection: close\r\n",
               "5\r\n{\"con\r\nb\r\ntent\":\"hi\"}\r\n0\r\n\r\n"),
          200, ""),
  };
  rows.push_back(
      Raw("ChunkExtensionHuge",
          post("/tokenize", "Transfer-Encoding: chunked\r\n", "2;" + std::string(100000, 'e') + "\r\n{}\r\n0\r\n\r\n"),
          400, "a chunk size line (with its extensions) or trailer exceeds the limit of 24576 bytes"));
  rows.push_back(Raw("TransferEncodingXChunked",
                     post("/tokenize", "Transfer-Encoding: xchunked\r\n", "2\r\n{}\r\n0\r\n\r\n"), 400,
                     "Transfer-Encoding is not supported"));
  rows.push_back(Raw("TransferEncodingSpaceBeforeColon",
                     post("/tokenize", "Transfer-Encoding : chunked\r\n", "2\r\n{}\r\n0\r\n\r\n"), 400,
                     "malformed HTTP request: bad field"));
  rows.push_back(
      Raw("TransferEncodingTwice",
          post("/tokenize", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n"),
          400, "malformed HTTP request: bad Transfer-Encoding"));
  rows.push_back(Raw("ContentLengthPlusSign", post("/tokenize", "Content-Length: +2\r\n", "{}"), 400,
                     "malformed HTTP request: bad Content-Length"));
  {
    std::string flood;
    for (int i = 0; i < 2000; ++i) flood += "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    flood += "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    rows.push_back(Raw("PipelinedFlood", flood, 200, "", std::vector<int>(2000, 200)));
  }
  Row head = Raw("HeadAnswerHasNoBody",
                 "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 200, "", {200});
  head.first_is_head = true;
  rows.push_back(head);
  rows.push_back(Raw("Http10ChunkedBody",
                     "POST /tokenize HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400,
                     "Transfer-Encoding is not supported"));
  Row half = Raw("HalfClosedMidBody", post("/tokenize", "Content-Length: 100\r\n", R"({"content":)"), 0, "");
  half.half_close = true;
  rows.push_back(half);
  return rows;
}

std::vector<Row> GrpcRows() {
  std::vector<Row> rows;
  const std::string big_text(5 << 20, 'a');
  auto with = [](v1::GenerateRequest g, auto&& edit) {
    edit(&g);
    return g;
  };
  std::string words;
  for (int i = 0; i < 5000; ++i) words += "hello ";
  const auto ok = Ids({1, 2, 3});

  // --- the worker's Generate
  rows.push_back(WorkerGen("WorkerNoPrompt", v1::GenerateRequest(), "prompt: set one of token_ids, text or chat"));
  rows.push_back(WorkerGen("WorkerEmptyTokenIds", Ids({}), "the prompt is empty"));
  rows.push_back(WorkerGen("WorkerNegativeTokenId", Ids({1, -5}), "token_ids.ids[1] = -5 is outside the vocabulary"));
  rows.push_back(WorkerGen("WorkerTokenIdAtVocab", Ids({1, kVocab}), "token_ids.ids[1] = 2048 is outside"));
  rows.push_back(WorkerGen("WorkerTokenIdInt32Max", Ids({std::numeric_limits<int32_t>::max()}), "ids[0] = 2147483647"));
  rows.push_back(WorkerGen("WorkerIdsOverContext", Ids(std::vector<int32_t>(kContext + 10, 7)),
                           "prompt has 4106 tokens; the context limit is 4096"));
  rows.push_back(WorkerGen("WorkerIdsFillContext", Ids(std::vector<int32_t>(kContext, 7)),
                           "prompt has 4096 tokens; the context limit is 4096"));
  rows.push_back(WorkerGen("WorkerTextOverContext", Text(words), "the context limit is 4096"));
  rows.push_back(WorkerGen("WorkerMaxTokensZero", with(ok, [](auto* g) { g->mutable_stop()->set_max_tokens(0); }),
                           "stop.max_tokens must be >= 1, got 0"));
  rows.push_back(WorkerGen("WorkerMaxTokensNegative", with(ok, [](auto* g) { g->mutable_stop()->set_max_tokens(-1); }),
                           "stop.max_tokens must be >= 1, got -1"));
  rows.push_back(WorkerGen("WorkerMaxTokensInt32Max",
                           with(ok, [](auto* g) { g->mutable_stop()->set_max_tokens(2147483647); }),
                           "exceeds the context limit of 4096 tokens"));
  rows.push_back(WorkerGen("WorkerRequestIdSpace", with(ok, [](auto* g) { g->set_request_id("a b"); }),
                           "request_id must be printable ASCII without spaces; byte 1"));
  rows.push_back(WorkerGen("WorkerRequestIdTooLong",
                           with(ok, [](auto* g) { g->set_request_id(std::string(129, 'r')); }),
                           "request_id must be 1..128 characters, got 129"));
  rows.push_back(WorkerGen("WorkerRequestIdControl", with(ok, [](auto* g) { g->set_request_id("a\x01"); }),
                           "request_id must be printable ASCII"));
  rows.push_back(WorkerGen("WorkerStopSeventeen",
                           with(ok,
                                [](auto* g) {
                                  for (int i = 0; i < 17; ++i) g->mutable_stop()->add_stop("s");
                                }),
                           "stop has 17 strings; at most 16"));
  rows.push_back(WorkerGen("WorkerStopHundredThousand",
                           with(ok,
                                [](auto* g) {
                                  for (int i = 0; i < 100000; ++i) g->mutable_stop()->add_stop("s");
                                }),
                           "stop has 100000 strings; at most 16"));
  rows.push_back(
      WorkerGen("WorkerStopEmpty", with(ok, [](auto* g) { g->mutable_stop()->add_stop(""); }), "stop[0] is empty"));
  rows.push_back(WorkerGen("WorkerStopTooLong",
                           with(ok, [](auto* g) { g->mutable_stop()->add_stop(std::string(257, 'x')); }),
                           "stop[0] is 257 bytes long; at most 256"));
  rows.push_back(WorkerGen("WorkerStopTokenIdsTooMany",
                           with(ok,
                                [](auto* g) {
                                  for (int i = 0; i < 65; ++i) g->mutable_stop()->add_stop_token_ids(5);
                                }),
                           "stop_token_ids has 65 entries; at most 64"));
  rows.push_back(WorkerGen("WorkerStopTokenIdOutsideVocabulary",
                           with(ok, [](auto* g) { g->mutable_stop()->add_stop_token_ids(-3); }),
                           "stop_token_ids[0] = -3 is outside the vocabulary"));
  struct SamplingCase {
    const char* name;
    void (*edit)(v1::SamplingParams*);
    const char* message;
  };
  static const SamplingCase kSampling[] = {
      {"TemperatureNaN", [](v1::SamplingParams* s) { s->set_temperature(std::nanf("")); }, "temperature"},
      {"TemperatureInfinite", [](v1::SamplingParams* s) { s->set_temperature(std::numeric_limits<float>::infinity()); },
       "temperature"},
      {"TemperatureNegative", [](v1::SamplingParams* s) { s->set_temperature(-1); }, "temperature"},
      {"TemperatureThree", [](v1::SamplingParams* s) { s->set_temperature(3); }, "temperature"},
      {"TopPZero", [](v1::SamplingParams* s) { s->set_top_p(0); }, "top_p"},
      {"TopPNaN", [](v1::SamplingParams* s) { s->set_top_p(std::nanf("")); }, "top_p"},
      {"TopKNegative", [](v1::SamplingParams* s) { s->set_top_k(-1); }, "top_k must be >= 0"},
      {"MinPTwo", [](v1::SamplingParams* s) { s->set_min_p(2); }, "min_p"},
      {"RepetitionPenaltyZero", [](v1::SamplingParams* s) { s->set_repetition_penalty(0); }, "repetition_penalty"},
      {"RepetitionPenaltyInfinite",
       [](v1::SamplingParams* s) { s->set_repetition_penalty(std::numeric_limits<float>::infinity()); },
       "repetition_penalty must be finite"},
      {"PenaltyLastNMinusTwo", [](v1::SamplingParams* s) { s->set_penalty_last_n(-2); },
       "penalty_last_n must be >= -1"},
      {"PresencePenaltyHuge", [](v1::SamplingParams* s) { s->set_presence_penalty(1e30f); }, "presence_penalty"},
      {"FrequencyPenaltyNaN", [](v1::SamplingParams* s) { s->set_frequency_penalty(std::nanf("")); },
       "frequency_penalty"},
      {"LogitBiasFiveThousand",
       [](v1::SamplingParams* s) {
         for (int i = 0; i < 5000; ++i) (*s->mutable_logit_bias())[i] = 1;
       },
       "logit_bias has 5000 entries; at most 2048"},
      {"LogitBiasIdOutsideVocabulary", [](v1::SamplingParams* s) { (*s->mutable_logit_bias())[99999] = 1; },
       "logit_bias token id 99999 is outside the vocabulary"},
      {"LogitBiasIdNegative", [](v1::SamplingParams* s) { (*s->mutable_logit_bias())[-7] = 1; },
       "logit_bias token id -7 is outside the vocabulary"},
      {"LogitBiasValueNaN", [](v1::SamplingParams* s) { (*s->mutable_logit_bias())[5] = std::nanf(""); },
       "logit_bias[5] must be in [-100, 100]"},
      {"LogitBiasValueHuge", [](v1::SamplingParams* s) { (*s->mutable_logit_bias())[5] = 1e9f; },
       "logit_bias[5] must be in [-100, 100]"},
  };
  for (const SamplingCase& sc : kSampling) {
    v1::GenerateRequest g = ok;
    sc.edit(g.mutable_sampling());
    rows.push_back(WorkerGen(absl::StrCat("Worker", sc.name), g, sc.message));
    // The router forwards sampling as it is: the worker's answer comes back.
    rows.push_back(RouterGen(absl::StrCat("Router", sc.name), g, sc.message));
  }
  // Every token banned: nothing could ever be sampled.
  v1::GenerateRequest banned = ok;
  for (int i = 0; i < kVocab; ++i) (*banned.mutable_sampling()->mutable_logit_bias())[i] = -100;
  rows.push_back(WorkerGen("WorkerLogitBiasBansEveryToken", banned, "logit_bias bans every token"));
  rows.push_back(RouterGen("RouterLogitBiasBansEveryToken", banned, "logit_bias bans every token"));
  for (int i = 0; i < kVocab; ++i) (*banned.mutable_sampling()->mutable_logit_bias())[i] = -INFINITY;
  rows.push_back(WorkerGen("WorkerLogitBiasBansEveryTokenWithInfinity", banned, "logit_bias bans every token"));
  // A penalty that overflows the logits of the prompt's tokens.
  std::vector<int32_t> every_id(kVocab);
  for (int i = 0; i < kVocab; ++i) every_id[i] = i;
  v1::GenerateRequest overflow = Ids(every_id, 1);
  overflow.mutable_sampling()->set_repetition_penalty(1e-40f);
  rows.push_back(
      WorkerGen("WorkerRepetitionPenaltyDenormal", overflow, "repetition_penalty must be in [1e-06, 1e+06]"));
  rows.push_back(
      RouterGen("RouterRepetitionPenaltyDenormal", overflow, "repetition_penalty must be in [1e-06, 1e+06]"));
  overflow.mutable_sampling()->set_repetition_penalty(1e38f);
  rows.push_back(WorkerGen("WorkerRepetitionPenaltyHuge", overflow, "repetition_penalty must be in [1e-06, 1e+06]"));
  // Extreme but valid requests are served.
  const grpc::StatusCode kOk = grpc::StatusCode::OK;
  (*banned.mutable_sampling()->mutable_logit_bias()).erase(kVocab - 1);
  rows.push_back(WorkerGen("WorkerLogitBiasBansAllButOneToken", banned, "", kOk));
  rows.push_back(WorkerGen("WorkerTopKInt32Max",
                           with(ok,
                                [](auto* g) {
                                  g->mutable_sampling()->set_temperature(1);
                                  g->mutable_sampling()->set_top_k(2147483647);
                                }),
                           "", kOk));
  rows.push_back(WorkerGen("WorkerPenaltyLastNInt32Max",
                           with(ok,
                                [](auto* g) {
                                  g->mutable_sampling()->set_penalty_last_n(2147483647);
                                  g->mutable_sampling()->set_repetition_penalty(1e-6f);
                                }),
                           "", kOk));
  rows.push_back(WorkerGen("WorkerSeedUint64Max",
                           with(ok,
                                [](auto* g) {
                                  g->mutable_sampling()->set_temperature(1);
                                  g->mutable_sampling()->set_seed(std::numeric_limits<uint64_t>::max());
                                }),
                           "", kOk));
  rows.push_back(WorkerGen("WorkerTemperatureDenormal",
                           with(ok, [](auto* g) { g->mutable_sampling()->set_temperature(1e-40f); }), "", kOk));
  rows.push_back(WorkerGen("WorkerTextWithNulBytes", Text(std::string("a\0b\0", 4)), "", kOk));
  rows.push_back(WorkerGen("WorkerStopStringNul",
                           with(ok, [](auto* g) { g->mutable_stop()->add_stop(std::string(1, '\0')); }), "", kOk));
  rows.push_back(WorkerGen("WorkerSpecialTokenText", Text("<|begin_of_text|><|eot_id|><|end_of_text|>"), "", kOk));
  rows.push_back(WorkerGen("WorkerTopLogprobsTwentyOne", with(ok, [](auto* g) { g->set_top_logprobs(21); }),
                           "top_logprobs must be in [0, 20], got 21"));
  rows.push_back(WorkerGen("WorkerTopLogprobsNegative", with(ok, [](auto* g) { g->set_top_logprobs(-1); }),
                           "top_logprobs must be in [0, 20], got -1"));
  v1::GenerateRequest chat;
  *chat.mutable_chat() = Chat({});
  rows.push_back(WorkerGen("WorkerChatEmpty", chat, "chat.messages is empty"));
  *chat.mutable_chat() = Chat({{"tool", "x"}});
  rows.push_back(WorkerGen("WorkerChatRoleTool", chat, "chat.messages[0].role must be system, user or assistant"));
  *chat.mutable_chat() = Chat({{"user", "hi"}, {std::string("us\0er", 5), "x"}});
  rows.push_back(WorkerGen("WorkerChatRoleWithNul", chat, "chat.messages[1].role must be system, user or assistant"));
  *chat.mutable_chat() = Chat({{std::string(1 << 20, 'r'), "x"}});
  rows.push_back(WorkerGen("WorkerChatRoleHuge", chat, "role must be system, user or assistant, got 'rrrr"));
  {
    std::vector<std::pair<std::string, std::string>> many(3000, {"user", "hi"});
    *chat.mutable_chat() = Chat(many);
    rows.push_back(WorkerGen("WorkerChatOverContext", chat, "the context limit is 4096"));
  }
  rows.push_back(
      WorkerGen("WorkerTextOverMessageLimit", Text(big_text), "larger than max", grpc::StatusCode::RESOURCE_EXHAUSTED));

  // --- the worker's Tokenize and Detokenize
  {
    Row r = Grpc("WorkerTokenizeNoInput", Via::kWorkerTokenize, grpc::StatusCode::INVALID_ARGUMENT,
                 "input: set text or chat");
    rows.push_back(r);
    *r.tokenize.mutable_chat() = Chat({});
    r.name = "WorkerTokenizeChatEmpty";
    r.message = "chat.messages is empty";
    rows.push_back(r);
    *r.tokenize.mutable_chat() = Chat({{"function", "x"}});
    r.name = "WorkerTokenizeChatBadRole";
    r.message = "chat.messages[0].role must be system, user or assistant, got 'function'";
    rows.push_back(r);
    r.tokenize.set_text(big_text);
    r.name = "WorkerTokenizeOverMessageLimit";
    r.expect = static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED);
    r.message = "larger than max";
    rows.push_back(r);
  }
  for (const auto& [name, ids, message] : std::vector<std::tuple<std::string, std::vector<int32_t>, std::string>>{
           {"WorkerDetokenizeNegative", {1, -1}, "ids[1] = -1 is outside the vocabulary [0, 2048)"},
           {"WorkerDetokenizeAtVocab", {kVocab}, "ids[0] = 2048 is outside the vocabulary"},
           {"WorkerDetokenizeInt32Min", {std::numeric_limits<int32_t>::min()}, "ids[0] = -2147483648"},
       }) {
    Row r = Grpc(name, Via::kWorkerDetokenize, grpc::StatusCode::INVALID_ARGUMENT, message);
    r.detokenize.mutable_ids()->Add(ids.begin(), ids.end());
    rows.push_back(r);
  }
  {
    Row r = Grpc("WorkerDetokenizeHugeListBadLast", Via::kWorkerDetokenize, grpc::StatusCode::INVALID_ARGUMENT,
                 "ids[499999] = 5000 is outside the vocabulary");
    std::vector<int32_t> ids(500000, 9);
    ids.back() = 5000;
    r.detokenize.mutable_ids()->Add(ids.begin(), ids.end());
    rows.push_back(r);
  }

  // --- the router's Generate
  rows.push_back(
      RouterGen("RouterNoPrompt", v1::GenerateRequest(), "request.prompt: set one of token_ids, text or chat"));
  rows.push_back(RouterGen("RouterEmptyTokenIds", Ids({}), "the prompt is empty"));
  rows.push_back(RouterGen("RouterTokenIdOutsideVocabulary", Ids({1, 2, 5000}),
                           "request.token_ids.ids[2] = 5000 is outside the vocabulary [0, 2048)"));
  rows.push_back(RouterGen("RouterNegativeTokenId", Ids({-1}), "request.token_ids.ids[0] = -1"));
  rows.push_back(RouterGen("RouterIdsOverContext", Ids(std::vector<int32_t>(kContext + 10, 7)),
                           "exceeds the context limit of 4096 tokens"));
  rows.push_back(RouterGen("RouterTextOverContext", Text(words), "exceeds the context limit of 4096 tokens"));
  rows.push_back(RouterGen("RouterMaxTokensInt32Max",
                           with(ok, [](auto* g) { g->mutable_stop()->set_max_tokens(2147483647); }),
                           "max_tokens (2147483647) exceeds the context limit of 4096"));
  rows.push_back(RouterGen("RouterMaxTokensZero", with(ok, [](auto* g) { g->mutable_stop()->set_max_tokens(0); }),
                           "stop.max_tokens must be >= 1, got 0"));
  rows.push_back(RouterGen("RouterMaxTokensNegative", with(ok, [](auto* g) { g->mutable_stop()->set_max_tokens(-5); }),
                           "stop.max_tokens must be >= 1, got -5"));
  rows.push_back(RouterGen("RouterUnknownModel", ok, "unknown model 'no-such-model'", grpc::StatusCode::NOT_FOUND,
                           "no-such-model"));
  rows.push_back(RouterGen("RouterModelNameHuge", ok, "unknown model 'mmmm", grpc::StatusCode::NOT_FOUND,
                           std::string(1 << 20, 'm')));
  rows.push_back(RouterGen("RouterRequestIdSpace", with(ok, [](auto* g) { g->set_request_id("a b"); }),
                           "request_id must be printable ASCII"));
  rows.push_back(RouterGen("RouterStopHundredThousand",
                           with(ok,
                                [](auto* g) {
                                  for (int i = 0; i < 100000; ++i) g->mutable_stop()->add_stop("s");
                                }),
                           "stop has 100000 strings; at most 16"));
  rows.push_back(RouterGen("RouterTopLogprobsHuge", with(ok, [](auto* g) { g->set_top_logprobs(1 << 30); }),
                           "top_logprobs must be in [0, 20]"));
  *chat.mutable_chat() = Chat({});
  rows.push_back(RouterGen("RouterChatEmpty", chat, "request.chat: messages is empty"));
  *chat.mutable_chat() = Chat({{"tool", "x"}});
  rows.push_back(RouterGen("RouterChatRoleTool", chat, "messages[0].role must be system, user or assistant"));
  rows.push_back(
      RouterGen("RouterTextOverMessageLimit", Text(big_text), "larger than max", grpc::StatusCode::RESOURCE_EXHAUSTED));
  {
    Row r =
        RouterGen("RouterGenerateWithoutApiKey", ok, "missing or invalid API key", grpc::StatusCode::UNAUTHENTICATED);
    r.auth = false;
    rows.push_back(r);
  }

  // --- the router's Tokenize
  {
    Row r = Grpc("RouterTokenizeNoInput", Via::kRouterTokenize, grpc::StatusCode::INVALID_ARGUMENT,
                 "input: set text or chat");
    rows.push_back(r);
    *r.tokenize.mutable_chat() = Chat({});
    r.name = "RouterTokenizeChatEmpty";
    r.message = "messages is empty";
    rows.push_back(r);
    *r.tokenize.mutable_chat() = Chat({{"ghost", "x"}});
    r.name = "RouterTokenizeChatBadRole";
    r.message = "messages[0].role must be system, user or assistant, got 'ghost'";
    rows.push_back(r);
    r.tokenize.set_text(big_text);
    r.name = "RouterTokenizeOverMessageLimit";
    r.expect = static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED);
    r.message = "larger than max";
    rows.push_back(r);
    r.tokenize.set_text("hi");
    r.auth = false;
    r.name = "RouterTokenizeWithoutApiKey";
    r.expect = static_cast<int>(grpc::StatusCode::UNAUTHENTICATED);
    r.message = "missing or invalid API key";
    rows.push_back(r);
  }

  // --- bytes that are not the method's message, and methods that do not
  // exist. gRPC's callback API answers a request it cannot deserialize with
  // UNIMPLEMENTED and no message before any service code runs; what matters
  // here is that nothing else is affected.
  for (Via via : {Via::kRouterBytes, Via::kWorkerBytes}) {
    const std::string service = via == Via::kRouterBytes ? "/wrinklefree.v1.Router/" : "/wrinklefree.v1.Worker/";
    const std::string who = via == Via::kRouterBytes ? "Router" : "Worker";
    Row r = Grpc(who + "TokenizeGarbageBytes", via, grpc::StatusCode::UNIMPLEMENTED, "");
    r.method_path = service + "Tokenize";
    r.body = Bytes("\xff\xff\xff\xff\x0f\x01garbage");
    rows.push_back(r);
    r.name = who + "GenerateInvalidUtf8Text";
    r.method_path = service + "Generate";
    // Field 4 (text) of GenerateRequest, length 2, bytes that are not UTF-8;
    // for the router's RouterGenerateRequest it is nested in field 1.
    const std::string text_field("\x22\x02\xc3\x28", 4);
    r.body = via == Via::kWorkerBytes ? text_field : std::string("\x0a\x04", 2) + text_field;
    rows.push_back(r);
    r.name = who + "GenerateDeeplyNestedUnknownGroups";
    r.body = std::string(200000, '\x7b');  // start-group tags of field 15, never closed
    rows.push_back(r);
    r.name = who + "GenerateOverlongVarint";
    r.body = "\x08" + std::string(11, '\xff') + "\x01";  // field 1 as a varint of 12 bytes
    rows.push_back(r);
    r.name = who + "UnknownMethod";
    r.method_path = service + "Detokenize2";
    r.body = "";
    r.expect = static_cast<int>(grpc::StatusCode::UNIMPLEMENTED);
    rows.push_back(r);
  }
  {
    Row r = Grpc("RouterHasNoDetokenize", Via::kRouterBytes, grpc::StatusCode::UNIMPLEMENTED, "");
    r.method_path = "/wrinklefree.v1.Router/Detokenize";
    rows.push_back(r);
  }
  return rows;
}

}  // namespace wf::hostile
