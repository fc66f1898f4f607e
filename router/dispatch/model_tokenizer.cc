#include "router/dispatch/model_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/kv/block_hash.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace wf::router {

namespace v1 = ::wrinklefree::v1;

absl::StatusOr<tokenizer::Vocab> VocabFromModelInfo(const v1::ModelInfo& info) {
  if (info.vocab_tokens().empty()) {
    return absl::InvalidArgumentError(
        "ModelInfo.vocab_tokens is empty (fetch GetModelInfo with include_tokenizer = true)");
  }
  if (!info.tokenizer_model().empty() && info.tokenizer_model() != "gpt2") {
    return absl::UnimplementedError(
        absl::StrCat("ModelInfo.tokenizer_model '", info.tokenizer_model(), "' is not supported (only gpt2)"));
  }
  tokenizer::Vocab vocab;
  vocab.tokens.assign(info.vocab_tokens().begin(), info.vocab_tokens().end());
  const int32_t n = static_cast<int32_t>(vocab.tokens.size());
  if (info.token_types().empty()) {
    vocab.token_types.assign(vocab.tokens.size(), tokenizer::kTokenNormal);
  } else if (info.token_types_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("ModelInfo.token_types has ", info.token_types_size(),
                                                   " entries; vocab_tokens has ", n));
  } else {
    vocab.token_types.assign(info.token_types().begin(), info.token_types().end());
  }
  vocab.merges.assign(info.merges().begin(), info.merges().end());
  vocab.pre = info.tokenizer_pre();
  for (const v1::SpecialToken& s : info.special_tokens()) {
    int32_t* target = nullptr;
    if (s.name() == "bos") target = &vocab.bos_id;
    if (s.name() == "eos") target = &vocab.eos_id;
    if (s.name() == "eot") target = &vocab.eot_id;
    if (target == nullptr) continue;  // "pad" and future names are informational.
    if (s.id() < 0 || s.id() >= n) {
      return absl::InvalidArgumentError(absl::StrCat("ModelInfo.special_tokens '", s.name(), "' has id ", s.id(),
                                                     "; the vocabulary has ", n, " tokens"));
    }
    *target = s.id();
  }
  vocab.add_bos = info.add_bos();
  vocab.chat_template = info.chat_template();
  return vocab;
}

absl::StatusOr<std::unique_ptr<ModelTokenizer>> ModelTokenizer::Create(const v1::ModelInfo& info) {
  if (info.kv_block_hash_scheme() != kv::kBlockHashScheme) {
    return absl::FailedPreconditionError(absl::StrCat("worker KV block hash scheme '", info.kv_block_hash_scheme(),
                                                      "' differs from ours ('", kv::kBlockHashScheme, "')"));
  }
  if (info.kv_block_size() <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("ModelInfo.kv_block_size must be positive, got ", info.kv_block_size()));
  }
  BN_ASSIGN_OR_RETURN(tokenizer::Vocab vocab, VocabFromModelInfo(info));
  auto mt = std::unique_ptr<ModelTokenizer>(new ModelTokenizer());
  BN_ASSIGN_OR_RETURN(mt->tokenizer_, tokenizer::Tokenizer::Create(std::move(vocab)));
  if (!info.chat_format().empty()) {
    absl::StatusOr<tokenizer::ChatFormat> f = tokenizer::ParseChatFormatName(info.chat_format());
    if (f.ok()) {
      mt->chat_format_ = *f;
    } else {
      WF_LOG(WARNING) << "worker chat format '" << info.chat_format() << "' is unknown here: " << f.status().message();
    }
  }
  if (!mt->chat_format_.has_value() && !info.chat_template().empty()) {
    if (auto f = tokenizer::DetectChatFormat(info.chat_template()); f.ok()) mt->chat_format_ = *f;
  }
  mt->block_size_ = info.kv_block_size();
  mt->max_context_ = info.max_context();
  mt->eog_token_ids_.assign(info.eog_token_ids().begin(), info.eog_token_ids().end());
  return mt;
}

absl::StatusOr<std::vector<int32_t>> ModelTokenizer::EncodeText(std::string_view text, bool add_special_tokens) const {
  return tokenizer_->Encode(text, {.add_bos = add_special_tokens && tokenizer_->add_bos(), .parse_special = true});
}

absl::StatusOr<std::vector<int32_t>> ModelTokenizer::EncodeChat(
    absl::Span<const tokenizer::ChatMessage> messages) const {
  if (!chat_format_.has_value()) {
    return absl::FailedPreconditionError("this model has no known chat format; send a text prompt instead");
  }
  if (messages.empty()) return absl::InvalidArgumentError("messages is empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role must be system, user or assistant, got '",
                                                     role.substr(0, 32), "'"));
    }
  }
  return tokenizer::EncodeChat(*tokenizer_, *chat_format_, messages, /*add_generation_prompt=*/true);
}

std::vector<uint64_t> ModelTokenizer::BlockHashes(absl::Span<const int32_t> ids) const {
  return kv::HashFullBlocks(ids, block_size_);
}

}  // namespace wf::router
