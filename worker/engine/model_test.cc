// Model::Load validation and load-time conversions, on edited copies of the
// golden model (missing / mistyped / misshaped tensors, inconsistent
// metadata, TQ formats, other embedding types).
#include "worker/engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/gguf/gguf_reader.h"
#include "common/gguf/gguf_types.h"
#include "common/gguf/gguf_value.h"
#include "common/gguf/gguf_writer.h"
#include "common/quant/dequant.h"
#include "common/quant/fp16.h"
#include "common/quant/ternary_formats.h"
#include "common/status_macros.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/internal/golden_data.h"
#include "worker/engine/session.h"

namespace wf::engine {
namespace {

using gguf::GgmlType;
using gguf::GgufFile;
using gguf::TensorInfo;
using gguf::Value;
using ::testing::AllOf;
using ::testing::HasSubstr;
using wf::testing::IsOk;
using wf::testing::StatusIs;

struct NewTensor {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> data;
};

// Edits applied while copying a GGUF file.
struct Edit {
  std::vector<std::string> drop_keys = {};
  std::vector<std::pair<std::string, Value>> set_keys = {};  // replaced in place, else appended
  std::vector<std::string> drop_tensors = {};
  std::vector<NewTensor> set_tensors = {};  // replaced in place, else appended
};

absl::Status WriteEdited(const GgufFile& src, const std::string& path, const Edit& edit) {
  BN_ASSIGN_OR_RETURN(auto w, gguf::GgufWriter::Create(path, src.version()));
  auto contains = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  std::vector<bool> key_done(edit.set_keys.size(), false);
  for (const gguf::KeyValue& kv : src.metadata()) {
    if (contains(edit.drop_keys, kv.key)) continue;
    Value value = kv.value;
    for (size_t i = 0; i < edit.set_keys.size(); ++i) {
      if (edit.set_keys[i].first == kv.key) {
        value = edit.set_keys[i].second;
        key_done[i] = true;
      }
    }
    BN_RETURN_IF_ERROR(w->AddMetadata(kv.key, value));
  }
  for (size_t i = 0; i < edit.set_keys.size(); ++i) {
    if (!key_done[i])
      BN_RETURN_IF_ERROR(w->AddMetadata(edit.set_keys[i].first, edit.set_keys[i].second));
  }
  // (name, type, ne, bytes, size) of every tensor to write, in order.
  struct Out {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    const uint8_t* data;
    size_t size;
  };
  std::vector<Out> outs;
  std::vector<bool> tensor_done(edit.set_tensors.size(), false);
  for (const TensorInfo& t : src.tensors()) {
    if (contains(edit.drop_tensors, t.name)) continue;
    Out o{t.name, t.type, std::vector<int64_t>(t.dims().begin(), t.dims().end()), t.data,
          t.size_bytes};
    for (size_t i = 0; i < edit.set_tensors.size(); ++i) {
      const NewTensor& n = edit.set_tensors[i];
      if (n.name == t.name) {
        o = {n.name, n.type, n.ne, n.data.data(), n.data.size()};
        tensor_done[i] = true;
      }
    }
    outs.push_back(std::move(o));
  }
  for (size_t i = 0; i < edit.set_tensors.size(); ++i) {
    const NewTensor& n = edit.set_tensors[i];
    if (!tensor_done[i]) outs.push_back({n.name, n.type, n.ne, n.data.data(), n.data.size()});
  }
  for (const Out& o : outs) BN_RETURN_IF_ERROR(w->AddTensorInfo(o.name, o.type, o.ne));
  for (const Out& o : outs) BN_RETURN_IF_ERROR(w->WriteTensor(o.name, o.data, o.size));
  return w->Finish();
}

std::vector<uint8_t> Zeros(GgmlType type, std::vector<int64_t> ne) {
  return std::vector<uint8_t>(gguf::TensorBytes(type, ne).value(), 0);
}

class ModelLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sets = internal::LoadGoldenSets();
    ASSERT_TRUE(sets.ok()) << sets.status();
    golden_path_ = sets->front().model_path;
    ASSERT_OK_AND_ASSIGN(src_, GgufFile::Open(golden_path_));
    std::string tmpl = ::testing::TempDir() + "/wf_model_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Writes the edited copy and loads it.
  absl::StatusOr<std::unique_ptr<Model>> LoadEdited(const Edit& edit) {
    const std::string path = absl::StrCat(dir_, "/edited", counter_++, ".gguf");
    BN_RETURN_IF_ERROR(WriteEdited(*src_, path, edit));
    return Model::Load(path, {});
  }

