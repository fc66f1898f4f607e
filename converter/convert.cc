#include "converter/convert.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/gguf/gguf_writer.h"
#include "common/log.h"
#include "common/quant/fp16.h"
#include "common/quant/ternary_formats.h"
#include "common/status_macros.h"
#include "common/tokenizer/vocab.h"
#include "converter/hf_config.h"
#include "converter/safetensors.h"
#include "converter/synth_tokenizer.h"
#include "converter/ternarize.h"

namespace wf::convert {
namespace {

using gguf::GgmlType;
using gguf::Value;

constexpr char kArch[] = "bitnet-b1.58";
// Scores bitnet.cpp's converter gives to added (special) tokens.
constexpr float kAddedTokenScore = -1000.0f;
// Embedding rows are converted in chunks of about this many bytes.
constexpr size_t kChunkBytes = size_t{8} << 20;

enum class Role { kEmbedding, kOutputHead, kNorm, kProjection };

struct PlannedTensor {
  std::string gguf_name;
  std::string hf_name;
  Role role;
  std::vector<int64_t> hf_shape;  // PyTorch order: [out, in].
  GgmlType type;
};

uint32_t FileType(OutType t) {
  switch (t) {
    case OutType::kI2S: return 40;    // LLAMA_FTYPE_MOSTLY_I2_S in bitnet.cpp.
    case OutType::kTQ1_0: return 36;  // LLAMA_FTYPE_MOSTLY_TQ1_0.
    case OutType::kTQ2_0: return 37;  // LLAMA_FTYPE_MOSTLY_TQ2_0.
    case OutType::kF16: return 1;
    case OutType::kBF16: return 32;
    case OutType::kF32: return 0;
  }
  return 0;
}

GgmlType ProjectionType(OutType t) {
  switch (t) {
    case OutType::kI2S: return GgmlType::I2_S;
    case OutType::kTQ1_0: return GgmlType::TQ1_0;
    case OutType::kTQ2_0: return GgmlType::TQ2_0;
    case OutType::kF16: return GgmlType::F16;
    case OutType::kBF16: return GgmlType::BF16;
    case OutType::kF32: return GgmlType::F32;
  }
  return GgmlType::F32;
}

// The published file keeps the tied embedding (and head) in F16 next to I2_S.
GgmlType EmbeddingType(OutType t) {
  switch (t) {
    case OutType::kBF16: return GgmlType::BF16;
    case OutType::kF32: return GgmlType::F32;
    default: return GgmlType::F16;
  }
}

std::string Shape(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

std::vector<int64_t> Reversed(std::vector<int64_t> s) {
  std::reverse(s.begin(), s.end());
  return s;
}

// Tensor order of the reference generator: embedding, per layer the seven
// projections then the four norms, then the final norm (and head if untied).
std::vector<PlannedTensor> Plan(const BitNetConfig& c, OutType outtype) {
  const int64_t h = c.hidden_size, f = c.intermediate_size, v = c.vocab_size;
  const int64_t kv = c.num_key_value_heads * c.head_dim;
  const GgmlType proj = ProjectionType(outtype);
  std::vector<PlannedTensor> plan;
  plan.push_back({"token_embd.weight", "model.embed_tokens.weight", Role::kEmbedding, {v, h},
                  EmbeddingType(outtype)});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string hf = absl::StrCat("model.layers.", l, ".");
    const std::string gg = absl::StrCat("blk.", l, ".");
    plan.push_back({gg + "attn_q.weight", hf + "self_attn.q_proj.weight", Role::kProjection, {h, h}, proj});
    plan.push_back({gg + "attn_k.weight", hf + "self_attn.k_proj.weight", Role::kProjection, {kv, h}, proj});
    plan.push_back({gg + "attn_v.weight", hf + "self_attn.v_proj.weight", Role::kProjection, {kv, h}, proj});
    plan.push_back({gg + "attn_output.weight", hf + "self_attn.o_proj.weight", Role::kProjection, {h, h}, proj});
    plan.push_back({gg + "ffn_gate.weight", hf + "mlp.gate_proj.weight", Role::kProjection, {f, h}, proj});
    plan.push_back({gg + "ffn_up.weight", hf + "mlp.up_proj.weight", Role::kProjection, {f, h}, proj});
    plan.push_back({gg + "ffn_down.weight", hf + "mlp.down_proj.weight", Role::kProjection, {h, f}, proj});
    plan.push_back({gg + "attn_norm.weight", hf + "input_layernorm.weight", Role::kNorm, {h}, GgmlType::F32});
    plan.push_back({gg + "ffn_norm.weight", hf + "post_attention_layernorm.weight", Role::kNorm, {h}, GgmlType::F32});
    plan.push_back({gg + "attn_sub_norm.weight", hf + "self_attn.attn_sub_norm.weight", Role::kNorm, {h}, GgmlType::F32});
    plan.push_back({gg + "ffn_sub_norm.weight", hf + "mlp.ffn_sub_norm.weight", Role::kNorm, {f}, GgmlType::F32});
  }
  plan.push_back({"output_norm.weight", "model.norm.weight", Role::kNorm, {h}, GgmlType::F32});
  if (!c.tie_word_embeddings) {
    plan.push_back({"output.weight", "lm_head.weight", Role::kOutputHead, {v, h}, EmbeddingType(outtype)});
  }
  return plan;
}

bool IsFloat(SafetensorsDtype d) {
  return d == SafetensorsDtype::kBF16 || d == SafetensorsDtype::kF16 || d == SafetensorsDtype::kF32;
}

// Checks that the checkpoint holds every planned tensor with the right shape
// and a usable dtype, before anything is written.
absl::Status CheckTensors(const Checkpoint& ckpt, const std::vector<PlannedTensor>& plan,
                          bool* packed) {
  *packed = false;
  for (const PlannedTensor& t : plan) {
    const TensorRef* ref = ckpt.Find(t.hf_name);
    if (ref == nullptr) {
      return absl::NotFoundError(absl::StrCat("tensor '", t.hf_name, "' (for ", t.gguf_name,
                                              ") is missing from the checkpoint"));
    }
    const TensorInfo& info = *ref->info;
    if (t.role == Role::kProjection && info.dtype == SafetensorsDtype::kU8) {
      std::vector<int64_t> want = t.hf_shape;
      if (want[0] % 4 != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor '", t.hf_name, "': packed ternary weights need out_features divisible by 4, got ",
            want[0]));
      }
      want[0] /= 4;
      if (info.shape != want) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor '", t.hf_name, "': packed shape ", Shape(info.shape), " does not match config.json (expected ",
            Shape(want), " = [", t.hf_shape[0], "/4, ", t.hf_shape[1], "])"));
      }
      const std::string scale_name = t.hf_name + "_scale";
      const TensorRef* scale = ckpt.Find(scale_name);
      if (scale == nullptr) {
        return absl::NotFoundError(absl::StrCat("tensor '", scale_name,
                                                "' is missing: packed weights need their weight_scale"));
      }
      if (scale->info->numel != 1 || !IsFloat(scale->info->dtype)) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", scale_name,
                                                       "' must hold one float value, got shape ",
                                                       Shape(scale->info->shape), " of ",
                                                       std::string(SafetensorsDtypeName(scale->info->dtype))));
      }
      *packed = true;
      continue;
    }
    if (!IsFloat(info.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", t.hf_name, "' has dtype ", std::string(SafetensorsDtypeName(info.dtype)),
                       "; expected BF16, F16 or F32", t.role == Role::kProjection ? " (or packed U8)" : ""));
    }
    if (info.shape != t.hf_shape) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.hf_name, "' has shape ",
                                                     Shape(info.shape), " but config.json implies ",
                                                     Shape(t.hf_shape)));
    }
  }
  return absl::OkStatus();
}

