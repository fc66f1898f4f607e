#include "converter/convert.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/quant/fp16.h"
#include "common/quant/ternary_formats.h"
#include "common/testing/status_matchers.h"
#include "converter/safetensors.h"
#include "converter/synth.h"
#include "converter/ternarize.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf::convert {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wf_convert_test_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  // A tiny synthetic checkpoint (optionally reshaped) in dir_/name.
  std::string MakeCheckpoint(const std::string& name, SynthShape shape = TinyShape()) {
    SynthOptions o;
    o.shape = shape;
    o.seed = 42;
    o.out_dir = dir_ + "/" + name;
    auto r = WriteSyntheticCheckpoint(o);
    EXPECT_THAT(r.status(), IsOk());
    return o.out_dir;
  }
  static SynthShape TinyShape() {
    SynthShape s = PresetShape("tiny").value();
    s.vocab = 512;  // Keeps the tests fast.
    return s;
  }
  absl::StatusOr<ConvertReport> Convert(const std::string& ckpt, const std::string& out,
                                        OutType type = OutType::kI2S) {
    ConvertOptions o;
    o.checkpoint_dir = ckpt;
    o.outfile = out;
    o.outtype = type;
    return ConvertCheckpoint(o);
  }
  static bool Exists(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
  }
  // No output and no partial file left in the output's directory.
  void ExpectNothingLeft(const std::string& out) {
    EXPECT_FALSE(Exists(out));
    EXPECT_FALSE(Exists(PartialPathFor(out)));
  }
  static void WriteFile(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }
  static std::string ReadFile(const std::string& path) { return ReadFileToString(path).value(); }
  void EditConfig(const std::string& ckpt, const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(ReadFile(ckpt + "/config.json"));
    edit(j);
    WriteFile(ckpt + "/config.json", j.dump());
  }

  std::string dir_;
};

// The 24 keys of the published 2B-4T GGUF in order, with their types, plus
// tokenizer.ggml.pre after tokenizer.ggml.model.
TEST_F(ConvertTest, MetadataFollowsThePublishedFile) {
  const std::string ckpt = MakeCheckpoint("m");
  ASSERT_OK_AND_ASSIGN(ConvertReport r, Convert(ckpt, dir_ + "/m.gguf"));
  EXPECT_EQ(r.tensor_count, 1 + 4 * 11 + 1);
  ASSERT_OK_AND_ASSIGN(auto f, gguf::GgufFile::Open(dir_ + "/m.gguf"));
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& kv : f->metadata()) got.emplace_back(kv.key, kv.value.TypeName());
  const std::vector<std::pair<std::string, std::string>> want = {
      {"general.architecture", "string"},
      {"general.name", "string"},
      {"bitnet-b1.58.vocab_size", "u32"},
      {"bitnet-b1.58.context_length", "u32"},
      {"bitnet-b1.58.embedding_length", "u32"},
      {"bitnet-b1.58.block_count", "u32"},
      {"bitnet-b1.58.feed_forward_length", "u32"},
      {"bitnet-b1.58.rope.dimension_count", "u32"},
      {"bitnet-b1.58.attention.head_count", "u32"},
      {"bitnet-b1.58.attention.head_count_kv", "u32"},
      {"tokenizer.ggml.add_bos_token", "bool"},
      {"bitnet-b1.58.attention.layer_norm_rms_epsilon", "f32"},
      {"bitnet-b1.58.rope.freq_base", "f32"},
      {"general.file_type", "u32"},
      {"tokenizer.ggml.model", "string"},
      {"tokenizer.ggml.pre", "string"},
      {"tokenizer.ggml.tokens", "array[string]"},
      {"tokenizer.ggml.scores", "array[f32]"},
      {"tokenizer.ggml.token_type", "array[i32]"},
      {"tokenizer.ggml.merges", "array[string]"},
      {"tokenizer.ggml.bos_token_id", "u32"},
      {"tokenizer.ggml.eos_token_id", "u32"},
      {"tokenizer.ggml.padding_token_id", "u32"},
      {"tokenizer.chat_template", "string"},
      {"general.quantization_version", "u32"},
  };
  EXPECT_EQ(got, want);
  EXPECT_EQ(f->GetString("general.architecture").value(), "bitnet-b1.58");
  EXPECT_EQ(f->GetU32("general.file_type").value(), 40u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.rope.dimension_count").value(), 64u);
  EXPECT_EQ(f->GetStringArray("tokenizer.ggml.tokens").value().size(), 512u);
  // Tensor names, types and ggml shapes (ne0 = input features).
  const auto* q = f->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, gguf::GgmlType::I2_S);
  EXPECT_THAT(q->dims(), ElementsAreArray({256, 256}));
  EXPECT_THAT(f->FindTensor("blk.3.attn_k.weight")->dims(), ElementsAreArray({256, 128}));
  EXPECT_THAT(f->FindTensor("blk.3.ffn_down.weight")->dims(), ElementsAreArray({768, 256}));
  EXPECT_EQ(f->FindTensor("token_embd.weight")->type, gguf::GgmlType::F16);
  EXPECT_THAT(f->FindTensor("token_embd.weight")->dims(), ElementsAreArray({256, 512}));
  EXPECT_EQ(f->FindTensor("blk.2.ffn_sub_norm.weight")->type, gguf::GgmlType::F32);
  EXPECT_EQ(f->FindTensor("output.weight"), nullptr);  // Tied head.
}

