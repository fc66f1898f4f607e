#include "converter/safetensors.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/quant/fp16.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::convert {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "wf_st_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Writes 8-byte length + header + data; `declared_len` overrides the length.
  std::string WriteRaw(const std::string& name, const std::string& header, const std::string& data,
                       int64_t declared_len = -1) {
    const std::string path = Path(name);
    uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    bytes += header;
    bytes += data;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // A valid one-tensor file with the given header entry fields.
  std::string WriteEntry(const std::string& entry, size_t data_bytes) {
    return WriteRaw("t.safetensors", "{\"w\": " + entry + "}", std::string(data_bytes, '\1'));
  }

  std::string dir_;
};

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 7 * i);
  return v;
}

TEST_F(SafetensorsTest, RoundTripsEveryDtype) {
  const std::vector<SafetensorsDtype> dtypes = {
      SafetensorsDtype::kBool,   SafetensorsDtype::kU8,     SafetensorsDtype::kI8,
      SafetensorsDtype::kF8E4M3, SafetensorsDtype::kF8E5M2, SafetensorsDtype::kU16,
      SafetensorsDtype::kI16,    SafetensorsDtype::kF16,    SafetensorsDtype::kBF16,
      SafetensorsDtype::kU32,    SafetensorsDtype::kI32,    SafetensorsDtype::kF32,
      SafetensorsDtype::kU64,    SafetensorsDtype::kI64,    SafetensorsDtype::kF64};
  const std::string path = Path("all.safetensors");
  {
    ASSERT_OK_AND_ASSIGN(auto w, SafetensorsWriter::Create(path));
    ASSERT_THAT(w->SetMetadata("format", "pt"), IsOk());
    for (size_t i = 0; i < dtypes.size(); ++i) {
      ASSERT_THAT(w->Declare("t" + std::to_string(i), dtypes[i], {2, 3}), IsOk());
    }
    ASSERT_THAT(w->Declare("empty", SafetensorsDtype::kF32, {0, 4}), IsOk());
    ASSERT_THAT(w->Declare("scalar", SafetensorsDtype::kI64, {}), IsOk());
    for (size_t i = 0; i < dtypes.size(); ++i) {
      const auto bytes = Pattern(6 * SafetensorsDtypeSize(dtypes[i]), static_cast<uint8_t>(i));
      ASSERT_THAT(w->WriteTensor("t" + std::to_string(i), bytes.data(), bytes.size()), IsOk());
    }
    ASSERT_THAT(w->WriteTensor("empty", nullptr, 0), IsOk());
    const auto scalar = Pattern(8, 99);
    ASSERT_THAT(w->WriteTensor("scalar", scalar.data(), scalar.size()), IsOk());
    ASSERT_THAT(w->Commit(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::Open(path));
  EXPECT_EQ(f->data_offset() % 8, 0u);
  EXPECT_THAT(f->metadata(),
              ElementsAre(std::pair<const std::string, std::string>("format", "pt")));
  ASSERT_EQ(f->tensors().size(), dtypes.size() + 2);
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const TensorInfo& t = f->tensors()[i];
    EXPECT_EQ(t.name, "t" + std::to_string(i));  // Header order is declaration order.
    EXPECT_EQ(t.dtype, dtypes[i]);
    EXPECT_THAT(t.shape, ElementsAre(2, 3));
    EXPECT_EQ(t.numel, 6u);
    const auto want = Pattern(6 * SafetensorsDtypeSize(dtypes[i]), static_cast<uint8_t>(i));
    std::vector<uint8_t> got(want.size());
    ASSERT_THAT(f->ReadTensor(t.name, got.data(), got.size()), IsOk());
    EXPECT_EQ(got, want) << SafetensorsDtypeName(dtypes[i]);
    std::vector<uint8_t> part(3);
    ASSERT_THAT(f->ReadTensorRange(t.name, 2, part.data(), part.size()), IsOk());
    EXPECT_EQ(part, std::vector<uint8_t>(want.begin() + 2, want.begin() + 5));
  }
  const TensorInfo* empty = f->Find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->numel, 0u);
  EXPECT_EQ(empty->nbytes(), 0u);
  const TensorInfo* scalar = f->Find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->numel, 1u);
  EXPECT_EQ(f->Find("missing"), nullptr);
  std::vector<uint8_t> buf(8);
  EXPECT_THAT(f->ReadTensor("missing", buf.data(), buf.size()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  EXPECT_THAT(f->ReadTensor("scalar", buf.data(), 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has 8 bytes")));
  EXPECT_THAT(f->ReadTensorRange("scalar", 6, buf.data(), 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside tensor 'scalar'")));
}

TEST_F(SafetensorsTest, StreamedWritesMayCrossTensorBoundaries) {
  const std::string path = Path("s.safetensors");
  const auto all = Pattern(4 * 10 + 2 * 7, 3);
  {
    ASSERT_OK_AND_ASSIGN(auto w, SafetensorsWriter::Create(path));
    ASSERT_THAT(w->Declare("a", SafetensorsDtype::kF32, {10}), IsOk());
    ASSERT_THAT(w->Declare("b", SafetensorsDtype::kBF16, {7}), IsOk());
    for (size_t off = 0; off < all.size(); off += 5) {
      const size_t n = std::min<size_t>(5, all.size() - off);
      ASSERT_THAT(w->Write(all.data() + off, n), IsOk());
    }
    EXPECT_THAT(w->Write(all.data(), 1),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds")));
    ASSERT_THAT(w->Commit(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::Open(path));
  std::vector<uint8_t> b(14);
  ASSERT_THAT(f->ReadTensor("b", b.data(), b.size()), IsOk());
  EXPECT_EQ(b, std::vector<uint8_t>(all.begin() + 40, all.end()));
}

TEST_F(SafetensorsTest, WriterRejectsMisuseAndLeavesNoFile) {
  const std::string path = Path("w.safetensors");
  {
    ASSERT_OK_AND_ASSIGN(auto w, SafetensorsWriter::Create(path));
    EXPECT_THAT(w->Declare("x", SafetensorsDtype::kF32, {2, -1}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
    ASSERT_THAT(w->Declare("x", SafetensorsDtype::kF32, {2}), IsOk());
    EXPECT_THAT(w->Declare("x", SafetensorsDtype::kF32, {2}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("declared twice")));
    ASSERT_THAT(w->Declare("y", SafetensorsDtype::kU8, {3}), IsOk());
    const float x[2] = {1, 2};
    EXPECT_THAT(w->WriteTensor("y", "abc", 3),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declaration order")));
    ASSERT_THAT(w->WriteTensor("x", x, sizeof(x)), IsOk());
    EXPECT_THAT(w->Declare("z", SafetensorsDtype::kU8, {1}),
                StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
    EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("'y'")));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir_));  // No temporary file left either.
}

TEST_F(SafetensorsTest, ConvertsHalfFormatsToF32) {
  const std::string path = Path("h.safetensors");
  const std::vector<float> values = {1.0f, -2.0f, 0.5f, 3072.0f, 0.0f, -0.0f};  // Exact in BF16.
  const uint16_t halves[] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0000, 0x8000, 0x0001};
  std::vector<uint16_t> bf16;
  for (float v : values) bf16.push_back(quant::F32ToBF16(v));
  {
    ASSERT_OK_AND_ASSIGN(auto w, SafetensorsWriter::Create(path));
    ASSERT_THAT(w->Declare("f32", SafetensorsDtype::kF32, {2, 3}), IsOk());
    ASSERT_THAT(w->Declare("f16", SafetensorsDtype::kF16, {7}), IsOk());
    ASSERT_THAT(w->Declare("bf16", SafetensorsDtype::kBF16, {6}), IsOk());
    ASSERT_THAT(w->Declare("i8", SafetensorsDtype::kI8, {1}), IsOk());
    ASSERT_THAT(w->Write(values.data(), values.size() * 4), IsOk());
    ASSERT_THAT(w->Write(halves, sizeof(halves)), IsOk());
    ASSERT_THAT(w->Write(bf16.data(), bf16.size() * 2), IsOk());
    ASSERT_THAT(w->Write("\x05", 1), IsOk());
    ASSERT_THAT(w->Commit(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::Open(path));
  ASSERT_OK_AND_ASSIGN(std::vector<float> a, f->ReadTensorAsF32("f32"));
  EXPECT_EQ(a, values);
  ASSERT_OK_AND_ASSIGN(std::vector<float> h, f->ReadTensorAsF32("f16"));
  EXPECT_THAT(h, ElementsAre(1.0f, -2.0f, 0.5f, 65504.0f, 0.0f, -0.0f, std::ldexp(1.0f, -24)));
  EXPECT_TRUE(std::signbit(h[5]));
  ASSERT_OK_AND_ASSIGN(std::vector<float> b, f->ReadTensorAsF32("bf16"));
  EXPECT_EQ(b, values);
  EXPECT_THAT(f->ReadTensorAsF32("i8"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype I8")));
}

TEST_F(SafetensorsTest, ConvertsAcrossChunkBoundaries) {
  const std::string path = Path("big.safetensors");
  const size_t n = (size_t{1} << 20) + 37;  // More than one conversion chunk.
  std::vector<uint16_t> raw(n);
  for (size_t i = 0; i < n; ++i) raw[i] = quant::F32ToBF16(static_cast<float>(i % 251) - 125.0f);
  {
    ASSERT_OK_AND_ASSIGN(auto w, SafetensorsWriter::Create(path));
    ASSERT_THAT(w->Declare("w", SafetensorsDtype::kBF16, {static_cast<int64_t>(n)}), IsOk());
    ASSERT_THAT(w->WriteTensor("w", raw.data(), n * 2), IsOk());
    ASSERT_THAT(w->Commit(), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto f, SafetensorsFile::Open(path));
  ASSERT_OK_AND_ASSIGN(std::vector<float> v, f->ReadTensorAsF32("w"));
  ASSERT_EQ(v.size(), n);
  for (size_t i : {size_t{0}, (size_t{1} << 20) - 1, size_t{1} << 20, n - 1}) {
    EXPECT_EQ(v[i], static_cast<float>(i % 251) - 125.0f) << i;
  }
}

// --- Malformed files: one test per class of lie. ---

TEST_F(SafetensorsTest, RejectsFileShorterThanLengthPrefix) {
  const std::string path = Path("short.safetensors");
  std::ofstream(path, std::ios::binary) << std::string("\x02\x00\x00", 3);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated: 3 bytes")));
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEndOfFile) {
  const std::string path = WriteRaw("h.safetensors", "{}", "", 4096);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("header length 4096 runs past the end of the file (10 bytes")));
}

TEST_F(SafetensorsTest, RejectsHeaderLongerThanLimit) {
  const std::string path = WriteRaw("big.safetensors", "{}", "");
  // A sparse file large enough that only the 100 MiB cap can reject it.
  const uint64_t len = kMaxSafetensorsHeaderBytes + 8;
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(len + 8)), 0);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((len >> (8 * i)) & 0xff));
  }
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds the limit")));
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotJson) {
  EXPECT_THAT(SafetensorsFile::Open(WriteRaw("j.safetensors", "{\"w\": [1, 2", "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid JSON")));
  EXPECT_THAT(SafetensorsFile::Open(WriteRaw("a.safetensors", "[1, 2]", "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an object")));
}

TEST_F(SafetensorsTest, RejectsDeepNestingBeforeParsing) {
  const std::string deep = "{\"w\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THAT(SafetensorsFile::Open(WriteRaw("d.safetensors", deep, "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nesting deeper than 64")));
}

TEST_F(SafetensorsTest, RejectsOffsetsPastEndOfData) {
  const std::string path =
      WriteEntry(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]})", 12);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'w': data_offsets [0, 16] run past the end of the data "
                                 "area (12 bytes)")));
}

TEST_F(SafetensorsTest, RejectsOverlappingRanges) {
  const std::string header = R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},)"
                             R"( "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}})";
  EXPECT_THAT(SafetensorsFile::Open(WriteRaw("o.safetensors", header, std::string(12, 'x'))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensors 'a' [0, 8) and 'b' [4, 12) overlap")));
}

TEST_F(SafetensorsTest, RejectsSizeThatDisagreesWithShape) {
  const std::string path =
      WriteEntry(R"({"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 10]})", 10);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("span 10 bytes but dtype BF16 with 6 elements needs 12")));
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  const std::string path =
      WriteEntry(R"({"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 2]})", 2);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'w': unknown dtype \"Q4_K\"")));
}

