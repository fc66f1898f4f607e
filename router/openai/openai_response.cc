#include "router/openai/openai_response.h"

#include <algorithm>
#include <string>
#include <utility>

#include "router/openai/internal/json_util.h"
#include "router/openai/openai_api.h"

namespace wf::router::openai {
namespace {

using internal::BytesArray;
using internal::FiniteLogprob;
using internal::OrderedJson;
using internal::TokenDisplayString;
using wrinklefree::v1::GeneratedToken;

OrderedJson NullIfEmpty(const std::string& s) {
  return s.empty() ? OrderedJson(nullptr) : OrderedJson(s);
}

OrderedJson FinishJson(wrinklefree::v1::FinishReason reason) {
  std::string_view s = FinishReasonString(reason);
  return s.empty() ? OrderedJson(nullptr) : OrderedJson(std::string(s));
}

OrderedJson UsageJson(const UsageCounts& u) {
  return OrderedJson{
      {"prompt_tokens", u.prompt_tokens},
      {"completion_tokens", u.completion_tokens},
      {"total_tokens", u.prompt_tokens + u.completion_tokens},
      {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
  };
}

// The fields every response object starts with, in OpenAI's order.
OrderedJson Envelope(const ResponseContext& ctx, std::string_view object) {
  return OrderedJson{
      {"id", ctx.id},
      {"object", std::string(object)},
      {"created", ctx.created},
      {"model", ctx.model},
      {"system_fingerprint", NullIfEmpty(ctx.system_fingerprint)},
  };
}

// ------------------------------------------------------------ logprobs

OrderedJson ChatTokenLogprob(const std::string& bytes, double logprob) {
  return OrderedJson{
      {"token", TokenDisplayString(bytes)},
      {"logprob", FiniteLogprob(logprob)},
      {"bytes", BytesArray(bytes)},
  };
}

OrderedJson ChatLogprobs(const GeneratedTokens& tokens) {
  OrderedJson content = OrderedJson::array();
  for (const GeneratedToken& t : tokens) {
    OrderedJson entry = ChatTokenLogprob(t.token_bytes(), t.logprob());
    OrderedJson top = OrderedJson::array();
    for (const auto& alt : t.top_logprobs()) {
      top.push_back(ChatTokenLogprob(alt.token_bytes(), alt.logprob()));
    }
    entry["top_logprobs"] = std::move(top);
    content.push_back(std::move(entry));
  }
  return OrderedJson{{"content", std::move(content)}, {"refusal", nullptr}};
}

OrderedJson CompletionLogprobs(const GeneratedTokens& tokens,
                               int64_t* text_offset) {
  OrderedJson strs = OrderedJson::array();
  OrderedJson lps = OrderedJson::array();
  OrderedJson tops = OrderedJson::array();
  OrderedJson offsets = OrderedJson::array();
  for (const GeneratedToken& t : tokens) {
    strs.push_back(TokenDisplayString(t.token_bytes()));
    lps.push_back(FiniteLogprob(t.logprob()));
    OrderedJson top = OrderedJson::object();
    for (const auto& alt : t.top_logprobs()) {
      top[TokenDisplayString(alt.token_bytes())] = FiniteLogprob(alt.logprob());
    }
    tops.push_back(std::move(top));
    offsets.push_back(*text_offset);
    *text_offset += static_cast<int64_t>(internal::CountCodePoints(t.token_bytes()));
  }
  return OrderedJson{{"tokens", std::move(strs)},
                     {"token_logprobs", std::move(lps)},
                     {"top_logprobs", std::move(tops)},
                     {"text_offset", std::move(offsets)}};
}

// llama.cpp's completion_probabilities entries.
OrderedJson LlamaProbEntry(int32_t id, const std::string& bytes,
                           double logprob) {
  return OrderedJson{
      {"id", id},
      {"token", TokenDisplayString(bytes)},
      {"bytes", BytesArray(bytes)},
      {"logprob", FiniteLogprob(logprob)},
  };
}

OrderedJson LlamaProbabilities(const GeneratedTokens& tokens) {
  OrderedJson out = OrderedJson::array();
  for (const GeneratedToken& t : tokens) {
    OrderedJson entry = LlamaProbEntry(t.token_id(), t.token_bytes(), t.logprob());
    OrderedJson top = OrderedJson::array();
    for (const auto& alt : t.top_logprobs()) {
      top.push_back(LlamaProbEntry(alt.token_id(), alt.token_bytes(), alt.logprob()));
    }
    entry["top_logprobs"] = std::move(top);
    out.push_back(std::move(entry));
  }
  return out;
}

OrderedJson TokenIds(const GeneratedTokens& tokens) {
  OrderedJson ids = OrderedJson::array();
  for (const GeneratedToken& t : tokens) ids.push_back(t.token_id());
  return ids;
}

// ------------------------------------------------------------ chunks

std::string ChatChunk(const ResponseContext& ctx, OrderedJson choice) {
  OrderedJson chunk = Envelope(ctx, "chat.completion.chunk");
  chunk["choices"] = OrderedJson::array({std::move(choice)});
  if (ctx.include_usage) chunk["usage"] = nullptr;
  return SseEvent(internal::Dump(chunk));
}

std::string_view LlamaStopType(const ChoiceResult& c) {
  switch (c.finish_reason) {
    case wrinklefree::v1::FINISH_REASON_STOP:
      return c.matched_stop.empty() ? "eos" : "word";
    case wrinklefree::v1::FINISH_REASON_LENGTH:
      return "limit";
    default:
      return "none";
  }
}

OrderedJson LlamaGenerationSettings(const ParsedGenerateRequest& r) {
  const wrinklefree::v1::SamplingParams& s = r.request_template.sampling();
  const wrinklefree::v1::StopConditions& st = r.request_template.stop();
  OrderedJson stop = OrderedJson::array();
  for (const std::string& w : st.stop()) stop.push_back(w);
  OrderedJson bias = OrderedJson::array();
  std::vector<std::pair<int32_t, float>> sorted(s.logit_bias().begin(),
                                                s.logit_bias().end());
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [id, b] : sorted) {
    bias.push_back(OrderedJson{{"bias", b}, {"token", id}});
  }
  return OrderedJson{
      {"n_predict", r.max_tokens},
      {"seed", s.has_seed() ? OrderedJson(s.seed()) : OrderedJson(-1)},
      {"temperature", s.has_temperature() ? s.temperature() : 1.0f},
      {"top_k", s.top_k()},
      {"top_p", s.has_top_p() ? s.top_p() : 1.0f},
      {"min_p", s.min_p()},
      {"repeat_last_n", s.has_penalty_last_n() ? s.penalty_last_n() : 64},
      {"repeat_penalty",
       s.has_repetition_penalty() ? s.repetition_penalty() : 1.0f},
      {"presence_penalty", s.presence_penalty()},
      {"frequency_penalty", s.frequency_penalty()},
      {"ignore_eos", st.ignore_eos()},
      {"stop", std::move(stop)},
      {"logit_bias", std::move(bias)},
      {"n_probs", r.top_logprobs},
      {"stream", r.stream},
  };
}

OrderedJson LlamaTimings(const UsageCounts& usage,
                         const wrinklefree::v1::Timing& timing) {
  const int prompt_n = std::max(0, usage.prompt_tokens - usage.cached_tokens);
  const int predicted_n = usage.completion_tokens;
  const double prompt_ms = std::max(
      0.0, (timing.time_to_first_token_seconds() - timing.queue_seconds()) * 1e3);
  const double predicted_ms = std::max(
      0.0, (timing.total_seconds() - timing.time_to_first_token_seconds()) * 1e3);
  auto per_token = [](double ms, int n) { return n > 0 ? ms / n : 0.0; };
  auto per_second = [](double ms, int n) { return ms > 0 ? n * 1e3 / ms : 0.0; };
  return OrderedJson{
      {"cache_n", usage.cached_tokens},
      {"prompt_n", prompt_n},
      {"prompt_ms", prompt_ms},
      {"prompt_per_token_ms", per_token(prompt_ms, prompt_n)},
      {"prompt_per_second", per_second(prompt_ms, prompt_n)},
      {"predicted_n", predicted_n},
      {"predicted_ms", predicted_ms},
      {"predicted_per_token_ms", per_token(predicted_ms, predicted_n)},
      {"predicted_per_second", per_second(predicted_ms, predicted_n)},
  };
}

OrderedJson LlamaFinal(const ParsedGenerateRequest& request,
                       std::string_view model, std::string_view prompt,
                       const ChoiceResult& choice, const UsageCounts& usage,
                       const wrinklefree::v1::Timing& timing, bool streamed) {
  OrderedJson res = {
      {"index", 0},
      {"content", streamed ? std::string() : choice.text},
      {"tokens", request.return_tokens && !streamed ? TokenIds(choice.tokens)
                                                    : OrderedJson::array()},
      {"id_slot", -1},
      {"stop", true},
      {"model", std::string(model)},
      {"tokens_predicted", usage.completion_tokens},
      {"tokens_evaluated", usage.prompt_tokens},
      {"generation_settings", LlamaGenerationSettings(request)},
      {"prompt", std::string(prompt)},
      {"has_new_line", choice.text.find('\n') != std::string::npos},
      {"truncated", false},
      {"stop_type", std::string(LlamaStopType(choice))},
      {"stopping_word", choice.matched_stop},
      {"tokens_cached", usage.cached_tokens},
      {"timings", LlamaTimings(usage, timing)},
  };
  if (request.logprobs && !streamed) {
    res["completion_probabilities"] = LlamaProbabilities(choice.tokens);
  }
  return res;
}

}  // namespace

UsageCounts AggregateUsage(const std::vector<wrinklefree::v1::Usage>& choices) {
  UsageCounts u;
  if (choices.empty()) return u;
  u.prompt_tokens = choices.front().prompt_tokens();
  u.cached_tokens = choices.front().cached_prompt_tokens();
  for (const auto& c : choices) u.completion_tokens += c.completion_tokens();
  return u;
}

std::string ChatCompletionBody(const ResponseContext& ctx,
                               const std::vector<ChoiceResult>& choices,
                               const UsageCounts& usage, bool logprobs) {
  OrderedJson body = Envelope(ctx, "chat.completion");
  OrderedJson list = OrderedJson::array();
  for (const ChoiceResult& c : choices) {
    list.push_back(OrderedJson{
        {"index", c.index},
        {"message",
         {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}}},
        {"logprobs", logprobs ? ChatLogprobs(c.tokens) : OrderedJson(nullptr)},
        {"finish_reason", FinishJson(c.finish_reason)},
    });
  }
  body["choices"] = std::move(list);
  body["usage"] = UsageJson(usage);
  return internal::Dump(body);
}

