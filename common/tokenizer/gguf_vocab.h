// Reads a Vocab from the `tokenizer.*` metadata of an opened GGUF file.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::Open(path));
//   BN_ASSIGN_OR_RETURN(Vocab vocab, VocabFromGgufFile(*file));
//   BN_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(std::move(vocab)));
//
// Pure function of the file's metadata; thread-safe.
#ifndef WF_COMMON_TOKENIZER_GGUF_VOCAB_H_
#define WF_COMMON_TOKENIZER_GGUF_VOCAB_H_

#include "absl/status/statusor.h"
#include "common/gguf/gguf_reader.h"
#include "common/tokenizer/vocab.h"

namespace wf::tokenizer {

// Collects tokenizer.ggml.{model, tokens, token_type, merges, pre,
// bos_token_id, eos_token_id, eot_token_id, add_bos_token} and
// tokenizer.chat_template, then calls VocabFromGgufMetadata. Errors name the
// key: NotFound for a missing tokenizer.ggml.model or tokens, InvalidArgument
// for a key of the wrong type, and VocabFromGgufMetadata's errors.
absl::StatusOr<Vocab> VocabFromGgufFile(const gguf::GgufFile& file);

}  // namespace wf::tokenizer

#endif  // WF_COMMON_TOKENIZER_GGUF_VOCAB_H_
