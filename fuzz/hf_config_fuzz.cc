// Fuzz target: the JSON files of a Hugging Face checkpoint that the converter
// reads. The same bytes go through each parser: config.json
// (ParseBitNetConfig, with a ToJson round trip when it parses),
// tokenizer_config.json (ParseHfTokenizerConfig, ApplyHfTokenizerConfig) and
// tokenizer.json (ParseHfTokenizerJson, then Tokenizer::Create and a short
// encode/decode when it parses).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/vocab.h"
#include "converter/hf_config.h"
#include "fuzz/fuzz_util.h"

namespace {

using ::wf::fuzz::Fail;

void FuzzModelConfig(std::string_view text) {
  absl::StatusOr<wf::convert::BitNetConfig> config = wf::convert::ParseBitNetConfig(text);
  if (!config.ok()) return;
  if (!wf::convert::ValidateBitNetConfig(*config).ok()) Fail("a parsed config does not validate");
  // What the converter writes back must parse to the same configuration.
  const std::string json = config->ToJson();
  absl::StatusOr<wf::convert::BitNetConfig> again = wf::convert::ParseBitNetConfig(json);
  if (!again.ok()) Fail("BitNetConfig::ToJson output does not parse");
  if (again->ToJson() != json) Fail("BitNetConfig::ToJson is not a fixed point");
}

void FuzzTokenizerConfig(std::string_view text) {
  (void)wf::convert::ParseHfTokenizerConfig(text);
  wf::tokenizer::Vocab vocab;
  vocab.tokens = {"a", "b", "ab", "<s>", "</s>"};
  vocab.token_types = {1, 1, 1, 3, 3};
  vocab.merges = {"a b"};
  (void)wf::tokenizer::ApplyHfTokenizerConfig(text, &vocab);
}

void FuzzTokenizerJson(std::string_view text) {
  absl::StatusOr<wf::tokenizer::Vocab> vocab = wf::tokenizer::ParseHfTokenizerJson(text);
  if (!vocab.ok()) return;
  absl::StatusOr<std::unique_ptr<wf::tokenizer::Tokenizer>> tok =
      wf::tokenizer::Tokenizer::Create(*std::move(vocab));
  if (!tok.ok()) return;
  absl::StatusOr<std::vector<int32_t>> ids = (*tok)->Encode("Hello, world! 123 \xC3\xA9t\xC3\xA9");
  if (ids.ok()) (void)(*tok)->Decode(*ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (wf::fuzz::QuietLogs(), true);
  (void)quiet;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  FuzzModelConfig(text);
  FuzzTokenizerConfig(text);
  FuzzTokenizerJson(text);
  return 0;
}
