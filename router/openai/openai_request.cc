#include "router/openai/openai_request.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/string_view_compat.h"
#include "router/openai/internal/json_util.h"
#include "router/openai/internal/request_fields.h"
#include "router/openai/openai_api.h"

namespace wf::router::openai {
namespace {

using internal::AllIntegers;
using internal::AsInt;
using internal::Bound;
using internal::CheckText;
using internal::Find;
using internal::GetBool;
using internal::GetInt;
using internal::GetNumber;
using internal::GetString;
using internal::Json;
using internal::kInt32Max;
using internal::kNoMax;
using internal::ParseBody;
using internal::Show;
using internal::TokenIdArray;
using internal::Unsupported;
using internal::WrongType;

// ------------------------------------------------------------ shared fields

absl::Status ParseModel(const Json& j, bool required,
                        ParsedGenerateRequest* out) {
  BN_ASSIGN_OR_RETURN(std::optional<std::string> model, GetString(j, "model"));
  if (!model.has_value()) {
    if (required) return InvalidRequest("model is required", "model");
    return absl::OkStatus();
  }
  if (model->empty()) return InvalidRequest("model must not be empty", "model");
  out->model = std::move(*model);
  return absl::OkStatus();
}

absl::Status ParseStop(const Json& j, const RequestLimits& limits,
                       wrinklefree::v1::StopConditions* stop) {
  const Json* v = Find(j, "stop");
  if (v == nullptr) return absl::OkStatus();
  std::vector<std::pair<std::string, std::string>> items;  // (param, value)
  if (v->is_string()) {
    items.emplace_back("stop", v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > static_cast<size_t>(limits.max_stop_strings)) {
      return InvalidRequest(
          absl::StrFormat("stop has %d strings; the limit is %d", v->size(),
                          limits.max_stop_strings),
          "stop");
    }
    for (size_t k = 0; k < v->size(); ++k) {
      const std::string p = absl::StrFormat("stop[%d]", k);
      if (!(*v)[k].is_string()) return WrongType(p, "a string", (*v)[k]);
      items.emplace_back(p, (*v)[k].get<std::string>());
    }
  } else {
    return WrongType("stop", "a string or an array of strings", *v);
  }
  for (auto& [param, s] : items) {
    if (s.empty()) {
      return InvalidRequest(absl::StrCat(param, " must not be empty"), "stop");
    }
    if (s.size() > limits.max_stop_bytes) {
      return InvalidRequest(
          absl::StrFormat("%s is %d bytes; the limit is %d bytes", param,
                          s.size(), limits.max_stop_bytes),
          "stop");
    }
    BN_RETURN_IF_ERROR(CheckText(param, s));
    stop->add_stop(std::move(s));
  }
  return absl::OkStatus();
}

// OpenAI's map form {"<token id>": bias}; with `allow_pairs` also llama.cpp's
// [[id, bias], [id, false], ...] (false bans the token).
absl::Status ParseLogitBias(const Json& j, const RequestLimits& limits,
                            bool allow_pairs,
                            wrinklefree::v1::SamplingParams* sampling) {
  const Json* v = Find(j, "logit_bias");
  if (v == nullptr) return absl::OkStatus();
  auto add = [&](int64_t id, const Json& bias, const std::string& p) {
    double b;
    if (allow_pairs && bias.is_boolean() && !bias.get<bool>()) {
      b = -100.0;
    } else if (!bias.is_number()) {
      return InvalidRequest(absl::StrFormat("%s must be a number, got %s", p,
                                            bias.type_name()),
                            "logit_bias");
    } else {
      b = bias.get<double>();
    }
    if (b < -100.0 || b > 100.0) {
      return InvalidRequest(
          absl::StrFormat("%s must be in [-100, 100], got %s", p, Show(bias)),
          "logit_bias");
    }
    (*sampling->mutable_logit_bias())[static_cast<int32_t>(id)] =
        static_cast<float>(b);
    return absl::OkStatus();
  };
  if (v->size() > limits.max_logit_bias_entries) {
    return InvalidRequest(
        absl::StrFormat("logit_bias has %d entries; the limit is %d",
                        v->size(), limits.max_logit_bias_entries),
        "logit_bias");
  }
  if (v->is_object()) {
    for (auto it = v->begin(); it != v->end(); ++it) {
      const std::string& key = it.key();
      int64_t id = -1;
      const bool digits =
          !key.empty() && key.size() <= 10 &&
          key.find_first_not_of("0123456789") == std::string::npos;
      if (!digits || !absl::SimpleAtoi(key, &id) || id > kInt32Max) {
        return InvalidRequest(
            absl::StrFormat("logit_bias key %s is not a token id (expected a "
                            "non-negative integer string)",
                            Show(Json(key))),
            "logit_bias");
      }
      BN_RETURN_IF_ERROR(
          add(id, it.value(), absl::StrFormat("logit_bias[\"%s\"]", key)));
    }
    return absl::OkStatus();
  }
  if (allow_pairs && v->is_array()) {
    for (size_t k = 0; k < v->size(); ++k) {
      const Json& pair = (*v)[k];
      const std::string p = absl::StrFormat("logit_bias[%d]", k);
      if (!pair.is_array() || pair.size() != 2) {
        return InvalidRequest(
            absl::StrFormat("%s must be a [token_id, bias] pair, got %s", p,
                            Show(pair)),
            "logit_bias");
      }
      if (!pair[0].is_number_integer()) {
        return InvalidRequest(
            absl::StrFormat("%s[0] must be an integer token id, got %s "
                            "(token strings are not supported)",
                            p, pair[0].type_name()),
            "logit_bias");
      }
      BN_ASSIGN_OR_RETURN(int64_t id,
                          AsInt(pair[0], p + "[0]", 0, kInt32Max));
      BN_RETURN_IF_ERROR(add(id, pair[1], p + "[1]"));
    }
    return absl::OkStatus();
  }
  return WrongType("logit_bias",
                   allow_pairs ? "an object or an array of [id, bias] pairs"
                               : "an object mapping token ids to biases",
                   *v);
}

absl::Status ParseSeed(const Json& j, bool minus_one_is_random,
                       wrinklefree::v1::SamplingParams* sampling) {
  const Json* v = Find(j, "seed");
  if (v == nullptr) return absl::OkStatus();
  if (v->is_number_unsigned()) {
    sampling->set_seed(v->get<uint64_t>());
    return absl::OkStatus();
  }
  BN_ASSIGN_OR_RETURN(int64_t seed,
                      AsInt(*v, "seed", std::numeric_limits<int64_t>::min(),
                            kNoMax));
  if (minus_one_is_random && seed == -1) return absl::OkStatus();
  if (minus_one_is_random && seed < 0) {
    return InvalidRequest(
        absl::StrFormat("seed must be -1 (random) or >= 0, got %d", seed),
        "seed");
  }
  // Negative OpenAI seeds keep their two's-complement bits.
  sampling->set_seed(static_cast<uint64_t>(seed));
  return absl::OkStatus();
}

absl::Status ParseStopTokenIds(const Json& j, const RequestLimits& limits,
                               wrinklefree::v1::StopConditions* stop) {
  const Json* v = Find(j, "stop_token_ids");
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_array()) {
    return WrongType("stop_token_ids", "an array of token ids", *v);
  }
  BN_ASSIGN_OR_RETURN(
      std::vector<int32_t> ids,
      TokenIdArray(*v, "stop_token_ids", limits.max_stop_token_ids));
  for (int32_t id : ids) stop->add_stop_token_ids(id);
  return absl::OkStatus();
}

// Fields shared by /v1/chat/completions and /v1/completions.
absl::Status ParseOpenAiCommon(const Json& j, const RequestLimits& limits,
                               ParsedGenerateRequest* out) {
  wrinklefree::v1::GenerateRequest& g = out->request_template;
  wrinklefree::v1::SamplingParams& s = *g.mutable_sampling();

  BN_ASSIGN_OR_RETURN(std::optional<bool> stream, GetBool(j, "stream"));
  out->stream = stream.value_or(false);
  if (const Json* so = Find(j, "stream_options"); so != nullptr) {
    if (!so->is_object()) {
      return WrongType("stream_options", "an object", *so);
    }
    if (!out->stream) {
      return InvalidRequest(
          "stream_options is only allowed when stream is true",
          "stream_options");
    }
    BN_ASSIGN_OR_RETURN(
        std::optional<bool> usage,
        GetBool(*so, "include_usage", "stream_options.include_usage"));
    out->include_usage = usage.value_or(false);
  }

  BN_ASSIGN_OR_RETURN(std::optional<int64_t> n,
                      GetInt(j, "n", 1, limits.max_n));
  out->n = static_cast<int>(n.value_or(1));

  // max_completion_tokens supersedes the deprecated max_tokens.
  BN_ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens,
                      GetInt(j, "max_tokens", 1, kInt32Max));
  if (out->endpoint == Endpoint::kChatCompletions) {
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> mct,
                        GetInt(j, "max_completion_tokens", 1, kInt32Max));
    if (mct.has_value()) max_tokens = mct;
  }
  if (max_tokens.has_value()) {
    out->max_tokens = static_cast<int32_t>(*max_tokens);
    g.mutable_stop()->set_max_tokens(out->max_tokens);
  }

  BN_RETURN_IF_ERROR(ParseStop(j, limits, g.mutable_stop()));
  BN_RETURN_IF_ERROR(ParseStopTokenIds(j, limits, g.mutable_stop()));

  BN_ASSIGN_OR_RETURN(std::optional<double> temperature,
                      GetNumber(j, "temperature", 0.0, 2.0));
  if (temperature.has_value()) s.set_temperature(static_cast<float>(*temperature));
  BN_ASSIGN_OR_RETURN(std::optional<double> top_p,
                      GetNumber(j, "top_p", 0.0, 1.0, Bound::kExclusive));
  if (top_p.has_value()) s.set_top_p(static_cast<float>(*top_p));
  // vLLM spells "off" as -1, we as 0.
  BN_ASSIGN_OR_RETURN(std::optional<int64_t> top_k,
                      GetInt(j, "top_k", -1, kInt32Max));
  if (top_k.has_value()) s.set_top_k(static_cast<int32_t>(std::max<int64_t>(*top_k, 0)));
  BN_ASSIGN_OR_RETURN(std::optional<double> min_p,
                      GetNumber(j, "min_p", 0.0, 1.0));
  if (min_p.has_value()) s.set_min_p(static_cast<float>(*min_p));
  BN_ASSIGN_OR_RETURN(std::optional<double> presence,
                      GetNumber(j, "presence_penalty", -2.0, 2.0));
  if (presence.has_value()) s.set_presence_penalty(static_cast<float>(*presence));
  BN_ASSIGN_OR_RETURN(std::optional<double> frequency,
                      GetNumber(j, "frequency_penalty", -2.0, 2.0));
  if (frequency.has_value()) s.set_frequency_penalty(static_cast<float>(*frequency));
  BN_ASSIGN_OR_RETURN(
      std::optional<double> repetition,
      GetNumber(j, "repetition_penalty", 0.0, std::numeric_limits<double>::max(),
                Bound::kExclusive));
  if (repetition.has_value()) s.set_repetition_penalty(static_cast<float>(*repetition));
  BN_RETURN_IF_ERROR(ParseSeed(j, /*minus_one_is_random=*/false, &s));
  BN_RETURN_IF_ERROR(ParseLogitBias(j, limits, /*allow_pairs=*/false, &s));

  BN_ASSIGN_OR_RETURN(std::optional<bool> ignore_eos, GetBool(j, "ignore_eos"));
  g.mutable_stop()->set_ignore_eos(ignore_eos.value_or(false));
  BN_ASSIGN_OR_RETURN(std::optional<bool> skip_special,
                      GetBool(j, "skip_special_tokens"));
  if (skip_special.has_value()) g.set_skip_special_tokens(*skip_special);

  // Known extensions we cannot honour.
  BN_ASSIGN_OR_RETURN(std::optional<int64_t> min_tokens,
                      GetInt(j, "min_tokens", 0, kInt32Max));
  if (min_tokens.value_or(0) > 0) {
    return Unsupported("min_tokens", "generation cannot be forced past an "
                                     "end-of-generation token; use ignore_eos");
  }
  BN_ASSIGN_OR_RETURN(std::optional<bool> include_stop,
                      GetBool(j, "include_stop_str_in_output"));
  if (include_stop.value_or(false)) {
    return Unsupported("include_stop_str_in_output",
                       "stop strings are never included in the output");
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------ chat

absl::StatusOr<std::string> MessageContent(const Json& msg, size_t i,
                                           std::string_view role) {
  const std::string param = absl::StrFormat("messages[%d].content", i);
  const Json* c = Find(msg, "content");
  if (c == nullptr) {
    return InvalidRequest(
        absl::StrFormat("%s is required for role '%s'", param, role), param);
  }
  if (c->is_string()) {
    std::string s = c->get<std::string>();
    BN_RETURN_IF_ERROR(CheckText(param, s));
    return s;
  }
  if (!c->is_array()) {
    return WrongType(param, "a string or an array of text parts", *c);
  }
  std::vector<std::string> texts;
  for (size_t k = 0; k < c->size(); ++k) {
    const Json& part = (*c)[k];
    const std::string pp = absl::StrFormat("%s[%d]", param, k);
    if (!part.is_object()) return WrongType(pp, "an object", part);
    BN_ASSIGN_OR_RETURN(std::optional<std::string> type,
                        GetString(part, "type", pp + ".type"));
    if (!type.has_value()) {
      return InvalidRequest(absl::StrCat(pp, ".type is required"), pp + ".type");
    }
    if (*type != "text") {
      return InvalidRequest(
          absl::StrFormat("%s.type '%s' is not supported; only 'text' parts are",
                          pp, *type),
          pp + ".type");
    }
    BN_ASSIGN_OR_RETURN(std::optional<std::string> text,
                        GetString(part, "text", pp + ".text"));
    if (!text.has_value()) {
      return InvalidRequest(absl::StrCat(pp, ".text is required"), pp + ".text");
    }
    texts.push_back(std::move(*text));
  }
  return absl::StrJoin(texts, "\n");
}

absl::Status ParseMessages(const Json& j, const RequestLimits& limits,
                           ParsedGenerateRequest* out) {
  const Json* m = Find(j, "messages");
  if (m == nullptr) return InvalidRequest("messages is required", "messages");
  if (!m->is_array()) return WrongType("messages", "an array of messages", *m);
  if (m->empty()) {
    return InvalidRequest("messages must contain at least one message",
                          "messages");
  }
  if (m->size() > limits.max_messages) {
    return InvalidRequest(
        absl::StrFormat("messages has %d entries; the limit is %d", m->size(),
                        limits.max_messages),
        "messages");
  }
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& msg = (*m)[i];
    const std::string p = absl::StrFormat("messages[%d]", i);
    if (!msg.is_object()) return WrongType(p, "an object", msg);
    BN_ASSIGN_OR_RETURN(std::optional<std::string> role,
                        GetString(msg, "role", p + ".role"));
    if (!role.has_value()) {
      return InvalidRequest(absl::StrCat(p, ".role is required"), p + ".role");
    }
    std::string mapped;
    if (*role == "system" || *role == "developer") {
      mapped = "system";
    } else if (*role == "user" || *role == "assistant") {
      mapped = *role;
    } else if (*role == "tool" || *role == "function") {
      return InvalidRequest(
          absl::StrFormat("%s.role '%s' is not supported: this server does "
                          "not do tool calling",
                          p, *role),
          p + ".role");
    } else {
      return InvalidRequest(
          absl::StrFormat("%s.role must be one of 'system', 'developer', "
                          "'user', 'assistant'; got %s",
                          p, Show(Json(*role))),
          p + ".role");
    }
    if (const Json* tc = Find(msg, "tool_calls");
        tc != nullptr && !(tc->is_array() && tc->empty())) {
      return Unsupported(p + ".tool_calls",
                         "this server does not do tool calling");
    }
    if (const Json* fc = Find(msg, "function_call"); fc != nullptr) {
      return Unsupported(p + ".function_call",
                         "this server does not do tool calling");
    }
    BN_ASSIGN_OR_RETURN(std::string content, MessageContent(msg, i, *role));
    wrinklefree::v1::ChatMessage* cm = out->chat.add_messages();
    cm->set_role(std::move(mapped));
    cm->set_content(std::move(content));
  }
  return absl::OkStatus();
}

