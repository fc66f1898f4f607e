// Byte-level BPE tokenizer (GPT-2 / Llama 3 family) over a Vocab.
//
// Encoding: optional recognition of special-token text (CONTROL and
// USER_DEFINED tokens, leftmost-longest), then the pre-tokenizer regex(es),
// then BPE by merge rank on each piece (with `ignore_merges`: a piece that is
// itself a vocabulary entry is emitted as is).
//
// Pre-tokenizer selection (logged at INFO, see pre_tokenizer_name()):
//   vocab.pre "llama-bpe" or "llama3" -> the Llama 3 split (kLlama3SplitRegex);
//   "default" -> llama.cpp's default chain of four regexes, each splitting the
//   pieces of the previous one (matched and unmatched parts both kept);
//   "gpt-2" -> the GPT-2 regex; another name -> InvalidArgument from Create().
//   vocab.pre empty -> the default chain, except for the Llama 3 vocabulary
//   (IsLlama3Vocabulary) which gets the Llama 3 split so that ids match the
//   Hugging Face tokenizer the model was trained with (bitnet.cpp applies the
//   default chain to such files; set vocab.pre = "default" to reproduce its
//   ids).
// `\s` in the patterns means Unicode White_Space (so U+FEFF and U+180E are not
// whitespace), as in the Hugging Face tokenizers.
//
// Decoding turns ids into bytes and then into valid UTF-8, replacing
// ill-formed bytes with U+FFFD the way TextDecoder does (one per maximal
// ill-formed subpart). StreamingDecoder does the same incrementally.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(std::move(vocab)));
//   BN_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
//                       tok->Encode("Hello world", {.add_bos = true}));
//   // ids == {128000, 9906, 1917}
//   StreamingDecoder dec(*tok, /*skip_special=*/true);
//   for (int32_t id : generated) { BN_ASSIGN_OR_RETURN(std::string s, dec.Add(id)); Send(s); }
//   Send(dec.Finish());
//
// Thread-safety: a Tokenizer is immutable after Create(); every const method
// may be called from many threads at once (the internal piece cache is
// sharded and locked). A StreamingDecoder is used by one thread at a time and
// must not outlive its Tokenizer.
#ifndef WF_COMMON_TOKENIZER_TOKENIZER_H_
#define WF_COMMON_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tokenizer/vocab.h"

namespace wf::tokenizer {

struct EncodeOptions {
  // Prepend the BOS token (FailedPrecondition if the vocabulary has none).
  bool add_bos = false;
  // Recognise special-token text (e.g. "<|eot_id|>") as those tokens. Keep
  // false for user-supplied text so it cannot inject control tokens.
  bool parse_special = false;
};

class Tokenizer {
 public:
  // Validates `vocab` and builds the lookup tables. InvalidArgument for an
  // unknown pre-tokenizer name, mismatched token_types size, or special ids
  // outside the vocabulary. Merges whose parts or result are not vocabulary
  // entries are skipped (counted in a WARNING log line).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(Vocab vocab);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Tokenizes `text`. InvalidArgument "invalid UTF-8 at byte offset N" if
  // `text` is not valid UTF-8; FailedPrecondition if add_bos is requested
  // without a BOS token or a byte has no token in this vocabulary; Internal
  // only if the regex engine fails on pathological input.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, EncodeOptions options = {}) const;
  // Same, appending to `*ids` (on error `*ids` may hold a partial result).
  absl::Status EncodeAppend(std::string_view text, EncodeOptions options, std::vector<int32_t>* ids) const;

  // The pieces the pre-tokenizer cuts plain `text` into (no special-token
  // parsing), i.e. what BPE sees; for tests and debugging. Same errors as
  // Encode.
  absl::StatusOr<std::vector<std::string>> PreTokenize(std::string_view text) const;

  // Decodes `ids` into valid UTF-8 (see file comment). With `skip_special`,
  // CONTROL tokens produce nothing. InvalidArgument naming the id and its
  // position for an id outside [0, vocab_size()).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids, bool skip_special = false) const;

  // The raw bytes of one token (CONTROL/USER_DEFINED tokens: their text;
  // others: the byte-level decoding, possibly an incomplete UTF-8 sequence).
  // InvalidArgument for an out-of-range id.
  absl::StatusOr<std::string_view> TokenToPiece(int32_t id) const;
  // The id of the token whose vocabulary string is `token_text` (byte-level
  // form, e.g. "<|eot_id|>" or "Ġworld"), if any.
  std::optional<int32_t> TokenId(std::string_view token_text) const;

  int32_t vocab_size() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }  // -1 if none.
  int32_t eos_id() const { return vocab_.eos_id; }  // -1 if none.
  int32_t eot_id() const { return vocab_.eot_id; }  // -1 if none.
  bool add_bos() const { return vocab_.add_bos; }
  // End of generation: the EOS or the EOT token.
  bool IsEog(int32_t id) const { return id >= 0 && (id == vocab_.eos_id || id == vocab_.eot_id); }
  // A CONTROL token (dropped by Decode with skip_special).
  bool IsControl(int32_t id) const;
  TokenType token_type(int32_t id) const;  // kTokenNormal for out-of-range ids.
  // "llama-bpe", "default" or "gpt-2".
  std::string_view pre_tokenizer_name() const;
  bool ignore_merges() const { return ignore_merges_; }
  const Vocab& vocab() const { return vocab_; }

 private:
  struct Impl;
  Tokenizer(Vocab vocab, std::unique_ptr<Impl> impl);

  absl::Status SplitPieces(std::string_view text, std::vector<std::string_view>* pieces) const;
  absl::Status EncodePlain(std::string_view text, std::vector<int32_t>* ids) const;
  absl::Status EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const;

  Vocab vocab_;
  bool ignore_merges_ = false;
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streamed generation: Add() returns the text
// that is complete so far, holding back an incomplete multi-byte UTF-8 tail
// until later tokens complete it; ill-formed bytes become U+FFFD as soon as
// they are known to be ill-formed. The concatenation of every Add() result
// and Finish() equals Tokenizer::Decode of all the ids.
class StreamingDecoder {
 public:
  // `tokenizer` must outlive this object.
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(&tokenizer), skip_special_(skip_special) {}

  // InvalidArgument for an out-of-range id (the decoder state is unchanged).
  absl::StatusOr<std::string> Add(int32_t id);
  // Flushes the held-back tail: one U+FFFD if an incomplete sequence is left,
  // "" otherwise. The decoder is then empty and may be reused.
  std::string Finish();
  // Bytes currently held back (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace wf::tokenizer

#endif  // WF_COMMON_TOKENIZER_TOKENIZER_H_