TEST_F(SafetensorsTest, RejectsNegativeDimension) {
  const std::string path =
      WriteEntry(R"({"dtype": "U8", "shape": [2, -3], "data_offsets": [0, 0]})", 0);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'w': shape[1] is negative (-3)")));
}

TEST_F(SafetensorsTest, RejectsOverflowingShape) {
  const std::string path = WriteEntry(
      R"({"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]})", 0);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overflows")));
}

TEST_F(SafetensorsTest, RejectsMalformedEntries) {
  EXPECT_THAT(SafetensorsFile::Open(WriteEntry(R"({"dtype": "U8", "shape": [1]})", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data_offsets")));
  EXPECT_THAT(SafetensorsFile::Open(
                  WriteEntry(R"({"dtype": "U8", "shape": [1.5], "data_offsets": [0, 1]})", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("shape[0] is a JSON number")));
  EXPECT_THAT(
      SafetensorsFile::Open(WriteRaw("m.safetensors", R"({"__metadata__": {"format": 1}})", "")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"format\" is a JSON integer")));
  EXPECT_THAT(SafetensorsFile::Open(
                  WriteRaw("dup.safetensors",
                           R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                           R"( "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                           "ab")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate JSON key \"w\"")));
}

// --- Checkpoint directories. ---

class CheckpointTest : public SafetensorsTest {
 protected:
  // Writes a shard holding U8 tensors of 4 bytes each.
  void WriteShard(const std::string& name, const std::vector<std::string>& tensors) {
    ASSERT_OK_AND_ASSIGN(auto w, SafetensorsWriter::Create(Path(name)));
    for (const std::string& t : tensors)
      ASSERT_THAT(w->Declare(t, SafetensorsDtype::kU8, {4}), IsOk());
    for (const std::string& t : tensors) {
      const std::string bytes = t.substr(0, 1) + "123";
      ASSERT_THAT(w->WriteTensor(t, bytes.data(), 4), IsOk());
    }
    ASSERT_THAT(w->Commit(), IsOk());
  }
  void WriteIndex(const std::string& weight_map) {
    std::ofstream(Path("model.safetensors.index.json"))
        << R"({"metadata": {"total_size": 16}, "weight_map": )" << weight_map << "}";
  }
};

TEST_F(CheckpointTest, OpensSingleFile) {
  WriteShard("model.safetensors", {"x", "y"});
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpoint::Open(dir_));
  ASSERT_EQ(ckpt->tensors().size(), 2u);
  EXPECT_EQ(ckpt->tensors()[1].info->name, "y");
  char buf[4];
  ASSERT_THAT(ckpt->ReadTensor("y", buf, 4), IsOk());
  EXPECT_EQ(std::string(buf, 4), "y123");
}

TEST_F(CheckpointTest, OpensShardedCheckpoint) {
  WriteShard("model-00001-of-00002.safetensors", {"a", "b"});
  WriteShard("model-00002-of-00002.safetensors", {"c"});
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors"})");
  ASSERT_OK_AND_ASSIGN(auto ckpt, Checkpoint::Open(dir_));
  EXPECT_EQ(ckpt->files().size(), 2u);
  ASSERT_EQ(ckpt->tensors().size(), 3u);
  const TensorRef* c = ckpt->Find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->file->path(), HasSubstr("model-00002-of-00002"));
  char buf[2];
  ASSERT_THAT(ckpt->ReadTensorRange("c", 1, buf, 2), IsOk());
  EXPECT_EQ(std::string(buf, 2), "12");
  EXPECT_THAT(ckpt->ReadTensor("zz", buf, 2),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("zz")));
}

