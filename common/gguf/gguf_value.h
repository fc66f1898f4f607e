// A GGUF metadata value: any scalar type, a string, or an array of any element
// type (arrays of arrays included), keeping the exact on-disk type so a file
// read and written back is byte-identical.
//
// Arrays are stored as one typed vector (std::vector<float>,
// std::vector<std::string>, ...), not one Value per element, so a 128k-token
// vocabulary costs one vector of strings. Only arrays of arrays hold a
// std::vector<Value>.
//
// Example:
//   Value arch = Value::String("bitnet-b1.58");
//   Value n = Value::U32(30);
//   Value scores = Value::F32Array({0.0f, -1000.0f});
//   BN_ASSIGN_OR_RETURN(uint64_t v, n.ToU64());               // 30: any integer type that fits
//   BN_ASSIGN_OR_RETURN(absl::Span<const float> s, scores.ToF32Array());
//
// A Value is a regular value type (copyable, movable); const methods are safe
// to call concurrently.
#ifndef WF_COMMON_GGUF_GGUF_VALUE_H_
#define WF_COMMON_GGUF_GGUF_VALUE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/gguf/gguf_types.h"

namespace wf::gguf {

class Value {
 public:
  // A u8 zero.
  Value() = default;

  static Value U8(uint8_t v);
  static Value I8(int8_t v);
  static Value U16(uint16_t v);
  static Value I16(int16_t v);
  static Value U32(uint32_t v);
  static Value I32(int32_t v);
  static Value F32(float v);
  static Value Bool(bool v);
  static Value String(std::string v);
  static Value U64(uint64_t v);
  static Value I64(int64_t v);
  static Value F64(double v);
  // A fixed-size scalar from its raw little-endian bytes (zero-extended to 64
  // bits), e.g. a bool byte other than 0/1 read from a file. `type` must be a
  // fixed-size type (not STRING or ARRAY); otherwise a u8 zero is returned.
  static Value Scalar(ValueType type, uint64_t raw_bits);

  static Value U8Array(std::vector<uint8_t> v);
  static Value I8Array(std::vector<int8_t> v);
  static Value U16Array(std::vector<uint16_t> v);
  static Value I16Array(std::vector<int16_t> v);
  static Value U32Array(std::vector<uint32_t> v);
  static Value I32Array(std::vector<int32_t> v);
  static Value F32Array(std::vector<float> v);
  // One byte per element as on disk: 0 = false, nonzero = true.
  static Value BoolArray(std::vector<uint8_t> v);
  static Value StringArray(std::vector<std::string> v);
  static Value U64Array(std::vector<uint64_t> v);
  static Value I64Array(std::vector<int64_t> v);
  static Value F64Array(std::vector<double> v);
  // Element type ARRAY; each element must itself be an array (of any element
  // type). Validate() reports a non-array element.
  static Value ArrayOfArrays(std::vector<Value> v);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::ARRAY; }
  // Element type of an array; meaningless for scalars.
  ValueType element_type() const { return element_type_; }
  // Number of elements of an array; 0 for scalars.
  size_t array_size() const;
  // "u32", "string", "array[f32]", "array[array]".
  std::string TypeName() const;
  // Checks the structural invariants a file needs (arrays of arrays hold only
  // arrays). InvalidArgument naming the bad element otherwise.
  absl::Status Validate() const;

  // Raw little-endian bytes of a fixed-size scalar, zero-extended.
  uint64_t raw_bits() const { return bits_; }

  // Typed reads. Integers accept any integer type whose value fits the target
  // (writers differ: u32, i32 and u64 all occur for counts); floats accept f32
  // and f64; everything else needs the exact type. Errors: InvalidArgument
  // "expected u32, found string" or OutOfRange "value -1 (i32) does not fit in u32".
  absl::StatusOr<uint32_t> ToU32() const;
  absl::StatusOr<int32_t> ToI32() const;
  absl::StatusOr<uint64_t> ToU64() const;
  absl::StatusOr<int64_t> ToI64() const;
  absl::StatusOr<float> ToF32() const;
  absl::StatusOr<double> ToF64() const;
  absl::StatusOr<bool> ToBool() const;
  // Views into this Value; valid while it lives unchanged.
  absl::StatusOr<std::string_view> ToString() const;
  absl::StatusOr<absl::Span<const std::string>> ToStringArray() const;
  absl::StatusOr<absl::Span<const float>> ToF32Array() const;
  absl::StatusOr<absl::Span<const int32_t>> ToI32Array() const;
  absl::StatusOr<absl::Span<const uint32_t>> ToU32Array() const;
  absl::StatusOr<absl::Span<const Value>> ToArrayOfArrays() const;

  // The typed storage of an array when T matches its element type (uint8_t
  // serves both UINT8 and BOOL arrays, Value serves arrays of arrays); nullptr
  // otherwise.
  template <typename T>
  const std::vector<T>* ArrayData() const {
    return std::get_if<std::vector<T>>(&array_);
  }

  // Short human-readable form, at most `max_elements` array elements shown:
  // `u32 4096`, `string "gpt2"`, `array[f32, 3] [0, 0.5, ...]`.
  std::string DebugString(size_t max_elements = 8) const;

  // Same type and the same bytes on disk (floats compare bitwise).
  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  using ArrayStorage =
      std::variant<std::monostate, std::vector<uint8_t>, std::vector<int8_t>,
                   std::vector<uint16_t>, std::vector<int16_t>, std::vector<uint32_t>,
                   std::vector<int32_t>, std::vector<float>, std::vector<uint64_t>,
                   std::vector<int64_t>, std::vector<double>, std::vector<std::string>,
                   std::vector<Value>>;

  template <typename T>
  static Value MakeArray(ValueType element_type, std::vector<T> v);
  absl::Status TypeError(std::string_view expected) const;

  ValueType type_ = ValueType::UINT8;
  ValueType element_type_ = ValueType::UINT8;
  uint64_t bits_ = 0;
  std::string string_;
  ArrayStorage array_;
};

}  // namespace wf::gguf

#endif  // WF_COMMON_GGUF_GGUF_VALUE_H_