  const TensorInfo& Tensor(const std::string& name) { return *src_->FindTensor(name); }

  // Logits of every prompt position plus two decode steps.
  static std::vector<float> Logits(const Model& model) {
    auto session = Session::Create(model, {.num_threads = 1}).value();
    std::vector<float> all =
        session->Prefill(std::vector<int32_t>{2040, 17, 300, 1999, 5}, {.all_logits = true})
            .value();
    for (int32_t t : {42, 7}) {
      std::vector<float> l = session->Decode(t).value();
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  }

  std::string golden_path_;
  std::unique_ptr<GgufFile> src_;
  std::string dir_;
  int counter_ = 0;
};

TEST_F(ModelLoadTest, GoldenModelConfig) {
  ASSERT_OK_AND_ASSIGN(auto model, Model::Load(golden_path_, {}));
  const ModelConfig& c = model->config();
  EXPECT_EQ(c.n_vocab, 2048);
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_layer, 4);
  EXPECT_EQ(c.n_ff, 768);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_ctx_train, 4096);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_TRUE(c.tied_head);
  EXPECT_FALSE(model->load_stats().head_converted);
  EXPECT_EQ(model->load_stats().repacked_tensors, 0);
  EXPECT_GT(model->load_stats().load_seconds, 0.0);
  // I2_S weights and the F16 head are used in place.
  EXPECT_EQ(model->layer(0).wq.codes, model->file().FindTensor("blk.0.attn_q.weight")->data);
  EXPECT_EQ(static_cast<const void*>(model->head()),
            model->file().FindTensor("token_embd.weight")->data);
}

// Each head row is int8 with scale max|w| / 127: every value within half a
// step of the F16 value, the largest at +-127; the F16 head is unchanged.
TEST_F(ModelLoadTest, Q8HeadQuantizesEachRow) {
  ASSERT_OK_AND_ASSIGN(auto f16, Model::Load(golden_path_, {}));
  EXPECT_EQ(f16->head_type(), HeadType::kF16);
  EXPECT_EQ(f16->head_q8(), nullptr);
  ASSERT_OK_AND_ASSIGN(auto q8, Model::Load(golden_path_, {.head_type = HeadType::kQ8}));
  ASSERT_EQ(q8->head_type(), HeadType::kQ8);
  ASSERT_NE(q8->head_q8(), nullptr);
  ASSERT_NE(q8->head_q8_scales(), nullptr);
  const size_t head_halves = static_cast<size_t>(q8->config().n_vocab) * q8->config().n_embd;
  EXPECT_EQ(std::memcmp(q8->head(), f16->head(), head_halves * sizeof(uint16_t)), 0);
  EXPECT_LT(q8->WeightBytesPerToken(), f16->WeightBytesPerToken());
  const int64_t k = q8->config().n_embd;
  for (int64_t r = 0; r < q8->config().n_vocab; ++r) {
    const float scale = q8->head_q8_scales()[r];
    int max_q = 0;
    for (int64_t i = 0; i < k; ++i) {
      const float w = quant::F16ToF32(q8->head()[r * k + i]);
      const int q = q8->head_q8()[r * k + i];
      ASSERT_LE(std::abs(q), 127);
      max_q = std::max(max_q, std::abs(q));
      ASSERT_LE(std::fabs(w - static_cast<float>(q) * scale), 0.5f * scale * 1.0001f + 1e-12f)
          << "row " << r << " column " << i;
    }
    if (scale > 0.0f) {
      EXPECT_EQ(max_q, 127) << "row " << r;
    }
  }
  // The logits move, but little.
  const std::vector<float> a = Logits(*f16);
  const std::vector<float> b = Logits(*q8);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_NE(a, b);
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  EXPECT_LT(worst, 0.5f);
}

