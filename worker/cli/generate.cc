#include "worker/cli/generate.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/gguf_vocab.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/engine/model.h"
#include "worker/engine/session.h"
#include "worker/engine/stop_matcher.h"

namespace wf::cli {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

absl::StatusOr<std::vector<int32_t>> EncodePrompt(const GenerateOptions& o, const tokenizer::Tokenizer& tok,
                                                  const tokenizer::Vocab& vocab) {
  if (!o.chat) {
    return tok.Encode(o.prompt, {.add_bos = tok.add_bos(), .parse_special = false});
  }
  tokenizer::ChatFormat format;
  if (!o.chat_format.empty()) {
    BN_ASSIGN_OR_RETURN(format, tokenizer::ParseChatFormatName(o.chat_format));
  } else {
    auto detected = tokenizer::DetectChatFormat(vocab.chat_template);
    if (!detected.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot tell the chat format of this model (",
                                                     detected.status().message(),
                                                     "); choose one with --chat-format bitnet|llama3|chatml"));
    }
    format = *detected;
  }
  std::vector<tokenizer::ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  messages.push_back({"user", o.prompt});
  return tokenizer::EncodeChat(tok, format, messages, /*add_generation_prompt=*/true);
}

}  // namespace

absl::Status RunGenerate(const GenerateOptions& o, std::ostream& out) {
  const auto t0 = std::chrono::steady_clock::now();
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model, engine::Model::Load(o.model_path, {.head_type = o.head_type}));
  BN_ASSIGN_OR_RETURN(tokenizer::Vocab vocab, tokenizer::VocabFromGgufFile(model->file()));
  BN_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> tok, tokenizer::Tokenizer::Create(vocab));
  const auto t_loaded = std::chrono::steady_clock::now();

  BN_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, EncodePrompt(o, *tok, vocab));
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const int64_t ctx = model->config().n_ctx_train;
  if (static_cast<int64_t>(prompt.size()) >= ctx) {
    return absl::OutOfRangeError(absl::StrCat("the prompt is ", prompt.size(), " tokens; the context holds ", ctx));
  }
  if (o.n_predict < 0) return absl::InvalidArgumentError("--n-predict must be >= 0");
  const int64_t n_predict = std::min<int64_t>(o.n_predict, ctx - static_cast<int64_t>(prompt.size()));

  BN_RETURN_IF_ERROR(engine::Validate(o.sampling, model->config().n_vocab));
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Sampler> sampler,
                      engine::Sampler::Create(o.sampling, model->config().n_vocab));
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::StopMatcher> stops, engine::StopMatcher::Create(o.stop));
  engine::SessionOptions so;
  so.num_threads = static_cast<int>(o.threads);
  so.kv_cache_type = o.kv_cache_type;
  BN_ASSIGN_OR_RETURN(std::unique_ptr<engine::Session> session, engine::Session::Create(*model, so));

  const auto t_prefill = std::chrono::steady_clock::now();
  BN_ASSIGN_OR_RETURN(std::vector<float> logits, session->Prefill(prompt));
  const auto t_decode = std::chrono::steady_clock::now();

  tokenizer::StreamingDecoder decoder(*tok, /*skip_special=*/true);
  std::vector<int32_t> context = prompt;
  int64_t generated = 0;
  std::string finish = "length";
  for (; generated < n_predict; ++generated) {
    BN_ASSIGN_OR_RETURN(engine::SampleResult pick, sampler->Sample(logits, context));
    if (!o.ignore_eos && tok->IsEog(pick.token)) {
      finish = "stop (end of generation token)";
      break;
    }
    context.push_back(pick.token);
    BN_ASSIGN_OR_RETURN(std::string piece, decoder.Add(pick.token));
    engine::StopMatchResult m = stops->Push(piece);
    out << m.text << std::flush;
    if (m.stopped()) {
      finish = absl::StrCat("stop (string \"", o.stop[m.stop_index], "\")");
      ++generated;
      break;
    }
    if (generated + 1 < n_predict) {
      BN_ASSIGN_OR_RETURN(logits, session->Decode(pick.token));
    }
  }
  if (!stops->stopped()) {
    engine::StopMatchResult m = stops->Push(decoder.Finish());
    out << m.text;
    if (!m.stopped()) out << stops->Flush();
  }
  out << "\n" << std::flush;
  const auto t_end = std::chrono::steady_clock::now();
  if (o.show_stats) {
    const double prefill_s = Seconds(t_prefill, t_decode), decode_s = Seconds(t_decode, t_end);
    std::fprintf(stderr,
                 "load %.2f s | prompt %zu tokens, %.1f tok/s | generated %lld tokens, %.1f tok/s | finish: %s | "
                 "seed %llu | kernels %s\n",
                 Seconds(t0, t_loaded), prompt.size(), prompt.size() / std::max(prefill_s, 1e-9),
                 static_cast<long long>(generated), generated / std::max(decode_s, 1e-9), finish.c_str(),
                 static_cast<unsigned long long>(sampler->seed()),
                 std::string(kernels::IsaName(model->kernels().isa)).c_str());
  }
  return absl::OkStatus();
}

}  // namespace wf::cli
