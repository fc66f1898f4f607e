// The data of a byte-level BPE tokenizer, in GGUF's terms, and its two
// sources: a Hugging Face tokenizer.json (the converter reads it to write GGUF
// metadata) and the `tokenizer.*` metadata of a GGUF file.
//
// A Vocab is plain data; Tokenizer::Create() validates it and builds the
// lookup tables. Token strings are in byte-level-encoded form (GPT-2's
// byte-to-unicode mapping, e.g. "Ġworld" for " world"), exactly as in
// tokenizer.json's vocab keys and GGUF's `tokenizer.ggml.tokens`.
//
// Example:
//   BN_ASSIGN_OR_RETURN(std::string json, ReadFileToString("tokenizer.json"));
//   BN_ASSIGN_OR_RETURN(Vocab vocab, ParseHfTokenizerJson(json));
//   // vocab.tokens.size() == 128256, vocab.pre == "llama-bpe", vocab.eot_id == 128009
//   BN_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(std::move(vocab)));
//
// All functions are pure and thread-safe.
#ifndef WF_COMMON_TOKENIZER_VOCAB_H_
#define WF_COMMON_TOKENIZER_VOCAB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace wf::tokenizer {

// GGUF `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type).
enum TokenType : int32_t {
  kTokenNormal = 1,
  kTokenUnknown = 2,
  kTokenControl = 3,      // Special tokens (BOS, EOS, <|eot_id|>, reserved ...).
  kTokenUserDefined = 4,  // Added tokens that are not special.
  kTokenUnused = 5,
  kTokenByte = 6,  // "<0xAB>" byte tokens (SentencePiece vocabularies).
};

// Pre-tokenizer names as written to `tokenizer.ggml.pre`.
inline constexpr std::string_view kPreLlama3 = "llama-bpe";
inline constexpr std::string_view kPreDefault = "default";
inline constexpr std::string_view kPreGpt2 = "gpt-2";

// The Llama 3 split regex (tokenizer.json Split pre-tokenizer, tiktoken pat_str).
inline constexpr std::string_view kLlama3SplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct Vocab {
  std::vector<std::string> tokens;   // By id, byte-level-encoded form.
  std::vector<int32_t> token_types;  // By id, TokenType values; same size as tokens.
  std::vector<std::string> merges;   // "left right", highest priority first.
  std::string pre;                   // "llama-bpe", "default", ... or empty when absent.
  // Unset: follow the pre-tokenizer (true for the Llama 3 split, as llama.cpp
  // does). Set from tokenizer.json's model.ignore_merges.
  std::optional<bool> ignore_merges;
  int32_t bos_id = -1;  // -1: none.
  int32_t eos_id = -1;
  int32_t eot_id = -1;  // End of turn (<|eot_id|>, <|im_end|>), -1 if none.
  bool add_bos = false;
  std::string chat_template;  // Jinja source, empty if none.
};

// True for the Llama 3 vocabulary (<|begin_of_text|> at 128000 and <|eot_id|>
// at 128009, at least 128010 tokens).
bool IsLlama3Vocabulary(const std::vector<std::string>& tokens);

// Parses a Hugging Face tokenizer.json holding a byte-level BPE model:
// model.type "BPE", model.vocab, model.merges ("a b" strings or [a, b] pairs),
// model.ignore_merges, added_tokens (special -> CONTROL, otherwise
// USER_DEFINED). The pre-tokenizer must be the Llama 3 Split regex followed by
// ByteLevel without regex (pre = "llama-bpe") or a ByteLevel with its GPT-2
// regex (pre = "gpt-2"); a normalizer is not supported. BOS/EOS/EOT are found
// by their Llama 3 / ChatML texts when present (ApplyHfTokenizerConfig can set
// them from tokenizer_config.json). add_bos defaults to "a BOS exists".
// Errors: InvalidArgument naming the offending key or token id;
// Unimplemented for model types, normalizers or pre-tokenizers we do not run.
absl::StatusOr<Vocab> ParseHfTokenizerJson(std::string_view json);

// Applies a Hugging Face tokenizer_config.json: bos_token, eos_token (strings
// or {"content": ...} objects; looked up in vocab->tokens), add_bos_token and
// chat_template (string form). Missing keys leave `vocab` unchanged.
// InvalidArgument if the JSON is malformed or a named token is not in the
// vocabulary.
absl::Status ApplyHfTokenizerConfig(std::string_view json, Vocab* vocab);

// The `tokenizer.*` metadata of a GGUF file as plain values (filled by the
// caller from its GGUF reader; absent keys stay empty/unset).
struct GgufTokenizerMetadata {
  std::string model;                         // tokenizer.ggml.model; must be "gpt2".
  std::vector<std::string> tokens;           // tokenizer.ggml.tokens
  std::vector<int32_t> token_types;          // tokenizer.ggml.token_type; empty = all NORMAL.
  std::vector<std::string> merges;           // tokenizer.ggml.merges
  std::optional<std::string> pre;            // tokenizer.ggml.pre
  std::optional<int64_t> bos_id;             // tokenizer.ggml.bos_token_id
  std::optional<int64_t> eos_id;             // tokenizer.ggml.eos_token_id
  std::optional<int64_t> eot_id;             // tokenizer.ggml.eot_token_id
  std::optional<bool> add_bos;               // tokenizer.ggml.add_bos_token
  std::optional<std::string> chat_template;  // tokenizer.chat_template
};

// Builds a Vocab from GGUF metadata. EOT defaults to the token whose text is
// <|eot_id|> (or <|im_end|>) when the key is absent. add_bos defaults to true
// only for the Llama 3 vocabulary. Errors: InvalidArgument naming the key
// (size mismatch, id out of range, bad token type); Unimplemented for a
// tokenizer model other than "gpt2".
absl::StatusOr<Vocab> VocabFromGgufMetadata(GgufTokenizerMetadata metadata);

}  // namespace wf::tokenizer

#endif  // WF_COMMON_TOKENIZER_VOCAB_H_