struct Decoded {
  std::vector<int8_t> t;
  float scale = 0;
};

Decoded DecodeTernary(const gguf::TensorInfo& info) {
  const int64_t n = info.num_elements();
  Decoded d;
  d.t.resize(n);
  std::vector<float> f(n);
  switch (info.type) {
    case gguf::GgmlType::I2_S:
      quant::UnpackI2S(info.data, n, d.t.data(), &d.scale);
      return d;
    case gguf::GgmlType::TQ1_0:
    case gguf::GgmlType::TQ2_0: {
      std::vector<float> block_d(n / 256);
      if (info.type == gguf::GgmlType::TQ1_0) {
        quant::UnpackTQ1_0(info.data, n, d.t.data(), block_d.data());
      } else {
        quant::UnpackTQ2_0(info.data, n, d.t.data(), block_d.data());
      }
      for (float b : block_d) d.scale = std::max(d.scale, b);
      return d;
    }
    case gguf::GgmlType::F16:
      quant::F16ToF32(reinterpret_cast<const uint16_t*>(info.data), f.data(), n);
      break;
    case gguf::GgmlType::BF16:
      quant::BF16ToF32(reinterpret_cast<const uint16_t*>(info.data), f.data(), n);
      break;
    default:
      std::memcpy(f.data(), info.data, n * 4);
  }
  for (int64_t i = 0; i < n; ++i) {
    d.t[i] = f[i] > 0 ? 1 : (f[i] < 0 ? -1 : 0);
    d.scale = std::max(d.scale, std::fabs(f[i]));
  }
  return d;
}

// Every output type keeps the ternary values exactly; the scale only loses
// what its storage type cannot hold.
TEST_F(ConvertTest, EveryOutTypePreservesTernaryWeights) {
  const std::string ckpt = MakeCheckpoint("t");
  struct Case {
    OutType type;
    gguf::GgmlType ggml;
    double scale_rel_tol;
  };
  const std::vector<Case> cases = {{OutType::kTQ1_0, gguf::GgmlType::TQ1_0, 1e-3},
                                   {OutType::kTQ2_0, gguf::GgmlType::TQ2_0, 1e-3},
                                   {OutType::kF16, gguf::GgmlType::F16, 1e-3},
                                   {OutType::kBF16, gguf::GgmlType::BF16, 8e-3},
                                   {OutType::kF32, gguf::GgmlType::F32, 0}};
  ASSERT_THAT(Convert(ckpt, dir_ + "/i2s.gguf").status(), IsOk());
  ASSERT_OK_AND_ASSIGN(auto ref, gguf::GgufFile::Open(dir_ + "/i2s.gguf"));
  for (const Case& c : cases) {
    const std::string out = dir_ + "/" + std::string(OutTypeName(c.type)) + ".gguf";
    ASSERT_THAT(Convert(ckpt, out, c.type).status(), IsOk()) << OutTypeName(c.type);
    ASSERT_OK_AND_ASSIGN(auto f, gguf::GgufFile::Open(out));
    int projections = 0;
    for (const auto& t : ref->tensors()) {
      if (t.type != gguf::GgmlType::I2_S) continue;
      ++projections;
      const gguf::TensorInfo* other = f->FindTensor(t.name);
      ASSERT_NE(other, nullptr) << t.name;
      ASSERT_EQ(other->type, c.ggml) << t.name;
      const Decoded a = DecodeTernary(t), b = DecodeTernary(*other);
      ASSERT_EQ(a.t, b.t) << t.name << " in " << OutTypeName(c.type);
      EXPECT_NEAR(b.scale, a.scale, a.scale * c.scale_rel_tol + 1e-12) << t.name << " in " << OutTypeName(c.type);
      // The values really are ternary, with all three present.
      EXPECT_GT(std::count(a.t.begin(), a.t.end(), 0), 0);
      EXPECT_GT(std::count(a.t.begin(), a.t.end(), 1), 0);
      EXPECT_GT(std::count(a.t.begin(), a.t.end(), -1), 0);
    }
    EXPECT_EQ(projections, 28);
  }
}

