#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/gguf/gguf_types.h"
#include "common/gguf/gguf_value.h"
#include "common/gguf/gguf_writer.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::gguf {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::GoldenDir;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

// A fresh directory, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/wf_gguf_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  size_t EntryCount() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(path_), fs::directory_iterator()));
  }

 private:
  std::string path_;
};

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 131 + seed * 7 + (i >> 8));
  return v;
}

// ---------------------------------------------------------------- types

TEST(GgmlTypesTest, TensorBytesFollowsBlockGeometry) {
  struct Case {
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t bytes;
  };
  const Case cases[] = {
      {GgmlType::F32, {4, 3}, 48},
      {GgmlType::F16, {256, 2048}, 256 * 2048 * 2},
      {GgmlType::BF16, {6}, 12},
      {GgmlType::Q8_0, {64, 2}, 4 * 34},
      {GgmlType::Q4_0, {32}, 18},
      {GgmlType::Q4_1, {32}, 20},
      {GgmlType::Q5_0, {32}, 22},
      {GgmlType::Q5_1, {32}, 24},
      {GgmlType::Q8_1, {32}, 36},
      {GgmlType::Q2_K, {256}, 84},
      {GgmlType::Q3_K, {256}, 110},
      {GgmlType::Q4_K, {256}, 144},
      {GgmlType::Q5_K, {256}, 176},
      {GgmlType::Q6_K, {256, 2}, 420},
      {GgmlType::Q8_K, {256}, 292},
      {GgmlType::TQ1_0, {512}, 108},
      {GgmlType::TQ2_0, {256, 1, 1, 2}, 132},
      {GgmlType::I2_S, {256, 256}, 256 * 256 / 4 + 32},
      {GgmlType::I2_S, {2560, 6912}, 2560 * 6912 / 4 + 32},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(GgmlTypeName(c.type));
    ASSERT_OK_AND_ASSIGN(uint64_t bytes, TensorBytes(c.type, c.ne));
    EXPECT_EQ(bytes, c.bytes);
  }
}

