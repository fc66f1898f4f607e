#include "worker/engine/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/gguf/gguf_reader.h"
#include "common/gguf/gguf_types.h"
#include "common/quant/dequant.h"
#include "common/quant/fp16.h"
#include "common/quant/ternary_formats.h"
#include "common/status_macros.h"
#include "worker/kernels/kernels.h"

namespace wf::engine {
namespace {

using gguf::GgmlType;
using gguf::TensorInfo;

// Dimensions beyond this are certainly not a real model and would risk
// overflowing the int32 arithmetic of the engine.
constexpr int64_t kMaxDim = int64_t{1} << 24;

std::string Key(std::string_view suffix) {
  return absl::StrCat(kArchitecture, ".", std::string(suffix));
}

std::string ShapeString(absl::Span<const int64_t> ne) {
  return absl::StrCat("[", absl::StrJoin(ne, ", "), "]");
}

bool IsNormType(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
}

bool IsEmbeddingType(GgmlType t) {
  return t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::F32 || t == GgmlType::Q8_0 ||
         t == GgmlType::Q6_K;
}

// Quantizes rows [r0, r1) of an F16 matrix [rows][k] to int8 with one scale
// per row: scale = max|w| / 127, q = round-half-even(w * (127 / max|w|)),
// so |q| <= 127 as the int8 head kernels require.
void QuantizeHeadRows(const kernels::KernelTable& kt, const uint16_t* head, int64_t k, int64_t r0,
                      int64_t r1, int8_t* q, float* scales) {
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = r0; r < r1; ++r) {
    kt.f16_to_f32(head + r * k, row.data(), k);
    float amax = 0.0f;
    for (float v : row) amax = std::max(amax, std::fabs(v));
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    int8_t* out = q + r * k;
    for (int64_t i = 0; i < k; ++i) {
      const float v = std::nearbyint(row[i] * inv);
      out[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
    scales[r] = amax / 127.0f;
  }
}

}  // namespace

const char* HeadTypeName(HeadType type) { return type == HeadType::kQ8 ? "q8" : "f16"; }

absl::StatusOr<HeadType> ParseHeadType(std::string_view name) {
  std::string lower(name);
  for (char& ch : lower) ch = absl::ascii_tolower(static_cast<unsigned char>(ch));
  if (lower == "f16") return HeadType::kF16;
  if (lower == "q8") return HeadType::kQ8;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown head type '", lower, "' (expected f16 or q8)"));
}

uint64_t Model::WeightBytesPerToken() const {
  uint64_t bytes = 0;
  for (const LayerWeights& w : layers_) {
    for (const TernaryWeight* t : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down}) {
      bytes += static_cast<uint64_t>(t->k * t->m / 4);
    }
  }
  const uint64_t head_values = static_cast<uint64_t>(config_.n_vocab) * config_.n_embd;
  if (head_type_ == HeadType::kQ8) {
    bytes += head_values + static_cast<uint64_t>(config_.n_vocab) * sizeof(float);
  } else {
    bytes += head_values * sizeof(uint16_t);
  }
  return bytes;
}

// Does the validation and conversion work of Model::FromFile on one model.
class Model::Loader {
 public:
  Loader(Model* model, const gguf::GgufFile& file, HeadType head_type)
      : model_(model), file_(file), head_type_(head_type) {}

  absl::Status Run() {
    BN_RETURN_IF_ERROR(ReadConfig());
    BN_RETURN_IF_ERROR(LoadTensors());
    BN_RETURN_IF_ERROR(CheckNoUnusedTensors());
    if (head_type_ == HeadType::kQ8) BN_RETURN_IF_ERROR(QuantizeHead());
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<int32_t> ReadDim(std::string_view suffix, std::optional<int32_t> fallback) {
    const std::string key = Key(suffix);
    if (file_.FindKey(key) == nullptr && fallback.has_value()) return *fallback;
    BN_ASSIGN_OR_RETURN(uint32_t v, file_.GetU32(key));
    if (v == 0 || v > kMaxDim) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata key '", key, "': value ", v, " out of range [1, ", kMaxDim, "]"));
    }
    return static_cast<int32_t>(v);
  }

