// The reader against malformed input: each mutation of a small valid file
// must give an error naming the problem, never a crash or an out-of-bounds
// read (run under ASan to check the latter). Images are built by hand here,
// independently of GgufWriter.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/gguf/gguf_writer.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::gguf {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

std::string U32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string U64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string Str(std::string_view s) { return U64(s.size()) + std::string(s); }
std::string Kv(std::string_view key, ValueType type, const std::string& payload) {
  return Str(key) + U32(static_cast<uint32_t>(type)) + payload;
}

struct RawTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
  std::optional<uint32_t> n_dims;  // Defaults to ne.size().
};

// A GGUF image spelled out field by field, so tests can break any field.
struct RawFile {
  uint32_t magic = kGgufMagic;
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;  // Default: tensors.size().
  std::optional<uint64_t> kv_count;      // Default: kvs.size().
  std::vector<std::string> kvs;          // Encoded entries (see Kv()).
  std::vector<RawTensor> tensors;
  uint32_t alignment = 32;
  size_t data_bytes = 0;

  std::string Encode() const {
    std::string s = U32(magic) + U32(version) + U64(tensor_count.value_or(tensors.size())) +
                    U64(kv_count.value_or(kvs.size()));
    for (const std::string& kv : kvs) s += kv;
    for (const RawTensor& t : tensors) {
      s += Str(t.name) + U32(t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
      for (uint64_t d : t.ne) s += U64(d);
      s += U32(t.type) + U64(t.offset);
    }
    s.resize((s.size() + alignment - 1) / alignment * alignment, '\0');
    for (size_t i = 0; i < data_bytes; ++i) s.push_back(static_cast<char>(i * 37 + 11));
    return s;
  }
};

// general.architecture, a u32 and a string array; tensors "a" (f32 [8],
// 32 bytes at 0) and "blk.0.attn_q.weight" (f16 [16, 2], 64 bytes at 32).
RawFile BaseFile() {
  RawFile f;
  f.kvs = {
      Kv("general.architecture", ValueType::STRING, Str("test")),
      Kv("test.count", ValueType::UINT32, U32(7)),
      Kv("test.tokens", ValueType::ARRAY,
         U32(static_cast<uint32_t>(ValueType::STRING)) + U64(3) + Str("a") + Str("bc") + Str("")),
  };
  f.tensors = {{"a", {8}, 0, 0, {}}, {"blk.0.attn_q.weight", {16, 2}, 1, 32, {}}};
  f.data_bytes = 96;
  return f;
}

// Parses from a heap buffer of exactly the image's size, so that any read
// past the end is a heap overflow that ASan reports.
absl::StatusOr<std::unique_ptr<GgufFile>> ParseExact(const std::string& image,
                                                     std::vector<uint8_t>* storage) {
  storage->assign(image.begin(), image.end());
  storage->shrink_to_fit();
  return GgufFile::Parse(storage->data(), storage->size());
}

TEST(GgufCorruptionTest, BaseFileIsValidAndMatchesTheWriter) {
  const std::string image = BaseFile().Encode();
  std::vector<uint8_t> buf;
  ASSERT_OK_AND_ASSIGN(auto f, ParseExact(image, &buf));
  EXPECT_EQ(*f->GetU32("test.count"), 7u);
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[1].size_bytes, 64u);
  EXPECT_EQ(f->tensors()[1].data + 64, buf.data() + buf.size());

  // The writer lays the same content out identically.
  char tmpl[] = "/tmp/wf_gguf_corrupt_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/base.gguf";
  ASSERT_THAT(GgufWriter::CopyFrom(*f, path), IsOk());
  absl::StatusOr<std::string> written = ReadFileToString(path);
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
  ASSERT_THAT(written, IsOk());
  EXPECT_TRUE(*written == image);
}

struct Corruption {
  std::string name;
  std::function<void(RawFile&)> mutate;
  std::string expected;  // Substring of the error message.
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
};

constexpr uint64_t kHuge = uint64_t{1} << 60;