// Converts n float values to the storage type of `type` (F32, F16 or BF16).
void EncodeFloats(const float* src, size_t n, GgmlType type, std::vector<uint8_t>* out) {
  if (type == GgmlType::F32) {
    out->resize(n * 4);
    std::memcpy(out->data(), src, n * 4);
    return;
  }
  out->resize(n * 2);
  uint16_t* dst = reinterpret_cast<uint16_t*>(out->data());
  if (type == GgmlType::F16) {
    quant::F32ToF16(src, dst, n);
  } else {
    quant::F32ToBF16(src, dst, n);
  }
}

void DecodeFloats(const uint8_t* src, size_t n, SafetensorsDtype dtype, float* dst) {
  switch (dtype) {
    case SafetensorsDtype::kF32: std::memcpy(dst, src, n * 4); break;
    case SafetensorsDtype::kF16: quant::F16ToF32(reinterpret_cast<const uint16_t*>(src), dst, n); break;
    default: quant::BF16ToF32(reinterpret_cast<const uint16_t*>(src), dst, n); break;
  }
}

struct EncodedTensor {
  std::vector<uint8_t> bytes;
  uint64_t bytes_read = 0;
};

absl::StatusOr<TernaryTensor> ReadTernary(const Checkpoint& ckpt, const PlannedTensor& t, uint64_t* bytes_read) {
  const TensorRef* ref = ckpt.Find(t.hf_name);
  if (ref->info->dtype == SafetensorsDtype::kU8) {
    std::vector<uint8_t> packed(ref->info->nbytes());
    BN_RETURN_IF_ERROR(ckpt.ReadTensor(t.hf_name, packed.data(), packed.size()));
    BN_ASSIGN_OR_RETURN(std::vector<float> scale, ckpt.ReadTensorAsF32(t.hf_name + "_scale"));
    *bytes_read += packed.size();
    auto unpacked = UnpackHfPacked(packed.data(), t.hf_shape[0] / 4, t.hf_shape[1], scale[0]);
    if (!unpacked.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.hf_name, "': ", unpacked.status().message()));
    }
    return unpacked;
  }
  BN_ASSIGN_OR_RETURN(std::vector<float> w, ckpt.ReadTensorAsF32(t.hf_name));
  *bytes_read += ref->info->nbytes();
  auto tern = Ternarize(w.data(), static_cast<int64_t>(w.size()));
  if (!tern.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", t.hf_name, "': ", tern.status().message()));
  }
  return tern;
}