TEST(HeadTypeTest, NamesRoundTrip) {
  for (HeadType t : {HeadType::kF16, HeadType::kQ8}) {
    ASSERT_OK_AND_ASSIGN(HeadType parsed, ParseHeadType(HeadTypeName(t)));
    EXPECT_EQ(parsed, t);
  }
  ASSERT_OK_AND_ASSIGN(HeadType upper, ParseHeadType("Q8"));
  EXPECT_EQ(upper, HeadType::kQ8);
  EXPECT_THAT(ParseHeadType("q4").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("q4")));
}

TEST_F(ModelLoadTest, UnchangedCopyGivesIdenticalLogits) {
  ASSERT_OK_AND_ASSIGN(auto original, Model::Load(golden_path_, {}));
  ASSERT_OK_AND_ASSIGN(auto copy, LoadEdited({}));
  EXPECT_EQ(Logits(*original), Logits(*copy));
}

TEST_F(ModelLoadTest, MissingFile) {
  EXPECT_THAT(Model::Load(dir_ + "/nope.gguf", {}).status(), ::testing::Not(IsOk()));
}

TEST_F(ModelLoadTest, UnsupportedArchitecture) {
  EXPECT_THAT(
      LoadEdited({.set_keys = {{"general.architecture", Value::String("llama")}}}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("unsupported architecture 'llama'"), HasSubstr("bitnet-b1.58"))));
}

TEST_F(ModelLoadTest, MissingTensor) {
  EXPECT_THAT(LoadEdited({.drop_tensors = {"blk.2.ffn_up.weight"}}).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'blk.2.ffn_up.weight' not found")));
  EXPECT_THAT(LoadEdited({.drop_tensors = {"output_norm.weight"}}).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("output_norm.weight")));
}

TEST_F(ModelLoadTest, MissingKey) {
  const std::string key = "bitnet-b1.58.attention.layer_norm_rms_epsilon";
  EXPECT_THAT(LoadEdited({.drop_keys = {key}}).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(key)));
  EXPECT_THAT(LoadEdited({.set_keys = {{"bitnet-b1.58.block_count", Value::String("4")}}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("block_count")));
}

TEST_F(ModelLoadTest, WrongTensorType) {
  Edit edit;
  edit.set_tensors.push_back(
      {"blk.1.attn_q.weight", GgmlType::F32, {256, 256}, Zeros(GgmlType::F32, {256, 256})});
  EXPECT_THAT(LoadEdited(edit).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("blk.1.attn_q.weight"), HasSubstr("type f32"))));
  Edit embd;
  embd.set_tensors.push_back(
      {"token_embd.weight", GgmlType::Q4_0, {256, 2048}, Zeros(GgmlType::Q4_0, {256, 2048})});
  EXPECT_THAT(LoadEdited(embd).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("token_embd.weight"), HasSubstr("q4_0"))));
}

TEST_F(ModelLoadTest, WrongTensorShape) {
  Edit edit;
  edit.set_tensors.push_back(
      {"blk.3.attn_k.weight", GgmlType::I2_S, {256, 256}, Zeros(GgmlType::I2_S, {256, 256})});
  EXPECT_THAT(LoadEdited(edit).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("blk.3.attn_k.weight"), HasSubstr("[256, 256]"),
                             HasSubstr("expected [256, 128]"))));
}

TEST_F(ModelLoadTest, InconsistentHeads) {
  EXPECT_THAT(
      LoadEdited({.set_keys = {{"bitnet-b1.58.attention.head_count_kv", Value::U32(3)}}}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("head_count_kv")));
  EXPECT_THAT(LoadEdited({.set_keys = {{"bitnet-b1.58.attention.head_count", Value::U32(3)},
                                       {"bitnet-b1.58.attention.head_count_kv", Value::U32(3)}}})
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("embedding_length")));
  EXPECT_THAT(
      LoadEdited({.set_keys = {{"bitnet-b1.58.rope.dimension_count", Value::U32(32)}}}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rope.dimension_count")));
  // 8 heads of 32: the K/V projections no longer have n_head_kv * head_dim rows.
  EXPECT_THAT(LoadEdited({.set_keys = {{"bitnet-b1.58.attention.head_count", Value::U32(8)},
                                       {"bitnet-b1.58.rope.dimension_count", Value::U32(32)},
                                       {"bitnet-b1.58.attention.head_count_kv", Value::U32(2)}}})
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("blk.0.attn_k.weight")));
}