TEST(GgmlTypesTest, TensorBytesRejectsBadShapes) {
  EXPECT_THAT(TensorBytes(GgmlType::Q8_0, {48}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a multiple")));
  EXPECT_THAT(TensorBytes(GgmlType::I2_S, {64, 3}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a multiple of 128")));
  EXPECT_THAT(TensorBytes(GgmlType::F32, {4, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not positive")));
  EXPECT_THAT(TensorBytes(GgmlType::F32, {-4}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not positive")));
  EXPECT_THAT(TensorBytes(GgmlType::F32, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 to 4 dims")));
  EXPECT_THAT(TensorBytes(GgmlType::F32, {1, 1, 1, 1, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 to 4 dims")));
  EXPECT_THAT(TensorBytes(GgmlType::F32, {int64_t{1} << 40, int64_t{1} << 40}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overflows")));
  EXPECT_THAT(TensorBytes(GgmlType::F32, {int64_t{1} << 62}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overflows")));
  EXPECT_THAT(TensorBytes(static_cast<GgmlType>(99), {4}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown ggml type id 99")));
}

TEST(GgmlTypesTest, NamesMapBothWays) {
  EXPECT_EQ(GgmlTypeName(GgmlType::I2_S), "i2_s");
  EXPECT_EQ(GgmlTypeName(GgmlType::Q6_K), "q6_K");
  EXPECT_EQ(GgmlTypeName(static_cast<GgmlType>(77)), "unknown(77)");
  ASSERT_OK_AND_ASSIGN(GgmlType t, GgmlTypeFromName("I2_S"));
  EXPECT_EQ(t, GgmlType::I2_S);
  for (const GgmlTypeTraits& traits : AllTypeTraits()) {
    ASSERT_OK_AND_ASSIGN(GgmlType back, GgmlTypeFromName(traits.name));
    EXPECT_EQ(back, traits.type);
    EXPECT_EQ(FindTypeTraits(traits.type), &traits);
  }
  EXPECT_THAT(GgmlTypeFromName("q9_9"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("q9_9")));
}

// ---------------------------------------------------------------- values

TEST(ValueTest, IntegerReadsAcceptAnyIntegerTypeThatFits) {
  EXPECT_EQ(*Value::U32(7).ToU64(), 7u);
  EXPECT_EQ(*Value::I32(7).ToU32(), 7u);
  EXPECT_EQ(*Value::U64(7).ToI32(), 7);
  EXPECT_EQ(*Value::I8(-3).ToI64(), -3);
  EXPECT_EQ(*Value::U16(65535).ToU32(), 65535u);
  EXPECT_THAT(Value::I32(-1).ToU32(),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("value -1 (i32) does not fit in u32")));
  EXPECT_THAT(Value::U64(uint64_t{1} << 40).ToU32(),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("does not fit in u32")));
  EXPECT_THAT(Value::U64(~uint64_t{0}).ToI64(), StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("i64")));
  EXPECT_THAT(Value::String("x").ToU32(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected u32, found string")));
  EXPECT_THAT(Value::F32(1).ToI32(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f32")));
  EXPECT_THAT(Value::Bool(true).ToU32(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bool")));
}

TEST(ValueTest, OtherReadsNeedTheirType) {
  EXPECT_EQ(*Value::F32(1.5f).ToF32(), 1.5f);
  EXPECT_EQ(*Value::F64(2.5).ToF32(), 2.5f);
  EXPECT_EQ(*Value::F32(0.25f).ToF64(), 0.25);
  EXPECT_TRUE(*Value::Bool(true).ToBool());
  EXPECT_TRUE(*Value::Scalar(ValueType::BOOL, 2).ToBool());
  EXPECT_EQ(*Value::String("gpt2").ToString(), "gpt2");
  EXPECT_THAT(Value::U8(1).ToBool(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected bool, found u8")));
  const Value tokens = Value::StringArray({"a", "b"});
  EXPECT_THAT(*tokens.ToStringArray(), ElementsAre("a", "b"));
  EXPECT_EQ(tokens.array_size(), 2u);
  EXPECT_EQ(tokens.TypeName(), "array[string]");
  EXPECT_THAT(tokens.ToF32Array(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected array[f32], found array[string]")));
  EXPECT_THAT(Value::I32Array({1, 2}).ToU32Array(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("array[i32]")));
  EXPECT_THAT(*Value::F32Array({1, 2}).ToF32Array(), ElementsAre(1.0f, 2.0f));
  EXPECT_THAT(*Value::I32Array({1, 3}).ToI32Array(), ElementsAre(1, 3));
}

TEST(ValueTest, EqualityIsBitwiseAndTypeExact) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(Value::F32(nan), Value::F32(nan));
  EXPECT_EQ(Value::F32Array({nan}), Value::F32Array({nan}));
  EXPECT_NE(Value::F32(0.0f), Value::F32(-0.0f));
  EXPECT_NE(Value::U32(1), Value::I32(1));
  EXPECT_NE(Value::U8Array({1}), Value::BoolArray({1}));
  EXPECT_NE(Value::U32Array({}), Value::I32Array({}));
  EXPECT_NE(Value::StringArray({"a"}), Value::StringArray({"a", ""}));
  EXPECT_EQ(Value::ArrayOfArrays({Value::U8Array({1})}), Value::ArrayOfArrays({Value::U8Array({1})}));
  EXPECT_NE(Value::ArrayOfArrays({Value::U8Array({1})}), Value::ArrayOfArrays({Value::U8Array({2})}));
}

TEST(ValueTest, ArrayOfArraysMustHoldArrays) {
  EXPECT_THAT(Value::ArrayOfArrays({Value::U8Array({}), Value::U32(3)}).Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element 1")));
  EXPECT_THAT(Value::ArrayOfArrays({Value::ArrayOfArrays({Value::String("x")})}).Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element 0: element 0")));
  EXPECT_THAT(Value::ArrayOfArrays({Value::StringArray({})}).Validate(), IsOk());
}

TEST(ValueTest, DebugStringIsShortAndEscaped) {
  EXPECT_EQ(Value::U32(4096).DebugString(), "u32 4096");
  EXPECT_EQ(Value::I8(-5).DebugString(), "i8 -5");
  EXPECT_EQ(Value::String("a\"b\n").DebugString(), "string \"a\\\"b\\x0a\"");
  EXPECT_EQ(Value::F32Array({0.5f, 1, 2}).DebugString(2), "array[f32, 3] [0.5, 1, ...]");
  EXPECT_EQ(Value::BoolArray({1, 0}).DebugString(), "array[bool, 2] [true, false]");
}

// ---------------------------------------------------------------- golden file

std::vector<std::string> GoldenFiles() {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(GoldenDir(), ec)) {
    if (e.path().extension() == ".gguf") files.push_back(e.path().string());
  }
  return files;
}

TEST(GgufGoldenTest, EveryGoldenFileRoundTripsByteForByte) {
  const std::vector<std::string> files = GoldenFiles();
  ASSERT_FALSE(files.empty()) << "no *.gguf in " << GoldenDir()
                              << " (set WF_GOLDEN_DIR or WF_SOURCE_DIR)";
  TempDir dir;
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    ASSERT_OK_AND_ASSIGN(auto file, GgufFile::Open(path));
    const std::string out = dir.File("copy.gguf");
    ASSERT_THAT(GgufWriter::CopyFrom(*file, out), IsOk());
    ASSERT_OK_AND_ASSIGN(std::string original, ReadFileToString(path));
    ASSERT_OK_AND_ASSIGN(std::string copy, ReadFileToString(out));
    ASSERT_EQ(copy.size(), original.size());
    EXPECT_TRUE(copy == original) << "first difference at byte "
                                  << std::distance(copy.begin(), std::mismatch(copy.begin(), copy.end(), original.begin()).first);
  }
}

TEST(GgufGoldenTest, SyntheticBitnetModelHasKnownShape) {
  ASSERT_OK_AND_ASSIGN(auto f, GgufFile::Open(GoldenDir() + "/bitnet-synth-h256-l4.gguf"));
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->metadata().size(), 24u);
  EXPECT_EQ(f->metadata().front().key, "general.architecture");
  EXPECT_EQ(f->metadata().back().key, "general.quantization_version");
  EXPECT_EQ(f->data_offset() % 32, 0u);
  EXPECT_EQ(*f->GetString("general.architecture"), "bitnet-b1.58");
  EXPECT_EQ(*f->GetU32("bitnet-b1.58.block_count"), 4u);
  EXPECT_EQ(*f->GetU32("bitnet-b1.58.embedding_length"), 256u);
  EXPECT_EQ(*f->GetU32("bitnet-b1.58.attention.head_count_kv"), 2u);
  EXPECT_EQ(*f->GetU64("bitnet-b1.58.feed_forward_length"), 768u);  // u32 on disk
  EXPECT_EQ(*f->GetI32("tokenizer.ggml.bos_token_id"), 2040);
  EXPECT_EQ(*f->GetF32("bitnet-b1.58.rope.freq_base"), 500000.0f);
  EXPECT_NEAR(*f->GetF32("bitnet-b1.58.attention.layer_norm_rms_epsilon"), 1e-5f, 1e-10f);
  EXPECT_TRUE(*f->GetBool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), "gpt2");
  ASSERT_OK_AND_ASSIGN(auto tokens, f->GetStringArray("tokenizer.ggml.tokens"));
  EXPECT_EQ(tokens.size(), 2048u);
  EXPECT_EQ(tokens[2040], "<|begin_of_text|>");
  EXPECT_EQ(f->GetF32Array("tokenizer.ggml.scores")->size(), 2048u);
  EXPECT_EQ(f->GetI32Array("tokenizer.ggml.token_type")->size(), 2048u);
  EXPECT_EQ(f->GetStringArray("tokenizer.ggml.merges")->size(), 1784u);
  EXPECT_EQ(f->FindKey("tokenizer.ggml.pre"), nullptr);

  EXPECT_THAT(f->GetU32("general.architecture"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("metadata key 'general.architecture': expected u32, found string")));
  EXPECT_THAT(f->GetString("no.such.key"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'no.such.key' not found")));

  ASSERT_EQ(f->tensors().size(), 46u);
  const TensorInfo* emb = f->FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::F16);
  EXPECT_THAT(emb->dims(), ElementsAre(256, 2048));
  EXPECT_EQ(emb->size_bytes, 256u * 2048 * 2);
  EXPECT_EQ(f->FindTensor("output.weight"), nullptr);
  int i2s = 0;
  for (const TensorInfo& t : f->tensors()) i2s += t.type == GgmlType::I2_S;
  EXPECT_EQ(i2s, 28);
  for (int layer = 0; layer < 4; ++layer) {
    for (const char* proj : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      const TensorInfo* t = f->FindTensor(absl::StrCat("blk.", layer, ".", proj, ".weight"));
      ASSERT_NE(t, nullptr) << layer << proj;
      EXPECT_EQ(t->type, GgmlType::I2_S);
      EXPECT_EQ(t->size_bytes, static_cast<uint64_t>(t->num_elements() / 4 + 32));
      // The per-tensor scale follows the packed codes.
      float scale;
      std::memcpy(&scale, t->data + t->num_elements() / 4, sizeof(scale));
      EXPECT_TRUE(std::isfinite(scale) && scale > 0) << t->name << " scale " << scale;
    }
  }
  const TensorInfo* down = f->FindTensor("blk.3.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_THAT(down->dims(), ElementsAre(768, 256));
  const TensorInfo& last = f->tensors().back();
  EXPECT_EQ(last.name, "output_norm.weight");
  EXPECT_EQ(last.type, GgmlType::F32);
  EXPECT_EQ(last.data + last.size_bytes, f->image() + f->size());
}

// ---------------------------------------------------------------- writer round trip

std::vector<KeyValue> AllValueKinds() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  return {
      {"t.u8", Value::U8(200)},
      {"t.i8", Value::I8(-100)},
      {"t.u16", Value::U16(60000)},
      {"t.i16", Value::I16(-30000)},
      {"t.u32", Value::U32(4000000000u)},
      {"t.i32", Value::I32(-2000000000)},
      {"t.f32", Value::F32(1.5f)},
      {"t.f32_nan", Value::F32(nan)},
      {"t.bool_true", Value::Bool(true)},
      {"t.bool_false", Value::Bool(false)},
      {"t.string", Value::String("h\xc3\xa9llo\n")},
      {"t.string_nul", Value::String(std::string("a\0b", 3))},
      {"t.empty_string", Value::String("")},
      {"t.u64", Value::U64(uint64_t{1} << 63)},
      {"t.i64", Value::I64(std::numeric_limits<int64_t>::min())},
      {"t.f64", Value::F64(-2.25)},
      {"a.u8", Value::U8Array({1, 2, 255})},
      {"a.i8", Value::I8Array({-1, 0, 127})},
      {"a.u16", Value::U16Array({65535, 0})},
      {"a.i16", Value::I16Array({-32768})},
      {"a.u32", Value::U32Array({1, 4000000000u})},
      {"a.i32", Value::I32Array({-1, 3})},
      {"a.f32", Value::F32Array({0.0f, -1000.0f, nan})},
      {"a.bool", Value::BoolArray({1, 0, 1})},
      {"a.string", Value::StringArray({"a", "", "ccc"})},
      {"a.u64", Value::U64Array({~uint64_t{0}})},
      {"a.i64", Value::I64Array({-5, 5})},
      {"a.f64", Value::F64Array({1e300, -0.0})},
      {"empty.u32", Value::U32Array({})},
      {"empty.string", Value::StringArray({})},
      {"empty.f64", Value::F64Array({})},
      {"empty.arrays", Value::ArrayOfArrays({})},
      {"nested", Value::ArrayOfArrays(
                     {Value::U32Array({1, 2}), Value::StringArray({"x", ""}), Value::U8Array({}),
                      Value::ArrayOfArrays({Value::F32Array({}), Value::I8Array({-5})})})},
  };
}

struct TensorSpec {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
};

const std::vector<TensorSpec>& MixedTensors() {
  static const auto* specs = new std::vector<TensorSpec>{
      {"f32", GgmlType::F32, {3, 5}},        {"q8", GgmlType::Q8_0, {64, 2}},
      {"i2s", GgmlType::I2_S, {128, 3}},     {"f16", GgmlType::F16, {7}},
      {"q6k", GgmlType::Q6_K, {256}},        {"tq2", GgmlType::TQ2_0, {256, 1, 1, 2}},
      {"tq1", GgmlType::TQ1_0, {256, 3}},    {"bf16", GgmlType::BF16, {1, 1, 9}},
  };
  return *specs;
}

class GgufWriterRoundTripTest : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(GgufWriterRoundTripTest, WrittenFileReadsBackEqual) {
  const auto [version, alignment] = GetParam();
  TempDir dir;
  const std::string path = dir.File("rt.gguf");
  std::vector<KeyValue> expected = AllValueKinds();
  expected.insert(expected.begin() + 3, KeyValue{"general.alignment", Value::U32(alignment)});
  std::vector<std::vector<uint8_t>> payloads;
  {
    ASSERT_OK_AND_ASSIGN(auto w, GgufWriter::Create(path, version));
    for (const KeyValue& kv : expected) ASSERT_THAT(w->AddMetadata(kv.key, kv.value), IsOk());
    EXPECT_EQ(w->alignment(), alignment);
    for (const TensorSpec& t : MixedTensors()) {
      ASSERT_THAT(w->AddTensorInfo(t.name, t.type, t.ne), IsOk());
    }
    for (size_t i = 0; i < MixedTensors().size(); ++i) {
      const TensorSpec& t = MixedTensors()[i];
      payloads.push_back(Pattern(*TensorBytes(t.type, t.ne), static_cast<uint8_t>(i)));
      const std::vector<uint8_t>& p = payloads.back();
      ASSERT_THAT(w->BeginTensor(t.name), IsOk());
      for (size_t off = 0; off < p.size(); off += 7) {  // Uneven chunks.
        ASSERT_THAT(w->WriteTensorBytes(p.data() + off, std::min<size_t>(7, p.size() - off)), IsOk());
      }
      ASSERT_THAT(w->EndTensor(), IsOk());
    }
    ASSERT_THAT(w->Finish(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto f, GgufFile::Open(path));
  EXPECT_EQ(f->version(), version);
  EXPECT_EQ(f->alignment(), alignment);
  EXPECT_EQ(f->data_offset() % alignment, 0u);
  ASSERT_EQ(f->metadata().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(f->metadata()[i].key, expected[i].key);
    EXPECT_EQ(f->metadata()[i].value, expected[i].value)
        << expected[i].key << ": " << f->metadata()[i].value.DebugString();
  }
  ASSERT_EQ(f->tensors().size(), MixedTensors().size());
  for (size_t i = 0; i < MixedTensors().size(); ++i) {
    const TensorInfo& t = f->tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, MixedTensors()[i].name);
    EXPECT_EQ(t.type, MixedTensors()[i].type);
    EXPECT_THAT(t.dims(), ::testing::ElementsAreArray(MixedTensors()[i].ne));
    EXPECT_EQ(t.offset % alignment, 0u);
    EXPECT_EQ(static_cast<uint64_t>(t.data - f->image()) % alignment, 0u);
    ASSERT_EQ(t.size_bytes, payloads[i].size());
    EXPECT_EQ(std::memcmp(t.data, payloads[i].data(), t.size_bytes), 0);
  }
  // Writing what was read reproduces the file exactly.
  ASSERT_THAT(GgufWriter::CopyFrom(*f, dir.File("again.gguf")), IsOk());
  EXPECT_EQ(*ReadFileToString(dir.File("again.gguf")), *ReadFileToString(path));
}

INSTANTIATE_TEST_SUITE_P(VersionsAndAlignments, GgufWriterRoundTripTest,
                         ::testing::Combine(::testing::Values(2u, 3u), ::testing::Values(32u, 64u)));

TEST(GgufWriterTest, MetadataOnlyFileRoundTrips) {
  TempDir dir;
  {
    ASSERT_OK_AND_ASSIGN(auto w, GgufWriter::Create(dir.File("m.gguf"), 2));
    ASSERT_THAT(w->AddMetadata("k", Value::String("v")), IsOk());
    ASSERT_THAT(w->Finish(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto f, GgufFile::Open(dir.File("m.gguf")));
  EXPECT_EQ(f->version(), 2u);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(*f->GetString("k"), "v");
  EXPECT_EQ(f->size() % 32, 0u);
}

TEST(GgufWriterTest, LlamaSizedVocabularyRoundTrips) {
  constexpr size_t kTokens = 128256;
  constexpr size_t kMerges = 280147;
  std::vector<std::string> tokens(kTokens), merges(kMerges);
  for (size_t i = 0; i < kTokens; ++i) tokens[i] = absl::StrCat("tok", i);
  for (size_t i = 0; i < kMerges; ++i) merges[i] = absl::StrCat("m", i % 977, " ", i);
  TempDir dir;
  {
    ASSERT_OK_AND_ASSIGN(auto w, GgufWriter::Create(dir.File("v.gguf")));
    ASSERT_THAT(w->AddMetadata("tokenizer.ggml.tokens", Value::StringArray(tokens)), IsOk());
    ASSERT_THAT(w->AddMetadata("tokenizer.ggml.scores", Value::F32Array(std::vector<float>(kTokens, 0.0f))), IsOk());
    ASSERT_THAT(w->AddMetadata("tokenizer.ggml.token_type", Value::I32Array(std::vector<int32_t>(kTokens, 1))), IsOk());
    ASSERT_THAT(w->AddMetadata("tokenizer.ggml.merges", Value::StringArray(merges)), IsOk());
    ASSERT_THAT(w->Finish(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto f, GgufFile::Open(dir.File("v.gguf")));
  ASSERT_OK_AND_ASSIGN(auto got_tokens, f->GetStringArray("tokenizer.ggml.tokens"));
  ASSERT_OK_AND_ASSIGN(auto got_merges, f->GetStringArray("tokenizer.ggml.merges"));
  EXPECT_TRUE(std::equal(got_tokens.begin(), got_tokens.end(), tokens.begin(), tokens.end()));
  EXPECT_TRUE(std::equal(got_merges.begin(), got_merges.end(), merges.begin(), merges.end()));
  EXPECT_EQ(f->GetI32Array("tokenizer.ggml.token_type")->size(), kTokens);
}

// ---------------------------------------------------------------- writer misuse

class GgufWriterMisuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("out.gguf");
    ASSERT_OK_AND_ASSIGN(w_, GgufWriter::Create(path_));
    ASSERT_THAT(w_->AddTensorInfo("a", GgmlType::F32, {8}), IsOk());
    ASSERT_THAT(w_->AddTensorInfo("b", GgmlType::F32, {4}), IsOk());
  }
  // After a failed write, nothing may be left behind once the writer is gone.
  void ExpectNoOutput() {
    w_.reset();
    EXPECT_FALSE(fs::exists(path_));
    EXPECT_EQ(dir_.EntryCount(), 0u);
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<GgufWriter> w_;
  std::vector<uint8_t> bytes_ = std::vector<uint8_t>(64, 1);
};

TEST_F(GgufWriterMisuseTest, ShortTensorIsRejected) {
  ASSERT_THAT(w_->BeginTensor("a"), IsOk());
  ASSERT_THAT(w_->WriteTensorBytes(bytes_.data(), 31), IsOk());
  EXPECT_THAT(w_->EndTensor(), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("tensor 'a': 31 bytes written, expected 32")));
  EXPECT_THAT(w_->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("failed earlier")));
  ExpectNoOutput();
}

TEST_F(GgufWriterMisuseTest, LongTensorIsRejected) {
  EXPECT_THAT(w_->WriteTensor("a", bytes_.data(), 33),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds its size of 32 bytes")));
  ExpectNoOutput();
}

TEST_F(GgufWriterMisuseTest, TensorsOutOfOrderAreRejected) {
  EXPECT_THAT(w_->BeginTensor("b"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                             HasSubstr("expected 'a' next")));
  ExpectNoOutput();
}

TEST_F(GgufWriterMisuseTest, UndeclaredTensorIsRejected) {
  EXPECT_THAT(w_->BeginTensor("zzz"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                               HasSubstr("'zzz'): tensor was not declared")));
  ExpectNoOutput();
}

TEST_F(GgufWriterMisuseTest, FinishBeforeAllTensorsIsRejected) {
  ASSERT_THAT(w_->WriteTensor("a", bytes_.data(), 32), IsOk());
  EXPECT_THAT(w_->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     HasSubstr("only 1 of 2 declared tensors written; next is 'b'")));
  ExpectNoOutput();
}

TEST_F(GgufWriterMisuseTest, FinishInsideTensorIsRejected) {
  ASSERT_THAT(w_->BeginTensor("a"), IsOk());
  EXPECT_THAT(w_->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not ended")));
  ExpectNoOutput();
}

TEST_F(GgufWriterMisuseTest, AbandonedWriterLeavesNothing) {
  ASSERT_THAT(w_->WriteTensor("a", bytes_.data(), 32), IsOk());
  ExpectNoOutput();
}

TEST_F(GgufWriterMisuseTest, DeclarationsAreValidated) {
  EXPECT_THAT(w_->AddTensorInfo("a", GgmlType::F32, {8}),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("duplicate tensor name 'a'")));
  EXPECT_THAT(w_->AddTensorInfo("c", GgmlType::Q8_0, {16}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor 'c': ")));
  EXPECT_THAT(w_->AddTensorInfo("d", static_cast<GgmlType>(99), {16}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown ggml type id 99")));
  EXPECT_THAT(w_->AddTensorInfo("", GgmlType::F32, {16}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  ASSERT_THAT(w_->AddMetadata("k", Value::U32(1)), IsOk());
  EXPECT_THAT(w_->AddMetadata("k", Value::U32(2)),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("duplicate metadata key 'k'")));
  EXPECT_THAT(w_->AddMetadata("general.alignment", Value::U32(48)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a power of two")));
  EXPECT_THAT(w_->AddMetadata("general.alignment", Value::U32(0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a power of two")));
  EXPECT_THAT(w_->AddMetadata("general.alignment", Value::U64(64)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be u32, found u64")));
  EXPECT_THAT(w_->AddMetadata("bad", Value::ArrayOfArrays({Value::U8(1)})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metadata key 'bad': element 0")));
  // Declaration errors leave the writer usable.
  ASSERT_THAT(w_->WriteTensor("a", bytes_.data(), 32), IsOk());
  EXPECT_THAT(w_->AddMetadata("late", Value::U32(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("after tensor data started")));
  ASSERT_THAT(w_->WriteTensor("b", bytes_.data(), 16), IsOk());
  ASSERT_THAT(w_->Finish(), IsOk());
  EXPECT_THAT(w_->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already finished")));
  ASSERT_OK_AND_ASSIGN(auto f, GgufFile::Open(path_));
  EXPECT_EQ(*f->GetU32("k"), 1u);
}

TEST(GgufWriterTest, OnlyVersionsTwoAndThree) {
  TempDir dir;
  EXPECT_THAT(GgufWriter::Create(dir.File("x.gguf"), 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version 1")));
  EXPECT_EQ(dir.EntryCount(), 0u);
}

}  // namespace
}  // namespace wf::gguf
