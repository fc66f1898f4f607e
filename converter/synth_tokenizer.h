// A small, self-contained byte-level BPE tokenizer for synthetic checkpoints.
//
// `wf_convert synth` writes a Hugging Face tokenizer.json when no real one is
// given: the 256 byte symbols of GPT-2's byte-level alphabet, merges learned by
// plain BPE training on a short embedded English text (extended by single
// letters up to the vocabulary size), then control tokens
// named as in Llama 3 (<|begin_of_text|>, <|end_of_text|>, ...,
// <|eot_id|>, reserved tokens) filling the vocabulary up to its size. It is
// deterministic: the same size gives the same file.
#ifndef WF_CONVERTER_SYNTH_TOKENIZER_H_
#define WF_CONVERTER_SYNTH_TOKENIZER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace wf::convert {

struct SynthTokenizer {
  std::string tokenizer_json;         // HF tokenizer.json text.
  std::string tokenizer_config_json;  // HF tokenizer_config.json text (chat template, BOS/EOS).
  int32_t bos_id = 0;
  int32_t eos_id = 0;
  int32_t eot_id = 0;
};

// vocab_size must be at least 256 + 8 (bytes plus the fixed control tokens).
absl::StatusOr<SynthTokenizer> BuildSynthTokenizer(int32_t vocab_size);

// The chat template of microsoft/bitnet-b1.58-2B-4T's tokenizer_config.json.
extern const char kBitNetChatTemplate[];

}  // namespace wf::convert

#endif  // WF_CONVERTER_SYNTH_TOKENIZER_H_
