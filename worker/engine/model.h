// A loaded BitNet b1.58 model: hyper-parameters from the GGUF metadata and
// validated, kernel-ready views of every weight the forward pass uses.
//
// Load() validates everything once (architecture, every metadata key, every
// tensor's presence, type and shape) so the forward pass and the kernels never
// see an unvalidated shape. Weights stay in the read-only file mapping where
// their format is the kernel format (I2_S projections, an F16 head);
// otherwise they are converted once at load:
//   - TQ2_0 / TQ1_0 projections are repacked to I2_S codes (n/4 bytes per
//     tensor) when every nonzero block scale of the tensor is the same value
//     (what a per-tensor-scale converter writes); a tensor with differing
//     block scales is rejected, naming it ("per-block TQ scales are not
//     supported").
//   - a head (output.weight, or the tied token_embd.weight) that is not F16
//     is converted to F16 in memory: n_vocab * n_embd * 2 bytes (657 MB for
//     the 2B-4T shape with a 128256 vocabulary), in addition to the mapping.
//   - norm weights (a few KB) are copied to float arrays.
//   - with LoadOptions::head_type == kQ8, the head is also quantized to int8
//     with one float scale per row (n_vocab * (n_embd + 4) bytes, 328 MB for
//     the 2B-4T shape): the forward pass then reads half the bytes per token
//     at a small logit drift (measured against the golden sets in
//     golden_test.cc). The F16 head stays available through head().
// The embedding table is read in place, one row per token, through
// quant::DequantizeRow (F16, BF16, F32, Q8_0 or Q6_K).
//
// Error codes of Load(): NOT_FOUND for a missing file, key or tensor;
// INVALID_ARGUMENT for a wrong architecture, key type, tensor type, shape or
// inconsistent hyper-parameters, and for tensors this architecture does not
// use (attention biases, rope_freqs: "unsupported tensor"); UNIMPLEMENTED for
// per-block TQ scales; the kernel selection's errors. Messages name the key
// or tensor.
//
// Threading: a Model is immutable after Load(); share it between threads and
// between any number of ModelRunners. It must outlive them.
//
// Example:
//   BN_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Load(path, {}));
//   WF_LOG(INFO) << "loaded in " << model->load_stats().load_seconds << " s";
#ifndef WF_WORKER_ENGINE_MODEL_H_
#define WF_WORKER_ENGINE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/gguf/gguf_reader.h"
#include "worker/kernels/kernels.h"

