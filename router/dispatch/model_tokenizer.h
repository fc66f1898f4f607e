// The router's copy of a worker's tokenizer and chat format, built from a
// ModelInfo fetched with include_tokenizer, so the router renders chats,
// tokenizes and hashes KV blocks exactly as the workers do, without the
// model file.
//
// Example:
//   BN_ASSIGN_OR_RETURN(wrinklefree::v1::ModelInfo info, pool->ModelInfo());
//   BN_ASSIGN_OR_RETURN(auto mt, ModelTokenizer::Create(info));
//   BN_ASSIGN_OR_RETURN(std::vector<int32_t> ids, mt->EncodeChat({{"user", "Hello"}}));
//   std::vector<uint64_t> hashes = mt->BlockHashes(ids);
//
// Thread-safety: immutable after Create(); every const method may be called
// from many threads at once.
#ifndef WF_ROUTER_DISPATCH_MODEL_TOKENIZER_H_
#define WF_ROUTER_DISPATCH_MODEL_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/vocab.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::router {

// The Vocab carried by `info`: tokens, merges, token types (empty = all
// NORMAL), pre-tokenizer, BOS/EOS/EOT from the special tokens named "bos",
// "eos", "eot", add_bos and the chat template. InvalidArgument naming the
// field if `info` has no vocabulary (fetched without include_tokenizer), the
// sizes disagree or a special token id is out of range; Unimplemented for a
// tokenizer model other than "gpt2".
absl::StatusOr<tokenizer::Vocab> VocabFromModelInfo(const wrinklefree::v1::ModelInfo& info);

class ModelTokenizer {
 public:
  // Builds the tokenizer and resolves the chat format (by the reported name,
  // else detected from the template; none if neither works). Errors: those of
  // VocabFromModelInfo and Tokenizer::Create; FailedPrecondition if the KV
  // block hash scheme is not ours or the block size is not positive.
  static absl::StatusOr<std::unique_ptr<ModelTokenizer>> Create(const wrinklefree::v1::ModelInfo& info);

  // Text prompt as the worker tokenizes GenerateRequest.text: special-token
  // text recognised, BOS prepended when the model asks for it and
  // `add_special_tokens`. InvalidArgument for invalid UTF-8.
  absl::StatusOr<std::vector<int32_t>> EncodeText(std::string_view text, bool add_special_tokens = true) const;

  // Chat prompt rendered with the model's chat format, generation prompt
  // appended (message content is never parsed for special tokens).
  // FailedPrecondition if the model has no known chat format; InvalidArgument
  // for an empty message list or a role other than system/user/assistant.
  absl::StatusOr<std::vector<int32_t>> EncodeChat(absl::Span<const tokenizer::ChatMessage> messages) const;

  // kv::HashFullBlocks(ids, block_size()).
  std::vector<uint64_t> BlockHashes(absl::Span<const int32_t> ids) const;

  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  std::optional<tokenizer::ChatFormat> chat_format() const { return chat_format_; }
  int block_size() const { return block_size_; }
  int max_context() const { return max_context_; }
  const std::vector<int32_t>& eog_token_ids() const { return eog_token_ids_; }

 private:
  ModelTokenizer() = default;

  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::optional<tokenizer::ChatFormat> chat_format_;
  int block_size_ = 0;
  int max_context_ = 0;
  std::vector<int32_t> eog_token_ids_;
};

}  // namespace wf::router

#endif  // WF_ROUTER_DISPATCH_MODEL_TOKENIZER_H_
