#include "common/tokenizer/gguf_vocab.h"

#include <string>
#include <utility>

#include "common/status_macros.h"

namespace wf::tokenizer {

absl::StatusOr<Vocab> VocabFromGgufFile(const gguf::GgufFile& file) {
  GgufTokenizerMetadata md;
  BN_ASSIGN_OR_RETURN(std::string_view model, file.GetString("tokenizer.ggml.model"));
  md.model = std::string(model);
  BN_ASSIGN_OR_RETURN(absl::Span<const std::string> tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  md.tokens.assign(tokens.begin(), tokens.end());
  if (file.FindKey("tokenizer.ggml.token_type") != nullptr) {
    BN_ASSIGN_OR_RETURN(absl::Span<const int32_t> types, file.GetI32Array("tokenizer.ggml.token_type"));
    md.token_types.assign(types.begin(), types.end());
  }
  if (file.FindKey("tokenizer.ggml.merges") != nullptr) {
    BN_ASSIGN_OR_RETURN(absl::Span<const std::string> merges, file.GetStringArray("tokenizer.ggml.merges"));
    md.merges.assign(merges.begin(), merges.end());
  }
  if (file.FindKey("tokenizer.ggml.pre") != nullptr) {
    BN_ASSIGN_OR_RETURN(std::string_view pre, file.GetString("tokenizer.ggml.pre"));
    md.pre = std::string(pre);
  }
  for (auto [key, out] :
       {std::pair<const char*, std::optional<int64_t>*>{"tokenizer.ggml.bos_token_id", &md.bos_id},
        {"tokenizer.ggml.eos_token_id", &md.eos_id},
        {"tokenizer.ggml.eot_token_id", &md.eot_id}}) {
    if (file.FindKey(key) == nullptr) continue;
    BN_ASSIGN_OR_RETURN(int64_t id, file.GetI64(key));
    *out = id;
  }
  if (file.FindKey("tokenizer.ggml.add_bos_token") != nullptr) {
    BN_ASSIGN_OR_RETURN(bool add_bos, file.GetBool("tokenizer.ggml.add_bos_token"));
    md.add_bos = add_bos;
  }
  if (file.FindKey("tokenizer.chat_template") != nullptr) {
    BN_ASSIGN_OR_RETURN(std::string_view tmpl, file.GetString("tokenizer.chat_template"));
    md.chat_template = std::string(tmpl);
  }
  return VocabFromGgufMetadata(std::move(md));
}

}  // namespace wf::tokenizer