absl::Status RejectUnsupportedChat(const Json& j) {
  const Json* tools = Find(j, "tools");
  if (tools != nullptr && !(tools->is_array() && tools->empty())) {
    return Unsupported("tools", "this server does not do tool calling");
  }
  if (const Json* tc = Find(j, "tool_choice"); tc != nullptr) {
    if (!(tc->is_string() && (*tc == "none" || *tc == "auto"))) {
      return Unsupported("tool_choice", "this server does not do tool calling");
    }
  }
  if (const Json* f = Find(j, "functions");
      f != nullptr && !(f->is_array() && f->empty())) {
    return Unsupported("functions", "this server does not do function calling");
  }
  if (const Json* fc = Find(j, "function_call"); fc != nullptr) {
    if (!(fc->is_string() && (*fc == "none" || *fc == "auto"))) {
      return Unsupported("function_call",
                         "this server does not do function calling");
    }
  }
  if (const Json* rf = Find(j, "response_format"); rf != nullptr) {
    if (!rf->is_object()) return WrongType("response_format", "an object", *rf);
    const Json* type = Find(*rf, "type");
    if (type == nullptr || !type->is_string()) {
      return InvalidRequest("response_format.type must be a string",
                            "response_format.type");
    }
    if (*type != "text") {
      return InvalidRequest(
          absl::StrFormat("response_format type '%s' is not supported; only "
                          "'text' is",
                          type->get<std::string>()),
          "response_format");
    }
  }
  if (Find(j, "audio") != nullptr) {
    return Unsupported("audio", "this server produces text only");
  }
  if (const Json* mod = Find(j, "modalities"); mod != nullptr) {
    if (!(mod->is_array() && mod->size() == 1 && (*mod)[0] == "text")) {
      return Unsupported("modalities", "only [\"text\"] is");
    }
  }
  if (Find(j, "prediction") != nullptr) {
    return Unsupported("prediction", "predicted outputs are not implemented");
  }
  if (Find(j, "web_search_options") != nullptr) {
    return Unsupported("web_search_options", "this server has no web search");
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------ prompts

// A prompt that is a string, an array of token ids, or a one-element array of
// either (OpenAI's batch form with a single prompt).
absl::Status ParsePrompt(const Json& j, const RequestLimits& limits,
                         ParsedGenerateRequest* out) {
  const Json* p = Find(j, "prompt");
  if (p == nullptr) return InvalidRequest("prompt is required", "prompt");
  const Json* one = p;
  std::string param = "prompt";
  if (p->is_array() && p->size() == 1 && !(*p)[0].is_number()) {
    one = &(*p)[0];
    param = "prompt[0]";
  }
  if (one->is_string()) {
    std::string text = one->get<std::string>();
    if (text.empty()) {
      return InvalidRequest(absl::StrCat(param, " must not be empty"), "prompt");
    }
    BN_RETURN_IF_ERROR(CheckText(param, text));
    out->prompt_kind = PromptKind::kText;
    out->text = std::move(text);
    return absl::OkStatus();
  }
  if (!one->is_array()) {
    return WrongType(param, "a string or an array of token ids", *one);
  }
  if (one->empty()) {
    return InvalidRequest(absl::StrCat(param, " must not be empty"), "prompt");
  }
  if (AllIntegers(*one)) {
    BN_ASSIGN_OR_RETURN(out->token_ids,
                        TokenIdArray(*one, param, limits.max_prompt_token_ids));
    out->prompt_kind = PromptKind::kTokenIds;
    return absl::OkStatus();
  }
  bool all_prompts = true;  // every element a string or an array
  for (const Json& e : *one) all_prompts = all_prompts && (e.is_string() || e.is_array());
  if (one == p && all_prompts) {
    return InvalidRequest(
        absl::StrFormat("prompt with %d prompts in one request is not "
                        "supported; send one request per prompt (or use n "
                        "for several completions of one prompt)",
                        one->size()),
        "prompt");
  }
  return InvalidRequest(
      absl::StrFormat("%s must be a string, an array of token ids, or a "
                      "one-element array of either; got a mixed array",
                      param),
      "prompt");
}

absl::Status ParseCompletionLogprobs(const Json& j, const RequestLimits& limits,
                                     ParsedGenerateRequest* out) {
  const Json* v = Find(j, "logprobs");
  if (v == nullptr) return absl::OkStatus();
  if (v->is_boolean()) {
    return WrongType("logprobs",
                     absl::StrFormat("an integer in [0, %d] (the number of "
                                     "alternatives per token)",
                                     limits.max_completion_logprobs),
                     *v);
  }
  BN_ASSIGN_OR_RETURN(int64_t k, AsInt(*v, "logprobs", 0,
                                       limits.max_completion_logprobs));
  out->logprobs = true;
  out->top_logprobs = static_cast<int>(k);
  out->request_template.set_logprobs(true);
  out->request_template.set_top_logprobs(out->top_logprobs);
  return absl::OkStatus();
}

}  // namespace

// ------------------------------------------------------------ public

absl::StatusOr<ParsedGenerateRequest> ParseChatCompletionRequest(
    std::string_view body, const RequestLimits& limits) {
  BN_ASSIGN_OR_RETURN(Json j, ParseBody(body, limits));
  ParsedGenerateRequest out;
  out.endpoint = Endpoint::kChatCompletions;
  out.prompt_kind = PromptKind::kChat;
  try {
    BN_RETURN_IF_ERROR(ParseModel(j, /*required=*/true, &out));
    BN_RETURN_IF_ERROR(ParseMessages(j, limits, &out));
    BN_RETURN_IF_ERROR(RejectUnsupportedChat(j));
    BN_RETURN_IF_ERROR(ParseOpenAiCommon(j, limits, &out));
    BN_ASSIGN_OR_RETURN(std::optional<bool> logprobs, GetBool(j, "logprobs"));
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> top,
                        GetInt(j, "top_logprobs", 0, limits.max_top_logprobs));
    if (top.value_or(0) > 0 && !logprobs.value_or(false)) {
      return InvalidRequest("top_logprobs requires logprobs to be true",
                            "top_logprobs");
    }
    out.logprobs = logprobs.value_or(false);
    out.top_logprobs = static_cast<int>(top.value_or(0));
    out.request_template.set_logprobs(out.logprobs);
    out.request_template.set_top_logprobs(out.top_logprobs);
  } catch (const std::exception& e) {
    return MakeApiStatus(500, absl::StrCat("internal error while validating "
                                           "the request: ", e.what()));
  }
  return out;
}

