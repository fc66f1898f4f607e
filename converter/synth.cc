#include "converter/synth.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/quant/fp16.h"
#include "common/status_macros.h"
#include "common/tokenizer/vocab.h"
#include "converter/safetensors.h"
#include "converter/synth_tokenizer.h"
#include "nlohmann/json.hpp"

namespace wf::convert {
namespace {

struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;
  enum Kind { kEmbedding, kNorm, kProjection } kind;
  uint64_t bytes() const {
    uint64_t n = 2;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
  }
};

std::vector<SynthTensor> Layout(const SynthShape& s) {
  const int64_t kv = s.kv_heads * (s.hidden / s.heads);
  std::vector<SynthTensor> t;
  t.push_back({"model.embed_tokens.weight", {s.vocab, s.hidden}, SynthTensor::kEmbedding});
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    t.push_back({p + "input_layernorm.weight", {s.hidden}, SynthTensor::kNorm});
    t.push_back({p + "self_attn.q_proj.weight", {s.hidden, s.hidden}, SynthTensor::kProjection});
    t.push_back({p + "self_attn.k_proj.weight", {kv, s.hidden}, SynthTensor::kProjection});
    t.push_back({p + "self_attn.v_proj.weight", {kv, s.hidden}, SynthTensor::kProjection});
    t.push_back({p + "self_attn.attn_sub_norm.weight", {s.hidden}, SynthTensor::kNorm});
    t.push_back({p + "self_attn.o_proj.weight", {s.hidden, s.hidden}, SynthTensor::kProjection});
    t.push_back({p + "post_attention_layernorm.weight", {s.hidden}, SynthTensor::kNorm});
    t.push_back({p + "mlp.gate_proj.weight", {s.ffn, s.hidden}, SynthTensor::kProjection});
    t.push_back({p + "mlp.up_proj.weight", {s.ffn, s.hidden}, SynthTensor::kProjection});
    t.push_back({p + "mlp.ffn_sub_norm.weight", {s.ffn}, SynthTensor::kNorm});
    t.push_back({p + "mlp.down_proj.weight", {s.hidden, s.ffn}, SynthTensor::kProjection});
  }
  t.push_back({"model.norm.weight", {s.hidden}, SynthTensor::kNorm});
  return t;
}

// splitmix64: small, fast and good enough for random weights.
struct Rng {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Uniform() { return static_cast<float>(Next() >> 40) * (2.0f / 16777216.0f) - 1.0f; }
};

uint64_t HashName(std::string_view s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// mkdir -p.
absl::Status MakeDir(const std::string& dir) {
  for (size_t slash = dir.find('/', 1); slash != std::string::npos; slash = dir.find('/', slash + 1)) {
    ::mkdir(dir.substr(0, slash).c_str(), 0755);
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create directory '", dir, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  BN_ASSIGN_OR_RETURN(auto w, AtomicFileWriter::Create(path));
  BN_RETURN_IF_ERROR(w->Write(text.data(), text.size()));
  return w->Commit();
}

// Fills `out` with bf16 values for one tensor, deterministic in (seed, name).
void Generate(const SynthTensor& t, uint64_t seed, uint64_t first, uint64_t count, std::vector<uint16_t>* out) {
  Rng rng{seed ^ HashName(t.name)};
  // Skipping ahead keeps chunks independent of the chunk size.
  rng.state += first * 0x9E3779B97F4A7C15ull;
  out->resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    float v;
    switch (t.kind) {
      case SynthTensor::kNorm: v = 1.0f + 0.1f * rng.Uniform(); break;
      case SynthTensor::kEmbedding: v = 0.05f * rng.Uniform(); break;
      default: v = 0.02f * rng.Uniform(); break;
    }
    (*out)[i] = quant::F32ToBF16(v);
  }
}

}  // namespace

