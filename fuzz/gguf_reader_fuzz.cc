// Fuzz target: the GGUF reader on arbitrary bytes. GgufFile::Parse is the
// path GgufFile::Open takes once the file is mapped. Every metadata value is
// read through every typed getter, every tensor's data range is touched and
// its first row dequantized, and the tokenizer vocabulary is built from the
// metadata as the worker does at start-up.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/gguf/gguf_reader.h"
#include "common/gguf/gguf_value.h"
#include "common/quant/dequant.h"
#include "common/tokenizer/gguf_vocab.h"
#include "common/tokenizer/tokenizer.h"
#include "fuzz/fuzz_util.h"

namespace {

using ::wf::fuzz::Fail;
using ::wf::gguf::GgufFile;

void ReadEveryGetter(const GgufFile& file, const std::string& key) {
  // Results are discarded: the point is that none of them misbehaves.
  (void)file.GetU32(key);
  (void)file.GetI32(key);
  (void)file.GetU64(key);
  (void)file.GetI64(key);
  (void)file.GetF32(key);
  (void)file.GetF64(key);
  (void)file.GetBool(key);
  (void)file.GetString(key);
  (void)file.GetStringArray(key);
  (void)file.GetF32Array(key);
  (void)file.GetI32Array(key);
  (void)file.GetU32Array(key);
}

void ReadValue(const wf::gguf::Value& value) {
  (void)value.DebugString();
  (void)value.TypeName();
  if (!value.Validate().ok()) Fail("a parsed value does not validate");
  if (absl::StatusOr<absl::Span<const wf::gguf::Value>> nested = value.ToArrayOfArrays();
      nested.ok()) {
    for (const wf::gguf::Value& v : *nested) ReadValue(v);
  }
}

void ReadTensors(const GgufFile& file) {
  const uint8_t* begin = file.image();
  const uint8_t* end = begin + file.size();
  uint8_t sum = 0;
  for (const wf::gguf::TensorInfo& t : file.tensors()) {
    if (file.FindTensor(t.name) != &t) Fail("FindTensor does not find a listed tensor");
    if (t.size_bytes > 0 && (t.data < begin || t.data > end ||
                             t.size_bytes > static_cast<uint64_t>(end - t.data))) {
      Fail("tensor data outside the image");
    }
    // Touch every byte: ASan checks the range really is readable.
    for (uint64_t i = 0; i < t.size_bytes; ++i) sum ^= t.data[i];
    const int64_t row = t.ne[0];
    if (row > 0 && row <= (int64_t{1} << 20)) {
      std::vector<float> out(static_cast<size_t>(row));
      (void)wf::quant::DequantizeRow(static_cast<uint32_t>(t.type), t.data, out.data(), row);
    }
  }
  volatile uint8_t sink = sum;
  (void)sink;
}

void BuildTokenizer(const GgufFile& file) {
  absl::StatusOr<wf::tokenizer::Vocab> vocab = wf::tokenizer::VocabFromGgufFile(file);
  if (!vocab.ok()) return;
  absl::StatusOr<std::unique_ptr<wf::tokenizer::Tokenizer>> tok =
      wf::tokenizer::Tokenizer::Create(*std::move(vocab));
  if (!tok.ok()) return;
  absl::StatusOr<std::vector<int32_t>> ids = (*tok)->Encode("Hello, world! 123 \xC3\xA9t\xC3\xA9");
  if (ids.ok()) (void)(*tok)->Decode(*ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (wf::fuzz::QuietLogs(), true);
  (void)quiet;
  absl::StatusOr<std::unique_ptr<GgufFile>> parsed = GgufFile::Parse(data, size);
  if (!parsed.ok()) return 0;
  const GgufFile& file = **parsed;
  for (const wf::gguf::KeyValue& kv : file.metadata()) {
    if (file.FindKey(kv.key) != &kv.value) Fail("FindKey does not find a listed key");
    ReadValue(kv.value);
    ReadEveryGetter(file, kv.key);
  }
  ReadTensors(file);
  BuildTokenizer(file);
  return 0;
}