// Reads, ternarizes and packs one projection. Thread-safe: the checkpoint is
// read with pread and nothing else is shared.
absl::StatusOr<EncodedTensor> EncodeProjection(const Checkpoint& ckpt, const PlannedTensor& t) {
  EncodedTensor enc;
  BN_ASSIGN_OR_RETURN(TernaryTensor tern, ReadTernary(ckpt, t, &enc.bytes_read));
  const int64_t n = static_cast<int64_t>(tern.values.size());
  std::vector<uint8_t>& out = enc.bytes;
  switch (t.type) {
    case GgmlType::I2_S:
      out.resize(quant::I2SBytes(n));
      quant::PackI2S(tern.values.data(), n, tern.scale, out.data());
      break;
    case GgmlType::TQ1_0:
      out.resize(quant::TQ1_0Bytes(n));
      quant::PackTQ1_0(tern.values.data(), n, tern.scale, out.data());
      break;
    case GgmlType::TQ2_0:
      out.resize(quant::TQ2_0Bytes(n));
      quant::PackTQ2_0(tern.values.data(), n, tern.scale, out.data());
      break;
    default: {
      std::vector<float> deq(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) deq[i] = static_cast<float>(tern.values[i]) * tern.scale;
      EncodeFloats(deq.data(), deq.size(), t.type, &out);
      break;
    }
  }
  return enc;
}

// Writes the planned tensors in file order on the calling thread; projections
// arrive already encoded (futures), the rest is read and converted here.
class Converter {
 public:
  Converter(const Checkpoint& ckpt, gguf::GgufWriter& writer)
      : ckpt_(ckpt), writer_(writer) {}