  absl::Status ReadConfig() {
    BN_ASSIGN_OR_RETURN(std::string_view arch, file_.GetString("general.architecture"));
    if (arch != kArchitecture) {
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported architecture '", std::string(arch),
                       "' (general.architecture): only '", kArchitecture, "' is supported"));
    }
    ModelConfig& c = model_->config_;
    if (file_.FindKey("general.name") != nullptr) {
      BN_ASSIGN_OR_RETURN(std::string_view name, file_.GetString("general.name"));
      c.name = std::string(name);
    }
    BN_ASSIGN_OR_RETURN(c.n_ctx_train, ReadDim("context_length", std::nullopt));
    BN_ASSIGN_OR_RETURN(c.n_embd, ReadDim("embedding_length", std::nullopt));
    BN_ASSIGN_OR_RETURN(c.n_layer, ReadDim("block_count", std::nullopt));
    BN_ASSIGN_OR_RETURN(c.n_ff, ReadDim("feed_forward_length", std::nullopt));
    BN_ASSIGN_OR_RETURN(c.n_head, ReadDim("attention.head_count", std::nullopt));
    BN_ASSIGN_OR_RETURN(c.n_head_kv, ReadDim("attention.head_count_kv", c.n_head));
    if (c.n_head % c.n_head_kv != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(Key("attention.head_count"), " (", c.n_head, ") is not a multiple of ",
                       Key("attention.head_count_kv"), " (", c.n_head_kv, ")"));
    }
    if (c.n_embd % c.n_head != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(Key("embedding_length"), " (", c.n_embd, ") is not a multiple of ",
                       Key("attention.head_count"), " (", c.n_head, ")"));
    }
    c.head_dim = c.n_embd / c.n_head;
    // Even for RoPE; a multiple of 8 for the attention kernels' vectors.
    if (c.head_dim % 8 != 0) {
      return absl::InvalidArgumentError(absl::StrCat("head_dim = ", Key("embedding_length"), " / ",
                                                     Key("attention.head_count"), " = ", c.head_dim,
                                                     " must be a multiple of 8"));
    }
    for (const char* suffix :
         {"rope.dimension_count", "attention.key_length", "attention.value_length"}) {
      BN_ASSIGN_OR_RETURN(int32_t v, ReadDim(suffix, c.head_dim));
      if (v != c.head_dim) {
        return absl::InvalidArgumentError(
            absl::StrCat(Key(suffix), " is ", v, " but head_dim = ", Key("embedding_length"), " / ",
                         Key("attention.head_count"), " = ", c.head_dim,
                         "; partial or mismatched head sizes are not supported"));
      }
    }
    if (file_.FindKey(Key("rope.freq_base")) != nullptr) {
      BN_ASSIGN_OR_RETURN(c.rope_theta, file_.GetF32(Key("rope.freq_base")));
    } else {
      c.rope_theta = 10000.0f;
    }
    if (!std::isfinite(c.rope_theta) || c.rope_theta <= 0.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat(Key("rope.freq_base"), " must be positive and finite, got ", c.rope_theta));
    }
    BN_ASSIGN_OR_RETURN(c.rms_eps, file_.GetF32(Key("attention.layer_norm_rms_epsilon")));
    if (!std::isfinite(c.rms_eps) || c.rms_eps < 0.0f) {
      return absl::InvalidArgumentError(absl::StrCat(Key("attention.layer_norm_rms_epsilon"),
                                                     " must be finite and >= 0, got ", c.rms_eps));
    }
    // The vocabulary size comes from the embedding table; the key, when
    // present, must agree with it.
    const TensorInfo* embd = file_.FindTensor("token_embd.weight");
    if (embd == nullptr) return absl::NotFoundError("tensor 'token_embd.weight' not found");
    if (embd->n_dims != 2 || embd->ne[1] < 1 || embd->ne[1] > kMaxDim) {
      return absl::InvalidArgumentError(absl::StrCat("tensor 'token_embd.weight' has shape ",
                                                     ShapeString(embd->dims()), ", expected [",
                                                     c.n_embd, ", n_vocab]"));
    }
    c.n_vocab = static_cast<int32_t>(embd->ne[1]);
    BN_ASSIGN_OR_RETURN(int32_t vocab_key, ReadDim("vocab_size", c.n_vocab));
    if (vocab_key != c.n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          Key("vocab_size"), " is ", vocab_key, " but token_embd.weight has ", c.n_vocab, " rows"));
    }
    c.tied_head = file_.FindTensor("output.weight") == nullptr;
    return absl::OkStatus();
  }

  // Finds `name` and checks its shape (ggml order); marks it as used.
  absl::StatusOr<const TensorInfo*> Find(const std::string& name,
                                         std::initializer_list<int64_t> shape) {
    const TensorInfo* t = file_.FindTensor(name);
    if (t == nullptr) return absl::NotFoundError(absl::StrCat("tensor '", name, "' not found"));
    bool ok = t->n_dims == shape.size();
    size_t i = 0;
    for (int64_t d : shape) ok = ok && t->ne[i++] == d;
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ",
                                                     ShapeString(t->dims()), ", expected ",
                                                     ShapeString(std::vector<int64_t>(shape))));
    }
    used_.insert(name);
    return t;
  }

  absl::Status TypeError(const TensorInfo& t, const char* allowed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", t.name, "' has type ", gguf::GgmlTypeName(t.type), ", expected ", allowed));
  }

  absl::StatusOr<const float*> Norm(const std::string& name, int64_t n) {
    BN_ASSIGN_OR_RETURN(const TensorInfo* t, Find(name, {n}));
    if (!IsNormType(t->type)) return TypeError(*t, "f32, f16 or bf16");
    // Copied: a few KB, and the mapping only guarantees the file's alignment.
    std::vector<float>& out = model_->norm_storage_.emplace_back(n);
    BN_RETURN_IF_ERROR(
        quant::DequantizeRow(static_cast<uint32_t>(t->type), t->data, out.data(), n));
    for (float v : out) {
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", name, "' has a non-finite value"));
      }
    }
    model_->stats_.converted_bytes += n * sizeof(float);
    return out.data();
  }

  absl::StatusOr<TernaryWeight> Ternary(const std::string& name, int64_t k, int64_t m) {
    BN_ASSIGN_OR_RETURN(const TensorInfo* t, Find(name, {k, m}));
    TernaryWeight w{.k = k, .m = m};
    const int64_t n = k * m;
    switch (t->type) {
      case GgmlType::I2_S: {
        BN_RETURN_IF_ERROR(quant::CheckTernaryShape(quant::TernaryFormat::kI2S, k, m, name));
        w.codes = t->data;
        w.scale = quant::I2SScale(t->data, n);
        break;
      }
      case GgmlType::TQ1_0:
      case GgmlType::TQ2_0: {
        const bool tq1 = t->type == GgmlType::TQ1_0;
        BN_RETURN_IF_ERROR(quant::CheckTernaryShape(
            tq1 ? quant::TernaryFormat::kTQ1_0 : quant::TernaryFormat::kTQ2_0, k, m, name));
        BN_ASSIGN_OR_RETURN(w, RepackTq(*t, tq1, k, m));
        break;
      }
      default:
        return TypeError(*t, "i2_s, tq1_0 or tq2_0");
    }
    if (!std::isfinite(w.scale) || w.scale < 0.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' has an invalid scale ", w.scale));
    }
    return w;
  }

  // The kernels take one scale per tensor; TQ formats store one per block.
  absl::StatusOr<TernaryWeight> RepackTq(const TensorInfo& t, bool tq1, int64_t k, int64_t m) {
    const int64_t n = k * m;
    std::vector<int8_t> values(n);
    std::vector<float> block_d(n / quant::kTQBlockValues);
    if (tq1) {
      quant::UnpackTQ1_0(t.data, n, values.data(), block_d.data());
    } else {
      quant::UnpackTQ2_0(t.data, n, values.data(), block_d.data());
    }
    float scale = 0.0f;
    for (size_t b = 0; b < block_d.size(); ++b) {
      const float d = block_d[b];
      if (d == 0.0f) {
        // The block dequantizes to zeros whatever its codes say.
        std::memset(values.data() + b * quant::kTQBlockValues, 0, quant::kTQBlockValues);
        continue;
      }
      if (scale == 0.0f) {
        scale = d;
      } else if (d != scale) {
        return absl::UnimplementedError(
            absl::StrCat("tensor '", t.name, "': per-block TQ scales are not supported (block ", b,
                         " has scale ", d, ", an earlier block ", scale,
                         "); convert with one scale per tensor"));
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      // A TQ2_0 code 3 decodes as +2, which I2_S cannot hold.
      if (values[i] < -1 || values[i] > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", t.name, "': invalid ternary code at element ", i));
      }
    }
    std::vector<uint8_t>& packed = model_->repacked_.emplace_back(quant::I2SBytes(n));
    quant::PackI2S(values.data(), n, scale, packed.data());
    model_->stats_.converted_bytes += packed.size();
    ++model_->stats_.repacked_tensors;
    return TernaryWeight{.codes = packed.data(), .scale = scale, .k = k, .m = m};
  }

  absl::Status LoadTensors() {
    const ModelConfig& c = model_->config_;
    const int64_t n_embd = c.n_embd;
    const int64_t n_kv = static_cast<int64_t>(c.n_head_kv) * c.head_dim;

    BN_ASSIGN_OR_RETURN(const TensorInfo* embd, Find("token_embd.weight", {n_embd, c.n_vocab}));
    if (!IsEmbeddingType(embd->type)) return TypeError(*embd, "f16, bf16, f32, q8_0 or q6_k");
    BN_ASSIGN_OR_RETURN(model_->embd_row_bytes_, gguf::TensorBytes(embd->type, {n_embd}));
    model_->embd_data_ = embd->data;
    model_->embd_type_ = static_cast<uint32_t>(embd->type);

    model_->layers_.resize(c.n_layer);
    for (int l = 0; l < c.n_layer; ++l) {
      LayerWeights& w = model_->layers_[l];
      const std::string p = absl::StrCat("blk.", l, ".");
      BN_ASSIGN_OR_RETURN(w.attn_norm, Norm(p + "attn_norm.weight", n_embd));
      BN_ASSIGN_OR_RETURN(w.wq, Ternary(p + "attn_q.weight", n_embd, n_embd));
      BN_ASSIGN_OR_RETURN(w.wk, Ternary(p + "attn_k.weight", n_embd, n_kv));
      BN_ASSIGN_OR_RETURN(w.wv, Ternary(p + "attn_v.weight", n_embd, n_kv));
      BN_ASSIGN_OR_RETURN(w.attn_sub_norm, Norm(p + "attn_sub_norm.weight", n_embd));
      BN_ASSIGN_OR_RETURN(w.wo, Ternary(p + "attn_output.weight", n_embd, n_embd));
      BN_ASSIGN_OR_RETURN(w.ffn_norm, Norm(p + "ffn_norm.weight", n_embd));
      BN_ASSIGN_OR_RETURN(w.w_gate, Ternary(p + "ffn_gate.weight", n_embd, c.n_ff));
      BN_ASSIGN_OR_RETURN(w.w_up, Ternary(p + "ffn_up.weight", n_embd, c.n_ff));
      BN_ASSIGN_OR_RETURN(w.ffn_sub_norm, Norm(p + "ffn_sub_norm.weight", c.n_ff));
      BN_ASSIGN_OR_RETURN(w.w_down, Ternary(p + "ffn_down.weight", c.n_ff, n_embd));
    }
    BN_ASSIGN_OR_RETURN(model_->output_norm_, Norm("output_norm.weight", n_embd));

    const TensorInfo* head = embd;
    if (!c.tied_head) {
      BN_ASSIGN_OR_RETURN(head, Find("output.weight", {n_embd, c.n_vocab}));
      if (!IsEmbeddingType(head->type)) return TypeError(*head, "f16, bf16, f32, q8_0 or q6_k");
    }
    return LoadHead(*head);
  }

  absl::Status LoadHead(const TensorInfo& t) {
    const ModelConfig& c = model_->config_;
    if (t.type == GgmlType::F16 && reinterpret_cast<uintptr_t>(t.data) % alignof(uint16_t) == 0) {
      model_->head_ = reinterpret_cast<const uint16_t*>(t.data);
      return absl::OkStatus();
    }
    // The head kernels read F16 only: convert once (n_vocab * n_embd * 2 bytes).
    BN_ASSIGN_OR_RETURN(const uint64_t row_bytes, gguf::TensorBytes(t.type, {c.n_embd}));
    std::vector<uint16_t>& out = model_->head_storage_;
    out.resize(static_cast<size_t>(c.n_vocab) * c.n_embd);
    std::vector<float> row(c.n_embd);
    for (int64_t r = 0; r < c.n_vocab; ++r) {
      BN_RETURN_IF_ERROR(quant::DequantizeRow(static_cast<uint32_t>(t.type), t.data + r * row_bytes,
                                              row.data(), c.n_embd));
      uint16_t* dst = out.data() + r * c.n_embd;
      quant::F32ToF16(row.data(), dst, row.size());
      for (int64_t i = 0; i < c.n_embd; ++i) {
        if (std::isfinite(row[i]) && !std::isfinite(quant::F16ToF32(dst[i]))) {
          return absl::InvalidArgumentError(
              absl::StrCat("tensor '", t.name, "': value ", row[i], " at row ", r,
                           " is outside the F16 range of the head kernels"));
        }
      }
    }
    model_->head_ = out.data();
    model_->stats_.head_converted = true;
    model_->stats_.converted_bytes += out.size() * sizeof(uint16_t);
    return absl::OkStatus();
  }

  // Anything this architecture does not read (attention biases, rope_freqs,
  // per-tensor scale tensors of the older "bitnet" arch, extra layers) would
  // change the math if it were meant to be used: refuse rather than ignore.
  absl::Status CheckNoUnusedTensors() {
    for (const TensorInfo& t : file_.tensors()) {
      if (!used_.contains(t.name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unsupported tensor '", t.name, "': not part of the ", kArchitecture, " forward pass"));
      }
    }
    return absl::OkStatus();
  }

  // Rows are split between threads: the 2B-4T head has 328M values and the
  // model should be ready within a couple of seconds.
  absl::Status QuantizeHead() {
    const auto start = std::chrono::steady_clock::now();
    const ModelConfig& c = model_->config_;
    const int64_t k = c.n_embd;
    const int64_t rows = c.n_vocab;
    if (k % 64 != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("q8 head: embedding_length ", k, " is not a multiple of 64"));
    }
    model_->head_q8_.resize(static_cast<size_t>(rows * k));
    model_->head_q8_scales_.resize(static_cast<size_t>(rows));
    const int64_t max_threads = std::max<int64_t>(1, rows / 64);
    const int n_threads = static_cast<int>(
        std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, max_threads));
    std::vector<std::thread> threads;
    for (int i = 0; i < n_threads; ++i) {
      const int64_t r0 = rows * i / n_threads;
      const int64_t r1 = rows * (i + 1) / n_threads;
      threads.emplace_back(QuantizeHeadRows, std::cref(*model_->kernels_), model_->head_, k, r0, r1,
                           model_->head_q8_.data(), model_->head_q8_scales_.data());
    }
    for (std::thread& t : threads) t.join();
    model_->head_type_ = HeadType::kQ8;
    model_->stats_.converted_bytes += model_->head_q8_.size() + rows * sizeof(float);
    model_->stats_.head_quantize_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return absl::OkStatus();
  }

  Model* model_;
  const gguf::GgufFile& file_;
  const HeadType head_type_;
  absl::flat_hash_set<std::string> used_;
};

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& path,
                                                   const LoadOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  BN_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::Open(path));
  auto model = FromFile(std::move(file), options);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat(path, ": ", model.status().message()));
  }
  (*model)->stats_.load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> Model::FromFile(std::unique_ptr<gguf::GgufFile> file,
                                                       const LoadOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Model> model(new Model());
  if (options.kernels != nullptr) {
    model->kernels_ = options.kernels;
  } else {
    BN_ASSIGN_OR_RETURN(model->kernels_, kernels::SelectKernels());
  }
  model->stats_.file_bytes = file->size();
  Loader loader(model.get(), *file, options.head_type);
  BN_RETURN_IF_ERROR(loader.Run());
  model->file_ = std::move(file);
  model->stats_.load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return model;
}

void Model::Embed(int32_t token, float* out) const {
  const uint8_t* row = embd_data_ + static_cast<uint64_t>(token) * embd_row_bytes_;
  const int64_t n = config_.n_embd;
  switch (embd_type_) {
    case quant::kGgmlTypeF16:
      quant::DequantizeRowF16(row, out, n);
      break;
    case quant::kGgmlTypeBF16:
      quant::DequantizeRowBF16(row, out, n);
      break;
    case quant::kGgmlTypeQ8_0:
      quant::DequantizeRowQ8_0(row, out, n);
      break;
    case quant::kGgmlTypeQ6_K:
      quant::DequantizeRowQ6_K(row, out, n);
      break;
    default:
      quant::DequantizeRowF32(row, out, n);
      break;
  }
}

}  // namespace wf::engine