std::vector<Corruption> Corruptions() {
  const std::string kStringType = U32(static_cast<uint32_t>(ValueType::STRING));
  auto add_kv = [](std::string kv) { return [kv](RawFile& f) { f.kvs.push_back(kv); }; };
  auto tensor = [](size_t i, std::function<void(RawTensor&)> fn) {
    return [i, fn](RawFile& f) { fn(f.tensors[i]); };
  };
  std::string nested;  // 17 arrays deep.
  for (int i = 0; i < 17; ++i) nested += U32(static_cast<uint32_t>(ValueType::ARRAY)) + U64(1);
  return {
      {"bad magic", [](RawFile& f) { f.magic = 0x46554746; }, "bad magic 0x46554746"},
      {"version 1", [](RawFile& f) { f.version = 1; }, "unsupported GGUF version 1", absl::StatusCode::kUnimplemented},
      {"version 99", [](RawFile& f) { f.version = 99; }, "unsupported GGUF version 99", absl::StatusCode::kUnimplemented},
      {"big-endian", [](RawFile& f) { f.version = 0x03000000; }, "big-endian", absl::StatusCode::kUnimplemented},
      {"huge tensor count", [](RawFile& f) { f.tensor_count = kHuge; }, "tensor count 1152921504606846976 cannot fit"},
      {"huge kv count", [](RawFile& f) { f.kv_count = kHuge; }, "metadata count 1152921504606846976"},
      {"max kv count", [](RawFile& f) { f.kv_count = ~uint64_t{0}; }, "cannot fit"},
      {"huge key length", add_kv(U64(kHuge) + "abc"), "key at offset"},
      {"huge string value", add_kv(Str("k") + kStringType + U64(kHuge)), "has length 1152921504606846976"},
      {"huge string array", add_kv(Kv("k", ValueType::ARRAY, kStringType + U64(kHuge))),
       "array of 1152921504606846976 strings"},
      {"huge u32 array", add_kv(Kv("k", ValueType::ARRAY, U32(4) + U64(kHuge))),
       "array of 1152921504606846976 elements"},
      {"huge array of arrays", add_kv(Kv("k", ValueType::ARRAY, U32(9) + U64(kHuge))),
       "array of 1152921504606846976 arrays"},
      {"huge string in array",
       add_kv(Kv("k", ValueType::ARRAY, kStringType + U64(2) + Str("x") + U64(kHuge))),
       "metadata key 'k': array element [1]: truncated: string length"},
      {"bad value type", add_kv(Str("k") + U32(13) + U32(0)), "metadata key 'k': invalid value type 13"},
      {"bad element type", add_kv(Kv("k", ValueType::ARRAY, U32(99) + U64(0))),
       "invalid array element type 99"},
      {"deep nesting", add_kv(Kv("k", ValueType::ARRAY, nested)),
       "metadata key 'k': array element [0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: "
       "arrays nested deeper than 16"},
      {"duplicate key", add_kv(Kv("test.count", ValueType::UINT32, U32(8))),
       "metadata key 'test.count': duplicate key"},
      {"alignment 48", add_kv(Kv("general.alignment", ValueType::UINT32, U32(48))),
       "alignment 48 is not a power of two"},
      {"alignment 0", add_kv(Kv("general.alignment", ValueType::UINT32, U32(0))),
       "alignment 0 is not a power of two"},
      {"alignment type", add_kv(Kv("general.alignment", ValueType::UINT64, U64(32))),
       "'general.alignment': must be u32, found u64"},
      {"bad tensor type", tensor(1, [](RawTensor& t) { t.type = 99; }),
       "tensor 'blk.0.attn_q.weight': unknown ggml type id 99"},
      {"n_dims 0", tensor(0, [](RawTensor& t) { t.n_dims = 0; t.ne.clear(); }), "tensor 'a': n_dims 0 out of range"},
      {"n_dims 5", tensor(0, [](RawTensor& t) { t.ne = {8, 1, 1, 1, 1}; }), "n_dims 5 out of range"},
      {"huge n_dims", tensor(0, [](RawTensor& t) { t.n_dims = 0x7fffffff; }), "n_dims 2147483647"},
      {"zero dim", tensor(1, [](RawTensor& t) { t.ne[1] = 0; }), "dim 1 is 0"},
      {"negative dim", tensor(1, [](RawTensor& t) { t.ne[1] = ~uint64_t{0}; }), "dim 1 is -1"},
      {"overflowing dims", tensor(1, [](RawTensor& t) { t.ne = {uint64_t{1} << 62, uint64_t{1} << 62}; }),
       "overflows int64"},
      {"bytes overflow", tensor(1, [](RawTensor& t) { t.ne = {uint64_t{1} << 62, 1}; }), "overflows int64"},
      {"bad block multiple", tensor(1, [](RawTensor& t) { t.type = 8; }), "not a multiple of the block size 32"},
      {"i2_s count", tensor(1, [](RawTensor& t) { t.type = 36; }), "not a multiple of 128"},
      {"misaligned offset", tensor(1, [](RawTensor& t) { t.offset = 33; }),
       "tensor 'blk.0.attn_q.weight': offset 33 is not a multiple of the alignment 32"},
      {"data past end", tensor(1, [](RawTensor& t) { t.offset = 64; }),
       "extends past end of file"},
      {"huge offset", tensor(1, [](RawTensor& t) { t.offset = ~uint64_t{31}; }), "extends past end of file"},
      {"overlap", tensor(1, [](RawTensor& t) { t.offset = 0; }), "overlap"},
      {"duplicate tensor", tensor(1, [](RawTensor& t) { t.name = "a"; }), "tensor 'a': duplicate tensor name"},
      {"no data section", [](RawFile& f) { f.data_bytes = 0; }, "extends past end of file (size "},
  };
}