  absl::Status WriteTensor(const PlannedTensor& t, std::future<absl::StatusOr<EncodedTensor>>* projection) {
    BN_RETURN_IF_ERROR(writer_.BeginTensor(t.gguf_name));
    switch (t.role) {
      case Role::kEmbedding:
      case Role::kOutputHead:
        BN_RETURN_IF_ERROR(StreamRows(t));
        break;
      case Role::kNorm: {
        BN_ASSIGN_OR_RETURN(std::vector<float> v, ckpt_.ReadTensorAsF32(t.hf_name));
        BN_RETURN_IF_ERROR(writer_.WriteTensorBytes(v.data(), v.size() * 4));
        bytes_read_ += ckpt_.Find(t.hf_name)->info->nbytes();
        break;
      }
      case Role::kProjection: {
        // Encoded ahead of time on a worker thread (see ConvertCheckpoint).
        BN_ASSIGN_OR_RETURN(EncodedTensor enc, projection->get());
        bytes_read_ += enc.bytes_read;
        BN_RETURN_IF_ERROR(writer_.WriteTensorBytes(enc.bytes.data(), enc.bytes.size()));
        break;
      }
    }
    return writer_.EndTensor();
  }

  uint64_t bytes_read() const { return bytes_read_; }

 private:
  absl::Status StreamRows(const PlannedTensor& t) {
    const TensorInfo& info = *ckpt_.Find(t.hf_name)->info;
    const int64_t rows = t.hf_shape[0], cols = t.hf_shape[1];
    const size_t in_row = static_cast<size_t>(cols) * SafetensorsDtypeSize(info.dtype);
    const int64_t chunk_rows = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes / in_row));
    std::vector<uint8_t> raw;
    std::vector<float> f32;
    std::vector<uint8_t> encoded;
    for (int64_t r = 0; r < rows; r += chunk_rows) {
      const int64_t n_rows = std::min(chunk_rows, rows - r);
      const size_t n = static_cast<size_t>(n_rows * cols);
      raw.resize(n_rows * in_row);
      BN_RETURN_IF_ERROR(ckpt_.ReadTensorRange(t.hf_name, r * in_row, raw.data(), raw.size()));
      f32.resize(n);
      DecodeFloats(raw.data(), n, info.dtype, f32.data());
      EncodeFloats(f32.data(), n, t.type, &encoded);
      BN_RETURN_IF_ERROR(writer_.WriteTensorBytes(encoded.data(), encoded.size()));
      bytes_read_ += raw.size();
    }
    return absl::OkStatus();
  }

  const Checkpoint& ckpt_;
  gguf::GgufWriter& writer_;
  uint64_t bytes_read_ = 0;
};

struct TokenizerInputs {
  tokenizer::Vocab vocab;
  std::string chat_template;
};

absl::StatusOr<TokenizerInputs> LoadTokenizer(const std::string& dir, const BitNetConfig& config) {
  TokenizerInputs out;
  const std::string tok_path = dir + "/tokenizer.json";
  auto text = ReadFileToString(tok_path, size_t{512} << 20);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat("cannot read the tokenizer: ", text.status().message()));
  }
  auto vocab = tokenizer::ParseHfTokenizerJson(*text);
  if (!vocab.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(tok_path, ": ", vocab.status().message()));
  }
  out.vocab = std::move(*vocab);
  out.chat_template = kBitNetChatTemplate;
  const std::string cfg_path = dir + "/tokenizer_config.json";
  auto cfg_text = ReadFileToString(cfg_path, size_t{64} << 20);
  if (cfg_text.ok()) {
    auto cfg = ParseHfTokenizerConfig(*cfg_text);
    if (!cfg.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": ", cfg.status().message()));
    }
    if (!cfg->chat_template.empty()) out.chat_template = cfg->chat_template;
  } else if (!absl::IsNotFound(cfg_text.status())) {
    return cfg_text.status();
  }
  const int64_t n_tokens = static_cast<int64_t>(out.vocab.tokens.size());
  if (n_tokens > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        tok_path, " has ", n_tokens, " tokens but config.json vocab_size is ", config.vocab_size));
  }
  // llama.cpp pads a short vocabulary with unused placeholder tokens.
  for (int64_t i = n_tokens; i < config.vocab_size; ++i) {
    out.vocab.tokens.push_back(absl::StrCat("[PAD", i, "]"));
    out.vocab.token_types.push_back(tokenizer::kTokenUnused);
  }
  return out;
}

