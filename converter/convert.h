// Hugging Face BitNet checkpoint -> GGUF, the way bitnet.cpp reads it.
//
// Input: a directory with config.json (BitNetForCausalLM), model.safetensors
// or sharded model-*.safetensors with model.safetensors.index.json (bf16, f16
// or f32 weights, or the packed uint8 format with weight_scale), tokenizer.json
// and tokenizer_config.json. Output: architecture `bitnet-b1.58` with the
// metadata keys, value types, tensor names, shapes and types of the published
// microsoft/bitnet-b1.58-2B-4T-gguf file, plus `tokenizer.ggml.pre =
// "llama-bpe"` for a Llama 3 tokenizer.
//
// Tensors stream one at a time (peak memory is about one projection), and the
// output appears under its final name only when complete.
#ifndef WF_CONVERTER_CONVERT_H_
#define WF_CONVERTER_CONVERT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace wf::convert {

enum class OutType { kI2S, kTQ1_0, kTQ2_0, kF16, kBF16, kF32 };

// "i2_s", "tq1_0", "tq2_0", "f16", "bf16", "f32" (case-insensitive).
absl::StatusOr<OutType> ParseOutType(std::string_view name);
std::string_view OutTypeName(OutType type);

struct ConvertProgress {
  int tensor_index = 0;  // 1-based index of the tensor just written.
  int tensor_count = 0;
  std::string_view tensor_name;
  uint64_t bytes_read = 0;  // Checkpoint bytes consumed so far.
  uint64_t bytes_total = 0;
  double elapsed_seconds = 0;
};

struct ConvertOptions {
  std::string checkpoint_dir;
  std::string outfile;
  OutType outtype = OutType::kI2S;
  // general.name; defaults to the checkpoint directory's base name.
  std::string name;
  // Called after every tensor, on the calling thread.
  std::function<void(const ConvertProgress&)> progress;
};

struct ConvertReport {
  int tensor_count = 0;
  int metadata_count = 0;
  uint64_t output_bytes = 0;
  double seconds = 0;
  bool packed_input = false;  // The checkpoint held packed uint8 ternary weights.
};

// Converts; on any error nothing is left at `outfile`. Errors name the file,
// key or tensor at fault: INVALID_ARGUMENT for bad input, NOT_FOUND for missing
// files or tensors, PERMISSION_DENIED/NOT_FOUND for an unwritable output.
absl::StatusOr<ConvertReport> ConvertCheckpoint(const ConvertOptions& options);

}  // namespace wf::convert

#endif  // WF_CONVERTER_CONVERT_H_