// The packed HF format (uint8 + weight_scale) gives the same ternary values.
TEST_F(ConvertTest, PackedCheckpointMatchesTheBf16One) {
  const std::string ckpt = MakeCheckpoint("b");
  ASSERT_THAT(Convert(ckpt, dir_ + "/b.gguf").status(), IsOk());
  ASSERT_OK_AND_ASSIGN(auto src, SafetensorsFile::Open(ckpt + "/model.safetensors"));
  const std::string packed_dir = dir_ + "/packed";
  ASSERT_EQ(std::system(("cp -r '" + ckpt + "' '" + packed_dir + "'").c_str()), 0);
  ASSERT_OK_AND_ASSIGN(auto w, SafetensorsWriter::Create(packed_dir + "/model.safetensors"));
  struct Out {
    std::string name;
    SafetensorsDtype dtype;
    std::vector<uint8_t> bytes;
  };
  std::vector<Out> outs;
  for (const auto& info : src->tensors()) {
    const bool proj = info.name.find("_proj.weight") != std::string::npos;
    if (!proj) {
      std::vector<uint8_t> bytes(info.nbytes());
      ASSERT_THAT(src->ReadTensor(info.name, bytes.data(), bytes.size()), IsOk());
      ASSERT_THAT(w->Declare(info.name, info.dtype, info.shape), IsOk());
      outs.push_back({info.name, info.dtype, std::move(bytes)});
      continue;
    }
    ASSERT_OK_AND_ASSIGN(std::vector<float> f, src->ReadTensorAsF32(info.name));
    ASSERT_OK_AND_ASSIGN(const TernaryTensor t, Ternarize(f.data(), static_cast<int64_t>(f.size())));
    const int64_t rows = info.shape[0], cols = info.shape[1], p = rows / 4;
    std::vector<uint8_t> packed(p * cols, 0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        packed[(r % p) * cols + c] |= static_cast<uint8_t>((t.values[r * cols + c] + 1) << (2 * (r / p)));
      }
    }
    const float ws = 1.0f / t.scale;
    std::vector<uint8_t> scale_bytes(4);
    std::memcpy(scale_bytes.data(), &ws, 4);
    ASSERT_THAT(w->Declare(info.name, SafetensorsDtype::kU8, {p, cols}), IsOk());
    ASSERT_THAT(w->Declare(info.name + "_scale", SafetensorsDtype::kF32, {1}), IsOk());
    outs.push_back({info.name, SafetensorsDtype::kU8, std::move(packed)});
    outs.push_back({info.name + "_scale", SafetensorsDtype::kF32, std::move(scale_bytes)});
  }
  for (const Out& o : outs) ASSERT_THAT(w->WriteTensor(o.name, o.bytes.data(), o.bytes.size()), IsOk());
  ASSERT_THAT(w->Commit(), IsOk());

  ASSERT_OK_AND_ASSIGN(ConvertReport r, Convert(packed_dir, dir_ + "/p.gguf"));
  EXPECT_TRUE(r.packed_input);
  ASSERT_OK_AND_ASSIGN(auto a, gguf::GgufFile::Open(dir_ + "/b.gguf"));
  ASSERT_OK_AND_ASSIGN(auto b, gguf::GgufFile::Open(dir_ + "/p.gguf"));
  for (const auto& t : a->tensors()) {
    if (t.type != gguf::GgmlType::I2_S) continue;
    const Decoded x = DecodeTernary(t), y = DecodeTernary(*b->FindTensor(t.name));
    ASSERT_EQ(x.t, y.t) << t.name;
    EXPECT_NEAR(y.scale, x.scale, x.scale * 1e-6f) << t.name;
  }
}

// ---- Bad input: one test per class, each naming the problem and leaving nothing behind.

TEST_F(ConvertTest, EmptyDirectory) {
  ::mkdir((dir_ + "/empty").c_str(), 0755);
  const std::string out = dir_ + "/o.gguf";
  EXPECT_THAT(Convert(dir_ + "/empty", out).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("config.json")));
  ExpectNothingLeft(out);
}