absl::StatusOr<ParsedGenerateRequest> ParseCompletionRequest(
    std::string_view body, const RequestLimits& limits) {
  BN_ASSIGN_OR_RETURN(Json j, ParseBody(body, limits));
  ParsedGenerateRequest out;
  out.endpoint = Endpoint::kCompletions;
  try {
    BN_RETURN_IF_ERROR(ParseModel(j, /*required=*/true, &out));
    BN_RETURN_IF_ERROR(ParsePrompt(j, limits, &out));
    BN_RETURN_IF_ERROR(ParseOpenAiCommon(j, limits, &out));
    BN_RETURN_IF_ERROR(ParseCompletionLogprobs(j, limits, &out));
    BN_ASSIGN_OR_RETURN(std::optional<bool> echo, GetBool(j, "echo"));
    if (echo.value_or(false)) {
      return Unsupported("echo", "the prompt is not repeated in the output");
    }
    BN_ASSIGN_OR_RETURN(std::optional<std::string> suffix,
                        GetString(j, "suffix"));
    if (suffix.has_value() && !suffix->empty()) {
      return Unsupported("suffix", "insertion (fill-in-the-middle) is not "
                                   "implemented");
    }
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> best_of,
                        GetInt(j, "best_of", 1, kInt32Max));
    if (best_of.has_value() && *best_of < out.n) {
      return InvalidRequest(
          absl::StrFormat("best_of must be >= n, got best_of %d with n %d",
                          *best_of, out.n),
          "best_of");
    }
    if (best_of.has_value() && *best_of > out.n) {
      return InvalidRequest(
          absl::StrFormat("best_of > n is not supported (got best_of %d with "
                          "n %d); server-side ranking is not implemented",
                          *best_of, out.n),
          "best_of");
    }
  } catch (const std::exception& e) {
    return MakeApiStatus(500, absl::StrCat("internal error while validating "
                                           "the request: ", e.what()));
  }
  return out;
}

