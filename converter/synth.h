// Synthetic BitNet b1.58 checkpoints in Hugging Face layout, for tests,
// benchmarks and the quick start: real architecture and shapes, random bf16
// weights (the converter ternarizes them as it would trained ones).
#ifndef WF_CONVERTER_SYNTH_H_
#define WF_CONVERTER_SYNTH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace wf::convert {

struct SynthShape {
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t ffn = 0;
  int64_t vocab = 0;  // 0: the tokenizer's size.
  int64_t ctx = 4096;
  double rope_theta = 500000.0;
  double rms_eps = 1e-5;
};

// "tiny": hidden 256, 4 layers, 4 heads / 2 KV heads, FFN 768, vocab 2048
// (the golden model's shape). "2b4t": BitNet-b1.58-2B-4T exactly (hidden 2560,
// 30 layers, 20 / 5 heads, FFN 6912, vocab 128256).
absl::StatusOr<SynthShape> PresetShape(std::string_view preset);

struct SynthOptions {
  SynthShape shape;
  uint64_t seed = 0;
  std::string out_dir;
  // Optional HF tokenizer.json to ship (a tokenizer_config.json beside it is
  // copied too); otherwise a small byte-level BPE is generated.
  std::string tokenizer_json;
  // Shard the weights into files of about this size (HF style, with an index).
  uint64_t shard_bytes = uint64_t{2} << 30;
  // Called now and then with bytes written so far and the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct SynthReport {
  SynthShape shape;  // With the vocabulary size resolved.
  int shard_count = 0;
  uint64_t weight_bytes = 0;
};

absl::StatusOr<SynthReport> WriteSyntheticCheckpoint(const SynthOptions& options);

}  // namespace wf::convert

#endif  // WF_CONVERTER_SYNTH_H_