TEST_F(ConvertTest, MissingConfigKey) {
  const std::string ckpt = MakeCheckpoint("c");
  EditConfig(ckpt, [](nlohmann::json& j) { j.erase("num_hidden_layers"); });
  const std::string out = dir_ + "/o.gguf";
  EXPECT_THAT(Convert(ckpt, out).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_hidden_layers")));
  ExpectNothingLeft(out);
}

TEST_F(ConvertTest, MalformedConfigValue) {
  const std::string ckpt = MakeCheckpoint("c");
  EditConfig(ckpt, [](nlohmann::json& j) { j["hidden_size"] = "big"; });
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hidden_size")));
  WriteFile(ckpt + "/config.json", "{not json");
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("config.json")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

TEST_F(ConvertTest, UnknownArchitecture) {
  const std::string ckpt = MakeCheckpoint("c");
  EditConfig(ckpt, [](nlohmann::json& j) { j["architectures"] = {"LlamaForCausalLM"}; });
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("LlamaForCausalLM")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

TEST_F(ConvertTest, ShapeMismatchBetweenConfigAndTensors) {
  const std::string ckpt = MakeCheckpoint("c");
  EditConfig(ckpt, [](nlohmann::json& j) { j["intermediate_size"] = 1024; });
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'model.layers.0.mlp.gate_proj.weight' has shape [768, 256] but config.json implies [1024, 256]")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

TEST_F(ConvertTest, MissingTensor) {
  const std::string ckpt = MakeCheckpoint("c");
  EditConfig(ckpt, [](nlohmann::json& j) { j["num_hidden_layers"] = 5; });
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("model.layers.4.")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

TEST_F(ConvertTest, TruncatedSafetensors) {
  const std::string ckpt = MakeCheckpoint("c");
  const std::string st = ckpt + "/model.safetensors";
  ASSERT_EQ(::truncate(st.c_str(), 4096), 0);
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.safetensors")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

// Rewrites the safetensors header JSON of a checkpoint (same length padding).
void EditHeader(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  std::string bytes = ReadFileToString(path).value();
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  edit(h);
  std::string text = h.dump();
  ASSERT_LE(text.size(), n);
  text.resize(n, ' ');
  bytes.replace(8, n, text);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST_F(ConvertTest, HeaderOffsetsPastTheEnd) {
  const std::string ckpt = MakeCheckpoint("c");
  EditHeader(ckpt + "/model.safetensors", [](nlohmann::json& h) {
    h["model.norm.weight"]["data_offsets"] = {9000000, 9000512};
  });
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.norm.weight")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

TEST_F(ConvertTest, HeaderOverlappingRanges) {
  const std::string ckpt = MakeCheckpoint("c");
  EditHeader(ckpt + "/model.safetensors", [](nlohmann::json& h) {
    h["model.norm.weight"]["data_offsets"] = h["model.layers.0.input_layernorm.weight"]["data_offsets"];
  });
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

TEST_F(ConvertTest, WrongDtype) {
  const std::string ckpt = MakeCheckpoint("c");
  EditHeader(ckpt + "/model.safetensors", [](nlohmann::json& h) {
    h["model.layers.1.self_attn.q_proj.weight"]["dtype"] = "I16";
  });
  EXPECT_THAT(Convert(ckpt, dir_ + "/o.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'model.layers.1.self_attn.q_proj.weight' has dtype I16")));
  ExpectNothingLeft(dir_ + "/o.gguf");
}

TEST_F(ConvertTest, UnwritableOutput) {
  const std::string ckpt = MakeCheckpoint("c");
  EXPECT_THAT(Convert(ckpt, dir_ + "/no/such/dir/o.gguf").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot create output file")));
}

TEST_F(ConvertTest, TQ1_0NeedsRowsDivisibleBy256) {
  SynthShape s = TinyShape();
  s.hidden = 384, s.heads = 3, s.kv_heads = 1;  // head_dim 128, rows of 384.
  const std::string ckpt = MakeCheckpoint("c", s);
  const std::string out = dir_ + "/o.gguf";
  EXPECT_THAT(Convert(ckpt, out, OutType::kTQ1_0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'blk.0.attn_q.weight': TQ1_0 needs a row size divisible by 256, got 384")));
  ExpectNothingLeft(out);
  // I2_S only needs multiples of 128.
  EXPECT_THAT(Convert(ckpt, out).status(), IsOk());
}

TEST(OutTypeTest, ParsesEveryNameAndRejectsOthers) {
  for (const char* n : {"i2_s", "tq1_0", "tq2_0", "f16", "bf16", "f32", "I2_S"}) {
    EXPECT_THAT(ParseOutType(n).status(), IsOk()) << n;
  }
  EXPECT_THAT(ParseOutType("q4_0").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown --outtype 'q4_0'")));
}

}  // namespace
}  // namespace wf::convert