absl::StatusOr<ParsedGenerateRequest> ParseLlamaCompletionRequest(
    std::string_view body, const RequestLimits& limits) {
  BN_ASSIGN_OR_RETURN(Json j, ParseBody(body, limits));
  ParsedGenerateRequest out;
  out.endpoint = Endpoint::kLlamaCompletion;
  wrinklefree::v1::GenerateRequest& g = out.request_template;
  wrinklefree::v1::SamplingParams& s = *g.mutable_sampling();
  try {
    BN_RETURN_IF_ERROR(ParseModel(j, /*required=*/false, &out));
    BN_RETURN_IF_ERROR(ParsePrompt(j, limits, &out));

    BN_ASSIGN_OR_RETURN(std::optional<bool> stream, GetBool(j, "stream"));
    out.stream = stream.value_or(false);

    const char* limit_key = Find(j, "n_predict") != nullptr ? "n_predict"
                                                            : "max_tokens";
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> n_predict,
                        GetInt(j, limit_key, -1, kInt32Max));
    if (n_predict.has_value() && *n_predict == 0) {
      return InvalidRequest(
          absl::StrCat(limit_key, " must be -1 (until a stop condition or the "
                                  "context limit) or >= 1, got 0"),
          limit_key);
    }
    if (n_predict.has_value() && *n_predict > 0) {
      out.max_tokens = static_cast<int32_t>(*n_predict);
      g.mutable_stop()->set_max_tokens(out.max_tokens);
    } else if (n_predict.has_value()) {
      out.max_tokens_until_context = true;
    }

    BN_RETURN_IF_ERROR(ParseStop(j, limits, g.mutable_stop()));

    // A temperature <= 0 means greedy in llama.cpp.
    double temperature = 0.8;
    if (const Json* t = Find(j, "temperature"); t != nullptr) {
      if (!t->is_number()) return WrongType("temperature", "a number", *t);
      temperature = t->get<double>();
      if (temperature > 2.0) {
        return InvalidRequest(
            absl::StrCat("temperature must be <= 2, got ", Show(*t)),
            "temperature");
      }
    }
    s.set_temperature(static_cast<float>(std::max(temperature, 0.0)));
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> top_k,
                        GetInt(j, "top_k", std::numeric_limits<int32_t>::min(),
                               kInt32Max));
    s.set_top_k(static_cast<int32_t>(std::max<int64_t>(top_k.value_or(40), 0)));
    BN_ASSIGN_OR_RETURN(std::optional<double> top_p,
                        GetNumber(j, "top_p", 0.0, 1.0, Bound::kExclusive));
    s.set_top_p(static_cast<float>(top_p.value_or(0.95)));
    BN_ASSIGN_OR_RETURN(std::optional<double> min_p,
                        GetNumber(j, "min_p", 0.0, 1.0));
    s.set_min_p(static_cast<float>(min_p.value_or(0.05)));
    BN_ASSIGN_OR_RETURN(std::optional<double> presence,
                        GetNumber(j, "presence_penalty", -2.0, 2.0));
    s.set_presence_penalty(static_cast<float>(presence.value_or(0.0)));
    BN_ASSIGN_OR_RETURN(std::optional<double> frequency,
                        GetNumber(j, "frequency_penalty", -2.0, 2.0));
    s.set_frequency_penalty(static_cast<float>(frequency.value_or(0.0)));
    BN_ASSIGN_OR_RETURN(
        std::optional<double> repeat,
        GetNumber(j, "repeat_penalty", 0.0, std::numeric_limits<double>::max(),
                  Bound::kExclusive));
    if (repeat.has_value()) s.set_repetition_penalty(static_cast<float>(*repeat));
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> last_n,
                        GetInt(j, "repeat_last_n", -1, kInt32Max));
    s.set_penalty_last_n(static_cast<int32_t>(last_n.value_or(64)));
    BN_RETURN_IF_ERROR(ParseSeed(j, /*minus_one_is_random=*/true, &s));
    BN_RETURN_IF_ERROR(ParseLogitBias(j, limits, /*allow_pairs=*/true, &s));

    BN_ASSIGN_OR_RETURN(std::optional<bool> ignore_eos, GetBool(j, "ignore_eos"));
    g.mutable_stop()->set_ignore_eos(ignore_eos.value_or(false));
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> n_probs,
                        GetInt(j, "n_probs", 0, limits.max_top_logprobs));
    if (n_probs.value_or(0) > 0) {
      out.logprobs = true;
      out.top_logprobs = static_cast<int>(*n_probs);
      g.set_logprobs(true);
      g.set_top_logprobs(out.top_logprobs);
    }
    BN_ASSIGN_OR_RETURN(std::optional<bool> cache_prompt,
                        GetBool(j, "cache_prompt"));
    (void)cache_prompt;  // Prefix caching is always on.
    BN_ASSIGN_OR_RETURN(std::optional<bool> return_tokens,
                        GetBool(j, "return_tokens"));
    out.return_tokens = return_tokens.value_or(false);

    BN_ASSIGN_OR_RETURN(std::optional<int64_t> n,
                        GetInt(j, "n", 1, kInt32Max));
    if (n.value_or(1) > 1) {
      return Unsupported("n", "/completion returns one completion; use "
                              "/v1/completions for n > 1");
    }
    for (const char* key : {"grammar", "json_schema"}) {
      const Json* v = Find(j, key);
      if (v != nullptr && !(v->is_string() && v->get<std::string>().empty()) &&
          !(v->is_object() && v->empty())) {
        return Unsupported(key, "constrained generation is not implemented");
      }
    }
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> mirostat,
                        GetInt(j, "mirostat", 0, 2));
    if (mirostat.value_or(0) != 0) {
      return Unsupported("mirostat", "only top-k/top-p/min-p sampling is "
                                     "implemented");
    }
  } catch (const std::exception& e) {
    return MakeApiStatus(500, absl::StrCat("internal error while validating "
                                           "the request: ", e.what()));
  }
  return out;
}