namespace wf::engine {

inline constexpr char kArchitecture[] = "bitnet-b1.58";

struct ModelConfig {
  std::string name = {};    // general.name, may be empty
  int32_t n_vocab = 0;      // vocab_size (or token_embd rows when the key is absent)
  int32_t n_ctx_train = 0;  // context_length
  int32_t n_embd = 0;       // embedding_length
  int32_t n_layer = 0;      // block_count
  int32_t n_ff = 0;         // feed_forward_length
  int32_t n_head = 0;       // attention.head_count
  int32_t n_head_kv = 0;    // attention.head_count_kv (default n_head)
  int32_t head_dim = 0;     // n_embd / n_head (= rope.dimension_count)
  float rope_theta = 0.0f;  // rope.freq_base (default 10000)
  float rms_eps = 0.0f;     // attention.layer_norm_rms_epsilon
  bool tied_head = false;   // no output.weight: the head is token_embd
};

// Format of the output head the forward pass reads.
enum class HeadType {
  kF16 = 0,  // exact: the F16 head, as bitnet.cpp computes it
  kQ8 = 1,   // int8 weights, one scale per row (max|w| / 127), int8 activations
};

// "f16" / "q8"; ParseHeadType accepts those (case-insensitive) and returns
// INVALID_ARGUMENT naming the value otherwise.
const char* HeadTypeName(HeadType type);
absl::StatusOr<HeadType> ParseHeadType(std::string_view name);

struct LoadOptions {
  // Kernels to run with; nullptr means kernels::SelectKernels() (the best ISA
  // of this CPU, or BITNET_FORCE_ISA). Tests inject a specific table.
  const kernels::KernelTable* kernels = nullptr;
  // kQ8 quantizes the head at load (INVALID_ARGUMENT if n_embd % 64 != 0).
  HeadType head_type = HeadType::kF16;
};

struct LoadStats {
  double load_seconds = 0.0;     // Open + validation + conversions
  uint64_t file_bytes = 0;       // size of the mapped file
  uint64_t converted_bytes = 0;  // heap bytes made at load (repacked TQ, converted head, norms)
  int32_t repacked_tensors = 0;  // TQ1_0/TQ2_0 projections repacked to I2_S
  bool head_converted = false;   // head converted to F16 at load
  double head_quantize_seconds = 0.0;  // part of load_seconds spent on a kQ8 head
};

// One ternary projection y = W x, W [m rows][k inputs] in I2_S codes.
struct TernaryWeight {
  const uint8_t* codes = nullptr;  // row r at codes + r * k / 4
  float scale = 0.0f;              // per-tensor scale
  int64_t k = 0;                   // inputs (ne0), multiple of 128
  int64_t m = 0;                   // outputs (ne1)
};

struct LayerWeights {
  const float* attn_norm = nullptr;      // [n_embd]
  TernaryWeight wq, wk, wv, wo;          // q: n_embd -> n_embd; k, v: n_embd -> n_head_kv*head_dim
  const float* attn_sub_norm = nullptr;  // [n_embd]
  const float* ffn_norm = nullptr;       // [n_embd]
  TernaryWeight w_gate, w_up, w_down;    // gate, up: n_embd -> n_ff; down: n_ff -> n_embd
  const float* ffn_sub_norm = nullptr;   // [n_ff]
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& path,
                                                     const LoadOptions& options);
  // Same, from an already opened file (kept alive by the model).
  static absl::StatusOr<std::unique_ptr<Model>> FromFile(std::unique_ptr<gguf::GgufFile> file,
                                                         const LoadOptions& options);

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const LoadStats& load_stats() const { return stats_; }
  const kernels::KernelTable& kernels() const { return *kernels_; }
  const gguf::GgufFile& file() const { return *file_; }

  const LayerWeights& layer(int i) const { return layers_[i]; }
  const float* output_norm() const { return output_norm_; }
  // The F16 head, [n_vocab rows][n_embd].
  const uint16_t* head() const { return head_; }
  // The head the forward pass uses (LoadOptions::head_type).
  HeadType head_type() const { return head_type_; }
  // kQ8 only (else nullptr): int8 head [n_vocab rows][n_embd], values in
  // [-127, 127], and its per-row scales (w ~= q8 * scale).
  const int8_t* head_q8() const { return head_q8_.empty() ? nullptr : head_q8_.data(); }
  const float* head_q8_scales() const {
    return head_q8_scales_.empty() ? nullptr : head_q8_scales_.data();
  }
  // Bytes the forward pass reads per decode token from the weights: every
  // ternary projection plus the head in its HeadType (not the embedding row
  // or the norms, which are tiny).
  uint64_t WeightBytesPerToken() const;

  // Writes the embedding of `token` (n_embd floats). `token` must be in
  // [0, n_vocab) (checked by the caller; not checked here).
  void Embed(int32_t token, float* out) const;

 private:
  class Loader;
  Model() = default;

  std::unique_ptr<gguf::GgufFile> file_;
  const kernels::KernelTable* kernels_ = nullptr;
  ModelConfig config_;
  LoadStats stats_;

  std::vector<LayerWeights> layers_;
  const float* output_norm_ = nullptr;
  const uint16_t* head_ = nullptr;
  const uint8_t* embd_data_ = nullptr;
  uint32_t embd_type_ = 0;
  uint64_t embd_row_bytes_ = 0;

  // Storage for what was converted at load.
  std::vector<std::vector<uint8_t>> repacked_;
  std::vector<uint16_t> head_storage_;
  HeadType head_type_ = HeadType::kF16;
  std::vector<int8_t> head_q8_;
  std::vector<float> head_q8_scales_;
  std::vector<std::vector<float>> norm_storage_;
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_MODEL_H_