std::string ChatRoleChunkEvent(const ResponseContext& ctx, int index) {
  return ChatChunk(ctx, OrderedJson{
                            {"index", index},
                            {"delta", {{"role", "assistant"}, {"content", ""}}},
                            {"logprobs", nullptr},
                            {"finish_reason", nullptr},
                        });
}

std::string ChatContentChunkEvent(const ResponseContext& ctx, int index,
                                  std::string_view text,
                                  const GeneratedTokens* logprob_tokens) {
  return ChatChunk(
      ctx, OrderedJson{
               {"index", index},
               {"delta", {{"content", std::string(text)}}},
               {"logprobs", logprob_tokens != nullptr
                                ? ChatLogprobs(*logprob_tokens)
                                : OrderedJson(nullptr)},
               {"finish_reason", nullptr},
           });
}

std::string ChatFinishChunkEvent(const ResponseContext& ctx, int index,
                                 wrinklefree::v1::FinishReason reason) {
  return ChatChunk(ctx, OrderedJson{
                            {"index", index},
                            {"delta", OrderedJson::object()},
                            {"logprobs", nullptr},
                            {"finish_reason", FinishJson(reason)},
                        });
}

std::string ChatUsageChunkEvent(const ResponseContext& ctx,
                                const UsageCounts& usage) {
  OrderedJson chunk = Envelope(ctx, "chat.completion.chunk");
  chunk["choices"] = OrderedJson::array();
  chunk["usage"] = UsageJson(usage);
  return SseEvent(internal::Dump(chunk));
}