TEST_F(ModelLoadTest, UnsupportedTensors) {
  for (const auto& [name, ne] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"blk.0.attn_q.bias", {256}},
           {"rope_freqs.weight", {32}},
           {"blk.4.attn_norm.weight", {256}}}) {
    Edit edit;
    edit.set_tensors.push_back({name, GgmlType::F32, ne, Zeros(GgmlType::F32, ne)});
    EXPECT_THAT(LoadEdited(edit).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("unsupported tensor '", name, "'"))));
  }
}

// I2_S rows must hold whole 128-value blocks: n_ff = 192 makes ffn_down's
// rows 192 values long.
TEST_F(ModelLoadTest, I2SRowsMustBeMultiplesOf128) {
  Edit edit;
  edit.set_keys.push_back({"bitnet-b1.58.feed_forward_length", Value::U32(192)});
  for (int l = 0; l < 4; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    for (const char* n : {"ffn_gate.weight", "ffn_up.weight"}) {
      edit.set_tensors.push_back(
          {p + n, GgmlType::I2_S, {256, 192}, Zeros(GgmlType::I2_S, {256, 192})});
    }
    edit.set_tensors.push_back(
        {p + "ffn_down.weight", GgmlType::I2_S, {192, 256}, Zeros(GgmlType::I2_S, {192, 256})});
    edit.set_tensors.push_back(
        {p + "ffn_sub_norm.weight", GgmlType::F32, {192}, Zeros(GgmlType::F32, {192})});
  }
  EXPECT_THAT(LoadEdited(edit).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("blk.0.ffn_down.weight"), HasSubstr("128"))));
}

// Every projection as `format` with the golden values and an F16-rounded
// per-tensor scale; or, with format I2_S, the golden file with that scale.
Edit TernaryAs(const GgufFile& src, GgmlType format) {
  Edit edit;
  for (const TensorInfo& t : src.tensors()) {
    if (t.type != GgmlType::I2_S) continue;
    const int64_t n = t.num_elements();
    std::vector<int8_t> values(n);
    float scale = 0.0f;
    quant::UnpackI2S(t.data, n, values.data(), &scale);
    scale = quant::F16ToF32(quant::F32ToF16(scale));
    NewTensor nt{t.name, format, {t.ne[0], t.ne[1]}, {}};
    switch (format) {
      case GgmlType::TQ1_0:
        nt.data.resize(quant::TQ1_0Bytes(n));
        quant::PackTQ1_0(values.data(), n, scale, nt.data.data());
        break;
      case GgmlType::TQ2_0:
        nt.data.resize(quant::TQ2_0Bytes(n));
        quant::PackTQ2_0(values.data(), n, scale, nt.data.data());
        break;
      default:
        nt.data.resize(quant::I2SBytes(n));
        quant::PackI2S(values.data(), n, scale, nt.data.data());
        break;
    }
    edit.set_tensors.push_back(std::move(nt));
  }
  return edit;
}

TEST_F(ModelLoadTest, TqProjectionsAreRepackedToI2S) {
  ASSERT_OK_AND_ASSIGN(auto reference, LoadEdited(TernaryAs(*src_, GgmlType::I2_S)));
  const std::vector<float> expected = Logits(*reference);
  for (GgmlType format : {GgmlType::TQ2_0, GgmlType::TQ1_0}) {
    ASSERT_OK_AND_ASSIGN(auto model, LoadEdited(TernaryAs(*src_, format)));
    EXPECT_EQ(model->load_stats().repacked_tensors, 28);
    EXPECT_GT(model->load_stats().converted_bytes, 0u);
    EXPECT_EQ(Logits(*model), expected) << gguf::GgmlTypeName(format);
  }
}

TEST_F(ModelLoadTest, PerBlockTqScalesAreRejected) {
  const TensorInfo& t = Tensor("blk.2.ffn_gate.weight");
  const int64_t n = t.num_elements();
  std::vector<float> w(n);
  quant::DequantizeI2SRange(t.data, 0, n, quant::I2SScale(t.data, n), w.data());
  for (int64_t i = 0; i < n; ++i) w[i] *= 1.0f + static_cast<float>(i / 256 % 3);
  NewTensor nt{
      t.name, GgmlType::TQ2_0, {t.ne[0], t.ne[1]}, std::vector<uint8_t>(quant::TQ2_0Bytes(n))};
  quant::QuantizeTQ2_0(w.data(), n, nt.data.data());
  Edit edit;
  edit.set_tensors.push_back(std::move(nt));
  EXPECT_THAT(LoadEdited(edit).status(),
              StatusIs(absl::StatusCode::kUnimplemented,
                       AllOf(HasSubstr("blk.2.ffn_gate.weight"),
                             HasSubstr("per-block TQ scales are not supported"))));
}