absl::Status AddMetadata(gguf::GgufWriter& w, const ConvertOptions& options, const BitNetConfig& c,
                         const TokenizerInputs& tok, std::string name) {
  const auto u32 = [](int64_t v) { return Value::U32(static_cast<uint32_t>(v)); };
  const std::string p = std::string(kArch) + ".";
  const tokenizer::Vocab& v = tok.vocab;
  std::vector<float> scores(v.tokens.size(), 0.0f);
  for (size_t i = 0; i < scores.size(); ++i) {
    if (v.token_types[i] == tokenizer::kTokenControl ||
        v.token_types[i] == tokenizer::kTokenUserDefined) {
      scores[i] = kAddedTokenScore;
    }
  }
  const int64_t bos = c.bos_token_id.value_or(v.bos_id);
  const int64_t eos = c.eos_token_ids.empty() ? v.eos_id : c.eos_token_ids.front();
  const int64_t pad = c.pad_token_id.value_or(eos);
  for (const auto& [key, id] : {std::pair<const char*, int64_t>{"bos_token_id", bos},
                                {"eos_token_id", eos}, {"pad_token_id", pad}}) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("config.json ", key, " ", id,
                                                     " is outside the vocabulary (size ", c.vocab_size, ")"));
    }
  }
  std::vector<std::pair<std::string, Value>> kv;
  kv.emplace_back("general.architecture", Value::String(kArch));
  kv.emplace_back("general.name", Value::String(std::move(name)));
  kv.emplace_back(p + "vocab_size", u32(c.vocab_size));
  kv.emplace_back(p + "context_length", u32(c.max_position_embeddings));
  kv.emplace_back(p + "embedding_length", u32(c.hidden_size));
  kv.emplace_back(p + "block_count", u32(c.num_hidden_layers));
  kv.emplace_back(p + "feed_forward_length", u32(c.intermediate_size));
  kv.emplace_back(p + "rope.dimension_count", u32(c.head_dim));
  kv.emplace_back(p + "attention.head_count", u32(c.num_attention_heads));
  kv.emplace_back(p + "attention.head_count_kv", u32(c.num_key_value_heads));
  kv.emplace_back("tokenizer.ggml.add_bos_token", Value::Bool(true));
  kv.emplace_back(p + "attention.layer_norm_rms_epsilon", Value::F32(static_cast<float>(c.rms_norm_eps)));
  kv.emplace_back(p + "rope.freq_base", Value::F32(static_cast<float>(c.rope_theta)));
  kv.emplace_back("general.file_type", Value::U32(FileType(options.outtype)));
  kv.emplace_back("tokenizer.ggml.model", Value::String("gpt2"));
  if (!v.pre.empty()) kv.emplace_back("tokenizer.ggml.pre", Value::String(v.pre));
  kv.emplace_back("tokenizer.ggml.tokens", Value::StringArray(v.tokens));
  kv.emplace_back("tokenizer.ggml.scores", Value::F32Array(std::move(scores)));
  kv.emplace_back("tokenizer.ggml.token_type", Value::I32Array(v.token_types));
  kv.emplace_back("tokenizer.ggml.merges", Value::StringArray(v.merges));
  kv.emplace_back("tokenizer.ggml.bos_token_id", u32(bos));
  kv.emplace_back("tokenizer.ggml.eos_token_id", u32(eos));
  kv.emplace_back("tokenizer.ggml.padding_token_id", u32(pad));
  kv.emplace_back("tokenizer.chat_template", Value::String(tok.chat_template));
  kv.emplace_back("general.quantization_version", Value::U32(2));
  for (auto& [key, value] : kv) BN_RETURN_IF_ERROR(w.AddMetadata(key, std::move(value)));
  return absl::OkStatus();
}

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

absl::StatusOr<OutType> ParseOutType(std::string_view name) {
  const std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "i2_s") return OutType::kI2S;
  if (n == "tq1_0") return OutType::kTQ1_0;
  if (n == "tq2_0") return OutType::kTQ2_0;
  if (n == "f16") return OutType::kF16;
  if (n == "bf16") return OutType::kBF16;
  if (n == "f32") return OutType::kF32;
  return absl::InvalidArgumentError(absl::StrCat("unknown --outtype '", std::string(name),
                                                 "'; expected i2_s, tq1_0, tq2_0, f16, bf16 or f32"));
}

