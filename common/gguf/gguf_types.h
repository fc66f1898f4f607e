// GGUF building blocks: ggml tensor types with their block geometry, and the
// type ids of GGUF metadata values.
//
// The numeric ids are the on-disk ids of ggml / GGUF (so they never change).
// I2_S (36) is bitnet.cpp's ternary format: 2 bits per weight packed in
// blocks of 128 values -> 32 bytes, followed by one float32 scale per tensor
// and 28 unused bytes, i.e. n/4 + 32 bytes for n weights.
//
// Example:
//   BN_ASSIGN_OR_RETURN(GgmlType t, GgmlTypeFromName("i2_s"));
//   BN_ASSIGN_OR_RETURN(uint64_t bytes, TensorBytes(t, {2560, 6912}));
//   // bytes == 2560 * 6912 / 4 + 32
//
// All functions are pure and thread-safe.
#ifndef WF_COMMON_GGUF_GGUF_TYPES_H_
#define WF_COMMON_GGUF_GGUF_TYPES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace wf::gguf {

// ggml tensor element types (the subset this project knows the layout of).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  I2_S = 36,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;  // lower case, as ggml prints it: "f16", "q6_K", "i2_s"
  int64_t block_size;     // elements per block
  int64_t block_bytes;    // bytes per block
};

// Most dimensions a tensor may have (ggml's GGML_MAX_DIMS).
inline constexpr int kMaxDims = 4;

// Traits of a known type id, or nullptr for an id this table does not know.
// For I2_S the block is the 128-value / 32-byte packing unit; the per-tensor
// 32-byte tail is added by TensorBytes().
const GgmlTypeTraits* FindTypeTraits(uint32_t type_id);
inline const GgmlTypeTraits* FindTypeTraits(GgmlType type) {
  return FindTypeTraits(static_cast<uint32_t>(type));
}
// Every known type, in id order.
absl::Span<const GgmlTypeTraits> AllTypeTraits();

// "f32", "i2_s", ...; "unknown(N)" for an unknown id.
std::string GgmlTypeName(GgmlType type);
// Case-insensitive ("I2_S", "i2_s", "q6_k" all work). NotFound if unknown.
absl::StatusOr<GgmlType> GgmlTypeFromName(std::string_view name);

// Bytes of a tensor of `type` with dims `ne` (ggml order, ne[0] contiguous).
// Errors (InvalidArgument): unknown type, 0 or more than kMaxDims dims, a
// dim <= 0, ne[0] not a multiple of the block size (for I2_S: the element
// count not a multiple of 128), or an element/byte count overflowing int64.
absl::StatusOr<uint64_t> TensorBytes(GgmlType type, absl::Span<const int64_t> ne);

// Type ids of GGUF metadata values.
enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

inline constexpr uint32_t kValueTypeCount = 13;

inline bool IsValidValueType(uint32_t id) { return id < kValueTypeCount; }
// "u8", "i32", "f32", "bool", "string", "array", ...; "invalid(N)" otherwise.
std::string ValueTypeName(ValueType type);
// On-disk size of a fixed-size value type; 0 for STRING and ARRAY.
size_t ValueTypeSize(ValueType type);
bool IsIntegerValueType(ValueType type);

}  // namespace wf::gguf

#endif  // WF_COMMON_GGUF_GGUF_TYPES_H_