std::string CompletionBody(const ResponseContext& ctx,
                           const std::vector<ChoiceResult>& choices,
                           const UsageCounts& usage, bool logprobs) {
  OrderedJson body = Envelope(ctx, "text_completion");
  OrderedJson list = OrderedJson::array();
  for (const ChoiceResult& c : choices) {
    int64_t offset = 0;
    list.push_back(OrderedJson{
        {"index", c.index},
        {"text", c.text},
        {"logprobs", logprobs ? CompletionLogprobs(c.tokens, &offset)
                              : OrderedJson(nullptr)},
        {"finish_reason", FinishJson(c.finish_reason)},
    });
  }
  body["choices"] = std::move(list);
  body["usage"] = UsageJson(usage);
  return internal::Dump(body);
}

std::string CompletionChunkEvent(const ResponseContext& ctx, int index,
                                 std::string_view text,
                                 wrinklefree::v1::FinishReason finish_reason,
                                 const GeneratedTokens* logprob_tokens,
                                 int64_t* text_offset) {
  OrderedJson chunk = Envelope(ctx, "text_completion");
  int64_t local_offset = 0;
  int64_t* offset = text_offset != nullptr ? text_offset : &local_offset;
  chunk["choices"] = OrderedJson::array({OrderedJson{
      {"index", index},
      {"text", std::string(text)},
      {"logprobs", logprob_tokens != nullptr
                       ? CompletionLogprobs(*logprob_tokens, offset)
                       : OrderedJson(nullptr)},
      {"finish_reason", FinishJson(finish_reason)},
  }});
  if (ctx.include_usage) chunk["usage"] = nullptr;
  return SseEvent(internal::Dump(chunk));
}