TEST_F(CheckpointTest, RejectsMissingShard) {
  WriteShard("model-00001-of-00002.safetensors", {"a"});
  WriteIndex(
      R"({"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("shard 'model-00002-of-00002.safetensors' (holding tensor 'b'")));
}

TEST_F(CheckpointTest, RejectsTensorMissingFromItsShard) {
  WriteShard("s1.safetensors", {"a"});
  WriteShard("s2.safetensors", {"c"});
  WriteIndex(R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("maps tensor 'b' to shard 's1.safetensors', which does not "
                                 "contain it")));
}

TEST_F(CheckpointTest, RejectsTensorInTwoShards) {
  WriteShard("s1.safetensors", {"a", "b"});
  WriteShard("s2.safetensors", {"b"});
  WriteIndex(R"({"a": "s1.safetensors", "b": "s2.safetensors"})");
  EXPECT_THAT(Checkpoint::Open(dir_), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("tensor 'b' appears in both")));
}

TEST_F(CheckpointTest, RejectsShardTensorMissingFromIndex) {
  WriteShard("s1.safetensors", {"a", "extra"});
  WriteIndex(R"({"a": "s1.safetensors"})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'extra' of shard 's1.safetensors' is not listed")));
}

TEST_F(CheckpointTest, RejectsShardNameOutsideDirectory) {
  WriteIndex(R"({"a": "../elsewhere.safetensors"})");
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid shard name")));
}

TEST_F(CheckpointTest, ExplainsEmptyOrUnsupportedDirectories) {
  EXPECT_THAT(Checkpoint::Open(dir_),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("the directory is empty")));
  std::ofstream(Path("pytorch_model.bin")) << "x";
  EXPECT_THAT(Checkpoint::Open(dir_), StatusIs(absl::StatusCode::kNotFound,
                                               HasSubstr(".bin checkpoints are not supported")));
  EXPECT_THAT(Checkpoint::Open(dir_ + "/nope"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

}  // namespace
}  // namespace wf::convert