std::string_view OutTypeName(OutType type) {
  switch (type) {
    case OutType::kI2S: return "i2_s";
    case OutType::kTQ1_0: return "tq1_0";
    case OutType::kTQ2_0: return "tq2_0";
    case OutType::kF16: return "f16";
    case OutType::kBF16: return "bf16";
    case OutType::kF32: return "f32";
  }
  return "?";
}

absl::StatusOr<ConvertReport> ConvertCheckpoint(const ConvertOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const std::string& dir = options.checkpoint_dir;
  auto config_text = ReadFileToString(dir + "/config.json", size_t{16} << 20);
  if (!config_text.ok()) {
    return absl::NotFoundError(absl::StrCat("'", dir, "' is not a Hugging Face checkpoint: ",
                                            config_text.status().message()));
  }
  auto config = ParseBitNetConfig(*config_text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/config.json: ", config.status().message()));
  }
  BN_ASSIGN_OR_RETURN(TokenizerInputs tok, LoadTokenizer(dir, *config));
  BN_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Open(dir));

  const std::vector<PlannedTensor> plan = Plan(*config, options.outtype);
  ConvertReport report;
  BN_RETURN_IF_ERROR(CheckTensors(*ckpt, plan, &report.packed_input));
  for (const PlannedTensor& t : plan) {
    if (t.role == Role::kProjection) {
      if (t.type == GgmlType::I2_S || t.type == GgmlType::TQ1_0 || t.type == GgmlType::TQ2_0) {
        BN_RETURN_IF_ERROR(quant::CheckTernaryShape(static_cast<quant::TernaryFormat>(t.type), t.hf_shape[1],
                                                    t.hf_shape[0], t.gguf_name));
      }
    }
  }

  BN_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufWriter> writer, gguf::GgufWriter::Create(options.outfile));
  BN_RETURN_IF_ERROR(AddMetadata(*writer, options, *config, tok,
                                 options.name.empty() ? BaseName(dir) : options.name));
  for (const PlannedTensor& t : plan) {
    BN_RETURN_IF_ERROR(writer->AddTensorInfo(t.gguf_name, t.type, Reversed(t.hf_shape)));
  }
  uint64_t bytes_total = 0;
  for (const PlannedTensor& t : plan) {
    bytes_total += ckpt->Find(t.hf_name)->info->nbytes();
  }
  Converter converter(*ckpt, *writer);
  // Projections are encoded on worker threads a few tensors ahead of the
  // writer, which takes them in file order.
  const size_t window = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  std::vector<std::future<absl::StatusOr<EncodedTensor>>> encoded(plan.size());
  size_t launched = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    for (; launched < plan.size() && launched < i + window; ++launched) {
      if (plan[launched].role != Role::kProjection) continue;
      encoded[launched] = std::async(std::launch::async, EncodeProjection, std::cref(*ckpt), std::cref(plan[launched]));
    }
    absl::Status s = converter.WriteTensor(plan[i], &encoded[i]);
    if (!s.ok()) {
      // Let the threads still running finish before their inputs go away.
      for (auto& f : encoded) {
        if (f.valid()) f.wait();
      }
      return s;
    }
    if (options.progress) {
      ConvertProgress p;
      p.tensor_index = static_cast<int>(i + 1);
      p.tensor_count = static_cast<int>(plan.size());
      p.tensor_name = plan[i].gguf_name;
      p.bytes_read = converter.bytes_read();
      p.bytes_total = bytes_total;
      p.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      options.progress(p);
    }
  }
  BN_RETURN_IF_ERROR(writer->Finish());
  report.tensor_count = static_cast<int>(plan.size());
  BN_ASSIGN_OR_RETURN(auto written, gguf::GgufFile::Open(options.outfile));
  report.metadata_count = static_cast<int>(written->metadata().size());
  report.output_bytes = written->size();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace wf::convert
