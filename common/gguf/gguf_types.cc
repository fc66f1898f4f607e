#include "common/gguf/gguf_types.h"

#include <array>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/string_view_compat.h"

namespace wf::gguf {
namespace {

using ::wf::Av;

// Block geometry as in ggml-common.h (QK4_0 = QK8_0 = 32, QK_K = 256).
constexpr std::array<GgmlTypeTraits, 23> kTypeTraits = {{
    {GgmlType::F32, "f32", 1, 4},
    {GgmlType::F16, "f16", 1, 2},
    {GgmlType::Q4_0, "q4_0", 32, 18},
    {GgmlType::Q4_1, "q4_1", 32, 20},
    {GgmlType::Q5_0, "q5_0", 32, 22},
    {GgmlType::Q5_1, "q5_1", 32, 24},
    {GgmlType::Q8_0, "q8_0", 32, 34},
    {GgmlType::Q8_1, "q8_1", 32, 36},
    {GgmlType::Q2_K, "q2_K", 256, 84},
    {GgmlType::Q3_K, "q3_K", 256, 110},
    {GgmlType::Q4_K, "q4_K", 256, 144},
    {GgmlType::Q5_K, "q5_K", 256, 176},
    {GgmlType::Q6_K, "q6_K", 256, 210},
    {GgmlType::Q8_K, "q8_K", 256, 292},
    {GgmlType::I8, "i8", 1, 1},
    {GgmlType::I16, "i16", 1, 2},
    {GgmlType::I32, "i32", 1, 4},
    {GgmlType::I64, "i64", 1, 8},
    {GgmlType::F64, "f64", 1, 8},
    {GgmlType::BF16, "bf16", 1, 2},
    {GgmlType::TQ1_0, "tq1_0", 256, 54},
    {GgmlType::TQ2_0, "tq2_0", 256, 66},
    {GgmlType::I2_S, "i2_s", 128, 32},
}};

constexpr int64_t kI2sTailBytes = 32;

}  // namespace

const GgmlTypeTraits* FindTypeTraits(uint32_t type_id) {
  for (const GgmlTypeTraits& t : kTypeTraits) {
    if (static_cast<uint32_t>(t.type) == type_id) return &t;
  }
  return nullptr;
}

absl::Span<const GgmlTypeTraits> AllTypeTraits() { return kTypeTraits; }

std::string GgmlTypeName(GgmlType type) {
  const GgmlTypeTraits* t = FindTypeTraits(type);
  if (t == nullptr) return absl::StrCat("unknown(", static_cast<uint32_t>(type), ")");
  return std::string(t->name);
}

absl::StatusOr<GgmlType> GgmlTypeFromName(std::string_view name) {
  for (const GgmlTypeTraits& t : kTypeTraits) {
    if (absl::EqualsIgnoreCase(Av(t.name), Av(name))) return t.type;
  }
  return absl::NotFoundError(absl::StrCat("unknown ggml type name '", Av(name), "'"));
}

absl::StatusOr<uint64_t> TensorBytes(GgmlType type, absl::Span<const int64_t> ne) {
  const GgmlTypeTraits* t = FindTypeTraits(type);
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown ggml type id ", static_cast<uint32_t>(type)));
  }
  const auto shape = [&] { return absl::StrCat("[", absl::StrJoin(ne, ", "), "]"); };
  if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor must have 1 to ", kMaxDims, " dims, got ", ne.size(), " ", shape()));
  }
  int64_t n = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dim ", i, " of shape ", shape(), " is not positive"));
    }
    if (__builtin_mul_overflow(n, ne[i], &n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("element count of shape ", shape(), " overflows int64"));
    }
  }
  if (type == GgmlType::I2_S) {
    if (n % t->block_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "i2_s tensor of shape ", shape(), " has ", n,
          " elements, not a multiple of ", t->block_size));
    }
    return static_cast<uint64_t>(n / t->block_size * t->block_bytes + kI2sTailBytes);
  }
  if (ne[0] % t->block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        Av(t->name), " tensor of shape ", shape(), ": ne[0] = ", ne[0],
        " is not a multiple of the block size ", t->block_size));
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(n / t->block_size, t->block_bytes, &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte count of ", Av(t->name), " tensor of shape ", shape(), " overflows int64"));
  }
  return static_cast<uint64_t>(bytes);
}

std::string ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::UINT8: return "u8";
    case ValueType::INT8: return "i8";
    case ValueType::UINT16: return "u16";
    case ValueType::INT16: return "i16";
    case ValueType::UINT32: return "u32";
    case ValueType::INT32: return "i32";
    case ValueType::FLOAT32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::UINT64: return "u64";
    case ValueType::INT64: return "i64";
    case ValueType::FLOAT64: return "f64";
  }
  return absl::StrCat("invalid(", static_cast<uint32_t>(type), ")");
}

size_t ValueTypeSize(ValueType type) {
  switch (type) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL: return 1;
    case ValueType::UINT16:
    case ValueType::INT16: return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32: return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64: return 8;
    case ValueType::STRING:
    case ValueType::ARRAY: return 0;
  }
  return 0;
}

bool IsIntegerValueType(ValueType type) {
  switch (type) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::UINT16:
    case ValueType::INT16:
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::UINT64:
    case ValueType::INT64: return true;
    default: return false;
  }
}

}  // namespace wf::gguf