wrinklefree::v1::GenerateRequest MakeChoiceRequest(
    const ParsedGenerateRequest& request, int choice_index,
    std::string_view request_id) {
  wrinklefree::v1::GenerateRequest g = request.request_template;
  g.set_request_id(std::string(request_id));
  if (request.n > 1 && g.sampling().has_seed()) {
    g.mutable_sampling()->set_seed(g.sampling().seed() +
                                   static_cast<uint64_t>(choice_index));
  }
  return g;
}

absl::StatusOr<ParsedTokenizeRequest> ParseTokenizeRequest(
    std::string_view body, const RequestLimits& limits) {
  BN_ASSIGN_OR_RETURN(Json j, ParseBody(body, limits));
  ParsedTokenizeRequest out;
  try {
    BN_ASSIGN_OR_RETURN(std::optional<std::string> content,
                        GetString(j, "content"));
    if (!content.has_value()) {
      return InvalidRequest("content is required", "content");
    }
    out.content = std::move(*content);
    BN_ASSIGN_OR_RETURN(std::optional<bool> add_special,
                        GetBool(j, "add_special"));
    out.add_special = add_special.value_or(false);
    BN_ASSIGN_OR_RETURN(std::optional<bool> parse_special,
                        GetBool(j, "parse_special"));
    out.parse_special = parse_special.value_or(true);
    BN_ASSIGN_OR_RETURN(std::optional<bool> with_pieces,
                        GetBool(j, "with_pieces"));
    out.with_pieces = with_pieces.value_or(false);
  } catch (const std::exception& e) {
    return MakeApiStatus(500, absl::StrCat("internal error while validating "
                                           "the request: ", e.what()));
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> ParseDetokenizeRequest(
    std::string_view body, const RequestLimits& limits) {
  BN_ASSIGN_OR_RETURN(Json j, ParseBody(body, limits));
  try {
    const Json* t = Find(j, "tokens");
    if (t == nullptr) return InvalidRequest("tokens is required", "tokens");
    if (!t->is_array()) return WrongType("tokens", "an array of token ids", *t);
    return TokenIdArray(*t, "tokens", limits.max_prompt_token_ids);
  } catch (const std::exception& e) {
    return MakeApiStatus(500, absl::StrCat("internal error while validating "
                                           "the request: ", e.what()));
  }
}

}  // namespace wf::router::openai