// An F32 copy of the F16 embedding holds the same values: the head converted
// back to F16 at load gives the same logits. So does an untied output.weight.
TEST_F(ModelLoadTest, F32EmbeddingAndUntiedHeadGiveIdenticalLogits) {
  ASSERT_OK_AND_ASSIGN(auto original, Model::Load(golden_path_, {}));
  const std::vector<float> expected = Logits(*original);
  const TensorInfo& embd = Tensor("token_embd.weight");
  const int64_t n = embd.num_elements();
  NewTensor f32{
      "token_embd.weight", GgmlType::F32, {256, 2048}, std::vector<uint8_t>(n * sizeof(float))};
  quant::DequantizeRowF16(embd.data, reinterpret_cast<float*>(f32.data.data()), n);
  Edit edit;
  edit.set_tensors.push_back(f32);
  ASSERT_OK_AND_ASSIGN(auto model, LoadEdited(edit));
  EXPECT_TRUE(model->load_stats().head_converted);
  EXPECT_TRUE(model->config().tied_head);
  EXPECT_EQ(Logits(*model), expected);

  Edit untied;
  untied.set_tensors.push_back({"output.weight",
                                GgmlType::F16,
                                {256, 2048},
                                std::vector<uint8_t>(embd.data, embd.data + embd.size_bytes)});
  ASSERT_OK_AND_ASSIGN(auto untied_model, LoadEdited(untied));
  EXPECT_FALSE(untied_model->config().tied_head);
  EXPECT_FALSE(untied_model->load_stats().head_converted);
  EXPECT_EQ(Logits(*untied_model), expected);
}

TEST_F(ModelLoadTest, QuantizedEmbeddingsLoadAndRun) {
  const TensorInfo& embd = Tensor("token_embd.weight");
  const int64_t n = embd.num_elements();
  std::vector<float> f(n);
  quant::DequantizeRowF16(embd.data, f.data(), n);

  NewTensor q8{"token_embd.weight",
               GgmlType::Q8_0,
               {256, 2048},
               std::vector<uint8_t>(gguf::TensorBytes(GgmlType::Q8_0, {256, 2048}).value())};
  quant::QuantizeRowQ8_0(f.data(), q8.data.data(), n);

  NewTensor bf16{"token_embd.weight", GgmlType::BF16, {256, 2048}, std::vector<uint8_t>(n * 2)};
  quant::F32ToBF16(f.data(), reinterpret_cast<uint16_t*>(bf16.data.data()), n);

  // Q6_K blocks with arbitrary codes and sub-scales and a small scale.
  NewTensor q6{"token_embd.weight",
               GgmlType::Q6_K,
               {256, 2048},
               std::vector<uint8_t>(gguf::TensorBytes(GgmlType::Q6_K, {256, 2048}).value())};
  for (size_t i = 0; i < q6.data.size(); ++i) q6.data[i] = static_cast<uint8_t>(i * 131 + 7);
  const uint16_t d = quant::F32ToF16(1e-3f);
  for (size_t b = 0; b < q6.data.size(); b += quant::kQ6_KBlockBytes) {
    std::memcpy(&q6.data[b + quant::kQ6_KBlockBytes - 2], &d, 2);
  }

  for (NewTensor* t : {&q8, &bf16, &q6}) {
    Edit edit;
    edit.set_tensors.push_back(*t);
    ASSERT_OK_AND_ASSIGN(auto model, LoadEdited(edit));
    EXPECT_TRUE(model->load_stats().head_converted) << gguf::GgmlTypeName(t->type);
    for (float v : Logits(*model)) ASSERT_TRUE(std::isfinite(v)) << gguf::GgmlTypeName(t->type);
  }
}

}  // namespace
}  // namespace wf::engine