std::string CompletionUsageChunkEvent(const ResponseContext& ctx,
                                      const UsageCounts& usage) {
  OrderedJson chunk = Envelope(ctx, "text_completion");
  chunk["choices"] = OrderedJson::array();
  chunk["usage"] = UsageJson(usage);
  return SseEvent(internal::Dump(chunk));
}

std::string LlamaCompletionBody(const ParsedGenerateRequest& request,
                                std::string_view model, std::string_view prompt,
                                const ChoiceResult& choice,
                                const UsageCounts& usage,
                                const wrinklefree::v1::Timing& timing,
                                bool streamed) {
  return internal::Dump(
      LlamaFinal(request, model, prompt, choice, usage, timing, streamed));
}

std::string LlamaCompletionChunkEvent(const ParsedGenerateRequest& request,
                                      std::string_view text,
                                      const GeneratedTokens& tokens,
                                      int tokens_predicted,
                                      int tokens_evaluated) {
  OrderedJson chunk = {
      {"index", 0},
      {"content", std::string(text)},
      {"tokens", request.return_tokens ? TokenIds(tokens) : OrderedJson::array()},
      {"stop", false},
      {"id_slot", -1},
      {"tokens_predicted", tokens_predicted},
      {"tokens_evaluated", tokens_evaluated},
  };
  if (request.logprobs) {
    chunk["completion_probabilities"] = LlamaProbabilities(tokens);
  }
  return SseEvent(internal::Dump(chunk));
}

std::string LlamaCompletionFinalEvent(const ParsedGenerateRequest& request,
                                      std::string_view model,
                                      std::string_view prompt,
                                      const ChoiceResult& choice,
                                      const UsageCounts& usage,
                                      const wrinklefree::v1::Timing& timing) {
  return SseEvent(LlamaCompletionBody(request, model, prompt, choice, usage,
                                      timing, /*streamed=*/true));
}

std::string TokenizeResponseBody(const std::vector<int32_t>& ids,
                                 const std::vector<std::string>* pieces) {
  OrderedJson tokens = OrderedJson::array();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (pieces == nullptr || i >= pieces->size()) {
      tokens.push_back(ids[i]);
      continue;
    }
    const std::string& piece = (*pieces)[i];
    tokens.push_back(OrderedJson{
        {"id", ids[i]},
        {"piece", internal::IsValidUtf8(piece) ? OrderedJson(piece)
                                               : BytesArray(piece)},
    });
  }
  return internal::Dump(OrderedJson{{"tokens", std::move(tokens)}});
}

std::string DetokenizeResponseBody(std::string_view text) {
  return internal::Dump(OrderedJson{{"content", std::string(text)}});
}

std::string ModelsListBody(const std::vector<ModelCard>& models) {
  OrderedJson data = OrderedJson::array();
  for (const ModelCard& m : models) {
    data.push_back(OrderedJson{{"id", m.id},
                               {"object", "model"},
                               {"created", m.created},
                               {"owned_by", m.owned_by}});
  }
  return internal::Dump(OrderedJson{{"object", "list"}, {"data", std::move(data)}});
}

}  // namespace wf::router::openai