TEST(GgufCorruptionTest, EachCorruptionIsReportedPrecisely) {
  for (const Corruption& c : Corruptions()) {
    SCOPED_TRACE(c.name);
    RawFile f = BaseFile();
    c.mutate(f);
    std::vector<uint8_t> buf;
    absl::StatusOr<std::unique_ptr<GgufFile>> r = ParseExact(f.Encode(), &buf);
    EXPECT_THAT(r.status(), StatusIs(c.code, HasSubstr(c.expected)));
  }
}

TEST(GgufCorruptionTest, DataPastEndNamesTensorRangeAndFileSize) {
  RawFile f = BaseFile();
  f.tensors[1].offset = 64;
  const std::string image = f.Encode();
  std::vector<uint8_t> buf;
  const size_t data_offset = image.size() - 96;
  EXPECT_THAT(ParseExact(image, &buf).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrCat("tensor 'blk.0.attn_q.weight': data [",
                                              data_offset + 64, ", ", data_offset + 128,
                                              ") extends past end of file (size ", image.size(),
                                              ")"))));
}

TEST(GgufCorruptionTest, EveryTruncationIsAnError) {
  const std::string image = BaseFile().Encode();
  for (size_t len = 0; len < image.size(); ++len) {
    SCOPED_TRACE(len);
    std::vector<uint8_t> buf;
    EXPECT_THAT(ParseExact(image.substr(0, len), &buf).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AnyOf(HasSubstr("truncated"), HasSubstr("past end"))));
  }
}

TEST(GgufCorruptionTest, OpenNamesThePath) {
  char tmpl[] = "/tmp/wf_gguf_corrupt_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/bad.gguf";
  {
    ASSERT_OK_AND_ASSIGN(auto out, AtomicFileWriter::Create(path));
    ASSERT_THAT(out->Write("GGUF", 4), IsOk());
    ASSERT_THAT(out->Commit(), IsOk());
  }
  EXPECT_THAT(GgufFile::Open(path).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrCat("'", path, "': GGUF header: truncated: version"))));
  EXPECT_THAT(GgufFile::Open(dir + "/missing.gguf").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.gguf")));
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

// Random byte flips must never crash; whatever parses must have in-bounds data.
TEST(GgufCorruptionTest, RandomMutationsNeverCrash) {
  const std::string image = BaseFile().Encode();
  std::mt19937 rng(1234);
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m = image;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Bias towards the header, where the structure lives.
      const size_t pos = rng() % (rng() % 2 ? m.size() : m.size() - 96);
      m[pos] = static_cast<char>(rng() % 2 ? (rng() & 0xff) : m[pos] ^ (1 << (rng() % 8)));
    }
    std::vector<uint8_t> buf;
    absl::StatusOr<std::unique_ptr<GgufFile>> r = ParseExact(m, &buf);
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++parsed;
    unsigned sum = 0;
    for (const TensorInfo& t : (*r)->tensors()) {
      ASSERT_GE(t.data, buf.data());
      ASSERT_LE(t.data + t.size_bytes, buf.data() + buf.size());
      for (uint64_t i = 0; i < t.size_bytes; ++i) sum += t.data[i];
    }
    for (const KeyValue& kv : (*r)->metadata()) sum += kv.value.DebugString().size();
    volatile unsigned sink = sum;  // Keeps the reads above from being optimized away.
    (void)sink;
  }
  EXPECT_GT(parsed, 0);  // Flips inside tensor data keep the file valid.
}

}  // namespace
}  // namespace wf::gguf
