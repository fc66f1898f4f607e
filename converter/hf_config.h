// Hugging Face config.json and tokenizer_config.json of a BitNet b1.58
// checkpoint (microsoft/bitnet-b1.58-2B-4T and its -bf16 sibling).
//
// Parsing is strict: a missing required key, a value of the wrong JSON type,
// a non-positive size or inconsistent head counts is INVALID_ARGUMENT naming
// the key; an architecture other than BitNetForCausalLM is INVALID_ARGUMENT
// naming both. Free functions, no state, thread-safe.
//
// Example:
//   BN_ASSIGN_OR_RETURN(BitNetConfig cfg, LoadBitNetConfig(dir + "/config.json"));
//   if (cfg.HasPackedWeights()) { /* uint8 weights + weight_scale tensors */ }
#ifndef WF_CONVERTER_HF_CONFIG_H_
#define WF_CONVERTER_HF_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace wf::convert {

inline constexpr std::string_view kBitNetArchitecture = "BitNetForCausalLM";
inline constexpr std::string_view kBitNetModelType = "bitnet";

// "quantization_config" of transformers' BitNet integration.
//   bitnet-b1.58-2B-4T:      {"quant_method": "bitnet", "linear_class": "autobitlinear",
//                             "quantization_mode": "offline"}
//   bitnet-b1.58-2B-4T-bf16: same with "quantization_mode": "online"
// "offline" means the projection weights are stored packed (uint8, four
// ternary values per byte) next to a "weight_scale" tensor; "online" means
// they are full-precision masters ternarized at load time.
struct BitNetQuantizationConfig {
  std::string quant_method = "bitnet";
  std::string linear_class = "bitlinear";     // "bitlinear" | "autobitlinear"
  std::string quantization_mode = "offline";  // "offline" | "online"
  bool use_rms_norm = false;
  std::optional<double> rms_norm_eps;
  std::vector<std::string> modules_to_not_convert;
};

struct BitNetConfig {
  std::string architecture = std::string(kBitNetArchitecture);
  std::string model_type = std::string(kBitNetModelType);
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // Defaults to num_attention_heads.
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 0;
  double rope_theta = 0;
  bool tie_word_embeddings = true;
  std::string hidden_act = "relu2";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // "eos_token_id": int or list, all kept.
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype;  // "bfloat16", ...; empty if absent.
  int64_t head_dim = 0;     // hidden_size / num_attention_heads.
  std::optional<BitNetQuantizationConfig> quantization_config;

  // True for "quantization_mode": "offline" (packed uint8 weights + scales).
  bool HasPackedWeights() const;
  // HF-shaped config.json text (2-space indent), parseable by ParseBitNetConfig.
  std::string ToJson() const;
};

// Checks the invariants ParseBitNetConfig enforces (and fills nothing in):
// positive sizes, hidden % heads == 0, heads % kv_heads == 0, head_dim ==
// hidden / heads, supported architecture, activation and quantization.
absl::Status ValidateBitNetConfig(const BitNetConfig& config);

// Parses config.json text; `source` names the file in error messages.
absl::StatusOr<BitNetConfig> ParseBitNetConfig(std::string_view json_text,
                                               std::string_view source = "config.json");
absl::StatusOr<BitNetConfig> LoadBitNetConfig(const std::string& path);

// The fields of tokenizer_config.json the converter uses.
struct HfTokenizerConfig {
  // The template used by default: the string form, or the entry named
  // "default" of the list form; empty if there is none.
  std::string chat_template;
  // Every entry of the list form, in file order ({name, template}).
  std::vector<std::pair<std::string, std::string>> named_chat_templates;
  std::optional<std::string> bos_token;  // String or {"content": ...} form.
  std::optional<std::string> eos_token;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
};

absl::StatusOr<HfTokenizerConfig> ParseHfTokenizerConfig(
    std::string_view json_text, std::string_view source = "tokenizer_config.json");
absl::StatusOr<HfTokenizerConfig> LoadHfTokenizerConfig(const std::string& path);

}  // namespace wf::convert

#endif  // WF_CONVERTER_HF_CONFIG_H_
