// Reads GGUF v2/v3 model files: ordered metadata, tensor descriptions, and
// pointers to tensor data inside a read-only memory map (never copied).
//
// Parsing is defensive: every count, length and offset is checked against the
// bytes that remain before it is used or allocated, so a truncated or hostile
// file yields an InvalidArgument error naming the problem and its byte offset
// (or the tensor/key concerned), never an out-of-bounds read or a huge
// allocation. Checked: magic, version (2 or 3), value type ids, nesting depth,
// duplicate keys and tensor names, general.alignment (u32, power of two),
// n_dims (1..4), dims (positive, no overflow), tensor types (known ids),
// tensor offsets (aligned), data ranges (inside the file, non-overlapping).
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto file, GgufFile::Open("model.gguf"));
//   BN_ASSIGN_OR_RETURN(std::string_view arch, file->GetString("general.architecture"));
//   BN_ASSIGN_OR_RETURN(uint32_t layers, file->GetU32(std::string(arch) + ".block_count"));
//   const TensorInfo* emb = file->FindTensor("token_embd.weight");
//   if (emb == nullptr) return absl::NotFoundError("no token_embd.weight");
//   const uint8_t* bytes = emb->data;  // emb->size_bytes bytes, valid while `file` lives
//
// A GgufFile is immutable after construction; all const methods are safe to
// call from several threads at once.
#ifndef WF_COMMON_GGUF_GGUF_READER_H_
#define WF_COMMON_GGUF_GGUF_READER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/file_util.h"
#include "common/gguf/gguf_types.h"
#include "common/gguf/gguf_value.h"

namespace wf::gguf {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32.
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr std::string_view kAlignmentKey = "general.alignment";
// Arrays nested deeper than this are rejected (protects the recursive parser).
inline constexpr int kMaxArrayDepth = 16;

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  uint32_t n_dims = 0;
  std::array<int64_t, kMaxDims> ne = {1, 1, 1, 1};  // Unused dims are 1.
  uint64_t offset = 0;      // Relative to the data section.
  uint64_t size_bytes = 0;  // TensorBytes(type, dims()).
  const uint8_t* data = nullptr;

  absl::Span<const int64_t> dims() const { return {ne.data(), n_dims}; }
  int64_t num_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Maps `path` read-only and parses it. Errors are prefixed with the path.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory image. The caller keeps [data, data + size) alive and
  // unchanged for the life of the returned object (tensor data points into it).
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size);

  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  // Absolute offset of the data section (end of header, padded to alignment()).
  uint64_t data_offset() const { return data_offset_; }
  // The whole file image (mapped, or the buffer given to Parse) and its size.
  const uint8_t* image() const { return image_; }
  size_t size() const { return size_; }

  // Metadata in file order.
  const std::vector<KeyValue>& metadata() const { return metadata_; }
  // nullptr if absent.
  const Value* FindKey(std::string_view key) const;

  // Typed getters. NotFound "metadata key 'k' not found", or the Value::To*
  // error prefixed with "metadata key 'k': " (e.g. "expected u32, found string").
  absl::StatusOr<uint32_t> GetU32(std::string_view key) const;
  absl::StatusOr<int32_t> GetI32(std::string_view key) const;
  absl::StatusOr<uint64_t> GetU64(std::string_view key) const;
  absl::StatusOr<int64_t> GetI64(std::string_view key) const;
  absl::StatusOr<float> GetF32(std::string_view key) const;
  absl::StatusOr<double> GetF64(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  // Views valid while this GgufFile lives.
  absl::StatusOr<std::string_view> GetString(std::string_view key) const;
  absl::StatusOr<absl::Span<const std::string>> GetStringArray(std::string_view key) const;
  absl::StatusOr<absl::Span<const float>> GetF32Array(std::string_view key) const;
  absl::StatusOr<absl::Span<const int32_t>> GetI32Array(std::string_view key) const;
  absl::StatusOr<absl::Span<const uint32_t>> GetU32Array(std::string_view key) const;

  // Tensors in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorInfo* FindTensor(std::string_view name) const;

 private:
  class Parser;
  GgufFile() = default;

  std::unique_ptr<MappedFile> mapping_;  // Null for Parse().
  const uint8_t* image_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  absl::flat_hash_map<std::string, size_t> key_index_;
  std::vector<TensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace wf::gguf

#endif  // WF_COMMON_GGUF_GGUF_READER_H_