absl::StatusOr<SynthShape> PresetShape(std::string_view preset) {
  SynthShape s;
  if (preset == "tiny") {
    s.hidden = 256, s.layers = 4, s.heads = 4, s.kv_heads = 2, s.ffn = 768, s.vocab = 0;
    return s;
  }
  if (preset == "2b4t") {
    s.hidden = 2560, s.layers = 30, s.heads = 20, s.kv_heads = 5, s.ffn = 6912, s.vocab = 0;
    return s;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown preset '", std::string(preset), "'; expected tiny or 2b4t"));
}

absl::StatusOr<SynthReport> WriteSyntheticCheckpoint(const SynthOptions& options) {
  SynthShape s = options.shape;
  if (s.hidden <= 0 || s.layers <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.ffn <= 0 || s.ctx <= 0) {
    return absl::InvalidArgumentError("every shape value (hidden, layers, heads, kv-heads, ffn, ctx) must be > 0");
  }
  if (s.hidden % s.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hidden ", s.hidden, " is not divisible by heads ", s.heads));
  }
  if (s.heads % s.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("heads ", s.heads, " is not divisible by kv-heads ", s.kv_heads));
  }
  if (s.hidden % 128 != 0 || s.ffn % 128 != 0 || (s.kv_heads * (s.hidden / s.heads)) % 128 != 0) {
    return absl::InvalidArgumentError(
        "hidden, ffn and kv-heads * head_dim must be multiples of 128 (the I2_S block size)");
  }
  BN_RETURN_IF_ERROR(MakeDir(options.out_dir));

  // Tokenizer first: it may fix the vocabulary size.
  std::string tokenizer_json, tokenizer_config;
  if (!options.tokenizer_json.empty()) {
    BN_ASSIGN_OR_RETURN(tokenizer_json, ReadFileToString(options.tokenizer_json, size_t{512} << 20));
    auto vocab = tokenizer::ParseHfTokenizerJson(tokenizer_json);
    if (!vocab.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(options.tokenizer_json, ": ", vocab.status().message()));
    }
    const int64_t n = static_cast<int64_t>(vocab->tokens.size());
    if (s.vocab == 0) s.vocab = n;
    if (s.vocab < n) {
      return absl::InvalidArgumentError(absl::StrCat("--vocab ", s.vocab, " is smaller than the tokenizer's ", n, " tokens"));
    }
    std::string dir = options.tokenizer_json;
    const size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
    auto cfg = ReadFileToString(dir + "/tokenizer_config.json", size_t{64} << 20);
    if (cfg.ok()) tokenizer_config = *cfg;
    if (tokenizer_config.empty()) {
      nlohmann::ordered_json c = {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|end_of_text|>"},
                                  {"add_bos_token", true}, {"chat_template", std::string(kBitNetChatTemplate)}};
      tokenizer_config = c.dump(2);
    }
  } else {
    if (s.vocab == 0) s.vocab = 2048;
    BN_ASSIGN_OR_RETURN(SynthTokenizer tok, BuildSynthTokenizer(static_cast<int32_t>(s.vocab)));
    tokenizer_json = std::move(tok.tokenizer_json);
    tokenizer_config = std::move(tok.tokenizer_config_json);
  }
  BN_ASSIGN_OR_RETURN(tokenizer::Vocab vocab, tokenizer::ParseHfTokenizerJson(tokenizer_json));
  auto id_of = [&](std::string_view text, int64_t fallback) -> int64_t {
    for (size_t i = 0; i < vocab.tokens.size(); ++i) {
      if (vocab.tokens[i] == text) return static_cast<int64_t>(i);
    }
    return fallback;
  };
  const int64_t bos = id_of("<|begin_of_text|>", 0);
  const int64_t eos = id_of("<|end_of_text|>", std::min<int64_t>(1, s.vocab - 1));
  const int64_t eot = id_of("<|eot_id|>", eos);

  nlohmann::ordered_json config = {
      {"architectures", {"BitNetForCausalLM"}},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", bos},
      {"eos_token_id", std::vector<int64_t>{eos, eot}},
      {"hidden_act", "relu2"},
      {"hidden_size", s.hidden},
      {"initializer_range", 0.02},
      {"intermediate_size", s.ffn},
      {"max_position_embeddings", s.ctx},
      {"model_type", "bitnet"},
      {"num_attention_heads", s.heads},
      {"num_hidden_layers", s.layers},
      {"num_key_value_heads", s.kv_heads},
      {"rms_norm_eps", s.rms_eps},
      {"rope_theta", s.rope_theta},
      {"tie_word_embeddings", true},
      {"torch_dtype", "bfloat16"},
      {"use_cache", true},
      {"vocab_size", s.vocab},
  };
  BN_RETURN_IF_ERROR(WriteText(options.out_dir + "/config.json", config.dump(2) + "\n"));
  BN_RETURN_IF_ERROR(WriteText(options.out_dir + "/tokenizer.json", tokenizer_json));
  BN_RETURN_IF_ERROR(WriteText(options.out_dir + "/tokenizer_config.json", tokenizer_config));

  // Group tensors into shards.
  const std::vector<SynthTensor> layout = Layout(s);
  std::vector<std::vector<const SynthTensor*>> shards(1);
  uint64_t shard_size = 0, total = 0;
  for (const SynthTensor& t : layout) {
    if (shard_size > 0 && shard_size + t.bytes() > options.shard_bytes) {
      shards.emplace_back();
      shard_size = 0;
    }
    shards.back().push_back(&t);
    shard_size += t.bytes();
    total += t.bytes();
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t done = 0;
  std::vector<uint16_t> buf;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = shards.size() == 1
                                 ? std::string("model.safetensors")
                                 : absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    BN_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::Create(options.out_dir + "/" + file));
    BN_RETURN_IF_ERROR(w->SetMetadata("format", "pt"));
    for (const SynthTensor* t : shards[i]) {
      BN_RETURN_IF_ERROR(w->Declare(t->name, SafetensorsDtype::kBF16, t->shape));
      weight_map[t->name] = file;
    }
    for (const SynthTensor* t : shards[i]) {
      const uint64_t n = t->bytes() / 2;
      constexpr uint64_t kChunk = uint64_t{1} << 22;
      for (uint64_t first = 0; first < n; first += kChunk) {
        const uint64_t count = std::min(kChunk, n - first);
        Generate(*t, options.seed, first, count, &buf);
        BN_RETURN_IF_ERROR(w->Write(buf.data(), count * 2));
        done += count * 2;
        if (options.progress) options.progress(done, total);
      }
    }
    BN_RETURN_IF_ERROR(w->Commit());
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    BN_RETURN_IF_ERROR(WriteText(options.out_dir + "/model.safetensors.index.json", index.dump(2) + "\n"));
  }
  SynthReport report;
  report.shape = s;
  report.shard_count = static_cast<int>(shards.size());
  report.weight_bytes = total;
  return report;
}

}  // namespace wf::convert
